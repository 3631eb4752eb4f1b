"""Corrections of issue 15, item 5: a point exactly on a limit is inside, z exactly 1 or 2 is not
beyond, and two subgroups holding the same values plot the same mean (ties in tests 3 and 4 are ties)."""

from __future__ import annotations

import itertools
import random

from gateway.spc.charts.base import summarize
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.spc.rules import Z_TOLERANCE, on_boundary


def test_a_point_on_a_limit_is_inside_and_on_a_zone_boundary_is_not_beyond():
    # center 0.1, sigma 0.1: the UCL 0.4 and the zone boundaries 0.2 and 0.3 are not exact in binary,
    # and (0.4 - 0.1) / 0.1 = 3.0000000000000004
    assert (0.4 - 0.1) / 0.1 > 3
    engine = CharacteristicEngine(EngineSettings(chart="imr", center=0.1, sigma=0.1))
    values = [0.4, 0.1, 0.3, 0.1, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2]
    results = [engine.ingest(x, float(i)) for i, x in enumerate(values)]
    assert [r.is_within_control for r in results] == [True] * 10
    # not test 1 (z = 3), nor 5 (2 of 3 with z = 2), nor 6 (4 of 5 with z = 1)
    assert all(r.subgroup.violations == () for r in results)
    assert [r.subgroup.z for r in results][:3] == [3.0, 0.0, 2.0] and results[-1].subgroup.z == 1.0
    beyond = engine.ingest(0.4 + 1e-9, 10.0)
    assert beyond.is_within_control is False and 1 in beyond.subgroup.violations


def test_the_tolerance_is_stated_and_small():
    assert Z_TOLERANCE == 1e-9
    assert on_boundary(2.0000000000000004) == 2.0 and on_boundary(-0.9999999999999998) == -1.0
    assert on_boundary(2.000001) == 2.000001 and on_boundary(1e300) == 1e300 and on_boundary(-7.0 + 1e-12) == -7.0 + 1e-12


def test_subgroup_means_do_not_depend_on_the_order_of_the_values():
    rng = random.Random(5)
    for _ in range(200):
        values = [round(rng.uniform(-1, 1), 3) + 1e6 * rng.choice([0, 1]) for _ in range(5)]
        summaries = {summarize(list(p)) for p in itertools.permutations(values)}
        assert len({(s.mean, s.mean_error, s.range) for s in summaries}) == 1
    # so a trend through two subgroups with the same values is broken by the tie, in the engine too
    engine = CharacteristicEngine(EngineSettings(chart="xbar_r", subgroup_size=3, center=0.0, sigma=1.0))
    means = []
    for group in ([0.1, 0.2, 0.7], [0.7, 0.1, 0.2], [0.2, 0.7, 0.1]):
        for v in group:
            result = engine.ingest(v, 0.0)
        means.append(result.subgroup.mean)
    assert means[0] == means[1] == means[2]


def test_a_state_saved_with_an_open_subgroup_summary_still_restores():
    settings = EngineSettings(chart="xbar_r", subgroup_size=5, center=10.0, sigma=1.0)
    engine = CharacteristicEngine(settings)
    for v in (10.0, 10.5, 9.5, 10.2, 9.9, 10.1, 10.3):
        engine.ingest(v, 0.0)
    state = engine.state()
    assert state["open_values"] == [10.1, 10.3]
    legacy = {k: v for k, v in state.items() if k != "open_values"}
    legacy["open"] = [2, 10.2, 0.02, 10.1, 10.3]  # written before the values were kept
    restored = CharacteristicEngine(settings, legacy)
    assert restored.limits == engine.limits and restored.sample_number == 7 and restored.open_n == 0
    again = CharacteristicEngine(settings, state)
    assert again.open_values == [10.1, 10.3] and again.open_n == 2
