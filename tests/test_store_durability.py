"""The store under the failures of a plant: SIGKILL mid-burst, a full disk, a second daemon, bad paths,
and an upgrade from the previous schema version. Real processes, real files."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from gateway.store import LATEST, Store, StoreError, StoreLockedError
from gateway.store.schema import migrate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A daemon stand-in: writes bursts of measurement+event pairs and prints, after each commit,
# the seqs and measurement ids that the store reported committed.
WRITER_CHILD = textwrap.dedent("""
    import asyncio, sys, time
    from gateway.store import Store

    async def main():
        store = Store(sys.argv[1], batch_max=200, flush_interval=0.002)
        await store.open()
        print("open", store.last_seq, flush=True)

        def on_commit(events):
            print("C", " ".join(f"{e.seq}:{e.body['measurement']['id']}" for e in events), flush=True)

        n = 0
        while True:
            await store.wait_room()
            with store.batch(on_commit) as b:
                for _ in range(20):
                    n += 1
                    now = time.time()
                    mid = b.measurement(product_id=1, characteristic="d", value=n * 0.001, measured_at=now,
                                        received_at=now, sample_number=n, subgroup_number=n,
                                        is_within_spec=True, is_within_control=True)
                    b.event("measurement", 1, {"type": "measurement", "measurement": {"id": mid}},
                            outbox_topic="spc/measurement/A/d")
            await asyncio.sleep(0)

    asyncio.run(main())
""")


def _child_env() -> dict:
    return {**os.environ, "PYTHONPATH": REPO}


def test_sigkill_mid_burst_loses_no_committed_row_and_seq_continues(tmp_path):
    path = str(tmp_path / "spc.sqlite3")
    committed: dict[int, int] = {}
    last_start = 0
    for round_ in range(2):  # killed twice: the second run starts from what the first left
        proc = subprocess.Popen([sys.executable, "-c", WRITER_CHILD, path], stdout=subprocess.PIPE,
                                env=_child_env(), text=True)
        first = proc.stdout.readline().split()
        assert first[0] == "open"
        assert int(first[1]) >= last_start  # seq never goes back
        lines = 0
        deadline = time.monotonic() + 20
        while lines < 40 + 30 * round_ and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line.startswith("C "), line
            for pair in line.split()[1:]:
                seq, mid = pair.split(":")
                committed[int(seq)] = int(mid)
            lines += 1
        os.kill(proc.pid, signal.SIGKILL)  # mid-burst: the child never stops writing on its own
        rest, _ = proc.communicate(timeout=10)
        for line in rest.splitlines():  # what it reported just before dying counts too
            if line.startswith("C "):
                for pair in line.split()[1:]:
                    seq, mid = pair.split(":")
                    committed[int(seq)] = int(mid)
        last_start = max(committed)

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    seqs = {s for (s,) in conn.execute("SELECT seq FROM events")}
    ids = {i for (i,) in conn.execute("SELECT id FROM measurements")}
    missing = [s for s in committed if s not in seqs]
    assert not missing, f"committed but missing after SIGKILL: {missing[:10]}"
    assert all(mid in ids for mid in committed.values())
    max_seq = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    assert max_seq >= max(committed)
    assert sorted(seqs) == list(range(1, max_seq + 1))  # no gap, no reuse across the kills
    conn.close()

    async def reopen():
        store = Store(path)
        await store.open()
        assert store.last_seq == max_seq
        with store.batch() as b:
            b.event("alert", 1, {"type": "alert"})
        assert [e.seq for e in await b.committed] == [max_seq + 1]
        await store.close()
    asyncio.run(reopen())


def test_disk_full_keeps_the_batches_reports_failing_and_commits_them_when_room_is_back(tmp_path):
    async def main():
        store = Store(str(tmp_path / "spc.sqlite3"), batch_max=100)
        await store.open()
        with store.batch() as b:
            b.event("alert", 1, {"type": "alert"})
        await b.committed
        # The disk is "full": the file may not grow by a single page.
        await store._write_job(lambda c: c.execute("PRAGMA max_page_count = 1").fetchone())
        seen: list[int] = []
        batches = []
        for i in range(200):
            with store.batch(lambda events: seen.extend(e.seq for e in events)) as b:
                b.measurement(product_id=1, characteristic="d", value=float(i), measured_at=1.0, received_at=1.0,
                              sample_number=i, subgroup_number=i, is_within_spec=True, is_within_control=True)
                b.event("measurement", 1, {"type": "measurement", "pad": "x" * 200})
            batches.append(b)
        deadline = time.monotonic() + 5
        while not store.stats()["failing"] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stats = store.stats()
        assert stats["failing"] is True and "full" in stats["last_error"]
        assert not any(b.committed.done() for b in batches)
        assert stats["pending_rows"] == 400
        await asyncio.sleep(0.3)  # a few retries go by; nothing is dropped meanwhile
        assert store.stats()["pending_rows"] == 400 and not batches[0].committed.done()

        await store._write_job(lambda c: c.execute("PRAGMA max_page_count = 1073741823").fetchone())
        await asyncio.wait_for(asyncio.gather(*(b.committed for b in batches)), 10)
        assert seen == list(range(2, 202))  # every batch, in order
        assert store.stats()["failing"] is False and store.stats()["pending_rows"] == 0
        assert len(await store.events_after(0, 1000)) == 201
        await store.close()
    asyncio.run(main())


def test_a_second_process_on_the_same_file_is_refused(tmp_path):
    path = str(tmp_path / "spc.sqlite3")
    child = textwrap.dedent("""
        import asyncio, sys
        from gateway.store import Store, StoreLockedError
        try:
            asyncio.run(Store(sys.argv[1]).open())
        except StoreLockedError as exc:
            print(exc)
            sys.exit(3)
    """)

    async def main():
        store = Store(path)
        await store.open()
        result = subprocess.run([sys.executable, "-c", child, path], capture_output=True, text=True,
                                env=_child_env(), timeout=30)
        assert result.returncode == 3, result.stderr
        assert f"another spc-gateway (pid {os.getpid()}) is already using {path}" in result.stdout
        with pytest.raises(StoreLockedError):  # the same process opening it twice too
            await Store(path).open()
        await store.close()
        again = Store(path)  # released at close
        await again.open()
        await again.close()
    asyncio.run(main())


def test_unusable_storage_paths_give_a_technician_sentence(tmp_path):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("not a folder")
    not_db = tmp_path / "other.sqlite3"
    not_db.write_bytes(b"this is some other program's file, not SQLite" * 50)
    before = not_db.read_bytes()

    async def main():
        with pytest.raises(StoreError, match="cannot create the storage folder .*storage.path"):
            await Store(str(a_file / "sub" / "spc.sqlite3")).open()
        with pytest.raises(StoreError, match="is a folder; it must name a file"):
            await Store(str(tmp_path)).open()
        with pytest.raises(StoreError, match="is not an spc-gateway database"):
            await Store(str(not_db)).open()
        if os.geteuid() != 0:  # root writes anywhere, so this case only means something for a user
            locked = tmp_path / "ro"
            locked.mkdir(mode=0o555)
            with pytest.raises(StoreError, match="cannot write in the storage folder"):
                await Store(str(locked / "spc.sqlite3")).open()
        # a failed open releases its lock: the same path can be opened after it is fixed
        store = Store(str(tmp_path / "ok" / "spc.sqlite3"))
        await store.open()
        await store.close()
    asyncio.run(main())
    assert not_db.read_bytes() == before  # refused, and left exactly as it was


@pytest.mark.parametrize("version", range(1, LATEST))
def test_a_database_of_every_earlier_schema_opens_under_the_current_one_and_keeps_its_rows(tmp_path, version):
    assert LATEST >= 3
    path = str(tmp_path / "old.sqlite3")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    assert migrate(conn, target=version) == (0, version)
    conn.executemany("INSERT INTO measurements (id, product_id, characteristic, value, measured_at, received_at, "
                     "sample_number, subgroup_number, is_within_spec, is_within_control) "
                     "VALUES (?, 1, 'd', ?, 1.0, 1.0, ?, ?, 1, 1)", [(i, 10.0 + i, i, i) for i in range(1, 51)])
    conn.execute("INSERT INTO events VALUES (77, 'alert', 1, 1, '{\"type\":\"alert\",\"seq\":77}', 1.0)")
    conn.execute("INSERT INTO alerts VALUES (5, 1, 'd', 'OUT_OF_SPEC', 4, 'OPEN', NULL, 1.0, 1.0, "
                 "'{\"id\":5,\"status\":\"OPEN\"}')")
    conn.execute("INSERT INTO control_limits (product_id, characteristic, effective_from, center, source, "
                 "stored_at) VALUES (1, 'd', 1.0, 10.0, 'fixed', 1.0)")
    conn.executemany("INSERT INTO outbox VALUES (?, 'spc/measurement/A/d', ?, 'measurement', ?, ?)",
                     [(seq, b"x" * seq, seq, float(seq)) for seq in (70, 71, 72)])  # a broker was away
    conn.execute("INSERT INTO meta VALUES ('outbox_dropped', '4')")  # buffer_limit dropped 4 before
    conn.execute("INSERT INTO meta VALUES ('hw_measurements', '60')")  # ids up to 60 were handed out
    conn.close()

    async def main():
        store = Store(path)
        await store.open()
        assert store.schema_upgraded == (version, LATEST)
        rows = await store.measurements(1, "d", limit=100)
        assert len(rows) == 50 and rows[-1]["measurement_value"] == 60.0 and rows[0]["source_key"] is None
        assert (await store.alert(5))["status"] == "OPEN"
        assert (await store.latest_limits(1, "d"))["center"] == 10.0
        assert store.last_seq == 77
        assert await store.outbox_stats() == {"depth": 3, "bytes": 213, "oldest_at": 70.0, "dropped": 4}
        assert "count" not in rows[0]  # variables data from before attribute data existed
        with store.batch() as b:
            mid = b.measurement(product_id=1, characteristic="d", value=1.0, measured_at=2.0, received_at=2.0,
                                sample_number=51, subgroup_number=51, is_within_spec=True,
                                is_within_control=True, source_key="mqtt:x:1", count=2, sample_size=40)
            b.event("measurement", 1, {"type": "measurement"})
        assert [e.seq for e in await b.committed] == [78] and mid == 61
        assert await store.recent_source_keys(5) == ["mqtt:x:1"]
        latest = (await store.measurements(1, "d", limit=1))[0]
        assert (latest["count"], latest["sample_size"]) == (2, 40)
        # the rows a broker never confirmed go to the first consumer, which starts at 0, then are deleted
        mqtt = await store.outbox_consumer("mqtt", ["measurement", "alert"])
        assert mqtt.cursor == 0 and mqtt.held == {}
        assert [r.seq for r in await mqtt.fetch(0, 10)] == [70, 71, 72]
        await mqtt.advance(72)
        assert await store.outbox_stats() == {"depth": 0, "bytes": 0, "oldest_at": None, "dropped": 4}
        await store.close()
    asyncio.run(main())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_database_from_a_newer_gateway_is_refused_untouched(tmp_path):
    path = str(tmp_path / "new.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()

    async def main():
        with pytest.raises(StoreError, match="written by a newer spc-gateway"):
            await Store(path).open()
    asyncio.run(main())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST + 1
    conn.close()


def test_close_with_a_full_disk_gives_up_after_its_timeout_and_releases_the_file(tmp_path):
    path = str(tmp_path / "spc.sqlite3")

    async def main():
        store = Store(path)
        await store.open()
        await store._write_job(lambda c: c.execute("PRAGMA max_page_count = 1").fetchone())
        with store.batch() as b:
            b.event("alert", 1, {"type": "alert", "pad": "x" * 5000})
        started = time.monotonic()
        await store.close(timeout=0.3)
        assert time.monotonic() - started < 3 and b.committed.cancelled()
        again = Store(path)
        await again.open()  # the lock was released
        assert again.last_seq == 0
        await again.close()
    asyncio.run(main())
