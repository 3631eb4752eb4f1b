"""Control chart constants d2, d3, c4 and the factors derived from them, computed rather than typed in.

d2(n) and d3(n) are the mean and standard deviation of the range W of n independent standard normal
values (Tippett 1925; Montgomery, *Introduction to Statistical Quality Control*, Appendix VI):

    P(W <= w) = n * integral phi(x) * (Phi(x + w) - Phi(x))**(n - 1) dx
    d2 = integral_0^inf P(W > w) dw,    E[W^2] = 2 * integral_0^inf w * P(W > w) dw,
    d3 = sqrt(E[W^2] - d2**2)

c4(n) = sqrt(2 / (n - 1)) * Gamma(n / 2) / Gamma((n - 1) / 2)  (the bias of the sample standard deviation).

The integrals are evaluated once per n (cached) with the trapezoid rule in x (spectrally accurate for a
smooth integrand on the whole line) and Simpson's rule in w; the results agree with the published
six-decimal tables. Derived factors follow ASTM E2587 / Montgomery: A2 = 3/(d2 sqrt n),
A3 = 3/(c4 sqrt n), D3 = max(0, 1 - 3 d3/d2), D4 = 1 + 3 d3/d2, B3 = max(0, 1 - 3 sqrt(1 - c4^2)/c4),
B4 = 1 + 3 sqrt(1 - c4^2)/c4.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

MAX_N = 100  # largest subgroup size the constants are offered for

_STEP = 0.02  # grid step (in standard deviations) of the numerical integration
_X_SPAN = 9.0  # integrate x over [-9, 9]: the normal density beyond is below 1e-17
_W_SPAN = 14.0  # ranges wider than 14 sigma have probability below 1e-20 for n <= 100


def _check(n: int) -> None:
    if not 2 <= n <= MAX_N:
        raise ValueError(f"subgroup size {n} is outside 2..{MAX_N}")


@cache
def _range_moments(n: int) -> tuple[float, float]:
    """E[W] and E[W^2] for the range of n standard normal values."""
    _check(n)
    x = np.arange(-_X_SPAN, _X_SPAN + _STEP / 2, _STEP)
    k_max = int(round(_W_SPAN / _STEP))
    # Phi on a grid that reaches x + w for every w = k * step: shifting the index is adding w
    grid = np.arange(-_X_SPAN, _X_SPAN + _W_SPAN + _STEP / 2, _STEP)
    cdf = np.array([0.5 * math.erfc(-g / math.sqrt(2.0)) for g in grid])
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    m = len(x)
    k = np.arange(k_max + 1)
    # diff[k, i] = Phi(x_i + k*step) - Phi(x_i)
    index = k[:, None] + np.arange(m)[None, :]
    diff = cdf[index] - cdf[None, :m]
    cdf_w = n * (pdf[None, :] * diff ** (n - 1)).sum(axis=1) * _STEP  # P(W <= w_k)
    survival = np.clip(1.0 - cdf_w, 0.0, 1.0)
    w = k * _STEP
    weights = np.ones(k_max + 1)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    weights *= _STEP / 3.0  # Simpson (k_max is even)
    mean = float((weights * survival).sum())
    second = float(2.0 * (weights * w * survival).sum())
    return mean, second


def d2(n: int) -> float:
    """Mean of the range of n standard normal values."""
    return _range_moments(n)[0]


def d3(n: int) -> float:
    """Standard deviation of the range of n standard normal values."""
    mean, second = _range_moments(n)
    return math.sqrt(second - mean * mean)


def c4(n: int) -> float:
    """E[s]/sigma for the sample standard deviation of n normal values."""
    _check(n)
    return math.sqrt(2.0 / (n - 1)) * math.exp(math.lgamma(n / 2.0) - math.lgamma((n - 1) / 2.0))


def a2(n: int) -> float:
    """Xbar chart factor from the average range: limits = center +- A2 * Rbar."""
    return 3.0 / (d2(n) * math.sqrt(n))


def a3(n: int) -> float:
    """Xbar chart factor from the average standard deviation: limits = center +- A3 * Sbar."""
    return 3.0 / (c4(n) * math.sqrt(n))


def d3_factor(n: int) -> float:
    """D3: R chart LCL = D3 * Rbar (zero for n <= 6)."""
    return max(0.0, 1.0 - 3.0 * d3(n) / d2(n))


def d4_factor(n: int) -> float:
    """D4: R chart UCL = D4 * Rbar."""
    return 1.0 + 3.0 * d3(n) / d2(n)


def b3(n: int) -> float:
    """B3: S chart LCL = B3 * Sbar (zero for n <= 5)."""
    c = c4(n)
    return max(0.0, 1.0 - 3.0 * math.sqrt(1.0 - c * c) / c)


def b4(n: int) -> float:
    """B4: S chart UCL = B4 * Sbar."""
    c = c4(n)
    return 1.0 + 3.0 * math.sqrt(1.0 - c * c) / c


def table(sizes: range = range(2, 26)) -> list[dict[str, float]]:
    """The factor table as rows (n, d2, d3, c4, A2, A3, D3, D4, B3, B4), for documentation and tests."""
    return [
        {"n": n, "d2": d2(n), "d3": d3(n), "c4": c4(n), "A2": a2(n), "A3": a3(n),
         "D3": d3_factor(n), "D4": d4_factor(n), "B3": b3(n), "B4": b4(n)}
        for n in sizes
    ]
