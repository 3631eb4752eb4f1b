"""Modbus TCP source against a real pymodbus server: decoding, sampling, exceptions, restarts."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

import pytest

from gateway.config import Backoff, Characteristic, Product, Sampling
from gateway.core.model import Measurement
from gateway.sim.simulator import ModbusSimulator, PlcMemory
from gateway.sources.base import Binding
from gateway.sources.modbus.settings import ModbusAddress, ModbusSettings
from gateway.sources.modbus.source import ModbusSource as ModbusGaugeSource
from gateway.sources.registry import SOURCES
from tests.conftest import free_port
from tests.test_modbus_codec import VALUES, wire_registers

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


class Collector:
    """The pipeline's place: records every measurement the source hands over."""

    def __init__(self) -> None:
        self.items: list[Measurement] = []

    async def __call__(self, m: Measurement) -> None:
        self.items.append(m)

    def values(self, name: str) -> list[float]:
        return [m.value for m in self.items if m.key.characteristic == name]


ON_CHANGE = Sampling("on_change")


def bind(name: str, address: ModbusAddress, sampling: Sampling = ON_CHANGE) -> Binding:
    characteristic = Characteristic(name=name, source="plc", address=address, sampling=sampling)
    return Binding(Product(1, "P", "P", (characteristic,)), characteristic)


def source_config(port: int, **kw) -> ModbusSettings:
    settings = dict(name="plc", host="127.0.0.1", port=port, poll_interval=0.02, timeout=0.3,
                    backoff=Backoff(0.05, 0.2))
    settings.update(kw)
    return ModbusSettings(**settings)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def polls(source, n: int = 2) -> None:
    """Wait until the source has completed at least n more requests."""
    start = source.health.details["requests"]
    await until(lambda: source.health.details["requests"] >= start + n)


def test_every_data_type_and_byte_order_and_table_through_the_source() -> None:
    async def main() -> None:
        memory = PlcMemory()
        memory.define(1, "holding", 0, 128)
        bindings, expected = [], {}
        address = 0
        for data_type, value in VALUES.items():
            for order in ORDERS:
                memory.set_registers(1, "holding", address, wire_registers(value, data_type, order))
                name = f"{data_type}_{order}"
                bindings.append(bind(name, ModbusAddress(address, data_type=data_type, byte_order=order)))
                expected[name] = float(value)
                address += 4
        memory.set_registers(1, "input", 7, [4001])
        bindings.append(bind("scaled", ModbusAddress(7, table="input", data_type="int16", scale=0.01,
                                                     offset=-0.5)))
        expected["scaled"] = 39.51
        memory.set_registers(1, "coil", 3, [1])
        memory.set_registers(1, "discrete", 5, [0])
        bindings.append(bind("coil", ModbusAddress(3, table="coil")))
        bindings.append(bind("discrete", ModbusAddress(5, table="discrete")))
        expected.update(coil=1.0, discrete=0.0)

        sim = ModbusSimulator(memory, port=free_port())
        await sim.start()
        sink = Collector()
        source = SOURCES["modbus"].build(source_config(sim.port), bindings, sink)
        assert isinstance(source, ModbusGaugeSource)
        await source.start()
        await until(lambda: len(sink.items) == len(expected))
        await polls(source, 10)
        got = {m.key.characteristic: m.value for m in sink.items}
        assert len(sink.items) == len(expected)  # on_change: unchanged registers are not new parts
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-7), name
        # 32 tags in 128 contiguous registers (2 reads) + 1 input + 1 coil + 1 discrete: 5 requests per poll
        assert sum(len(u.blocks) for u in source.units.values()) == 5
        assert source.health.state == "connected" and source.health.readings == len(expected)
        await source.stop()
        await sim.stop()

    asyncio.run(main())


def test_part_counter_equal_consecutive_parts_and_a_jump(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        memory = PlcMemory()
        memory.define(1, "holding", 0, 200)
        memory.set_value(1, "holding", 100, 10.0, "float32")
        memory.set_value(1, "holding", 110, 1, "uint32")
        sink = Collector()
        sampling = Sampling("part_counter", ModbusAddress(110, data_type="uint32"))
        sim = ModbusSimulator(memory, port=free_port())
        await sim.start()
        source = ModbusGaugeSource(source_config(sim.port), [bind("d", ModbusAddress(100, data_type="float32"),
                                                                  sampling)], sink)
        assert len(source.units[1].blocks) == 1  # value and counter in one merged read
        await source.start()
        await polls(source, 3)
        assert sink.items == []  # the part counted before we connected is not ours to store
        memory.set_value(1, "holding", 110, 2, "uint32")
        await polls(source, 3)
        memory.set_value(1, "holding", 110, 3, "uint32")  # same value, new part
        await polls(source, 3)
        assert sink.values("d") == [10.0, 10.0]
        memory.set_value(1, "holding", 100, 10.5, "float32")
        memory.set_value(1, "holding", 110, 7, "uint32")  # parts 4, 5, 6 never seen
        await polls(source, 3)
        assert sink.values("d") == [10.0, 10.0, 10.5]
        assert source.health.details["missed_parts"] == 3
        await source.stop()
        await sim.stop()

    with caplog.at_level(logging.WARNING, logger="gateway.sources.modbus"):
        asyncio.run(main())
    assert "3 part(s) missed" in caplog.text


def test_on_change_every_poll_and_nan_is_bad() -> None:
    async def main() -> None:
        memory = PlcMemory()
        memory.define(1, "holding", 0, 20)
        memory.set_value(1, "holding", 0, 1.0, "float32")
        memory.set_value(1, "holding", 4, 2.0, "float32")
        sink = Collector()
        sim = ModbusSimulator(memory, port=free_port())
        await sim.start()
        source = ModbusGaugeSource(source_config(sim.port), [
            bind("change", ModbusAddress(0, data_type="float32")),
            bind("poll", ModbusAddress(4, data_type="float32"), Sampling("every_poll")),
        ], sink)
        await source.start()
        await polls(source, 3)
        memory.set_value(1, "holding", 0, math.nan, "float32")
        await polls(source, 3)
        memory.set_value(1, "holding", 0, 1.0, "float32")
        await polls(source, 3)
        memory.set_value(1, "holding", 0, math.inf, "float32")
        await polls(source, 3)
        await source.stop()
        await sim.stop()
        assert sink.values("change") == [1.0, 1.0]  # NaN and inf never fed
        assert source.health.bad_readings == 2  # each bad reading counted once, not once per poll
        assert len(sink.values("poll")) >= 10

    asyncio.run(main())


def test_exception_responses_are_logged_with_their_meaning_and_others_keep_flowing(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        memory = PlcMemory()
        memory.define(1, "holding", 100, 2)  # 104 does not exist: the merged read 100..104 fails
        memory.set_value(1, "holding", 100, 5.0, "float32")
        sink = Collector()
        sim = ModbusSimulator(memory, port=free_port())
        await sim.start()
        source = ModbusGaugeSource(source_config(sim.port), [
            bind("good", ModbusAddress(100, data_type="float32")),
            bind("missing", ModbusAddress(104)),
            bind("no_input_table", ModbusAddress(0, table="input")),
        ], sink)
        await source.start()
        await until(lambda: sink.values("good") == [5.0])
        memory.set_value(1, "holding", 100, 6.0, "float32")
        await until(lambda: sink.values("good") == [5.0, 6.0])
        assert source.health.details["exceptions"] >= 2
        assert "ILLEGAL DATA ADDRESS" in (source.health.last_error or "")
        assert len(source.units[1].blocks) == 3  # the merged read was split after exception 02
        await source.stop()
        await sim.stop()

    with caplog.at_level(logging.INFO, logger="gateway.sources.modbus"):
        asyncio.run(main())
    assert "Modbus exception 02 ILLEGAL DATA ADDRESS" in caplog.text
    assert "split into 2 single reads" in caplog.text


def test_server_restart_mid_stream_resumes_without_restarting_the_source() -> None:
    async def main() -> None:
        memory = PlcMemory()
        memory.define(1, "holding", 0, 2)
        sink = Collector()
        port = free_port()
        sim = ModbusSimulator(memory, port=port)
        await sim.start()
        source = ModbusGaugeSource(source_config(port), [bind("v", ModbusAddress(0, data_type="float32"),
                                                              Sampling("every_poll"))], sink)
        await source.start()
        memory.set_value(1, "holding", 0, 1.0, "float32")
        await until(lambda: 1.0 in sink.values("v"))
        await sim.stop()  # PLC reboot: every connection dropped, nothing listens
        await until(lambda: source.health.state in ("down", "connecting"))
        await asyncio.sleep(0.5)
        assert source.health.reconnects >= 1 and source.health.last_error
        memory.set_value(1, "holding", 0, 2.0, "float32")
        await sim.start()
        await until(lambda: 2.0 in sink.values("v"), timeout=5)
        assert source.health.state == "connected"
        await source.stop()
        await sim.stop()
        assert source.health.state == "stopped"

    asyncio.run(main())


def test_a_silent_unit_behind_tcp_does_not_stop_the_others() -> None:
    async def main() -> None:
        memory = PlcMemory(units=(1,))
        memory.define(1, "holding", 0, 2)
        memory.set_value(1, "holding", 0, 1.0, "float32")
        sink = Collector()
        sim = ModbusSimulator(memory, port=free_port())
        await sim.start()
        source = ModbusGaugeSource(source_config(sim.port, timeout=0.1), [
            bind("alive", ModbusAddress(0, data_type="float32"), Sampling("every_poll")),
            bind("dead", ModbusAddress(0, unit=5, data_type="float32"), Sampling("every_poll")),
        ], sink)
        await source.start()
        await asyncio.sleep(1.0)
        alive = len(sink.values("alive"))
        await source.stop()
        await sim.stop()
        assert source.units[5].timeouts >= 1 and source.health.details["units"][5]["state"] == "backed_off"
        assert source.health.reconnects == 0  # the socket answered for unit 1: no reconnect
        # 20 ms polls for 1 s; the dead unit costs 100 ms only at its backoff retries
        assert alive >= 20, alive
        assert sink.values("dead") == []

    asyncio.run(main())


def test_request_delay_spaces_transactions_on_the_bus() -> None:
    async def main() -> int:
        memory = PlcMemory()
        memory.define(1, "holding", 0, 100)
        sim = ModbusSimulator(memory, port=free_port())
        await sim.start()
        source = ModbusGaugeSource(source_config(sim.port, poll_interval=0.0, request_delay=0.05), [
            bind("a", ModbusAddress(0)), bind("b", ModbusAddress(50)),  # two reads per poll
        ], Collector())
        await source.start()
        await asyncio.sleep(0.5)
        await source.stop()
        await sim.stop()
        return int(source.health.details["requests"])

    requests = asyncio.run(main())
    assert 6 <= requests <= 11, requests  # one every 50 ms at most, and not stalled


def test_wall_clock_step_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.sources.modbus import source as modbus

    watch = modbus.ClockWatch()
    assert watch.check() == 0.0
    real = time.time
    monkeypatch.setattr(modbus.time, "time", lambda: real() - 3600.0)  # RTC reset after a power cut
    assert watch.check() == pytest.approx(-3600.0, abs=1.0)
    assert watch.check() == 0.0
