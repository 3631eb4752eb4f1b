"""The OPC UA server's process: `python -m gateway.outputs.opcua_server.worker CONFIG`, off the daemon's GIL.

asyncua does its work in Python on the loop that runs it: a copy and a queue entry per change per
monitored item, the encoding of every publish response, and with Basic256Sha256 the signing and
encryption of each message. In the daemon that competed with the screens' fan-out; here it has a
process of its own. The daemon writes one line per committed event (the event's JSON, as stored) and
control lines to stdin; this side writes control lines to stdout: `started` or `failed`, `stats` twice
a second, and `act` for each Acknowledge or AddComment, which the daemon runs through its AlertService
and answers with `reply`. The values are seeded from the database file, read-only (WAL: never in the
writer's way). The worker ends when stdin closes: it never outlives the daemon.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.core.listen_error import ListenError
from gateway.core.texts import Refusal
from gateway.store import reads

STATS_INTERVAL = 0.5
# The line-side screens come first: on the two cores of a line PC the scheduler gives this process's
# encoding for SCADA clients (which subscribe at 100 ms or slower) what the daemon leaves, so the
# screens' p99 does not pay for it. Idle cores still serve it at once.
WORKER_NICE = 5
CHUNK = 1 << 20  # bytes of stdin taken at a time
log = logging.getLogger("gateway.outputs.opcua_server")


class FileStore:
    """The reads the server needs, on a read-only connection to the database file."""

    def __init__(self, path: str):
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)

    async def latest_capability(self, product_id: int) -> list[dict[str, Any]]:
        return reads.latest_capability(self.conn, product_id)

    async def measurements(self, product_id: int, characteristic: str, limit: int = 1) -> list[dict[str, Any]]:
        return reads.measurements(self.conn, product_id, characteristic, limit)

    async def subgroups(self, product_id: int, characteristic: str, limit: int = 1) -> list[dict[str, Any]]:
        return reads.subgroups(self.conn, product_id, characteristic, limit)

    async def latest_limits(self, product_id: int, characteristic: str) -> dict[str, Any] | None:
        return reads.latest_limits(self.conn, product_id, characteristic)


class Alerts:
    """The daemon's AlertService as the alarm bridge sees it: acts go over the pipe and wait for the reply."""

    def __init__(self, store: FileStore, send: Any):
        self.send = send
        self._unresolved = list(reversed(reads.unresolved_alerts(store.conn)))  # newest first, as the service's
        self._ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[str | None]] = {}

    def unresolved(self) -> list[dict[str, Any]]:
        return self._unresolved

    async def _act(self, act: str, alert_id: int, user: str, comment: str | None) -> dict[str, Any]:
        request = next(self._ids)
        self.waiting[request] = asyncio.get_running_loop().create_future()
        self.send({"ctl": "act", "id": request, "act": act, "alert": alert_id, "user": user, "comment": comment})
        try:
            code = await asyncio.wait_for(self.waiting[request], 30)
        finally:
            self.waiting.pop(request, None)
        if code is not None:
            raise Refusal(code, {"en": code})
        return {}

    async def acknowledge(self, alert_id: int, user: str, comment: str | None = None) -> dict[str, Any]:
        return await self._act("acknowledge", alert_id, user, comment)

    async def comment(self, alert_id: int, user: str, comment: str) -> dict[str, Any]:
        return await self._act("comment", alert_id, user, comment)


async def read_lines(reader: asyncio.StreamReader) -> AsyncIterator[list[dict[str, Any]]]:
    """The messages on stdin, as many as have arrived at a time: a commit's events come in one write,
    and are applied as one batch (one wake-up of the server's writer task, not a readline() coroutine
    and a wake-up per event: at 1,000 readings/s two events a reading)."""
    rest = b""
    while chunk := await reader.read(CHUNK):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()  # a line not complete yet
        yield [orjson.loads(line) for line in lines if line]
    if rest.strip():
        yield [orjson.loads(rest)]


async def serve(config_path: str) -> int:
    from gateway.outputs.opcua_server.server import ServerCore
    from gateway.sources.registry import load_config

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer

    def send(message: dict[str, Any]) -> None:
        out.write(orjson.dumps(message) + b"\n")
        out.flush()

    config, _warnings = load_config(config_path)
    assert config.opcua_server is not None
    store = FileStore(config.storage.path)
    alerts = Alerts(store, send)
    core = ServerCore(config, config.opcua_server, store, alerts)
    try:
        await core.start()
    except Exception as exc:
        send({"ctl": "failed", "listen": isinstance(exc, ListenError), "message": str(exc)})
        return 1
    send({"ctl": "started", "endpoint": core.endpoint, "stats": core.stats()})

    async def report() -> None:
        while True:
            send({"ctl": "stats", "stats": core.stats()})
            await asyncio.sleep(STATS_INTERVAL)

    reporter = asyncio.create_task(report())
    try:
        async for messages in read_lines(reader):
            events: list[dict[str, Any]] = []
            for message in messages:
                ctl = message.get("ctl")
                if ctl is None:
                    events.append(message)
                    continue
                if events:  # in order: the events before a control line are applied first
                    core.publish(events)
                    events = []
                if ctl == "reply":
                    waiting = alerts.waiting.get(message["id"])
                    if waiting is not None and not waiting.done():
                        waiting.set_result(message.get("code"))
                elif ctl == "sources":
                    await core.set_sources_connected(int(message["connected"]))
            if events:
                core.publish(events)
    finally:
        reporter.cancel()
        await core.stop()
    return 0


def main() -> int:
    os.nice(WORKER_NICE)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s opcua-server: %(message)s")
    logging.getLogger("gateway").setLevel(logging.INFO)
    return asyncio.run(serve(sys.argv[1]))


if __name__ == "__main__":
    sys.exit(main())
