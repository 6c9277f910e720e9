"""SecAgg+ set-up costs: the parameter finder and the Harary graph every party derives.

The graph build (hash of the id list, n keystream words, one sort) is shown next to a bare
``np.argsort`` of n uint64 keys measured in the same test (``over_sort``); ``neighbours`` is
timed per client.  The finder is timed at the issue's check (5 % corrupt, 5 % dropouts,
semi-honest, sigma = 40, eta = 20) and at a hard case (45 % / 45 %).
Run: pytest benchmarks/bench_secaggplus_graph.py --benchmark-only
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from benchmarks.timing import timings
from fedsecure.protocols.secagg.harary import HararyGraph
from fedsecure.protocols.secagg.parameters import find_graph_parameters

SESSION = bytes(16)


def sort_seconds(n: int, repeats: int = 5) -> float:
    keys = np.random.default_rng(0).integers(0, 2**63, n, dtype=np.uint64)  # not secrets
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.argsort(keys)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.mark.parametrize("n", [10**4, 10**6])
def test_harary_graph_build(benchmark, n):
    benchmark.group = "harary graph build"
    benchmark.pedantic(HararyGraph, args=(range(1, n + 1), 38),
                       kwargs=dict(session=SESSION, round_number=1), rounds=5, iterations=1)
    if (stats := timings(benchmark)) is not None:
        sort = sort_seconds(n)
        benchmark.extra_info.update(sort_s=sort, over_sort=stats.median / sort)


def test_harary_neighbours_lookup(benchmark):
    benchmark.group = "harary neighbours"
    graph = HararyGraph(range(1, 10**6 + 1), 38, session=SESSION, round_number=1)
    benchmark(graph.neighbours, 123_456)
    benchmark.extra_info["degree"] = graph.degree


@pytest.mark.parametrize("n,corrupt,dropout", [(10**6, 0.05, 0.05), (10**6, 0.45, 0.45)])
def test_parameter_finder(benchmark, n, corrupt, dropout):
    benchmark.group = "parameter finder"
    found = benchmark.pedantic(find_graph_parameters, args=(n,), rounds=3, iterations=1,
                               kwargs=dict(corrupt_fraction=corrupt, dropout_fraction=dropout))
    benchmark.extra_info.update(degree=found.degree, threshold=found.threshold)
