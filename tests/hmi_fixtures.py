"""A stand-in gateway for the HMI page tests: serves gateway/outputs/websocket/static over HTTP and speaks the
WebSocket protocol of shared/contract/websocket-protocol.md (connection, snapshot, alert, subgroup,
measurements, result, error, pong, replay), so the page's behaviour can be tested in a real browser
before, and independently of, the full daemon.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import mimetypes
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

REPO = Path(__file__).resolve().parent.parent
STATIC = REPO / "gateway" / "outputs" / "websocket" / "static"
ARTIFACTS = REPO / "test-artifacts" / "hmi"
CHROMIUM = "/usr/bin/chromium"  # Debian's browser: no Playwright browser download
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# What Chromium itself logs when a WebSocket cannot connect: expected while the gateway is down.
EXPECTED_WHILE_DOWN = ("WebSocket connection to", "ERR_INTERNET_DISCONNECTED")
SEOUL = dt.timezone(dt.timedelta(hours=9))
GREETING = {"ko": "SPC 실시간 알림에 연결되었습니다", "en": "Connected to SPC real-time notifications"}
MAX_SHELVE_S = 8 * 3600
MAX_EVENTS_KEPT = 10_000  # events the fixture keeps for `since` replays
OUTBOX_BOUND = 5_000  # frames queued per page before it is cut off

CATALOG = [
    {"id": 1, "code": "BOLT-M10", "name": "M10 볼트", "characteristics": [
        {"name": "diameter", "unit": "mm", "chart": "xbar_r", "subgroup_size": 5,
         "spec": {"lsl": 9.5, "target": 10.0, "usl": 10.5}, "capability": {"min_cpk": 1.33}},
        {"name": "length", "unit": "mm", "chart": "imr", "subgroup_size": 1,
         "spec": {"lsl": 39.8, "usl": 40.2}, "capability": {"min_cpk": 1.33}}]},
    {"id": 2, "code": "SHAFT-20", "name": "20mm 샤프트", "characteristics": [
        {"name": "outer_diameter", "unit": "mm", "chart": "xbar_s", "subgroup_size": 12,
         "spec": {"lsl": 19.98, "target": 20.0, "usl": 20.02}, "capability": {"min_cpk": 1.33}}]},
]
DIAMETER_SIGMA = 0.08


def launch_chromium(playwright: Any) -> Any:
    """Debian's headless Chromium under Playwright (fails clearly when it is not installed)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError("chromium is not installed: apt-get install chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class Screen:
    """One kiosk: a browser context (its own localStorage) and page, with its console errors."""

    def __init__(self, browser: Any, base_url: str, query: str = "", size: tuple[int, int] = (1280, 800)):
        self.context = browser.new_context(viewport={"width": size[0], "height": size[1]})
        self.errors: list[str] = []
        self.base_url = base_url
        self.query = query
        self.page = self.open()

    def open(self) -> Any:
        """A new tab on the HMI page, waited for until it is live."""
        page = self.context.new_page()
        page.set_default_timeout(8000)
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(
            f"{msg.text} ({msg.location.get('url', '')})"))
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.goto(f"{self.base_url}/{self.query}")
        page.wait_for_selector("#conn[data-state=live]", timeout=8000)
        return page

    def unexpected_errors(self, allowed: tuple[str, ...] = ()) -> list[str]:
        """Console errors, less those the test expects."""
        return [e for e in self.errors if not any(a in e for a in allowed)]

    def shot(self, name: str) -> None:
        """Save a screenshot under test-artifacts/hmi/."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_timeout(250)  # let the last frame paint
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


def now_iso(ts: float | None = None) -> str:
    """ISO 8601 with the Seoul offset, as the gateway writes its timestamps."""
    return dt.datetime.fromtimestamp(time.time() if ts is None else ts, SEOUL).isoformat(timespec="milliseconds")


def diameter_history(subgroups: int = 200, seed: int = 7) -> list[dict[str, Any]]:
    """Measurements of BOLT-M10 diameter (n = 5), in control, with a shift in the last 15 subgroups."""
    rng = random.Random(seed)
    rows = []
    start = time.time() - subgroups * 5
    for sg in range(1, subgroups + 1):
        shift = 0.14 if sg > subgroups - 15 else 0.0
        for k in range(5):
            value = round(rng.gauss(10.0 + shift, DIAMETER_SIGMA), 4)
            rows.append({
                "id": (sg - 1) * 5 + k + 1, "product_id": 1, "product_code": "BOLT-M10",
                "characteristic": "diameter", "measurement_value": value, "sample_number": (sg - 1) * 5 + k + 1,
                "subgroup_number": sg, "is_within_spec": 9.5 <= value <= 10.5, "is_within_control": True,
                "measured_at": now_iso(start + sg * 5 + k),
            })
    return rows


def diameter_limits() -> dict[str, Any]:
    """X-bar chart limits of the diameter (center 10, sigma 0.08, n = 5)."""
    half = 3 * DIAMETER_SIGMA / 5 ** 0.5
    return {"center": 10.0, "ucl": round(10.0 + half, 5), "lcl": round(10.0 - half, 5), "sigma": DIAMETER_SIGMA,
            "spec": {"lsl": 9.5, "target": 10.0, "usl": 10.5}}


class HmiFixtureServer:
    """The fixture gateway on 127.0.0.1, in its own thread and event loop; restartable on the same port."""

    def __init__(self, *, language: str = "ko", role: str = "operator", token: str | None = None,
                 gateway: str = "LINE-3"):
        self.language = language
        self.role = role
        self.token = token
        self.gateway = gateway
        self.port = 0
        self.seq = 0
        self.next_alert_id = 1
        self.alerts: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.oldest_kept = 1  # events before this seq are "no longer kept" (tests set it)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.connects: list[str] = []
        self.answer_pings = True
        # command type -> (code, message); a message given as {language: text} is sent with `texts` too
        self.errors_for: dict[str, tuple[str, str | dict[str, str]]] = {}
        self.limits_version = 1
        self.history = diameter_history()
        self.clients: set[tuple[ServerConnection, str]] = set()
        self.outboxes: dict[ServerConnection, asyncio.Queue[str | None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start listening (on the previous port after a stop)."""
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def listen() -> Server:
            return await serve(self._handler, "127.0.0.1", self.port, process_request=self._http,
                               compression=None, ping_interval=None)

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(listen())
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="hmi-fixture", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fixture server did not start")

    def stop(self) -> None:
        """Vanish like a killed process: sockets aborted without a close frame."""
        if not self._loop:
            return

        async def halt() -> None:
            assert self._server is not None
            self._server.close(close_connections=False)
            for connection, _path in list(self.clients):
                connection.transport.abort()
            self.clients.clear()
            self.outboxes.clear()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(halt(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the server's loop (state is only touched there) and return its result."""
        if not self._loop:
            return fn()

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Poll until predicate() is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"condition not met within {timeout}s")

    def commands(self, type_: str) -> list[dict[str, Any]]:
        """Client messages of one type received so far."""
        with self._lock:
            return [m for _path, m in self.received if m.get("type") == type_]

    # ---------------------------------------------------------------- events

    def raise_alert(self, **fields: Any) -> dict[str, Any]:
        """Create an OPEN alert and publish it (as the gateway does when a rule fires)."""
        def make() -> dict[str, Any]:
            alert = {"id": self.next_alert_id, "product_id": 1, "product_code": "BOLT-M10",
                     "product_name": "M10 볼트", "characteristic": "diameter", "alert_type": "OUT_OF_SPEC",
                     "priority": 4, "title": "규격 이탈", "message": "측정값이 상한 규격을 초과했습니다",
                     "status": "OPEN", "created_at": now_iso(), "occurrences": 1}
            alert.update(fields)
            self.next_alert_id += 1
            self.alerts[alert["id"]] = alert
            self._publish("alert", {"alert": dict(alert)}, alert["product_id"])
            return alert

        return self.call(make)

    def publish(self, type_: str, body: dict[str, Any], product_id: int | None, notable: bool = True) -> None:
        """Publish any event (subgroup, measurement, violation, capability) from the test thread."""
        self.call(lambda: self._publish(type_, body, product_id, notable))

    def _publish(self, type_: str, body: dict[str, Any], product_id: int | None, notable: bool = True) -> None:
        self.seq += 1
        message = {"type": type_, **body, "timestamp": now_iso(), "seq": self.seq}
        self.events.append({"message": message, "product_id": product_id, "notable": notable})
        del self.events[:-MAX_EVENTS_KEPT]
        for connection, path in list(self.clients):
            if self._carries(path, message, product_id, notable):
                self._send(connection, message)

    @staticmethod
    def _carries(path: str, message: dict[str, Any], product_id: int | None, notable: bool) -> bool:
        if path.startswith("/ws/spc/product/"):
            return path == f"/ws/spc/product/{product_id}/"
        return message["type"] in ("alert", "violation", "capability") or (message["type"] == "measurement" and notable)

    def _send(self, connection: ServerConnection, message: dict[str, Any]) -> None:
        # One queue and writer per connection keeps frames in order (connection, snapshot, replay...).
        queue = self.outboxes.get(connection)
        if queue is None:
            queue = self.outboxes[connection] = asyncio.Queue(maxsize=OUTBOX_BOUND)
            asyncio.ensure_future(self._writer(connection, queue))
        if queue.full():
            connection.transport.abort()  # a page that does not read is cut off, as the gateway does
            return
        queue.put_nowait(json.dumps(message, ensure_ascii=False))

    async def _writer(self, connection: ServerConnection, queue: asyncio.Queue[str | None]) -> None:
        try:
            while (text := await queue.get()) is not None:
                await connection.send(text)
        except Exception:  # the client went away: nothing more to deliver
            self.outboxes.pop(connection, None)

    # ---------------------------------------------------------------- HTTP

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path.startswith("/ws/"):
            token = parse_qs(url.query).get("token", [None])[0]
            if self.token and token != self.token:
                return connection.respond(401, "a valid token is required\n")
            if url.path.startswith("/ws/spc/product/"):
                known = {f"/ws/spc/product/{p['id']}/" for p in CATALOG}
                if url.path not in known:
                    return connection.respond(404, "unknown product\n")
            with self._lock:
                self.connects.append(request.path)
            return None
        if url.path == "/":
            return self._file(STATIC / "index.html")
        if url.path.startswith("/static/"):
            target = (STATIC / url.path[len("/static/"):]).resolve()
            if STATIC.resolve() in target.parents and target.is_file():
                return self._file(target)
        if url.path == "/api/spc/products/":
            return self._json(CATALOG)
        if url.path.startswith("/api/spc/products/") and url.path.endswith("/capability/"):
            return self._json([])
        if url.path == "/api/spc/outputs/":  # a gateway without andon outputs, as the daemon answers
            return self._json({"outputs": {}})
        return connection.respond(404, "not found\n")

    @staticmethod
    def _response(body: bytes, content_type: str) -> Response:
        headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                           ("Cache-Control", "no-cache"), ("Connection", "close")])
        return Response(200, "OK", headers, body)

    def _file(self, path: Path) -> Response:
        kind = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                ".html": "text/html"}.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("+xml"):
            kind += "; charset=utf-8"
        return self._response(path.read_bytes(), kind)

    def _json(self, value: Any) -> Response:
        return self._response(json.dumps(value, ensure_ascii=False).encode(), "application/json")

    # ---------------------------------------------------------------- WebSocket

    async def _handler(self, connection: ServerConnection) -> None:
        url = urlsplit(connection.request.path)
        path = url.path
        query = parse_qs(url.query)
        self._send(connection, {"type": "connection", "message": GREETING[self.language], "protocol": 1,
                                "gateway": self.gateway, "seq": self.seq, "role": self.role,
                                "timestamp": now_iso()})
        unresolved = [dict(a) for a in self.alerts.values() if a["status"] != "RESOLVED"]
        self._send(connection, {"type": "alerts", "alerts": unresolved, "snapshot": True, "timestamp": now_iso()})
        if "since" in query:
            since = int(query["since"][0])
            complete = since + 1 >= self.oldest_kept
            replayed = [e["message"] for e in self.events if e["message"]["seq"] > since
                        and self._carries(path, e["message"], e["product_id"], e["notable"])] if complete else []
            for message in replayed:
                self._send(connection, message)
            self._send(connection, {"type": "replay_complete", "from_seq": since + 1, "to_seq": self.seq,
                                    "complete": complete, "timestamp": now_iso()})
        self.clients.add((connection, path))
        try:
            async for frame in connection:
                try:
                    message = json.loads(frame)
                except ValueError:
                    self._send(connection, {"type": "error", "code": "invalid_json", "message": "not JSON",
                                            "timestamp": now_iso()})
                    continue
                with self._lock:
                    self.received.append((path, message))
                reply = self._command(message)
                if reply is not None:
                    if "request_id" in message:
                        reply["request_id"] = message["request_id"]
                    reply["timestamp"] = now_iso()
                    self._send(connection, reply)
        except Exception:  # aborted by stop(): the client sees the connection drop
            pass
        finally:
            self.clients.discard((connection, path))
            queue = self.outboxes.pop(connection, None)
            if queue is not None and not queue.full():
                queue.put_nowait(None)  # lets the writer task end

    def _command(self, message: dict[str, Any]) -> dict[str, Any] | None:
        kind = message.get("type")
        if kind == "ping":
            return {"type": "pong"} if self.answer_pings else None
        if kind in self.errors_for:
            code, text = self.errors_for[kind]
            if isinstance(text, dict):  # as the gateway words its refusals: `message` and `texts`
                return {"type": "error", "code": code, "message": text[self.language],
                        "texts": {lang: {"message": m} for lang, m in text.items()}}
            return {"type": "error", "code": code, "message": text}
        if kind == "get_alerts":
            limit = min(int(message.get("limit", 10)), 500)
            rows = sorted(self.alerts.values(), key=lambda a: -a["id"])
            if message.get("status"):
                rows = [a for a in rows if a["status"] == message["status"]]
            return {"type": "alerts", "alerts": [dict(a) for a in rows[:limit]]}
        if kind == "get_measurements":
            return self._measurements(message)
        if kind in ("subscribe_product", "unsubscribe_product"):
            return {"type": kind.split("_")[0] + "d", "product_id": message.get("product_id")}
        if kind in ("acknowledge_alert", "shelve_alert", "unshelve_alert", "resolve_alert", "comment_alert"):
            return self._transition(kind, message)
        if kind == "recalculate_limits":
            return self._recalculate(message)
        return {"type": "error", "code": "unknown_type", "message": f"unknown message type {kind!r}"}

    def _measurements(self, message: dict[str, Any]) -> dict[str, Any]:
        characteristic = message.get("characteristic") or "diameter"
        limit = min(int(message.get("limit", 100)), 5000)
        rows = self.history if (message.get("product_id"), characteristic) == (1, "diameter") else []
        return {"type": "measurements", "product_id": message.get("product_id"), "characteristic": characteristic,
                "measurements": rows[-limit:], "limits": diameter_limits() if rows else None}

    def _recalculate(self, message: dict[str, Any]) -> dict[str, Any]:
        if not str(message.get("user", "")).strip() or not str(message.get("reason", "")).strip():
            return {"type": "error", "code": "invalid_field", "message": "user and reason are required"}
        self.limits_version += 1
        limits = {**diameter_limits(), "version": self.limits_version, "product_id": message.get("product_id"),
                  "characteristic": message.get("characteristic"), "who": message["user"],
                  "reason": message["reason"]}
        return {"type": "result", "success": True, "limits": limits}

    def _transition(self, kind: str, message: dict[str, Any]) -> dict[str, Any]:
        alert = self.alerts.get(message.get("alert_id"))  # type: ignore[arg-type]
        if alert is None:
            return {"type": "error", "code": "not_found", "message": f"no alert {message.get('alert_id')}"}
        if not str(message.get("user", "")).strip():
            return {"type": "error", "code": "invalid_field", "message": "user is required"}
        if kind == "acknowledge_alert":
            alert.update(status="ACKNOWLEDGED", acknowledged_by=message["user"], acknowledged_at=now_iso())
            if message.get("comment"):
                alert["comment"] = message["comment"]
        elif kind == "comment_alert":
            if not str(message.get("comment", "")).strip():
                return {"type": "error", "code": "invalid_field", "message": "comment is required"}
            alert["comment"] = message["comment"]
        elif kind == "shelve_alert":
            duration = message.get("duration_s")
            if not isinstance(duration, int | float) or not 0 < duration <= MAX_SHELVE_S or not message.get("reason"):
                return {"type": "error", "code": "invalid_field", "message": "duration_s (at most 8 h) and reason"}
            alert.update(status="SHELVED", shelved_until=now_iso(time.time() + duration),
                         shelved_from=alert.get("shelved_from") or alert["status"])
        elif kind == "unshelve_alert":
            if alert["status"] != "SHELVED":
                return {"type": "error", "code": "invalid_field", "message": f"alert {alert['id']} is not shelved"}
            alert.update(status=alert.pop("shelved_from", None) or "OPEN")
            alert.pop("shelved_until", None)
        else:
            if not message.get("cause"):
                return {"type": "error", "code": "invalid_field", "message": "cause is required"}
            alert.update(status="RESOLVED")
        self._publish("alert", {"alert": dict(alert)}, alert["product_id"])
        return {"type": "result", "success": True, "alert": dict(alert)}


# ---------------------------------------------------------------- fixtures of every HMI test module
# (registered for the whole suite by tests/conftest.py's pytest_plugins; a module may define its own)

@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module (Debian's, driven by Playwright)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def gateway() -> Iterator[HmiFixtureServer]:
    """The stand-in gateway the page connects to."""
    server = HmiFixtureServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def screens() -> Iterator[list[Screen]]:
    """The screens a test opens (open_screen), closed after it."""
    opened: list[Screen] = []
    yield opened
    for screen in opened:
        screen.close()


def open_screen(browser: object, gateway: HmiFixtureServer, screens: list[Screen], **kwargs: object) -> Screen:
    """A page on `gateway` in `browser`, closed with the test's other screens."""
    screen = Screen(browser, gateway.url, **kwargs)  # type: ignore[arg-type]
    screens.append(screen)
    return screen
