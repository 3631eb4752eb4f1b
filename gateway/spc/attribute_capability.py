"""Capability of attribute data: p-bar with ppm and process Z (p, np, laney_p), u-bar with DPU (c, u, laney_u).

Counts have no spec limits to compare a spread with, so Cp and Cpk do not apply; what a quality
engineer reports instead is the rate itself (AIAG SPC manual, "Process capability for attributes
data"; Minitab "Binomial capability" and "Poisson capability"): the fraction defective p-bar, as parts
per million, and the process Z = Phi^-1(1 - p-bar), the standard normal quantile with p-bar beyond it;
for defects the mean defects per unit (DPU). `analyze` (shared/contract/cli.md) and the live engine
both call `attribute_capability`, so their numbers are the same.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any, NamedTuple

from gateway.spc.charts.attribute import AttributeChart, Sample
from gateway.spc.charts.base import EstimateError

_NORMAL = NormalDist()


class AttributeCapability(NamedTuple):
    """One capability analysis of attribute samples; the variables indices are there, always None, so a
    consumer of capability results reads both kinds alike."""

    defectives: bool  # p-bar, ppm, process Z; else u-bar, DPU
    rate: float | None  # p-bar or u-bar (c: the mean count per inspection unit)
    n: int  # samples analyzed
    inspected: float  # parts or inspection units in them
    reason: str | None = None
    cp: None = None
    cpk: None = None
    pp: None = None
    ppk: None = None
    cpm: None = None
    cpk_lower: None = None
    sigma_within: None = None
    sigma_overall: None = None

    def fields(self) -> dict[str, float | None]:
        """The keys of `analyze`'s `capability` for this kind of chart (cli.md, version 2)."""
        if self.defectives:
            rate = self.rate
            process_z = _NORMAL.inv_cdf(1.0 - rate) if rate is not None and 0.0 < rate < 1.0 else None
            return {"p_bar": rate, "ppm": None if rate is None else 1e6 * rate, "process_z": process_z}
        return {"u_bar": self.rate, "dpu": self.rate}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**self._asdict(), **self.fields()}


def attribute_capability(chart: AttributeChart, samples: list[Sample], rate: float | None = None
                         ) -> AttributeCapability:
    """Capability of these samples: their own rate, or `rate` when it is a known standard."""
    inspected = sum(s.n for s in samples)
    if rate is None:
        try:
            rate = chart.rate(samples)
        except EstimateError as exc:
            return AttributeCapability(chart.defectives, None, len(samples), inspected, str(exc))
    return AttributeCapability(chart.defectives, rate, len(samples), inspected)
