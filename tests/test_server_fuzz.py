"""Fuzzing the line-side server with real clients: arbitrary WebSocket frames and HTTP requests.

One real server (the Rig: store, alerts, hub, LineServer) runs on its own loop in a thread; Hypothesis
drives real websockets (sync) clients and raw sockets against it. WebSocket: every text frame of valid
UTF-8 within `server.max_frame` gets a reply (an `error` with a documented code, or the command's
reply); binary frames get an `error`; invalid UTF-8 closes with 1007 and an oversized frame with 1009,
as documented; nothing closes with 1011; a watching client is served throughout. HTTP: no 5xx. And
the log has no traceback and no ERROR line. About 30 s in all (max_examples, deadline=None).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import string
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from gateway.outputs.websocket.protocol import ERROR_CODES, SCHEMA
from tests.test_server_harness import Rig, make_config

EVENTS = {"alert", "measurement", "subgroup", "violation", "capability"}
REPLIES = {"error", "pong", "subscribed", "unsubscribed", "alerts", "measurements", "result"}
DOCUMENTED_CLOSES = {1007, 1009}  # invalid UTF-8 in a text frame, a frame over server.max_frame
MAX_FRAME = 65536


class Collect(logging.Handler):
    """Log records a server must never write for bad input: ERROR and above, or any traceback."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.bad.append(f"{record.name}: {record.getMessage()}\n{self.format(record)}")


class Served:
    """The Rig on a loop of its own, so synchronous clients (and Hypothesis) can drive it."""

    def __init__(self, rig: Rig):
        self.rig = rig
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.thread.start()
        self.call(rig.__aenter__())
        self.port = rig.server.port

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.call(self.rig.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Collect]]:
    log = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(log)
    root.setLevel(logging.INFO)
    served = Served(Rig(make_config(tmp_path_factory.mktemp("fuzz"), rate=1e6, language="en")))
    try:
        yield served, log
    finally:
        served.close()
        root.removeHandler(log)
        root.setLevel(old_level)


# ---------------------------------------------------------------- WebSocket frames

_FIELDS = sorted({name for schema in SCHEMA.values() for name in schema} | {"request_id", "product"})
_odd_ints = st.sampled_from([0, -1, 1, 2, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400])
_odd_texts = st.sampled_from(["", " ", "kim", "diameter", "runout", "MANUAL", "STORAGE", "SOURCE_STALE",
                              "OUT_OF_SPEC", "OPEN", "RESOLVED", "\x00", "\x1b[2J", "a\u202eb", "\u2066x\u2069",
                              "\ud800", "\udfff", "line\nline", "\t", "\u2028", "치수 확인", "x" * 2001,
                              "y" * 5000])
_texts = st.text(max_size=20) | _odd_texts
_ints = st.integers() | _odd_ints
_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.5, 60.0, 28800.0, 28800.5])
_scalars = st.none() | st.booleans() | _ints | _floats | _texts
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
_commands = st.builds(lambda type_, fields: {"type": type_, **fields},
                      st.sampled_from(sorted(SCHEMA)) | _texts | _scalars,
                      st.dictionaries(st.sampled_from(_FIELDS), _scalars | _json, max_size=7))


def _nested(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


_frames = st.one_of(
    _commands.map(lambda c: ("text", json.dumps(c))),
    _commands.map(lambda c: ("text", json.dumps(c))),
    _json.map(lambda v: ("text", json.dumps(v))),
    st.text(max_size=200).map(lambda t: ("text", t)),
    st.builds(_nested, st.integers(1, 30000), st.sampled_from(["list", "dict"])).map(lambda t: ("text", t)),
    st.binary(max_size=300).map(lambda b: ("binary", b)),
    st.sampled_from([b"\xff", b"\xc3\x28", b'{"type": "ping", "x": "\xed\xa0\x80"}', b"\xf8\x88\x80\x80\x80"])
    .map(lambda b: ("bad_utf8", b)),
    st.integers(MAX_FRAME + 1, MAX_FRAME + 5000).map(lambda n: ("text", json.dumps({"type": "ping",
                                                                                     "pad": "x" * n}))),
)


def _open(port: int, path: str = "/ws/spc/notifications/") -> ClientConnection:
    # entered as a context manager (websockets 17.1 deprecates a bare connect()); Clients closes it
    ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10).__enter__()
    for _ in range(2):  # `connection`, then the snapshot of unresolved alerts
        ws.recv(timeout=10)
    return ws


def _reply(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=10))
        if message["type"] not in EVENTS:
            return message


class Clients:
    """The fuzzing client (reopened after each documented close) and a watcher that must stay served."""

    def __init__(self, port: int):
        self.port = port
        self.ws = _open(port)
        self.watcher = _open(port, "/ws/spc/product/1/")
        self.frames = 0
        self.closes: dict[int, int] = {}

    def send(self, kind: str, payload: str | bytes) -> None:
        self.frames += 1
        if kind == "bad_utf8":
            self.ws.send(payload, text=True)  # bytes as a text frame, unchecked: what a broken client sends
        else:
            self.ws.send(payload)
        size = len(payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload)
        try:
            answer = _reply(self.ws)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            assert code in DOCUMENTED_CLOSES, (code, kind, payload[:200])
            assert (code == 1007) == (kind == "bad_utf8") and (code == 1009) == (size > MAX_FRAME)
            self.closes[code] = self.closes.get(code, 0) + 1
            self.ws = _open(self.port)
            return
        assert kind != "bad_utf8" and size <= MAX_FRAME, (kind, size, answer)
        assert answer["type"] in REPLIES, answer
        if answer["type"] == "error":
            assert answer["code"] in ERROR_CODES and isinstance(answer["message"], str) and answer["message"]
        if kind == "binary":
            assert answer["type"] == "error" and answer["code"] == "invalid_json"
        if "request_id" in answer:  # an echo is the very value sent
            assert answer["request_id"] == json.loads(payload)["request_id"], (payload[:200], answer)

    def close(self) -> None:
        self.ws.close()
        self.watcher.close()


def test_fuzz_websocket_frames(served: tuple[Served, Collect]) -> None:
    server, log = served
    clients = Clients(server.port)
    started = time.perf_counter()

    @settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(_frames, min_size=1, max_size=4))
    def fuzz(frames: list[tuple[str, str | bytes]]) -> None:
        log.bad.clear()
        for kind, payload in frames:
            clients.send(kind, payload)
        clients.watcher.send(json.dumps({"type": "ping", "request_id": clients.frames}))
        pong = _reply(clients.watcher)
        assert pong["type"] == "pong" and pong["request_id"] == clients.frames
        assert not log.bad, log.bad

    try:
        fuzz()
    finally:
        clients.close()
    elapsed = time.perf_counter() - started
    print(f"{clients.frames} frames in {elapsed:.1f} s; documented closes {clients.closes}")
    assert not log.bad, log.bad
    assert clients.frames >= 2000


# ---------------------------------------------------------------- HTTP requests

_PATHS = ["/", "/index.html", "/static/", "/static/app.js", "/static/..%2f..%2fetc/passwd", "/api/spc/alerts/",
          "/api/spc/products/", "/api/spc/products/1/measurements/", "/api/spc/products/2/capability/",
          "/api/spc/products/%D9%A1/measurements/", "/ws/spc/notifications/", "/ws/spc/product/1/",
          "/ws/spc/product/99/", "/healthz", "/metrics", "//[x", "/%00", "/static/" + "a" * 300, "*"]
_PATH_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%[]"
_QUERY_NAMES = ["since", "subscribe", "limit", "before_id", "product", "status", "characteristic", "token", "x"]
_HEADER_NAMES = ["Host", "Origin", "Authorization", "Content-Type", "If-None-Match", "User-Agent",
                 "X-Forwarded-For", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                 "Sec-WebSocket-Protocol", "Content-Length", "Expect", "Transfer-Encoding"]
_header_values = (st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"),
                          max_size=40)
                  | st.sampled_from(["websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", "application/json",
                                     "0", "5", "99999999999999999999", "9" * 5000, "chunked", "100-continue",
                                     "http://evil.example", "Bearer x", "bearer.x"]))
_query_values = st.text(max_size=12) | _odd_texts.map(lambda t: t[:50]) | _ints.map(str)


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k)}={quote(v, safe='', errors='surrogatepass')}" for k, v in pairs)


_requests = st.tuples(
    st.sampled_from(["GET", "GET", "HEAD", "POST", "PUT", "OPTIONS"]),
    st.sampled_from(_PATHS) | st.text(_PATH_CHARS, max_size=40).map(lambda p: "/" + p),
    st.lists(st.tuples(st.sampled_from(_QUERY_NAMES), _query_values), max_size=25),
    st.lists(st.tuples(st.sampled_from(_HEADER_NAMES), _header_values), max_size=8),
    st.binary(max_size=100),
)


def _http(port: int, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        sock.sendall(head.encode("latin-1") + body)
        chunks = []
        sock.settimeout(0.3)
        try:
            chunks.append(sock.recv(65536))
        except TimeoutError:  # waiting for the rest of a body shorter than its Content-Length: end it
            sock.shutdown(socket.SHUT_WR)  # (not at once: websockets answers no request half-closed early)
        sock.settimeout(10)
        while not chunks or (chunks[-1] and not chunks[0].startswith(b"HTTP/1.1 101")):  # 101: enough
            chunks.append(sock.recv(65536))
        return b"".join(chunks)


def test_fuzz_http_requests(served: tuple[Served, Collect]) -> None:
    server, log = served
    statuses: dict[int, int] = {}

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(_requests)
    def fuzz(request: tuple[str, str, list[tuple[str, str]], list[tuple[str, str]], bytes]) -> None:
        method, path, query, headers, body = request
        target = path + ("?" + _query(query) if query else "")
        log.bad.clear()  # so a failure names the request that caused it
        raw = _http(server.port, method, target, headers, body)
        status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (method, target, headers, raw[:300])
        assert not log.bad, log.bad

    fuzz()
    print(f"HTTP statuses: {dict(sorted(statuses.items()))}")
    assert not log.bad, log.bad
    other = _open(server.port)  # still serving
    other.close()
