"""Narrow mask draws (issue #17): value i of a b-bit ring is the ceil(b/8) keystream bytes at
byte i * ceil(b/8), little-endian, mod 2^b -- against a NumPy reference over pycryptodome."""

import numpy as np
import pytest
from Crypto.Cipher import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError
from fedsecure.hazmat.agreement import derive_key
from fedsecure.hazmat.prg import CHUNK_BYTES, MaskPRG, add_masks_into, draw_bytes, expand

SEED = bytes(range(32))
CONTEXT = b"narrow"


def reference(context: bytes, count: int, dtype: str, bits: int) -> np.ndarray:
    width = (bits + 7) // 8
    key = derive_key(SEED, purpose="mask-prg", context=context)
    stream = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=bytes(16)).encrypt(
        bytes(count * width))
    wide = np.zeros((count, 8), dtype=np.uint8)
    wide[:, :width] = np.frombuffer(stream, dtype=np.uint8).reshape(count, width)
    return (wide.view("<u8")[:, 0] & np.uint64((1 << bits) - 1)).astype(dtype)


def rings():
    return st.sampled_from(["<u4", "<u8"]).flatmap(
        lambda dtype: st.tuples(st.just(dtype), st.integers(1, 8 * np.dtype(dtype).itemsize)))


@settings(max_examples=40, deadline=None)
@given(ring=rings(), count=st.sampled_from([0, 1, 7, 8, 9, CHUNK_BYTES // 8 - 1,
                                            CHUNK_BYTES // 4 + 1]))
def test_values_equal_the_reference(ring, count):
    dtype, bits = ring
    assert np.array_equal(expand(SEED, CONTEXT, count, dtype, bits),
                          reference(CONTEXT, count, dtype, bits))
    assert draw_bytes(bits, dtype) == (bits + 7) // 8


@settings(max_examples=25, deadline=None)
@given(ring=rings(), length=st.integers(0, CHUNK_BYTES // 4 + 17),
       signs=st.lists(st.sampled_from([1, -1]), max_size=9))
def test_add_masks_into_equals_the_reference_sum(ring, length, signs):
    dtype, bits = ring
    contexts = [CONTEXT + bytes([i]) for i in range(len(signs))]
    base = np.random.default_rng(length).integers(0, 2**32, length).astype(dtype)
    expected = base.astype(object)
    for context, sign in zip(contexts, signs):
        expected = expected + sign * reference(context, length, dtype, bits).astype(object)
    got = base.copy()
    add_masks_into(got, [(MaskPRG(SEED, c), s) for c, s in zip(contexts, signs)], bits=bits)
    assert [int(v) for v in got] == [int(v) % 2**bits for v in expected]


@pytest.mark.parametrize("bits", [0, 33, 1.5, True])
def test_bits_outside_the_word_are_refused(bits):
    with pytest.raises(ConfigurationError):
        MaskPRG(SEED, CONTEXT).words(4, "<u4", bits)
