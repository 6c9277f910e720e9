"""Per-round cost of each DP placement next to plain SecAgg, in the same run.

Run:   PYTHONPATH=. pytest benchmarks/bench_dp.py --benchmark-only
Each round case (n clients, d coordinates, all inside SecAgg) times one whole simulated round
-- clipping, rotation, rounding and noise sampling included, what a training round pays -- and
records in ``extra_info`` the wall time of a plain SecAgg round measured in the same test
(after a warm-up round) and the ratio.  The sampler cases time the exact discrete Gaussian
next to the floating-point Gaussian for the same number of values.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchmarks.timing import timings
from fedsecure.dp import make_dp_aggregator
from fedsecure.dp.sampling import discrete_gaussian, gaussian
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.rng import SystemRandom
from fedsecure.runtime.simulation import simulate_round

N, D = 20, 2**14
PLACEMENTS = ("none", "central", "local", "distributed")


def _aggregator(placement: str, spec: AggregationSpec):
    if placement == "none":
        return make_aggregator("secagg", spec)
    return make_dp_aggregator(placement, spec, protocol="secagg", clip_norm=1.0,
                              noise_multiplier=1.0)


def _round(placement: str, inputs) -> None:
    spec = AggregationSpec(n_clients=N, vector_length=D)
    report = simulate_round(_aggregator(placement, spec), inputs)
    if report.error is not None:
        raise report.error


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_dp_round(benchmark, placement):
    data = np.random.default_rng(0)  # update values only; all noise comes from the CSPRNG
    inputs = {c: (data.normal(size=D) / np.sqrt(D), 1) for c in range(1, N + 1)}
    _round("none", inputs)  # warm-up (numba kernels, imports)
    if benchmark.enabled:
        began = time.perf_counter()
        _round("none", inputs)
        plain = time.perf_counter() - began
    benchmark.pedantic(_round, args=(placement, inputs), rounds=2, iterations=1,
                       warmup_rounds=1)
    benchmark.extra_info.update(n=N, d=D)
    if (stats := timings(benchmark)) is not None:
        benchmark.extra_info.update(plain_secagg_s=plain, ratio_to_plain_secagg=stats.mean / plain)


@pytest.mark.parametrize("sampler", ["discrete_gaussian", "gaussian"])
def test_noise_sampler(benchmark, sampler):
    rng = SystemRandom()
    if sampler == "discrete_gaussian":
        benchmark(discrete_gaussian, rng, 10**6, D)
    else:
        benchmark(gaussian, rng, 1000.0, D)
    benchmark.extra_info.update(values=D)
