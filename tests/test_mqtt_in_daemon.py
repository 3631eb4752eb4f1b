"""MQTT in on paho's public API, through the worker process and the real daemon, against mosquitto.

Readings are acknowledged to the broker only after their commit and refusals at once; a stop that
arrives with the start ends the worker; a SIGKILL mid-stream loses nothing and stores nothing twice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.test_mqtt_in import Collector, Publisher, _connected, _only_new_arrives, _source, _worker

pytestmark = [pytest.mark.timeout(40), pytest.mark.anyio]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_readings_are_acked_after_commit_and_refusals_at_once(mosquitto, protocol: str) -> None:
    """Readings and refusals alike: a reading is acknowledged only once committed, a refused message
    at once."""
    client_id = f"gw-acks-{protocol}"
    stalled = Collector(commit=False)
    source = _source(mosquitto.port, stalled, protocol=protocol, client_id=client_id)
    await source.start()
    pub = Publisher(mosquitto.port)
    try:
        await _connected(source)
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

        await _only_new_arrives(mosquitto.port, pub, protocol=protocol, client_id=client_id)
    finally:
        pub.close()
        await source.stop()


def test_a_stop_sent_with_the_start_ends_the_worker(mosquitto) -> None:
    """The daemon may close a session right after spawning it: the stop arrives in the same read as the
    start, and was dropped (the worker connected and ran until the daemon killed it)."""
    import os

    from gateway.sources.mqtt.settings import MqttAddress, MqttSettings
    from gateway.sources.mqtt.worker import frame

    config = MqttSettings("broker", "127.0.0.1", port=mosquitto.port, client_id="gw-stop-at-once", keepalive=5)
    mine, worker = _worker()
    try:
        mine.sendall(frame(("start", config, [MqttAddress("line/plain")], os.getpid())) + frame(("stop",)))
        assert worker.wait(3) == 0
    finally:
        mine.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_the_daemon_loses_nothing_when_killed(tmp_path: Path, mosquitto) -> None:
    """The real daemon: a SIGKILL mid-stream loses nothing and stores nothing twice (a reading is
    acknowledged only after its commit)."""
    import json
    import time
    import urllib.request

    from tests.conftest import free_port
    from tests.daemon_helpers import Daemon, write_config
    from tests.test_daemon import count, wait_for
    from tests.test_mqtt_e2e import mqtt_config, publish

    http_port = free_port()
    db = tmp_path / "spc.sqlite3"
    config = write_config(tmp_path, mqtt_config(tmp_path, mosquitto.port, http_port))

    def connected() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as reply:
                source = json.loads(reply.read())["sources"]["line-broker"]
        except urllib.error.HTTPError as exc:  # 503 until connected: the body is the same report
            source = json.loads(exc.read())["sources"]["line-broker"]
        except OSError:
            return False
        return bool(source["state"] == "connected")

    daemon = Daemon(config).start(wait_for_port=http_port)
    total = 1500
    try:
        wait_for(connected, 15, "the source to connect")
        time.sleep(0.3)  # SUBACK
        publish(mosquitto.port, 0, total, time.time() - 3600)
        wait_for(lambda: db.exists() and count(db, "select count(*) from measurements") > 100, 20, "some rows")
        daemon.kill()
        daemon = Daemon(config).start(wait_for_port=http_port)
        wait_for(lambda: count(db, "select count(*) from measurements") >= total, 30, f"all {total} rows")
        time.sleep(1.0)  # anything redelivered twice would arrive now
        assert count(db, "select count(*) from measurements") == total
        assert count(db, "select count(distinct measured_at) from measurements") == total
        assert connected()
    finally:
        daemon.stop()
