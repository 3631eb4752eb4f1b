"""u chart (defects per unit, limits per number of units) and Laney's u' chart; see attribute.py."""

from __future__ import annotations

from gateway.spc.charts.attribute import DefectsPerUnit


class U(DefectsPerUnit):
    name = "u"


class LaneyU(DefectsPerUnit):
    name = "laney_u"
    laney = True


CHART = U()
LANEY = LaneyU()
