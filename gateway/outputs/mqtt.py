"""Northbound MQTT: the SQLite outbox -> the plant broker; a row leaves the outbox only on the broker's ack.

The connection (paho on the asyncio loop, reconnect with backoff, the clean stop) is
gateway.outputs.mqtt_link, shared with the Sparkplug output. A fresh paho Client per connection: rows
unacknowledged when a connection ends are re-sent from the outbox, oldest first, marked `"replayed": true`.

The northbound is one consumer of the outbox (gateway.store.outbox, named "mqtt"): it advances its cursor
past the rows the broker confirmed, in seq order, and a row is deleted once every consumer has it. A row
the broker refuses (MQTT 5 reason code) is held: the cursor moves on, and the row goes again once the
drain has caught up, at most every HELD_RETRY seconds (also after a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from gateway.config import NorthboundMQTT
from gateway.config.topics import TOPIC_TYPES
from gateway.config.topics import topic_for as topic_for  # where the tests and the bench have found it
from gateway.core.model import Event
from gateway.core.texts import text
from gateway.outputs.base import Output
from gateway.outputs.mqtt_link import STOP_GRACE, Connection, MqttLink, first_of

log = logging.getLogger(__name__)

FETCH_BATCH = 1000  # outbox rows read per query (the bound of the read-ahead buffer)
DELETE_BATCH = 2000  # acknowledgements after which the cursor is stored at once
DELETE_DELAY = 0.05  # seconds an acknowledgement may wait to be stored together with others
CONSUMER = "mqtt"  # this output's name among the outbox's consumers (its stored cursor)
HELD_RETRY = 60.0  # seconds between two sends of the rows a broker refused (once caught up)
MONITOR_INTERVAL = 1.0  # seconds between outbox size checks (buffer_limit, 80 % alert, /metrics)
HIGH_WATER = 0.8  # outbox fill that raises "outbox_high"
LOW_WATER = 0.7  # below this the next crossing of HIGH_WATER raises it again

AlertCallback = Callable[..., Any]  # on_alert(kind, **values): worded as the STORAGE alert alert.STORAGE.<kind>


def mark_replayed(payload: bytes) -> bytes:
    """The same JSON object with `"replayed": true` added, without parsing it (the drain's hot path)."""
    body = payload.rstrip()
    if not body.endswith(b"}"):  # not an object: nothing to mark, forward it as it is
        return payload
    head = body[:-1].rstrip()
    return head + (b'"replayed":true}' if head.endswith(b"{") else b',"replayed":true}')


@dataclass(eq=False)
class _Session(Connection):
    """One connection's rows in flight; callbacks of an older session are ignored."""

    replay_upto: int = 0  # seqs up to this were produced before this connection: history, marked replayed
    mids: dict[int, int] = field(default_factory=dict)  # message id -> seq, for rows in flight
    kinds: dict[int, str] = field(default_factory=dict)  # seq -> kind, for rows in flight
    order: deque[int] = field(default_factory=deque)  # seqs published past the cursor, in seq order
    finished: set[int] = field(default_factory=set)  # of those, acknowledged or held (not yet at order[0])
    sent_upto: int = 0  # every row of ours up to here was published on this connection or before
    status_mid: int | None = None  # the retained online/offline status message in flight
    room: asyncio.Event = field(default_factory=asyncio.Event)  # set while in-flight < max_inflight


class Northbound(Output):
    """Forwards the outbox to the plant broker; `wake()` after each commit, `stats()` for /metrics."""

    name = "northbound"
    stop_timeout = 1.0

    def __init__(self, config: NorthboundMQTT, store: Any, *, gateway_name: str, version: str,
                 product_codes: list[str] | tuple[str, ...], on_alert: AlertCallback,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.store = store
        self.gateway_name = gateway_name
        self.version = version
        self.product_codes = list(product_codes)
        self.on_alert = on_alert
        self.clock = clock
        self.status_topic = f"{config.topic_prefix}/status"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._monitor_task: asyncio.Task[None] | None = None
        self.link = MqttLink(config, name="northbound", client_id=config.client_id, will=self._will,
                             serve=self._drain, new_connection=self._new_session,
                             on_connected=self._on_connected, on_closed=lambda s: s.room.set(),
                             on_publish=self._on_publish)
        self._consumer: Any = None  # the outbox consumer (gateway.store.outbox.OutboxConsumer), from start()
        self._cursor = 0  # every row of ours up to here is confirmed (or held); stored by _flush_deletes
        self._skip: set[int] = set()  # confirmed seqs above the cursor (acks out of order): never resend
        self._held: dict[int, str] = {}  # rows the broker refused: seq -> kind, sent first on each connection
        self._hold_new: list[tuple[int, str]] = []  # refused since the last flush
        self._held_done: list[int] = []  # held rows confirmed since the last flush
        self._unflushed = 0  # acknowledgements since the last flush
        self._held_retry_at = 0.0  # monotonic time after which the held rows go again
        self._delete_handle: asyncio.TimerHandle | None = None
        self._last_delete: asyncio.Future[Any] | None = None
        self._outbox: dict[str, Any] = {"depth": 0, "bytes": 0, "oldest_at": None, "dropped": 0}
        self._high = False
        self.published = 0  # messages the broker confirmed
        self.replayed = 0  # of those, sent marked replayed
        self.rejected = 0  # MQTT 5 acks with a failure reason: kept in the outbox
        self.dropped = 0  # measurements dropped by buffer_limit since start

    # ------------------------------------------------------------------ lifecycle

    @property
    def _session(self) -> _Session | None:
        return self.link.connection

    @property
    def reconnects(self) -> int:
        return self.link.reconnects

    @property
    def last_error(self) -> str | None:
        return self.link.last_error

    @last_error.setter
    def last_error(self, value: str | None) -> None:
        self.link.last_error = value

    async def start(self) -> None:
        """Check the settings, then connect and forward in the background (a down broker is not an error)."""
        self.link.check()  # the password and TLS files: fail now, with a precise message
        kinds = [k for k in TOPIC_TYPES if k in self.config.publish]
        self._consumer = await self.store.outbox_consumer(CONSUMER, kinds)
        self._cursor = self._consumer.cursor
        self._held = self._consumer.held
        self._loop = asyncio.get_running_loop()
        self.link.start()
        self._monitor_task = asyncio.create_task(self._monitor(), name="northbound:outbox")

    def wake(self) -> None:
        """New outbox rows are committed: publish them now instead of at the next poll."""
        self._wake.set()

    def publish(self, events: list[Event]) -> None:
        """Committed events: their outbox rows are in the file now; the drain reads them from there."""
        self._wake.set()

    async def stop(self) -> None:
        """Publish `offline`, disconnect cleanly, hand the pending deletes to the store."""
        try:
            await self.link.stop((self.status_topic, self._status("offline"), self.config.qos, True))
        finally:  # even when the caller's timeout cancels us: no task, socket or acknowledged seq left behind
            if self._monitor_task is not None:
                self._monitor_task.cancel()
                await asyncio.gather(self._monitor_task, return_exceptions=True)
                self._monitor_task = None
            self._flush_deletes()
            if self._last_delete is not None:  # batches commit in order: the last covers all before it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._last_delete), STOP_GRACE)

    def stats(self) -> dict[str, Any]:
        """Outbox depth, bytes, oldest age, drops, in-flight, connection: for /metrics and /healthz."""
        session = self._session
        oldest = self._outbox.get("oldest_at")
        return {
            "connected": bool(session and session.connected.is_set() and not session.closed.is_set()),
            "depth": self._outbox.get("depth", 0), "bytes": self._outbox.get("bytes", 0),
            "buffer_limit": self.config.buffer_limit,
            "oldest_age_s": None if oldest is None else round(max(0.0, self.clock() - oldest), 3),
            "dropped": max(self._outbox.get("dropped", 0) or 0, self.dropped),
            "inflight": len(session.mids) if session else 0, "published": self.published,
            "replayed": self.replayed, "rejected": self.rejected, "reconnects": self.reconnects,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ connection (mqtt_link's hooks)

    def _new_session(self) -> _Session:
        # the seqs produced so far are history for this connection, whatever its drain finds
        return _Session(replay_upto=int(getattr(self.store, "last_seq", 0) or 0))

    async def _will(self) -> tuple[str, bytes, int, bool]:
        return self.status_topic, self._status("offline"), self.config.qos, True

    def _on_connected(self, session: _Session) -> None:
        info = session.client.publish(self.status_topic, self._status("online"), self.config.qos, retain=True)
        session.status_mid = info.mid

    # ------------------------------------------------------------------ draining the outbox

    async def _drain(self, session: _Session) -> None:
        """Publish outbox rows in seq order from the cursor until the connection closes, and once caught up
        the held ones (refused before); after a reconnect everything unconfirmed goes again."""
        client, qos, limit = session.client, self.config.qos, self.config.max_inflight
        session.room.set()
        consumer = self._consumer
        cursor = session.sent_upto = self._cursor
        ahead: deque[Any] = deque()
        resending = 0  # the first rows of `ahead` are held rows, older than the cursor
        while not session.closed.is_set():
            if len(session.mids) >= limit:
                session.room.clear()
                await session.room.wait()
                continue
            if not ahead:
                self._wake.clear()
                rows = await consumer.fetch(cursor, FETCH_BATCH)
                if not rows and self._held and time.monotonic() >= self._held_retry_at:
                    # caught up: now the rows a broker refused. Not first: mosquitto closes the
                    # connection after a refusal, and a row refused for good must not stop the rest.
                    self._held_retry_at = time.monotonic() + HELD_RETRY
                    held_rows = await consumer.fetch_held(self._held)  # some may not be stored yet
                    gone = set(self._held) - {r.seq for r in held_rows}  # dropped by buffer_limit meanwhile
                    if gone:
                        self._confirm_held(gone)
                    ahead.extend(held_rows)
                    resending = len(held_rows)
                    continue
                if not rows:  # wait for a commit; poll anyway in case a wake() was missed
                    await first_of(self._wake, session.closed, timeout=MONITOR_INTERVAL)
                    continue
                ahead.extend(rows)
                cursor = rows[-1].seq
                continue
            row = ahead.popleft()
            seq = row.seq
            if resending:
                resending -= 1
            elif seq in self._skip or seq in self._held or seq <= self._cursor:
                # confirmed already (or sent above as a held row): nothing to send
                session.sent_upto = max(session.sent_upto, seq)
                continue
            else:
                session.order.append(seq)
                session.sent_upto = seq
            payload = mark_replayed(row.payload) if seq <= session.replay_upto else row.payload
            info = client.publish(row.topic, payload, qos)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                # paho refused it (its mid is still taken by an unacknowledged message): it is not in
                # flight and never will be; start over on a new connection, which replays it
                raise RuntimeError(f"paho did not queue seq {seq} (mid {info.mid} in use)")
            session.mids[info.mid] = seq
            session.kinds[seq] = row.kind

    def _on_publish(self, client: mqtt.Client, session: _Session, mid: int, reason: Any, _props: Any) -> None:
        seq = session.mids.pop(mid, None)
        if seq is None:
            if mid == session.status_mid:
                session.status_mid = None  # mids wrap at 65535: this one will name a data message later
            return
        kind = session.kinds.pop(seq, "")
        if len(session.mids) < self.config.max_inflight:
            session.room.set()
        refused = reason is not None and getattr(reason, "is_failure", False)
        if refused:
            # MQTT 5 broker refused it (e.g. not authorized): keep the row, it goes again next connection
            self.rejected += 1
            self.last_error = f"broker refused seq {seq}: {reason}"
            log.warning("northbound: %s", self.last_error)
            if seq in self._held:
                return
            self._held[seq] = kind
            self._hold_new.append((seq, kind))
            self._held_retry_at = time.monotonic() + HELD_RETRY  # not at once: the rest goes first
        else:
            self.published += 1
            if seq <= session.replay_upto:
                self.replayed += 1
            if seq in self._held:
                del self._held[seq]
                self._held_done.append(seq)
        if seq > self._cursor and session is self._session:
            session.finished.add(seq)
            order = session.order
            while order and order[0] in session.finished:
                session.finished.discard(order.popleft())
            point = order[0] - 1 if order else session.sent_upto
            if point > self._cursor:
                self._cursor = point
                if self._skip:
                    self._skip = {s for s in self._skip if s > point}
            if seq in session.finished:  # confirmed above the cursor: a reconnect must not send it again
                self._skip.add(seq)
        self._unflushed += 1
        if self._unflushed >= DELETE_BATCH:
            self._flush_deletes()
        elif self._delete_handle is None and self._loop is not None:
            self._delete_handle = self._loop.call_later(DELETE_DELAY, self._flush_deletes)

    def _confirm_held(self, seqs: set[int]) -> None:
        for seq in seqs:
            self._held.pop(seq, None)
        self._held_done.extend(seqs)
        self._flush_deletes()

    def _flush_deletes(self) -> None:
        """Store the cursor, the held rows and the held rows confirmed, as one batch; the store deletes
        the rows every consumer has."""
        if self._delete_handle is not None:
            self._delete_handle.cancel()
            self._delete_handle = None
        consumer = self._consumer
        if consumer is None or (self._cursor <= consumer.cursor and not self._hold_new and not self._held_done):
            return
        hold, self._hold_new = self._hold_new, []
        done, self._held_done = self._held_done, []
        self._unflushed = 0
        self._last_delete = consumer.advance(self._cursor, hold=hold, done=done)

    # ------------------------------------------------------------------ outbox limits

    async def _monitor(self) -> None:
        """Enforce buffer_limit (oldest measurements go first), raise the 80 % and drop alerts."""
        limit = self.config.buffer_limit
        while True:
            try:
                outbox = await self.store.outbox_stats()
                if outbox["bytes"] > limit:
                    dropped = await self.store.outbox_trim(limit)
                    if dropped:
                        self.dropped += dropped
                        await self._alert("outbox_dropped", n=dropped, limit=_mb(limit))
                        outbox = await self.store.outbox_stats()
                self._outbox = outbox
                fill = outbox["bytes"] / limit if limit else 0.0
                if fill >= HIGH_WATER and not self._high:
                    self._high = True
                    await self._alert("outbox_high", fill=f"{fill:.0%}", depth=outbox["depth"],
                                      size=_mb(outbox["bytes"]), limit=_mb(limit))
                elif fill < LOW_WATER:
                    self._high = False
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("northbound: outbox check failed")
            await asyncio.sleep(MONITOR_INTERVAL)

    async def _alert(self, kind: str, **values: Any) -> None:
        log.warning("northbound: %s: %s", kind, text("en", f"alert.STORAGE.{kind}", **values))
        try:
            result = self.on_alert(kind, **values)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("northbound: on_alert(%s) failed", kind)

    def _status(self, status: str) -> bytes:
        # the epoch tells a consumer at "online" that seq restarted with a new database (store_schema _V4)
        return json.dumps({"status": status, "gateway": self.gateway_name, "version": self.version,
                           "products": self.product_codes, "epoch": getattr(self.store, "epoch", None)},
                          ensure_ascii=False).encode()


def _mb(n: int) -> str:
    """Bytes for people: MB, or kB below one (a small test limit would read "0.0 MB")."""
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{n / 1e3:.0f} kB"
