"""Attribute charts p, np, c, u and Laney p'/u' (issue 15, item 2): Montgomery's published examples,
limits per point, the floored LCL, rules on z per point, capability, refusals, and the live engine
equal to `analyze` on the same samples."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.spc.charts.attribute import Sample
from gateway.spc.charts.registry import CHARTS
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.tools.analyze_attribute import analyze_samples
from tests.test_spc_analyze import run_cli

# Montgomery, Introduction to Statistical Quality Control, 6th ed. (Wiley 2009), chapter 7 (control charts
# for attributes; pages not checked here), Example 7.1, Table 7.1:
# 6-oz frozen orange juice cans, 30 samples of n = 50 (R qcc `orangejuice`, trial samples). Published:
# p-bar = 347/1500 = 0.2313, UCL 0.4102, LCL 0.0524; samples 15 and 23 beyond the UCL. With those two
# removed (assignable causes): p-bar 0.2150, UCL 0.3893, LCL 0.0407.
ORANGE_JUICE = [12, 15, 8, 10, 4, 7, 16, 9, 14, 10, 5, 6, 17, 12, 22, 8, 10, 5, 13, 11, 20, 18, 24, 15, 9, 12,
                7, 13, 9, 6]
# Montgomery, same book, Example 7.3, Table 7.7: nonconformities in 26 samples of 100 printed circuit
# boards (R qcc `circuit`, trial samples). Published: c-bar = 516/26 = 19.85, UCL 33.22, LCL 6.48;
# samples 6 and 20 beyond the limits. Revised without them: c-bar 19.67, UCL 32.97, LCL 6.36.
CIRCUIT_BOARDS = [21, 24, 16, 12, 15, 5, 28, 20, 31, 25, 20, 24, 16, 19, 10, 17, 13, 22, 18, 39, 30, 24, 16, 19,
                  17, 15]


def write(tmp_path, header, rows, name="samples.csv"):
    path = tmp_path / name
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_montgomery_example_7_1_orange_juice_p_chart(tmp_path, capsys):
    path = write(tmp_path, "sample,count,n", [(i, d, 50) for i, d in enumerate(ORANGE_JUICE, 1)])
    code, out, _ = run_cli(capsys, path, "--chart", "p")
    r = json.loads(out)
    assert code == 0 and r["chart"] == "p" and r["subgroups"] == 30 and r["dispersion"] is None
    assert round(r["limits"]["center"], 4) == 0.2313
    assert round(r["limits"]["ucl"], 4) == 0.4102 and round(r["limits"]["lcl"], 4) == 0.0524
    assert [p["subgroup"] for p in r["points"] if p["violations"]] == ["15", "23"]
    assert r["points"][14]["violations"] == [1] and r["points"][14]["value"] == 0.44
    assert set(r["points"][0]) == {"subgroup", "n", "value", "dispersion", "violations", "dispersion_violations",
                                   "center", "lcl", "ucl"}
    assert r["capability"] == {"p_bar": pytest.approx(347 / 1500), "ppm": pytest.approx(1e6 * 347 / 1500),
                               "process_z": pytest.approx(0.7345, abs=1e-4)}
    kept = [(i, d, 50) for i, d in enumerate(ORANGE_JUICE, 1) if i not in (15, 23)]
    code, out, _ = run_cli(capsys, write(tmp_path, "sample,count,n", kept, "revised.csv"), "--chart", "p")
    revised = json.loads(out)["limits"]
    assert (round(revised["center"], 4), round(revised["ucl"], 4), round(revised["lcl"], 4)) == (0.2150, 0.3893, 0.0407)
    # np chart of the same samples: n p-bar = 11.57, limits 50 x the p chart's
    code, out, _ = run_cli(capsys, path, "--chart", "np")
    np_chart = json.loads(out)
    assert round(np_chart["limits"]["center"], 2) == 11.57 and round(np_chart["limits"]["ucl"], 2) == 20.51
    assert [p["subgroup"] for p in np_chart["points"] if 1 in p["violations"]] == ["15", "23"]


def test_montgomery_example_7_3_circuit_board_c_chart(tmp_path, capsys):
    path = write(tmp_path, "count", [(c,) for c in CIRCUIT_BOARDS])
    code, out, _ = run_cli(capsys, path, "--chart", "c")
    r = json.loads(out)
    assert code == 0 and r["chart"] == "c"
    lim = r["limits"]
    assert (round(lim["center"], 2), round(lim["lcl"], 2)) == (19.85, 6.48)
    # Montgomery rounds c-bar to 19.85 before the limits: 19.85 + 3 sqrt(19.85) = 33.216; exactly 33.2107
    assert lim["ucl"] == pytest.approx(516 / 26 + 3 * math.sqrt(516 / 26)) and round(lim["ucl"], 1) == 33.2
    assert [p["subgroup"] for p in r["points"] if 1 in p["violations"]] == ["6", "20"]
    assert r["capability"] == {"u_bar": pytest.approx(516 / 26), "dpu": pytest.approx(516 / 26)}
    kept = [(c,) for i, c in enumerate(CIRCUIT_BOARDS, 1) if i not in (6, 20)]
    code, out, _ = run_cli(capsys, write(tmp_path, "count", kept, "revised.csv"), "--chart", "c")
    lim = json.loads(out)["limits"]
    assert (round(lim["center"], 2), round(lim["ucl"], 2), round(lim["lcl"], 2)) == (19.67, 32.97, 6.36)


def test_p_and_u_limits_per_point_and_the_lower_limit_at_zero_is_not_a_limit():
    samples = [(str(i), Sample(c, n)) for i, (c, n) in enumerate([(2, 100), (5, 400), (0, 50), (9, 400), (1, 25)] * 5, 1)]
    head, points = analyze_samples(samples, CHARTS["p"], convention="nelson", tests=(1, 2, 3, 4))
    p_bar = sum(s.count for _, s in samples) / sum(s.n for _, s in samples)
    for (_, s), point in zip(samples, points, strict=True):
        half = 3 * math.sqrt(p_bar * (1 - p_bar) / s.n)
        assert point["ucl"] == pytest.approx(p_bar + half) and point["lcl"] == max(0.0, p_bar - half)
        assert point["center"] == pytest.approx(p_bar)
    assert head["capability"]["p_bar"] == pytest.approx(p_bar)
    # a zero count on a sample whose lower limit is floored at 0 is not flagged, however many of them
    zeros = [(str(i), Sample(0 if i > 20 else i % 4, 20)) for i in range(1, 40)]
    _, points = analyze_samples(zeros, CHARTS["p"], convention="nelson", tests=(1,), phase1=20)
    assert all(p["lcl"] == 0.0 and p["violations"] == [] for p in points)
    u_samples = [(str(i), Sample(c, n)) for i, (c, n) in enumerate([(3, 1.5), (7, 2.0), (4, 2.5), (2, 1.0)] * 6, 1)]
    _, generated = analyze_samples(u_samples, CHARTS["u"], convention="nelson", tests=(1, 2, 3, 4))
    points = list(generated)
    u_bar = sum(s.count for _, s in u_samples) / sum(s.n for _, s in u_samples)
    assert [p["ucl"] for p in points][:4] == pytest.approx([u_bar + 3 * math.sqrt(u_bar / n) for n in (1.5, 2, 2.5, 1)])
    assert [p["n"] for p in points][:4] == [1.5, 2, 2.5, 1]


def test_laney_p_reports_sigma_z_and_widens_the_limits_for_overdispersion():
    rng = random.Random(3)
    samples = []
    for i in range(1, 41):  # large samples whose true fraction wanders: overdispersed
        n = rng.choice([20000, 25000, 30000])
        samples.append((str(i), Sample(round(n * rng.uniform(0.03, 0.07)), n)))
    plain, generated = analyze_samples(samples, CHARTS["p"], convention="nelson", tests=(1, 2, 3, 4))
    plain_points = list(generated)
    laney, generated = analyze_samples(samples, CHARTS["laney_p"], convention="nelson", tests=(1, 2, 3, 4))
    laney_points = list(generated)
    p_bar = plain["capability"]["p_bar"]
    z = [(s.count / s.n - p_bar) / math.sqrt(p_bar * (1 - p_bar) / s.n) for _, s in samples]
    sigma_z = sum(abs(b - a) for a, b in zip(z, z[1:], strict=False)) / (len(z) - 1) / (2 / math.sqrt(math.pi))  # d2(2)
    assert laney["limits"]["sigma_z"] == pytest.approx(sigma_z, rel=1e-9) and sigma_z > 3
    assert "sigma_z" not in plain["limits"]
    flagged = [sum(1 in p["violations"] for p in points) for points in (plain_points, laney_points)]
    assert flagged[0] >= 10 and flagged[1] == 0
    for (_, s), p in zip(samples, laney_points, strict=True):
        assert p["ucl"] - p["center"] == pytest.approx(3 * sigma_z * math.sqrt(p_bar * (1 - p_bar) / s.n))


def test_rules_default_1_to_4_on_z_per_point(tmp_path, capsys):
    # nine samples above the center line after a stable phase: test 2 fires on z, whatever each n
    rows = [(i, 10, 100) for i in range(1, 21)] + [(20 + i, 3 * (5 + i), 20 * (5 + i)) for i in range(1, 10)]
    path = write(tmp_path, "sample,count,n", rows)
    code, out, _ = run_cli(capsys, path, "--chart", "p", "--phase1", 20)
    r = json.loads(out)
    assert code == 0 and r["points"][-1]["violations"] == [2]
    code, out, _ = run_cli(capsys, path, "--chart", "p", "--phase1", 20, "--rules", "1")
    assert json.loads(out)["points"][-1]["violations"] == []


@pytest.mark.parametrize("chart, header, rows, words", [
    ("p", "count,n", [(1, 10), (-1, 10)], "row 2: count '-1' is not a whole number >= 0"),
    ("p", "count,n", [(1, 10), (2.5, 10)], "row 2: count '2.5' is not a whole number >= 0"),
    ("p", "count,n", [(1, 10), (11, 10)], "row 2: count 11 is larger than n 10"),
    ("np", "count,n", [(1, 10), (2, 12)], "row 2: n 12 differs from row 1's 10"),
    ("u", "count,n", [(1, 2), (1, 0)], "row 2: n 0 must be positive"),
    ("p", "count,n", [(1, 10), (1, -5)], "row 2: n -5 must be positive"),
    ("c", "value", [(1,)], "needs the column `count`"),
    ("u", "count", [(1,)], "needs the column `n`"),
    ("p", "count,n", [(1, 10), ("", 10)], "row 2 has no count"),
])
def test_refusals_exit_1_naming_the_row(tmp_path, capsys, chart, header, rows, words):
    code, _, err = run_cli(capsys, write(tmp_path, header, rows), "--chart", chart)
    assert code == 1 and words in err, err


def test_options_that_do_not_apply_are_usage_errors(tmp_path, capsys):
    path = write(tmp_path, "count,n", [(1, 10), (2, 10), (3, 10)])
    for argv in (["--sigma", "1"], ["--usl", "0.1"], ["--lambda", "0.2"]):
        code, _, err = run_cli(capsys, path, "--chart", "p", "--center", "0.1", *argv)
        assert code == 2, argv
    code, out, _ = run_cli(capsys, path, "--chart", "p", "--center", "0.1")
    assert code == 0 and json.loads(out)["limits"]["center"] == 0.1  # a known standard


samples_strategy = st.lists(st.tuples(st.integers(0, 30), st.integers(30, 60)), min_size=3, max_size=40)


@settings(max_examples=40, deadline=None)
@given(samples_strategy, st.integers(2, 30), st.sampled_from(["p", "np", "c", "u", "laney_p", "laney_u"]))
def test_live_engine_equals_analyze(raw, k, chart_name):
    chart = CHARTS[chart_name]
    k = min(k, len(raw))
    if chart_name == "np":
        raw = [(c, raw[0][1]) for c, _ in raw]
    samples = [(str(i), Sample(c, float(n))) for i, (c, n) in enumerate(raw, 1)]
    try:
        head, points = analyze_samples(samples, chart, convention="nelson", tests=(1, 2, 3, 4), phase1=k)
        batch = list(points)
    except ValueError:
        return
    engine = CharacteristicEngine(EngineSettings(chart=chart_name, tests=(1, 2, 3, 4), baseline_subgroups=k,
                                                 capability_every=k, capability_window=k))
    results = [engine.ingest_count(s.count, s.n, float(i)) for i, (_, s) in enumerate(samples)]
    learned = next(r.new_limits for r in results if r.new_limits is not None)
    assert learned.center == (head["capability"].get("p_bar") if chart.defectives else head["capability"]["u_bar"])
    # the live capability over the phase-I samples is analyze's: p-bar, ppm, process Z or u-bar, DPU
    capabilities = [r.capability for r in results if r.capability is not None]
    assert capabilities[0].fields() == head["capability"] and capabilities[0].n == k
    assert capabilities[0].cp is None and capabilities[0].cpk is None  # no spec to compare a spread with
    assert len(capabilities) == len(samples) // k  # every k samples, over the last k
    # with those limits from the first sample on, every point is the same
    fixed = CharacteristicEngine(EngineSettings(chart=chart_name, tests=(1, 2, 3, 4), center=learned.center,
                                                sigma=learned.sigma if chart.laney else None))
    streamed = [fixed.ingest_count(s.count, s.n, 0.0).subgroup for _, s in samples]
    assert [(p.mean, p.center, p.lcl, p.ucl, list(p.violations)) for p in streamed] == \
        [(q["value"], q["center"], q["lcl"], q["ucl"], q["violations"]) for q in batch]
    restored = CharacteristicEngine(fixed.settings, fixed.state())
    assert restored.limits == fixed.limits
