"""OPC UA counter pairs: a good and a bad counter node read together, for an attribute chart.

Both nodes are read in one Read request at the source's interval (`poll_interval`, or `sampling_interval`
in subscribe mode), also when the source subscribes to its value nodes: a sample is the increase of both
counters between two looks, so one consistent look at both at once is what is needed, not every change.
The counter's width, for telling a wrap from a PLC restart, is the node's data type (UInt16, Int32...);
a counter published as a Double has no width, and every decrease of it is a restart
(gateway.sources.counting).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from asyncua import ua

from gateway.core.rejects import BAD_STATUS, NOT_NUMBER
from gateway.sources.base import Backoff, Binding, Source
from gateway.sources.counter_pair import CounterPair
from gateway.sources.counting import PairFeed

log = logging.getLogger("gateway.sources.opcua")

MIN_INTERVAL = 0.1  # seconds between two reads of the counters, whatever the sampling interval says
_UNKNOWN = (ua.StatusCodes.BadNodeIdUnknown, ua.StatusCodes.BadNodeIdInvalid)
BITS = {ua.VariantType.Byte: 8, ua.VariantType.SByte: 8, ua.VariantType.Int16: 16, ua.VariantType.UInt16: 16,
        ua.VariantType.Int32: 32, ua.VariantType.UInt32: 32, ua.VariantType.Int64: 64, ua.VariantType.UInt64: 64}

Read = Callable[[Any, list[str]], Awaitable[list[ua.DataValue]]]


@dataclass
class PairNodes:
    """One counter-pair characteristic: its two nodes and its sample being filled."""

    binding: Binding
    good_id: str
    bad_id: str
    feed: PairFeed
    failed: dict[str, str] = field(default_factory=dict)  # node id -> why it cannot be read


def pair_nodes(source: Source, binding: Binding) -> PairNodes | None:
    """The counter pair of a characteristic whose address block is one; None for a value address."""
    pair = binding.characteristic.address
    if not isinstance(pair, CounterPair):
        return None
    good, bad = (getattr(pair.good, "node_id", None), getattr(pair.bad, "node_id", None))
    if not isinstance(good, str) or not isinstance(bad, str):
        raise ValueError(f"{binding.key}: a counter pair needs two node ids")
    return PairNodes(binding, good, bad, PairFeed(binding, pair, source.config.name, source.health, log))


class NotACounter(ValueError):
    """A counter node whose value cannot be counted: `kind` is the reason refusals are counted by."""

    def __init__(self, kind: str, why: str):
        super().__init__(why)
        self.kind = kind


def counter(data: ua.DataValue) -> tuple[int, int | None]:
    """(value, width in bits or None) of a counter node; NotACounter when it holds no whole number."""
    if data.StatusCode is not None and data.StatusCode.is_bad():
        raise NotACounter(BAD_STATUS, f"counter status {data.StatusCode.name}")
    variant = data.Value
    value = variant.Value if variant is not None else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NotACounter(NOT_NUMBER, f"counter is not a number: {value!r}"[:80])
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise NotACounter(NOT_NUMBER, f"counter is not a whole number: {value!r}")
        return int(value), None
    return value, BITS.get(variant.VariantType) if variant is not None else None


async def read_pairs(source: Any, client: Any, backoff: Backoff, pairs: list[PairNodes], interval: float) -> None:
    """Read every pair's two nodes at `interval`, until the connection fails (`source._check_alive`)."""
    node_ids = [node for pair in pairs for node in (pair.good_id, pair.bad_id)]
    interval = max(interval, MIN_INTERVAL)
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    first = True
    while True:
        source._check_alive()
        values = dict(zip(node_ids, await source._read(client, node_ids), strict=True))
        if first:
            backoff.reset()
            first = False
        for pair in pairs:
            good, bad = _known(source, pair, pair.good_id, values), _known(source, pair, pair.bad_id, values)
            if good is None or bad is None:
                continue
            try:
                good_count, good_bits = counter(good)
                bad_count, bad_bits = counter(bad)
            except NotACounter as exc:
                source.health.bad_readings += 1
                source.rejects.add(f"{source.config.name}: {pair.binding.key} ({pair.good_id})", exc.kind, str(exc))
                continue
            await pair.feed.offer(good_count, bad_count, source.sink, good_bits, bad_bits)
        next_at += interval
        now = loop.time()
        if next_at < now:  # a slow read: skip the missed ticks rather than read in a burst
            next_at = now + interval
        await asyncio.sleep(next_at - now)


async def first_to_end(sessions: list[Coroutine[Any, Any, None]]) -> None:
    """Run the sessions of one connection together; the first that ends or fails ends them all (and raises)."""
    if len(sessions) == 1:
        return await sessions[0]
    tasks = [asyncio.ensure_future(session) for session in sessions]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # raises the failure that ended it
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _known(source: Any, pair: PairNodes, node_id: str, values: dict[str, ua.DataValue]) -> ua.DataValue | None:
    """The node's value, or None when the server does not know the node (logged once, in health)."""
    data = values[node_id]
    code = data.StatusCode
    failed = source.health.details.setdefault("failed_counter_nodes", {})
    if code is not None and code.value in _UNKNOWN:
        if pair.failed.get(node_id) != code.name:
            log.error("%s: node %s (%s) cannot be read / 노드를 읽을 수 없음: %s", source.config.name, node_id,
                      pair.binding.key, code.name)
        pair.failed[node_id] = failed[node_id] = code.name
        return None
    if pair.failed.pop(node_id, None) is not None:
        failed.pop(node_id, None)
        log.info("%s: node %s readable again", source.config.name, node_id)
    return data
