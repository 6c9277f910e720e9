"""Fixed-point encoding of float vectors into the ring Z_{2^k}, and back.

Theory of operation: a coordinate x is clipped to [-clip, clip] and scaled; stochastic rounding
q = floor(c * scale + u / 2^32), with u uniform in [0, 2^32), rounds up with probability equal
to the fractional part, so E[q] = c * scale (unbiased up to the 2^-32 resolution of u).  The
integer q times the client's weight is stored mod 2^k as a uint32 (k <= 32) or uint64 word,
negatives in two's complement.  Decoding reads a word mod 2^k as a signed integer (values
>= 2^(k-1) are negative) and divides by the scale.  Intermediates are int64; the caller's
:class:`~fedsecure.config.FixedPoint` guarantees that nothing overflows.

Sign extension uses shifts: (v << (64 - k)) >> (64 - k) with an arithmetic right shift maps
v mod 2^k to its signed value for every k in [1, 64].  The numba kernels and the NumPy
references perform the same float64 operations in the same order, so they agree bit for bit.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit

from fedsecure.errors import ConfigurationError, InvalidInput
from fedsecure.kernels._checks import RING_DTYPES, modulus_bits_for, ring_dtype

UNIFORM_SCALE = 2.0**-32


def quantize(x: np.ndarray, uniform: np.ndarray, *, scale: float, clip: float, weight: int,
             modulus_bits: int, dtype: str) -> np.ndarray:
    """Clip, stochastically round, weight and reduce ``x`` into ``dtype`` words mod 2^k."""
    x, uniform, _, _, out_dtype = _quantize_args(x, uniform, scale, clip, weight, modulus_bits,
                                                 dtype)
    out = np.empty(x.shape, dtype=out_dtype)
    Quantizer(scale=scale, clip=clip, weight=weight, modulus_bits=modulus_bits, dtype=dtype)(
        x.reshape(-1), uniform.reshape(-1), out.reshape(-1))
    return out


class Quantizer:
    """:func:`quantize` with its parameters checked once, applied chunk by chunk: the SecAgg
    client quantizes its input straight into the words it masks, 128 KiB at a time, where
    quantize's per-call checks would cost a third of the kernel."""

    def __init__(self, *, scale: float, clip: float, weight: int, modulus_bits: int, dtype: str):
        _, _, self._weight, self._mask, self.dtype = _quantize_args(
            np.empty(0), np.empty(0, np.uint32), scale, clip, weight, modulus_bits, dtype)
        self._scale, self._clip = float(scale), float(clip)

    def __call__(self, x: np.ndarray, uniform: np.ndarray, out: np.ndarray) -> None:
        """``out[:] = quantize(x, uniform)``: 1-D float64 ``x``, uint32 ``uniform`` and a
        writeable ``out`` of this quantizer's dtype, all of one length."""
        if not (isinstance(x, np.ndarray) and isinstance(uniform, np.ndarray)
                and isinstance(out, np.ndarray) and x.dtype == np.float64
                and uniform.dtype == np.uint32 and out.dtype == self.dtype
                and x.ndim == uniform.ndim == out.ndim == 1
                and len(x) == len(uniform) == len(out) and out.flags.writeable):
            raise InvalidInput(f"x, uniform, out: must be 1-D float64, uint32 and writeable"
                               f" {self.dtype.str} arrays of one length")
        _quantize_kernel(x, uniform, self._scale, self._clip, self._weight, self._mask, out)


def quantize_reference(x: np.ndarray, uniform: np.ndarray, *, scale: float, clip: float,
                       weight: int, modulus_bits: int, dtype: str) -> np.ndarray:
    """NumPy reference of :func:`quantize`."""
    x, uniform, weight, mask, out_dtype = _quantize_args(x, uniform, scale, clip, weight,
                                                         modulus_bits, dtype)
    clipped = np.minimum(np.maximum(x, -float(clip)), float(clip))
    q = np.floor(clipped * float(scale) + uniform * UNIFORM_SCALE).astype(np.int64)
    return ((q * weight) & mask).view(np.uint64).astype(out_dtype)


def dequantize(words: np.ndarray, *, modulus_bits: int, scale: float) -> np.ndarray:
    """Decode words mod 2^k as signed integers divided by ``scale`` (float64)."""
    words, shift = _dequantize_args(words, modulus_bits, scale)
    out = np.empty(words.size, dtype=np.float64)
    _dequantize_kernel(words.reshape(-1), shift, float(scale), out)
    return out.reshape(words.shape)


def dequantize_reference(words: np.ndarray, *, modulus_bits: int, scale: float) -> np.ndarray:
    """NumPy reference of :func:`dequantize`."""
    words, shift = _dequantize_args(words, modulus_bits, scale)
    signed = words.astype(np.uint64).view(np.int64)
    return ((signed << shift) >> shift).astype(np.float64) / float(scale)


@njit(cache=True)
def _quantize_kernel(x, uniform, scale, clip, weight, mask, out):
    for i in range(x.size):
        clipped = min(max(x[i], -clip), clip)
        q = np.int64(np.floor(clipped * scale + uniform[i] * UNIFORM_SCALE))
        out[i] = (q * weight) & mask


@njit(cache=True)
def _dequantize_kernel(words, shift, scale, out):
    for i in range(words.size):
        signed = np.int64(np.uint64(words[i]))
        out[i] = np.float64((signed << shift) >> shift) / scale


def _low_bits_mask(bits: int) -> np.int64:
    """2^k - 1 as an int64 (all ones, i.e. -1, for k = 64)."""
    return np.int64(-1) if bits == 64 else np.int64((1 << bits) - 1)


def _positive_finite(value: float, name: str) -> None:
    if not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name}={value!r}: must be a finite number > 0")


def _quantize_args(x, uniform, scale, clip, weight, modulus_bits, dtype):
    out_dtype = ring_dtype(dtype)
    bits = modulus_bits_for(modulus_bits, out_dtype)
    _positive_finite(scale, "scale")
    _positive_finite(clip, "clip")
    if not isinstance(weight, numbers.Integral) or not -2**63 <= weight < 2**63:
        raise ConfigurationError(f"weight={weight!r}: must be an integer that fits in int64")
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise InvalidInput("x: must be a float64 numpy array")
    if not isinstance(uniform, np.ndarray) or uniform.dtype != np.uint32 \
            or uniform.shape != x.shape:
        raise InvalidInput(f"uniform: must be a uint32 array of shape {x.shape}")
    return (np.ascontiguousarray(x), np.ascontiguousarray(uniform), np.int64(weight),
            _low_bits_mask(bits), out_dtype)


def _dequantize_args(words, modulus_bits, scale):
    if not isinstance(words, np.ndarray) or words.dtype not in RING_DTYPES:
        raise InvalidInput("words: must be a '<u4' or '<u8' numpy array")
    shift = 64 - modulus_bits_for(modulus_bits, words.dtype)
    _positive_finite(scale, "scale")
    return np.ascontiguousarray(words), shift
