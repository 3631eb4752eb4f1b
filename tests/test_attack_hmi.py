"""The HMI page at 1024x600 with the longest texts the gateway accepts: a 200-character product name
and code, a long characteristic, Korean and emoji in every text. Nothing may leave the window or hide
the buttons an operator needs."""

from __future__ import annotations

import pytest

from tests import hmi_fixtures
from tests.hmi_fixtures import HmiFixtureServer, Screen
from tests.test_hmi_layout import OUTSIDE, TOPBAR_BOXES, _overlap

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(120)

LONG_NAME = ("초정밀 가공 라인 3호기 M10 육각 플랜지 볼트 😀 " * 8)[:200]
LONG_CODE = "BOLT-M10-" + "X" * 41
LONG_CHAR = "outer_diameter_after_heat_treatment_measured_on_cmm_" + "ø" * 10

# the page scrolls sideways when anything is wider than the window
PAGE_OVERFLOW = """() => document.scrollingElement.scrollWidth - innerWidth"""


@pytest.mark.parametrize("language", ["ko", "en"])
def test_the_longest_names_fit_at_1024x600(browser, language, monkeypatch):
    catalog = [dict(p) for p in hmi_fixtures.CATALOG]
    catalog[0] = {**catalog[0], "code": LONG_CODE, "name": LONG_NAME,
                  "characteristics": [{**catalog[0]["characteristics"][0], "name": LONG_CHAR}]}
    monkeypatch.setattr(hmi_fixtures, "CATALOG", catalog)
    gateway = HmiFixtureServer(language=language)
    gateway.start()
    try:
        gateway.raise_alert(priority=5, alert_type="OUT_OF_CONTROL", product_code=LONG_CODE, product_name=LONG_NAME,
                            characteristic=LONG_CHAR, title="관리한계 이탈 🚨 " * 8, rule=1,
                            message="평균이 관리 상한을 넘었습니다 😀 " * 40, value=10.142, limit=10.107)
        screen = Screen(browser, gateway.url, size=(1024, 600))
        try:
            page = screen.page
            page.wait_for_selector(".alert-row[data-id='1']")
            for view in ("alarms", "charts"):
                if view == "charts":
                    page.click("#nav-charts")
                    page.wait_for_selector(".pv-products .chip")
                screen.shot(f"attack-long-{view}-{language}-1024x600")
                boxes = page.evaluate(TOPBAR_BOXES)
                boxes.pop("titleLines")
                names = list(boxes)
                for i, a in enumerate(names):
                    assert 0 <= boxes[a]["left"] and boxes[a]["right"] <= 1024, (language, view, a, boxes[a])
                    for b in names[i + 1:]:
                        assert not _overlap(boxes[a], boxes[b]), (language, view, a, b)
                assert page.evaluate(OUTSIDE) == [], (language, view)
                assert page.evaluate(PAGE_OVERFLOW) <= 1, (language, view)
            assert screen.unexpected_errors() == []
        finally:
            screen.close()
    finally:
        gateway.stop()
