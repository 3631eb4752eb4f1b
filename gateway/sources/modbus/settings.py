"""The `type: modbus` source in the config file: its settings, its address block, its sampling.

Read by gateway.config with the generic machinery (gateway.config.kinds.SourceKind); the running source
is gateway.sources.modbus.source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from yaml.nodes import Node

from gateway.config.connections import BACKOFF, HOST, PORT
from gateway.config.kinds import SourceKind
from gateway.config.loader import Convert, Reader, one_of, peek
from gateway.config.model import Backoff
from gateway.config.values import PATH_MAX, choice, duration, integer, number, section, text_of
from gateway.sources.counter_pair import either, pair_block, pair_counts

ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"]
ModbusTable = Literal["holding", "input", "coil", "discrete"]
INTEGER_TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64")
DATA_TYPES = (*INTEGER_TYPES, "float32", "float64", "bool")
REGISTERS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
             "float32": 2, "float64": 4, "bool": 1}
BIT_TABLES = ("coil", "discrete")
# how `spc-gateway probe` takes an address that no characteristic names
ADDRESS_FORM = "[UNIT/]TABLE:ADDRESS[:DATA_TYPE], e.g. holding:100:float32, 7/input:0:int16, coil:3, or 100"


@dataclass(frozen=True)
class ModbusSettings:
    """One `type: modbus` entry of `sources:`."""

    name: str
    type: Literal["modbus"] = "modbus"
    transport: Literal["tcp", "rtu"] = "tcp"
    host: str | None = None
    port: int = 502
    serial_port: str | None = None
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stop_bits: int = 1
    bytesize: int = 8
    poll_interval: float = 1.0
    timeout: float = 1.0
    request_delay: float = 0.0  # pause between two transactions on the same bus
    merge_gap: int = 8  # registers apart that are still merged into one read
    backoff: Backoff = Backoff()


@dataclass(frozen=True)
class ModbusAddress:
    """A characteristic's `modbus:` block (or its part counter)."""

    address: int
    unit: int = 1
    table: ModbusTable = "holding"
    data_type: DataType = "uint16"
    byte_order: ByteOrder = "ABCD"
    scale: float = 1.0
    offset: float = 0.0


SERIAL_KEYS = ("serial_port", "baudrate", "parity", "stop_bits", "bytesize")


def check_modbus(r: Reader, values: dict[str, Any], path: str) -> bool:
    transport = values.get("transport", "tcp")
    if "transport" not in values and r.marks.get(f"{path}.transport"):
        return True  # transport itself was wrong; the rest depends on it
    needed, foreign = ("host", SERIAL_KEYS) if transport == "tcp" else ("serial_port", ("host", "port"))
    passed = True
    if needed not in values and f"{path}.{needed}" not in r.marks:
        r.at(path, f"{needed} is required for transport {transport}", report_as=f"{path}.{needed}")
        passed = False
    for key in foreign:
        if f"{path}.{key}" in r.marks:
            other = "rtu" if transport == "tcp" else "tcp"
            r.at(f"{path}.{key}", f"{key} is for transport {other}, but this source is transport {transport}",
                 f"set transport: {other}, or remove {key}")
            passed = False
    return passed


SPEC = {
    "transport": choice("tcp", "rtu"), "host": HOST, "port": PORT,
    "serial_port": text_of(PATH_MAX), "baudrate": integer(300, 4_000_000), "parity": choice("N", "E", "O"),
    "stop_bits": integer(1, 2), "bytesize": integer(5, 8), "poll_interval": duration(),
    "timeout": duration(), "request_delay": duration(above=None, lo=0), "merge_gap": integer(0, 125),
    "backoff": BACKOFF,
}


def modbus_address(transport: str, *, counter: bool = False, default_unit: int = 1) -> Convert:
    """A Modbus register (or coil) address; a part counter must be a whole-number register."""
    def make(**values: Any) -> ModbusAddress:
        data_type = "bool" if values.get("table") in BIT_TABLES else "uint16"
        return ModbusAddress(**{"data_type": data_type, "unit": default_unit, **values})

    def check(r: Reader, values: dict[str, Any], path: str) -> bool:
        table, data_type = values.get("table", "holding"), values.get("data_type")
        problems = len(r.problems)
        if table in BIT_TABLES and data_type not in (None, "bool"):
            r.at(f"{path}.data_type", f"table {table} holds single bits, not {data_type}", "data_type: bool")
        elif table not in BIT_TABLES and data_type == "bool":
            r.at(f"{path}.data_type", f"bool is only for tables coil and discrete, not {table} registers",
                 one_of(DATA_TYPES[:-1]))
        if counter and (data_type or "uint16") not in INTEGER_TYPES:
            r.at(f"{path}.data_type" if data_type else path, "a part counter counts whole parts",
                 one_of(INTEGER_TYPES), report_as=f"{path}.data_type")
        count = REGISTERS.get(data_type or ("bool" if table in BIT_TABLES else "uint16"), 1)
        if "address" in values and values["address"] + count > 65536:
            r.at(f"{path}.address", f"{data_type} at {values['address']} needs {count} registers, past 65535",
                 f"at most {65536 - count}")
        if values.get("scale") == 0:
            r.at(f"{path}.scale", "scale 0 would turn every reading into the offset", "any number but 0")
        return len(r.problems) == problems

    unit = integer(1, 247) if transport == "rtu" else integer(0, 255)
    return section(make, {
        "unit": unit, "table": choice("holding", "input", "coil", "discrete"), "address": integer(0, 65535),
        "data_type": choice(*DATA_TYPES), "byte_order": choice("ABCD", "CDAB", "BADC", "DCBA"),
        "scale": number(), "offset": number(),
    }, required=("address",), check=check)


@dataclass(frozen=True)
class ModbusWrite:
    """Where an `outputs:` entry writes on a Modbus source: one coil, or a holding register (or a few)."""

    address: int
    table: Literal["coil", "holding"] = "coil"
    unit: int = 1
    data_type: DataType = "bool"
    byte_order: ByteOrder = "ABCD"
    value_on: float = 1.0  # what a register holds while the output is on (a coil: 1)
    value_off: float = 0.0


def write_target(context: object) -> Convert:
    """An output's `write:` block on a Modbus source: `coil: N`, or `register: N` with data_type/byte_order."""
    def make(source: str, coil: int | None = None, register: int | None = None, **values: Any) -> ModbusWrite:
        if coil is not None:
            return ModbusWrite(address=coil, **values)
        return ModbusWrite(address=register or 0, table="holding", **{"data_type": "uint16", **values})

    def check(r: Reader, values: dict[str, Any], path: str) -> bool:
        coil, register = "coil" in values or f"{path}.coil" in r.marks, "register" in values or \
            f"{path}.register" in r.marks
        if coil and register:
            r.at(f"{path}.register", "both coil and register are given: an output writes one place",
                 "coil: N, or register: N")
            return False
        if not coil and not register:
            r.at(path, "says neither coil nor register", "coil: N, or register: N with data_type",
                 report_as=f"{path}.coil")
            return False
        if coil:
            extra = [k for k in ("data_type", "byte_order", "value_on", "value_off") if f"{path}.{k}" in r.marks]
            if extra:
                r.at(f"{path}.{extra[0]}", f"{extra[0]} is for a register; a coil is on (1) or off (0)",
                     "remove it, or write to a register")
                return False
            return True
        data_type = values.get("data_type", "uint16")
        if data_type == "bool":
            r.at(f"{path}.data_type", "bool is for coils", one_of(DATA_TYPES[:-1]))
            return False
        count = REGISTERS[data_type]
        if "register" in values and values["register"] + count > 65536:
            r.at(f"{path}.register", f"{data_type} at {values['register']} needs {count} registers, past 65535",
                 f"at most {65536 - count}")
            return False
        for key in ("value_on", "value_off"):
            value = values.get(key)
            if value is not None and data_type in INTEGER_TYPES and not float(value).is_integer():
                r.at(f"{path}.{key}", f"{value:g} does not fit a {data_type} register", "a whole number")
                return False
        return True

    unit = integer(1, 247) if context == "rtu" else integer(0, 255)
    return section(make, {
        "source": text_of(64), "coil": integer(0, 65535), "register": integer(0, 65535), "unit": unit,
        "data_type": choice(*DATA_TYPES), "byte_order": choice("ABCD", "CDAB", "BADC", "DCBA"),
        "value_on": number(), "value_off": number(),
    }, required=("source",), check=check)


def transport(item: Node) -> object:
    """The source's transport as written (tcp when it is missing or wrong): the unit range depends on it."""
    value = peek(item, "transport")
    return value if value in ("tcp", "rtu") else "tcp"


def address(context: object) -> Convert:
    """A register that holds a measured value, or a counter pair (good and bad) for an attribute chart."""
    transport = str(context or "tcp")
    value = modbus_address(transport)

    def convert(r: Reader, node: Node, path: str) -> Any:
        unit = peek(node, "unit")  # the counters' unit unless they name their own
        counter = modbus_address(transport, counter=True, default_unit=unit if isinstance(unit, int) else 1)
        pair = pair_block(counter, {"unit": integer(1, 247) if transport == "rtu" else integer(0, 255)})
        return either(pair, value, "address")(r, node, path)
    return convert


def counter_address(context: object, block: Node | None) -> Convert:
    """A part counter's register; its unit defaults to the characteristic's own block's unit."""
    unit = peek(block, "unit")
    return modbus_address(str(context or "tcp"), counter=True, default_unit=unit if isinstance(unit, int) else 1)


KIND = SourceKind(
    type="modbus", label="Modbus", settings=ModbusSettings, spec=SPEC, required=("name",), check=check_modbus,
    address=address, sampling_modes=("on_change", "every_poll"), default_sampling="on_change", polled=True,
    context=transport, counter=counter_address,
    counter_example="{table: holding, address: 110, data_type: uint32}", write=write_target,
    counts=pair_counts, counts_example="{good: {address: 200, data_type: uint32}, bad: {address: 202, "
    "data_type: uint32}, sample_every: 50}",
)
