"""One output's connection to the plant broker (northbound.mqtt): what the JSON northbound and the
Sparkplug output share, written once.

paho is driven from the asyncio loop through its external-loop API (socket callbacks + loop_read /
loop_write) rather than `loop_start()`'s thread:
- one thread owns each output's state (mids in flight, cursors, the Sparkplug seq): no locks, and an
  acknowledgement can never race the code that records its mid;
- packets queued by many `publish()` calls in one loop turn leave in one `loop_write()`: this batching is
  what makes the drain rate after an outage >10,000 messages/s in Python;
- we own reconnect and its backoff with jitter (gateway.core.backoff), not paho's loop_forever.
Only the blocking TCP connect and TLS handshake run in a worker thread: a dead broker never stalls the loop.

A fresh paho Client per connection (a `Connection`, which an output may subclass to keep its own
per-connection state; it is the client's userdata, so paho's callbacks get it): paho keeps unacknowledged
messages in RAM and would re-send them after a reconnect; the outputs' messages live in the outbox and
are re-sent from there. Callbacks of an older connection are told apart by `link.connection`.

The output gives its hooks: `will()` (awaited before each connect: the message the broker publishes if
we vanish), `serve(connection)` (runs while connected, returns or raises when the connection ends),
`on_connected` (at CONNACK, before `serve`), `on_closed`, and paho's own `on_publish` / `on_message`,
which are set on the client unwrapped (the drain's hot path pays no extra call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import NorthboundMQTT
from gateway.core.backoff import Backoff
from gateway.core.secrets import SecretError, read_secret

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds for TCP + TLS + CONNACK
STOP_GRACE = 0.3  # seconds stop() waits for the last message, then for the close (the app allows 1 s)

Message = tuple[str, bytes, int, bool]  # topic, payload, qos, retain


class NorthboundError(Exception):
    """A northbound setting that cannot work (unreadable password file, bad TLS files)."""


def read_password(path: str) -> str:
    """The broker password, by the one rule for every secret file (gateway.core.secrets.read_secret)."""
    try:
        return read_secret(path)
    except SecretError as e:
        raise NorthboundError(f"northbound.mqtt.password_file: cannot read {path}: {e.message}") from None


@dataclass(eq=False)
class Connection:
    """One TCP connection with its own paho client."""

    client: mqtt.Client = None  # type: ignore[assignment]  # set right after, it needs the connection
    ticker: asyncio.Task[None] | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)


class MqttLink:
    """Connect, serve, reconnect with backoff, stop cleanly: for one output on northbound.mqtt's broker."""

    def __init__(self, config: NorthboundMQTT, *, name: str, client_id: str,
                 will: Callable[[], Awaitable[Message]], serve: Callable[[Any], Awaitable[None]],
                 new_connection: Callable[[], Connection] = Connection,
                 on_connected: Callable[[Any], None] | None = None,
                 on_closed: Callable[[Any], None] | None = None,
                 on_publish: Callable[..., None] | None = None,
                 on_message: Callable[..., None] | None = None):
        self.config = config
        self.name = name  # for the log
        self.client_id = client_id
        self._will = will
        self._serve = serve
        self._new_connection = new_connection
        self._on_connected = on_connected
        self._on_closed = on_closed
        self._paho_on_publish = on_publish
        self._paho_on_message = on_message
        self._password: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(config.reconnect_min, config.reconnect_max)
        self.stopping = False
        self.connection: Any = None  # the current Connection (or the output's subclass of it)
        self.reconnects = 0
        self.last_error: str | None = None

    @property
    def is_connected(self) -> bool:
        c = self.connection
        return bool(c is not None and c.connected.is_set() and not c.closed.is_set())

    def check(self) -> None:
        """Read the password file and load the TLS files now: a setting that cannot work fails the start
        with a precise message (NorthboundError), not the first connection in the background."""
        if self.config.password_file:
            self._password = read_password(self.config.password_file)
        self._client(Connection(), None)

    def start(self) -> None:
        """Connect and serve in the background (a broker that is down is not an error)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = asyncio.create_task(self._run(), name=f"{self.name}:connection")

    async def stop(self, last: Message | None = None) -> None:
        """Publish `last` (and wait for it a moment), DISCONNECT cleanly (the broker then discards the
        will), stop the connection task; whatever happens, no task or socket is left behind."""
        self.stopping = True
        connection = self.connection
        try:
            if connection is not None and self.is_connected:
                if last is not None:
                    info = connection.client.publish(*last)
                    await _published(info, connection, STOP_GRACE)
                connection.client.disconnect()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(connection.closed.wait(), STOP_GRACE)
        finally:  # even when the caller's timeout cancels us
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                self._task = None
            if connection is not None:
                self._close(connection)

    # ------------------------------------------------------------------ connection

    async def _run(self) -> None:
        while not self.stopping:
            connection = self._new_connection()
            try:
                will = await self._will()
                connection.client = self._client(connection, will)
                self.connection = connection
                await self._connect(connection)
                await self._serve(connection)
            except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("%s: %s:%s: %s", self.name, self.config.host, self.config.port, self.last_error)
            except Exception as e:  # a bug or a store failure: keep forwarding after the backoff
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("%s: forwarding failed", self.name)
            finally:
                self._close(connection)
            if self.stopping:
                return
            self.reconnects += 1
            await asyncio.sleep(self._backoff.next_delay())

    def _client(self, connection: Connection, will: Message | None) -> mqtt.Client:
        cfg = self.config
        v5 = cfg.protocol == "5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, userdata=connection,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else True, reconnect_on_failure=False)
        # in flight is bounded by the outputs; paho's own bound would rescan its whole message table on
        # every ack (_update_inflight), a third of the drain's CPU time
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.connect_timeout = CONNECT_TIMEOUT
        if cfg.username is not None:
            client.username_pw_set(cfg.username, self._password)
        if cfg.tls is not None:
            try:
                client.tls_set(ca_certs=cfg.tls.ca_file, certfile=cfg.tls.certificate,
                               keyfile=cfg.tls.private_key, cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError) as e:
                raise NorthboundError(f"northbound.mqtt.tls: cannot load the CA file or client "
                                      f"certificate/key: {e}") from e
            client.tls_insecure_set(cfg.tls.insecure)
        if will is not None:
            client.will_set(*will)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        if self._paho_on_publish is not None:
            client.on_publish = self._paho_on_publish
        if self._paho_on_message is not None:
            client.on_message = self._paho_on_message
        # paho's external-loop hooks: the socket's reader and writer live on our loop
        client.on_socket_open = lambda _c, conn, sock: self._on_loop(self._attach, conn, sock)
        client.on_socket_close = lambda _c, _conn, sock: self._on_loop(self._detach, sock, True)
        client.on_socket_register_write = lambda _c, conn, sock: self._on_loop(self._add_writer, conn, sock)
        client.on_socket_unregister_write = lambda _c, _conn, sock: self._on_loop(self._detach, sock, False)
        return client

    async def _connect(self, connection: Connection) -> None:
        cfg = self.config
        kwargs: dict[str, Any] = {"clean_start": True} if cfg.protocol == "5" else {}
        await asyncio.to_thread(connection.client.connect, cfg.host, cfg.port, int(cfg.keepalive), **kwargs)
        connection.ticker = asyncio.create_task(self._tick(connection), name=f"{self.name}:keepalive")
        await first_of(connection.connected, connection.closed, timeout=CONNECT_TIMEOUT)
        if not connection.connected.is_set() or connection.closed.is_set():
            raise TimeoutError(self.last_error or "no CONNACK from the broker")
        self._backoff.reset()

    async def _tick(self, connection: Connection) -> None:
        """Keepalive pings and ping-timeout detection (paho's loop_misc) once a second."""
        while not connection.closed.is_set():
            await asyncio.sleep(1.0)
            if connection is self.connection:
                connection.client.loop_misc()

    def _close(self, connection: Connection) -> None:
        if connection.ticker is not None:
            connection.ticker.cancel()
        if not connection.closed.is_set():
            sock = connection.client.socket() if connection.client is not None else None
            if sock is not None:
                self._detach(sock, True)
                with contextlib.suppress(OSError):
                    sock.close()
            connection.closed.set()
            if self._on_closed is not None:
                self._on_closed(connection)

    # ------------------------------------------------------------------ paho callbacks (on the loop)

    def _on_connect(self, client: mqtt.Client, connection: Connection, flags: Any, reason: Any,
                    properties: Any) -> None:
        if connection is not self.connection:
            return
        if getattr(reason, "is_failure", False):
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("%s: %s", self.name, self.last_error)
            client.disconnect()
            return
        self.last_error = None
        if self._on_connected is not None:
            self._on_connected(connection)
        connection.connected.set()
        log.info("%s: connected to %s:%s", self.name, self.config.host, self.config.port)

    def _on_disconnect(self, client: mqtt.Client, connection: Connection, flags: Any, reason: Any,
                       properties: Any) -> None:
        if connection.connected.is_set() and not self.stopping and not connection.closed.is_set():
            self.last_error = f"connection lost: {reason}"
            log.warning("%s: %s", self.name, self.last_error)
        if not connection.closed.is_set():
            connection.closed.set()
            if self._on_closed is not None:
                self._on_closed(connection)

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run now when on the loop's thread; from the connect thread, queue it onto the loop."""
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the process is ending anyway
                self._loop.call_soon_threadsafe(fn, *args)

    def _attach(self, connection: Connection, sock: Any) -> None:
        if connection.closed.is_set():  # stopped while the connect thread was still connecting
            sock.close()
        elif sock.fileno() >= 0:
            self._loop.add_reader(sock, self._readable, connection)  # type: ignore[union-attr]

    def _add_writer(self, connection: Connection, sock: Any) -> None:
        if sock.fileno() >= 0 and not connection.closed.is_set():
            self._loop.add_writer(sock, connection.client.loop_write)  # type: ignore[union-attr]

    def _detach(self, sock: Any, reader: bool) -> None:
        if sock.fileno() >= 0:
            self._loop.remove_writer(sock)  # type: ignore[union-attr]
            if reader:
                self._loop.remove_reader(sock)  # type: ignore[union-attr]

    @staticmethod
    def _readable(connection: Connection) -> None:
        client = connection.client
        client.loop_read()
        # TLS may hold decrypted bytes the kernel socket no longer signals
        sock = client.socket()
        while sock is not None and getattr(sock, "pending", lambda: 0)() > 0:
            client.loop_read()
            sock = client.socket()


async def _published(info: mqtt.MQTTMessageInfo, connection: Connection, timeout: float) -> None:
    """Until paho reports the message published (QoS 0: written; 1 and 2: acknowledged), the connection
    closes, or the timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while not info.is_published() and not connection.closed.is_set() and loop.time() < deadline:
            await asyncio.sleep(0.01)
    except (ValueError, RuntimeError):  # paho did not queue it (no connection): nothing to wait for
        return


async def first_of(*events: asyncio.Event, timeout: float) -> None:
    """Return when any of the events is set, or after timeout."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
