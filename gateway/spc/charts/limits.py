"""Control-limits versions: made from a center and a sigma, or learned from subgroups (phase I).

The numbers of a version are for the nominal subgroup size n; the engine works out every other size
with ChartType.point_limits.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from gateway.spc.charts.base import ChartType, EstimateError, SubgroupSummary
from gateway.spc.numeric import limits_problem


class LimitsVersion(NamedTuple):
    """One stored set of control limits; the numbers are for the nominal subgroup size n."""

    chart: str  # the chart type's name
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


def make_limits(chart: ChartType, n: int, center: float, sigma: float, *, source: str,
                effective_from: float, from_subgroup: int | None = None,
                to_subgroup: int | None = None) -> LimitsVersion:
    """A limits version for nominal subgroup size n from a center and a sigma."""
    p = chart.point_limits(center, sigma, n)
    return LimitsVersion(chart.name, n, center, sigma, p.ucl, p.lcl, p.dispersion_center, p.dispersion_ucl,
                         p.dispersion_lcl, source, from_subgroup, to_subgroup, effective_from)


def estimate_center(summaries: list[SubgroupSummary]) -> float:
    """Grand mean of all individual values (the n-weighted mean of subgroup means)."""
    total = sum(s.n for s in summaries)
    if total == 0:
        raise EstimateError("no subgroups to estimate the center from", "no_values")
    return math.fsum(s.n * s.mean for s in summaries) / total


def estimate_limits(chart: ChartType, n: int, summaries: list[SubgroupSummary], *, source: str,
                    effective_from: float, from_subgroup: int | None = None,
                    to_subgroup: int | None = None) -> LimitsVersion:
    """Limits learned from subgroups (phase I), for nominal subgroup size n.

    EstimateError when the data give limits that are not finite: such limits are never put in force.
    """
    try:
        center, sigma = estimate_center(summaries), chart.estimate_sigma(summaries)
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
