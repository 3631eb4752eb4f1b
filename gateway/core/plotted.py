"""What a chart plots for one point, beyond the mean and the limits every chart has.

One rule for the live `subgroup` event (gateway.pipeline) and the `subgroups` history of
`get_measurements` (gateway.store.reads), so that a screen drawing from history draws what it drew
live. The keys are those of `analyze`'s JSON points (docs/cli.md): `value` is the plotted statistic
(the mean; EWMA's z_i; null for CUSUM, which plots two sums), CUSUM adds `cusum_upper`, `cusum_lower`,
their runs and `h` (the decision interval H in the data's units: the point's `ucl`, with `lcl` = -H),
and an attribute chart adds `count` and `n` (the sample's size, as analyze's `n`).
"""

from __future__ import annotations

from typing import Any

from gateway.core.model import finite_or_none


def plotted_fields(*, mean: float | None, ucl: float | None, plotted: float | None = None,
                   cusum_upper: float | None = None, cusum_lower: float | None = None,
                   run_upper: int | None = None, run_lower: int | None = None, count: int | None = None,
                   sample_size: float | None = None) -> dict[str, Any]:
    """The chart's own fields of one point; a Shewhart point gets `value` (= mean) alone."""
    if cusum_upper is not None:
        fields: dict[str, Any] = {
            "value": None, "cusum_upper": finite_or_none(cusum_upper),
            "cusum_lower": finite_or_none(cusum_lower), "run_upper": run_upper, "run_lower": run_lower,
            "h": finite_or_none(ucl)}
    else:
        fields = {"value": finite_or_none(mean if plotted is None else plotted)}
    if count is not None:
        fields["count"] = count
        fields["n"] = None if sample_size is None else whole_or_float(sample_size)
    return fields


def whole_or_float(x: float) -> int | float:
    """A sample size as the operator counts it: 50 parts, or 2.5 inspection units."""
    return int(x) if float(x).is_integer() else float(x)
