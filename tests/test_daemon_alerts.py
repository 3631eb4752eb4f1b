"""Alerts the daemon raises about itself, and secrets it must never log."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import websockets

from tests.conftest import free_port, wait_port
from tests.daemon_helpers import REPO, Daemon, minimal_config, write_config
from tests.test_daemon import count, part_counter_config, wait_for


def start_simulator(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "gateway.sim.simulator", "--modbus-port", str(port),
                             "--gauges", "1", "--seed", "5", "--part-interval", "0.05"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def alerts(db: Path, alert_type: str) -> list[dict]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [json.loads(r[0]) for r in conn.execute(
            "select body from alerts where alert_type = ? order by id", (alert_type,))]


def test_source_stale_is_raised_once_and_resolved_when_data_returns(tmp_path: Path) -> None:
    modbus_port, http_port = free_port(), free_port()
    config = part_counter_config(tmp_path, modbus_port, http_port)
    config["products"][0]["characteristics"][0]["stale_after"] = "2s"
    db = tmp_path / "spc.sqlite3"
    simulator = start_simulator(modbus_port)
    daemon = Daemon(write_config(tmp_path, config)).start(wait_for_port=http_port)
    try:
        wait_for(lambda: db.exists() and count(db, "select count(*) from measurements") > 5, 15, "readings")
        simulator.kill()
        simulator.wait(5)
        stale = wait_for(lambda: alerts(db, "SOURCE_STALE"), 10, "a SOURCE_STALE alert")
        assert len(stale) == 1 and stale[0]["status"] == "OPEN" and stale[0]["priority"] == 3
        simulator = start_simulator(modbus_port)
        wait_for(lambda: alerts(db, "SOURCE_STALE")[0]["status"] == "RESOLVED", 20, "the alert resolved")
        assert len(alerts(db, "SOURCE_STALE")) == 1  # raised once, not once per check
    finally:
        simulator.kill()
        daemon.stop()


def test_tokens_and_passwords_never_reach_the_log(tmp_path: Path) -> None:
    secret = "s3cr3t-token-value-4f9d"
    token_file = tmp_path / "hmi.token"
    token_file.write_text(secret + "\n")
    http_port = free_port()
    config = minimal_config(tmp_path, port=http_port)
    config["server"]["auth"] = [{"name": "hmi", "role": "operator", "token_file": str(token_file)}]
    daemon = Daemon(write_config(tmp_path, config), log_level="DEBUG").start(wait_for_port=http_port)

    async def use_the_token() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/notifications/?token={secret}") as ws:
            assert json.loads(await ws.recv())["type"] == "connection"
            await ws.send(json.dumps({"type": "create_alert", "product_id": 1, "alert_type": "OUT_OF_SPEC",
                                      "priority": 4, "title": "Test Alert", "message": "WebSocket test alert",
                                      "request_id": 1}))
            created = await reply(ws, 1)
            await ws.send(json.dumps({"type": "acknowledge_alert", "alert_id": created["alert"]["id"],
                                      "user": "박영희", "comment": "gauge re-zeroed", "request_id": 2}))
            acknowledged = await reply(ws, 2)
            assert acknowledged["alert"]["status"] == "ACKNOWLEDGED"
        try:
            async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/notifications/?token=wrong-{secret}"):
                raise AssertionError("a wrong token was accepted")
        except websockets.InvalidStatus as exc:
            assert exc.response.status_code == 401

    try:
        asyncio.run(use_the_token())
    finally:
        daemon.stop()
    assert secret not in daemon.log()
    # the history says who typed their name and which screen (token) the act came through
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        who, details = conn.execute(
            "select who, details from alert_history where action = 'acknowledge'").fetchone()
    assert who == "박영희" and json.loads(details)["via"] == "hmi"


async def reply(ws, request_id: int) -> dict:
    while True:
        message = json.loads(await ws.recv())
        if message.get("request_id") == request_id:
            assert message["type"] == "result", message
            return message


def test_wss_with_the_configured_certificate(tmp_path: Path) -> None:
    """server.tls: the page and the endpoints over HTTPS/WSS with a certificate from the config."""
    import ssl

    from tests.test_northbound_tls import issue, make_ca

    make_ca(tmp_path, "line-ca")
    issue(tmp_path, "hmi", "line-ca", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
    http_port = free_port()
    config = minimal_config(tmp_path, port=http_port)
    config["server"]["tls"] = {"certificate": str(tmp_path / "hmi.pem"), "private_key": str(tmp_path / "hmi.key")}
    daemon = Daemon(write_config(tmp_path, config)).start(wait_for_port=http_port)
    context = ssl.create_default_context(cafile=str(tmp_path / "line-ca.pem"))

    async def connect() -> None:
        async with websockets.connect(f"wss://localhost:{http_port}/ws/spc/notifications/", ssl=context) as ws:
            assert json.loads(await ws.recv())["type"] == "connection"
        try:
            async with websockets.connect(f"ws://127.0.0.1:{http_port}/ws/spc/notifications/", open_timeout=3):
                raise AssertionError("plain ws was accepted on a TLS listener")
        except (websockets.exceptions.InvalidMessage, OSError, TimeoutError, EOFError):
            pass

    try:
        asyncio.run(connect())
    finally:
        assert daemon.stop() == 0
