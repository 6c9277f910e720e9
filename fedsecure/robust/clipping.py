"""Norm-based rules: norm bounding, centred clipping and the geometric median.

* Norm bounding (Sun et al., "Can you really backdoor federated learning?", 2019, §4): each
  update is scaled down to L2 norm at most ``tau``, then averaged.  A Byzantine input moves the
  mean by at most tau / n per input; it bounds the damage, it does not remove it.
* Centred clipping (Karimireddy, He & Jaggi, ICML'21, Alg. 2): starting from a centre v,
  repeat ``iterations`` times v <- v + mean_i clip(x_i - v, tau).  Without server state the
  centre starts at the coordinate-wise median (the paper uses the previous round's momentum);
  ``tau`` defaults to the median distance of the updates to that centre.
* Geometric median by smoothed Weiszfeld iterations (RFA: Pillutla, Kakade & Harchaoui, IEEE
  TSP 2022, Alg. 2): z <- sum_i w_i x_i / sum_i w_i with w_i = 1 / max(eps, ||x_i - z||),
  from the coordinate-wise median (a start the outliers cannot drag away: from the mean, one
  update of 1e150 needs hundreds of iterations) until z moves by less than ``tol`` times the
  median distance to it; breakdown 1/2.

Every distance to the current centre is one matrix-vector product (||x||^2 - 2 x.z + ||z||^2),
so an iteration costs O(n d) and allocates no (n, d) temporary.
"""

from __future__ import annotations

import math

import numpy as np

from fedsecure.config import require
from fedsecure.robust.base import Rule, RuleResult, row_sq_norms, sq_distances_to
from fedsecure.robust.coordinate import Median


def _positive(name: str, value, *, optional: bool = False) -> None:
    require((optional and value is None) or (isinstance(value, (int, float))
            and not isinstance(value, bool) and math.isfinite(value) and value > 0),
            name, value, "must be a number > 0" + (" or None" if optional else ""))


def _iterations(value) -> None:
    require(isinstance(value, int) and value >= 1, "iterations", value, "must be an integer >= 1")


class NormBound(Rule):
    """Scale each update to L2 norm <= ``tau``, then average; damage per input <= tau / n."""

    name = "norm-bound"

    def __init__(self, f: int = 0, tau: float = 1.0):
        super().__init__(f)
        _positive("tau", tau)
        self.tau = float(tau)

    def _aggregate(self, x):
        factors = np.minimum(1.0, self.tau / np.maximum(np.sqrt(row_sq_norms(x)), 1e-300))
        return RuleResult(factors @ x / x.shape[0], factors / factors.sum())

    def _options(self) -> dict:
        return {"f": self.f, "tau": self.tau}


class CenteredClipping(Rule):
    """Centred clipping from the coordinate-wise median; see the module docstring."""

    name = "centered-clipping"

    def __init__(self, f: int = 0, tau: float | None = None, iterations: int = 3):
        super().__init__(f)
        _positive("tau", tau, optional=True)
        _iterations(iterations)
        self.tau, self.iterations = tau, iterations

    def _aggregate(self, x):
        n = x.shape[0]
        v = Median()(x).aggregate
        x_sq = row_sq_norms(x)
        dist = np.sqrt(sq_distances_to(x, v, x_sq))
        tau = float(np.median(dist)) if self.tau is None else self.tau
        factors = np.ones(n)
        for _ in range(self.iterations):
            factors = np.minimum(1.0, tau / np.maximum(dist, 1e-300))
            v = v + (factors @ x - factors.sum() * v) / n
            dist = np.sqrt(sq_distances_to(x, v, x_sq))
        return RuleResult(v, factors / factors.sum())

    def _options(self) -> dict:
        return {"f": self.f, "tau": self.tau, "iterations": self.iterations}


class GeometricMedian(Rule):
    """Smoothed Weiszfeld (RFA); tolerates f < n/2."""

    name = "geometric-median"

    def __init__(self, f: int = 0, iterations: int = 100, eps: float = 1e-8, tol: float = 1e-7):
        super().__init__(f)
        _iterations(iterations)
        _positive("eps", eps)
        _positive("tol", tol)
        self.iterations, self.eps, self.tol = iterations, float(eps), float(tol)

    def _aggregate(self, x):
        x_sq = row_sq_norms(x)
        z = Median()(x).aggregate
        dist = np.sqrt(sq_distances_to(x, z, x_sq))
        weights = np.ones(x.shape[0])
        for _ in range(self.iterations):
            weights = 1.0 / np.maximum(dist, self.eps)
            previous, z = z, weights @ x / weights.sum()
            dist = np.sqrt(sq_distances_to(x, z, x_sq))
            if np.linalg.norm(z - previous) <= self.tol * max(float(np.median(dist)), self.eps):
                break
        return RuleResult(z, weights / weights.sum())

    def _options(self) -> dict:
        return {"f": self.f, "iterations": self.iterations, "eps": self.eps, "tol": self.tol}
