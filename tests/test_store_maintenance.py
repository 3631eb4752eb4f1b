"""Online backup while the store writes, CSV export, and pruning by retention and max_size."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import time
from types import SimpleNamespace

import pytest

from gateway.store import Store
from gateway.store.maintenance import MaintenanceError, backup, export_csv
from tests.sqlite_cost import vm_steps, write_readings

PRODUCTS = (SimpleNamespace(id=1, code="A-100", name="Shaft", characteristics=(SimpleNamespace(name="diameter"),)),
            SimpleNamespace(id=2, code="B-200", name="Bush", characteristics=(SimpleNamespace(name="bore"),)))


def add_measurement(b, product_id=1, characteristic="diameter", n=1, value=10.0, at=None):
    """Record one measurement, its event and outbox row, as the pipeline does."""
    at = time.time() if at is None else at
    mid = b.measurement(product_id=product_id, characteristic=characteristic, value=value, measured_at=at,
                        received_at=at, sample_number=n, subgroup_number=n, is_within_spec=True,
                        is_within_control=None)
    b.event("measurement", product_id, {"type": "measurement", "measurement": {"id": mid}}, notable=False,
            outbox_topic=f"spc/measurement/{product_id}/{characteristic}")
    return mid


def new_alert():
    return {"id": None, "product_id": 1, "characteristic": "diameter", "alert_type": "OUT_OF_SPEC",
            "priority": 4, "title": "t", "message": "m", "status": "OPEN", "created_at": time.time()}


def test_backup_while_writing_is_consistent_and_reports_progress(tmp_path):
    path = str(tmp_path / "spc.sqlite3")
    dest = str(tmp_path / "copy.sqlite3")

    async def main():
        store = Store(path)
        await store.open()
        for i in range(40):  # a file of a few thousand pages, so the copy takes several steps
            with store.batch() as b:
                for n in range(250):
                    add_measurement(b, n=i * 250 + n)
        await b.committed
        stop = asyncio.Event()

        async def keep_writing():
            while not stop.is_set():
                with store.batch() as b:
                    for _ in range(50):
                        add_measurement(b)
                await b.committed

        writer = asyncio.create_task(keep_writing())
        steps: list[tuple[int, int]] = []
        await asyncio.sleep(0.05)
        # the standalone function, as `spc-gateway backup` runs it beside the daemon, in small steps
        await asyncio.to_thread(backup, path, dest, lambda done, total: steps.append((done, total)),
                                step_pages=64)
        await store.backup(dest + ".2")  # and through the store
        stop.set()
        await writer
        written = store.last_seq
        await store.close()
        return steps, written

    steps, written = asyncio.run(main())
    assert len(steps) >= 3 and steps[-1][0] == steps[-1][1] and steps[0][0] < steps[-1][1]
    copy = sqlite3.connect(dest)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    seqs = [s for (s,) in copy.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)) and 10_000 <= len(seqs) <= written  # a consistent snapshot
    assert copy.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == len(seqs)
    copy.close()
    with pytest.raises(MaintenanceError, match="is the database itself"):
        backup(path, path)
    with pytest.raises(MaintenanceError, match="does not exist"):
        backup(path, str(tmp_path / "nowhere" / "x.sqlite3"))
    with pytest.raises(MaintenanceError, match="no database at"):
        backup(str(tmp_path / "missing.sqlite3"), dest)


async def ten_measurements(path: str, spacing: float) -> Store:
    """An open store on `path` with ten measurements of product 1 committed, values 10.0 to 19.0,
    `spacing` seconds apart from 1,700,000,000 on."""
    store = Store(path)
    await store.open()
    store.sync_catalog(PRODUCTS)
    with store.batch() as b:
        for n in range(10):
            add_measurement(b, n=n, value=10.0 + n, at=1_700_000_000.0 + spacing * n)
    await b.committed
    return store


def test_export_csv_by_product_and_time(tmp_path):
    path = str(tmp_path / "spc.sqlite3")

    async def main():
        store = await ten_measurements(path, 1.0)
        with store.batch() as b:
            add_measurement(b, product_id=2, characteristic="bore", at=1_700_000_005.0)
        await b.committed
        out = io.StringIO()
        count = export_csv(path, 1, 1_700_000_002.0, 1_700_000_005.0, out)  # works while the store is open
        await store.close()
        return count, out.getvalue()

    count, text = asyncio.run(main())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert count == 3 and [r["value"] for r in rows] == ["12.0", "13.0", "14.0"]
    assert rows[0]["product_code"] == "A-100" and rows[0]["measured_at"] == "2023-11-14T22:13:22.000+00:00"
    assert rows[0]["is_within_spec"] == "true" and rows[0]["is_within_control"] == ""
    out = io.StringIO()
    assert export_csv(path, 1, None, None, out) == 10
    with pytest.raises(MaintenanceError, match=r"product 9 is not in .*known products: 1 \(A-100\), 2 \(B-200\)"):
        export_csv(path, 9, None, None, io.StringIO())
    with pytest.raises(MaintenanceError, match="must be later than"):
        export_csv(path, 1, 10.0, 5.0, io.StringIO())


def test_retention_prunes_old_measurements_and_events_but_never_alerts_or_limits(tmp_path):
    path = str(tmp_path / "spc.sqlite3")

    async def main():
        store = Store(path, retention=3600.0, prune_interval=0.05)
        await store.open()
        old = time.time() - 7200
        with store.batch() as b:
            for n in range(5000):
                add_measurement(b, n=n, at=old)
            aid = b.alert(new_alert())
            b.alert_transition(alert_id=aid, at=old, who="kim", action="raise", from_status=None,
                               to_status="OPEN")
            b.limits_version(product_id=1, characteristic="diameter", effective_from=old, center=10.0, sigma=0.1,
                             ucl=10.3, lcl=9.7, dispersion_center=None, dispersion_ucl=None, dispersion_lcl=None,
                             source="baseline", from_subgroup=1, to_subgroup=25, who=None, reason=None)
        await b.committed
        # Events carry the time they were stored; make the first ones old too.
        await store._write_job(lambda c: c.execute("UPDATE events SET created_at = ? WHERE seq <= 4000", (old,)))
        deadline = time.monotonic() + 10  # pruned by the writer on its own, in steps
        while store.stats()["pruned"] != {"measurements": 5000, "events": 4000, "subgroups": 0} \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert store.stats()["pruned"] == {"measurements": 5000, "events": 4000, "subgroups": 0}
        assert await store.measurements(1) == []
        assert await store.oldest_event_seq() == 4001
        assert await store.alert(aid) is not None and len(await store.alert_history(aid)) == 1
        assert await store.latest_limits(1, "diameter") is not None
        await store._write_job(lambda c: c.execute("UPDATE events SET created_at = ?", (old,)))
        assert (await store.prune())["events"] == 5000  # every event gone now
        assert await store.oldest_event_seq() is None
        await store.close()
        store = Store(path)
        await store.open()
        assert store.last_seq == 5000  # seq continues even with no event left in the file
        with store.batch() as b:
            mid = add_measurement(b)
        assert [e.seq for e in await b.committed] == [5001] and mid == 5001
        await store.close()
    asyncio.run(main())


def test_a_prune_step_costs_the_same_in_a_big_file_as_in_a_small_one(tmp_path):
    """The writer prunes once a minute while every commit waits behind it: no step may scan a table.
    (It did: the high-water marks were a full scan, 0.4 s at 1.4 M events, growing with the file.)"""

    async def steps_of_a_prune(rows: int) -> int:
        store = Store(str(tmp_path / f"spc-{rows}.sqlite3"), retention=3600.0, prune_interval=3600)
        await store.open()
        await write_readings(store, rows, add_measurement)
        # on the writer thread, with the writer's own connection, as the once-a-minute tick runs it
        steps, more = await store._write_job(lambda conn: vm_steps(conn, store._writer.prune_step))
        assert more is False  # nothing is old enough to go
        meta = dict(await store._write_job(lambda c: c.execute("SELECT key, value FROM meta").fetchall()))
        assert int(meta["hw_measurements"]) == rows and int(meta["hw_events"]) == rows
        await store.close()
        return steps

    small, big = asyncio.run(steps_of_a_prune(5_000)), asyncio.run(steps_of_a_prune(60_000))
    assert big < small * 1.3, f"a prune step ran {big} x 100 instructions on 60,000 rows, {small} x 100 on 5,000"


def test_max_size_prunes_the_oldest_measurements_first(tmp_path):
    async def main():
        store = Store(str(tmp_path / "spc.sqlite3"), max_size=1 << 20, prune_interval=3600)
        await store.open()
        with store.batch() as b:
            aid = b.alert(new_alert())
        for _ in range(20):
            with store.batch() as b:
                for n in range(1000):  # no outbox rows: the outbox has its own limit (buffer_limit)
                    mid = b.measurement(product_id=1, characteristic="d", value=1.0, measured_at=1.0,
                                        received_at=1.0, sample_number=n, subgroup_number=n,
                                        is_within_spec=True, is_within_control=True)
                    b.event("measurement", 1, {"type": "measurement", "measurement": {"id": mid}})
        await b.committed
        assert store.stats()["size_bytes"] > 2 << 20
        await store.prune()
        used = await store._write_job(lambda c: store._writer.used_bytes())
        assert used <= 1 << 20
        rows = await store.measurements(1, limit=100_000)
        assert rows and rows[-1]["id"] == 20_000 and rows[0]["id"] > 1  # the newest kept, the oldest gone
        assert await store.alert(aid) is not None and store.stats()["pruned_for_size"] > 0
        await store.close()
    asyncio.run(main())


def test_backup_and_export_commands(tmp_path):
    import os
    import subprocess
    import sys

    path = str(tmp_path / "spc.sqlite3")

    async def fill():
        store = await ten_measurements(path, 3600.0)
        await store.close()
    asyncio.run(fill())
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "gateway.cli", *argv], capture_output=True, text=True,
                              timeout=60, cwd=repo, env={**os.environ, "PYTHONPATH": repo})

    copy = str(tmp_path / "copy.sqlite3")
    result = cli("backup", copy, "--db", path)
    assert result.returncode == 0, result.stderr
    assert "written to" in result.stderr and os.path.exists(copy)
    out = str(tmp_path / "a.csv")
    result = cli("export", "--db", path, "--product", "1", "--from", "2023-11-15", "--to",
                 "2023-11-15T02:00:00+00:00", "--format", "csv", "-o", out)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(out)))
    assert [r["sample_number"] for r in rows] == ["2", "3"] and "2 measurements" in result.stderr
    result = cli("export", "--db", path, "--product", "7", "-o", str(tmp_path / "b.csv"))
    assert result.returncode == 1 and "product 7 is not in" in result.stderr
    assert not os.path.exists(tmp_path / "b.csv")
    result = cli("export", "--db", path, "--product", "1", "--from", "May 1st")
    assert result.returncode == 1 and "is not an ISO 8601 date" in result.stderr
