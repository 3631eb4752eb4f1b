"""The config against the real daemon: a large file reloaded on SIGHUP, secret files that are not files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import free_port
from tests.daemon_helpers import REPO, Daemon, minimal_config, serving_daemon, write_config


def _wait_log(daemon: Daemon, text: str, timeout: float) -> float:
    """Seconds until `text` is in the daemon's log."""
    started = time.monotonic()
    while text not in daemon.log():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"no {text!r} in the log after {timeout} s:\n{daemon.log()[-3000:]}")
        time.sleep(0.02)
    return time.monotonic() - started


def _healthz(port: int, timeout: float = 30) -> int:
    """The HTTP status of /healthz (503 while the test's Modbus source is down: still an answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sighup_reload_of_a_large_config_keeps_answering(tmp_path: Path) -> None:
    """Parsing and checking a ~1 MB file happens off the event loop: /healthz keeps answering quickly."""
    port = free_port()
    daemon, path, config = serving_daemon(tmp_path, port)
    try:
        config["server"]["allowed_origins"] = [f"http://h{i}.lan" for i in range(48_000)]
        write_config(tmp_path, config)
        assert 900_000 < path.stat().st_size < 1 << 20
        latencies: list[float] = []
        done = threading.Event()

        def probe() -> None:
            while not done.is_set():
                started = time.monotonic()
                _healthz(port)
                latencies.append(time.monotonic() - started)
                time.sleep(0.01)

        prober = threading.Thread(target=probe)
        prober.start()
        time.sleep(0.3)
        daemon.signal(signal.SIGHUP)
        try:
            took = _wait_log(daemon, "reloaded ", 60)
        finally:
            done.set()
            prober.join(35)
        assert daemon.proc.poll() is None
        worst = max(latencies)
        print(f"reload {took:.2f} s, {len(latencies)} /healthz answers, worst {worst * 1000:.0f} ms")
        # a reload on the loop held every answer for the whole reload (worst ~= took: 2.1 s of 2.2 s)
        assert worst < min(0.5, 0.6 * took), f"/healthz waited {worst:.2f} s during a {took:.2f} s reload"
    finally:
        assert daemon.stop() == 0


def test_run_refuses_secret_files_that_are_fifos_or_devices(tmp_path: Path) -> None:
    """A FIFO token file once hung `run` (ignoring SIGTERM); /dev/zero grew it to 2.4 GB."""
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    for token_file in (str(fifo), "/dev/zero"):
        config = minimal_config(tmp_path)
        config["server"]["auth"] = [{"name": "hmi", "role": "operator", "token_file": token_file}]
        proc = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config",
                               str(write_config(tmp_path, config))],
                              cwd=REPO, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1, proc.stderr
        assert f"is not a regular file (a device, FIFO or socket): {token_file}" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_sighup_with_a_fifo_password_file_is_refused_and_serving_goes_on(tmp_path: Path) -> None:
    port = free_port()
    daemon, path, config = serving_daemon(tmp_path, port)
    try:
        fifo = tmp_path / "password"
        os.mkfifo(fifo)
        config["sources"].append({"name": "gauges", "type": "mqtt", "host": "127.0.0.1", "port": free_port(),
                                  "username": "line3", "password_file": str(fifo)})
        write_config(tmp_path, config)
        daemon.signal(signal.SIGHUP)
        _wait_log(daemon, "reload refused", 10)
        assert "password_file: is not a regular file" in daemon.log()
        assert _healthz(port, 5) in (200, 503)
    finally:
        assert daemon.stop() == 0
