"""The streaming engine: limits versions, short subgroups, spec verdicts, dispersion test 1,
capability cadence, numerics, and exact continuation after a restart."""

from __future__ import annotations

import json
import math
import random

import pytest

from gateway.config import Characteristic, Limits, Rules, Spec
from gateway.spc.engine import CharacteristicEngine, EngineSettings


def stream(engine, values, start=0):
    return [engine.ingest(v, float(start + i)) for i, v in enumerate(values)]


def test_learned_limits_come_from_the_baseline_then_freeze():
    rng = random.Random(3)
    values = [10 + rng.gauss(0, 1) for _ in range(5 * 40)]
    engine = CharacteristicEngine(EngineSettings(chart="xbar_r", subgroup_size=5, baseline_subgroups=25))
    results = stream(engine, values)
    learned = [r for r in results if r.new_limits is not None]
    assert len(learned) == 1
    version = learned[0].new_limits
    assert (version.source, version.from_subgroup, version.to_subgroup) == ("learned", 1, 25)
    assert version.effective_from == 124.0  # the time of the 125th reading, which completed subgroup 25
    # baseline points carry no verdict and no rules; none is re-evaluated later
    baseline = [r for r in results if r.subgroup and r.subgroup.subgroup_number <= 25]
    assert all(r.is_within_control is None and r.violations == () for r in baseline)
    later = [r for r in results if r.subgroup and r.subgroup.subgroup_number > 25]
    assert all(r.is_within_control is not None for r in later)
    assert all(r.subgroup.center == version.center for r in later)
    assert engine.limits == version
    # the limits are those of the first 25 subgroups exactly
    again = CharacteristicEngine(EngineSettings(chart="xbar_r", subgroup_size=5))
    assert again.recalculate([values[i:i + 5] for i in range(0, 125, 5)], source="learned",
                             at=124.0, from_subgroup=1, to_subgroup=25) == version


def test_measurements_inside_an_open_subgroup_have_no_control_verdict():
    engine = CharacteristicEngine(EngineSettings(chart="xbar_r", subgroup_size=3, center=0.0, sigma=1.0))
    r = stream(engine, [0.1, 0.2, 0.3])
    assert [x.is_within_control for x in r] == [None, None, True]
    assert [x.subgroup_number for x in r] == [1, 1, 1]
    assert [x.sample_number for x in r] == [1, 2, 3]
    assert r[0].subgroup is None and r[2].subgroup.n == 3


def test_fixed_limits_are_announced_once_as_a_version():
    engine = CharacteristicEngine(EngineSettings(chart="imr", center=5.0, sigma=0.5))
    first, second = stream(engine, [5.0, 5.1], start=100)
    assert first.new_limits.source == "fixed"
    assert first.new_limits.effective_from == 100.0
    assert (first.new_limits.ucl, first.new_limits.lcl) == (6.5, 3.5)
    assert first.new_limits.dispersion_ucl == pytest.approx(3.266532 * 1.128379 * 0.5, rel=1e-5)
    assert second.new_limits is None


def test_short_subgroup_gets_its_own_limits_and_z():
    engine = CharacteristicEngine(EngineSettings(chart="xbar_r", subgroup_size=5, center=10.0, sigma=1.0))
    stream(engine, [10.0, 11.0, 12.0])
    r = engine.close_subgroup(at=9.0)
    p = r.subgroup
    assert (p.n, p.mean, p.range) == (3, 11.0, 2.0)
    assert p.ucl == pytest.approx(10 + 3 / math.sqrt(3))
    assert p.z == pytest.approx(1.0 * math.sqrt(3))
    assert p.dispersion_center == pytest.approx(1.692569, abs=1e-5)  # d2(3) sigma
    assert engine.close_subgroup() is None
    nxt = stream(engine, [10.0] * 5)
    assert nxt[-1].subgroup.subgroup_number == 2 and nxt[-1].subgroup.n == 5


def test_spec_is_strict_and_one_sided_specs_work():
    engine = CharacteristicEngine(EngineSettings(lsl=9.0, usl=11.0, center=10.0, sigma=1.0))
    assert [r.is_within_spec for r in stream(engine, [9.0, 11.0, 8.999, 11.001])] == [True, True, False, False]
    upper = CharacteristicEngine(EngineSettings(usl=0.05, center=0.0, sigma=0.01))
    assert [r.is_within_spec for r in stream(upper, [-100.0, 0.05, 0.0501])] == [True, True, False]
    none = CharacteristicEngine(EngineSettings(center=0.0, sigma=1.0))
    assert stream(none, [1e9])[0].is_within_spec is None


def test_dispersion_chart_test_1():
    engine = CharacteristicEngine(EngineSettings(chart="xbar_r", subgroup_size=5, center=0.0, sigma=1.0))
    r = stream(engine, [-3.0, 3.0, 0.0, 0.0, 0.0])[-1]  # range 6 > (d2 + 3 d3) = 4.918
    assert r.subgroup.dispersion_violations == (1,)
    assert r.subgroup.violations == ()
    assert r.is_within_control is False
    assert [(v.rule, v.chart) for v in r.violations] == [(1, "dispersion")]
    imr = CharacteristicEngine(EngineSettings(chart="imr", center=0.0, sigma=1.0))
    r = stream(imr, [-2.0, 2.0])  # moving range 4 > 3.686
    assert r[0].subgroup.dispersion is None
    assert r[1].subgroup.dispersion_violations == (1,) and r[1].is_within_control is False


def test_new_limits_apply_from_now_on_and_start_a_new_window():
    engine = CharacteristicEngine(EngineSettings(chart="imr", center=0.0, sigma=1.0))
    before = stream(engine, [0.5] * 8)
    version = engine.recalculate([[1.0], [2.0], [1.5], [1.0]], source="recalculated", at=50.0,
                                 from_subgroup=1, to_subgroup=4)
    assert version.source == "recalculated" and version.effective_from == 50.0
    assert version.center == 1.375 and version.sigma == pytest.approx((1 + 0.5 + 0.5) / 3 / 1.128379, rel=1e-6)
    after = stream(engine, [2.0], start=51)
    assert 2 not in after[0].subgroup.violations  # the run of 8 before did not carry over
    assert before[0].subgroup.center == 0.0 and after[0].subgroup.center == 1.375


def test_capability_every_k_subgroups_over_a_bounded_window():
    rng = random.Random(5)
    settings = EngineSettings(chart="xbar_r", subgroup_size=4, lsl=7.0, usl=13.0, capability_every=25,
                              capability_window=30)
    engine = CharacteristicEngine(settings)
    results = stream(engine, [10 + rng.gauss(0, 0.5) for _ in range(4 * 100)])
    caps = [(r.subgroup.subgroup_number, r.capability) for r in results if r.capability is not None]
    assert [n for n, _ in caps] == [25, 50, 75, 100]
    assert all(c.subgroups == 25 if n == 25 else c.subgroups == 30 for n, c in caps)
    assert len(engine.capability_window) == 30
    assert caps[-1][1].cpk == pytest.approx(2.0, rel=0.25)
    assert caps[-1][1].cpk_lower < caps[-1][1].cpk


def test_nist_numacc1_standard_deviation_is_exactly_one():
    # NIST StRD NumAcc1: 10000001, 10000003, 10000002 -> mean 10000002, standard deviation exactly 1
    engine = CharacteristicEngine(EngineSettings(chart="xbar_s", subgroup_size=3, center=1e7, sigma=1.0))
    p = stream(engine, [10000001.0, 10000003.0, 10000002.0])[-1].subgroup
    assert p.mean == 10000002.0 and p.stdev == 1.0 and p.range == 2.0


def _compare_restart(settings, values, cut):
    whole = stream(CharacteristicEngine(settings), values)
    first = CharacteristicEngine(settings)
    part = stream(first, values[:cut])
    saved = json.loads(json.dumps(first.state()))
    second = CharacteristicEngine(settings, state=saved)
    rest = stream(second, values[cut:], start=cut)
    assert part + rest == whole
    return saved


@pytest.mark.parametrize("cut", [3, 61, 127, 203])
def test_state_restores_the_engine_exactly(cut):
    rng = random.Random(cut)
    values = [10 + rng.gauss(0, 1) + (1.5 if 150 < i < 200 else 0) for i in range(300)]
    spec = {"lsl": 7.0, "usl": 13.0, "capability_every": 7, "capability_window": 12}
    saved = _compare_restart(EngineSettings(chart="xbar_r", subgroup_size=5, baseline_subgroups=20, **spec),
                             values, cut)
    assert len(json.dumps(saved)) < 4000
    _compare_restart(EngineSettings(chart="imr", baseline_subgroups=50, **spec), values, cut)
    _compare_restart(EngineSettings(chart="xbar_s", subgroup_size=4, center=10, sigma=1, **spec), values, cut)


def test_state_from_other_settings_keeps_only_the_numbering():
    engine = CharacteristicEngine(EngineSettings(chart="imr", center=0.0, sigma=1.0))
    stream(engine, [0.1] * 5)
    changed = CharacteristicEngine(EngineSettings(chart="imr", center=1.0, sigma=1.0), state=engine.state())
    r = changed.ingest(1.0, 9.0)
    assert r.sample_number == 6 and r.subgroup_number == 6
    assert r.new_limits.center == 1.0 and r.new_limits.effective_from == 9.0


def test_settings_from_a_configured_characteristic():
    c = Characteristic(name="diameter", source="plc", chart="xbar_r", subgroup_size=5,
                       spec=Spec(lsl=9.5, target=10.0, usl=10.5), limits=Limits(baseline_subgroups=20),
                       rules=Rules("western_electric", (1, 2, 3, 4)))
    s = EngineSettings.from_characteristic(c)
    assert (s.chart, s.subgroup_size, s.lsl, s.usl, s.target, s.baseline_subgroups) == \
        ("xbar_r", 5, 9.5, 10.5, 10.0, 20)
    assert (s.convention, s.tests, s.fixed, s.capability_every) == ("western_electric", (1, 2, 3, 4), False, 25)
    fixed = EngineSettings.from_characteristic(Characteristic(name="x", source="s",
                                                              limits=Limits(center=40.0, sigma=0.04)))
    assert fixed.fixed and CharacteristicEngine(fixed).limits.ucl == pytest.approx(40.12)


@pytest.mark.parametrize("bad", [
    {"chart": "pareto"}, {"chart": "imr", "subgroup_size": 2}, {"center": 1.0}, {"center": 1.0, "sigma": 0.0},
    {"lsl": 2.0, "usl": 1.0}, {"tests": (9,)}, {"chart": "imr", "baseline_subgroups": 1},
])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        EngineSettings(**bad)
