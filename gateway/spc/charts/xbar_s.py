"""Xbar-S: subgroup means and standard deviations, for subgroups of 2 to 25.

- Sigma: Sbar / c4(n); with unequal n sum(h_i s_i/c4(n_i)) / sum(h_i), h_i = c4^2 / (1 - c4^2).
- S chart: center c4(n_i) sigma, limits (c4 +- 3 sqrt(1 - c4^2)) sigma, floored at 0 (= B3 Sbar, B4 Sbar).
"""

from __future__ import annotations

import math

from gateway.spc import constants
from gateway.spc.charts.base import ChartType, SubgroupSummary, within_subgroups

# Minitab's adjustment f_n of the degrees of freedom of Sbar/c4, by subgroup size (n: f_n, from n on)
_SBAR_DF_FACTOR = ((2, 0.88), (3, 0.92), (4, 0.94), (5, 0.95), (6, 0.96), (8, 0.97), (10, 0.98), (18, 0.99),
                   (65, 1.0))


def sbar_df_factor(n: int) -> float:
    """f_n of Minitab's table ("Potential capability: methods and formulas", Sbar)."""
    return next(f for first, f in reversed(_SBAR_DF_FACTOR) if n >= first) if n >= 2 else _SBAR_DF_FACTOR[0][1]


class XbarS(ChartType):
    name = "xbar_s"
    sizes = (2, 25)
    dispersion_name = "s"

    def estimate_sigma(self, summaries: list[SubgroupSummary]) -> float:
        usable = within_subgroups(summaries)
        sizes = {s.n for s in usable}
        # SubgroupSummary.stdev, never None here (n >= 2)
        stdevs = [math.sqrt(s.m2 / (s.n - 1)) for s in usable]
        if len(sizes) == 1:
            (n,) = sizes
            return math.fsum(stdevs) / len(usable) / constants.c4(n)
        weights = [constants.c4(s.n) ** 2 / (1.0 - constants.c4(s.n) ** 2) for s in usable]
        terms = [w * sd / constants.c4(s.n) for w, sd, s in zip(weights, stdevs, usable, strict=True)]
        return math.fsum(terms) / math.fsum(weights)

    def sigma_df(self, summaries: list[SubgroupSummary]) -> float:
        """Minitab's approximation for Sbar: f_n k (n - 1), n the average size of the subgroups used."""
        usable = within_subgroups(summaries)
        n = sum(s.n for s in usable) / len(usable)
        return sbar_df_factor(round(n)) * len(usable) * (n - 1.0)

    def dispersion_limits(self, sigma: float, n: int) -> tuple[float, float, float] | None:
        if n < 2:
            return None
        c = constants.c4(n)
        center, spread = c * sigma, 3.0 * math.sqrt(1.0 - c * c) * sigma
        return center, center + spread, max(0.0, center - spread)

    def dispersion(self, subgroup_range: float, stdev: float) -> float:
        return stdev


CHART = XbarS()
