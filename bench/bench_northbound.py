"""Northbound MQTT: steady publish rate, and the outbox drain rate after a broker outage.

Real SQLite store, real mosquitto on loopback, QoS 1, max_inflight from the config default (100).
Rates count messages the broker confirmed (PUBACK), i.e. rows that may leave the outbox. The steady run
also has a `mosquitto_sub` QoS 1 consumer that must receive every message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import Mosquitto  # noqa: E402

from gateway.config import NorthboundMQTT  # noqa: E402
from gateway.outputs.mqtt import Northbound, topic_for  # noqa: E402
from gateway.store import Store  # noqa: E402

DRAIN_TARGET = 10_000  # events/s after an outage (issue 7)
PER_BATCH = 100  # events per store batch, as the pipeline groups a burst


def body(n: int) -> dict:
    return {"type": "measurement", "product_code": "P-100", "characteristic": "bore",
            "value": 10.0 + n % 7 * 0.01, "timestamp": "2025-01-01T00:00:00.000+09:00", "unit": "mm",
            "is_within_spec": True, "is_within_control": True, "sample_number": n}


async def produce(store: Store, northbound: Northbound | None, topic: str, count: int) -> None:
    last = None
    for start in range(0, count, PER_BATCH):
        await store.wait_room()
        with store.batch(on_commit=(lambda _e: northbound.wake()) if northbound else None) as batch:
            for i in range(start, min(count, start + PER_BATCH)):
                batch.event("measurement", 1, body(i), outbox_topic=topic)
        last = batch
        await asyncio.sleep(0)
    if last is not None:
        await last.committed


async def wait_published(northbound: Northbound, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while northbound.published < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {northbound.published} of {count} confirmed after {timeout}s: "
                               f"{northbound.stats()}")
        await asyncio.sleep(0.005)


def make_northbound(store: Store, port: int) -> tuple[Northbound, str]:
    cfg = NorthboundMQTT(host="127.0.0.1", port=port, reconnect_min=0.05, reconnect_max=0.1)
    northbound = Northbound(cfg, store, gateway_name="bench", version="bench", product_codes=["P-100"],
                            on_alert=lambda kind, text: None)
    return northbound, topic_for(cfg, "measurement", "P-100", "bore") or ""


async def steady(folder: Path, count: int) -> float:
    """Produce `count` events as fast as the store takes them while connected; end-to-end confirmed rate."""
    broker = Mosquitto(folder)
    broker.start()
    consumer = subprocess.Popen([shutil.which("mosquitto_sub") or "mosquitto_sub", "-h", "127.0.0.1",
                                 "-p", str(broker.port), "-t", "spc/#", "-q", "1", "-C", str(count + 1)],
                                stdout=subprocess.DEVNULL)
    store = Store(str(folder / "steady.sqlite3"))
    northbound, topic = make_northbound(store, broker.port)
    try:
        await store.open()
        await northbound.start()
        while not northbound.stats()["connected"]:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        await produce(store, northbound, topic, count)
        await wait_published(northbound, count, 120)
        elapsed = time.perf_counter() - started
        consumer.wait(30)  # the online status + every event reached the consumer
        if consumer.returncode != 0:
            raise RuntimeError("the consumer did not receive every message")
        return count / elapsed
    finally:
        if consumer.poll() is None:
            consumer.kill()
        await northbound.stop()
        await store.close()
        broker.stop()


async def drain(folder: Path, count: int) -> tuple[float, float, float]:
    """`count` events stored while the broker is down, then the broker starts: the drain's confirmed rate."""
    broker = Mosquitto(folder)
    store = Store(str(folder / "drain.sqlite3"))
    northbound, topic = make_northbound(store, broker.port)
    try:
        await store.open()
        await northbound.start()
        started = time.perf_counter()
        await produce(store, northbound, topic, count)
        produced = time.perf_counter() - started
        assert (await store.outbox_stats())["depth"] == count
        await asyncio.to_thread(broker.start)
        while not northbound.stats()["connected"]:
            await asyncio.sleep(0.001)
        connected = time.perf_counter()
        await wait_published(northbound, count, 120)
        elapsed = time.perf_counter() - connected
        await northbound.stop()
        depth = (await store.outbox_stats())["depth"]
        if depth:
            raise RuntimeError(f"{depth} rows left in the outbox after the drain")
        return count / elapsed, elapsed, count / produced
    finally:
        await northbound.stop()
        await store.close()
        broker.stop()


def main() -> None:
    """Run both measurements and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steady", type=int, default=50_000, help="events in the steady run")
    parser.add_argument("--outage", type=int, default=100_000, help="events stored during the outage")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # "connection refused" during the outage is the point
    with tempfile.TemporaryDirectory() as folder:
        steady_rate = asyncio.run(steady(Path(folder), args.steady))
    print(f"steady: {args.steady:,} events stored and confirmed by the broker at {steady_rate:,.0f} events/s")
    with tempfile.TemporaryDirectory() as folder:
        drain_rate, drain_s, store_rate = asyncio.run(drain(Path(folder), args.outage))
    print(f"outage: {args.outage:,} events stored at {store_rate:,.0f} events/s; "
          f"after the broker returned, drained in {drain_s:.2f} s = {drain_rate:,.0f} events/s "
          f"(replayed, PUBACKed, deleted)")
    print(json.dumps({"name": "northbound_steady_publish_rate", "value": round(steady_rate),
                      "unit": "events/s", "target": None, "better": "higher"}))
    print(json.dumps({"name": "northbound_outbox_drain_rate", "value": round(drain_rate), "unit": "events/s",
                      "target": DRAIN_TARGET, "better": "higher",
                      "detail": {"outage_events": args.outage, "drain_seconds": round(drain_s, 2)}}))


if __name__ == "__main__":
    main()
