"""MQTT in (paho-mqtt 2.x): gauges that publish their readings to the line broker themselves.

QoS 1 with a persistent session, and each message acknowledged to the broker only after its
measurement is committed to SQLite (paho `manual_ack`): a crash loses nothing the broker delivered.
The broker connection lives in a child process per connection (`worker`): paho's packet and
payload parsing run there, on the other core, not under the daemon's GIL. Over a socketpair it sends
parsed deliveries; this side runs the sampler, hands measurements to the sink, and sends back the
(mid, qos) of each one once it is committed. `run()` owns the reconnects: a connection that ends, or a
worker that dies, is followed by a new worker after our backoff. At most `MAX_UNACKED` messages per
connection are unacknowledged (the worker stops reading the socket beyond that).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gateway
from gateway.core.model import Measurement
from gateway.core.rejects import RejectLog
from gateway.sources.base import Backoff, Binding, Sink, Source
from gateway.sources.mqtt.counts import Counts, chart_problem
from gateway.sources.mqtt.settings import MqttAddress, MqttSettings
from gateway.sources.mqtt.worker import (  # noqa: F401  (the module's public names, as before the split)
    CONNECT_TIMEOUT,
    MAX_PAYLOAD,
    MAX_UNACKED,
    SESSION_EXPIRY,
    CountDelivery,
    Delivery,
    FrameReader,
    MalformedPayload,
    frame,
    new_client,
    parse_payload,
    parse_timestamp,
)
from gateway.sources.sampling import Sampler
from gateway.spc.charts.registry import CHARTS

log = logging.getLogger("gateway.sources.mqtt")  # the logger's name from before the package

LOG_EVERY = 10.0  # seconds between two log lines about malformed payloads
# A session that lasted this long resets the backoff. A worker that dies on a message dies right after
# the broker redelivers it: were every CONNACK to reset the backoff, it would restart once a second for good.
STABLE_SESSION = 10.0
WORKER_STOP = 1.0  # seconds a worker gets to send DISCONNECT and exit before it is killed
WORKER_START = 15.0  # seconds from spawning a worker to its CONNACK (it connects with CONNECT_TIMEOUT)
_PACKAGE_ROOT = str(Path(gateway.__file__).resolve().parent.parent)


@dataclass
class _Reader:
    binding: Binding
    topic: str
    sampler: Sampler
    rejected: Any = None  # (kind, why) -> None: the pipeline refused one of this topic's readings
    address: MqttAddress | None = None  # what the worker parses: the block, with the part's field
    defectives: bool = False  # its chart counts nonconforming parts (p, np): count <= n, n whole


class NotConnected(Exception):
    """A worker that could not start or whose broker did not accept it; the message is for health."""

    def __init__(self, message: str, level: int):
        super().__init__(message)
        self.level = level  # how loud: a worker that cannot start is an error, a broker away a warning


class _Worker(asyncio.BufferedProtocol):
    """The daemon's end of one worker process: its deliveries in, acknowledgements out."""

    def __init__(self, source: MqttSource, loop: asyncio.AbstractEventLoop):
        self.source = source
        self.loop = loop
        self.frames = FrameReader()
        self.acks: list[tuple[int, int]] = []  # committed since the last flush; <= MAX_UNACKED
        self._flush_scheduled = False
        self.closing = False
        self.transport: asyncio.Transport | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.connected: asyncio.Future[bool | str] = loop.create_future()  # session present, or why not
        self.ended: asyncio.Future[str] = loop.create_future()  # why the connection ended

    async def start(self) -> None:
        """Spawn the worker on one end of a socketpair, and send it the configuration."""
        mine, theirs = socket.socketpair()
        try:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)}
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.sources.mqtt.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        await self.loop.create_connection(lambda: self, sock=mine)
        addresses = [r.address for r in self.source.readers]
        self.write(("start", self.source.config, addresses, os.getpid()))

    def write(self, message: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(message))

    # -------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.frames.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        for message in self.frames.received(nbytes):
            kind = message[0]
            if kind == "batch":
                self.source.received(self, message[1], message[2], message[3])
            elif kind == "counts":
                self.source.received_counts(self, message[1])
            elif kind == "connected":
                self._settle(self.connected, message[1])
            elif kind == "ended":
                self._settle(self.connected, message[1])
                self._settle(self.ended, message[1])
            elif kind == "log":
                log.log(message[1], "%s: %s", self.source.config.name, message[2])

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        code = self.process.poll() if self.process is not None else None
        why = f"MQTT worker process ended / MQTT 작업 프로세스 종료 (exit code {code})"
        self._settle(self.connected, why)
        self._settle(self.ended, why)

    @staticmethod
    def _settle(future: asyncio.Future[Any], result: Any) -> None:
        if not future.done():
            future.set_result(result)

    # -------------------------------------------------------------- acknowledgements

    def committed(self, mid: int, qos: int) -> None:
        """The measurement is on disk (or was not a part): acknowledge the message to the broker."""
        if self.closing:
            return
        self.acks.append((mid, qos))
        if not self._flush_scheduled:  # once per loop iteration, after the whole commit's acks
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.acks:
            acks, self.acks = self.acks, []
            self.write(("acks", acks))

    async def close(self) -> None:
        """Acknowledge what is committed, ask the worker to disconnect; kill it if it is slow."""
        self._flush()
        self.write(("stop",))
        self.closing = True
        process = self.process
        try:
            deadline = time.monotonic() + WORKER_STOP
            while process is not None and process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:  # also when cancelled: never leave a worker that holds our client id
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
            if self.transport is not None:
                self.transport.close()


class MqttSource(Source):
    """Subscribes one topic per characteristic on one broker; acknowledges after commit."""

    def __init__(self, config: MqttSettings, bindings: list[Binding], sink: Sink):
        super().__init__(config, bindings, sink)
        self.config: MqttSettings = config
        self.readers: list[_Reader] = []
        for binding in bindings:
            address = binding.characteristic.address
            if not isinstance(address, MqttAddress):
                raise ValueError(f"characteristic {binding.characteristic.name} has no mqtt address")
            where = binding.characteristic.part_from
            if binding.channel:  # the part number's own topic (gateway.sources.parts)
                address = dataclasses.replace(address, is_part=True)
            elif where is not None and where.field is not None:  # short-run: the part in the value's message
                address = dataclasses.replace(address, part=where.field)
            reader = _Reader(binding, address.topic, Sampler(binding.characteristic.sampling.mode), address=address)
            reader.rejected = functools.partial(self._rejected_by_pipeline, reader.topic)
            reader.defectives = bool(getattr(CHARTS.get(binding.characteristic.chart), "defectives", False))
            self.readers.append(reader)
        # Batches from the worker, <= MAX_UNACKED deliveries per connection (the worker's window): values,
        # or deliveries of count addresses (a value of (count, n)), the other list empty.
        self._inbox: collections.deque[tuple[_Worker, list[Delivery], list[CountDelivery]]] = collections.deque()
        self._ready = asyncio.Event()
        self.rejects = RejectLog(log, "message skipped / 메시지 무시", LOG_EVERY)
        self.worker: _Worker | None = None
        self.health.details = {"malformed": 0, "malformed_reasons": self.rejects.by_reason, "worker_pid": None}

    def received(self, worker: _Worker, deliveries: list[Delivery], malformed: dict[str, int],
                 sample: tuple[str, str, str] | None) -> None:
        """A batch from the worker: queue it for the consumer; count and log refused messages."""
        if deliveries:
            self._inbox.append((worker, deliveries, []))
            self._ready.set()
        if malformed:
            topic, kind, why = sample if sample is not None else ("?", next(iter(malformed)), "?")
            self.malformed(topic, kind, why, malformed)

    def received_counts(self, worker: _Worker, deliveries: list[CountDelivery]) -> None:
        """A batch of count messages from the worker: queued in order with the values."""
        self._inbox.append((worker, [], deliveries))
        self._ready.set()

    def malformed(self, topic: str, kind: str, why: str, counts: dict[str, int] | None = None) -> None:
        """Count refused messages per reason; log at most one line per LOG_EVERY seconds."""
        self.rejects.add(f"{self.config.name}: {topic}", kind, why, counts)
        self.health.bad_readings = self.rejects.total
        self.health.details["malformed"] = self.rejects.total

    def _rejected_by_pipeline(self, topic: str, kind: str, why: str) -> None:
        # Parsed here, refused before SPC (a time the store cannot hold): counted and logged with the
        # messages refused here, so one place tells the technician what a gauge sends wrong.
        self.malformed(topic, kind, why)

    async def run(self) -> None:
        """Source.run (a worker per connection, backoff between), beside the task that takes deliveries."""
        consumer = asyncio.create_task(self._consume(), name=f"mqtt-in-consumer:{self.config.name}")
        try:
            await super().run()
        finally:
            consumer.cancel()

    async def connect(self) -> _Worker:
        """A worker process connected to the broker (its CONNACK came)."""
        worker = _Worker(self, asyncio.get_running_loop())
        try:
            await worker.start()
        except OSError as exc:
            await self.close(worker)
            raise NotConnected(f"MQTT worker could not start / MQTT 작업 프로세스 시작 실패: {exc}",
                               logging.ERROR) from exc
        try:
            self.worker = worker
            self.health.details["worker_pid"] = worker.process.pid if worker.process else None
            try:
                outcome = await asyncio.wait_for(asyncio.shield(worker.connected), WORKER_START)
            except TimeoutError:
                outcome = "no CONNACK from the broker / 브로커 응답 없음"
            if isinstance(outcome, str):
                raise NotConnected(outcome, logging.WARNING)
        except BaseException:
            await self.close(worker)
            raise
        self.health.details["session_present"] = outcome
        log.info("%s: connected to %s:%d (session present: %s)", self.config.name, self.config.host,
                 self.config.port, outcome)
        return worker

    async def serve(self, connection: _Worker, backoff: Backoff) -> None:
        """Until the worker's connection ends; a session that lasted resets the backoff."""
        connected_at = time.monotonic()
        self.health.last_error = await connection.ended
        log.warning("%s: %s", self.config.name, self.health.last_error)
        if time.monotonic() - connected_at >= STABLE_SESSION:
            backoff.reset()

    async def close(self, connection: _Worker) -> None:
        await connection.close()
        self.health.details["worker_pid"] = None

    def describe(self, exc: Exception) -> str:
        return str(exc) if isinstance(exc, NotConnected) else super().describe(exc)

    def report(self, exc: Exception) -> None:
        level = exc.level if isinstance(exc, NotConnected) else logging.WARNING
        log.log(level, "%s: %s", self.config.name, self.health.last_error)

    async def _consume(self) -> None:
        readers = self.readers
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._inbox:
                worker, batch, counted = self._inbox.popleft()
                for index, counts, source_time, stamp, mid, qos, received_at in counted:
                    await self._count(worker, readers[index], counts, source_time, stamp, mid, qos, received_at)
                for index, value, source_time, stamp, mid, qos, received_at, part in batch:
                    reader = readers[index]
                    if not reader.sampler.accept(value, source_time):
                        worker.committed(mid, qos)  # not a new part: nothing to store, nothing to redeliver
                        continue
                    # Every timestamped message carries its identity, so a redelivered copy can be dropped.
                    source_key = f"mqtt:{reader.topic}:{stamp}" if stamp is not None else None
                    self.health.readings += 1
                    self.health.last_reading_at = time.monotonic()
                    await self.sink(Measurement(reader.binding.key, value, received_at, source_time,
                                                source_key=source_key,
                                                on_committed=functools.partial(worker.committed, mid, qos),
                                                on_rejected=reader.rejected, part=part))

    async def _count(self, worker: _Worker, reader: _Reader, counts: Counts, source_time: float | None,
                     stamp: str | None, mid: int, qos: int, received_at: float) -> None:
        """One count message: refused when its chart cannot take it, else one reading (value = the count)."""
        count, n = counts
        problem = chart_problem(reader.defectives, count, n)
        if problem is not None:
            self.malformed(reader.topic, *problem)
            worker.committed(mid, qos)  # acknowledged: the broker must not hand it to us again
            return
        self.health.readings += 1
        self.health.last_reading_at = time.monotonic()
        await self.sink(Measurement(reader.binding.key, float(count), received_at, source_time,
                                    source_key=f"mqtt:{reader.topic}:{stamp}" if stamp is not None else None,
                                    on_committed=functools.partial(worker.committed, mid, qos),
                                    on_rejected=reader.rejected, count=count, sample_size=n))
