"""Modbus TCP and RTU gauge source: merged reads, one transaction at a time, per-unit backoff.

On a shared RS-485 bus one dead unit must not stall the others: a unit that times out is skipped
with its own backoff (1 s -> 30 s, jitter) while the others keep being polled, and the per-request
timeout is the source's (short) `timeout`. Reconnects of the port/socket use our own backoff; the
pymodbus client never reconnects or retries by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer import FramerType

from gateway.core.model import Measurement
from gateway.core.ratelog import RateLimitedLog
from gateway.sources.base import Backoff, Binding, Sink, Source
from gateway.sources.counter_pair import CounterPair
from gateway.sources.counting import PairFeed
from gateway.sources.modbus.codec import (
    BIT_TABLES,
    ReadBlock,
    decode,
    encode,
    exception_meaning,
    is_good,
    plan_reads,
    scaled,
)
from gateway.sources.modbus.settings import REGISTERS, ModbusAddress, ModbusSettings, ModbusWrite
from gateway.sources.sampling import Sampler

log = logging.getLogger("gateway.sources.modbus")  # the logger's name from before the package
# We log Modbus problems ourselves, rate-limited; pymodbus would log every timeout of a dead unit with
# hex frames. A level set explicitly (for debugging) is left alone.
if logging.getLogger("pymodbus").level == logging.NOTSET:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

LOG_EVERY = 60.0  # seconds between two log lines about the same recurring problem
CLOCK_JUMP = 2.0  # seconds of disagreement between wall clock and monotonic clock that we report
_NO_AUTO_DISCONNECT = 1 << 30  # we decide when a socket is dead, not pymodbus's no-response counter


def _raise_if_cancelled() -> None:
    # Python 3.11's asyncio.wait_for (inside pymodbus) swallows a cancel that arrives as the response
    # does; the task then polls on forever and stop() hangs. A pending cancel request is honoured here.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class ClockWatch:
    """Detects wall-clock steps (NTP step, RTC reset after a power cut) against the monotonic clock."""

    def __init__(self) -> None:
        self._wall, self._mono = time.time(), time.monotonic()

    def check(self) -> float:
        """Returns the step in seconds since the last call (0.0 when none)."""
        wall, mono = time.time(), time.monotonic()
        step = (wall - self._wall) - (mono - self._mono)
        self._wall, self._mono = wall, mono
        return step if abs(step) >= CLOCK_JUMP else 0.0


@dataclass
class _Reading:
    """One bound characteristic: where its value (and counter) is, and its sampler."""

    binding: Binding
    value_tag: int
    counter_tag: int | None
    sampler: Sampler


@dataclass
class _Unit:
    """One Modbus unit (slave id) on the bus, backed off on its own when it does not answer."""

    unit: int
    blocks: list[ReadBlock]
    backoff: Backoff
    retry_at: float = 0.0  # monotonic; 0 = poll now
    timeouts: int = 0
    last_error: str | None = None
    state: str = "ok"  # ok | backed_off

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "timeouts": self.timeouts, "last_error": self.last_error}


@dataclass
class _Cycle:
    """What one poll over all units brought back."""

    values: dict[int, list] = field(default_factory=dict)  # tag index -> registers or bits
    attempts: int = 0
    answers: int = 0  # any response, exception responses included


class ModbusSource(Source):
    """Polls Modbus TCP or RTU units and feeds one measurement per new part."""

    config: ModbusSettings

    def __init__(self, config: ModbusSettings, bindings: list[Binding], sink: Sink, *, merge: bool = True):
        super().__init__(config, bindings, sink)
        addresses: list[ModbusAddress] = []
        self.readings: list[_Reading] = []
        self.pairs: list[tuple[PairFeed, int, int]] = []  # counter pairs: (feed, good tag, bad tag)
        for binding in bindings:
            characteristic = binding.characteristic
            if isinstance(characteristic.address, CounterPair):
                good, bad = characteristic.address.good, characteristic.address.bad
                if not isinstance(good, ModbusAddress) or not isinstance(bad, ModbusAddress):
                    raise ValueError(f"{binding.key}: a counter pair needs modbus counter addresses")
                addresses += [good, bad]
                feed = PairFeed(binding, characteristic.address, config.name, self.health, log)
                self.pairs.append((feed, len(addresses) - 2, len(addresses) - 1))
                continue
            if not isinstance(characteristic.address, ModbusAddress):
                raise ValueError(f"{binding.key}: characteristic has no modbus address")
            addresses.append(characteristic.address)
            counter_tag = None
            if characteristic.sampling.mode == "part_counter":
                counter = characteristic.sampling.counter
                if not isinstance(counter, ModbusAddress):
                    raise ValueError(f"{binding.key}: part_counter sampling needs a modbus counter address")
                addresses.append(counter)
                counter_tag = len(addresses) - 1
            self.readings.append(_Reading(binding, len(addresses) - 1 - (counter_tag is not None),
                                          counter_tag, Sampler(characteristic.sampling.mode)))
        self.addresses = addresses
        blocks = plan_reads(addresses, config.merge_gap, merge=merge)
        self.units: dict[int, _Unit] = {}
        for block in blocks:
            if block.unit not in self.units:
                self.units[block.unit] = _Unit(block.unit, [], Backoff(config.backoff.initial,
                                                                        config.backoff.maximum))
            self.units[block.unit].blocks.append(block)
        # One transaction at a time on this source's port/socket (the poll loop and probe share it).
        self._bus = asyncio.Lock()
        self._next_request_at = 0.0  # monotonic: request_delay between two transactions on the bus
        self._log = RateLimitedLog(log, LOG_EVERY)
        self._clock = ClockWatch()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None  # while connected
        self.health.details.update(requests=0, timeouts=0, exceptions=0, missed_parts=0, units={})

    # ------------------------------------------------------------ connection

    def make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        cfg = self.config
        if cfg.transport == "rtu":
            if not cfg.serial_port:
                raise ValueError(f"source {cfg.name}: transport rtu needs serial_port")
            client: AsyncModbusTcpClient | AsyncModbusSerialClient = AsyncModbusSerialClient(
                cfg.serial_port, framer=FramerType.RTU, baudrate=cfg.baudrate, bytesize=cfg.bytesize,
                parity=cfg.parity, stopbits=cfg.stop_bits, timeout=cfg.timeout, retries=0, reconnect_delay=0)
        else:
            if not cfg.host:
                raise ValueError(f"source {cfg.name}: transport tcp needs host")
            client = AsyncModbusTcpClient(cfg.host, port=cfg.port, timeout=cfg.timeout, retries=0,
                                          reconnect_delay=0)
        client.set_max_no_responses(_NO_AUTO_DISCONNECT)
        return client

    def where(self) -> str:
        cfg = self.config
        return str(cfg.serial_port) if cfg.transport == "rtu" else f"{cfg.host}:{cfg.port}"

    # The reconnect loop is Source.run: connect, serve (poll every poll_interval), close, back off.

    async def connect(self) -> Any:
        client = self.make_client()
        try:
            if not await client.connect():
                raise ConnectionError(f"cannot connect to {self.where()}")
        except BaseException:
            client.close()
            raise
        for unit in self.units.values():  # a fresh connection: every unit gets a chance at once
            unit.retry_at = 0.0
        self._client = client
        if self.health.reconnects:
            log.info("modbus %s: connected again to %s", self.config.name, self.where())
        return client

    async def serve(self, connection: Any, backoff: Backoff) -> None:
        await self._poll_forever(connection, backoff)

    async def close(self, connection: Any) -> None:
        if self._client is connection:
            self._client = None
        connection.close()

    def report(self, exc: Exception) -> None:
        # a bus that stays down fails on every attempt: one line a minute, with the count held back
        self._log(logging.WARNING, "connection", "modbus %s: %s", self.config.name, self.health.last_error)

    # ------------------------------------------------------------ polling

    async def _poll_forever(self, client, backoff: Backoff) -> None:
        interval = self.config.poll_interval
        next_poll = time.monotonic()
        while True:
            if not client.connected:  # also a source that only writes outputs notices a lost link
                raise ConnectionError(f"connection to {self.where()} lost")
            cycle = await self.poll_once(client)
            if cycle.answers:
                backoff.reset()
            elif cycle.attempts and self.config.transport == "tcp":
                # A TCP socket that carries no answer at all looks up but is dead (cable pull,
                # PLC reboot behind a switch): reconnect rather than wait forever.
                raise ConnectionError(f"no answer from {self.where()} within {self.config.timeout}s")
            step = self._clock.check()
            if step:
                log.warning("modbus %s: wall clock stepped by %+.1f s (NTP or RTC); receive times jump",
                            self.config.name, step)
            next_poll += interval
            delay = next_poll - time.monotonic()
            if delay < 0:  # overran: skip the missed polls rather than burst to catch up
                next_poll = time.monotonic()
                delay = 0
            if not cycle.attempts:  # every unit is backed off: sleep until the first is due, not spin
                first_due = min(u.retry_at for u in self.units.values()) if self.units else next_poll + 1.0
                delay = max(delay, min(first_due - time.monotonic(), self.config.backoff.maximum))
            await asyncio.sleep(delay)

    async def poll_once(self, client) -> _Cycle:
        """Read every unit that is not backed off, then feed what is new."""
        cycle = _Cycle()
        now = time.monotonic()
        for unit in self.units.values():
            if now < unit.retry_at:
                continue
            await self._read_unit(client, unit, cycle)
        self.health.details["units"] = {u.unit: u.as_dict() for u in self.units.values()}
        await self._feed(cycle)
        return cycle

    async def _read_unit(self, client, unit: _Unit, cycle: _Cycle) -> None:
        for block in list(unit.blocks):
            cycle.attempts += 1
            try:
                response = await self.transact(client, block)
            except ModbusIOException as exc:  # no (valid) answer within timeout: this unit only
                if not client.connected:
                    raise ConnectionError(f"connection lost: {exc}") from None
                self._unit_failed(unit, block, "no answer" if "No response" in str(exc) else str(exc))
                return
            cycle.answers += 1
            if response.isError():
                self._exception(unit, block, response.exception_code)
                continue
            values = response.bits if block.table in BIT_TABLES else response.registers
            for tag in block.tags:
                cycle.values[tag.index] = block.slice(values, tag)
        if unit.state != "ok":
            log.info("modbus %s: unit %d answers again", self.config.name, unit.unit)
        unit.state, unit.retry_at = "ok", 0.0
        unit.backoff.reset()

    async def transact(self, client, block: ReadBlock):
        """One request on the bus; never two at once on a port/socket, with request_delay between."""
        _raise_if_cancelled()
        if not client.connected:
            raise ConnectionException(f"not connected to {self.where()}")
        async with self._bus:
            wait = self._next_request_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                self.health.details["requests"] = int(self.health.details["requests"]) + 1  # type: ignore
                if block.table == "holding":
                    return await client.read_holding_registers(block.start, count=block.count,
                                                               device_id=block.unit)
                if block.table == "input":
                    return await client.read_input_registers(block.start, count=block.count,
                                                             device_id=block.unit)
                if block.table == "coil":
                    return await client.read_coils(block.start, count=block.count, device_id=block.unit)
                return await client.read_discrete_inputs(block.start, count=block.count, device_id=block.unit)
            finally:
                self._next_request_at = time.monotonic() + self.config.request_delay

    async def write(self, target: object, on: bool) -> None:
        """An output's coil (1/0) or holding register(s) (value_on/value_off), between two polls."""
        if not isinstance(target, ModbusWrite):
            raise TypeError(f"{self.config.name}: not a Modbus output: {target!r}")
        client = self._client
        if client is None or not client.connected:
            raise ConnectionError(f"not connected to {self.where()}")
        async with self._bus:
            wait = self._next_request_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if target.table == "coil":
                    response = await client.write_coil(target.address, on, device_id=target.unit)
                else:
                    value = target.value_on if on else target.value_off
                    response = await client.write_registers(
                        target.address, encode(value, target.data_type, target.byte_order), device_id=target.unit)
            except ModbusIOException as exc:
                if not self.units:  # nothing is polled that would notice a dead socket: reconnect now
                    client.close()
                raise ConnectionError(f"no answer from unit {target.unit}: {exc}") from None
            finally:
                self._next_request_at = time.monotonic() + self.config.request_delay
        if response.isError():
            where = f"{target.table} {target.address} of unit {target.unit}"
            raise ValueError(f"{where}: Modbus exception {exception_meaning(response.exception_code)}")

    def _unit_failed(self, unit: _Unit, block: ReadBlock, why: str) -> None:
        delay = unit.backoff.next_delay()
        unit.retry_at = time.monotonic() + delay
        unit.timeouts += 1
        unit.state = "backed_off"
        unit.last_error = f"{block}: {why}"
        self.health.details["timeouts"] = int(self.health.details["timeouts"]) + 1  # type: ignore
        self.health.last_error = f"unit {unit.unit}: {why}"
        self._log(logging.WARNING, f"unit{unit.unit}", "modbus %s: %s: %s; unit retried in %.1f s, "
                  "other units keep being read", self.config.name, block, why, delay)

    def _exception(self, unit: _Unit, block: ReadBlock, code: int) -> None:
        meaning = exception_meaning(code)
        self.health.details["exceptions"] = int(self.health.details["exceptions"]) + 1  # type: ignore
        self.health.last_error = f"{block}: Modbus exception {meaning}"
        self._log(logging.WARNING, f"exc:{block}:{code}", "modbus %s: %s: Modbus exception %s",
                  self.config.name, block, meaning)
        if code == 2 and len(block.tags) > 1:
            # A merged read over a hole in the device's map: read these tags one by one from now on.
            split = plan_reads([t.address for t in block.tags], merge=False)
            for piece, tag in zip(split, block.tags, strict=True):
                piece.tags = [tag]
            position = unit.blocks.index(block)
            unit.blocks[position:position + 1] = split
            log.info("modbus %s: %s split into %d single reads after exception 02", self.config.name,
                     block, len(split))

    # ------------------------------------------------------------ sampling and feeding

    async def _feed(self, cycle: _Cycle) -> None:
        received_at = time.time()
        for feed, good_tag, bad_tag in self.pairs:
            good, bad = cycle.values.get(good_tag), cycle.values.get(bad_tag)
            if good is not None and bad is not None:  # both read in this poll: one consistent look
                good_address, bad_address = self.addresses[good_tag], self.addresses[bad_tag]
                await feed.offer(int(self._decode(good, good_address)), int(self._decode(bad, bad_address)),
                                 self.sink, 16 * REGISTERS[good_address.data_type],
                                 16 * REGISTERS[bad_address.data_type])
        for reading in self.readings:
            raw = cycle.values.get(reading.value_tag)
            if raw is None:
                continue
            address = self.addresses[reading.value_tag]
            counter = None
            if reading.counter_tag is not None:
                counter_raw = cycle.values.get(reading.counter_tag)
                if counter_raw is None:
                    continue
                counter_address = self.addresses[reading.counter_tag]
                counter = int(self._decode(counter_raw, counter_address))
            value = scaled(self._decode(raw, address), address.scale, address.offset)
            if not reading.sampler.accept(value, counter=counter):
                continue
            key = reading.binding.key
            if reading.sampler.last_missed:
                self.health.add_missed_parts(reading.sampler.last_missed)
                self._log(logging.WARNING, f"missed:{key}", "modbus %s: %s: part counter jumped, %d part(s) "
                          "missed (poll faster than parts are made)", self.config.name, key,
                          reading.sampler.last_missed)
            if reading.sampler.counter_reset:
                log.info("modbus %s: %s: part counter went back to %s (PLC restart?)", self.config.name,
                         key, counter)
            if not is_good(value):
                self.health.bad_readings += 1
                self._log(logging.WARNING, f"bad:{key}", "modbus %s: %s: %s is not a number (%s), skipped",
                          self.config.name, key, raw, value)
                continue
            self.health.readings += 1
            self.health.last_reading_at = time.monotonic()
            await self.sink(Measurement(key=key, value=value, received_at=received_at))

    @staticmethod
    def _decode(raw: list, address: ModbusAddress) -> float:
        if address.table in BIT_TABLES:
            return 1.0 if raw[0] else 0.0
        return decode(raw, address.data_type, address.byte_order)
