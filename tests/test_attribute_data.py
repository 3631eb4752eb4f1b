"""Attribute data (issue 14, item 3): a reading may carry a count and a sample size (p, np, c, u charts).
Nothing charts them yet; they travel through the pipeline, are stored, replayed and exported, and a count
that cannot be stored is refused with its reason."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.core.model import CharacteristicKey, Measurement
from gateway.sources.registry import load_config
from gateway.store.maintenance import export_csv
from tests.daemon_helpers import minimal_config, write_config
from tests.gateway_helpers import handled, published


def test_count_and_sample_size_are_stored_sent_and_exported(tmp_path: Path) -> None:
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path))))
    key = CharacteristicKey(1, "diameter")
    now = time.time()
    told: list[tuple[str, str]] = []

    async def scenario() -> tuple[list, list]:
        gateway = Gateway(config)
        await gateway.start()
        try:
            sent = published(gateway)
            sink = gateway.pipeline.sink
            await sink(Measurement(key, 10.0, now))  # variables data: no count
            await sink(Measurement(key, 10.01, now, count=3, sample_size=50))  # p / np: 3 of 50 parts
            await sink(Measurement(key, 10.02, now, count=7, sample_size=2.5))  # u: 7 defects in 2.5 units
            await sink(Measurement(key, 10.03, now, count=4))  # c: a count per inspection unit
            for bad in (dict(count=-1), dict(count=2.5), dict(count=True), dict(sample_size=10),
                        dict(count=1, sample_size=0), dict(count=1, sample_size=float("nan"))):
                await sink(Measurement(key, 10.0, now, on_rejected=lambda kind, why: told.append((kind, why)),
                                       **bad))
            await handled(gateway, 10)
            stored = await gateway.store.measurements(1, "diameter", limit=10)
            return stored, [e.body["measurement"] for e in sent if e.type == "measurement"]
        finally:
            await gateway.stop()

    stored, sent = asyncio.run(scenario())
    assert [(m["measurement_value"], m.get("count"), m.get("sample_size")) for m in stored] == [
        (10.0, None, None), (10.01, 3, 50), (10.02, 7, 2.5), (10.03, 4, None)]
    assert "count" not in stored[0]  # a variables measurement keeps the object it always had
    assert [(m.get("count"), m.get("sample_size")) for m in sent] == [(None, None), (3, 50), (7, 2.5), (4, None)]
    assert "count" not in sent[0] and isinstance(stored[1]["sample_size"], int)
    assert [kind for kind, _ in told] == ["bad count"] * 6
    assert [why for _, why in told] == [
        "count -1 is not a whole number >= 0", "count 2.5 is not a whole number >= 0",
        "count True is not a whole number >= 0", "a sample size without a count",
        "sample size 0 is not a number > 0", "sample size nan is not a number > 0"]
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] == 4  # nothing of the refused
    out = io.StringIO()
    assert export_csv(str(tmp_path / "spc.sqlite3"), 1, None, None, out) == 4
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["count"], r["sample_size"]) for r in rows] == [("", ""), ("3", "50"), ("7", "2.5"), ("4", "")]


def test_a_p_chart_charts_the_counts_through_the_daemon(tmp_path: Path) -> None:
    """Issue 15, item 2: a characteristic with `chart: p` charts each reading's count in its sample
    (CharacteristicEngine.ingest_count); a reading without a count, or with more nonconforming parts
    than its sample holds, is refused with its reason."""
    config = minimal_config(tmp_path)
    characteristic = config["products"][0]["characteristics"][0]
    characteristic.update(chart="p", limits={"baseline_subgroups": 5}, rules=[1, 2, 3, 4],
                          modbus={"good": {"address": 0}, "bad": {"address": 1}, "sample_every": 50})
    del characteristic["sampling"]  # a chart of counts reads counts (docs/configuration.md, Count data)
    config_, _ = load_config(str(write_config(tmp_path, config)))
    key = CharacteristicKey(1, "diameter")
    now = time.time()
    told: list[tuple[str, str]] = []

    async def scenario() -> list:
        gateway = Gateway(config_)
        await gateway.start()
        try:
            sent = published(gateway)
            sink = gateway.pipeline.sink
            for count in (2, 3, 1, 2, 2):  # the baseline: p-bar = 10/250
                await sink(Measurement(key, 10.0, now, count=count, sample_size=50))
            await sink(Measurement(key, 10.0, now, count=12, sample_size=50))  # 0.24: beyond the UCL
            await sink(Measurement(key, 10.0, now, count=1, sample_size=25))  # its own limits for n = 25
            for bad in (dict(), dict(count=60, sample_size=50)):
                await sink(Measurement(key, 10.0, now, on_rejected=lambda kind, why: told.append((kind, why)),
                                       **bad))
            await handled(gateway, 9)
            return [e.body["subgroup"] for e in sent if e.type == "subgroup"]
        finally:
            await gateway.stop()

    subgroups = asyncio.run(scenario())
    assert [round(s["value"], 4) for s in subgroups] == [0.04, 0.06, 0.02, 0.04, 0.04, 0.24, 0.04]
    beyond, short = subgroups[5], subgroups[6]
    assert beyond["violations"] == [1] and round(beyond["center"], 4) == 0.04
    assert beyond["ucl"] == pytest.approx(0.04 + 3 * (0.04 * 0.96 / 50) ** 0.5)
    assert short["ucl"] == pytest.approx(0.04 + 3 * (0.04 * 0.96 / 25) ** 0.5) and short["lcl"] == 0.0
    assert told == [("bad count", "chart p charts counts: the reading has none"),
                    ("bad count", "count 60 is larger than n 50")]
