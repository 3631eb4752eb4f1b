"""I-MR: individual values and their moving range, for one value per part (subgroup size 1).

- Sigma: MRbar / d2(2), the mean moving range of consecutive values.
- MR chart: the range of two consecutive individuals: center d2(2) sigma, UCL (d2(2) + 3 d3(2)) sigma
  = 3.267 MRbar, LCL 0.
"""

from __future__ import annotations

import math

from gateway.spc import constants
from gateway.spc.charts.base import ChartType, EstimateError, SubgroupSummary, range_limits


class IndividualsMovingRange(ChartType):
    name = "imr"
    sizes = (1, 1)
    dispersion_name = "mr"
    individuals = True
    min_baseline = 2  # one value has no moving range

    def estimate_sigma(self, summaries: list[SubgroupSummary]) -> float:
        if len(summaries) < 2:
            raise EstimateError("an I-MR chart needs at least 2 individual values to estimate sigma", "imr_too_few")
        ranges = [abs(b.mean - a.mean) for a, b in zip(summaries, summaries[1:], strict=False)]
        return math.fsum(ranges) / len(ranges) / constants.d2(2)

    def sigma_df(self, summaries: list[SubgroupSummary]) -> float:
        """Minitab's for the average moving range of span 2: k - 2 + 1, k the number of values."""
        return max(1.0, len(summaries) - 1.0)

    def dispersion_limits(self, sigma: float, n: int) -> tuple[float, float, float] | None:
        return range_limits(sigma, 2)  # the moving range of two, whatever n

    def dispersion(self, subgroup_range: float, stdev: float) -> float:
        raise TypeError("an individuals chart plots the moving range; the engine computes it")


CHART = IndividualsMovingRange()
