"""gateway.sources.base.Source.run: the reconnect loop every protocol shares (connect, serve, close)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from gateway.config import Backoff as BackoffSettings
from gateway.sources.base import Backoff, Source

pytestmark = [pytest.mark.timeout(10), pytest.mark.anyio]


@dataclass(frozen=True)
class Settings:
    name: str = "fake"
    type: str = "fake"
    backoff: BackoffSettings = BackoffSettings(initial=0.01, maximum=0.01)


class Scripted(Source):
    """Fails to connect once, then serves a connection that ends, then one that fails, then waits."""

    def __init__(self) -> None:
        super().__init__(Settings(), [], self._discard)
        self.steps: list[str] = []
        self.attempts = 0
        self.seen: list[str] = []  # health.state while serving

    @staticmethod
    async def _discard(_measurement) -> None:
        return None

    async def connect(self) -> object:
        self.attempts += 1
        if self.attempts == 1:
            raise ConnectionRefusedError("nobody listens")
        self.steps.append(f"connect {self.attempts}")
        return f"connection {self.attempts}"

    async def serve(self, connection, backoff: Backoff) -> None:
        self.seen.append(self.health.state)
        self.steps.append(f"serve {connection}")
        if connection == "connection 3":
            raise TimeoutError("no answer")
        if connection == "connection 4":
            await asyncio.Event().wait()  # serves until cancelled

    async def close(self, connection) -> None:
        self.steps.append(f"close {connection}")


async def test_the_loop_connects_serves_closes_and_backs_off_until_cancelled() -> None:
    source = Scripted()
    await source.start()
    for _ in range(200):
        if source.attempts >= 4:
            break
        await asyncio.sleep(0.01)
    assert source.health.state == "connected" and source.health.reconnects == 3
    assert source.health.last_error == "TimeoutError: no answer"  # the last failure, as health says it
    await source.stop()
    assert source.steps == ["connect 2", "serve connection 2", "close connection 2",
                            "connect 3", "serve connection 3", "close connection 3",
                            "connect 4", "serve connection 4", "close connection 4"]  # closed when cancelled too
    assert source.seen == ["connected"] * 3
    assert source.health.state == "stopped"
