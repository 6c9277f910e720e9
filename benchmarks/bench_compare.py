"""DP vs SMPC vs HE in one pytest-benchmark run: round cost and training, same cases for all.

    PYTHONPATH=. pytest benchmarks/bench_compare.py --benchmark-only --grid quick \
        --benchmark-json out.json                      # or: python -m benchmarks.report --quick

``test_round_cost[technique-n-d-drop]`` runs simulated rounds of each technique of
``comparison.TECHNIQUES`` on the grid's cases (an n-sweep and a d-sweep, each at every dropout
rate; ``comparison.GRIDS``; the Flower peer at the grid's ``peer_points``) -- one round, or
two to five for cheaper cases (``comparison.measure_case``; the benchmark's time is all of
them, ``extra_info["wall_s"]`` the median round) -- and records in ``extra_info`` what
``comparison.measure_round`` measured (client and server CPU: the minimum over the rounds;
bytes up and down per client, round trips, peak memory, error against the exact sum: the
median).  ``test_training[...]`` trains the
embedded digits dataset with each protocol and, with DP, each placement and epsilon, and
records accuracy and seconds per round, epsilon spent and the rounds and CPU seconds to the
grid's target accuracy (after one untimed warm-up run).  A technique this installation cannot
run (no TenSEAL, no flwr, a mode a protocol refuses) is skipped with the reason.
"""

from __future__ import annotations

import tempfile

import pytest

from benchmarks import comparison
from benchmarks.comparison import BY_NAME, GRIDS, TECHNIQUES, Unavailable


def _drop_id(dropout: float) -> str:
    return f"drop{round(100 * dropout)}"


def pytest_generate_tests(metafunc):
    grid = GRIDS[metafunc.config.getoption("--grid")]
    if metafunc.definition.name == "test_round_cost":
        cases = [(t.name, n, d, p) for n, d, p in grid.round_cases() for t in TECHNIQUES
                 if grid.runs(t, n, d)]
        metafunc.parametrize("technique, n, d, dropout", cases,
                             ids=[f"{t}-n{n}-d{d}-{_drop_id(p)}" for t, n, d, p in cases])
    elif metafunc.definition.name == "test_training":
        runs = [(protocol, None, None, s) for protocol in grid.train_protocols for s in grid.seeds]
        runs += [(None, placement, eps, s) for eps in grid.epsilons
                 for placement in grid.dp_placements for s in grid.seeds]
        metafunc.parametrize("protocol, placement, epsilon, seed", runs, ids=[
            f"{protocol}-seed{s}" if placement is None else f"dp-{placement}-eps{eps:g}-seed{s}"
            for protocol, placement, eps, s in runs])


@pytest.fixture(scope="session")
def grid(request):
    return GRIDS[request.config.getoption("--grid")]


@pytest.fixture(scope="session")
def warmed():
    """Each technique once on a tiny case first (numba kernels compile, TenSEAL loads)."""
    for technique in TECHNIQUES:
        try:
            comparison.measure_round(technique.name, 5, 8, 0.2)
        except Unavailable:
            pass


def test_round_cost(benchmark, warmed, grid, technique, n, d, dropout):
    tech = BY_NAME[technique]
    measured = []
    try:
        comparison.check_available(tech)
    except Unavailable as exc:
        pytest.skip(str(exc))
    benchmark.group = f"round n={n} d={d} {_drop_id(dropout)}"
    benchmark.pedantic(lambda: measured.append(comparison.measure_case(technique, n, d, dropout)),
                       rounds=1, iterations=1)
    benchmark.extra_info.update(kind="round", grid=grid.name, technique=technique,
                                family=tech.family, label=tech.label, n=n, d=d, dropout=dropout,
                                **measured[-1])


# the protocol that carries each DP placement's vectors in training (fedsecure train --dp)
DP_PROTOCOL = {"central": "plaintext", "local": "plaintext", "distributed": "secagg"}


@pytest.fixture(scope="session")
def trained_once(tmp_path_factory):
    comparison.warm_up_training(str(tmp_path_factory.mktemp("warm-up")))


def test_training(benchmark, request, warmed, grid, protocol, placement, epsilon, seed):
    pytest.importorskip("torch", reason="training needs torch (pip install 'fedsecure[train]')")
    request.getfixturevalue("trained_once")
    protocol = protocol or DP_PROTOCOL[placement]
    if protocol == "ckks":
        pytest.importorskip("tenseal", reason="TenSEAL is not installed (pip install 'fedsecure[he]')")
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        benchmark.group = "training"
        benchmark.pedantic(lambda: runs.append(comparison.train_run(
            grid, protocol=protocol, placement=placement, epsilon=epsilon, seed=seed,
            run_dir=folder)), rounds=1, iterations=1)
    technique = protocol if placement is None else f"dp-{placement}"
    benchmark.extra_info.update(kind="train", grid=grid.name, technique=technique,
                                protocol=protocol, placement=placement, epsilon=epsilon,
                                seed=seed, clients=grid.train_clients, **runs[-1])
