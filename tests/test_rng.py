"""Injected randomness: the AES-256-CTR keystream source and the bulk uint32 draws."""

import numpy as np
import pytest
from Crypto.Cipher import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from fedsecure.errors import ConfigurationError
from fedsecure.rng import (
    DeterministicRandom,
    KeystreamRandom,
    SystemRandom,
    bulk_uint32,
    random_uint32,
)


class CountingRandom:
    """A RandomSource that records how many bytes each call asked for."""

    def __init__(self):
        self.requests = []
        self._inner = DeterministicRandom("counting")

    def bytes(self, n: int) -> bytes:
        self.requests.append(n)
        return self._inner.bytes(n)


def test_keystream_is_aes256_ctr_by_an_independent_library():
    key = bytes(range(32))
    expected = AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=bytes(16)).encrypt(bytes(1000))
    stream = KeystreamRandom(key)
    out = np.empty(600, np.uint8)
    stream.fill(out)
    assert out.tobytes() + stream.bytes(400) == expected


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 70_000), max_size=6), use_fill=st.lists(st.booleans(),
                                                                              min_size=6, max_size=6))
def test_fill_and_bytes_continue_one_stream(sizes, use_fill):
    """Any interleaving of fill() and bytes() reads the same stream, with no byte skipped."""
    reference = KeystreamRandom(bytes(32)).bytes(sum(sizes))
    stream, pieces = KeystreamRandom(bytes(32)), []
    for size, fill in zip(sizes, use_fill):
        if fill:
            out = np.empty(size, np.uint8)
            stream.fill(out)
            pieces.append(out.tobytes())
        else:
            pieces.append(stream.bytes(size))
    assert b"".join(pieces) == reference


def test_fill_crosses_chunks_and_fills_multidimensional_arrays():
    size = 3 * 256 * 1024 + 11  # several chunks and an odd tail
    out = np.empty(size, np.uint8)
    KeystreamRandom(bytes(32)).fill(out)
    assert out.tobytes() == KeystreamRandom(bytes(32)).bytes(size)
    words = np.empty((3, 5), np.uint64)
    KeystreamRandom(bytes(32)).fill(words)
    assert words.tobytes() == KeystreamRandom(bytes(32)).bytes(120)


def test_random_uint32_reads_the_same_words_from_a_keystream_as_from_bytes():
    """The fast path keeps DeterministicRandom's draws (and so the conformance vectors)."""
    fast = random_uint32(DeterministicRandom("same"), 1001)
    slow = np.frombuffer(DeterministicRandom("same").bytes(4 * 1001), dtype="<u4")
    assert fast.dtype == np.dtype("<u4") and np.array_equal(fast, slow)


def test_bulk_uint32_reads_one_32_byte_seed_whatever_the_count():
    source = CountingRandom()
    words = bulk_uint32(source, 300_001)
    assert source.requests == [32] and words.dtype == np.dtype("<u4") and len(words) == 300_001
    assert len(bulk_uint32(source, 0)) == 0 and source.requests == [32, 32]


def test_bulk_uint32_is_the_keystream_under_the_drawn_seed():
    seed = DeterministicRandom("seed").bytes(32)
    words = bulk_uint32(DeterministicRandom("seed"), 1000)
    assert words.tobytes() == KeystreamRandom(seed).bytes(4000)


def test_bulk_uint32_from_the_os_differs_between_calls_and_looks_uniform():
    first, second = bulk_uint32(SystemRandom(), 100_000), bulk_uint32(SystemRandom(), 100_000)
    assert not np.array_equal(first, second)
    # Each of the 32 bit positions is set about half the time (a gross sanity check: 10 sigma).
    ones = np.unpackbits(first.view(np.uint8)).reshape(-1, 32).mean(axis=0)
    assert np.all(np.abs(ones - 0.5) < 10 * 0.5 / np.sqrt(len(first)))


@pytest.mark.parametrize("bad", [bytes(31), bytes(33), "k" * 32, None])
def test_keystream_refuses_a_key_that_is_not_32_bytes(bad):
    with pytest.raises(ConfigurationError):
        KeystreamRandom(bad)


def test_fill_refuses_read_only_or_strided_arrays():
    frozen = np.zeros(8, np.uint8)
    frozen.flags.writeable = False
    for bad in (frozen, np.zeros(16, np.uint8)[::2], bytearray(8)):
        with pytest.raises(ConfigurationError):
            KeystreamRandom(bytes(32)).fill(bad)


def test_repr_never_shows_the_key():
    assert bytes(range(32)).hex() not in repr(KeystreamRandom(bytes(range(32))))


def test_write_into_continues_the_stream_in_place_and_refuses_short_buffers():
    """write_into gives the same stream as bytes(), into the caller's buffer."""
    expected = KeystreamRandom(bytes(32)).bytes(300_000)
    stream, buffer = KeystreamRandom(bytes(32)), bytearray(300_000 + 15)
    stream.write_into(buffer, 100)
    head = bytes(buffer[:100])
    stream.write_into(buffer, 299_900)
    assert head + bytes(buffer[:299_900]) == expected
    with pytest.raises(ConfigurationError):
        stream.write_into(bytearray(20), 10)  # no room for OpenSSL's spare block
    with pytest.raises(ConfigurationError):
        stream.write_into(bytes(100), 10)  # read-only
