"""The AlertType table is the one place an alert type is defined: a new type is one entry (and its words)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from gateway.alerts import AlertService
from gateway.alerts.types import ALERT_TYPES, AlertType, operator_alert_types
from gateway.config import AlertPriority
from gateway.core import texts as core_texts
from gateway.outputs.websocket import protocol
from gateway.sources.registry import load_config
from gateway.store import Store
from tests.daemon_helpers import minimal_config, write_config


def test_the_table_holds_every_type_the_protocol_lists_with_the_configs_default_priorities() -> None:
    assert tuple(ALERT_TYPES) == protocol.ALERT_TYPES
    assert operator_alert_types() == protocol.OPERATOR_ALERT_TYPES
    defaults = AlertPriority()
    keys = {t.priority_key for t in ALERT_TYPES.values() if t.priority_key is not None}
    assert keys == {f.name for f in dataclasses.fields(AlertPriority)}  # every config key names one type
    for kind in ALERT_TYPES.values():
        if kind.priority_key is not None:
            assert kind.default_priority == getattr(defaults, kind.priority_key), kind.name
        for lang in core_texts.LANGUAGES:  # every type the gateway words has its title in both languages
            if kind.name != "MANUAL":
                assert core_texts.text(lang, kind.title_key)


def test_a_characteristics_alert_priority_overrides_the_default() -> None:
    class Characteristic:
        alert_priority = AlertPriority(out_of_spec=5)

    assert ALERT_TYPES["OUT_OF_SPEC"].priority(Characteristic()) == 5
    assert ALERT_TYPES["OUT_OF_CONTROL"].priority(Characteristic()) == 3
    assert ALERT_TYPES["STORAGE"].priority(Characteristic()) == 4 and ALERT_TYPES["STORAGE"].priority() == 4


@pytest.fixture
def fake_type(monkeypatch: pytest.MonkeyPatch) -> AlertType:
    """A type this gateway does not have: one table entry and its words, taken out again after the test."""
    kind = AlertType("GAUGE_DRIFT", 2)
    monkeypatch.setitem(ALERT_TYPES, kind.name, kind)
    monkeypatch.setitem(core_texts._TEXTS, "alert.GAUGE_DRIFT.title", {"ko": "게이지 드리프트", "en": "Gauge drift"})
    monkeypatch.setitem(core_texts._TEXTS, "alert.GAUGE_DRIFT.message", {
        "ko": "{characteristic}: 기준 게이지가 {offset} 벗어났습니다",
        "en": "{characteristic}: the reference gauge is off by {offset}",
    })
    return kind


def test_a_new_alert_type_is_one_table_entry_and_its_words(tmp_path: Path, fake_type: AlertType) -> None:
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path))))
    product = config.products[0]
    characteristic = product.characteristics[0]
    published: list = []

    async def scenario() -> dict:
        store = Store(str(tmp_path / "spc.sqlite3"))
        await store.open()
        alerts = AlertService(store, config)
        await alerts.start(published.extend)
        try:
            for _ in range(2):  # the second is a repeat: counted on the first
                with store.batch(on_commit=alerts._published) as batch:
                    raised = alerts.raise_alert(batch, product=product, characteristic=characteristic, value=0.012,
                                                **fake_type.fields(characteristic, "ko", offset="0.012 mm",
                                                                   characteristic=characteristic.name))
                await batch.committed
            await alerts.stop()  # stores the repeat's count
            return raised
        finally:
            await store.close()

    raised = asyncio.run(scenario())
    assert raised["alert_type"] == "GAUGE_DRIFT" and raised["priority"] == 2
    assert raised["title"] == "게이지 드리프트" and raised["message"] == "diameter: 기준 게이지가 0.012 mm 벗어났습니다"
    assert raised["texts"]["en"] == {"title": "Gauge drift", "message": "diameter: the reference gauge is off by 0.012 mm"}
    assert raised["occurrences"] == 2 and raised["value"] == 0.012
    assert list(raised) == ["id", "product_id", "product_code", "product_name", "characteristic", "alert_type",
                            "priority", "title", "message", "status", "created_at", "occurrences", "texts", "value"]
    messages = [e.body["alert"] for e in published if e.type == "alert"]
    assert messages[0]["alert_type"] == "GAUGE_DRIFT" and messages[0]["status"] == "OPEN"
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        row = conn.execute("SELECT alert_type, priority, status, body FROM alerts").fetchone()
    assert row[:3] == ("GAUGE_DRIFT", 2, "OPEN")
    assert json.loads(row[3]) == raised  # the stored row is the message, field for field
