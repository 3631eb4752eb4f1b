"""How fast can a subscriber drain QoS-1 messages from a local mosquitto, fed by C publishers?

Measures, in the same run and against the same broker:
  mqtt_bare_paho_qos1    a bare paho subscriber that only counts (auto-ack): the ceiling
  mqtt_source_drain      gateway.sources.mqtt.source.MqttSource (parse, sample, manual ack on commit) with a
                         sink that commits at once (no SQLite): the source's own cost
The publishers are `mosquitto_pub -q 1 -l` processes fed lines from a pipe, several in parallel, so the
publisher is not the limit. The lead puts the whole gateway's committed rate beside these numbers.

    .venv/bin/python bench/bench_mqtt_broker_rate.py [--messages 40000] [--publishers 4]

Prints one JSON line per figure at the end: {"name", "value", "unit", "target"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import start_broker  # noqa: E402

from gateway.config import Characteristic, Product, Sampling  # noqa: E402
from gateway.sources.base import Binding  # noqa: E402
from gateway.sources.mqtt.settings import MqttAddress
from gateway.sources.mqtt.settings import MqttSettings as MqttSourceConfig  # noqa: E402
from gateway.sources.mqtt.source import MqttSource  # noqa: E402

MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
TOPIC = "bench/line/gauge"








def publish(port: int, total: int, publishers: int) -> None:
    """Feed `total` readings through `publishers` parallel mosquitto_pub processes."""
    each = total // publishers
    procs = [subprocess.Popen([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", TOPIC,
                               "-l", "-i", f"bench-pub-{i}"], stdin=subprocess.PIPE) for i in range(publishers)]

    def feed(proc: subprocess.Popen[bytes], offset: int) -> None:
        assert proc.stdin is not None
        proc.stdin.write("".join(f"{20 + (offset + k) % 100 / 1000:.4f}\n" for k in range(each)).encode())
        proc.stdin.close()
        proc.wait()

    threads = [threading.Thread(target=feed, args=(p, i * each)) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Counter:
    def __init__(self, total: int):
        self.total, self.n = total, 0
        self.first = self.last = 0.0
        self.done = threading.Event()

    def hit(self) -> None:
        now = time.perf_counter()
        if self.n == 0:
            self.first = now
        self.n += 1
        self.last = now
        if self.n >= self.total:
            self.done.set()

    def rate(self) -> float:
        return (self.n - 1) / (self.last - self.first) if self.n > 1 and self.last > self.first else 0.0


def bare_paho(port: int, total: int, publishers: int) -> float:
    """Messages/s a bare paho QoS-1 subscriber drains (it only counts)."""
    counter = Counter(total // publishers * publishers)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv311)
    subscribed = threading.Event()
    client.on_connect = lambda c, u, f, r, p: c.subscribe(TOPIC, 1)
    client.on_subscribe = lambda c, u, m, r, p: subscribed.set()
    client.on_message = lambda c, u, m: counter.hit()
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(5)
    publish(port, total, publishers)
    counter.done.wait(120)
    client.disconnect()
    client.loop_stop()
    return counter.rate()


def gateway_source(port: int, total: int, publishers: int, protocol: str) -> float:
    """Messages/s through MqttSource with a sink that commits (and so acknowledges) at once."""
    counter = Counter(total // publishers * publishers)

    async def sink(m) -> None:  # noqa: ANN001
        counter.hit()
        if m.on_committed:
            m.on_committed()

    async def main() -> float:
        char = Characteristic("od", "broker", address=MqttAddress(TOPIC), sampling=Sampling("per_message"))
        config = MqttSourceConfig("broker", "127.0.0.1", port=port, client_id=f"bench-gw-{protocol}",
                                  protocol=protocol)  # type: ignore[arg-type]
        source = MqttSource(config, [Binding(Product(1, "P", "p", (char,)), char)], sink)
        await source.start()
        while source.health.state != "connected":
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        await asyncio.to_thread(publish, port, total, publishers)
        await asyncio.to_thread(counter.done.wait, 120)
        await source.stop()
        return counter.rate()

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--publishers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_broker(Path(tmp), max_inflight=0)
        try:
            bare = bare_paho(port, args.messages, args.publishers)
            v5 = gateway_source(port, args.messages, args.publishers, "5")
            v311 = gateway_source(port, args.messages, args.publishers, "3.1.1")
        finally:
            broker.terminate()
            broker.wait(5)
    results = [
        {"name": "mqtt_bare_paho_qos1", "value": round(bare), "unit": "msg/s", "target": 12000},
        {"name": "mqtt_source_drain_v5", "value": round(v5), "unit": "msg/s", "target": round(0.8 * bare)},
        {"name": "mqtt_source_drain_v311", "value": round(v311), "unit": "msg/s", "target": round(0.8 * bare)},
    ]
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
