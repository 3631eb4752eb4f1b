"""Issue 15 item 6: the `subgroup` event carries what each chart plots (EWMA's z_i and the limits of that
point, CUSUM's C+ and C- with their runs and H, an attribute sample's count, n and value), the
`subgroups` history of get_measurements says the same per point, and the plant broker gets the same JSON.

Run through a real Gateway (SQLite file, line-side service, northbound to a real mosquitto); the
expected numbers are worked out by hand from the formulas of Montgomery, Introduction to Statistical
Quality Control, 9.1 (tabular CUSUM) and 9.2 (EWMA with exact limits), as in docs/spc.md.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway.app import Gateway
from gateway.core.model import CharacteristicKey, Measurement
from gateway.sources.registry import load_config
from tests.daemon_helpers import minimal_config, write_config
from tests.gateway_helpers import published

pytestmark = pytest.mark.timeout(60)

EWMA = [10.1, 9.95, 10.2, 10.3, 10.25]
CUSUM = [10.2, 10.1, 9.9, 10.3, 10.4, 10.45]
P = [(2, 50), (3, 50), (1, 50), (2, 50), (2, 50), (12, 50), (1, 25)]


def chart_config(tmp_path: Path, broker_port: int) -> dict:
    config = minimal_config(tmp_path)
    base = config["products"][0]["characteristics"][0]
    characteristics = []
    for name, chart, limits in (("ewma_dia", "ewma", {"center": 10.0, "sigma": 0.1}),
                                ("cusum_dia", "cusum", {"center": 10.0, "sigma": 0.1}),
                                ("p_defects", "p", {"baseline_subgroups": 5})):
        c = dict(base, name=name, chart=chart, limits=limits)
        c["modbus"] = dict(base["modbus"], address=len(characteristics) * 2)
        if chart == "p":
            # counts come from a PLC counter pair (the readings here are fed to the pipeline directly)
            c["modbus"] = {"good": {"address": 200, "data_type": "uint32"}, "bad": {"address": 202, "data_type": "uint32"},
                           "sample_every": 50}
            c.pop("sampling", None)
            c["rules"] = [1, 2, 3, 4]
        characteristics.append(c)
    config["products"][0]["characteristics"] = characteristics
    config["northbound"] = {"mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": "gw-points",
                                     "topic_prefix": "plant/spc", "qos": 1, "publish": ["subgroup"]}}
    return config


def test_subgroup_events_history_and_northbound_carry_what_each_chart_plots(tmp_path: Path, mosquitto) -> None:
    config, _ = load_config(str(write_config(tmp_path, chart_config(tmp_path, mosquitto.port))))
    northbound: list[dict] = []
    lock = threading.Lock()
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plant-points")
    subscriber.on_message = lambda c, u, m: (lock.acquire(), northbound.append(json.loads(m.payload)),
                                             lock.release())
    subscriber.connect("127.0.0.1", mosquitto.port)
    subscriber.subscribe("plant/spc/subgroup/#", qos=1)
    subscriber.loop_start()
    now = time.time()
    total = len(EWMA) + len(CUSUM) + len(P)

    async def scenario() -> tuple[list[dict], dict[str, list[dict]]]:
        gateway = Gateway(config)
        await gateway.start()
        try:
            sent = published(gateway)
            sink = gateway.pipeline.sink
            for value in EWMA:
                await sink(Measurement(CharacteristicKey(1, "ewma_dia"), value, now))
            for value in CUSUM:
                await sink(Measurement(CharacteristicKey(1, "cusum_dia"), value, now))
            for count, n in P:
                await sink(Measurement(CharacteristicKey(1, "p_defects"), 0.0, now, count=count, sample_size=n))
            deadline = time.monotonic() + 20
            while len([e for e in sent if e.type == "subgroup"]) < total:
                assert time.monotonic() < deadline, "the subgroups were not published"
                await asyncio.sleep(0.05)
            while True:
                with lock:
                    if len(northbound) >= total:
                        break
                assert time.monotonic() < deadline, "the plant broker did not get every subgroup"
                await asyncio.sleep(0.05)
            history = {name: await gateway.store.subgroups(1, name) for name in ("ewma_dia", "cusum_dia",
                                                                                  "p_defects")}
            return [e.body["subgroup"] for e in sent if e.type == "subgroup"], history
        finally:
            await gateway.stop()

    try:
        live, history = asyncio.run(scenario())
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    by_name = {name: [s for s in live if s["characteristic"] == name] for name in history}

    # EWMA, lambda 0.2, L 3: z_i and the funnel center +- 3 * 0.1 * sqrt(0.2/1.8 * (1 - 0.8^(2i)))
    z, expected = 10.0, []
    for i, x in enumerate(EWMA, 1):
        z = 0.2 * x + 0.8 * z
        half = 0.3 * math.sqrt(0.2 / 1.8 * (1 - 0.8 ** (2 * i)))
        expected.append((z, 10.0 - half, 10.0 + half))
    ewma = by_name["ewma_dia"]
    assert [(s["value"], s["lcl"], s["ucl"]) for s in ewma] == [pytest.approx(e, rel=1e-9) for e in expected]
    assert ewma[0]["ucl"] == pytest.approx(10.06) and ewma[0]["mean"] == 10.1  # the raw mean stays
    assert [s["violations"] for s in ewma] == [[], [], [], [1], [1]]  # z 10.1278 > UCL 10.1223 at i = 4

    # CUSUM, k 0.5, h 5: K = 0.05, H = 0.5 in millimetres; C+ runs up and crosses H at the fifth point
    upper = lower = 0.0
    sums = []
    for x in CUSUM:
        upper, lower = max(0.0, x - 10.05 + upper), max(0.0, 9.95 - x + lower)
        sums.append((upper, lower))
    cusum = by_name["cusum_dia"]
    assert [(s["cusum_upper"], s["cusum_lower"]) for s in cusum] == [pytest.approx(e) for e in sums]
    assert [(s["run_upper"], s["run_lower"]) for s in cusum] == [(1, 0), (2, 0), (3, 1), (4, 0), (5, 0), (6, 0)]
    assert [(s["h"], s["ucl"], s["lcl"], s["center"]) for s in cusum] == [
        pytest.approx((0.5, 0.5, -0.5, 0.0))] * len(CUSUM)
    assert all(s["value"] is None for s in cusum) and [s["violations"] for s in cusum][4:] == [[1], [1]]

    # p: count, n and the fraction, with limits for that point's n (the last sample is 25 parts)
    p = by_name["p_defects"]
    assert [(s["count"], s["n"], s["value"]) for s in p] == [(c, n, pytest.approx(c / n)) for c, n in P]
    assert p[5]["violations"] == [1] and p[6]["ucl"] == pytest.approx(0.04 + 3 * math.sqrt(0.04 * 0.96 / 25))
    assert p[6]["lcl"] == 0.0 and p[0]["ucl"] is None  # the baseline's points have no limits yet

    # the history: every key of each stored point equals the live event's (a chart drawn from it is the same)
    for name, points in history.items():
        assert len(points) == len(by_name[name])
        for stored, sent in zip(points, by_name[name], strict=True):
            assert stored == {key: sent[key] for key in stored}, name
        assert {"value", "center", "ucl", "lcl"} <= set(points[0])
    assert "cusum_upper" not in history["ewma_dia"][0] and "count" not in history["cusum_dia"][0]

    # the plant broker: the same subgroup objects
    with lock:
        plant = {(s["subgroup"]["characteristic"], s["subgroup"]["subgroup_number"]): s["subgroup"]
                 for s in northbound}
    for sent in live:
        assert plant[(sent["characteristic"], sent["subgroup_number"])] == sent
