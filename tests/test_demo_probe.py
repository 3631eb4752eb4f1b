"""The demo prints its simulators' endpoints and a configuration file, and `probe` reads the running
demo's simulated PLC and CMM with that file (the demo as a subprocess, probe as a subprocess)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port
from tests.daemon_helpers import REPO


def read_banner(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The demo's banner, read from the pipe's file descriptor: a text-mode readline would buffer the
    following lines where select() no longer sees them."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data, deadline = b"", time.monotonic() + timeout
    while b"read them yourself" not in data:
        assert time.monotonic() < deadline, f"no banner within {timeout}s: {data!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"the demo ended: {data!r}"
            data += chunk
    return data.decode()


def test_demo_prints_endpoints_and_a_config_that_probe_reads(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--listen", f"127.0.0.1:{port}",
                             "--db", str(tmp_path / "demo.sqlite3")], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "demo.log", "wb"), text=True)
    try:
        banner = read_banner(proc)
        modbus = re.search(r"Modbus TCP:\s+127\.0\.0\.1:(\d+)", banner)
        opcua = re.search(r"OPC UA:\s+(opc\.tcp://127\.0\.0\.1:\d+/spc-gateway/sim/)", banner)
        config = re.search(r"configuration:\s+(\S+)", banner)
        assert modbus and opcua and config, banner
        assert f"spc-gateway probe --config {config[1]} plc" in banner
        assert f"port: {modbus[1]}" in Path(config[1]).read_text()
        outputs = {}
        for source in ("plc", "cmm"):
            result = subprocess.run([sys.executable, "-m", "gateway.cli", "probe", "--config", config[1], source],
                                    cwd=REPO, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stdout + result.stderr
            outputs[source] = result.stdout
        assert "length: unit 1 holding 120" in outputs["plc"]
        assert opcua[1] in outputs["cmm"] and "<- characteristic outer_diameter" in outputs["cmm"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "Traceback" not in (tmp_path / "demo.log").read_text()
