"""Injected randomness.

Every party takes a :class:`RandomSource`.  The default reads the operating system's CSPRNG
(``os.urandom``).  :class:`DeterministicRandom` expands a fixed seed with AES-256-CTR and exists
for tests and conformance vectors only: never use it for a real deployment.

Bulk randomness (stochastic rounding draws one 32-bit word per value) comes from
:meth:`KeystreamRandom.seeded_from` (the SecAgg client fills each chunk of its rounding
randomness from one such stream) or :func:`bulk_uint32` (a whole array at once): AES-256 in
counter mode under a fresh 32-byte key read once from the party's source, written by OpenSSL
straight into the result with ``update_into`` -- the generate step of NIST SP 800-90A's
CTR_DRBG, with one key per stream, so no output depends on a key that outlives it.  It runs at
keystream speed (GB/s, benchmarks/bench_rng.py) where ``os.urandom`` of the same bytes is an
order of magnitude slower.  The words are
indistinguishable from uniform while AES-256 is a pseudorandom permutation (after q blocks the
PRP/PRF switching term is q^2 / 2^129: below 2^-65 for q = 2^32, i.e. 64 GiB per stream).
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fedsecure.errors import ConfigurationError

KEY_BYTES = 32
_CHUNK_BYTES = 256 * 1024  # stays in L2 cache, as in hazmat/prg.py
_SLACK = 15                # update_into wants room for one block beyond the data
_ZEROS = memoryview(bytes(_CHUNK_BYTES))


class RandomSource(Protocol):
    def bytes(self, n: int) -> bytes: ...


class SystemRandom:
    """The operating system's CSPRNG; the default for every party."""

    def bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def __repr__(self) -> str:
        return "SystemRandom()"


class KeystreamRandom:
    """AES-256-CTR keystream (zero IV) under a 32-byte ``key``: a RandomSource that can also
    fill an array in place.  Secure exactly when ``key`` is fresh and secret (see
    :meth:`seeded_from`)."""

    def __init__(self, key: bytes):
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ConfigurationError(f"key: must be {KEY_BYTES} bytes")
        self._enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    @classmethod
    def seeded_from(cls, rng: RandomSource) -> KeystreamRandom:
        """A stream keyed by 32 fresh bytes of ``rng`` (the OS CSPRNG by default)."""
        return cls(rng.bytes(KEY_BYTES))

    def bytes(self, n: int) -> bytes:
        return self._enc.update(bytes(n))

    def write_into(self, buffer, nbytes: int) -> None:
        """Write the next ``nbytes`` of keystream to the start of ``buffer`` (a writeable
        bytes-like of at least ``nbytes`` + 15 bytes: OpenSSL wants one spare block), with no
        allocation and no copy."""
        view = memoryview(buffer).cast("B")
        if view.readonly or not 0 <= nbytes <= len(view) - _SLACK:
            raise ConfigurationError(f"buffer: must be writeable and hold nbytes + {_SLACK} bytes")
        for start in range(0, nbytes, _CHUNK_BYTES):
            self._enc.update_into(_ZEROS[:min(_CHUNK_BYTES, nbytes - start)], view[start:])

    def fill(self, out: np.ndarray) -> None:
        """Overwrite the bytes of ``out`` (writeable, C-contiguous) with the next keystream."""
        if not isinstance(out, np.ndarray) or not out.flags.c_contiguous or not out.flags.writeable:
            raise ConfigurationError("out: must be a writeable, C-contiguous numpy array")
        target = out.reshape(-1).view(np.uint8)
        # update_into wants 15 spare bytes after what it writes: the last few go via a scratch.
        body = max(0, len(target) - _SLACK)
        for start in range(0, body, _CHUNK_BYTES):
            self._enc.update_into(_ZEROS[:min(_CHUNK_BYTES, body - start)], target[start:])
        tail = len(target) - body
        if tail:
            scratch = bytearray(tail + _SLACK)
            self._enc.update_into(_ZEROS[:tail], scratch)
            target[body:] = np.frombuffer(scratch, np.uint8, count=tail)

    def __repr__(self) -> str:  # never print the key
        return "KeystreamRandom(...)"


class DeterministicRandom(KeystreamRandom):
    """A reproducible stream (AES-256-CTR keyed by SHA-256 of ``seed``) for tests and vectors."""

    def __init__(self, seed: bytes | str | int):
        if isinstance(seed, int):
            seed = seed.to_bytes(16, "little", signed=True)
        elif isinstance(seed, str):
            seed = seed.encode()
        super().__init__(hashlib.sha256(b"fedsecure/test-rng/v1" + seed).digest())

    def __repr__(self) -> str:
        return "DeterministicRandom(...)"


def random_uint32(rng: RandomSource, count: int) -> np.ndarray:
    """``count`` uniform 32-bit words read from ``rng`` (filled in place from a KeystreamRandom)."""
    if isinstance(rng, KeystreamRandom):
        out = np.empty(count, dtype="<u4")
        rng.fill(out)
        return out
    return np.frombuffer(rng.bytes(4 * count), dtype="<u4").copy()


def bulk_uint32(rng: RandomSource, count: int) -> np.ndarray:
    """``count`` uniform 32-bit words from AES-256-CTR under 32 fresh bytes of ``rng``.

    A drop-in for :func:`random_uint32` where ``count`` is large: it reads only 32 bytes
    from ``rng``, whatever ``count``, and runs at keystream speed.
    """
    return random_uint32(KeystreamRandom.seeded_from(rng), count)


DEFAULT_RNG = SystemRandom()
