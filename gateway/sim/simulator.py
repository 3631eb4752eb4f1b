"""A line simulator: gauges with scheduled disturbances, served over real Modbus TCP.

`Gauge` is pure and deterministic with a seed, so every run rule and every fault can be produced on
demand. `ModbusSimulator` serves gauges as float32 holding registers plus a uint32 part counter;
`python -m gateway.sim.simulator --modbus-port N` runs it standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gateway.core.listen_error import ListenError, check_bindable
from gateway.sources.modbus.codec import encode

log = logging.getLogger(__name__)

DISTURBANCE_KINDS = ("shift", "trend", "variance", "alternate", "stuck", "drop")


@dataclass(frozen=True)
class Disturbance:
    """Something that happens to a gauge for `length` parts from part number `start` (0-based).

    size, by kind: shift: mean moves by size x sigma; trend: the mean drifts size x sigma per part;
    variance: sigma is multiplied by size; alternate: parts alternate +/- size x sigma around the mean;
    stuck: the gauge repeats its last value (size unused); drop: the connection drops (size unused;
    parts are still made, as on a real line, but nobody can read them).
    """

    kind: str
    start: int
    length: int
    size: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in DISTURBANCE_KINDS:
            raise ValueError(f"unknown disturbance {self.kind!r} (allowed: {', '.join(DISTURBANCE_KINDS)})")
        if self.start < 0 or self.length < 1:
            raise ValueError(f"disturbance {self.kind}: start must be >= 0 and length >= 1")
        if self.kind == "variance" and self.size <= 0:
            raise ValueError("disturbance variance: size is the sigma factor and must be > 0")

    def active(self, part: int) -> bool:
        """Does this disturbance act on part number `part`?"""
        return self.start <= part < self.start + self.length


class Gauge:
    """One gauge on the line: normal readings around a mean, plus scheduled disturbances."""

    def __init__(self, mean: float, sigma: float, seed: int | None = None):
        if sigma < 0:
            raise ValueError("sigma must be >= 0")
        self.mean, self.sigma = float(mean), float(sigma)
        self._random = random.Random(seed)
        self.disturbances: list[Disturbance] = []
        self.part_counter = 0  # parts made so far; the PLC's "measurement done" counter
        self.value: float = float(mean)  # the latest reading

    def schedule(self, disturbance: Disturbance) -> None:
        """Add a disturbance; several may overlap and then add up."""
        self.disturbances.append(disturbance)

    @property
    def dropped(self) -> bool:
        """Is the connection dropped for the next part (a `drop` disturbance is active)?"""
        return any(d.kind == "drop" and d.active(self.part_counter) for d in self.disturbances)

    def next(self) -> float:
        """Make one new part and return its reading; increments `part_counter`."""
        part = self.part_counter
        active = [d for d in self.disturbances if d.active(part)]
        self.part_counter += 1
        # The noise is always drawn, so a disturbance does not shift the random stream of later parts.
        noise = self._random.gauss(0.0, 1.0)
        if any(d.kind == "stuck" for d in active):
            return self.value
        mean, sigma = self.mean, self.sigma
        for d in active:
            if d.kind == "shift":
                mean += d.size * self.sigma
            elif d.kind == "trend":
                mean += d.size * self.sigma * (part - d.start + 1)
            elif d.kind == "variance":
                sigma *= d.size
            elif d.kind == "alternate":
                mean += d.size * self.sigma * (1 if (part - d.start) % 2 == 0 else -1)
        self.value = mean + sigma * noise
        return self.value


# ---------------------------------------------------------------- a PLC's register map, served by pymodbus

_FUNCTION_TABLES = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding",
                    16: "holding", 23: "holding", 4: "input"}


class PlcMemory:
    """The register map of simulated units; an address never set answers 02 ILLEGAL DATA ADDRESS.

    A unit not in the map never answers (a dead unit on an RS-485 bus), because the server runs with
    `ignore_missing_devices`.
    """

    def __init__(self, units: tuple[int, ...] = (1,)):
        self.units: dict[int, dict[str, dict[int, int]]] = {}
        for unit in units:
            self.add_unit(unit)
        self.requests = 0  # requests answered, all units (benchmarks, tests)

    def add_unit(self, unit: int) -> None:
        """Make `unit` answer (with an empty map)."""
        self.units.setdefault(unit, {"holding": {}, "input": {}, "coil": {}, "discrete": {}})

    def define(self, unit: int, table: str, start: int, count: int) -> None:
        """Declare addresses start..start+count-1 as existing (zero where not yet set)."""
        self.add_unit(unit)
        cells = self.units[unit][table]
        for address in range(start, start + count):
            cells.setdefault(address, 0)

    def remove_unit(self, unit: int) -> None:
        """Make `unit` go silent, as if its cable were cut."""
        self.units.pop(unit, None)

    def set_registers(self, unit: int, table: str, address: int, registers: list[int]) -> None:
        """Store raw 16-bit registers (or 0/1 bits for coil/discrete) from `address` on."""
        self.add_unit(unit)
        cells = self.units[unit][table]
        for i, register in enumerate(registers):
            cells[address + i] = int(register) & 0xFFFF

    def set_value(self, unit: int, table: str, address: int, value: float, data_type: str = "float32",
                  byte_order: str = "ABCD") -> None:
        """Store a value as a device would, in `data_type` and `byte_order`."""
        if table in ("coil", "discrete"):
            self.set_registers(unit, table, address, [1 if value else 0])
        else:
            self.set_registers(unit, table, address, encode(value, data_type, byte_order))

    def device_ids(self) -> list[int]:
        """Units that answer (pymodbus server context interface)."""
        return list(self.units)

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):
        """Read for the pymodbus server: registers, bits, an exception code, or silence."""
        if device_id not in self.units:
            raise NoSuchIdException(f"unit {device_id} is silent")
        table = _FUNCTION_TABLES.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        cells = self.units[device_id][table]
        try:
            values = [cells[address + i] for i in range(count)]
        except KeyError:
            return ExcCodes.ILLEGAL_ADDRESS
        self.requests += 1
        return [bool(v) for v in values] if table in ("coil", "discrete") else values

    async def async_setValues(self, device_id: int, func_code: int, address: int, values) -> object:
        """Write for the pymodbus server (so `probe` and tests can also write)."""
        if device_id not in self.units:
            raise NoSuchIdException(f"unit {device_id} is silent")
        table = _FUNCTION_TABLES.get(func_code)
        if table not in ("coil", "holding"):
            return ExcCodes.ILLEGAL_FUNCTION
        self.set_registers(device_id, table, address, [int(v) for v in values])
        return None


@dataclass
class ServedGauge:
    """A gauge served at a float32 holding register, with its uint32 part counter."""

    gauge: Gauge
    unit: int
    address: int
    counter_address: int


def _placeholder_device():
    # pymodbus servers insist on a SimDevice at construction; PlcMemory replaces it right after.
    return SimDevice(id=0, simdata=[SimData(0, values=0, datatype=DataType.REGISTERS)])


class ModbusSimulator:
    """A PLC on loopback (TCP) or on a serial port (RTU) serving `PlcMemory` and a line of gauges."""

    def __init__(self, memory: PlcMemory | None = None, *, host: str = "127.0.0.1", port: int = 5020,
                 serial_port: str | None = None, baudrate: int = 19200):
        self.memory = memory or PlcMemory()
        self.host, self.port = host, port
        self.serial_port, self.baudrate = serial_port, baudrate
        self.gauges: list[ServedGauge] = []
        self._server: ModbusSerialServer | ModbusTcpServer | None = None
        self._line_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Is the server accepting requests?"""
        return self._server is not None

    def add_gauge(self, gauge: Gauge, *, unit: int = 1, address: int = 100,
                  counter_address: int | None = None) -> ServedGauge:
        """Serve a gauge: its latest reading at `address` (float32 ABCD), its counter (uint32 ABCD)."""
        served = ServedGauge(gauge, unit, address, address + 10 if counter_address is None else counter_address)
        self.gauges.append(served)
        # A PLC data block has no holes: everything up to the gauge exists, so merged reads succeed.
        self.memory.define(unit, "holding", 0, max(served.address, served.counter_address) + 2)
        self._publish(served)
        return served

    def _publish(self, served: ServedGauge) -> None:
        # The value first, then the counter: a PLC signals "measurement done" after the value is in place.
        self.memory.set_value(served.unit, "holding", served.address, served.gauge.value, "float32")
        self.memory.set_value(served.unit, "holding", served.counter_address,
                              served.gauge.part_counter & 0xFFFFFFFF, "uint32")

    def make_parts(self) -> None:
        """Every gauge measures one new part now."""
        for served in self.gauges:
            served.gauge.next()
            self._publish(served)

    async def start(self) -> None:
        """Listen (TCP) or open the serial port (RTU); ListenError when the TCP port is taken."""
        if self._server is not None:
            return
        if not self.serial_port:
            # pymodbus only says "Could not start listen": find out why ourselves, in one line
            check_bindable("Modbus simulator", self.host, self.port)
        server: ModbusSerialServer | ModbusTcpServer
        if self.serial_port:
            server = ModbusSerialServer(_placeholder_device(), framer=FramerType.RTU, port=self.serial_port,
                                        baudrate=self.baudrate, ignore_missing_devices=True)
        else:
            server = ModbusTcpServer(_placeholder_device(), address=(self.host, self.port),
                                     ignore_missing_devices=True)
        server.context = self.memory  # type: ignore[assignment]
        await server.serve_forever(background=True)
        self._server = server

    async def stop(self) -> None:
        """Stop serving and drop every client connection (a PLC reboot or a pulled cable)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    async def run_line(self, part_interval: float = 1.0, parts: int | None = None) -> None:
        """Make parts every `part_interval`; a `drop` disturbance takes the server down meanwhile."""
        made = 0
        while parts is None or made < parts:
            dropped = any(g.gauge.dropped for g in self.gauges)
            if dropped and self.running:
                log.info("simulator: connection dropped (disturbance)")
                await self.stop()
            elif not dropped and not self.running:
                await self.start()
            self.make_parts()
            made += 1
            await asyncio.sleep(part_interval)

    def start_line(self, part_interval: float = 1.0) -> None:
        """Run `run_line` in the background until `stop_line`."""
        self._line_task = asyncio.create_task(self.run_line(part_interval), name="simulator-line")

    async def stop_line(self) -> None:
        """Stop making parts."""
        if self._line_task is not None:
            self._line_task.cancel()
            try:
                await self._line_task
            except asyncio.CancelledError:
                pass
            self._line_task = None


def parse_disturbance(text: str) -> Disturbance:
    """'shift:50:20:2' -> Disturbance('shift', start=50, length=20, size=2.0)."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND:START:LENGTH[:SIZE]")
    try:
        return Disturbance(parts[0], int(parts[1]), int(parts[2]), float(parts[3]) if len(parts) == 4 else 0.0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    """The standalone simulator's command line."""
    p = argparse.ArgumentParser(prog="python -m gateway.sim.simulator", description=(
        "Serve simulated gauges over Modbus TCP. Gauge i (0-based) is a float32 ABCD holding register at "
        "100 + 20*i with its uint32 part counter at 110 + 20*i, unit 1."))
    p.add_argument("--modbus-port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--gauges", type=int, default=1)
    p.add_argument("--mean", type=float, default=10.0)
    p.add_argument("--sigma", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--part-interval", type=float, default=1.0, help="seconds between parts")
    p.add_argument("--disturbance", type=parse_disturbance, action="append", default=[],
                   help="KIND:START:LENGTH[:SIZE], kinds: " + ", ".join(DISTURBANCE_KINDS))
    return p


async def _serve(args: argparse.Namespace) -> None:
    sim = ModbusSimulator(host=args.host, port=args.modbus_port)
    sim.memory.define(1, "holding", 0, 100 + 20 * args.gauges)  # a PLC data block: no holes
    for i in range(args.gauges):
        gauge = Gauge(args.mean, args.sigma, seed=None if args.seed is None else args.seed + i)
        for disturbance in args.disturbance:
            gauge.schedule(disturbance)
        sim.add_gauge(gauge, address=100 + 20 * i, counter_address=110 + 20 * i)
    await sim.start()
    print(f"modbus simulator on {args.host}:{args.modbus_port}, {args.gauges} gauge(s)", flush=True)
    try:
        await sim.run_line(args.part_interval)
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except ListenError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
