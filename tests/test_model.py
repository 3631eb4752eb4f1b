"""The hot path's cached time formatting gives exactly the text of the plain one."""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo

from gateway.core.model import IsoTime, iso_time


def test_iso_time_cache_matches_plain_formatting_across_many_seconds() -> None:
    rng = random.Random(3)
    for zone in ("Asia/Seoul", "UTC", "Europe/Berlin"):  # Berlin: a DST change inside the range
        tz = ZoneInfo(zone)
        cached = IsoTime(tz)
        ts = 1_774_736_000.0  # 2026-03-28, a day before the European change to summer time
        for _ in range(20_000):
            ts += rng.choice([0.0004, 0.0005, 0.0015, 0.4999995, 0.9999996, 1.0, 37.25, 3_600.0])
            assert cached(ts) == iso_time(ts, tz), ts
        assert len(cached._seconds) <= IsoTime.CACHE  # bounded: entries never live long
