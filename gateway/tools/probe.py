"""`spc-gateway probe --config FILE SOURCE [ADDRESS]`: read one source (or one address) now.

For Modbus registers it prints the raw registers and the value under all four byte orders, so a
technician can pick the right `byte_order` at the machine. OPC UA (browse the Objects tree, or read a
node) and MQTT (listen to the configured topics, decode with the configured paths) are probed by
`gateway.sources.opcua.probe` and `gateway.sources.mqtt.probe`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import TextIO, cast

from gateway.config import (
    Characteristic,
    Config,
    ConfigError,
    DataType,
    ModbusAddress,
    ModbusTable,
    load_config,
)
from gateway.config import ModbusSource as ModbusSourceConfig
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

ADDRESS_FORM = "[UNIT/]TABLE:ADDRESS[:DATA_TYPE], e.g. holding:100:float32, 7/input:0:int16, coil:3, or 100"
_ADDRESS = re.compile(r"^(?:(?P<unit>\d+)/)?(?:(?P<table>holding|input|coil|discrete):)?(?P<address>\d+)"
                      r"(?::(?P<type>[a-z0-9]+))?$")
MULTI_TYPES = ("int32", "uint32", "float32", "int64", "uint64", "float64")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The probe command's arguments."""
    parser.add_argument("--config", required=True, help="configuration file")
    parser.add_argument("source", help="name of a source in the configuration")
    parser.add_argument("address", nargs="?", default=None,
                        help=f"a characteristic name, or: Modbus {ADDRESS_FORM}; OPC UA a node id (a variable "
                             "is read, an object browsed); MQTT a topic. Without it: Modbus every "
                             "characteristic of the source, OPC UA the server's Objects tree, MQTT the "
                             "configured topics.")
    parser.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                        help="MQTT: how long to listen for a message (default 5)")


def run(args: argparse.Namespace) -> int:
    """Probe and print; 0 when something was read, 1 when the input is wrong or the read failed."""
    out: TextIO = sys.stdout
    try:
        config, _warnings = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.config}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    names = [s.name for s in config.sources]
    if args.source not in names:
        print(f"no source named {args.source!r} in {args.config} (sources: {', '.join(names) or 'none'})",
              file=sys.stderr)
        return 1
    return asyncio.run(probe_source(config, args.source, args.address, out, wait=args.wait))


async def probe_source(config: Config, source_name: str, address: str | None, out: TextIO, *,
                       wait: float = 5.0) -> int:
    """Probe one source of a loaded config; returns the exit status."""
    source_cfg = config.source(source_name)
    if source_cfg.type == "modbus":
        return await probe_modbus(config, source_cfg, address, out)
    if source_cfg.type == "opcua":
        from gateway.sources.opcua import probe as probe_opcua

        return await probe_opcua.probe(config, source_cfg, address, out)
    if source_cfg.type == "mqtt":
        from gateway.sources.mqtt import probe as probe_mqtt

        return await probe_mqtt.probe(config, source_cfg, address, out, wait=wait)
    out.write(f"{source_name}: probe cannot read a source of type {source_cfg.type!r} "
              "(it reads modbus, opcua and mqtt)\n")
    return 1


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


def _characteristics(config: Config, source_name: str) -> list[Characteristic]:
    return [c for p in config.products for c in p.characteristics if c.source == source_name]


async def probe_modbus(config: Config, source_cfg: ModbusSourceConfig, address: str | None, out: TextIO) -> int:
    """Read Modbus addresses once and print raw registers and every byte order."""
    from gateway.sources.modbus.source import ModbusSource

    targets: list[tuple[str, ModbusAddress, bool]] = []  # label, address, data type given?
    characteristics = _characteristics(config, source_cfg.name)
    if address is None:
        for c in characteristics:
            if c.modbus is not None:
                targets.append((c.name, c.modbus, True))
                counter = c.sampling.counter
                if isinstance(counter, ModbusAddress):
                    targets.append((f"{c.name} (part counter)", counter, True))
        if not targets:
            out.write(f"{source_cfg.name}: no characteristic reads from this source\n")
            return 1
    else:
        named = next((c for c in characteristics if c.name == address and c.modbus), None)
        try:
            parsed = named.modbus if named else parse_address(address)
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
