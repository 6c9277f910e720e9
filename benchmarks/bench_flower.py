"""fedsecure's Flower workflow against Flower's own ``SecAggPlusWorkflow``, in one Flower
simulation, on the same ClientApp (``benchmarks/flower_peer.py`` says what is measured and how).

    PYTHONPATH=$PWD pytest benchmarks/bench_flower.py --benchmark-only \
        --benchmark-json benchmarks/results/flower.json

(the repository root on PYTHONPATH: Ray's workers import the ClientApp by name).  The default
case is the issue's, n = 100 nodes, d = 1e5 values, 10 % dropouts before the masked input;
``FEDSECURE_FLOWER_BENCH_N`` / ``_D`` change it.  ``extra_info`` holds, per workflow, the
client CPU, bytes up / down per surviving node, server CPU, round trips, error, peak RSS, and
the ratios of each fedsecure workflow's client CPU, server CPU and bytes over Flower's.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("flwr", reason="flwr is not installed (pip install 'fedsecure[flower]')")

from benchmarks.flower_peer import WORKFLOWS, measure_in_flower  # noqa: E402

N = int(os.environ.get("FEDSECURE_FLOWER_BENCH_N", 100))
D = int(float(os.environ.get("FEDSECURE_FLOWER_BENCH_D", 1e5)))
DROPOUT = 0.1


def test_secaggplus_fedsecure_vs_flower(benchmark):
    runs = {}
    benchmark.pedantic(lambda: runs.update(measure_in_flower(N, D, DROPOUT, seed=0)),
                       rounds=1, iterations=1)
    flower = runs[WORKFLOWS[0]]
    assert {r["survivors"] for r in runs.values()} == {N - round(DROPOUT * N)}
    benchmark.extra_info.update({"n": N, "d": D, "dropout": DROPOUT, **runs})
    for workflow in WORKFLOWS[1:]:
        for key in ("client_cpu_s", "server_cpu_s", "bytes_up", "bytes_down"):
            benchmark.extra_info[f"{workflow}/{key}_over_flower"] = runs[workflow][key] / flower[key]
