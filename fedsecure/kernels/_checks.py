"""Argument checks shared by the kernel wrappers (numba kernels themselves check nothing)."""

from __future__ import annotations

import operator

import numpy as np

from fedsecure.errors import ConfigurationError, InvalidInput

RING_DTYPES = (np.dtype("<u4"), np.dtype("<u8"))


def ring_dtype(dtype) -> np.dtype:
    """``dtype`` as one of the ring word dtypes ("<u4", "<u8"), else ConfigurationError."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in RING_DTYPES:
        raise ConfigurationError(f"dtype={dtype!r}: must be '<u4' or '<u8' (little-endian)")
    return resolved


def modulus_bits_for(modulus_bits: int, dtype: np.dtype) -> int:
    """``modulus_bits`` if it is an integer in [1, bit width of ``dtype``]."""
    try:
        bits = operator.index(modulus_bits)
    except TypeError:
        bits = None
    if bits is None or not 1 <= bits <= 8 * dtype.itemsize:
        raise ConfigurationError(
            f"modulus_bits={modulus_bits!r}: must be an integer in [1, {8 * dtype.itemsize}]"
            f" for {dtype.str} words")
    return bits


def ring_vector(array, name: str) -> np.ndarray:
    """A writeable, C-contiguous array of ring words, flattened to a 1-D view of itself."""
    if not isinstance(array, np.ndarray) or array.dtype not in RING_DTYPES \
            or not array.flags.c_contiguous or not array.flags.writeable:
        raise InvalidInput(f"{name}: must be a writeable, C-contiguous '<u4' or '<u8' array")
    return array.reshape(-1)
