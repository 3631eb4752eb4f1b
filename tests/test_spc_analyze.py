"""`spc-gateway analyze`: published reference results, the CLI contract, bad CSV, and agreement of the
streaming engine with the batch analysis."""

from __future__ import annotations

import argparse
import io
import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.spc.charts.base import ChartParameters
from gateway.spc.engine import CharacteristicEngine, EngineSettings
from gateway.tools import analyze, analyze_input
from tests.conftest import REFERENCE, needs_shared


def run_cli(capsys, *argv):
    parser = argparse.ArgumentParser(prog="spc-gateway analyze")
    analyze.add_arguments(parser)
    code = analyze.run(parser.parse_args([str(a) for a in argv]))
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- reference results

@needs_shared
def test_pistonrings_reproduces_r_qcc(capsys):
    """Montgomery, Introduction to SQC, Table 6.3 (R qcc `pistonrings`), qcc results on subgroups 1-25."""
    expected = json.loads((REFERENCE / "pistonrings.expected.json").read_text())
    rel = 2e-4  # qcc rounds d2 to three decimals (2.326)
    csv = REFERENCE / "pistonrings.csv"
    code, out, _ = run_cli(capsys, csv, "--phase1", 25, "--lsl", 73.95, "--usl", 74.05, "--target", 74.0)
    assert code == 0
    result = json.loads(out)
    assert result["chart"] == "xbar_r" and result["subgroups"] == 40
    for key in ("center", "sigma", "lcl", "ucl"):
        assert result["limits"][key] == pytest.approx(expected["xbar_r"][key], rel=rel)
    assert result["dispersion"]["chart"] == "r"
    for key in ("center", "lcl", "ucl"):
        assert result["dispersion"][key] == pytest.approx(expected["r_chart"][key], rel=rel, abs=1e-12)
    for key in ("cp", "cpk", "cpm"):
        assert result["capability"][key] == pytest.approx(expected["capability"][key], abs=5e-4)
    test1 = [int(p["subgroup"]) for p in result["points"] if 1 in p["violations"]]
    assert test1 == expected["phase2_beyond_ucl"] == [37, 38, 39]
    assert all(p["dispersion_violations"] == [] for p in result["points"])
    # the cli.md example's other numbers
    cap = result["capability"]
    assert (round(cap["pp"], 3), round(cap["ppk"], 3), cap["n"]) == (1.655, 1.616, 125)
    assert cap["sigma_overall"] == pytest.approx(0.01007, abs=5e-6)

    code, out, _ = run_cli(capsys, csv, "--phase1", 25, "--chart", "xbar_s")
    s = json.loads(out)
    assert s["limits"]["sigma"] == pytest.approx(expected["s_chart"]["sigma"], rel=rel)
    for key in ("center", "lcl", "ucl"):
        assert s["dispersion"][key] == pytest.approx(expected["s_chart"][key], rel=rel, abs=1e-12)
    assert [int(p["subgroup"]) for p in s["points"] if 1 in p["violations"]] == [37, 38, 39]
    assert "capability" not in s


# Montgomery, Introduction to Statistical Quality Control (6th/7th ed.), Example 6.1, Table 6.1:
# flow width of a hard-bake process, 25 samples of 5 wafers. Published: x-double-bar 1.5056,
# R-bar 0.32521, Xbar chart UCL 1.6932 and LCL 1.3180, R chart UCL 0.68749 (D4 = 2.114), LCL 0.
FLOW_WIDTH = [
    (1.3235, 1.4128, 1.6744, 1.4573, 1.6914), (1.4314, 1.3592, 1.6075, 1.4666, 1.6109),
    (1.4284, 1.4871, 1.4932, 1.4324, 1.5674), (1.5028, 1.6352, 1.3841, 1.2831, 1.5507),
    (1.5604, 1.2735, 1.5265, 1.4363, 1.6441), (1.5955, 1.5451, 1.3574, 1.3281, 1.4198),
    (1.6274, 1.5064, 1.8366, 1.4177, 1.5144), (1.4190, 1.4303, 1.6637, 1.6067, 1.5519),
    (1.3884, 1.7277, 1.5355, 1.5176, 1.3688), (1.4039, 1.6697, 1.5089, 1.4627, 1.5220),
    (1.4158, 1.7667, 1.4278, 1.5928, 1.4181), (1.5821, 1.3355, 1.5777, 1.3908, 1.7559),
    (1.2856, 1.4106, 1.4447, 1.6398, 1.1928), (1.4951, 1.4036, 1.5893, 1.6458, 1.4969),
    (1.3589, 1.2863, 1.5996, 1.2497, 1.5471), (1.5747, 1.5301, 1.5171, 1.1839, 1.8662),
    (1.3680, 1.7269, 1.3957, 1.5014, 1.4449), (1.4163, 1.3864, 1.3057, 1.6210, 1.5573),
    (1.5796, 1.4185, 1.6541, 1.5116, 1.7247), (1.7106, 1.4412, 1.2361, 1.3820, 1.7601),
    (1.4371, 1.5051, 1.3485, 1.5670, 1.4880), (1.4738, 1.5936, 1.6583, 1.4973, 1.4720),
    (1.5917, 1.4333, 1.5551, 1.5295, 1.6866), (1.6399, 1.5243, 1.5705, 1.5563, 1.5530),
    (1.5797, 1.3663, 1.6240, 1.3732, 1.6887),
]


def test_montgomery_example_6_1_flow_width(tmp_path, capsys):
    rows = "".join(f"{i},{v}\n" for i, sample in enumerate(FLOW_WIDTH, 1) for v in sample)
    code, out, _ = run_cli(capsys, write_csv(tmp_path, "subgroup,value\n" + rows))
    r = json.loads(out)
    assert code == 0 and r["chart"] == "xbar_r"
    assert round(r["limits"]["center"], 4) == 1.5056
    assert round(r["dispersion"]["center"], 5) == 0.32521
    assert round(r["limits"]["ucl"], 4) == 1.6932
    assert round(r["limits"]["lcl"], 4) == 1.3180
    assert r["dispersion"]["ucl"] == pytest.approx(0.68749, rel=5e-4)  # exact D4 2.11450 vs printed 2.114
    assert r["dispersion"]["lcl"] == 0.0
    assert all(p["violations"] == [] or 1 not in p["violations"] for p in r["points"])  # in control


# NIST/SEMATECH e-Handbook of Statistical Methods, 6.3.2.2 "Individuals Control Charts"
# (https://www.itl.nist.gov/div898/handbook/pmc/section3/pmc322.htm): flow rate of 10 batches.
# Published: mean 50.81, MR-bar 1.8778, UCL 55.8041, LCL 45.8159; MR chart UCL 6.1349 (= 3.267 MR-bar).
NIST_FLOW_RATE = [49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1]


def test_nist_individuals_example(tmp_path, capsys):
    path = write_csv(tmp_path, "value\n" + "\n".join(map(str, NIST_FLOW_RATE)) + "\n")
    code, out, _ = run_cli(capsys, path)
    r = json.loads(out)
    assert code == 0 and r["chart"] == "imr"
    assert r["limits"]["center"] == pytest.approx(50.81, abs=1e-9)
    assert r["dispersion"]["center"] == pytest.approx(1.8778, abs=5e-5)
    # NIST uses d2(2) = 1.128 and D4(2) = 3.267; the exact constants move the fifth digit
    assert r["limits"]["ucl"] == pytest.approx(55.8041, rel=1e-4)
    assert r["limits"]["lcl"] == pytest.approx(45.8159, rel=1e-4)
    assert r["dispersion"]["ucl"] == pytest.approx(6.1349, rel=2e-4)
    assert [p["dispersion"] for p in r["points"][:3]] == [None, pytest.approx(2.0), pytest.approx(2.3)]
    assert all(p["violations"] == [] for p in r["points"])


# ---------------------------------------------------------------- the command line contract

def test_defaults_and_keys(tmp_path, capsys):
    path = write_csv(tmp_path, "value\n" + "\n".join(str(10 + (i % 7) * 0.1) for i in range(60)) + "\n")
    _, out, _ = run_cli(capsys, path, "--subgroup-size", 5)
    r = json.loads(out)
    assert r["chart"] == "xbar_r" and r["subgroups"] == 12
    assert set(r) == {"chart", "subgroups", "limits", "dispersion", "points"}
    assert set(r["limits"]) == {"center", "lcl", "ucl", "sigma"}
    assert set(r["dispersion"]) == {"chart", "center", "lcl", "ucl"}
    # version 2 of the contract: every chart's points carry the limits that apply to them
    assert set(r["points"][0]) == {"subgroup", "n", "value", "dispersion", "violations", "dispersion_violations",
                                   "center", "lcl", "ucl"}
    first = r["points"][0]
    assert (first["center"], first["lcl"], first["ucl"]) == (r["limits"]["center"], r["limits"]["lcl"],
                                                             r["limits"]["ucl"])
    _, out, _ = run_cli(capsys, path, "--subgroup-size", 12, "--usl", 11)
    r = json.loads(out)
    assert r["chart"] == "xbar_s" and r["dispersion"]["chart"] == "s"
    assert set(r["capability"]) == {"cp", "cpk", "pp", "ppk", "cpm", "cpk_lower", "sigma_within", "sigma_overall",
                                    "n", "distribution", "expected_ppm"}  # cpk_lower: Bissell's bound (issue 15,
    # item 5); distribution and expected_ppm: non-normal capability (item 4)
    assert r["capability"]["cp"] is None  # one-sided; and only 5 subgroups: all null
    _, out, _ = run_cli(capsys, path, "--rules", "western_electric", "--center", 10.3, "--sigma", 0.2)
    r = json.loads(out)
    assert r["chart"] == "imr" and r["limits"]["center"] == 10.3 and r["limits"]["ucl"] == pytest.approx(10.9)


def test_short_last_subgroup_and_labels(tmp_path, capsys):
    path = write_csv(tmp_path, "value\n" + "\n".join(str(v) for v in [1, 2, 3, 2, 3, 4, 5]) + "\n")
    _, out, _ = run_cli(capsys, path, "--subgroup-size", 3)
    r = json.loads(out)
    assert [(p["subgroup"], p["n"]) for p in r["points"]] == [("1", 3), ("2", 3), ("3", 1)]
    assert r["points"][2]["dispersion"] is None
    labelled = write_csv(tmp_path, "subgroup,value\nA,1\nA,2\nB,2\nB,4\nB,3\nC,2\nC,3\n", "l.csv")
    _, out, _ = run_cli(capsys, labelled)
    r = json.loads(out)
    assert [(p["subgroup"], p["n"]) for p in r["points"]] == [("A", 2), ("B", 3), ("C", 2)]
    assert r["chart"] == "xbar_r"


@needs_shared
def test_table_format(capsys):
    code, out, _ = run_cli(capsys, REFERENCE / "pistonrings.csv", "--phase1", 25, "--lsl", 73.95,
                           "--usl", 74.05, "--format", "table")
    assert code == 0
    assert "chart xbar_r, 40 subgroups" in out
    assert "flagged subgroups: 35, 37, 38, 39, 40" in out
    assert "Cp 1.703" in out and "lower 95% bound" in out


@pytest.mark.parametrize(("text", "words"), [
    ("", ["empty"]),
    ("subgroup,reading\n1,2\n", [":1:", "no `value` column"]),
    ("value\n1.0\n2.0\nabc\n", [":4:", "'abc' is not a number"]),
    ("value\n1.0\n\n2.0\nnan\n", [":5:", "not a finite number"]),
    ("value,subgroup\n1,a\n2,a\n3,b\n4,a\n", [":5:", "subgroup 'a' appears again", "line 2"]),
    ("value\n", ["no data rows"]),
    ("value,subgroup\n1,a\n,a\n", [":3:", "no value"]),
])
def test_bad_csv_exits_1_naming_the_row(tmp_path, capsys, text, words):
    code, out, err = run_cli(capsys, write_csv(tmp_path, text))
    assert code == 1 and out == ""
    for w in words:
        assert w in err


@pytest.mark.parametrize("argv", [
    ["--center", "1"], ["--rules", "1,9"], ["--rules", "nelsen"], ["--phase1", "5", "--center", "1", "--sigma", "1"],
    ["--lsl", "2", "--usl", "1"], ["--subgroup-size", "0"], ["--sigma", "-1", "--center", "0"],
])
def test_usage_errors_exit_2(tmp_path, capsys, argv):
    path = write_csv(tmp_path, "value\n1\n2\n3\n")
    code, out, err = run_cli(capsys, path, *argv)
    assert code == 2 and "error" in err and out == ""


def test_input_errors_exit_1(tmp_path, capsys):
    path = write_csv(tmp_path, "value\n1\n2\n3\n")
    assert run_cli(capsys, path, "--phase1", 4)[0] == 1
    assert run_cli(capsys, tmp_path / "missing.csv")[0] == 1
    flat = write_csv(tmp_path, "value\n1\n1\n1\n", "flat.csv")
    assert run_cli(capsys, flat)[0] == 1
    grouped = write_csv(tmp_path, "subgroup,value\n1,1\n1,2\n", "g.csv")
    assert run_cli(capsys, grouped, "--chart", "imr")[0] == 1
    with pytest.raises(SystemExit) as e:
        run_cli(capsys, path, "--chart", "pareto")
    assert e.value.code == 2


# ---------------------------------------------------------------- streaming == batch

subgroup_values = st.lists(st.floats(-50, 50, allow_nan=False).map(lambda v: round(v, 3)), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(st.lists(subgroup_values, min_size=4, max_size=40), st.integers(2, 30),
       st.sampled_from(["xbar_r", "xbar_s", "imr", "ewma", "cusum"]),
       st.sampled_from(["nelson", "western_electric"]), st.sampled_from([0.05, 0.2, 1.0]), st.booleans())
def test_streaming_and_batch_agree(groups, k, chart, rules, lam, fir):
    k = min(k, len(groups))  # mapped, not filtered: filtering half the inputs failed Hypothesis' health check
    weighted = chart in ("ewma", "cusum")
    if chart == "imr":
        groups = [g[:1] for g in groups]
    elif weighted:  # EWMA and CUSUM take subgroups of one size (the first one's)
        groups = [(g * 5)[:len(groups[0])] for g in groups]
    parameters = ({"lam": lam, "L": 2.7} if chart == "ewma" else {"k": 0.5 + lam, "h": 4.0, "fir": fir}
                  if chart == "cusum" else {})
    labelled = [(str(i + 1), list(g)) for i, g in enumerate(groups)]
    size = max(len(g) for g in groups)
    spec = {"lsl": -60.0, "usl": 60.0}
    text = "subgroup,value\n" + "".join(f"{label},{v!r}\n" for label, g in labelled for v in g)
    parsed = analyze_input.read_subgroups(io.StringIO(text), "x.csv", 1)
    assert parsed == labelled
    try:
        batch, batch_cap = analyze.analyze_full(parsed, chart=chart, rules=rules, phase1=k, **spec, **parameters)
    except analyze.InputError:
        assume(False)
    convention = rules
    tests = (1, 2, 3, 4, 5, 6, 7, 8) if rules == "nelson" else (1, 2, 3, 4)
    common = {"chart": chart, "subgroup_size": size, "convention": convention, "tests": tests, **spec,
              "parameters": ChartParameters()._replace(**parameters)}

    # learned limits and capability of the phase-I subgroups: identical
    engine = CharacteristicEngine(EngineSettings(**common, baseline_subgroups=k, capability_every=k,
                                                 capability_window=k))
    results = []

    def described(result):  # as the pipeline does: the capability's distribution before the next reading
        if result is None or result.capability is None:
            return result
        return result._replace(capability=engine.describe_capability(result.capability))

    for g in groups:
        for v in g:
            results.append(described(engine.ingest(v, 0.0)))
        if engine.open_n:
            results.append(described(engine.close_subgroup(0.0)))
    learned = next(r.new_limits for r in results if r.new_limits is not None)
    assert (learned.center, learned.sigma) == (batch["limits"]["center"], batch["limits"]["sigma"])
    first_capability = next(r.capability for r in results if r.capability is not None)
    assert first_capability == batch_cap
    # after the baseline, the beyond-limits verdicts are identical (EWMA and CUSUM start their statistic
    # when the limits are learned, analyze at the first subgroup: their verdicts are compared below)
    points = [r.subgroup for r in results if r.subgroup is not None]
    for p, q in zip(points[k:], batch["points"][k:] if not weighted else [], strict=weighted is False):
        assert (1 in p.violations) == (1 in q["violations"])
        assert list(p.dispersion_violations) == q["dispersion_violations"]

    # with the same limits from the start, every point and every rule is identical
    fixed = CharacteristicEngine(EngineSettings(**common, center=learned.center, sigma=learned.sigma))
    streamed = []
    for g in groups:
        for v in g:
            r = fixed.ingest(v, 0.0)
        if fixed.open_n:
            r = fixed.close_subgroup(0.0)
        streamed.append(r.subgroup)
    assert [(p.n, p.plotted if weighted else p.mean, p.dispersion, list(p.violations),
             list(p.dispersion_violations), p.center, p.lcl, p.ucl) for p in streamed] == \
        [(q["n"], q["value"], q["dispersion"], q["violations"], q["dispersion_violations"], q["center"], q["lcl"],
          q["ucl"]) for q in batch["points"]]
    if chart == "cusum":
        assert [(p.cusum_upper, p.cusum_lower, p.run_upper, p.run_lower) for p in streamed] == \
            [(q["cusum_upper"], q["cusum_lower"], q["run_upper"], q["run_lower"]) for q in batch["points"]]
    # and an engine restarted from its saved state midway continues the same statistic
    half = len(groups) // 2
    restarted = CharacteristicEngine(fixed.settings)
    for g in groups[:half]:
        for v in g:
            restarted.ingest(v, 0.0)
        if restarted.open_n:
            restarted.close_subgroup(0.0)
    restarted = CharacteristicEngine(fixed.settings, restarted.state())
    tail = []
    for g in groups[half:]:
        for v in g:
            r = restarted.ingest(v, 0.0)
        if restarted.open_n:
            r = restarted.close_subgroup(0.0)
        tail.append(r.subgroup)
    assert tail == streamed[half:]


def test_analyze_memory_grows_by_a_few_hundred_bytes_a_row_not_kilobytes(tmp_path, monkeypatch):
    """A 100 MB file (10.5 million rows) took 15 GB of memory: every charted point, its dict, a cleaned
    copy and the whole JSON text were held at once. Now the values sit in one array and the points are
    written as they are evaluated (the phase-I subgroups the engine learns from remain)."""
    import random
    import tracemalloc

    rows = 20_000
    rng = random.Random(7)
    path = tmp_path / "big.csv"
    path.write_text("value\n" + "".join(f"{rng.gauss(10, 1):.6f}\n" for _ in range(rows)))
    small = tmp_path / "small.csv"
    small.write_text("value\n" + "".join(f"{rng.gauss(10, 1):.6f}\n" for _ in range(20)))
    parser = argparse.ArgumentParser()
    analyze.add_arguments(parser)
    options = ["--format", "json", "--lsl", "5", "--usl", "15"]
    args = parser.parse_args([str(path), *options])
    result = tmp_path / "out.json"
    with open(result, "w") as out:  # a file, not captured in memory: only analyze's own memory counts
        monkeypatch.setattr("sys.stdout", out)
        # the SPC constants are integrated once and cached (about 20 MB while computed): not per row
        assert analyze.run(parser.parse_args([str(small), *options])) == 0
        out.seek(0)
        out.truncate()
        tracemalloc.start()
        try:
            assert analyze.run(args) == 0
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert json.loads(result.read_text())["subgroups"] == rows  # complete, valid JSON
    assert peak / rows < 400, f"{peak / rows:.0f} bytes a row (it was 1,800)"
