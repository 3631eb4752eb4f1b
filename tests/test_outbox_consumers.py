"""The outbox with many consumers (issue 14, item 4): one cursor per output, each resuming after a restart;
a row stays until every consumer that takes its kind has it. The real MQTT northbound to a real mosquitto
beside a second consumer registered from the test (what Sparkplug or the OPC UA server will be)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from test_northbound import config, produce, until
from test_northbound_harness import Subscriber, check_delivery, persistent_broker

from gateway.outputs.mqtt import Northbound
from gateway.store import Store

mosquitto = pytest.fixture(persistent_broker, name="mosquitto")


async def _open(path: Path, port: int) -> tuple[Store, Northbound, object, object]:
    store = Store(str(path))
    await store.open()
    # every consumer registers before any of them starts (gateway.store.outbox)
    slow = await store.outbox_consumer("andon", ["measurement", "alert"])
    alerts_only = await store.outbox_consumer("alerts-only", ["alert"])
    northbound = Northbound(config(port), store, gateway_name="line3", version="t", product_codes=["P-100"],
                            on_alert=lambda kind, **values: None)
    await northbound.start()
    return store, northbound, slow, alerts_only


def test_a_slow_consumer_holds_rows_back_but_not_the_others_and_both_resume_after_restart(
        tmp_path: Path, mosquitto) -> None:
    subscriber = Subscriber(mosquitto.port).start()
    subscriber.wait_for(lambda s: s.client.is_connected(), 5, "subscriber connected")
    db = tmp_path / "gw.db"
    cfg = config(mosquitto.port)

    async def first_run() -> int:
        store, northbound, slow, alerts_only = await _open(db, mosquitto.port)
        await until(lambda: northbound.stats()["connected"], 5, "connected")
        await produce(store, northbound, cfg, 300, pause=0.005)
        await until(lambda: northbound.stats()["published"] >= 300, 10, "300 confirmed by the broker")
        await asyncio.sleep(0.2)  # the cursor's batch
        # the northbound has them all; the offline consumer has none: every row stays
        assert (await store.outbox_stats())["depth"] == 300
        # the slow consumer takes 100; those go (alerts-only does not take measurements: it holds none)
        rows = await slow.fetch(slow.cursor, 100)
        assert [r.seq for r in rows] == list(range(1, 101))
        await slow.advance(rows[-1].seq)
        assert (await store.outbox_stats())["depth"] == 200
        # now the broker is away: the slow consumer goes on alone, the rows stay for the northbound
        await asyncio.to_thread(mosquitto.stop)
        await until(lambda: not northbound.stats()["connected"], 10, "disconnected")
        await produce(store, northbound, cfg, 50)
        rows = await slow.fetch(slow.cursor, 1000)
        assert [r.seq for r in rows] == list(range(101, 351))
        await slow.advance(rows[-1].seq)
        assert (await store.outbox_stats())["depth"] == 50  # 301..350, which the northbound has not had
        await produce(store, northbound, cfg, 2, event_type="alert")  # 351, 352
        await northbound.stop()
        await store.close()
        return 352

    last = asyncio.run(first_run())

    async def second_run() -> None:
        await asyncio.to_thread(mosquitto.start)
        store, northbound, slow, alerts_only = await _open(db, mosquitto.port)
        assert slow.cursor == 350 and alerts_only.cursor == 0  # each resumes where it stopped
        await until(lambda: northbound.stats()["published"] >= 52, 10, "the 52 the broker missed")
        await asyncio.sleep(0.2)
        # the two alerts wait for the slow consumer and for alerts-only; every measurement is gone
        rows = await store.outbox_fetch(0, 100)
        assert [(r.seq, r.kind) for r in rows] == [(351, "alert"), (352, "alert")]
        rows = await slow.fetch(slow.cursor, 100)
        await slow.advance(rows[-1].seq)
        assert (await store.outbox_stats())["depth"] == 2  # alerts-only still needs them
        rows = await alerts_only.fetch(alerts_only.cursor, 100)
        assert [r.seq for r in rows] == [351, 352]
        await alerts_only.advance(352)
        assert (await store.outbox_stats())["depth"] == 0
        await northbound.stop()
        await store.close()

    asyncio.run(second_run())
    subscriber.wait_for(lambda s: len(s.seqs()) >= last, 5, "every event at the subscriber")
    subscriber.stop()
    events = subscriber.events()
    check_delivery(events, range(1, last + 1))
    # resumed at its cursor: nothing the broker had confirmed before the restart was sent again
    assert len(events) == last


def test_a_held_row_stays_across_a_restart_until_its_consumer_delivers_it(tmp_path: Path) -> None:
    """A row a broker refused: the consumer's cursor moves past it, the row stays until it is delivered."""
    db = str(tmp_path / "gw.db")

    async def first_run() -> None:
        store = Store(db)
        await store.open()
        a = await store.outbox_consumer("a")  # every kind
        b = await store.outbox_consumer("b", ["measurement"])
        with store.batch() as batch:
            for _ in range(5):
                batch.event("measurement", 1, {"type": "measurement"}, outbox_topic="t")
        await batch.committed
        await a.advance(5, hold=[(3, "measurement")])
        assert (await store.outbox_stats())["depth"] == 5  # b has none of them yet
        await b.advance(5)
        assert [r.seq for r in await store.outbox_fetch(0, 10)] == [3]
        await store.close()

    async def second_run() -> None:
        store = Store(db)
        await store.open()
        a = await store.outbox_consumer("a")
        await store.outbox_consumer("b", ["measurement"])
        assert (a.cursor, a.held) == (5, {3: "measurement"})
        assert [r.seq for r in await a.fetch_held()] == [3]
        await a.advance(5, done=[3])
        assert (await store.outbox_stats())["depth"] == 0 and a.held == {}
        await store.close()

    asyncio.run(first_run())
    asyncio.run(second_run())


class _Recorder:
    """Stands in for a Batch: collects the statements Consumers.advance records."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, tuple]] = []

    def __getattr__(self, kind: str):
        def record(*params, holders=None):
            if kind == "outbox_delete":
                self.rows += [(kind, (seq,)) for seq in params[0]]
            elif kind == "outbox_release":
                assert params[2] is None and not holders  # the common case this test measures
                self.rows.append(("outbox_release_all", params[:2]))
            else:
                self.rows.append((kind, (*params, 0.0) if kind == "outbox_cursor" else params))
        return record


def _release_cost(consumers: int, rows: int, *, per_row_delete: bool = False) -> int:
    """SQLite VM work (hundreds of instructions) to take `rows` outbox rows out once every consumer has them."""
    from sqlite_cost import vm_steps

    from gateway.store.batch import SQL
    from gateway.store.outbox import Consumers
    from gateway.store.schema import migrate

    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    conn.executemany("INSERT INTO outbox VALUES (?, 't', x'00', 'measurement', 1, 0)",
                     [(s,) for s in range(1, rows + 1)])
    registry = Consumers()
    for n in range(consumers):
        registry.register(f"c{n}", frozenset({"measurement", "alert"}), 0, {})
    recorder = _Recorder()
    for n in range(consumers):
        for upto in range(1000, rows + 1, 1000):  # advances as the northbound stores them, in steps
            registry.advance(recorder, f"c{n}", upto, (), ())

    def run() -> None:
        conn.execute("BEGIN")
        if per_row_delete:  # what each acknowledged row cost before schema version 5
            conn.executemany(SQL["outbox_delete"], [(s,) for s in range(1, rows + 1)])
        else:
            for kind, params in recorder.rows:
                conn.execute(SQL[kind], params)
        conn.execute("COMMIT")

    steps, _ = vm_steps(conn, run)
    assert conn.execute("SELECT depth FROM outbox_totals").fetchone()[0] == 0
    return steps


def test_taking_rows_out_costs_about_the_same_whatever_the_number_of_consumers() -> None:
    rows = 20_000
    before = _release_cost(1, rows, per_row_delete=True)
    one, four = _release_cost(1, rows), _release_cost(4, rows)
    # per event the same delete and trigger; a consumer adds one cursor row per advance, not per event
    assert one <= before * 1.05, (one, before)
    assert four - one <= 0.02 * one, (one, four)
    print(f"VM work for {rows} rows: per-row deletes {before}, one consumer {one}, four consumers {four}")


def test_a_row_the_broker_refuses_is_held_the_rest_goes_on_and_it_goes_again_later(tmp_path: Path) -> None:
    """MQTT 5: the broker refuses one topic (an ACL) and, being mosquitto 2.0, closes the connection. The
    northbound's cursor moves past that row, which stays in the outbox; the rest still goes, and the row
    goes again once caught up, after a restart too. (Before the cursor, every connection started again
    from the refused row, which stopped everything behind it.)"""
    from conftest import Mosquitto

    acl = tmp_path / "acl"
    acl.write_text("topic readwrite spc/measurement/#\ntopic readwrite spc/status\ntopic read spc/#\n")
    broker = Mosquitto(tmp_path, extra_conf=f"acl_file {acl}")
    broker.start()
    subscriber = Subscriber(broker.port).start()
    subscriber.wait_for(lambda s: s.client.is_connected(), 5, "subscriber connected")
    db = tmp_path / "gw.db"
    cfg = config(broker.port, protocol="5")

    async def run(count_alert: bool) -> tuple[dict, dict[int, str], int]:
        store = Store(str(db))
        await store.open()
        northbound = Northbound(cfg, store, gateway_name="line3", version="t", product_codes=["P-100"],
                                on_alert=lambda kind, **values: None)
        await northbound.start()
        try:
            await until(lambda: northbound.stats()["connected"], 5, "connected")
            if count_alert:
                await produce(store, northbound, cfg, 3)
                await produce(store, northbound, cfg, 1, event_type="alert")  # seq 4: refused
                await produce(store, northbound, cfg, 3)
                await until(lambda: northbound.stats()["published"] + northbound.stats()["rejected"] >= 7, 10,
                            "every row answered")
            else:
                await until(lambda: northbound.stats()["published"] >= 1, 10, "the held row sent")
            await asyncio.sleep(0.2)
        finally:
            await northbound.stop()
            depth = (await store.outbox_stats())["depth"]
            await store.close()
        store = Store(str(db))  # what the next start finds
        await store.open()
        consumer = await store.outbox_consumer("mqtt")
        cursor_held = consumer.cursor, consumer.held
        await store.close()
        return northbound.stats(), cursor_held, depth

    try:
        stats, (cursor, held), depth = asyncio.run(run(True))
        assert stats["rejected"] == 1 and stats["published"] == 6  # held rows wait HELD_RETRY (60 s)
        assert (cursor, held, depth) == (7, {4: "alert"}, 1)  # the rest went on; the refused row stays
        broker.stop()
        broker.conf.write_text(broker.conf.read_text().replace(f"acl_file {acl}", ""))
        broker.start()
        subscriber.wait_for(lambda s: s.client.is_connected(), 10, "subscriber connected again")
        stats, (cursor, held), depth = asyncio.run(run(False))
        assert (stats["published"], stats["rejected"]) == (1, 0)
        assert (cursor, held, depth) == (7, {}, 0)
        subscriber.wait_for(lambda s: 4 in s.seqs(), 5, "the alert at the subscriber")
        assert sorted(subscriber.seqs()) == list(range(1, 8))
    finally:
        subscriber.stop()
        broker.stop()
