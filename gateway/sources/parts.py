"""The part number now running, per short-run characteristic: read, resolved by its codes, aged.

A characteristic with `parts:` learns which part each reading belongs to from `part_from:` (the
configuration, gateway.config.parts):

- a channel of its own (a PLC register, an OPC UA node, an MQTT topic): the part source reads it like
  any characteristic, as a Binding with channel "part" (`part_bindings`), listed before the value
  bindings so that a poll that reads both delivers the part first. The pipeline hands every such
  reading to `PartTracker.read`; the part holds until the next one, and goes stale like a value does
  (the part source's staleness rule, read every poll);
- a field of the value's own message (`field:`, MQTT JSON): the source puts its text on
  Measurement.part.

A reading while the part is unknown is stored, not charted, with the reason (`part_unknown`):
NOT_READ (no part read yet, or the message has no such field), NOT_IN_TABLE (a code or name that is
not one of the parts), STALE (the part's channel has gone quiet).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from gateway.config import Characteristic, Config, Product, Sampling, Spec
from gateway.core.model import Measurement
from gateway.sources.base import Binding
from gateway.sources.registry import SOURCES
from gateway.spc.engine import EngineSettings
from gateway.spc.shortrun import PartTarget, ShortRunEngine

PART_CHANNEL = "part"  # CharacteristicKey.channel of a part reading
NOT_READ = "not_read"
NOT_IN_TABLE = "not_in_table"
STALE = "stale"


def part_channel(config: Config, characteristic: Characteristic) -> Characteristic | None:
    """The characteristic as its part source reads the part: the part's address, read on every poll
    (so that its age says whether it is still current). None when the part comes in the value's message."""
    where = characteristic.part_from
    if where is None or where.address is None:
        return None
    source = next((s for s in config.sources if s.name == where.source), None)
    if source is None:
        return None
    kind = SOURCES[source.type].kind
    mode = "every_poll" if "every_poll" in kind.sampling_modes else kind.default_sampling
    return replace(characteristic, source=where.source, address=where.address, sampling=Sampling(mode))


def part_bindings(config: Config, source_name: str) -> list[Binding]:
    """The part channels one source reads (gateway.app puts them before its value bindings)."""
    found = []
    for product in config.products:
        for characteristic in product.characteristics:
            channel = part_channel(config, characteristic)
            if channel is not None and channel.source == source_name:
                found.append(Binding(product, channel, PART_CHANNEL))
    return found


def part_stale_after(config: Config, characteristic: Characteristic) -> float | None:
    """Seconds without a part reading before the part is no longer trusted; None: never."""
    channel = part_channel(config, characteristic)
    if channel is None:
        return None
    source = next(s for s in config.sources if s.name == channel.source)
    return SOURCES[source.type].stale_after(source, channel)


def short_run_engine(characteristic: Characteristic, settings: EngineSettings,
                     state: dict[str, Any] | None) -> ShortRunEngine | None:
    """The chart of a characteristic with parts (None without), continued from `state` when given."""
    if characteristic.short_run is None:
        return None
    parts = [PartTarget(p.name, p.target, p.sigma, p.lsl, p.usl) for p in characteristic.parts]
    return ShortRunEngine(characteristic.short_run, parts, settings, state=state)


def with_part_spec(characteristic: Characteristic, part: str, made: dict[str, Any]) -> Characteristic:
    """The characteristic with one part's spec, which the alerts judge and word a reading by (made once
    per part, kept in `made`)."""
    view = made.get(part)
    if view is None:
        spec = next(p for p in characteristic.parts if p.name == part)
        view = made[part] = replace(characteristic, spec=Spec(lsl=spec.lsl, target=spec.target, usl=spec.usl))
    assert isinstance(view, Characteristic)
    return view


class PartTracker:
    """Which part a reading of one characteristic belongs to."""

    def __init__(self, product: Product, characteristic: Characteristic, stale_after: float | None):
        where = characteristic.part_from
        assert where is not None  # the configuration requires part_from with parts
        self.names = {p.name for p in characteristic.parts}
        self.codes = dict(where.codes)
        self.in_message = where.field is not None
        self.stale_after = stale_after
        self.current: str | None = None
        self.problem: str | None = NOT_READ
        self.last_read: float | None = None  # monotonic
        self.last_raw: str | None = None  # what was read, for the log when it is not a part
        self.label = f"{product.code}/{characteristic.name}"

    def resolve(self, raw: str | float | None) -> tuple[str | None, str | None]:
        """(part, None) or (None, why not) for what was read."""
        if raw is None:
            return None, NOT_READ
        if self.codes:
            code = _whole(raw)
            part = None if code is None else self.codes.get(code)
            return (part, None) if part is not None else (None, NOT_IN_TABLE)
        name = raw if isinstance(raw, str) else (str(_whole(raw)) if _whole(raw) is not None else repr(raw))
        name = name.strip()
        return (name, None) if name in self.names else (None, NOT_IN_TABLE)

    def read(self, raw: str | float | None, monotonic: float) -> None:
        """A reading of the part's own channel: the part from now on."""
        self.last_read = monotonic
        self.last_raw = None if raw is None else str(raw)
        self.current, self.problem = self.resolve(raw)

    def part_for(self, reading: Measurement, monotonic: float) -> tuple[str | None, str | None]:
        """The part of one value reading: (part, None), or (None, why it is unknown)."""
        if self.in_message:  # the last one is kept for /healthz
            self.last_raw = reading.part
            self.current, self.problem = self.resolve(reading.part)
            return self.current, self.problem
        if self.last_read is None:
            return None, NOT_READ
        if self.stale_after is not None and monotonic - self.last_read > self.stale_after:
            return None, STALE
        return self.current, self.problem


def _whole(raw: str | float) -> int | None:
    """A PLC's code as a whole number: 2, 2.0 and "2" are code 2; anything else is none."""
    if isinstance(raw, str):
        text = raw.strip()
        digits = text[1:] if text[:1] in "+-" else text
        return int(text) if digits.isascii() and digits.isdigit() and len(digits) <= 19 else None
    if isinstance(raw, bool) or not math.isfinite(raw) or raw != int(raw):
        return None
    return int(raw)
