"""Modbus counter pairs against a real pymodbus server (issue 15 item 2): a "good" and a "bad" counter
read every poll; each sample is their increase over `sample_every` parts or `every` seconds. A PLC
restart (the server back with its counters at 0) is counted, never a negative sample; a wrap of a 16-bit
counter is parts made; a dead PLC on another source does not slow this one."""

from __future__ import annotations

import asyncio
import time

from gateway.config import Characteristic, Product
from gateway.sim.simulator import ModbusSimulator, PlcMemory
from gateway.sources.base import Binding
from gateway.sources.counter_pair import CounterPair
from gateway.sources.modbus.settings import ModbusAddress
from gateway.sources.registry import SOURCES
from tests.conftest import free_port
from tests.test_modbus import Collector, polls, source_config, until


def pair_binding(name: str, good: int, bad: int, data_type: str = "uint32", *, sample_every: int | None = 10,
                 every: float | None = None) -> Binding:
    pair = CounterPair(ModbusAddress(good, data_type=data_type), ModbusAddress(bad, data_type=data_type),
                       sample_every, every)
    characteristic = Characteristic(name=name, source="plc", address=pair, chart="p")
    return Binding(Product(1, "P", "P", (characteristic,)), characteristic)


def samples(sink: Collector, name: str) -> list[tuple[int | None, float | None]]:
    return [(m.count, m.sample_size) for m in sink.items if m.key.characteristic == name]


def test_counts_accumulate_into_samples_and_a_plc_restart_is_counted_not_negative() -> None:
    async def main() -> None:
        memory = PlcMemory()
        memory.define(1, "holding", 0, 20)

        def counters(good: int, bad: int, at: int = 0, data_type: str = "uint32") -> None:
            memory.set_value(1, "holding", at, good, data_type)
            memory.set_value(1, "holding", at + (2 if data_type == "uint32" else 1), bad, data_type)

        counters(1000, 50)
        counters(65_530, 7, at=10, data_type="uint16")
        port = free_port()
        sim = ModbusSimulator(memory, port=port)
        await sim.start()
        sink = Collector()
        source = SOURCES["modbus"].build(source_config(port), [
            pair_binding("leak", 0, 2), pair_binding("wrap", 10, 11, "uint16", sample_every=20)], sink)
        await source.start()
        await polls(source, 3)  # the first look learns where the counters stand
        counters(1006, 52)  # 8 parts
        await polls(source, 3)
        assert samples(sink, "leak") == []
        counters(1008, 52)  # 10 parts: one sample, 2 bad of 10
        await until(lambda: len(samples(sink, "leak")) == 1)
        counters(1015, 55)  # 10 more: 3 bad of 10
        await until(lambda: len(samples(sink, "leak")) == 2)
        counters(1018, 56)  # a partial sample of 4 parts...
        counters(4, 9, at=10, data_type="uint16")  # 65,530 -> 4 wrapped: 10 good, 2 bad
        await polls(source, 3)
        await sim.stop()  # ...and the PLC restarts: its counters come back at 0
        await until(lambda: source.health.state in ("down", "connecting"))
        counters(0, 0)
        await sim.start()
        await until(lambda: source.health.details["counter_restarts"] == 1, timeout=10)
        counters(7, 3)  # 10 parts after the restart
        await until(lambda: len(samples(sink, "leak")) == 3, timeout=10)
        counters(12, 8, at=10, data_type="uint16")  # 8 good, -1 bad: the bad counter went back, a restart
        await polls(source, 3)
        health = source.health.as_dict()
        await source.stop()
        await sim.stop()
        assert samples(sink, "leak") == [(2, 10), (3, 10), (3, 10)]
        assert samples(sink, "wrap") == []  # 12 parts, then a restart: no sample yet, none negative
        assert health["counter_restarts"] == 2 and health["counter_wraps"] == 1
        assert all(m.value == m.count for m in sink.items)

    asyncio.run(main())


def test_every_period_makes_one_sample_per_period_and_none_while_the_line_stands() -> None:
    async def main() -> None:
        memory = PlcMemory()
        memory.define(1, "holding", 0, 4)
        memory.set_value(1, "holding", 0, 500, "uint32")
        memory.set_value(1, "holding", 2, 20, "uint32")
        sim = ModbusSimulator(memory, port=free_port())
        await sim.start()
        sink = Collector()
        source = SOURCES["modbus"].build(source_config(sim.port), [
            pair_binding("hourly", 0, 2, sample_every=None, every=1.0)], sink)  # an hour, shortened
        await source.start()
        await polls(source, 3)
        memory.set_value(1, "holding", 0, 507, "uint32")
        memory.set_value(1, "holding", 2, 22, "uint32")
        await until(lambda: len(sink.items) == 1, timeout=5)
        await asyncio.sleep(2.5)  # two more periods without a part: no sample of n = 0
        await source.stop()
        await sim.stop()
        assert samples(sink, "hourly") == [(2, 9)]

    asyncio.run(main())


async def silent_plc() -> tuple[asyncio.Server, int]:
    """A PLC that accepts the connection and never answers (hung firmware, a dead bus behind a gateway)."""
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1024):
            pass
    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_dead_plc_on_another_source_does_not_slow_the_counts() -> None:
    async def main() -> None:
        memory = PlcMemory()
        memory.define(1, "holding", 0, 4)
        sim = ModbusSimulator(memory, port=free_port())
        await sim.start()
        dead_server, dead_port = await silent_plc()
        sink = Collector()
        live = SOURCES["modbus"].build(source_config(sim.port, poll_interval=0.05), [pair_binding("live", 0, 2,
                                                                                                 sample_every=5)], sink)
        dead = SOURCES["modbus"].build(source_config(dead_port, name="dead-plc", timeout=1.0),
                                       [pair_binding("dead", 0, 2)], sink)
        await dead.start()
        await live.start()
        await polls(live, 3)
        started = time.monotonic()
        for part in range(1, 31):  # a part every 50 ms, every fifth one bad
            memory.set_value(1, "holding", 0 if part % 5 else 2, part - part // 5 if part % 5 else part // 5, "uint32")
            await asyncio.sleep(0.05)
        # 30 parts in samples of 5 or more (a loaded machine may poll past a sample's end): at least 26 sampled
        await until(lambda: sum(n or 0 for _, n in samples(sink, "live")) >= 26, timeout=10)
        elapsed = time.monotonic() - started
        assert dead.health.state != "connected" or dead.health.details["timeouts"] >= 1
        await live.stop()
        await dead.stop()
        dead_server.close()
        await sim.stop()
        live_samples = samples(sink, "live")
        assert all(n is not None and n >= 5 and count is not None and 1 <= count <= 2 for count, n in live_samples)
        assert samples(sink, "dead") == []
        assert elapsed < 6.0, elapsed  # 1.5 s of parts; the dead PLC's 1 s timeouts are its own

    asyncio.run(main())


def test_probe_reads_both_counters_of_a_pair(tmp_path) -> None:  # noqa: ANN001
    from tests.test_modbus_probe import probe_many

    port = free_port()
    path = tmp_path / "gateway.yaml"
    path.write_text(f"""\
gateway: {{name: T}}
storage: {{path: {tmp_path / "db.sqlite3"}}}
sources:
  - {{name: plc, type: modbus, host: 127.0.0.1, port: {port}, timeout: 200ms}}
products:
  - id: 1
    code: P
    name: P
    characteristics:
      - name: leak
        source: plc
        chart: p
        modbus: {{good: {{address: 200, data_type: uint32}}, bad: {{address: 202, data_type: uint32}}, every: 1h}}
        spec: {{usl: 0.1}}
""")
    memory = PlcMemory()
    memory.define(1, "holding", 200, 4)
    memory.set_value(1, "holding", 200, 70_000, "uint32")
    memory.set_value(1, "holding", 202, 31, "uint32")
    [(status, out)] = probe_many(str(path), [None], memory)
    assert status == 0
    assert "leak (good counter): unit 1 holding 200" in out and "configured uint32 ABCD: 70000" in out
    assert "leak (bad counter): unit 1 holding 202" in out and "configured uint32 ABCD: 31" in out
