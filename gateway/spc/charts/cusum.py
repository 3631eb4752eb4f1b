"""Tabular CUSUM of subgroup means (Montgomery, Introduction to Statistical Quality Control, 9.1).

With K = k sigma_xbar and H = h sigma_xbar:
C+_i = max(0, xbar_i - (center + K) + C+_{i-1}), C-_i = max(0, (center - K) - xbar_i + C-_{i-1}),
C+_0 = C-_0 = 0, or H/2 with the fast initial response (FIR headstart, Lucas and Crosier 1982). A point
signals when C+ > H or C- > H; N+ and N- count the consecutive points with a non-zero sum, and at a signal
the new process mean is estimated as center + K + C+/N+ (or center - K - C-/N-). The sums are not reset
after a signal: they go on as Montgomery tabulates them, until the process is brought back.
"""

from __future__ import annotations

from typing import Any

from gateway.spc.charts.base import ChartParameters
from gateway.spc.charts.weighted import TimeWeighted, TrackedPoint, Tracker, standard_error


class CusumTracker(Tracker):
    __slots__ = ("center", "upper_reference", "lower_reference", "K", "H", "upper", "lower",
                 "run_upper", "run_lower")

    def __init__(self, center: float, sigma_xbar: float, k: float, h: float, fir: bool):
        self.center = center
        self.K = k * sigma_xbar
        self.H = h * sigma_xbar
        self.upper_reference = center + self.K
        self.lower_reference = center - self.K
        self.upper = self.lower = self.H / 2.0 if fir else 0.0
        self.run_upper = self.run_lower = 0

    def push(self, mean: float) -> TrackedPoint:
        upper = mean - self.upper_reference + self.upper
        if upper > 0.0:
            self.run_upper += 1
        else:
            upper = 0.0
            self.run_upper = 0
        lower = self.lower_reference - mean + self.lower
        if lower > 0.0:
            self.run_lower += 1
        else:
            lower = 0.0
            self.run_lower = 0
        self.upper, self.lower = upper, lower
        H = self.H
        shift = None
        if upper > H and upper >= lower:
            shift = self.center + self.K + upper / self.run_upper
        elif lower > H:
            shift = self.center - self.K - lower / self.run_lower
        return TrackedPoint(None, 0.0, -H, H, shift is not None, upper, lower, self.run_upper,
                            self.run_lower, shift)

    def to_state(self) -> list[Any]:
        return [self.upper, self.lower, self.run_upper, self.run_lower]

    def restore(self, state: list[Any]) -> None:
        self.upper, self.lower, self.run_upper, self.run_lower = state


class Cusum(TimeWeighted):
    name = "cusum"
    parameters = ('k', 'h', 'fir')
    beyond_name = "CUSUM beyond the decision interval"
    beyond_name_ko = "CUSUM이 결정구간 H 밖"

    def start_tracker(self, center: float, sigma: float, n: int, parameters: ChartParameters) -> CusumTracker:
        return CusumTracker(center, standard_error(sigma, n), parameters.k, parameters.h, parameters.fir)

    def overall_limits(self, center: float, sigma: float, n: int,
                       parameters: ChartParameters) -> dict[str, float | None]:
        """H and K in measurement units; lcl/ucl do not apply (the sums are compared with H)."""
        se = standard_error(sigma, n)
        return {"lcl": None, "ucl": None, "h": parameters.h * se, "k": parameters.k * se}


CHART = Cusum()
