"""The alert service on a real Store: engine results -> alerts, dedupe, lifecycle, timed shelve across restart."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from gateway.alerts import AlertService
from gateway.alerts import service as alerts_module
from gateway.config import AlertPriority, CapabilitySettings, Characteristic, Limits, Product, Rules, Spec
from gateway.core.texts import Refusal
from gateway.outputs.websocket.protocol import Protocol, Session
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.store import Store
from tests.test_server_harness import PRODUCTS, make_config, run

DIAMETER = Characteristic("diameter", "plc", unit="mm", spec=Spec(9.5, 10.0, 10.5), chart="imr",
                          limits=Limits(center=10.0, sigma=0.1), rules=Rules("nelson", (1, 2, 3, 5, 6)),
                          capability=CapabilitySettings(every_subgroups=30, window_subgroups=30, min_cpk=1.33),
                          alert_priority=AlertPriority(out_of_spec=5))
BOLT = Product(1, "BOLT-M10", "M10 볼트", (DIAMETER,))


class Clock:
    """A settable clock: occurrence throttling and shelve deadlines without sleeping."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def service(tmp_path, language="ko", clock=None):
    config = dataclasses.replace(make_config(tmp_path, language=language), products=(BOLT, PRODUCTS[1]))
    store = Store(config.storage.path, flush_interval=0.002)
    await store.open()
    published = []
    alerts = AlertService(store, config, clock=clock or Clock())
    await alerts.start(publish=published.extend)
    return store, alerts, published


async def ingest(store, alerts, engine, values):
    raised = []
    for value in values:
        result = engine.ingest(value, 0.0)
        with store.batch(on_commit=alerts.publish) as batch:
            before = set(alerts._unresolved)
            alerts.on_ingest(batch, BOLT, DIAMETER, result, value)
        await batch.committed
        raised += [alerts._unresolved[i] for i in set(alerts._unresolved) - before]
    return raised


def test_engine_results_raise_the_configured_alerts_in_korean(tmp_path):
    async def body():
        store, alerts, published = await service(tmp_path)
        engine = CharacteristicEngine(EngineSettings.from_characteristic(DIAMETER))
        (control, spec) = sorted(await ingest(store, alerts, engine, [10.7]), key=lambda a: a["alert_type"])
        assert (control["alert_type"], control["priority"], control["title"]) == ("OUT_OF_CONTROL", 3, "관리한계 이탈")
        assert (spec["alert_type"], spec["priority"], spec["title"]) == ("OUT_OF_SPEC", 5, "규격 이탈")
        assert spec["message"].startswith("측정값이 상한 규격을 초과했습니다") and spec["limit"] == 10.5
        assert control["limit"] == pytest.approx(10.3) and spec["product_code"] == "BOLT-M10"
        # nine points above the center line: Nelson test 2
        rule = [a for a in await ingest(store, alerts, engine, [10.05] * 9) if a["alert_type"] == "RUN_RULE_VIOLATION"]
        assert [(a["rule"], a["priority"]) for a in rule] == [(2, 2)]
        assert rule[0]["title"] == "런 규칙 위반 (규칙 2)" and "9점 연속 중심선 한쪽" in rule[0]["message"]
        # every language rides along, for a screen switched to the other one; the gateway's is title/message
        assert spec["texts"]["ko"] == {"title": spec["title"], "message": spec["message"]}
        assert spec["texts"]["en"]["title"] == "Out of specification"
        assert spec["texts"]["en"]["message"].startswith("The measured value exceeds the upper specification limit")
        assert "10.7" in spec["texts"]["en"]["message"] and "10.5" in spec["texts"]["en"]["message"]
        assert rule[0]["texts"]["en"]["title"] == "Run rule violation (rule 2)", rule[0]["texts"]
        assert "nine points in a row on one side" in rule[0]["texts"]["en"]["message"], rule[0]["texts"]
        stored = {a["id"]: a for a in await store.unresolved_alerts()}
        assert set(stored) == set(alerts._unresolved) and stored[spec["id"]]["status"] == "OPEN"
        assert stored[spec["id"]]["texts"] == spec["texts"]  # kept with the alert, so a reload has them too
        await alerts.stop()
        await store.close()
    run(body)


def test_capability_low_in_english(tmp_path):
    async def body():
        store, alerts, _ = await service(tmp_path, language="en")
        engine = CharacteristicEngine(EngineSettings.from_characteristic(DIAMETER))
        values = [10.0 + (0.2 if i % 2 else -0.2) for i in range(30)]  # wide: Cpk well below 1.33
        capability = [a for a in await ingest(store, alerts, engine, values) if a["alert_type"] == "CAPABILITY_LOW"]
        assert len(capability) == 1 and capability[0]["title"] == "Process capability low"
        assert capability[0]["value"] < 1.33 and capability[0]["limit"] == 1.33 and capability[0]["priority"] == 2
        await alerts.stop()
        await store.close()
    run(body)


def test_repeats_count_occurrences_until_resolved(tmp_path):
    async def body():
        clock = Clock()
        store, alerts, published = await service(tmp_path, clock=clock)
        engine = CharacteristicEngine(EngineSettings.from_characteristic(DIAMETER))
        first = [a for a in await ingest(store, alerts, engine, [10.7]) if a["alert_type"] == "OUT_OF_SPEC"][0]
        events_before = len(published)
        await ingest(store, alerts, engine, [10.8, 10.9])  # within a second: counted, sent once a second
        assert first["occurrences"] == 3 and first["value"] == 10.9
        assert "10.7" in first["message"]  # a repeat is counted, not reworded (words are for new alerts only)
        worded: list[int] = []
        with store.batch() as batch:
            alerts.raise_alert(batch, product=BOLT, characteristic=DIAMETER, alert_type="OUT_OF_SPEC", priority=5,
                               words=lambda: worded.append(1) or {"title": "x", "message": "y"})
        await batch.committed
        assert worded == [] and first["occurrences"] == 4
        clock.now += 2
        await ingest(store, alerts, engine, [10.6])
        assert first["occurrences"] == 5
        sent = [e.body["alert"] for e in published[events_before:] if e.body["alert"]["id"] == first["id"]]
        assert sent and sent[-1]["occurrences"] == 5
        assert (await store.alert(first["id"]))["occurrences"] == 5
        await alerts.acknowledge(first["id"], "kim")
        await ingest(store, alerts, engine, [10.0])  # back to normal does not close an alert by itself
        clock.now += 2
        await ingest(store, alerts, engine, [10.7])  # still ACKNOWLEDGED: deduplicated
        assert first["occurrences"] == 6 and first["status"] == "ACKNOWLEDGED"
        await alerts.resolve(first["id"], "kim", "burr on the part", "deburring station checked")
        again = [a for a in await ingest(store, alerts, engine, [10.7]) if a["alert_type"] == "OUT_OF_SPEC"]
        assert len(again) == 1 and again[0]["id"] != first["id"] and again[0]["occurrences"] == 1
        with pytest.raises(Refusal) as refused:
            await alerts.acknowledge(first["id"], "lee")
        assert refused.value.code == "invalid_field"
        with pytest.raises(Refusal) as refused:
            await alerts.resolve(4242, "lee", "x")
        assert refused.value.code == "not_found"
        await alerts.stop()
        await store.close()
    run(body)


def test_timed_shelve_survives_a_restart_and_returns_to_its_state(tmp_path, monkeypatch):
    async def body():
        store, alerts, _ = await service(tmp_path)
        with store.batch() as batch:
            alert = alerts.raise_alert(batch, product=BOLT, characteristic=DIAMETER, alert_type="OUT_OF_SPEC",
                                       priority=4, title="t", message="m")
        await batch.committed
        with pytest.raises(Refusal):
            await alerts.shelve(alert["id"], "kim", 8 * 3600 + 1, "too long")
        shelved = await alerts.shelve(alert["id"], "kim", 0.4, "tool change")
        assert shelved["status"] == "SHELVED"
        await alerts.acknowledge(alert["id"], "kim")  # acknowledged while shelved: comes back acknowledged
        await alerts.stop()
        await store.close()
        # restart: the shelve is re-armed from SQLite and ends on time
        store, alerts, published = await service(tmp_path)
        assert alerts._unresolved[alert["id"]]["status"] == "SHELVED"
        await asyncio.sleep(0.8)
        assert alerts._unresolved[alert["id"]]["status"] == "ACKNOWLEDGED"
        assert published and published[-1].body["alert"]["status"] == "ACKNOWLEDGED"
        history = [(h["action"], h["to_status"]) for h in await store.alert_history(alert["id"])]
        assert history[-1] == ("shelve_expired", "ACKNOWLEDGED")
        await alerts.stop()
        await store.close()
    run(body)


def test_stale_source_and_storage_alerts(tmp_path):
    async def body():
        store, alerts, published = await service(tmp_path)
        with store.batch() as batch:
            alerts.source_stale(batch, BOLT, DIAMETER, 31.2)
            for _ in range(2):
                alerts.storage_problem(batch, "outbox_high", fill="85%", depth=1200, size="0.9 MB", limit="1.0 MB")
        await batch.committed
        kinds = sorted((a["alert_type"], a["occurrences"]) for a in alerts._unresolved.values())
        assert kinds == [("SOURCE_STALE", 1), ("STORAGE", 2)]
        storage = next(a for a in alerts._unresolved.values() if a["alert_type"] == "STORAGE")
        assert storage["title"] == "저장소 문제" and storage["message"].startswith("MQTT 전송 대기열이 한도의 85%")
        assert storage["texts"]["en"]["message"].startswith("MQTT outbox at 85% of its limit (1200 messages")
        with store.batch() as batch:
            alerts.source_fresh(batch, BOLT, DIAMETER)
        await batch.committed
        assert [a["alert_type"] for a in alerts._unresolved.values()] == ["STORAGE"]
        resolved = (await store.alerts(status="RESOLVED"))[0]
        assert resolved["alert_type"] == "SOURCE_STALE" and resolved["resolved_by"] == "gateway"
        await alerts.stop()
        await store.close()
    run(body)


def test_protocol_rules_with_plain_calls():
    clock = Clock()
    protocol = Protocol({1: BOLT}, language="en", commands_per_second=2.0, clock=clock)
    viewer = Session(role="viewer")
    reply = protocol.receive(viewer, '{"type": "subscribe_product", "product_id": 1, "request_id": "s"}')
    assert reply["type"] == "subscribed" and viewer.subscriptions == {1} and reply["request_id"] == "s"
    assert protocol.receive(viewer, '{"type": "resolve_alert"}')["code"] == "unauthorized"
    command = protocol.receive(viewer, '{"type": "get_alerts"}')
    assert command.fields == {"limit": 10, "status": None, "product_id": None, "before_id": None}
    assert protocol.receive(viewer, '{"type": "ping"}')["type"] == "pong"  # the 4th of a burst of 2 x 2/s
    assert protocol.receive(viewer, '{"type": "ping"}')["code"] == "rate_limited"
    clock.now += 1.0
    assert protocol.receive(viewer, '{"type": "ping"}')["type"] == "pong"
    product_session = Session(product_id=1)
    assert protocol.receive(product_session, '{"type": "get_alerts", "limit": 3}').fields["product_id"] == 1
    assert alerts_module.MAX_SHELVE_S == 8 * 3600
