"""Attribute capability in the history, through the real daemon (issue 15 item 2, schema 9): count samples
come over a real mosquitto, the live `capability` events carry p_bar, ppm and process_z (p chart) or u_bar
and dpu (c chart), and GET /api/spc/products/{id}/capability/ answers the same numbers under the same
names, also after the daemon is restarted on its file."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.request
from pathlib import Path

import pytest
import websockets

from tests.conftest import free_port
from tests.test_attribute_capability import ORANGE_JUICE
from tests.test_mqtt_counts import C_TOPIC, counts_config, p_sample
from tests.test_mqtt_intake import Gauge, subscribed_daemon
from tests.test_spc_attribute import CIRCUIT_BOARDS

pytestmark = pytest.mark.timeout(120)

RATE = {"rejects": ("p_bar", "ppm", "process_z"), "scratches": ("u_bar", "dpu")}


async def _capabilities(port: int, wanted: int) -> list[dict]:
    """The capability events of product 3, replayed from the start."""
    got: list[dict] = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/spc/product/3/?since=0") as ws:
        while len(got) < wanted:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message["type"] == "capability":
                got.append(message["capability"])
    return got


def _history(port: int) -> dict[str, dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/spc/products/3/capability/", timeout=10) as response:
        return {row["characteristic"]: row for row in json.loads(response.read())["capability"]}


def test_get_capability_answers_the_rate_of_p_and_c_charts_also_after_a_restart(tmp_path: Path, mosquitto) -> None:
    port = free_port()
    config = counts_config(tmp_path, mosquitto.port, port)
    rejects, scratches, defects = config["products"][0]["characteristics"]
    # one analysis over all the trial samples of each published example
    rejects.update(limits={"baseline_subgroups": 30}, capability={"every_subgroups": 30, "window_subgroups": 30})
    scratches.update(limits={"baseline_subgroups": 26}, capability={"every_subgroups": 26, "window_subgroups": 26})
    config["products"][0]["characteristics"] = [rejects, scratches]
    daemon = subscribed_daemon(tmp_path, config, port)
    try:
        base = time.time() - 600
        gauge = Gauge(mosquitto.port)
        try:
            gauge.send([p_sample(count, 50, base + i) for i, count in enumerate(ORANGE_JUICE)])
            gauge.send([(C_TOPIC, json.dumps({"scratches": count})) for count in CIRCUIT_BOARDS])
        finally:
            gauge.close()
        live = {c["characteristic"]: c for c in asyncio.run(_capabilities(port, 2))}
        stored = _history(port)
    finally:
        daemon.stop()
    # Montgomery, Introduction to Statistical Quality Control, 6th ed.: Example 7.1 (orange-juice cans,
    # p-bar = 347/1500 = 0.2313) and Example 7.3 (circuit boards, c-bar = 516/26 = 19.85)
    p, c = live["rejects"], live["scratches"]
    assert f"{p['p_bar']:.4f}" == "0.2313" and f"{c['u_bar']:.2f}" == "19.85"
    assert p["ppm"] == pytest.approx(1e6 * 347 / 1500) and c["dpu"] == pytest.approx(516 / 26)
    # Phi^-1(1 - 0.2313) by the standard normal table: between 0.73 (0.76730) and 0.74 (0.77035)
    assert f"{p['process_z']:.4f}" == "0.7345"
    for name, keys in RATE.items():
        row = stored[name]
        assert row["id"] == live[name]["id"] and row["n"] == live[name]["n"]
        assert {k: row[k] for k in keys} == {k: live[name][k] for k in keys}  # the same names, the same numbers
        assert all(row[k] is None for k in ("cp", "cpk", "pp", "ppk", "distribution", "expected_ppm"))
    assert (stored["rejects"]["u_bar"], stored["scratches"]["p_bar"]) == (None, None)

    # a restart on the same file: the history still says what the screens were told
    daemon = subscribed_daemon(tmp_path, config, port)
    try:
        again = _history(port)
    finally:
        daemon.stop()
    assert again == stored
    assert all(math.isfinite(again[n][k]) for n, keys in RATE.items() for k in keys)
    assert "Traceback" not in daemon.log()
