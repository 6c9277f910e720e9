"""Rounding randomness: os.urandom vs the AES-256-CTR bulk stream, next to the raw keystream.

Stochastic rounding draws one uniform 32-bit word per value.  Each case draws ``WORDS`` words
and records ``bytes_per_s`` and its time over the raw AES-256-CTR keystream of the same bytes
(pyca ``update_into`` into a reused buffer), measured in the same test.  The quantize cases
time the whole encoding step a SecAgg client runs before masking (draw + clip + round +
weight into uint32 words) with either source.
Run: pytest benchmarks/bench_rng.py --benchmark-only
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from benchmarks.timing import timings
from fedsecure.kernels import quantize
from fedsecure.rng import SystemRandom, bulk_uint32, random_uint32

WORDS = 10**6
CHUNK = 256 * 1024
SOURCES = {
    "os.urandom": lambda: os.urandom(4 * WORDS),
    "random_uint32(SystemRandom)": lambda: random_uint32(SystemRandom(), WORDS),
    "bulk_uint32(SystemRandom)": lambda: bulk_uint32(SystemRandom(), WORDS),
}


def raw_keystream_seconds(nbytes: int, repeats: int = 7) -> float:
    """Median time of nbytes of AES-256-CTR keystream into one reused buffer."""
    encryptor = Cipher(algorithms.AES(bytes(32)), modes.CTR(bytes(16))).encryptor()
    zeros, buffer = memoryview(bytes(CHUNK)), bytearray(CHUNK + 15)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for offset in range(0, nbytes, CHUNK):
            encryptor.update_into(zeros[:min(CHUNK, nbytes - offset)], buffer)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.mark.parametrize("source", list(SOURCES))
def test_rounding_randomness(benchmark, source):
    benchmark.group = f"rounding randomness {WORDS:.0e} words"
    benchmark(SOURCES[source])
    if (stats := timings(benchmark)) is not None:
        raw = raw_keystream_seconds(4 * WORDS)
        benchmark.extra_info.update(bytes_per_s=4 * WORDS / stats.median, raw_keystream_s=raw,
                                    over_raw_keystream=stats.median / raw)


@pytest.mark.parametrize("source", ["random_uint32(SystemRandom)", "bulk_uint32(SystemRandom)"])
def test_quantize_step(benchmark, source):
    benchmark.group = f"quantize step {WORDS:.0e} values"
    draw = SOURCES[source]
    vector = np.linspace(-1.5, 1.5, WORDS)

    def step():
        return quantize(vector, draw(), scale=2.0**16, clip=1.0, weight=7, modulus_bits=30,
                        dtype="<u4")

    benchmark(step)
    if (stats := timings(benchmark)) is not None:
        raw = raw_keystream_seconds(4 * WORDS)
        benchmark.extra_info.update(raw_keystream_s=raw, over_raw_keystream=stats.median / raw)
