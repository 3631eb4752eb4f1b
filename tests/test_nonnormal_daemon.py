"""Non-normal capability through the real daemon: MQTT gauge readings of a runout (bounded at 0) come in
through mosquitto, and the capability events the line-side WebSocket sends carry the fitted
distribution, its Anderson-Darling test, the percentile-method indices and the expected ppm."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest
import websockets

from tests.conftest import free_port
from tests.daemon_helpers import Daemon, write_config
from tests.test_daemon import wait_for
from tests.test_mqtt_e2e import TOPIC, mqtt_config
from tests.test_mqtt_intake import send_readings
from tests.test_spc_distributions import FOLDED

pytestmark = pytest.mark.timeout(60)


async def _capabilities(port: int, wanted: int) -> tuple[list[dict], list[dict]]:
    """The capability events of product 2, replayed from the start, and the alerts before the last."""
    got: list[dict] = []
    alerts: list[dict] = []
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/spc/product/2/?since=0") as ws:
        while len(got) < wanted:
            message = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if message["type"] == "capability":
                got.append(message["capability"])
            elif message["type"] == "alert":
                alerts.append(message["alert"])
        try:  # the CAPABILITY_LOW alert is stored in the same batch, after the capability
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 1))
                if message["type"] == "alert":
                    alerts.append(message["alert"])
        except TimeoutError:
            pass
    return got, alerts


@pytest.mark.parametrize("distribution, name, method", [("folded_normal", "folded_normal", "percentile"),
                                                        ("normal", "normal", "normal")])
def test_capability_events_carry_the_distribution(tmp_path: Path, mosquitto, distribution: str, name: str,
                                                  method: str) -> None:
    port = free_port()
    config = mqtt_config(tmp_path, mosquitto.port, port)
    characteristic = config["products"][0]["characteristics"][0]
    characteristic["capability"] = {"distribution": distribution, "every_subgroups": 50,
                                    "window_subgroups": 50, "min_cpk": 2.0}
    characteristic["spec"] = {"usl": 0.03}
    config["sources"][0]["client_id"] = f"gw-nonnormal-{distribution}"  # a fresh session per case
    daemon = Daemon(write_config(tmp_path, config)).start(wait_for_port=port)
    try:
        wait_for(lambda: "connected to" in daemon.log(), 20, "the source to connect")
        time.sleep(1.0)  # its subscription follows the connection
        send_readings(mosquitto.port, TOPIC, FOLDED, time.time() - 600)  # 50 runouts: one capability analysis
        (capability,), alerts = asyncio.run(_capabilities(port, 1))
        # the history (schema 8) answers what the event said: distribution, warning and expected ppm
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/spc/products/2/capability/", timeout=10) as r:
            (stored,) = json.loads(r.read())["capability"]
    finally:
        daemon.stop()
    assert stored["id"] == capability["id"] and stored["ppk"] == capability["ppk"]
    assert stored["distribution"] == capability["distribution"]
    assert stored["expected_ppm"] == capability["expected_ppm"]
    d = capability["distribution"]
    assert (d["name"], d["method"]) == (name, method)
    assert set(d) == {"name", "parameters", "anderson_darling", "method", "warning", "warning_texts"}
    assert set(d["anderson_darling"]) == {"statistic", "p_value"}
    assert set(capability["expected_ppm"]) == {"below", "above", "total"}
    assert capability["expected_ppm"]["below"] is None  # usl only: the runout case
    assert capability["pp"] is None and capability["cp"] is None
    if name == "folded_normal":
        # the same numbers as the fit of tests/test_spc_distributions.py (SciPy-checked)
        assert set(d["parameters"]) == {"mu", "sigma"}
        assert d["parameters"]["mu"] == pytest.approx(0.00630533957273839, rel=1e-4)
        assert capability["ppk"] == pytest.approx(1.5260540506854123, rel=1e-4) == capability["cpk"]
        assert capability["expected_ppm"]["above"] == pytest.approx(2.4537523576296594, rel=1e-3)
        assert capability["cpm"] is None and "percentile" in capability["reason"]
        # CAPABILITY_LOW watches the percentile Ppk (carried as cpk) against min_cpk 2.0
        (low,) = [a for a in alerts if a["alert_type"] == "CAPABILITY_LOW"]
        assert low["value"] == pytest.approx(capability["cpk"]) and low["limit"] == 2.0
    else:
        assert set(d["parameters"]) == {"mean", "sigma"}
        assert d["anderson_darling"]["p_value"] < 0.05 and "auto" in d["warning"]  # folded data: not normal
        # the warning in gateway.language (en here), and in every language for a screen in the other one
        assert d["warning"] == d["warning_texts"]["en"]
        assert d["warning_texts"]["ko"].startswith("측정값이 정규분포로 보이지 않습니다")
