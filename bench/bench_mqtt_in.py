"""MQTT in: how fast a backlog of QoS-1 readings is drained, bare paho subscriber vs the gateway, same run.

Method (the same for both): the subscriber connects once with a persistent session and subscribes, then
goes away; N QoS-1 messages are published by several C publishers (`mosquitto_pub -q 1 -l`, so the
publisher is not the limit) and queue at a real mosquitto (`max_queued_messages 0`); the subscriber comes
back and the drain is timed from the first message handled to the last.

(a) a bare paho subscriber that only counts messages (auto acknowledgement);
(b) the real daemon (`python -m gateway.cli run`, subprocess) with an MQTT source: a message counts once
    its measurement is parsed, SPC'd, committed to SQLite (rows in `measurements`) and acknowledged.

(a) and (b) alternate for `--rounds` pairs (default 3); each round prints its own ratio, and the figures
are the medians. The last lines are JSON figures for bench/run_all.py. Target: the gateway reaches 80 %
of the bare rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from gateway.sources.mqtt.settings import MqttSettings as MqttSourceConfig  # noqa: E402  (the gateway's default protocol)

TOPIC = "bench/x"
DRAIN_TIMEOUT = 180.0  # seconds a drain may take before the run gives up on it
STALL_TIMEOUT = 30.0  # seconds without one more stored row before the run gives up on the gateway
POLL = 0.01  # seconds between two counts of the measurements table
DEFAULT_PROTOCOL = MqttSourceConfig.__dataclass_fields__["protocol"].default
TARGET_RATIO = 80.0  # % of the bare subscriber's rate the gateway must reach (issue 4, item 12)


# ---------------------------------------------------------------- shared with bench/soak.py

from common import free_port, rss_mb, start_broker, wait_port  # noqa: E402,F401  (soak.py imports them here)


def write_config(workdir: Path, broker_port: int, http_port: int, *, max_connections: int = 100,
                 client_queue: int = 2000, protocol: str | None = None) -> Path:
    """A one-characteristic line fed by MQTT: fixed limits and a wide spec, so no alert floods."""
    config = {
        "gateway": {"name": "BENCH", "language": "en", "timezone": "UTC", "log_level": "WARNING"},
        "storage": {"path": str(workdir / "bench.sqlite3")},
        "server": {"listen": f"127.0.0.1:{http_port}", "max_connections": max_connections,
                   "client_queue": client_queue},
        "sources": [{"name": "gauges", "type": "mqtt", "host": "127.0.0.1", "port": broker_port,
                     "client_id": "bench-gw", "qos": 1, **({"protocol": protocol} if protocol else {})}],
        "products": [{"id": 1, "code": "BENCH", "name": "bench", "characteristics": [{
            "name": "x", "source": "gauges", "mqtt": {"topic": TOPIC}, "chart": "imr",
            "spec": {"lsl": -1e12, "usl": 1e12}, "limits": {"center": 0.0, "sigma": 1e12}, "rules": [1]}]}],
    }
    path = workdir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_daemon(config: Path, log_path: Path, profile: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """The real daemon, as `spc-gateway run` starts it (under cProfile, writing `profile`, when given;
    with `env` added to this process's environment)."""
    prefix = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    return subprocess.Popen([sys.executable, *prefix, "-m", "gateway.cli", "run", "--config", str(config),
                             "--log-level", "WARNING"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=open(log_path, "ab"), env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)})


def unit_environment() -> dict[str, str]:
    """The `Environment=` settings of systemd/spc-gateway.service: run the daemon as systemd would."""
    settings = {}
    for line in (REPO / "systemd" / "spc-gateway.service").read_text().splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            settings[key] = value
    return settings


def health(http_port: int) -> dict[str, Any]:
    """The daemon's /healthz body (200 or 503 alike)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as exc:  # 503 still carries the report
        return json.loads(exc.read())


def wait_source_connected(daemon: subprocess.Popen, http_port: int, log_path: Path, timeout: float = 30.0) -> None:
    """Return once the daemon's MQTT source reports `connected` (it has subscribed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode}:\n{tail(log_path)}")
        try:
            if health(http_port)["sources"]["gauges"]["state"] == "connected":
                return
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the daemon's MQTT source did not connect in {timeout:.0f} s:\n{tail(log_path)}")


def stop_daemon(daemon: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM, as systemd stops it; SIGKILL only if it does not stop in time."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for failure messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def count_measurements(db: Path) -> int:
    """Committed rows in the measurements table (read-only; WAL never blocks the writer)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
    finally:
        conn.close()


def newest_measurement(db: Path) -> int:
    """The highest committed measurement id: during a drain into a new database, the rows committed so
    far (ids are handed out 1, 2, 3... and committed in order). One index lookup where COUNT(*) walks
    the table: polled every POLL seconds, COUNT(*) cost this process 1.2 ms at 150,000 rows, an eighth
    of a core on the two cores the daemon needs, while the bare subscriber's side of the run polls
    nothing."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT MAX(id) FROM measurements").fetchone()[0] or 0
    finally:
        conn.close()


# ---------------------------------------------------------------- this benchmark

def publish_backlog(broker_port: int, total: int, publishers: int, start_value: int = 1) -> float:
    """Publish `total` QoS-1 readings with parallel mosquitto_pub processes; returns seconds taken."""
    binary = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
    share = -(-total // publishers)
    started = time.perf_counter()
    procs = []
    for p in range(publishers):
        first = start_value + p * share
        last = min(start_value + total, first + share)
        if first >= last:
            break
        lines = "".join(f"{n}\n" for n in range(first, last)).encode()
        proc = subprocess.Popen([binary, "-h", "127.0.0.1", "-p", str(broker_port), "-t", TOPIC, "-q", "1",
                                 "-l", "-M", "1000", "-i", f"bench-pub-{p}"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append((proc, lines))
    feeders = [threading.Thread(target=proc.communicate, args=(lines,)) for proc, lines in procs]
    for feeder in feeders:
        feeder.start()
    for feeder in feeders:
        feeder.join()
    for proc, _ in procs:
        if proc.returncode != 0:
            raise RuntimeError(f"mosquitto_pub exited with {proc.returncode}")
    return time.perf_counter() - started


def _bare_client(protocol: str, on_message: Any = None) -> mqtt.Client:
    # The same MQTT version as the gateway's source: paho parses MQTT 5 packets (properties) slower.
    if protocol == "5":
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv311,
                             clean_session=False)
    if on_message is not None:
        client.on_message = on_message
    return client


def _connect_persistent(client: mqtt.Client, broker_port: int, protocol: str) -> None:
    if protocol != "5":  # 3.1.1: the persistent session comes from clean_session=False
        client.connect("127.0.0.1", broker_port, 60)
        return
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 20_000  # what the gateway announces: the broker's window is the same for both
    client.connect("127.0.0.1", broker_port, 60, clean_start=False, properties=props)


def bare_drain(broker_port: int, total: int, publishers: int, protocol: str) -> float:
    """(a): messages/s a paho subscriber that only counts drains from a queued backlog."""
    subscribed = threading.Event()
    client = _bare_client(protocol)
    client.on_subscribe = lambda *args: subscribed.set()
    _connect_persistent(client, broker_port, protocol)
    client.loop_start()
    client.subscribe(TOPIC, qos=1)
    if not subscribed.wait(10):
        raise TimeoutError("the bare subscriber could not subscribe")
    client.disconnect()
    client.loop_stop()

    publish_backlog(broker_port, total, publishers)

    received = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_client: Any, _userdata: Any, _message: Any) -> None:
        nonlocal received, first, last
        now = time.perf_counter()
        if received == 0:
            first = now
        received += 1
        last = now
        if received >= total:
            done.set()

    client = _bare_client(protocol, on_message)
    _connect_persistent(client, broker_port, protocol)
    client.loop_start()
    done.wait(DRAIN_TIMEOUT)
    client.disconnect()
    client.loop_stop()
    if received < total:
        raise RuntimeError(f"the bare subscriber got {received} of {total} messages")
    return (received - 1) / (last - first)


def gateway_drain(workdir: Path, broker_port: int, total: int, publishers: int, protocol: str,
                  profile: Path | None = None) -> tuple[float, int]:
    """(b): measurements/s the daemon commits while draining a queued backlog; also the rows stored."""
    http_port = free_port()
    config = write_config(workdir, broker_port, http_port, protocol=protocol)
    log_path = workdir / "daemon.log"
    db = workdir / "bench.sqlite3"
    daemon = start_daemon(config, log_path)
    try:
        wait_source_connected(daemon, http_port, log_path)  # the persistent session and its subscription
    finally:
        stop_daemon(daemon)

    publish_backlog(broker_port, total, publishers)

    daemon = start_daemon(config, log_path, profile)
    try:
        first_at, first_count, count, last_at = 0.0, 0, 0, 0.0
        deadline = time.monotonic() + DRAIN_TIMEOUT
        progress_at = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - progress_at < STALL_TIMEOUT:
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited with {daemon.returncode}:\n{tail(log_path)}")
            try:
                now_count = newest_measurement(db)
            except sqlite3.OperationalError:  # the schema is not there yet
                now_count = 0
            now = time.perf_counter()
            if now_count > count:
                if first_at == 0.0:
                    first_at, first_count = now, now_count
                count, last_at = now_count, now
                progress_at = time.monotonic()
            if count >= total:
                break
            time.sleep(POLL)
        if count < total:
            raise RuntimeError(f"the gateway stored {count} of {total} (no progress for {STALL_TIMEOUT:.0f} s or "
                               f"over {DRAIN_TIMEOUT:.0f} s):\n{tail(log_path)}")
        time.sleep(0.5)  # a redelivery would show up as extra rows now
        stored = count_measurements(db)
    finally:
        stop_daemon(daemon)
    return (count - first_count) / (last_at - first_at), stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000, help="backlog size (default 50000)")
    parser.add_argument("--publishers", type=int, default=4, help="parallel mosquitto_pub processes (default 4)")
    parser.add_argument("--max-inflight", type=int, default=1000,
                        help="mosquitto max_inflight_messages (default 1000; 0 = no limit)")
    parser.add_argument("--protocol", choices=("3.1.1", "5"), default=DEFAULT_PROTOCOL,
                        help=f"MQTT version of both subscribers (default {DEFAULT_PROTOCOL}, the gateway's default)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="bare/gateway pairs, run alternately; the verdict is their median ratio (default 3)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the last round's draining daemon under cProfile and write its stats to this file")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="spc-bench-mqtt-in-"))
    rounds: list[tuple[float, float]] = []
    # Bare and gateway alternate, round after round, and the verdict is the median of the rounds'
    # ratios: on a shared 2-core machine one drain can land in a busy second and the other not; a pair
    # run back to back sees the same machine, and the median drops the odd pair out. Each round has a
    # broker of its own: a persistent session left by the last round would queue this round's backlog
    # twice.
    for number in range(1, args.rounds + 1):
        round_dir = workdir / f"round-{number}"
        round_dir.mkdir()
        broker, broker_port = start_broker(round_dir, args.max_inflight)
        try:
            bare = bare_drain(broker_port, args.messages, args.publishers, args.protocol)
            profile = args.profile.resolve() if args.profile and number == args.rounds else None
            gateway, stored = gateway_drain(round_dir, broker_port, args.messages, args.publishers,
                                            args.protocol, profile)
        finally:
            broker.terminate()
            broker.wait(5)
        rounds.append((bare, gateway))
        print(f"round {number}: bare paho subscriber {bare:,.0f} messages/s, gateway {gateway:,.0f} "
              f"measurements/s committed ({stored:,} rows stored for {args.messages:,} queued QoS-1 "
              f"messages, MQTT {args.protocol}): {gateway / bare * 100:.1f} %", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    ratio = statistics.median(gateway / bare * 100 for bare, gateway in rounds)
    bare = statistics.median(bare for bare, _ in rounds)
    gateway = statistics.median(gateway for _, gateway in rounds)
    figures = [
        {"name": "mqtt_in_bare_paho", "value": round(bare), "unit": "messages/s", "target": None,
         "better": "higher"},
        {"name": "mqtt_in_gateway", "value": round(gateway), "unit": "measurements/s",
         "target": round(bare * TARGET_RATIO / 100), "better": "higher"},
        {"name": "mqtt_in_gateway_vs_bare", "value": round(ratio, 1), "unit": "%", "target": TARGET_RATIO,
         "better": "higher"},
    ]
    for figure in figures:
        print(json.dumps(figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
