"""Counter pairs at run time: samples of counts from a PLC's good and bad counters (config: counter_pair).

Each read of the two counters adds their increase to the sample being filled; the sample ends once
`sample_every` parts (good + bad increase) have passed, or once `every` seconds have passed since it
began. Then it is one reading of an attribute chart: count = the bad counter's increase, n = both
counters' increase.

A counter that goes back is a PLC restart (or a counter someone reset), unless it looks like the wrap
of its data type: the old value in the top sixteenth of the type's range and the new one in the bottom
sixteenth (a 16-bit counter from 65,530 to 4 made 10 parts). A restart never makes a negative sample:
it is counted, logged, and the sample being filled starts again from the new values (its parts so far
are dropped: they are a sample of an unknown part of the period, and for np charts of the wrong size).

The state lives in memory only: after a gateway restart the first read learns where the counters
stand and a fresh sample begins. The parts made while the gateway was down belong to no known period
(an `every: 1h` sample would hold a night's parts), and the PLC may have restarted meanwhile too.
A reconnect keeps the state: a PLC restart behind it shows as a counter that went back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from gateway.core.model import Measurement
from gateway.sources.base import Binding, Sink, SourceHealth
from gateway.sources.counter_pair import CounterPair

WRAP_ZONE = 16  # a wrap goes from the top 1/16 of the counter's range to its bottom 1/16


def increase(old: int, new: int, bits: int | None) -> tuple[int | None, bool]:
    """(parts counted from old to new, wrapped?); None when the counter went back (a restart).

    `bits` is the width of the counter's data type (signed types are seen as the unsigned number of the
    same bits, so an int16 counter from 32,767 to -32,768 made one part); None: no width is known (a
    float node), and every decrease is a restart."""
    if bits is not None:
        modulus = 1 << bits
        old, new = old % modulus, new % modulus
        if new >= old:
            return new - old, False
        zone = modulus // WRAP_ZONE
        if old >= modulus - zone and new < zone:
            return new + modulus - old, True
        return None, False
    return (new - old, False) if new >= old else (None, False)


@dataclass(frozen=True)
class PairSample:
    """One finished sample: `count` bad parts among `n`, over [started, ended] (monotonic seconds)."""

    count: int
    n: int
    started: float
    ended: float


class PairCounter:
    """The sample being filled from one counter pair. Pure: no I/O, no clock (`now` is given)."""

    def __init__(self, sample_every: int | None, every: float | None):
        if (sample_every is None) == (every is None):
            raise ValueError("a counter pair ends its samples by sample_every or by every, one of them")
        self.sample_every, self.every = sample_every, every
        self.restarts = 0  # counters that went back since start
        self.wraps = 0  # counters that wrapped past their data type's top
        self.restarted = False  # the latest accept() saw a restart
        self.dropped = 0  # parts of the partial sample the latest restart dropped
        self._last: tuple[int, int] | None = None
        self._good = self._bad = 0
        self._started = 0.0

    def accept(self, good: int, bad: int, now: float, good_bits: int | None = None,
               bad_bits: int | None = None) -> PairSample | None:
        """One read of both counters; the finished sample when this read ends one."""
        self.restarted, self.dropped = False, 0
        if self._last is None:  # the first read only learns where the counters stand
            self._restart(good, bad, now)
            return None
        good_up, good_wrapped = increase(self._last[0], good, good_bits)
        bad_up, bad_wrapped = increase(self._last[1], bad, bad_bits)
        if good_up is None or bad_up is None:
            self.restarts += 1
            self.restarted, self.dropped = True, self._good + self._bad
            self._restart(good, bad, now)
            return None
        self.wraps += good_wrapped + bad_wrapped
        self._last = (good, bad)
        self._good += good_up
        self._bad += bad_up
        total = self._good + self._bad
        if self.sample_every is not None:
            if total < self.sample_every:
                return None
        elif now - self._started < (self.every or 0.0):
            return None
        elif total == 0:  # a period without parts (the line stood): no sample, the next period begins
            self._started = now
            return None
        sample = PairSample(self._bad, total, self._started, now)
        self._good = self._bad = 0
        self._started = now
        return sample

    @property
    def filling(self) -> tuple[int, int]:
        """(bad, good + bad) of the sample being filled."""
        return self._bad, self._good + self._bad

    def _restart(self, good: int, bad: int, now: float) -> None:
        self._last = (good, bad)
        self._good = self._bad = 0
        self._started = now


class PairFeed:
    """One counter-pair characteristic of a polled source: its counter, what it tells health and the log,
    and the reading it hands to the pipeline when a sample ends."""

    def __init__(self, binding: Binding, pair: CounterPair, source: str, health: SourceHealth,
                 log: logging.Logger):
        self.binding, self.pair, self.source, self.health, self.log = binding, pair, source, health, log
        self.counter = PairCounter(pair.sample_every, pair.every)
        health.details.setdefault("counter_restarts", 0)
        health.details.setdefault("counter_wraps", 0)

    async def offer(self, good: int, bad: int, sink: Sink, good_bits: int | None = None,
                    bad_bits: int | None = None) -> None:
        """One read of both counters (call at every poll, also when nothing moved: `every` needs the clock)."""
        counter = self.counter
        wraps = counter.wraps
        sample = counter.accept(good, bad, time.monotonic(), good_bits, bad_bits)
        if counter.wraps != wraps:
            _add(self.health.details, "counter_wraps", counter.wraps - wraps)
            self.log.info("%s: %s: a counter wrapped past its data type's top (good %d, bad %d now)",
                          self.source, self.binding.key, good, bad)
        if counter.restarted:
            _add(self.health.details, "counter_restarts", 1)
            self.log.warning("%s: %s: a counter went back (good %d, bad %d now): PLC restart? The partial "
                             "sample of %d parts is dropped; the next one starts here / 카운터 재시작: "
                             "진행 중인 샘플 %d개 폐기", self.source, self.binding.key, good, bad, counter.dropped,
                             counter.dropped)
        if sample is None:
            return
        self.health.readings += 1
        self.health.last_reading_at = time.monotonic()
        await sink(Measurement(self.binding.key, float(sample.count), time.time(), count=sample.count,
                               sample_size=sample.n))


def _add(details: dict[str, object], key: str, n: int) -> None:
    value = details.get(key, 0)
    details[key] = (value if isinstance(value, int) else 0) + n
