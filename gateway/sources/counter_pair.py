"""A counter pair in the config file: a "good" and a "bad" part counter read from a PLC, for attribute charts.

A machine that sorts parts (a leak tester, a vision station) usually counts them in two PLC registers
or nodes: parts passed and parts rejected. Each sample of a p, np, c or u chart is the increase of both
counters over a number of parts (`sample_every: 50`) or a period (`every: 1h`): count = the bad
counter's increase, n = the increase of both. The address block of a polled protocol takes this form
when it has `good` and `bad` (each protocol's settings module hands `pair_block` its own counter
address); what is shared is here, so every protocol spells the keys and checks them alike. The running
side is gateway.sources.counting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, Node

from gateway.config.loader import BAD, Convert, Reader
from gateway.config.values import duration, integer

PAIR_KEYS = ("good", "bad")
MAX_SAMPLE_PARTS = 1_000_000  # parts in one sample: more is a typo (a sample is tens to thousands)
MIN_PERIOD = 1.0  # seconds: a sample period shorter than this is a poll, not a sample


@dataclass(frozen=True)
class CounterPair:
    """A characteristic's address block in its counter-pair form (the counters as the protocol parsed them)."""

    good: object
    bad: object
    sample_every: int | None = None  # parts (good + bad increase) per sample
    every: float | None = None  # seconds per sample


# What an attribute characteristic's address block provides (SourceKind.counts): meaning -> its key.
PAIR_COUNTS = {"count": "bad", "n": "good"}


def is_pair(node: Node | None) -> bool:
    """Does this address block name a counter pair (`good` or `bad` among its keys)?"""
    return isinstance(node, MappingNode) and any(getattr(k, "value", None) in PAIR_KEYS for k, _ in node.value)


def pair_block(counter: Convert, extra: Mapping[str, Convert] | None = None,
               counter_form: str = "") -> Convert:
    """The counter-pair form of an address block: `good`, `bad` (each converted by `counter`), and exactly
    one of `sample_every` and `every`; `extra` are the protocol's own keys of the block (a Modbus unit)."""
    spec: dict[str, Convert] = {"good": counter, "bad": counter, "sample_every": integer(1, MAX_SAMPLE_PARTS),
                                "every": duration(above=None, lo=MIN_PERIOD), **(extra or {})}

    def convert(r: Reader, node: Node, path: str) -> Any:
        values = r.fields(node, path, spec, required=PAIR_KEYS)
        if values is None:
            return BAD
        passed = _one_period(r, values, path)
        if not r.ok(values) or not passed:
            return BAD
        return CounterPair(values["good"], values["bad"], values.get("sample_every"), values.get("every"))
    return convert


def _one_period(r: Reader, values: dict[str, Any], path: str) -> bool:
    given = [k for k in ("sample_every", "every") if f"{path}.{k}" in r.marks]
    if len(given) == 2:
        r.at(f"{path}.every", "a sample ends after a number of parts or after a period, not both",
             "sample_every: 50 (parts) or every: 1h")
        return False
    if not given:
        r.at(path, "a counter pair needs to know when a sample ends", "sample_every: 50 (parts) or every: 1h",
             report_as=f"{path}.sample_every")
        return False
    return True


def either(pair: Convert, value: Convert, value_key: str) -> Convert:
    """The address block as a counter pair when it has `good` or `bad`, else as the protocol's value
    address; a block that mixes both forms is told which keys belong to which."""
    def convert(r: Reader, node: Node, path: str) -> Any:
        if not is_pair(node):
            return value(r, node, path)
        mixed = next((v for k, v in node.value if getattr(k, "value", None) == value_key), None)
        if mixed is not None:
            r.mark(mixed, f"{path}.{value_key}")
            return r.error(mixed, f"{path}.{value_key}", f"{value_key} is where a measured value is read; a "
                           "counter pair has good and bad counters instead", f"either {value_key}, or good and bad")
        return pair(r, node, path)
    return convert


def pair_counts(address: object) -> Mapping[str, str]:
    """SourceKind.counts for the polled protocols: a counter pair gives count and n, a value address nothing."""
    return PAIR_COUNTS if isinstance(address, CounterPair) else {}


Counts = Callable[[object], Mapping[str, str]]
