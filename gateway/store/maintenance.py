"""Operations on the database file that work while the daemon runs: online backup and CSV export."""

from __future__ import annotations

import csv
import datetime as _dt
import os
import sqlite3
import stat
from collections.abc import Callable
from typing import TextIO

from gateway.core.model import INT64_MAX, iso_time
from gateway.store.schema import StoreError

BACKUP_STEP_PAGES = 1024  # pages copied per step: progress is reported between steps
# A backup holds every measurement: never readable by other users of the PC. It gets the database's own
# permissions (0640 under systemd's UMask=0027) without the bits for others, 0600 while it is written.
BACKUP_MODE_MASK = 0o640


class MaintenanceError(StoreError):
    """A backup or export that cannot be done; the message says why and what to do."""


def _connect_existing(db_path: str) -> sqlite3.Connection:
    if not os.path.isfile(db_path):
        raise MaintenanceError(f"no database at {db_path}: check storage.path in the configuration")
    try:
        conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only = 1")  # this connection never writes the daemon's file
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise MaintenanceError(f"cannot read {db_path}: {exc}") from exc
    return conn


# the files SQLite and the daemon keep beside the database: writing any of them corrupts the live store
DATABASE_COMPANIONS = ("", "-wal", "-shm", "-journal", ".lock")


def refuse_database_files(db_path: str, dest: str, what: str) -> None:
    """MaintenanceError when dest is the database or one of its companion files (by path or by inode).

    `export -o` or `backup` onto the live database, its WAL or its shared-memory index would replace
    the daemon's data under it: the store then reports "database disk image is malformed"."""
    target = os.path.realpath(dest)
    for suffix in DATABASE_COMPANIONS:
        own = db_path + suffix
        same = target == os.path.realpath(own)
        if not same and os.path.exists(own) and os.path.exists(dest):
            same = os.path.samefile(own, dest)
        if same:
            name = "the database itself" if not suffix else f"the database's own {suffix.lstrip('-.')} file"
            raise MaintenanceError(f"the {what} file {dest} is {name} ({db_path}{suffix}): choose another file")
    if os.path.isdir(dest):
        raise MaintenanceError(f"the {what} file {dest} is a folder: give a file name in it")


def backup_mode(db_path: str) -> int:
    """The permissions of a backup of db_path: the database's own, less anything for others."""
    try:
        return stat.S_IMODE(os.stat(db_path).st_mode) & BACKUP_MODE_MASK | 0o600
    except OSError:  # a source connection given without its file: the strictest
        return 0o600


def backup(db_path: str, dest: str, progress: Callable[[int, int], None] | None = None,
           *, source: sqlite3.Connection | None = None, step_pages: int = BACKUP_STEP_PAGES) -> None:
    """Copy the database consistently into dest while it may be written; progress(copied, total) pages."""
    refuse_database_files(db_path, dest, "backup")
    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        raise MaintenanceError(f"cannot write the backup to {dest}: folder {folder} does not exist")
    src = source if source is not None else _connect_existing(db_path)
    partial = dest + ".partial"
    try:
        if os.path.exists(partial):
            os.remove(partial)
        # created 0600 before SQLite opens it: the copy is never readable by others, not even half-written
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        dst = sqlite3.connect(partial, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        if source is None:
            src.close()
        raise MaintenanceError(f"cannot write the backup to {dest}: {exc}") from exc
    try:
        # One read transaction over the whole copy: in WAL it pins a snapshot, so the writer goes on
        # and the copy is consistent instead of restarting after every commit of the daemon.
        src.execute("BEGIN")
        src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()

        def report(status: int, remaining: int, total: int) -> None:
            if progress is not None:
                progress(total - remaining, total)

        src.backup(dst, pages=step_pages, progress=report, sleep=0)
        total = src.execute("PRAGMA page_count").fetchone()[0]
        src.execute("COMMIT")
        if progress is not None:
            progress(total, total)
        dst.execute("PRAGMA journal_mode = DELETE")  # the copy is one self-contained file
        check = dst.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise MaintenanceError(f"the backup {dest} failed its check ({check}); try again")
        dst.close()
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(partial, backup_mode(db_path))
        os.replace(partial, dest)
    except (OSError, sqlite3.Error) as exc:
        dst.close()
        raise MaintenanceError(f"the backup to {dest} failed: {exc}") from exc
    finally:
        if src.in_transaction:
            src.execute("ROLLBACK")
        if source is None:
            src.close()
        if os.path.exists(partial):
            os.remove(partial)


CSV_COLUMNS = ("measurement_id", "product_id", "product_code", "characteristic", "value", "measured_at",
               "received_at", "sample_number", "subgroup_number", "is_within_spec", "is_within_control",
               "count", "sample_size",  # attribute data, empty for variables data
               "part", "part_unknown")  # short-run SPC: the part number, or why it was not known


def _flag(x: int | None) -> str:
    return "" if x is None else ("true" if x else "false")


def export_csv(db_path: str, product_id: int, start: float | None, end: float | None, out: TextIO,
               *, characteristic: str | None = None, tz: _dt.tzinfo = _dt.UTC) -> int:
    """Write a product's measurements with start <= measured_at < end as CSV; returns the row count."""
    if start is not None and end is not None and end <= start:
        raise MaintenanceError(f"--to ({iso_time(end, tz)}) must be later than --from ({iso_time(start, tz)})")
    conn = _connect_existing(db_path)
    try:
        try:
            row = conn.execute("SELECT code FROM products WHERE id = ?",
                               (int(product_id) if 0 < product_id <= INT64_MAX else 0,)).fetchone()
        except sqlite3.DatabaseError as exc:  # another program's database, or an empty file
            raise MaintenanceError(f"{db_path} is not a spc-gateway database ({exc})") from exc
        if row is None:
            known = ", ".join(f"{i} ({c})" for i, c in conn.execute("SELECT id, code FROM products ORDER BY id"))
            raise MaintenanceError(f"product {product_id} is not in {db_path} (known products: {known or 'none'})")
        code = row[0]
        if characteristic is not None:
            _check_characteristic(conn, db_path, int(product_id), code, characteristic)
        where = ["product_id = ?"]
        args: list[object] = [int(product_id)]
        for clause, value in (("measured_at >= ?", start), ("measured_at < ?", end),
                              ("characteristic = ?", characteristic)):
            if value is not None:
                where.append(clause)
                args.append(value)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        count = 0
        # streamed row by row: an export of months of data never sits in memory
        for (mid, pid, ch, value, measured, received, sample, subgroup, spec, control, n_bad, size, part,
             unknown) in conn.execute(
                "SELECT id, product_id, characteristic, value, measured_at, received_at, sample_number, "
                "subgroup_number, is_within_spec, is_within_control, count, sample_size, part, part_unknown "
                f"FROM measurements WHERE {' AND '.join(where)} ORDER BY id", args):
            writer.writerow((mid, pid, code, ch, "" if value is None else repr(value), iso_time(measured, tz),
                             iso_time(received, tz), sample, subgroup, _flag(spec), _flag(control),
                             "" if n_bad is None else n_bad, "" if size is None else size, part or "",
                             unknown or ""))
            count += 1
        return count
    finally:
        conn.close()


def _check_characteristic(conn: sqlite3.Connection, db_path: str, product_id: int, code: str, name: str) -> None:
    """A misspelt name would give an empty file that looks like "no data": name the known ones instead."""
    known = [n for (n,) in conn.execute("SELECT name FROM characteristics WHERE product_id = ? ORDER BY name",
                                        (product_id,))]
    if name in known:
        return
    # a characteristic removed from the configuration still has its measurements
    if conn.execute("SELECT 1 FROM measurements WHERE product_id = ? AND characteristic = ? LIMIT 1",
                    (product_id, name)).fetchone() is not None:
        return
    raise MaintenanceError(f"product {product_id} ({code}) has no characteristic {name!r} in {db_path} "
                           f"(known: {', '.join(known) or 'none'})")
