"""gateway.core.ratelog: a recurring problem is logged once per window per key, with the count held back."""

from __future__ import annotations

import logging

import pytest

from gateway.core import ratelog


def test_one_line_per_key_per_window_then_the_count_held_back(caplog, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(ratelog.time, "monotonic", lambda: now[0])
    limited = ratelog.RateLimitedLog(logging.getLogger("test.ratelog"), every=60.0)
    with caplog.at_level(logging.WARNING, logger="test.ratelog"):
        for _ in range(3):
            limited(logging.WARNING, "unit5", "unit %d: %s", 5, "no answer")
        limited(logging.WARNING, "unit7", "unit %d: %s", 7, "no answer")  # another key: its own window
        now[0] += 61.0
        limited(logging.WARNING, "unit5", "unit %d: %s", 5, "no answer")
    assert [r.getMessage() for r in caplog.records] == [
        "unit 5: no answer", "unit 7: no answer", "unit 5: no answer (2 more like this suppressed)"]


def test_the_keys_it_remembers_are_bounded() -> None:
    limited = ratelog.RateLimitedLog(logging.getLogger("test.ratelog"), every=60.0, max_keys=10)
    for i in range(100):
        limited(logging.DEBUG, f"key{i}", "x")
    assert len(limited._last) <= 10
