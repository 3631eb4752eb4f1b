"""Process capability: Cp, Cpk, Pp, Ppk, Cpm and Bissell's lower confidence bound of Cpk.

- Within sigma (Cp, Cpk): the chart's own estimator (MRbar/d2(2), Rbar/d2, Sbar/c4), see charts/.
- Overall sigma (Pp, Ppk): the sample standard deviation of all individual values, n - 1, no c4
  (Minitab's default since v15; AIAG SPC manual 2nd ed.). Pooled from subgroup summaries with Chan's
  parallel update about the first mean, so it is as stable as a two-pass computation, far from zero too.
- Cp = (USL - LSL)/(6 sigma_w); Cpk = min(USL - mean, mean - LSL)/(3 sigma_w); Pp, Ppk the same with
  sigma_overall. A one-sided spec gives only its own side: Cp and Pp are null.
- Cpm only with a target T: min(T - LSL, USL - T) / (3 sqrt(sigma_w^2 + (mean - T)^2)) (SAS; Minitab's
  form for T off the middle); with T in the middle it is R qcc's (USL - LSL) / (6 sqrt(...)); with a
  one-sided spec, its one side.
- cpk_lower: Bissell (1990) one-sided lower 95% bound, Cpk - z(0.95) sqrt(1/(9N) + Cpk^2/(2 nu)), N the
  number of values and nu the degrees of freedom of the within-sigma estimator (ChartType.sigma_df:
  N - 1 for moving ranges, 0.9 k (n - 1) for Rbar, f_n k (n - 1) for Sbar; Minitab).
- Too little data (fewer than 20 subgroups, or fewer than 30 individual values on an I-MR chart): all null
  with a reason.
"""

from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple

from gateway.spc.charts.base import ChartType, EstimateError, SubgroupSummary
from gateway.spc.constants import d2

MIN_SUBGROUPS = 20
MIN_INDIVIDUALS = 30
Z_95 = 1.6448536269514722  # standard normal 95% quantile: one-sided lower bound


class CapabilityResult(NamedTuple):
    """One capability analysis; an index that cannot be computed is None and `reason` says why."""

    cp: float | None
    cpk: float | None
    pp: float | None
    ppk: float | None
    cpm: float | None
    cpk_lower: float | None
    n: int  # individual values used
    subgroups: int
    mean: float | None
    sigma_within: float | None
    sigma_overall: float | None
    reason: str | None = None
    # capability_percentile: the distribution, its Anderson-Darling test and method; ppm below/above/total
    distribution: dict[str, Any] | None = None
    expected_ppm: dict[str, float | None] | None = None
    # the key and values of distribution["warning"], for a caller that words it per language (core.texts)
    warning_words: tuple[str, dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return self._asdict()


def pooled_mean_m2(summaries: list[SubgroupSummary]) -> tuple[int, float, float]:
    """Total count, mean and sum of squared deviations of all values (see pooled)."""
    count, mean, _, m2 = pooled(summaries)
    return count, mean, m2


def pooled(summaries: list[SubgroupSummary]) -> tuple[int, float, float, float]:
    """Total count, mean and sum of squared deviations of all values (Chan et al. parallel update), about
    the first subgroup's mean: the offsets of the means from it, with their mean_error, are exact where
    the means themselves are rounded (values far from zero)."""
    count, offset, m2 = 0, 0.0, 0.0
    shift = summaries[0].mean if summaries else 0.0
    for s in summaries:
        total = count + s.n
        delta = (s.mean - shift) + s.mean_error - offset
        offset += delta * s.n / total
        m2 += s.m2 + delta * delta * count * s.n / total
        count = total
    mean = shift + offset
    return count, mean, offset - (mean - shift), m2


def _indices(mean: float, sigma: float, lsl: float | None, usl: float | None,
             mean_error: float = 0.0) -> tuple[float | None, float]:
    """(Cp-like, Cpk-like) for one sigma; a missing side gives None for the two-sided index. The
    distances to the spec limits take the mean's rounding error back (values far from zero)."""
    upper = ((usl - mean) - mean_error) / (3.0 * sigma) if usl is not None else None
    lower = ((mean - lsl) + mean_error) / (3.0 * sigma) if lsl is not None else None
    both = (usl - lsl) / (6.0 * sigma) if usl is not None and lsl is not None else None
    sides = [v for v in (upper, lower) if v is not None]
    return both, min(sides)


def compute(chart: ChartType, summaries: list[SubgroupSummary], lsl: float | None, usl: float | None,
            target: float | None = None) -> CapabilityResult:
    """Capability of the given subgroups against the spec, with the chart's own within sigma."""
    if chart.individual_values(summaries):
        return compute_individuals([s.mean for s in summaries], lsl, usl, target)
    count, mean, mean_error, m2 = pooled(summaries)
    k = len(summaries)
    if k < MIN_SUBGROUPS:
        return _empty(count, k, mean, f"too little data: {k} subgroups, at least {MIN_SUBGROUPS} needed")
    try:
        sigma_within = chart.estimate_sigma(summaries)
        sigma_df = chart.sigma_df(summaries)
    except EstimateError as e:
        return _empty(count, k, mean, str(e))
    return _indices_for(count, k, mean, m2, sigma_within, lsl, usl, target, mean_error, sigma_df)


def compute_individuals(values: list[float], lsl: float | None, usl: float | None,
                        target: float | None = None) -> CapabilityResult:
    """Capability of individual values (I-MR): within sigma MRbar/d2(2), two-pass overall sigma."""
    count = len(values)
    shift = values[0] if count else 0.0  # offsets from a value near them are exact (values far from zero)
    offsets = [x - shift for x in values]
    offset = math.fsum(offsets) / count if count else 0.0
    mean = shift + offset
    if count < MIN_INDIVIDUALS:
        return _empty(count, count, mean,
                      f"too little data: {count} individual values, at least {MIN_INDIVIDUALS} needed")
    m2 = math.fsum([(d - offset) ** 2 for d in offsets])
    moving = math.fsum(map(abs, map(operator.sub, values[1:], values[:-1])))
    sigma_within = moving / (count - 1) / d2(2)
    return _indices_for(count, count, mean, m2, sigma_within, lsl, usl, target, offset - (mean - shift))


def _empty(count: int, k: int, mean: float, reason: str, sigma_within: float | None = None,
           sigma_overall: float | None = None) -> CapabilityResult:
    return CapabilityResult(None, None, None, None, None, None, count, k, mean if count else None,
                            sigma_within, sigma_overall, reason)


def _indices_for(count: int, k: int, mean: float, m2: float, sigma_within: float, lsl: float | None,
                 usl: float | None, target: float | None, mean_error: float = 0.0,
                 sigma_df: float | None = None) -> CapabilityResult:
    if lsl is None and usl is None:
        return _empty(count, k, mean, "no specification limits")
    sigma_overall = math.sqrt(m2 / (count - 1))
    if sigma_within <= 0.0 or sigma_overall <= 0.0:
        return _empty(count, k, mean, "no variation in the data: sigma is zero", sigma_within, sigma_overall)
    cp, cpk = _indices(mean, sigma_within, lsl, usl, mean_error)
    pp, ppk = _indices(mean, sigma_overall, lsl, usl, mean_error)
    cpm = None
    if target is not None:  # no Cpm without a target (Minitab): the midpoint is not assumed
        # min(T - LSL, USL - T) / (3 sqrt(sigma_w^2 + (mean - T)^2)) (SAS, Minitab's form for T off the
        # middle); with T in the middle it is qcc's (USL - LSL) / (6 sqrt(...)); one side with a one-sided spec
        sides = [v for v in ((usl - target) if usl is not None else None,
                             (target - lsl) if lsl is not None else None) if v is not None]
        off = (mean - target) + mean_error
        cpm = min(sides) / (3.0 * math.sqrt(sigma_within ** 2 + off * off))
    # Bissell (1990), with the degrees of freedom of the within-sigma estimator (Minitab): the pooled
    # count N - 1 overstated the precision of Rbar/d2 (about 0.9 k (n - 1))
    df = float(count - 1) if sigma_df is None else sigma_df
    cpk_lower = cpk - Z_95 * math.sqrt(1.0 / (9.0 * count) + cpk * cpk / (2.0 * df))
    reason = None if cp is not None else "one-sided specification: Cp and Pp do not apply"
    return CapabilityResult(cp, cpk, pp, ppk, cpm, cpk_lower, count, k, mean, sigma_within,
                            sigma_overall, reason)
