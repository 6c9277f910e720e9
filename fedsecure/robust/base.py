"""What every robust rule shares: the input check, the result, the tolerance arithmetic.

A rule maps the ``(n, d)`` matrix of n updates to one ``d``-vector and to each input's *share*
of it (non-negative, summing to 1: 1/n each for the plain mean, 1 for the update Krum picks).
Shares are what a training round reports: a share of 0 is a rejected input, one below half a
plain-mean share (1/(2n)) a down-weighted one.  ``f`` is the number of arbitrary (Byzantine)
inputs the rule is configured to withstand; :meth:`Rule.check` refuses an ``n`` too small for
it, naming the condition of the rule's paper.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from fedsecure.config import require
from fedsecure.errors import ConfigurationError

COLUMN_CHUNK = 1 << 15
"""Coordinate-wise rules work on blocks of this many coordinates (bounded temporaries)."""


@dataclass(frozen=True)
class RuleResult:
    aggregate: np.ndarray  # (d,) float64
    shares: np.ndarray  # (n,) float64, >= 0, sums to 1

    def rejected(self) -> list[int]:
        """Positions of inputs with no influence on the aggregate."""
        return [int(i) for i in np.flatnonzero(self.shares <= 1e-12)]

    def downweighted(self) -> list[int]:
        """Positions of inputs kept with less than half a plain-mean share."""
        n = len(self.shares)
        return [int(i) for i in np.flatnonzero((self.shares > 1e-12) & (self.shares < 0.5 / n))]


def as_updates(updates) -> np.ndarray:
    """The updates as a C-contiguous float64 ``(n, d)`` matrix of finite values whose squared
    norms are finite too."""
    x = np.ascontiguousarray(updates, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ConfigurationError(f"updates shape={x.shape}: expected (n >= 1, d >= 1)")
    if not np.all(np.isfinite(x)):
        raise ConfigurationError("updates: contain a non-finite value")
    if not np.all(np.isfinite(row_sq_norms(x))):
        raise ConfigurationError("updates: a squared L2 norm overflows float64 (values beyond"
                                 " about 1e154); distance-based rules cannot compare them")
    return x


def row_sq_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def sq_distances_to(x: np.ndarray, z: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    """||x_i - z||^2 for every row, as ||x_i||^2 - 2 x_i.z + ||z||^2 (one matrix-vector
    product, no (n, d) temporary); clamped at 0 against cancellation."""
    return np.maximum(x_sq - 2.0 * (x @ z) + float(z @ z), 0.0)


def column_blocks(d: int):
    for start in range(0, d, COLUMN_CHUNK):
        yield slice(start, min(d, start + COLUMN_CHUNK))


def band_shares(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, cols: slice,
                counts: np.ndarray) -> None:
    """Add to ``counts`` each input's share of the coordinates ``cols`` whose output is built
    from the values in [lo, hi] (ties split evenly)."""
    within = (x[:, cols] >= lo) & (x[:, cols] <= hi)
    counts += (within / within.sum(axis=0)).sum(axis=1)


class Rule(ABC):
    """A robust aggregation rule; subclasses set ``name`` and implement ``_aggregate``."""

    name: ClassVar[str]
    per_update: ClassVar[bool] = True
    """False only for rules that are a function of the sum (the plain mean)."""

    def __init__(self, f: int = 0):
        require(isinstance(f, int) and not isinstance(f, bool) and f >= 0, "f", f,
                "must be an integer >= 0 (the number of Byzantine inputs to tolerate)")
        self.f = f

    def min_inputs(self) -> int:
        """The fewest inputs with which the rule withstands ``f`` Byzantine ones."""
        return 2 * self.f + 1

    @property
    def condition(self) -> str:
        return "n >= 2f + 1"

    def max_f(self, n: int) -> int:
        """The largest ``f`` this rule withstands with ``n`` inputs (-1: none)."""
        f = -1
        while type(self)(**{**self._options(), "f": f + 1}).min_inputs() <= n:
            f += 1
        return f

    def check(self, n: int) -> None:
        if n < self.min_inputs():
            raise ConfigurationError(
                f"rule={self.name!r} with f={self.f}: needs {self.condition}, i.e. at least"
                f" {self.min_inputs()} inputs, got n={n}")

    def __call__(self, updates) -> RuleResult:
        x = as_updates(updates)
        self.check(x.shape[0])
        return self._aggregate(x)

    @abstractmethod
    def _aggregate(self, x: np.ndarray) -> RuleResult: ...

    def _options(self) -> dict:
        return {"f": self.f}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._options().items())
        return f"{type(self).__name__}({args})"


class Mean(Rule):
    """The plain (FedAvg) mean: no robustness; the baseline, and the only rule that is a
    function of the sum (so it runs on one masked aggregate)."""

    name = "mean"
    per_update = False

    def min_inputs(self) -> int:
        return 1

    def max_f(self, n: int) -> int:
        return 0

    def check(self, n: int) -> None:
        if self.f != 0:  # one Byzantine input moves the mean anywhere
            raise ConfigurationError(f"rule='mean' with f={self.f}: the mean has breakdown point"
                                     " 0 and withstands no Byzantine input; choose a robust rule")
        super().check(n)

    def _aggregate(self, x):
        n = x.shape[0]
        return RuleResult(x.mean(axis=0), np.full(n, 1.0 / n))
