"""Register decoding and read planning, checked against byte layouts built independently here."""

from __future__ import annotations

import math
import struct

import pytest

from gateway.sources.modbus.codec import (
    all_byte_orders,
    decode,
    encode,
    exception_meaning,
    plan_reads,
    scaled,
)
from gateway.sources.modbus.settings import ModbusAddress

VALUES = {
    "int16": -12345, "uint16": 54321, "int32": -123456789, "uint32": 3_000_000_001,
    "int64": -1_234_567_890_123_456_789, "uint64": 17_000_000_000_000_000_001,
    "float32": 1234.5, "float64": -9876.54321,
}
CODES = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q",
         "float32": "f", "float64": "d"}


def wire_registers(value: float, data_type: str, order: str) -> list[int]:
    """The registers a device sends, spelled out byte by byte (A = most significant byte)."""
    be = struct.pack(">" + CODES[data_type], value)
    names = "ABCDEFGH"[:len(be)]
    byte_of = dict(zip(names, be, strict=True))
    if order == "ABCD":
        layout = names
    elif order == "DCBA":
        layout = names[::-1]
    elif order == "BADC":
        layout = "".join(names[i + 1] + names[i] for i in range(0, len(names), 2))
    else:  # CDAB: words in reverse order, bytes inside a word as is
        layout = "".join(names[i:i + 2] for i in range(len(names) - 2, -1, -2))
    raw = bytes(byte_of[n] for n in layout)
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


def test_the_reference_layouts_are_the_usual_ones() -> None:
    assert wire_registers(0x11223344, "uint32", "ABCD") == [0x1122, 0x3344]
    assert wire_registers(0x11223344, "uint32", "CDAB") == [0x3344, 0x1122]
    assert wire_registers(0x11223344, "uint32", "BADC") == [0x2211, 0x4433]
    assert wire_registers(0x11223344, "uint32", "DCBA") == [0x4433, 0x2211]
    assert wire_registers(0x1122334455667788, "uint64", "CDAB") == [0x7788, 0x5566, 0x3344, 0x1122]


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
@pytest.mark.parametrize("data_type", list(VALUES))
def test_every_type_and_byte_order_decodes_and_encodes(data_type: str, order: str) -> None:
    value = VALUES[data_type]
    registers = wire_registers(value, data_type, order)
    decoded = decode(registers, data_type, order)
    if data_type == "float32":
        assert decoded == pytest.approx(value, rel=1e-7)
    else:
        assert decoded == value
    assert encode(value, data_type, order) == registers


def test_probe_table_shows_every_byte_order() -> None:
    table = all_byte_orders([0x4049, 0x0FDB], "float32")
    assert table["ABCD"] == pytest.approx(math.pi, rel=1e-6)
    assert set(table) == {"ABCD", "CDAB", "BADC", "DCBA"}


def test_scale_offset_nan_and_bad_input() -> None:
    assert scaled(4001, 0.01, -0.5) == pytest.approx(39.51)
    assert math.isnan(decode([0x7FC0, 0x0000], "float32"))
    assert math.isinf(decode([0x7F80, 0x0000], "float32"))
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode([1], "float32")
    with pytest.raises(ValueError, match="byte order"):
        decode([1, 2], "int32", "ABDC")
    assert exception_meaning(2).startswith("02 ILLEGAL DATA ADDRESS")


def a(address: int, **kw) -> ModbusAddress:
    return ModbusAddress(address=address, **kw)


def test_close_addresses_of_one_unit_and_table_merge() -> None:
    blocks = plan_reads([a(100, data_type="float32"), a(110, data_type="uint32"), a(102),
                         a(100, table="input"), a(100, unit=2)], merge_gap=8)
    summary = sorted((b.unit, b.table, b.start, b.count, len(b.tags)) for b in blocks)
    assert summary == [(1, "holding", 100, 12, 3), (1, "input", 100, 1, 1), (2, "holding", 100, 1, 1)]
    block = next(b for b in blocks if b.table == "holding" and b.unit == 1)
    registers = list(range(100, 112))
    by_index = {t.index: block.slice(registers, t) for t in block.tags}
    assert by_index == {0: [100, 101], 1: [110, 111], 2: [102]}


def test_far_addresses_and_limits_split_reads() -> None:
    assert len(plan_reads([a(0), a(20)], merge_gap=8)) == 2
    assert len(plan_reads([a(0), a(9)], merge_gap=8)) == 1
    regs = plan_reads([a(i * 4, data_type="float64") for i in range(100)], merge_gap=8)  # 400 registers
    assert [b.count for b in regs] == [124, 124, 124, 28] and all(b.count <= 125 for b in regs)
    bits = plan_reads([a(i, table="coil") for i in range(0, 5000, 2)], merge_gap=8)
    assert all(b.count <= 2000 for b in bits) and sum(len(b.tags) for b in bits) == 2500
    unmerged = plan_reads([a(0), a(1), a(2)], merge=False)
    assert [b.count for b in unmerged] == [1, 1, 1]


def test_float32_reads_as_its_shortest_decimal_and_scaling_adds_no_binary_noise() -> None:
    from gateway.sources.modbus.codec import decode, encode, scaled

    assert decode(encode(10.118341, "float32"), "float32") == 10.118341
    assert decode(encode(74.03, "float32", "CDAB"), "float32", "CDAB") == 74.03
    assert scaled(4001, 0.01) == 40.01
    assert scaled(-123, 0.1, 1.0) == -11.3
