"""The mask PRG: known answers against pycryptodome, cancellation, streaming, chunk boundaries."""

import numpy as np
import pytest
from Crypto.Cipher import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError
from fedsecure.hazmat.agreement import derive_key
from fedsecure.hazmat.prg import CHUNK_BYTES, MaskPRG, expand

SEED = bytes(range(32))
CONTEXT = b"session=7|round=3|pair=(1,2)"
DTYPES = ["<u4", "<u8"]


def pycryptodome_keystream(seed: bytes, context: bytes, nbytes: int) -> bytes:
    key = derive_key(seed, purpose="mask-prg", context=context)
    return AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=bytes(16)).encrypt(bytes(nbytes))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count", [0, 1, 3, 1000, CHUNK_BYTES // 4 + 5, 3 * CHUNK_BYTES // 8 - 1])
def test_words_equal_pycryptodome_aes256_ctr(count, dtype):
    words = MaskPRG(SEED, CONTEXT).words(count, dtype)
    expected = pycryptodome_keystream(SEED, CONTEXT, count * np.dtype(dtype).itemsize)
    assert words.dtype == np.dtype(dtype) and words.shape == (count,)
    assert words.tobytes() == expected
    assert np.array_equal(expand(SEED, CONTEXT, count, dtype), words)


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(0, 3 * CHUNK_BYTES // 4), min_size=1, max_size=4),
       dtype=st.sampled_from(DTYPES))
def test_successive_calls_continue_the_stream(sizes, dtype):
    prg = MaskPRG(SEED, CONTEXT)
    pieces = [prg.words(n, dtype) for n in sizes]
    assert np.array_equal(np.concatenate(pieces), expand(SEED, CONTEXT, sum(sizes), dtype))


@settings(max_examples=15, deadline=None)
@given(length=st.integers(0, 2 * CHUNK_BYTES // 4 + 17), dtype=st.sampled_from(DTYPES),
       seed=st.binary(min_size=32, max_size=32))
def test_add_then_subtract_restores_the_vector(length, dtype, seed):
    original = np.random.default_rng(length).integers(0, 2**32, length).astype(dtype)
    vector = original.copy()
    MaskPRG(seed, CONTEXT).add_into(vector)
    if length >= 4:
        assert not np.array_equal(vector, original)
    MaskPRG(seed, CONTEXT).add_into(vector, sign=-1)
    assert np.array_equal(vector, original)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("length", [1, CHUNK_BYTES // 8, CHUNK_BYTES // 4 - 1, CHUNK_BYTES // 4,
                                    CHUNK_BYTES // 4 + 1, 5 * CHUNK_BYTES // 8 + 3])
def test_add_into_wraps_exactly_across_chunk_boundaries(length, dtype):
    stream = expand(SEED, CONTEXT, length, dtype)
    vector = np.full(length, np.iinfo(dtype).max, dtype=dtype)  # max + w wraps to w - 1
    MaskPRG(SEED, CONTEXT).add_into(vector)
    assert np.array_equal(vector, stream - np.array(1, dtype=dtype))
    vector = np.zeros(length, dtype=dtype)  # 0 - w wraps to the two's complement of w
    MaskPRG(SEED, CONTEXT).add_into(vector, sign=-1)
    assert np.array_equal(vector, ~stream + np.array(1, dtype=dtype))


def test_contexts_and_seeds_separate_streams():
    streams = [expand(SEED, CONTEXT, 8, "<u4"), expand(SEED, CONTEXT + b"x", 8, "<u4"),
               expand(bytes(32), CONTEXT, 8, "<u4")]
    assert len({s.tobytes() for s in streams}) == 3


def test_pairwise_masks_cancel_in_the_sum():
    x, y = np.arange(10, dtype=np.uint64), np.arange(10, 20, dtype=np.uint64)
    MaskPRG(SEED, CONTEXT).add_into(x)
    MaskPRG(SEED, CONTEXT).add_into(y, sign=-1)
    assert np.array_equal(x + y, np.arange(10, dtype=np.uint64) + np.arange(10, 20))


@pytest.mark.parametrize("seed", [bytes(16), bytes(31), bytes(33), "x" * 32])
def test_seed_must_be_32_bytes(seed):
    with pytest.raises(ConfigurationError):
        MaskPRG(seed, CONTEXT)


@pytest.mark.parametrize("out", [
    np.zeros(4, dtype=np.int32), np.zeros(4, dtype=np.float64), np.zeros(4, dtype=">u4"),
    np.zeros((2, 2), dtype=np.uint32), np.zeros(8, dtype=np.uint32)[::2], [0, 0, 0],
])
def test_add_into_refuses_unusable_arrays(out):
    with pytest.raises(ConfigurationError):
        MaskPRG(SEED, CONTEXT).add_into(out)


def test_add_into_refuses_read_only_arrays_and_bad_sign():
    frozen = np.zeros(4, dtype=np.uint32)
    frozen.flags.writeable = False
    with pytest.raises(ConfigurationError):
        MaskPRG(SEED, CONTEXT).add_into(frozen)
    with pytest.raises(ConfigurationError):
        MaskPRG(SEED, CONTEXT).add_into(np.zeros(4, dtype=np.uint32), sign=2)


@pytest.mark.parametrize("dtype", ["<u2", "<i4", ">u8", "float64"])
def test_words_refuses_other_dtypes(dtype):
    with pytest.raises(ConfigurationError):
        MaskPRG(SEED, CONTEXT).words(4, dtype)
