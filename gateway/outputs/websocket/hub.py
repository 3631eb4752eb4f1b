"""Fan-out: every committed event, encoded to JSON and framed once, offered to every client that carries it.

A client whose socket keeps up is written to synchronously, like `websockets.broadcast()`, with one
write for all the events of a commit (past websockets' protocol object: websockets_private, where the
measurement that justifies it is); once its
write buffer is above the library's high-water mark, its messages wait in its own bounded queue and a
small writer task feeds them as the socket drains. A client whose queue reaches the bound is cut off
(close 1013) and logged with its address and user agent: it never holds more than the bound, and no
one else ever waits for it.

The bound is about live events. While a client is still being sent its `since` replay, events that
would overflow its queue are dropped from the queue instead (`dropped_through`): they are already in
the store, and the replay reads on until it has sent them. The replay itself is paced by the socket's
own backpressure, so a screen catching up on 90,000 events is never taken for a slow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from gateway.config import Config
from gateway.core.jsoncodec import dumps
from gateway.core.model import Event
from gateway.outputs.websocket.websockets_private import abort, can_write, drain, frame, write

log = logging.getLogger("gateway.server.hub")

CUT_OFF_CODE = 1013  # "try again later": the client's reconnect (with ?since=) resumes without loss
CUT_OFF_CLOSE_WAIT = 2.0  # seconds the close handshake may take before the TCP connection is aborted
WRITE_CHUNK = 256  # queued frames joined into one write by a catching-up client's writer
GENERAL_TYPES = frozenset({"alert", "violation", "capability"})


def encode(body: dict[str, Any]) -> bytes:
    """One protocol message as the UTF-8 JSON text frame payload (Korean stays readable, NaN is null)."""
    return dumps(body)


def event_json(event: Event) -> bytes:
    """An event's JSON: the bytes encoded when it was numbered (and stored), else its body encoded now."""
    return event.data or dumps(event.body)


def carries(endpoint_product: int | None, subscriptions: Iterable[int] | set[int], event: Event) -> bool:
    """Does an endpoint send this event? The one rule for live fan-out and for `since` replay.

    A subgroup or violation that is not notable is for the record only (lean frames, docs/protocol.md
    "Frames per reading"): a point of n = 1 went out in its measurement's frame, a violation repeated a
    rule that keeps firing between two of its updates. The choice is stored with the event, so a replay
    sends what the live screens got.
    """
    if not event.notable and event.type != "measurement":
        return False
    if endpoint_product is not None:  # /ws/spc/product/{id}/: everything of that product
        return event.product_id == endpoint_product or (event.product_id is None and event.type == "alert")
    if event.type in GENERAL_TYPES:
        return True
    if event.product_id is not None and event.product_id in subscriptions:
        return True
    return event.type == "measurement" and event.notable


@dataclass(eq=False)
class Client:
    """One connected screen: its endpoint, subscriptions and bounded queue of encoded messages."""

    connection: ServerConnection
    endpoint_product: int | None
    address: str = "?"
    user_agent: str = "?"
    subscriptions: set[int] = field(default_factory=set)
    queue: deque[tuple[int, bytes]] = field(default_factory=deque)
    live: bool = False  # False while the handler still sends connection/snapshot/replay
    replayed_through: int = 0  # the `since` replay sent every event up to this seq: never send those again
    dropped_through: int = 0  # before going live, events up to this seq left the queue: the replay sends them
    closed: bool = False
    sent: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    writer: asyncio.Task[None] | None = None


class Hub:
    """All connected clients; `publish` is called on the loop after each commit, in seq order."""

    def __init__(self, config: Config):
        self.queue_limit = config.server.client_queue
        self.clients: set[Client] = set()
        self.published = 0
        self.bytes_encoded = 0
        self.cut_off = 0
        self.deliveries = 0

    def reconfigure(self, config: Config) -> None:
        """Server settings take effect at restart; nothing to change live."""

    # ------------------------------------------------------------------ clients

    def attach(self, connection: ServerConnection, endpoint_product: int | None, *, subscriptions: set[int],
               address: str = "?", user_agent: str = "?") -> Client:
        """Register a client; events queue up (not sent) until `go_live`."""
        client = Client(connection, endpoint_product, address, user_agent, subscriptions)
        self.clients.add(client)
        return client

    def go_live(self, client: Client, after_seq: int | None) -> None:
        """Start live delivery; events up to `after_seq` were already replayed and are not sent again.

        The replay reads the file, and a commit reaches the file a moment before its fan-out reaches
        `publish` (the writer thread hands it to the loop after COMMIT). So the replay may already have
        sent events that are neither queued here yet nor published: `publish` drops those too.
        """
        if after_seq is not None:
            client.replayed_through = after_seq
            while client.queue and client.queue[0][0] <= after_seq:
                client.queue.popleft()
        client.live = True
        client.writer = asyncio.create_task(self._writer(client), name=f"ws-writer {client.address}")
        client.wake.set()

    async def detach(self, client: Client) -> None:
        """Forget a client (its handler is ending)."""
        self.clients.discard(client)
        client.closed = True
        client.queue.clear()
        if client.writer is not None:
            client.writer.cancel()
            with contextlib.suppress(BaseException):
                await client.writer

    # ------------------------------------------------------------------ fan-out

    def publish(self, events: list[Event]) -> None:
        """Offer committed events to every client whose endpoint carries them.

        Clients that carry the same events (same endpoint, same subscriptions: usually all the screens
        of a line) share one selection and one joined write: the work and the short-lived memory per
        commit grow with the kinds of clients, not with their number.
        """
        self.published += len(events)
        # framed when a client first needs it, once: an event no screen carries (the point of n = 1
        # that rode in its measurement, or any event while no screen is connected) is never framed
        framed: dict[int, bytes] = {}
        selections: dict[tuple[int | None, frozenset[int]], tuple[list[tuple[int, bytes]], bytes]] = {}
        for client in self.clients:
            if client.closed:
                continue
            key = (client.endpoint_product, frozenset(client.subscriptions))
            selection = selections.get(key)
            if selection is None:
                chunks = []
                for index, event in enumerate(events):
                    if carries(client.endpoint_product, client.subscriptions, event):
                        data = framed.get(index)
                        if data is None:
                            data = framed[index] = frame(event_json(event))
                            self.bytes_encoded += len(data)
                        chunks.append((event.seq, data))
                selection = selections[key] = (chunks, b"".join(data for _, data in chunks))
            if selection[0]:
                self._offer(client, *selection)

    def announce(self, events: list[Event]) -> None:
        """Send events now, before they are stored, to every live client that carries them: a status
        message, without `seq` and `epoch`, because events numbered before them may still wait in memory
        (a screen that took such a `seq` for its `since` would skip them). Each is published again, with
        its `seq`, in order, once stored. For the STORAGE alert the screens must see while the disk is full."""
        for event in events:
            data = frame(encode({k: v for k, v in event.body.items() if k not in ("seq", "epoch")}))
            for client in self.clients:
                if client.closed or not client.live or not carries(client.endpoint_product, client.subscriptions,
                                                                   event):
                    continue  # a screen not yet live gets its alerts from the snapshot (memory while failing)
                if not client.queue and can_write(client.connection):
                    write(client.connection, data)
                    client.sent += 1
                    self.deliveries += 1
                elif len(client.queue) < self.queue_limit:
                    client.queue.append((0, data))
                    client.wake.set()

    def _offer(self, client: Client, chunks: list[tuple[int, bytes]], joined: bytes) -> None:
        if chunks[0][0] <= client.replayed_through:  # only the commits right after a replay
            chunks = [chunk for chunk in chunks if chunk[0] > client.replayed_through]
            if not chunks:
                return
            joined = b"".join(data for _, data in chunks)
        if client.live and not client.queue and can_write(client.connection):
            # one write (one syscall) for the whole commit, however many events it holds
            write(client.connection, joined)
            client.sent += len(chunks)
            self.deliveries += len(chunks)
            return
        if len(client.queue) + len(chunks) > self.queue_limit:
            if not client.live:  # still replaying: the replay reads these from the store instead
                client.dropped_through = max(client.dropped_through, chunks[-1][0])
                client.queue.clear()
                return
            self._cut_off(client)
            return
        client.queue.extend(chunks)
        if client.live:
            client.wake.set()

    async def _writer(self, client: Client) -> None:
        connection = client.connection
        try:
            while not client.closed:
                await client.wake.wait()
                client.wake.clear()
                while client.queue and not client.closed:
                    if connection.state is not State.OPEN:
                        return
                    pending = [client.queue.popleft()[1] for _ in range(min(WRITE_CHUNK, len(client.queue)))]
                    write(connection, b"".join(pending))
                    client.sent += len(pending)
                    self.deliveries += len(pending)
                    await drain(connection)  # waits only while this client's buffer is full
        except Exception as exc:  # a broken socket: the handler sees the close and detaches
            log.debug("writer of %s stopped: %s", client.address, exc)

    def _cut_off(self, client: Client) -> None:
        client.closed = True
        depth = len(client.queue)
        client.queue.clear()  # release the memory now, not when the socket finally closes
        self.cut_off += 1
        log.warning("client %s (%s) does not read its messages: %d waiting; disconnecting (close %d)",
                    client.address, client.user_agent, depth, CUT_OFF_CODE)
        asyncio.get_running_loop().create_task(_close_quickly(client.connection))

    # ------------------------------------------------------------------ numbers

    def stats(self) -> dict[str, Any]:
        """Clients, queue depths and counters for /metrics and /healthz."""
        depths = [len(c.queue) for c in self.clients]
        return {
            "clients": len(self.clients),
            "general_clients": sum(1 for c in self.clients if c.endpoint_product is None),
            "queued_messages": sum(depths), "max_queue_depth": max(depths, default=0),
            "queue_limit": self.queue_limit, "events_published": self.published,
            # bytes_encoded: the frames built, each event at most once and only when a client carries it
            "bytes_encoded": self.bytes_encoded, "deliveries": self.deliveries, "cut_off": self.cut_off,
        }


async def _close_quickly(connection: ServerConnection) -> None:
    try:
        await asyncio.wait_for(connection.close(CUT_OFF_CODE, "client too slow: reconnect with ?since="),
                               CUT_OFF_CLOSE_WAIT)
    except (TimeoutError, Exception):
        pass
    finally:
        if connection.state is not State.CLOSED:
            abort(connection)
