"""Every chart type the gateway draws, by the name a configuration gives it, and the default-chart rule.

A new chart type is one module beside this one and one line in CHARTS. The configuration's `chart:`
values and allowed subgroup sizes, the engine and `analyze --chart` all ask this registry.
"""

from __future__ import annotations

from gateway.spc.charts import c, cusum, ewma, imr, np, p, u, xbar_r, xbar_s
from gateway.spc.charts.base import ChartType

CHARTS: dict[str, ChartType] = {chart.name: chart for chart in (
    imr.CHART,
    xbar_r.CHART,
    xbar_s.CHART,
    ewma.CHART,
    cusum.CHART,
    p.CHART,
    np.CHART,
    c.CHART,
    u.CHART,
    p.LANEY,
    u.LANEY,
)}


class UnknownChart(ValueError):
    """A chart name no chart type in CHARTS has."""


def chart_named(name: str) -> ChartType:
    """The chart type of this name; UnknownChart lists the known ones."""
    try:
        return CHARTS[name]
    except KeyError:
        raise UnknownChart(f"unknown chart {name!r} (known: {', '.join(CHARTS)})") from None


DEFAULT_CHART_RULE = "imr for size 1, xbar_r up to 10, xbar_s above"  # default_chart in words (help texts)


def default_chart(subgroup_size: int) -> ChartType:
    """The chart for a subgroup size when none is named (configuration and `analyze` alike): individuals
    for 1, Xbar-R up to 10, Xbar-S above (the range uses less and less of a larger subgroup's data)."""
    if subgroup_size == 1:
        return imr.CHART
    return xbar_r.CHART if subgroup_size <= 10 else xbar_s.CHART
