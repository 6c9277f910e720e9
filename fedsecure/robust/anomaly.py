"""An anomaly score per update: how far it lies from the crowd, in robust units.

score_i = (r_i - median(r)) / (1.4826 * MAD(r)), where r_i = ||x_i - m|| is the distance of
update i to the coordinate-wise median m and MAD the median absolute deviation of the r_i
(1.4826 * MAD estimates the standard deviation of Gaussian data).  Honest updates score around
0 to 2; a scaled, sign-flipped or noisy update scores far higher.  Attacks designed to hide
inside the honest spread ("a little is enough") score low by construction: the score is a
diagnostic reported each round, not a defence by itself.
"""

from __future__ import annotations

import numpy as np

from fedsecure.robust.base import as_updates, row_sq_norms, sq_distances_to
from fedsecure.robust.coordinate import Median

FLAG_SCORE = 3.0
"""Scores above this are listed as flagged in a round's report."""


def anomaly_scores(updates) -> np.ndarray:
    """The robust z-score of each update's distance to the coordinate-wise median."""
    x = as_updates(updates)
    centre = Median()(x).aggregate
    r = np.sqrt(sq_distances_to(x, centre, row_sq_norms(x)))
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    return (r - np.median(r)) / max(mad, 1e-12 * max(float(np.median(r)), 1e-300))
