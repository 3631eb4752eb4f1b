"""EWMA: exponentially weighted moving average of subgroup means, with exact (time-varying) limits.

z_0 = center, z_i = lambda xbar_i + (1 - lambda) z_{i-1}; limits
center +- L sigma_xbar sqrt(lambda / (2 - lambda) (1 - (1 - lambda)^(2i))), which open like a funnel
towards the asymptotic center +- L sigma_xbar sqrt(lambda / (2 - lambda)) (Montgomery, Introduction to
Statistical Quality Control, section 9.2; NIST/SEMATECH e-Handbook 6.3.2.4). lambda = 1 is the
Shewhart chart of the means with L-sigma limits.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.spc.charts.base import ChartParameters
from gateway.spc.charts.weighted import TimeWeighted, TrackedPoint, Tracker, standard_error


class EwmaTracker(Tracker):
    __slots__ = ("center", "lam", "keep", "width", "asymptote", "z", "decay", "decay_step")

    def __init__(self, center: float, sigma_xbar: float, lam: float, L: float):
        self.center = center
        self.lam = lam
        self.keep = 1.0 - lam
        self.asymptote = lam / (2.0 - lam)
        self.width = L * sigma_xbar
        self.z = center
        self.decay = 1.0  # (1 - lambda)^(2i), kept step by step instead of a power per point
        self.decay_step = self.keep * self.keep

    def push(self, mean: float) -> TrackedPoint:
        z = self.z = self.lam * mean + self.keep * self.z
        decay = self.decay = self.decay * self.decay_step
        half = self.width * math.sqrt(self.asymptote * (1.0 - decay))
        ucl, lcl = self.center + half, self.center - half
        return TrackedPoint(z, self.center, lcl, ucl, z > ucl or z < lcl)

    def to_state(self) -> list[Any]:
        return [self.z, self.decay]

    def restore(self, state: list[Any]) -> None:
        self.z, self.decay = state


class Ewma(TimeWeighted):
    name = "ewma"
    parameters = ('lam', 'L')
    beyond_name = "EWMA beyond its control limits"
    beyond_name_ko = "EWMA가 관리한계 밖"

    def start_tracker(self, center: float, sigma: float, n: int, parameters: ChartParameters) -> EwmaTracker:
        return EwmaTracker(center, standard_error(sigma, n), parameters.lam, parameters.L)

    def overall_limits(self, center: float, sigma: float, n: int,
                       parameters: ChartParameters) -> dict[str, float | None]:
        """The asymptotic limits (what the funnel opens to)."""
        half = parameters.L * standard_error(sigma, n) * math.sqrt(parameters.lam / (2.0 - parameters.lam))
        return {"lcl": center - half, "ucl": center + half}


CHART = Ewma()
