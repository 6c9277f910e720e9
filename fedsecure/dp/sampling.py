"""Noise samplers driven by the injected CSPRNG (:mod:`fedsecure.rng`), never numpy generators.

Theory of operation.

* Integers: :func:`uniform_below` draws 63-bit words from the RandomSource and keeps w mod m
  for w < floor(2^63 / m) * m (rejection sampling), so each value is exactly uniform on
  [0, m).  Every probability below is a ratio of integers decided by comparing such a uniform
  integer with a numerator: no floating-point number is involved.
* Bernoulli(exp(-a/b)) for integers a >= 0, b >= 1 (Canonne, Kamath and Steinke, "The Discrete
  Gaussian for Differential Privacy", NeurIPS 2020, Algorithm 1): for a <= b run
  K = 1, 2, ... drawing Bernoulli(a / (b K)) until one fails and answer "K odd"; for a > b
  answer floor(a/b) independent Bernoulli(exp(-1)) and one Bernoulli(exp(-(a mod b)/b)).
* Discrete Gaussian N_Z(0, s) with an integer variance parameter s >= 1 (CKS 2020,
  Algorithm 3): with t = floor(sqrt(s)) + 1 draw a discrete Laplace Y of scale t (U uniform on
  [0, t) accepted with probability exp(-U/t), V ~ Geometric(1 - exp(-1)), X = U + t V, a
  random sign, -0 rejected) and accept it with probability
  exp(-(|Y| - s/t)^2 / (2 s)) = exp(-(|Y| t - s)^2 / (2 s t^2)).  Everything is vectorized:
  each loop iteration advances all still-undecided entries at once, in int64.  To keep every
  intermediate below 2^63, s <= 2^24 (so 2 s t^2 K < 2^63 for any K < 2^14; K >= 2^14 has
  probability below 1/(2^14)!) and a candidate with |Y| t >= 2^31, i.e. |Y| >= 2^7 sigma, is
  redrawn: that truncates the distribution at 128 standard deviations, a total-variation
  change below 2 exp(-8192).
* Continuous Gaussian and Laplace (central and local placements): 53-bit uniform doubles from
  the RandomSource, Box-Muller and inverse-CDF.  These are floating-point mechanisms, with the
  usual caveat (Mironov, CCS 2012) that their low-order bits are not exactly distributed;
  the distributed placement uses the exact integer sampler above.
"""

from __future__ import annotations

import math

import numpy as np

from fedsecure.config import require
from fedsecure.rng import RandomSource

_TWO63 = 1 << 63
MAX_VARIANCE = 1 << 24
_MAX_Y_TIMES_T = 1 << 31  # (|Y| t - s)^2 < 2^62 and 2 s t^2 K < 2^63 for K < 2^14


def _words63(rng: RandomSource, count: int) -> np.ndarray:
    return np.frombuffer(rng.bytes(8 * count), dtype="<u8").astype(np.int64) >> 1 & (_TWO63 - 1)


def uniform_below(rng: RandomSource, bound) -> np.ndarray:
    """Exactly uniform int64 values in [0, bound) (``bound`` an int64 array or int, all >= 1)."""
    bound = np.asarray(bound, dtype=np.int64)
    shape = bound.shape
    bound = bound.reshape(-1)
    out = np.empty(bound.size, dtype=np.int64)
    limit = (np.int64(_TWO63 - 1) // bound) * bound  # accept w < limit (multiple of bound)
    todo = np.arange(bound.size)
    while todo.size:
        w = _words63(rng, todo.size)
        ok = w < limit[todo]
        out[todo[ok]] = w[ok] % bound[todo[ok]]
        todo = todo[~ok]
    return out.reshape(shape)


def bernoulli_ratio(rng: RandomSource, num, den) -> np.ndarray:
    """Bernoulli(num / den), elementwise, for integers 0 <= num <= den."""
    return uniform_below(rng, den) < np.asarray(num, dtype=np.int64)


def bernoulli_exp(rng: RandomSource, num, den) -> np.ndarray:
    """Bernoulli(exp(-num/den)), elementwise, exactly (CKS 2020, Algorithm 1)."""
    num = np.asarray(num, dtype=np.int64).reshape(-1)
    den = np.broadcast_to(np.asarray(den, dtype=np.int64), num.shape).reshape(-1)
    whole, frac = num // den, num % den
    result = _bernoulli_exp_fraction(rng, frac, den)
    alive = result & (whole > 0)
    while np.any(alive):  # floor(num/den) independent Bernoulli(exp(-1)) must all succeed
        idx = np.flatnonzero(alive)
        ones = np.ones(idx.size, dtype=np.int64)
        ok = _bernoulli_exp_fraction(rng, ones, ones)
        result[idx[~ok]] = False
        whole[idx] -= 1
        alive = result & (whole > 0)
    return result


def _bernoulli_exp_fraction(rng: RandomSource, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Bernoulli(exp(-num/den)) for 0 <= num <= den: the first K with Bernoulli(num/(den K))
    = 0 is odd with probability exp(-num/den)."""
    k = np.ones(num.size, dtype=np.int64)
    running = np.ones(num.size, dtype=bool)
    while np.any(running):
        idx = np.flatnonzero(running)
        success = bernoulli_ratio(rng, num[idx], den[idx] * k[idx])
        k[idx[success]] += 1
        running[idx[~success]] = False
    return (k % 2) == 1


def discrete_gaussian(rng: RandomSource, variance: int, size: int) -> np.ndarray:
    """``size`` independent draws of the discrete Gaussian N_Z(0, variance) (int64), exactly.

    ``variance`` is the integer parameter s of P(x) proportional to exp(-x^2 / (2 s)).
    """
    require(isinstance(variance, (int, np.integer)) and 1 <= variance <= MAX_VARIANCE,
            "variance", variance, "must be an integer in [1, 2^24]")
    require(isinstance(size, int) and size >= 0, "size", size, "must be an integer >= 0")
    s = int(variance)
    t = math.isqrt(s) + 1
    out = np.empty(size, dtype=np.int64)
    filled = 0
    while filled < size:
        y = _discrete_laplace(rng, t, _oversampled(size - filled))
        a = np.abs(y) * t
        keep = a < _MAX_Y_TIMES_T
        diff = a[keep] - s
        accept = np.zeros(y.size, dtype=bool)
        accept[np.flatnonzero(keep)] = bernoulli_exp(rng, diff * diff, np.int64(2 * s * t * t))
        filled = _take(out, filled, y[accept])
    return out


def _oversampled(needed: int) -> int:
    """Candidates to draw for ``needed`` accepted values (acceptance is above 1/2 in every
    rejection step here), so that one pass usually suffices."""
    return 2 * needed + 32


def _take(out: np.ndarray, filled: int, accepted: np.ndarray) -> int:
    """Append the first accepted candidates, in draw order, to ``out[filled:]``.  Choosing by
    position among iid accepted draws keeps them iid with the target distribution."""
    count = min(out.size - filled, accepted.size)
    out[filled: filled + count] = accepted[:count]
    return filled + count


def _discrete_laplace(rng: RandomSource, t: int, size: int) -> np.ndarray:
    """Discrete Laplace with P(y) proportional to exp(-|y| / t) (CKS 2020, Algorithm 2)."""
    out = np.empty(size, dtype=np.int64)
    filled = 0
    tt = np.int64(t)
    while filled < size:
        count = _oversampled(size - filled)
        u = uniform_below(rng, np.full(count, tt))
        u = u[bernoulli_exp(rng, u, tt)]
        v = np.zeros(u.size, dtype=np.int64)
        running = np.ones(u.size, dtype=bool)
        while np.any(running):  # V = number of Bernoulli(exp(-1)) successes before a failure
            idx = np.flatnonzero(running)
            ones = np.ones(idx.size, dtype=np.int64)
            hit = bernoulli_exp(rng, ones, ones)
            v[idx[hit]] += 1
            running[idx[~hit]] = False
        x = u + tt * v
        negative = bernoulli_ratio(rng, np.ones(x.size, dtype=np.int64),
                                   np.full(x.size, 2, dtype=np.int64))
        valid = ~(negative & (x == 0))
        filled = _take(out, filled, np.where(negative, -x, x)[valid])
    return out


def uniform_floats(rng: RandomSource, size: int) -> np.ndarray:
    """``size`` uniform doubles k / 2^53 in [0, 1)."""
    words = np.frombuffer(rng.bytes(8 * size), dtype="<u8")
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53


def gaussian(rng: RandomSource, stddev: float, size: int) -> np.ndarray:
    """``size`` draws of N(0, stddev^2) (Box-Muller over CSPRNG uniforms)."""
    require(math.isfinite(stddev) and stddev >= 0, "stddev", stddev, "must be finite and >= 0")
    half = (size + 1) // 2
    u1 = 1.0 - uniform_floats(rng, half)  # in (0, 1]: log is finite
    u2 = uniform_floats(rng, half)
    radius = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])
    return stddev * z[:size]


def laplace(rng: RandomSource, scale: float, size: int) -> np.ndarray:
    """``size`` draws of Laplace(0, scale) (inverse CDF over CSPRNG uniforms)."""
    require(math.isfinite(scale) and scale >= 0, "scale", scale, "must be finite and >= 0")
    u = uniform_floats(rng, size) - 0.5
    return -scale * np.sign(u) * np.log1p(-2.0 * np.abs(u))
