"""A long `since` replay is not slowness: a screen catching up on ~60,000 events while the line keeps
producing gets every event once, in order, and is not cut off; its queue stays within the bound."""

from __future__ import annotations

import asyncio
import time

from tests.test_server_harness import Rig, make_config, open_client, recv_json, run

STORED = 60_000
QUEUE = 500  # far fewer than the live events that arrive while the replay runs


def test_a_replay_of_60k_events_during_live_traffic_is_not_cut_off(tmp_path):
    async def body():
        async with Rig(make_config(tmp_path, client_queue=QUEUE)) as rig:
            for _ in range(STORED // 5000):
                await rig.measurements([11.0] * 5000, notable=True)
            stop = asyncio.Event()
            deepest = 0

            async def produce() -> None:  # the line goes on: 20 events every few ms
                nonlocal deepest
                while not stop.is_set():
                    await rig.measurements([11.0] * 20, notable=True)
                    deepest = max(deepest, rig.hub.stats()["max_queue_depth"])
                    await asyncio.sleep(0.002)

            producer = asyncio.create_task(produce())
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            ws = await open_client(rig.url, "/ws/spc/notifications/?since=0")
            seqs: list[int] = []
            complete = None
            while complete is None or len(seqs) < complete + 200:  # the replay, then live events
                message = await recv_json(ws, 20)
                if message["type"] == "replay_complete":
                    complete = message["to_seq"]
                    assert message["complete"] is True
                    replay_s = time.perf_counter() - started
                else:
                    seqs.append(message["seq"])
            stop.set()
            await producer
            final = rig.store.last_seq
            while seqs[-1] < final:
                seqs.append((await recv_json(ws, 20))["seq"])
            assert seqs == list(range(1, final + 1))  # nothing lost, nothing twice
            assert rig.hub.cut_off == 0 and ws.close_code is None
            assert final - STORED > QUEUE, "too few live events during the replay to test anything"
            assert deepest <= QUEUE
            print(f"replayed {complete} events in {replay_s:.1f} s while {final - STORED} arrived live")
            await ws.close()
    run(body, timeout=120)
