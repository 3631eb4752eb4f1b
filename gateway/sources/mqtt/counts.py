"""Count data in an MQTT payload (`count` and `n` paths): what makes a count and a sample size usable.

The worker digs both numbers out of the JSON (gateway.sources.mqtt.worker.parse_payload) in the number
forms a gauge sends; here they must also be a count: whole, not negative, and an n above 0. Whether the
count may exceed n depends on the chart (defectives among n parts: no; defects in n units: yes), which
only the daemon side knows (`chart_problem`). Each refusal has its reason (gateway.core.rejects), counted
per reason in /healthz like every other refused message.
"""

from __future__ import annotations

from gateway.core.rejects import COUNT_ABOVE_N, NEGATIVE_COUNT, NOT_POSITIVE_N, NOT_WHOLE, OUT_OF_RANGE

MAX_COUNT = 2**53  # a larger JSON number is no longer exact, and no inspected sample is that large

# What a count message carries to the daemon in place of a value: (count, n or None)
Counts = tuple[int, int | float | None]


class BadCount(ValueError):
    """A count or n that is not usable: `kind` names the reason (refusals are counted per kind)."""

    def __init__(self, kind: str, why: str):
        super().__init__(why)
        self.kind = kind


def counts(count: float, n: float | None, count_path: str, n_path: str | None) -> Counts:
    """The count and n of one message as stored (a whole n as an int); BadCount otherwise."""
    if count < 0:
        raise BadCount(NEGATIVE_COUNT, f"{count_path} is negative: {count:g}")
    if not count.is_integer():
        raise BadCount(NOT_WHOLE, f"{count_path} is not a whole number: {count:g}")
    if count > MAX_COUNT:
        raise BadCount(OUT_OF_RANGE, f"{count_path} is beyond {MAX_COUNT}: {count:g}")
    size: int | float | None = None
    if n is not None:
        if not n > 0:
            raise BadCount(NOT_POSITIVE_N, f"{n_path} must be more than 0: {n:g}")
        if n > MAX_COUNT:
            raise BadCount(OUT_OF_RANGE, f"{n_path} is beyond {MAX_COUNT}: {n:g}")
        size = int(n) if n.is_integer() else n
    return int(count), size


def chart_problem(defectives: bool, count: int, n: int | float | None) -> tuple[str, str] | None:
    """(reason, why) when the chart cannot take this count: nonconforming parts (p, np) are whole parts,
    at most n of them; None when it can."""
    if not defectives or n is None:
        return None
    if not float(n).is_integer():
        return NOT_WHOLE, f"n is not a whole number of parts: {n:g}"
    if count > n:
        return COUNT_ABOVE_N, f"count {count} is larger than n {n:g}"
    return None
