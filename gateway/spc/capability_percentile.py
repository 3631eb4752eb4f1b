"""Capability on a characteristic's distribution: the normality test beside a normal capability, and
the ISO 22514-2 percentile method for lognormal, Weibull and folded normal data (docs/spc.md,
"Non-normal capability").

Percentile method, X_p the p quantile of the fitted distribution:
  Pp = (USL - LSL) / (X_0.99865 - X_0.00135), Ppu = (USL - X_0.5) / (X_0.99865 - X_0.5),
  Ppl = (X_0.5 - LSL) / (X_0.5 - X_0.00135), Ppk = min(Ppu, Ppl) of the sides there are.
For a normal distribution these are the usual Pp and Ppk with 3.0002 sigma instead of 3 sigma.

Cp and Cpk come from a within-subgroup sigma, which is defined here for the normal distribution only
(the chart's estimator, capability.py). With another distribution there is no within estimate: cp and cpk
carry the percentile Pp and Ppk (so CAPABILITY_LOW keeps watching the same number), `method` says
"percentile", and cpm and Bissell's bound (normal theory) are null.

A lognormal, Weibull or folded normal distribution has no values below 0: an LSL at or below 0 can never
be crossed, so it gets no Ppl and no Pp, and the reason says so. Expected ppm out of spec: 1e6 F(LSL) and
1e6 (1 - F(USL)) of the fitted distribution (the normal one with the overall sigma).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from gateway.spc.capability import CapabilityResult
from gateway.spc.distributions import BOUNDED_AT_ZERO, MIN_VALUES, NAMES, Fit, FitError, Normal, fit

LOW, MEDIAN, HIGH = 0.00135, 0.5, 0.99865
FITS = 0.05  # a fit whose Anderson-Darling p-value is below this does not describe the data


class Warning(NamedTuple):
    """Why a capability's distribution may not be trusted: `key` of its words (core.texts
    `capability.warning.<key>`, in every language; ENGLISH here, for `analyze`) and the values they take."""

    key: str
    values: dict[str, Any]

    def english(self) -> str:
        """The words in English (the JSON of `analyze`, and the message a daemon in English sends)."""
        return ENGLISH[self.key].format(**self.values)


# the English of core.texts' capability.warning.* (tests/test_spc_distributions.py checks they agree)
ENGLISH = {
    "not_normal": "the values do not look normal (Anderson-Darling p = {p_value:.3g}); try capability.distribution: auto",
    "not_like": "the values do not look {distribution} (Anderson-Darling p = {p_value:.3g})",
    "none_fits": "no distribution fits the values (Anderson-Darling {listed}; each below 0.05): the capability "
                 "is computed as normal",
    "at_or_below_zero": "a {distribution} distribution has no values at or below 0, and {count} of the values "
                        "are (lowest {lowest:g}): the capability is computed as normal",
    "below_zero": "a {distribution} distribution has no values below 0, and {count} of the values are (lowest "
                  "{lowest:g}): the capability is computed as normal",
    "spread": "the spread of the values is too small for their distance from 0 to fit a {distribution} "
              "distribution: the capability is computed as normal",
}


class Chosen(NamedTuple):
    """The distribution the capability is computed on, its test, and why it may not be trusted."""

    fit: Fit
    statistic: float
    p_value: float
    warning: Warning | None


def choose(distribution: str, values: list[float] | np.ndarray) -> Chosen:
    """The fit for `distribution` (a name in CHOICES).

    `auto`: normal while its test does not reject it (p >= 0.05): a lognormal of small sigma or a folded
    normal far from 0 is as near the normal as makes no difference, and would win the comparison by
    chance half the time. Otherwise the largest p-value among the others that can be fitted (ties, such
    as Weibull's "p > 0.25": the smaller A², then the order of NAMES); normal with a warning when none
    has p >= 0.05. A named distribution that cannot be fitted also falls back to normal with a warning.
    FitError only when not even the normal can be fitted (too few values, no variation)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    if distribution == "auto":
        normal = fit("normal", ordered)
        a2, p = normal.test(ordered)
        kept = Chosen(normal, a2, p, None)
        if p >= FITS:
            return kept
        tried: list[Chosen] = []
        for name in NAMES[1:]:
            try:
                fitted = fit(name, ordered)
            except FitError:
                continue
            a2, p = fitted.test(ordered)
            tried.append(Chosen(fitted, a2, p, None))
        if tried:
            best = max(tried, key=lambda c: (c.p_value, -c.statistic, -NAMES.index(c.fit.name)))
            if best.p_value >= FITS:
                return best
        listed = ", ".join(f"{c.fit.name} p = {c.p_value:.3g}" for c in (kept, *tried))
        return kept._replace(warning=Warning("none_fits", {"listed": listed}))
    try:
        fitted = fit(distribution, ordered)
    except FitError as e:
        if distribution == "normal":
            raise
        normal = fit("normal", ordered)
        a2, p = normal.test(ordered)
        return Chosen(normal, a2, p, Warning(e.reason, dict(e.values)))
    a2, p = fitted.test(ordered)
    return Chosen(fitted, a2, p, _not_normal(p) if distribution == "normal" else
                  Warning("not_like", {"distribution": distribution, "p_value": p}) if p < FITS else None)


def _not_normal(p: float) -> Warning | None:
    return Warning("not_normal", {"p_value": p}) if p < FITS else None


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def expected_ppm(fitted: Fit, lsl: float | None, usl: float | None) -> dict[str, float | None]:
    """Parts per million expected below LSL, above USL, and in all, from the fitted distribution."""
    below = 1e6 * fitted.cdf(lsl) if lsl is not None else None
    above = 1e6 * fitted.sf(usl) if usl is not None else None
    return {"below": below, "above": above, "total": sum(x for x in (below, above) if x is not None)}


def _lsl_unreachable(fitted: Fit, lsl: float | None) -> bool:
    """An LSL at or below 0 of a distribution that has no values there: that side is not assessed."""
    return lsl is not None and fitted.name in BOUNDED_AT_ZERO and lsl <= 0.0


def percentile_indices(fitted: Fit, lsl: float | None,
                       usl: float | None) -> tuple[float | None, float | None, float | None]:
    """(Pp, Ppl, Ppu) of a fitted distribution by the percentile method; None where a side has no spec
    limit, or no values can reach it (an LSL at or below 0 of a distribution bounded at 0)."""
    low, median, high = fitted.quantile(LOW), fitted.quantile(MEDIAN), fitted.quantile(HIGH)
    lower_side = lsl is not None and not _lsl_unreachable(fitted, lsl)
    upper = (usl - median) / (high - median) if usl is not None else None
    lower = (median - lsl) / (median - low) if lower_side and lsl is not None else None
    both = (usl - lsl) / (high - low) if usl is not None and lower_side and lsl is not None else None
    return both, lower, upper


def with_distribution(result: CapabilityResult, values: list[float] | np.ndarray, distribution: str,
                      lsl: float | None, usl: float | None) -> CapabilityResult:
    """`result` (the normal capability of these values) with its distribution, its test and the expected
    ppm; for a non-normal distribution, the indices by the percentile method. Unchanged when it has no
    index (too little data, no spec, no variation) or fewer than MIN_VALUES values are at hand."""
    if result.ppk is None or len(values) < MIN_VALUES:
        return result
    if distribution == "normal":  # the common case, on every analysis: no fit, the result's own numbers
        assert result.mean is not None and result.sigma_overall is not None  # there is a Ppk
        ordered = np.array(values, dtype=float)
        ordered.sort()
        shift = float(ordered[len(ordered) // 2])  # the test takes the mean as shift + offset (far from 0)
        normal = Normal(result.mean, result.sigma_overall, (shift, float(np.mean(ordered - shift))))
        a2, p = normal.test(ordered)
        chosen = Chosen(normal, a2, p, _not_normal(p))
    else:
        try:
            chosen = choose(distribution, values)
        except FitError as e:  # the normal result already says why (no variation); keep its words
            return result._replace(reason=result.reason or str(e))
    fitted = chosen.fit
    test = {"statistic": _finite(chosen.statistic), "p_value": chosen.p_value}
    described: dict[str, Any] = {"name": fitted.name, "parameters": fitted.parameters(),
                                 "anderson_darling": test, "method": "normal",
                                 "warning": None if chosen.warning is None else chosen.warning.english()}
    words = None if chosen.warning is None else (chosen.warning.key, chosen.warning.values)
    if fitted.name == "normal":
        # the normal capability's own mean and overall sigma (the sample's mean and s, which the test
        # takes too): the curve drawn is the one its Pp, Ppk use
        assert result.mean is not None and result.sigma_overall is not None  # there is a Ppk
        described["parameters"] = {"mean": result.mean, "sigma": result.sigma_overall}
        ppm = expected_ppm(Normal(result.mean, result.sigma_overall), lsl, usl)
        return result._replace(distribution=described, expected_ppm=ppm, warning_words=words)
    described["method"] = "percentile"
    both, lower, upper = percentile_indices(fitted, lsl, usl)
    sides = [x for x in (upper, lower) if x is not None]
    ppk = min(sides) if sides else None
    notes = [f"{fitted.name} by the percentile method: cp and cpk are its pp and ppk (no within estimate); "
             "no cpm or lower bound"]
    if _lsl_unreachable(fitted, lsl):
        notes.append(f"lsl {lsl:g} is at or below 0, where a {fitted.name} distribution has no values: "
                     "only the upper side is assessed")
    elif both is None:
        notes.append("one-sided specification: Pp does not apply")
    ppm = expected_ppm(fitted, lsl, usl)
    return result._replace(cp=both, cpk=ppk, pp=both, ppk=ppk, cpm=None, cpk_lower=None,
                           reason="; ".join(notes), distribution=described, expected_ppm=ppm,
                           warning_words=words)
