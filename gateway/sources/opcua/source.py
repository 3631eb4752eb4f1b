"""OPC UA gauges (asyncua client): subscribe or poll, with our own reconnect and watchdog.

Every connection attempt builds a fresh `Client` with the full security configuration, resolves the
nodes again and recreates the subscription: reusing a client after a server restart is what leaves
other gateways "connected" with a dead subscription. asyncua's own reconnect is off; a lost
transport (its supervisor's `connection_lost_callback`) or a subscription without publish responses
for too long (our watchdog) ends the connection, and `run()` starts a new one after a backoff.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent
from asyncua.crypto import security_policies

from gateway.core.model import Measurement
from gateway.core.rejects import BAD_STATUS, NOT_FINITE, NOT_NUMBER, RejectLog
from gateway.core.secrets import SecretError, read_secret
from gateway.sources.base import Backoff, Binding, Sink, Source
from gateway.sources.opcua import asyncua_private
from gateway.sources.opcua.counts import PairNodes, first_to_end, pair_nodes, read_pairs
from gateway.sources.opcua.settings import OpcUaAddress, OpcUaSettings, OpcUaWrite
from gateway.sources.sampling import Sampler

log = logging.getLogger("gateway.sources.opcua")  # the logger's name from before the package

SUBSCRIPTION_QUEUE = 10_000  # notifications buffered between asyncua's publish loop and us
MONITORED_QUEUE = 10  # values the server keeps per node between two publish responses
READ_CHUNK = 100  # nodes per Read request (many servers cap MaxNodesPerRead near this)
KEEPALIVE_PERIOD = 5.0  # seconds: the server sends a keep-alive at least this often when idle
STALE_FACTOR = 3.0  # no publish response for this many keep-alive periods: the subscription is dead
STALE_MIN = 3.0  # seconds: never call a subscription dead sooner than this
WATCHDOG_INTERVAL = 2.0  # seconds between asyncua's server-state probes (detects a half-open socket)
SESSION_TIMEOUT = 60.0  # seconds the server keeps our session after we vanish
RETRY_FAILED_NODES = 30.0  # seconds between attempts to subscribe nodes the server did not know
VALUE_HISTORY = 32  # recent values kept per part-counter characteristic
LOG_EVERY = 10.0  # seconds between two log lines about bad values of one source


class OpcUaConfigError(Exception):
    """A problem a technician can fix in the config or the certificate files."""


@dataclass
class _Reader:
    """One characteristic: its value node, optional part-counter node, and sampler."""

    binding: Binding
    node_id: str
    counter_id: str | None
    sampler: Sampler
    failed: dict[str, str] = field(default_factory=dict)  # node id -> why it cannot be read
    # Subscribe mode with a part counter: the latest values of the value node, to pair with a counter move.
    history: collections.deque[ua.DataValue] = field(default_factory=lambda: collections.deque(maxlen=VALUE_HISTORY))


def _utc_seconds(stamp: _dt.datetime | None) -> float | None:
    """An OPC UA DateTime as POSIX seconds; None for the 'null' date (1601) that servers send."""
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.UTC)
    if stamp.year < 1971:
        return None
    return stamp.timestamp()


def _status_name(code: ua.StatusCode | None) -> str:
    if code is None:
        return "Good"
    try:
        return code.name
    except Exception:  # unknown vendor code
        return hex(code.value)


def _number(value: Any) -> float | None:
    """The reading as a finite float, or None when the node holds no usable number."""
    if isinstance(value, (bool, int, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _read_secret(path: str) -> str:
    """The secret a *_file key names, by the one rule for every secret file (gateway.core.secrets.read_secret)."""
    try:
        return read_secret(path)
    except SecretError as exc:
        raise OpcUaConfigError(f"cannot read password file {path}: {exc.message}") from None


def _certificate_uri(path: str) -> str | None:
    """The application URI in the client certificate (servers check it against ours)."""
    from cryptography import x509

    data = Path(path).read_bytes()
    cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


async def build_client(config: OpcUaSettings) -> Client:
    """A fresh client with the full security configuration (called for every connection)."""
    # auto_reconnect off: reconnects are ours (fresh client, backoff with jitter), see the module doc.
    client = Client(config.endpoint, timeout=config.timeout, watchdog_intervall=WATCHDOG_INTERVAL,
                    auto_reconnect=False)
    client.session_timeout = int(SESSION_TIMEOUT * 1000)
    client.name = client.description = "spc-gateway"
    security = config.security
    if security.policy != "None":
        if security.mode == "None" or not security.certificate or not security.private_key:
            raise OpcUaConfigError(f"security policy {security.policy} needs mode Sign or SignAndEncrypt, "
                                   "a certificate and a private_key")
        for path in (security.certificate, security.private_key, security.server_certificate):
            if path and not Path(path).is_file():
                raise OpcUaConfigError(f"file not found: {path}")
        uri = _certificate_uri(security.certificate)
        if uri:
            client.application_uri = uri
        policy = getattr(security_policies, f"SecurityPolicy{security.policy}", None)
        if policy is None:
            raise OpcUaConfigError(f"this asyncua has no security policy {security.policy}")
        await client.set_security(policy, security.certificate, security.private_key,
                                  server_certificate=security.server_certificate,
                                  mode=getattr(ua.MessageSecurityMode, security.mode))
    if config.username:
        client.set_user(config.username)
        if config.password_file:
            client.set_password(_read_secret(config.password_file))
    return client


async def _close(client: Client) -> None:
    try:
        await asyncio.wait_for(client.disconnect(), 2.0)
    except Exception:  # the server is gone already: nothing to close politely
        pass


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (ConnectionError, OSError, asyncio.TimeoutError, TimeoutError)):
        return f"connection failed / 연결 실패: {text}"
    return text


class OpcUaSource(Source):
    """Reads characteristics from one OPC UA server, by subscription or by polling."""

    def __init__(self, config: OpcUaSettings, bindings: list[Binding], sink: Sink):
        super().__init__(config, bindings, sink)
        self.config: OpcUaSettings = config
        self.readers: list[_Reader] = []
        self.pairs: list[PairNodes] = []  # counter pairs (opcua/counts.py), read beside the value nodes
        for binding in bindings:
            ch = binding.characteristic
            pair = pair_nodes(self, binding)
            if pair is not None:
                self.pairs.append(pair)
                continue
            if not isinstance(ch.address, OpcUaAddress):
                raise OpcUaConfigError(f"characteristic {ch.name} has no opcua address")
            counter = ch.sampling.counter
            counter_id = counter.node_id if isinstance(counter, OpcUaAddress) and ch.sampling.mode == "part_counter" \
                else None
            self.readers.append(_Reader(binding, ch.address.node_id, counter_id, Sampler(ch.sampling.mode)))
        self._lost = asyncio.Event()
        self._client: Client | None = None  # while connected: outputs are written through it
        self._write_types: dict[str, ua.VariantType] = {}  # node id -> its data type, per connection
        self._next_handle = 0  # client handles of monitored items, unique per source
        self.rejects = RejectLog(log, "value skipped / 값 무시", LOG_EVERY)
        self.health.details.update({"mode": config.mode, "failed_nodes": {}, "missed_parts": 0})

    # ------------------------------------------------------------------ the connection loop

    # The reconnect loop is Source.run: connect (a fresh client each time), serve, close, back off.

    async def connect(self) -> Client:
        client = await build_client(self.config)
        try:
            self._lost = asyncio.Event()
            client.connection_lost_callback = self._on_connection_lost
            await asyncio.wait_for(client.connect(), self.config.timeout * 3)
            # asyncua's stale-subscription watchdog would recreate the subscription behind our back;
            # our own watchdog rebuilds the whole client instead (an asyncua internal: asyncua_private).
            asyncua_private.stop_stale_watchdog(client)
        except BaseException:
            await _close(client)
            raise
        log.info("%s: connected to %s", self.config.name, self.config.endpoint)
        self._client, self._write_types = client, {}
        return client

    async def serve(self, connection: Client, backoff: Backoff) -> None:
        sessions = []
        if self.pairs:
            interval = self.config.sampling_interval if self.config.mode == "subscribe" else self.config.poll_interval
            sessions.append(read_pairs(self, connection, backoff, self.pairs, interval))
        if self.readers or not self.pairs:
            sessions.append(self._subscribe_session(connection, backoff) if self.config.mode == "subscribe"
                            else self._poll_session(connection, backoff))
        await first_to_end(sessions)

    async def close(self, connection: Client) -> None:
        if self._client is connection:
            self._client = None
        await _close(connection)

    async def write(self, target: object, on: bool) -> None:
        """An output's node: value_on or value_off, written in the variable's own data type (a PLC
        refuses a Boolean for an Int16 tag, and Python's int would go out as Int64)."""
        if not isinstance(target, OpcUaWrite):
            raise TypeError(f"{self.config.name}: not an OPC UA output: {target!r}")
        client = self._client
        if client is None or self._lost.is_set():
            raise ConnectionError(f"not connected to {self.config.endpoint}")
        node = client.get_node(target.node_id)
        timeout = self.config.timeout
        variant_type = self._write_types.get(target.node_id)
        if variant_type is None:
            variant_type = await asyncio.wait_for(node.read_data_type_as_variant_type(), timeout)
            self._write_types[target.node_id] = variant_type
        value = target.value_on if on else target.value_off
        if variant_type == ua.VariantType.Boolean:
            value = bool(value)
        elif variant_type in (ua.VariantType.Float, ua.VariantType.Double):
            value = float(value)
        elif variant_type != ua.VariantType.String:
            value = int(value)
        await asyncio.wait_for(node.write_value(ua.DataValue(ua.Variant(value, variant_type))), timeout)

    def describe(self, exc: Exception) -> str:
        return str(exc) if isinstance(exc, OpcUaConfigError) else _describe(exc)

    def report(self, exc: Exception) -> None:
        # a setting the technician must fix is an error; a server that is away is a warning
        level = logging.ERROR if isinstance(exc, OpcUaConfigError) else logging.WARNING
        log.log(level, "%s: %s", self.config.name, self.health.last_error)

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._lost.set()

    def _check_alive(self) -> None:
        if self._lost.is_set():
            raise ConnectionError("connection to the server lost / 서버 연결 끊김")

    # ------------------------------------------------------------------ subscribe mode

    async def _subscribe_session(self, client: Client, backoff: Backoff) -> None:
        interval_ms = self.config.sampling_interval * 1000
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = interval_ms
        params.RequestedMaxKeepAliveCount = max(1, math.ceil(KEEPALIVE_PERIOD * 1000 / interval_ms))
        params.RequestedLifetimeCount = params.RequestedMaxKeepAliveCount * 10
        params.MaxNotificationsPerPublish = 10_000
        params.PublishingEnabled = True
        params.Priority = 0
        sub = await client.create_subscription(params, None, queue_maxsize=SUBSCRIPTION_QUEUE,
                                               overflow=OverflowPolicy.WARN)
        handles: dict[int, tuple[_Reader, bool]] = {}  # client handle -> (reader, is_counter)
        await self._monitor(client, sub, handles, interval_ms)
        backoff.reset()
        revised_ms = sub.parameters.RequestedPublishingInterval or interval_ms
        keepalive = max(int(sub.parameters.RequestedMaxKeepAliveCount or 1), 1)
        stale_after = max(revised_ms / 1000 * keepalive * STALE_FACTOR, STALE_MIN)
        retry_at = time.monotonic() + RETRY_FAILED_NODES
        while True:
            batch = await self._next_batch(sub)
            self._check_alive()
            now = time.monotonic()
            if not batch:
                last = sub.last_publish_at or now
                if now - last > stale_after:
                    raise ConnectionError(f"no publish response for {now - last:.0f} s: subscription dead "
                                          "/ 구독 응답 없음")
            counters: list[tuple[_Reader, ua.DataValue]] = []
            for event in batch:
                if isinstance(event, DataChangeEvent):
                    item = event.data.monitored_item
                    entry = handles.get(item.ClientHandle)
                    if entry is None:
                        continue
                    reader, is_counter = entry
                    if is_counter:
                        counters.append((reader, item.Value))
                    elif reader.counter_id is not None:
                        reader.history.append(item.Value)
                    else:
                        await self._offer(reader, item.Value)
                elif isinstance(event, StatusChangeEvent) and event.notification.Status.is_bad():
                    raise ConnectionError(f"subscription status {_status_name(event.notification.Status)}")
            # Counters after values: the value of a part may come later in the same publish response.
            for reader, data in counters:
                await self._on_counter(client, reader, data)
            if now >= retry_at:
                retry_at = now + RETRY_FAILED_NODES
                if any(r.failed for r in self.readers):
                    await self._monitor(client, sub, handles, interval_ms)

    @staticmethod
    async def _next_batch(sub: Any) -> list[Any]:
        """The next notification and all that are already queued (one publish response arrives at once)."""
        first = await sub.next_event(timeout=0.5)
        if first is None:
            return []
        return [first, *asyncua_private.queued_events(sub)]  # asyncua has no public drain

    async def _monitor(self, client: Client, sub: Any, handles: dict[int, tuple[_Reader, bool]],
                       interval_ms: float) -> None:
        """Create monitored items for every node not yet monitored; each node fails alone."""
        requests, targets = [], []
        monitored = {(id(r), c) for r, c in handles.values()}
        wanted = [(r, False) for r in self.readers] + [(r, True) for r in self.readers if r.counter_id]
        for reader, is_counter in wanted:
            if (id(reader), is_counter) in monitored:
                continue
            node_id = reader.counter_id if is_counter else reader.node_id
            assert node_id is not None
            try:
                nodeid = ua.NodeId.from_string(node_id)
            except Exception:
                self._node_failed(reader, node_id, "not a valid node id / 잘못된 노드 ID")
                continue
            self._next_handle += 1
            handle = self._next_handle
            read = ua.ReadValueId(NodeId=nodeid, AttributeId=ua.AttributeIds.Value)
            # StatusValueTimestamp: two equal readings with new source timestamps are two parts.
            flt = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
            mparams = ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=interval_ms,
                                              QueueSize=MONITORED_QUEUE, DiscardOldest=True, Filter=flt)
            requests.append(ua.MonitoredItemCreateRequest(ItemToMonitor=read,
                                                          MonitoringMode=ua.MonitoringMode.Reporting,
                                                          RequestedParameters=mparams))
            targets.append((reader, is_counter, node_id, handle))
        if not requests:
            return
        results = await sub.create_monitored_items(requests)
        for (reader, is_counter, node_id, handle), result in zip(targets, results, strict=True):
            if isinstance(result, ua.StatusCode):
                self._node_failed(reader, node_id, _status_name(result))
            else:
                handles[handle] = (reader, is_counter)
                self._node_ok(reader, node_id)

    def _counter(self, reader: _Reader, data: ua.DataValue) -> int | None:
        """The part counter's reading, or None, counted as a bad reading, when its status is bad or it
        holds no number."""
        if data.StatusCode is not None and data.StatusCode.is_bad():
            self._bad(reader, BAD_STATUS, f"counter status {_status_name(data.StatusCode)}")
            return None
        counter = _number(data.Value.Value if data.Value else None)
        if counter is None:
            self._bad(reader, NOT_NUMBER, "counter is not a number")
            return None
        return int(counter)

    async def _on_counter(self, client: Client, reader: _Reader, data: ua.DataValue) -> None:
        """The part counter moved: the part's value is the newest one written no later than the counter."""
        counter = self._counter(reader, data)
        if counter is None:
            return
        counter_time = _utc_seconds(data.SourceTimestamp)
        value = None
        for candidate in reversed(reader.history):
            value_time = _utc_seconds(candidate.SourceTimestamp)
            if counter_time is None or value_time is None or value_time <= counter_time:
                value = candidate
                break
        if value is None:  # nothing seen yet (just connected): the node holds the part's value
            value = (await self._read(client, [reader.node_id]))[0]
        await self._offer(reader, value, counter)

    # ------------------------------------------------------------------ poll mode

    async def _poll_session(self, client: Client, backoff: Backoff) -> None:
        # Counters first: the server reads in request order, so a counter seen moved comes with a value
        # at least as new (the PLC writes the value before it moves the counter).
        node_ids = [r.counter_id for r in self.readers if r.counter_id] + [r.node_id for r in self.readers]
        first = True
        next_at = time.monotonic()
        while True:
            self._check_alive()
            values = dict(zip(node_ids, await self._read(client, node_ids), strict=True))
            if first:
                backoff.reset()
                first = False
            for reader in self.readers:
                data = values[reader.node_id]
                if not self._resolved(reader, reader.node_id, data):
                    continue
                if reader.counter_id is None:
                    await self._offer(reader, data)
                    continue
                counter_data = values[reader.counter_id]
                if not self._resolved(reader, reader.counter_id, counter_data):
                    continue
                counter = self._counter(reader, counter_data)
                if counter is not None:
                    await self._offer(reader, data, counter)
            next_at += self.config.poll_interval
            now = time.monotonic()
            if next_at < now:  # a slow read: skip the missed ticks rather than read in a burst
                next_at = now + self.config.poll_interval
            await asyncio.sleep(next_at - now)

    def _resolved(self, reader: _Reader, node_id: str, data: ua.DataValue) -> bool:
        code = data.StatusCode
        if code is not None and code.value in (ua.StatusCodes.BadNodeIdUnknown, ua.StatusCodes.BadNodeIdInvalid):
            self._node_failed(reader, node_id, _status_name(code))
            return False
        self._node_ok(reader, node_id)
        return True

    async def _read(self, client: Client, node_ids: list[str]) -> list[ua.DataValue]:
        """One batched Read (in chunks); a malformed node id yields a BadNodeIdInvalid value."""
        out: list[ua.DataValue] = []
        for start in range(0, len(node_ids), READ_CHUNK):
            chunk = node_ids[start:start + READ_CHUNK]
            reads, slots = [], []
            for node_id in chunk:
                try:
                    reads.append(ua.ReadValueId(NodeId=ua.NodeId.from_string(node_id),
                                                AttributeId=ua.AttributeIds.Value))
                    slots.append(True)
                except Exception:
                    slots.append(False)
            params = ua.ReadParameters(NodesToRead=reads, TimestampsToReturn=ua.TimestampsToReturn.Both)
            results = iter(await client.uaclient.read(params) if reads else [])
            for ok in slots:
                out.append(next(results) if ok else
                           # asyncua's status codes are plain ints, StatusCode is annotated with ua.UInt32
                           ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadNodeIdInvalid)))  # type: ignore[arg-type]
        return out

    # ------------------------------------------------------------------ readings

    async def _offer(self, reader: _Reader, data: ua.DataValue, counter: int | None = None) -> None:
        """Bad status and non-numbers are counted and skipped; the sampler decides what is a part."""
        if data.StatusCode is not None and data.StatusCode.is_bad():
            self._bad(reader, BAD_STATUS, f"status {_status_name(data.StatusCode)}")
            return
        raw = data.Value.Value if data.Value is not None else None
        if reader.binding.channel and isinstance(raw, str):  # a part number node holding text (gateway.sources.parts)
            await self.sink(Measurement(reader.binding.key, math.nan, time.time(), part=raw.strip()[:64]))
            return
        value = _number(raw)
        if value is None:
            self._bad(reader, NOT_FINITE, f"not a finite number: {data.Value.Value if data.Value else None!r}")
            return
        source_time = _utc_seconds(data.SourceTimestamp)
        if not reader.sampler.accept(value, source_time, counter):
            return
        if reader.sampler.last_missed:
            self.health.add_missed_parts(reader.sampler.last_missed)
            log.warning("%s: %s: part counter jumped, %d part(s) missed / 누락된 부품 %d개", self.config.name,
                        reader.binding.key, reader.sampler.last_missed, reader.sampler.last_missed)
        self.health.readings += 1
        self.health.last_reading_at = time.monotonic()
        await self.sink(Measurement(reader.binding.key, value, time.time(), source_time))

    def _bad(self, reader: _Reader, kind: str, why: str) -> None:
        """A value skipped: counted, and logged at most once per LOG_EVERY with the counts since."""
        self.health.bad_readings += 1
        self.rejects.add(f"{self.config.name}: {reader.binding.key} ({reader.node_id})", kind, why)

    def _node_failed(self, reader: _Reader, node_id: str, why: str) -> None:
        if reader.failed.get(node_id) != why:
            log.error("%s: node %s (%s) cannot be read / 노드를 읽을 수 없음: %s", self.config.name, node_id,
                      reader.binding.key, why)
        reader.failed[node_id] = why
        self.health.details["failed_nodes"] = {k: v for r in self.readers for k, v in r.failed.items()}

    def _node_ok(self, reader: _Reader, node_id: str) -> None:
        if reader.failed.pop(node_id, None) is not None:
            log.info("%s: node %s readable again", self.config.name, node_id)
            self.health.details["failed_nodes"] = {k: v for r in self.readers for k, v in r.failed.items()}

