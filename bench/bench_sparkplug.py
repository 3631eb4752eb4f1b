"""Sparkplug B: the drain rate after a broker outage, in metrics/s (issue 16; target like the JSON outbox).

Real SQLite store, real mosquitto on loopback. `--outage` measurements are stored while the broker is
down; then it starts, and the clock runs from the connect until the consumer's cursor has passed every
row: births, then every held row as a DDATA of historical metrics (value, in_spec, in_control), written
to the socket and the cursor stored. A subscriber counts the DDATA the broker delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
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

DRAIN_TARGET = 10_000  # metrics/s after an outage (issue 16)
PER_BATCH = 100
METRICS_PER_ROW = 3  # a historical measurement: value, in_spec, in_control


def body(n: int) -> dict:
    return {"type": "measurement", "measurement": {
        "product_id": 1, "product_code": "P-100", "characteristic": "bore", "measurement_value": 10.0 + n % 7 * 0.01,
        "is_within_spec": True, "is_within_control": True, "measured_at": "2026-12-05T00:00:00.000+00:00"},
        "timestamp": "2026-12-05T00:00:00.000+00:00"}


async def drain(folder: Path, count: int) -> tuple[float, float, int]:
    broker = Mosquitto(folder)
    store = Store(str(folder / "drain.sqlite3"))
    config = NorthboundSection(NorthboundMQTT(host="127.0.0.1", port=broker.port, client_id="bench",
                                              reconnect_min=0.05, reconnect_max=0.05),
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
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("spBv1.0/BENCH/#", 0)
        sub.loop_start()
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
        return count * METRICS_PER_ROW / elapsed, elapsed, received
    finally:
        await output.stop()
        await store.close()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outage", type=int, default=50_000, help="measurements stored during the outage")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        rate, seconds, received = asyncio.run(drain(Path(folder), args.outage))
    print(f"outage: {args.outage:,} measurements held; after the broker returned, drained in {seconds:.2f} s "
          f"= {rate:,.0f} historical metrics/s; the subscriber got {received:,} DDATA")
    print(json.dumps({"name": "sparkplug_drain_rate_after_outage", "value": round(rate), "unit": "metrics/s",
                      "target": DRAIN_TARGET, "better": "higher",
                      "detail": {"outage_measurements": args.outage, "drain_seconds": round(seconds, 2),
                                 "ddata_received": received}}))


if __name__ == "__main__":
    main()
