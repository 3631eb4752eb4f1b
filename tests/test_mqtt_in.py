"""MQTT in against a real mosquitto: values, JSON paths, restarts, malformed payloads, ack after commit."""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import Backoff as BackoffConfig
from gateway.config import Characteristic, Product, Sampling
from gateway.core.model import Measurement
from gateway.sources.base import Binding
from gateway.sources.mqtt.settings import MqttAddress
from gateway.sources.mqtt.settings import MqttSettings as MqttSourceConfig
from gateway.sources.mqtt.source import (
    MAX_PAYLOAD,
    MalformedPayload,
    MqttSource,
    parse_payload,
    parse_timestamp,
)
from tests.test_northbound_tls import pki, tls_broker  # noqa: F401  (fixtures: a TLS + password broker)

pytestmark = [pytest.mark.timeout(30), pytest.mark.anyio]


def _source(port: int, sink, *, protocol: str = "5", client_id: str = "gw-in") -> MqttSource:
    chars = (
        Characteristic("plain", "broker", address=MqttAddress("line/plain"), sampling=Sampling("per_message")),
        Characteristic("runout", "broker", address=MqttAddress("line/json", value="reading.value",
                                                           timestamp="reading.ts"),
                       sampling=Sampling("per_message")),
        Characteristic("deep", "broker", address=MqttAddress("line/+/deep", value="a.0.b"),
                       sampling=Sampling("per_message")),
    )
    product = Product(1, "SHAFT", "shaft", chars)
    config = MqttSourceConfig("broker", "127.0.0.1", port=port, client_id=client_id, protocol=protocol,
                              keepalive=5, backoff=BackoffConfig(0.2, 1.0))
    return MqttSource(config, [Binding(product, c) for c in chars], sink)


class Publisher:
    """A plain paho QoS-1 publisher (what a gauge would be)."""

    def __init__(self, port: int):
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes | str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Collector:
    """A sink that records measurements and commits them at once (or never, with commit=False)."""

    def __init__(self, commit: bool = True):
        self.commit = commit
        self.got: list[Measurement] = []

    async def __call__(self, m: Measurement) -> None:
        self.got.append(m)
        if self.commit and m.on_committed:
            m.on_committed()

    async def wait(self, n: int, timeout: float = 8.0) -> list[Measurement]:
        deadline = time.monotonic() + timeout
        while len(self.got) < n:
            assert time.monotonic() < deadline, f"only {len(self.got)} of {n} measurements arrived"
            await asyncio.sleep(0.02)
        return self.got


async def _connected(source: MqttSource, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while source.health.state != "connected":
        assert time.monotonic() < deadline, f"not connected: {source.health.as_dict()}"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # SUBACK


async def _running(port: int, sink, **settings) -> MqttSource:
    """A started source, once connected to the broker (stopped again if it never connects)."""
    source = _source(port, sink, **settings)
    await source.start()
    try:
        await _connected(source)
    except BaseException:
        await source.stop()
        raise
    return source


async def _only_new_arrives(port: int, pub: Publisher, **settings) -> None:
    """A new connection of a session whose readings were acknowledged gets nothing old, only what is
    published now."""
    sink = Collector()
    source = await _running(port, sink, **settings)
    try:
        pub.send("line/plain", "42")
        await sink.wait(1)
        await asyncio.sleep(0.3)
        assert [m.value for m in sink.got] == [42.0]
    finally:
        await source.stop()


def _worker() -> tuple[socket.socket, subprocess.Popen]:
    """The MQTT worker process on its own, and the daemon's end of its pipe."""
    mine, theirs = socket.socketpair()
    worker = subprocess.Popen([sys.executable, "-m", "gateway.sources.mqtt.worker", str(theirs.fileno())],
                              pass_fds=(theirs.fileno(),))
    theirs.close()
    return mine, worker


def test_parse_payload_forms() -> None:
    plain = MqttAddress("t")
    assert parse_payload(b" 12.5\n", plain) == (12.5, None, None)
    js = MqttAddress("t", value="r.v", timestamp="r.ts")
    value, at, raw = parse_payload(b'{"r": {"v": "0.031", "ts": "2025-03-01T08:00:00+09:00"}}', js)
    assert (value, at, raw) == (0.031, 1740783600.0, "2025-03-01T08:00:00+09:00")
    assert parse_timestamp(1740783600) == 1740783600.0
    assert parse_timestamp(1740783600123) == pytest.approx(1740783600.123)
    assert parse_timestamp("2025-03-01T00:00:00Z") == 1740787200.0
    assert parse_timestamp("2025-03-01T00:00:00") == 1740787200.0  # no offset: UTC
    assert parse_payload(b'{"a": [{"b": 7}]}', MqttAddress("t", value="a.0.b"))[0] == 7.0
    for bad, address, kind in [
            (b"abc", plain, "not a number"), (b"nan", plain, "not finite"), (b"-inf", plain, "not finite"),
            (b"\xff\xfe", plain, "not UTF-8"), (b'{"r": {"x": 1}}', js, "missing field"), (b"[1", js, "not JSON"),
            (b'{"r": {"v": true, "ts": 1}}', js, "not a number"),
            (b'{"r": {"v": 1, "ts": "yesterday"}}', js, "bad timestamp"),
            (b"1" * (MAX_PAYLOAD + 1), plain, "too large")]:
        with pytest.raises(MalformedPayload) as refused:
            parse_payload(bad, address)
        assert refused.value.kind == kind, bad[:40]


def test_only_a_gauges_number_forms_are_accepted() -> None:
    """Plain decimal or scientific with ASCII digits, and JSON numbers; not Python's other forms
    (float() takes "1_0", Arabic-Indic and full-width digits: each became 10.0)."""
    plain, js = MqttAddress("t"), MqttAddress("t", value="v", timestamp="ts")
    for text, value in [("12.5", 12.5), (" -1.25e-1\r\n", -0.125), ("+5", 5.0), (".5", 0.5), ("5.", 5.0),
                        ("1E3", 1000.0), ("0", 0.0), ("-0.0", 0.0)]:
        assert parse_payload(text.encode(), plain)[0] == value, text
    for text in ["1_0", "1_000.5", "١٠", "٣.٥", "１０", "²", "0x10", "1e", "--1", "1.2.3", "", "1 0", "\u30001\u3000"]:
        with pytest.raises(MalformedPayload) as refused:
            parse_payload(text.encode(), plain)
        assert refused.value.kind == "not a number", text
    for text in ["NaN", "inf", "-Infinity", "1e999", "1" * 400]:
        with pytest.raises(MalformedPayload) as refused:
            parse_payload(text.encode(), plain)
        assert refused.value.kind == "not finite", text
    assert parse_payload(b'{"v": "0.5", "ts": "1740783600123"}', js)[:2] == (0.5, 1740783600.123)
    for payload, kind in [('{"v": "1_0", "ts": 1}', "not a number"), ('{"v": "\u0661\u0660", "ts": 1}', "not a number"),
                          ('{"v": 1, "ts": "\u0661\u0667\u0664\u0660"}', "bad timestamp"),
                          ('{"v": 1, "ts": "2025-03-01T08:00:0\u0661"}', "bad timestamp"),
                          ('{"v": NaN, "ts": 1}', "not finite"), ('{"v": 1e400, "ts": 1}', "not finite"),
                          ('{"v": 1' + "0" * 400 + ', "ts": 1}', "not finite"),
                          ('{"v": 1, "ts": 1' + "0" * 400 + "}", "bad timestamp"),
                          ('{"v": 1, "ts": Infinity}', "bad timestamp"), ('{"v": [[[1]]], "ts": 1}', "not a number"),
                          ("[" * 30_000 + "]" * 30_000, "not JSON")]:
        with pytest.raises(MalformedPayload) as refused:
            parse_payload(payload.encode(), js)
        assert refused.value.kind == kind, payload[:60]


def test_pipe_frames_survive_any_chunking_and_big_frames() -> None:
    """The daemon <-> worker pipe reader: messages come out whole and in order however the bytes are cut;
    a frame larger than the reused buffer grows it, and the buffer shrinks back afterwards."""
    from gateway.sources.mqtt.worker import MAX_FRAME, FrameReader, frame

    messages = [("batch", i, [("t", b"x" * (i % 97))], None) for i in range(2000)]
    messages.insert(700, ("batch", "big", b"y" * 300_000, None))  # > the 64 KiB buffer of this reader
    stream = b"".join(frame(m) for m in messages)
    rng = random.Random(7)
    reader, out, pos = FrameReader(size=64 * 1024), [], 0
    while pos < len(stream):  # socket-like reads straight into the reader's buffer
        target = reader.get_buffer()
        n = min(len(target), rng.choice([1, 3, 4, 5, 100, 4096, 70_000]), len(stream) - pos)
        target[:n] = stream[pos:pos + n]
        target.release()
        out += reader.received(n)
        pos += n
    assert out == messages
    assert len(reader._buf) == 64 * 1024  # the big frame's memory was handed back
    assert FrameReader().feed(stream) == messages  # the copying entry point gives the same
    with pytest.raises(ValueError, match="more than"):
        FrameReader().feed((MAX_FRAME + 1).to_bytes(4, "big"))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_values_and_json_paths(mosquitto, protocol: str) -> None:
    sink = Collector()
    source = await _running(mosquitto.port, sink, protocol=protocol, client_id=f"gw-{protocol}")
    pub = Publisher(mosquitto.port)
    try:
        pub.send("line/plain", "10.25")
        pub.send("line/json", '{"reading": {"value": 0.031, "ts": 1740783600123}}')
        pub.send("line/x/deep", '{"a": [{"b": -3}]}')
        got = await sink.wait(3)
        by_name = {m.key.characteristic: m for m in got}
        assert by_name["plain"].value == 10.25 and by_name["plain"].source_time is None
        assert by_name["plain"].source_key is None
        assert by_name["runout"].value == 0.031
        assert by_name["runout"].source_time == pytest.approx(1740783600.123)
        assert by_name["runout"].source_key == "mqtt:line/json:1740783600123"
        assert by_name["deep"].value == -3.0
        assert source.health.readings == 3 and source.health.bad_readings == 0
    finally:
        pub.close()
        await source.stop()


async def test_malformed_payloads_are_counted_acked_and_skipped(mosquitto) -> None:
    sink = Collector()
    source = await _running(mosquitto.port, sink)
    pub = Publisher(mosquitto.port)
    try:
        for topic, payload in [("line/plain", "abc"), ("line/plain", "NaN"), ("line/plain", "inf"),
                               ("line/json", '{"reading": {"val": 1}}'), ("line/plain", b"\x00" * (1 << 20))]:
            pub.send(topic, payload)
        pub.send("line/plain", "1.5")
        got = await sink.wait(1)
        assert [m.value for m in got] == [1.5]
        assert source.health.bad_readings == 5 and source.health.state == "connected"
        await source.stop()
        # The garbage was acknowledged: a new connection of the same session gets none of it again.
        again = Collector()
        source = await _running(mosquitto.port, again)
        pub.send("line/plain", "2.5")
        await again.wait(1)
        await asyncio.sleep(0.3)
        assert [m.value for m in again.got] == [2.5]
        assert source.health.bad_readings == 0
    finally:
        pub.close()
        await source.stop()


async def test_refusals_are_logged_once_a_window_with_counts_per_reason(mosquitto, monkeypatch, caplog) -> None:
    import gateway.sources.mqtt.source as mqtt_module

    monkeypatch.setattr(mqtt_module, "LOG_EVERY", 2.0)
    sink = Collector()
    source = _source(mosquitto.port, sink)
    await source.start()
    pub = Publisher(mosquitto.port)

    async def bad(n: int) -> None:
        deadline = time.monotonic() + 8
        while source.health.bad_readings < n:
            assert time.monotonic() < deadline, source.health.as_dict()
            await asyncio.sleep(0.02)

    try:
        await _connected(source)
        window = time.monotonic()
        pub.send("line/plain", "abc")  # the first of a window: logged at once
        await bad(1)
        for topic, payload in [("line/plain", "1_0"), ("line/json", '{"reading": {"value": 1, "ts": "soon"}}'),
                               ("line/plain", "\u0661\u0660"), ("line/json", '{"reading": {"value": 1, "ts": "late"}}')]:
            pub.send(topic, payload)
        await bad(5)
        assert time.monotonic() - window < 2.0, "too slow to stay inside one log window"
        await asyncio.sleep(2.0 - (time.monotonic() - window) + 0.1)
        pub.send("line/plain", "x")
        await bad(6)
    finally:
        pub.close()
        await source.stop()
    lines = [r.getMessage() for r in caplog.records if "message skipped" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "is not a number: 'abc'" in lines[0] and "more since" not in lines[0]
    assert lines[1].endswith("(+4 more since last report: 2 bad timestamp, 2 not a number)"), lines[1]
    assert source.health.details["malformed_reasons"] == {"not a number": 4, "bad timestamp": 2}


async def test_a_worker_that_keeps_dying_is_restarted_with_growing_delays(mosquitto) -> None:
    """A worker that dies right after its CONNACK (as one did on a message the broker redelivered to
    every new worker) is restarted after growing delays, not about once a second for good: only a
    session that lasted resets the backoff."""
    import dataclasses

    source = _source(mosquitto.port, Collector())
    source.config = dataclasses.replace(source.config, backoff=BackoffConfig(0.1, 5.0))
    await source.start()
    gaps: list[float] = []
    try:
        for _ in range(5):
            await _connected(source)
            pid = source.health.details["worker_pid"]
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 8
            while source.health.details["worker_pid"] is not None:  # its end handled: the backoff starts
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
            down = time.monotonic()
            while source.health.details["worker_pid"] is None:  # the next worker is spawned
                assert time.monotonic() < deadline
                await asyncio.sleep(0.005)
            gaps.append(time.monotonic() - down)
    finally:
        await source.stop()
    # Delays drawn from [c/2, c], c = 0.1 s * 2**attempt: the fifth at least 0.8 s (before: 0.05-0.1 s each).
    assert gaps[-1] >= 0.75, gaps
    assert source.health.reconnects == 5


async def test_broker_restart_resumes(mosquitto) -> None:
    sink = Collector()
    source = _source(mosquitto.port, sink)
    await source.start()
    try:
        await _connected(source)
        pub = Publisher(mosquitto.port)
        pub.send("line/plain", "1")
        pub.close()
        await sink.wait(1)
        mosquitto.stop()
        deadline = time.monotonic() + 5
        while source.health.state == "connected":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        mosquitto.start()
        await _connected(source)
        pub = Publisher(mosquitto.port)
        pub.send("line/plain", "2")
        pub.close()
        got = await sink.wait(2)
        assert [m.value for m in got] == [1.0, 2.0]
        assert source.health.reconnects >= 1
    finally:
        await source.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_ack_only_after_commit(mosquitto, protocol: str) -> None:
    """A sink that never commits: the broker redelivers every message to the next client of the session."""
    stalled = Collector(commit=False)
    source = await _running(mosquitto.port, stalled, protocol=protocol)
    pub = Publisher(mosquitto.port)
    try:
        for i in range(5):
            pub.send("line/json", f'{{"reading": {{"value": {i}, "ts": "2025-03-01T08:00:0{i}Z"}}}}')
        first = await stalled.wait(5)
        await asyncio.sleep(0.2)
        await source.stop()  # the gateway dies before the commit

        committing = Collector()
        source = _source(mosquitto.port, committing, protocol=protocol)
        await source.start()
        again = await committing.wait(5)
        assert [m.value for m in again] == [m.value for m in first] == [0, 1, 2, 3, 4]
        # Same identity on redelivery: the pipeline drops a copy it already stored.
        assert [m.source_key for m in again] == [m.source_key for m in first]
        await asyncio.sleep(0.3)  # let the acks reach the broker
        await source.stop()

        # Acknowledged now: a third connection of the session gets nothing old, only what is new.
        await _only_new_arrives(mosquitto.port, pub, protocol=protocol)
    finally:
        pub.close()
        await source.stop()


async def test_messages_published_while_away_arrive(mosquitto) -> None:
    """The persistent session keeps what the broker received while the gateway was down."""
    sink = Collector()
    source = await _running(mosquitto.port, sink)
    await source.stop()
    pub = Publisher(mosquitto.port)
    try:
        for i in range(3):
            pub.send("line/plain", str(i))
        source = _source(mosquitto.port, sink)
        await source.start()
        got = await sink.wait(3)
        assert [m.value for m in got] == [0.0, 1.0, 2.0]
        assert not any(math.isnan(m.value) for m in got)
    finally:
        pub.close()
        await source.stop()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_worker_crash_is_restarted_and_data_resumes(mosquitto) -> None:
    sink = Collector()
    source = await _running(mosquitto.port, sink)
    pub = Publisher(mosquitto.port)
    try:
        pid = source.health.details["worker_pid"]
        assert isinstance(pid, int) and _alive(pid) and pid != os.getpid()
        pub.send("line/plain", "1")
        await sink.wait(1)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while source.health.state == "connected":
            assert time.monotonic() < deadline, "the worker's death went unnoticed"
            await asyncio.sleep(0.02)
        await _connected(source)
        assert source.health.reconnects >= 1 and "worker" in (source.health.last_error or "")
        assert source.health.details["worker_pid"] not in (None, pid)
        pub.send("line/plain", "2")
        got = await sink.wait(2)
        assert [m.value for m in got] == [1.0, 2.0]
    finally:
        pub.close()
        await source.stop()


async def test_stop_is_fast_and_leaves_no_worker(mosquitto) -> None:
    source = await _running(mosquitto.port, Collector())
    pid = source.health.details["worker_pid"]
    assert isinstance(pid, int) and _alive(pid)
    started = time.monotonic()
    await source.stop()
    assert time.monotonic() - started < 1.5
    assert not _alive(pid) and source.health.state == "stopped"


def test_worker_exits_when_the_daemon_end_closes(mosquitto) -> None:
    """A daemon that dies without a word (SIGKILL) closes its end of the pipe: the worker goes too."""
    from gateway.sources.mqtt.worker import FrameReader, frame

    config = MqttSourceConfig("broker", "127.0.0.1", port=mosquitto.port, client_id="gw-orphan", keepalive=5)
    mine, worker = _worker()
    try:
        mine.sendall(frame(("start", config, [MqttAddress("line/plain")], os.getpid())))
        mine.settimeout(8)
        reader, messages = FrameReader(), []
        while not messages:
            messages = reader.feed(mine.recv(65536))
        assert messages[0] == ("connected", False)
        mine.close()
        assert worker.wait(3) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_tls_and_password_through_the_worker(pki, tls_broker, protocol: str) -> None:  # noqa: F811
    from gateway.config import MQTTTLS

    sink = Collector()
    source = _source(tls_broker.port, sink, protocol=protocol, client_id=f"gw-tls-{protocol}")
    source.config = MqttSourceConfig(
        "broker", "127.0.0.1", port=tls_broker.port, client_id=f"gw-tls-{protocol}", protocol=protocol,
        username="line3", password_file=str(pki / "mqtt.password"), keepalive=5,
        tls=MQTTTLS(ca_file=str(pki / "plant-ca.pem"), certificate=str(pki / "gateway.pem"),
                    private_key=str(pki / "gateway.key")), backoff=BackoffConfig(0.2, 1.0))
    await source.start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="tls-pub")
    pub.username_pw_set("line3", "s3cret")
    pub.tls_set(ca_certs=str(pki / "plant-ca.pem"), certfile=str(pki / "gateway.pem"),
                keyfile=str(pki / "gateway.key"))
    try:
        await _connected(source)
        pub.connect("127.0.0.1", tls_broker.port)
        pub.loop_start()
        for i in range(200):
            pub.publish("line/plain", str(i), qos=1)
        got = await sink.wait(200)
        assert [m.value for m in got] == [float(i) for i in range(200)]
    finally:
        pub.disconnect()
        pub.loop_stop()
        await source.stop()
