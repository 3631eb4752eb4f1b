"""Non-normal capability: fits, Anderson-Darling tests and the ISO 22514-2 percentile method.

References:
- D'Agostino & Stephens, Goodness-of-Fit Techniques (1986): Table 4.7 (normal, case 3: A*² critical points
  0.631, 0.752, 0.873, 1.035 at 10, 5, 2.5, 1 %) and Table 4.17 (extreme value / Weibull: 0.474, 0.637,
  0.757, 0.877, 1.038 at 25, 10, 5, 2.5, 1 %), which the p-value functions must give back.
- Independent implementation: no published data set with non-normal percentile capability numbers was at
  hand (the NIST/SEMATECH e-Handbook's Anderson-Darling examples, 1.3.5.14, use generated samples it does
  not print), so the reference numbers below were produced with SciPy 1.17.1 in a throwaway virtualenv
  outside the repository: `stats.lognorm.fit(x, floc=0)`, `stats.weibull_min.fit(x, floc=0)`,
  `stats.foldnorm.fit(x, floc=0)` for the maximum-likelihood fits (Weibull: see its test); their `ppf`/`sf`/`cdf` for the 0.135,
  50 and 99.865 % points and the ppm; `stats.anderson(x, 'norm')` (and on ln x) and
  `stats.anderson(ln x, 'gumbel_l')` (the Weibull test: ln of a Weibull variable is a minimum extreme
  value) for A²; A² against the fitted folded normal from SciPy's logcdf/logsf. The folded normal
  bootstrap p-value was compared with `stats.goodness_of_fit(stats.foldnorm, x, known_params={'loc': 0},
  statistic='ad', n_mc_samples=1000)` on other samples: 0.085 vs 0.071 and 0.274 vs 0.244 (within
  the Monte Carlo error of 200 samples).
- Montgomery's piston rings (shared/reference/pistonrings.csv): SciPy's A² of all 200 values, 0.5180748.
The data sets are rounded to 0.1 µm, as a gauge gives them: flatness (lognormal), runout (Weibull) and
a folded normal, each of 50 parts (drawn once with numpy and written here).
"""

from __future__ import annotations

import csv
import math
import random
import statistics

import numpy as np
import pytest

from gateway.spc import anderson_darling as ad
from gateway.spc.capability import compute_individuals
from gateway.spc.capability_percentile import choose, with_distribution
from gateway.spc.distributions import FitError, fit
from tests.conftest import SHARED, needs_shared

REFERENCE = SHARED / "reference"

LOGNORMAL = [0.0211, 0.0336, 0.0129, 0.0566, 0.0402, 0.0265, 0.0262, 0.0346, 0.0268, 0.0273, 0.0418, 0.0381, 0.0293,
    0.0291, 0.0325, 0.0229, 0.0252, 0.0386, 0.0285, 0.0163, 0.0244, 0.0406, 0.0272, 0.0282, 0.0403, 0.0686,
    0.0219, 0.0554, 0.0174, 0.0327, 0.0178, 0.0555, 0.0439, 0.0504, 0.0203, 0.0411, 0.0239, 0.0246, 0.0379,
    0.0448, 0.0331, 0.0228, 0.0208, 0.0578, 0.0394, 0.0417, 0.0807, 0.0209, 0.0955, 0.1247]
WEIBULL = [0.0158, 0.0076, 0.0242, 0.0048, 0.0057, 0.0004, 0.0238, 0.0088, 0.0067, 0.0085, 0.0057, 0.0204, 0.0280,
    0.0077, 0.0261, 0.0156, 0.0097, 0.0186, 0.0107, 0.0104, 0.0225, 0.0156, 0.0036, 0.0112, 0.0041, 0.0124,
    0.0082, 0.0068, 0.0091, 0.0056, 0.0021, 0.0097, 0.0058, 0.0120, 0.0140, 0.0512, 0.0080, 0.0350, 0.0096,
    0.0240, 0.0089, 0.0171, 0.0067, 0.0087, 0.0117, 0.0328, 0.0051, 0.0101, 0.0118, 0.0114]
FOLDED = [0.0024, 0.0023, 0.0077, 0.0038, 0.0097, 0.0019, 0.0124, 0.0052, 0.0038, 0.0071, 0.0069, 0.0109, 0.0008,
    0.0097, 0.0047, 0.0003, 0.0038, 0.0140, 0.0026, 0.0086, 0.0097, 0.0068, 0.0107, 0.0012, 0.0001, 0.0102,
    0.0083, 0.0123, 0.0053, 0.0137, 0.0023, 0.0024, 0.0082, 0.0026, 0.0089, 0.0048, 0.0013, 0.0166, 0.0091,
    0.0147, 0.0019, 0.0108, 0.0131, 0.0045, 0.0045, 0.0053, 0.0017, 0.0133, 0.0133, 0.0073]


def sig4(x: float) -> float:
    """Rounded to four significant digits, the precision the tests hold us to."""
    return float(f"{x:.4g}")


def close(ours: float, reference: float) -> None:
    assert sig4(ours) == sig4(reference), (ours, reference)


# ---------------------------------------------------------------- p-values at the published table points


@pytest.mark.parametrize("critical, alpha", [(0.631, 0.10), (0.752, 0.05), (0.873, 0.025), (1.035, 0.01)])
def test_normal_p_value_at_dagostino_stephens_critical_points(critical: float, alpha: float) -> None:
    n = 10 ** 6  # A*² = A² for large n
    assert ad.normal_p_value(critical, n) == pytest.approx(alpha, rel=0.04)


@pytest.mark.parametrize("critical, alpha", ad.WEIBULL_TABLE)
def test_weibull_p_value_gives_the_table_back(critical: float, alpha: float) -> None:
    n = 100
    a2 = critical / (1 + 0.2 / math.sqrt(n))
    assert ad.weibull_p_value(a2, n) == pytest.approx(alpha, rel=1e-9)


def test_weibull_p_value_outside_the_table() -> None:
    assert ad.weibull_p_value(0.1, 50) == 0.25  # the table says only p > 0.25
    assert ad.weibull_p_value(1.5, 50) < 0.01 and ad.weibull_p_value(3.0, 50) < ad.weibull_p_value(1.5, 50)


# ---------------------------------------------------------------- fits and statistics against SciPy


def test_lognormal_fit_and_percentile_capability_match_scipy() -> None:
    x = np.array(LOGNORMAL)
    fitted = fit("lognormal", x)
    close(fitted.parameters()["mu"], -3.40226926386301)
    close(fitted.parameters()["sigma"], 0.45210733926999047)
    close(fitted.test(np.sort(x))[0], 0.42644923138166746)  # the normality test of ln x
    close(fitted.quantile(0.00135), 0.008577773655146916)
    close(fitted.quantile(0.5), 0.033297623068655774)
    close(fitted.quantile(0.99865), 0.12925634862806268)
    result = with_distribution(compute_individuals(LOGNORMAL, 0.005, 0.08), x, "lognormal", 0.005, 0.08)
    close(result.pp, 0.6214856283879094)
    close(result.ppk, 0.4866923425575441)  # Ppu; Ppl is 1.1447328256454403
    assert (result.cp, result.cpk) == (result.pp, result.ppk)
    assert result.cpm is None and result.cpk_lower is None
    close(result.expected_ppm["below"], 13.715947408300838)
    close(result.expected_ppm["above"], 26263.533763706437)
    assert result.expected_ppm["total"] == pytest.approx(13.715947408300838 + 26263.533763706437, rel=1e-4)
    assert result.distribution["method"] == "percentile" and result.distribution["name"] == "lognormal"


def test_weibull_fit_and_one_sided_percentile_capability_match_scipy() -> None:
    x = np.array(WEIBULL)
    fitted = fit("weibull", x)
    # weibull_min.fit's optimiser stops at shape 1.490491 (4 digits: 1.490, ours 1.491), so the reference
    # shape is the root of the profile equation by scipy.optimize.brentq (xtol 1e-15), the rest from it
    close(fitted.parameters()["shape"], 1.4905135646623437)
    close(fitted.parameters()["scale"], 0.014547348801647283)
    close(fitted.test(np.sort(x))[0], 0.9110105177976635)  # SciPy's gumbel_l test of ln x
    close(fitted.quantile(0.00135), 0.0001728596960517493)
    close(fitted.quantile(0.99865), 0.05163704545677503)
    result = with_distribution(compute_individuals(WEIBULL, None, 0.05), x, "weibull", None, 0.05)
    close(result.ppk, 0.9593391545085598)
    assert result.pp is None and result.cp is None  # runout: usl only, no Pp
    close(result.expected_ppm["above"], 1840.2458542474974)
    assert result.expected_ppm["below"] is None
    assert "one-sided" in result.reason


def test_folded_normal_fit_and_percentile_capability_match_scipy() -> None:
    x = np.array(FOLDED)
    fitted = fit("folded_normal", x)
    # foldnorm.fit's optimiser stops short (log-likelihood 205.668095114 against 205.668095138 at ours), so
    # the reference is scipy.optimize.minimize (Nelder-Mead, xatol 1e-12) of foldnorm's log-likelihood
    close(fitted.parameters()["mu"], 0.00630533957273839)
    close(fitted.parameters()["sigma"], 0.00518629846093822)
    close(fitted.test(np.sort(x))[0], 0.3182709675411317)
    close(fitted.quantile(0.5), 0.006398338937650055)
    close(fitted.quantile(0.99865), 0.021864148324774638)
    result = with_distribution(compute_individuals(FOLDED, None, 0.03), x, "folded_normal", None, 0.03)
    close(result.ppk, 1.5260540506854123)
    close(result.expected_ppm["above"], 2.4537523576296594)


def test_normal_test_beside_normal_capability_matches_scipy() -> None:
    for values, a2 in ((LOGNORMAL, 2.7548352441639423), (WEIBULL, 2.525947437157434),
                       (FOLDED, 0.7503378863762649)):
        result = with_distribution(compute_individuals(values, None, 1.0), values, "normal", None, 1.0)
        d = result.distribution
        assert d["name"] == "normal" and d["method"] == "normal"
        close(d["anderson_darling"]["statistic"], a2)
        assert d["parameters"] == {"mean": result.mean, "sigma": result.sigma_overall}
        assert d["anderson_darling"]["p_value"] < 0.05 and "auto" in d["warning"]
        assert result.cpk_lower is not None  # the normal capability itself is untouched


@needs_shared
def test_pistonrings_normality_matches_scipy() -> None:
    with (REFERENCE / "pistonrings.csv").open() as f:
        values = [float(row["value"]) for row in csv.DictReader(f)]
    result = with_distribution(compute_individuals(values, 73.95, 74.05), values, "normal", 73.95, 74.05)
    test = result.distribution["anderson_darling"]
    close(test["statistic"], 0.5180748456555193)
    # A*² = 0.5181 (1 + 0.75/200 + 2.25/200²) = 0.5200: D'Agostino & Stephens' piece for 0.34 <= A*² < 0.6
    a = 0.5180748456555193 * (1 + 0.75 / 200 + 2.25 / 200 ** 2)
    close(test["p_value"], math.exp(0.9177 - 4.279 * a - 1.38 * a * a))
    assert test["p_value"] > 0.05 and result.distribution["warning"] is None
    z_low, z_high = (result.mean - 73.95) / result.sigma_overall, (74.05 - result.mean) / result.sigma_overall
    ppm = result.expected_ppm
    close(ppm["below"], 1e6 * 0.5 * math.erfc(z_low / math.sqrt(2)))
    close(ppm["above"], 1e6 * 0.5 * math.erfc(z_high / math.sqrt(2)))


# ---------------------------------------------------------------- auto, fallbacks, bounds, refusals


def test_auto_picks_lognormal_for_flatness_and_folded_normal() -> None:
    assert choose("auto", LOGNORMAL).fit.name == "lognormal"
    assert choose("auto", FOLDED).fit.name == "folded_normal"


def test_auto_falls_back_to_normal_with_a_warning_when_nothing_fits() -> None:
    # the runout sample: lognormal p 0.043, Weibull 0.018, folded normal 0.02, normal 1.8e-6
    result = with_distribution(compute_individuals(WEIBULL, None, 0.05), WEIBULL, "auto", None, 0.05)
    d = result.distribution
    assert d["name"] == "normal" and d["method"] == "normal"
    assert d["warning"].startswith("no distribution fits the values") and "weibull p = " in d["warning"]
    assert result.cpk_lower is not None  # the normal capability


def test_auto_mostly_picks_normal_for_normal_data() -> None:
    rng = random.Random(11)
    picks = [choose("auto", [rng.gauss(10.0, 0.5) for _ in range(100)]).fit.name for _ in range(40)]
    # normal stays unless its test rejects it (p < 0.05): about 95 % of normal samples
    assert picks.count("normal") >= 34, picks


def test_auto_mostly_picks_lognormal_for_lognormal_data() -> None:
    rng = random.Random(12)
    picks = [choose("auto", [rng.lognormvariate(0.0, 0.6) for _ in range(150)]).fit.name for _ in range(40)]
    assert picks.count("lognormal") >= 24, picks


def test_lsl_at_or_below_zero_is_no_lower_side_for_bounded_distributions() -> None:
    for lsl in (0.0, -0.01):
        result = with_distribution(compute_individuals(LOGNORMAL, lsl, 0.08), LOGNORMAL, "lognormal", lsl, 0.08)
        assert result.pp is None and result.cp is None
        close(result.ppk, 0.4866923425575441)  # the upper side alone
        assert f"lsl {lsl:g} is at or below 0" in result.reason
        assert result.expected_ppm["below"] == 0.0


def test_lower_spec_only_on_a_bounded_distribution_gives_no_index() -> None:
    result = with_distribution(compute_individuals(LOGNORMAL, 0.0, None), LOGNORMAL, "weibull", 0.0, None)
    assert (result.pp, result.ppk, result.cp, result.cpk) == (None, None, None, None)
    assert "at or below 0" in result.reason


def test_negative_values_cannot_be_lognormal_and_fall_back_to_normal() -> None:
    values = [v - 0.02 for v in LOGNORMAL]
    with pytest.raises(FitError, match="no values at or below 0"):
        fit("lognormal", np.array(values))
    result = with_distribution(compute_individuals(values, None, 0.06), values, "lognormal", None, 0.06)
    assert result.distribution["name"] == "normal"
    assert "computed as normal" in result.distribution["warning"]


def test_all_identical_values_are_refused_clearly() -> None:
    values = [0.012] * 40
    with pytest.raises(FitError, match="all 40 values are equal"):
        fit("weibull", np.array(values))
    for distribution in ("normal", "weibull", "auto"):
        result = with_distribution(compute_individuals(values, None, 0.05), values, distribution, None, 0.05)
        assert result.ppk is None and result.distribution is None
        assert "no variation" in result.reason


def test_far_tails_are_finite() -> None:
    # a point 40 sigma out: ln F must not be ln 0, or A² and the p-value are lost
    values = [*LOGNORMAL[:-1], 5.0]
    d = with_distribution(compute_individuals(values, None, 6.0), values, "normal", None, 6.0).distribution
    assert math.isfinite(d["anderson_darling"]["statistic"]) and d["anderson_darling"]["p_value"] < 1e-6


# ---------------------------------------------------------------- the live engine


def test_engine_carries_the_distribution_and_survives_a_restart() -> None:
    import json

    from gateway.spc.engine import CharacteristicEngine, EngineSettings

    values = LOGNORMAL * 3  # 150 parts, subgroups of 5: 30 subgroups
    settings = EngineSettings(chart="xbar_r", subgroup_size=5, usl=0.08, distribution="lognormal",
                              capability_every=30, capability_window=30)
    engine = CharacteristicEngine(settings)
    half = CharacteristicEngine(settings)
    results = []
    for i, x in enumerate(values):
        plain = engine.ingest(x, float(i)).capability
        # ingest gives the normal indices; the pipeline describes them before the next reading
        results.append(None if plain is None else engine.describe_capability(plain))
        if i == 74:  # a restart half way: the kept values come back with the state
            half = CharacteristicEngine(settings, json.loads(json.dumps(half.state())))
        plain = half.ingest(x, float(i)).capability
        last = None if plain is None else half.describe_capability(plain)
    live = next(c for c in results if c is not None)
    assert live == engine.capability_now()
    expected = with_distribution(compute_individuals(values, None, 0.08), values, "lognormal", None, 0.08)
    assert live.distribution == {**expected.distribution}
    assert live.ppk == pytest.approx(expected.ppk, rel=1e-12) and live.cpk == live.ppk
    assert live.expected_ppm["below"] is None
    assert live.expected_ppm["above"] == pytest.approx(expected.expected_ppm["above"], rel=1e-9)
    assert last == live


def test_engine_refuses_an_unknown_distribution() -> None:
    from gateway.spc.engine import EngineSettings

    with pytest.raises(ValueError, match="distribution 'gamma' is not one of normal, lognormal"):
        EngineSettings(distribution="gamma")


# ---------------------------------------------------------------- analyze --distribution


def _csv(tmp_path, values: list[float]):
    path = tmp_path / "runout.csv"
    path.write_text("value\n" + "\n".join(f"{v:.4f}" for v in values) + "\n", encoding="utf-8")
    return path


def test_analyze_distribution_option_in_json_and_table(tmp_path, capsys) -> None:
    import json

    from tests.test_spc_analyze import run_cli

    path = _csv(tmp_path, FOLDED)
    code, out, _ = run_cli(capsys, path, "--usl", 0.03, "--distribution", "folded_normal")
    assert code == 0
    cap = json.loads(out)["capability"]
    assert cap["distribution"]["name"] == "folded_normal" and cap["distribution"]["method"] == "percentile"
    close(cap["ppk"], 1.5260540506854123)
    close(cap["expected_ppm"]["above"], 2.4537523576296594)
    assert cap["cpk"] == cap["ppk"] and cap["pp"] is None and cap["cpm"] is None
    code, out, _ = run_cli(capsys, path, "--usl", 0.03)  # the default: normal, with its test beside it
    cap = json.loads(out)["capability"]
    assert cap["distribution"]["method"] == "normal" and cap["distribution"]["warning"] is not None
    close(cap["distribution"]["anderson_darling"]["statistic"], 0.7503378863762649)
    code, out, _ = run_cli(capsys, path, "--usl", 0.03, "--distribution", "auto", "--format", "table")
    assert "distribution folded_normal (mu 0.0063053" in out and "percentile method" in out
    assert "expected ppm: below LSL -, above USL 2.454" in out


def test_analyze_refuses_distribution_for_counts_and_unknown_names(tmp_path, capsys) -> None:
    import subprocess
    import sys

    from tests.test_spc_analyze import run_cli

    counts = tmp_path / "counts.csv"
    counts.write_text("count,n\n3,50\n4,50\n", encoding="utf-8")
    code, _, err = run_cli(capsys, counts, "--chart", "p", "--distribution", "weibull")
    assert code == 2 and "--distribution applies to measured values" in err
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "analyze", str(_csv(tmp_path, FOLDED)),
                             "--usl", "0.03", "--distribution", "gamma"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice: 'gamma'" in result.stderr


def test_analyze_all_identical_values_say_why(tmp_path, capsys) -> None:
    import json

    from tests.test_spc_analyze import run_cli

    path = _csv(tmp_path, [0.012] * 40)
    code, out, err = run_cli(capsys, path, "--usl", 0.03, "--distribution", "weibull", "--center", 0.012,
                             "--sigma", 0.001)
    assert code == 0
    cap = json.loads(out)["capability"]
    assert cap["ppk"] is None and cap["distribution"] is None
    code, out, _ = run_cli(capsys, path, "--usl", 0.03, "--distribution", "weibull", "--center", 0.012,
                           "--sigma", 0.001, "--format", "table")
    assert "no variation in the data: sigma is zero" in out
    code, _, err = run_cli(capsys, path, "--usl", 0.03, "--distribution", "auto")  # limits learned: refused
    assert code == 1 and "show no variation" in err


def test_values_far_from_zero_lose_nothing_and_raise_no_numpy_warning() -> None:
    import warnings

    rng = random.Random(5)
    near = [rng.gauss(0.0, 1e-3) for _ in range(60)]
    far = [1e12 + v for v in near]
    shifted = [v - 1e12 for v in far]  # exact: the same data the far values hold, at 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in a Weibull tail or a cancelled sigma must not warn
        for distribution in ("normal", "auto", "lognormal", "weibull", "folded_normal"):
            result = with_distribution(compute_individuals(far, None, 1e12 + 0.01), far, distribution, None,
                                       1e12 + 0.01)
            assert result.distribution is not None and result.ppk is not None and math.isfinite(result.ppk)
        a2_far = with_distribution(compute_individuals(far, None, 1e12 + 0.01), far, "normal", None,
                                   1e12 + 0.01).distribution["anderson_darling"]["statistic"]
        a2_near = with_distribution(compute_individuals(shifted, None, 0.01), shifted, "normal", None,
                                    0.01).distribution["anderson_darling"]["statistic"]
        assert a2_far == pytest.approx(a2_near, rel=1e-6)
        assert fit("normal", np.array(far)).test(np.sort(np.array(far)))[0] == pytest.approx(a2_near, rel=1e-6)
        # the folded normal of values 1e9 sigma from 0 is the normal: no cancellation in mean(x²) - mu²
        folded = fit("folded_normal", np.array(far))
        assert folded.parameters()["sigma"] == pytest.approx(statistics.pstdev(shifted), rel=1e-6)
        # ln x of 1e15 +- 1 holds too few digits: lognormal is refused, and falls back to normal
        coarse = [1e15 + rng.gauss(0.0, 1.0) for _ in range(60)]
        with pytest.raises(FitError, match="spread of the values is too small"):
            fit("lognormal", np.array(coarse))


def test_warning_words_agree_with_core_texts_and_exist_in_korean() -> None:
    from gateway.core.texts import text
    from gateway.spc.capability_percentile import ENGLISH, Warning

    samples = {"p_value": 0.0123, "distribution": "folded_normal", "listed": "normal p = 0.01, weibull p = 0.02",
               "count": 3, "lowest": -0.002}
    for key, template in ENGLISH.items():
        values = {k: v for k, v in samples.items() if "{" + k in template}
        assert Warning(key, values).english() == text("en", f"capability.warning.{key}", **values)
        korean = text("ko", f"capability.warning.{key}", **values)
        assert korean != text("en", f"capability.warning.{key}", **values) and any("가" <= c <= "힣" for c in korean)
    # a named distribution that cannot describe the values says so, with the words' key and values
    values = [v - 0.02 for v in LOGNORMAL]
    result = with_distribution(compute_individuals(values, None, 0.06), values, "weibull", None, 0.06)
    key, filled = result.warning_words
    assert key == "at_or_below_zero" and filled["distribution"] == "weibull" and filled["count"] > 0
    assert result.distribution["warning"] == Warning(key, filled).english()
