"""Randomized Hadamard rotation: flatten a vector's coordinates before integer rounding.

Theory of operation (Kairouz, Liu and Steinke, ICML 2021, section 4): a vector x of length d is
zero-padded to d' = 2^ceil(log2 d) and mapped to y = H D x / sqrt(d'), with D a diagonal of
random signs and H the d' x d' Walsh-Hadamard matrix (entries +-1, H H = d' I).  The map is
orthonormal, so it keeps the L2 norm, and it spreads the mass of x evenly: each coordinate of y
is about ||x|| / sqrt(d') with sub-Gaussian tails, which keeps the later per-coordinate integer
range small.  The inverse is x = D H y / sqrt(d') (then truncated to d).  Every client and the
server use the same signs: they come from a *public* seed (known to all, the server included --
the rotation protects utility, not privacy) expanded with the mask PRG of :mod:`fedsecure.hazmat`.
The transform is the in-place butterfly, d' log2 d' additions.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fedsecure.config import require
from fedsecure.hazmat.prg import MaskPRG


def padded_length(d: int) -> int:
    """The power of two d' >= d the rotation works in."""
    require(isinstance(d, int) and d >= 1, "vector_length", d, "must be an integer >= 1")
    return 1 << (d - 1).bit_length()


def rotation_seed(session: bytes, round_index: int) -> bytes:
    """The public 32-byte seed of one round's signs (every party computes the same)."""
    return hashlib.sha256(b"fedsecure/dp/rotation/v1" + session
                          + round_index.to_bytes(8, "little")).digest()


class HadamardRotation:
    """y = H D pad(x) / sqrt(d') and its inverse, for vectors of length ``d``."""

    def __init__(self, d: int, seed: bytes):
        self.d = d
        self.padded = padded_length(d)
        bits = MaskPRG(seed, b"dp-rotation-signs").words(self.padded, "<u4") & 1
        self.signs = 1.0 - 2.0 * bits.astype(np.float64)

    def forward(self, x: np.ndarray) -> np.ndarray:
        padded = np.zeros(self.padded)
        padded[: self.d] = x
        return _hadamard(padded * self.signs)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return (_hadamard(np.asarray(y, dtype=np.float64)) * self.signs)[: self.d]


def _hadamard(x: np.ndarray) -> np.ndarray:
    """H x / sqrt(len(x)) (orthonormal fast Walsh-Hadamard transform)."""
    n = x.size
    y = x.copy()
    h = 1
    while h < n:
        y = y.reshape(-1, 2, h)
        y = np.stack((y[:, 0] + y[:, 1], y[:, 0] - y[:, 1]), axis=1)
        h *= 2
    return y.reshape(n) / np.sqrt(n)
