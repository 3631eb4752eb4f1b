"""Short-run SPC in the pipeline with a real store: DNOM's limits learned and recalculated at center 0,
the part channel read before the values, the chart and the parts' capability windows across a restart."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import sqlite3
import time
from pathlib import Path

from gateway.alerts import AlertService
from gateway.core.model import CharacteristicKey, Measurement
from gateway.pipeline import Pipeline
from gateway.sources.registry import load_config
from gateway.store import Store
from gateway.store.maintenance import export_csv
from tests.daemon_helpers import minimal_config, write_config
from tests.gateway_helpers import started_pipeline

KEY = CharacteristicKey(1, "bore")
PART = CharacteristicKey(1, "bore", "part")
D2_2 = 2.0 / math.sqrt(math.pi)
BORE = {
    "name": "bore", "unit": "mm", "source": "plc", "modbus": {"address": 0, "data_type": "float32"},
    "parts": {"A-100": {"target": 10.0, "lsl": 9.9, "usl": 10.1}, "A-200": {"target": 12.5}},
    "short_run": "dnom", "limits": {"baseline_subgroups": 6},
    "capability": {"every_subgroups": 30, "window_subgroups": 50},
    "part_from": {"modbus": {"address": 10}, "codes": {1: "A-100", 2: "A-200"}},
}
# (code read before the value, value): deviations 0.01 -0.02 0.03 0.02 -0.03 0.05, moving ranges
# 0.03 0.05 0.01 0.05 0.08 -> MR-bar 0.044
READINGS = [(1, 10.01), (1, 9.98), (1, 10.03), (2, 12.52), (2, 12.47), (2, 12.55)]


async def started(tmp_path: Path) -> tuple[Store, AlertService, Pipeline]:
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path, products=[
        {"id": 1, "code": "HOUSING", "name": "housing", "characteristics": [BORE]}]))))
    return await started_pipeline(config)


async def feed(store: Store, pipeline: Pipeline, readings: list[tuple[int | None, float]]) -> None:
    now = time.time()
    for i, (code, value) in enumerate(readings):
        if code is not None:
            await pipeline.sink(Measurement(PART, float(code), now + i))
        await pipeline.sink(Measurement(KEY, value, now + i + 0.5))
    await pipeline.queue.join()
    with store.batch() as barrier:  # batches commit in order: this one last
        pass
    await barrier.committed


async def stop(store: Store, alerts: AlertService, pipeline: Pipeline) -> None:
    await pipeline.stop()
    await alerts.stop()
    await store.close(timeout=2.0)


def test_dnom_learns_and_recalculates_at_center_zero_and_resumes_after_a_restart(tmp_path: Path) -> None:
    sigma = 0.044 / D2_2

    async def scenario() -> None:
        store, alerts, pipeline = await started(tmp_path)
        try:
            await feed(store, pipeline, READINGS)
            limits = pipeline.characteristics[KEY].engine.limits
            assert limits is not None and limits.center == 0.0 and f"{limits.sigma:.4g}" == f"{sigma:.4g}"
            # a reading read after code 9: stored, flagged, not charted
            await feed(store, pipeline, [(9, 11.0), (1, 10.0)])
            rows = await store.measurements(1, "bore", limit=20)
            assert [(r["part"], r["part_unknown"]) for r in rows[-2:]] == [(None, "not_in_table"), ("A-100", None)]
            assert [s["part"] for s in await store.subgroups(1, "bore")] == ["A-100"] * 3 + ["A-200"] * 3 + ["A-100"]
            # recalculated from the stored plotted deviations (0.0 joins them), center still 0
            result = await pipeline.recalculate_limits(1, "bore", user="qe", reason="new tool", from_subgroup=1,
                                                       subgroups=7)
            mr_bar = (0.03 + 0.05 + 0.01 + 0.05 + 0.08 + 0.05) / 6
            assert result["center"] == 0.0 and f"{result['sigma']:.4g}" == f"{mr_bar / D2_2:.4g}"
            await feed(store, pipeline, [(1, 10.0 + 0.01 * (i % 3)) for i in range(20)])
        finally:
            await stop(store, alerts, pipeline)
        # a restart: the chart and A-100's capability window (24 of its readings so far) go on
        store, alerts, pipeline = await started(tmp_path)
        try:
            state = pipeline.characteristics[KEY]
            assert state.short_run is not None and state.engine is state.short_run.engine
            assert state.engine.limits is not None and state.engine.limits.center == 0.0
            assert len(state.short_run.values["A-100"]) == 24
            await feed(store, pipeline, [(1, 10.0 + 0.01 * (i % 3)) for i in range(6)])  # the 30th A-100
        finally:
            await stop(store, alerts, pipeline)

    asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        capability = conn.execute("SELECT part, n FROM capability").fetchall()
        (stored,) = conn.execute("SELECT distribution, expected_ppm FROM capability").fetchall()
        sources = [s for (s,) in conn.execute("SELECT source FROM control_limits ORDER BY id")]
        (event,) = [json.loads(b) for (b,) in conn.execute("SELECT body FROM events WHERE type = 'capability'")]
    assert capability == [("A-100", 30)]  # A-200 has no spec: no capability of its own
    # per part, with the characteristic's distribution (normal here): its normality test on the part's own
    # readings and the expected ppm beside the indices, in the event and in the stored row alike
    assert event["capability"]["part"] == "A-100"
    distribution = event["capability"]["distribution"]
    assert (distribution["name"], distribution["method"]) == ("normal", "normal")
    assert set(event["capability"]["expected_ppm"]) == {"below", "above", "total"}
    assert [json.loads(x) for x in stored] == [distribution, event["capability"]["expected_ppm"]]
    assert sources == ["learned", "recalculated"]
    # the CSV export for quality engineers names each reading's part, and why when it was not known
    out = io.StringIO()
    export_csv(str(tmp_path / "spc.sqlite3"), 1, None, None, out, characteristic="bore")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["part"], r["part_unknown"]) for r in rows[5:8]] == [("A-200", ""), ("", "not_in_table"),
                                                                   ("A-100", "")]
    assert rows[6]["subgroup_number"] == rows[5]["subgroup_number"] == "6"  # the point before it
