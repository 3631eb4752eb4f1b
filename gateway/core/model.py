"""The value objects that travel left to right through the gateway.

Timestamps inside the gateway are POSIX seconds (float, UTC). They become ISO 8601 strings
with the configured zone's offset only at the edge (WebSocket, MQTT, HTTP), via `iso_time`.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Quality = Literal["good", "bad"]
# the events that leave the process (WebSocket, outbox, plant topics), by their `type`
EVENT_TYPES = ("alert", "violation", "capability", "measurement", "subgroup")
INT64_MAX = 2**63 - 1  # SQLite INTEGER's largest: every id, seq and subgroup number stays within it


@dataclass(frozen=True, slots=True)
class CharacteristicKey:
    """Which characteristic of which product a reading belongs to."""

    product_id: int
    characteristic: str
    # "" for the value itself; "part" for the part number a short-run characteristic reads apart from
    # its value (gateway.sources.parts): the same characteristic, another thing read for it
    channel: str = ""

    def __str__(self) -> str:
        return f"{self.product_id}/{self.characteristic}" + (f"#{self.channel}" if self.channel else "")


@dataclass(slots=True)
class Measurement:
    """One reading of one part, as a source delivers it (before SPC)."""

    key: CharacteristicKey
    value: float
    received_at: float
    source_time: float | None = None
    quality: Quality = "good"
    # A stable identity of the reading at its origin (e.g. "mqtt:<topic>:<timestamp>"), used to drop
    # a redelivered copy; None when the origin gives no such identity.
    source_key: str | None = None
    # Called on the event loop once the measurement is committed to SQLite (MQTT acknowledges then).
    on_committed: Callable[[], None] | None = field(default=None, repr=False)
    # Called as (kind, why) when the pipeline refuses the reading (a time it cannot store, a value that
    # is not finite), so the source counts and logs it as its own; the pipeline logs it when None.
    on_rejected: Callable[[str, str], None] | None = field(default=None, repr=False)
    # Attribute data (p, np, c, u charts): the nonconforming parts or defects found (`count`) in a sample of
    # `sample_size` parts or inspection units. None for variables data, where `value` is the measurement.
    # They travel with the reading and are stored and exported; nothing charts them yet.
    count: int | None = None
    sample_size: int | float | None = None
    # Short-run SPC: the part number as the value's own message gave it (`part_from: {field: ...}`), or
    # None; the pipeline resolves it against the characteristic's parts (gateway.sources.parts).
    part: str | None = None

    @property
    def measured_at(self) -> float:
        """The time the part was measured: the source's timestamp when it gave one."""
        return self.source_time if self.source_time is not None else self.received_at

    def attribute_problem(self) -> str | None:
        """Why count/sample_size cannot be stored (None when they can): a count is a whole number >= 0, a
        sample size a finite number > 0; a sample size alone says nothing."""
        count, size = self.count, self.sample_size
        if count is None and size is None:
            return None
        if count is None:
            return "a sample size without a count"
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return f"count {count!r} is not a whole number >= 0"
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float))
                                 or not math.isfinite(size) or size <= 0):
            return f"sample size {size!r} is not a number > 0"
        return None


@dataclass(frozen=True, slots=True)
class Event:
    """A stored, numbered fact that leaves the process: one WebSocket/MQTT message."""

    seq: int
    type: str  # alert | measurement | subgroup | violation | capability
    product_id: int | None
    body: dict[str, Any]  # the whole protocol message, including type, timestamp and seq
    # Measurements: True for what the general feed carries of them (out of spec or out of control).
    # Subgroups and violations: False for what no screen is sent (lean frames: a point of n = 1 rides in
    # its measurement, a firing rule's repeats between its updates); the northbound gets every event.
    notable: bool = True
    # The body as compact UTF-8 JSON, encoded once when the event is numbered: the stored row, the
    # WebSocket frame, the `since` replay and the outbox payload are these bytes. b"" when an event is
    # built elsewhere (then senders encode the body themselves).
    data: bytes = field(default=b"", repr=False, compare=False)


def iso_time(ts: float, tz: _dt.tzinfo) -> str:
    """POSIX seconds -> ISO 8601 with the zone's UTC offset, millisecond precision."""
    return _dt.datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


def finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN or infinity: such numbers travel as null."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


class IsoTime:
    """`iso_time` for one zone, formatting each whole second once: the hot path formats the same
    second again and again (measured_at and timestamp of every event), and datetime is slow."""

    __slots__ = ("tz", "_seconds")
    # Whole seconds remembered, cleared when full: readings arrive roughly in time order, so a few
    # seconds per source clock are enough. Kept small on purpose: an entry made every second and kept
    # for many minutes (1,024 entries lived 17 minutes each) is the kind of long-lived object that can
    # pin a 1 MiB pymalloc arena among the thousands of short-lived ones a second.
    CACHE = 16

    def __init__(self, tz: _dt.tzinfo):
        self.tz = tz
        self._seconds: dict[float, tuple[str, str]] = {}

    def __call__(self, ts: float) -> str:
        """The same text as iso_time(ts, tz)."""
        # datetime.fromtimestamp splits the same way: modf, microseconds rounded half to even
        frac, whole = math.modf(ts)
        us = round(frac * 1e6)
        if us >= 1_000_000:
            us -= 1_000_000
            whole += 1.0
        elif us < 0:
            us += 1_000_000
            whole -= 1.0
        parts = self._seconds.get(whole)
        if parts is None:
            text = _dt.datetime.fromtimestamp(whole, self.tz).isoformat(timespec="seconds")
            parts = (text[:19], text[19:])  # "YYYY-MM-DDTHH:MM:SS", "+09:00"
            if len(self._seconds) >= self.CACHE:
                self._seconds.clear()
            self._seconds[whole] = parts
        return f"{parts[0]}.{us // 1000:03d}{parts[1]}"
