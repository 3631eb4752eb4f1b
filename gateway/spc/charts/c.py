"""c chart: defects per inspection unit of constant size, c-bar +- 3 sqrt(c-bar); see attribute.py."""

from __future__ import annotations

import math

from gateway.spc.charts.attribute import AttributeChart, Sample
from gateway.spc.charts.base import EstimateError


class Defects(AttributeChart):
    name = "c"
    defectives = False
    uses_n = False

    def value(self, sample: Sample) -> float:
        return float(sample.count)

    def center_sd(self, rate: float, n: float) -> tuple[float, float]:
        return rate, math.sqrt(max(0.0, rate))

    def rate(self, samples: list[Sample]) -> float:
        if not samples:
            raise EstimateError("no samples to estimate the center from", "no_values")
        return math.fsum(s.count for s in samples) / len(samples)


CHART = Defects()
