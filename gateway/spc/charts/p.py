"""p chart (fraction nonconforming, limits per sample size) and Laney's p' chart; see attribute.py."""

from __future__ import annotations

from gateway.spc.charts.attribute import FractionDefective


class P(FractionDefective):
    name = "p"


class LaneyP(FractionDefective):
    name = "laney_p"
    laney = True


CHART = P()
LANEY = LaneyP()
