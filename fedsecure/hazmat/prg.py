"""The mask PRG: AES-256-CTR keystream words added to (or subtracted from) a vector.

Theory of operation (Bonawitz et al., CCS'17, section 4): a client masks its input with one
pseudorandom vector per pairwise secret (added or subtracted, so that the two ends cancel in the
sum) plus a self-mask.  ``MaskPRG(seed, context)`` turns a full-entropy 32-byte ``seed`` (an
agreed X25519 secret or a self-mask seed) into that vector: the AES-256 key is
``derive_key(seed, purpose="mask-prg", context=context)`` -- ``context`` carries session, round
and pair so every mask is domain-separated -- and the stream is AES-256-CTR (zero IV) over
zeros, read as little-endian uint32 or uint64 words.  Arithmetic wraps mod 2^32 / 2^64; any ring
Z_{2^k} with k <= the word width is obtained by one final reduction, since 2^k divides 2^32 and
2^64.  A PRG is a stream: successive calls continue where the previous one stopped.

Speed: the client is PRG-bound, so adding masks never allocates per call: OpenSSL writes the
keystream with ``update_into`` into one scratch buffer per thread, reused by every PRG,
CHUNK_BYTES at a time (256 KiB measured fastest: it stays in L2 cache), and numpy adds it in
place.  :func:`add_masks_into` adds many PRGs chunk by chunk -- every mask goes into one chunk
of the output before the next chunk -- so the output is read and written from cache k times
and from memory once, instead of k times from memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fedsecure.errors import ConfigurationError
from fedsecure.hazmat._checks import require_key
from fedsecure.hazmat.agreement import derive_key

SEED_BYTES = 32
CHUNK_BYTES = 256 * 1024
WORD_DTYPES = (np.dtype("<u4"), np.dtype("<u8"))
_SLACK = 15  # update_into wants room for one block beyond the data
_ZEROS = memoryview(bytes(CHUNK_BYTES))
_SCRATCH = threading.local()


def _scratch() -> bytearray:
    """This thread's keystream buffer (allocating 256 KiB per PRG cost as much as a mask)."""
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None:
        buffer = _SCRATCH.buffer = bytearray(CHUNK_BYTES + _SLACK)
    return buffer


class MaskPRG:
    """AES-256-CTR keystream for one (seed, context); see the module docstring."""

    def __init__(self, seed: bytes, context: bytes):
        key = derive_key(require_key("seed", seed, SEED_BYTES), purpose="mask-prg",
                         context=context)
        self._encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def words(self, count: int, dtype: str) -> np.ndarray:
        """The next ``count`` keystream words as a new array of ``dtype`` ("<u4" or "<u8")."""
        if not isinstance(count, int) or count < 0:
            raise ConfigurationError(f"count={count!r}: must be an integer >= 0")
        out = np.zeros(count, dtype=_word_dtype(dtype))
        self.add_into(out)
        return out

    def add_into(self, out: np.ndarray, sign: int = 1) -> None:
        """``out += sign * next len(out) words``, in place, wrapping mod 2^32 or 2^64."""
        add_masks_into(out, [(self, sign)])


def add_masks_into(out: np.ndarray, masks: Sequence[tuple[MaskPRG, int]],
                   prepare: Callable[[int, np.ndarray], None] | None = None) -> None:
    """``out += sign * next len(out) words of prg`` for every ``(prg, sign)`` in ``masks``,
    in place, wrapping mod 2^32 or 2^64 -- the same result as one ``add_into`` per mask, in
    one pass over ``out``: chunk by chunk, ``prepare(start, part)`` (if given) first writes
    ``part = out[start:start + len(part)]``, then every mask is added to that chunk while it
    is in cache."""
    for _, sign in masks:
        if sign not in (1, -1):
            raise ConfigurationError(f"sign={sign!r}: must be 1 or -1")
    if not isinstance(out, np.ndarray) or out.ndim != 1 or not out.flags.c_contiguous \
            or not out.flags.writeable:
        raise ConfigurationError("out: must be a writeable, C-contiguous 1-D numpy array")
    dtype = _word_dtype(out.dtype)
    if out.size == 0:
        return
    streams = [(prg._encryptor.update_into, np.add if sign == 1 else np.subtract)
               for prg, sign in masks]
    scratch = _scratch()
    per_chunk = min(CHUNK_BYTES, out.nbytes) // dtype.itemsize
    keystream = np.frombuffer(scratch, dtype=dtype, count=per_chunk)
    for start in range(0, len(out), per_chunk):
        part = out[start:start + per_chunk]
        if prepare is not None:
            prepare(start, part)
        zeros, words = _ZEROS[:part.nbytes], keystream[:len(part)]
        for fill, operation in streams:
            fill(zeros, scratch)
            operation(part, words, out=part)


def expand(seed: bytes, context: bytes, count: int, dtype: str) -> np.ndarray:
    """The first ``count`` words of ``MaskPRG(seed, context)``."""
    return MaskPRG(seed, context).words(count, dtype)


def _word_dtype(dtype) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in WORD_DTYPES:
        raise ConfigurationError(f"dtype={dtype!r}: must be '<u4' or '<u8' (little-endian)")
    return resolved
