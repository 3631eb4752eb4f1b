"""An act the store refuses changes nothing: the alert in memory is the alert it was (bug: the act used to
change the live alert before its batch committed, and a refusal had to undo it by hand)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.core.texts import Refusal
from gateway.sources.registry import load_config
from tests.daemon_helpers import minimal_config, write_config
from tests.gateway_helpers import started_alerts

# more than a page (4 KiB) in the history row, the alert row and the event: the file must grow to take it
LONG_COMMENT = "게이지 점검 " * 400


def test_a_refused_acknowledge_leaves_the_alert_as_it_was_and_a_later_one_is_taken(tmp_path: Path) -> None:
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path))))
    product = config.products[0]
    characteristic = product.characteristics[0]
    db = tmp_path / "spc.sqlite3"

    async def scenario() -> None:
        store, alerts = await started_alerts(config)
        try:
            with store.batch() as batch:
                alerts.source_stale(batch, product, characteristic, 30.0)
            await batch.committed
            alert_id = alerts.unresolved()[0]["id"]
            await alerts.shelve(alert_id, "kim", 3600, "tool change")
            alert = alerts._unresolved[alert_id]
            before, timer, key = alerts.unresolved(), alert.timer, alert.key
            assert alert.shelved_from == "OPEN" and timer is not None

            # the disk is full: the file may not grow by a single page, and nobody has noticed yet
            await store._write_job(lambda c: c.execute("PRAGMA max_page_count = 1").fetchone())
            assert not store.failing
            with pytest.raises(Refusal) as refused:
                await asyncio.wait_for(alerts.acknowledge(alert_id, "lee", LONG_COMMENT), 5)
            assert refused.value.code == "storage_unavailable" and store.failing
            assert alerts.unresolved() == before
            assert alerts._unresolved[alert_id] is alert and alert.shelved_from == "OPEN"
            assert alert.timer is timer and not timer.cancelled() and alerts._by_key[key] is alert
            assert "acknowledged_by" not in alert.body and "comment" not in alert.body

            await store._write_job(lambda c: c.execute("PRAGMA max_page_count = 1073741823").fetchone())
            deadline = time.monotonic() + 15
            while store.failing and time.monotonic() < deadline:  # the writer's probe finds room again
                await asyncio.sleep(0.1)
            acknowledged = await asyncio.wait_for(alerts.acknowledge(alert_id, "lee", LONG_COMMENT), 5)
            assert acknowledged["status"] == "SHELVED" and acknowledged["acknowledged_by"] == "lee"
            assert alert.shelved_from == "ACKNOWLEDGED" and alert.timer is timer  # the shelve runs on
        finally:
            await alerts.stop()
            await store.close(timeout=2.0)

    asyncio.run(scenario())
    with sqlite3.connect(db) as conn:
        acts = [r[0] for r in conn.execute("SELECT action FROM alert_history ORDER BY id")]
        body = json.loads(conn.execute("SELECT body FROM alerts").fetchone()[0])
    assert acts == ["raise", "shelve", "acknowledge"], acts
    assert body["status"] == "SHELVED" and body["acknowledged_by"] == "lee" and body["comment"] == LONG_COMMENT
