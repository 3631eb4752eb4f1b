"""`SourcePlugin`: everything the gateway knows of one source protocol, behind one value.

Each protocol package (gateway.sources.<protocol>) defines its PLUGIN; gateway.sources.registry lists
them. The plugin's config-facing part is a `SourceKind` (config cannot import sources); the running
source and the probe are imported only when used, so a protocol library is loaded only by a gateway
that has such a source.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.config import Characteristic, Config, SourceKind, SourceSettings
from gateway.sources.counter_pair import CounterPair

if TYPE_CHECKING:
    from gateway.sources.base import Binding, Sink, Source

# A source whose interval is this short is still given this long before its characteristics go stale:
# a reading or two late is not a dead gauge.
MIN_STALE_AFTER = 5.0
STALE_INTERVALS = 3  # intervals without a good value before a characteristic is stale

Build = Callable[[Any, "list[Binding]", "Sink"], "Source"]
# probe(config, settings, address or None, out, wait=seconds) -> exit status
Probe = Callable[..., Awaitable[int]]


@dataclass(frozen=True)
class SourcePlugin:
    """One source protocol: its config kind, its running source, its probe and its staleness rule."""

    kind: SourceKind
    build: Build  # (settings, bindings, sink) -> a Source, not started yet
    probe: Probe  # the `spc-gateway probe` command for one source of this protocol
    # How often a reading is expected, from the source's settings; None: readings come when a part is
    # measured (a broker's publisher), so there is no interval to judge staleness by.
    reading_interval: Callable[[Any], float | None]
    probe_address: str  # what ADDRESS may be in `probe SOURCE ADDRESS`, for the help
    probe_all: str  # what `probe SOURCE` reads without one
    waits: bool = False  # the probe listens for messages (`--wait`) instead of reading

    @property
    def type(self) -> str:
        return self.kind.type

    def stale_after(self, settings: SourceSettings, characteristic: Characteristic) -> float | None:
        """Seconds without a good value before the characteristic is stale; None: never."""
        if characteristic.stale_after is not None:
            return characteristic.stale_after
        if isinstance(characteristic.address, CounterPair):  # one reading per sample, not per poll
            every = characteristic.address.every
            return None if every is None else max(STALE_INTERVALS * every, MIN_STALE_AFTER)
        interval = self.reading_interval(settings)
        return None if interval is None else max(STALE_INTERVALS * interval, MIN_STALE_AFTER)


def characteristics_of(config: Config, source_name: str) -> list[Characteristic]:
    """The characteristics one source reads, in file order (what a probe reads without an address)."""
    return [c for p in config.products for c in p.characteristics if c.source == source_name]
