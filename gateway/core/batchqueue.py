"""A bounded FIFO that many producers feed one item at a time and one consumer drains in runs.

asyncio.Queue pays its bookkeeping per item on both sides: a coroutine and two `full()` checks per
`put`, a `get_nowait` with its wake-up check and a `task_done` per item taken. The pipeline moves every
reading of the line through its queue, and a cProfile of the daemon draining an MQTT backlog put that
bookkeeping at about a tenth of the event loop's time. Here a `put` with room is an append, and the
consumer takes a whole run with one call and reports it done with another.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class BatchQueue(Generic[T]):
    """`put` waits while `maxsize` items wait (back-pressure); `take(n)` waits for at least one item and
    returns up to n; `done(n)` after they are handled; `join()` waits until everything put is done."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("a BatchQueue needs room for at least one item")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._taker: asyncio.Future[None] | None = None  # the consumer, while it waits for an item
        self._putters: list[asyncio.Future[None]] = []  # producers waiting for room
        self._unfinished = 0
        self._finished = asyncio.Event()
        self._finished.set()

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    async def put(self, item: T) -> None:
        while len(self._items) >= self.maxsize:
            waiter = asyncio.get_running_loop().create_future()
            self._putters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._putters:  # cancelled while waiting
                    self._putters.remove(waiter)
        self._items.append(item)
        self._unfinished += 1
        self._finished.clear()
        taker = self._taker
        if taker is not None and not taker.done():
            taker.set_result(None)

    async def take(self, most: int) -> list[T]:
        """At least one item (waits for it), at most `most`, oldest first."""
        while not self._items:
            self._taker = asyncio.get_running_loop().create_future()
            try:
                await self._taker
            finally:
                self._taker = None
        items = self._items
        run = [items.popleft() for _ in range(min(most, len(items)))]
        if self._putters:  # every waiting producer checks again: one cancelled must not strand the rest
            putters, self._putters = self._putters, []
            for waiter in putters:
                if not waiter.done():
                    waiter.set_result(None)
        return run

    def done(self, count: int) -> None:
        """`count` taken items are handled."""
        self._unfinished -= count
        if self._unfinished <= 0:
            self._unfinished = 0
            self._finished.set()

    async def join(self) -> None:
        await self._finished.wait()
