"""np chart: the number nonconforming in samples of one size n, n p-bar +- 3 sqrt(n p-bar (1 - p-bar));
see attribute.py. The center is p-bar (sum count / sum n) like the p chart's."""

from __future__ import annotations

import math

from gateway.spc.charts.attribute import AttributeChart, Sample


class NumberDefective(AttributeChart):
    name = "np"
    equal_n = True

    def value(self, sample: Sample) -> float:
        return float(sample.count)

    def center_sd(self, rate: float, n: float) -> tuple[float, float]:
        return n * rate, math.sqrt(max(0.0, n * rate * (1.0 - rate)))


CHART = NumberDefective()
