"""A port that is already taken: one line naming the address and its holder, exit 1, for `run`, `demo`
and the simulators (the real daemon and demo as subprocesses, a real listening socket in the way)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core import listen_error
from tests.conftest import run_make
from tests.daemon_helpers import REPO, Daemon, minimal_config, write_config


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port this test process listens on, as another program would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _one_line_about(text: str, port: int) -> str:
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if "in use" in line]
    assert len(lines) == 1, text
    # the holder is this test process, found through /proc
    assert f"127.0.0.1:{port} is already in use (by pid {os.getpid()} " in lines[0], text
    return lines[0]


def test_run_on_a_taken_port_says_so_in_one_line_and_exits_1(tmp_path: Path, taken_port: int) -> None:
    daemon = Daemon(write_config(tmp_path, minimal_config(tmp_path, port=taken_port))).start()
    try:
        assert daemon.wait(30) == 1, daemon.log()
    finally:
        daemon.kill()
    line = _one_line_about(daemon.log(), taken_port)
    assert "server.listen" in line and "이미 사용 중" in line


@pytest.mark.parametrize("option, what", [("--listen", "--listen"), ("--modbus-port", "Modbus simulator"),
                                          ("--opcua-port", "OPC UA simulator")])
def test_demo_on_a_taken_port_says_so_in_one_line_and_exits_1(tmp_path: Path, taken_port: int, option: str,
                                                              what: str) -> None:
    value = f"127.0.0.1:{taken_port}" if option == "--listen" else str(taken_port)
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "demo", "--db", str(tmp_path / "demo.sqlite3"),
                             option, value], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    line = _one_line_about(result.stderr, taken_port)
    assert f"{what} 127.0.0.1:{taken_port}" in line
    if option == "--listen":
        assert "make demo PORT=" in line
        assert "open http" not in result.stdout  # nothing started, nothing promised


def test_standalone_modbus_simulator_on_a_taken_port(taken_port: int) -> None:
    result = subprocess.run([sys.executable, "-m", "gateway.sim.simulator", "--modbus-port", str(taken_port)],
                            cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "Modbus simulator" in _one_line_about(result.stderr, taken_port)


def test_holder_unknown_to_proc_is_just_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert listen_error.port_holder(8000, proc=tmp_path) is None  # no /proc to ask
    monkeypatch.setattr(listen_error, "port_holder", lambda port: None)
    error = listen_error.listen_error("server.listen", "::1", 8000, OSError(98, "Address already in use"))
    assert str(error) == "server.listen [::1]:8000 is already in use / 이미 사용 중인 주소입니다"
    error = listen_error.listen_error("server.listen", "10.9.9.9", 8000, OSError(99, "Cannot assign"))
    assert "this machine has no such address" in str(error)


def test_make_demo_takes_a_port() -> None:
    def demo_command(*args: str) -> str:
        out = run_make(["-n", "demo", *args], REPO)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    assert demo_command("PORT=8123").endswith("spc-gateway demo --listen 127.0.0.1:8123")
    assert demo_command().endswith("spc-gateway demo --listen 127.0.0.1:8000")
