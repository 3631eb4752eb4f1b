"""The HMI page against the real daemon (`spc-gateway run`) fed by MQTT gauges through a real mosquitto:
a reading out of spec becomes an alert on the page within a second, an acknowledgement on one screen
reaches SQLite and the other screen, a killed gateway is reported, and alerts raised while the page
was cut off appear once it is back, none missing.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.conftest import free_port
from tests.daemon_helpers import Daemon, write_config
from tests.hmi_fixtures import EXPECTED_WHILE_DOWN, Screen

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(90)

TOPICS = {"diameter": "line3/bolt/diameter", "length": "line3/bolt/length", "runout": "line3/shaft/runout"}


def hmi_config(tmp_path: Path, broker_port: int, http_port: int) -> dict:
    def characteristic(name: str, spec: dict, center: float, sigma: float) -> dict:
        return {"name": name, "unit": "mm", "source": "gauges", "mqtt": {"topic": TOPICS[name]},
                "spec": spec, "chart": "imr", "limits": {"center": center, "sigma": sigma}, "rules": "nelson"}

    return {
        "gateway": {"name": "LINE-3", "language": "ko", "timezone": "Asia/Seoul"},
        "storage": {"path": str(tmp_path / "spc.sqlite3")},
        "server": {"listen": f"127.0.0.1:{http_port}"},
        "sources": [{"name": "gauges", "type": "mqtt", "host": "127.0.0.1", "port": broker_port,
                     "client_id": "spc-gw-hmi-test", "qos": 1}],
        "products": [
            {"id": 1, "code": "BOLT-M10", "name": "M10 볼트", "characteristics": [
                characteristic("diameter", {"lsl": 9.5, "target": 10.0, "usl": 10.5}, 10.0, 0.1),
                characteristic("length", {"lsl": 39.8, "usl": 40.2}, 40.0, 0.04)]},
            {"id": 2, "code": "SHAFT-20", "name": "20mm 샤프트", "characteristics": [
                characteristic("runout", {"usl": 0.05}, 0.02, 0.005)]},
        ],
    }


class Gauges:
    """An MQTT client publishing readings as the line's gauges do."""

    def __init__(self, port: int):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hmi-test-gauges")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def reading(self, characteristic: str, value: float) -> None:
        self.client.publish(TOPICS[characteristic], str(value), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(sql, args).fetchall()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except sqlite3.OperationalError:  # the daemon has not created the schema yet
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_against_the_running_daemon(tmp_path: Path, mosquitto, browser) -> None:
    http_port = free_port()
    db = tmp_path / "spc.sqlite3"
    config = write_config(tmp_path, hmi_config(tmp_path, mosquitto.port, http_port))
    daemon = Daemon(config).start(wait_for_port=http_port)
    gauges = Gauges(mosquitto.port)
    screens: list[Screen] = []
    try:
        wait_for(lambda: "connected to" in daemon.log(), 10, "the MQTT source to connect")
        time.sleep(0.3)  # the subscription follows the connection
        for i in range(30):
            gauges.reading("diameter", round(10.0 + 0.05 * ((i * 7) % 5 - 2), 3))
        wait_for(lambda: rows(db, "select count(*) from measurements")[0][0] >= 30, 10, "the history")

        url = f"http://127.0.0.1:{http_port}"
        first = Screen(browser, url)
        screens.append(first)
        second = Screen(browser, url, size=(1920, 1080))
        screens.append(second)
        page = first.page

        # A reading out of spec: the gateway raises the alert, the page shows it within a second.
        started = time.monotonic()
        gauges.reading("diameter", 10.9)
        page.wait_for_selector(".toast .toast-title:has-text('품질 경고: BOLT-M10')", timeout=1000)
        page.wait_for_selector(".alert-row.s-open", timeout=1000)
        assert time.monotonic() - started < 1.0
        alert_id = wait_for(lambda: rows(db, "select id from alerts where alert_type = 'OUT_OF_SPEC'"), 5,
                            "the alert in SQLite")[0][0]

        # Acknowledged on the first screen: stored, and shown on the second.
        page.click(f".alert-row[data-id='{alert_id}'] button[data-ack]")
        page.fill("#modal input[name=operator]", "박영희")
        page.fill("#modal textarea[name=comment]", "게이지 점검")
        page.click("#modal .modal-ok")
        page.wait_for_selector("#feedback.ok")
        status = wait_for(lambda: rows(db, "select status from alerts where id = ? and status = 'ACKNOWLEDGED'",
                                       alert_id), 5, "the acknowledgement in SQLite")
        assert status == [("ACKNOWLEDGED",)]
        who = rows(db, "select who, comment from alert_history where alert_id = ? and to_status = 'ACKNOWLEDGED'",
                   alert_id)
        assert who == [("박영희", "게이지 점검")]
        second.page.wait_for_selector(f".alert-row.s-acknowledged[data-id='{alert_id}']", timeout=3000)
        # A finding added later: stored as its own step, shown on the other screen.
        page.click(f".alert-row[data-id='{alert_id}']")
        page.click("#btn-act-comment")
        page.fill("#modal textarea[name=comment]", "마스터 게이지로 재측정: 10.88")
        page.click("#modal .modal-ok")
        wait_for(lambda: rows(db, "select who, comment from alert_history where alert_id = ? and action = 'comment'",
                              alert_id) == [("박영희", "마스터 게이지로 재측정: 10.88")], 5, "the comment in SQLite")
        second.page.wait_for_selector(f".alert-row[data-id='{alert_id}']:has-text('마스터 게이지로 재측정')",
                                      timeout=3000)
        first.shot("daemon-alarms-1280x800")
        second.shot("daemon-alarms-1920x1080")

        page.click("#nav-charts")
        page.wait_for_selector(".chart-location .chart-sub:has-text('31')")
        first.shot("daemon-product-view-1280x800")
        page.click("#nav-alarms")

        # Killed: the page says so well within 40 s.
        daemon.kill()
        started = time.monotonic()
        page.wait_for_selector("#conn[data-state=reconnecting], #conn[data-state=offline]", timeout=40_000)
        assert time.monotonic() - started < 40
        # Keep this screen cut off while the gateway comes back and raises new alerts.
        first.context.set_offline(True)
        daemon = Daemon(config).start(wait_for_port=http_port)
        wait_for(lambda: "connected to" in daemon.log(), 10, "the MQTT source to reconnect")
        time.sleep(0.3)
        gauges.reading("length", 40.5)
        gauges.reading("runout", 0.09)
        missed = wait_for(lambda: (r := rows(db, "select id from alerts where alert_type = 'OUT_OF_SPEC' "
                                                 "and id != ? order by id", alert_id)) and len(r) == 2 and r,
                          10, "two new alerts in SQLite")
        first.context.set_offline(False)
        page.wait_for_selector("#conn[data-state=live]", timeout=5000)
        for (missed_id,) in missed:
            page.wait_for_selector(f".alert-row[data-id='{missed_id}']", timeout=3000)
        assert page.locator(".toast").count() >= 2

        page.click("#btn-lang")
        assert page.inner_text("#conn .conn-state") == "LIVE"
        # the gateway (Korean) sent its alerts' words in English too: the switched screen shows those
        assert page.inner_text(f".alert-row[data-id='{alert_id}'] .title") == "Out of specification"
        first.shot("daemon-english-1280x800")
        assert first.unexpected_errors(EXPECTED_WHILE_DOWN) == []
        assert second.unexpected_errors(EXPECTED_WHILE_DOWN) == []
    finally:
        for screen in screens:
            screen.close()
        gauges.close()
        daemon.stop()


def test_chart_named_unshelve_and_new_limits_from_the_page_against_the_daemon(tmp_path: Path, mosquitto,
                                                                              browser) -> None:
    """An individual beyond its UCL, then a moving range beyond its own: one OUT_OF_CONTROL alert whose card
    says the value is the moving range's; shelved and unshelved on the page; new limits calculated on the
    chart view after the confirmation. Each act is checked in SQLite."""
    http_port = free_port()
    db = tmp_path / "spc.sqlite3"
    config = write_config(tmp_path, hmi_config(tmp_path, mosquitto.port, http_port))
    daemon = Daemon(config).start(wait_for_port=http_port)
    gauges = Gauges(mosquitto.port)
    screen = None
    try:
        wait_for(lambda: "connected to" in daemon.log(), 10, "the MQTT source to connect")
        time.sleep(0.3)
        # I chart of diameter: center 10, sigma 0.1 -> UCL 10.3; MR chart UCL 3.267 * 1.128 * 0.1 = 0.369
        for value in (10.0, 10.02, 9.98, 10.0, 10.35, 9.95):
            gauges.reading("diameter", value)
        alert_id = wait_for(lambda: rows(db, "select id from alerts where alert_type = 'OUT_OF_CONTROL' "
                                             "and json_extract(body, '$.occurrences') = 2"), 10,
                            "the out-of-control alert counted twice")[0][0]
        chart = rows(db, "select json_extract(body, '$.chart'), json_extract(body, '$.value') from alerts "
                         "where id = ?", alert_id)
        assert chart == [("dispersion", pytest.approx(0.4))]

        screen = Screen(browser, f"http://127.0.0.1:{http_port}", size=(1024, 600))
        page = screen.page
        row = f".alert-row[data-id='{alert_id}']"
        page.wait_for_selector(f"{row} .chart-name:has-text('이동범위 (MR) 관리도')")
        assert "이동범위 (MR) 관리도: 값 0.4 / 한계 0.3686" in page.inner_text(f"{row} .l3")
        screen.shot("daemon-chart-named-1024x600")

        page.click(row)
        page.click("#btn-act-shelve")
        page.fill("#modal input[name=operator]", "박영희")
        page.click("#modal button[data-duration='1800']")
        page.fill("#modal textarea[name=reason]", "게이지 교정")
        page.click("#modal .modal-ok")
        wait_for(lambda: rows(db, "select status from alerts where id = ?", alert_id) == [("SHELVED",)], 5,
                 "the shelve in SQLite")
        page.click("#list-tabs [data-tab=shelved]")
        page.click(f"{row}.s-shelved")
        page.click("#btn-act-unshelve")
        page.click("#modal .modal-ok")
        page.wait_for_selector("#feedback.ok")
        wait_for(lambda: rows(db, "select status from alerts where id = ?", alert_id) == [("OPEN",)], 5,
                 "the unshelve in SQLite")
        assert rows(db, "select who, from_status, to_status from alert_history where alert_id = ? and "
                        "action = 'unshelve'", alert_id) == [("박영희", "SHELVED", "OPEN")]

        page.click("#nav-charts")
        page.click(".pv-products .chip[data-product='1']")
        page.click(".pv-chars .chip[data-characteristic='diameter']")
        page.click("#btn-recalc")
        page.fill("#modal input[name=subgroups]", "4")
        page.fill("#modal textarea[name=reason]", "신규 공구 검증 완료")
        page.click("#modal .modal-ok")
        page.wait_for_selector("#feedback.ok:has-text('관리한계')")
        stored = rows(db, "select who, reason, source, from_subgroup, to_subgroup from control_limits "
                          "where product_id = 1 and characteristic = 'diameter' order by id desc limit 1")
        assert stored == [("박영희", "신규 공구 검증 완료", "recalculated", 3, 6)]
        screen.shot("daemon-recalculated-1024x600")
        assert screen.unexpected_errors() == []
    finally:
        if screen is not None:
            screen.close()
        gauges.close()
        daemon.stop()
