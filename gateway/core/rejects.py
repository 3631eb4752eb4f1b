"""Refused readings: the reasons, and a log that counts them per reason without flooding.

A gauge that sends garbage usually sends it with every part. One log line per bad message would bury
everything else, so the first refusal of a window is logged in full and the next line says how many
more there were since, per reason: "(+5 more since last report: 3 not a number, 2 bad timestamp)".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

# Why a reading was refused, in a few words: counted per kind in health and in the log lines.
TOO_LARGE = "too large"
NOT_TEXT = "not UTF-8"
NOT_JSON = "not JSON"
NO_FIELD = "missing field"
NOT_NUMBER = "not a number"
NOT_FINITE = "not finite"
OUT_OF_RANGE = "out of range"  # beyond what the SPC statistics can hold (gateway.spc.numeric)
BAD_TIMESTAMP = "bad timestamp"
BAD_ATTRIBUTE = "bad count"  # attribute data: a count or sample size that cannot be stored
NEGATIVE_COUNT = "negative count"  # a count below 0
NOT_WHOLE = "not whole"  # a count, or a number of parts, with a fraction
COUNT_ABOVE_N = "count above n"  # more nonconforming parts than the sample holds (p, np)
NOT_POSITIVE_N = "n not positive"  # a sample size of 0 or less
BAD_TOPIC = "bad topic"
BAD_STATUS = "bad status"  # a value its server marks bad (an OPC UA status code)
UNREADABLE = "unreadable"

LOG_EVERY = 10.0  # seconds between two log lines of one RejectLog


class RejectLog:
    """Counts refusals per reason; logs at most one line per `every` seconds, with the counts since."""

    def __init__(self, logger: logging.Logger, what: str, every: float = LOG_EVERY):
        self.logger, self.what, self.every = logger, what, every
        self.total = 0
        self.by_reason: dict[str, int] = {}  # over the life of the log, for health
        self._suppressed: dict[str, int] = {}  # since the last line
        self._last = -1e18

    def add(self, where: str, kind: str, detail: str, counts: Mapping[str, int] | None = None) -> None:
        """Refusals: `counts` per kind (default one of `kind`); `where`/`detail` describe one of them."""
        counts = counts if counts is not None else {kind: 1}
        for reason, n in counts.items():
            self.total += n
            self.by_reason[reason] = self.by_reason.get(reason, 0) + n
            self._suppressed[reason] = self._suppressed.get(reason, 0) + n
        now = time.monotonic()
        if now - self._last < self.every:
            return
        # The one described is logged in full; every other one counts as "more".
        if self._suppressed.get(kind):
            self._suppressed[kind] -= 1
        more = self.more()
        self._last, self._suppressed = now, {}
        self.logger.warning("%s: %s: %s%s", where, self.what, detail, more)

    def more(self) -> str:
        """" (+N more since last report: 3 not a number, 2 bad timestamp)", or "" when none."""
        counts = sorted(((n, reason) for reason, n in self._suppressed.items() if n > 0),
                        key=lambda item: (-item[0], item[1]))
        if not counts:
            return ""
        listed = ", ".join(f"{n} {reason}" for n, reason in counts)
        return f" (+{sum(n for n, _ in counts)} more since last report: {listed})"
