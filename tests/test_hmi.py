"""The HMI page in a real headless Chromium, against the fixture gateway of tests/hmi_fixtures.py.

Screenshots of the main states go to test-artifacts/hmi/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import time

import pytest

from tests.hmi_fixtures import EXPECTED_WHILE_DOWN, HmiFixtureServer, open_screen

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.timeout(60)


def seed_alerts(gateway: HmiFixtureServer) -> None:
    gateway.raise_alert(priority=5, alert_type="OUT_OF_CONTROL", title="관리한계 이탈", rule=1,
                        message="평균 10.142 > UCL 10.107", value=10.142, limit=10.107)
    gateway.raise_alert(priority=2, alert_type="CAPABILITY_LOW", title="공정능력 부족",
                        message="Cpk 1.12 < 1.33", occurrences=3)
    acked = gateway.raise_alert(priority=3, alert_type="RUN_RULE_VIOLATION", title="런 규칙 위반", rule=2,
                                message="9점이 중심선 한쪽에 있습니다")
    gateway.call(lambda: gateway.alerts[acked["id"]].update(
        status="ACKNOWLEDGED", acknowledged_by="김철수", acknowledged_at="2026-01-11T12:05:00+09:00",
        comment="공구 교체 예정"))
    gateway.raise_alert(priority=4, product_id=2, product_code="SHAFT-20", product_name="20mm 샤프트",
                        characteristic="runout", title="규격 이탈", message="런아웃이 상한 규격 0.05를 넘었습니다")


def test_page_loads_clean_shows_snapshot_and_flashes_only_unacknowledged(browser, gateway, screens):
    seed_alerts(gateway)
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    page.wait_for_selector(".alert-row[data-id='4']")
    assert page.locator(".alert-row").count() == 4
    assert page.inner_text("#count-open") == "3"
    assert page.inner_text("#count-ack") == "1"
    # Priority first: the critical one on top; priority is a shape and a letter, not only a colour.
    assert page.locator(".alert-row").first.get_attribute("data-id") == "1"
    assert page.inner_text(".alert-row[data-id='1'] .badge") == "C"
    assert page.locator(".alert-row[data-id='1'] .badge.p5").count() == 1
    # One shared blink clock: the unacknowledged badge dims on it, the acknowledged one never does.
    opacities = set()
    for _ in range(3):
        opacities.add(tuple(page.evaluate("""() => [
            getComputedStyle(document.querySelector(".alert-row[data-id='1'] .badge")).opacity,
            getComputedStyle(document.querySelector(".alert-row[data-id='3'] .badge")).opacity]""")))
        page.wait_for_timeout(260)
    assert {o[1] for o in opacities} == {"1"}
    assert len({o[0] for o in opacities}) == 2
    # The seed's greeting was Korean: so is the page.
    assert page.inner_text("#conn .conn-state") == "실시간"
    assert page.locator("link[rel=icon]").get_attribute("href").startswith("data:image/svg+xml,")
    assert page.evaluate("document.querySelector('.brand img').naturalWidth") > 0  # /static/favicon.svg
    # Glove-size targets: every button the operator can tap is at least 52 px tall and wide.
    small = page.evaluate("""() => [...document.querySelectorAll('button')]
        .filter((b) => b.offsetParent !== null && !b.closest('.toast'))
        .map((b) => b.getBoundingClientRect())
        .filter((r) => r.height < 52 || r.width < 52).length""")
    assert small == 0
    screen.shot("alarms-1280x800")
    big = open_screen(browser, gateway, screens, size=(1920, 1080))
    big.page.wait_for_selector(".alert-row[data-id='4']")
    big.shot("alarms-1920x1080")
    assert screen.unexpected_errors() == [] and big.unexpected_errors() == []


def test_new_alert_appears_as_toast_and_in_list_within_one_second(browser, gateway, screens):
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    started = time.monotonic()
    alert = gateway.raise_alert(priority=4, message="측정값이 상한 규격을 초과했습니다")
    page.wait_for_selector(f".toast[data-id='{alert['id']}']", timeout=1000)
    page.wait_for_selector(f".alert-row[data-id='{alert['id']}']", timeout=1000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"alert took {elapsed:.3f}s to show"
    toast = page.locator(f".toast[data-id='{alert['id']}']")
    assert toast.locator(".toast-title").inner_text() == "품질 경고: BOLT-M10"
    assert toast.locator(".toast-msg").inner_text() == "측정값이 상한 규격을 초과했습니다"
    assert screen.unexpected_errors() == []


def test_acknowledge_sends_user_and_comment_and_remembers_the_operator(browser, gateway, screens):
    first = gateway.raise_alert(priority=5)
    second = gateway.raise_alert(priority=3)
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    page.click(f".alert-row[data-id='{first['id']}'] button[data-ack]")
    page.fill("#modal input[name=operator]", "박영희")
    page.fill("#modal textarea[name=comment]", "게이지 재교정 중")
    page.click("#modal .modal-ok")
    sent = gateway.wait_for(lambda: gateway.commands("acknowledge_alert"))
    assert sent[0]["alert_id"] == first["id"]
    assert sent[0]["user"] == "박영희"
    assert sent[0]["comment"] == "게이지 재교정 중"
    page.wait_for_selector(f".alert-row.s-acknowledged[data-id='{first['id']}']", timeout=2000)
    assert "박영희" in page.inner_text("#feedback")
    assert page.is_hidden("#modal")
    # The next dialog on this screen, even after a reload, already knows who is at the line.
    page.reload()
    page.wait_for_selector(f".alert-row[data-id='{second['id']}']")
    page.click(f".alert-row[data-id='{second['id']}'] button[data-ack]")
    assert page.input_value("#modal input[name=operator]") == "박영희"
    assert screen.unexpected_errors() == []


def test_shelve_resolve_ack_all_and_errors_are_reported(browser, gateway, screens):
    shelved = gateway.raise_alert(priority=2, title="공정능력 부족")
    resolved = gateway.raise_alert(priority=4)
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    page.click(f".alert-row[data-id='{shelved['id']}']")
    page.click("#btn-act-shelve")
    page.fill("#modal input[name=operator]", "Kim")
    page.click("#modal .modal-ok")
    assert page.inner_text("#modal .modal-error") != ""  # no duration, no reason: nothing is sent
    assert gateway.commands("shelve_alert") == []
    page.click("#modal button[data-duration='3600']")
    page.fill("#modal textarea[name=reason]", "센서 교체 작업")
    screen.shot("shelve-dialog-1280x800")
    page.click("#modal .modal-ok")
    sent = gateway.wait_for(lambda: gateway.commands("shelve_alert"))
    assert sent[0] == {**sent[0], "alert_id": shelved["id"], "user": "Kim", "duration_s": 3600, "reason": "센서 교체 작업"}
    page.wait_for_function("document.querySelector('#count-shelved').textContent === '1'")
    assert page.locator(f".alert-row[data-id='{shelved['id']}']").count() == 0  # shelved: off the active list

    gateway.errors_for["resolve_alert"] = ("unauthorized", "viewer tokens cannot resolve alerts")
    page.click(f".alert-row[data-id='{resolved['id']}']")
    page.click("#btn-act-resolve")
    page.fill("#modal textarea[name=cause]", "공구 마모")
    page.fill("#modal textarea[name=action]", "공구 교체")
    page.click("#modal .modal-ok")
    page.wait_for_selector("#feedback.error")
    assert "viewer tokens cannot resolve alerts" in page.inner_text("#feedback")
    assert "viewer tokens cannot resolve alerts" in page.inner_text("#modal .modal-error")
    del gateway.errors_for["resolve_alert"]
    page.click("#modal .modal-ok")
    page.wait_for_selector("#feedback.ok")
    sent = gateway.commands("resolve_alert")[-1]
    assert (sent["cause"], sent["action"]) == ("공구 마모", "공구 교체")

    for _ in range(3):
        gateway.raise_alert(priority=3)
    page.wait_for_function("document.querySelectorAll('.alert-row.s-open').length === 3")
    page.click("#btn-ack-all")
    page.click("#modal .modal-ok")  # the operator is remembered from the shelve
    page.wait_for_selector("#feedback.ok:has-text('3/3건 확인됨')")
    assert len(gateway.commands("acknowledge_alert")) == 3
    assert {c["user"] for c in gateway.commands("acknowledge_alert")} == {"Kim"}
    assert screen.unexpected_errors() == []


def test_a_comment_can_be_added_in_any_state_and_shows_on_the_row(browser, gateway, screens):
    alert = gateway.raise_alert(priority=3, title="런 규칙 위반")
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    assert page.is_disabled("#btn-act-comment")  # nothing selected yet
    page.click(f".alert-row[data-id='{alert['id']}']")
    page.click("#btn-act-comment")
    page.fill("#modal input[name=operator]", "이민수")
    page.click("#modal .modal-ok")
    assert page.inner_text("#modal .modal-error") == "메모를 입력하세요"  # an empty comment is not sent
    assert gateway.commands("comment_alert") == []
    page.fill("#modal textarea[name=comment]", "척 압력 확인, 정상")
    screen.shot("comment-dialog-1280x800")
    page.click("#modal .modal-ok")
    sent = gateway.wait_for(lambda: gateway.commands("comment_alert"))
    assert sent[0] == {**sent[0], "alert_id": alert["id"], "user": "이민수", "comment": "척 압력 확인, 정상"}
    page.wait_for_selector(f".alert-row[data-id='{alert['id']}']:has-text('척 압력 확인, 정상')", timeout=2000)
    assert "메모 저장됨" in page.inner_text("#feedback")
    assert page.locator(f".alert-row.s-open[data-id='{alert['id']}']").count() == 1  # the state is unchanged
    assert screen.unexpected_errors() == []


def test_flood_indicator_and_product_filter(browser, gateway, screens):
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    for i in range(11):
        gateway.raise_alert(priority=3 if i % 2 else 4, product_id=1 + i % 2,
                            product_code="BOLT-M10" if i % 2 == 0 else "SHAFT-20")
    page.wait_for_selector("#tile-flood.flooding")
    assert page.inner_text("#flood-label") == "경보 폭주"
    page.click("#product-filter [data-filter='2']")
    page.wait_for_function("document.querySelectorAll('.alert-row').length === 5")
    assert set(page.locator(".alert-row .code").all_inner_texts()) == {"SHAFT-20"}
    assert page.inner_text("#btn-ack-all") == "보이는 경보 모두 확인 (5)"
    assert screen.unexpected_errors() == []


def test_gateway_killed_page_says_so_then_resumes_with_since(browser, gateway, screens):
    gateway.raise_alert(priority=4)
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    page.wait_for_selector(".alert-row[data-id='1']")
    last_seq = gateway.seq
    gateway.stop()
    started = time.monotonic()
    page.wait_for_selector("#conn[data-state=reconnecting], #conn[data-state=offline]", timeout=40_000)
    noticed = time.monotonic() - started
    assert noticed < 40
    assert page.is_visible("#stale")
    page.wait_for_selector("#conn[data-state=offline]", timeout=15_000)
    screen.shot("offline-1280x800")
    missed = [gateway.raise_alert(priority=5, title=f"누락 없음 {i}") for i in range(3)]  # raised while away
    gateway.start()
    page.click("#btn-retry")
    page.wait_for_selector("#conn[data-state=live]", timeout=5000)
    for alert in missed:
        page.wait_for_selector(f".alert-row[data-id='{alert['id']}']", timeout=2000)
    assert page.locator(".toast").count() >= 3  # new to this screen: the operator is told
    assert f"since={last_seq}" in gateway.connects[-1]
    assert page.is_hidden("#stale")
    assert screen.unexpected_errors(EXPECTED_WHILE_DOWN) == []


def test_two_missed_pongs_force_a_reconnect_with_since(browser, gateway, screens):
    screen = open_screen(browser, gateway, screens, query="?ping_ms=300")
    gateway.wait_for(lambda: gateway.commands("ping"))
    gateway.answer_pings = False  # a half-open connection: frames go nowhere, no close event
    connects = gateway.wait_for(lambda: len(gateway.connects) >= 2 and list(gateway.connects), timeout=5)
    assert "since=" in connects[1]
    gateway.answer_pings = True
    screen.page.wait_for_selector("#conn[data-state=live]")
    assert screen.unexpected_errors() == []


def test_incomplete_replay_reloads_the_alert_list(browser, gateway, screens):
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    gateway.stop()
    page.wait_for_selector("#conn[data-state=reconnecting], #conn[data-state=offline]")
    late = gateway.raise_alert(priority=3)
    gateway.oldest_kept = gateway.seq + 1  # the gateway no longer holds what the page missed
    gateway.call(lambda: gateway.alerts[late["id"]].update(status="RESOLVED"))  # not in the snapshot either
    gateway.start()
    # A kiosk woken from sleep does not wait out its backoff: it reconnects when it becomes visible.
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    reload = gateway.wait_for(lambda: [c for c in gateway.commands("get_alerts") if c.get("limit") == 500])
    assert reload[0]["request_id"].startswith("reload-")
    page.click("#list-tabs [data-tab=resolved]")
    page.wait_for_selector(f".alert-row[data-id='{late['id']}']")
    assert screen.unexpected_errors(EXPECTED_WHILE_DOWN) == []


def test_language_follows_the_gateway_and_switches_on_the_page(browser, screens):
    english = HmiFixtureServer(language="en")
    english.start()
    try:
        screen = open_screen(browser, english, screens)
        page = screen.page
        assert page.inner_text("#conn .conn-state") == "LIVE"
        alert = english.raise_alert(priority=5, title="Out of spec", message="Value above the upper spec limit",
                                    texts={"en": {"title": "Out of spec", "message": "Value above the upper spec limit"},
                                           "ko": {"title": "규격 이탈", "message": "측정값이 상한 규격을 초과했습니다"}})
        typed = english.raise_alert(priority=3, title="Fixture check", message="typed in by a person")  # no texts
        page.wait_for_selector(f".toast[data-id='{alert['id']}']")
        assert page.inner_text(f".toast[data-id='{alert['id']}'] .toast-title") == "Quality alert: BOLT-M10"
        assert page.inner_text("#tile-open span") == "Unacknowledged"
        row = f".alert-row[data-id='{alert['id']}']"
        assert page.inner_text(f"{row} .title") == "Out of spec"
        screen.shot("alarms-english-1280x800")
        page.click("#btn-lang")
        assert page.inner_text("#tile-open span") == "미확인"
        assert page.inner_text("#conn .conn-state") == "실시간"
        assert page.evaluate("document.documentElement.lang") == "ko"
        # the gateway's alerts follow the switch; a person's words stay as written
        assert page.inner_text(f"{row} .title") == "규격 이탈"
        assert page.inner_text(f"{row} .l2") == "측정값이 상한 규격을 초과했습니다"
        assert page.inner_text(f".alert-row[data-id='{typed['id']}'] .title") == "Fixture check"
        page.reload()  # the operator's choice is kept on this screen
        page.wait_for_selector("#conn[data-state=live]")
        assert page.inner_text("#tile-open span") == "미확인"
        assert screen.unexpected_errors() == []
    finally:
        english.stop()


def test_product_view_history_live_points_rules_and_capability(browser, gateway, screens):
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    page.click("#nav-charts")
    page.wait_for_selector(".chart-location .chart-sub:has-text('200')")
    ask = gateway.wait_for(lambda: gateway.commands("get_measurements"))
    assert ask[0]["product_id"] == 1 and ask[0]["characteristic"] == "diameter"
    assert gateway.wait_for(lambda: any(p.startswith("/ws/spc/product/1/") for p in gateway.connects))
    # Live: 300 more subgroups at full speed, so the chart holds 500 points; one breaks rule 2.
    for sg in range(201, 501):
        gateway.publish("subgroup", {"subgroup": {
            "product_id": 1, "characteristic": "diameter", "subgroup_number": sg, "n": 5,
            "mean": 10.0 + (0.03 if sg > 480 else 0.0) + 0.02 * ((sg * 7919) % 11 - 5) / 5,
            "range": 0.15 + 0.01 * (sg % 7), "stdev": 0.07, "center": 10.0, "ucl": 10.10733, "lcl": 9.89267,
            "violations": [2] if sg == 495 else []}}, product_id=1)
    gateway.publish("capability", {"capability": {
        "id": 9, "product_id": 1, "product_code": "BOLT-M10", "characteristic": "diameter", "cp": 1.71,
        "cpk": 1.21, "pp": 1.62, "ppk": 0.93, "cpm": 1.5, "n": 500, "analyzed_at": "2026-01-11T12:00:00+09:00"}},
        product_id=1)
    gateway.publish("violation", {"violation": {
        "product_id": 1, "product_code": "BOLT-M10", "characteristic": "diameter", "rule": 2,
        "rule_name": "9 points on one side", "subgroup_number": 495, "points": list(range(487, 496)),
        "detected_at": "2026-01-11T12:00:00+09:00"}}, product_id=1)
    page.wait_for_selector(".chart-location .chart-sub:has-text('500')")
    page.wait_for_selector(".cap-tile.ok[data-index=Cp]")
    assert page.locator(".cap-tile.warn[data-index=Cpk]").count() == 1  # 1.21: below min_cpk 1.33
    assert page.locator(".cap-tile.bad[data-index=Ppk]").count() == 1  # 0.93: below 1
    assert page.inner_text(".pv-viol .rule-no") == "2"
    marked = page.evaluate("""() => window.__hmi.products.location.points
        .filter(p => p.rules.length).map(p => [p.x, p.rules])""")
    assert [495, [2]] in marked
    # Redraws: 500 points must cost well under a frame.
    stats = page.evaluate("""() => { const c = window.__hmi.products.location;
        const t0 = performance.now(); for (let i = 0; i < 20; i++) c.draw();
        return {mean: (performance.now() - t0) / 20, points: c.points.length}; }""")
    assert stats["points"] == 500
    assert stats["mean"] < 16, stats
    screen.shot("product-view-1280x800")
    assert screen.unexpected_errors() == []


def test_token_from_the_page_url_opens_the_websocket_and_viewer_cannot_act(browser, screens):
    guarded = HmiFixtureServer(token="line3-secret", role="viewer")
    guarded.start()
    try:
        guarded.raise_alert(priority=4)
        screen = open_screen(browser, guarded, screens, query="?token=line3-secret")
        page = screen.page
        page.wait_for_selector(".alert-row[data-id='1']")
        assert "token=line3-secret" in guarded.connects[0]
        assert page.locator(".alert-row button[data-ack]").count() == 0
        assert page.is_disabled("#btn-ack-all")
        assert page.inner_text("#conn .conn-detail") == "조회 전용"
        assert screen.unexpected_errors() == []
    finally:
        guarded.stop()


def test_sound_needs_a_tap_and_silence_is_not_acknowledge(browser, gateway, screens):
    screen = open_screen(browser, gateway, screens)
    page = screen.page
    assert page.inner_text("#btn-sound .lbl") == "경보음 켜기"
    page.click("#btn-sound")
    assert page.evaluate("window.__hmi.horn.enabled") is True
    alert = gateway.raise_alert(priority=5)
    page.wait_for_function("window.__hmi.horn.sounding === 5")  # critical: the horn repeats
    assert page.is_enabled("#btn-silence")
    page.click("#btn-silence")
    assert page.evaluate("window.__hmi.horn.sounding") == 0
    assert page.locator(f".alert-row.s-open[data-id='{alert['id']}']").count() == 1  # still unacknowledged
    assert gateway.commands("acknowledge_alert") == []
    assert screen.unexpected_errors() == []


def test_backoff_schedule_stays_between_one_and_thirty_seconds(browser, gateway, screens):
    page = open_screen(browser, gateway, screens).page
    delays = page.evaluate("""async () => {
        const { backoffDelay } = await import('/static/connection.js');
        const at = (attempt, r) => backoffDelay(attempt, () => r);
        return [0, 1, 2, 3, 4, 5, 6, 10, 50].map((a) => [at(a, 0), at(a, 0.999)]); }""")
    assert all(1000 <= lo <= hi <= 30000 for lo, hi in delays)
    assert delays[0] == [1000, 1000] and delays[-1][1] >= 29_900 and delays[-1][0] == 15000
    assert [hi for _lo, hi in delays[:5]] == sorted(hi for _lo, hi in delays[:5])  # grows, then caps
