"""L2 clipping of updates: fixed, and adaptive after Andrew et al. (NeurIPS 2021).

Theory of operation.  :func:`l2_clip` scales x by min(1, C / ||x||_2) so that every client's
contribution has L2 norm at most C, which bounds the sensitivity of the sum (DP-FedAvg,
McMahan et al., ICLR 2018).  Floating-point scaling can land one ulp above C; the factor is
then lowered ulp by ulp until the computed norm is <= C, so the bound holds exactly for the
norm as computed.

Adaptive clipping (Andrew, Thakkar, McMahan and Ramaswamy, "Differentially Private Learning
with Adaptive Clipping", NeurIPS 2021, Algorithm 1 with the geometric update): each round every
client also reports the bit b = [||x|| <= C]; the server learns only the noisy count
sum(b) + N(0, sigma_b^2) -- one more coordinate of the securely aggregated, noised vector
(:mod:`fedsecure.dp.aggregators`, ``count_share``), accounted with the update in the same
release -- and :class:`AdaptiveClip` moves C geometrically towards the target quantile gamma:
C <- C * exp(-eta (b_bar - gamma)), b_bar the noisy fraction clamped to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedsecure.config import require


def l2_clip(x: np.ndarray, clip_norm: float) -> np.ndarray:
    """``x`` scaled down (if needed) so that its L2 norm is at most ``clip_norm``."""
    require(math.isfinite(clip_norm) and clip_norm > 0, "clip_norm", clip_norm,
            "must be a finite number > 0")
    x = np.asarray(x, dtype=np.float64)
    norm = float(np.linalg.norm(x))
    if norm <= clip_norm:
        return x.copy()
    factor = clip_norm / norm
    clipped = x * factor
    while float(np.linalg.norm(clipped)) > clip_norm:
        factor = math.nextafter(factor, 0.0)
        clipped = x * factor
    return clipped


@dataclass
class AdaptiveClip:
    """The clipping norm C of Andrew et al. 2021, tracking the ``quantile`` of update norms."""

    clip_norm: float
    quantile: float = 0.5
    learning_rate: float = 0.2

    def __post_init__(self):
        require(math.isfinite(self.clip_norm) and self.clip_norm > 0, "clip_norm",
                self.clip_norm, "must be a finite number > 0")
        require(0 < self.quantile < 1, "quantile", self.quantile, "must be in (0, 1)")
        require(math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning_rate",
                self.learning_rate, "must be a finite number > 0")

    def update(self, noisy_count: float, n_clients: int) -> float:
        """Move C after a round whose (noised) sum of indicators was ``noisy_count``."""
        fraction = min(1.0, max(0.0, noisy_count / n_clients))
        self.clip_norm *= math.exp(-self.learning_rate * (fraction - self.quantile))
        return self.clip_norm
