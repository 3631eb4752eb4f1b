"""A real Gateway in the test's own process: what its screens are sent, and when its pipeline is through
with the readings a test handed it."""

from __future__ import annotations

import asyncio
import time

from gateway.app import Gateway
from gateway.core.model import Event
from gateway.outputs.websocket.ws import LineServer


def published(gateway: Gateway) -> list[Event]:
    """Every event the gateway's line server publishes from now on, in order; the screens still get them."""
    sent: list[Event] = []
    hub = next(o.output.hub for o in gateway.outputs if isinstance(o.output, LineServer))
    hub.publish = lambda events, _orig=hub.publish: (sent.extend(events), _orig(events))
    return sent


async def handled(gateway: Gateway, readings: int, timeout: float = 10.0) -> None:
    """Returns once the pipeline has ingested or refused `readings` readings in all, and their batch
    had the time to commit."""
    deadline = time.monotonic() + timeout
    while gateway.pipeline.ingested + gateway.pipeline.rejected < readings:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # the commit
