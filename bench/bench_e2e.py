"""End-to-end latency: a gauge reading published on MQTT -> the WebSocket `measurement` message received.

Runs the real daemon (subprocess) with an MQTT source on a real mosquitto, N WebSocket clients on the
product endpoint, and a paho publisher at a fixed rate. Each reading's value is its sequence number,
so a client can look up when it was published. Figures: p50/p99 latency per case, daemon RSS.
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from common import (
    MeasurementTimer,
    collect,
    free_port,
    mqtt_gauge_config,
    open_websocket,
    rss_mb,
    start_broker,
)

CASES = [  # (readings per second, clients, seconds, p99 target in ms)
    (1000, 10, 8, 15.0),
    (200, 100, 8, 30.0),
]


def start_daemon(workdir: Path, broker_port: int, http_port: int, clients: int) -> subprocess.Popen:
    return common.start_daemon(workdir, mqtt_gauge_config(workdir, broker_port, http_port, clients + 50), http_port)


PUBLISHER = """
import sys, time
import paho.mqtt.client as mqtt
port, rate, total = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
client.max_inflight_messages_set(1000)
client.connect("127.0.0.1", port)
client.loop_start()
start = time.perf_counter()
for n in range(1, total + 1):
    delay = start + n / rate - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    # the reading is its own send time (CLOCK_MONOTONIC is the same clock in every process)
    client.publish("bench/x", repr(time.monotonic()), qos=1)
time.sleep(0.5)
client.loop_stop()
"""


class LatencyReader(MeasurementTimer):
    """A raw WebSocket client on the general feed, subscribed to product 1: it parses only what it
    must (frame headers, then the measurement value), so the figure is the gateway's, not a client's."""


async def open_clients(port: int, count: int, latencies: list[float]) -> list[LatencyReader]:
    readers = []
    for _ in range(count):
        reader = LatencyReader(latencies)
        await open_websocket(reader, port, "/ws/spc/notifications/", "bench-e2e")
        assert await asyncio.wait_for(reader.connected, 20), "handshake refused"
        reader.send_text('{"type":"subscribe_product","product_id":1}')
        readers.append(reader)
    return readers


async def run_case(rate: int, clients: int, seconds: float) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="spc-bench-e2e-"))
    broker, broker_port = start_broker(workdir)
    http_port = free_port()
    daemon = start_daemon(workdir, broker_port, http_port, clients)
    latencies: list[float] = []
    total = int(rate * seconds)
    try:
        readers = await open_clients(http_port, clients, latencies)
        await asyncio.sleep(1.0)  # the MQTT source subscribes; subscriptions settle
        publisher = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PUBLISHER, str(broker_port), str(rate), str(total))
        rss_samples = []
        while publisher.returncode is None:
            try:
                await asyncio.wait_for(publisher.wait(), 0.5)
            except TimeoutError:
                pass
            rss_samples.append(rss_mb(daemon.pid))
        delivered = await collect(readers, total)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
        broker.terminate()
        broker.wait(5)
    latencies.sort()
    return {
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        "delivered_min": delivered, "expected": total, "rss_max": max(rss_samples or [float("nan")]),
    }


def main() -> None:
    results = []
    for rate, clients, seconds, target in CASES:
        r = asyncio.run(run_case(rate, clients, seconds))
        print(f"{rate}/s x {clients} clients: p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
              f"delivered {r['delivered_min']}/{r['expected']} to every client, RSS max {r['rss_max']:.0f} MB",
              flush=True)
        results += [
            {"name": f"e2e_latency_p50_{rate}hz_{clients}clients", "value": round(r["p50"], 2), "unit": "ms",
             "target": None, "better": "lower"},
            {"name": f"e2e_latency_p99_{rate}hz_{clients}clients", "value": round(r["p99"], 2), "unit": "ms",
             "target": target, "better": "lower"},
            {"name": f"e2e_lost_{rate}hz_{clients}clients", "value": r["expected"] - r["delivered_min"],
             "unit": "messages", "target": 0, "better": "lower"},
            {"name": f"e2e_daemon_rss_{rate}hz_{clients}clients", "value": round(r["rss_max"], 1), "unit": "MB",
             "target": 150, "better": "lower"},
        ]
    for fig in results:
        print(json.dumps(fig))


if __name__ == "__main__":
    main()
