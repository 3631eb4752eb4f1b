"""Fan-out and resume: every client gets every event in order; slow ones are cut off; `since` replays."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time

from websockets.asyncio.client import connect

from tests.test_server_harness import Rig, make_config, open_client, recv_json, recv_type, run


async def _seqs_through(ws, final: int) -> list[int]:
    """The seq of every event the client gets, replayed or live, up to `final`."""
    seqs: list[int] = []
    while not seqs or seqs[-1] < final:
        message = await recv_json(ws)
        if message["type"] != "replay_complete":
            seqs.append(message["seq"])
    return seqs


def test_200_clients_each_receive_every_event_in_order(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            clients = await asyncio.gather(*(open_client(rig.url) for _ in range(200)))
            expected: list[int] = []
            for _ in range(20):
                expected += await rig.measurements([11.0 + i / 100 for i in range(5)], notable=True)

            async def collect(ws) -> list[int]:
                seqs = []
                while len(seqs) < len(expected):
                    seqs.append((await recv_json(ws, 10))["seq"])
                return seqs

            received = await asyncio.gather(*(collect(ws) for ws in clients))
            assert all(seqs == expected for seqs in received)
            assert expected == list(range(expected[0], expected[0] + 100))
            await asyncio.gather(*(ws.close() for ws in clients))
    run(body, timeout=60)


def test_a_client_that_stops_reading_is_cut_off_and_others_stay_fast(tmp_path, caplog):
    async def body():
        async with Rig(make_config(tmp_path, client_queue=100)) as rig:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", rig.server.port))
            stalled = await connect(rig.url + "/ws/spc/notifications/", sock=sock, max_queue=1,
                                    user_agent_header="stalled-kiosk/1.0")
            reader = await open_client(rig.url)
            latencies = []
            for _ in range(200):
                started = time.perf_counter()
                seqs = await rig.measurements([11.0] * 25, notable=True, pad=8000)
                while (await recv_json(reader))["seq"] != seqs[-1]:
                    pass
                latencies.append(time.perf_counter() - started)
                if rig.hub.cut_off:
                    break
            assert rig.hub.cut_off == 1, rig.hub.stats()
            assert "stalled-kiosk/1.0" in caplog.text and "127.0.0.1:" in caplog.text and "1013" in caplog.text
            ordered = sorted(latencies)  # a loaded 2-core CI machine: judge the bulk, bound the worst
            assert ordered[len(ordered) * 9 // 10] < 0.25 and ordered[-1] < 1.5, ordered
            # memory held for the stalled client stayed bounded: its queue was released on cut-off
            assert all(len(c.queue) <= 100 for c in rig.hub.clients)
            await asyncio.sleep(2.5)  # the close handshake times out, the TCP connection is aborted
            assert len(rig.hub.clients) == 1
            started = time.perf_counter()
            seqs = await rig.measurements([11.0], notable=True)
            assert (await recv_json(reader))["seq"] == seqs[0] and time.perf_counter() - started < 0.2
            await reader.close()
            stalled.transport.abort()
    run(body)


def test_since_replays_exactly_the_missed_events_then_goes_live(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            ws = await open_client(rig.url)
            last_seen = ws.hello["seq"]
            await ws.close()
            general, product2 = [], []
            for i in range(10):  # while the screen is away: ordinary, notable, other product, alerts
                quiet = await rig.measurements([10.0])
                loud = await rig.measurements([11.0], notable=True)
                other = await rig.measurements([0.01], product_id=2)
                general += loud
                product2 += other
                if i in (0, 3):  # one alert per product (a repeat would only count an occurrence)
                    alert = await rig.raise_out_of_spec(product_id=1 if i == 0 else 2)
                    general.append(rig.store.last_seq)
                    if alert["product_id"] == 2:
                        product2.append(rig.store.last_seq)
                assert quiet
            for path, expected in (("/ws/spc/notifications/", general), ("/ws/spc/product/2/", product2)):
                ws = await open_client(rig.url, f"{path}?since={last_seen}")
                replayed = []
                while (message := await recv_json(ws))["type"] != "replay_complete":
                    replayed.append(message["seq"])
                assert replayed == expected, path
                assert message["complete"] is True and message["from_seq"] == last_seen
                assert message["to_seq"] == rig.store.last_seq
                live = await rig.measurements([11.5], notable=True, product_id=2)
                assert (await recv_json(ws))["seq"] == live[0]
                product2 += live  # what the product endpoint missed meanwhile
                await ws.close()
    run(body)


def test_since_during_heavy_traffic_has_no_gap_and_no_duplicate(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            await rig.measurements([11.0] * 50, notable=True)

            async def produce() -> None:
                for _ in range(30):
                    await rig.measurements([11.0] * 10, notable=True)
                    await asyncio.sleep(0.005)

            producer = asyncio.create_task(produce())
            await asyncio.sleep(0.02)
            ws = await open_client(rig.url, "/ws/spc/notifications/?since=0")
            await producer
            final = rig.store.last_seq
            assert await _seqs_through(ws, final) == list(range(1, final + 1))
            await ws.close()
    run(body)


def test_since_sends_no_event_twice_when_a_commit_is_on_disk_before_its_fan_out(tmp_path):
    """The replay reads the file; a commit's fan-out comes a moment later on the loop. Hold that moment
    open (as a busy machine does when the writer thread loses the GIL right after COMMIT): events the
    replay already sent must not go out again live. CI saw exactly this once after a SIGKILL restart."""
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            loop = asyncio.get_running_loop()
            writer = rig.store._writer
            fan_out = writer.on_done
            writer.on_done = lambda group: loop.call_later(0.05, fan_out, group)
            await rig.measurements([11.0] * 20, notable=True)

            async def produce() -> None:
                batches = []
                for _ in range(10):  # not waiting for each commit: they keep coming, as from a line
                    batches.append(asyncio.ensure_future(rig.measurements([11.0] * 5, notable=True)))
                    await asyncio.sleep(0.01)
                await asyncio.gather(*batches)

            producer = asyncio.create_task(produce())
            await asyncio.sleep(0.03)
            ws = await open_client(rig.url, "/ws/spc/notifications/?since=0")
            await producer
            await asyncio.sleep(0.2)
            final = rig.store.last_seq
            assert await _seqs_through(ws, final) == list(range(1, final + 1))
            await ws.close()
    run(body)


def test_since_older_than_what_is_kept_says_complete_false(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            await rig.measurements([11.0] * 20, notable=True)
            with sqlite3.connect(rig.config.storage.path) as db:  # as retention pruning would
                db.execute("DELETE FROM events WHERE seq <= 10")
            ws = await open_client(rig.url, "/ws/spc/notifications/?since=3")
            message = await recv_json(ws)
            assert message["type"] == "replay_complete" and message["complete"] is False
            await ws.close()
            ws = await open_client(rig.url, "/ws/spc/notifications/?since=12")
            seqs = []
            while (message := await recv_json(ws))["type"] != "replay_complete":
                seqs.append(message["seq"])
            assert seqs == list(range(13, 21)) and message["complete"] is True
            await ws.close()
    run(body)


def test_since_from_another_database_says_complete_false(tmp_path):
    """seq counts within one database: a `since` from another epoch (a lost file) replays nothing of this
    one's, which would be other events under the same numbers, and tells the client to reload."""
    async def body():
        async with Rig(make_config(tmp_path)) as rig:
            await rig.measurements([11.0] * 20, notable=True)
            ws = await open_client(rig.url, "/ws/spc/notifications/?since=12&epoch=0123456789abcdef")
            assert ws.hello["epoch"] == rig.store.epoch != "0123456789abcdef"
            message = await recv_json(ws)
            assert message["type"] == "replay_complete" and message["complete"] is False
            await ws.close()
            ws = await open_client(rig.url, f"/ws/spc/notifications/?since=12&epoch={rig.store.epoch}")
            seqs = []
            while (message := await recv_json(ws))["type"] != "replay_complete":
                seqs.append(message["seq"])
            assert seqs == list(range(13, 21)) and message["complete"] is True
            await ws.close()
            bad = await asyncio.wait_for(_status(rig.url, "/ws/spc/notifications/?since=12&epoch=x%00"), 5)
            assert bad == 400
    run(body)


async def _status(url: str, path: str) -> int:
    try:
        ws = await connect(url + path)
    except Exception as exc:  # InvalidStatus: the handshake was refused
        return exc.response.status_code  # type: ignore[attr-defined]
    await ws.close()
    return 101


def test_stop_closes_clients_with_1001(tmp_path):
    async def body():
        rig = Rig(make_config(tmp_path))
        await rig.__aenter__()
        ws = await open_client(rig.url)
        await rig.__aexit__(None, None, None)
        await ws.wait_closed()
        assert ws.close_code == 1001
    run(body)


def test_snapshot_and_connection_seq(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path, language="en")) as rig:
            first = await rig.raise_out_of_spec(product_id=1)
            await rig.raise_out_of_spec(product_id=2)
            ws = await open_client(rig.url, "/ws/spc/product/1/")
            assert ws.hello["message"] == "Connected to SPC real-time notifications"
            assert [a["id"] for a in ws.snapshot["alerts"]] == [first["id"]]
            await ws.send(json.dumps({"type": "get_alerts", "limit": 500}))
            reply = await recv_type(ws, "alerts")
            assert [a["product_id"] for a in reply["alerts"]] == [1]
            await ws.close()
    run(body)
