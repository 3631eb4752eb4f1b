"""Whether a characteristic's address block fits its chart: counts for attribute charts, values for the rest.

A p, np, c or u chart charts a count in a sample of n; the other charts a measured value. Each source
protocol says through its kind (SourceKind.counts) what a parsed address block gives: a count and a
sample size (an MQTT `count`/`n` path, a Modbus or OPC UA counter pair) or a value. The config checks
the two against each other here, with the place of the key that does not fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from yaml.nodes import Node

from gateway.config.kinds import SourceKind, and_list
from gateway.config.loader import Reader, one_of
from gateway.spc.charts.registry import CHARTS

ATTRIBUTE = "attribute"  # ChartType.kind of the charts of counts


def attribute_charts(join: Callable[[Iterable[str]], str] = and_list) -> str:
    """The names of the charts of counts, joined for a message."""
    return join([name for name, chart in CHARTS.items() if chart.kind == ATTRIBUTE])


def counts_fit(r: Reader, source_kind: SourceKind | None, address: object, chart: str, path: str,
               items: dict[str, Node]) -> bool:
    """Report the key that does not fit the chart (FILE:LINE:COL); True when address and chart agree."""
    if source_kind is None:
        return True  # an unknown source is reported where it is named
    block = f"{path}.{source_kind.type}"
    counts = source_kind.counts(address)
    chart_type = CHARTS[chart]
    if chart_type.kind != ATTRIBUTE:
        if counts:
            key = next(iter(counts.values()))
            r.at(f"{block}.{key}", f"{key} gives count data, for the attribute charts ({attribute_charts()}); "
                 f"chart {chart} charts measured values", f"a value address, or chart: {attribute_charts(one_of)}")
            return False
        return True
    if not counts:
        r.at(f"{path}.chart", f"chart {chart} charts counts, but the {source_kind.type} block reads a measured "
             "value", f"{source_kind.type}: {source_kind.counts_example}" if source_kind.counts_example
             else f"{source_kind.label} sources give no counts")
        return False
    if getattr(chart_type, "uses_n", False) and "n" not in counts:
        r.at(f"{block}.{counts['count']}", f"chart {chart} needs the sample size n with each count",
             f"{source_kind.type}: {source_kind.counts_example}")
        return False
    if "sampling" in items:
        r.at(f"{path}.sampling", "a count sample is not sampled like a measured value: "
             + ("sample_every or every in the address block says when a sample ends" if source_kind.polled
                else "each message is one sample"), "leave sampling out")
        return False
    return True
