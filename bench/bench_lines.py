"""Ten lines on one industrial PC: 10 products x 1,000 readings/s through SPC and SQLite to 50 screens
and the plant broker, sustained (default 5 minutes).

The real daemon (subprocess) reads 10 MQTT topics from a line broker (real mosquitto), one
characteristic per product (I-MR, rule 1); its JSON northbound forwards every measurement, violation,
alert and capability to a second mosquitto, the plant broker, where a paho subscriber counts what
arrives. Fifty raw WebSocket clients, five per product on the product endpoint `/ws/spc/product/{id}/`
(the endpoint a line-side screen uses), take every frame apart and time each `measurement` from its
publication: each reading's value is the publisher's CLOCK_MONOTONIC at publication (the limits are
wide, so the process is quiet). Two publisher processes share the 10,000 readings/s.

Figures: delivered latency p50/p99 over every screen's frames; readings lost (published but not stored,
not on every screen of the product, or not at the plant broker); the daemon's peak RSS; the CPU of each
process over the run (the daemon's event loop thread and its store-writer thread apart, the MQTT worker,
both brokers, the publishers and this process's clients), in % of one core.
Targets (issue 17): nothing lost, p99 < 20 ms, RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from common import MeasurementTimer, free_port, open_websocket, rss_mb, spawn_daemon, start_broker, wait_port

PRODUCTS = 10
SCREENS_PER_PRODUCT = 5
RATE_PER_PRODUCT = 1000  # readings/s
PUBLISHERS = 2
P99_TARGET_MS = 20.0
RSS_TARGET_MB = 150.0
DRAIN_WAIT = 60.0  # seconds after the last publication for the screens and the plant broker to catch up
TICK = os.sysconf("SC_CLK_TCK")  # clock ticks per second in /proc/PID/stat

PUBLISHER = """
import socket, struct, sys, threading, time
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
products = [int(p) for p in sys.argv[4].split(",")]
# A plain MQTT 3.1.1 QoS-1 publisher on a socket: paho's threaded client could not keep 5,000
# publications/s on time here (they queued in the client, and the queueing counted as the gateway's).
def packet(kind, body):
    n, length = len(body), b""
    while True:
        n, digit = n >> 7, n & 0x7F
        length += bytes([digit | (0x80 if n else 0)])
        if not n:
            return bytes([kind]) + length + body
def text(s):
    data = s.encode()
    return struct.pack("!H", len(data)) + data
sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sock.sendall(packet(0x10, text("MQTT") + bytes([4, 2]) + struct.pack("!H", 60) + text("bench-lines-pub-" + sys.argv[4])))
assert sock.recv(4)[:2] == bytes([0x20, 2]), "CONNACK"
def drain():  # PUBACKs: read and dropped (the broker has the message once it acknowledges)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
threading.Thread(target=drain, daemon=True).start()
topics = [text(f"line/p{p}/x") for p in products]
total = int(rate * seconds)
start = time.perf_counter()
n, mid = 0, 0
for tick in range(1, total + 1):
    delay = start + tick / rate - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    chunk = []
    for topic in topics:
        mid = mid % 65535 + 1
        # the reading is its own send time (CLOCK_MONOTONIC is the same clock in every process)
        chunk.append(packet(0x32, topic + struct.pack("!H", mid) + repr(time.monotonic()).encode()))
        n += 1
    sock.sendall(b"".join(chunk))
time.sleep(1.0)
sock.sendall(bytes([0xE0, 0]))
sock.close()
print(n)
"""


def line_config(workdir: Path, line_port: int, plant_port: int, http_port: int) -> dict:
    return {
        "gateway": {"name": "BENCH-LINES", "language": "en", "timezone": "UTC", "log_level": "WARNING"},
        "storage": {"path": str(workdir / "bench.sqlite3")},
        "server": {"listen": f"127.0.0.1:{http_port}", "max_connections": 200},
        "sources": [{"name": "gauges", "type": "mqtt", "host": "127.0.0.1", "port": line_port,
                     "client_id": "bench-lines-gw", "qos": 1}],
        "northbound": {"mqtt": {"host": "127.0.0.1", "port": plant_port, "client_id": "bench-lines-north",
                                "topic_prefix": "plant/bench", "qos": 1,
                                "publish": ["alert", "capability", "violation", "measurement"]}},
        "products": [{"id": p, "code": f"LINE-{p:02d}", "name": f"line {p}", "characteristics": [{
            "name": "x", "source": "gauges", "mqtt": {"topic": f"line/p{p}/x"}, "chart": "imr",
            "spec": {"lsl": -1e12, "usl": 1e12}, "limits": {"center": 0.0, "sigma": 1e12}, "rules": [1]}]}
            for p in range(1, PRODUCTS + 1)],
    }


class Screen(MeasurementTimer):
    """A raw WebSocket client on one product endpoint: takes every frame apart, times the measurements."""

    def __init__(self, latencies: list[float]):
        super().__init__(latencies)
        self.frames = 0
        self.closed = False  # the gateway closed it (a screen that fell behind is let go)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def frames_received(self, buffer: bytes, spans: list[tuple[int, int]], now: float) -> None:
        self.frames += len(spans)
        super().frames_received(buffer, spans, now)


async def open_screen(port: int, product: int, latencies: list[float]) -> Screen:
    screen = Screen(latencies)
    await open_websocket(screen, port, f"/ws/spc/product/{product}/", "bench-lines")
    assert await asyncio.wait_for(screen.connected, 20), "handshake refused"
    return screen


class PlantSubscriber:
    """A paho subscriber on the plant broker that counts the measurements the northbound forwarded."""

    def __init__(self, port: int):
        self.measurements = 0
        self.messages = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-lines-plant")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe("plant/bench/#", qos=1)
        if not subscribed.wait(10):
            raise TimeoutError("the plant subscriber could not subscribe")

    def _on_message(self, _client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages += 1
            if b'"type":"measurement"' in message.payload[:40] or "/measurement" in message.topic:
                self.measurements += 1

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def cpu_ticks(pid: int, tid: int | None = None) -> int:
    """utime + stime of a process (all its threads) or of one of its threads, in clock ticks."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def daemon_threads(pid: int) -> dict[str, list[int]]:
    """The daemon's threads by their kernel name (the writer names itself `store-writer`)."""
    threads: dict[str, list[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        label = "event loop" if int(task.name) == pid else name if name == "store-writer" else "other threads"
        threads.setdefault(label, []).append(int(task.name))
    return threads


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def count_rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    finally:
        conn.close()


async def run(seconds: float) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="spc-bench-lines-"))
    (workdir / "line").mkdir()
    (workdir / "plant").mkdir()
    line, line_port = start_broker(workdir / "line", max_inflight=5000)
    plant, plant_port = start_broker(workdir / "plant", max_inflight=5000)
    http_port = free_port()
    config = line_config(workdir, line_port, plant_port, http_port)
    daemon = spawn_daemon(workdir, config)
    latencies: list[float] = []
    plant_sub = None
    publishers: list[subprocess.Popen] = []
    try:
        wait_port(http_port)
        plant_sub = PlantSubscriber(plant_port)
        screens = {p: [await open_screen(http_port, p, latencies) for _ in range(SCREENS_PER_PRODUCT)]
                   for p in range(1, PRODUCTS + 1)}
        await asyncio.sleep(2.0)  # the MQTT source connects and subscribes
        workers = children(daemon.pid)
        share = [list(range(1 + k, PRODUCTS + 1, PUBLISHERS)) for k in range(PUBLISHERS)]
        watched = {"daemon": daemon.pid, "line broker": line.pid, "plant broker": plant.pid}
        for k, worker in enumerate(workers):
            watched[f"MQTT worker{'' if len(workers) == 1 else f' {k + 1}'}"] = worker
        threads = daemon_threads(daemon.pid)
        before = {name: cpu_ticks(pid) for name, pid in watched.items()}
        thread_before = {label: sum(cpu_ticks(daemon.pid, t) for t in tids) for label, tids in threads.items()}
        self_before = os.times()
        started = time.monotonic()
        for products in share:
            publishers.append(subprocess.Popen(
                [sys.executable, "-c", PUBLISHER, str(line_port), str(RATE_PER_PRODUCT), str(seconds),
                 ",".join(map(str, products))], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        rss_samples = []
        publisher_ticks = {p.pid: 0 for p in publishers}
        while any(p.poll() is None for p in publishers):
            await asyncio.sleep(1.0)
            rss_samples.append(rss_mb(daemon.pid))
            for p in publishers:
                publisher_ticks[p.pid] = max(publisher_ticks[p.pid], cpu_ticks(p.pid))
        elapsed = time.monotonic() - started
        published = sum(int((p.stdout.read() if p.stdout else b"0").strip() or 0) for p in publishers)
        after = {name: cpu_ticks(pid) for name, pid in watched.items()}
        thread_after = {label: sum(cpu_ticks(daemon.pid, t) for t in tids) for label, tids in threads.items()}
        self_after = os.times()
        deadline = time.monotonic() + DRAIN_WAIT
        expected_per_screen = published // PRODUCTS
        progress, progress_at = None, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - progress_at < 10.0:
            open_screens = [s for group in screens.values() for s in group if not s.closed]
            if (all(s.received >= expected_per_screen for s in open_screens)
                    and plant_sub.measurements >= published):
                break
            now_progress = (sum(s.received for s in open_screens), plant_sub.measurements)
            if now_progress != progress:
                progress, progress_at = now_progress, time.monotonic()
            await asyncio.sleep(0.2)
        stored = count_rows(workdir / "bench.sqlite3")
        screen_frames = sum(s.frames for group in screens.values() for s in group)
        screen_min = min(s.received for group in screens.values() for s in group)
        screens_closed = sum(s.closed for group in screens.values() for s in group)
    finally:
        for p in publishers:
            if p.poll() is None:
                p.kill()
        if plant_sub is not None:
            plant_sub.stop()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
        for broker in (line, plant):
            broker.terminate()
            broker.wait(5)
    cpu = {name: (after[name] - before[name]) / TICK / elapsed * 100 for name in watched}
    cpu.update({f"daemon {label}": (thread_after[label] - thread_before[label]) / TICK / elapsed * 100
                for label in threads})
    cpu["publishers"] = sum(publisher_ticks.values()) / TICK / elapsed * 100
    cpu["screens (this process)"] = ((self_after.user + self_after.system) - (self_before.user + self_before.system)) \
        / elapsed * 100
    latencies.sort()
    return {
        "published": published, "stored": stored, "screen_min": screen_min * PRODUCTS,
        "plant": plant_sub.measurements if plant_sub else 0, "rate": published / elapsed,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        "frames_per_reading": screen_frames / max(1, published * SCREENS_PER_PRODUCT),
        "rss_max": max(rss_samples or [float("nan")]), "cpu": cpu, "screens_closed": screens_closed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long the line runs (default 300)")
    args = parser.parse_args(argv)
    r = asyncio.run(run(args.seconds))
    lost = max(r["published"] - r["stored"], r["published"] - r["screen_min"], r["published"] - r["plant"], 0)
    print(f"{PRODUCTS} products x {RATE_PER_PRODUCT}/s for {args.seconds:.0f} s: {r['published']:,} readings "
          f"published ({r['rate']:,.0f}/s), {r['stored']:,} stored, {r['screen_min']:,} on every screen "
          f"(as the slowest screen counts), {r['plant']:,} at the plant broker; p50 {r['p50']:.2f} ms, "
          f"p99 {r['p99']:.2f} ms to {PRODUCTS * SCREENS_PER_PRODUCT} screens; "
          f"{r['frames_per_reading']:.2f} frames per reading per screen, {r['screens_closed']} screens let go; daemon RSS max {r['rss_max']:.0f} MB",
          flush=True)
    print("CPU, % of one core: " + ", ".join(f"{name} {value:.0f}" for name, value in r["cpu"].items()), flush=True)
    figures = [
        {"name": "lines_readings_per_s", "value": round(r["rate"]), "unit": "readings/s",
         "target": PRODUCTS * RATE_PER_PRODUCT * 0.98, "better": "higher"},
        {"name": "lines_lost", "value": lost, "unit": "readings", "target": 0, "better": "lower"},
        {"name": "lines_latency_p50", "value": round(r["p50"], 2), "unit": "ms", "target": None, "better": "lower"},
        {"name": "lines_latency_p99", "value": round(r["p99"], 2), "unit": "ms", "target": P99_TARGET_MS,
         "better": "lower"},
        {"name": "lines_daemon_rss", "value": round(r["rss_max"], 1), "unit": "MB", "target": RSS_TARGET_MB,
         "better": "lower"},
    ]
    figures += [{"name": "lines_cpu_" + name.replace(" ", "_").replace("(", "").replace(")", ""),
                 "value": round(value), "unit": "% of a core", "target": None, "better": "lower"}
                for name, value in r["cpu"].items()]
    for figure in figures:
        print(json.dumps(figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
