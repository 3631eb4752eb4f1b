"""What the attribute charts share: counts in samples, one sample per point, limits per point.

A sample is (count, n): the nonconforming parts among n inspected (p, np), or the defects found in n
inspection units (u; c takes one unit and no n). Each chart has a rate estimated from the phase-I
samples (p-bar = sum count / sum n, c-bar = mean count, u-bar = sum count / sum n) and, for a sample of
n, the center and the standard deviation of what it plots; limits are center +- 3 sd. A lower limit
below 0 is drawn at 0 and is not a limit: no count can fall below it, so nothing is flagged there.
The tests of `rules` run on z_i = (value_i - center_i) / sd_i (default tests 1 to 4, as Minitab).

Laney p' and u' (Laney 2002, "Improved control charts for attributes", Quality Engineering 14(4)): with
large samples the binomial or Poisson sd understates the variation between samples (overdispersion)
and nearly every point is out of control. The ratio sigma_Z = MRbar(z) / d2(2) of the phase-I z_i
measures it, and the limits become center +- 3 sd_i sigma_Z. The plain charts have sigma_Z = 1: in a
limits version `sigma` holds sigma_Z.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from gateway.spc import constants
from gateway.spc.charts.base import HUGE_INVERSE, ChartType, EstimateError, PointLimits, SubgroupSummary
from gateway.spc.numeric import SMALLEST_NORMAL


@dataclass(frozen=True, slots=True)
class Sample:
    """One inspected sample: `count` nonconforming parts or defects in `n` parts or units.

    (A dataclass: a NamedTuple's field `count` would hide tuple.count.)"""

    count: int
    n: float


class SampleLimits(NamedTuple):
    """Center, standard deviation and limits of one point (for its n)."""

    center: float
    sd: float  # with sigma_Z for Laney's charts
    lcl: float  # 0 when center - 3 sd < 0 (then `floored`)
    ucl: float
    floored: bool
    inverse_sd: float  # 1 / sd, or HUGE_INVERSE for a zero sd (a zero rate: any count is beyond)


class AttributeChart(ChartType):
    kind = "attribute"
    sizes = (1, 1)  # one sample per point; its size travels with the reading
    dispersion_name = ""
    defectives: ClassVar[bool] = True  # counts nonconforming parts (p, np: count <= n) or defects (c, u)
    uses_n: ClassVar[bool] = True  # c counts per one inspection unit and takes no n
    equal_n: ClassVar[bool] = False  # np: the count chart needs one sample size
    laney: ClassVar[bool] = False
    min_baseline = 2  # Laney's sigma_Z needs a moving range; the plain charts want more anyway

    @abstractmethod
    def value(self, sample: Sample) -> float:
        """The plotted statistic: fraction, count or count per unit."""

    @abstractmethod
    def center_sd(self, rate: float, n: float) -> tuple[float, float]:
        """Center and binomial/Poisson standard deviation of the plotted statistic for a sample of n."""

    def rate(self, samples: list[Sample]) -> float:
        """p-bar or u-bar: sum of counts / sum of n (c overrides: the mean count)."""
        total = math.fsum(s.n for s in samples)
        if not total > 0.0:
            raise EstimateError("no samples to estimate the center from", "no_values")
        return math.fsum(s.count for s in samples) / total

    def limits(self, rate: float, sigma_z: float, n: float) -> SampleLimits:
        center, sd = self.center_sd(rate, n)
        sd *= sigma_z
        low = center - 3.0 * sd
        inverse = 1.0 / sd if sd >= SMALLEST_NORMAL else HUGE_INVERSE
        return SampleLimits(center, sd, max(0.0, low), center + 3.0 * sd, low < 0.0, inverse)

    def sigma_z(self, rate: float, samples: list[Sample]) -> float:
        """Laney's sigma_Z from the phase-I samples; 1 for the plain charts."""
        if not self.laney:
            return 1.0
        if len(samples) < 2:
            raise EstimateError("a Laney chart needs at least 2 samples to estimate sigma_Z", "laney_too_few")
        z = [(self.value(s) - c) / sd if sd > 0.0 else 0.0
             for s, (c, sd) in ((s, self.center_sd(rate, s.n)) for s in samples)]
        return math.fsum(abs(b - a) for a, b in zip(z, z[1:], strict=False)) / (len(z) - 1) / constants.d2(2)

    def estimate(self, samples: list[Sample], rate: float | None = None) -> tuple[float, float]:
        """(rate, sigma_Z) from the phase-I samples; a given rate (a known standard) is kept."""
        if not samples:
            raise EstimateError("no samples to estimate the center from", "no_values")
        rate = self.rate(samples) if rate is None else rate
        return rate, self.sigma_z(rate, samples)

    def problem(self, sample: Sample) -> str | None:
        """Why a sample cannot be charted (the contract's refusals), or None."""
        if self.uses_n and not sample.n > 0:
            return f"n {sample.n:g} must be positive"
        if self.defectives and sample.count > sample.n:
            return f"count {sample.count} is larger than n {sample.n:g}"
        return None

    # ---- the ChartType interface, for a limits version's nominal numbers (one sample of n)

    def estimate_sigma(self, summaries: list[SubgroupSummary]) -> float:
        raise EstimateError("an attribute chart estimates its limits from samples (AttributeChart.estimate)",
                            "attribute_samples")

    def dispersion_limits(self, sigma: float, n: int) -> tuple[float, float, float] | None:
        return None

    def dispersion(self, subgroup_range: float, stdev: float) -> float | None:
        return None

    def point_limits(self, center: float, sigma: float, n: int) -> PointLimits:
        """For an attribute chart `center` is the rate and `sigma` sigma_Z."""
        limits = self.limits(center, sigma, n)
        return PointLimits(limits.inverse_sd, limits.ucl, limits.lcl, None, None, None)


class FractionDefective(AttributeChart):
    """p (and Laney p'): the fraction nonconforming, p-bar +- 3 sqrt(p-bar (1 - p-bar) / n_i)."""

    def value(self, sample: Sample) -> float:
        return sample.count / sample.n

    def center_sd(self, rate: float, n: float) -> tuple[float, float]:
        return rate, math.sqrt(max(0.0, rate * (1.0 - rate)) / n)


class DefectsPerUnit(AttributeChart):
    """u (and Laney u'): defects per unit, u-bar +- 3 sqrt(u-bar / n_i)."""

    defectives = False

    def value(self, sample: Sample) -> float:
        return sample.count / sample.n

    def center_sd(self, rate: float, n: float) -> tuple[float, float]:
        return rate, math.sqrt(max(0.0, rate) / n)
