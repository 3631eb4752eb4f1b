"""A real line-side server for tests: Store on a tmp file, AlertService, Hub, LineServer on a free port.

Tests drive it with the real `websockets` client and raw sockets; events enter through real store
batches, exactly as the pipeline makes them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from gateway.alerts import AlertService
from gateway.config import (
    AuthEntry,
    Characteristic,
    Config,
    GatewaySection,
    Listen,
    Product,
    ServerSection,
    Spec,
    StorageSection,
)
from gateway.core.model import iso_time
from gateway.outputs.websocket.hub import Hub
from gateway.outputs.websocket.ws import LineServer
from gateway.store import Store
from tests.conftest import free_port

PRODUCTS = (
    Product(1, "BOLT-M10", "M10 볼트", (Characteristic("diameter", "plc", unit="mm", spec=Spec(9.5, 10.0, 10.5)),)),
    Product(2, "SHAFT-20", "20mm 샤프트", (Characteristic("runout", "plc", unit="mm", spec=Spec(usl=0.05)),)),
)


def make_config(tmp_path: Path, *, tokens: dict[str, str] | None = None, origins: tuple[str, ...] = (),
                client_queue: int = 2000, rate: float = 20.0, language: str = "ko",
                max_connections: int = 500) -> Config:
    """A config for one test rig; `tokens` maps role -> token (written to token files)."""
    auth = []
    for role, token in (tokens or {}).items():
        file = tmp_path / f"token-{role}"
        file.write_text(token + "\n")
        auth.append(AuthEntry(f"{role}-client", role, str(file)))  # type: ignore[arg-type]
    server = ServerSection(listen=Listen("127.0.0.1", free_port()), allowed_origins=origins, auth=tuple(auth),
                           client_queue=client_queue, commands_per_second=rate, max_connections=max_connections)
    return Config(gateway=GatewaySection("LINE-T", language, "Asia/Seoul"),
                  storage=StorageSection(str(tmp_path / "spc.sqlite3")), sources=(), products=PRODUCTS,
                  server=server)


class Rig:
    """Everything of the line-side service, started on the running loop."""

    def __init__(self, config: Config):
        self.config = config
        self.recalculated: list[tuple[Any, ...]] = []

    async def __aenter__(self) -> Rig:
        self.store = Store(self.config.storage.path, flush_interval=0.002)
        await self.store.open()
        self.store.sync_catalog(self.config.products)
        self.hub = Hub(self.config)
        self.alerts = AlertService(self.store, self.config)
        await self.alerts.start(publish=self.hub.publish)
        self.server = LineServer(self.config, self.store, self.alerts, self.hub, health=self._health,
                                 metrics=self._health, recalculate=self._recalculate)
        await self.server.start()
        self.url = f"ws://127.0.0.1:{self.server.port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.alerts.stop()
        await self.server.stop()
        await self.store.close()

    def _health(self) -> dict[str, Any]:
        # as the app's report does: every output's stats under its name
        return {"ok": True, "gateway": "LINE-T", "store": self.store.stats(), "sources": {}, "characteristics": {},
                self.server.name: self.server.stats()}

    async def _recalculate(self, product_id: int, characteristic: str, *, user: str, reason: str,
                           from_subgroup: int | None, subgroups: int) -> dict[str, Any]:
        if characteristic == "missing-data":
            raise ValueError("only 0 stored subgroups from subgroup 1: need at least 2")
        self.recalculated.append((product_id, characteristic, user, reason, from_subgroup, subgroups))
        return {"product_id": product_id, "characteristic": characteristic, "version": 7, "center": 10.0}

    # ------------------------------------------------------------------ making events

    async def measurements(self, values: list[float], *, product_id: int = 1, notable: bool = False,
                           pad: int = 0) -> list[int]:
        """Store measurement events (one batch) and wait for their commit; returns their seqs."""
        product = next(p for p in self.config.products if p.id == product_id)
        now = time.time()
        with self.store.batch(on_commit=self.hub.publish) as batch:
            events = []
            for i, value in enumerate(values):
                mid = batch.measurement(product_id=product_id, characteristic=product.characteristics[0].name,
                                        value=value, measured_at=now, received_at=now, sample_number=i + 1,
                                        subgroup_number=i + 1, is_within_spec=not notable,
                                        is_within_control=True)
                events.append(batch.event("measurement", product_id, {
                    "type": "measurement",
                    "measurement": {"id": mid, "product_id": product_id, "product_code": product.code,
                                    "characteristic": product.characteristics[0].name,
                                    "measurement_value": value, "sample_number": i + 1,
                                    "subgroup_number": i + 1, "is_within_spec": not notable,
                                    "is_within_control": True, "measured_at": iso_time(now, _tz())},
                    "timestamp": iso_time(now, _tz()), **({"pad": "x" * pad} if pad else {})}, notable=notable))
        await batch.committed
        return [e.seq for e in events]

    async def raise_out_of_spec(self, value: float = 10.65, product_id: int = 1) -> dict[str, Any]:
        """An OUT_OF_SPEC alert as the engine's results raise it."""
        product = next(p for p in self.config.products if p.id == product_id)
        with self.store.batch(on_commit=self.hub.publish) as batch:
            alert = self.alerts.raise_alert(batch, product=product, characteristic=product.characteristics[0],
                                            alert_type="OUT_OF_SPEC", priority=4, title="규격 이탈",
                                            message="측정값이 상한 규격을 초과했습니다", value=value, limit=10.5)
        await batch.committed
        return alert


def _tz():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Seoul")


def run(coro_fn: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Run an async test body with a deadline."""
    async def bounded() -> Any:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(bounded())


async def open_client(url: str, path: str = "/ws/spc/notifications/", **kwargs: Any) -> ClientConnection:
    """A real websockets client; the `connection` message and the snapshot are read and kept on it."""
    ws = await connect(url + path, max_size=None, **kwargs)
    ws.hello = json.loads(await ws.recv())  # type: ignore[attr-defined]
    ws.snapshot = json.loads(await ws.recv())  # type: ignore[attr-defined]
    return ws


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next message as a dict."""
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws: ClientConnection, type_: str, timeout: float = 5.0) -> dict[str, Any]:
    """Skip messages until one of `type_` arrives."""
    deadline = time.monotonic() + timeout
    while True:
        message = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] == type_:
            return message


async def request(ws: ClientConnection, message: dict[str, Any], reply_type: str | None = None) -> dict[str, Any]:
    """Send a command and return its reply (events in between are skipped)."""
    await ws.send(json.dumps(message))
    deadline = time.monotonic() + 5.0
    while True:
        reply = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if reply_type is None and reply["type"] in ("alert", "measurement", "subgroup", "violation", "capability"):
            continue
        if reply_type is None or reply["type"] == reply_type:
            return reply


async def http_get(port: int, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                   body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 request (paths are sent byte for byte, unnormalized)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    if not raw:
        return 0, {}, b""
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), parsed, payload
