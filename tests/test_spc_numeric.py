"""Numbers the statistics cannot carry: readings near the float range are rejected before they are
charted, limits that are not finite are never put in force, and subnormal sigmas do not flag every point.

Through the real pipeline and store (a real SQLite file), as the daemon runs them."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.alerts import AlertService
from gateway.config import load_config
from gateway.core.model import CharacteristicKey, Measurement
from gateway.pipeline import Pipeline
from gateway.spc.charts.base import EstimateError
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.spc.numeric import MAX_MAGNITUDE, bad_reading, reading_problem
from gateway.store import Store
from tests.daemon_helpers import minimal_config, write_config

KEY = CharacteristicKey(1, "diameter")


def learned_config(tmp_path: Path):
    config = minimal_config(tmp_path)
    config["products"][0]["characteristics"][0]["limits"] = {"baseline_subgroups": 5}
    config, _warnings = load_config(str(write_config(tmp_path, config)))
    return config


async def feed(pipeline: Pipeline, values: list[float], start: float) -> None:
    for i, value in enumerate(values):
        await pipeline.sink(Measurement(KEY, value, received_at=start + i))
    await pipeline.queue.join()
    with pipeline.store.batch() as barrier:  # batches commit in order: this one last
        pass
    await barrier.committed


def test_overflowing_readings_are_rejected_and_learned_limits_stay_finite(tmp_path, caplog):
    config = learned_config(tmp_path)
    caplog.set_level(logging.WARNING, logger="gateway.pipeline")

    async def main() -> None:
        store = Store(config.storage.path)
        await store.open()
        store.sync_catalog(config.products)
        alerts = AlertService(store, config)
        events: list = []
        pipeline = Pipeline(config, store, alerts, publish=events.extend)
        await alerts.start(publish=events.extend)
        await pipeline.start()
        now = time.time()
        # the baseline: five good readings with three a broken decoder produced in between
        await feed(pipeline, [10.0, 1e308, 10.1, -1e308, 9.9, 1.5e100, 10.05, 9.95], now)
        await feed(pipeline, [10.0, 13.0], now + 100)  # 13.0 is far beyond 3 sigma of the baseline
        health = pipeline.health()["1/diameter"]
        assert (pipeline.rejected, health["rejected"], health["readings"]) == (3, 3, 7)
        said = [r.getMessage() for r in caplog.records if "reading refused" in r.getMessage()]
        assert len(said) == 1 and "1e+308 is beyond" in said[0]  # the first, not every one
        history = await store.limits_history(1, "diameter")
        assert len(history) == 1 and history[0]["source"] == "learned"
        assert all(math.isfinite(history[0][k]) for k in ("center", "sigma", "ucl", "lcl"))
        assert abs(history[0]["center"] - 10.0) < 0.01
        rows = await store.measurements(1, "diameter", 100)
        assert [r["measurement_value"] for r in rows][-2:] == [10.0, 13.0]
        assert all(abs(r["measurement_value"]) <= MAX_MAGNITUDE for r in rows)
        # detection works after the bad readings: the last one is out of control
        assert rows[-1]["is_within_control"] in (False, 0)

        # A database written before the readings were bounded still holds such values: recalculating
        # from them answers an error and leaves the limits in force as they were.
        with store.batch() as batch:
            for n, value in enumerate([1e308, -1e308, 1e308, 10.0, 1e308]):
                batch.measurement(product_id=1, characteristic="diameter", value=value, measured_at=now + 200 + n,
                                  received_at=now + 200 + n, sample_number=1000 + n, subgroup_number=1000 + n,
                                  is_within_spec=None, is_within_control=None)
        await batch.committed
        before = pipeline.characteristics[KEY].engine.limits
        with pytest.raises(ValueError, match="no control limits can be drawn"):
            await pipeline.recalculate_limits(1, "diameter", user="qe", reason="test", from_subgroup=1000,
                                              subgroups=5)
        assert pipeline.characteristics[KEY].engine.limits == before
        assert len(await store.limits_history(1, "diameter")) == 1
        await pipeline.stop()
        await alerts.stop()
        await store.close()

    asyncio.run(main())
    conn = sqlite3.connect(config.storage.path)
    assert conn.execute("SELECT COUNT(*) FROM control_limits WHERE sigma IS NULL OR center IS NULL").fetchone() == (0,)
    conn.close()


def test_reading_problem_bound():
    assert reading_problem(1e100) is None and reading_problem(-1e100) is None
    assert reading_problem(5e-324) is None  # tiny is harmless to the sums
    for bad in (1.0000001e100, -1e308, math.inf, -math.inf, math.nan):
        assert reading_problem(bad) is not None


def test_bad_reading_is_the_one_guard_of_the_pipeline_and_analyze():
    assert bad_reading(1e100) is None and bad_reading(-1e100) is None and bad_reading(0.0) is None
    for value in (1.0000001e100, -1e308):
        bad = bad_reading(value)
        assert bad is not None and bad.finite and bad.what == "beyond +-1e+100"
        assert bad.reason == reading_problem(value)
    for value in (math.inf, -math.inf, math.nan):
        bad = bad_reading(value)
        assert bad is not None and not bad.finite and bad.what == "not a finite number"
        assert bad.reason == reading_problem(value)


def test_engine_never_installs_limits_that_are_not_finite():
    # learning: a baseline that overflows is dropped and learned afresh, never frozen
    engine = CharacteristicEngine(EngineSettings(chart="imr", baseline_subgroups=3))
    results = [engine.ingest(v, float(i)) for i, v in enumerate([1e308, -1e308, 1e308])]
    assert all(r.new_limits is None for r in results) and engine.limits is None
    assert engine.refused_baselines == 1
    results = [engine.ingest(v, float(10 + i)) for i, v in enumerate([10.0, 10.2, 9.9])]
    assert results[-1].new_limits is not None and math.isfinite(engine.limits.sigma)
    # recalculation: an error, and the limits in force stay
    before = engine.limits
    with pytest.raises(EstimateError):
        engine.recalculate([[1e308], [-1e308], [1e308]])
    assert engine.limits == before
    # fixed limits: refused when they overflow
    with pytest.raises(ValueError, match="fixed limits cannot be used"):
        EngineSettings(chart="imr", center=1e308, sigma=1e308)
    with pytest.raises(ValueError, match="fixed limits cannot be used"):
        EngineSettings(chart="imr", center=math.inf, sigma=1.0)


def test_frozen_nan_limits_of_an_earlier_version_are_learned_again_after_a_restart():
    settings = EngineSettings(chart="imr", baseline_subgroups=3)
    engine = CharacteristicEngine(settings)
    for i, v in enumerate([10.0, 10.2, 9.9]):
        engine.ingest(v, float(i))
    state = engine.state()
    state["limits"].update(center=math.nan, sigma=math.nan, ucl=math.nan, lcl=math.nan)
    restored = CharacteristicEngine(settings, state=json.loads(json.dumps(state)))
    assert restored.limits is None and restored.subgroup_number == 3
    results = [restored.ingest(v, float(10 + i)) for i, v in enumerate([10.0, 10.2, 9.9])]
    assert results[-1].new_limits is not None and math.isfinite(restored.limits.center)


def test_subnormal_sigma_does_not_flag_points_on_the_center_line():
    # sigma 5e-324: 1/sigma overflows, and 0 * inf (a point on the center) was NaN, i.e. out of control
    engine = CharacteristicEngine(EngineSettings(chart="imr", center=0.0, sigma=5e-324))
    results = [engine.ingest(0.0, float(i)) for i in range(5)]
    assert all(r.is_within_control is True for r in results)
    assert engine.ingest(1.0, 6.0).is_within_control is False  # a real deviation is still beyond


@pytest.mark.parametrize(("limits", "words"), [
    ({"center": 1e308, "sigma": 1e308}, ["limits.center", "limits.sigma", "would overflow"]),
    ({"center": 10.0, "sigma": 1e-320}, ["limits.sigma", "too small to divide by"]),
])
def test_check_config_refuses_fixed_limits_that_overflow(tmp_path, limits, words):
    import os
    import subprocess
    import sys

    from tests.daemon_helpers import REPO

    config = minimal_config(tmp_path)
    config["products"][0]["characteristics"][0]["limits"] = limits
    path = write_config(tmp_path, config)
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", str(path)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1, result.stdout + result.stderr
    for word in words:
        assert word in result.stdout + result.stderr


def test_daemon_answers_recalculate_limits_from_overflowing_subgroups_with_an_error(tmp_path):
    """The real daemon over a database that holds 1e308 readings from before they were rejected."""
    import os
    import subprocess
    import sys

    from tests.conftest import free_port
    from tests.daemon_helpers import REPO, Daemon

    port = free_port()
    config = minimal_config(tmp_path, port=port)
    path = write_config(tmp_path, config)
    loaded, _warnings = load_config(str(path))

    async def old_data() -> None:
        store = Store(loaded.storage.path)
        await store.open()
        store.sync_catalog(loaded.products)
        with store.batch() as batch:
            for n, value in enumerate([1e308, -1e308, 1e308, -1e308, 1e308], start=1):
                batch.measurement(product_id=1, characteristic="diameter", value=value, measured_at=1e9 + n,
                                  received_at=1e9 + n, sample_number=n, subgroup_number=n, is_within_spec=None,
                                  is_within_control=None)
        await batch.committed
        await store.close()

    asyncio.run(old_data())
    daemon = Daemon(path).start(wait_for_port=port)
    try:
        result = subprocess.run([sys.executable, "-m", "gateway.cli", "limits", "recalculate", "--url",
                                 f"ws://127.0.0.1:{port}", "--product", "1", "--characteristic", "diameter",
                                 "--user", "qe", "--reason", "test", "--from-subgroup", "1", "--subgroups", "5"],
                                cwd=REPO, capture_output=True, text=True, timeout=30,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert result.returncode == 1, result.stdout
        assert "no control limits can be drawn" in result.stderr
        with sqlite3.connect(f"file:{loaded.storage.path}?mode=ro", uri=True) as conn:
            sources = [s for (s,) in conn.execute("SELECT source FROM control_limits ORDER BY id")]
        assert "recalculated" not in sources
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize("chart", ["imr", "xbar_r"])
def test_a_stored_state_holding_overflowing_readings_starts_afresh(chart):
    # fixed limits were fine, but readings of 1e308 from before the bound sit in the capability window
    # (and in the open subgroup): capability over them raised OverflowError on every later reading
    size = 1 if chart == "imr" else 3
    settings = EngineSettings(chart=chart, subgroup_size=size, center=10.0, sigma=0.1, lsl=9.0, usl=11.0,
                              capability_every=5)
    engine = CharacteristicEngine(settings)
    for i, v in enumerate([10.0, 1e308, -1e308, 10.1, 9.9, 1e308, 10.0]):
        engine.ingest(v, float(i))
    state = json.loads(json.dumps(engine.state()))
    restored = CharacteristicEngine(settings, state=state)
    assert restored.sample_number == state["sample_number"] and len(restored.capability_window) == 0
    results = [restored.ingest(10.0 + 0.01 * (i % 3), 100.0 + i) for i in range(30)]
    assert results[-1].is_within_control is True
    assert restored.limits is not None and restored.limits.center == 10.0
