"""Run rules: golden sequences that just hit and just miss every test, for both conventions
(shared/contract/cli.md), and the incremental window against the plainly stated tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.spc.rules import RuleSet, RuleWindow, reference_tests


def flags(values, convention="nelson", tests=None):
    """Rules per point for values that are their own z (I-MR with center 0, sigma 1)."""
    if tests is None:
        tests = (1, 2, 3, 4, 5, 6, 7, 8) if convention == "nelson" else (1, 2, 3, 4)
    engine = CharacteristicEngine(EngineSettings(chart="imr", center=0.0, sigma=1.0, convention=convention,
                                                 tests=tests))
    return [engine.ingest(v, float(i)).subgroup.violations for i, v in enumerate(values)]


def last(values, **kw):
    return flags(values, **kw)[-1]


# (test, values that just hit it at the last point, values that just miss it at the last point)
NELSON_GOLDEN = [
    (1, [3.0001], [3.0]),
    (1, [-3.0001], [-3.0]),
    (2, [0.5] * 9, [0.5] * 8),
    (2, [-0.5] * 9, [-0.5] * 8),
    (2, [0.5] * 9, [0.5] * 4 + [0.0] + [0.5] * 4),  # on the center line breaks the run
    (3, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.2, 0.3, 0.4, 0.5, 0.6]),
    (3, [0.6, 0.5, 0.4, 0.3, 0.2, 0.1], [0.6, 0.5, 0.4, 0.4, 0.3, 0.2]),  # equal neighbours break it
    (4, [0.1, -0.1] * 7, [0.1, -0.1] * 6 + [0.1]),
    (4, [0.1, -0.1] * 7, [0.1, -0.1, 0.1, 0.1] + [-0.1, 0.1] * 5),  # a zero difference breaks it
    (5, [2.01, 0.0, 2.01], [2.0, 0.0, 2.01]),
    (5, [-2.01, 0.0, -2.01], [-2.01, 0.0, 0.0, -2.01]),  # the first is out of the window of 3
    (5, [2.01, 2.01], [2.01, 2.01, 0.0]),  # start of series; point i itself must be beyond
    (5, [-2.01, 2.01, 2.01], [-2.01, 0.0, 2.01]),  # both beyond on the same side
    (6, [1.01, 1.01, 0.0, 1.01, 1.01], [1.01, 1.01, 0.0, 1.0, 1.01]),
    (6, [-1.01] * 4, [-1.01, -1.01, 0.0, 0.0, -1.01, -1.01]),
    (6, [1.01, 1.01, 1.01, 0.0, 1.01], [1.01, 1.01, 1.01, 1.01, 0.0]),
    (7, [0.5, -0.5, 1.0, -1.0, 0.2] * 3, [0.5, -0.5, 1.0, -1.0, 0.2] * 2 + [0.5, -0.5, 1.0, -1.0]),
    (7, [0.5, -0.5, 1.0, -1.0, 0.2] * 3, [0.5, -0.5, 1.0, -1.0, 0.2] * 2 + [0.5, -0.5, 1.01, -1.0, 0.2]),
    (8, [1.5, -1.5] * 4, [1.5, -1.5] * 3 + [1.5]),
    (8, [1.5, -1.5] * 4, [1.5] * 8),  # needs at least one above and one below
    (8, [1.5, -1.5] * 4, [1.5, -1.5, 1.5, 1.0, 1.5, -1.5, 1.5, -1.5]),
]


@pytest.mark.parametrize(("test", "hit", "miss"), NELSON_GOLDEN)
def test_nelson_golden_sequences(test, hit, miss):
    assert test in last(hit)
    assert test not in last(miss)


WE_GOLDEN = [
    (1, [3.0001], [3.0]),
    (2, [2.01, 0.0, 2.01], [2.01, 0.0, 0.0, 2.01]),  # = Nelson 5
    (3, [1.01, 1.01, 0.0, 1.01, 1.01], [1.01, 1.01, 0.0, 0.0, 1.01, 1.01]),  # = Nelson 6
    (4, [0.5] * 8, [0.5] * 7),  # 8 on one side, not 9
    (4, [-0.5] * 8, [-0.5] * 3 + [0.0] + [-0.5] * 4),
]


@pytest.mark.parametrize(("rule", "hit", "miss"), WE_GOLDEN)
def test_western_electric_golden_sequences(rule, hit, miss):
    assert rule in last(hit, convention="western_electric")
    assert rule not in last(miss, convention="western_electric")


def test_western_electric_reports_its_own_numbers_only():
    # a 15-point trend inside 1 sigma fires Nelson 3 and 7, which Western Electric does not have
    values = [0.05 * i for i in range(15)]
    assert flags(values, convention="western_electric")[-1] == (4,)
    assert set(flags(values)[-1]) == {2, 3, 7}


def test_custom_list_switches_off_the_other_tests():
    assert last([0.5] * 9, tests=(1, 5)) == ()
    assert last([4.0], tests=(2, 3)) == ()
    assert last([2.01, 0.0, 2.01], tests=(5,)) == (5,)


def test_points_name_the_pattern():
    engine = CharacteristicEngine(EngineSettings(chart="imr", center=0.0, sigma=1.0))
    results = [engine.ingest(v, 0.0) for v in [0.0, 2.5, -0.3, 2.6]]
    (violation,) = [v for v in results[-1].violations if v.rule == 5]
    assert violation.points == (2, 4)
    assert violation.subgroup_number == 4
    assert violation.rule_name == "2 out of 3 points beyond 2 sigma on the same side"
    engine = CharacteristicEngine(EngineSettings(chart="imr", center=0.0, sigma=1.0))
    results = [engine.ingest(0.5, 0.0) for _ in range(10)]
    (violation,) = [v for v in results[-1].violations if v.rule == 2]
    assert violation.points == tuple(range(2, 11))
    (first,) = results[0].violations if results[0].violations else (None,)
    assert first is None


def test_a_run_keeps_flagging_each_point_that_extends_it():
    per_point = flags([0.5] * 11)
    assert [2 in f for f in per_point] == [False] * 8 + [True] * 3


def test_rule_numbers_are_validated():
    with pytest.raises(ValueError):
        RuleSet("western_electric", (5,))
    with pytest.raises(ValueError):
        RuleSet("nelson", (9,))
    with pytest.raises(ValueError):
        RuleSet("weco", (1,))


BOUNDARY_VALUES = [-3.1, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.1]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(BOUNDARY_VALUES), min_size=1, max_size=60), st.sampled_from([9, 8]))
def test_incremental_window_agrees_with_the_plain_statement_of_each_test(z, run_length):
    window = RuleWindow(run_length)
    for i, value in enumerate(z):
        mask = window.push(value, value)
        got = [t for t in range(1, 9) if mask >> (t - 1) & 1]
        assert got == reference_tests(z, z, i, run_length), (i, z[: i + 1])


def test_window_state_round_trip():
    a, b = RuleWindow(), RuleWindow()
    for v in [0.5, 1.2, -2.2, 0.3, 0.4]:
        a.push(v, v)
    b.restore(a.to_state())
    for v in [0.6, 0.7, 0.8, 0.9, 2.5, 2.6]:
        assert a.push(v, v) == b.push(v, v)
