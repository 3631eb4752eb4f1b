"""Modbus without sockets: register decoding, byte orders, scale and offset, and read planning.

Byte orders name the bytes of a value as they appear on the wire, A being the most significant:
ABCD big-endian; CDAB word-swapped (registers in reverse order, low word first); BADC bytes swapped
inside each register; DCBA little-endian. For 64-bit types the same rule applies to four registers
(CDAB = GHEFCDAB, BADC = BADCFEHG, DCBA = HGFEDCBA); for 16-bit types BADC and DCBA swap the two bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway.sources.modbus.settings import ModbusAddress

BYTE_ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
# data type -> (struct code, registers)
DATA_TYPES: dict[str, tuple[str, int]] = {
    "int16": ("h", 1), "uint16": ("H", 1), "int32": ("i", 2), "uint32": ("I", 2),
    "int64": ("q", 4), "uint64": ("Q", 4), "float32": ("f", 2), "float64": ("d", 4), "bool": ("H", 1),
}
BIT_TABLES = ("coil", "discrete")
REGISTER_TABLES = ("holding", "input")
MAX_REGISTERS_PER_READ = 125  # Modbus limit for function codes 3 and 4
MAX_BITS_PER_READ = 2000  # Modbus limit for function codes 1 and 2

EXCEPTION_MEANINGS = {
    1: "ILLEGAL FUNCTION (the device does not support this table/function)",
    2: "ILLEGAL DATA ADDRESS (the address or count is outside the device's map)",
    3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE",
    5: "ACKNOWLEDGE (device busy with a long command)",
    6: "SERVER DEVICE BUSY",
    7: "NEGATIVE ACKNOWLEDGE",
    8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE (the TCP gateway has no route to this unit)",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND (the unit behind the gateway is silent)",
}


def exception_meaning(code: int) -> str:
    """'02 ILLEGAL DATA ADDRESS (...)' for a Modbus exception code."""
    return f"{code:02d} {EXCEPTION_MEANINGS.get(code, 'UNKNOWN EXCEPTION CODE')}"


def register_count(data_type: str) -> int:
    """How many 16-bit registers a value of this type occupies."""
    return DATA_TYPES[data_type][1]


def _wire_to_big_endian(registers: Sequence[int], byte_order: str) -> bytes:
    """Registers as read -> the value's bytes, most significant first."""
    if byte_order not in BYTE_ORDERS:
        raise ValueError(f"unknown byte order {byte_order!r} (allowed: {', '.join(BYTE_ORDERS)})")
    words = list(registers)
    if byte_order in ("CDAB", "DCBA"):
        words.reverse()
    raw = b"".join(struct.pack(">H", w & 0xFFFF) for w in words)
    if byte_order in ("BADC", "DCBA"):
        raw = bytes(b for i in range(0, len(raw), 2) for b in (raw[i + 1], raw[i]))
    return raw


def decode(registers: Sequence[int], data_type: str, byte_order: str = "ABCD") -> float:
    """Registers -> the raw value (before scale and offset); may be NaN or inf for float types."""
    code, count = DATA_TYPES[data_type]
    if len(registers) != count:
        raise ValueError(f"{data_type} needs {count} registers, got {len(registers)}")
    value = struct.unpack(">" + code, _wire_to_big_endian(registers, byte_order))[0]
    if data_type == "bool":
        return 1.0 if value else 0.0
    if data_type == "float32" and math.isfinite(value):
        # the shortest decimal that is the same float32: 10.118341, not 10.118341445922852
        return float(str(np.float32(value)))
    return value


def encode(value: float, data_type: str, byte_order: str = "ABCD") -> list[int]:
    """A value -> the registers a device holding it in `byte_order` serves (simulator, benchmarks)."""
    code, count = DATA_TYPES[data_type]
    if data_type in ("float32", "float64"):
        raw = struct.pack(">" + code, float(value))
    else:
        raw = struct.pack(">" + code, int(value))
    # The byte-order permutations are their own inverses, so the same function encodes.
    be = _wire_to_big_endian(struct.unpack(f">{count}H", raw), byte_order)
    return list(struct.unpack(f">{count}H", be))


def scaled(raw: float, scale: float = 1.0, offset: float = 0.0) -> float:
    """The engineering value: raw x scale + offset."""
    if scale == 1.0 and offset == 0.0:
        return float(raw)
    # 4001 x 0.01 is 40.010000000000005 in binary floating point; a gauge means 40.01
    return float(f"{float(raw) * scale + offset:.12g}")


def is_good(value: float) -> bool:
    """NaN and infinity are bad readings: counted, never fed to SPC."""
    return math.isfinite(value)


def all_byte_orders(registers: Sequence[int], data_type: str) -> dict[str, float]:
    """The same registers decoded under every byte order (what `probe` prints)."""
    return {order: decode(registers, data_type, order) for order in BYTE_ORDERS}


# ---------------------------------------------------------------- read planning

@dataclass(frozen=True)
class Tag:
    """One address to read, with its place in the caller's list."""

    index: int
    address: ModbusAddress

    @property
    def width(self) -> int:
        """Registers (or bits) this tag occupies."""
        if self.address.table in BIT_TABLES:
            return 1
        return register_count(self.address.data_type)


@dataclass
class ReadBlock:
    """One Modbus request: a contiguous range of one unit's table, covering several tags."""

    unit: int
    table: str
    start: int
    count: int
    tags: list[Tag] = field(default_factory=list)

    def slice(self, values: Sequence, tag: Tag) -> list:
        """The registers/bits of `tag` in this block's response."""
        first = tag.address.address - self.start
        return list(values[first:first + tag.width])

    def __str__(self) -> str:
        return f"unit {self.unit} {self.table} {self.start}..{self.start + self.count - 1}"


def plan_reads(addresses: Sequence[ModbusAddress], merge_gap: int = 8, merge: bool = True) -> list[ReadBlock]:
    """Group addresses into as few requests as the protocol limits allow.

    Addresses of the same unit and table that are at most `merge_gap` registers (or bits) apart are read
    together; a block never exceeds 125 registers or 2000 bits. With `merge` off every tag is a request.
    """
    for a in addresses:
        if a.data_type not in DATA_TYPES:
            raise ValueError(f"unknown data type {a.data_type!r}")
        if not 0 <= a.address <= 0xFFFF:
            raise ValueError(f"address {a.address} is outside 0..65535")
    tags = [Tag(i, a) for i, a in enumerate(addresses)]
    groups: dict[tuple[int, str], list[Tag]] = {}
    for tag in tags:
        groups.setdefault((tag.address.unit, tag.address.table), []).append(tag)
    blocks: list[ReadBlock] = []
    for (unit, table), members in sorted(groups.items()):
        limit = MAX_BITS_PER_READ if table in BIT_TABLES else MAX_REGISTERS_PER_READ
        members.sort(key=lambda t: (t.address.address, -t.width))
        current: ReadBlock | None = None
        for tag in members:
            start, end = tag.address.address, tag.address.address + tag.width
            if current is not None and merge:
                current_end = current.start + current.count
                if start - current_end <= merge_gap and max(end, current_end) - current.start <= limit:
                    current.count = max(end, current_end) - current.start
                    current.tags.append(tag)
                    continue
            current = ReadBlock(unit, table, start, tag.width, [tag])
            blocks.append(current)
    return blocks
