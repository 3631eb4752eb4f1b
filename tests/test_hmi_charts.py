"""Issue 15 item 6: the page draws the newer charts, checked in headless Chromium on a 1024x600 panel.

EWMA, CUSUM and p run in a real Gateway (SQLite file, line-side service serving the page), fed readings
through its pipeline as a source feeds them: some before the page opens (drawn from the `subgroups`
history) and the rest live. The short-run chart is drawn twice: from the stand-in gateway
(tests/hmi_fixtures.py), whose `part` fields are made up (hostile ones too), and from a real Gateway
whose part is read from a PLC's part channel.
What was drawn is read from the chart's own record of its last draw (ControlChart.drawn: points per
series, the limit lines' segments and steps, the changeovers, the labels). The screenshots go to
docs/images/ (referenced from docs/spc.md) only with SPC_UPDATE_SCREENSHOTS=1, so a test run changes no tracked file.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.core.model import CharacteristicKey, Measurement
from gateway.sources.registry import load_config
from tests.daemon_helpers import minimal_config, write_config
from tests.hmi_fixtures import ARTIFACTS, REPO, HmiFixtureServer, Screen, now_iso

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(120)

IMAGES = REPO / "docs" / "images"
PANEL = (1024, 600)
DRAWN = "() => window.__hmi.products.location.drawn"
POINTS = "() => window.__hmi.products.location.points.map((p) => [p.x, p.y, p.y2 ?? null, p.raw ?? null, " \
         "p.center, p.ucl, p.lcl, p.rules, p.rules2 ?? []])"
# nothing sticks out of the window on the panel: a chart view that needs sideways scrolling is unusable
OVERFLOW = "() => document.documentElement.scrollWidth > innerWidth + 1 || document.body.scrollWidth > innerWidth + 1"


class LiveGateway:
    """A real Gateway on its own event loop in a thread; `feed` hands it a reading as a source does."""

    def __init__(self, config_path: Path):
        self.config, _ = load_config(str(config_path))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.gateway = Gateway(self.config)
        self._run(self.gateway.start(), 30)

    def _run(self, coroutine: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def feed(self, characteristic: str, value: float, **counts: Any) -> None:
        self._run(self.gateway.pipeline.sink(Measurement(CharacteristicKey(1, characteristic), value, time.time(),
                                                         **counts)))

    def stored(self, characteristic: str) -> int:
        """Subgroups of a characteristic in the file (what the page's history reads)."""
        return len(self._run(self.gateway.store.subgroups(1, characteristic)))

    def wait_stored(self, characteristic: str, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.stored(characteristic) < count:
            assert time.monotonic() < deadline, f"{characteristic}: fewer than {count} subgroups stored"
            time.sleep(0.05)

    def close(self) -> None:
        try:
            self._run(self.gateway.stop(), 20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def line_config(tmp_path: Path) -> dict:
    config = minimal_config(tmp_path)
    base = config["products"][0]["characteristics"][0]
    characteristics = []
    for i, (name, chart, limits) in enumerate((("ewma_dia", "ewma", {"center": 10.0, "sigma": 0.1}),
                                               ("cusum_dia", "cusum", {"center": 10.0, "sigma": 0.1}),
                                               ("p_defects", "p", {"baseline_subgroups": 5}))):
        c = dict(base, name=name, chart=chart, limits=limits)
        c["modbus"] = dict(base["modbus"], address=2 * i)
        if chart == "p":
            # counts come from a PLC counter pair (the readings here are fed to the pipeline directly)
            c["modbus"] = {"good": {"address": 200, "data_type": "uint32"}, "bad": {"address": 202, "data_type": "uint32"},
                           "sample_every": 50}
            c.pop("sampling", None)
            c.update(unit="", rules=[1, 2, 3, 4])
        characteristics.append(c)
    config["products"][0]["characteristics"] = characteristics
    return config


@pytest.fixture
def line(tmp_path: Path):
    gateway = LiveGateway(write_config(tmp_path, line_config(tmp_path)))
    yield gateway
    gateway.close()


def open_chart(browser: Any, gateway: LiveGateway, characteristic: str, points: int) -> Screen:
    listen = gateway.config.server.listen
    url = f"http://{listen.host}:{listen.port}"
    screen = Screen(browser, url, size=PANEL)
    page = screen.page
    page.click("#nav-charts")
    page.click(".pv-products .chip[data-product='1']")
    page.click(f".pv-chars .chip[data-characteristic='{characteristic}']")
    page.wait_for_function(f"() => (window.__hmi.products.location.drawn?.points ?? 0) >= {points}")
    return screen


def wait_points(page: Any, points: int) -> dict:
    page.wait_for_function(f"() => (window.__hmi.products.location.drawn?.points ?? 0) >= {points}", timeout=10_000)
    page.wait_for_timeout(150)  # the last animation frame
    return page.evaluate(DRAWN)


@contextmanager
def charts_view(browser: Any, language: str) -> Iterator[tuple[HmiFixtureServer, Screen]]:
    """The stand-in gateway and a panel-sized screen on its charts view, both closed afterwards."""
    server = HmiFixtureServer(language=language)
    server.start()
    screen = Screen(browser, server.url, size=PANEL)
    try:
        screen.page.click("#nav-charts")
        yield server, screen
    finally:
        screen.close()
        server.stop()


def drawn_live(browser: Any, gateway: LiveGateway, characteristic: str, values: list[float],
               history: int) -> tuple[Screen, dict]:
    """A screen opened on the chart once the first `history` values are stored, the rest fed while it
    shows: the screen (the caller closes it) and what it drew once every point arrived."""
    for value in values[:history]:
        gateway.feed(characteristic, value)
    gateway.wait_stored(characteristic, history)
    screen = open_chart(browser, gateway, characteristic, history)
    try:
        for value in values[history:]:
            gateway.feed(characteristic, value)
        return screen, wait_points(screen.page, len(values))
    except BaseException:
        screen.close()
        raise


def drawn_from_history(browser: Any, gateway: LiveGateway, characteristic: str, points: int) -> tuple[list, dict]:
    """What a new screen draws from the history alone: its points and its `drawn` record."""
    again = open_chart(browser, gateway, characteristic, points)
    try:
        return again.page.evaluate(POINTS), again.page.evaluate(DRAWN)
    finally:
        again.close()


def save(screen: Screen, name: str) -> None:
    """A 1024x600 screenshot into the test artifacts, and into docs/images/ with SPC_UPDATE_SCREENSHOTS=1
    (a test run leaves the tracked files alone); the alarm pop-ups closed as an operator closes them, so
    they do not hide the chart's right edge."""
    screen.page.evaluate("() => document.querySelectorAll('.toast-close').forEach((b) => b.click())")
    screen.page.wait_for_function("() => !document.querySelector('.toast')")
    screen.shot(name)
    if os.environ.get("SPC_UPDATE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / f"{name}.png", IMAGES / f"{name}.png")


def both_languages(screen: Screen, name: str) -> None:
    save(screen, f"{name}-ko")
    title_ko = screen.page.inner_text(".chart-location h3")
    screen.page.click("#btn-lang")
    screen.page.wait_for_function(f"() => document.querySelector('.chart-location h3').textContent !== {title_ko!r}")
    save(screen, f"{name}-en")


def test_ewma_draws_z_in_its_funnel_of_limits_over_the_faint_means(browser, line: LiveGateway) -> None:
    rng = random.Random(15)
    means = [round(rng.gauss(10.0, 0.1) + (0.06 if i >= 25 else 0.0), 4) for i in range(40)]
    screen, drawn = drawn_live(browser, line, "ewma_dia", means, 20)
    page = screen.page
    try:
        assert (drawn["series"], drawn["raw"], drawn["series2"]) == (40, 40, 0)  # z, the means faint, no C-
        # the funnel: exact limits widen at every point, one line each with a step per point
        assert drawn["ucl"] == {"segments": 1, "steps": 39} and drawn["lcl"] == {"segments": 1, "steps": 39}
        assert drawn["center"] == {"segments": 1, "steps": 0}
        points = page.evaluate(POINTS)
        assert points[0][5] == pytest.approx(10.06) and points[-1][5] == pytest.approx(10.0 + 0.3 / 3, rel=1e-3)
        assert [p[3] for p in points] == pytest.approx(means)  # the faint series is the raw means
        assert page.evaluate(OVERFLOW) is False
        assert page.locator(".chart-dispersion").is_hidden()  # no dispersion chart: the EWMA takes the height
        assert "EWMA" in page.inner_text(".chart-location h3") and "흐린 점" in page.inner_text(".chart-sub")
        both_languages(screen, "hmi-ewma")
        assert "faint: subgroup means" in page.inner_text(".chart-sub")
        # drawn again from the history alone (a new screen): the same points, limits and rule marks
        assert drawn_from_history(browser, line, "ewma_dia", 40)[0] == points
        assert screen.unexpected_errors() == []
    finally:
        screen.close()


def test_cusum_draws_both_sums_against_plus_and_minus_h(browser, line: LiveGateway) -> None:
    rng = random.Random(9)
    # in control, a dip that C- accumulates, then a shift of one sigma up that C+ signals
    values = ([round(rng.gauss(10.0, 0.1), 4) for _ in range(15)] + [round(rng.gauss(9.92, 0.1), 4) for _ in range(8)]
              + [round(rng.gauss(10.1, 0.1), 4) for _ in range(17)])
    screen, drawn = drawn_live(browser, line, "cusum_dia", values, 10)
    page = screen.page
    try:
        assert (drawn["series"], drawn["series2"], drawn["raw"]) == (40, 40, 0)  # C+ and C-
        assert drawn["ucl"] == {"segments": 1, "steps": 0} and drawn["lcl"] == {"segments": 1, "steps": 0}
        assert "H 0.5" in drawn["labels"] and "−H -0.5" in drawn["labels"]
        points = page.evaluate(POINTS)
        assert all(p[2] <= 0 for p in points) and any(p[2] < 0 for p in points)  # C- drawn below the axis
        assert all(p[1] >= 0 for p in points) and {(p[5], p[6]) for p in points} == {(0.5, -0.5)}
        signals = [p for p in points if p[7] or p[8]]
        assert signals and all(p[1] > 0.5 or -p[2] > 0.5 for p in signals)  # only points beyond H are red
        assert page.evaluate(OVERFLOW) is False
        both_languages(screen, "hmi-cusum")
        assert drawn_from_history(browser, line, "cusum_dia", 40)[0] == points
        assert screen.unexpected_errors() == []
    finally:
        screen.close()


def test_p_chart_steps_its_limits_with_n_and_draws_no_floored_lcl(browser, line: LiveGateway) -> None:
    for count in (2, 3, 1, 2, 2):  # the baseline: p-bar = 10 / 250 = 0.04, limits from the 6th sample
        line.feed("p_defects", 0.0, count=count, sample_size=50)
    sizes = [50, 50, 400, 400, 400, 50, 120, 120, 400, 50, 50, 400, 400, 50, 50]
    counts = [2, 1, 15, 18, 14, 12, 5, 4, 20, 3, 2, 16, 35, 1, 2]
    line.wait_stored("p_defects", 5)
    screen = open_chart(browser, line, "p_defects", 5)
    page = screen.page
    try:
        for count, n in zip(counts, sizes, strict=True):
            line.feed("p_defects", 0.0, count=count, sample_size=n)
        drawn = wait_points(page, 20)
        changes = sum(1 for a, b in zip(sizes, sizes[1:], strict=False) if a != b)
        assert drawn["ucl"] == {"segments": 1, "steps": changes}  # a step wherever n changes
        # LCL = 0.04 - 3 sqrt(0.04 * 0.96 / n) is below 0 for n = 50 and 120 (no line), 0.0106 for n = 400
        assert drawn["lcl"] == {"segments": 3, "steps": 0}
        every = page.evaluate(POINTS)
        points = every[5:]
        assert [p[6] is not None for p in points] == [n == 400 for n in sizes]
        assert points[5][7] == [1]  # 12 of 50 = 0.24 beyond its UCL
        assert page.locator(".chart-dispersion").is_hidden()
        assert page.inner_text(".chart-location h3").startswith("불량률 (p)")
        assert page.evaluate(OVERFLOW) is False
        save(screen, "hmi-p-ko")
        again, again_drawn = drawn_from_history(browser, line, "p_defects", 20)  # the same chart
        assert again == every and again_drawn["lcl"] == drawn["lcl"]
        assert screen.unexpected_errors() == []
    finally:
        screen.close()


def test_short_run_chart_names_the_part_of_every_point_and_marks_changeovers(browser) -> None:
    """DNOM chart of one gauge measuring two part numbers: A-100, then B-200, then A-100 again."""
    with charts_view(browser, "en") as (server, screen):
        page = screen.page
        page.click(".pv-products .chip[data-product='2']")
        # the stand-in sends events to the product's connected screens only: a loaded machine may open
        # the page's product feed after the first events were published, and they would be lost
        deadline = time.monotonic() + 20
        while not any(path == "/ws/spc/product/2/" for _, path in list(server.clients)):
            assert time.monotonic() < deadline, "the page did not open product 2's feed"
            time.sleep(0.05)
        rng = random.Random(4)

        def publish(first: int, parts: list[str | None]) -> None:
            for i, part in enumerate(parts, first):
                deviation = round(rng.gauss(0.0, 0.01), 4)
                server.publish("subgroup", {"type": "subgroup", "subgroup": {
                    "product_id": 2, "product_code": "SHAFT-20", "characteristic": "bore_dnom",
                    "subgroup_number": i, "n": 1, "mean": deviation, "value": deviation, "range": None,
                    "stdev": None, "center": 0.0, "ucl": 0.03, "lcl": -0.03, "violations": [], "part": part,
                    "measured_at": now_iso()}, "timestamp": now_iso()}, 2)

        publish(1, ["A-100"] * 12 + ["B-200"] * 10 + ["A-100"] * 8)
        page.click(".pv-chars .chip[data-characteristic='bore_dnom']")
        drawn = wait_points(page, 30)
        assert page.locator(".pv-hist").is_hidden()  # no measurements of it here: no histogram
        assert drawn["changeovers"] == [13, 23] and drawn["parts"] == ["A-100", "B-200", "A-100"]
        box = page.locator(".chart-location canvas").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        page.wait_for_function("() => window.__hmi.products.location.drawn.hover?.includes('B-200')")
        assert page.evaluate(OVERFLOW) is False
        save(screen, "hmi-shortrun-en")
        # the part comes from a PLC register or an MQTT field: markup in it is text, a null keeps the run
        hostile = "<img src=x onerror=window.__pwned=1>"
        publish(31, [None] * 2 + [hostile] * 3)
        drawn = wait_points(page, 35)
        assert drawn["changeovers"] == [13, 23, 33] and drawn["parts"] == ["A-100", "B-200", "A-100", hostile]
        assert page.evaluate("() => window.__pwned") is None
        assert screen.unexpected_errors() == []


def test_short_run_chart_from_a_real_gateway_gets_the_part_of_every_point(browser, tmp_path: Path) -> None:
    """The same chart fed through a real Gateway: the part code read from the PLC's part channel, the part
    on every point of the history and of the lean frames, and a reading of unknown part (stored, with the
    number of the point before it) not drawn as a point."""
    config = minimal_config(tmp_path)
    config["products"][0]["characteristics"] = [{
        "name": "bore", "unit": "mm", "source": "plc", "sampling": "every_poll",
        "modbus": {"unit": 1, "table": "holding", "address": 0, "data_type": "float32"},
        "parts": {"A-100": {"target": 10.0, "lsl": 9.9, "usl": 10.1}, "B-200": {"target": 12.5, "lsl": 12.4, "usl": 12.6}},
        "short_run": "dnom", "limits": {"center": 0, "sigma": 0.01},
        "part_from": {"modbus": {"address": 10, "data_type": "uint16"}, "codes": {1: "A-100", 2: "B-200"}}}]
    gateway = LiveGateway(write_config(tmp_path, config))
    rng = random.Random(7)

    def run(code: int, target: float, count: int) -> None:
        gateway._run(gateway.gateway.pipeline.sink(Measurement(CharacteristicKey(1, "bore", "part"), float(code),
                                                               time.time())))
        for _ in range(count):
            gateway.feed("bore", round(target + rng.gauss(0.0, 0.01), 4))

    screen = None
    try:
        gateway.feed("bore", 10.0)  # before any part is read: kept as not_read, not charted
        run(1, 10.0, 12)
        run(2, 12.5, 10)
        gateway.wait_stored("bore", 22)
        screen = open_chart(browser, gateway, "bore", 22)
        drawn = wait_points(screen.page, 22)
        assert drawn["points"] == 22  # the unknown-part reading is no point of its own
        assert drawn["changeovers"] == [13] and drawn["parts"] == ["A-100", "B-200"]
        run(1, 10.0, 3)  # live: each point's part comes in its measurement's frame
        drawn = wait_points(screen.page, 25)
        assert drawn["changeovers"] == [13, 23] and drawn["parts"] == ["A-100", "B-200", "A-100"]
        assert screen.unexpected_errors() == []
    finally:
        if screen is not None:
            screen.close()
        gateway.close()


HISTOGRAM = "() => window.__hmi.products.histogram.drawn"


def test_capability_view_draws_the_fitted_distribution_over_the_histogram(browser) -> None:
    """The `distribution` of a capability event (non-normal capability, issue 15 item 4) is drawn over the
    histogram of the latest measurements, scaled to its counts; without one, a normal of the values."""
    with charts_view(browser, "ko") as (server, screen):
        page = screen.page
        page.click(".pv-products .chip[data-product='1']")
        page.wait_for_function("() => window.__hmi.products.histogram.drawn?.values === 1000")
        assert page.evaluate(HISTOGRAM)["curve"] == "normal"  # none fitted yet: the values' normal
        assert page.inner_text(".pv-hist h4") == "분포 · 정규 적합"
        capability = {"id": 9, "product_id": 1, "product_code": "BOLT-M10", "characteristic": "diameter",
                      "cp": 1.71, "cpk": 1.6, "pp": 1.62, "ppk": 1.55, "n": 1000, "analyzed_at": now_iso(),
                      "expected_ppm": {"below": 0.1, "above": 0.3, "total": 0.4},  # the event's shape
                      "distribution": {"name": "lognormal", "parameters": {"mu": math.log(10.0), "sigma": 0.008},
                                       "anderson_darling": {"statistic": 0.31, "p_value": 0.55},
                                       "method": "percentile", "warning": None}}
        server.publish("capability", {"type": "capability", "capability": capability}, 1)
        page.wait_for_function("() => window.__hmi.products.histogram.drawn?.curve === 'lognormal'")
        drawn = page.evaluate(HISTOGRAM)
        # 1000 values of sigma 0.08 in bins of (10.5 - 9.5) / 30: the curve's peak is near the tallest bar
        assert drawn["bins"] == 30 and 0.6 < drawn["peak"] / drawn["tallest"] < 1.6, drawn
        assert page.inner_text(".pv-hist h4").startswith("분포 · 로그정규 적합")
        assert "0.4 ppm" in page.inner_text(".pv-hist h4")
        # the densities the page draws, at points with known values (NIST/SEMATECH e-Handbook 1.3.6.6.1
        # normal, 1.3.6.6.9 lognormal, 1.3.6.6.8 Weibull; the folded normal with mu 0 is the half-normal,
        # 2 phi(x)): phi(0) = 0.3989, lognormal(0, 1) at 1 = 0.3989, Weibull(2, 1) at 1 = 2/e = 0.7358
        densities = page.evaluate("""async () => { const { density } = await import('/static/histogram.js');
            return [density('normal', {mean: 0, sigma: 1}, 0), density('lognormal', {mu: 0, sigma: 1}, 1),
                    density('lognormal', {mu: 0, sigma: 1}, 2), density('weibull', {shape: 2, scale: 1}, 1),
                    density('folded_normal', {mu: 0, sigma: 1}, 0.5), density('weibull', {shape: 1, scale: 2}, -1),
                    density('gamma', {}, 1)]; }""")
        assert [round(d, 4) if d is not None else None for d in densities] == [
            0.3989, 0.3989, 0.1569, 0.7358, 0.7041, 0.0, None]
        assert page.evaluate(OVERFLOW) is False
        page.locator(".pv-hist").scroll_into_view_if_needed()  # the side panel scrolls on a 600-pixel panel
        assert page.locator(".pv-hist canvas").bounding_box()["y"] + 80 < PANEL[1]
        save(screen, "hmi-capability-ko")
        assert screen.unexpected_errors() == []
