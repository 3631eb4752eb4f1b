"""Control limits for I-MR, Xbar-R and Xbar-S charts: estimation from subgroups, and per-n limits.

Everything follows from two numbers, the process center and sigma (the standard deviation of individual
values within subgroups). For a subgroup of n_i values the location chart has center +- 3 sigma/sqrt(n_i)
("stair-step" limits when subgroups come short) and the dispersion chart has:

- R chart:   center d2(n_i) sigma, limits (d2 +- 3 d3) sigma, LCL floored at 0  (= D3 Rbar, D4 Rbar)
- S chart:   center c4(n_i) sigma, limits (c4 +- 3 sqrt(1 - c4^2)) sigma, floored at 0  (= B3 Sbar, B4 Sbar)
- MR chart:  moving range of two: center d2(2) sigma, UCL (d2(2) + 3 d3(2)) sigma = 3.267 MRbar, LCL 0

Sigma estimators (Montgomery ch. 6; Minitab "Xbar-R/Xbar-S methods and formulas"; R qcc sd.xbar):

- I-MR:   MRbar / d2(2)
- Xbar-R: Rbar / d2(n); with unequal n the weighted form sum(f_i R_i/d2(n_i)) / sum(f_i), f_i = d2^2/d3^2
- Xbar-S: Sbar / c4(n); with unequal n sum(h_i s_i/c4(n_i)) / sum(h_i), h_i = c4^2 / (1 - c4^2)

Subgroups of a single value carry no within-subgroup information on Xbar charts: they are plotted
but left out of the sigma estimate.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from gateway.spc import constants
from gateway.spc.numeric import SMALLEST_NORMAL, limits_problem

CHARTS = ("imr", "xbar_r", "xbar_s")
DISPERSION_CHART = {"imr": "mr", "xbar_r": "r", "xbar_s": "s"}
LOCATION_CHART = {"imr": "i", "xbar_r": "xbar", "xbar_s": "xbar"}
# A zero sigma would divide by zero; its inverse is replaced by this, so any deviation is beyond limits.
# So is a subnormal one: 1/5e-324 overflows to infinity, and 0 * infinity (a point on the center line)
# is NaN, which would flag every point.
HUGE_INVERSE = 1e300


class SubgroupSummary(NamedTuple):
    """What the charts need of one subgroup: size, mean, sum of squared deviations (M2), range."""

    n: int
    mean: float
    m2: float
    range: float

    @property
    def stdev(self) -> float | None:
        """Sample standard deviation (n - 1); None for a single value."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None


def summarize(values: list[float]) -> SubgroupSummary:
    """Summary of one subgroup with Welford's update (the same arithmetic as the streaming engine)."""
    n = 0
    mean = m2 = 0.0
    low = high = values[0]
    for x in values:
        n += 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
        if x < low:
            low = x
        elif x > high:
            high = x
    return SubgroupSummary(n, mean, m2, high - low)


class LimitsVersion(NamedTuple):
    """One stored set of control limits; the numbers are for the nominal subgroup size n."""

    chart: str
    n: int
    center: float
    sigma: float
    ucl: float
    lcl: float
    # None: no dispersion chart is drawn (subgroup size 1 on an Xbar chart)
    dispersion_center: float | None
    dispersion_ucl: float | None
    dispersion_lcl: float | None
    source: str  # fixed | learned | recalculated
    from_subgroup: int | None
    to_subgroup: int | None
    effective_from: float

    def problem(self) -> str | None:
        """Why this version must not be put in force (NaN or infinite numbers), or None."""
        return limits_problem(self.center, self.sigma, (self.ucl, self.lcl, self.dispersion_center,
                                                        self.dispersion_ucl, self.dispersion_lcl))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (also what engine.state() keeps)."""
        return self._asdict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LimitsVersion:
        """Inverse of to_dict."""
        return cls(**data)


class PointLimits(NamedTuple):
    """Limits for a plotted point of subgroup size n, precomputed once per n."""

    inverse_se: float  # 1 / (sigma / sqrt(n)): multiplies (mean - center) into z
    ucl: float
    lcl: float
    dispersion_center: float | None
    dispersion_ucl: float | None
    dispersion_lcl: float | None


def dispersion_limits(chart: str, sigma: float, n: int) -> tuple[float, float, float] | None:
    """(center, ucl, lcl) of the dispersion chart for subgroup size n; None when nothing is plotted."""
    if chart == "imr":
        n = 2  # the moving range of two consecutive individuals
    elif n < 2:
        return None
    if chart == "xbar_s":
        c = constants.c4(n)
        center, spread = c * sigma, 3.0 * math.sqrt(1.0 - c * c) * sigma
    else:
        center, spread = constants.d2(n) * sigma, 3.0 * constants.d3(n) * sigma
    return center, center + spread, max(0.0, center - spread)


def point_limits(chart: str, center: float, sigma: float, n: int) -> PointLimits:
    """Location and dispersion limits for one subgroup size."""
    se = sigma / math.sqrt(n)
    inverse = 1.0 / se if se >= SMALLEST_NORMAL else HUGE_INVERSE
    disp = dispersion_limits(chart, sigma, n)
    if disp is None:
        return PointLimits(inverse, center + 3.0 * se, center - 3.0 * se, None, None, None)
    return PointLimits(inverse, center + 3.0 * se, center - 3.0 * se, *disp)


def make_limits(chart: str, n: int, center: float, sigma: float, *, source: str, effective_from: float,
                from_subgroup: int | None = None, to_subgroup: int | None = None) -> LimitsVersion:
    """A limits version for nominal subgroup size n from a center and a sigma."""
    p = point_limits(chart, center, sigma, n)
    return LimitsVersion(chart, n, center, sigma, p.ucl, p.lcl, p.dispersion_center, p.dispersion_ucl,
                         p.dispersion_lcl, source, from_subgroup, to_subgroup, effective_from)


class EstimateError(ValueError):
    """The subgroups do not allow estimating limits (too few, or no within-subgroup data). `reason` names
    the cause (no_values, imr_too_few, no_within, not_finite) for a caller that words it itself."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def estimate_center(summaries: list[SubgroupSummary]) -> float:
    """Grand mean of all individual values (the n-weighted mean of subgroup means)."""
    total = sum(s.n for s in summaries)
    if total == 0:
        raise EstimateError("no subgroups to estimate the center from", "no_values")
    return math.fsum(s.n * s.mean for s in summaries) / total


def estimate_sigma(chart: str, summaries: list[SubgroupSummary]) -> float:
    """Within-subgroup sigma by the chart's own estimator (MRbar/d2, Rbar/d2, Sbar/c4)."""
    if chart == "imr":
        if len(summaries) < 2:
            raise EstimateError("an I-MR chart needs at least 2 individual values to estimate sigma", "imr_too_few")
        ranges = [abs(b.mean - a.mean) for a, b in zip(summaries, summaries[1:], strict=False)]
        return math.fsum(ranges) / len(ranges) / constants.d2(2)
    usable = [s for s in summaries if s.n >= 2]
    if not usable:
        raise EstimateError("no subgroup with 2 or more values to estimate the within-subgroup sigma", "no_within")
    sizes = {s.n for s in usable}
    if chart == "xbar_r":
        if len(sizes) == 1:
            (n,) = sizes
            return math.fsum(s.range for s in usable) / len(usable) / constants.d2(n)
        weights = [(constants.d2(s.n) / constants.d3(s.n)) ** 2 for s in usable]
        terms = [w * s.range / constants.d2(s.n) for w, s in zip(weights, usable, strict=True)]
        return math.fsum(terms) / math.fsum(weights)
    if chart == "xbar_s":
        # SubgroupSummary.stdev, never None here (n >= 2)
        stdevs = [math.sqrt(s.m2 / (s.n - 1)) for s in usable]
        if len(sizes) == 1:
            (n,) = sizes
            return math.fsum(stdevs) / len(usable) / constants.c4(n)
        weights = [constants.c4(s.n) ** 2 / (1.0 - constants.c4(s.n) ** 2) for s in usable]
        terms = [w * sd / constants.c4(s.n) for w, sd, s in zip(weights, stdevs, usable, strict=True)]
        return math.fsum(terms) / math.fsum(weights)
    raise ValueError(f"unknown chart {chart!r} (allowed: {', '.join(CHARTS)})")


def estimate_limits(chart: str, n: int, summaries: list[SubgroupSummary], *, source: str,
                    effective_from: float, from_subgroup: int | None = None,
                    to_subgroup: int | None = None) -> LimitsVersion:
    """Limits learned from subgroups (phase I), for nominal subgroup size n.

    EstimateError when the data give limits that are not finite: such limits are never put in force.
    """
    try:
        center, sigma = estimate_center(summaries), estimate_sigma(chart, summaries)
    except EstimateError:
        raise
    except (OverflowError, ValueError):  # math.fsum refuses sums beyond the float range, and inf - inf
        raise EstimateError("no control limits can be drawn from these subgroups: "
                            "their sums overflow (values far beyond any measurement)", "not_finite") from None
    version = make_limits(chart, n, center, sigma, source=source, effective_from=effective_from,
                          from_subgroup=from_subgroup, to_subgroup=to_subgroup)
    problem = version.problem()
    if problem is not None:
        raise EstimateError(f"no control limits can be drawn from these subgroups: {problem}", "not_finite")
    return version
