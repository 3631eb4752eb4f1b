"""Short-run SPC (DNOM and Z-MR) in the engine: values, limits, rules across a changeover, per-part spec.

The expected numbers are computed by hand from the definitions (Montgomery, Introduction to Statistical
Quality Control, 7th ed., section 10.1 "Statistical process control for short production runs": DNOM
plots x - T_part with limits from the moving range of the deviations; the standardized chart plots
(x - T_part) / sigma_part against +-3). No published data set with these exact part targets was found,
so each expected value is written out below with its arithmetic.
"""

from __future__ import annotations

import json
import math

import pytest

from gateway.spc.engine import EngineSettings
from gateway.spc.shortrun import PartTarget, ShortRunEngine, plotted

A = PartTarget("A-100", 10.0, 0.02, 9.94, 10.06)
B = PartTarget("A-200", 12.5, 0.03, 12.41, 12.59)
# three of A, then a changeover to three of B
READINGS = [("A-100", 10.01), ("A-100", 9.98), ("A-100", 10.03), ("A-200", 12.52), ("A-200", 12.47),
            ("A-200", 12.55)]
D2_2 = 2.0 / math.sqrt(math.pi)  # d2 for moving ranges of two: 1.128379


def settings(**kw) -> EngineSettings:
    return EngineSettings(**{"chart": "imr", "baseline_subgroups": 6, "capability_every": 3, **kw})


def run(engine: ShortRunEngine, readings, start=0.0):
    return [engine.ingest(x, part, start + i) for i, (part, x) in enumerate(readings)]


def test_dnom_and_z_values_by_hand():
    # DNOM: 10.01-10 = 0.01, 9.98-10 = -0.02, 10.03-10 = 0.03, 12.52-12.5 = 0.02, 12.47-12.5 = -0.03,
    # 12.55-12.5 = 0.05; Z divides by 0.02 (A) and 0.03 (B)
    parts = {"A-100": A, "A-200": B}
    dnom = [plotted("dnom", parts[p], x) for p, x in READINGS]
    z = [plotted("z", parts[p], x) for p, x in READINGS]
    assert dnom == pytest.approx([0.01, -0.02, 0.03, 0.02, -0.03, 0.05], abs=1e-12)
    assert z == pytest.approx([0.5, -1.0, 1.5, 2 / 3, -1.0, 5 / 3], abs=1e-12)


def test_dnom_learns_sigma_from_the_pooled_moving_range_with_center_zero():
    engine = ShortRunEngine("dnom", [A, B], settings())
    results = run(engine, READINGS)
    learned = results[-1].new_limits
    assert learned is not None
    # moving ranges of the deviations, the changeover's included: 0.03 0.05 0.01 0.05 0.08 -> MR-bar 0.044
    sigma = 0.044 / D2_2
    assert f"{learned.sigma:.4g}" == f"{sigma:.4g}" == "0.03899"
    assert learned.center == 0.0
    assert learned.ucl == pytest.approx(3 * sigma) and learned.lcl == pytest.approx(-3 * sigma)
    assert engine.limits == learned
    # charted from then on at the deviation, against those limits
    nxt = engine.ingest(10.05, "A-100", 10.0)
    assert nxt.subgroup is not None
    assert nxt.subgroup.mean == pytest.approx(0.05) and nxt.subgroup.center == 0.0
    assert nxt.subgroup.z == pytest.approx(0.05 / sigma)


def test_dnom_with_a_fixed_sigma_is_centered_at_zero():
    engine = ShortRunEngine("dnom", [A, B], settings(center=0.0, sigma=0.025))
    result = engine.ingest(10.01, "A-100", 0.0)
    assert result.new_limits is not None
    assert (result.new_limits.center, result.new_limits.sigma) == (0.0, 0.025)
    assert result.subgroup is not None and result.subgroup.z == pytest.approx(0.4)


def test_z_chart_has_fixed_limits_three_and_its_moving_range_limit():
    engine = ShortRunEngine("z", [A, B], settings())
    results = run(engine, READINGS)
    first = results[0]
    assert first.new_limits is not None
    assert (first.new_limits.center, first.new_limits.ucl, first.new_limits.lcl) == (0.0, 3.0, -3.0)
    # MR UCL = D4 * d2 * sigma = 3.267 * 1.128 * 1 = 3.686
    assert f"{first.new_limits.dispersion_ucl:.4g}" == "3.686"
    fourth = results[3].subgroup  # the first B after the changeover: z 2/3, moving range |2/3 - 1.5|
    assert fourth is not None
    assert fourth.mean == pytest.approx(2 / 3) and fourth.range == pytest.approx(1.5 - 2 / 3)


def test_a_run_rule_fires_across_the_changeover():
    # five A just above target, then four B just above theirs: nine on one side (Nelson test 2) only
    # when the chart runs across the changeover; the ninth point is a B
    engine = ShortRunEngine("z", [A, B], settings())
    readings = [("A-100", 10.004)] * 5 + [("A-200", 12.506)] * 4
    results = run(engine, readings)
    assert all(2 not in r.subgroup.violations for r in results[:8] if r.subgroup)
    last = results[-1]
    assert last.subgroup is not None and 2 in last.subgroup.violations
    assert [v.rule for v in last.violations] == [2]
    assert last.violations[0].points == tuple(range(1, 10))


def test_spec_and_capability_are_per_part_in_its_own_unit():
    engine = ShortRunEngine("dnom", [A, B], settings(capability_every=30))
    results = run(engine, READINGS)
    assert [r.is_within_spec for r in results] == [True] * 6
    # 12.52 is far outside A's spec but inside B's: the part decides
    assert engine.ingest(12.52, "A-200", 7.0).is_within_spec is True
    assert engine.ingest(10.07, "A-100", 8.0).is_within_spec is False
    # 30 readings of A in three runs, B's between them: A's capability from A's readings alone, its
    # moving ranges taken in A's own order (the B runs between do not enter them)
    a_values = [round(10.0 + 0.01 * ((i * 7) % 5 - 2), 6) for i in range(26)]
    out = []
    for i, x in enumerate(a_values):
        out.append(engine.ingest(x, "A-100", 10.0 + i))
        if i % 10 == 9:
            engine.ingest(12.5, "A-200", 10.5 + i)
    capability = out[-1].capability  # the 30th A: the 4 above, then these 26
    assert capability is not None and [r.capability for r in out[:-1]] == [None] * 25
    values = [10.01, 9.98, 10.03, 10.07, *a_values]
    mean = sum(values) / 30
    mr_bar = sum(abs(b - a) for a, b in zip(values, values[1:], strict=False)) / 29
    sigma_within = mr_bar / D2_2
    cpk = min(10.06 - mean, mean - 9.94) / (3 * sigma_within)
    assert capability.n == 30
    assert f"{capability.cpk:.4g}" == f"{cpk:.4g}"
    assert f"{capability.cp:.4g}" == f"{0.12 / (6 * sigma_within):.4g}"


def test_a_reading_of_unknown_part_is_counted_not_charted():
    engine = ShortRunEngine("z", [A, B], settings())
    run(engine, READINGS[:2])
    sample, subgroup = engine.skip(5.0)
    assert (sample, subgroup) == (3, 2)
    after = engine.ingest(10.03, "A-100", 6.0)
    # the moving range joins the charted neighbours: |1.5 - (-1.0)|
    assert after.sample_number == 4 and after.subgroup_number == 3
    assert after.subgroup is not None and after.subgroup.range == pytest.approx(2.5)


def test_state_carries_the_chart_and_the_parts_windows_across_a_restart():
    engine = ShortRunEngine("dnom", [A, B], settings(capability_every=4))
    run(engine, READINGS)
    saved = json.loads(json.dumps(engine.state()))
    again = ShortRunEngine("dnom", [A, B], settings(capability_every=4), state=saved)
    assert again.limits == engine.limits
    one, two = engine.ingest(10.02, "A-100", 9.0), again.ingest(10.02, "A-100", 9.0)
    assert one == two and one.capability is not None  # the 4th A: both remember the first three


def test_z_needs_every_parts_sigma():
    with pytest.raises(ValueError, match="sigma"):
        ShortRunEngine("z", [PartTarget("A-100", 10.0)], settings())
