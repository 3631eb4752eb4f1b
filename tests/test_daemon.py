"""The daemon as an operator meets it: a subprocess started, signalled, killed and restarted."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websockets

from tests.conftest import free_port, wait_port
from tests.daemon_helpers import REPO, Daemon, minimal_config, serving_daemon, write_config


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return conn.execute(sql).fetchone()[0] or 0


@pytest.fixture
def simulator():
    """The standalone Modbus line simulator: gauge 0 at holding 100 (float32), counter at 110."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.sim.simulator", "--modbus-port", str(port),
                             "--gauges", "1", "--mean", "10.0", "--sigma", "0.05", "--seed", "7",
                             "--part-interval", "0.02"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    yield port
    proc.kill()
    proc.wait(5)


def part_counter_config(tmp_path: Path, modbus_port: int, http_port: int) -> dict:
    config = minimal_config(tmp_path, port=http_port, modbus_port=modbus_port)
    characteristic = config["products"][0]["characteristics"][0]
    characteristic["modbus"]["address"] = 100
    characteristic["sampling"] = {"part_counter": {"table": "holding", "address": 110, "data_type": "uint32"}}
    config["sources"][0]["poll_interval"] = "10ms"
    return config


def test_sigterm_stops_cleanly_within_5s(tmp_path: Path) -> None:
    port = free_port()
    daemon = Daemon(write_config(tmp_path, minimal_config(tmp_path, port=port))).start(wait_for_port=port)
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(6) == 0, daemon.log()
    assert time.monotonic() - started < 5.0
    assert "Traceback" not in daemon.log()


def test_invalid_config_refuses_to_start_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("gateway: {name: X}\nstorage: {path: /tmp/x.db}\nsources: []\nproducts: [}\n")
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1
    assert f"{path}:4:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_token_file_refuses_to_start(tmp_path: Path) -> None:
    config = minimal_config(tmp_path)
    config["server"]["auth"] = [{"name": "hmi", "role": "operator", "token_file": str(tmp_path / "nope")}]
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--config", str(write_config(tmp_path, config))],
                          cwd=REPO, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1, proc.stderr
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_unwritable_storage_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    config = minimal_config(tmp_path)
    config["storage"]["path"] = str(blocker / "spc.sqlite3")
    daemon = Daemon(write_config(tmp_path, config)).start()
    assert daemon.wait(20) == 1
    assert str(blocker) in daemon.log() and "Traceback" not in daemon.log()


def test_second_daemon_on_the_same_database_is_refused(tmp_path: Path) -> None:
    port = free_port()
    first = Daemon(write_config(tmp_path, minimal_config(tmp_path, port=port))).start(wait_for_port=port)
    try:
        config = minimal_config(tmp_path, port=free_port())
        other = tmp_path / "other"
        other.mkdir()
        second = Daemon(write_config(other, config)).start()
        assert second.wait(20) == 1
        assert "already using" in second.log(), second.log()
    finally:
        first.stop()


def test_sighup_reload_keeps_running_on_a_bad_config_and_applies_a_good_one(tmp_path: Path) -> None:
    port = free_port()
    daemon, path, config = serving_daemon(tmp_path, port)
    try:
        path.write_text(path.read_text() + "\nbogus_key: 1\n")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in daemon.log(), 10, "the refusal in the log")
        assert daemon.proc.poll() is None
        config["sources"][0]["poll_interval"] = "200ms"
        shaft = json.loads(json.dumps(config["products"][0]))
        shaft.update(id=2, code="SHAFT-20", name="20mm 샤프트")
        config["products"].append(shaft)
        write_config(tmp_path, config)
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "restarted sources ['plc']" in daemon.log(), 10, "the reload in the log")
        assert daemon.proc.poll() is None
        # the new product is served at once: its endpoint and the read API know it
        products = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/spc/products/", timeout=5).read())
        assert "SHAFT-20" in json.dumps(products, ensure_ascii=False)

        async def product_endpoint() -> str:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws/spc/product/2/") as ws:
                return json.loads(await ws.recv())["type"]

        assert asyncio.run(product_endpoint()) == "connection"
    finally:
        assert daemon.stop() == 0


def test_measurements_flow_and_seq_continues_after_sigkill(tmp_path: Path, simulator: int) -> None:
    """Readings from a real Modbus server reach SQLite; a SIGKILL loses nothing committed and seq goes on."""
    port = free_port()
    db = tmp_path / "spc.sqlite3"
    path = write_config(tmp_path, part_counter_config(tmp_path, simulator, port))
    daemon = Daemon(path).start(wait_for_port=port)
    try:
        wait_for(lambda: db.exists() and count(db, "select count(*) from measurements") >= 50, 20,
                 "50 measurements")
        daemon.kill()
        before_seq = count(db, "select max(seq) from events")
        before_rows = count(db, "select count(*) from measurements")
        with sqlite3.connect(db) as conn:
            assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        daemon = Daemon(path).start(wait_for_port=port)
        wait_for(lambda: count(db, "select count(*) from measurements") >= before_rows + 20, 20,
                 "measurements after the restart")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            seqs = [r[0] for r in conn.execute("select seq from events order by seq")]
            numbers = [r[0] for r in conn.execute("select sample_number from measurements order by id")]
            # every stored measurement has its event, in the same order (the replay log has gaps in seq
            # where an event no screen is sent was numbered: the point of n = 1 in its measurement)
            ids = [r[0] for r in conn.execute("select json_extract(body, '$.measurement.id') from events "
                                              "where type = 'measurement' order by seq")]
            measured = [r[0] for r in conn.execute("select id from measurements order by id")]
        assert ids == measured, "a measurement without its event, or out of order"
        assert seqs == sorted(set(seqs)), "seq repeats"
        assert max(seqs) > before_seq
        # the engine resumed where it stopped: sample numbers go on without restarting at 1
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        body = json.loads(sqlite3.connect(db).execute(
            "select body from events where type='measurement' order by seq desc limit 1").fetchone()[0])
        assert body["type"] == "measurement" and body["measurement"]["product_code"] == "BOLT-M10"
    finally:
        daemon.stop()


def test_limits_recalculate_is_an_explicit_stored_version(tmp_path: Path, simulator: int) -> None:
    """`spc-gateway limits recalculate` makes a new version from stored subgroups; history stays."""
    port = free_port()
    db = tmp_path / "spc.sqlite3"
    daemon = Daemon(write_config(tmp_path, part_counter_config(tmp_path, simulator, port))).start(wait_for_port=port)
    try:
        wait_for(lambda: db.exists() and count(db, "select count(*) from subgroups") >= 40, 20, "40 subgroups")
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            before = dict(conn.execute("select id, is_within_control from measurements"))
        proc = subprocess.run([sys.executable, "-m", "gateway.cli", "limits", "recalculate", "--url",
                               f"ws://127.0.0.1:{port}", "--product", "1", "--characteristic", "diameter",
                               "--user", "quality-kim", "--reason", "new gauge calibrated", "--from-subgroup",
                               "10", "--subgroups", "25"], cwd=REPO, capture_output=True, text=True, timeout=20)
        assert proc.returncode == 0, proc.stderr
        limits = json.loads(proc.stdout)
        assert limits["from_subgroup"] == 10 and limits["to_subgroup"] == 34 and limits["who"] == "quality-kim"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            versions = conn.execute("select source, who, reason, from_subgroup, to_subgroup "
                                    "from control_limits order by id").fetchall()
            after = dict(conn.execute("select id, is_within_control from measurements"))
        assert versions[0][0] == "fixed"
        assert versions[-1] == ("recalculated", "quality-kim", "new gauge calibrated", 10, 34)
        # stored verdicts of earlier measurements were not re-evaluated
        assert {k: after[k] for k in before} == before
        bad = subprocess.run([sys.executable, "-m", "gateway.cli", "limits", "recalculate", "--url",
                              f"ws://127.0.0.1:{port}", "--product", "1", "--characteristic", "nope",
                              "--user", "kim", "--reason", "x"], cwd=REPO, capture_output=True, text=True, timeout=20)
        assert bad.returncode == 1 and "nope" in bad.stderr
    finally:
        daemon.stop()
