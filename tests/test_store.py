"""The store's API on a real SQLite file: what is written is read back, in order, numbered once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass

import pytest

from gateway.store import Store, StoreError
from gateway.store import reads as store_reads
from tests.sqlite_cost import vm_steps, write_readings


@dataclass(frozen=True)
class _Spec:
    lsl: float | None = 9.9
    target: float | None = 10.0
    usl: float | None = 10.1


@dataclass(frozen=True)
class _Characteristic:
    name: str
    unit: str = "mm"
    chart: str = "imr"
    subgroup_size: int = 1
    spec: _Spec = _Spec()


@dataclass(frozen=True)
class _Product:
    id: int
    code: str
    name: str
    characteristics: tuple


PRODUCTS = (_Product(1, "A-100", "Shaft", (_Characteristic("diameter"), _Characteristic("length"))),
            _Product(2, "B-200", "Bush", (_Characteristic("bore"),)))


def add_measurement(b, product_id=1, characteristic="diameter", n=1, value=10.0, source_key=None, at=None):
    """Record one measurement and its event, as the pipeline does."""
    at = time.time() if at is None else at
    mid = b.measurement(product_id=product_id, characteristic=characteristic, value=value, measured_at=at,
                        received_at=at, sample_number=n, subgroup_number=n, is_within_spec=True,
                        is_within_control=None, source_key=source_key)
    b.event("measurement", product_id, {"type": "measurement", "measurement": {"id": mid}}, notable=False,
            outbox_topic=f"spc/measurement/{product_id}/{characteristic}")
    return mid


def new_alert(status="OPEN", product_id=1, alert_type="OUT_OF_SPEC"):
    return {"id": None, "product_id": product_id, "product_code": "A-100", "product_name": "Shaft",
            "characteristic": "diameter", "alert_type": alert_type, "priority": 4, "title": "t", "message": "m",
            "status": status, "created_at": time.time()}


async def opened(tmp_path, **kw) -> Store:
    store = Store(str(tmp_path / "db" / "spc.sqlite3"), **kw)
    await store.open()
    return store


def test_roundtrip_of_every_kind_of_row(tmp_path):
    async def main():
        store = await opened(tmp_path)
        store.sync_catalog(PRODUCTS)
        with store.batch() as b:
            for n in range(1, 8):
                add_measurement(b, n=n, value=10.0 + n / 100, source_key=f"mqtt:t:{n}")
            add_measurement(b, characteristic="length", value=50.0)
            b.subgroup(product_id=1, characteristic="diameter", subgroup_number=1, n=1, mean=10.01, range=None,
                       stdev=None, center=10.0, ucl=10.3, lcl=9.7, violations=[1], at=time.time())
            lid = b.limits_version(product_id=1, characteristic="diameter", effective_from=time.time(),
                                   center=10.0, sigma=0.1, ucl=10.3, lcl=9.7, dispersion_center=0.11,
                                   dispersion_ucl=0.37, dispersion_lcl=0.0, source="baseline", from_subgroup=1,
                                   to_subgroup=25, who=None, reason="learned from the baseline")
            alert = new_alert()
            aid = b.alert(alert)
            b.alert_transition(alert_id=aid, at=time.time(), who="kim", action="raise", from_status=None,
                               to_status="OPEN", details={"rule": 1})
            b.capability(product_id=1, characteristic="diameter", cp=1.5, cpk=1.4, pp=1.3, ppk=1.2, cpm=1.1,
                         cpk_lower=1.0, n=125, sigma_within=0.01, sigma_overall=0.012, analyzed_at=time.time())
            b.capability(product_id=1, characteristic="diameter", cp=1.6, cpk=1.5, pp=None, ppk=None, cpm=None,
                         cpk_lower=None, n=150, sigma_within=0.01, sigma_overall=0.012, analyzed_at=time.time())
            b.engine_state(1, "diameter", '{"v": 1}')
            b.engine_state(1, "diameter", '{"v": 2}')
        events = await b.committed
        assert [e.seq for e in events] == list(range(1, 9)) and events[0].body["seq"] == 1
        assert alert["id"] == aid == 1 and lid == 1

        rows = await store.measurements(1, "diameter", limit=5)
        assert [r["sample_number"] for r in rows] == [3, 4, 5, 6, 7]  # the latest five, oldest first
        assert rows[0]["product_code"] == "A-100" and rows[0]["is_within_spec"] is True
        assert rows[0]["is_within_control"] is None and rows[0]["measurement_value"] == pytest.approx(10.03)
        assert len(await store.measurements(1)) == 8
        assert await store.subgroup_values(1, "diameter", 2, 3) == [[10.02], [10.03], [10.04]]
        assert await store.recent_source_keys(2) == ["mqtt:t:7", "mqtt:t:6"]
        limits = await store.latest_limits(1, "diameter")
        assert limits["ucl"] == 10.3 and limits["source"] == "baseline"
        assert await store.latest_limits(1, "length") is None
        caps = await store.latest_capability(1)
        assert len(caps) == 1 and caps[0]["cp"] == 1.6 and caps[0]["ppk"] is None
        assert await store.engine_states() == {(1, "diameter"): '{"v": 2}'}
        assert (await store.alert(aid))["status"] == "OPEN"
        history = await store.alert_history(aid)
        assert history[0]["who"] == "kim" and history[0]["details"] == {"rule": 1}
        assert [e.seq for e in await store.events_after(6, 10)] == [7, 8]
        assert await store.oldest_event_seq() == 1
        assert len(await store.outbox_fetch(0, 100)) == 8
        stats = store.stats()
        assert stats["failing"] is False and stats["pending_rows"] == 0 and stats["rows_written"] > 20
        await store.close()
    asyncio.run(main())


def test_alert_filters_and_replace_by_id(tmp_path):
    async def main():
        store = await opened(tmp_path)
        with store.batch() as b:
            ids = [b.alert(new_alert(product_id=1 + i % 2)) for i in range(6)]
        await b.committed
        acknowledged = await store.alert(ids[0])
        acknowledged["status"] = "ACKNOWLEDGED"
        resolved = await store.alert(ids[1])
        resolved["status"] = "RESOLVED"
        with store.batch() as b:
            assert b.alert(acknowledged) == ids[0]
            b.alert(resolved)
        await b.committed
        assert [a["id"] for a in await store.alerts(limit=3)] == [6, 5, 4]
        assert [a["id"] for a in await store.alerts(limit=10, before_id=3)] == [2, 1]
        assert [a["id"] for a in await store.alerts(status="OPEN", product_id=1)] == [5, 3]
        assert [a["id"] for a in await store.unresolved_alerts()] == [1, 3, 4, 5, 6]
        assert (await store.alert(1))["status"] == "ACKNOWLEDGED"
        assert await store.alert(99) is None
        await store.close()
    asyncio.run(main())


def test_limits_versions_and_alert_history_are_never_rewritten(tmp_path):
    async def main():
        store = await opened(tmp_path)
        with store.batch() as b:
            b.limits_version(product_id=1, characteristic="d", effective_from=1.0, center=1, sigma=1, ucl=4,
                             lcl=-2, dispersion_center=None, dispersion_ucl=None, dispersion_lcl=None,
                             source="fixed", from_subgroup=None, to_subgroup=None, who="lee", reason="x")
            b.alert_transition(alert_id=1, at=1.0, who="kim", action="acknowledge", from_status="OPEN",
                               to_status="ACKNOWLEDGED")
        await b.committed
        await store.close()
        conn = sqlite3.connect(store.path)
        for sql in ("UPDATE control_limits SET ucl = 5", "DELETE FROM control_limits",
                    "UPDATE alert_history SET who = 'x'", "DELETE FROM alert_history"):
            with pytest.raises(sqlite3.IntegrityError, match="never"):
                conn.execute(sql)
        conn.close()
    asyncio.run(main())


def test_on_commit_in_commit_order_and_seq_continues_after_reopen(tmp_path):
    async def main():
        store = await opened(tmp_path, batch_max=50)
        seen: list[int] = []
        futures = []
        for i in range(300):
            with store.batch(lambda events: seen.extend(e.seq for e in events)) as b:
                add_measurement(b, n=i)
            futures.append(b.committed)
            if i % 37 == 0:
                await asyncio.sleep(0)
        await asyncio.gather(*futures)
        assert seen == list(range(1, 301))
        assert store.last_seq == 300 and store.stats()["commits"] < 300  # batches were grouped
        await store.close()
        store = await opened(tmp_path)
        assert store.last_seq == 300
        with store.batch() as b:
            mid = add_measurement(b)
        assert [e.seq for e in await b.committed] == [301] and mid == 301
        await store.close()
    asyncio.run(main())


def test_abandoned_batch_gives_its_numbers_back(tmp_path):
    async def main():
        store = await opened(tmp_path)
        with pytest.raises(ValueError), store.batch() as b:
            add_measurement(b)
            raise ValueError("the pipeline failed half-way")
        assert b.committed.cancelled() and store.last_seq == 0
        with pytest.raises(TypeError):  # a body that is not JSON takes no seq
            with store.batch() as b2:
                b2.event("measurement", 1, {"bad": object()})
        with store.batch() as b:
            add_measurement(b)
            b.event("capability", 1, {"type": "capability", "capability": {"cp": float("nan")}},
                    outbox_topic="spc/capability/A-100")
        assert [e.seq for e in await b.committed] == [1, 2]
        assert (await store.outbox_fetch(1, 1))[0].payload == (
            b'{"type":"capability","capability":{"cp":null},"seq":2,"epoch":"' + store.epoch.encode() + b'"}')
        with pytest.raises(RuntimeError, match="already queued"):
            add_measurement(b)
        await store.close()
        with pytest.raises(StoreError, match="not open"):
            store.batch()
    asyncio.run(main())


def test_a_batch_queued_out_of_seq_order_is_reported(tmp_path, caplog):
    """The hub's `since` replay relies on seq order being commit order: a batch held open across
    another one's commit breaks it, and the log says so (the rows are still written)."""
    async def main():
        store = await opened(tmp_path)
        held = store.batch()
        add_measurement(held)
        with store.batch() as b:
            add_measurement(b)
        held.submit()
        assert [e.seq for e in await held.committed] == [1] and [e.seq for e in await b.committed] == [2]
        assert "events 1..1 were queued after event 2" in caplog.text
        await store.close()
    asyncio.run(main())


def test_numpy_numbers_are_stored_as_plain_numbers(tmp_path):
    np = pytest.importorskip("numpy")

    async def main():
        store = await opened(tmp_path)
        with store.batch() as b:
            b.measurement(product_id=np.int64(1), characteristic="d", value=np.float32(1.5), measured_at=1.0,
                          received_at=1.0, sample_number=np.int64(3), subgroup_number=np.int32(3),
                          is_within_spec=np.bool_(True), is_within_control=np.bool_(False))
        await b.committed
        row = (await store.measurements(1))[0]
        assert row["sample_number"] == 3 and row["is_within_control"] is False
        await store.close()
    asyncio.run(main())


def test_wait_room_holds_the_producer_until_rows_are_committed(tmp_path):
    async def main():
        store = await opened(tmp_path, max_pending=100, flush_interval=0.05)
        for _ in range(60):
            with store.batch() as b:
                add_measurement(b)  # 3 rows: measurement, event, outbox
        assert store.stats()["pending_rows"] == 180
        await asyncio.wait_for(store.wait_room(), 5)
        assert store.stats()["pending_rows"] < 100
        await b.committed
        await store.close()
    asyncio.run(main())


def recounted(path) -> tuple[int, int]:
    """The outbox's depth and bytes the slow way, to check the totals the triggers keep."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM outbox").fetchone()


def test_outbox_trim_drops_only_measurements_and_counts_them(tmp_path):
    async def main():
        store = await opened(tmp_path)
        with store.batch() as b:
            for i in range(10):
                add_measurement(b, n=i)
                if i % 3 == 0:
                    b.event("alert", 1, {"type": "alert", "alert": {"id": i}}, outbox_topic="spc/alert/A-100")
        await b.committed
        before = await store.outbox_stats()
        assert before["depth"] == 14 and before["dropped"] == 0 and before["oldest_at"] is not None
        assert (before["depth"], before["bytes"]) == recounted(store.path)
        assert await store.outbox_trim(before["bytes"]) == 0
        dropped = await store.outbox_trim(0)
        assert dropped == 10
        stats = await store.outbox_stats()
        assert (stats["depth"], stats["bytes"]) == recounted(store.path) and stats["depth"] == 4
        rows = await store.outbox_fetch(0, 100)
        assert {r.kind for r in rows} == {"alert"} and [r.seq for r in rows] == sorted(r.seq for r in rows)
        store.outbox_delete([rows[0].seq, rows[1].seq])
        with store.batch() as b:
            b.outbox_delete([rows[2].seq, rows[2].seq, 10_000])  # twice, and one that is not there
        await b.committed
        after = await store.outbox_stats()
        assert after["depth"] == 1 and after["dropped"] == 10
        assert (after["depth"], after["bytes"]) == recounted(store.path) == (1, len(rows[3].payload))
        assert after["oldest_at"] is not None
        store.outbox_delete([rows[3].seq])
        await store.close()
        store = await opened(tmp_path)
        assert await store.outbox_stats() == {"depth": 0, "bytes": 0, "oldest_at": None, "dropped": 10}
        await store.close()
    asyncio.run(main())


def test_outbox_stats_cost_the_same_with_a_full_outbox(tmp_path):
    """buffer_limit is checked once a second; during a broker outage the outbox holds millions of rows,
    so the check must not read them (it did: COUNT and SUM over the outbox, O(rows) each second)."""

    async def fill(name: str, rows: int) -> str:
        store = Store(str(tmp_path / name))
        await store.open()
        await write_readings(store, rows, add_measurement)
        await store.close()
        return store.path

    def check(path: str) -> tuple[int, dict]:
        with sqlite3.connect(path) as conn:
            return vm_steps(conn, store_reads.outbox_stats, conn)

    small_steps, small = check(asyncio.run(fill("small.sqlite3", 5_000)))
    big_steps, big = check(asyncio.run(fill("big.sqlite3", 60_000)))
    assert small["depth"] == 5_000 and big["depth"] == 60_000 and big["oldest_at"] < time.time()
    assert big_steps <= small_steps + 2, f"{big_steps} x 100 instructions on 60,000 rows, {small_steps} on 5,000"


def test_a_row_the_schema_refuses_is_skipped_and_the_rest_is_written(tmp_path):
    async def main():
        store = await opened(tmp_path)
        with store.batch() as b:
            add_measurement(b)
        await b.committed
        with store.batch() as b:
            add_measurement(b)
            # a programming error elsewhere: an event row whose seq is already stored
            b.rows["event"].append((1, "measurement", 1, 0, "{}", time.time()))
            b.n_rows += 1
        await asyncio.wait_for(b.committed, 5)
        assert store.stats()["rows_rejected"] == 1 and store.stats()["failing"] is False
        assert [e.seq for e in await store.events_after(0, 10)] == [1, 2]
        await store.close()
    asyncio.run(main())
