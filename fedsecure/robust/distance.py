"""Distance-based selection: Krum and multi-Krum (Blanchard et al., NeurIPS'17, §4) and
Bulyan (El Mhamdi et al., ICML'18, §4).

Krum scores each update by the sum of its squared distances to its n - f - 2 nearest
neighbours and picks the lowest score; with n > 2f + 2 the pick is provably close to the honest
mean.  Multi-Krum averages the m best-scored updates (default m = n - f).  Bulyan runs Krum
(scoring against max(2, pool - f - 2) neighbours) n - 2f times, each time moving the pick from
the pool to a selection set of theta = n - 2f updates, then aggregates each coordinate as the
mean of the beta = theta - 2f selected values closest to their median; it needs n >= 4f + 3.

All pairwise squared distances come from one Gram matrix product,
D_ij = ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j (clamped at 0: for nearly equal vectors of large norm
the subtraction loses relative precision, which only matters between near-duplicates).
"""

from __future__ import annotations

import numpy as np

from fedsecure.config import require
from fedsecure.robust.base import Rule, RuleResult, column_blocks, row_sq_norms


def pairwise_sq_distances(x: np.ndarray) -> np.ndarray:
    """The (n, n) matrix of squared Euclidean distances between rows, via one matmul."""
    sq = row_sq_norms(x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2


def krum_scores(d2: np.ndarray, k: int, pool: np.ndarray | None = None) -> np.ndarray:
    """Each pool member's sum of squared distances to its k nearest other members (inf for
    rows outside the pool); Krum's k is n - f - 2."""
    n = d2.shape[0]
    pool = np.ones(n, dtype=bool) if pool is None else pool
    members = np.flatnonzero(pool)
    sub = d2[np.ix_(members, members)]
    np.fill_diagonal(sub, np.inf)
    scores = np.full(n, np.inf)
    if k == 0:
        scores[members] = 0.0
        return scores
    scores[members] = np.partition(sub, k - 1, axis=1)[:, :k].sum(axis=1)
    return scores


class Krum(Rule):
    """Krum (multi=1) and multi-Krum: the mean of the ``m`` best-scored updates."""

    name = "krum"

    def __init__(self, f: int = 0, m: int = 1):
        super().__init__(f)
        require(isinstance(m, int) and m >= 1, "m", m, "must be an integer >= 1")
        self.m = m

    def min_inputs(self) -> int:
        return max(2 * self.f + 3, self.m)

    @property
    def condition(self) -> str:
        return "n > 2f + 2 (Blanchard et al. 2017)"

    def _aggregate(self, x):
        n = x.shape[0]
        scores = krum_scores(pairwise_sq_distances(x), n - self.f - 2)
        chosen = np.argsort(scores, kind="stable")[:self.m]
        shares = np.zeros(n)
        shares[chosen] = 1.0 / len(chosen)
        return RuleResult(x[chosen].mean(axis=0), shares)

    def _options(self) -> dict:
        return {"f": self.f, "m": self.m}


class MultiKrum(Krum):
    """Multi-Krum with m = n - f unless given."""

    name = "multi-krum"

    def __init__(self, f: int = 0, m: int | None = None):
        super().__init__(f, 1 if m is None else m)
        self.m_option = m

    def _aggregate(self, x):
        if self.m_option is None:
            self.m = x.shape[0] - self.f
        return super()._aggregate(x)

    def _options(self) -> dict:
        return {"f": self.f, "m": self.m_option}


class Bulyan(Rule):
    """Bulyan over Krum; tolerates f with n >= 4f + 3."""

    name = "bulyan"

    def min_inputs(self) -> int:
        return 4 * self.f + 3

    @property
    def condition(self) -> str:
        return "n >= 4f + 3 (El Mhamdi et al. 2018)"

    def _aggregate(self, x):
        n, d = x.shape
        f = self.f
        theta = n - 2 * f
        beta = theta - 2 * f
        d2 = pairwise_sq_distances(x)
        pool = np.ones(n, dtype=bool)
        selected = []
        for _ in range(theta):
            # Krum on what is left; the last picks, where pool - f - 2 < 2, score against two
            # neighbours (one would tie every pair of mutual nearest neighbours) or all left
            left = int(pool.sum())
            pick = int(np.argmin(krum_scores(d2, min(left - 1, max(2, left - f - 2)), pool)))
            selected.append(pick)
            pool[pick] = False
        chosen = np.array(selected)
        out = np.empty(d)
        counts = np.zeros(n)
        for cols in column_blocks(d):
            values = x[chosen, cols]
            gap = np.abs(values - np.median(values, axis=0))
            nearest = np.argpartition(gap, beta - 1, axis=0)[:beta]
            out[cols] = np.take_along_axis(values, nearest, axis=0).mean(axis=0)
            counts += np.bincount(chosen[nearest].ravel(), minlength=n)
        return RuleResult(out, counts / counts.sum())
