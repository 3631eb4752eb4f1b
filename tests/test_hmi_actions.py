"""Operator and quality-engineer acts on the HMI page, in a real headless Chromium against the fixture
gateway: unshelve a shelved alarm, recalculate a chart's control limits after a confirmation that asks
the reason, a refusal shown in the screen's own language, and alarm cards that say which chart (location
or dispersion) their value belongs to.
"""

from __future__ import annotations

import pytest

from tests.hmi_fixtures import HmiFixtureServer, open_screen

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(60)


def test_unshelve_a_shelved_alarm_from_the_page(browser, gateway, screens):
    alert = gateway.raise_alert(priority=4, title="규격 이탈")
    page = open_screen(browser, gateway, screens).page
    page.wait_for_selector(f".alert-row[data-id='{alert['id']}']")
    page.click(f".alert-row[data-id='{alert['id']}']")
    page.wait_for_selector("#btn-act-shelve:enabled")  # the bar is redrawn on the next frame
    assert not page.is_visible("#btn-act-unshelve")
    page.click("#btn-act-shelve")
    page.fill("#modal input[name=operator]", "김철수")
    page.click("#modal button[data-duration='900']")
    page.fill("#modal textarea[name=reason]", "금형 교체")
    page.click("#modal .modal-ok")
    page.wait_for_selector("#feedback.ok")

    page.click("#list-tabs [data-tab=shelved]")
    page.click(f".alert-row.s-shelved[data-id='{alert['id']}']")
    # Unshelve takes Shelve's place for a shelved alarm
    page.wait_for_selector("#btn-act-unshelve:enabled")
    assert not page.is_visible("#btn-act-shelve")
    page.click("#btn-act-unshelve")
    assert page.inner_text("#modal .modal-title") == "경보 보류 해제"
    assert page.input_value("#modal input[name=operator]") == "김철수"  # remembered for this screen
    page.click("#modal .modal-ok")
    page.wait_for_selector("#feedback.ok:has-text('보류 해제됨')")
    sent = gateway.commands("unshelve_alert")
    assert [(m["alert_id"], m["user"]) for m in sent] == [(alert["id"], "김철수")]
    page.click("#list-tabs [data-tab=active]")
    page.wait_for_selector(f".alert-row.s-open[data-id='{alert['id']}']")
    assert screens[0].unexpected_errors() == []


def test_recalculate_limits_confirms_and_asks_the_reason(browser, gateway, screens):
    screen = open_screen(browser, gateway, screens, size=(1024, 600))
    page = screen.page
    page.click("#nav-charts")
    page.click(".pv-products .chip[data-product='1']")
    page.wait_for_selector(".chart-location .chart-sub:has-text('200')")
    page.wait_for_selector("#btn-recalc:enabled")
    page.click("#btn-recalc")
    assert page.inner_text("#modal .modal-title") == "관리한계 재계산"
    assert "diameter" in page.inner_text("#modal .modal-subject")
    assert "다시 판정하지 않습니다" in page.inner_text("#modal .modal-note.warn")  # what it does, before it does it
    page.fill("#modal input[name=operator]", "이품질")
    page.click("#modal .modal-ok")
    assert page.inner_text("#modal .modal-error") == "재계산 사유를 입력하세요"
    page.fill("#modal input[name=subgroups]", "1")
    page.fill("#modal textarea[name=reason]", "신규 공구 검증 완료")
    page.click("#modal .modal-ok")
    assert page.inner_text("#modal .modal-error") == "부분군 수는 2부터 1000까지입니다"
    assert gateway.commands("recalculate_limits") == []  # nothing is sent until the form is complete
    screen.shot("recalculate-dialog-ko-1024x600")
    page.fill("#modal input[name=subgroups]", "50")
    page.click("#modal .modal-ok")
    page.wait_for_selector("#feedback.ok:has-text('관리한계 2판')")
    page.wait_for_selector("#modal", state="hidden")
    (sent,) = gateway.commands("recalculate_limits")
    assert {k: sent[k] for k in ("product_id", "characteristic", "user", "reason", "subgroups")} == {
        "product_id": 1, "characteristic": "diameter", "user": "이품질", "reason": "신규 공구 검증 완료",
        "subgroups": 50}
    assert screen.unexpected_errors() == []


def test_a_view_only_screen_has_no_recalculate_or_unshelve(browser, screens):
    gateway = HmiFixtureServer(role="viewer")
    gateway.start()
    try:
        alert = gateway.raise_alert(priority=4, status="SHELVED", shelved_until="2099-01-01T00:00:00+09:00")
        page = open_screen(browser, gateway, screens).page
        page.click("#list-tabs [data-tab=shelved]")
        page.click(f".alert-row[data-id='{alert['id']}']")
        page.wait_for_selector(f".alert-row.selected[data-id='{alert['id']}']")
        page.wait_for_selector("#btn-act-unshelve:visible")
        assert page.is_disabled("#btn-act-unshelve")
        page.click("#nav-charts")
        page.click(".pv-products .chip[data-product='1']")
        page.wait_for_selector(".chart-location .chart-sub:has-text('200')")
        page.wait_for_selector("#btn-recalc", state="hidden")
    finally:
        gateway.stop()


def test_a_refusal_shows_in_the_screens_language(browser, gateway, screens):
    gateway.errors_for["acknowledge_alert"] = ("invalid_field", {
        "ko": "경고 1은(는) 해결됨 상태라서 확인할 수 없습니다",
        "en": "alert 1 is RESOLVED; it cannot be acknowledged"})
    alert = gateway.raise_alert(priority=4)
    page = open_screen(browser, gateway, screens).page
    page.click("#btn-lang")  # the Korean gateway's screen switched to English
    page.click(f".alert-row[data-id='{alert['id']}'] button[data-ack]")
    page.fill("#modal input[name=operator]", "Kim")
    page.click("#modal .modal-ok")
    page.wait_for_selector("#feedback.error")
    assert page.inner_text("#feedback").endswith("alert 1 is RESOLVED; it cannot be acknowledged")
    page.wait_for_selector("#modal .modal-error:has-text('alert 1 is RESOLVED; it cannot be acknowledged')")


def test_an_out_of_control_card_says_which_chart_its_value_is_on(browser, gateway, screens):
    mr = gateway.raise_alert(priority=4, alert_type="OUT_OF_CONTROL", title="관리한계 이탈", characteristic="length",
                             message="관리도 점이 관리 상한을 벗어났습니다 (length: 40.13 > UCL 40.12)",
                             value=0.31, limit=0.147, chart="dispersion", occurrences=2)
    mean = gateway.raise_alert(priority=4, alert_type="OUT_OF_CONTROL", title="관리한계 이탈", value=10.142,
                               limit=10.107, chart="location")
    unknown = gateway.raise_alert(priority=4, alert_type="OUT_OF_CONTROL", product_id=3, product_code="GEAR-7",
                                  characteristic="pitch", value=0.2, limit=0.1, chart="dispersion")
    plain = gateway.raise_alert(priority=4, alert_type="OUT_OF_SPEC", value=10.7, limit=10.5)
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    line = lambda a: page.inner_text(f".alert-row[data-id='{a['id']}'] .l3")  # noqa: E731
    page.wait_for_selector(f".alert-row[data-id='{mr['id']}'] .chart-name:has-text('이동범위 (MR) 관리도')")
    assert "이동범위 (MR) 관리도: 값 0.31 / 한계 0.147" in line(mr)  # the chart, then its value
    assert "평균 (X̄) 관리도" in line(mean)
    assert "산포 관리도 (R/S/MR)" in line(unknown)  # a product the catalog does not describe
    assert "관리도" not in line(plain)
    screen.shot("chart-named-on-card-ko")
    page.click("#btn-lang")
    page.wait_for_selector(f".alert-row[data-id='{mr['id']}'] .chart-name:has-text('Moving range (MR) chart')")
    assert "Mean (X̄) chart" in line(mean)
    assert screen.unexpected_errors() == []
