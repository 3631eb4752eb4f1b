"""Inputs found by attacking the merged daemon as a stranger: each gets a precise `error` reply, the
connection stays open, and the daemon's log has no traceback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.conftest import free_port
from tests.daemon_helpers import Daemon, minimal_config, write_config

INT64_MAX = 2**63 - 1


async def _ask(ws, message: dict | str) -> dict:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    while (reply := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] not in ("result", "error"):
        pass  # live events between the command and its reply
    return reply


async def _still_there(ws) -> None:
    await ws.send(json.dumps({"type": "ping", "request_id": "alive"}))
    while (pong := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "pong":
        pass
    assert pong["request_id"] == "alive"


@pytest.fixture(scope="module")
def daemon_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp: Path = tmp_path_factory.mktemp("attack")
    port = free_port()
    daemon = Daemon(write_config(tmp, minimal_config(tmp, port=port))).start(wait_for_port=port)
    try:
        yield port
    finally:
        assert daemon.stop() == 0
    log = daemon.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def _run(port: int, body) -> None:
    async def main() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws/spc/product/1/") as ws:
            for _ in range(2):  # connection, snapshot
                await ws.recv()
            await body(ws)
            await _still_there(ws)
    asyncio.run(asyncio.wait_for(main(), 60))


def test_recalculate_limits_from_a_subgroup_near_the_int64_end_is_refused_not_a_1011(daemon_port: int) -> None:
    # from_subgroup is a valid id, but from_subgroup + subgroups passed int64 inside the SQL query:
    # OverflowError, and the socket closed with 1011 (internal error)
    async def body(ws) -> None:
        for start, count in [(INT64_MAX, 1000), (INT64_MAX - 10, 25), (10**12, 2)]:
            reply = await _ask(ws, {"type": "recalculate_limits", "product_id": 1, "characteristic": "diameter",
                                    "user": "qe", "reason": "attack", "from_subgroup": start,
                                    "subgroups": count, "request_id": start})
            assert reply["type"] == "error" and reply["code"] == "invalid_field", reply
            assert reply["request_id"] == start
            assert f"subgroup {start}" in reply["texts"]["en"]["message"], reply
    _run(daemon_port, body)


def test_an_integer_of_thousands_of_digits_is_named_as_such_not_as_deep_nesting(daemon_port: int) -> None:
    # json.loads refuses ints over 4300 digits with a ValueError, which was answered "nested too deeply"
    async def body(ws) -> None:
        for frame in ['{"type": "get_alerts", "limit": 1' + "0" * 5000 + "}",
                      '{"type": "ping", "request_id": ' + "9" * 4301 + "}"]:
            reply = await _ask(ws, frame)
            assert reply["code"] == "invalid_json", reply
            assert "4300 digits" in reply["texts"]["en"]["message"] and "4300" in reply["texts"]["ko"]["message"]
        reply = await _ask(ws, "[" * 30_000 + "]" * 30_000)
        assert "nested too deeply" in reply["texts"]["en"]["message"]
    _run(daemon_port, body)
