"""Which numbers the SPC statistics can work with, and which limits may be put in force.

Sums of squares (Welford, Chan's pooling, I-MR capability) square deviations and multiply them by
counts. A value of 1e308 overflows them to infinity, its difference with another to NaN, and the
limits learned from such data are NaN or infinite: every z is then NaN, nothing is ever out of
control, and the chart is frozen so. No gauge measures anything near 1e100 in any unit; such a
number is a decoding fault (a wrong byte order, a "no value" sentinel). With |x| <= 1e100 the
squares stay below 1e201 and no sum over any number of values the gateway keeps can overflow.

`bad_reading` is the one guard: the pipeline refuses such readings with it, and `analyze` rows.
"""

from __future__ import annotations

import math
import sys
from typing import NamedTuple

MAX_MAGNITUDE = 1e100  # readings beyond +-this are rejected as bad readings
SMALLEST_NORMAL = sys.float_info.min  # ~2.2e-308; below it a float is subnormal and 1/x overflows


class BadReading(NamedTuple):
    """Why a reading cannot be charted."""

    finite: bool  # False: NaN or an infinity; True: a finite number beyond +-MAX_MAGNITUDE
    what: str  # "not a finite number" or "beyond +-1e+100"
    reason: str  # the whole sentence, naming the value


def bad_reading(value: float) -> BadReading | None:
    """None when the reading can be charted, else why not."""
    # one chained comparison for the common case (the pipeline calls this for every reading); it is
    # also false for NaN, and the reason is worked out only then
    if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
        return None
    if not math.isfinite(value):
        return BadReading(False, "not a finite number", f"{value!r} is not a finite number")
    return BadReading(True, f"beyond +-{MAX_MAGNITUDE:g}",
                      f"{value!r} is beyond +-{MAX_MAGNITUDE:g} (no gauge measures this: "
                      "a decoding fault or a sentinel value)")


def reading_problem(value: float) -> str | None:
    """Why a reading (or a number to compare readings with) cannot be charted, or None when it can."""
    bad = bad_reading(value)
    return None if bad is None else bad.reason


def limits_problem(center: float, sigma: float, numbers: tuple[float | None, ...] = ()) -> str | None:
    """Why control limits from this center and sigma must not be put in force, or None when they may.

    `numbers` are further numbers derived from them (UCL, LCL, dispersion limits; None = not drawn):
    all of them must be finite, or the charts would compare every point against NaN or infinity.
    """
    if not math.isfinite(center) or not math.isfinite(sigma):
        return f"the limits are not finite numbers (center {center!r}, sigma {sigma!r})"
    if sigma < 0.0:
        return f"sigma {sigma!r} is negative"
    if any(x is not None and not math.isfinite(x) for x in numbers):
        return f"the control limits overflow (center {center!r}, sigma {sigma!r})"
    return None
