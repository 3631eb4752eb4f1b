"""The issue's reproductions against the real daemon: each gets a precise 4xx or an `error` reply, the
daemon keeps serving, and its log has no traceback and no ERROR line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from websockets.asyncio.client import connect

from tests.conftest import free_port
from tests.daemon_helpers import Daemon, minimal_config, write_config
from tests.test_server_harness import http_get
from tests.test_server_input import raw_http


async def _command(url: str, message: dict) -> dict:
    async with connect(url) as ws:
        for _ in range(2):  # connection, snapshot
            await ws.recv()
        await ws.send(json.dumps(message))
        while (reply := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] == "alert":
            pass
        await ws.send(json.dumps({"type": "ping", "request_id": "still-there"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["request_id"] == "still-there"
        return reply


def test_the_issues_inputs_get_4xx_or_an_error_reply_from_the_daemon(tmp_path: Path) -> None:
    port = free_port()
    daemon = Daemon(write_config(tmp_path, minimal_config(tmp_path, port=port))).start(wait_for_port=port)
    url = f"ws://127.0.0.1:{port}/ws/spc/notifications/"

    async def body() -> None:
        for message, code, words in [
            ({"type": "acknowledge_alert", "alert_id": 2**63, "user": "kim"}, "invalid_field", "'alert_id'"),
            ({"type": "get_alerts", "before_id": 2**64}, "invalid_field", "'before_id'"),
            ({"type": "create_alert", "product_id": 1, "alert_type": "STORAGE", "priority": 5, "title": "t",
              "message": "m"}, "invalid_field", "STORAGE"),
            ({"type": "create_alert", "product_id": 1, "alert_type": "MANUAL", "priority": 3,
              "title": "OK \u202e5.21", "message": "m"}, "invalid_field", "U+202E"),
            ({"type": "comment_alert", "alert_id": 1, "user": "kim\x1b[2J", "comment": "c"}, "invalid_field",
             "U+001B"),
        ]:
            reply = await _command(url, message)
            assert reply["type"] == "error" and reply["code"] == code and words in reply["message"], reply
        for target, status in [("/ws/spc/notifications/?since=%C2%B2", 400),
                               ("/ws/spc/notifications/?since=" + "9" * 5000, 400),
                               ("/static/" + "a" * 300, 404)]:
            assert (await http_get(port, target))[0] == status, target[:60]
        got, _ = await raw_http(port, "/ws/spc/notifications/", [("Host", "127.0.0.1"), ("Origin", "http://a"),
                                                                 ("Origin", "http://b")])
        assert got == 400

    try:
        asyncio.run(asyncio.wait_for(body(), 60))
    finally:
        assert daemon.stop() == 0
    log = daemon.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
