"""gateway.core.batchqueue: the pipeline's bounded queue of readings."""

from __future__ import annotations

import asyncio

import pytest

from gateway.core.batchqueue import BatchQueue


def test_a_run_is_taken_in_order_and_join_waits_for_done() -> None:
    async def scenario() -> None:
        queue: BatchQueue[int] = BatchQueue(10)
        for i in range(7):
            await queue.put(i)
        assert queue.qsize() == 7 and not queue.empty()
        assert await queue.take(5) == [0, 1, 2, 3, 4]
        assert await queue.take(5) == [5, 6]
        joined = asyncio.create_task(queue.join())
        await asyncio.sleep(0)
        assert not joined.done()  # taken is not handled
        queue.done(5)
        await asyncio.sleep(0)
        assert not joined.done()
        queue.done(2)
        await asyncio.wait_for(joined, 1)

    asyncio.run(scenario())


def test_take_waits_for_the_first_item() -> None:
    async def scenario() -> None:
        queue: BatchQueue[str] = BatchQueue(3)
        taker = asyncio.create_task(queue.take(10))
        await asyncio.sleep(0.01)
        assert not taker.done()
        await queue.put("a")
        assert await asyncio.wait_for(taker, 1) == ["a"]

    asyncio.run(scenario())


def test_a_full_queue_holds_its_producers_and_a_cancelled_one_strands_none() -> None:
    async def scenario() -> None:
        queue: BatchQueue[int] = BatchQueue(2)
        await queue.put(1)
        await queue.put(2)
        first = asyncio.create_task(queue.put(3))
        second = asyncio.create_task(queue.put(4))
        third = asyncio.create_task(queue.put(5))
        await asyncio.sleep(0.01)
        assert not (first.done() or second.done() or third.done())  # back-pressure
        first.cancel()
        assert await queue.take(1) == [1]  # room for one: the first live producer gets it
        await asyncio.sleep(0.01)
        assert queue.qsize() == 2 and sum(t.done() and not t.cancelled() for t in (second, third)) == 1
        assert len(await queue.take(5)) == 2
        await asyncio.wait_for(asyncio.gather(second, third), 1)
        taken = await queue.take(5)
        assert len(taken) == 1 and queue.empty()

    asyncio.run(scenario())


def test_a_queue_without_room_is_refused() -> None:
    with pytest.raises(ValueError):
        BatchQueue(0)
