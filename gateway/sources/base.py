"""The one interface every gauge source implements, the health it reports, and its reconnect loop.

`Source.run` is the loop every protocol shares, written once: connect, serve until the connection ends
or fails, close, back off, connect again; health says which step it is in. A protocol fills in
`connect`, `serve` and `close` (and how it words and logs a failure).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.config import Backoff as BackoffSettings
from gateway.config import Characteristic, Product
from gateway.config import SourceSettings as ConfigSourceSettings
from gateway.core.backoff import Backoff as Backoff  # the sources import it from here
from gateway.core.model import CharacteristicKey, Measurement

log = logging.getLogger("gateway.sources")

STOP_ATTEMPTS = 10  # cancels sent to a source task before giving up on it
STOP_WAIT = 0.1  # seconds to wait after each cancel

ConnectionState = Literal["connecting", "connected", "down", "stopped"]

# Where a source hands its readings: the pipeline's bounded queue (awaiting it is the back-pressure).
Sink = Callable[[Measurement], Awaitable[None]]


class SourceSettings(ConfigSourceSettings, Protocol):
    """What the reconnect loop reads of every source's settings."""

    @property
    def backoff(self) -> BackoffSettings: ...


@dataclass
class SourceHealth:
    """What /healthz and /metrics say about one source."""

    name: str
    type: str
    state: ConnectionState = "connecting"
    last_error: str | None = None
    reconnects: int = 0
    readings: int = 0  # good readings delivered
    bad_readings: int = 0  # bad status, malformed payload, decode errors
    last_reading_at: float | None = None  # monotonic
    details: dict[str, object] = field(default_factory=dict)

    def add_missed_parts(self, parts: int) -> None:
        """Count parts a jump of the part counter skipped (details['missed_parts'], an int)."""
        missed = self.details.get("missed_parts", 0)
        self.details["missed_parts"] = (missed if isinstance(missed, int) else 0) + parts

    def as_dict(self) -> dict[str, object]:
        age = None if self.last_reading_at is None else round(time.monotonic() - self.last_reading_at, 3)
        return {
            "name": self.name, "type": self.type, "state": self.state, "last_error": self.last_error,
            "reconnects": self.reconnects, "readings": self.readings, "bad_readings": self.bad_readings,
            "last_reading_age_s": age, **self.details,
        }


@dataclass(frozen=True)
class Binding:
    """One characteristic that a source reads, with its product."""

    product: Product
    characteristic: Characteristic
    channel: str = ""  # "part": the part number of a short-run characteristic (gateway.sources.parts)

    @property
    def key(self) -> CharacteristicKey:
        return CharacteristicKey(self.product.id, self.characteristic.name, self.channel)


class Source(abc.ABC):
    """A running connection to one gauge server/bus; reads its bindings and feeds the sink."""

    def __init__(self, config: SourceSettings, bindings: list[Binding], sink: Sink):
        self.config = config
        self.bindings = bindings
        self.sink = sink
        self.health = SourceHealth(config.name, config.type)
        self._task: asyncio.Task[None] | None = None
        # Connections made so far: an output written through this source is written again after each
        # new one (a PLC that restarted has lost its coils).
        self.connections = 0

    async def start(self) -> None:
        """Start reading in the background; never raises for a peer that is down."""
        self._task = asyncio.create_task(self.run(), name=f"source:{self.config.name}")

    async def stop(self) -> None:
        """Stop reading and close connections."""
        task, self._task = self._task, None
        if task is not None:
            # Python 3.11's asyncio.wait_for inside the protocol libraries can swallow one cancel:
            # cancel again until the task really ends, within a bound.
            for _ in range(STOP_ATTEMPTS):
                task.cancel()
                done, _pending = await asyncio.wait({task}, timeout=STOP_WAIT)
                if done:
                    break
            else:
                log.warning("source %s did not stop within %.1f s", self.config.name, STOP_ATTEMPTS * STOP_WAIT)
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning("source %s ended with %r", self.config.name, task.exception())
        self.health.state = "stopped"

    async def run(self) -> None:
        """Connect, serve, close; back off and connect again: forever, until cancelled."""
        backoff = Backoff(self.config.backoff.initial, self.config.backoff.maximum)
        while True:
            self.health.state = "connecting"
            connection: Any = None
            try:
                connection = await self.connect()
                self.health.state = "connected"
                self.connections += 1
                await self.serve(connection, backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a peer problem: say so, back off, reconnect; never end the task
                self.health.last_error = self.describe(exc)
                self.report(exc)
            finally:
                if connection is not None:
                    await self.close(connection)
            self.health.state = "down"
            self.health.reconnects += 1
            await asyncio.sleep(backoff.next_delay())

    @abc.abstractmethod
    async def connect(self) -> Any:
        """A new connection, ready to serve; raises when there is none (closing what it half made)."""

    @abc.abstractmethod
    async def serve(self, connection: Any, backoff: Backoff) -> None:
        """Read until the connection ends (return) or fails (raise); reset `backoff` once it proves good."""

    @abc.abstractmethod
    async def close(self, connection: Any) -> None:
        """Close a connection `connect` made; also when the task is being cancelled."""

    async def write(self, target: object, on: bool) -> None:
        """Write an output (andon, interlock) through this source's connection: `target` is what the
        protocol's plugin parsed from the output's `write:` block. Raises when the write did not happen."""
        raise NotImplementedError(f"{self.config.type} sources cannot be written")

    def describe(self, exc: Exception) -> str:
        """A failure as health's last_error says it."""
        return f"{type(exc).__name__}: {exc}"

    def report(self, exc: Exception) -> None:
        """Log a failure (health.last_error is already set)."""
        log.warning("%s: %s", self.config.name, self.health.last_error)
