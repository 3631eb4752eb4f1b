"""Helpers for the northbound tests (no tests here): a producing gateway process and an MQTT subscriber.

Run as a script, it is a minimal gateway: a real Store + Northbound producing numbered measurement events
until the store's last seq reaches --count (so a restart after SIGKILL continues where the file ends),
printing `committed <seq>` after each commit; then it keeps forwarding until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from conftest import Mosquitto  # noqa: E402

from gateway.config import NorthboundMQTT  # noqa: E402
from gateway.outputs.mqtt import Northbound, topic_for  # noqa: E402

PRODUCT = "P-100"
CHARACTERISTIC = "bore"


def persistent_broker(tmp_path: Path):
    """The conftest broker (which keeps its persistence file when run as root), started."""
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


def measurement_body(n: int) -> dict:
    """A measurement message as the WebSocket carries it (seq is added by the store)."""
    return {"type": "measurement", "product_code": PRODUCT, "characteristic": CHARACTERISTIC,
            "value": 10.0 + (n % 7) * 0.01, "timestamp": "2025-01-01T00:00:00.000+09:00", "n": n}


@dataclass
class Received:
    topic: str
    body: dict
    retain: bool
    dup: bool


@dataclass
class Subscriber:
    """A plant consumer: persistent session, QoS 1, reconnects by itself; collects what arrives."""

    port: int
    topic: str = "spc/#"
    client_id: str = "plant-historian"
    tls: dict | None = None
    username: str | None = None
    password: str | None = None
    clean: bool = False
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Subscriber:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=self.clean)
        c.on_connect = lambda cl, u, f, r, p: cl.subscribe(self.topic, 1)
        c.on_message = self._on_message
        c.reconnect_delay_set(0.1, 0.3)
        if self.tls:
            c.tls_set(**self.tls)
        if self.username:
            c.username_pw_set(self.username, self.password)
        c.connect_async("127.0.0.1", self.port, keepalive=5)
        c.loop_start()
        self.client = c
        return self

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append(Received(msg.topic, json.loads(msg.payload) if msg.payload else {},
                                          bool(msg.retain), bool(msg.dup)))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def events(self) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if not m.topic.endswith("/status")]

    def statuses(self) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.topic.endswith("/status")]

    def seqs(self) -> set[int]:
        return {m.body["seq"] for m in self.events()}

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def check_delivery(messages: list[Received], expected: range) -> None:
    """All seqs arrived; first copies in seq order; a second copy only when marked replayed."""
    seen: set[int] = set()
    first: list[int] = []
    for m in messages:
        seq = m.body["seq"]
        if seq in seen:
            # a broker's own redelivery to its subscriber carries the MQTT dup flag; ours say replayed
            assert m.body.get("replayed") is True or m.dup, f"unmarked duplicate of seq {seq}"
            continue
        seen.add(seq)
        first.append(seq)
    assert seen == set(expected), f"missing seqs: {sorted(set(expected) - seen)[:20]}"
    assert first == sorted(first), "seqs arrived out of order"
    live = [m.body["seq"] for m in messages if not m.body.get("replayed") and not m.dup]
    assert live == sorted(set(live)), "live (unmarked) messages repeated or out of order"


class Harness:
    """The producing gateway as a child process, so it can be SIGKILLed."""

    def __init__(self, db: Path, port: int, count: int, rate: float, keepalive: float = 5.0):
        self.args = [sys.executable, __file__, "--db", str(db), "--port", str(port), "--count", str(count),
                     "--rate", str(rate), "--keepalive", str(keepalive)]
        self.committed = 0
        self.connected = False
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Harness:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            word, _, value = line.strip().partition(" ")
            if word == "committed":
                self.committed = int(value)
            elif word == "connected":
                self.connected = value == "True"

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"harness exited with {self.proc.returncode} while waiting for {what}")
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _report_connection(northbound: Northbound, stop: asyncio.Event) -> None:
    connected = None
    while not stop.is_set():
        now = northbound.stats()["connected"]
        if now != connected:
            print("connected", now, flush=True)
            connected = now
        await asyncio.sleep(0.02)


async def _produce(args: argparse.Namespace) -> None:
    from gateway.store import Store

    store = Store(args.db)
    await store.open()
    config = NorthboundMQTT(host="127.0.0.1", port=args.port, keepalive=args.keepalive,
                            reconnect_min=0.1, reconnect_max=0.3)
    northbound = Northbound(config, store, gateway_name="line3", version="test", product_codes=[PRODUCT],
                            on_alert=lambda kind, **values: print("alert", kind, flush=True))
    await northbound.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    topic = topic_for(config, "measurement", PRODUCT, CHARACTERISTIC)
    watcher = asyncio.create_task(_report_connection(northbound, stop))
    per_batch = 100
    print("committed", store.last_seq, flush=True)
    while store.last_seq < args.count and not stop.is_set():
        n = min(per_batch, args.count - store.last_seq)
        with store.batch() as batch:
            for _ in range(n):
                batch.event("measurement", 1, measurement_body(store.last_seq + 1), outbox_topic=topic)
        await batch.committed
        northbound.wake()
        print("committed", store.last_seq, flush=True)
        await asyncio.sleep(n / args.rate)
    await stop.wait()
    await watcher
    await northbound.stop()
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--keepalive", type=float, default=5.0)
    asyncio.run(_produce(parser.parse_args()))
