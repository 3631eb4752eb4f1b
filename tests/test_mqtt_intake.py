"""Bad MQTT gauge messages through the real daemon and a real mosquitto (issue 13): none of them stops
the intake, none reaches SPC, and a good reading after any of them is stored."""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import free_port
from tests.daemon_helpers import Daemon, read_json, write_config
from tests.test_daemon import wait_for

pytestmark = pytest.mark.timeout(60)

JSON_TOPIC = "line3/gauges/shaft/runout"
PLAIN_TOPIC = "line3/gauges/shaft/length"
GOOD_TOPIC = "line3/gauges/shaft/diameter"


def intake_config(tmp_path: Path, broker_port: int, http_port: int, *, timezone: str = "Asia/Seoul",
                  baseline: int = 5) -> dict:
    """Three MQTT characteristics: JSON with a timestamp, a plain number, and one for known-good readings."""
    def characteristic(name: str, mqtt_block: dict) -> dict:
        return {"name": name, "unit": "mm", "source": "line-broker", "mqtt": mqtt_block,
                "spec": {"lsl": 0.0, "usl": 1000.0}, "chart": "imr",
                "limits": {"baseline_subgroups": baseline}, "rules": "nelson"}

    return {
        "gateway": {"name": "TEST-LINE", "language": "en", "timezone": timezone},
        "storage": {"path": str(tmp_path / "spc.sqlite3")},
        "server": {"listen": f"127.0.0.1:{http_port}"},
        "sources": [{"name": "line-broker", "type": "mqtt", "host": "127.0.0.1", "port": broker_port,
                     "client_id": "spc-gw-intake", "qos": 1, "backoff": {"initial": "200ms", "maximum": "2s"}}],
        "products": [{"id": 2, "code": "SHAFT-20", "name": "20mm 샤프트", "characteristics": [
            characteristic("runout", {"topic": JSON_TOPIC, "value": "reading.value", "timestamp": "reading.ts"}),
            characteristic("length", {"topic": PLAIN_TOPIC}),
            characteristic("diameter", {"topic": GOOD_TOPIC, "value": "v", "timestamp": "ts"}),
        ]}],
    }


class Gauge:
    """A QoS-1 publisher: what a gauge on the line would be."""

    def __init__(self, port: int):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"gauge-{time.monotonic_ns()}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, messages: list[tuple[str, bytes | str]]) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def send_readings(broker_port: int, topic: str, values: list[float], base: float) -> None:
    """`values` as JSON readings `{"reading": {"value", "ts"}}` on `topic`, their times a second apart from
    `base` on, each acknowledged by the broker."""
    gauge = Gauge(broker_port)
    try:
        gauge.send([(topic, json.dumps({"reading": {"value": v, "ts": base + i}})) for i, v in enumerate(values)])
    finally:
        gauge.close()


def healthz(http_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5) as response:
        return json.loads(response.read())
    # /healthz answers 503 while a source is down: urlopen raises then, and callers retry


def source_health(http_port: int) -> dict[str, Any]:
    return healthz_any(http_port)["sources"]["line-broker"]


def subscribed_daemon(tmp_path: Path, config: dict, http_port: int) -> Daemon:
    """The daemon on an MQTT `config` serving on `http_port`, once its source has subscribed; the test
    finds the port and the database as `daemon.http_port` and `daemon.db`."""
    daemon = Daemon(write_config(tmp_path, config))
    daemon.http_port = http_port  # type: ignore[attr-defined]
    daemon.db = tmp_path / "spc.sqlite3"  # type: ignore[attr-defined]
    daemon.start(wait_for_port=http_port)
    wait_for(lambda: source_health(http_port)["state"] == "connected", 15, "the MQTT source to connect")
    time.sleep(0.3)  # SUBACK
    return daemon


def rows(db: Path, sql: str, *args: Any) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(sql, args).fetchall()


def stored(db: Path, characteristic: str) -> list[tuple[float, float, int]]:
    """(value, measured_at, sample_number) of one characteristic's measurements, in order."""
    return rows(db, "SELECT value, measured_at, sample_number FROM measurements WHERE characteristic = ? "
                    "ORDER BY id", characteristic)


@pytest.fixture
def daemon(tmp_path: Path, mosquitto, request):
    """The daemon on an MQTT config (parametrize with indirect=True to pass config keyword arguments)."""
    http_port = free_port()
    options = getattr(request, "param", {})
    daemon = subscribed_daemon(tmp_path, intake_config(tmp_path, mosquitto.port, http_port, **options), http_port)
    yield daemon
    daemon.stop()


def good(i: int, base: float) -> tuple[str, str]:
    return GOOD_TOPIC, json.dumps({"v": 10.0 + i * 0.01, "ts": base + i})


def test_poison_payloads_do_not_stop_the_intake(daemon, mosquitto) -> None:
    """A 60 KB JSON nested 30,000 deep, a 401-digit integer (as value and as timestamp): each is refused
    with its reason, and the readings after them are stored. Before, the worker died on the first one,
    the broker redelivered it to every new worker, and nothing was stored again."""
    db, http_port = daemon.db, daemon.http_port
    worker = source_health(http_port)["worker_pid"]
    deep = b"[" * 30_000 + b"]" * 30_000
    assert len(deep) < 64 * 1024
    gauge = Gauge(mosquitto.port)
    base = time.time() - 600
    try:
        gauge.send([(JSON_TOPIC, deep),
                    (JSON_TOPIC, '{"reading": {"value": 1' + "0" * 400 + ', "ts": 1740783600}}'),
                    (JSON_TOPIC, '{"reading": {"value": 1.5, "ts": 1' + "0" * 400 + "}}"),
                    (PLAIN_TOPIC, "1" + "0" * 400),
                    good(0, base)])
        wait_for(lambda: len(stored(db, "diameter")) == 1, 10, f"the good reading; log:\n{daemon.log()}")
        gauge.send([good(1, base)])
        wait_for(lambda: len(stored(db, "diameter")) == 2, 10, "the second good reading")
    finally:
        gauge.close()
    health = source_health(http_port)
    assert health["worker_pid"] == worker, "the worker died on a payload"
    assert health["state"] == "connected" and health["reconnects"] == 0
    assert health["bad_readings"] == 4
    assert health["malformed_reasons"] == {"not JSON": 1, "not finite": 2, "bad timestamp": 1}
    assert stored(db, "runout") == [] and stored(db, "length") == []
    log = daemon.log()
    assert "Traceback" not in log
    # One log line in the window: the deep JSON in full, or counted in it if it came in the same batch.
    assert "nested too deeply" in log or "1 not JSON" in log, log


@pytest.mark.parametrize("daemon", [{"timezone": "Asia/Seoul", "baseline": 5}], indirect=True)
def test_timestamps_the_store_cannot_hold_never_reach_spc(daemon, mosquitto) -> None:
    """1e300, -1e15, the year 9999 at -23:59, and 9999-12-31T20:00Z (the year 10000 in Seoul): refused
    with a reason before the engine. The engine's sample numbers stay those of the stored rows and the
    learned limits come from stored values only (before, each was a phantom sample, a value in the
    limits that is not in the database, and an ERROR traceback)."""
    db, http_port = daemon.db, daemon.http_port
    base = time.time() - 600

    def runout(value: float, ts: Any) -> tuple[str, str]:
        return JSON_TOPIC, json.dumps({"reading": {"value": value, "ts": ts}})

    values = [10.0, 10.2, 9.9, 10.1, 10.05, 9.95]
    gauge = Gauge(mosquitto.port)
    try:
        gauge.send([runout(values[0], base), runout(values[1], base + 1),
                    runout(900.0, 1e300), runout(900.0, -1e15), runout(900.0, "9999-12-31T23:59:59-23:59"),
                    runout(900.0, "9999-12-31T20:00:00Z"),
                    runout(values[2], base + 2), runout(values[3], base + 3), runout(values[4], base + 4),
                    runout(values[5], base + 5)])
        wait_for(lambda: len(stored(db, "runout")) == 6, 10, f"six readings; log:\n{daemon.log()}")
        time.sleep(0.3)
    finally:
        gauge.close()
    got = stored(db, "runout")
    assert [v for v, _, _ in got] == values
    assert [n for _, _, n in got] == [1, 2, 3, 4, 5, 6], "the engine counted readings that were not stored"
    (center,) = rows(db, "SELECT center FROM control_limits WHERE characteristic = 'runout' AND source = 'learned'")[0]
    assert center == pytest.approx(statistics.fmean(values[:5]))
    health = source_health(http_port)
    assert health["bad_readings"] == 4 and health["malformed_reasons"] == {"bad timestamp": 4}
    pipeline = healthz_any(http_port)["pipeline"]
    assert pipeline["rejected"] == 4 and pipeline["ingested"] == 6
    log = daemon.log()
    assert "Traceback" not in log and " ERROR " not in log
    assert "is not a date the gateway can store" in log


def healthz_any(http_port: int) -> dict[str, Any]:
    return read_json(f"http://127.0.0.1:{http_port}/healthz")


def test_python_only_number_forms_are_refused(daemon, mosquitto) -> None:
    """`1_0`, Arabic-Indic and full-width digits are Python's number forms, not a gauge's: refused as
    "not a number" (before, each was stored as 10.0)."""
    db, http_port = daemon.db, daemon.http_port
    base = time.time() - 600
    gauge = Gauge(mosquitto.port)
    try:
        gauge.send([(PLAIN_TOPIC, "1_0"), (PLAIN_TOPIC, "١٠"), (PLAIN_TOPIC, "１０"), (PLAIN_TOPIC, "٣.٥"),
                    (JSON_TOPIC, json.dumps({"reading": {"value": "1_0", "ts": base}})),
                    (JSON_TOPIC, json.dumps({"reading": {"value": 1.0, "ts": "١٧٤٠٧٨٣٦٠٠"}})),
                    (PLAIN_TOPIC, "12.5"), (PLAIN_TOPIC, "-1.25e-1"), good(0, base)])
        wait_for(lambda: len(stored(db, "diameter")) == 1, 10, "the good reading")
        wait_for(lambda: len(stored(db, "length")) == 2, 5, "the two plain numbers")
    finally:
        gauge.close()
    assert [v for v, _, _ in stored(db, "length")] == [12.5, -0.125]
    assert stored(db, "runout") == []
    health = source_health(http_port)
    assert health["malformed_reasons"] == {"not a number": 5, "bad timestamp": 1}
    assert "Traceback" not in daemon.log()
