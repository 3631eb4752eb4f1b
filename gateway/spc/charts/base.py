"""The ChartType interface, and what every variables chart shares: subgroup summaries and point limits.

Everything follows from two numbers, the process center and sigma (the standard deviation of individual
values within subgroups). For a subgroup of n_i values the location chart has center +- 3 sigma/sqrt(n_i)
("stair-step" limits when subgroups come short); the dispersion chart and the sigma estimator are the
chart type's own (imr.py, xbar_r.py, xbar_s.py; Montgomery ch. 6; Minitab "Xbar-R/Xbar-S methods and
formulas"; R qcc sd.xbar).

Subgroups of a single value carry no within-subgroup information on Xbar charts: they are plotted
but left out of the sigma estimate.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar, NamedTuple

from gateway.spc import constants
from gateway.spc.numeric import SMALLEST_NORMAL

# A zero sigma would divide by zero; its inverse is replaced by this, so any deviation is beyond limits.
# So is a subnormal one: 1/5e-324 overflows to infinity, and 0 * infinity (a point on the center line)
# is NaN, which would flag every point.
HUGE_INVERSE = 1e300


class SubgroupSummary(NamedTuple):
    """What the charts need of one subgroup: size, mean, sum of squared deviations (M2), range.

    `mean_error` is the part of the exact mean the float `mean` cannot hold (mean + mean_error is the
    mean to twice the precision): at 1e12 a float steps by 1.2e-4, a tenth of a 1e-3 spread, and pooling
    subgroup means that lost it would misstate sigma overall (capability.pooled_mean_m2 adds it back).
    """

    n: int
    mean: float
    m2: float
    range: float
    mean_error: float = 0.0

    @property
    def stdev(self) -> float | None:
        """Sample standard deviation (n - 1); None for a single value."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None


def summarize(values: list[float]) -> SubgroupSummary:
    """Summary of one subgroup, the same whatever the order of its values (the streaming engine keeps
    an open subgroup's values and calls this when it closes).

    The mean is the correctly rounded sum (math.fsum) over n: two subgroups holding the same values
    plot the same mean, so a tie in the trend and alternation tests is a tie. The residuals x - mean
    are exact for values near each other, so mean_error (what the float mean could not hold) and the
    two-pass M2 lose nothing for values far from zero (1e12 with a 1e-3 spread).
    """
    n = len(values)
    if n == 1:
        return SubgroupSummary(1, values[0], 0.0, 0.0)
    mean = math.fsum(values) / n
    residuals = [x - mean for x in values]
    error = math.fsum(residuals) / n
    m2 = math.fsum([(r - error) * (r - error) for r in residuals])
    return SubgroupSummary(n, mean, m2, max(values) - min(values), error)


class EstimateError(ValueError):
    """The subgroups do not allow estimating limits (too few, or no within-subgroup data). `reason` names
    the cause (no_values, imr_too_few, no_within, not_finite) for a caller that words it itself."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class PointLimits(NamedTuple):
    """Limits for a plotted point of subgroup size n, precomputed once per n."""

    inverse_se: float  # 1 / (sigma / sqrt(n)): multiplies (mean - center) into z
    ucl: float
    lcl: float
    dispersion_center: float | None
    dispersion_ucl: float | None
    dispersion_lcl: float | None


class ChartParameters(NamedTuple):
    """The parameters of the time-weighted charts (the Shewhart and attribute charts take none).

    EWMA: weight `lam` of the newest mean and limits `L` standard errors of the EWMA wide; CUSUM:
    reference value `k` and decision interval `h` in standard errors of the mean, and `fir` (fast initial
    response) starting both sums at h/2. Defaults: qcc's and Montgomery's (lambda 0.2, L 3; k 0.5, h 5).
    """

    lam: float = 0.2
    L: float = 3.0
    k: float = 0.5
    h: float = 5.0
    fir: bool = False

    def problems(self) -> dict[str, str]:
        """Why a parameter cannot chart anything, by field name (empty when all can)."""
        found = {}
        if not 0.0 < self.lam <= 1.0:
            found["lam"] = "lambda must be in (0, 1]"
        if not 0.0 < self.L <= 1e6:
            found["L"] = "L must be positive (and at most 1e6)"
        if not 0.0 <= self.k <= 1e6:
            found["k"] = "k must be 0 or more (and at most 1e6)"
        if not 0.0 < self.h <= 1e6:
            found["h"] = "h must be positive (and at most 1e6)"
        return found

    def problem(self) -> str | None:
        """All problems in one sentence, or None."""
        found = self.problems()
        return "; ".join(f"{reason}, not {getattr(self, field)!r}" for field, reason in found.items()) or None


class ChartType(ABC):
    """One kind of control chart: what the engine, the limits and the capability analysis ask of it.

    A chart type is one module in this package and one line in `registry.CHARTS`; nothing outside
    this package names one. Its location chart plots subgroup means against center +- 3 sigma/sqrt(n).
    """

    name: ClassVar[str]  # the config's `chart:` value, stored with every limits version
    sizes: ClassVar[tuple[int, int]]  # the subgroup sizes a configuration may give it (lowest, highest)
    dispersion_name: ClassVar[str]  # the dispersion chart's short name in `analyze` ("r", "s", "mr")
    # one value per point (no subgroups): the engine keeps plain values, its dispersion is the moving
    # range of two consecutive values, and the subgroup size must be 1
    individuals: ClassVar[bool] = False
    min_baseline: ClassVar[int] = 1  # the fewest subgroups its sigma can be estimated from
    # "shewhart": each point against center +- 3 standard errors, with the run rules;
    # "time_weighted": EWMA/CUSUM, a statistic carried from point to point (start_tracker), only test 1;
    # "attribute": counts in samples (p, np, c, u), one sample per point (see attribute.py)
    kind: ClassVar[str] = "shewhart"
    parameters: ClassVar[tuple[str, ...]] = ()  # the ChartParameters fields it uses

    def individual_values(self, summaries: list[SubgroupSummary]) -> bool:
        """Whether capability treats these subgroups as individual values (I-MR's estimators)."""
        return self.individuals

    @abstractmethod
    def estimate_sigma(self, summaries: list[SubgroupSummary]) -> float:
        """Within-subgroup sigma by the chart's own estimator; EstimateError when the data allow none."""

    def sigma_df(self, summaries: list[SubgroupSummary]) -> float:
        """Degrees of freedom of estimate_sigma's estimate, for the confidence bound of Cpk (Minitab,
        "Potential capability: methods and formulas"); the chart types override it."""
        return max(1.0, sum(s.n for s in summaries) - 1.0)

    @abstractmethod
    def dispersion_limits(self, sigma: float, n: int) -> tuple[float, float, float] | None:
        """(center, ucl, lcl) of the dispersion chart for subgroup size n; None when nothing is plotted."""

    @abstractmethod
    def dispersion(self, subgroup_range: float, stdev: float) -> float | None:
        """The dispersion plotted for a closed subgroup of 2 or more values (not called on individuals);
        None when the chart has no dispersion chart."""

    def point_limits(self, center: float, sigma: float, n: int) -> PointLimits:
        """Location and dispersion limits for one subgroup size."""
        se = sigma / math.sqrt(n)
        inverse = 1.0 / se if se >= SMALLEST_NORMAL else HUGE_INVERSE
        disp = self.dispersion_limits(sigma, n)
        if disp is None:
            return PointLimits(inverse, center + 3.0 * se, center - 3.0 * se, None, None, None)
        return PointLimits(inverse, center + 3.0 * se, center - 3.0 * se, *disp)


def range_limits(sigma: float, n: int) -> tuple[float, float, float]:
    """Limits of the range of n values: center d2(n) sigma, (d2 +- 3 d3) sigma, LCL floored at 0
    (= D3 Rbar, D4 Rbar); the R chart's, and with n = 2 the moving range's."""
    center, spread = constants.d2(n) * sigma, 3.0 * constants.d3(n) * sigma
    return center, center + spread, max(0.0, center - spread)


def within_subgroups(summaries: list[SubgroupSummary]) -> list[SubgroupSummary]:
    """The subgroups that carry within-subgroup information (2 or more values); EstimateError if none."""
    usable = [s for s in summaries if s.n >= 2]
    if not usable:
        raise EstimateError("no subgroup with 2 or more values to estimate the within-subgroup sigma", "no_within")
    return usable
