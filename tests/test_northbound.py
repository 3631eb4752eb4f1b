"""Northbound MQTT with a real mosquitto: outage, ordering, replay marks, buffer_limit, status and will."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from test_northbound_harness import (
    CHARACTERISTIC,
    PRODUCT,
    Harness,
    Subscriber,
    check_delivery,
    measurement_body,
    persistent_broker,
)

from gateway.config import NorthboundMQTT
from gateway.core.texts import text
from gateway.outputs.mqtt import Northbound, mark_replayed, topic_for
from gateway.outputs.mqtt_link import NorthboundError, read_password
from gateway.store import Store

mosquitto = pytest.fixture(persistent_broker, name="mosquitto")


def config(port: int, **kw) -> NorthboundMQTT:
    return NorthboundMQTT(host="127.0.0.1", port=port, keepalive=5, reconnect_min=0.1, reconnect_max=0.3,
                          **kw)


async def produce(store: Store, northbound: Northbound, cfg: NorthboundMQTT, count: int, *,
                  per_batch: int = 100, pause: float = 0.0, event_type: str = "measurement") -> None:
    """`count` events through real store batches, waking the northbound after each commit like the app."""
    topic = topic_for(cfg, event_type, PRODUCT, CHARACTERISTIC)
    for start in range(0, count, per_batch):
        with store.batch() as batch:
            for _ in range(min(per_batch, count - start)):
                body = measurement_body(store.last_seq + 1) if event_type == "measurement" else {
                    "type": event_type, "product_code": PRODUCT, "title": "test"}
                batch.event(event_type, 1, body, outbox_topic=topic)
        await batch.committed
        northbound.wake()
        if pause:
            await asyncio.sleep(pause)


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- pure functions

def test_topics_follow_the_contract():
    cfg = NorthboundMQTT(host="h", topic_prefix="plant/line3/spc",
                         publish=("alert", "measurement", "violation"))
    assert topic_for(cfg, "alert", "P-100") == "plant/line3/spc/alert/P-100"
    assert topic_for(cfg, "violation", "P-100", "bore") == "plant/line3/spc/violation/P-100"
    assert topic_for(cfg, "measurement", "P-100", "bore") == "plant/line3/spc/measurement/P-100/bore"
    assert topic_for(cfg, "capability", "P-100") is None  # not in northbound.mqtt.publish
    assert topic_for(cfg, "subgroup", "P-100", "bore") is None  # never published
    # a name cannot add topic levels or wildcards
    assert topic_for(cfg, "measurement", "P+1", "a/b#") == "plant/line3/spc/measurement/P_1/a_b_"


def test_replayed_mark_keeps_valid_json():
    marked = json.loads(mark_replayed(b'{"seq":5,"type":"alert"}'))
    assert marked == {"seq": 5, "type": "alert", "replayed": True}
    assert json.loads(mark_replayed(b'{ }\n')) == {"replayed": True}
    assert mark_replayed(b"[1]") == b"[1]"


def test_password_file(tmp_path: Path):
    (tmp_path / "pw").write_text("s3cret\n")
    assert read_password(str(tmp_path / "pw")) == "s3cret"
    with pytest.raises(NorthboundError, match="password_file: cannot read .*missing"):
        read_password(str(tmp_path / "missing"))


# ---------------------------------------------------------------- with a broker

def test_broker_outage_of_10000_events_delivers_all_in_seq_order(tmp_path: Path, mosquitto):
    """The broker goes down mid-stream while 10,000 events are produced, then comes back."""
    subscriber = Subscriber(mosquitto.port).start()
    subscriber.wait_for(lambda s: s.client.is_connected(), 5, "subscriber connected")

    async def scenario() -> dict:
        store = Store(str(tmp_path / "gw.db"))
        await store.open()
        cfg = config(mosquitto.port)
        northbound = Northbound(cfg, store, gateway_name="line3", version="t", product_codes=[PRODUCT],
                                on_alert=lambda kind, **values: None)
        await northbound.start()
        await until(lambda: northbound.stats()["connected"], 5, "connected")
        await produce(store, northbound, cfg, 1000, pause=0.01)  # live
        producing = asyncio.create_task(produce(store, northbound, cfg, 9000, pause=0.001))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(mosquitto.stop)  # mid-stream: messages in flight are lost with it
        await producing
        assert not northbound.stats()["connected"]
        await asyncio.to_thread(mosquitto.start)
        await produce(store, northbound, cfg, 200, pause=0.01)  # live again, interleaved with the drain
        await until(lambda: len(subscriber.seqs()) >= 10200, 30, "all 10,200 events at the subscriber")
        await until(lambda: northbound.stats()["published"] >= 10200, 5, "all confirmed")
        stats = northbound.stats()
        await northbound.stop()
        assert (await store.outbox_stats())["depth"] == 0
        await store.close()
        return stats

    stats = asyncio.run(scenario())
    subscriber.stop()
    events = subscriber.events()
    check_delivery(events, range(1, 10201))
    replayed = [m.body["seq"] for m in events if m.body.get("replayed")]
    assert len(replayed) >= 5000  # everything produced during the outage is history
    assert all(m.topic == f"spc/measurement/{PRODUCT}/{CHARACTERISTIC}" for m in events)
    assert stats["published"] >= 10200 and stats["inflight"] == 0 and stats["dropped"] == 0
    assert stats["reconnects"] >= 1


@pytest.mark.parametrize("protocol,qos", [("3.1.1", 2), ("5", 0)])
def test_protocols_and_qos(tmp_path: Path, mosquitto, protocol: str, qos: int):
    """MQTT 3.1.1 with QoS 2 (delete on PUBCOMP) and MQTT 5 with QoS 0."""
    subscriber = Subscriber(mosquitto.port).start()
    subscriber.wait_for(lambda s: s.client.is_connected(), 5, "subscriber connected")

    async def scenario() -> None:
        store = Store(str(tmp_path / "gw.db"))
        await store.open()
        cfg = config(mosquitto.port, protocol=protocol, qos=qos, max_inflight=10)
        northbound = Northbound(cfg, store, gateway_name="line3", version="t", product_codes=[PRODUCT],
                                on_alert=lambda kind, **values: None)
        await northbound.start()
        await until(lambda: northbound.stats()["connected"], 5, "connected")
        await produce(store, northbound, cfg, 500, per_batch=50)
        await until(lambda: len(subscriber.seqs()) >= 500, 10, "500 events")
        await until(lambda: northbound.stats()["published"] == 500, 5, "500 confirmed")
        await northbound.stop()  # hands the last deletes to the store
        assert (await store.outbox_stats())["depth"] == 0
        await store.close()

    asyncio.run(scenario())
    subscriber.stop()
    check_delivery(subscriber.events(), range(1, 501))
    assert not any(m.body.get("replayed") for m in subscriber.events())  # all live


def test_buffer_limit_drops_only_oldest_measurements_and_alerts(tmp_path: Path, mosquitto):
    subscriber = Subscriber(mosquitto.port).start()  # a persistent session: kept while the broker is away
    subscriber.wait_for(lambda s: s.client.is_connected(), 5, "subscriber connected")
    mosquitto.stop()  # the plant broker is away for the whole fill
    alerts: list[tuple[str, dict]] = []

    async def scenario() -> tuple[list[int], list[int]]:
        store = Store(str(tmp_path / "gw.db"))
        await store.open()
        cfg = config(mosquitto.port, buffer_limit=40_000)
        northbound = Northbound(cfg, store, gateway_name="line3", version="t", product_codes=[PRODUCT],
                                on_alert=lambda kind, **values: alerts.append((kind, values)))
        await northbound.start()
        await produce(store, northbound, cfg, 20, per_batch=10, event_type="alert")  # seq 1..20
        await produce(store, northbound, cfg, 250)  # ~35 kB: past 80 %
        await until(lambda: any(k == "outbox_high" for k, _ in alerts), 5, "outbox_high alert")
        await produce(store, northbound, cfg, 20, per_batch=10, event_type="alert")  # seq 271..290
        await produce(store, northbound, cfg, 400)  # well past the limit
        await until(lambda: any(k == "outbox_dropped" for k, _ in alerts), 5, "outbox_dropped alert")
        high, dropped = dict(alerts)["outbox_high"], dict(alerts)["outbox_dropped"]
        assert high["fill"].endswith("%") and high["depth"] > 0 and dropped["n"] > 0  # what the alert words
        await until(lambda: northbound.stats()["bytes"] <= 40_000, 5, "outbox trimmed")
        stats = northbound.stats()
        assert stats["dropped"] > 0 and stats["depth"] > 0 and stats["oldest_age_s"] is not None
        rows = await store.outbox_fetch(0, 10_000)
        kept_alerts = [r.seq for r in rows if r.kind == "alert"]
        kept_measurements = [r.seq for r in rows if r.kind == "measurement"]
        # then the broker returns: what was kept goes out
        await asyncio.to_thread(mosquitto.start)
        await until(lambda: len(subscriber.seqs()) >= len(rows), 15, "the kept rows")
        subscriber.stop()
        assert subscriber.seqs() == {r.seq for r in rows}
        await northbound.stop()
        await store.close()
        return kept_alerts, kept_measurements

    kept_alerts, kept_measurements = asyncio.run(scenario())
    assert kept_alerts == list(range(1, 21)) + list(range(271, 291))  # never an alert
    # the newest measurements survive: the dropped ones are the oldest
    produced = list(range(21, 271)) + list(range(291, 691))
    assert 0 < len(kept_measurements) < len(produced)
    assert kept_measurements == produced[-len(kept_measurements):]
    kinds = [k for k, _ in alerts]
    assert kinds.count("outbox_high") == 1  # once per crossing, not once per check
    dropped = dict(alerts)["outbox_dropped"]  # worded in both languages by the alert service
    assert "측정값 " in text("ko", "alert.STORAGE.outbox_dropped", **dropped)
    assert "oldest measurements" in text("en", "alert.STORAGE.outbox_dropped", **dropped)


def test_status_retained_online_and_will_on_kill(tmp_path: Path, mosquitto):
    harness = Harness(tmp_path / "gw.db", mosquitto.port, count=10, rate=1000).start()
    try:
        harness.wait(lambda h: h.connected and h.committed >= 10, 10, "harness connected")
        # a consumer that arrives later still learns the state: retained
        late = Subscriber(mosquitto.port, topic="spc/status", client_id="late", clean=True).start()
        late.wait_for(lambda s: s.statuses(), 5, "retained status")
        first = late.statuses()[0]
        epoch = first.body.pop("epoch")  # the database's id (every event carries it too)
        assert first.retain and first.body == {"status": "online", "gateway": "line3", "version": "test",
                                               "products": [PRODUCT]} and len(epoch) == 16
        harness.kill()  # no DISCONNECT: the broker publishes the will
        late.wait_for(lambda s: len(s.statuses()) >= 2, 5, "offline will")
        assert late.statuses()[-1].body["status"] == "offline"
        late.stop()
        again = Subscriber(mosquitto.port, topic="spc/status", client_id="again", clean=True).start()
        again.wait_for(lambda s: s.statuses(), 5, "retained offline")
        assert again.statuses()[0].retain and again.statuses()[0].body["status"] == "offline"
        again.stop()
    finally:
        harness.terminate()
