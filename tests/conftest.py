"""Shared fixtures: free ports, a real mosquitto broker, paths to the contract files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

# the HMI tests' browser, stand-in gateway and screens
pytest_plugins = ["tests.hmi_fixtures"]

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SPC_SHARED", REPO.parent / "shared"))
CONTRACT_CONFIG = SHARED / "contract" / "gateway.yaml"
REFERENCE = SHARED / "reference"
# The project's brief, contract and reference data live beside the repository, not in it: CI has them,
# a copy of the repository alone does not. Tests that read them carry this mark and skip, saying why.
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"needs the project's shared folder (contract, reference data): {SHARED} is absent; "
           "set SPC_SHARED to its path (CI has it)")


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Block until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def run_make(args: list[str], cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`make ARGS` as a user types it, also when the suite itself runs under `make test`: the outer make's
    MAKEFLAGS/MAKELEVEL would make this one a sub-make, which prints "Entering directory" lines."""
    clean = {k: v for k, v in (env if env is not None else os.environ).items()
             if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=timeout)


class Mosquitto:
    """A real mosquitto broker on a free loopback port, restartable on the same port."""

    def __init__(self, workdir: Path, extra_conf: str = ""):
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nmax_queued_messages 0\nmax_inflight_messages 0\n"
            f"{extra_conf}\n"
            # as root, mosquitto drops to user mosquitto and cannot save its persistence file here
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.workdir / "mosquitto.log", "ab"))
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A running broker; `mosquitto.stop()` / `.start()` simulate an outage."""
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed: apt-get install mosquitto mosquitto-clients")
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()
