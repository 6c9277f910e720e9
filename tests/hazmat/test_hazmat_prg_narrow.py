"""Mask draws by ring width (issue #17): value i of a b-bit ring is the w keystream bytes at byte
i * w, little-endian, mod 2^b, w = ceil(b/8) for 33 <= b <= 48 and the word size otherwise --
against a NumPy reference over pycryptodome."""

import os
import subprocess
import sys

import numpy as np
import pytest
from Crypto.Cipher import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError
from fedsecure.hazmat.agreement import derive_key
from fedsecure.hazmat.prg import (
    CHUNK_BYTES,
    MaskPRG,
    add_masks_into,
    chunk_values,
    draw_bytes,
    expand,
)

SEED = bytes(range(32))
CONTEXT = b"narrow"


def width_of(bits: int, dtype: str) -> int:
    return (bits + 7) // 8 if 33 <= bits <= 48 else np.dtype(dtype).itemsize


def reference(context: bytes, count: int, dtype: str, bits: int, skip: int = 0) -> np.ndarray:
    """Values ``skip`` .. ``skip + count - 1``."""
    width = width_of(bits, dtype)
    key = derive_key(SEED, purpose="mask-prg", context=context)
    stream = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=bytes(16)).encrypt(
        bytes((skip + count) * width))[skip * width:]
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
    assert draw_bytes(bits, dtype) == width_of(bits, dtype)


@pytest.mark.parametrize("bits, dtype, chunk", [
    (24, "<u4", CHUNK_BYTES // 4), (34, "<u8", 26208), (41, "<u8", 21840), (64, "<u8", CHUNK_BYTES // 8)])
def test_chunks_hold_a_keystream_row_in_whole_blocks(bits, dtype, chunk):
    assert chunk_values(dtype, bits) == chunk and chunk % 8 == 0


@pytest.mark.parametrize("bits, dtype, width", [
    (1, "<u4", 4), (24, "<u4", 4), (32, "<u4", 4), (32, "<u8", 8), (33, "<u8", 5),
    (34, "<u8", 5), (40, "<u8", 5), (41, "<u8", 6), (48, "<u8", 6), (49, "<u8", 8), (64, "<u8", 8)])
def test_draw_widths(bits, dtype, width):
    assert draw_bytes(bits, dtype) == width


@pytest.mark.parametrize("dtype", ["<u4", "<u8"])
def test_word_width_rings_read_whole_words_as_before(dtype):
    """b = 32 / 64 (and every b of a u32 ring): the plain little-endian keystream words."""
    bits = 8 * np.dtype(dtype).itemsize
    words = expand(SEED, CONTEXT, 1000, dtype)
    assert np.array_equal(expand(SEED, CONTEXT, 1000, dtype, bits), words)
    assert np.array_equal(reference(CONTEXT, 1000, dtype, bits), words)


@settings(max_examples=20, deadline=None)
@given(bits=st.integers(33, 64), sizes=st.lists(st.integers(0, CHUNK_BYTES // 8 + 9),
                                                min_size=1, max_size=3))
def test_successive_narrow_calls_continue_the_stream(bits, sizes):
    prg = MaskPRG(SEED, CONTEXT)
    pieces = [prg.words(n, "<u8", bits) for n in sizes]
    assert np.array_equal(np.concatenate(pieces), reference(CONTEXT, sum(sizes), "<u8", bits))


@settings(max_examples=30, deadline=None)
@given(ring=rings(), pick=st.integers(0, 8),
       signs=st.lists(st.sampled_from([1, -1]), max_size=9), offset=st.integers(0, 3))
def test_add_masks_into_equals_the_reference_sum(ring, pick, signs, offset):
    """GROUP masks of one sign per pass, chunk by chunk, after ``prepare`` wrote each chunk,
    from PRGs ``offset`` values in: the reference sum mod 2^b, and one add_into per mask; every
    PRG is left where add_into would leave it.  Lengths around the ring's chunk (narrow rings
    have longer chunks than word rings) and around the 8-value blocks."""
    dtype, bits = ring
    chunk = chunk_values(dtype, bits)
    length = [0, 1, 7, 8, 9, chunk - 1, chunk, chunk + 1, 2 * chunk + 17][pick]
    contexts = [CONTEXT + bytes([i]) for i in range(len(signs))]
    base = np.random.default_rng(length).integers(0, 2**32, length).astype(dtype)
    expected = base.astype(object)
    one_each = base & np.array(2**bits - 1, dtype=np.uint64).astype(dtype)  # reduced, like got
    for context, sign in zip(contexts, signs):
        expected = expected + sign * reference(context, length, dtype, bits, offset).astype(object)
        one = MaskPRG(SEED, context)
        one.words(offset, dtype, bits)
        one.add_into(one_each, sign, bits)
    prgs = [MaskPRG(SEED, c) for c in contexts]
    for prg in prgs:
        prg.words(offset, dtype, bits)
    seen = []

    def prepare(start, part):
        assert 0 < len(part) <= chunk_values(dtype, bits) and start == sum(len(p) for p in seen)
        seen.append(part)
        part[:] = base[start:start + len(part)]

    got = np.zeros(length, dtype=dtype)
    add_masks_into(got, list(zip(prgs, signs)), prepare=prepare, bits=bits)
    assert [int(v) for v in got] == [int(v) % 2**bits for v in expected]
    assert np.array_equal(one_each, got) and sum(len(p) for p in seen) == length
    for prg, context in zip(prgs, contexts):
        assert np.array_equal(prg.words(3, dtype, bits),
                              reference(context, 3, dtype, bits, offset + length))


@settings(max_examples=20, deadline=None)
@given(ring=rings(), length=st.integers(0, CHUNK_BYTES // 8 + 9))
def test_pairwise_masks_cancel(ring, length):
    dtype, bits = ring
    x = np.random.default_rng(length).integers(0, 2**bits, length, dtype=np.uint64).astype(dtype)
    y = x[::-1].copy()
    total = (x.astype(object) + y.astype(object)) % 2**bits
    MaskPRG(SEED, CONTEXT).add_into(x, 1, bits)
    MaskPRG(SEED, CONTEXT).add_into(y, -1, bits)
    assert [int(v) for v in (x.astype(object) + y.astype(object)) % 2**bits] == list(total)


@pytest.mark.parametrize("bits", [0, 33, 1.5, True])
def test_bits_outside_the_word_are_refused(bits):
    with pytest.raises(ConfigurationError):
        MaskPRG(SEED, CONTEXT).words(4, "<u4", bits)


GENERIC_CASES = [(bits, length) for bits in (33, 34, 40, 41, 48)
                 for length in (1, 8, 9, chunk_values("<u8", bits) + 3)]  # past a chunk


def test_narrow_kernel_compiled_for_a_generic_cpu_matches_the_reference(tmp_path):
    """The narrow kernel's byte shuffle is LLVM vector code: compiled for a baseline CPU
    (``NUMBA_CPU_NAME=generic``: SSE2, no AVX-512 VBMI ``vpermb``), in a fresh process and
    numba cache, it still gives the reference values, added and subtracted."""
    script = (
        "import sys, numpy as np\n"
        "from fedsecure.hazmat.prg import MaskPRG, add_masks_into\n"
        f"cases = {GENERIC_CASES!r}\n"
        "for bits, length in cases:\n"
        "    out = np.zeros(length, dtype='<u8')\n"
        f"    masks = [(MaskPRG({SEED!r}, {CONTEXT!r} + bytes([i])), (-1) ** i) for i in range(6)]\n"
        "    add_masks_into(out, masks, bits=bits)\n"
        "    np.save(sys.argv[1] + f'/{bits}-{length}.npy', out)\n")
    env = dict(os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, check=True)
    for bits, length in GENERIC_CASES:
        expected = sum(((-1) ** i * reference(CONTEXT + bytes([i]), length, "<u8", bits).astype(object)
                        for i in range(6)), np.zeros(length, dtype=object)) % 2**bits
        got = np.load(tmp_path / f"{bits}-{length}.npy")
        assert [int(v) for v in got] == list(expected), (bits, length)
