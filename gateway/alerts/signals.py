"""The words of an EWMA or CUSUM signal, for the OUT_OF_CONTROL alert and the `violation` event.

A Shewhart point beyond a limit speaks for itself ("10.6 > UCL 10.5"); an EWMA or a CUSUM signal does
not: its plotted number is a weighted average or a sum, and what an operator needs to hear is what it
means. An EWMA beyond a limit is a slow drift of the mean. A CUSUM beyond H is a shift whose size and
start the chart estimates (Montgomery, Introduction to Statistical Quality Control, 9.1.2): the new mean
is center + K + C+/N+, so the shift is k + C+/(N+ sigma_xbar) standard errors of the mean, which began
N+ points ago. It is worded in standard deviations of single parts (sigma = sigma_xbar sqrt(n)), the
sigma the operator knows from the limits and the spec. Everything is read from the charted point and
the characteristic's parameters (sigma_xbar = H / h), so nothing else has to travel with the point.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from gateway.core.texts import number, texts


class Signal(NamedTuple):
    """What a time-weighted point's signal is: the alert's variant, the words' values, and the plotted
    number with the limit it crossed."""

    variant: str  # ewma_upper | ewma_lower | cusum_upper | cusum_lower: alert.OUT_OF_CONTROL.<variant>
    values: dict[str, str]
    plotted: float
    limit: float


def signal(characteristic: Any, point: Any) -> Signal | None:
    """The signal of an EWMA or CUSUM point beyond its limits; None for any other point."""
    common = {"characteristic": characteristic.name, "unit": characteristic.unit}
    # getattr: a point of an older kind (or a test's stand-in) has no time-weighted fields
    if getattr(point, "cusum_upper", None) is not None and getattr(point, "cusum_lower", None) is not None:
        H = point.ucl
        upper = point.cusum_upper > H and point.cusum_upper >= point.cusum_lower  # as the chart decides
        total, run = (point.cusum_upper, point.run_upper) if upper else (point.cusum_lower, point.run_lower)
        if not total > H or not run:
            return None
        parameters, n = characteristic.parameters, characteristic.subgroup_size
        # k + C/(N sigma_xbar) standard errors, sigma_xbar = H / h; in sigma of single parts / sqrt(n)
        shift = (parameters.k + parameters.h * total / (H * run)) / math.sqrt(n) if H > 0 else math.inf
        shift = shift if upper else -shift
        values = {**common, "shift": f"{shift:+.1f}" if math.isfinite(shift) else "?", "run": str(run),
                  "mean": number(point.shift), "value": number(total), "limit": number(H)}
        return Signal("cusum_upper" if upper else "cusum_lower", values, total, H)
    if getattr(point, "plotted", None) is None or point.ucl is None or point.lcl is None:
        return None
    z = point.plotted
    if z > point.ucl:
        return Signal("ewma_upper", {**common, "value": number(z), "limit": number(point.ucl)}, z, point.ucl)
    if z < point.lcl:
        return Signal("ewma_lower", {**common, "value": number(z), "limit": number(point.lcl)}, z, point.lcl)
    return None


def signal_texts(found: Signal) -> dict[str, dict[str, str]]:
    """The signal's sentence in every language, shaped as an alert's `texts`: {language: {"message"}}."""
    return {lang: {"message": message}
            for lang, message in texts(f"alert.OUT_OF_CONTROL.{found.variant}", **found.values).items()}
