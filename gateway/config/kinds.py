"""What the config needs to know of one kind of source (a protocol), handed in by the caller.

The config package names no protocol: each source plugin (gateway.sources.<protocol>) describes its
`sources:` entry, its characteristics' address block and its sampling modes as a `SourceKind`, and
`load_config(path, kinds)` reads the file with them. The registry of plugins lives in
gateway.sources.registry, above config, so the import graph keeps one direction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from yaml.nodes import Node

from gateway.config.loader import Convert, Reader
from gateway.config.model import SamplingMode, SourceSettings

Check = Callable[[Reader, dict[str, Any], str], bool]


def _no_context(item: Node) -> object:
    return None


def _no_counts(address: object) -> Mapping[str, str]:
    return {}


@dataclass(frozen=True)
class SourceKind:
    """The config-facing part of one source protocol."""

    type: str  # `type:` of its sources entries, and the key of its characteristics' address block
    label: str  # how a message names its sources ("MQTT", "Modbus")
    settings: Callable[..., SourceSettings]  # the dataclass a `sources:` entry becomes
    spec: Mapping[str, Convert]  # key -> converter of its sources entry
    required: tuple[str, ...]  # keys of its sources entry that must be given
    check: Check | None  # cross-checks of its sources entry
    # The address block's converter, given `context(item)` of the characteristic's source (None when
    # the source is of another kind or unknown: then the block's defaults).
    address: Callable[[object], Convert]
    sampling_modes: tuple[str, ...]  # the modes (besides part_counter) its characteristics may use
    default_sampling: SamplingMode
    polled: bool  # read on an interval: staleness has an interval, and messages say "polled sources"
    # What an address block depends on in the source entry (a Modbus unit range on its transport),
    # read from the raw node once the source's type and name are known.
    context: Callable[[Node], object] = _no_context
    # The part counter's address converter, given the context and the characteristic's address block
    # node (a counter inherits its unit from it); None: this kind has no part counter.
    counter: Callable[[object, Node | None], Convert] | None = None
    counter_example: str = ""  # a part_counter block as a technician would write it, for messages
    # (host, port, client_id) when a source logs in to a broker with a client id: two connections to
    # one broker with one client id would drop each other.
    broker_login: Callable[[Any], tuple[str, int, str] | None] | None = None
    # The converter of an `outputs:` entry's `write:` block naming a source of this kind (its keys
    # besides `source`), given the source's context; None: this kind's sources cannot be written.
    write: Callable[[object], Convert] | None = None
    # What a parsed address block gives an attribute chart (p, np, c, u): "count" and "n" -> the key of the
    # block that gives each; empty when the block reads a measured value.
    counts: Callable[[object], Mapping[str, str]] = _no_counts
    counts_example: str = ""  # an address block that reads counts, as a technician would write it
    # Its readings are messages that can carry the part number beside the value (`part_from: {field:
    # PATH}`): the source puts the field's text on Measurement.part.
    part_field: bool = False


def and_list(names: Iterable[str]) -> str:
    """'a and b', 'a, b and c' (a list of what something is for)."""
    items = list(names)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
