"""Everything of the line-side service that leans on websockets' internals, in one module.

websockets is pinned to the minor version these were read from and tested with (TESTED_VERSION,
pyproject.toml), and tests/test_library_internals.py fails, naming the attribute or method, when an
installed websockets no longer has what is used here; it also runs both through a real socket. A new
websockets: run that test and tests/test_server_*.py, then move the pin and TESTED_VERSION together.

1. Request bodies, for the one plain HTTP write the seed defines (`POST /api/spc/alerts/`).
   websockets has no public way: it parses each HTTP request itself and drops one with a body
   ("unsupported request body") before any hook of ours runs. `BodyReadingConnection` (passed as
   `serve(create_connection=...)`, which is public) overrides the connection's `data_received` and
   `eof_received`: it reads the body of a request that is not a GET off the socket first (at most
   MAX_BODY bytes), keeps it on the connection (`http_body`), and hands websockets the same request
   head with `Content-Length: 0`. The request then reaches `process_request` like any other and is
   answered there (the alert, or a 405 that says where writes go), with websockets' own response
   writing and closing. GET requests, every WebSocket handshake among them, pass through untouched,
   byte for byte.

   Bytes a client sends after its request head and before the server's response (a body without a
   Content-Length, a frame before the 101) are dropped: websockets would parse them as WebSocket frames
   while the handshake is still running, fail, and then trip its own assertion when the response goes
   out ("unexpected internal error", a traceback per request anyone can send). A conforming client
   sends nothing there.

2. The hub's frames (gateway.outputs.websocket.hub). The hub frames each event once (`frame`) and
   writes all the events of a commit to a client's transport in one write, past websockets'
   protocol object, while the connection is below its write-buffer high-water mark (`can_write`:
   the connection's `paused` flag and `send_in_progress`); a client that falls behind waits on the
   connection's `drain()`. The public API (`broadcast()`, `send()`) frames and writes every message
   to every client on its own: bench/bench_ws.py --compare-public measured the hub's own frames
   7-14x faster with 100 clients (docs/internals.md), above the 1.5x that keeps a private path.
"""

from __future__ import annotations

from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

TESTED_VERSION = "17.4"  # the websockets these internals were read from and tested with (pinned minor)

MAX_HEAD = 16 * 1024  # bytes of request line and headers examined; a longer head is websockets' to refuse
MAX_BODY = 64 * 1024  # an alert is a few hundred bytes; the same bound as a WebSocket frame
_GET = b"GET "
_END = b"\r\n\r\n"
_DROPPED = (b"content-length", b"transfer-encoding", b"expect")


class BodyReadingConnection(ServerConnection):
    """A ServerConnection that reads a request's body before websockets parses the request."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.http_body: bytes | None = None
        self.http_body_error: tuple[int, str] | None = None  # (status, reason): the body was not read
        self._state = "head"  # head -> body -> done (a body to read or refuse), or head -> through
        self._buffer = bytearray()
        self._length = 0
        self._head = b""
        self._head_seen = False  # "through": the request head has ended
        self._tail = b""  # "through": the last bytes seen, to find a head's end split across reads

    def data_received(self, data: bytes) -> None:
        if self._state == "through":
            data = self._until_response(data)
            if data:
                super().data_received(data)
        elif self._state == "body":
            self._buffer += data
            if len(self._buffer) >= self._length:
                self.http_body = bytes(self._buffer[:self._length])
                self._finish()
        elif self._state == "head":
            self._buffer += data
            self._examine_head()
        # "done": bytes after the body (a pipelined request) are dropped; websockets answers once, closes

    def eof_received(self) -> None:  # websockets' Connection keeps the transport open itself
        if self._state == "head" and self._buffer:
            self._pass_through()
        return super().eof_received()

    def _examine_head(self) -> None:
        buffer = self._buffer
        if _GET.startswith(bytes(buffer[:len(_GET)])):  # every WebSocket handshake: through at once
            if len(buffer) >= len(_GET):
                self._pass_through()
            return
        end = buffer.find(_END)
        if end < 0:
            if len(buffer) > MAX_HEAD:
                self._pass_through()
            return
        lines = bytes(buffer[:end]).split(b"\r\n")
        headers: dict[bytes, list[bytes]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        lengths = set(headers.get(b"content-length", []))
        if b"transfer-encoding" not in headers and lengths <= {b"0"}:
            self._pass_through()  # no body: websockets reads it as it is
            return
        kept = [line for line in lines[1:] if line.partition(b":")[0].strip().lower() not in _DROPPED]
        self._head = b"\r\n".join([lines[0], *kept, b"Content-Length: 0"]) + _END
        body = buffer[end + len(_END):]
        if b"transfer-encoding" in headers:
            self._refuse(411, "send the body with a Content-Length header, not chunked")
        elif len(lengths) != 1 or not next(iter(lengths)).isdigit():
            self._refuse(400, "the Content-Length header is not one whole number")
        elif len(next(iter(lengths))) > 19:  # int() of over 4,300 digits raises; far over MAX_BODY anyway
            self._refuse(413, f"the body is larger than {MAX_BODY} bytes")
        elif int(next(iter(lengths))) > MAX_BODY:
            self._refuse(413, f"the body is larger than {MAX_BODY} bytes")
        else:
            self._length = int(next(iter(lengths)))
            if b"100-continue" in (v.lower() for v in headers.get(b"expect", [])):
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._state, self._buffer = "body", bytearray()
            self.data_received(bytes(body))

    def _refuse(self, status: int, reason: str) -> None:
        self.http_body_error = (status, reason)
        self._finish()

    def _finish(self) -> None:
        self._state, self._buffer = "done", bytearray()
        super().data_received(self._head)

    def _pass_through(self) -> None:
        self._state = "through"
        data, self._buffer = self._until_response(bytes(self._buffer)), bytearray()
        if data:
            super().data_received(data)

    def _until_response(self, data: bytes) -> bytes:
        """`data` without what follows the request head while the handshake is still running."""
        if self._head_seen:
            return b"" if self.protocol.state is State.CONNECTING else data
        seen = self._tail + data
        end = seen.find(_END)
        if end < 0:
            self._tail = seen[-(len(_END) - 1):]
            return data
        self._head_seen = True
        return data[:end + len(_END) - len(self._tail)]


# ---------------------------------------------------------------- the hub's frames

def frame(payload: bytes) -> bytes:
    """The complete WebSocket text frame of a payload, built once and written to every client as is.

    Server frames are unmasked and the server negotiates no extension (compression is off), so the
    bytes are the same for every connection; websockets' own frames (pings, close) are written whole
    too, so frames never interleave. The header is RFC 6455 5.2 by hand (FIN + text opcode, then the
    7-bit, 16-bit or 64-bit length): the same bytes as websockets' Frame.serialize, without its cost.
    """
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def can_write(connection: ServerConnection) -> bool:
    """May frames be written now without waiting? Below the write-buffer high-water mark (`paused`
    False) a write never blocks anyone; a fragmented send in progress would be corrupted by a frame in
    between (the service never fragments, websockets' pings and close are single frames)."""
    return connection.state is State.OPEN and not connection.paused and connection.send_in_progress is None


def write(connection: ServerConnection, frames: bytes) -> None:
    """Complete frames (`frame`) to the client's socket, in one write."""
    connection.transport.write(frames)


async def drain(connection: ServerConnection) -> None:
    """Wait while the client's write buffer is above its high-water mark (websockets' flow control)."""
    await connection.drain()


def abort(connection: ServerConnection) -> None:
    """Drop the TCP connection now (a client whose close handshake does not end)."""
    connection.transport.abort()
