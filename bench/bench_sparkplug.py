"""Sparkplug B: the drain rate after a broker outage (issue 16; target like the JSON outbox).

Real SQLite store, real mosquitto on loopback. `--outage` measurements are stored while the broker is
down; then it starts, and the clock runs from the connect until the consumer's cursor has passed every
row: births, then every held row as a DDATA of historical metrics, written to the socket and the cursor
stored. A subscriber counts the DDATA the broker delivered. A DDATA carries only what changed (contract
§1): here the value of each measurement (its in_spec and in_control stay true), so the metrics/s figure
counts the metrics actually sent, and the rows/s figure is the one to set beside the JSON outbox's
events/s, which the same run measures with the same number of rows (`--no-json` skips it).
`--short` holds 5,000 measurements instead of 50,000 (a loaded machine, a quick look).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import Mosquitto  # noqa: E402

from gateway.config import NorthboundMQTT, NorthboundSection, NorthboundSparkplug  # noqa: E402
from gateway.outputs.sparkplug import SparkplugOutput  # noqa: E402
from gateway.store import Store  # noqa: E402

DRAIN_TARGET = 10_000  # rows/s after an outage (issue 16: like the JSON outbox)
PER_BATCH = 100


def body(n: int) -> dict:
    return {"type": "measurement", "measurement": {
        "product_id": 1, "product_code": "P-100", "characteristic": "bore", "measurement_value": 10.0 + n % 7 * 0.01,
        "is_within_spec": True, "is_within_control": True, "measured_at": "2026-12-05T00:00:00.000+00:00"},
        "timestamp": "2026-12-05T00:00:00.000+00:00"}


async def drain(folder: Path, count: int) -> tuple[float, float, float, int]:
    broker = Mosquitto(folder)
    store = Store(str(folder / "drain.sqlite3"))
    config = NorthboundSection(NorthboundMQTT(host="127.0.0.1", port=broker.port, client_id="bench",
                                              # the subscriber is in before the output's next try
                                              reconnect_min=0.5, reconnect_max=0.5),
                               NorthboundSparkplug("BENCH", "node"))
    product = SimpleNamespace(id=1, code="P-100", characteristics=[SimpleNamespace(name="bore")])
    output = SparkplugOutput(config, store, [product])
    received = 0

    def on_message(_c, _u, message):
        nonlocal received
        received += "/DDATA/" in message.topic

    try:
        await store.open()
        await output.start()
        last = None
        for start in range(0, count, PER_BATCH):
            await store.wait_room()
            with store.batch() as batch:
                for i in range(start, min(count, start + PER_BATCH)):
                    batch.event("measurement", 1, body(i), outbox_topic="spc/measurement/P-100/bore")
            last = batch
            await asyncio.sleep(0)
        await last.committed
        await asyncio.to_thread(broker.start)
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-host")
        sub.on_message = on_message
        subscribed = threading.Event()
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("spBv1.0/BENCH/#", 0)
        sub.loop_start()
        await asyncio.to_thread(subscribed.wait, 10)
        while not output.stats()["connected"]:
            await asyncio.sleep(0.001)
        connected = time.perf_counter()
        while output.stats()["cursor"] < count:
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - connected
        deadline = time.monotonic() + 10
        while received < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        sub.loop_stop()
        return count / elapsed, output.stats()["metrics"] / elapsed, elapsed, received
    finally:
        await output.stop()
        await store.close()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outage", type=int, default=50_000, help="measurements stored during the outage")
    parser.add_argument("--short", action="store_true", help="5,000 measurements (a quick look)")
    parser.add_argument("--no-json", action="store_true", help="skip the JSON outbox's drain beside it")
    args = parser.parse_args()
    count = 5_000 if args.short else args.outage
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        rate, metrics, seconds, received = asyncio.run(drain(Path(folder), count))
    print(f"outage: {count:,} measurements held; after the broker returned, drained in {seconds:.2f} s "
          f"= {rate:,.0f} rows/s ({metrics:,.0f} historical metrics/s); the subscriber got {received:,} DDATA")
    detail = {"outage_measurements": count, "drain_seconds": round(seconds, 2), "ddata_received": received,
              "metrics_per_s": round(metrics)}
    if not args.no_json:
        from bench_northbound import drain as json_drain  # the JSON outbox, same rows, same machine, same run

        with tempfile.TemporaryDirectory() as folder:
            json_rate = asyncio.run(json_drain(Path(folder), count))[0]
        detail["json_outbox_events_per_s"] = round(json_rate)
        detail["ratio_to_json_outbox"] = round(rate / json_rate, 2)
        print(f"JSON outbox, same {count:,} rows: {json_rate:,.0f} events/s; Sparkplug / JSON = {rate / json_rate:.2f}")
    print(json.dumps({"name": "sparkplug_drain_rate_after_outage", "value": round(rate), "unit": "rows/s",
                      "target": DRAIN_TARGET, "better": "higher", "detail": detail}))


if __name__ == "__main__":
    main()
