"""What every benchmark needs: free ports, a real mosquitto with the line-broker settings, RSS, the real
daemon on a configuration, and raw WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Return once 127.0.0.1:port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:.0f} s")


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_broker(workdir: Path, max_inflight: int = 1000) -> tuple[subprocess.Popen, int]:
    """A mosquitto that queues without a count limit (the settings of docs/line-broker.md)."""
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                    f"max_inflight_messages {max_inflight}\n")
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=open(workdir / "mosquitto.log", "wb"))
    wait_port(port)
    return proc, port


def frame_spans(buffer: bytes) -> tuple[list[tuple[int, int]], int, list[bytes]]:
    """Server-to-client WebSocket frames (unmasked) in `buffer`: the payload spans of the data frames, how
    many bytes the frames take, and the payloads of the pings among them (control frames are not data); a
    frame cut off at the end is left for the next read."""
    spans: list[tuple[int, int]] = []
    pings: list[bytes] = []
    pos, end = 0, len(buffer)
    while end - pos >= 2:
        length = buffer[pos + 1] & 0x7F
        header = 2
        if length == 126:
            if end - pos < 4:
                break
            length, header = int.from_bytes(buffer[pos + 2:pos + 4], "big"), 4
        elif length == 127:
            if end - pos < 10:
                break
            length, header = int.from_bytes(buffer[pos + 2:pos + 10], "big"), 10
        if end - pos < header + length:
            break
        opcode = buffer[pos] & 0x0F
        if opcode < 0x8:
            spans.append((pos + header, pos + header + length))
        elif opcode == 0x9:
            pings.append(buffer[pos + header:pos + header + length])
        pos += header + length
    return spans, pos, pings


class RawWebSocket(asyncio.Protocol):
    """A raw-socket WebSocket client: the handshake, then the frames taken apart and handed whole to
    `frames_received`, so that what a bench measures is the gateway's, not a client library's."""

    def __init__(self) -> None:
        self.buffer = b""
        self.upgraded = False
        self.connected = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send_text(self, text: str) -> None:
        payload = text.encode()
        assert len(payload) < 126
        # client frames must be masked; a zero mask key leaves the payload as it is
        assert self.transport is not None
        self.transport.write(bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)

    def send_control(self, opcode: int, payload: bytes) -> None:
        """A control frame (a pong: 0xA) with its payload (at most 125 bytes), masked with a zero key."""
        assert self.transport is not None and len(payload) < 126
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()  # before any parsing: latencies count from the bytes' arrival
        buffer = self.buffer + data
        if not self.upgraded:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = buffer
                return
            self.upgraded = True
            if not self.connected.done():
                self.connected.set_result(head.startswith(b"HTTP/1.1 101"))
            buffer = rest
        spans, consumed, pings = frame_spans(buffer)
        self.buffer = buffer[consumed:]
        for payload in pings:  # as a browser does: a screen that never answers is closed by the gateway
            self.send_control(0xA, payload)
        self.frames_received(buffer, spans, now)

    def frames_received(self, buffer: bytes, spans: list[tuple[int, int]], now: float) -> None:
        """The whole frames of one read: payload `buffer[first:last]` for each span."""


class MeasurementTimer(RawWebSocket):
    """Times every `measurement` from its publication: each reading's value is the publisher's
    CLOCK_MONOTONIC (the same clock in every process)."""

    def __init__(self, latencies: list[float]):
        super().__init__()
        self.latencies = latencies
        self.received = 0

    def frames_received(self, buffer: bytes, spans: list[tuple[int, int]], now: float) -> None:
        for first, last in spans:
            payload = buffer[first:last]
            if payload.startswith(b'{"type":"measurement"'):
                i = payload.index(b'"measurement_value":') + 20
                j = payload.index(b",", i)
                self.latencies.append((now - float(payload[i:j])) * 1000)
                self.received += 1


async def open_websocket(client: RawWebSocket, port: int, path: str, agent: str) -> asyncio.Transport:
    """Connects `client` to 127.0.0.1:port and sends the upgrade for `path`; `client.connected` says
    whether the gateway accepted it."""
    transport, _ = await asyncio.get_running_loop().create_connection(lambda: client, "127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    transport.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     f"Sec-WebSocket-Version: 13\r\nUser-Agent: {agent}\r\n\r\n").encode())
    return transport


def mqtt_gauge_config(workdir: Path, broker_port: int, http_port: int, max_connections: int,
                      **characteristic: object) -> dict:
    """A gateway with one MQTT gauge (product 1 BENCH, characteristic x on bench/x, I-MR, rule 1,
    limits so wide the process is quiet); `characteristic` keys replace or add to x's."""
    return {
        "gateway": {"name": "BENCH", "language": "en", "timezone": "UTC"},
        "storage": {"path": str(workdir / "bench.sqlite3")},
        "server": {"listen": f"127.0.0.1:{http_port}", "max_connections": max_connections},
        "sources": [{"name": "gauges", "type": "mqtt", "host": "127.0.0.1", "port": broker_port,
                     "client_id": "bench-gw", "qos": 1}],
        "products": [{"id": 1, "code": "BENCH", "name": "bench", "characteristics": [{
            "name": "x", "source": "gauges", "mqtt": {"topic": "bench/x"}, "chart": "imr",
            "spec": {"lsl": -1e12, "usl": 1e12}, "limits": {"center": 0.0, "sigma": 1e12}, "rules": [1],
            **characteristic}]}],
    }


def spawn_daemon(workdir: Path, config: dict) -> subprocess.Popen:
    """The real daemon (`gateway.cli run`) on `config`, written to workdir/gateway.yaml; its log goes to
    workdir/daemon.log."""
    path = workdir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--config", str(path),
                             "--log-level", "WARNING"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "daemon.log", "wb"), env={**os.environ, "PYTHONPATH": str(REPO)})


def start_daemon(workdir: Path, config: dict, *ports: int, timeout: float = 20.0) -> subprocess.Popen:
    """`spawn_daemon`, returning once every one of `ports` listens."""
    proc = spawn_daemon(workdir, config)
    for port in ports:
        wait_port(port, timeout)
    return proc


async def collect(readers: list[MeasurementTimer], total: int, timeout: float = 20.0) -> int:
    """Waits at most `timeout` s for every reader to have `total` measurements, closes them, and returns
    the fewest any of them got."""
    deadline = time.monotonic() + timeout
    while min(r.received for r in readers) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    delivered = min(r.received for r in readers)
    for r in readers:
        if r.transport is not None:
            r.transport.close()
    return delivered
