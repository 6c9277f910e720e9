"""In-place arithmetic on ring vectors: wrapping add/subtract and the final reduction mod 2^k.

Theory of operation: masked vectors live in Z_{2^k} but are stored as uint32 (k <= 32) or uint64
words.  Adding and subtracting with the words' native wrap-around computes mod 2^32 / 2^64, and
since 2^k divides both, one final ``reduce_into`` (acc &= 2^k - 1) gives the sum mod 2^k: no
per-operation reduction is needed while masks are added, cancelled and summed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fedsecure.errors import InvalidInput
from fedsecure.kernels._checks import modulus_bits_for, ring_vector


def add_into(acc: np.ndarray, x: np.ndarray) -> None:
    """acc += x, wrapping (same dtype and shape)."""
    _add_kernel(*_operands(acc, x))


def sub_into(acc: np.ndarray, x: np.ndarray) -> None:
    """acc -= x, wrapping (same dtype and shape)."""
    _sub_kernel(*_operands(acc, x))


def reduce_into(acc: np.ndarray, modulus_bits: int) -> None:
    """acc &= 2^modulus_bits - 1: reduce the words mod 2^k."""
    flat = ring_vector(acc, "acc")
    _and_kernel(flat, _mask(flat.dtype, modulus_bits))


def add_into_reference(acc: np.ndarray, x: np.ndarray) -> None:
    """NumPy reference of :func:`add_into`."""
    flat, other = _operands(acc, x)
    np.add(flat, other, out=flat)


def sub_into_reference(acc: np.ndarray, x: np.ndarray) -> None:
    """NumPy reference of :func:`sub_into`."""
    flat, other = _operands(acc, x)
    np.subtract(flat, other, out=flat)


def reduce_into_reference(acc: np.ndarray, modulus_bits: int) -> None:
    """NumPy reference of :func:`reduce_into`."""
    flat = ring_vector(acc, "acc")
    np.bitwise_and(flat, _mask(flat.dtype, modulus_bits), out=flat)


@njit(cache=True)
def _add_kernel(acc, x):
    for i in range(acc.size):
        acc[i] += x[i]


@njit(cache=True)
def _sub_kernel(acc, x):
    for i in range(acc.size):
        acc[i] -= x[i]


@njit(cache=True)
def _and_kernel(acc, mask):
    for i in range(acc.size):
        acc[i] &= mask


def _mask(dtype: np.dtype, modulus_bits: int) -> np.unsignedinteger:
    return dtype.type((1 << modulus_bits_for(modulus_bits, dtype)) - 1)


def _operands(acc, x) -> tuple[np.ndarray, np.ndarray]:
    flat = ring_vector(acc, "acc")
    if not isinstance(x, np.ndarray) or x.dtype != acc.dtype or x.shape != acc.shape:
        raise InvalidInput(f"x: must be a {acc.dtype.str} array of shape {acc.shape}")
    return flat, np.ascontiguousarray(x).reshape(-1)
