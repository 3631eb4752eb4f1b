"""Capability indices: formulas, one-sided specs, too little data, Bissell's bound."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from gateway.spc.capability import Z_95, compute, compute_individuals, pooled_mean_m2
from gateway.spc.charts.base import SubgroupSummary, summarize
from gateway.spc.charts.registry import CHARTS


def _subgroups(k, n, seed=1, mean=10.0, sd=1.0):
    rng = random.Random(seed)
    return [[rng.gauss(mean, sd) for _ in range(n)] for _ in range(k)]


def test_indices_follow_their_formulas():
    groups = _subgroups(25, 5)
    summaries = [summarize(g) for g in groups]
    values = [v for g in groups for v in g]
    c = compute(CHARTS["xbar_r"], summaries, 6.0, 15.0, 11.0)
    mean = statistics.fmean(values)
    sw = statistics.fmean(max(g) - min(g) for g in groups) / 2.325929
    so = statistics.stdev(values)
    assert c.sigma_within == pytest.approx(sw, rel=1e-6)
    assert c.sigma_overall == pytest.approx(so, rel=1e-12)
    assert c.cp == pytest.approx(9 / (6 * sw), rel=1e-6)
    assert c.cpk == pytest.approx(min(15 - mean, mean - 6) / (3 * sw), rel=1e-6)
    assert c.pp == pytest.approx(9 / (6 * so), rel=1e-12)
    assert c.ppk == pytest.approx(min(15 - mean, mean - 6) / (3 * so), rel=1e-12)
    # the target 11 is off the middle (10.5) of 6..15: min(T - LSL, USL - T) / (3 sqrt(...)), SAS and Minitab
    assert c.cpm == pytest.approx(4 / (3 * math.sqrt(sw ** 2 + (mean - 11) ** 2)), rel=1e-6)
    n = len(values)
    # Bissell with the degrees of freedom of Rbar/d2: 0.9 k (n - 1) = 0.9 * 25 * 4 (Minitab)
    assert c.cpk_lower == pytest.approx(c.cpk - Z_95 * math.sqrt(1 / (9 * n) + c.cpk ** 2 / (2 * 90)))
    assert (c.n, c.subgroups, c.reason) == (125, 25, None)


def test_xbar_s_uses_sbar_over_c4():
    groups = _subgroups(20, 4, seed=2)
    c = compute(CHARTS["xbar_s"], [summarize(g) for g in groups], 5.0, 15.0)
    assert c.sigma_within == pytest.approx(statistics.fmean(statistics.stdev(g) for g in groups) / 0.921318,
                                           rel=1e-6)


def test_one_sided_spec_gives_only_its_side():
    groups = _subgroups(25, 5)
    c = compute(CHARTS["xbar_r"], [summarize(g) for g in groups], None, 14.0)
    assert c.cp is None and c.pp is None and c.cpm is None
    assert c.cpk == pytest.approx((14.0 - c.mean) / (3 * c.sigma_within))
    assert c.ppk == pytest.approx((14.0 - c.mean) / (3 * c.sigma_overall))
    assert "one-sided" in c.reason
    lower = compute(CHARTS["xbar_r"], [summarize(g) for g in groups], 6.0, None)
    assert lower.cpk == pytest.approx((lower.mean - 6.0) / (3 * lower.sigma_within))


def test_too_little_data_gives_nulls_with_a_reason():
    c = compute(CHARTS["xbar_r"], [summarize(g) for g in _subgroups(19, 5)], 6.0, 14.0)
    assert (c.cp, c.cpk, c.pp, c.ppk, c.cpm, c.cpk_lower) == (None,) * 6
    assert "19 subgroups" in c.reason and "20" in c.reason
    assert compute(CHARTS["xbar_r"], [summarize(g) for g in _subgroups(20, 5)], 6.0, 14.0).cpk is not None
    values = [v for g in _subgroups(29, 1) for v in g]
    assert "29 individual values" in compute_individuals(values, 6.0, 14.0).reason
    assert compute_individuals(values + [10.0], 6.0, 14.0).cpk is not None


def test_no_spec_and_no_variation():
    assert compute_individuals([1.0] * 40, None, None).reason == "no specification limits"
    assert "sigma is zero" in compute_individuals([1.0] * 40, 0.0, 2.0).reason


def test_individuals_use_the_moving_range():
    values = [v for g in _subgroups(40, 1, seed=9) for v in g]
    c = compute_individuals(values, 6.0, 14.0)
    mr = statistics.fmean(abs(b - a) for a, b in zip(values, values[1:], strict=False))
    assert c.sigma_within == pytest.approx(mr / 1.128379, rel=1e-6)
    assert c.sigma_overall == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert compute(CHARTS["imr"], [SubgroupSummary(1, v, 0.0, 0.0) for v in values], 6.0, 14.0) == c


def test_pooling_is_stable_far_from_zero():
    # NIST StRD NumAcc1 split across subgroups: standard deviation exactly 1
    count, mean, m2 = pooled_mean_m2([summarize([10000001.0]), summarize([10000003.0, 10000002.0])])
    assert (count, mean, math.sqrt(m2 / (count - 1))) == (3, 10000002.0, 1.0)
    big = [1e9 + v for g in _subgroups(30, 4, seed=4) for v in g]
    count, mean, m2 = pooled_mean_m2([summarize(big[i:i + 4]) for i in range(0, 120, 4)])
    assert math.sqrt(m2 / (count - 1)) == pytest.approx(statistics.stdev(big), rel=1e-8)


def test_cpm_needs_a_target_and_is_qccs_with_the_target_in_the_middle():
    groups = _subgroups(25, 5)
    summaries = [summarize(g) for g in groups]
    assert compute(CHARTS["xbar_r"], summaries, 6.0, 15.0).cpm is None  # no Cpm without a target
    middle = compute(CHARTS["xbar_r"], summaries, 6.0, 15.0, 10.5)
    assert middle.cpm == pytest.approx(9 / (6 * math.sqrt(middle.sigma_within ** 2 + (middle.mean - 10.5) ** 2)))
    upper_only = compute(CHARTS["xbar_r"], summaries, None, 15.0, 10.0)
    assert upper_only.cp is None and upper_only.cpm == pytest.approx(
        5 / (3 * math.sqrt(upper_only.sigma_within ** 2 + (upper_only.mean - 10) ** 2)))


def test_bissell_degrees_of_freedom_follow_the_sigma_estimator():
    """Minitab, "Potential capability: methods and formulas": nu = 0.9 k (n - 1) for Rbar, f_n k (n - 1)
    for Sbar (f_4 = 0.94), k - 1 for the average moving range of k values."""
    groups = _subgroups(30, 4, seed=5)
    summaries = [summarize(g) for g in groups]
    for chart, nu in (("xbar_r", 0.9 * 30 * 3), ("xbar_s", 0.94 * 30 * 3)):
        c = compute(CHARTS[chart], summaries, 6.0, 14.0)
        assert CHARTS[chart].sigma_df(summaries) == pytest.approx(nu)
        assert c.cpk_lower == pytest.approx(c.cpk - Z_95 * math.sqrt(1 / (9 * 120) + c.cpk ** 2 / (2 * nu)))
    values = [v for g in _subgroups(40, 1) for v in g]
    c = compute_individuals(values, 6.0, 14.0)
    assert c.cpk_lower == pytest.approx(c.cpk - Z_95 * math.sqrt(1 / (9 * 40) + c.cpk ** 2 / (2 * 39)))


def test_values_far_from_zero_lose_nothing():
    """At a 1e12 offset a float steps by 1.2e-4; with a 1e-3 spread the running means used to misstate
    sigma overall and Pp/Ppk by 1-2.7 % and Xbar-S sigma by 0.15 % (issue 15, item 5). Checked against
    exact rational arithmetic on the very same floats."""
    from fractions import Fraction

    rng = random.Random(11)
    offset = 1e12
    groups = [[offset + rng.gauss(0, 1e-3) for _ in range(5)] for _ in range(25)]
    values = [Fraction(v) for g in groups for v in g]
    mean = sum(values) / len(values)
    overall = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    within_s = sum(math.sqrt(sum((Fraction(v) - sum(map(Fraction, g)) / 5) ** 2 for v in g) / 4) for g in groups) \
        / 25 / 0.9399856029866254  # c4(5)
    lsl, usl = offset - 5e-3, offset + 4e-3
    c = compute(CHARTS["xbar_s"], [summarize(g) for g in groups], lsl, usl)
    assert c.sigma_overall == pytest.approx(overall, rel=1e-9)
    assert c.sigma_within == pytest.approx(within_s, rel=1e-6)
    assert c.ppk == pytest.approx(float(min(Fraction(usl) - mean, mean - Fraction(lsl)) / (3 * Fraction(overall))),
                                  rel=1e-9)
    assert c.pp == pytest.approx(float((Fraction(usl) - Fraction(lsl)) / (6 * Fraction(overall))), rel=1e-9)
    singles = [v for g in groups for v in g]
    i = compute_individuals(singles, lsl, usl)
    assert i.sigma_overall == pytest.approx(overall, rel=1e-9)
    assert i.ppk == pytest.approx(float(min(Fraction(usl) - mean, mean - Fraction(lsl)) / (3 * Fraction(overall))),
                                  rel=1e-9)
