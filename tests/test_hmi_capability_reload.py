"""The capability panel after a reload (issue 15 items 2, 4 and 6): before the next `capability` event
the page has only the stored result (GET /api/spc/products/{id}/capability/), and it must show from
there what the live event showed: the fitted lognormal over the histogram with its expected ppm, and for
a p chart p-bar, ppm and process Z instead of Cp/Cpk tiles.

A real Gateway (SQLite file, line-side service) analyses lognormal runouts and Montgomery's orange-juice
samples, is stopped and started again on its file (no capability event after that), and a 1024x600
screen opens the page, in Korean, then reloads it in English. Screenshots as tests/test_hmi_charts.py
takes them (SPC_UPDATE_SCREENSHOTS=1 copies them to docs/images/)."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.core.model import CharacteristicKey, Measurement
from tests.daemon_helpers import minimal_config, write_config
from tests.hmi_fixtures import Screen
from tests.test_attribute_capability import ORANGE_JUICE
from tests.test_hmi_charts import HISTOGRAM, OVERFLOW, PANEL, LiveGateway, save
from tests.test_spc_attribute import CIRCUIT_BOARDS

pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(180)

# every tile's figure inside its tile (a ppm of 231,333 is the widest here)
TILES_FIT = "() => [...document.querySelectorAll('.pv-cap .cap-tile')].every((t) => t.scrollWidth <= t.clientWidth)"
TILE = "(field) => document.querySelector(`.pv-cap .cap-tile[data-index='${field}'] b`)?.textContent"


def reload_config(tmp_path: Path) -> dict:
    config = minimal_config(tmp_path)
    base = config["products"][0]["characteristics"][0]
    runout = dict(base, name="runout", chart="imr", spec={"usl": 0.06}, limits={"center": 0.02, "sigma": 0.006},
                  capability={"distribution": "lognormal", "every_subgroups": 60, "window_subgroups": 60})
    runout["modbus"] = dict(base["modbus"], address=0)
    rejects = dict(base, name="rejects", chart="p", unit="", rules=[1, 2, 3, 4],
                   limits={"baseline_subgroups": 30}, capability={"every_subgroups": 30, "window_subgroups": 30},
                   modbus={"good": {"address": 200, "data_type": "uint32"}, "bad": {"address": 202, "data_type": "uint32"},
                           "sample_every": 50})
    rejects.pop("sampling", None)
    scratches = dict(rejects, name="scratches", chart="c", limits={"baseline_subgroups": 26},
                     capability={"every_subgroups": 26, "window_subgroups": 26},
                     modbus={"good": {"address": 210, "data_type": "uint32"},
                             "bad": {"address": 212, "data_type": "uint32"}, "sample_every": 50})
    config["products"][0]["characteristics"] = [runout, rejects, scratches]
    return config


def stored_capability(gateway: LiveGateway) -> dict[str, dict]:
    return {r["characteristic"]: r for r in gateway._run(gateway.gateway.store.latest_capability(1))}


def show(screen: Screen, characteristic: str) -> Any:
    page = screen.page
    page.click("#nav-charts")
    page.click(".pv-products .chip[data-product='1']")
    page.click(f".pv-chars .chip[data-characteristic='{characteristic}']")
    page.wait_for_function("(c) => document.querySelector('.pv-chars .chip.on')?.dataset.characteristic === c",
                           arg=characteristic)
    return page


def test_the_capability_panel_shows_the_stored_result_after_a_restart_and_a_reload(browser, tmp_path: Path) -> None:
    path = write_config(tmp_path, reload_config(tmp_path))
    rng = random.Random(22514)
    runouts = [round(rng.lognormvariate(math.log(0.02), 0.3), 5) for _ in range(60)]
    gateway = LiveGateway(path)
    try:
        for value in runouts:
            gateway.feed("runout", value)
        for count in ORANGE_JUICE:
            gateway.feed("rejects", 0.0, count=count, sample_size=50)
        for count in CIRCUIT_BOARDS:
            gateway.feed("scratches", 0.0, count=count)
        gateway.wait_stored("rejects", 30)
        gateway.wait_stored("scratches", 26)
        gateway.wait_stored("runout", 60)
        before = stored_capability(gateway)
    finally:
        gateway.close()
    assert set(before) == {"runout", "rejects", "scratches"}
    lognormal = before["runout"]
    assert lognormal["distribution"]["name"] == "lognormal" and lognormal["expected_ppm"]["total"] > 0
    # Montgomery, Introduction to Statistical Quality Control, 6th ed., Example 7.1: p-bar = 347/1500 = 0.2313
    assert f"{before['rejects']['p_bar']:.4f}" == "0.2313"
    # Example 7.3 (circuit boards): c-bar = 516/26 = 19.85
    assert f"{before['scratches']['u_bar']:.2f}" == "19.85"

    gateway = LiveGateway(path)  # restarted on its file: what the page gets now is the stored result only
    screen = None
    try:
        listen = gateway.config.server.listen
        screen = Screen(browser, f"http://{listen.host}:{listen.port}", size=PANEL)
        for language in ("ko", "en"):
            page = show(screen, "runout")
            page.wait_for_function(f"{HISTOGRAM.removesuffix('.drawn')}.drawn?.curve === 'lognormal'")
            assert page.evaluate(HISTOGRAM)["values"] == 60
            title = page.inner_text(".pv-hist h4")
            ppm = lognormal["expected_ppm"]["total"]
            assert ("로그정규" if language == "ko" else "lognormal") in title, title
            assert ("예상" if language == "ko" else "expected") in title and "ppm" in title, title
            assert page.evaluate(TILE, "Ppk") == f"{lognormal['ppk']:.2f}"
            page.locator(".pv-hist").scroll_into_view_if_needed()
            assert page.evaluate(OVERFLOW) is False
            save(screen, f"hmi-capability-reload-{language}")
            assert ppm > 0

            page = show(screen, "rejects")
            page.wait_for_function(f"() => ({TILE})('p_bar') === '0.2313'")
            assert page.evaluate(TILE, "ppm") == "231,333"  # 10^6 x 347/1500
            assert page.evaluate(TILE, "process_z") == "0.73"  # Phi^-1(1 - 0.2313) = 0.7345
            assert page.locator(".pv-cap .cap-tile[data-index=Cpk]").count() == 0  # no Cp/Cpk for counts
            assert page.locator(".pv-hist").is_hidden()
            cap_text = page.inner_text(".pv-cap")
            assert ("불량률" if language == "ko" else "fraction defective") in cap_text
            assert ("공정 Z" if language == "ko" else "Process Z") in cap_text
            assert page.evaluate(OVERFLOW) is False
            assert page.evaluate(TILES_FIT) is True
            page.locator(".pv-cap").scroll_into_view_if_needed()
            save(screen, f"hmi-capability-p-reload-{language}")

            page = show(screen, "scratches")  # a c chart: u-bar (the mean count per unit) and DPU
            # 516/26 = 19.846, shown with the page's 4 significant digits (Montgomery rounds it to 19.85)
            page.wait_for_function(f"() => ({TILE})('dpu') === '19.846'")
            assert page.evaluate(TILE, "u_bar") == "19.846" and page.evaluate(TILE, "p_bar") is None
            assert ("단위당 결점 수" if language == "ko" else "defects per unit") in page.inner_text(".pv-cap")
            assert page.evaluate(TILES_FIT) is True
            if language == "ko":
                page.click("#btn-lang")  # kept in the screen's storage across the reload
                page.wait_for_function("() => document.documentElement.lang === 'en'")
                page.reload()
                page.wait_for_selector("#conn[data-state=live]")
        assert stored_capability(gateway) == before  # nothing analysed since the restart
        # the next live analysis replaces the stored one: 30 samples without a defective, p-bar 0, whose
        # process Z is infinite (shown as none)
        page = show(screen, "rejects")
        for _ in range(30):
            gateway.feed("rejects", 0.0, count=0, sample_size=50)
        page.wait_for_function(f"() => ({TILE})('p_bar') === '0'")
        assert (page.evaluate(TILE, "ppm"), page.evaluate(TILE, "process_z")) == ("0", "—")
        assert screen.unexpected_errors() == []
    finally:
        if screen is not None:
            screen.close()
        gateway.close()


def test_a_short_run_characteristic_shows_its_newest_part_result_after_a_reload(browser, tmp_path: Path) -> None:
    """GET capability answers one result per part number (ordered by part); the panel shows the newest,
    as the last live event did, not the first part's in the alphabet."""
    config = minimal_config(tmp_path)
    config["products"][0]["characteristics"] = [{
        "name": "bore", "unit": "mm", "source": "plc", "sampling": "every_poll",
        "modbus": {"unit": 1, "table": "holding", "address": 0, "data_type": "float32"},
        "parts": {"A-100": {"target": 10.0, "lsl": 9.9, "usl": 10.1}, "B-200": {"target": 12.5, "lsl": 12.4, "usl": 12.6}},
        "short_run": "dnom", "limits": {"center": 0, "sigma": 0.01},
        "capability": {"every_subgroups": 30, "window_subgroups": 30},
        "part_from": {"modbus": {"address": 10, "data_type": "uint16"}, "codes": {1: "A-100", 2: "B-200"}}}]
    path = write_config(tmp_path, config)
    rng = random.Random(3)
    gateway = LiveGateway(path)
    try:
        for code, target, spread in ((1, 10.0, 0.01), (2, 12.5, 0.03)):  # A-100 first, B-200 last
            gateway._run(gateway.gateway.pipeline.sink(Measurement(CharacteristicKey(1, "bore", "part"),
                                                                   float(code), time.time())))
            for _ in range(30):
                gateway.feed("bore", round(target + rng.gauss(0.0, spread), 4))
        gateway.wait_stored("bore", 60)
        rows = gateway._run(gateway.gateway.store.latest_capability(1))
    finally:
        gateway.close()
    assert [r["part"] for r in rows] == ["A-100", "B-200"]  # the stored order is by part
    newest = max(rows, key=lambda r: r["id"])
    assert newest["part"] == "B-200" and f"{newest['ppk']:.2f}" != f"{rows[0]['ppk']:.2f}"

    gateway = LiveGateway(path)
    screen = None
    try:
        listen = gateway.config.server.listen
        screen = Screen(browser, f"http://{listen.host}:{listen.port}", size=PANEL)
        page = show(screen, "bore")
        page.wait_for_function(f"() => ({TILE})('Ppk') === '{newest['ppk']:.2f}'")
        assert screen.unexpected_errors() == []
    finally:
        if screen is not None:
            screen.close()
        gateway.close()
