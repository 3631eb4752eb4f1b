"""The database's epoch: a random id made with the file, kept across restarts, in every event beside seq."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path

from gateway.store import Store
from gateway.store.schema import migrate


async def _event(store: Store) -> dict:
    with store.batch() as b:
        b.event("alert", None, {"type": "alert", "alert": {}}, outbox_topic="spc/alert/x")
    (event,) = await b.committed
    assert json.loads(event.data) == event.body  # the bytes sent to screens and the plant carry it too
    return event.body


def test_every_event_carries_the_epoch_of_its_database_kept_across_restarts(tmp_path: Path) -> None:
    async def main() -> dict:
        first = Store(str(tmp_path / "a.sqlite3"))
        await first.open()
        body = await _event(first)
        assert re.fullmatch(r"[0-9a-f]{16}", body["epoch"]) and body["seq"] == 1
        await first.close()
        again = Store(str(tmp_path / "a.sqlite3"))
        await again.open()
        assert (await _event(again))["epoch"] == body["epoch"]  # same file, same epoch
        await again.close()
        other = Store(str(tmp_path / "b.sqlite3"))  # a new file (a lost one recreated): seq 1 again, new epoch
        await other.open()
        fresh = await _event(other)
        assert fresh["seq"] == 1 and fresh["epoch"] != body["epoch"]
        await other.close()
        return body

    body = asyncio.run(main())
    with sqlite3.connect(tmp_path / "a.sqlite3") as conn:
        stored = [json.loads(r[0]) for r in conn.execute("SELECT body FROM events ORDER BY seq")]
        outbox = [json.loads(r[0]) for r in conn.execute("SELECT payload FROM outbox ORDER BY seq")]
    assert [e["epoch"] for e in stored] == [e["epoch"] for e in outbox] == [body["epoch"]] * 2


def test_a_database_from_before_the_epoch_gets_one_on_migration(tmp_path: Path) -> None:
    path = str(tmp_path / "old.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn, target=3)
    conn.execute("INSERT INTO events VALUES (41, 'alert', 1, 1, '{\"type\":\"alert\",\"seq\":41}', 1.0)")
    conn.close()

    async def main() -> dict:
        store = Store(path)
        await store.open()
        body = await _event(store)
        await store.close()
        return body

    body = asyncio.run(main())
    assert body["seq"] == 42 and re.fullmatch(r"[0-9a-f]{16}", body["epoch"])
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0] == body["epoch"]
