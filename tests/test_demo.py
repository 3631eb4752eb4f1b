"""`spc-gateway demo`: the simulated line over real OPC UA and Modbus, the page, a clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from gateway.sim.demo import demo_config
from gateway.sources.registry import load_config
from tests.conftest import free_port, wait_port
from tests.daemon_helpers import REPO, read_json


def test_shipped_demo_config_is_the_demo_and_valid(tmp_path: Path) -> None:
    shipped = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    generated = demo_config(listen="127.0.0.1:8000", db="/tmp/spc-gateway-demo.sqlite3",
                            modbus_port=5020, opcua_port=4840)
    assert shipped == generated
    config, _ = load_config(str(REPO / "config" / "demo.yaml"))
    assert [p.code for p in config.products] == ["BOLT-M10", "SHAFT-20"]


def test_demo_runs_all_sources_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "demo.sqlite3"
    log = tmp_path / "demo.log"
    tmp = tmp_path / "tmp"  # the demo's own temporary folder goes here, to see it removed
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--listen", f"127.0.0.1:{port}",
                             "--db", str(db)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
                            env={**os.environ, "TMPDIR": str(tmp)})
    try:
        wait_port(port, timeout=30)
        deadline = time.monotonic() + 30
        readings: dict[str, int] = {}
        while time.monotonic() < deadline:
            health = read_json(f"http://127.0.0.1:{port}/healthz")
            readings = {c["characteristic"]: c["readings"] for c in health["characteristics"].values()}
            if len(readings) == 3 and all(n > 3 for n in readings.values()):
                break
            time.sleep(0.5)
        assert len(readings) == 3 and all(n > 3 for n in readings.values()), (readings, log.read_text())
        assert health["process"]["rss_bytes"] > 10 << 20 and health["process"]["python_allocated_blocks"] > 10_000
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "spc_gateway_process_rss_bytes " in metrics and "spc_gateway_process_python_allocated_blocks " in metrics
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "<html" in page.lower()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in log.read_text()
    assert list(tmp.iterdir()) == [] and db.stat().st_size > 0  # the --db file is kept, the folder is gone


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_demo_without_db_leaves_no_temporary_folder(tmp_path: Path, stop: signal.Signals) -> None:
    """Each `make demo` used to leave a spc-gateway-demo-* folder with its database in /tmp."""
    port = free_port()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "demo.log"
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "demo", "--listen", f"127.0.0.1:{port}"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
                            env={**os.environ, "TMPDIR": str(tmp)})
    try:
        wait_port(port, timeout=30)
        folders = list(tmp.glob("spc-gateway-demo-*"))
        assert len(folders) == 1 and (folders[0] / "demo.sqlite3").exists()
        proc.send_signal(stop)
        assert proc.wait(10) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(tmp.iterdir()) == [], log.read_text()
    assert "Traceback" not in log.read_text()
