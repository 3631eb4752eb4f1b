"""What EWMA and CUSUM share: a statistic carried from one subgroup mean to the next (a Tracker), sigma
estimated as the Shewhart chart for the subgroup size would, and only the beyond-limits test.

Their points are not independent, so the run rules do not apply (Minitab "Using tests for special
causes": time-weighted charts use only the beyond-limits test). Both work on subgroup means with
sigma_xbar = sigma / sqrt(n). The live engine may close a subgroup short (by time); its mean is then
rescaled to the nominal size, center + (mean - center) sqrt(n_i / n), so it carries the same weight of
evidence per standard error and the limits, which assume one n, still hold.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar, NamedTuple

from gateway.spc.charts import imr, xbar_r, xbar_s
from gateway.spc.charts.base import ChartParameters, ChartType, SubgroupSummary


class TrackedPoint(NamedTuple):
    """One point of a time-weighted chart."""

    value: float | None  # the plotted statistic (EWMA z_i); None for CUSUM, which plots two sums
    center: float  # center line of what is plotted (the process mean; 0 for the CUSUM sums)
    lcl: float  # the limits that apply to this point (EWMA: they widen with i; CUSUM: -H and +H)
    ucl: float
    beyond: bool  # beyond a limit (a point exactly on one is inside)
    upper: float | None = None  # CUSUM C+ and C- (both >= 0)
    lower: float | None = None
    run_upper: int | None = None  # consecutive points with C+ > 0, and with C- > 0
    run_lower: int | None = None
    shift: float | None = None  # CUSUM beyond H: the estimated new process mean (Montgomery 9.1.2)


class Tracker:
    """The running statistic of one time-weighted chart under one set of limits."""

    @abstractmethod
    def push(self, mean: float) -> TrackedPoint:
        """The next subgroup mean (already at the nominal subgroup size)."""

    @abstractmethod
    def to_state(self) -> list[Any]:
        """JSON-able state, so a restarted engine continues the same statistic."""

    @abstractmethod
    def restore(self, state: list[Any]) -> None:
        """Inverse of to_state."""


class TimeWeighted(ChartType):
    """EWMA or CUSUM over subgroup means of 1 to 25 values."""

    sizes = (1, 25)
    dispersion_name = ""  # no dispersion chart is drawn
    min_baseline = 2  # with one value per subgroup, sigma comes from moving ranges
    kind = "time_weighted"
    beyond_name: ClassVar[str]  # the violation's name (rule 1 of these charts)
    beyond_name_ko: ClassVar[str]

    @staticmethod
    def _estimator(summaries: list[SubgroupSummary]) -> ChartType:
        """The Shewhart chart whose sigma estimator applies: I-MR for single values, else Xbar-R up to
        10 values a subgroup and Xbar-S above (registry.default_chart's rule)."""
        largest = max((s.n for s in summaries), default=1)
        if largest == 1:
            return imr.CHART
        return xbar_r.CHART if largest <= 10 else xbar_s.CHART

    def estimate_sigma(self, summaries: list[SubgroupSummary]) -> float:
        return self._estimator(summaries).estimate_sigma(summaries)

    def sigma_df(self, summaries: list[SubgroupSummary]) -> float:
        return self._estimator(summaries).sigma_df(summaries)

    def individual_values(self, summaries: list[SubgroupSummary]) -> bool:
        return all(s.n == 1 for s in summaries)

    def dispersion_limits(self, sigma: float, n: int) -> tuple[float, float, float] | None:
        return None

    def dispersion(self, subgroup_range: float, stdev: float) -> float | None:
        return None

    @abstractmethod
    def start_tracker(self, center: float, sigma: float, n: int, parameters: ChartParameters) -> Tracker:
        """A fresh statistic for limits (center, sigma) and nominal subgroup size n."""

    @abstractmethod
    def overall_limits(self, center: float, sigma: float, n: int,
                       parameters: ChartParameters) -> dict[str, float | None]:
        """The chart's limits in a few numbers, for `analyze`'s `limits` (beside center and sigma)."""


def standard_error(sigma: float, n: int) -> float:
    """sigma_xbar: the standard deviation of a mean of n values."""
    return sigma / math.sqrt(n)
