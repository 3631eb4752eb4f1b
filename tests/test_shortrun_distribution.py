"""Short-run capability with a non-normal distribution: each part's window is fitted on its own, in its
own unit, against its own spec; the result is the one `with_distribution` gives on that part's readings
alone (the same code as a characteristic without parts, itself checked against SciPy and SAS), and the
part's window survives a restart."""

from __future__ import annotations

import json
import math

import pytest

from gateway.spc.capability import CapabilityResult, compute_individuals
from gateway.spc.capability_percentile import with_distribution
from gateway.spc.engine import EngineSettings
from gateway.spc.shortrun import PartTarget, ShortRunEngine
from tests.test_spc_distributions import FOLDED, LOGNORMAL

PARTS = (PartTarget("A-100", 0.006, usl=0.03), PartTarget("B-200", 0.05, usl=0.08))


def _settings(distribution: str) -> EngineSettings:
    return EngineSettings(chart="imr", subgroup_size=1, distribution=distribution, capability_every=50,
                          capability_window=50, baseline_subgroups=10)


def _run(distribution: str, restart_at: int | None = None) -> dict[str, CapabilityResult]:
    """FOLDED (runouts, part A-100) and LOGNORMAL (part B-200) interleaved in runs of 5, as a high-mix
    line alternates; the last capability of each part."""
    engine = ShortRunEngine("dnom", PARTS, _settings(distribution))
    readings = []
    for start in range(0, 50, 5):
        readings += [("A-100", x) for x in FOLDED[start:start + 5]]
        readings += [("B-200", x) for x in LOGNORMAL[start:start + 5]]
    last: dict[str, CapabilityResult] = {}
    for i, (part, x) in enumerate(readings):
        if i == restart_at:
            engine = ShortRunEngine("dnom", PARTS, _settings(distribution), json.loads(json.dumps(engine.state())))
        capability = engine.reading(x, part, float(i)).capability
        if capability is not None:
            last[part] = capability
    return last


@pytest.mark.parametrize("distribution", ["folded_normal", "lognormal", "weibull", "auto"])
def test_each_part_is_fitted_on_its_own_readings(distribution: str) -> None:
    last = _run(distribution)
    assert set(last) == {"A-100", "B-200"}  # 50 readings of each: one analysis per part
    for part, values in (("A-100", FOLDED[:50]), ("B-200", LOGNORMAL[:50])):
        spec = next(p for p in PARTS if p.name == part)
        expected = with_distribution(compute_individuals(list(values), spec.lsl, spec.usl, spec.target),
                                     list(values), distribution, spec.lsl, spec.usl)
        got = last[part]
        assert got.distribution is not None and got.distribution == expected.distribution
        assert got.ppk == pytest.approx(expected.ppk, rel=1e-12)
        assert got.expected_ppm == expected.expected_ppm
        if distribution != "auto":
            assert got.distribution["method"] == "percentile"
            assert got.cpk == got.ppk and got.pp is None  # usl only: one-sided


def test_folded_runouts_of_one_part_give_the_scipy_checked_numbers() -> None:
    # the same 50 runouts as tests/test_spc_distributions.py's folded normal case (SciPy-checked there)
    a100 = _run("folded_normal")["A-100"]
    assert a100.ppk == pytest.approx(1.5260540506854123, rel=1e-4)
    assert a100.expected_ppm["above"] == pytest.approx(2.4537523576296594, rel=1e-3)


def test_a_restart_keeps_each_part_s_window() -> None:
    straight, restarted = _run("lognormal"), _run("lognormal", restart_at=37)
    for part in ("A-100", "B-200"):
        assert math.isclose(restarted[part].ppk, straight[part].ppk, rel_tol=1e-12)
        assert restarted[part].distribution == straight[part].distribution
