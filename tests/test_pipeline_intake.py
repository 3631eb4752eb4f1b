"""The pipeline's check before SPC, for any source: a reading whose time the store cannot hold is
refused with its reason, and the engine counts only what is stored (issue 13, item 5)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.core.model import CharacteristicKey, Measurement
from gateway.sources.registry import load_config
from tests.daemon_helpers import minimal_config, write_config
from tests.gateway_helpers import handled


def test_readings_the_store_cannot_hold_are_refused_before_the_engine(tmp_path: Path, caplog) -> None:
    """What an OPC UA or Modbus source hands over (no callback of its own): the pipeline logs it."""
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path))))  # Asia/Seoul
    key = CharacteristicKey(1, "diameter")
    now = time.time()
    told: list[tuple[str, str]] = []

    async def scenario() -> dict:
        gateway = Gateway(config)
        await gateway.start()
        try:
            sink = gateway.pipeline.sink
            await sink(Measurement(key, 10.0, now, source_time=now - 2))
            for bad_time in (1e300, -1e15, 253402300799.0, float("nan")):  # the last second of 9999 UTC:
                await sink(Measurement(key, 10.4, now, source_time=bad_time))  # the year 10000 in Seoul
            await sink(Measurement(key, float("inf"), now))
            await sink(Measurement(key, 10.4, now, source_time=1e300,
                                   on_rejected=lambda kind, why: told.append((kind, why))))
            await sink(Measurement(key, 10.1, now, source_time=now - 1))
            await handled(gateway, 8)
            return gateway.pipeline.health()[str(key)]
        finally:
            await gateway.stop()

    with caplog.at_level(logging.WARNING, logger="gateway.pipeline"):
        health = asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        stored = conn.execute("SELECT value, sample_number FROM measurements ORDER BY id").fetchall()
    assert stored == [(10.0, 1), (10.1, 2)], "the engine counted readings that were not stored"
    assert health["readings"] == 2 and health["rejected"] == 6
    assert [kind for kind, _ in told] == ["bad timestamp"]  # the source's own callback, not the log
    refused = [r.getMessage() for r in caplog.records if "reading refused" in r.getMessage()]
    assert len(refused) == 1, refused  # one line per window; the rest are counted for the next line
    assert "1/diameter: reading refused / 측정값 거부: time 1e+300 s after 1970" in refused[0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("zone, accepted", [("UTC", True), ("Asia/Seoul", False), ("America/New_York", True)])
def test_the_check_follows_the_configured_zone(tmp_path: Path, zone: str, accepted: bool) -> None:
    """9999-12-31T20:00Z is a date in UTC and New York, and the year 10000 in Seoul: exactly what the
    store can hold in that zone, no more and no less."""
    cfg = minimal_config(tmp_path)
    cfg["gateway"]["timezone"] = zone
    config, _ = load_config(str(write_config(tmp_path, cfg)))
    key = CharacteristicKey(1, "diameter")

    async def scenario() -> tuple[int, int]:
        gateway = Gateway(config)
        await gateway.start()
        try:
            await gateway.pipeline.sink(Measurement(key, 10.0, time.time(), source_time=253402286400.0))
            await handled(gateway, 1)
            return gateway.pipeline.ingested, gateway.pipeline.rejected
        finally:
            await gateway.stop()

    ingested, rejected = asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        stored = conn.execute("SELECT count(*) FROM measurements").fetchone()[0]
    assert (ingested, rejected, stored) == ((1, 0, 1) if accepted else (0, 1, 0))
