"""The wait between reconnect attempts: one rule for every source and the northbound output."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with full jitter, capped; ours, not the libraries' defaults."""

    def __init__(self, initial: float = 1.0, maximum: float = 30.0):
        self.initial, self.maximum = initial, maximum
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
