"""The OPC UA server as an output: the daemon's side of the server's worker process.

A live subscriber, not an outbox consumer: a SCADA reads the state of the line now (the last value,
the limits in force, the open alerts), which the database holds and the server seeds itself with at
start; nothing queued while the gateway was down needs delivering. `publish` (on the loop, right
after each commit) writes each event's stored JSON to the worker's stdin, one line each, and returns;
the worker (gateway.outputs.opcua_server.worker) runs asyncua and sends back its numbers and the
Acknowledge/AddComment calls of operators, which run here through the AlertService, with the OPC UA
user as `user` and `via`, exactly as the screens' acts do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import orjson

from gateway.alerts import ACTING_CLIENT, AlertService
from gateway.config import Config
from gateway.config.model import OpcUaServerSection
from gateway.core.listen_error import ListenError
from gateway.core.model import Event
from gateway.core.texts import Refusal
from gateway.outputs.base import Output

log = logging.getLogger("gateway.outputs.opcua_server")

START_TIMEOUT = 60.0  # seconds the worker may take to build the address space and listen
PIPE_LIMIT = 64 << 20  # bytes waiting for the worker; beyond, events are dropped (counted) until it catches up
SOURCES_INTERVAL = 1.0  # seconds between updates of Gateway/SourcesConnected


class OpcUaServer(Output):
    """`opcua_server:` (contract plant-integration §2), served by a worker process of its own."""

    name: ClassVar[str] = "opcua_server"
    stop_timeout: ClassVar[float] = 1.5

    def __init__(self, config: Config, settings: OpcUaServerSection, store: Any, alerts: AlertService,
                 sources_connected: Callable[[], int]):
        self.config = config
        self.settings = settings
        self.store = store
        self.alerts = alerts
        self.sources_connected = sources_connected
        self.process: asyncio.subprocess.Process | None = None
        self.worker_stats: dict[str, Any] = {}
        self.dropped = 0
        self.acts_failed = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.outputs.opcua_server.worker", os.path.abspath(self.config.path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 24)
        assert self.process.stdout is not None
        try:
            first = orjson.loads(await asyncio.wait_for(self.process.stdout.readline(), START_TIMEOUT) or b"{}")
        except TimeoutError:
            first = {"ctl": "failed", "message": f"the OPC UA server did not start within {START_TIMEOUT:.0f} s"}
        if first.get("ctl") != "started":
            await self._end()
            message = first.get("message") or "the OPC UA server's process ended at start (see the log above)"
            if first.get("listen"):
                raise ListenError(message)
            raise RuntimeError(f"opcua_server: {message}")
        self.worker_stats = first.get("stats") or {}
        self._tasks = [asyncio.create_task(self._read(), name="opcua-server-replies"),
                       asyncio.create_task(self._sources(), name="opcua-server-sources")]
        log.info("OPC UA server on %s (%s)", first.get("endpoint"), ", ".join(self.settings.security))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._end()

    async def _end(self) -> None:
        """Close the worker's stdin (it stops its server and exits); kill it if it does not."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), self.stop_timeout - 0.3)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def publish(self, events: list[Event]) -> None:
        process = self.process
        if process is None or process.stdin is None or process.stdin.is_closing():
            return
        transport = process.stdin.transport
        if transport.get_write_buffer_size() > PIPE_LIMIT:
            self.dropped += len(events)
            return
        process.stdin.write(b"".join((e.data or orjson.dumps(e.body)) + b"\n" for e in events))

    def _send(self, message: dict[str, Any]) -> None:
        process = self.process
        if process is not None and process.stdin is not None and not process.stdin.is_closing():
            process.stdin.write(orjson.dumps(message) + b"\n")

    async def _sources(self) -> None:
        while True:
            self._send({"ctl": "sources", "connected": self.sources_connected()})
            await asyncio.sleep(SOURCES_INTERVAL)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = orjson.loads(line)
            if message.get("ctl") == "stats":
                self.worker_stats = message["stats"]
            elif message.get("ctl") == "act":
                asyncio.create_task(self._act(message))  # one slow commit must not hold the stats back
        log.error("the OPC UA server's process ended (exit status %s)", await self.process.wait())

    async def _act(self, message: dict[str, Any]) -> None:
        """An operator's Acknowledge or AddComment, checked by the worker (role, EventId, text): the act."""
        code: str | None = None
        token = ACTING_CLIENT.set(message["user"])  # stored as `via` of the transition
        try:
            if message["act"] == "acknowledge":
                await self.alerts.acknowledge(message["alert"], message["user"], message.get("comment"))
            else:
                await self.alerts.comment(message["alert"], message["user"], message.get("comment") or "")
        except Refusal as exc:
            code = exc.code
        except Exception:
            self.acts_failed += 1
            log.exception("OPC UA %s of alert %s failed", message["act"], message["alert"])
            code = "storage_unavailable"
        finally:
            ACTING_CLIENT.reset(token)
        self._send({"ctl": "reply", "id": message["id"], "code": code})

    def stats(self) -> dict[str, Any]:
        running = self.process is not None and self.process.returncode is None
        return {**self.worker_stats, "running": running, "dropped": self.dropped + self.worker_stats.get("dropped", 0),
                "acts_failed": self.acts_failed}
