"""EWMA and CUSUM through the real daemon (issue 15, items 1, 3 and 4): a config with `chart: ewma`
(lambda 0.1, L 2.7) and one with `chart: cusum` (k 0.5, h 4, fir true) fed Montgomery's Table 9.1 through
mosquitto; what a screen receives over the WebSocket equals `spc-gateway analyze` on the same values to
1e-9, and the violation and the OUT_OF_CONTROL alert say what the signal means, in Korean and English."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import io
import json
import math
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from gateway.tools import analyze
from tests.conftest import free_port
from tests.daemon_helpers import Daemon, write_config
from tests.test_daemon import wait_for
from tests.test_mqtt_in import Publisher
from tests.test_mqtt_intake import source_health
from tests.test_spc_time_weighted import TABLE_9_1

pytestmark = pytest.mark.timeout(90)

# Montgomery, Introduction to Statistical Quality Control, 7th ed., Table 9.1 (tests/test_spc_time_weighted.py):
# mu0 = 10 and sigma = 1 are known there, so both the daemon and `analyze` are given them as fixed limits
EWMA = {"lambda": 0.1, "L": 2.7}
CUSUM = {"k": 0.5, "h": 4, "fir": True}


def config(tmp_path: Path, broker_port: int, http_port: int) -> dict:
    def characteristic(name: str, chart: str, parameters: dict) -> dict:
        return {"name": name, "unit": "mm", "source": "line-broker", "mqtt": {"topic": f"line/{name}", "value": "v"},
                "spec": {"lsl": 6.0, "usl": 14.0}, "chart": chart, **parameters,
                "limits": {"center": 10.0, "sigma": 1.0}}

    return {
        "gateway": {"name": "TEST-LINE", "language": "en", "timezone": "UTC"},
        "storage": {"path": str(tmp_path / "spc.sqlite3")},
        "server": {"listen": f"127.0.0.1:{http_port}"},
        "sources": [{"name": "line-broker", "type": "mqtt", "host": "127.0.0.1", "port": broker_port,
                     "client_id": "spc-gw-time-weighted", "qos": 1}],
        "products": [{"id": 1, "code": "SHAFT-20", "name": "20mm 샤프트", "characteristics": [
            characteristic("journal", "ewma", EWMA), characteristic("shoulder", "cusum", CUSUM)]}],
    }


def analyzed(tmp_path: Path, *options: str) -> dict:
    """`spc-gateway analyze` on Table 9.1 with these options, as its JSON."""
    csv = tmp_path / "table_9_1.csv"
    csv.write_text("value\n" + "".join(f"{x!r}\n" for x in TABLE_9_1), encoding="utf-8")
    parser = argparse.ArgumentParser(prog="spc-gateway analyze")
    analyze.add_arguments(parser)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert analyze.run(parser.parse_args([str(csv), "--center", "10", "--sigma", "1", *options])) == 0
    return json.loads(out.getvalue())


async def collect(http_port: int, broker_port: int) -> list[dict]:
    """Every message of product 1 over its WebSocket while Table 9.1 is published to both gauges."""
    got: list[dict] = []
    async with connect(f"ws://127.0.0.1:{http_port}/ws/spc/product/1/") as ws:
        publisher = Publisher(broker_port)
        try:
            for x in TABLE_9_1:
                publisher.send("line/journal", json.dumps({"v": x}))
                publisher.send("line/shoulder", json.dumps({"v": x}))
        finally:
            publisher.close()
        deadline = time.monotonic() + 30
        while len(points(got)) < 2 * len(TABLE_9_1):
            try:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic())))
            except TimeoutError:
                kinds = collections.Counter(m.get("type") for m in got)
                raise AssertionError(f"{len(points(got))} points only in 30 s ({dict(kinds)})") from None
        with contextlib.suppress(TimeoutError):  # the alerts of the last commit
            while True:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))
    return got


def points(messages: list[dict]) -> list[dict]:
    """The charted points a screen got: n = 1, so each rides in its measurement's frame (lean frames)."""
    return [m["subgroup"] for m in messages if m.get("type") == "measurement" and m.get("subgroup")]


def of(messages: list[dict], kind: str, characteristic: str) -> list[dict]:
    if kind == "subgroup":
        return [p for p in points(messages) if p.get("characteristic") == characteristic]
    return [m[kind] for m in messages if m.get("type") == kind and m[kind].get("characteristic") == characteristic]


def test_ewma_and_cusum_through_mqtt_equal_analyze_and_say_what_they_saw(tmp_path: Path, mosquitto) -> None:
    http_port = free_port()
    daemon = Daemon(write_config(tmp_path, config(tmp_path, mosquitto.port, http_port)))
    daemon.start(wait_for_port=http_port)
    try:
        wait_for(lambda: source_health(http_port)["state"] == "connected", 15, "the MQTT source to connect")
        time.sleep(0.3)  # SUBACK
        messages = asyncio.run(collect(http_port, mosquitto.port))
    finally:
        daemon.stop()

    # EWMA: z_i and its funnel of limits, point by point, as analyze --chart ewma --lambda 0.1 --L 2.7
    ewma = analyzed(tmp_path, "--chart", "ewma", "--lambda", "0.1", "--L", "2.7")["points"]
    journal = of(messages, "subgroup", "journal")
    assert [s["mean"] for s in journal] == TABLE_9_1
    for point, expected in zip(journal, ewma, strict=True):
        for ours, theirs in (("value", "value"), ("ucl", "ucl"), ("lcl", "lcl"), ("center", "center")):
            assert math.isclose(point[ours], expected[theirs], rel_tol=0, abs_tol=1e-9), (point, expected)
        assert point["violations"] == expected["violations"]
    assert [s["subgroup_number"] for s in journal if s["violations"]] == [29, 30]  # Montgomery: 29 first

    # CUSUM: both sums, their runs and H, as analyze --chart cusum --k 0.5 --h 4 --fir
    result = analyzed(tmp_path, "--chart", "cusum", "--k", "0.5", "--h", "4", "--fir")
    shoulder = of(messages, "subgroup", "shoulder")
    for point, expected in zip(shoulder, result["points"], strict=True):
        for key in ("cusum_upper", "cusum_lower"):
            assert math.isclose(point[key], expected[key], rel_tol=0, abs_tol=1e-9), (point, expected)
        assert (point["run_upper"], point["run_lower"]) == (expected["run_upper"], expected["run_lower"])
        assert (point["ucl"], point["lcl"], point["h"]) == (expected["ucl"], expected["lcl"], result["limits"]["h"])
        assert point["value"] is None and expected["value"] is None  # CUSUM plots two sums
        assert point["violations"] == expected["violations"]
    first = next(i for i, p in enumerate(result["points"]) if p["violations"])
    signal = result["points"][first]
    run = signal["run_upper"]
    # Montgomery 9.1.2: new mean = mu0 + K + C+/N+; with sigma 1 and n = 1 the shift in sigma is the same number
    shift = 0.5 + signal["cusum_upper"] / run

    # the words: the violation event and the alert, in both languages
    journal_violation = of(messages, "violation", "journal")[0]
    assert journal_violation["subgroup_number"] == 29 and journal_violation["rule"] == 1
    assert journal_violation["message"].startswith("EWMA beyond UCL: slow drift upward (journal: EWMA 10.6468")
    assert journal_violation["texts"]["ko"]["message"].startswith("EWMA 관리 상한 초과: 평균이 서서히 위로")
    shoulder_violation = of(messages, "violation", "shoulder")[0]
    words = f"CUSUM upward shift: mean moved about +{shift:.1f} σ, starting {run} points ago"
    assert shoulder_violation["message"].startswith(words), (shoulder_violation, words)
    assert shoulder_violation["texts"]["ko"]["message"].startswith(f"CUSUM 상향 이동 감지: 평균이 약 +{shift:.1f}σ 이동 "
                                                                   f"({run}점 전부터)")
    alerts: dict[str, dict] = {}  # as first raised (point 30 is counted as a repeat of the same alert)
    for alert in (m["alert"] for m in messages if m.get("type") == "alert"):
        if alert["alert_type"] == "OUT_OF_CONTROL":
            alerts.setdefault(alert["characteristic"], alert)
    assert alerts["journal"]["message"] == journal_violation["message"]
    assert alerts["journal"]["texts"]["ko"]["message"] == journal_violation["texts"]["ko"]["message"]
    assert alerts["journal"]["value"] == pytest.approx(ewma[28]["value"], abs=1e-9)
    assert alerts["shoulder"]["message"] == shoulder_violation["message"]
    assert alerts["shoulder"]["texts"]["ko"]["title"] == "관리한계 이탈"
    assert alerts["shoulder"]["value"] == pytest.approx(signal["cusum_upper"], abs=1e-9)
    assert alerts["shoulder"]["limit"] == pytest.approx(4.0)
