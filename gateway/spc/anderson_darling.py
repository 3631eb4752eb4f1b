"""The Anderson-Darling statistic of a sample against a fitted distribution, and its p-values.

A² = -n - (1/n) Σ_{i=1..n} (2i - 1) [ln F(x_(i)) + ln(1 - F(x_(n+1-i)))]  (x_(i) sorted ascending),
computed from ln F and ln(1 - F) so that the far tails do not round to ln 0.

p-values, parameters estimated from the same sample (R. B. D'Agostino and M. A. Stephens, *Goodness-of-Fit
Techniques*, Marcel Dekker 1986, ch. 4; NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.5.14):

- normal (mean and s estimated): A*² = A² (1 + 0.75/n + 2.25/n²) and the four exponential pieces of
  D'Agostino and Stephens' Table 4.9 (the ones Minitab and R nortest use);
- extreme value / Weibull (both parameters estimated): A*² = A² (1 + 0.2/√n) against the upper-tail
  points of their Table 4.17 (0.474 at 0.25, 0.637 at 0.10, 0.757 at 0.05, 0.877 at 0.025, 1.038 at 0.01),
  ln p interpolated linearly in A*². Beyond 1.038 the last piece is extended (its slope, 5.7 per unit,
  is the one of the normal formula's tail); below 0.474 the table says only p > 0.25, and 0.25 is
  reported, as Minitab reports "> 0.250".
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

# D'Agostino & Stephens (1986) Table 4.17, extreme value distribution, both parameters estimated
WEIBULL_TABLE = ((0.474, 0.25), (0.637, 0.10), (0.757, 0.05), (0.877, 0.025), (1.038, 0.01))


_WEIGHTS: dict[int, Array] = {}  # 2i - 1 per sample size: the live engine tests windows of one size


def statistic(log_cdf: Array, log_sf: Array) -> float:
    """A² from ln F and ln(1 - F) of the sorted sample (ascending)."""
    n = len(log_cdf)
    weights = _WEIGHTS.get(n)
    if weights is None:
        if len(_WEIGHTS) > 64:
            _WEIGHTS.clear()
        weights = _WEIGHTS[n] = 2.0 * np.arange(1, n + 1, dtype=float) - 1.0
    return float(-n - np.dot(weights, log_cdf + log_sf[::-1]) / n)


def statistics(log_cdf: Array, log_sf: Array) -> Array:
    """A² of each row of a matrix of sorted samples (the bootstrap's many samples at once)."""
    n = log_cdf.shape[1]
    weights = 2.0 * np.arange(1, n + 1, dtype=float) - 1.0
    result: Array = -n - np.sum(weights * (log_cdf + log_sf[:, ::-1]), axis=1) / n
    return result


def normal_p_value(a2: float, n: int) -> float:
    """p-value of the normality test with mean and standard deviation estimated (Table 4.9)."""
    a = a2 * (1.0 + 0.75 / n + 2.25 / (n * n))
    if a >= 0.6:
        p = math.exp(1.2937 - 5.709 * a + 0.0186 * a * a)
    elif a >= 0.34:
        p = math.exp(0.9177 - 4.279 * a - 1.38 * a * a)
    elif a >= 0.2:
        p = 1.0 - math.exp(-8.318 + 42.796 * a - 59.938 * a * a)
    else:
        p = 1.0 - math.exp(-13.436 + 101.14 * a - 223.73 * a * a)
    return min(1.0, max(0.0, p))


def weibull_p_value(a2: float, n: int) -> float:
    """p-value of the Weibull (extreme value) fit with both parameters estimated (Table 4.17)."""
    a = a2 * (1.0 + 0.2 / math.sqrt(n))
    first = WEIBULL_TABLE[0]
    if a <= first[0]:
        return first[1]  # the table says only p > 0.25
    # the piece a falls in, or beyond the last one: the last piece's line
    pieces = list(zip(WEIBULL_TABLE, WEIBULL_TABLE[1:], strict=False))
    (a_low, p_low), (a_high, p_high) = next((piece for piece in pieces if a <= piece[1][0]), pieces[-1])
    slope = (math.log(p_high) - math.log(p_low)) / (a_high - a_low)
    return min(1.0, math.exp(math.log(p_low) + slope * (a - a_low)))
