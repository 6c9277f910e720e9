"""Bit-packing of ring words: each value < 2^b travels in exactly b bits.

Theory of operation (the communication figures of Bonawitz et al., CCS'17, count each masked
word of the ring Z_R in ceil(log2 R) bits; the wire format is protocols/secaggplus/SPEC.md,
"Packing").  A
vector of ``count`` words, each < 2^bits, is one bit stream of ``count * bits`` bits: value i
occupies stream bits ``[i * bits, (i + 1) * bits)``, least significant bit first, and stream
bit j is bit ``j % 8`` of byte ``j // 8`` (little-endian bit order; for bits = 8, 16, 32, 64 this
is exactly the little-endian word layout).  The stream is padded with zero bits to
``ceil(count * bits / 8)`` bytes.  ``unpack`` accepts only that exact length with zero padding,
so every packed vector has one encoding.

``add_packed_into`` adds a packed vector straight into a running sum (the streamed server
total), wrapping mod 2^32 / 2^64 like :mod:`.modular`, without materialising the unpacked copy.

Speed: the kernels move 64 bits at a time through one uint64 accumulator (one branch per
value) over a whole-word buffer: ``pack`` returns a view of its first packed-size bytes;
``unpack`` and ``add_packed_into`` read the packed bytes' whole 64-bit words in place and copy
only the last partial word (zero-padded), so folding an upload into the sum allocates nothing
of its size.  ``pack_reference`` and ``unpack_reference`` compute the same with NumPy bit
arrays (``np.packbits(bitorder="little")``) and are what the kernels are tested against.
"""

from __future__ import annotations

import operator
import sys

import numpy as np
from numba import njit

from fedsecure.errors import ConfigurationError, InvalidInput, MalformedMessage
from fedsecure.kernels._checks import modulus_bits_for, ring_dtype, ring_vector

RING_DTYPES = ("<u4", "<u8")
_STREAM_WORD = np.dtype("<u8")


def packed_size(count: int, bits: int) -> int:
    """Bytes that ``count`` values of ``bits`` bits pack into: ceil(count * bits / 8)."""
    return (_count(count) * modulus_bits_for(bits, _STREAM_WORD) + 7) // 8


def pack(words: np.ndarray, bits: int) -> np.ndarray:
    """The packed bytes (a uint8 array) of a 1-D '<u4'/'<u8' array whose values are < 2^bits."""
    flat, bits = _words(words, bits)
    buffer = np.empty(_whole_words(len(flat), bits), dtype=np.uint64)  # the kernel fills all
    if _pack_kernel(flat, bits, buffer):
        raise InvalidInput(f"words: a value is >= 2^{bits}")
    return _stream_bytes(buffer)[:packed_size(len(flat), bits)]


def unpack(data, count: int, bits: int, dtype: str = "<u4") -> np.ndarray:
    """The ``count`` words of ``dtype`` packed in ``data`` (bytes-like or a uint8 array).

    MalformedMessage unless ``data`` is exactly ``packed_size(count, bits)`` bytes with zero
    padding bits.
    """
    raw, count, bits, dtype = _packed(data, count, bits, dtype)
    out = np.empty(count, dtype=dtype)
    _unpack_kernel(*_stream_words(raw, count, bits), bits, out, False)
    return out


def add_packed_into(acc: np.ndarray, data, bits: int) -> None:
    """``acc += unpack(data, len(acc), bits, acc.dtype)``, wrapping, without the unpacked copy.

    The streamed server sum: each packed upload goes straight into the running total.
    """
    flat = ring_vector(acc, "acc")
    raw, count, bits, _ = _packed(data, len(flat), bits, flat.dtype)
    _unpack_kernel(*_stream_words(raw, count, bits), bits, flat, True)


def pack_reference(words: np.ndarray, bits: int) -> np.ndarray:
    """NumPy reference of :func:`pack`."""
    flat, bits = _words(words, bits)
    if bits < 64 and np.any(flat.astype(np.uint64) >> np.uint64(bits)):
        raise InvalidInput(f"words: a value is >= 2^{bits}")
    shifts = np.arange(bits, dtype=np.uint64)
    stream = (flat.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)
    return np.packbits(stream.astype(np.uint8).reshape(-1), bitorder="little")


def unpack_reference(data, count: int, bits: int, dtype: str = "<u4") -> np.ndarray:
    """NumPy reference of :func:`unpack`."""
    raw, count, bits, dtype = _packed(data, count, bits, dtype)
    stream = np.unpackbits(raw, bitorder="little")[:count * bits].reshape(count, bits)
    weights = np.uint64(1) << np.arange(bits, dtype=np.uint64)
    return (stream.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64).astype(dtype)


def add_packed_into_reference(acc: np.ndarray, data, bits: int) -> None:
    """NumPy reference of :func:`add_packed_into`."""
    flat = ring_vector(acc, "acc")
    np.add(flat, unpack_reference(data, len(flat), bits, flat.dtype), out=flat)


@njit(cache=True)
def _pack_kernel(words, bits, out):
    """Write the bit stream into ``out`` (ceil(n * bits / 64) uint64 words); True if a value
    is >= 2^bits."""
    width = np.uint64(bits)
    wide = np.uint64(0)
    accumulator = np.uint64(0)
    filled = 0  # accumulator bits in use, < 64
    index = 0
    for i in range(words.size):
        value = np.uint64(words[i])
        if bits < 64:
            wide |= value >> width
        accumulator |= value << np.uint64(filled)
        filled += bits
        if filled >= 64:
            out[index] = accumulator
            index += 1
            filled -= 64
            # The high bits of value that did not fit (none if it ended on the word boundary).
            accumulator = value >> np.uint64(bits - filled) if filled > 0 else np.uint64(0)
    if filled > 0:
        out[index] = accumulator
    return wide != 0


@njit(cache=True)
def _unpack_kernel(body, tail, bits, out, accumulate):
    """out[i] = (or +=, wrapping) word i of the stream whose words are ``body`` then ``tail``."""
    in_body = min(out.size, body.size * 64 // bits)  # values that lie wholly in ``body``
    _unpack_range(body, body, 0, bits, out, 0, in_body, accumulate)
    _unpack_range(body, tail, body.size, bits, out, in_body, out.size, accumulate)


@njit(cache=True, inline="always")
def _unpack_range(body, tail, whole, bits, out, first, last, accumulate):
    """Values [first, last): stream word j is body[j] below ``whole``, tail[j - whole] above."""
    mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - bits)
    position = first * bits
    for i in range(first, last):
        index = position >> 6
        offset = position & 63
        low = body[index] if index < whole else tail[index - whole]
        value = low >> np.uint64(offset)
        if offset + bits > 64:
            index += 1
            high = body[index] if index < whole else tail[index - whole]
            value |= high << np.uint64(64 - offset)
        if accumulate:
            out[i] += value & mask
        else:
            out[i] = value & mask
        position += bits


def _stream_words(raw: np.ndarray, count: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The packed bytes as native uint64 stream words, in two parts: the whole 8-byte words
    read in place where the host allows it (little-endian, aligned: no copy of an upload),
    then the rest copied and zero-padded to whole words."""
    if sys.byteorder == "little" and raw.ctypes.data % _STREAM_WORD.itemsize == 0:
        whole = len(raw) // _STREAM_WORD.itemsize
        body = raw[:whole * _STREAM_WORD.itemsize].view(np.uint64)
    else:
        whole, body = 0, np.empty(0, dtype=np.uint64)
    rest = raw[whole * _STREAM_WORD.itemsize:]
    tail = np.zeros(_whole_words(count, bits) - whole, dtype=np.uint64)
    tail.view(np.uint8)[:len(rest)] = rest
    if sys.byteorder == "big":
        tail.byteswap(inplace=True)
    return body, tail


def _stream_bytes(buffer: np.ndarray) -> np.ndarray:
    """The native uint64 stream words as little-endian bytes (a view on little-endian hosts)."""
    if sys.byteorder == "big":
        buffer.byteswap(inplace=True)
    return buffer.view(np.uint8)


def _whole_words(count: int, bits: int) -> int:
    return (count * bits + 63) // 64


def _words(words, bits) -> tuple[np.ndarray, int]:
    if not isinstance(words, np.ndarray) or words.ndim != 1 or words.dtype.str not in RING_DTYPES:
        raise InvalidInput("words: must be a 1-D '<u4' or '<u8' array")
    return np.ascontiguousarray(words), modulus_bits_for(bits, words.dtype)


def _packed(data, count, bits, dtype) -> tuple[np.ndarray, int, int, np.dtype]:
    dtype = ring_dtype(dtype)
    count, bits = _count(count), modulus_bits_for(bits, dtype)
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise InvalidInput("data: must be bytes-like or a 1-D uint8 array")
        raw = data
    else:
        try:
            raw = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        except TypeError:
            raise InvalidInput("data: must be bytes-like or a 1-D uint8 array") from None
    expected = (count * bits + 7) // 8
    if len(raw) != expected:
        raise MalformedMessage(f"packed data: {len(raw)} bytes, expected {expected} for "
                               f"{count} values of {bits} bits")
    spare = expected * 8 - count * bits
    if spare and raw[-1] >> (8 - spare):
        raise MalformedMessage("packed data: padding bits are not zero")
    return raw, count, bits, dtype


def _count(count) -> int:
    try:
        number = operator.index(count)
    except TypeError:
        number = None
    if number is None or number < 0:
        raise ConfigurationError(f"count={count!r}: must be an integer >= 0")
    return number

