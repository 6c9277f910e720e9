"""quantize/dequantize: numba equals the NumPy reference bit for bit; encoding is unbiased."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedsecure.errors import ConfigurationError, InvalidInput
from fedsecure.kernels.quantize import (
    Quantizer,
    dequantize,
    dequantize_reference,
    quantize,
    quantize_reference,
)
from fedsecure.rng import DeterministicRandom, random_uint32


def ring_dtype(bits: int) -> str:
    return "<u4" if bits <= 32 else "<u8"


def _max_weight(clip: float, scale: float) -> int:
    """The largest |weight| the caller may pass: (clip * scale + 1) * |weight| < 2^62."""
    return min(2**20, math.floor(2**62 / (clip * scale + 1)) - 1)


@st.composite
def quantize_cases(draw, *, no_wrap: bool = False):
    """Valid quantize inputs, built (not filtered) to meet the caller's overflow guarantee.

    With ``no_wrap`` the weight is nonzero and the ring is wide enough that the weighted,
    clipped value never wraps around: 2 * (clip * scale + 1) * |weight| < 2^bits.
    """
    n = draw(st.integers(0, 200))
    x = draw(hnp.arrays(np.float64, n, elements=st.floats(allow_nan=False, width=64)))
    uniform = draw(hnp.arrays(np.uint32, n))
    clip = draw(st.floats(1e-3, 1e4))
    scale = 2.0 ** draw(st.integers(0, 40))
    limit = _max_weight(clip, scale)
    if no_wrap:
        weight = draw(st.integers(1, limit)) * draw(st.sampled_from([1, -1]))
        span = 2 * (clip * scale + 1) * abs(weight)
        least_bits = max(1, math.floor(math.log2(span)))
        while 2.0**least_bits <= span:
            least_bits += 1
        bits = draw(st.integers(least_bits, 64))
    else:
        weight = draw(st.integers(-limit, limit))
        bits = draw(st.integers(1, 64))
    return x, uniform, dict(scale=scale, clip=clip, weight=weight, modulus_bits=bits,
                            dtype=ring_dtype(bits))


@settings(max_examples=150, deadline=None)
@given(case=quantize_cases())
def test_quantize_equals_reference(case):
    x, uniform, options = case
    words = quantize(x, uniform, **options)
    assert words.dtype == np.dtype(options["dtype"]) and words.shape == x.shape
    assert np.array_equal(words, quantize_reference(x, uniform, **options))
    assert not (words.astype(np.uint64) >> np.uint64(options["modulus_bits"])).any() \
        or options["modulus_bits"] == 64
    into = np.full(x.size, 7, dtype=options["dtype"])  # the caller's buffer, overwritten
    quantizer = Quantizer(**options)
    flat_x, flat_uniform = x.reshape(-1), uniform.reshape(-1)
    for start in range(0, max(x.size, 1), 7):  # chunk by chunk, as the client does
        piece = slice(start, start + 7)
        quantizer(flat_x[piece], flat_uniform[piece], into[piece])
    assert np.array_equal(into, words.reshape(-1))


@settings(max_examples=100, deadline=None)
@given(bits=st.integers(1, 64), scale=st.floats(1e-6, 2.0**40), data=st.data())
def test_dequantize_equals_reference(bits, scale, data):
    words = data.draw(hnp.arrays(ring_dtype(bits), st.integers(0, 200)))
    decoded = dequantize(words, modulus_bits=bits, scale=scale)
    assert decoded.dtype == np.float64
    assert np.array_equal(decoded, dequantize_reference(words, modulus_bits=bits, scale=scale))


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 64), data=st.data())
def test_dequantize_reads_words_as_signed_mod_2k(bits, data):
    """Independent check with Python integers: v mod 2^k, minus 2^k when v >= 2^(k-1)."""
    words = data.draw(hnp.arrays(ring_dtype(bits), st.integers(1, 50)))
    expected = []
    for w in words.tolist():
        v = w % 2**bits
        expected.append(float(v - 2**bits if v >= 2 ** (bits - 1) else v))
    assert dequantize(words, modulus_bits=bits, scale=1.0).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(case=quantize_cases(no_wrap=True))
def test_round_trip_is_within_one_step(case):
    x, uniform, options = case
    bits, scale, clip, weight = (options[k] for k in ("modulus_bits", "scale", "clip", "weight"))
    decoded = dequantize(quantize(x, uniform, **options), modulus_bits=bits, scale=scale)
    clipped = np.clip(x, -clip, clip)
    assert np.all(np.abs(decoded / weight - clipped) <= 1 / scale + 1e-9 * np.abs(clipped))


def test_weighted_negative_values_use_twos_complement():
    x = np.array([-1.0, 0.5, 2.0])
    uniform = np.zeros(3, dtype=np.uint32)
    words = quantize(x, uniform, scale=4.0, clip=1.5, weight=3, modulus_bits=10, dtype="<u4")
    assert words.tolist() == [1024 - 12, 6, 18]  # q = -4, 2, 6 (clipped), times 3, mod 2^10
    words64 = quantize(x, uniform, scale=4.0, clip=1.5, weight=3, modulus_bits=64, dtype="<u8")
    assert words64.tolist() == [2**64 - 12, 6, 18]


@pytest.mark.parametrize("value", [0.3, -2.7, 0.999, -0.001])
def test_stochastic_rounding_is_unbiased(value):
    n = 100_000
    uniform = random_uint32(DeterministicRandom(str(value)), n)
    words = quantize(np.full(n, value), uniform, scale=1.0, clip=10.0, weight=1,
                     modulus_bits=32, dtype="<u4")
    q = dequantize(words, modulus_bits=32, scale=1.0)
    assert set(np.unique(q)) <= {np.floor(value), np.floor(value) + 1}
    fraction = value - np.floor(value)
    tolerance = 5 * np.sqrt(max(fraction * (1 - fraction), 1e-3) / n)  # 5 sigma
    assert abs(q.mean() - value) < tolerance


def test_shape_is_preserved():
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    uniform = np.zeros((3, 4), dtype=np.uint32)
    words = quantize(x, uniform, scale=8.0, clip=1.0, weight=1, modulus_bits=16, dtype="<u4")
    assert words.shape == (3, 4)
    assert dequantize(words, modulus_bits=16, scale=8.0).shape == (3, 4)


GOOD = dict(scale=2.0, clip=1.0, weight=1, modulus_bits=16, dtype="<u4")


@pytest.mark.parametrize("change", [
    dict(dtype="<u2"), dict(dtype=">u4"), dict(modulus_bits=0), dict(modulus_bits=33),
    dict(modulus_bits=65, dtype="<u8"), dict(scale=0.0), dict(scale=float("nan")),
    dict(clip=-1.0), dict(clip=float("inf")), dict(weight=1.5), dict(weight=2**63),
])
def test_quantize_refuses_bad_parameters(change):
    with pytest.raises(ConfigurationError):
        quantize(np.zeros(2), np.zeros(2, np.uint32), **{**GOOD, **change})


@pytest.mark.parametrize("x,uniform", [
    (np.zeros(2, np.float32), np.zeros(2, np.uint32)),
    (np.zeros(2), np.zeros(3, np.uint32)),
    (np.zeros(2), np.zeros(2, np.uint64)),
    ([0.0, 1.0], np.zeros(2, np.uint32)),
])
def test_quantize_refuses_bad_arrays(x, uniform):
    with pytest.raises(InvalidInput):
        quantize(x, uniform, **GOOD)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@pytest.mark.parametrize("x, uniform, out", [
    (np.zeros(2), np.zeros(2, np.uint32), np.zeros(2, np.uint64)),
    (np.zeros(2), np.zeros(2, np.uint32), np.zeros(3, np.uint32)),
    (np.zeros(2), np.zeros(3, np.uint32), np.zeros(2, np.uint32)),
    (np.zeros(2, np.float32), np.zeros(2, np.uint32), np.zeros(2, np.uint32)),
    (np.zeros((1, 2)), np.zeros((1, 2), np.uint32), np.zeros((1, 2), np.uint32)),
    (np.zeros(2), np.zeros(2, np.uint32), _read_only(np.zeros(2, np.uint32))),
    (np.zeros(2), np.zeros(2, np.uint32), [0, 0]),
])
def test_quantizer_refuses_bad_chunks(x, uniform, out):
    with pytest.raises(InvalidInput):
        Quantizer(**GOOD)(x, uniform, out)


@pytest.mark.parametrize("change", [dict(dtype="<u2"), dict(modulus_bits=33), dict(scale=0.0),
                                    dict(weight=1.5)])
def test_quantizer_checks_its_parameters_once_like_quantize(change):
    with pytest.raises(ConfigurationError):
        Quantizer(**{**GOOD, **change})


def test_dequantize_refuses_bad_arguments():
    with pytest.raises(InvalidInput):
        dequantize([1, 2], modulus_bits=8, scale=1.0)
    with pytest.raises(InvalidInput):
        dequantize(np.zeros(2, np.int64), modulus_bits=8, scale=1.0)
    with pytest.raises(ConfigurationError):
        dequantize(np.zeros(2, np.uint32), modulus_bits=40, scale=1.0)
    with pytest.raises(ConfigurationError):
        dequantize(np.zeros(2, np.uint32), modulus_bits=8, scale=0.0)
