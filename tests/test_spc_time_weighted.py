"""EWMA and CUSUM (issue 15, item 1): Montgomery's published examples through `analyze` and the engine,
the contract's output keys and refusals, FIR, run lengths, the shift estimate and short subgroups."""

from __future__ import annotations

import json
import math

import pytest

from gateway.spc.charts.base import ChartParameters
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.tools import analyze
from tests.test_spc_analyze import run_cli

# Montgomery, Introduction to Statistical Quality Control, 7th ed. (Wiley 2013), section 9.1, Table 9.1:
# 30 observations, the first 20 from N(10, 1), the last 10 after the mean shifted to 11. (Pages: Table
# 9.2 is on p. 416 of the 7th edition as other projects cite it; the pages were not checked here.)
TABLE_9_1 = [9.45, 7.99, 9.29, 11.66, 12.16, 10.18, 8.04, 11.46, 9.20, 10.34, 9.03, 11.47, 10.51, 9.40,
             10.08, 9.37, 10.62, 10.31, 8.52, 10.84, 10.90, 9.33, 12.29, 11.50, 10.60, 11.08, 10.38, 11.62,
             11.31, 10.52]
# Example 9.1, Table 9.2: the tabular CUSUM with mu0 = 10, sigma = 1, k = 1/2, h = 5 (K = 0.5,
# H = 5). Published C+_i and N+ to two decimals; C+_29 = 5.28 > H first, N+ = 7, and the new mean is
# estimated as mu0 + K + C+/N+ = 10 + 0.5 + 5.28/7 = 11.25.
TABLE_9_2_UPPER = [0.0, 0.0, 0.0, 1.16, 2.82, 2.50, 0.04, 1.00, 0.0, 0.0, 0.0, 0.97, 0.98, 0.0, 0.0, 0.0,
                   0.12, 0.0, 0.0, 0.34, 0.74, 0.0, 1.79, 2.79, 2.89, 3.47, 3.35, 4.47, 5.28, 5.30]
TABLE_9_2_LOWER = [0.05, 1.56, 1.77, 0.0, 0.0, 0.0, 1.46, 0.0, 0.30, 0.0, 0.47, 0.0, 0.0, 0.10, 0.0, 0.13,
                   0.0, 0.0, 0.98, 0.0, 0.0, 0.17, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
# Example 9.2, Table 9.11 (section 9.2.1): EWMA of the same data with lambda = 0.1, L = 2.7, mu0 = 10,
# sigma = 1. Published: z_1 = 9.945 with limits 9.73 and 10.27; z_29 = 10.6468 beyond the UCL 10.62
# (asymptotically 10 +- 0.62), the first point out of control; z_28 = 10.5731 is inside.


@pytest.fixture
def table_9_1(tmp_path):
    path = tmp_path / "table_9_1.csv"
    path.write_text("value\n" + "".join(f"{x}\n" for x in TABLE_9_1), encoding="utf-8")
    return path


def test_montgomery_table_9_2_tabular_cusum(table_9_1, capsys):
    code, out, _ = run_cli(capsys, table_9_1, "--chart", "cusum", "--center", 10, "--sigma", 1, "--k", 0.5,
                           "--h", 5)
    r = json.loads(out)
    assert code == 0 and r["chart"] == "cusum" and r["dispersion"] is None
    assert r["limits"] == {"center": 10.0, "lcl": None, "ucl": None, "sigma": 1.0, "h": 5.0, "k": 0.5}
    points = r["points"]
    assert [round(p["cusum_upper"], 2) for p in points] == TABLE_9_2_UPPER
    assert [round(p["cusum_lower"], 2) for p in points] == TABLE_9_2_LOWER
    assert all(p["value"] is None and p["dispersion"] is None for p in points)
    assert [(p["center"], p["lcl"], p["ucl"]) for p in points[:1]] == [(0.0, -5.0, 5.0)]
    assert [p["subgroup"] for p in points if p["violations"]] == ["29", "30"]
    assert points[28]["violations"] == [1] and points[28]["run_upper"] == 7 and points[28]["run_lower"] == 0
    assert [p["run_upper"] for p in points[19:24]] == [1, 2, 0, 1, 2]
    # the engine estimates the new process mean at the signal (Montgomery: 11.25)
    engine = CharacteristicEngine(EngineSettings(chart="cusum", center=10.0, sigma=1.0))
    shifts = [engine.ingest(x, float(i)).subgroup.shift for i, x in enumerate(TABLE_9_1)]
    assert shifts[:28] == [None] * 28 and round(shifts[28], 2) == 11.25


def test_montgomery_example_9_2_ewma(table_9_1, capsys):
    code, out, _ = run_cli(capsys, table_9_1, "--chart", "ewma", "--lambda", 0.1, "--L", 2.7, "--center", 10,
                           "--sigma", 1)
    r = json.loads(out)
    assert code == 0 and r["chart"] == "ewma" and r["dispersion"] is None
    assert r["limits"]["ucl"] == pytest.approx(10.62, abs=5e-3) and r["limits"]["lcl"] == pytest.approx(9.38, abs=5e-3)
    first, p28, p29 = r["points"][0], r["points"][27], r["points"][28]
    assert round(first["value"], 3) == 9.945 and (round(first["lcl"], 2), round(first["ucl"], 2)) == (9.73, 10.27)
    assert round(p28["value"], 4) == 10.5731 and p28["violations"] == []
    assert round(p29["value"], 4) == 10.6468 and round(p29["ucl"], 2) == 10.62 and p29["violations"] == [1]
    assert [p["subgroup"] for p in r["points"] if p["violations"]] == ["29", "30"]
    # the limits open like a funnel towards the asymptotic ones
    widths = [p["ucl"] - p["lcl"] for p in r["points"]]
    assert widths == sorted(widths) and widths[-1] < r["limits"]["ucl"] - r["limits"]["lcl"]


def test_ewma_with_lambda_1_is_the_shewhart_chart_of_the_means():
    groups = [(str(i), [10 + math.sin(i * j) for j in range(1, 5)]) for i in range(1, 31)]
    ewma = analyze.analyze(groups, chart="ewma", lam=1.0, L=3.0)
    shewhart = analyze.analyze(groups, chart="xbar_r")
    assert ewma["limits"]["sigma"] == shewhart["limits"]["sigma"]  # sigma estimated as Xbar-R's
    for p, q in zip(ewma["points"], shewhart["points"], strict=True):
        assert p["value"] == pytest.approx(q["value"], rel=1e-12)
        assert p["ucl"] == pytest.approx(q["ucl"], rel=1e-12) and p["lcl"] == pytest.approx(q["lcl"], rel=1e-12)
        assert (1 in p["violations"]) == (1 in q["violations"])


def test_cusum_fir_headstart_signals_sooner_and_runs_count_nonzero_sums():
    values = [10.0 + 1.0] * 12  # a one-sigma shift from the first point
    plain = analyze.analyze([(str(i), [v]) for i, v in enumerate(values, 1)], chart="cusum", center=10.0, sigma=1.0)
    fir = analyze.analyze([(str(i), [v]) for i, v in enumerate(values, 1)], chart="cusum", center=10.0, sigma=1.0,
                          fir=True)
    first = [next(i for i, p in enumerate(r["points"], 1) if p["violations"]) for r in (plain, fir)]
    assert first == [11, 6]  # C+ = 0.5 i, or 2.5 + 0.5 i with the headstart: beyond 5 at 11 and 6
    assert fir["points"][0]["cusum_upper"] == 3.0 and fir["points"][0]["cusum_lower"] == 2.5 - 1.5
    assert [p["run_upper"] for p in plain["points"][:3]] == [1, 2, 3]
    assert fir["points"][1]["cusum_lower"] == 0.0 and fir["points"][1]["run_lower"] == 0


def test_subgroup_means_and_sigma_estimate_like_the_shewhart_chart_for_the_size():
    groups = [(str(i), [10 + 0.01 * ((i * 7 + j * 3) % 11) for j in range(5)]) for i in range(1, 26)]
    cusum = analyze.analyze(groups, chart="cusum")
    xbar = analyze.analyze(groups, chart="xbar_r")
    assert cusum["limits"]["center"] == xbar["limits"]["center"] and cusum["limits"]["sigma"] == xbar["limits"]["sigma"]
    se = xbar["limits"]["sigma"] / math.sqrt(5)
    assert cusum["limits"]["h"] == pytest.approx(5 * se) and cusum["limits"]["k"] == pytest.approx(0.5 * se)
    singles = [(str(i), [v]) for i, v in enumerate(TABLE_9_1, 1)]
    assert analyze.analyze(singles, chart="ewma")["limits"]["sigma"] == analyze.analyze(singles, chart="imr")["limits"]["sigma"]


@pytest.mark.parametrize("argv, words", [
    (["--chart", "ewma", "--lambda", "0"], "--lambda 0.0: lambda must be in (0, 1]"),
    (["--chart", "ewma", "--lambda", "1.5"], "--lambda 1.5"),
    (["--chart", "cusum", "--k", "-0.5"], "--k -0.5: k must be 0 or more"),
    (["--chart", "cusum", "--h", "0"], "--h 0.0: h must be positive"),
])
def test_parameter_refusals_exit_1_naming_the_option(table_9_1, capsys, argv, words):
    code, _, err = run_cli(capsys, table_9_1, *argv)
    assert code == 1 and words in err


def test_unequal_subgroups_are_refused_naming_the_subgroup(tmp_path, capsys):
    path = tmp_path / "short.csv"
    path.write_text("subgroup,value\n" + "".join(f"{i},{10 + j * 0.1}\n" for i in range(1, 6) for j in range(4))
                    + "6,10.1\n6,10.2\n", encoding="utf-8")
    for chart in ("ewma", "cusum"):
        code, _, err = run_cli(capsys, path, "--chart", chart)
        assert code == 1 and "subgroup '6' has 2 values" in err


def test_options_of_another_chart_are_a_usage_error(table_9_1, capsys):
    code, _, err = run_cli(capsys, table_9_1, "--chart", "ewma", "--h", 4)
    assert code == 2 and "--h applies to --chart cusum, not ewma" in err
    code, _, err = run_cli(capsys, table_9_1, "--fir")
    assert code == 2 and "--fir applies to --chart cusum, not imr" in err


def test_live_engine_rescales_a_short_subgroup_and_learns_then_starts_the_statistic():
    settings = EngineSettings(chart="ewma", subgroup_size=4, baseline_subgroups=5,
                              parameters=ChartParameters(lam=0.2, L=3.0))
    engine = CharacteristicEngine(settings)
    for i in range(5):
        for j in range(4):
            result = engine.ingest(10.0 + 0.1 * ((i + j) % 3), float(i))
    learned = result.new_limits
    assert learned is not None and learned.chart == "ewma"
    for v in (10.5, 10.5):
        engine.ingest(v, 6.0)
    short = engine.close_subgroup(6.0)
    assert short is not None and short.subgroup is not None and short.subgroup.n == 2
    rescaled = learned.center + (10.5 - learned.center) * math.sqrt(2 / 4)
    assert short.subgroup.plotted == pytest.approx(0.2 * rescaled + 0.8 * learned.center)
    with pytest.raises(ValueError, match="lambda must be in"):
        EngineSettings(chart="ewma", parameters=ChartParameters(lam=2.0))
