"""The HMI page follows lean frames (docs/protocol.md "Frames per reading") against the real daemon:
points of n = 1 that come only inside their measurements are charted live, and a rule that keeps
firing is one line in the violations list, updated with its count, not a line per reading."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.daemon_helpers import Daemon, write_config
from tests.hmi_fixtures import Screen
from tests.test_hmi_daemon import Gauges, hmi_config, rows, wait_for

pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(120)


def test_the_page_charts_folded_points_and_keeps_one_line_per_firing_rule(tmp_path: Path, mosquitto,
                                                                           browser) -> None:
    http_port = free_port()
    db = tmp_path / "spc.sqlite3"
    daemon = Daemon(write_config(tmp_path, hmi_config(tmp_path, mosquitto.port, http_port)))
    daemon.start(wait_for_port=http_port)
    gauges = Gauges(mosquitto.port)
    rng = random.Random(3)
    screen = None
    try:
        wait_for(lambda: "connected to" in daemon.log(), 10, "the MQTT source to connect")
        time.sleep(0.3)
        for _ in range(20):  # inside one sigma of limits from a wider process: test 7 holds from point 15
            gauges.reading("diameter", round(10.0 + rng.uniform(-0.04, 0.04), 4))
        wait_for(lambda: rows(db, "select count(*) from measurements")[0][0] >= 20, 10, "the history")
        screen = Screen(browser, f"http://127.0.0.1:{http_port}")
        page = screen.page
        page.click("#nav-charts")
        page.wait_for_selector(".chart-location .chart-sub:has-text('20')")

        for _ in range(40):  # live, about two seconds: the start was in the history, these are its updates
            gauges.reading("diameter", round(10.0 + rng.uniform(-0.04, 0.04), 4))
            time.sleep(0.05)
        # every live point was charted, though none came as a `subgroup` message
        page.wait_for_selector(".chart-location .chart-sub:has-text('60')", timeout=10_000)
        rule7 = page.locator(".pv-viol li:has(.rule-no:text-is('7'))")
        rule7.first.wait_for(timeout=5000)
        page.wait_for_timeout(1500)  # the update a second later replaces the line, adds none
        assert rule7.count() == 1
        assert "점째 계속" in rule7.first.inner_text()
        page.click("#btn-lang")
        assert "still holds" in page.locator(".pv-viol li:has(.rule-no:text-is('7'))").first.inner_text()
        assert screen.unexpected_errors() == []
    finally:
        if screen is not None:
            screen.close()
        gauges.close()
        daemon.stop()
