"""A real Gateway, or its store, alert service and pipeline, in the test's own process: started, what its
screens are sent, and when its pipeline is through with the readings a test handed it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.alerts import AlertService
from gateway.app import Gateway
from gateway.config import Config
from gateway.core.model import Event
from gateway.outputs.websocket.ws import LineServer
from gateway.pipeline import Pipeline
from gateway.store import Store


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


async def started_alerts(config: Config) -> tuple[Store, AlertService]:
    """The store on the configuration's database, open, and the alert service on it, started."""
    store = Store(config.storage.path)
    await store.open()
    alerts = AlertService(store, config)
    await alerts.start()
    return store, alerts


async def started_pipeline(config: Config, publish: Callable[[list[Event]], object] = lambda events: None,
                           ) -> tuple[Store, AlertService, Pipeline]:
    """What the daemon runs a reading through, started on `config`: the store (its catalog synced), the
    alert service and the pipeline, which hands its events to `publish`."""
    store = Store(config.storage.path)
    await store.open()
    store.sync_catalog(config.products)
    alerts = AlertService(store, config)
    await alerts.start()
    pipeline = Pipeline(config, store, alerts, publish=publish)
    await pipeline.start()
    return store, alerts, pipeline
