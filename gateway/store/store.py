"""The SQLite store: one file, WAL, batched writes on one writer thread, reads on a reader thread.

Nothing here touches the disk on the event loop. `batch()` records rows in memory and hands out ids
and `seq` at once; the writer thread commits groups of batches and reports each commit back to the
loop in commit order (futures resolved, on_commit(events) called), so what leaves the process is
always on disk first.

Durability: synchronous=FULL by default. In WAL mode that means one fsync of the WAL per commit,
so a committed transaction survives a power cut, which is what an MQTT-in acknowledgement and a
"measurement accepted" promise rely on. NORMAL would survive a crash of the process (SIGKILL) but
could lose the last commits at a power cut. Because commits are grouped (up to batch_max rows), the
fsync is paid per group, not per row: bench/bench_store.py measures both modes.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.core.model import Event
from gateway.store import outbox as store_outbox
from gateway.store import reads
from gateway.store.batch import COUNTERS, Batch
from gateway.store.maintenance import backup as _backup
from gateway.store.reads import OutboxRow
from gateway.store.schema import LATEST, StoreError, StoreLockedError, StoreUnavailable, migrate
from gateway.store.writer import Writer

__all__ = ["Store", "Batch", "StoreError", "StoreLockedError", "StoreUnavailable", "OutboxRow", "LATEST"]

log = logging.getLogger("gateway.store")

WAL_SIZE_LIMIT = 64 << 20  # bytes the WAL file is truncated back to after a checkpoint


def _take_lock(path: str) -> int:
    """Hold an exclusive fcntl lock on PATH.lock for the life of the process (released by the kernel)."""
    lock_path = path + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot write in the storage folder {os.path.dirname(path)} ({exc.strerror}): "
                         f"let the spc-gateway user write there, or set storage.path to a writable "
                         f"place") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreLockedError(f"another spc-gateway (pid {pid}) is already using {path}: stop it first, or "
                               f"give this one another storage.path") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise StoreError(f"{path} cannot use write-ahead logging (journal mode stays {mode}): put "
                         "storage.path on a local disk, not a network share")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    return conn


class Store:
    """The gateway's SQLite file: see docs/internals.md (gateway.store)."""

    def __init__(self, path: str, *, batch_max: int = 1000, flush_interval: float = 0.0,
                 retention: float | None = None, max_size: int | None = None, max_pending: int = 50_000,
                 prune_interval: float = 60.0, synchronous: str = "FULL"):
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self.path = os.path.abspath(path)
        self.batch_max = batch_max
        self.flush_interval = flush_interval
        self.retention = retention
        self.max_size = max_size
        self.max_pending = max_pending
        self.prune_interval = prune_interval
        self.synchronous = synchronous.upper()
        self.schema_upgraded: tuple[int, int] | None = None  # (from, to) when open() migrated the file
        self.epoch = ""  # the database's random id (meta 'epoch'), carried in every event beside its seq
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_fd: int | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._writer: Writer | None = None
        self._next: dict[str, int] = {}
        self._pending_rows = 0
        self._queued_seq = 0  # the highest seq queued for the writer: seq order must be commit order
        self._consumers = store_outbox.Consumers()  # the outputs reading the outbox, with their cursors
        self._room = asyncio.Event()
        self._room.set()

    # -- life ------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Create the folder, lock the file, set WAL, migrate, load counters, start the writer."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._open_files)
        self._readers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-reader")
        assert self._wconn is not None  # _open_files connected it (or raised)
        self._writer = Writer(self._wconn, self.path, self._loop, self._committed, self._refused,
                              batch_max=self.batch_max,
                              flush_interval=self.flush_interval, retention=self.retention,
                              max_size=self.max_size, prune_interval=self.prune_interval)
        self._writer.thread.start()

    def _open_files(self) -> None:
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the storage folder {folder} ({exc.strerror}): create it and let "
                             "the spc-gateway user write there, or set storage.path to a writable place"
                             ) from exc
        if os.path.isdir(self.path):
            raise StoreError(f"storage.path {self.path} is a folder; it must name a file, for example "
                             f"{os.path.join(self.path, 'spc.sqlite3')}")
        self._lock_fd = _take_lock(self.path)
        try:
            self._wconn = _connect(self.path, self.synchronous)
            before, after = migrate(self._wconn)
            if before != after:
                self.schema_upgraded = (before, after)
                log.info("database %s upgraded from schema version %d to %d", self.path, before, after)
            self._load_counters(self._wconn)
            self.epoch = str(self._wconn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])
            self._rconn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._rconn.execute("PRAGMA query_only = 1")
            self._rconn.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.DatabaseError as exc:
            self._release()
            if "not a database" in str(exc):
                raise StoreError(f"{self.path} is not an spc-gateway database ({exc}): move it away or set "
                                 "storage.path to another file") from exc
            raise StoreError(f"cannot open the database {self.path} ({exc}): check that the disk is mounted "
                             "writable and that the spc-gateway user may write the file") from exc
        except BaseException:
            self._release()
            raise

    def _load_counters(self, conn: sqlite3.Connection) -> None:
        meta = {k: v for k, v in conn.execute("SELECT key, value FROM meta WHERE key LIKE 'hw_%'")}
        for kind, (table, column) in COUNTERS.items():
            high = conn.execute(f"SELECT COALESCE(MAX({column}), 0) FROM {table}").fetchone()[0]
            high = max(high, int(meta.get(f"hw_{table}", 0)))
            if kind == "seq":
                high = max(high, conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0])
            self._next[kind] = high + 1

    def _release(self) -> None:
        for conn in (self._rconn, self._wconn):
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    log.warning("closing %s: %s", self.path, exc)
        self._rconn = self._wconn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the kernel drops the flock with the last descriptor
            self._lock_fd = None

    async def close(self, timeout: float | None = None) -> None:
        """Commit everything pending and stop; after timeout seconds (if given) give up on what is left."""
        writer = self._writer
        if writer is None:
            return
        writer.stop()
        await asyncio.to_thread(writer.thread.join, timeout)
        if writer.thread.is_alive():
            log.error("closing the store after %.1fs although %d rows could not be written to %s: %s",
                      timeout, self._pending_rows, self.path, writer.last_error)
            writer.stop(abandon=True)
            await asyncio.to_thread(writer.thread.join, 10.0)
            for batch in list(writer._queue) + [b for b in writer.current_group]:
                batch.committed.cancel()
        self._writer = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None

        def finish() -> None:
            assert self._wconn is not None  # open() connected it; _release() below clears it
            try:
                self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("final checkpoint of %s: %s", self.path, exc)
            self._release()

        await asyncio.to_thread(finish)

    # -- writing ---------------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """The highest seq handed out so far."""
        return self._next["seq"] - 1

    def batch(self, on_commit: Callable[[list[Event]], Any] | None = None, *, refusable: bool = False) -> Batch:
        """A new unit of work, queued when its `with` block ends.

        refusable: while the database cannot be written, the batch is dropped and its `committed`
        raises StoreUnavailable, instead of waiting in memory for the disk to come back."""
        if self._writer is None or self._loop is None:
            raise StoreError(f"the store {self.path} is not open")
        return Batch(self, on_commit, self._loop.create_future(), refusable)

    @property
    def failing(self) -> bool:
        """True while commits fail (disk full, I/O error) or the file was lost."""
        return bool(self._writer is not None and self._writer.failing)

    async def check(self) -> None:
        """Notice a database file deleted or replaced under the running process, even when idle."""
        if self._writer is not None:
            await asyncio.to_thread(self._writer.check_file)

    def sync_catalog(self, products: Iterable) -> None:
        """Upsert the configured products and characteristics (queued like any batch)."""
        with self.batch() as b:
            b.catalog(products)

    def outbox_delete(self, seqs: list[int]) -> None:
        """Delete confirmed outbox rows (queued like any batch)."""
        with self.batch() as b:
            b.outbox_delete(seqs)

    async def wait_room(self) -> None:
        """Back-pressure: return once fewer than max_pending rows wait to be written."""
        while self._pending_rows >= self.max_pending:
            self._room.clear()
            await self._room.wait()

    def _allocate(self, kind: str) -> int:
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    def _peek(self, kind: str) -> int:
        return self._next[kind]

    def _give_back(self, allocated: dict[str, tuple[int, int]]) -> None:
        for kind, (first, last) in allocated.items():
            if self._next[kind] == last + 1:  # nobody took a number since: no gap is left behind
                self._next[kind] = first

    def _enqueue(self, batch: Batch) -> None:
        if self._writer is None:
            raise StoreError(f"the store {self.path} is closed; the batch was not written")
        seqs = batch._allocated.get("seq")
        if seqs is not None:
            # The hub and the `since` replay rely on events being committed in seq order; a batch held
            # open across an await would break that. Say so loudly; the rows are written all the same.
            if seqs[0] <= self._queued_seq:
                log.error("events %d..%d were queued after event %d: a batch was held open across an await",
                          seqs[0], seqs[1], self._queued_seq)
            self._queued_seq = max(self._queued_seq, seqs[1])
        batch.enqueued_at = time.monotonic()
        self._pending_rows += batch.n_rows
        if self._pending_rows >= self.max_pending:
            self._room.clear()
        self._writer.put(batch)

    def _committed(self, group: list[Batch]) -> None:
        """On the loop, in commit order: resolve each batch and tell its on_commit."""
        for batch in group:
            self._pending_rows -= batch.n_rows
            if batch.on_commit is not None:
                try:
                    batch.on_commit(batch.events)
                except Exception:
                    log.exception("on_commit callback failed")
            if not batch.committed.done():
                batch.committed.set_result(batch.events)
        if self._pending_rows < self.max_pending:
            self._room.set()

    def _refused(self, batches: list[Batch], error: str) -> None:
        """On the loop: refusable batches the writer dropped while failing; nothing of them is written."""
        for batch in batches:
            self._pending_rows -= batch.n_rows
            if not batch.committed.done():
                batch.committed.set_exception(StoreUnavailable(error))
        if self._pending_rows < self.max_pending:
            self._room.set()

    def stats(self) -> dict:
        """size_bytes, pending_rows, commits, rows_written, last_error, failing, and pruning counters."""
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.stat(self.path + suffix).st_size
            except OSError:
                pass
        w = self._writer
        return {"size_bytes": size, "pending_rows": self._pending_rows,
                "commits": w.commits if w else 0, "rows_written": w.rows_written if w else 0,
                "rows_rejected": w.rows_rejected if w else 0,
                "last_error": w.last_error if w else None, "failing": bool(w and w.failing),
                "file_lost": bool(w and w.lost),
                "pruned": dict(w.pruned) if w else {}, "pruned_for_size": w.pruned_for_size if w else 0,
                "last_seq": self.last_seq if self._next else 0}

    async def _write_job(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._writer is None or self._loop is None:
            raise StoreError(f"the store {self.path} is not open")
        future = self._loop.create_future()
        self._writer.call(fn, future)
        return await future

    async def outbox_trim(self, limit_bytes: int) -> int:
        """Drop the oldest measurement rows of the outbox until it holds at most limit_bytes."""
        return await self._write_job(functools.partial(reads.outbox_trim, limit_bytes=limit_bytes))

    async def prune(self) -> dict:
        """Apply retention and max_size now, to the end (normally done in steps by the writer)."""
        writer = self._writer
        if writer is None:
            raise StoreError(f"the store {self.path} is not open")

        def run(conn: sqlite3.Connection) -> dict:
            while writer.prune_step():
                pass
            return dict(writer.pruned)

        return await self._write_job(run)

    async def backup(self, dest: str, progress: Callable[[int, int], None] | None = None) -> None:
        """Consistent online copy into dest; progress(copied, total) pages, called from a worker thread."""
        await asyncio.to_thread(_backup, self.path, dest, progress)

    # -- reading (reader thread, own connection) -------------------------------------------------
    async def _read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._readers is None or self._loop is None:
            raise StoreError(f"the store {self.path} is not open")
        return await self._loop.run_in_executor(self._readers, functools.partial(fn, self._rconn, *args,
                                                                                 **kwargs))

    async def events_after(self, seq: int, limit: int) -> list[Event]:
        """Events after seq, oldest first."""
        return await self._read(reads.events_after, seq, limit)

    async def oldest_event_seq(self) -> int | None:
        """The smallest seq still kept, or None."""
        return await self._read(reads.oldest_event_seq)

    async def alerts(self, *, status=None, product_id=None, limit=10, before_id=None) -> list[dict]:
        """Alerts newest first, filtered."""
        return await self._read(reads.alerts, status=status, product_id=product_id, limit=limit,
                                before_id=before_id)

    async def unresolved_alerts(self) -> list[dict]:
        """OPEN, ACKNOWLEDGED and SHELVED alerts."""
        return await self._read(reads.unresolved_alerts)

    async def last_changed_alert(self, product_id: int) -> dict | None:
        """The alert of a product that changed last, or None."""
        return await self._read(reads.last_changed_alert, product_id)

    async def alert(self, alert_id: int) -> dict | None:
        """One alert or None."""
        return await self._read(reads.alert, alert_id)

    async def alert_history(self, alert_id: int) -> list[dict]:
        """An alert's transitions, oldest first."""
        return await self._read(reads.alert_history, alert_id)

    async def measurements(self, product_id: int, characteristic: str | None = None,
                           limit: int = 100) -> list[dict]:
        """The latest measurements, oldest first."""
        return await self._read(reads.measurements, product_id, characteristic, limit)

    async def subgroup_values(self, product_id: int, characteristic: str, from_subgroup: int,
                              count: int) -> list[list[float]]:
        """Individual values per subgroup for a limits recalculation."""
        return await self._read(reads.subgroup_values, product_id, characteristic, from_subgroup, count)

    async def subgroup_means(self, product_id: int, characteristic: str, from_subgroup: int,
                             count: int) -> list[list[float]]:
        """The charted values (one per point) for a short-run chart's limits recalculation."""
        return await self._read(reads.subgroup_means, product_id, characteristic, from_subgroup, count)

    async def subgroups(self, product_id: int, characteristic: str, limit: int = 500) -> list[dict]:
        """The latest charted points with their limits and rule numbers, oldest first."""
        return await self._read(reads.subgroups, product_id, characteristic, limit)

    async def latest_limits(self, product_id: int, characteristic: str) -> dict | None:
        """The newest control limits version."""
        return await self._read(reads.latest_limits, product_id, characteristic)

    async def limits_versions(self) -> dict[tuple[int, str], int]:
        """The newest control-limits version of every characteristic, by (product_id, characteristic)."""
        return await self._read(reads.limits_versions)

    async def meta_value(self, key: str) -> str | None:
        """A value of the meta table (the database's own small facts), or None."""
        return await self._read(reads.meta_value, key)

    async def set_meta_value(self, key: str, value: str) -> None:
        """Store a meta value and commit it before returning (it must outlive a kill -9 right after)."""
        await self._write_job(functools.partial(reads.set_meta_value, key=key, value=value))

    async def limits_history(self, product_id: int, characteristic: str) -> list[dict]:
        """Every control limits version, oldest first."""
        return await self._read(reads.limits_history, product_id, characteristic)

    async def latest_capability(self, product_id: int) -> list[dict]:
        """The newest capability result per characteristic."""
        return await self._read(reads.latest_capability, product_id)

    async def engine_states(self) -> dict[tuple[int, str], str]:
        """Saved engine states by (product_id, characteristic)."""
        return await self._read(reads.engine_states)

    async def recent_source_keys(self, limit: int) -> list[str]:
        """Origin identities of the latest measurements, newest first."""
        return await self._read(reads.recent_source_keys, limit)

    async def outbox_fetch(self, after_seq: int, limit: int,
                           kinds: frozenset[str] | None = None) -> list[OutboxRow]:
        """Outbox rows after after_seq in seq order (only these kinds when given)."""
        return await self._read(reads.outbox_fetch, after_seq, limit, kinds)

    async def outbox_consumer(self, name: str, kinds: Iterable[str] | None = None) -> store_outbox.OutboxConsumer:
        """Register an output that reads the outbox, with the kinds of event it takes (None: all); it
        resumes at its stored cursor. Register every consumer before any of them advances."""
        wanted = None if kinds is None else frozenset(kinds)
        cursor, held = await self._read(store_outbox.load, name)
        state = self._consumers.register(name, wanted, cursor, held)
        return store_outbox.OutboxConsumer(self, name, state)

    async def outbox_stats(self) -> dict:
        """depth, bytes, oldest_at, dropped."""
        return await self._read(reads.outbox_stats)

