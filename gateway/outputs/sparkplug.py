"""Sparkplug B to the plant broker: the outbox's consumer "sparkplug" through the edge node state machine
(gateway.outputs.sparkplug_node), on the broker of northbound.mqtt (contract plant-integration §1).

Its own MQTT connection (client id `{northbound.mqtt.client_id}-sparkplug`: the JSON northbound keeps
its own beside it), made by gateway.outputs.mqtt_link like the northbound's, with the NDEATH of that
connection's bdSeq as the will; paho runs on the asyncio loop, so the edge node, its seq and the cursor
are only ever touched there.

Rows are read from the outbox from this consumer's cursor: the ones produced before the births of this
connection go as DDATA with is_historical, oldest first. Sparkplug sends data at QoS 0, so a row counts
as delivered once paho has written it to the socket (on_publish); the cursor is stored per batch after
that, and a batch cut by a lost connection goes again (historical) after the next births.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from gateway.config import NorthboundSection
from gateway.core.model import Event
from gateway.outputs.base import Output
from gateway.outputs.mqtt_link import CONNECT_TIMEOUT, Connection, Message, MqttLink, first_of
from gateway.outputs.sparkplug_node import NAMESPACE, EdgeNode
from gateway.outputs.sparkplug_seed import last_bd_seq, seed, store_bd_seq

log = logging.getLogger(__name__)

CONSUMER = "sparkplug"
KINDS = ("measurement", "subgroup", "capability", "alert")  # the events its metrics come from
FETCH_BATCH = 1000
BD_SEQ_WRITE = 5.0  # seconds the bdSeq's commit may take before the connect goes on without it


def _ms(iso: Any, default: int) -> int:
    """Milliseconds since the epoch of an ISO time of ours, or default."""
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp() * 1000)
    except ValueError:
        return default


@dataclass(eq=False)
class _Session(Connection):
    pending: set[int] = field(default_factory=set)  # mids of the batch in flight
    written: asyncio.Event = field(default_factory=asyncio.Event)  # the whole batch went to the socket


class SparkplugOutput(Output):
    name = "sparkplug"
    stop_timeout = 1.0

    def __init__(self, config: NorthboundSection, store: Any, products: list[Any]):
        assert config.sparkplug is not None
        self.mqtt_config = config.mqtt
        self.config = config.sparkplug
        self.store = store
        self.node = EdgeNode(self.config.group_id, self.config.edge_node_id,
                             [(p.id, p.code, [c.name for c in p.characteristics]) for p in products],
                             primary_host_id=self.config.primary_host_id)
        self.link = MqttLink(config.mqtt, name="sparkplug", client_id=f"{config.mqtt.client_id}-sparkplug",
                             will=self._will, serve=self._serve, new_connection=_Session,
                             on_closed=lambda _s: self._wake.set(), on_publish=self._on_publish,
                             on_message=self._on_message)
        self._consumer: Any = None
        self._wake = asyncio.Event()
        self._births_lock = asyncio.Lock()  # births and STATE one at a time, in the order they came
        self._commands: set[asyncio.Task[None]] = set()
        self._replay_upto = 0  # rows up to here were stored before the last births: is_historical
        self.published = 0
        self.historical = 0
        self.births = 0

    async def start(self) -> None:
        self.link.check()  # the password and TLS files: fail now, with a precise message
        self._consumer = await self.store.outbox_consumer(CONSUMER, KINDS)
        self.node.bd_seq = await last_bd_seq(self.store)  # it goes on across restarts
        self.link.start()

    def publish(self, events: list[Event]) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """NDEATH, then a clean DISCONNECT (which makes the broker discard the will)."""
        for task in list(self._commands):
            task.cancel()
        await self.link.stop(self.node.death())

    def stats(self) -> dict[str, Any]:
        return {"connected": self.link.is_connected, "born": self.node.born, "bd_seq": self.node.bd_seq,
                "cursor": self._consumer.cursor if self._consumer else 0, "published": self.published,
                "metrics": self.node.metrics_sent,
                "historical": self.historical, "births": self.births, "reconnects": self.link.reconnects,
                "last_error": self.link.last_error}

    # ------------------------------------------------------------------ connection (mqtt_link's hooks)

    async def _will(self) -> Message:
        will = self.node.connect()
        try:  # stored before the will exists: a kill -9 may follow
            await asyncio.wait_for(store_bd_seq(self.store, self.node.bd_seq), BD_SEQ_WRITE)
        except Exception as e:  # a database that cannot be written must not also stop what can still be sent
            log.warning("sparkplug: bdSeq %d not stored (%s): a restart may number it again",
                        self.node.bd_seq, e)
        return will

    async def _serve(self, session: _Session) -> None:
        log.info("sparkplug: bdSeq %d", self.node.bd_seq)
        # Sparkplug 3.0: subscribe to the commands and the primary host's STATE before the NBIRTH
        session.client.subscribe([(topic, 1) for topic in self.node.subscriptions()])
        if self.config.primary_host_id is None:
            await self._births(session, self.node.births)
        await self._drain(session)

    async def _births(self, session: _Session, act: Callable[[int], list[Message]]) -> None:
        """Births (from a connect, an NCMD, a STATE) that show the newest stored values: the rows stored
        so far and not yet sent go after them as history, and must not be newer than what the births
        show (after an outage, the host would keep pre-outage values as current)."""
        async with self._births_lock:
            upto = int(getattr(self.store, "last_seq", 0) or 0)
            try:
                await seed(self.node, self.store)
            except Exception as e:  # births with what the node has beat no births at all
                log.warning("sparkplug: births without the store's latest values: %s", e)
            if session is not self.link.connection or session.closed.is_set():
                return  # the next connection starts its own session state (node.connect)
            messages = act(int(time.time() * 1000))
            if messages:
                self._replay_upto = upto
                self.births += 1
            self._send(session.client, messages)
            self._wake.set()

    @staticmethod
    def _send(client: mqtt.Client, messages: list[Message]) -> None:
        for message in messages:
            client.publish(*message)

    async def _drain(self, session: _Session) -> None:
        consumer, client = self._consumer, session.client
        while not session.closed.is_set():
            if not self.node.may_publish():  # not born yet (primary host offline): hold the rows
                self._wake.clear()
                await first_of(self._wake, session.closed, timeout=1.0)
                continue
            self._wake.clear()
            rows = await consumer.fetch(consumer.cursor, FETCH_BATCH)
            if not rows:
                await first_of(self._wake, session.closed, timeout=1.0)
                continue
            now = int(time.time() * 1000)
            session.pending = set()
            session.written.clear()
            for row in rows:
                body = orjson.loads(row.payload)
                inner = body.get(body.get("type"), {}) if isinstance(body, dict) else {}
                stamp = _ms(inner.get("measured_at") or inner.get("analyzed_at") or body.get("timestamp"), now)
                historical = row.seq <= self._replay_upto
                message = self.node.data(body, stamp, historical=historical)
                if message is None:
                    if not self.node.may_publish():
                        break  # the host went offline meanwhile: this row and the rest wait
                    continue
                session.pending.add(client.publish(*message).mid)
                self.published += 1
                self.historical += historical
            else:
                if session.pending:
                    await first_of(session.written, session.closed, timeout=CONNECT_TIMEOUT)
                if not session.pending:  # every row of the batch went to the socket: the host has them
                    await asyncio.shield(consumer.advance(rows[-1].seq))
                continue
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ paho callbacks (on the loop)

    def _on_publish(self, client: mqtt.Client, session: _Session, mid: int, _reason: Any, _props: Any) -> None:
        if session is self.link.connection and mid in session.pending:
            session.pending.discard(mid)
            if not session.pending:
                session.written.set()

    def _on_message(self, client: mqtt.Client, session: _Session, message: Any) -> None:
        if session is not self.link.connection:
            return
        topic, payload = message.topic, bytes(message.payload)
        act: Callable[[int], list[Message]]
        if topic == self.node.topic("NCMD"):
            if not self.node.asks_rebirth(payload):
                return
            act = self.node.births
        elif topic.startswith(f"{NAMESPACE}/STATE/"):
            act = functools.partial(self._on_state, payload)
        else:
            return
        task = asyncio.create_task(self._births(session, act), name="sparkplug:command")
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    def _on_state(self, payload: bytes, now: int) -> list[Message]:
        born = self.node.born
        messages = self.node.on_state(payload, now)
        if born and not self.node.born:
            log.info("sparkplug: primary host %s offline: holding data", self.config.primary_host_id)
        return messages
