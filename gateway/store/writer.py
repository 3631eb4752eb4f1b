"""The store's single writer thread: groups queued batches into transactions, retries, prunes.

Only this thread writes. It takes batches in the order they were queued, puts several into one
transaction (up to batch_max rows, waiting at most flush_interval for more), and reports each commit
back to the event loop in commit order. A commit that fails (disk full, I/O error) is rolled back
and retried with backoff forever, with the same batches in the same order: nothing accepted is
dropped, and nothing queued behind it overtakes it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.core.threadname import name_this_thread
from gateway.store.batch import COUNTERS, ORDER, SQL, Batch

log = logging.getLogger("gateway.store")

RETRY_MIN = 0.05  # seconds before the first retry of a failed commit
RETRY_MAX = 5.0  # seconds between retries at most
PRUNE_CHUNK = 2000  # rows deleted per table per prune transaction: keeps each prune step short
PRUNED_COUNTERS = ("measurement", "seq")  # counters of the tables retention prunes: their marks go to meta
# Errors that a retry cannot cure (a row the schema refuses): such rows are skipped one by one and
# logged, so one bad row cannot jam the store forever.
_POISON = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


class FileLost(sqlite3.OperationalError):
    """The database file at the store's path is no longer the one this process writes (deleted, replaced).

    SQLite keeps writing an unlinked file without complaint: every commit "succeeds" into a file that
    vanishes with the process. So the writer compares the path with the file it opened before each
    commit and refuses to commit once they differ; nothing is acknowledged as stored from then on."""


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of path, None when there is no such file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future):
        self.fn = fn
        self.future = future


def _resolve(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Writer:
    """The writer thread and its queue (bounded by the store's max_pending rows)."""

    def __init__(self, conn: sqlite3.Connection, path: str, loop: asyncio.AbstractEventLoop,
                 on_done: Callable[[list[Batch]], None], on_refused: Callable[[list[Batch], str], None], *,
                 batch_max: int, flush_interval: float,
                 retention: float | None, max_size: int | None, prune_interval: float):
        self.conn = conn
        self.path = path
        self.loop = loop
        self.on_done = on_done
        self.on_refused = on_refused
        self.batch_max = batch_max
        self.flush_interval = flush_interval
        self.retention = retention
        self.max_size = max_size
        self.prune_interval = prune_interval
        self._cond = threading.Condition()
        self._queue: deque[Batch] = deque()
        self._queued_rows = 0
        self._jobs: deque[_Job] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._abandon = False
        self._next_prune = time.monotonic() + min(prune_interval, 5.0)
        self.commits = 0
        self.rows_written = 0
        self.rows_rejected = 0
        self.failing = False
        self.last_error: str | None = None
        self.pruned = {"measurements": 0, "events": 0, "subgroups": 0}
        self.pruned_for_size = 0
        self.current_group: list[Batch] = []  # the group being committed (or retried)
        self.identity = file_identity(path)  # the file this connection writes (opened just before)
        self.lost: str | None = None  # set for good once the path no longer names that file
        self.thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    # -- called from the event loop --------------------------------------------------------------
    def put(self, batch: Batch) -> None:
        with self._cond:
            self._queue.append(batch)
            self._queued_rows += batch.n_rows
            self._cond.notify()

    def call(self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future) -> None:
        """Run fn(conn) on the writer thread before its next transaction (even while retrying)."""
        with self._cond:
            self._jobs.append(_Job(fn, future))
            self._cond.notify()
        self._wake.set()

    def check_file(self) -> str | None:
        """Is the path still the file this writer writes? Sets and returns `lost` (any thread; a stat)."""
        if self.lost is None:
            now = file_identity(self.path)
            if now != self.identity:
                what = "deleted" if now is None else "replaced by another file"
                self.lost = (f"the database file {self.path} was {what} while spc-gateway ran: nothing is "
                             f"stored (and no MQTT reading acknowledged) until spc-gateway is restarted, "
                             f"which creates a new database; check what removed it")
                self.last_error = self.lost
                if not self.failing:
                    log.error("%s", self.lost)
                self.failing = True
        return self.lost

    def stop(self, abandon: bool = False) -> None:
        """Finish what is queued, then end (abandon: end now, keeping nothing)."""
        with self._cond:
            self._stopping = True
            self._abandon = self._abandon or abandon
            self._cond.notify()
        self._wake.set()

    # -- the thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        name_this_thread("store-writer")  # its CPU share shows apart in top -H and in bench/bench_lines.py
        try:
            self._loop_forever()
        except BaseException as exc:  # a bug here must not stall the gateway silently
            log.exception("the store's writer thread stopped")
            self.failing = True
            self.last_error = f"the store's writer thread stopped ({exc!r}): restart spc-gateway"

    def _notify(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody waits for the answer any more
            log.debug("event loop closed; dropping a store notification")

    def _loop_forever(self) -> None:
        while True:
            group = self._take()
            self._run_jobs()
            if group is None:
                return
            if group:
                self._commit_with_retry(group)
            elif self.failing and not self.lost:
                self._probe()
            if self._abandon:
                return
            if time.monotonic() >= self._next_prune:
                self._prune_tick()

    def _take(self) -> list[Batch] | None:
        """Wait for work; returns the next group, [] for a timer tick, None when stopped and empty."""
        with self._cond:
            while not self._queue and not self._jobs and not self._stopping:
                timeout = max(0.0, self._next_prune - time.monotonic())
                if self.failing and not self.lost:
                    timeout = min(timeout, RETRY_MAX)  # probe the disk now and then (_probe)
                if not self._cond.wait(timeout):
                    return []
            if self._abandon or (not self._queue and self._stopping):
                return None
            if not self._queue:
                return []
            deadline = self._queue[0].enqueued_at + self.flush_interval
            while self._queued_rows < self.batch_max and not self._stopping and not self._jobs:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            group: list[Batch] = []
            rows = 0
            while self._queue and (not group or rows + self._queue[0].n_rows <= self.batch_max):
                batch = self._queue.popleft()
                group.append(batch)
                rows += batch.n_rows
            self._queued_rows -= rows
            return group

    def _run_jobs(self) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            try:
                result = job.fn(self.conn)
            except BaseException as exc:  # handed to the awaiting coroutine, which decides
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                self._notify(_resolve, job.future, None, exc)
            else:
                self._notify(_resolve, job.future, result)

    def _commit_with_retry(self, group: list[Batch]) -> None:
        self.current_group = group
        delay = RETRY_MIN
        tolerant = False
        while True:
            try:
                self._commit(group, tolerant)
                break
            except _POISON as exc:
                self._rollback()
                log.error("a row was refused by the schema (%s); writing the rows one by one", exc)
                tolerant = True
                continue
            except FileLost:
                self._rollback()
            except sqlite3.Error as exc:
                self._rollback()
                rows = sum(b.n_rows for b in group) + self._queued_rows
                self.last_error = (
                    f"cannot write to {self.path}: {exc} ({type(exc).__name__}); {rows} rows are kept "
                    f"in memory and retried: free disk space or check the storage device")
                if not self.failing:
                    log.error("%s", self.last_error)
                self.failing = True
            group = self.current_group = self._refuse(group)
            if not group:  # only operators' acts were waiting: each got its refusal
                return
            self._wake.wait(delay)
            self._wake.clear()
            delay = min(delay * 2, RETRY_MAX)
            self._run_jobs()
            if self._abandon:
                return
        if self.failing:
            log.warning("storage works again: %s is being written", self.path)
            self.failing = False
        self.commits += 1
        self.current_group = []
        self._notify(self.on_done, group)

    def _refuse(self, group: list[Batch]) -> list[Batch]:
        """Drop the refusable batches of the failed group and of the queue; return the rest of the group.

        Rows that wait are kept, so what is accepted is written in order; an operator's act is not,
        because it would take effect long after its sender was told nothing (and retried)."""
        with self._cond:
            refused = [b for b in self._queue if b.refusable]
            if refused:
                self._queue = deque(b for b in self._queue if not b.refusable)
                self._queued_rows -= sum(b.n_rows for b in refused)
        refused += [b for b in group if b.refusable]
        if refused:
            self._notify(self.on_refused, refused, self.last_error or "the database cannot be written")
            group = [b for b in group if not b.refusable]
        return group

    def _probe(self) -> None:
        """While failing with nothing to write: a tiny commit tells when the disk works again, so that
        operators' acts (refused while failing) are taken again without waiting for other traffic."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            if self.check_file():
                raise FileLost(self.lost)
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", (str(time.time()),))
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            log.debug("storage probe: %s", exc)
            return
        log.warning("storage works again: %s is being written", self.path)
        self.failing = False

    def _rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.Error as exc:  # the transaction is gone either way
            log.debug("rollback: %s", exc)

    def _commit(self, group: list[Batch], tolerant: bool) -> None:
        conn = self.conn
        written = 0
        conn.execute("BEGIN IMMEDIATE")
        if self.check_file():  # inside the write lock: the last commit may not slip into a lost file
            raise FileLost(self.lost)
        for kind in ORDER:
            params = list(itertools.chain.from_iterable(b.rows.get(kind, ()) for b in group))
            if not params:
                continue
            if not tolerant:
                conn.executemany(SQL[kind], params)
                written += len(params)
                continue
            for row in params:
                try:
                    conn.execute(SQL[kind], row)
                    written += 1
                except _POISON as exc:
                    self.rows_rejected += 1
                    log.error("row refused and skipped (%s): %s %r", exc, kind, row[:4])
        conn.execute("COMMIT")
        self.rows_written += written

    # -- pruning ---------------------------------------------------------------------------------
    def _prune_tick(self) -> None:
        try:
            more = self.prune_step()
        except sqlite3.Error as exc:
            self._rollback()
            log.warning("pruning old measurements failed, will retry: %s", exc)
            more = False
        # A backlog is worked off in small steps between write transactions.
        self._next_prune = time.monotonic() + (0.05 if more else self.prune_interval)

    def used_bytes(self) -> int:
        """Bytes of the database file in use (free pages left by pruning are reused, not counted)."""
        c = self.conn
        page_size = c.execute("PRAGMA page_size").fetchone()[0]
        used = c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0]
        return int(used * page_size)

    def prune_step(self) -> bool:
        """Delete one chunk of what retention and max_size allow; True when more remains."""
        conn = self.conn
        more = False
        conn.execute("BEGIN IMMEDIATE")
        # High-water marks keep ids and seq growing even when every row of a table is pruned. A bare
        # MAX() is one index lookup; wrapped in HAVING, SQLite scans the whole table instead, which held
        # this thread (and every commit behind it) 0.4 s a minute at 1.4 M events and grew with the file.
        # The keys are the ones Store._load_counters reads back: hw_<table>.
        for table, column in (COUNTERS[kind] for kind in PRUNED_COUNTERS):
            high = conn.execute(f"SELECT MAX({column}) FROM {table}").fetchone()[0]
            if high is not None:
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"hw_{table}", high))
        counts = {"measurements": 0, "events": 0, "subgroups": 0}
        if self.retention is not None:
            cutoff = time.time() - self.retention
            for table, key, at in (("measurements", "id", "received_at"), ("events", "seq", "created_at"),
                                   ("subgroups", "id", "at")):
                n = conn.execute(
                    f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} ORDER BY {key} "
                    f"LIMIT {PRUNE_CHUNK}) AND {at} < ?", (cutoff,)).rowcount
                counts[table] += n
                more = more or n == PRUNE_CHUNK
        conn.execute("COMMIT")
        self._count_pruned(counts)
        if self.max_size is not None and self.used_bytes() > self.max_size:
            conn.execute("BEGIN IMMEDIATE")
            counts = {}
            for table, key in (("measurements", "id"), ("events", "seq"), ("subgroups", "id")):
                counts[table] = conn.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} "
                                             f"ORDER BY {key} LIMIT {PRUNE_CHUNK})").rowcount
            conn.execute("COMMIT")
            deleted = self._count_pruned(counts)
            self.pruned_for_size += deleted
            more = more or (deleted > 0 and self.used_bytes() > self.max_size)
        return more

    def _count_pruned(self, counts: dict[str, int]) -> int:
        """Add committed deletions to the counters (only after COMMIT, so stats never run ahead)."""
        for table, n in counts.items():
            self.pruned[table] += n
        return sum(counts.values())
