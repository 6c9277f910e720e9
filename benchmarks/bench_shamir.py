"""Shamir decoding: decode_secrets with 0 / 1 / e wrong holders vs plain reconstruct_secrets, and
the batch share parser vs parsing one 44-byte share at a time.

Each decode case records ``over_reconstruct``: its median time over the median of
``reconstruct_secrets`` from t shares (Lagrange weights included, as in decode), measured in the
same test.  The parser case records ``over_one_by_one`` the same way.
Run: pytest benchmarks/bench_shamir.py --benchmark-only
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from benchmarks.timing import timings
from fedsecure.hazmat.shamir import (
    PRIME,
    decode_secrets,
    reconstruct_secrets,
    share_from_bytes,
    share_secrets,
    share_to_bytes,
    shares_from_bytes_many,
)
from fedsecure.rng import DeterministicRandom

# (m, t, secrets, wrong holders): the 1001-holder case shows the O(m^3) Berlekamp-Welch cost.
CASES = [(101, 51, 200, 0), (101, 51, 200, 1), (101, 51, 200, 25), (1001, 501, 20, 1)]


def _median_seconds(function, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


@pytest.mark.parametrize("m, t, n_secrets, wrong", CASES,
                         ids=[f"m{m}-t{t}-s{s}-wrong{w}" for m, t, s, w in CASES])
def test_decode_vs_reconstruct(benchmark, m, t, n_secrets, wrong):
    rng = DeterministicRandom(m)
    secrets = [rng.bytes(32) for _ in range(n_secrets)]
    xs = list(range(1, m + 1))
    clean = share_secrets(secrets, xs, t, rng=rng)
    shares = clean.copy()
    for holder in range(0, m, m // wrong if wrong else m)[:wrong]:
        shares[holder, -1, 0] = (int(shares[holder, -1, 0]) + 1) % PRIME

    benchmark.group = f"shamir decode m={m} t={t} secrets={n_secrets}"
    decoded, bad = benchmark.pedantic(decode_secrets, args=(xs, shares, t),
                                      rounds=1 if m > 500 else 5, iterations=1)
    assert decoded == secrets and len(bad) == wrong
    if (stats := timings(benchmark)) is not None:
        baseline = _median_seconds(lambda: reconstruct_secrets(xs[:t], clean[:t]))
        benchmark.extra_info["reconstruct_s"] = baseline
        benchmark.extra_info["over_reconstruct"] = stats.median / baseline


def test_batch_parser_vs_one_by_one(benchmark):
    shares = share_secrets([bytes(32)] * 2000, list(range(1, 11)), 5).reshape(-1, 11)
    blobs = [share_to_bytes(row) for row in shares]
    benchmark.group = "shamir share parsing, 20000 shares"
    parsed = benchmark.pedantic(shares_from_bytes_many, args=(blobs,), rounds=5, iterations=1)
    assert np.array_equal(parsed, shares)
    if (stats := timings(benchmark)) is not None:
        one_by_one = _median_seconds(lambda: [share_from_bytes(blob) for blob in blobs], repeats=3)
        benchmark.extra_info["one_by_one_s"] = one_by_one
        benchmark.extra_info["over_one_by_one"] = stats.median / one_by_one
