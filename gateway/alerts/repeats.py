"""A run rule that keeps firing: which of its violations the screens get (lean frames, issue 17).

While a process sits in a pattern (test 7 on every reading of a stratified stream, a long shift), a
rule fires on point after point. Every violation is stored and goes northbound, but a screen needs
only to know that the rule started to hold and, now and then, that it still holds and for how many
points: one violation per reading would be most of what it parses at the very moment it matters.

The choice is made once, here, when the violation is numbered, and stored with it (`Event.notable`),
so a `since` replay sends exactly what the live screens were sent.
"""

from __future__ import annotations

from dataclasses import dataclass

UPDATE_INTERVAL = 1.0  # seconds between a firing rule's updates, per characteristic, chart and rule


@dataclass
class _Run:
    last_point: int  # the subgroup number of the latest point the rule fired on
    count: int  # consecutive points it has fired on, that one included
    sent_at: float  # when the screens last got a violation of this run


class ViolationRepeats:
    """Runs of a rule firing on consecutive points, keyed by (product id, characteristic, chart, rule).

    The keys come from the configuration, so the map stays as small as the line.
    """

    def __init__(self, interval: float = UPDATE_INTERVAL):
        self.interval = interval
        self._runs: dict[tuple[int, str, str, int], _Run] = {}

    def note(self, key: tuple[int, str, str, int], point: int, now: float) -> tuple[int, bool]:
        """The rule fired on `point` at `now` (monotonic seconds): how many consecutive points it has
        held (this one included), and whether the screens get this violation. They get the first of a
        run, then at most one per `interval` while it goes on; a point the rule did not fire on ends
        the run, so the next firing starts a new one."""
        run = self._runs.get(key)
        if run is None or point != run.last_point + 1:
            self._runs[key] = _Run(point, 1, now)
            return 1, True
        run.last_point = point
        run.count += 1
        if now - run.sent_at >= self.interval:
            run.sent_at = now
            return run.count, True
        return run.count, False
