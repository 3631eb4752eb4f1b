"""Count data over MQTT (issue 15 item 2): a JSON payload with a count and a sample size at the configured
paths, through the real daemon and a real mosquitto. Every hostile count is refused with its reason,
acknowledged and counted per reason in /healthz; none stops the intake or reaches the p chart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.test_daemon import wait_for
from tests.test_mqtt_intake import Gauge, rows, source_health, subscribed_daemon

pytestmark = pytest.mark.timeout(90)

P_TOPIC = "line3/visual/rejects"
C_TOPIC = "line3/visual/scratches"
U_TOPIC = "line3/visual/defects"


def counts_config(tmp_path: Path, broker_port: int, http_port: int) -> dict:
    def characteristic(name: str, chart: str, block: dict) -> dict:
        return {"name": name, "source": "line-broker", "chart": chart, "mqtt": block,
                "spec": {"usl": 1000.0}, "limits": {"baseline_subgroups": 5}, "rules": [1, 2, 3, 4]}

    return {
        "gateway": {"name": "TEST-LINE", "language": "en", "timezone": "UTC"},
        "storage": {"path": str(tmp_path / "spc.sqlite3")},
        "server": {"listen": f"127.0.0.1:{http_port}"},
        "sources": [{"name": "line-broker", "type": "mqtt", "host": "127.0.0.1", "port": broker_port,
                     "client_id": "spc-gw-counts", "qos": 1, "backoff": {"initial": "200ms", "maximum": "2s"}}],
        "products": [{"id": 3, "code": "COVER-7", "name": "Cover", "characteristics": [
            characteristic("rejects", "p", {"topic": P_TOPIC, "count": "result.rejected", "n": "result.inspected",
                                            "timestamp": "ts"}),
            characteristic("scratches", "c", {"topic": C_TOPIC, "count": "scratches"}),
            characteristic("defects", "u", {"topic": U_TOPIC, "count": "defects", "n": "units"}),
        ]}],
    }


def stored(db: Path, characteristic: str) -> list[tuple]:
    return rows(db, "SELECT count, sample_size FROM measurements WHERE characteristic = ? ORDER BY id",
                characteristic)


@pytest.fixture
def daemon(tmp_path: Path, mosquitto):
    http_port = free_port()
    daemon = subscribed_daemon(tmp_path, counts_config(tmp_path, mosquitto.port, http_port), http_port)
    yield daemon
    daemon.stop()


def p_sample(rejected: object, inspected: object, ts: float) -> tuple[str, str]:
    return P_TOPIC, json.dumps({"result": {"rejected": rejected, "inspected": inspected}, "ts": ts})


def test_counts_are_charted_and_hostile_counts_refused_by_reason(daemon, mosquitto) -> None:
    db, http_port = daemon.db, daemon.http_port
    base = time.time() - 600
    gauge = Gauge(mosquitto.port)
    try:
        gauge.send([p_sample(r, 50, base + i) for i, r in enumerate((2, 3, 1, 2, 2))])  # p-bar = 10/250
        gauge.send([
            (P_TOPIC, json.dumps({"result": {"inspected": 50}, "ts": base})),  # missing field
            p_sample("three", 50, base),  # not a number
            p_sample(-1, 50, base),  # negative count
            p_sample(2.5, 50, base),  # not whole
            p_sample(60, 50, base),  # count above n (a p chart counts parts among n)
            p_sample(1, 0, base),  # n not positive
            p_sample(1, -5, base),  # n not positive
            p_sample(1, 49.5, base),  # a p chart's n is whole parts
            (P_TOPIC, '{"result": {"rejected": NaN, "inspected": 50}, "ts": 1}'),  # not finite
            p_sample(1e300, 50, base),  # whole, but no sample is that large
            p_sample(True, 50, base),  # JSON true is not a count
            p_sample("12", "50", base + 10),  # numbers as text, the gauge's number form: a good sample
            (C_TOPIC, json.dumps({"scratches": 4})),  # a c chart takes no n
            (C_TOPIC, json.dumps({"scratches": 4.0})),  # a whole count written with a fraction part
            (U_TOPIC, json.dumps({"defects": 7, "units": 2.5})),  # u: defects may exceed units, n may be a fraction
            (U_TOPIC, json.dumps({"defects": 7})),  # missing n
        ])
        wait_for(lambda: len(stored(db, "defects")) == 1 and len(stored(db, "rejects")) == 6, 15,
                 f"the good samples; log:\n{daemon.log()}")
        wait_for(lambda: source_health(http_port)["bad_readings"] == 12, 10, "every refusal counted")
    finally:
        gauge.close()
    health = source_health(http_port)
    assert health["state"] == "connected" and health["reconnects"] == 0
    assert health["malformed_reasons"] == {
        "missing field": 2, "not a number": 2, "negative count": 1, "not whole": 2, "count above n": 1,
        "n not positive": 2, "not finite": 1, "out of range": 1}
    assert stored(db, "rejects") == [(2, 50), (3, 50), (1, 50), (2, 50), (2, 50), (12, 50)]
    assert stored(db, "scratches") == [(4, None), (4, None)]
    assert stored(db, "defects") == [(7, 2.5)]
    # The sixth p sample, 12 of 50 (0.24), is beyond p-bar + 3 sd = 0.04 + 3 sqrt(0.04 * 0.96 / 50) = 0.123
    plotted = rows(db, "SELECT mean, center, ucl, violations FROM subgroups WHERE characteristic = 'rejects' "
                       "ORDER BY subgroup_number")
    assert [round(v, 4) for v, *_ in plotted] == [0.04, 0.06, 0.02, 0.04, 0.04, 0.24]
    assert plotted[-1][1] == pytest.approx(0.04) and plotted[-1][2] == pytest.approx(0.04 + 3 * (0.04 * 0.96 / 50) ** 0.5)
    assert "Traceback" not in daemon.log()
