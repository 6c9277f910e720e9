"""Bit-packing: the numba kernels equal the NumPy references and Python-integer arithmetic."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedsecure.errors import ConfigurationError, InvalidInput, MalformedMessage
from fedsecure.kernels.packing import (
    add_packed_into,
    add_packed_into_reference,
    pack,
    pack_reference,
    packed_size,
    unpack,
    unpack_reference,
)


@st.composite
def packable(draw):
    """A word dtype, a width b <= its bits, and words < 2^b (built valid, never filtered)."""
    dtype = draw(st.sampled_from(["<u4", "<u8"]))
    bits = draw(st.integers(1, 8 * np.dtype(dtype).itemsize))
    words = draw(hnp.arrays(dtype, st.integers(0, 200),
                            elements=st.integers(0, 2**bits - 1)))
    return words, bits


def integer_stream(words, bits) -> bytes:
    """The packed stream by Python integers: value i at bits [i*b, (i+1)*b), LSB first."""
    total = sum(int(w) << (i * bits) for i, w in enumerate(words.tolist()))
    return total.to_bytes((len(words) * bits + 7) // 8, "little")


@settings(max_examples=150, deadline=None)
@given(case=packable())
def test_pack_equals_reference_and_integer_stream(case):
    words, bits = case
    packed = pack(words, bits)
    assert packed.dtype == np.uint8 and len(packed) == packed_size(len(words), bits)
    assert packed.tobytes() == pack_reference(words, bits).tobytes() == integer_stream(words, bits)


@settings(max_examples=150, deadline=None)
@given(case=packable())
def test_unpack_inverts_pack_and_equals_reference(case):
    words, bits = case
    data = pack(words, bits).tobytes()
    for decode in (unpack, unpack_reference):
        out = decode(data, len(words), bits, words.dtype.str)
        assert out.dtype == words.dtype and np.array_equal(out, words)


@settings(max_examples=100, deadline=None)
@given(case=packable(), data=st.data())
def test_add_packed_into_adds_the_unpacked_words_wrapping(case, data):
    words, bits = case
    acc = data.draw(hnp.arrays(words.dtype, len(words)))
    width = 2 ** (8 * words.itemsize)
    expected = [(a + w) % width for a, w in zip(acc.tolist(), words.tolist())]
    packed = pack(words, bits).tobytes()
    for add in (add_packed_into, add_packed_into_reference):
        total = acc.copy()
        add(total, packed, bits)
        assert total.tolist() == expected


@settings(max_examples=60, deadline=None)
@given(case=packable(), shift=st.integers(0, 7), data=st.data())
def test_packed_bytes_at_any_alignment_decode_alike(case, shift, data):
    """The kernels read whole 64-bit words of the packed bytes in place when they are 8-byte
    aligned and copy them otherwise: both give the same words and sums."""
    words, bits = case
    packed = pack(words, bits)
    holder = np.zeros(len(packed) + 8, dtype=np.uint8)
    start = (-holder.ctypes.data + shift) % 8  # packed bytes at address = shift (mod 8)
    placed = holder[start:start + len(packed)]
    placed[:] = packed
    acc = data.draw(hnp.arrays(words.dtype, len(words)))
    expected = acc.copy()
    add_packed_into_reference(expected, packed, bits)
    assert np.array_equal(unpack(placed, len(words), bits, words.dtype.str), words)
    add_packed_into(acc, memoryview(placed), bits)
    assert np.array_equal(acc, expected)


def test_add_packed_into_refuses_malformed_data_and_read_only_sums():
    packed = pack(np.array([5, 1, 6], dtype="<u4"), 3).tobytes()
    frozen = np.zeros(3, np.uint32)
    frozen.flags.writeable = False
    for add in (add_packed_into, add_packed_into_reference):
        with pytest.raises(MalformedMessage):
            add(np.zeros(6, np.uint32), packed, 3)  # 6 words need 18 bits: 3 bytes
        with pytest.raises(MalformedMessage):
            add(np.zeros(3, np.uint32), packed[:1], 3)
        with pytest.raises(InvalidInput):
            add(frozen, packed, 3)
        with pytest.raises(InvalidInput):
            add(np.zeros(3, np.int32), packed, 3)


@settings(max_examples=60, deadline=None)
@given(case=packable(), data=st.data())
def test_unpack_refuses_any_wrong_length(case, data):
    words, bits = case
    packed = pack(words, bits).tobytes()
    extra = data.draw(st.integers(1, 9))
    wrong = [packed + bytes(extra)] + ([packed[:-min(extra, len(packed))]] if packed else [])
    for bad in wrong:
        for decode in (unpack, unpack_reference):
            with pytest.raises(MalformedMessage):
                decode(bad, len(words), bits, words.dtype.str)


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(["<u4", "<u8"]), data=st.data())
def test_unpack_refuses_nonzero_padding_bits(dtype, data):
    # A width that is not whole bytes and a count 8m + 1: the stream ends mid-byte.
    bits = data.draw(st.sampled_from([b for b in range(1, 8 * np.dtype(dtype).itemsize + 1)
                                      if b % 8]))
    count = 8 * data.draw(st.integers(0, 5)) + 1
    words = data.draw(hnp.arrays(dtype, count, elements=st.integers(0, 2**bits - 1)))
    packed = bytearray(pack(words, bits).tobytes())
    spare = len(packed) * 8 - count * bits
    packed[-1] |= 1 << (8 - data.draw(st.integers(1, spare)))
    for decode in (unpack, unpack_reference):
        with pytest.raises(MalformedMessage):
            decode(bytes(packed), count, bits, dtype)


@pytest.mark.parametrize("dtype,bits", [("<u4", 1), ("<u4", 17), ("<u4", 31), ("<u8", 33),
                                        ("<u8", 63)])
def test_pack_refuses_a_value_too_wide(dtype, bits):
    words = np.zeros(70, dtype=dtype)
    words[65] = 2**bits
    for encode in (pack, pack_reference):
        with pytest.raises(InvalidInput):
            encode(words, bits)


def test_known_layout():
    """Little-endian bit order: 3-bit values 1, 2, 7 are the bits 100 010 111 (LSB first)."""
    assert pack(np.array([1, 2, 7], dtype="<u4"), 3).tobytes() == bytes([0b11010001, 0b1])
    assert pack(np.array([0x0102, 0x0304], dtype="<u4"), 16).tobytes() == bytes([2, 1, 4, 3])
    words = np.array([2**64 - 1, 1], dtype="<u8")
    assert pack(words, 64).tobytes() == words.tobytes()


@pytest.mark.parametrize("call", [
    lambda: pack(np.zeros(3, np.int32), 8),
    lambda: pack(np.zeros((2, 2), np.uint32), 8),
    lambda: pack([1, 2], 8),
    lambda: unpack(np.zeros(3, np.int8), 3, 8),
    lambda: unpack("abc", 3, 8),
])
def test_refuses_bad_arrays(call):
    with pytest.raises(InvalidInput):
        call()


@pytest.mark.parametrize("call", [
    lambda: pack(np.zeros(3, np.uint32), 33),
    lambda: pack(np.zeros(3, np.uint64), 0),
    lambda: unpack(b"", 0, 65, "<u8"),
    lambda: unpack(b"", -1, 8),
    lambda: unpack(b"", 0, 8, "<i4"),
    lambda: packed_size(3, 65),
])
def test_refuses_bad_parameters(call):
    with pytest.raises(ConfigurationError):
        call()
