"""What SQLite work a call costs, for the tests that keep periodic queries from growing with the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

STEP = 100  # SQLite VM instructions between two calls of the progress handler


def vm_steps(conn: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> tuple[int, Any]:
    """(hundreds of SQLite VM instructions fn(*args) ran on conn, what fn returned)."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    conn.set_progress_handler(count, STEP)
    try:
        result = fn(*args)
    finally:
        conn.set_progress_handler(None, 0)
    return steps[0], result


async def write_readings(store: Any, rows: int, add_measurement: Callable[..., Any], per_batch: int = 5000) -> None:
    """Commit `rows` readings (measurement, event and outbox row each) through the store, as the pipeline does."""
    for start in range(0, rows, per_batch):
        with store.batch() as b:
            for n in range(start, min(rows, start + per_batch)):
                add_measurement(b, n=n)
        await b.committed
