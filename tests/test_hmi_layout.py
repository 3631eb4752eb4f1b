"""The HMI page's layout on the panel PCs it runs on (1024x600, 1280x800), in both languages, in a real
headless Chromium: nothing in the top bar overlaps, no product or characteristic chip is cut off, and
the page names a font stack that covers Hangul on Windows and Linux. Screenshots go to
test-artifacts/hmi/ for a human to look at.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import run_make
from tests.hmi_fixtures import REPO, HmiFixtureServer, Screen

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(90)

SIZES = [(1024, 600), (1280, 800)]

# Every box of the top bar, each of which must lie beside (not on top of) the others and in the window.
TOPBAR_BOXES = """() => {
  const boxes = {};
  const named = {title: '.brand b', icon: '.brand img', alarms: '#nav-alarms', charts: '#nav-charts', conn: '#conn',
                 clock: '#clock', sound: '#btn-sound', silence: '#btn-silence', lang: '#btn-lang'};
  for (const [name, sel] of Object.entries(named)) {
    const r = document.querySelector(sel).getBoundingClientRect();
    boxes[name] = {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  }
  const title = document.querySelector('.brand b');
  boxes.titleLines = Math.round(title.getBoundingClientRect().height / parseFloat(getComputedStyle(title).lineHeight));
  return boxes;
}"""

# Chip rows that scroll or cut: any scrollWidth beyond clientWidth hides part of a chip ("SHAF").
CLIPPED_CHIPS = """() => [...document.querySelectorAll('.chips')].filter((c) => c.offsetParent !== null)
  .filter((c) => c.scrollWidth > c.clientWidth + 1 || c.scrollHeight > c.clientHeight + 1)
  .map((c) => `${c.className}: ${c.scrollWidth}x${c.scrollHeight} in ${c.clientWidth}x${c.clientHeight}`)"""

# Every button and chip on screen lies inside the window horizontally.
OUTSIDE = """() => [...document.querySelectorAll('button, .chip, .tile')].filter((b) => b.offsetParent !== null)
  .filter((b) => { const r = b.getBoundingClientRect(); return r.left < -1 || r.right > innerWidth + 1; })
  .map((b) => (b.id || b.className) + ' ' + b.textContent.trim().slice(0, 30))"""


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["left"] < b["right"] - 0.5 and b["left"] < a["right"] - 0.5 and a["top"] < b["bottom"] - 0.5 \
        and b["top"] < a["bottom"] - 0.5


def _gateway(language: str) -> HmiFixtureServer:
    server = HmiFixtureServer(language=language)
    server.start()
    server.raise_alert(priority=5, alert_type="OUT_OF_CONTROL", title="관리한계 이탈", rule=1,
                       message="평균 10.142 > UCL 10.107", value=10.142, limit=10.107)
    server.raise_alert(priority=4, product_id=2, product_code="SHAFT-20", product_name="20mm 샤프트",
                       characteristic="outer_diameter", title="규격 이탈", message="외경이 상한 규격을 넘었습니다")
    return server


@pytest.mark.parametrize("language", ["ko", "en"])
def test_top_bar_and_chips_fit_on_panel_pcs(browser, language):
    gateway = _gateway(language)
    try:
        for width, height in SIZES:
            screen = Screen(browser, gateway.url, size=(width, height))
            try:
                page = screen.page
                page.wait_for_selector(".alert-row[data-id='2']")
                page.wait_for_selector(".chip[data-filter='2']")
                for view in ("alarms", "charts"):
                    if view == "charts":
                        page.click("#nav-charts")
                        page.wait_for_selector(".pv-products .chip")
                    boxes = page.evaluate(TOPBAR_BOXES)
                    lines = boxes.pop("titleLines")
                    assert lines == 1, f"{language} {width}x{height}: the title takes {lines} lines"
                    names = list(boxes)
                    for i, a in enumerate(names):
                        assert 0 <= boxes[a]["left"] and boxes[a]["right"] <= width, (language, width, a, boxes[a])
                        for b in names[i + 1:]:
                            assert not _overlap(boxes[a], boxes[b]), (language, width, view, a, b, boxes)
                    assert page.evaluate(CLIPPED_CHIPS) == [], (language, width, view)
                    assert page.evaluate(OUTSIDE) == [], (language, width, view)
                    screen.shot(f"layout-{view}-{language}-{width}x{height}")
                assert screen.unexpected_errors() == []
            finally:
                screen.close()
    finally:
        gateway.stop()


@pytest.mark.parametrize("language", ["ko", "en"])
def test_top_bar_fits_at_1024_while_the_gateway_is_away(browser, language):
    """The longest connection text (no network, last update, retry in N s) gives way, not the buttons."""
    gateway = _gateway(language)
    screen = Screen(browser, gateway.url, size=(1024, 600))
    try:
        page = screen.page
        screen.context.set_offline(True)
        gateway.stop()
        page.wait_for_selector("#conn[data-state=offline] .conn-detail:has-text('·')", timeout=20_000)
        assert ("네트워크 없음" if language == "ko" else "no network") in page.inner_text("#conn .conn-detail")
        boxes = page.evaluate(TOPBAR_BOXES)
        assert boxes.pop("titleLines") == 1
        names = list(boxes)
        for i, a in enumerate(names):
            assert 0 <= boxes[a]["left"] and boxes[a]["right"] <= 1024, (language, a, boxes[a])
            for b in names[i + 1:]:
                assert not _overlap(boxes[a], boxes[b]), (language, a, b, boxes)
        assert page.evaluate(OUTSIDE) == [], language
        screen.shot(f"layout-offline-{language}-1024x600")
    finally:
        screen.close()
        gateway.stop()


def test_page_names_fonts_that_cover_hangul_on_windows_and_linux(browser):
    gateway = _gateway("ko")
    try:
        screen = Screen(browser, gateway.url)
        try:
            family = screen.page.evaluate("getComputedStyle(document.body).fontFamily")
            chart = screen.page.evaluate(
                "getComputedStyle(document.documentElement).getPropertyValue('--chart-family')")
        finally:
            screen.close()
    finally:
        gateway.stop()
    for stack in (family, chart):
        # Windows (Malgun Gothic), Debian/Ubuntu (Noto Sans CJK KR of fonts-noto-cjk, NanumGothic of
        # fonts-nanum), macOS/iPad (Apple SD Gothic Neo); each before the generic sans-serif.
        for name in ("Malgun Gothic", "Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Apple SD Gothic Neo"):
            assert name in stack, (name, stack)
            assert stack.index(name) < stack.index("sans-serif"), (name, stack)


def test_make_installs_a_korean_font_when_none_is_found(tmp_path):
    """`make test` checks for a Korean font too: without one it asks for fonts-nanum (as root it installs it)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "fc-list").write_text("#!/bin/sh\nexit 0\n")  # fontconfig knows no Korean font
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")  # not root: report, do not install
    for tool in fake.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    missing = run_make(["-s", "system-deps", f"KOREAN_FONT={tmp_path / 'NanumGothic.ttf'}"], REPO, env)
    assert missing.returncode != 0, missing
    assert "NanumGothic.ttf" in missing.stdout and "fonts-nanum" in missing.stdout, missing.stdout
    (tmp_path / "NanumGothic.ttf").write_bytes(b"")  # the font file is there: nothing is missing
    found = run_make(["-s", "system-deps", f"KOREAN_FONT={tmp_path / 'NanumGothic.ttf'}"], REPO, env)
    if shutil.which("chromium") and shutil.which("mosquitto", path="/usr/sbin"):
        assert found.returncode == 0, found
