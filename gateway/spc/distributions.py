"""Distributions a characteristic's capability may be computed on: fits, tails, quantiles and the
Anderson-Darling test of each fit (docs/spc.md, "Non-normal capability").

- normal: mean and the sample standard deviation s (n - 1), as the normal capability uses.
- lognormal (2 parameters): maximum likelihood on ln x: mu = mean of ln x, sigma = sqrt(Σ (ln x - mu)² / n).
- weibull (2 parameters): maximum likelihood; Newton's method on the shape k of the profile equation
  Σ x^k ln x / Σ x^k - 1/k - mean(ln x) = 0 (increasing in k, so one root), scale (Σ x^k / n)^(1/k).
- folded_normal, |Y| with Y normal (mu >= 0, sigma): maximum likelihood. At the maximum
  sigma² = mean(x²) - mu² (F. C. Leone, L. S. Nelson, R. B. Nottingham, Technometrics 3, 1961; M. Tsagris,
  C. Beneki, H. Hassani, Mathematics 2, 2014), so the likelihood is maximised along that curve over
  mu in [0, sqrt(mean(x²))): a grid, then golden-section search around its best point.

The test of each fit: `anderson_darling` for the statistic and its p-values; lognormal is tested as the
normality of ln x (its p-value is then the normal one, exact); folded normal's p-value is a parametric
bootstrap (see `FoldedNormal.test`).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from gateway.spc import anderson_darling as ad
from gateway.spc.anderson_darling import Array

NAMES = ("normal", "lognormal", "weibull", "folded_normal")
CHOICES = (*NAMES, "auto")  # what a characteristic's `capability.distribution` may say
BOUNDED_AT_ZERO = frozenset({"lognormal", "weibull", "folded_normal"})  # no values below 0
MIN_VALUES = 8  # fewer values than this fit nothing worth a p-value
NORMAL_FOLD = 8.0  # a folded normal whose mean is this many sigma from 0 is the normal (see _folded_fit_rows)

SQRT2 = math.sqrt(2.0)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

BOOTSTRAP_SAMPLES = 200  # folded normal's p-value: samples drawn from the fit
BOOTSTRAP_SIZE = 200  # at most this many values per drawn sample (the null distribution of A² hardly moves beyond)
BOOTSTRAP_SEED = 22514  # fixed: the same data give the same p-value, in analyze and the daemon alike


class FitError(ValueError):
    """The values cannot be described by the distribution (values at or below 0, no variation). `reason`
    names the cause (too_few, no_variation, at_or_below_zero, below_zero, spread) and `values` fill its
    words, for a caller that words it itself (core.texts `capability.warning.<reason>`)."""

    def __init__(self, message: str, reason: str = "", **values: object):
        super().__init__(message)
        self.reason = reason
        self.values = values


def erfc(x: Array) -> Array:
    """Elementwise math.erfc (numpy has none; a list comprehension is 4 times faster than frompyfunc)."""
    x = np.asarray(x, dtype=float)
    erfc_ = math.erfc
    return np.array([erfc_(v) for v in x.ravel().tolist()], dtype=float).reshape(x.shape)


def erf(x: Array) -> Array:
    """Elementwise math.erf."""
    x = np.asarray(x, dtype=float)
    erf_ = math.erf
    return np.array([erf_(v) for v in x.ravel().tolist()], dtype=float).reshape(x.shape)


def log_ndtr(z: Array) -> Array:
    """ln Φ(z), also far in the lower tail where Φ underflows (asymptotic series beyond -30)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    far = z < -30.0
    near = ~far
    out[near] = np.log(0.5 * erfc(-z[near] / SQRT2))
    zf = z[far]
    out[far] = -0.5 * zf * zf - np.log(-zf) - LOG_SQRT_2PI + np.log1p(-1.0 / zf ** 2 + 3.0 / zf ** 4)
    return out


def normal_logs(x: Array, shift: float, offset: float, sigma: float) -> tuple[Array, Array]:
    """(ln Φ(z), ln(1 - Φ(z))), z = ((x - shift) - offset)/sigma (the mean as a shift near the values and
    the offset from it: exact far from zero), with one erfc per value: the smaller tail 0.5 erfc(|z|/√2) is
    exact, the larger is 1 minus it (log1p). The normality test beside every normal capability runs on
    this, in the live engine's hot path, so it is lean."""
    w = ((x - shift) - offset) * (1.0 / (sigma * SQRT2))
    tail = 0.5 * erfc(np.abs(w))
    if tail.min() > 0.0:
        small = np.log(tail)
    else:  # beyond about 38 sigma erfc underflows: the asymptotic series there
        small = log_ndtr(-np.abs(w) * SQRT2)
    big = np.log1p(-tail)
    lower = w < 0.0
    return np.where(lower, small, big), np.where(lower, big, small)


def normal_quantile(p: float) -> float:
    """Φ⁻¹(p) (Wichura's AS 241, through the standard library)."""
    return NormalDist().inv_cdf(p)


class Fit:
    """A fitted distribution: its parameters, tails, quantiles, and the Anderson-Darling test."""

    name = ""

    def parameters(self) -> dict[str, float]:
        """The parameters under the names of the capability message."""
        raise NotImplementedError

    def log_cdf(self, x: Array) -> Array:
        """ln F(x)."""
        raise NotImplementedError

    def log_sf(self, x: Array) -> Array:
        """ln(1 - F(x))."""
        raise NotImplementedError

    def quantile(self, p: float) -> float:
        """x with F(x) = p."""
        raise NotImplementedError

    def cdf(self, x: float) -> float:
        """F(x), the share below x."""
        with np.errstate(divide="ignore"):
            return float(np.exp(self.log_cdf(np.array([x], dtype=float)))[0])

    def sf(self, x: float) -> float:
        """1 - F(x), the share above x (computed as such: no 1 - 0.9999... cancellation)."""
        with np.errstate(divide="ignore"):
            return float(np.exp(self.log_sf(np.array([x], dtype=float)))[0])

    def test(self, ordered: Array) -> tuple[float, float]:
        """(A², p-value) of the sorted values this was fitted to."""
        raise NotImplementedError


class Normal(Fit):
    name = "normal"

    def __init__(self, mean: float, sigma: float, centre: tuple[float, float] | None = None):
        """`centre`: (shift, offset) with mean = shift + offset exactly, shift near the values (the test
        of values far from zero needs the mean's digits that a rounded mean loses)."""
        self.mean, self.sigma = mean, sigma
        self.shift, self.offset = (mean, 0.0) if centre is None else centre

    def parameters(self) -> dict[str, float]:
        return {"mean": self.mean, "sigma": self.sigma}

    def log_cdf(self, x: Array) -> Array:
        return log_ndtr((x - self.mean) / self.sigma)

    def log_sf(self, x: Array) -> Array:
        return log_ndtr((self.mean - x) / self.sigma)

    def quantile(self, p: float) -> float:
        return self.mean + self.sigma * normal_quantile(p)

    def cdf(self, x: float) -> float:
        return 0.5 * math.erfc((self.mean - x) / (self.sigma * SQRT2))

    def sf(self, x: float) -> float:
        return 0.5 * math.erfc((x - self.mean) / (self.sigma * SQRT2))

    def test(self, ordered: Array) -> tuple[float, float]:
        log_cdf, log_sf = normal_logs(ordered, self.shift, self.offset, self.sigma)
        a2 = ad.statistic(log_cdf, log_sf)
        return a2, ad.normal_p_value(a2, len(ordered))


class Lognormal(Fit):
    name = "lognormal"

    def __init__(self, mu: float, sigma: float):
        self.mu, self.sigma = mu, sigma

    def parameters(self) -> dict[str, float]:
        return {"mu": self.mu, "sigma": self.sigma}

    def _log_x(self, x: Array) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0.0, np.log(np.where(x > 0.0, x, 1.0)), -np.inf)

    def log_cdf(self, x: Array) -> Array:
        return log_ndtr((self._log_x(x) - self.mu) / self.sigma)

    def log_sf(self, x: Array) -> Array:
        return log_ndtr((self.mu - self._log_x(x)) / self.sigma)

    def quantile(self, p: float) -> float:
        return math.exp(self.mu + self.sigma * normal_quantile(p))

    def test(self, ordered: Array) -> tuple[float, float]:
        # the normality test of ln x: its parameters are the mean and s (n - 1) of the logs, the basis of
        # the normal p-value; the fit itself keeps the maximum-likelihood sigma
        logs = np.log(ordered)
        return fit_normal(logs).test(logs)


class Weibull(Fit):
    name = "weibull"

    def __init__(self, shape: float, scale: float):
        self.shape, self.scale = shape, scale

    def parameters(self) -> dict[str, float]:
        return {"shape": self.shape, "scale": self.scale}

    def _t(self, x: Array) -> Array:
        with np.errstate(over="ignore"):  # a value far beyond the scale with a large shape: t = inf, sf = 0
            return np.power(np.maximum(x, 0.0) / self.scale, self.shape)

    def log_cdf(self, x: Array) -> Array:
        with np.errstate(divide="ignore"):
            return np.log(-np.expm1(-self._t(x)))

    def log_sf(self, x: Array) -> Array:
        return -self._t(x)

    def quantile(self, p: float) -> float:
        return self.scale * math.pow(-math.log1p(-p), 1.0 / self.shape)

    def test(self, ordered: Array) -> tuple[float, float]:
        a2 = ad.statistic(self.log_cdf(ordered), self.log_sf(ordered))
        return a2, ad.weibull_p_value(a2, len(ordered))


class FoldedNormal(Fit):
    name = "folded_normal"

    def __init__(self, mu: float, sigma: float):
        self.mu, self.sigma = mu, sigma

    def parameters(self) -> dict[str, float]:
        return {"mu": self.mu, "sigma": self.sigma}

    def log_cdf(self, x: Array) -> Array:
        return _folded_log_cdf(np.asarray(x, dtype=float), self.mu, self.sigma)

    def log_sf(self, x: Array) -> Array:
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        a, b = (x - self.mu) / self.sigma, (x + self.mu) / self.sigma
        with np.errstate(divide="ignore"):
            return np.log(0.5 * (erfc(a / SQRT2) + erfc(b / SQRT2)))

    def quantile(self, p: float) -> float:
        low, high = 0.0, self.mu + 40.0 * self.sigma
        for _ in range(200):  # bisection to the last bit: F is increasing on [0, inf)
            middle = 0.5 * (low + high)
            if middle in (low, high):
                break
            if self.cdf(middle) < p:
                low = middle
            else:
                high = middle
        return 0.5 * (low + high)

    def test(self, ordered: Array) -> tuple[float, float]:
        """A² against the fit; p-value by parametric bootstrap (W. Stute, W. González Manteiga, M. Presedo
        Quindimil, Test 2, 1993): BOOTSTRAP_SAMPLES samples of min(n, BOOTSTRAP_SIZE) values are drawn
        from the fit, each refitted and tested; p = (1 + number with A² >= ours) / (samples + 1). The
        shape of a folded normal moves with mu/sigma, so no table serves every fit."""
        a2 = ad.statistic(self.log_cdf(ordered), self.log_sf(ordered))
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        size = min(len(ordered), BOOTSTRAP_SIZE)
        drawn = np.sort(np.abs(self.mu + self.sigma * rng.standard_normal((BOOTSTRAP_SAMPLES, size))), axis=1)
        # a coarser search for the drawn samples: their A² is needed to a few digits, not to rounding
        mu, sigma = _folded_fit_rows(drawn, points=16, steps=40)
        a = (drawn - mu[:, None]) / sigma[:, None]
        b = (drawn + mu[:, None]) / sigma[:, None]
        log_cdf = _folded_log_cdf(drawn, mu[:, None], sigma[:, None])
        with np.errstate(divide="ignore"):
            log_sf = np.log(0.5 * (erfc(a / SQRT2) + erfc(b / SQRT2)))
        simulated = ad.statistics(log_cdf, log_sf)
        p = (1.0 + float(np.count_nonzero(simulated >= a2))) / (BOOTSTRAP_SAMPLES + 1.0)
        return a2, p


def _folded_log_cdf(x: Array, mu: Array | float, sigma: Array | float) -> Array:
    """ln F of the folded normal: F = (erf(a/√2) + erf(b/√2))/2, a = (x - mu)/sigma, b = (x + mu)/sigma;
    for a < -1 in erfc form (erfc(-a/√2) - erfc(b/√2))/2, where the erf form would cancel."""
    x = np.maximum(x, 0.0)
    a, b = (x - mu) / sigma, (x + mu) / sigma
    by_erf = 0.5 * (erf(a / SQRT2) + erf(b / SQRT2))
    by_erfc = 0.5 * (erfc(-a / SQRT2) - erfc(b / SQRT2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.maximum(np.where(a < -1.0, by_erfc, by_erf), 0.0))


def _folded_profile(x: Array, m2: Array, u: Array) -> Array:
    """Log-likelihood of each row at mu = u sqrt(m2), sigma² = m2 (1 - u²) (constants left out)."""
    n = x.shape[1]
    mu = u * np.sqrt(m2)
    s2 = m2 * (1.0 - u * u)
    t = np.abs(x * (mu / s2)[:, None])
    log_cosh = t + np.log1p(np.exp(-2.0 * t)) - math.log(2.0)
    result: Array = -0.5 * n * np.log(s2) + log_cosh.sum(axis=1) - n * (m2 + mu * mu) / (2.0 * s2)
    return result


def _folded_fit_rows(x: Array, points: int = 64, steps: int = 80) -> tuple[Array, Array]:
    """Maximum-likelihood (mu, sigma) of each row of non-negative values: the best of `points` grid
    points, then `steps` golden-section steps in the bracket around it (80 reach rounding)."""
    rows = x.shape[0]
    m2 = np.mean(x * x, axis=1)
    grid = np.linspace(0.0, 1.0, points + 1)[:-1]  # u = mu / sqrt(m2), below 1 (sigma > 0)
    values = np.stack([_folded_profile(x, m2, np.full(rows, u)) for u in grid], axis=1)
    best = np.argmax(values, axis=1)
    step = grid[1]
    low = np.maximum(grid[best] - step, 0.0)
    high = np.minimum(grid[best] + step, 1.0 - 1e-12)
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = high - golden * (high - low), low + golden * (high - low)
    hc, hd = _folded_profile(x, m2, c), _folded_profile(x, m2, d)
    for _ in range(steps):
        left = hc >= hd
        high = np.where(left, d, high)
        low = np.where(left, low, c)
        c_new, d_new = high - golden * (high - low), low + golden * (high - low)
        hc, hd = _folded_profile(x, m2, c_new), _folded_profile(x, m2, d_new)
        c, d = c_new, d_new
    u = 0.5 * (low + high)
    at_zero = _folded_profile(x, m2, np.zeros(rows)) >= _folded_profile(x, m2, u)
    u = np.where(at_zero, 0.0, u)  # the half-normal end of the range
    mu, sigma = u * np.sqrt(m2), np.sqrt(m2 * (1.0 - u * u))
    # mean/sd above NORMAL_FOLD: the fold holds less than Φ(-8) = 6e-16 of the mass, the likelihood is the
    # normal's, and m2 - mu² would cancel away the spread of values far from 0: the normal's MLE there
    shift = x[:, :1]
    offset = np.mean(x - shift, axis=1)
    spread = np.sqrt(np.mean((x - shift - offset[:, None]) ** 2, axis=1))
    far = (shift[:, 0] + offset) > NORMAL_FOLD * spread
    return np.where(far, shift[:, 0] + offset, mu), np.where(far, spread, sigma)


# ---------------------------------------------------------------- fitting


def _checked(values: Array, name: str) -> Array:
    if len(values) < MIN_VALUES:
        raise FitError(f"{name}: {len(values)} values are too few to fit a distribution (at least {MIN_VALUES})",
                       "too_few")
    if float(np.min(values)) == float(np.max(values)):
        raise FitError(f"all {len(values)} values are equal ({float(values[0]):g}): no distribution can be "
                       "fitted to data without variation", "no_variation")
    if name in BOUNDED_AT_ZERO:
        lowest = float(np.min(values))
        if lowest < 0.0 or (lowest == 0.0 and name != "folded_normal"):
            count = int(np.count_nonzero(values <= 0.0 if name != "folded_normal" else values < 0.0))
            where = "at or below 0" if name != "folded_normal" else "below 0"
            raise FitError(f"a {name} distribution has no values {where}; {count} of the values are "
                           f"(lowest {lowest:g})", "below_zero" if name == "folded_normal" else "at_or_below_zero",
                           distribution=name, count=count, lowest=lowest)
    return values


def fit_normal(values: Array) -> Normal:
    """Mean and s (n - 1), about a shift (the middle value): far from zero a plain mean is off by
    more than the spread's last digits, and A² with it."""
    values = _checked(values, "normal")
    shift = float(values[len(values) // 2])
    offsets = values - shift
    offset = float(np.mean(offsets))
    return Normal(shift + offset, float(np.sqrt(np.sum((offsets - offset) ** 2) / (len(values) - 1))),
                  (shift, offset))


def fit_lognormal(values: Array) -> Lognormal:
    """Maximum likelihood on ln x."""
    logs = np.log(_checked(values, "lognormal"))
    mu = float(np.mean(logs))
    return Lognormal(mu, float(np.sqrt(np.mean((logs - mu) ** 2))))


def fit_weibull(values: Array) -> Weibull:
    """Maximum likelihood: Newton on the shape, safeguarded by bisection."""
    y = np.log(_checked(values, "weibull"))
    top, mean_y = float(np.max(y)), float(np.mean(y))
    spread = float(np.std(y))

    def equation(k: float) -> tuple[float, float]:
        w = np.exp(k * (y - top))  # x^k scaled by the largest: no overflow
        total = float(np.sum(w))
        m1 = float(np.sum(w * y)) / total
        m2 = float(np.sum(w * y * y)) / total
        return m1 - 1.0 / k - mean_y, (m2 - m1 * m1) + 1.0 / (k * k)

    k = 1.2825498301618641 / spread  # pi/sqrt(6)/sd(ln x): the moment estimate, near the root
    low, high = 0.0, math.inf
    for _ in range(200):
        g, slope = equation(k)
        if g < 0.0:
            low = k
        else:
            high = k
        step = g / slope
        nxt = k - step
        if not low < nxt < high:  # Newton left the bracket: bisect (or double while no upper end)
            nxt = 0.5 * (low + high) if math.isfinite(high) else 2.0 * k
        if abs(nxt - k) <= 1e-14 * k:
            k = nxt
            break
        k = nxt
    scale = math.exp(top + math.log(float(np.mean(np.exp(k * (y - top))))) / k)
    return Weibull(k, scale)


def fit_folded_normal(values: Array) -> FoldedNormal:
    """Maximum likelihood (mu >= 0: a folded normal does not tell the sign of its mean)."""
    x = _checked(values, "folded_normal")
    mu, sigma = _folded_fit_rows(x[None, :])
    return FoldedNormal(float(mu[0]), float(sigma[0]))


FITTERS = {"normal": fit_normal, "lognormal": fit_lognormal, "weibull": fit_weibull,
           "folded_normal": fit_folded_normal}


def fit(name: str, values: Array) -> Fit:
    """The distribution `name` fitted to the values; FitError when it cannot describe them."""
    fitted = FITTERS[name](np.sort(np.asarray(values, dtype=float)))
    low, median, high = fitted.quantile(0.00135), fitted.quantile(0.5), fitted.quantile(0.99865)
    if not (math.isfinite(low) and math.isfinite(high) and low < median < high):
        # lognormal or Weibull of values far from 0 with a tiny spread: ln x holds too few digits of it
        raise FitError(f"the spread of the values is too small for their distance from 0 to fit a {name} "
                       "distribution", "spread", distribution=name)
    return fitted
