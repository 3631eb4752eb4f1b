"""MQTT in (paho-mqtt 2.x): gauges that publish their readings to the line broker themselves.

QoS 1 with a persistent session, and each message acknowledged to the broker only after its
measurement is committed to SQLite (paho `manual_ack`): a crash loses nothing the broker delivered.
One paho client and one network thread per connection; that thread is the only one that touches the
socket (acks committed on the asyncio loop are queued to it), and `run()` owns the reconnects.
Messages cross from the thread to the loop through a deque: at most `MAX_UNACKED` are unacknowledged.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import functools
import json
import logging
import math
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config import MqttAddress
from gateway.config import MqttSource as MqttSourceConfig
from gateway.model import Measurement
from gateway.sources.base import Backoff, Binding, Sink, Source
from gateway.sources.sampling import Sampler

log = logging.getLogger(__name__)

MAX_UNACKED = 20_000  # messages received but not yet committed+acknowledged, per connection
MAX_PAYLOAD = 64 * 1024  # bytes; a gauge reading never needs more, garbage is refused unread
SESSION_EXPIRY = 7 * 24 * 3600  # seconds the broker keeps our session (MQTT 5) while we are away
CONNECT_TIMEOUT = 10.0  # seconds from TCP connect to CONNACK
ACK_FLUSH = 0.005  # seconds the network thread waits at most before sending queued acks
IDLE_WAIT = 0.5  # seconds the network thread waits when no ack is pending
LOG_EVERY = 10.0  # seconds between two log lines about malformed payloads
RECV_CHUNK = 64 * 1024  # bytes read from the socket at once (paho alone reads a packet in 3+ recv calls)
_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, packet id (MQTT 3.1.1 and 5: success)


class MalformedPayload(ValueError):
    """A message whose payload is not a usable reading (the text says why)."""


def _dig(document: Any, path: str) -> Any:
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise MalformedPayload(f"no {path!r} in the JSON payload")
    return node


def _finite(raw: Any, what: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise MalformedPayload(f"{what} is not a number: {str(raw)[:40]!r}")
    try:
        number = float(raw)
    except ValueError:
        raise MalformedPayload(f"{what} is not a number: {str(raw)[:40]!r}") from None
    if not math.isfinite(number):
        raise MalformedPayload(f"{what} is not finite: {raw!r}")
    return number


def parse_timestamp(raw: Any) -> float:
    """ISO 8601 (no offset = UTC) or epoch seconds/milliseconds -> POSIX seconds."""
    if isinstance(raw, str):
        try:
            return _finite(raw, "timestamp") if raw.strip().replace(".", "", 1).isdigit() else _iso(raw)
        except ValueError as exc:
            raise MalformedPayload(f"timestamp {raw[:40]!r} is neither ISO 8601 nor epoch") from exc
    number = _finite(raw, "timestamp")
    # 1e11 s is the year 5138, 1e11 ms is 1973: anything that large is milliseconds.
    return number / 1000.0 if number > 1e11 else number


def _iso(text: str) -> float:
    stamp = _dt.datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.UTC)
    return stamp.timestamp()


def parse_payload(payload: bytes, address: MqttAddress) -> tuple[float, float | None, str | None]:
    """A message -> (value, source time or None, timestamp text or None); MalformedPayload otherwise."""
    if len(payload) > MAX_PAYLOAD:
        raise MalformedPayload(f"payload of {len(payload)} bytes (more than {MAX_PAYLOAD})")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise MalformedPayload("payload is not UTF-8 text") from None
    if address.value is None:
        return _finite(text, "payload"), None, None
    try:
        document = json.loads(text)
    except ValueError:
        raise MalformedPayload(f"payload is not JSON: {text[:40]!r}") from None
    value = _finite(_dig(document, address.value), address.value)
    if address.timestamp is None:
        return value, None, None
    raw = _dig(document, address.timestamp)
    return value, parse_timestamp(raw), str(raw)


@dataclass(slots=True)
class _Delivery:
    """A parsed message on its way from the network thread to the loop."""

    reader: _Reader
    value: float
    source_time: float | None
    stamp: str | None
    received_at: float
    mid: int
    qos: int
    connection: _Connection


@dataclass
class _Reader:
    binding: Binding
    topic: str
    sampler: Sampler


def _read_secret(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").strip()


class _BufferedClient(paho.Client):
    """paho's client, reading the socket in chunks and acknowledging in bulk (the drain's hot path).

    paho reads every packet with three or more recv() calls (type byte, length bytes, rest) and runs
    one select() per packet; at thousands of messages a second those system calls, each taking and
    giving back the GIL, cost more than the SPC. Here one recv() fetches whatever has arrived and
    `loop_read` handles every packet in it before paho selects again, so bytes never wait in the
    buffer while paho sleeps in select(). `ack_many` queues the PUBACKs of a whole commit as one
    write; without per-topic callbacks, paho's topic matcher is skipped. These lean on paho 2.x
    internals (`_sock_recv`, `_packet_queue`, `_handle_on_message`); `buffered` is False when those
    are missing, and plain paho is used.
    """

    buffered = all(hasattr(paho.Client, name) for name in ("_sock_recv", "_sock_close", "_packet_queue",
                                                          "_handle_on_message", "_easy_log"))

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        pos, buf = self._rpos, self._rbuf
        if pos >= len(buf):
            buf = super()._sock_recv(RECV_CHUNK)  # BlockingIOError when nothing arrived; b"" at EOF
            if not buf:
                return buf
            self._rbuf, pos = buf, 0
        end = pos + bufsize
        self._rpos = end
        return buf[pos:end]

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0  # bytes of a lost connection mean nothing on the next one
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle every packet already read from the socket, not just one."""
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._rpos < len(self._rbuf) and self._sock is not None:
            rc = super().loop_read(max_packets)
        return rc

    def message_callback_add(self, sub: str, callback: Any) -> None:
        """Per-topic callbacks: allowed, but then every message goes through paho's topic matcher."""
        self._filtered = True
        super().message_callback_add(sub, callback)

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        # Without per-topic callbacks paho still runs its topic matcher for every message; skip it.
        if getattr(self, "_filtered", False):
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:  # what paho does: log, re-raise unless told to suppress
                self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK for each QoS-1 message id, queued as one write (manual_ack)."""
        if not self.buffered:
            for mid in mids:
                self.ack(mid, 1)
            return
        packet = b"".join([_PUBACK.pack(paho.PUBACK, 2, mid) for mid in mids])
        self._packet_queue(paho.PUBACK, packet, 0, 0)


def _new_client(config: MqttSourceConfig, client_id: str, *, persistent: bool, manual_ack: bool) -> paho.Client:
    v5 = config.protocol == "5"
    kwargs: dict[str, Any] = {} if v5 else {"clean_session": not persistent}
    cls = _BufferedClient if _BufferedClient.buffered else paho.Client
    client = cls(CallbackAPIVersion.VERSION2, client_id=client_id,
                 protocol=paho.MQTTv5 if v5 else paho.MQTTv311, manual_ack=manual_ack, **kwargs)
    client.connect_timeout = CONNECT_TIMEOUT
    if config.username:
        client.username_pw_set(config.username, _read_secret(config.password_file) if config.password_file else None)
    if config.tls is not None:
        client.tls_set(ca_certs=config.tls.ca_file, certfile=config.tls.certificate, keyfile=config.tls.private_key)
        if config.tls.insecure:
            client.tls_insecure_set(True)
    return client


class _Connection:
    """One paho client, one network thread: connect, read, send queued acks, until closed or lost."""

    def __init__(self, source: MqttSource, loop: asyncio.AbstractEventLoop):
        self.source = source
        self.loop = loop
        config = source.config
        self.client = _new_client(config, config.client_id, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.acks: collections.deque[tuple[int, int]] = collections.deque()  # at most MAX_UNACKED
        # Each counter is written by one thread only; their difference says whether acks are due soon.
        self.received = 0  # network thread: messages handed to the loop
        self.settled = 0  # loop: of those, committed or skipped
        self.closing = False
        self._nudge_scheduled = False
        self.connected: asyncio.Future[bool] = loop.create_future()  # result: session present
        self.ended: asyncio.Future[str] = loop.create_future()  # result: why the connection ended
        self.thread = threading.Thread(target=self._main, name=f"mqtt-in:{config.name}", daemon=True)

    # -------------------------------------------------------------- on the loop

    def committed(self, mid: int, qos: int) -> None:
        """The measurement is on disk (or was not a part): acknowledge the message to the broker."""
        self.settled += 1
        if qos > 0 and not self.closing:
            self.acks.append((mid, qos))
            if not self._nudge_scheduled:  # once per loop iteration, after the whole commit's acks
                self._nudge_scheduled = True
                self.loop.call_soon(self._nudge)

    def _nudge(self) -> None:
        """Wake the network thread from select() so the acks go out now, not at its next timeout:
        the broker's in-flight window stays open (paho's own wake-up socket, as publish() uses it)."""
        self._nudge_scheduled = False
        wake = getattr(self.client, "_sockpairW", None)
        if wake is not None:
            try:
                wake.send(b"\0")
            except OSError:  # full (a wake-up is pending anyway) or closed (the connection is ending)
                pass

    async def close(self) -> None:
        self.closing = True
        await asyncio.to_thread(self.thread.join, 5.0)

    def _settle(self, future: asyncio.Future[Any], result: Any) -> None:
        def settle() -> None:
            if not future.done():
                future.set_result(result)
        self.loop.call_soon_threadsafe(settle)

    # -------------------------------------------------------------- on the network thread

    def _main(self) -> None:
        config = self.source.config
        why = "closed"
        try:
            if config.protocol == "5":
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = SESSION_EXPIRY
                # The broker sends at most this many unacknowledged messages: our bound, enforced by it.
                props.ReceiveMaximum = min(MAX_UNACKED, 65535)
                self.client.connect(config.host, config.port, int(config.keepalive), clean_start=False,
                                    properties=props)
            else:
                self.client.connect(config.host, config.port, int(config.keepalive))
            while not self.closing:
                rc = self.client.loop(ACK_FLUSH if self.received != self.settled else IDLE_WAIT)
                self._flush_acks()
                if rc != paho.MQTT_ERR_SUCCESS:
                    why = f"connection lost / 연결 끊김: {paho.error_string(rc)}"
                    break
            else:
                self._flush_acks()
                self.client.disconnect()
        except Exception as exc:  # refused, DNS, TLS: the loop side backs off and tries again
            why = f"connection failed / 연결 실패: {exc}"
        finally:
            self.closing = True
            self._settle(self.connected, why)
            self._settle(self.ended, why)

    def _flush_acks(self) -> None:
        if not self.acks:
            return
        puback: list[int] = []
        while self.acks:
            mid, qos = self.acks.popleft()
            if qos == 1 and isinstance(self.client, _BufferedClient):
                puback.append(mid)
            else:
                self.client.ack(mid, qos)
        if puback:
            self.client.ack_many(puback)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._settle(self.connected, f"broker refused the connection / 브로커 연결 거부: {reason}")
            self.closing = True
            return
        topics = sorted({r.topic for r in self.source.readers})
        if topics:
            client.subscribe([(topic, self.source.config.qos) for topic in topics])
        self._settle(self.connected, bool(flags.session_present))

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: list[Any], props: Any) -> None:
        for reason in reasons:
            if reason.is_failure:
                log.error("%s: broker refused a subscription / 구독 거부: %s", self.source.config.name, reason)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        source = self.source
        reader = source.topic_reader(message.topic)
        if reader is None:
            # A subscription left in the persistent session by an older configuration.
            source.malformed(message.topic, "no characteristic reads this topic")
            client.ack(message.mid, message.qos)
            return
        try:
            value, source_time, stamp = parse_payload(message.payload, reader.binding.characteristic.mqtt)
        except MalformedPayload as exc:
            source.malformed(message.topic, str(exc))
            client.ack(message.mid, message.qos)  # garbage must not come back forever
            return
        # The bound: hold this thread (the broker then waits for acks) rather than buffer without end.
        # A plain counter check, not a Semaphore: this runs for every message and must stay cheap.
        while self.received - self.settled >= MAX_UNACKED:
            if self.closing:
                return
            time.sleep(0.01)
        self.received += 1
        source.hand_over(_Delivery(reader, value, source_time, stamp, time.time(), message.mid, message.qos, self))


class MqttSource(Source):
    """Subscribes one topic per characteristic on one broker; acknowledges after commit."""

    def __init__(self, config: MqttSourceConfig, bindings: list[Binding], sink: Sink):
        super().__init__(config, bindings, sink)
        self.config: MqttSourceConfig = config
        self.readers: list[_Reader] = []
        for binding in bindings:
            address = binding.characteristic.mqtt
            if address is None:
                raise ValueError(f"characteristic {binding.characteristic.name} has no mqtt address")
            self.readers.append(_Reader(binding, address.topic, Sampler(binding.characteristic.sampling.mode)))
        self._exact = {r.topic: r for r in self.readers if "+" not in r.topic and "#" not in r.topic}
        self._wildcards = [r for r in self.readers if r.topic not in self._exact]
        self._inbox: collections.deque[_Delivery] = collections.deque()  # <= MAX_UNACKED per connection
        self._inbox_lock = threading.Lock()
        self._wake_scheduled = False
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log_lock = threading.Lock()
        self._last_log = 0.0
        self._suppressed = 0
        self.health.details = {"malformed": 0}

    def topic_reader(self, topic: str) -> _Reader | None:
        """The characteristic a message topic belongs to (exact topics first, then wildcards)."""
        reader = self._exact.get(topic)
        if reader is None:
            reader = next((r for r in self._wildcards if paho.topic_matches_sub(r.topic, topic)), None)
        return reader

    def hand_over(self, delivery: _Delivery) -> None:
        """Network thread -> loop: queue the delivery and wake the consumer once per batch."""
        with self._inbox_lock:
            self._inbox.append(delivery)
            wake = not self._wake_scheduled
            self._wake_scheduled = True
        if wake and self._loop is not None:
            self._loop.call_soon_threadsafe(self._ready.set)

    def malformed(self, topic: str, why: str) -> None:
        """Count a bad message and log it, at most one line per LOG_EVERY seconds."""
        with self._log_lock:
            self.health.bad_readings += 1
            self.health.details["malformed"] = int(self.health.details["malformed"]) + 1
            now = time.monotonic()
            if now - self._last_log < LOG_EVERY:
                self._suppressed += 1
                return
            more = f" (+{self._suppressed} more since last report)" if self._suppressed else ""
            self._last_log, self._suppressed = now, 0
        log.warning("%s: %s: message skipped / 메시지 무시: %s%s", self.config.name, topic, why, more)

    async def run(self) -> None:
        """Connect, read, reconnect with backoff: forever, until cancelled."""
        self._loop = asyncio.get_running_loop()
        backoff = Backoff(self.config.backoff.initial, self.config.backoff.maximum)
        consumer = asyncio.create_task(self._consume(), name=f"mqtt-in-consumer:{self.config.name}")
        try:
            while True:
                self.health.state = "connecting"
                try:
                    connection = _Connection(self, self._loop)
                except Exception as exc:  # unreadable password file, bad TLS files
                    self.health.last_error = f"configuration / 설정 오류: {exc}"
                    log.error("%s: %s", self.config.name, self.health.last_error)
                else:
                    await self._session(connection, backoff)
                self.health.state = "down"
                self.health.reconnects += 1
                await asyncio.sleep(backoff.next_delay())
        finally:
            consumer.cancel()

    async def _session(self, connection: _Connection, backoff: Backoff) -> None:
        try:
            connection.thread.start()
            try:
                outcome = await asyncio.wait_for(asyncio.shield(connection.connected), CONNECT_TIMEOUT * 1.5)
            except TimeoutError:
                outcome = "no CONNACK from the broker / 브로커 응답 없음"
            if isinstance(outcome, str):
                self.health.last_error = outcome
                log.warning("%s: %s", self.config.name, outcome)
                return
            self.health.state = "connected"
            self.health.details["session_present"] = outcome
            backoff.reset()
            log.info("%s: connected to %s:%d (session present: %s)", self.config.name, self.config.host,
                     self.config.port, outcome)
            self.health.last_error = await connection.ended
            log.warning("%s: %s", self.config.name, self.health.last_error)
        finally:
            await connection.close()

    async def _consume(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while True:
                with self._inbox_lock:
                    if not self._inbox:
                        self._wake_scheduled = False
                        break
                    batch, self._inbox = self._inbox, collections.deque()
                for delivery in batch:
                    await self._deliver(delivery)

    async def _deliver(self, d: _Delivery) -> None:
        connection = d.connection
        if not d.reader.sampler.accept(d.value, d.source_time):
            connection.committed(d.mid, d.qos)  # not a new part: nothing to store, nothing to redeliver
            return
        # Every timestamped message carries its identity, so a redelivered copy can be dropped.
        source_key = f"mqtt:{d.reader.topic}:{d.stamp}" if d.stamp is not None else None
        self.health.readings += 1
        self.health.last_reading_at = time.monotonic()
        await self.sink(Measurement(d.reader.binding.key, d.value, d.received_at, d.source_time,
                                    source_key=source_key,
                                    on_committed=functools.partial(connection.committed, d.mid, d.qos)))


async def probe(source_cfg: MqttSourceConfig, address: str | None, out: TextIO, wait: float = 5.0) -> int:
    """Listen on one topic (or all, '#') for a few seconds and print what came back; 0 ok, 1 failed."""
    # A throw-away client id and a clean session: the running gateway's session must not be touched.
    client_id = f"spc-gateway-probe-{uuid.uuid4().hex[:8]}"
    topic = address or "#"
    received: list[paho.MQTTMessage] = []
    state: dict[str, Any] = {}

    def on_connect(client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        state["reason"] = reason
        if not reason.is_failure:
            client.subscribe(topic, 1)

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if len(received) < 20:
            received.append(message)

    try:
        client = _new_client(source_cfg, client_id, persistent=False, manual_ack=False)
        client.on_connect, client.on_message = on_connect, on_message
        await asyncio.to_thread(client.connect, source_cfg.host, source_cfg.port, int(source_cfg.keepalive))
    except Exception as exc:
        out.write(f"{source_cfg.name}: {source_cfg.host}:{source_cfg.port}: connection failed / 연결 실패: {exc}\n")
        return 1
    client.loop_start()
    try:
        await asyncio.sleep(wait)
    finally:
        client.disconnect()
        client.loop_stop()
    reason = state.get("reason")
    if reason is None or reason.is_failure:
        out.write(f"{source_cfg.name}: broker refused or did not answer / 브로커 거부: {reason}\n")
        return 1
    if not received:
        out.write(f"{source_cfg.name}: connected; no message on {topic!r} within {wait:.0f} s\n")
    for message in received:
        text = message.payload[:200].decode("utf-8", "replace")
        out.write(f"{message.topic}: {text}\n")
    return 0
