"""Non-normal capability against a published worked example with its data: SAS/QC User's Guide, The
CAPABILITY Procedure, Example 5.11 "Computing Capability Indices for Nonnormal Distributions" on the
Plates data of Example 5.9 (50 plate gaps, LSL 0.3 cm, USL 0.8 cm); data and published indices in
tests/data/sas_plates_gap.json.

SAS's fitted-curve indices are the ISO 22514-2 percentile method we use (the 0.135 %, 50 % and 99.865 %
points of the fitted distribution). One convention differs, and docs/spc.md states it: SAS fits the
lognormal's sigma as the standard deviation of ln x with n - 1, we (as Minitab) take the maximum-likelihood
sigma, with n. So the published lognormal indices are compared through our percentile formulas on SAS's
fit, and `analyze` and the live engine are checked to give those formulas on our own fit; the normal
indices (sample standard deviation, n - 1, in both) are compared directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gateway.spc.capability import compute_individuals
from gateway.spc.capability_percentile import percentile_indices, with_distribution
from gateway.spc.distributions import Lognormal
from tests.test_spc_distributions import close

PLATES = json.loads((Path(__file__).parent / "data" / "sas_plates_gap.json").read_text(encoding="utf-8"))
GAP: list[float] = PLATES["gap"]
LSL, USL = PLATES["lsl"], PLATES["usl"]
PUBLISHED = PLATES["published"]


def _analyze(tmp_path, capsys, distribution: str) -> dict:
    from tests.test_spc_analyze import run_cli

    path = tmp_path / "plates.csv"
    path.write_text("value\n" + "\n".join(repr(v) for v in GAP) + "\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, path, "--lsl", LSL, "--usl", USL, "--distribution", distribution)
    assert code == 0
    return json.loads(out)["capability"]


def test_the_data_is_the_published_set() -> None:
    assert len(GAP) == 50 and min(GAP) == 0.231 and max(GAP) == 1.741
    assert float(np.mean(GAP)) == pytest.approx(0.63362, abs=1e-12)


def test_normal_indices_match_sas_output_5_11_1(tmp_path, capsys) -> None:
    # SAS's standard Cp, Cpk use the sample standard deviation of all values: our Pp and Ppk
    cap = _analyze(tmp_path, capsys, "normal")
    close(cap["pp"], PUBLISHED["normal"]["cp"])
    close(cap["ppk"], PUBLISHED["normal"]["cpk"])
    mean, s = float(np.mean(GAP)), cap["sigma_overall"]
    close((mean - LSL) / (3 * s), PUBLISHED["normal"]["cpl"])
    close((USL - mean) / (3 * s), PUBLISHED["normal"]["cpu"])
    assert cap["distribution"]["name"] == "normal" and cap["distribution"]["anderson_darling"]["p_value"] < 0.05


def test_percentile_indices_on_sas_lognormal_fit_match_output_5_11_2() -> None:
    logs = np.log(GAP)
    sas_fit = Lognormal(float(np.mean(logs)), float(np.std(logs, ddof=1)))  # SAS: s of ln x, n - 1
    pp, ppl, ppu = percentile_indices(sas_fit, LSL, USL)
    assert pp is not None and ppl is not None and ppu is not None
    close(pp, PUBLISHED["lognormal"]["cp"])
    close(ppl, PUBLISHED["lognormal"]["cpl"])
    close(ppu, PUBLISHED["lognormal"]["cpu"])
    close(min(ppl, ppu), PUBLISHED["lognormal"]["cpk"])


def test_analyze_and_engine_give_the_same_formulas_on_the_maximum_likelihood_fit(tmp_path, capsys) -> None:
    cap = _analyze(tmp_path, capsys, "lognormal")
    d = cap["distribution"]
    assert (d["name"], d["method"]) == ("lognormal", "percentile")
    logs = np.log(GAP)
    assert d["parameters"]["mu"] == pytest.approx(float(np.mean(logs)), rel=1e-12)
    assert d["parameters"]["sigma"] == pytest.approx(float(np.std(logs)), rel=1e-12)  # n, not n - 1
    pp, ppl, ppu = percentile_indices(Lognormal(d["parameters"]["mu"], d["parameters"]["sigma"]), LSL, USL)
    assert cap["pp"] == pytest.approx(pp, rel=1e-12) and cap["ppk"] == pytest.approx(min(ppl, ppu), rel=1e-12)
    # the convention's size on this sample: n = 50 makes the spread 1 % wider with n - 1, Pp 1.7 % lower
    assert cap["pp"] / PUBLISHED["lognormal"]["cp"] == pytest.approx(1.0168, abs=5e-4)
    assert cap["ppk"] / PUBLISHED["lognormal"]["cpk"] == pytest.approx(1.0196, abs=5e-4)
    assert d["anderson_darling"]["p_value"] > 0.05 and d["warning"] is None  # SAS: lognormal is a good model
    # the live engine (individuals, 50 values) gives analyze's numbers
    from gateway.spc.engine import CharacteristicEngine, EngineSettings

    settings = EngineSettings(chart="imr", subgroup_size=1, lsl=LSL, usl=USL, distribution="lognormal",
                              capability_every=50, capability_window=50)
    engine = CharacteristicEngine(settings)
    live = None
    for i, x in enumerate(GAP):
        plain = engine.ingest(x, float(i)).capability
        if plain is not None:
            live = engine.describe_capability(plain)
    assert live is not None
    assert live.ppk == pytest.approx(cap["ppk"], rel=1e-9) and live.pp == pytest.approx(cap["pp"], rel=1e-9)
    expected = with_distribution(compute_individuals(GAP, LSL, USL), GAP, "lognormal", LSL, USL)
    assert expected.expected_ppm is not None and live.expected_ppm is not None
    assert live.expected_ppm["total"] == pytest.approx(expected.expected_ppm["total"], rel=1e-9)
    assert math.isclose(live.expected_ppm["total"], cap["expected_ppm"]["total"], rel_tol=1e-9)
