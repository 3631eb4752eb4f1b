"""OPC UA counter pairs against a real asyncua server (issue 15 item 2): the good and bad counter nodes
read together at the source's interval, in subscribe and in poll mode, beside a subscribed value; a
server restart with its counters at 0 is counted as a PLC restart, never a negative sample; a dead
server on another source does not slow this one."""

from __future__ import annotations

import asyncio
import datetime as _dt

import pytest
from asyncua import ua

from gateway.config import Backoff as BackoffConfig
from gateway.config import Characteristic, Product
from gateway.sim.opcua_server import OpcUaSimulator, start_opcua_simulator
from gateway.sim.simulator import Gauge
from gateway.sources.base import Binding
from gateway.sources.counter_pair import CounterPair
from gateway.sources.opcua.counts import NotACounter, counter
from gateway.sources.opcua.settings import OpcUaAddress
from gateway.sources.opcua.settings import OpcUaSettings as OpcUaSourceConfig
from gateway.sources.registry import SOURCES
from tests.conftest import free_port
from tests.test_modbus_counts import silent_plc
from tests.test_opcua import Collector, _until

pytestmark = [pytest.mark.timeout(60), pytest.mark.anyio]


async def line() -> OpcUaSimulator:
    """A vision station: its GOOD and BAD gauges' part counters are the pair (UInt32 nodes)."""
    gauges = {"OD": Gauge(20.0, 0.01, seed=1), "GOOD": Gauge(0.0, 0.0, seed=2), "BAD": Gauge(0.0, 0.0, seed=3)}
    return await start_opcua_simulator(free_port(), gauges, 3600.0)


def source(sim_endpoint: str, counters: dict[str, str], sink: Collector, mode: str, *, name: str = "cmm",
           sample_every: int | None = 10, every: float | None = None, value_node: str | None = None):
    pair = CounterPair(OpcUaAddress(counters["GOOD"]), OpcUaAddress(counters["BAD"]), sample_every, every)
    chars = [Characteristic("vision", name, address=pair, chart="p")]
    if value_node is not None:
        chars.append(Characteristic("od", name, address=OpcUaAddress(value_node)))
    product = Product(2, "COVER", "cover", tuple(chars))
    config = OpcUaSourceConfig(name, sim_endpoint, mode=mode, sampling_interval=0.05, poll_interval=0.05,
                               timeout=1.0, backoff=BackoffConfig(0.2, 1.0))  # type: ignore[arg-type]
    return SOURCES["opcua"].build(config, [Binding(product, c) for c in chars], sink)


def samples(sink: Collector, name: str = "vision") -> list[tuple]:
    return [(m.count, m.sample_size) for m in sink.got if m.key.characteristic == name]


async def counters(sim: OpcUaSimulator, good: int, bad: int) -> None:
    await sim.write("GOOD", 0.0, counter=good)
    await sim.write("BAD", 0.0, counter=bad)


async def reads(src, n: int = 3) -> None:  # noqa: ANN001
    """A few intervals of the source: the counters have been looked at since."""
    await asyncio.sleep(0.05 * n + 0.2)


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_counts_accumulate_and_a_server_restart_at_zero_is_counted(mode: str) -> None:
    sim = await line()
    sink = Collector()
    src = source(sim.endpoint, sim.counter_node_ids, sink, mode, value_node=sim.node_ids["OD"])
    await counters(sim, 1000, 40)
    await src.start()
    try:
        await _until(lambda: src.health.state == "connected")
        await reads(src)
        await counters(sim, 1007, 41)  # 8 parts
        await reads(src)
        assert samples(sink) == []
        await counters(sim, 1008, 42)  # 10: 2 bad of 10
        await _until(lambda: len(samples(sink)) == 1)
        await sim.write("OD", 20.004)  # the subscribed value keeps flowing beside the counters
        await sink.wait("od", 1)
        await counters(sim, 1012, 42)  # a partial sample of 4 parts, then the PLC restarts with 0
        await reads(src)
        await sim.restart(down_for=0.3)
        await _until(lambda: src.health.details["counter_restarts"] == 1, timeout=15)
        await counters(sim, 6, 4)
        await _until(lambda: len(samples(sink)) == 2, timeout=10)
        assert samples(sink) == [(2, 10), (4, 10)]
        assert src.health.reconnects >= 1 and src.health.details["counter_wraps"] == 0
    finally:
        await src.stop()
        await sim.stop()


async def test_an_unknown_counter_node_fails_alone_and_a_dead_server_does_not_slow_the_counts() -> None:
    sim = await line()
    dead_server, dead_port = await silent_plc()
    sink = Collector()
    live = source(sim.endpoint, sim.counter_node_ids, sink, "poll", sample_every=5)
    dead = source(f"opc.tcp://127.0.0.1:{dead_port}", sim.counter_node_ids, sink, "poll", name="dead-cmm")
    ghost = source(sim.endpoint, {"GOOD": sim.counter_node_ids["GOOD"], "BAD": "ns=2;s=Line3.NoSuchCounter"},
                   sink, "poll", name="ghost")
    await counters(sim, 0, 0)
    for each in (dead, ghost, live):
        await each.start()
    try:
        await _until(lambda: live.health.state == "connected")
        await reads(live)
        for part in range(1, 21):  # a part every 50 ms, every fifth one bad
            await counters(sim, part - part // 5, part // 5)
            await asyncio.sleep(0.05)
        await _until(lambda: sum(n for _, n in samples(sink)) >= 16, timeout=10)
        assert all(n >= 5 and 1 <= count <= 2 for count, n in samples(sink))
        assert dead.health.state != "connected"
        await _until(lambda: ghost.health.details.get("failed_counter_nodes"), timeout=10)
        assert ghost.health.details["failed_counter_nodes"] == {"ns=2;s=Line3.NoSuchCounter": "BadNodeIdUnknown"}
    finally:
        for each in (live, ghost, dead):
            await each.stop()
        dead_server.close()
        await sim.stop()


def test_a_counter_node_gives_its_width_or_why_it_is_no_counter() -> None:
    def data(value: object, variant: ua.VariantType | None = None, status: int = ua.StatusCodes.Good) -> ua.DataValue:
        return ua.DataValue(ua.Variant(value, variant) if variant else ua.Variant(value),
                            StatusCode=ua.StatusCode(status), SourceTimestamp=_dt.datetime.now(_dt.UTC))

    assert counter(data(65_535, ua.VariantType.UInt16)) == (65_535, 16)
    assert counter(data(-2, ua.VariantType.Int32)) == (-2, 32)
    assert counter(data(7, ua.VariantType.UInt64)) == (7, 64)
    assert counter(data(12.0, ua.VariantType.Double)) == (12, None)  # a Double counter: no width
    for bad, kind in ((data(12.5, ua.VariantType.Double), "not a number"), (data(True), "not a number"),
                      (data("12"), "not a number"), (data(float("nan"), ua.VariantType.Double), "not a number"),
                      (data(3, ua.VariantType.UInt32, ua.StatusCodes.BadSensorFailure), "bad status")):
        with pytest.raises(NotACounter) as refused:
            counter(bad)
        assert refused.value.kind == kind


async def test_probe_reads_a_counter_of_a_pair_by_name(tmp_path) -> None:  # noqa: ANN001
    from gateway.sources.registry import load_config
    from tests.test_opcua_probe import run_probe

    sim = await line()
    try:
        await counters(sim, 812, 9)
        path = tmp_path / "gateway.yaml"
        path.write_text(f"""\
gateway: {{name: T}}
storage: {{path: {tmp_path / "db.sqlite3"}}}
sources:
  - {{name: cmm, type: opcua, endpoint: "{sim.endpoint}", timeout: 1s}}
products:
  - id: 1
    code: P
    name: P
    characteristics:
      - name: vision
        source: cmm
        chart: np
        opcua: {{good: {{node_id: "{sim.counter_node_ids['GOOD']}"}}, bad: {{node_id: "{sim.counter_node_ids['BAD']}"}},
                sample_every: 50}}
        spec: {{usl: 5}}
""")
        config = load_config(str(path))[0]
        status, good = await run_probe(config, "vision.good")
        assert status == 0 and "value=812 type=UInt32" in good, good
        status, tree = await run_probe(config, None)
        assert "<- characteristic vision.bad" in tree
    finally:
        await sim.stop()
