"""`make soak` (not in CI): the real daemon under a steady load for a long time, memory and lost events.

    python bench/soak.py --minutes 30 --rate 2000 --clients 50      # the issue's soak
    python bench/soak.py --minutes 1                                  # a quick check

A paho publisher (its own process, so the clients' work does not disturb its pace) sends readings at
`--rate` per second to a real mosquitto. The daemon, with the systemd unit's `Environment=` settings if it
has any, reads them with an MQTT source, and `--clients`
WebSocket clients on /ws/spc/notifications/ subscribe to the product. Each client must receive every
measurement. A client that the gateway cuts off as too slow reconnects with ?since=SEQ and subscribes
again, as a screen does; what it still misses counts as lost.

Figures: daemon RSS after the warm-up and at the end (target: growth under 10 %), events lost summed over
the clients (target 0), measurements missing from SQLite, cut-offs. Last lines: JSON for bench/run_all.py.
With `--results FILE` (what `make soak` passes: bench/soak-results.md) they are also written there as a
table, with the machine, the commit and the run's summary lines.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mqtt_in import (  # noqa: E402  (bench/ is not a package)
    TOPIC,
    count_measurements,
    free_port,
    health,
    rss_mb,
    start_broker,
    start_daemon,
    stop_daemon,
    tail,
    unit_environment,
    wait_source_connected,
    write_config,
)
from run_all import commit, machine_line, table  # noqa: E402

SETTLE_TIMEOUT = 60.0  # seconds after the last publish for the clients to receive the rest
REPORT_EVERY = 60.0  # seconds between two progress lines
READ_SIZE = 256 * 1024  # bytes read from a socket at once
MEASUREMENT = b'{"type":"measurement"'  # the gateway's compact JSON puts `type` first
CONNECTION = b'{"type":"connection"'
SUBSCRIBED = b'{"type":"subscribed"'
SEQ = b'"seq":'
SUBSCRIBE = json.dumps({"type": "subscribe_product", "product_id": 1}, separators=(",", ":")).encode()


def publisher(port: int, rate: int, total: int, published: Any, finished: Any) -> None:
    """Send `total` readings at `rate`/s (QoS 1), paced in 5 ms ticks; runs in its own process."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-pub")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port, 60)
    client.loop_start()
    start = time.perf_counter()
    sent = 0
    info = None
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent < due:
            sent += 1
            info = client.publish(TOPIC, str(sent), qos=1)
        published.value = sent
        time.sleep(0.005)
    if info is not None:
        info.wait_for_publish(30)
    finished.value = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()


@dataclass
class ClientTally:
    """What one WebSocket client saw."""

    received: int = 0
    last_seq: int = 0
    reconnects: int = 0
    error: str | None = None


class FeedReader:
    """A lean WebSocket client for the general feed: counts measurement frames without decoding them.

    50 clients at 2,000 readings/s are some 200,000 frames/s; a full client library decoding each one
    would need more CPU than the daemon it measures. This walks the frame headers, answers pings and
    recognises a measurement by the first bytes of its compact JSON (`{"type":"measurement"`).
    """

    def __init__(self, tally: ClientTally, writer: asyncio.StreamWriter):
        self.tally = tally
        self.writer = writer
        self.connection_seq: int | None = None
        self.subscribed = False
        self.closed = False

    def feed(self, buf: bytearray) -> int:
        """Handle every whole frame at the start of buf; returns the bytes consumed."""
        pos, n, count, last = 0, len(buf), 0, -1
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length, start = (buf[pos + 2] << 8) | buf[pos + 3], pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, start = int.from_bytes(buf[pos + 2:pos + 10], "big"), pos + 10
            end = start + length
            if end > n:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 1:
                if buf.startswith(MEASUREMENT, start):
                    count += 1
                    last = start
                elif buf.startswith(CONNECTION, start):
                    self.connection_seq = _seq(buf, start, end)
                elif buf.startswith(SUBSCRIBED, start):
                    self.subscribed = True
            elif opcode == 9:
                self.writer.write(client_frame(0xA, bytes(buf[start:end])))
            elif opcode == 8:
                self.closed = True
            pos = end
        if count:
            self.tally.received += count
            self.tally.last_seq = _seq(buf, last, pos)
        return pos


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payloads under 126 bytes: subscribe, pong)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def ws_client(http_port: int, tally: ClientTally, ready: asyncio.Event, stop: asyncio.Event) -> None:
    """Subscribe to product 1 on the general feed and count its measurements; reconnect with ?since= when cut."""
    first = True
    while not stop.is_set():
        path = "/ws/spc/notifications/" + ("" if first else f"?since={tally.last_seq}")
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", http_port), 20)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{http_port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                         .encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
            if not head.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            writer.write(client_frame(0x1, SUBSCRIBE))
            frames = FeedReader(tally, writer)
            buf = bytearray()
            while not stop.is_set():
                chunk = await reader.read(READ_SIZE)
                if not chunk:
                    raise ConnectionError("the gateway closed the connection")
                buf += chunk
                del buf[:frames.feed(buf)]
                if first and frames.connection_seq is not None and not frames.subscribed:
                    tally.last_seq = max(tally.last_seq, frames.connection_seq)
                if first and frames.subscribed:
                    first = False
                    ready.set()
                if frames.closed:
                    raise ConnectionError("the gateway sent a close frame")
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            if stop.is_set():
                return
            tally.reconnects += 1
            tally.error = f"{type(exc).__name__}: {exc}"
            if first:
                ready.set()  # never subscribed: the tally shows it
                return
            await asyncio.sleep(0.2)
        finally:
            if writer is not None:
                writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _seq(buf: bytes | bytearray, start: int = 0, end: int | None = None) -> int:
    """The `seq` of the JSON message in buf[start:end] (0 when it has none)."""
    at = buf.find(SEQ, start, len(buf) if end is None else end)
    if at < 0:
        return 0
    at += len(SEQ)
    stop = at
    while stop < len(buf) and 48 <= buf[stop] <= 57:
        stop += 1
    return int(buf[at:stop] or b"0")


async def soak(minutes: float, rate: int, clients: int, warmup: float) -> dict[str, Any]:
    """One soak run; returns the figures."""
    workdir = Path(tempfile.mkdtemp(prefix="spc-soak-"))
    broker, broker_port = start_broker(workdir)
    http_port = free_port()
    config = write_config(workdir, broker_port, http_port, max_connections=clients + 50)
    log_path = workdir / "daemon.log"
    daemon = start_daemon(config, log_path, env=unit_environment())  # as systemd runs it
    stop = asyncio.Event()
    tallies = [ClientTally() for _ in range(clients)]
    tasks: list[asyncio.Task[None]] = []
    try:
        await asyncio.to_thread(wait_source_connected, daemon, http_port, log_path)
        readies = [asyncio.Event() for _ in range(clients)]
        tasks = [asyncio.create_task(ws_client(http_port, t, r, stop)) for t, r in zip(tallies, readies, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        subscribed = sum(1 for t in tallies if t.error is None)
        print(f"daemon pid {daemon.pid}, {subscribed}/{clients} clients subscribed", flush=True)

        total = int(minutes * 60 * rate)
        spawn = multiprocessing.get_context("spawn")  # a clean child, not a fork of this running event loop
        published = spawn.Value("q", 0)
        finished = spawn.Value("d", 0.0)
        pub = spawn.Process(target=publisher, args=(broker_port, rate, total, published, finished))
        started = time.monotonic()
        cpu_daemon, cpu_self = cpu_seconds(daemon.pid), cpu_seconds(os.getpid())
        pub.start()
        rss_start = None
        held_start = held_end = ""
        rss_samples: list[tuple[float, float]] = []  # (minutes since start, MB), one per report
        next_report = started + REPORT_EVERY
        while pub.is_alive():
            await asyncio.sleep(0.5)
            now = time.monotonic()
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode}:\n{tail(log_path)}")
            if rss_start is None and now - started >= warmup:
                rss_start = rss_mb(daemon.pid)
                held_start = await held(http_port)
                print(f"after {warmup:.0f} s warm-up: daemon RSS {rss_start:.1f} MB, {held_start}", flush=True)
            if now >= next_report:
                next_report += REPORT_EVERY
                rss_samples.append(((now - started) / 60, rss_mb(daemon.pid)))
                print(f"{(now - started) / 60:.0f} min: published {published.value:,}, slowest client "
                      f"{min(t.received for t in tallies):,}, RSS {rss_samples[-1][1]:.1f} MB, "
                      f"{await held(http_port)}", flush=True)
        pub.join()
        if rss_start is None:
            rss_start = rss_mb(daemon.pid)
            held_start = await held(http_port)
        sent = published.value
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline and min(t.received for t in tallies) < sent:
            await asyncio.sleep(0.2)
        rss_end = rss_mb(daemon.pid)
        held_end = await held(http_port)
        wall = time.monotonic() - started
        cpu_daemon = (cpu_seconds(daemon.pid) - cpu_daemon) / wall * 100
        cpu_self = (cpu_seconds(os.getpid()) - cpu_self) / wall * 100
        try:
            stored = count_measurements(workdir / "bench.sqlite3")
        except sqlite3.Error:
            stored = 0
        publish_seconds = finished.value or (time.monotonic() - started)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_daemon(daemon)
        broker.terminate()
        broker.wait(5)
    lost = sum(max(0, sent - t.received) for t in tallies)
    errors = sorted({t.error for t in tallies if t.error})
    if lost or errors:
        print(f"daemon log tail:\n{tail(log_path)}", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "published": sent, "publish_rate": sent / publish_seconds if publish_seconds else 0.0,
        "stored": stored, "rss_start": rss_start, "rss_end": rss_end, "lost": lost,
        "worst_client": min(t.received for t in tallies), "reconnects": sum(t.reconnects for t in tallies),
        "errors": errors, "cpu_daemon": cpu_daemon, "cpu_clients": cpu_self,
        "held_start": held_start, "held_end": held_end,
        "rss_trend": trend_mb_per_hour(rss_samples[len(rss_samples) * 2 // 3:]),
    }


async def held(http_port: int) -> str:
    """What the daemon's program really holds (/healthz `process`): jemalloc's allocated bytes, or
    Python's live blocks on pymalloc. Flat while RSS climbs means fragmentation, not a leak."""
    process = (await asyncio.to_thread(health, http_port)).get("process", {})
    if "allocated_bytes" in process:
        return f"{process['allocated_bytes'] / 1e6:.1f} MB allocated (jemalloc)"
    return f"{process.get('python_allocated_blocks', -1):,} Python blocks"


def trend_mb_per_hour(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of RSS over the given (minute, MB) samples, in MB per hour: is it still climbing?"""
    if len(samples) < 3:
        return None
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    return sum((t - mean_t) * (m - mean_m) for t, m in samples) / var * 60 if var else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="publishing time (default 30)")
    parser.add_argument("--rate", type=int, default=2000, help="readings per second (default 2000)")
    parser.add_argument("--clients", type=int, default=50, help="WebSocket clients (default 50)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before the start RSS is taken (default 10 %% of the run, 10-120 s)")
    parser.add_argument("--results", type=Path, default=None, help="also write the figures to this markdown file")
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else min(120.0, max(10.0, args.minutes * 6))
    measured = commit()  # the code the daemon starts with, not whatever HEAD is half an hour later
    r = asyncio.run(soak(args.minutes, args.rate, args.clients, warmup))
    growth = (r["rss_end"] - r["rss_start"]) / r["rss_start"] * 100
    summary = [f"published {r['published']:,} at {r['publish_rate']:,.0f}/s, stored {r['stored']:,}; "
               f"{args.clients} clients, slowest received {r['worst_client']:,}, lost {r['lost']:,} in total, "
               f"{r['reconnects']} reconnects; RSS {r['rss_start']:.1f} -> {r['rss_end']:.1f} MB "
               f"({growth:+.1f} %); CPU: daemon {r['cpu_daemon']:.0f} %, clients {r['cpu_clients']:.0f} % of one core",
               f"held by the program: {r['held_start']} -> {r['held_end']}"]
    if r["rss_trend"] is not None:
        summary.append(f"RSS trend over the last third of the run: {r['rss_trend']:+.1f} MB/h")
    summary += [f"client error: {error}" for error in r["errors"]]
    print("\n".join(summary), flush=True)
    tag = f"{args.rate}hz_{args.clients}clients_{args.minutes:g}min"
    figures = [
        {"name": f"soak_rss_start_{tag}", "value": round(r["rss_start"], 1), "unit": "MB", "target": None,
         "better": "lower"},
        {"name": f"soak_rss_end_{tag}", "value": round(r["rss_end"], 1), "unit": "MB", "target": None,
         "better": "lower"},
        {"name": f"soak_rss_growth_{tag}", "value": round(growth, 1), "unit": "%", "target": 10,
         "better": "lower"},
        {"name": f"soak_events_lost_{tag}", "value": r["lost"], "unit": "messages", "target": 0,
         "better": "lower"},
        {"name": f"soak_not_stored_{tag}", "value": r["published"] - r["stored"], "unit": "measurements",
         "target": 0, "better": "lower"},
        {"name": f"soak_client_reconnects_{tag}", "value": r["reconnects"], "unit": "reconnects",
         "target": None, "better": "lower"},
    ]
    if r["rss_trend"] is not None:
        figures.append({"name": f"soak_rss_trend_last_third_{tag}", "value": round(r["rss_trend"], 1),
                        "unit": "MB/h", "target": None, "better": "lower"})
    for figure in figures:
        print(json.dumps(figure))
    if args.results is not None:
        command = f"python bench/soak.py --minutes {args.minutes:g} --rate {args.rate} --clients {args.clients}"
        args.results.write_text("\n".join([
            "# Soak results", "", f"Machine: {machine_line()}", f"Commit: {measured}", f"Command: `{command}`", "",
            *table([("soak.py", figure) for figure in figures]), "", *[f"- {line}" for line in summary]]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
