"""Rate-limited logging of recurring problems: one line per kind of problem per window.

A dead unit on an RS-485 bus or a server that keeps refusing fails on every poll; one line per
failure would bury everything else. Each problem has a key (the unit, the block and exception code);
a key logs at most once per `every` seconds, and its next line says how many were held back.

Refused *readings* have their own log, gateway.core.rejects.RejectLog: it counts them per reason for
/healthz as well, and puts all reasons of a source in one line per window, which is what a technician
needs of a gauge that sends garbage; a problem log per key would print one line per topic or node.
"""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """Logs a recurring problem once per `every` seconds per key, saying how many were suppressed."""

    def __init__(self, logger: logging.Logger, every: float, max_keys: int = 1000):
        self.logger, self.every, self.max_keys = logger, every, max_keys
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, level: int, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-1e18, 0))
        if now - last < self.every:
            self._last[key] = (last, suppressed + 1)
            return
        if len(self._last) >= self.max_keys:  # bounded: forget the oldest keys
            self._last.pop(next(iter(self._last)))
        self._last[key] = (now, 0)
        tail = f" ({suppressed} more like this suppressed)" if suppressed else ""
        self.logger.log(level, message + tail, *args)
