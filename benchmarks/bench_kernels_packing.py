"""Bit-packing throughput: pack / unpack of ring words next to a raw word copy, same run.

Each case packs (or unpacks) ``WORDS`` words of a ``bits``-bit ring and records
``words_per_s``, the packed bytes per value, and its time over ``np.copyto`` of the same
unpacked words (what sending them unpacked costs at least), measured in the same test.
The add cases fold one packed upload into a running server sum: ``add_packed_into`` against
``unpack`` then ``kernels.add_into`` (recorded as ``unpack_then_add_s``).
Run: pytest benchmarks/bench_kernels_packing.py --benchmark-only
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from benchmarks.timing import timings
from fedsecure.kernels import add_into
from fedsecure.kernels.packing import add_packed_into, pack, packed_size, unpack

WORDS = 10**6
WIDTHS = [("<u4", 17), ("<u4", 24), ("<u4", 32), ("<u8", 34), ("<u8", 52)]


def ring_words(dtype: str, bits: int) -> np.ndarray:
    random = np.random.default_rng(bits)  # benchmark data, not secrets
    return (random.integers(0, 2**63, WORDS, dtype=np.uint64) >> np.uint64(63 - bits + 1)
            if bits < 64 else random.integers(0, 2**63, WORDS, dtype=np.uint64)).astype(dtype)


def copy_seconds(words: np.ndarray, repeats: int = 9) -> float:
    out = np.empty_like(words)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(out, words)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def unpack_then_add_seconds(total: np.ndarray, data: bytes, bits: int, dtype: str,
                            repeats: int = 9) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        add_into(total, unpack(data, WORDS, bits, dtype))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def record(benchmark, words: np.ndarray, bits: int) -> None:
    benchmark.extra_info.update(packed_bytes_per_value=packed_size(WORDS, bits) / WORDS,
                                unpacked_bytes_per_value=words.itemsize)
    if (stats := timings(benchmark)) is not None:
        copy = copy_seconds(words)
        benchmark.extra_info.update(words_per_s=WORDS / stats.median, copy_s=copy,
                                    over_copy=stats.median / copy)


@pytest.mark.parametrize("dtype,bits", WIDTHS, ids=[f"{d[1:]}-{b}bit" for d, b in WIDTHS])
def test_pack(benchmark, dtype, bits):
    benchmark.group = f"pack {WORDS:.0e} words"
    words = ring_words(dtype, bits)
    benchmark(pack, words, bits)
    record(benchmark, words, bits)


@pytest.mark.parametrize("dtype,bits", WIDTHS, ids=[f"{d[1:]}-{b}bit" for d, b in WIDTHS])
def test_unpack(benchmark, dtype, bits):
    benchmark.group = f"unpack {WORDS:.0e} words"
    words = ring_words(dtype, bits)
    data = pack(words, bits).tobytes()
    out = benchmark(unpack, data, WORDS, bits, dtype)
    assert np.array_equal(out, words)
    record(benchmark, words, bits)


@pytest.mark.parametrize("dtype,bits", WIDTHS, ids=[f"{d[1:]}-{b}bit" for d, b in WIDTHS])
def test_add_packed_into(benchmark, dtype, bits):
    benchmark.group = f"add packed upload into a sum {WORDS:.0e} words"
    words = ring_words(dtype, bits)
    data = pack(words, bits).tobytes()
    total = np.zeros_like(words)
    benchmark(add_packed_into, total, data, bits)
    record(benchmark, words, bits)
    if (stats := timings(benchmark)) is not None:
        separate = unpack_then_add_seconds(total, data, bits, dtype)
        benchmark.extra_info.update(unpack_then_add_s=separate,
                                    over_unpack_then_add=stats.median / separate)
