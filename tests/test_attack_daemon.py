"""Inputs found by attacking the merged daemon as a stranger: each gets a precise `error` reply, the
connection stays open, and the daemon's log has no traceback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from websockets.asyncio.client import connect

from tests.conftest import free_port
from tests.daemon_helpers import Daemon, minimal_config, write_config

INT64_MAX = 2**63 - 1


async def _ask(ws, message: dict) -> dict:
    await ws.send(json.dumps(message))
    while (reply := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] not in ("result", "error"):
        pass  # live events between the command and its reply
    return reply


def test_recalculate_limits_from_a_subgroup_near_the_int64_end_is_refused_not_a_1011(tmp_path: Path) -> None:
    # from_subgroup is a valid id, but from_subgroup + subgroups passed int64 inside the SQL query:
    # OverflowError, and the socket closed with 1011 (internal error)
    port = free_port()
    daemon = Daemon(write_config(tmp_path, minimal_config(tmp_path, port=port))).start(wait_for_port=port)

    async def body() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/spc/product/1/") as ws:
            for _ in range(2):  # connection, snapshot
                await ws.recv()
            for start, count in [(INT64_MAX, 1000), (INT64_MAX - 10, 25), (10**12, 2)]:
                reply = await _ask(ws, {"type": "recalculate_limits", "product_id": 1, "characteristic": "diameter",
                                        "user": "qe", "reason": "attack", "from_subgroup": start,
                                        "subgroups": count, "request_id": start})
                assert reply["type"] == "error" and reply["code"] == "invalid_field", reply
                assert reply["request_id"] == start
                assert f"subgroup {start}" in reply["texts"]["en"]["message"], reply
            await ws.send(json.dumps({"type": "ping", "request_id": "alive"}))
            while (pong := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "pong":
                pass
            assert pong["request_id"] == "alive"

    try:
        asyncio.run(asyncio.wait_for(body(), 60))
    finally:
        assert daemon.stop() == 0
    log = daemon.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
