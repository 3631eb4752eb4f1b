"""What every benchmark needs: free ports, a real mosquitto with the line-broker settings, RSS."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


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


def frame_spans(buffer: bytes) -> tuple[list[tuple[int, int]], int]:
    """Server-to-client WebSocket frames (unmasked) in `buffer`: their payload spans, and how many bytes
    they take; a frame cut off at the end is left for the next read."""
    spans: list[tuple[int, int]] = []
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
        spans.append((pos + header, pos + header + length))
        pos += header + length
    return spans, pos
