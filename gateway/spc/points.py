"""What the engine gives back for one reading: the charted point (SubgroupPoint) and the verdicts
(IngestResult)."""

from __future__ import annotations

from typing import NamedTuple

from gateway.spc.attribute_capability import AttributeCapability
from gateway.spc.capability import CapabilityResult
from gateway.spc.charts.limits import LimitsVersion
from gateway.spc.rules import Violation

NO_VIOLATIONS: tuple[Violation, ...] = ()


class SubgroupPoint(NamedTuple):
    """A charted point: a completed subgroup (n > 1) or an individual (I-MR).

    `range` is the subgroup range, or the moving range on an I-MR chart (None for the first point);
    `dispersion` is the plotted dispersion statistic (range, standard deviation or moving range).
    Limits and z are None while the baseline is still being collected.
    """

    subgroup_number: int
    n: int
    mean: float
    range: float | None
    stdev: float | None
    center: float | None
    ucl: float | None
    lcl: float | None
    violations: tuple[int, ...]  # rule numbers flagging the location point
    dispersion: float | None
    dispersion_center: float | None
    dispersion_ucl: float | None
    dispersion_lcl: float | None
    dispersion_violations: tuple[int, ...]  # (1,) when the dispersion point is beyond its limits
    z: float | None
    is_within_control: bool | None
    at: float
    # time-weighted charts: EWMA's z_i (None: the chart plots `mean`, or CUSUM its two sums), CUSUM's
    # C+ and C- with their runs N+ and N-, and at a CUSUM signal the estimated new process mean
    plotted: float | None = None
    cusum_upper: float | None = None
    cusum_lower: float | None = None
    run_upper: int | None = None
    run_lower: int | None = None
    shift: float | None = None
    sample_size: float | None = None  # attribute charts: the sample's n (`n` is 1, one sample a point)


class IngestResult(NamedTuple):
    """What one measurement produced. `is_within_spec` is None when the characteristic has no spec."""

    sample_number: int
    subgroup_number: int
    is_within_spec: bool | None
    is_within_control: bool | None
    subgroup: SubgroupPoint | None
    violations: list[Violation] | tuple[Violation, ...]
    new_limits: LimitsVersion | None
    capability: CapabilityResult | AttributeCapability | None  # the latter for p, np, c, u and Laney's
