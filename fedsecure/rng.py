"""Injected randomness.

Every party takes a :class:`RandomSource`.  The default reads the operating system's CSPRNG
(``os.urandom``).  :class:`DeterministicRandom` expands a fixed seed with AES-256-CTR and exists
for tests and conformance vectors only: never use it for a real deployment.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class RandomSource(Protocol):
    def bytes(self, n: int) -> bytes: ...


class SystemRandom:
    """The operating system's CSPRNG; the default for every party."""

    def bytes(self, n: int) -> bytes:
        return os.urandom(n)

    def __repr__(self) -> str:
        return "SystemRandom()"


class DeterministicRandom:
    """A reproducible stream (AES-256-CTR keyed by SHA-256 of ``seed``) for tests and vectors."""

    def __init__(self, seed: bytes | str | int):
        if isinstance(seed, int):
            seed = seed.to_bytes(16, "little", signed=True)
        elif isinstance(seed, str):
            seed = seed.encode()
        key = hashlib.sha256(b"fedsecure/test-rng/v1" + seed).digest()
        self._enc = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def bytes(self, n: int) -> bytes:
        return self._enc.update(bytes(n))


def random_uint32(rng: RandomSource, count: int) -> np.ndarray:
    """``count`` uniform 32-bit words from ``rng`` (for stochastic rounding and the like)."""
    return np.frombuffer(rng.bytes(4 * count), dtype="<u4").copy()


DEFAULT_RNG = SystemRandom()
