"""The one module on paho's internals (gateway.sources.mqtt.paho_private): pinned, checked, and both paths
of the MQTT-in worker (its fast client and paho's public API) run against a real mosquitto.

The first two tests fail loudly when paho-mqtt changes: a new version, or a renamed or re-shaped internal.
Then re-run the MQTT tests on the new version, bump TESTED_VERSION and the pin in pyproject.toml together
(or drop the fast client); until then the worker takes paho's public path by itself.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import tomllib
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt import __version__ as paho_version

from gateway.sources.mqtt import paho_private as mqtt_paho_private
from gateway.sources.mqtt.paho_private import FORCE_PUBLIC, TESTED_VERSION, FastClient
from tests.test_mqtt_in import Collector, Publisher, _connected, _source

pytestmark = [pytest.mark.timeout(40), pytest.mark.anyio]

REPO = Path(__file__).resolve().parent.parent

# Each internal the fast client overrides or calls, with the parameters it relies on.
EXPECTED_SIGNATURES = {
    "_sock_recv": ["self", "bufsize"],
    "_sock_close": ["self"],
    "_handle_publish": ["self"],
    "_packet_queue": ["self", "command", "packet", "mid", "qos", "info"],
    "loop_read": ["self", "max_packets"],
    "ack": ["self", "mid", "qos"],
}


def test_paho_is_the_exact_tested_version() -> None:
    pins = [d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
            if re.match(r"paho-mqtt\b", d)]
    assert pins == [f"paho-mqtt=={TESTED_VERSION}"], "pyproject.toml must pin the paho the fast client was tested with"
    assert paho_version == TESTED_VERSION, (
        f"paho-mqtt {paho_version} is installed, the fast MQTT-in client was tested with {TESTED_VERSION}: "
        "check gateway/sources/mqtt/paho_private.py against it (see this file's docstring)")


def test_paho_internals_are_there_with_the_expected_signatures(monkeypatch) -> None:
    monkeypatch.delenv(FORCE_PUBLIC, raising=False)
    for name, parameters in EXPECTED_SIGNATURES.items():
        method = getattr(paho.Client, name, None)
        assert callable(method), f"paho.Client.{name} is gone"
        assert list(inspect.signature(method).parameters) == parameters, f"paho.Client.{name} changed"
    assert mqtt_paho_private.internals_missing() == []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    assert {"command", "packet"} <= set(client._in_packet)  # what _handle_publish cuts the packet from
    assert client._protocol == paho.MQTTv5 and client._manual_ack is True and client._sock is None
    assert mqtt_paho_private.why_public() is None
    assert mqtt_paho_private.fast_client_class() is FastClient


def test_another_paho_or_the_switch_takes_the_public_path(monkeypatch) -> None:
    monkeypatch.delenv(FORCE_PUBLIC, raising=False)
    monkeypatch.setattr(mqtt_paho_private, "PAHO_VERSION", "2.3.0")
    assert mqtt_paho_private.fast_client_class() is None
    assert "2.3.0 is not the tested" in (mqtt_paho_private.why_public() or "")
    monkeypatch.setattr(mqtt_paho_private, "PAHO_VERSION", TESTED_VERSION)
    monkeypatch.setattr(mqtt_paho_private, "METHODS", (*mqtt_paho_private.METHODS, "_renamed_in_paho_3"))
    assert mqtt_paho_private.fast_client_class() is None
    assert "_renamed_in_paho_3" in (mqtt_paho_private.why_public() or "")
    monkeypatch.setattr(mqtt_paho_private, "METHODS", mqtt_paho_private.METHODS[:-1])
    monkeypatch.setenv(FORCE_PUBLIC, "public")
    assert mqtt_paho_private.fast_client_class() is None


@pytest.mark.parametrize("path", ["fast", "public"])
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_each_path_runs_acks_after_commit_and_acks_refusals(mosquitto, monkeypatch, path: str,
                                                                  protocol: str) -> None:
    """The worker says which client serves; on both: readings and refusals alike, a reading is
    acknowledged only once committed, a refused message at once."""
    if path == "public":
        monkeypatch.setenv(FORCE_PUBLIC, "public")  # the worker process inherits the environment
    else:
        monkeypatch.delenv(FORCE_PUBLIC, raising=False)
    client_id = f"gw-{path}-{protocol}"
    stalled = Collector(commit=False)
    source = _source(mosquitto.port, stalled, protocol=protocol, client_id=client_id)
    await source.start()
    pub = Publisher(mosquitto.port)
    try:
        await _connected(source)
        assert source.health.details["paho_client"].startswith(path)
        pub.send("line/plain", "abc")  # refused: acknowledged at once
        for i in range(300):
            pub.send("line/x/deep", f'{{"a": [{{"b": {i}}}]}}')
        first = await stalled.wait(300)
        assert [m.value for m in first] == list(range(300)) and source.health.bad_readings == 1
        await asyncio.sleep(0.2)
        await source.stop()  # nothing committed: every reading comes again, the refusal does not

        committing = Collector()
        source = _source(mosquitto.port, committing, protocol=protocol, client_id=client_id)
        await source.start()
        again = await committing.wait(300)
        assert [m.value for m in again] == list(range(300))
        await asyncio.sleep(0.3)  # let the acks reach the broker
        assert source.health.bad_readings == 0
        await source.stop()

        third = Collector()
        source = _source(mosquitto.port, third, protocol=protocol, client_id=client_id)
        await source.start()
        await _connected(source)
        pub.send("line/plain", "42")
        await third.wait(1)
        await asyncio.sleep(0.3)
        assert [m.value for m in third.got] == [42.0]
    finally:
        pub.close()
        await source.stop()


def test_a_stop_sent_with_the_start_ends_the_worker(mosquitto) -> None:
    """The daemon may close a session right after spawning it: the stop arrives in the same read as the
    start, and was dropped (the worker connected and ran until the daemon killed it)."""
    import os
    import socket
    import subprocess
    import sys

    from gateway.sources.mqtt.settings import MqttAddress
    from gateway.sources.mqtt.settings import MqttSettings as MqttSourceConfig
    from gateway.sources.mqtt.worker import frame

    config = MqttSourceConfig("broker", "127.0.0.1", port=mosquitto.port, client_id="gw-stop-at-once", keepalive=5)
    mine, theirs = socket.socketpair()
    worker = subprocess.Popen([sys.executable, "-m", "gateway.sources.mqtt.worker", str(theirs.fileno())],
                              pass_fds=(theirs.fileno(),))
    theirs.close()
    try:
        mine.sendall(frame(("start", config, [MqttAddress("line/plain")], os.getpid())) + frame(("stop",)))
        assert worker.wait(3) == 0
    finally:
        mine.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("path", ["fast", "public"])
def test_the_daemon_reports_its_client_and_loses_nothing_when_killed(tmp_path: Path, mosquitto, monkeypatch,
                                                                     path: str) -> None:
    """The real daemon on each client: /healthz names it, and a SIGKILL mid-stream loses nothing and
    stores nothing twice (a reading is acknowledged only after its commit, on both)."""
    import json
    import time
    import urllib.request

    from tests.conftest import free_port
    from tests.daemon_helpers import Daemon, write_config
    from tests.test_daemon import count, wait_for
    from tests.test_mqtt_e2e import mqtt_config, publish

    env = {FORCE_PUBLIC: "public"} if path == "public" else {}
    monkeypatch.delenv(FORCE_PUBLIC, raising=False)  # a developer's shell must not turn one case into the other
    http_port = free_port()
    db = tmp_path / "spc.sqlite3"
    config = write_config(tmp_path, mqtt_config(tmp_path, mosquitto.port, http_port))

    def client_name() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as reply:
                source = json.loads(reply.read())["sources"]["line-broker"]
        except urllib.error.HTTPError as exc:  # 503 until connected: the body is the same report
            source = json.loads(exc.read())["sources"]["line-broker"]
        except OSError:
            return None
        return source.get("paho_client") if source["state"] == "connected" else None

    daemon = Daemon(config, env=env).start(wait_for_port=http_port)
    total = 1500
    try:
        assert wait_for(client_name, 15, "the source to connect").startswith(path)
        time.sleep(0.3)  # SUBACK
        publish(mosquitto.port, 0, total, time.time() - 3600)
        wait_for(lambda: db.exists() and count(db, "select count(*) from measurements") > 100, 20, "some rows")
        daemon.kill()
        daemon = Daemon(config, env=env).start(wait_for_port=http_port)
        wait_for(lambda: count(db, "select count(*) from measurements") >= total, 30, f"all {total} rows")
        time.sleep(1.0)  # anything redelivered twice would arrive now
        assert count(db, "select count(*) from measurements") == total
        assert count(db, "select count(distinct measured_at) from measurements") == total
        assert client_name().startswith(path)
    finally:
        daemon.stop()
