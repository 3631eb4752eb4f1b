"""When a polled or pushed reading is a new part (`sampling` in the config).

A polled register or node holds the gauge's *latest* reading, so polling it every 500 ms must not
store one part twenty times. The sampler decides, per characteristic, whether a reading is a new part.
Pure logic: no I/O, no clock, no logging (the source logs what `last_missed` / `counter_reset` say).
"""

from __future__ import annotations

from typing import Literal

SamplingMode = Literal["per_message", "on_change", "every_poll", "part_counter"]
MODES: tuple[str, ...] = ("per_message", "on_change", "every_poll", "part_counter")

_UNSET = object()


def _same(a: object, b: object) -> bool:
    # A register stuck at NaN is one bad reading, not a new one every poll (NaN != NaN).
    return a == b or (a != a and b != b)


class Sampler:
    """Decides for one characteristic whether a reading is a new part."""

    def __init__(self, mode: str):
        if mode not in MODES:
            raise ValueError(f"unknown sampling mode {mode!r} (allowed: {', '.join(MODES)})")
        self.mode = mode
        self.missed = 0  # parts skipped by part-counter jumps of more than one, since start
        self.last_missed = 0  # parts skipped by the jump that the latest accept() saw
        self.counter_resets = 0  # the counter went backwards (PLC reset, wrap): counted as one part
        self.counter_reset = False  # the latest accept() saw the counter go backwards
        self._value: object = _UNSET
        self._source_time: object = _UNSET
        self._counter: int | None = None

    def accept(self, value: float, source_time: float | None = None, counter: int | None = None) -> bool:
        """Is this reading a new part? Call once per reading, in order."""
        self.last_missed = 0
        self.counter_reset = False
        if self.mode in ("per_message", "every_poll"):
            return True
        if self.mode == "on_change":
            # The first reading after start counts: the register may hold a part nobody stored yet.
            changed = (self._value is _UNSET or not _same(value, self._value)
                       or (source_time is not None and source_time != self._source_time))
            self._value, self._source_time = value, source_time
            return changed
        return self._accept_counter(counter)

    def _accept_counter(self, counter: int | None) -> bool:
        if counter is None:
            raise ValueError("part_counter sampling needs the counter with every reading")
        counter = int(counter)
        previous, self._counter = self._counter, counter
        if previous is None:
            # The first look only learns where the counter stands: the part it counts is the one the
            # PLC finished before we connected, most likely already stored before a restart.
            return False
        if counter == previous:
            return False
        if counter < previous:
            # A PLC restart or a wrapped counter: one new part, and nothing known about misses.
            self.counter_resets += 1
            self.counter_reset = True
            return True
        jump = counter - previous
        if jump > 1:
            self.last_missed = jump - 1
            self.missed += jump - 1
        return True

    def reset_counter(self) -> None:
        """Forget the counter position (e.g. the counter's address changed); the next read re-learns it."""
        self._counter = None
