"""Sparkplug B to the plant broker: the outbox's consumer "sparkplug" through the edge node state machine
(gateway.outputs.sparkplug_node), on the broker of northbound.mqtt (contract plant-integration §1).

Its own MQTT connection (client id `{northbound.mqtt.client_id}-sparkplug`: the JSON northbound keeps
its own beside it), with the NDEATH of that connection's bdSeq as the will. paho runs its network loop
in its own thread (loop_start); every callback is handed to the asyncio loop, so the edge node, its seq
and the cursor are only ever touched there.

Rows are read from the outbox from this consumer's cursor: the ones produced before the births of this
connection go as DDATA with is_historical, oldest first. Sparkplug sends data at QoS 0, so a row counts
as delivered once paho has written it to the socket (on_publish); the cursor is stored per batch after
that, and a batch cut by a lost connection goes again (historical) after the next births.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from datetime import datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import NorthboundSection
from gateway.core.backoff import Backoff
from gateway.core.model import Event
from gateway.core.secrets import read_secret
from gateway.outputs.base import Output
from gateway.outputs.sparkplug_node import EdgeNode, Message
from gateway.outputs.sparkplug_seed import last_bd_seq, seed, store_bd_seq

log = logging.getLogger(__name__)

CONSUMER = "sparkplug"
KINDS = ("measurement", "subgroup", "capability", "alert")  # the events its metrics come from
FETCH_BATCH = 1000
CONNECT_TIMEOUT = 10.0
STOP_GRACE = 0.3


def _ms(iso: Any, default: int) -> int:
    """Milliseconds since the epoch of an ISO time of ours, or default."""
    try:
        return int(datetime.fromisoformat(str(iso)).timestamp() * 1000)
    except ValueError:
        return default


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
        self._consumer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._closed = asyncio.Event()
        self._pending: set[int] = set()  # mids of the batch in flight
        self._written = asyncio.Event()
        self._backoff = Backoff(self.mqtt_config.reconnect_min, self.mqtt_config.reconnect_max)
        self._stopping = False
        self._replay_upto = 0  # rows up to here were stored before the last births: is_historical
        self.published = 0
        self.historical = 0
        self.births = 0
        self.reconnects = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        self._consumer = await self.store.outbox_consumer(CONSUMER, KINDS)
        # the first births show what the store knows (a restart is not "no value"), and the bdSeq goes on
        await seed(self.node, self.store)
        self.node.bd_seq = await last_bd_seq(self.store)
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="sparkplug:connection")

    def publish(self, events: list[Event]) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """NDEATH (a clean DISCONNECT discards the will), then close."""
        self._stopping = True
        client = self._client
        try:
            if client is not None and self._connected.is_set() and not self._closed.is_set():
                topic, payload, qos, retain = self.node.death()
                info = client.publish(topic, payload, qos, retain)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.to_thread(info.wait_for_publish, STOP_GRACE), STOP_GRACE + 0.1)
                client.disconnect()
        finally:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            if client is not None:
                client.loop_stop()

    def stats(self) -> dict[str, Any]:
        return {"connected": self._connected.is_set() and not self._closed.is_set(), "born": self.node.born,
                "bd_seq": self.node.bd_seq, "cursor": self._consumer.cursor if self._consumer else 0,
                "published": self.published, "historical": self.historical, "births": self.births,
                "reconnects": self.reconnects, "last_error": self.last_error}

    # ------------------------------------------------------------------ connection

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._session()
            except (OSError, TimeoutError) as e:
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("sparkplug: %s:%s: %s", self.mqtt_config.host, self.mqtt_config.port, self.last_error)
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("sparkplug: forwarding failed")
            finally:
                if self._client is not None:
                    client, self._client = self._client, None
                    with contextlib.suppress(Exception):
                        client.disconnect()
                    await asyncio.to_thread(client.loop_stop)
            if self._stopping:
                return
            self.reconnects += 1
            await asyncio.sleep(self._backoff.next_delay())

    def _new_client(self, will: Message) -> mqtt.Client:
        cfg = self.mqtt_config
        v5 = cfg.protocol == "5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{cfg.client_id}-sparkplug",
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else True, reconnect_on_failure=False)
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, read_secret(cfg.password_file) if cfg.password_file else None)
        if cfg.tls is not None:
            client.tls_set(ca_certs=cfg.tls.ca_file, certfile=cfg.tls.certificate, keyfile=cfg.tls.private_key,
                           cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(cfg.tls.insecure)
        topic, payload, qos, retain = will
        client.will_set(topic, payload, qos, retain)
        loop = self._loop
        assert loop is not None

        def soon(fn: Any, *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the process is ending
                loop.call_soon_threadsafe(fn, *args)

        client.on_connect = lambda _c, _u, _f, reason, _p: soon(self._on_connect, client, reason)
        client.on_disconnect = lambda _c, _u, _f, _r, _p: soon(self._on_disconnect, client)
        client.on_message = lambda _c, _u, message: soon(self._on_message, client, message.topic,
                                                          bytes(message.payload))
        client.on_publish = lambda _c, _u, mid, _r, _p: soon(self._on_publish, client, mid)
        return client

    async def _session(self) -> None:
        self._connected.clear()
        self._closed.clear()
        will = self.node.connect()
        await store_bd_seq(self.store, self.node.bd_seq)  # before the will exists: a kill -9 may follow
        client = self._client = self._new_client(will)
        cfg = self.mqtt_config
        kwargs: dict[str, Any] = {"clean_start": True} if cfg.protocol == "5" else {}
        await asyncio.to_thread(client.connect, cfg.host, cfg.port, int(cfg.keepalive), **kwargs)
        client.loop_start()
        await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT)
        self._backoff.reset()
        # Sparkplug 3.0: subscribe to the commands and the primary host's STATE before the NBIRTH
        client.subscribe([(topic, 1) for topic in self.node.subscriptions()])
        if self.config.primary_host_id is None:
            self._send(client, self._births())
        await self._drain(client)

    def _births(self) -> list[Message]:
        messages = self.node.births(int(time.time() * 1000))
        if messages:
            self._born()
        return messages

    def _born(self) -> None:
        """After births: the rows stored so far are history to the host (held while we could not send)."""
        self._replay_upto = int(getattr(self.store, "last_seq", 0) or 0)
        self.births += 1
        self._wake.set()

    def _send(self, client: mqtt.Client, messages: list[Message]) -> list[int]:
        mids = []
        for topic, payload, qos, retain in messages:
            mids.append(client.publish(topic, payload, qos, retain).mid)
        return mids

    async def _drain(self, client: mqtt.Client) -> None:
        consumer = self._consumer
        while not self._closed.is_set():
            if not self.node.may_publish():  # not born yet (primary host offline): hold the rows
                self._wake.clear()
                await _first(self._wake, self._closed, timeout=1.0)
                continue
            self._wake.clear()
            rows = await consumer.fetch(consumer.cursor, FETCH_BATCH)
            if not rows:
                await _first(self._wake, self._closed, timeout=1.0)
                continue
            now = int(time.time() * 1000)
            self._pending = set()
            self._written.clear()
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
                self._pending.add(client.publish(*message).mid)
                self.published += 1
                self.historical += historical
            else:
                if self._pending:
                    await _first(self._written, self._closed, timeout=CONNECT_TIMEOUT)
                if not self._pending:  # every row of the batch went to the socket: the host has them
                    await asyncio.shield(consumer.advance(rows[-1].seq))
                continue
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ paho callbacks (on the loop)

    def _on_connect(self, client: mqtt.Client, reason: Any) -> None:
        if client is not self._client:
            return
        if getattr(reason, "is_failure", False):
            self.last_error = f"broker refused the connection: {reason}"
            client.disconnect()
            return
        self.last_error = None
        self._connected.set()
        log.info("sparkplug: connected to %s:%s (bdSeq %d)", self.mqtt_config.host, self.mqtt_config.port,
                 self.node.bd_seq)

    def _on_disconnect(self, client: mqtt.Client) -> None:
        if client is self._client:
            self._closed.set()
            self._wake.set()

    def _on_publish(self, client: mqtt.Client, mid: int) -> None:
        if client is self._client and mid in self._pending:
            self._pending.discard(mid)
            if not self._pending:
                self._written.set()

    def _on_message(self, client: mqtt.Client, topic: str, payload: bytes) -> None:
        if client is not self._client:
            return
        now = int(time.time() * 1000)
        if topic == self.node.topic("NCMD"):
            messages = self.node.on_ncmd(payload, now)
            if messages:
                self._born()
        elif topic.startswith("spBv1.0/STATE/"):
            born = self.node.born
            messages = self.node.on_state(payload, now)
            if messages:
                self._born()
            elif born and not self.node.born:
                log.info("sparkplug: primary host %s offline: holding data", self.config.primary_host_id)
        else:
            return
        self._send(client, messages)
        self._wake.set()


async def _first(*events: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
