"""The part number now running (gateway.sources.parts): codes and names as a PLC, an OPC UA server or a
gauge's JSON message may send them, hostile ones included; its age; an OPC UA text node through a real
asyncua server."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from asyncua import ua

from gateway.config import Backoff as BackoffConfig
from gateway.config import Characteristic, Part, PartFrom, Product, Sampling
from gateway.core.model import CharacteristicKey, Measurement
from gateway.sim.opcua_server import start_opcua_simulator
from gateway.sim.simulator import Gauge
from gateway.sources.base import Binding
from gateway.sources.mqtt.settings import MqttAddress
from gateway.sources.mqtt.worker import parse_reading
from gateway.sources.opcua import source as opcua
from gateway.sources.opcua.settings import OpcUaAddress
from gateway.sources.opcua.settings import OpcUaSettings as OpcUaSourceConfig
from gateway.sources.parts import NOT_IN_TABLE, NOT_READ, STALE, PartTracker
from tests.conftest import free_port

PARTS = (Part("A-100", 10.0, 0.02), Part("A-200", 12.5, 0.03))
PRODUCT = Product(1, "HOUSING", "housing", ())


def tracker(codes=((1, "A-100"), (2, "A-200")), field=None, stale_after=5.0) -> PartTracker:
    characteristic = Characteristic("bore", "plc", parts=PARTS, short_run="z",
                                    part_from=PartFrom("plc", address=object(), field=field, codes=codes))
    return PartTracker(PRODUCT, characteristic, stale_after)


def reading(part: str | None = None) -> Measurement:
    return Measurement(CharacteristicKey(1, "bore"), 10.0, time.time(), part=part)


@pytest.mark.parametrize(("raw", "expected"), [
    (1.0, ("A-100", None)), (2, ("A-200", None)), ("2", ("A-200", None)), (" +1 ", ("A-100", None)),
    (3.0, (None, NOT_IN_TABLE)), (1.5, (None, NOT_IN_TABLE)), (math.nan, (None, NOT_IN_TABLE)),
    (math.inf, (None, NOT_IN_TABLE)), ("²", (None, NOT_IN_TABLE)), ("1e0", (None, NOT_IN_TABLE)),
    ("9" * 400, (None, NOT_IN_TABLE)), ("A-100", (None, NOT_IN_TABLE)), ("", (None, NOT_IN_TABLE)),
    (None, (None, NOT_READ)),
])
def test_codes_as_a_plc_register_or_a_message_gives_them(raw, expected):
    assert tracker().resolve(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("A-100", ("A-100", None)), (" A-200\t", ("A-200", None)), ("a-100", (None, NOT_IN_TABLE)),
    ("A-100\u202e", (None, NOT_IN_TABLE)), (100.0, (None, NOT_IN_TABLE)), ("x" * 10_000, (None, NOT_IN_TABLE)),
])
def test_names_without_a_code_table_must_be_a_part_as_written(raw, expected):
    assert tracker(codes=()).resolve(raw) == expected


def test_a_part_holds_until_the_next_one_and_goes_stale_when_its_channel_is_quiet():
    parts = tracker(stale_after=5.0)
    assert parts.part_for(reading(), 100.0) == (None, NOT_READ)  # nothing read since the start
    parts.read(1.0, 100.0)
    assert parts.part_for(reading(), 104.9) == ("A-100", None)
    parts.read(7.0, 105.0)  # a code the table does not know: not the previous part either
    assert parts.part_for(reading(), 105.1) == (None, NOT_IN_TABLE)
    parts.read(2.0, 106.0)
    assert parts.part_for(reading(), 111.0) == ("A-200", None)
    assert parts.part_for(reading(), 111.5) == (None, STALE)


def test_a_part_in_the_message_is_taken_from_each_reading():
    parts = tracker(codes=(), field="part")
    assert parts.part_for(reading("A-200"), 1.0) == ("A-200", None)
    assert parts.part_for(reading(None), 1.0) == (None, NOT_READ)
    assert parts.part_for(reading("B-1"), 1.0) == (None, NOT_IN_TABLE)


@pytest.mark.parametrize(("payload", "part"), [
    (b'{"v": 1.5, "p": "A-100"}', "A-100"), (b'{"v": 1.5, "p": 2}', "2"), (b'{"v": 1.5, "p": 2.0}', "2"),
    (b'{"v": 1.5, "p": 2.5}', None), (b'{"v": 1.5, "p": true}', None), (b'{"v": 1.5, "p": [1]}', None),
    (b'{"v": 1.5, "p": {"a": 1}}', None), (b'{"v": 1.5, "p": null}', None), (b'{"v": 1.5}', None),
    (b'{"v": 1.5, "p": 1e400}', None), (b'{"v": 1.5, "p": ' + b"9" * 300 + b"}", None),
    (b'{"v": 1.5, "p": "' + b"x" * 5000 + b'"}', "x" * 64),
])
def test_a_gauge_message_part_field_never_refuses_the_value(payload, part):
    value, _at, _stamp, got = parse_reading(payload, MqttAddress("t", value="v", part="p"))
    assert value == 1.5 and got == part


def test_a_part_topic_of_its_own_carries_text_or_a_number():
    value, _at, _stamp, part = parse_reading(b"A-200\n", MqttAddress("line/part", is_part=True))
    assert math.isnan(value) and part == "A-200"
    value, _at, _stamp, part = parse_reading(b'{"now": 2}', MqttAddress("line/part", value="now", is_part=True))
    assert math.isnan(value) and part == "2"


@pytest.mark.anyio
@pytest.mark.timeout(40)
async def test_an_opcua_text_node_is_read_as_the_part_number():
    sim = await start_opcua_simulator(free_port(), {"OD": Gauge(20.0, 0.01, seed=1)}, 3600.0)
    server = sim._server
    assert server is not None
    node = await server.nodes.objects.add_variable(ua.NodeId("Line3.PartNo", 2), "PartNo",
                                                   ua.Variant("A-100", ua.VariantType.String))
    channel = Characteristic("bore", "cmm", address=OpcUaAddress("ns=2;s=Line3.PartNo"),
                             sampling=Sampling("every_poll"))
    got: list[Measurement] = []

    async def sink(m: Measurement) -> None:
        got.append(m)

    config = OpcUaSourceConfig("cmm", sim.endpoint, mode="poll", poll_interval=0.05,
                               backoff=BackoffConfig(0.2, 1.0))
    source = opcua.OpcUaSource(config, [Binding(PRODUCT, channel, "part")], sink)
    await source.start()
    try:
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert got[0].key == CharacteristicKey(1, "bore", "part") and got[0].part == "A-100"
        await node.write_value(ua.Variant("A-200", ua.VariantType.String))
        while got[-1].part != "A-200":
            assert time.monotonic() < deadline + 10
            await asyncio.sleep(0.02)
        assert math.isnan(got[-1].value)
    finally:
        await source.stop()
        await sim.stop()
