"""Conditional randomized rounding to integers with a bounded L2 norm.

Theory of operation (Kairouz, Liu and Steinke, ICML 2021, section 4.1, Theorem 4): a rotated
and scaled vector y (||y||_2 <= c) is rounded coordinate-wise at random, q_i = floor(y_i) + 1
with probability y_i - floor(y_i), so E[q] = y.  The rounded norm can exceed c by up to
sqrt(d); with probability at least 1 - beta it stays below

    Delta_2 = sqrt(min(c^2 + d/4 + sqrt(2 ln(1/beta)) (c + sqrt(d)/2), (c + sqrt(d))^2)),

and *conditional* rounding redraws until ||q||_2 <= Delta_2, so Delta_2 is an exact bound on
the sensitivity of the integer sum (the norm is compared in integers: sum q_i^2 <= Delta_2^2).
For an integer vector ||q||_1 <= min(Delta_2^2, sqrt(d) Delta_2), since |q_i| <= q_i^2.
The rounding bits come from the injected RandomSource.
"""

from __future__ import annotations

import math

import numpy as np

from fedsecure.config import require
from fedsecure.errors import ProtocolAborted
from fedsecure.kernels.quantize import UNIFORM_SCALE
from fedsecure.rng import RandomSource, random_uint32

MAX_ATTEMPTS = 64


def rounded_l2_bound(c: float, d: int, beta: float) -> float:
    """Delta_2 of the module docstring for norm ``c``, dimension ``d``, failure ``beta``."""
    require(0 < beta < 1, "beta", beta, "must be in (0, 1)")
    first = c * c + d / 4 + math.sqrt(2 * math.log(1 / beta)) * (c + math.sqrt(d) / 2)
    return math.sqrt(min(first, (c + math.sqrt(d)) ** 2))


def rounded_l1_bound(l2_bound: float, d: int) -> float:
    """L1 bound of an integer vector whose L2 norm is at most ``l2_bound``."""
    return min(l2_bound * l2_bound, math.sqrt(d) * l2_bound)


def conditional_round(rng: RandomSource, y: np.ndarray, l2_bound: float) -> np.ndarray:
    """Unbiased random rounding of ``y`` to int64, redrawn until ||q||_2 <= ``l2_bound``."""
    limit = math.floor(l2_bound * l2_bound)
    floor = np.floor(y)
    frac = y - floor
    base = floor.astype(np.int64)
    for _ in range(MAX_ATTEMPTS):
        q = base + (random_uint32(rng, y.size) * UNIFORM_SCALE < frac)
        if int(np.dot(q, q)) <= limit:
            return q
    raise ProtocolAborted(f"conditional rounding exceeded the L2 bound {l2_bound} in"
                          f" {MAX_ATTEMPTS} attempts: is the input clipped to the planned norm?")
