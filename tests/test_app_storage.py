"""A full disk while the gateway runs: it keeps serving, retries, raises a STORAGE alert, loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.core.model import CharacteristicKey, Measurement
from gateway.core.texts import Refusal
from gateway.sources.registry import load_config
from tests.daemon_helpers import minimal_config, write_config
from tests.gateway_helpers import started_alerts


def test_full_disk_keeps_serving_raises_storage_alert_and_loses_nothing(tmp_path: Path) -> None:
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path))))
    db = tmp_path / "spc.sqlite3"

    async def scenario() -> None:
        gateway = Gateway(config)
        await gateway.start()
        try:
            store = gateway.store
            # what SQLite says when the disk is full: SQLITE_FULL on every commit from now on
            await store._write_job(lambda c: c.execute("PRAGMA max_page_count = 1").fetchone())
            key = CharacteristicKey(1, "diameter")
            for i in range(20):
                await gateway.pipeline.sink(Measurement(key, 10.0 + i * 0.001, time.time()))
            deadline = time.monotonic() + 10
            while not gateway.store.stats().get("failing") and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert store.stats()["failing"], "the store never reported the full disk"
            health = gateway.health()
            assert health["ok"] is False and health["store"]["failing"]
            await asyncio.sleep(2.5)  # the storage watch raises its alert (queued behind the full disk)
            await store._write_job(lambda c: c.execute("PRAGMA max_page_count = 1073741823").fetchone())
            deadline = time.monotonic() + 10
            while store.stats().get("failing") and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not store.stats()["failing"]
        finally:
            await gateway.stop()

    asyncio.run(scenario())
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from measurements").fetchone()[0] == 20
        storage = [json.loads(r[0]) for r in conn.execute("select body from alerts where alert_type='STORAGE'")]
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert len(storage) == 1 and "full" in storage[0]["message"].lower(), storage
    assert storage[0]["texts"]["en"]["message"].startswith("The database cannot be written (")  # both languages


def test_an_act_the_writer_refuses_is_undone_and_never_written(tmp_path: Path) -> None:
    """The race: an act passes the up-front check, then its commit meets the fault. The writer drops it,
    the act answers storage_unavailable, and the alert is back as it was (status, shelve timer)."""
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path))))
    db = tmp_path / "spc.sqlite3"
    moved = tmp_path / "moved.sqlite3"

    async def scenario() -> None:
        store, alerts = await started_alerts(config)
        try:
            alert = await alerts.create(1, "MANUAL", 3, "t", "m", user="kim")
            await alerts.shelve(alert["id"], "kim", 3600, "tool change")
            before = alerts.unresolved()
            os.rename(db, moved)  # the path no longer names the file: the writer refuses every commit
            assert not store.failing  # nobody has noticed yet: the act passes the up-front check
            with pytest.raises(Refusal) as refused:
                await asyncio.wait_for(alerts.resolve(alert["id"], "kim", "fixed"), 5)
            assert refused.value.code == "storage_unavailable"
            assert store.failing and store.stats()["file_lost"]
            assert alerts.unresolved() == before and alerts._unresolved[alert["id"]].timer is not None  # still shelved, timer armed
            for act in (alerts.unshelve(alert["id"], "kim"), alerts.create(1, "MANUAL", 3, "t2", "m2"),
                        alerts.comment(alert["id"], "kim", "c")):
                with pytest.raises(Refusal) as refused:
                    await asyncio.wait_for(act, 1)  # refused at once now that the fault is known
                assert refused.value.code == "storage_unavailable" and "저장소" in refused.value.texts["ko"]
            assert alerts.unresolved() == before
        finally:
            await alerts.stop()
            await store.close(timeout=1.0)

    asyncio.run(scenario())
    with sqlite3.connect(moved) as conn:
        acts = [r[0] for r in conn.execute("SELECT action FROM alert_history ORDER BY id")]
        assert [r[0] for r in conn.execute("SELECT status FROM alerts")] == ["SHELVED"]
    assert acts == ["create", "shelve"], acts
