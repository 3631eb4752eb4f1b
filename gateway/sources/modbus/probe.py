"""`spc-gateway probe` for a Modbus source: raw registers and the value under all four byte orders.

So a technician can pick the right `byte_order` at the machine: without an address every
characteristic of the source (and its part counter) is read, or one address given as ADDRESS_FORM.
"""

from __future__ import annotations

import re
from typing import TextIO, cast

from gateway.config import Config
from gateway.sources.counter_pair import CounterPair
from gateway.sources.modbus.codec import (
    BIT_TABLES,
    BYTE_ORDERS,
    DATA_TYPES,
    ReadBlock,
    Tag,
    all_byte_orders,
    exception_meaning,
    register_count,
    scaled,
)
from gateway.sources.modbus.settings import ADDRESS_FORM, DataType, ModbusAddress, ModbusSettings, ModbusTable
from gateway.sources.modbus.source import ModbusSource
from gateway.sources.plugin import characteristics_of

_ADDRESS = re.compile(r"^(?:(?P<unit>\d+)/)?(?:(?P<table>holding|input|coil|discrete):)?(?P<address>\d+)"
                      r"(?::(?P<type>[a-z0-9]+))?$")
MULTI_TYPES = ("int32", "uint32", "float32", "int64", "uint64", "float64")


def parse_address(text: str) -> ModbusAddress | None:
    """'7/input:0:int16' -> ModbusAddress; None when the text is not an address."""
    match = _ADDRESS.match(text.strip())
    if not match:
        return None
    data_type = match["type"] or ("bool" if match["table"] in BIT_TABLES else "uint16")
    if data_type not in DATA_TYPES:
        raise ValueError(f"unknown data type {data_type!r} (allowed: {', '.join(DATA_TYPES)})")
    unit, first, table = int(match["unit"] or 1), int(match["address"]), match["table"] or "holding"
    # checked here, as check-config does: the library's own refusal reads like a timeout
    if not 0 <= unit <= 255:
        raise ValueError(f"unit {unit} is outside 0..255 (RTU: 1..247)")
    last = first + (1 if table in BIT_TABLES else register_count(data_type)) - 1
    if last > 65535:
        raise ValueError(f"address {first} is outside 0..65535" if first > 65535 else
                         f"{data_type} at {first} needs registers up to {last}, past 65535")
    # the pattern admits only the four tables; data_type was checked against DATA_TYPES above
    return ModbusAddress(address=first, unit=unit, table=cast(ModbusTable, table),
                         data_type=cast(DataType, data_type))


async def probe_modbus(config: Config, source_cfg: ModbusSettings, address: str | None, out: TextIO) -> int:
    """Read Modbus addresses once and print raw registers and every byte order."""
    targets: list[tuple[str, ModbusAddress, bool]] = []  # label, address, data type given?
    characteristics = characteristics_of(config, source_cfg.name)
    if address is None:
        for c in characteristics:
            if isinstance(c.address, ModbusAddress):
                targets.append((c.name, c.address, True))
                counter = c.sampling.counter
                if isinstance(counter, ModbusAddress):
                    targets.append((f"{c.name} (part counter)", counter, True))
            elif isinstance(c.address, CounterPair):  # count data: both counters
                for side, counter in (("good", c.address.good), ("bad", c.address.bad)):
                    if isinstance(counter, ModbusAddress):
                        targets.append((f"{c.name} ({side} counter)", counter, True))
        if not targets:
            out.write(f"{source_cfg.name}: no characteristic reads from this source\n")
            return 1
    else:
        named = next((c.address for c in characteristics
                      if c.name == address and isinstance(c.address, ModbusAddress)), None)
        try:
            parsed = named if named else parse_address(address)
        except ValueError as exc:
            out.write(f"{address}: {exc}\n")
            return 1
        if parsed is None:
            out.write(f"{address}: not a characteristic of {source_cfg.name} nor an address ({ADDRESS_FORM})\n")
            return 1
        match = _ADDRESS.match(address.strip())
        given = named is not None or parsed.table in BIT_TABLES or bool(match and match["type"])
        targets.append((address, parsed, given))

    reader = ModbusSource(source_cfg, [], _discard)
    client = reader.make_client()
    try:
        if not await client.connect():
            out.write(f"{source_cfg.name}: cannot connect to {reader.where()}\n")
            return 1
        status = 0
        for label, target, given in targets:
            status |= await _probe_one(reader, client, label, target, given, out)
        return status
    finally:
        client.close()


async def _discard(_measurement: object) -> None:
    return None


async def _read(reader, client, target: ModbusAddress, count: int) -> tuple[list | None, str | None]:
    block = ReadBlock(target.unit, target.table, target.address, count, [Tag(0, target)])
    try:
        response = await reader.transact(client, block)
    except Exception as exc:  # a timeout or a lost connection: say so, as a technician reads it
        text = "no answer" if "No response" in str(exc) else str(exc)
        return None, f"{block}: {text} (timeout {reader.config.timeout}s)"
    if response.isError():
        return None, f"{block}: Modbus exception {exception_meaning(response.exception_code)}"
    values = response.bits if target.table in BIT_TABLES else response.registers
    return list(values[:count]), None


async def _probe_one(reader, client, label: str, target: ModbusAddress, given: bool, out: TextIO) -> int:
    where = f"unit {target.unit} {target.table} {target.address}"
    if target.table in BIT_TABLES:
        bits, error = await _read(reader, client, target, 1)
        if bits is None:
            out.write(f"{label}: {error}\n")
            return 1
        out.write(f"{label}: {where} = {int(bool(bits[0]))}\n")
        return 0
    if given:
        registers, error = await _read(reader, client, target, register_count(target.data_type))
    else:
        # No data type given: read as much as a 64-bit value needs, or less at the end of the map.
        registers, error = None, None
        for count in (4, 2, 1):
            registers, error = await _read(reader, client, target, count)
            if registers is not None:
                break
    if registers is None:
        out.write(f"{label}: {error}\n")
        return 1
    hex_words = " ".join(f"{r:04X}" for r in registers)
    out.write(f"{label}: {where}  raw registers {registers}  hex {hex_words}\n")
    if given:
        value = all_byte_orders(registers, target.data_type)[target.byte_order]
        out.write(f"  configured {target.data_type} {target.byte_order}: "
                  f"{_number(scaled(value, target.scale, target.offset))}"
                  f"{'' if (target.scale, target.offset) == (1.0, 0.0) else f'  (raw {_number(value)})'}\n")
        types: list[str] = [target.data_type] if register_count(target.data_type) > 1 else []
    else:
        out.write(f"  uint16 {registers[0]}  int16 {all_byte_orders(registers[:1], 'int16')['ABCD']}\n")
        types = [t for t in MULTI_TYPES if register_count(t) <= len(registers)]
    if types:
        out.write("  " + "type".ljust(9) + "".join(order.rjust(24) for order in BYTE_ORDERS) + "\n")
    for data_type in types:
        decoded = all_byte_orders(registers[:register_count(data_type)], data_type)
        out.write("  " + data_type.ljust(9) + "".join(_number(decoded[o]).rjust(24) for o in BYTE_ORDERS)
                  + "\n")
    return 0


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.9g}"
