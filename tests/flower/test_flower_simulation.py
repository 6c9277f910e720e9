"""fedsecure inside a real Flower simulation (flwr's Simulation Engine, on Ray): FedAvg over
FedSecureGrid, 10 nodes, 3 rounds, one node failing at training, one failing mid-round and
(SecAgg) one missing a phase deadline (it sleeps 40 s against a 15 s deadline);
each round's secure aggregate equals plaintext FedAvg over the survivors' updates, and FedAvg's
model is that aggregate."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr", reason="flwr is not installed (pip install 'fedsecure[flower]')")

from flwr.app import Array, ArrayRecord, Context  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

from fedsecure.runtime.flower import FedSecureGrid  # noqa: E402
from tests.flower.apps import (  # noqa: E402
    FAIL_AT_TRAIN,
    FAIL_MID_ROUND,
    NODES,
    ROUNDS,
    SLOW_MID_ROUND,
    client_app,
    update_of,
)

pytestmark = pytest.mark.flower


def run(protocol: str, options: dict, atol: float, timeout_s: float = 120.0):
    outcome = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        secure = FedSecureGrid(grid, protocol, clip=1.0, max_weight=10, timeout_s=timeout_s,
                               options=options)
        models = {}
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=NODES,
                          min_available_nodes=NODES)
        strategy.start(grid=secure, initial_arrays=ArrayRecord({"w": Array(np.zeros((4, 10), np.float32))}),
                       num_rounds=ROUNDS,
                       evaluate_fn=lambda r, arrays: models.__setitem__(r, arrays["w"].numpy()))
        outcome.update(results=secure.results, models=models)

    run_simulation(server_app, client_app, num_supernodes=NODES,
                   backend_config={"client_resources": {"num_cpus": 0.25, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2, "include_dashboard": False}})
    results = outcome["results"]
    assert [r for r, _, _ in results] == list(range(1, ROUNDS + 1))
    for server_round, result, nodes in results:
        assert not isinstance(result, Exception), (server_round, result)
        failed = {c for r, c in FAIL_AT_TRAIN | FAIL_MID_ROUND if r == server_round}
        failed |= {c for p, r, c in SLOW_MID_ROUND if (p, r) == (protocol, server_round)}
        assert sorted(result.survivors) == sorted(set(range(1, NODES + 1)) - failed)
        updates = [update_of(nodes[c - 1], server_round) for c in result.survivors]
        weight = sum(w for _, w in updates)
        expected = sum(w * v.astype(np.float64) for v, w in updates) / weight
        assert result.total_weight == pytest.approx(weight)
        np.testing.assert_allclose(result.mean, expected, atol=atol)
        np.testing.assert_allclose(outcome["models"][server_round].ravel(), expected, atol=atol)


def test_secagg_in_flower_simulation_with_a_node_missing_a_deadline():
    run("secagg", {"scale_bits": 16}, atol=1e-4, timeout_s=15.0)


def test_secaggplus_in_flower_simulation():
    run("secaggplus", {"scale_bits": 16}, atol=1e-4)


def test_ckks_in_flower_simulation():
    pytest.importorskip("tenseal", reason="TenSEAL is not installed (pip install 'fedsecure[he]')")
    run("ckks", {"preset": "n8192"}, atol=1e-3)
