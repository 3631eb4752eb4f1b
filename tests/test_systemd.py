"""The systemd side: the notify protocol against a real datagram socket, and the unit's hardening."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gateway.core.sdnotify import Notifier
from tests.conftest import free_port
from tests.daemon_helpers import Daemon, minimal_config, write_config

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "spc-gateway.service"


class FakeSystemd:
    """A datagram socket where systemd would listen, collecting what the daemon says."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def collect_until(self, needle: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in m for m in self.messages):
                return self.messages
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass
        raise AssertionError(f"no {needle!r} from the daemon within {timeout}s; got {self.messages}")

    def collect_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass


def test_notifier_sends_each_state(tmp_path: Path) -> None:
    systemd = FakeSystemd(tmp_path / "notify.sock")
    notifier = Notifier(str(systemd.path))
    notifier.ready("ok")
    notifier.reloading()
    notifier.notify("WATCHDOG=1")
    notifier.stopping()
    for needle in ("READY=1", "RELOADING=1", "WATCHDOG=1", "STOPPING=1"):
        systemd.collect_until(needle, 2)
    assert any("MONOTONIC_USEC=" in m for m in systemd.messages)


def test_notifier_without_systemd_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready()  # nothing to send to, nothing raised


def test_daemon_speaks_sd_notify(tmp_path: Path) -> None:
    """READY after start, WATCHDOG from the loop, RELOADING on SIGHUP, STOPPING on SIGTERM."""
    systemd = FakeSystemd(tmp_path / "notify.sock")
    port = free_port()
    path = write_config(tmp_path, minimal_config(tmp_path, port=port))
    daemon = Daemon(path, env={"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "1000000"})
    daemon.start()
    try:
        systemd.collect_until("READY=1", 20)
        # READY means serving: the port answers at once, without waiting for it
        try:
            status = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status
        except urllib.error.HTTPError as exc:  # 503 until the source connects: it answers all the same
            status = exc.code
        assert status in (200, 503)
        # WATCHDOG_USEC of 1 s: a ping every 0.5 s, from the event loop
        systemd.collect_for(1.6)
        assert sum("WATCHDOG=1" in m for m in systemd.messages) >= 3, systemd.messages
        systemd.messages.clear()
        daemon.signal(signal.SIGHUP)
        systemd.collect_until("RELOADING=1", 5)
        assert "MONOTONIC_USEC=" in next(m for m in systemd.messages if "RELOADING=1" in m)
        systemd.collect_until("READY=1", 5)  # the reload is over: systemd lets the next one in
        daemon.signal(signal.SIGTERM)
        systemd.collect_until("STOPPING=1", 5)
        assert daemon.wait(5) == 0
    finally:
        daemon.kill()
        print(daemon.log())


def _jemalloc_installed() -> bool:
    return "libjemalloc.so.2" in subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout


@pytest.mark.skipif(not _jemalloc_installed(), reason="libjemalloc2 is not installed")
def test_daemon_on_jemalloc_reports_the_allocators_figure(tmp_path: Path) -> None:
    """Python's objects on jemalloc (a memory experiment of issue #8): the daemon starts, serves,
    reports jemalloc's allocated bytes on /metrics, and stops cleanly."""
    env = {"PYTHONMALLOC": "malloc", "LD_PRELOAD": "libjemalloc.so.2"}
    port = free_port()
    daemon = Daemon(write_config(tmp_path, minimal_config(tmp_path, port=port)), env=env).start(wait_for_port=port)
    try:
        assert daemon.proc is not None
        maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
        assert "libjemalloc" in maps
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            metrics = reply.read().decode()
        allocated = next(line for line in metrics.splitlines()
                         if line.startswith("spc_gateway_process_allocated_bytes "))
        assert 1 << 20 < float(allocated.split()[1]) < 1 << 30
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        assert "cannot be preloaded" not in daemon.log() and "Traceback" not in daemon.log()
    finally:
        daemon.kill()


def test_daemon_warns_when_the_units_allocator_is_missing(tmp_path: Path) -> None:
    """PYTHONMALLOC=malloc without jemalloc loaded (the package missing): the daemon runs and says why
    its memory may creep, with the fix."""
    port = free_port()
    daemon = Daemon(write_config(tmp_path, minimal_config(tmp_path, port=port)),
                    env={"PYTHONMALLOC": "malloc", "LD_PRELOAD": ""}).start(wait_for_port=port)
    try:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        assert "jemalloc is not loaded" in daemon.log() and "apt-get install libjemalloc2" in daemon.log()
    finally:
        daemon.kill()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    # verify needs the ExecStart binary to exist: point a copy of the unit at this venv's script
    exe = Path(shutil.which("spc-gateway") or REPO / ".venv" / "bin" / "spc-gateway").resolve()
    unit = tmp_path / "spc-gateway.service"
    unit.write_text(UNIT.read_text().replace("/opt/spc-gateway/venv/bin/spc-gateway", str(exe)))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in (verify.stdout + verify.stderr).splitlines()
                if "spc-gateway.service" in line]
    assert verify.returncode == 0 and not problems, verify.stdout + verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                              capture_output=True, text=True)
    line = next(line for line in security.stdout.splitlines() if "Overall exposure level" in line)
    score = float(line.split(":")[1].split()[0])
    assert score <= 2.0, line
    text = UNIT.read_text()
    for required in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                     "StateDirectory=spc-gateway", "ConfigurationDirectory=spc-gateway",
                     "SupplementaryGroups=dialout"):
        assert required in text, required
