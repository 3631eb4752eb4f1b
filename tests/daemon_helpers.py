"""Start the real daemon as a subprocess on a config written by the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.conftest import free_port, wait_port

REPO = Path(__file__).resolve().parent.parent


def minimal_config(tmp: Path, *, port: int | None = None, modbus_port: int | None = None,
                   extra: dict | None = None, products: list | None = None,
                   sources: list | None = None) -> dict:
    """A small valid config: one Modbus TCP source (down unless a server listens) and one product."""
    modbus_port = modbus_port or free_port()
    config = {
        "gateway": {"name": "TEST-LINE", "language": "ko", "timezone": "Asia/Seoul"},
        "storage": {"path": str(tmp / "spc.sqlite3"), "retention": "30d"},
        "server": {"listen": f"127.0.0.1:{port or free_port()}"},
        "sources": sources or [{"name": "plc", "type": "modbus", "transport": "tcp", "host": "127.0.0.1",
                                "port": modbus_port, "poll_interval": "100ms", "timeout": "300ms"}],
        "products": products or [{
            "id": 1, "code": "BOLT-M10", "name": "M10 볼트",
            "characteristics": [{
                "name": "diameter", "unit": "mm", "source": "plc",
                "modbus": {"unit": 1, "table": "holding", "address": 0, "data_type": "float32"},
                "sampling": "every_poll",
                "spec": {"lsl": 9.5, "target": 10.0, "usl": 10.5}, "chart": "imr",
                "limits": {"center": 10.0, "sigma": 0.1}, "rules": "nelson",
            }],
        }],
    }
    if extra:
        for key, value in extra.items():
            config.setdefault(key, {}).update(value) if isinstance(value, dict) else config.__setitem__(key, value)
    return config


def write_config(tmp: Path, config: dict) -> Path:
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def read_json(url: str, timeout: float = 5.0) -> dict:
    """A GET's JSON body, also from an error status: /healthz answers 503 while a source is down, with the
    same report."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


class Daemon:
    """`spc-gateway run` in a subprocess, with its stderr kept in a file for assertions."""

    def __init__(self, config_path: Path, *, env: dict[str, str] | None = None, log_level: str = "INFO"):
        self.config_path = config_path
        self.log_path = config_path.parent / f"daemon-{time.monotonic_ns()}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_for_port: int | None = None, timeout: float = 20.0) -> Daemon:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config_path),
             "--log-level", self.log_level],
            cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "wb"))
        if wait_for_port is not None:
            try:
                wait_port(wait_for_port, timeout=timeout)
            except TimeoutError:
                raise AssertionError(f"daemon did not listen; log:\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode if self.proc else None


def serving_daemon(tmp: Path, port: int) -> tuple[Daemon, Path, dict]:
    """The daemon on `minimal_config` with its server on `port`, once it listens: the daemon, its config
    file and the config, for a test that edits it and reloads."""
    config = minimal_config(tmp, port=port)
    path = write_config(tmp, config)
    return Daemon(path).start(wait_for_port=port), path, config
