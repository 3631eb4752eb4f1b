"""Xbar-R: subgroup means and ranges, for subgroups of 2 to 10.

- Sigma: Rbar / d2(n); with unequal n the weighted form sum(f_i R_i/d2(n_i)) / sum(f_i),
  f_i = d2^2/d3^2.
- R chart: center d2(n_i) sigma, limits (d2 +- 3 d3) sigma, LCL floored at 0 (= D3 Rbar, D4 Rbar).
"""

from __future__ import annotations

import math

from gateway.spc import constants
from gateway.spc.charts.base import ChartType, SubgroupSummary, range_limits, within_subgroups


class XbarR(ChartType):
    name = "xbar_r"
    sizes = (2, 10)  # above 10 the range wastes too much of the data: Xbar-S
    dispersion_name = "r"

    def estimate_sigma(self, summaries: list[SubgroupSummary]) -> float:
        usable = within_subgroups(summaries)
        sizes = {s.n for s in usable}
        if len(sizes) == 1:
            (n,) = sizes
            return math.fsum(s.range for s in usable) / len(usable) / constants.d2(n)
        weights = [(constants.d2(s.n) / constants.d3(s.n)) ** 2 for s in usable]
        terms = [w * s.range / constants.d2(s.n) for w, s in zip(weights, usable, strict=True)]
        return math.fsum(terms) / math.fsum(weights)

    def sigma_df(self, summaries: list[SubgroupSummary]) -> float:
        """Minitab's approximation for Rbar: 0.9 k (n - 1), n the average size of the subgroups used."""
        usable = within_subgroups(summaries)
        n = sum(s.n for s in usable) / len(usable)
        return 0.9 * len(usable) * (n - 1.0)

    def dispersion_limits(self, sigma: float, n: int) -> tuple[float, float, float] | None:
        return None if n < 2 else range_limits(sigma, n)

    def dispersion(self, subgroup_range: float, stdev: float) -> float:
        return subgroup_range


CHART = XbarR()
