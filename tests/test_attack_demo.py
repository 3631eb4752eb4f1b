"""A demo killed with SIGKILL cannot clean up: the next demo removes its folder, and only its."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port, wait_port
from tests.daemon_helpers import REPO


def _demo(tmp: Path, port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--listen", f"127.0.0.1:{port}"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(log, "ab"),
                            env={**os.environ, "TMPDIR": str(tmp)})


def test_the_next_demo_removes_the_folder_of_a_demo_killed_with_sigkill(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "demo.log"
    unrelated = tmp / "spc-gateway-demo-unrelated"  # no demo lock: an older version's, or not a demo's
    unrelated.mkdir()
    port = free_port()
    killed = _demo(tmp, port, log)
    try:
        wait_port(port, timeout=30)
        [folder] = [f for f in tmp.glob("spc-gateway-demo-*") if f != unrelated]
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
    finally:
        if killed.poll() is None:
            killed.kill()
    assert folder.exists()  # SIGKILL: nothing could clean up
    old = time.time() - 60
    os.utime(folder, (old, old))
    port2 = free_port()
    running = _demo(tmp, port2, log)
    try:
        wait_port(port2, timeout=30)
        folders = sorted(tmp.glob("spc-gateway-demo-*"))
        assert folder not in folders and unrelated in folders and len(folders) == 2, (folders, log.read_text())
        mine = next(f for f in folders if f != unrelated)
        os.utime(mine, (old, old))
        # a third demo leaves the running one's folder alone: its lock is held
        from gateway.sim.demo import remove_abandoned_workdirs
        assert remove_abandoned_workdirs(str(tmp)) == [] and mine.exists()
        running.send_signal(signal.SIGINT)
        assert running.wait(10) == 0
    finally:
        if running.poll() is None:
            running.kill()
    assert sorted(tmp.iterdir()) == [unrelated]
    assert "Traceback" not in log.read_text() and "removed 1 folder" in log.read_text()
