"""Capability of attribute data in the live engine (issue 15, item 2): every `every_subgroups` samples the
`capability` event carries p-bar, ppm and process Z (p, np, laney_p) or u-bar and DPU (c, u, laney_u), the
keys of `analyze`'s JSON, with the variables indices null; it survives a restart of the engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from statistics import NormalDist

import pytest

from gateway.app import Gateway
from gateway.core.model import CharacteristicKey, Measurement
from gateway.sources.registry import load_config
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from tests.daemon_helpers import minimal_config, write_config
from tests.gateway_helpers import handled, published

# Montgomery, Introduction to Statistical Quality Control, 6th ed., Example 7.1, Table 7.1 (orange-juice
# cans, n = 50): p-bar = 347/1500 = 0.2313 over the 30 trial samples (see tests/test_spc_attribute.py)
ORANGE_JUICE = [12, 15, 8, 10, 4, 7, 16, 9, 14, 10, 5, 6, 17, 12, 22, 8, 10, 5, 13, 11, 20, 18, 24, 15, 9, 12,
                7, 13, 9, 6]


def test_montgomery_orange_juice_capability_every_30_samples_and_across_a_restart() -> None:
    settings = EngineSettings(chart="p", baseline_subgroups=30, capability_every=30, capability_window=30,
                              tests=(1, 2, 3, 4))
    engine = CharacteristicEngine(settings)
    for count in ORANGE_JUICE[:17]:
        assert engine.ingest_count(count, 50, 0.0).capability is None
    engine = CharacteristicEngine(settings, engine.state())  # a restart midway keeps the window
    results = [engine.ingest_count(count, 50, 0.0) for count in ORANGE_JUICE[17:]]
    capability = results[-1].capability
    assert capability is not None and [r.capability for r in results[:-1]] == [None] * 12
    fields = capability.fields()
    assert f"{fields['p_bar']:.4f}" == "0.2313" and fields["ppm"] == pytest.approx(231_333.33, abs=0.01)
    assert fields["process_z"] == pytest.approx(NormalDist().inv_cdf(1 - 347 / 1500))
    # by the standard normal table: Phi(0.73) = 0.76730, Phi(0.74) = 0.77035, 1 - p-bar = 0.76867 -> 0.7345
    assert f"{fields['process_z']:.4f}" == "0.7345"
    assert (capability.n, capability.inspected) == (30, 1500)


def test_the_capability_event_of_p_and_c_charts(tmp_path: Path) -> None:
    config = minimal_config(tmp_path)
    first = config["products"][0]["characteristics"][0]
    first.update(chart="p", limits={"baseline_subgroups": 5}, rules=[1, 2, 3, 4],
                 capability={"every_subgroups": 4, "window_subgroups": 8},
                 modbus={"good": {"address": 0}, "bad": {"address": 1}, "sample_every": 50})
    first.pop("sampling")  # a count sample ends by sample_every
    second = {**first, "name": "scratches", "chart": "c",
              "modbus": {"good": {"address": 2}, "bad": {"address": 3}, "sample_every": 50}}
    config["products"][0]["characteristics"].append(second)
    config_, _ = load_config(str(write_config(tmp_path, config)))
    p_key, c_key = CharacteristicKey(1, "diameter"), CharacteristicKey(1, "scratches")
    now = time.time()

    async def scenario() -> list[dict]:
        gateway = Gateway(config_)
        await gateway.start()
        try:
            sent = published(gateway)
            for count in (2, 3, 1, 2, 2, 4, 0, 6):
                await gateway.pipeline.sink(Measurement(p_key, 0.0, now, count=count, sample_size=50))
                await gateway.pipeline.sink(Measurement(c_key, 0.0, now, count=count + 10))
            await handled(gateway, 16)
            return [e.body["capability"] for e in sent if e.type == "capability"]
        finally:
            await gateway.stop()

    events = asyncio.run(scenario())
    p_events = [e for e in events if e["characteristic"] == "diameter"]
    c_events = [e for e in events if e["characteristic"] == "scratches"]
    assert len(p_events) == len(c_events) == 2  # after 4 and 8 samples
    last = p_events[-1]
    assert last["p_bar"] == pytest.approx(20 / 400) and last["ppm"] == pytest.approx(50_000)
    assert last["process_z"] == pytest.approx(NormalDist().inv_cdf(0.95)) and last["n"] == 8
    # every seed field is there; the indices of measured values do not apply to counts
    assert all(last[k] is None for k in ("cp", "cpk", "pp", "ppk", "cpm", "cpk_lower"))
    assert {"id", "product_id", "product_code", "min_cpk", "reason", "analyzed_at"} <= set(last)
    assert c_events[0]["u_bar"] == c_events[0]["dpu"] == pytest.approx((12 + 13 + 11 + 12) / 4)
    assert "p_bar" not in c_events[0] and "u_bar" not in last
