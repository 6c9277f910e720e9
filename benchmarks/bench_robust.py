"""Robust rules at n = 100 updates of d = 1e6 next to the plain mean, and the grouped SecAgg
composition next to plain SecAgg and plaintext FedAvg, all in one run.

    pytest benchmarks/bench_robust.py --benchmark-only --benchmark-json benchmarks/results/robust.json

``rules`` group: one timed call of each rule (one sample each: the machine is shared) on the
same (100, 1e6) float64 matrix (800 MB; 10 % outliers), f = 10; each case records
``ratio_to_mean``, its time over the plain mean's, measured first in the same run.
``protocol`` group: one simulated round (every party in one process, so the time is the sum
of all parties' work) of plaintext FedAvg, the per-client ``robust`` median, plain SecAgg over
all 100 clients and ``grouped`` (SecAgg in 10 groups of 10, median across the group means), at
d = 1e5: at d = 1e6 one SecAgg round of 100 clients needs ~40 GB of client keystream
(4 d (k + 1) bytes each) and minutes on 2 cores, too much for a shared machine.  Each records
``ratio_to_plaintext``.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.timing import timings
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.robust import anomaly_scores, make_rule
from fedsecure.runtime.simulation import simulate_round

N, D, F = 100, 10**6, 10
BASELINES: dict[str, float] = {}
RULES = [("mean", {}), ("median", {}), ("trimmed-mean", {"f": F}), ("krum", {"f": F}),
         ("multi-krum", {"f": F}), ("bulyan", {"f": F}), ("norm-bound", {"tau": 1.0}),
         ("centered-clipping", {}), ("geometric-median", {})]


@pytest.fixture(scope="module")
def updates():
    x = np.random.default_rng(0).normal(size=(N, D))
    x[:F] *= 50
    return x


def _record(benchmark, group: str, key: str, baseline: str):
    if (stats := timings(benchmark)) is None:
        return
    BASELINES.setdefault(f"{group}:{key}", stats.median)
    if f"{group}:{baseline}" in BASELINES:
        benchmark.extra_info[f"ratio_to_{baseline}"] = stats.median / BASELINES[f"{group}:{baseline}"]


@pytest.mark.parametrize("name, options", RULES, ids=[r for r, _ in RULES])
def test_rule(benchmark, updates, name, options):
    rule = make_rule(name, **options)
    benchmark.group = f"rules n={N} d={D:.0e}"
    benchmark.pedantic(rule, args=(updates,), rounds=1, iterations=1)
    _record(benchmark, "rules", name, "mean")


def test_anomaly_scores(benchmark, updates):
    benchmark.group = f"rules n={N} d={D:.0e}"
    benchmark.pedantic(anomaly_scores, args=(updates,), rounds=1, iterations=1)
    _record(benchmark, "rules", "anomaly", "mean")


PROTOCOL_D = 10**5
PROTOCOLS = [("plaintext", {}), ("robust", {"rule": "median"}), ("secagg", {}),
             ("grouped", {"inner": "secagg", "groups": 10, "rule": "median", "f": 4})]


@pytest.mark.parametrize("protocol, options", PROTOCOLS, ids=[p for p, _ in PROTOCOLS])
def test_protocol_round(benchmark, protocol, options):
    spec = AggregationSpec(n_clients=N, vector_length=PROTOCOL_D)
    data = np.random.default_rng(1)
    inputs = {c: (data.uniform(-1, 1, PROTOCOL_D), 1) for c in spec.client_ids}
    reports = []

    def one_round():
        reports.append(simulate_round(make_aggregator(protocol, spec, **options), inputs))

    benchmark.group = f"protocol round n={N} d={PROTOCOL_D:.0e}"
    benchmark.pedantic(one_round, rounds=1, iterations=1)
    assert reports[-1].error is None, reports[-1].error
    benchmark.extra_info["server_cpu_s"] = reports[-1].stats[0].total_cpu_seconds
    _record(benchmark, "protocol", protocol, "plaintext")
