"""Coordinate-wise rules: the median and the trimmed mean (Yin et al., ICML'18, §3).

Each coordinate is aggregated on its own from the n values of that coordinate: the median
(breakdown point 1/2: fewer than n/2 arbitrary inputs cannot move it outside the range of the
honest values), or the mean of the values left after removing the f largest and f smallest
(every kept value lies between two honest values when at most f inputs are Byzantine, so the
result stays within the honest range).  Both are computed with ``np.partition`` on blocks of
columns (no Python loop over coordinates, bounded temporaries).
"""

from __future__ import annotations

import numpy as np

from fedsecure.robust.base import Rule, RuleResult, band_shares, column_blocks


class Median(Rule):
    """Coordinate-wise median; tolerates f < n/2."""

    name = "median"

    def _aggregate(self, x):
        n, d = x.shape
        out = np.empty(d)
        counts = np.zeros(n)
        lo_k, hi_k = (n - 1) // 2, n // 2
        for cols in column_blocks(d):
            part = np.partition(x[:, cols], (lo_k, hi_k), axis=0)
            lo, hi = part[lo_k], part[hi_k]
            out[cols] = 0.5 * (lo + hi)
            band_shares(x, lo, hi, cols, counts)
        return RuleResult(out, counts / d)


class TrimmedMean(Rule):
    """Coordinate-wise mean of the n - 2f middle values; tolerates f < n/2 (needs n >= 2f+1)."""

    name = "trimmed-mean"

    def _aggregate(self, x):
        n, d = x.shape
        f = self.f
        out = np.empty(d)
        counts = np.zeros(n)
        for cols in column_blocks(d):
            part = np.partition(x[:, cols], (f, n - f - 1), axis=0)
            out[cols] = part[f:n - f].mean(axis=0)
            band_shares(x, part[f], part[n - f - 1], cols, counts)
        return RuleResult(out, counts / d)
