"""Recalculating limits is an operator's act: refused whole while the database cannot be written, put in
force only once stored, and refused in the operator's language when the subgroups give no limits."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.alerts import AlertService
from gateway.core.model import CharacteristicKey, Measurement
from gateway.core.texts import LANGUAGES, Refusal, text
from gateway.pipeline import Pipeline
from gateway.sources.registry import load_config
from gateway.spc.charts.base import EstimateError
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.store import Store
from tests.daemon_helpers import minimal_config, write_config
from tests.gateway_helpers import started_pipeline

KEY = CharacteristicKey(1, "diameter")
HANGUL = re.compile("[\uac00-\ud7a3]")


async def running(tmp_path: Path) -> tuple[Store, AlertService, Pipeline]:
    config, _ = load_config(str(write_config(tmp_path, minimal_config(tmp_path))))
    store, alerts, pipeline = await started_pipeline(config)
    now = time.time()
    for i in range(30):
        await pipeline.sink(Measurement(KEY, 10.0 + (i % 5) * 0.01, received_at=now + i))
    await pipeline.queue.join()
    with store.batch() as barrier:  # batches commit in order: this one last
        pass
    await barrier.committed
    return store, alerts, pipeline


async def stop(store: Store, alerts: AlertService, pipeline: Pipeline) -> None:
    await pipeline.stop()
    await alerts.stop()
    await store.close(timeout=2.0)


def test_limits_the_writer_refuses_are_not_put_in_force(tmp_path: Path) -> None:
    db = Path(tmp_path / "spc.sqlite3")
    moved = tmp_path / "moved.sqlite3"

    async def scenario() -> None:
        store, alerts, pipeline = await running(tmp_path)
        try:
            engine = pipeline.characteristics[KEY].engine
            before, state = engine.limits, engine.state()
            os.rename(db, moved)  # the path no longer names the file: the writer refuses every commit
            assert not store.failing  # nobody has noticed yet: the act passes the up-front check
            with pytest.raises(Refusal) as refused:
                await asyncio.wait_for(pipeline.recalculate_limits(1, "diameter", user="qe", reason="r"), 5)
            assert refused.value.code == "storage_unavailable"
            assert refused.value.texts == {lang: text(lang, "error.storage_unavailable") for lang in LANGUAGES}
            assert engine.limits == before and engine.state() == state  # the chart goes on as it was
            with pytest.raises(Refusal) as refused:  # the fault is known now: refused at once
                await asyncio.wait_for(pipeline.recalculate_limits(1, "diameter", user="qe", reason="r"), 1)
            assert refused.value.code == "storage_unavailable" and engine.limits == before
        finally:
            await stop(store, alerts, pipeline)

    asyncio.run(scenario())
    with sqlite3.connect(moved) as conn:
        assert [s for (s,) in conn.execute("SELECT source FROM control_limits")] == ["fixed"]


def test_stored_limits_are_put_in_force_with_the_state_that_holds_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        store, alerts, pipeline = await running(tmp_path)
        try:
            engine = pipeline.characteristics[KEY].engine
            limits = await pipeline.recalculate_limits(1, "diameter", user="qe", reason="new gauge")
            assert engine.limits.source == "recalculated" and engine.limits.center == limits["center"]
            with store.batch() as barrier:
                pass
            await barrier.committed
            stored = (await store.engine_states())[(1, "diameter")]
            assert CharacteristicEngine(engine.settings, state=json.loads(stored)).limits == engine.limits
        finally:
            await stop(store, alerts, pipeline)

    asyncio.run(scenario())


def test_subgroup_events_carry_the_limits_version_in_force(tmp_path: Path) -> None:
    """The fixed limits' version, then the recalculated one, and after a restart the newest stored one
    (Sparkplug's and the HMI's limits_version come from these events)."""
    published: list = []

    async def one_reading(store: Store, pipeline: Pipeline) -> int | None:
        published.clear()
        await pipeline.sink(Measurement(KEY, 10.02, received_at=time.time()))
        await pipeline.queue.join()
        with store.batch() as barrier:
            pass
        await barrier.committed
        bodies = [e.body for e in published if e.type == "subgroup"]
        return bodies[-1]["subgroup"]["limits_version"]

    async def scenario() -> list[int | None]:
        store, alerts, pipeline = await running(tmp_path)
        pipeline.publish = published.extend
        seen = [await one_reading(store, pipeline)]
        recalculated = await pipeline.recalculate_limits(1, "diameter", user="qe", reason="new gauge")
        seen += [recalculated["version"], await one_reading(store, pipeline)]
        await stop(store, alerts, pipeline)
        config, _ = load_config(str(tmp_path / "gateway.yaml"))
        store, alerts, pipeline = await started_pipeline(config, published.extend)
        seen.append(await one_reading(store, pipeline))
        await stop(store, alerts, pipeline)
        return seen

    fixed, recalculated, after, restarted = asyncio.run(scenario())
    assert fixed is not None and recalculated == after == restarted and recalculated > fixed
    with sqlite3.connect(tmp_path / "spc.sqlite3") as conn:
        assert conn.execute("SELECT MAX(id) FROM control_limits").fetchone()[0] == recalculated


def test_limits_that_cannot_be_drawn_are_refused_in_every_language(tmp_path: Path) -> None:
    async def scenario() -> None:
        store, alerts, pipeline = await running(tmp_path)
        try:
            now = time.time()
            with store.batch() as batch:  # readings from before they were bounded
                for n, value in enumerate([1e308, -1e308, 1e308, 10.0, 1e308]):
                    batch.measurement(product_id=1, characteristic="diameter", value=value, measured_at=now + n,
                                      received_at=now + n, sample_number=1000 + n, subgroup_number=1000 + n,
                                      is_within_spec=None, is_within_control=None)
            await batch.committed
            with pytest.raises(Refusal) as refused:
                await pipeline.recalculate_limits(1, "diameter", user="qe", reason="r", from_subgroup=1000,
                                                  subgroups=5)
            assert refused.value.code == "invalid_field"
            assert refused.value.texts == {lang: text(lang, "error.estimate.not_finite") for lang in LANGUAGES}
            assert HANGUL.search(refused.value.texts["ko"]) and not HANGUL.search(refused.value.texts["en"])
            for call, code in ((pipeline.recalculate_limits(1, "nope", user="qe", reason="r"), "not_found"),
                               (pipeline.recalculate_limits(1, "diameter", user="qe", reason="r", subgroups=1),
                                "invalid_field")):
                with pytest.raises(Refusal) as refused:
                    await call
                assert refused.value.code == code and HANGUL.search(refused.value.texts["ko"])
        finally:
            await stop(store, alerts, pipeline)

    asyncio.run(scenario())


@pytest.mark.parametrize("chart, size, subgroups, reason", [
    ("imr", 1, [], "no_values"),
    ("imr", 1, [[10.0]], "imr_too_few"),
    ("xbar_r", 5, [[10.0], [10.1]], "no_within"),
    ("imr", 1, [[1e308], [-1e308], [1e308]], "not_finite"),
])
def test_every_reason_the_estimate_gives_has_its_words_in_every_language(chart, size, subgroups, reason) -> None:
    settings = EngineSettings(chart=chart, subgroup_size=size, center=10.0, sigma=0.1)
    with pytest.raises(EstimateError) as failed:
        CharacteristicEngine(settings).estimate(subgroups)
    assert failed.value.reason == reason
    for lang in LANGUAGES:
        assert text(lang, f"error.estimate.{reason}")
