"""MQTT in, the child side: one process per broker connection, off the daemon's GIL.

paho's packet parsing (MQTT 5 properties above all) and payload parsing cost about as much as the
SPC itself; in the daemon they competed with the event loop for the one GIL. Here they run in a
process of their own (`python -m gateway.sources.mqtt.worker FD`), one select() loop over the broker
socket and the daemon's socketpair, no threads. The daemon sends a start frame, then batches of
settled (mid, qos) once each measurement is committed; this side sends parsed deliveries, health and
log lines. Frames are a 4-byte length and a pickle. The worker ends with its connection, and as soon as
the daemon closes the pipe or goes away (parent pid polled): it never outlives the daemon's session.

The broker connection is a paho client on its public API only (`manual_ack=True`, `Client.ack`, and
`socket()`/`loop_read()`/`loop_write()`/`loop_misc()` driven by this select() loop), so any paho-mqtt
2.x serves; bench/bench_mqtt_in.py holds it to 80 % of a bare paho subscriber.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import pickle
import re
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.core.rejects import (
    BAD_TIMESTAMP,
    BAD_TOPIC,
    NO_FIELD,
    NOT_FINITE,
    NOT_JSON,
    NOT_NUMBER,
    NOT_TEXT,
    TOO_LARGE,
    UNREADABLE,
)
from gateway.core.secrets import read_secret
from gateway.sources.mqtt.counts import BadCount, Counts, counts
from gateway.sources.mqtt.settings import MqttAddress, MqttSettings

MAX_UNACKED = 20_000  # messages received but not yet committed+acknowledged, per connection
MAX_PAYLOAD = 64 * 1024  # bytes; a gauge reading never needs more, garbage is refused unread
SESSION_EXPIRY = 7 * 24 * 3600  # seconds the broker keeps our session (MQTT 5) while we are away
CONNECT_TIMEOUT = 10.0  # seconds from TCP connect to CONNACK
IDLE_WAIT = 0.5  # seconds the worker waits in select(); also how often it checks that the daemon lives
READ_BATCH = 1000  # packets handled from the broker socket before the daemon's pipe is looked at again
MAX_FRAME = 64 * 1024 * 1024  # bytes in one frame between daemon and worker; more means a broken peer
_LENGTH = struct.Struct("!I")
READ_BUFFER = 256 * 1024  # bytes of the reused receive buffer on each end of the pipe
MIN_READ = 16 * 1024  # bytes of free space a read is offered at least

# A parsed message as it crosses to the daemon: (topic index, value, source time, timestamp text,
# mid, qos, received at, part number or None); a count address's has (count, n) for its value (and no
# part: short-run charts are of measured values), in frames of their own.
Delivery = tuple[int, float, float | None, str | None, int, int, float, str | None]
CountDelivery = tuple[int, Counts, float | None, str | None, int, int, float]


class MalformedPayload(ValueError):
    """A message whose payload is not a usable reading: `kind` names the reason in a few words (the
    rejected messages are counted per kind), the text says exactly what was wrong."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


# The number forms a gauge sends: plain decimal or scientific, ASCII digits only. float() alone would
# also take "1_0", "١٠" (Arabic-Indic digits), "１０" (full-width) and "infinity": Python's forms, not a
# gauge's, and a typo or a wrong encoding must not become the value 10.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BLANKS = " \t\r\n\f\v"  # what a gauge may put around its number (ASCII only, like the digits)


def _describe(raw: Any) -> str:
    """A short, safe description of a JSON value for an error text (str() of a deeply nested list
    recurses, and the text of a 60 KB payload helps nobody)."""
    if isinstance(raw, str):
        return repr(raw[:40])
    if isinstance(raw, dict):
        return "an object"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) >= 10**40:
        try:
            return f"an integer of {len(str(abs(raw)))} digits"
        except ValueError:  # beyond Python's int-to-text limit (4,300 digits)
            return "an integer of thousands of digits"
    return repr(raw)[:40]


def _dig(document: Any, path: str) -> Any:
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise MalformedPayload(NO_FIELD, f"no {path!r} in the JSON payload")
    return node


def _finite(raw: Any, what: str) -> float:
    """A JSON number, or a string in a gauge's number form -> a finite float; MalformedPayload otherwise."""
    if isinstance(raw, str):
        text = raw.strip(_BLANKS)
        if not _NUMBER.fullmatch(text):
            kind = NOT_FINITE if text.lower().lstrip("+-") in ("nan", "inf", "infinity") else NOT_NUMBER
            raise MalformedPayload(kind, f"{what} is not a number: {_describe(raw)}")
        number = float(text)  # cannot fail on that grammar; 1e999 becomes inf, refused below
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        try:
            number = float(raw)
        except OverflowError:  # a JSON integer of hundreds of digits
            raise MalformedPayload(NOT_FINITE, f"{what} is out of range: {_describe(raw)}") from None
    else:
        raise MalformedPayload(NOT_NUMBER, f"{what} is not a number: {_describe(raw)}")
    if not math.isfinite(number):
        raise MalformedPayload(NOT_FINITE, f"{what} is not finite: {_describe(raw)}")
    return number


def parse_timestamp(raw: Any) -> float:
    """ISO 8601 (no offset = UTC) or epoch seconds/milliseconds -> POSIX seconds.

    Whether the time is one the gateway can store (a date between the years 1 and 9999 in the
    configured zone) is for the pipeline to say: it knows the zone, and checks before the SPC engine.
    """
    if isinstance(raw, str) and not _NUMBER.fullmatch(raw.strip(_BLANKS)):
        return _iso(raw)
    try:
        number = _finite(raw, "timestamp")
    except MalformedPayload as exc:
        raise MalformedPayload(BAD_TIMESTAMP, str(exc)) from None
    # 1e11 s is the year 5138, 1e11 ms is 1973: anything that large is milliseconds.
    return number / 1000.0 if number > 1e11 else number


def _iso(text: str) -> float:
    try:
        if not text.isascii():  # a gauge's digits are ASCII; not left to what fromisoformat happens to take
            raise ValueError(text)
        stamp = _dt.datetime.fromisoformat(text.strip(_BLANKS))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=_dt.UTC)
        return stamp.timestamp()
    except (ValueError, OverflowError):
        raise MalformedPayload(BAD_TIMESTAMP, f"timestamp {text[:40]!r} is neither ISO 8601 nor epoch") from None


def parse_payload(payload: bytes, address: MqttAddress) -> tuple[float | Counts, float | None, str | None]:
    """A message -> (value, or (count, n) for a count address; source time or None, timestamp text or
    None); MalformedPayload otherwise."""
    value, source_time, stamp, _part = parse_reading(payload, address)
    return value, source_time, stamp


def parse_reading(payload: bytes, address: MqttAddress) -> tuple[float | Counts, float | None, str | None,
                                                                  str | None]:
    """parse_payload, and the part number at `address.part` (short-run SPC): its text, or None when the
    message has none (the reading is then kept with its part unknown, not refused)."""
    if len(payload) > MAX_PAYLOAD:
        raise MalformedPayload(TOO_LARGE, f"payload of {len(payload)} bytes (more than {MAX_PAYLOAD})")
    try:
        text = payload.decode("utf-8").strip(_BLANKS)
    except UnicodeDecodeError:
        raise MalformedPayload(NOT_TEXT, "payload is not UTF-8 text") from None
    if address.is_part and address.value is None:  # a plain payload that is the part number itself
        return math.nan, None, None, text[:64] or None
    if address.value is None and address.count is None:
        return _finite(text, "payload"), None, None, None
    try:
        document = json.loads(text)
    except RecursionError:  # 64 KiB of "[" is legal JSON text, but not a reading
        raise MalformedPayload(NOT_JSON, "payload is JSON nested too deeply") from None
    except ValueError:
        raise MalformedPayload(NOT_JSON, f"payload is not JSON: {text[:40]!r}") from None
    if address.is_part and address.value is not None:  # NaN: a part reading has no value (parts reads `part`)
        return math.nan, None, None, _part(document, address.value)
    value: float | Counts
    if address.count is not None:
        count = _finite(_dig(document, address.count), address.count)
        n = None if address.n is None else _finite(_dig(document, address.n), address.n)
        try:
            value = counts(count, n, address.count, address.n)
        except BadCount as exc:
            raise MalformedPayload(exc.kind, str(exc)) from None
    else:
        assert address.value is not None
        value = _finite(_dig(document, address.value), address.value)
    part = None if address.part is None else _part(document, address.part)
    if address.timestamp is None:
        return value, None, None, part
    raw = _dig(document, address.timestamp)
    return value, parse_timestamp(raw), str(raw), part


def _part(document: Any, path: str) -> str | None:
    """A part number as text: a string as sent (up to 64 characters), a whole number as its digits."""
    try:
        raw = _dig(document, path)
    except MalformedPayload:
        return None
    if isinstance(raw, str):
        return raw.strip(_BLANKS)[:64]
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) < 2**63:
        return str(raw)
    if isinstance(raw, float) and raw.is_integer() and abs(raw) < 2**63:
        return str(int(raw))
    return None


def new_client(config: MqttSettings, client_id: str, *, persistent: bool, manual_ack: bool) -> paho.Client:
    """A paho client with the source's protocol, credentials and TLS (not yet connected)."""
    v5 = config.protocol == "5"
    kwargs: dict[str, Any] = {} if v5 else {"clean_session": not persistent}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv5 if v5 else paho.MQTTv311, manual_ack=manual_ack, **kwargs)
    client.connect_timeout = CONNECT_TIMEOUT
    if config.username:
        password = read_secret(config.password_file) if config.password_file else None  # same rule as northbound
        client.username_pw_set(config.username, password)
    if config.tls is not None:
        client.tls_set(ca_certs=config.tls.ca_file, certfile=config.tls.certificate, keyfile=config.tls.private_key)
        if config.tls.insecure:
            client.tls_insecure_set(True)
    return client


def frame(message: Any) -> bytes:
    """One message on the daemon <-> worker pipe: length, then the pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class FrameReader:
    """Cuts a byte stream into the messages `frame` made (both sides are ours: pickle is safe here).

    The bytes land in one receive buffer that is reused for the life of the pipe (`get_buffer` +
    `received`, asyncio's BufferedProtocol calls): at a thousand socket reads a second, a fresh
    256 KiB bytes object per read and a growing/shrinking bytearray fragmented the daemon's heap
    (glibc kept the holes: RSS crept up although live memory was flat). The buffer grows only for
    a frame larger than itself, and goes back to its first size once that frame is parsed.
    """

    def __init__(self, size: int = READ_BUFFER) -> None:
        self._size = size
        self._buf = bytearray(size)
        self._start = 0  # first byte not yet parsed
        self._end = 0  # first free byte

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next read may write: the free tail of the buffer (made room for first)."""
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._buf) - self._end < MIN_READ:
            self._make_room()
        return memoryview(self._buf)[self._end:]

    def received(self, nbytes: int) -> list[Any]:
        """`nbytes` were written at `get_buffer()`; return every message now complete."""
        self._end += nbytes
        messages = []
        with memoryview(self._buf) as view:
            while self._end - self._start >= 4:
                (size,) = _LENGTH.unpack_from(view, self._start)
                if size > MAX_FRAME:
                    raise ValueError(f"frame of {size} bytes (more than {MAX_FRAME})")
                begin = self._start + 4
                if self._end - begin < size:
                    break
                messages.append(pickle.loads(view[begin:begin + size]))
                self._start = begin + size
        if self._start == self._end and len(self._buf) > self._size:
            self._buf = bytearray(self._size)  # a big frame passed: give its memory back
            self._start = self._end = 0
        return messages

    def feed(self, data: bytes) -> list[Any]:
        """Copy in bytes read elsewhere; return the complete messages. Only tests use it: the daemon and
        the worker read straight into `get_buffer()`."""
        messages: list[Any] = []
        view = memoryview(data)
        while view:
            target = self.get_buffer()
            n = min(len(target), len(view))
            target[:n] = view[:n]
            target.release()
            messages += self.received(n)
            view = view[n:]
        return messages

    def _make_room(self) -> None:
        pending = self._end - self._start
        need = pending + MIN_READ
        if pending >= 4:  # the partial frame's header says how big the whole frame is
            need = max(need, 4 + _LENGTH.unpack_from(self._buf, self._start)[0])
        if need > len(self._buf):  # a frame larger than the buffer: grow to hold it whole
            grown = bytearray(max(need, 2 * len(self._buf)))
            grown[:pending] = self._buf[self._start:self._end]
            self._buf = grown
        else:  # move the partial frame to the front, in place
            self._buf[:pending] = self._buf[self._start:self._end]
        self._start, self._end = 0, pending


class Worker:
    """One broker connection: parse, hand over, acknowledge what the daemon says is committed."""

    def __init__(self, pipe: socket.socket, config: MqttSettings, addresses: list[MqttAddress],
                 parent_pid: int):
        self.pipe, self.config, self.addresses, self.parent_pid = pipe, config, addresses, parent_pid
        self.exact = {a.topic: i for i, a in enumerate(addresses) if "+" not in a.topic and "#" not in a.topic}
        self.wildcards = [(i, a.topic) for i, a in enumerate(addresses) if a.topic not in self.exact]
        self.frames = FrameReader()
        self.out: list[Delivery] = []  # parsed since the last send: one socket chunk's worth at most
        # Count addresses' deliveries travel in frames of their own, so the daemon's loop over values
        # asks nothing more per message than before counts existed.
        self.counted: list[CountDelivery] = []
        self.malformed: dict[str, int] = {}  # refused messages per kind of reason, since the last send
        self.sample: tuple[str, str, str] | None = None  # (topic, kind, why) of the last refused message
        self.received = 0  # deliveries handed to the daemon
        self.settled = 0  # of those, reported committed or skipped by the daemon
        self.refused: str | None = None
        self.delivered = 0  # messages paho has handed to on_message (refused ones too)

    def send(self, message: Any) -> None:
        """To the daemon (blocking: the daemon always reads, and is bounded by MAX_UNACKED)."""
        self.pipe.sendall(frame(message))

    def run(self) -> None:
        """Connect and serve until the connection ends, the daemon says stop, or the daemon is gone."""
        try:
            self.client = new_client(self.config, self.config.client_id, persistent=True, manual_ack=True)
        except Exception as exc:  # unreadable password file, bad TLS files
            self.send(("ended", f"configuration / 설정 오류: {exc}"))
            return
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # With a write callback set, paho only queues a packet (the PUBACKs of a commit among them)
        # instead of writing each at once: the select() loop below writes them in one loop_write().
        self.client.on_socket_register_write = _queued_for_the_loop
        try:
            if self.config.protocol == "5":
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = SESSION_EXPIRY
                # The broker sends at most this many unacknowledged messages: our bound, enforced by it.
                props.ReceiveMaximum = min(MAX_UNACKED, 65535)
                self.client.connect(self.config.host, self.config.port, int(self.config.keepalive),
                                    clean_start=False, properties=props)
            else:
                self.client.connect(self.config.host, self.config.port, int(self.config.keepalive))
        except Exception as exc:  # refused, DNS, TLS: the daemon backs off and starts another worker
            self.send(("ended", f"connection failed / 연결 실패: {exc}"))
            return
        why = self._serve()
        if why is not None:
            self.send(("ended", why))

    def _serve(self) -> str | None:
        client = self.client
        while self.refused is None:
            if os.getppid() != self.parent_pid:
                return None  # the daemon died: nobody would acknowledge, and its session must be free
            sock = client.socket()
            if sock is None:
                return "connection lost / 연결 끊김"
            # The bound: stop reading the socket (the broker then waits for acks) rather than buffer.
            window_open = self.received - self.settled < MAX_UNACKED
            pending = window_open and hasattr(sock, "pending") and sock.pending() > 0  # TLS-buffered
            readable, _, _ = select.select([self.pipe, sock] if window_open else [self.pipe],
                                           [sock] if client.want_write() else [], [],
                                           0.0 if pending else IDLE_WAIT)
            if self.pipe in readable and not self._from_daemon():
                client.disconnect()
                return None
            if sock in readable or pending:
                rc = self._read(client)
                self._hand_over()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return f"connection lost / 연결 끊김: {paho.error_string(rc)}"
            rc = client.loop_write() if client.want_write() else MQTTErrorCode.MQTT_ERR_SUCCESS
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                rc = client.loop_misc()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return f"connection lost / 연결 끊김: {paho.error_string(rc)}"
        return self.refused

    def _read(self, client: paho.Client) -> MQTTErrorCode:
        """Handle the packets that have arrived: paho's `loop_read` handles one PUBLISH a call, so call
        it again while each call delivers one, up to READ_BATCH (then the pipe gets its turn) or the
        window's end. A call that delivers nothing (a partial packet, a PINGRESP) ends the round."""
        for _ in range(READ_BATCH):
            before = self.delivered
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self.delivered == before:
                return rc
            if self.received - self.settled >= MAX_UNACKED:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _from_daemon(self) -> bool:
        """Apply what the daemon sent; False when it says stop or has closed the pipe."""
        nbytes = self.pipe.recv_into(self.frames.get_buffer())
        if not nbytes:
            return False
        for message in self.frames.received(nbytes):
            if message[0] == "stop":
                return False
            if message[0] == "acks":
                self._ack(message[1])
        return True

    def _ack(self, settled: list[tuple[int, int]]) -> None:
        self.settled += len(settled)
        ack = self.client.ack
        for mid, qos in settled:
            if qos:  # QoS 0 has nothing to acknowledge
                ack(mid, qos)

    def _hand_over(self) -> None:
        if self.counted:
            self.send(("counts", self.counted))
            self.counted = []
        if self.out or self.malformed:
            self.send(("batch", self.out, self.malformed, self.sample))
            self.out, self.malformed, self.sample = [], {}, None

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refused = f"broker refused the connection / 브로커 연결 거부: {reason}"
            return
        topics = sorted({a.topic for a in self.addresses})
        if topics:
            subscriptions: list[tuple[str, int]] = [(topic, self.config.qos) for topic in topics]
            client.subscribe(subscriptions)
        self.send(("connected", bool(flags.session_present)))

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: list[Any], props: Any) -> None:
        for reason in reasons:
            if reason.is_failure:
                self.send(("log", logging.ERROR, f"broker refused a subscription / 구독 거부: {reason}"))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        """Every message paho delivers (manual_ack: acknowledged by `_ack` after the commit, or by `_skip`)."""
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self.delivered += 1
            self._skip("(not UTF-8)", BAD_TOPIC, "topic is not UTF-8", message.mid, message.qos)
            return
        self._deliver(topic, message.payload, message.mid, message.qos)

    def _deliver(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        self.delivered += 1
        index = self.exact.get(topic)
        if index is None:
            index = next((i for i, sub in self.wildcards if paho.topic_matches_sub(sub, topic)), None)
        if index is None:
            # A subscription left in the persistent session by an older configuration.
            self._skip(topic, BAD_TOPIC, "no characteristic reads this topic", mid, qos)
            return
        try:
            value, source_time, stamp, part = parse_reading(payload, self.addresses[index])
        except MalformedPayload as exc:
            self._skip(topic, exc.kind, str(exc), mid, qos)  # acknowledged: garbage must not come back forever
            return
        except Exception as exc:  # whatever a payload makes the parser raise, it is data:
            # a worker that died on it would never acknowledge it, and the broker would hand it to
            # every new worker, for good. Refused and acknowledged like any other bad payload.
            self._skip(topic, UNREADABLE, f"payload could not be read ({type(exc).__name__})", mid, qos)
            return
        self.received += 1
        if isinstance(value, tuple):
            self.counted.append((index, value, source_time, stamp, mid, qos, time.time()))
        else:
            self.out.append((index, value, source_time, stamp, mid, qos, time.time(), part))

    def _skip(self, topic: str, kind: str, why: str, mid: int, qos: int) -> None:
        self.malformed[kind] = self.malformed.get(kind, 0) + 1
        self.sample = (topic, kind, why)
        self.client.ack(mid, qos)


def _queued_for_the_loop(client: paho.Client, userdata: Any, sock: Any) -> None:
    """paho's external-loop hook: nothing to register, `_serve` asks `want_write()` every round."""


def main(argv: list[str]) -> int:
    """`python -m gateway.sources.mqtt.worker FD`: serve one connection for the daemon on socket FD."""
    # The daemon stops this process (pipe closed, or SIGKILL); a terminal's ^C or systemd's SIGTERM to
    # the whole group must not end it before the daemon's last commit is acknowledged.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pipe = socket.socket(fileno=int(argv[1]))
    pipe.setblocking(True)
    reader = FrameReader()
    start: list[Any] = []
    while not start:
        nbytes = pipe.recv_into(reader.get_buffer())
        if not nbytes:
            return 0
        start = reader.received(nbytes)
    _kind, config, addresses, parent_pid = start[0]
    if any(message[0] == "stop" for message in start[1:]):
        return 0  # stopped before it started (the daemon's session was cancelled at once)
    worker = Worker(pipe, config, addresses, parent_pid)
    worker.frames = reader
    try:
        worker.run()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon is gone: so are we
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
