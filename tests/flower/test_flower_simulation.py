"""fedsecure inside a real Flower simulation (flwr's Simulation Engine, on Ray).

One simulation of 10 nodes (one Ray start-up for all protocols) runs Flower's FedAvg over
FedSecureGrid for 3 rounds with each protocol in turn, and SecAgg once more under the legacy
``DefaultWorkflow`` and ``flwr.server.strategy.FedAvg`` (FitIns / FitRes records).  In round 2
one node fails at training and one misses a phase deadline (it blocks until the server has
dropped it, see ``apps.py``); in round 3 one fails mid-round.  Each round's secure aggregate
must equal plaintext FedAvg over the survivors' updates, and the strategy's model must be that
aggregate."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr", reason="flwr is not installed (pip install 'fedsecure[flower]')")

from flwr.app import Array, ArrayRecord, Context  # noqa: E402
from flwr.common import ndarrays_to_parameters  # noqa: E402
from flwr.server import ServerConfig  # noqa: E402
from flwr.server.compat import LegacyContext  # noqa: E402
from flwr.server.strategy import FedAvg as LegacyFedAvg  # noqa: E402
from flwr.server.workflow import DefaultWorkflow  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

from fedsecure.protocols.base import ClientDropped  # noqa: E402
from fedsecure.runtime.flower import FedSecureGrid  # noqa: E402
from tests.flower.apps import (  # noqa: E402
    FAIL_AT_TRAIN,
    FAIL_MID_ROUND,
    NODES,
    RELEASE_DIR,
    ROUNDS,
    SLOW,
    client_app,
    faulty,
    released,
    update_of,
)

pytestmark = pytest.mark.flower

PHASE_S = 10.0  # deadline of each protocol phase (a phase of 10 tiny replies took ~0.3 s at load 16)
TRAIN_S = 300.0  # deadline of the first exchange (Ray workers start, import flwr and fedsecure)
HAS_TENSEAL = importlib.util.find_spec("tenseal") is not None
RUNS = {  # name: protocol, options, tolerance, strategy API
    "secagg": ("secagg", {"scale_bits": 16}, 1e-4, "message"),
    # degree 4: a sparse Harary graph (at n = 10 the parameter finder would pick the complete one)
    "secaggplus": ("secaggplus", {"scale_bits": 16, "degree": 4}, 1e-4, "message"),
    "ckks": ("ckks", {"preset": "n8192"}, 1e-3, "message"),
    "secagg-legacy": ("secagg", {"scale_bits": 16}, 1e-4, "legacy"),
}
INITIAL = np.zeros((4, 10), np.float32)
ROOT = str(Path(__file__).resolve().parents[2])  # Ray's workers import tests.flower.apps from here


def train_with(api: str, secure: FedSecureGrid, context: Context, models: dict) -> None:
    """Three rounds of FedAvg over ``secure``; ``models[round]`` = the strategy's model."""
    if api == "message":
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=NODES,
                          min_available_nodes=NODES)
        strategy.start(grid=secure, num_rounds=ROUNDS, initial_arrays=ArrayRecord({"w": Array(INITIAL)}),
                       evaluate_fn=lambda r, arrays: models.__setitem__(r, arrays["w"].numpy()))
        return
    strategy = LegacyFedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=NODES,
                            min_available_clients=NODES,
                            initial_parameters=ndarrays_to_parameters([INITIAL]),
                            evaluate_fn=lambda r, ndarrays, config: models.__setitem__(r, ndarrays[0]))
    DefaultWorkflow()(secure, LegacyContext(context, config=ServerConfig(num_rounds=ROUNDS),
                                            strategy=strategy))


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    """{run: (FedSecureGrid.results, {round: the strategy's model})} of one Flower simulation."""
    runs = [name for name, (protocol, *_) in RUNS.items() if protocol != "ckks" or HAS_TENSEAL]
    outcome = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        for name in runs:
            protocol, options, _, api = RUNS[name]

            def release(party_id, event, protocol=protocol):  # a dropped slow node may stop blocking
                if isinstance(event, ClientDropped):
                    # called only while this iteration's grid runs, so `secure` is its own
                    released(protocol, len(secure.results) + 1, event.client).touch()  # noqa: B023

            secure = FedSecureGrid(grid, protocol, clip=1.0, max_weight=10, timeout_s=PHASE_S,
                                   train_timeout_s=TRAIN_S, options=options, on_event=release)
            models = {}
            train_with(api, secure, context, models)
            outcome[name] = (secure.results, models)
            for path in Path(os.environ[RELEASE_DIR]).iterdir():  # the next run blocks again
                path.unlink()

    with pytest.MonkeyPatch.context() as patch:  # Ray's workers inherit the environment:
        patch.setenv(RELEASE_DIR, str(tmp_path_factory.mktemp("release")))
        patch.setenv("PYTHONPATH", os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        run_simulation(server_app, client_app, num_supernodes=NODES,
                       backend_config={"client_resources": {"num_cpus": 0.5, "num_gpus": 0.0},
                                       "init_args": {"num_cpus": 2, "include_dashboard": False}})
    return outcome


@pytest.mark.parametrize("run", list(RUNS))
def test_flower_rounds_match_plaintext_fedavg(simulation, run):
    protocol, _, atol, _ = RUNS[run]
    if protocol == "ckks" and not HAS_TENSEAL:
        pytest.skip("TenSEAL is not installed (pip install 'fedsecure[he]')")
    results, models = simulation[run]
    assert [r for r, _, _ in results] == list(range(1, ROUNDS + 1))
    for server_round, result, nodes in results:
        assert not isinstance(result, Exception), (server_round, result)
        failed = faulty(FAIL_AT_TRAIN | FAIL_MID_ROUND | set(SLOW), protocol, server_round)
        assert sorted(result.survivors) == sorted(set(range(1, NODES + 1)) - failed)
        updates = [update_of(nodes[c - 1], server_round) for c in result.survivors]
        weight = sum(w for _, w in updates)
        expected = sum(w * v.astype(np.float64) for v, w in updates) / weight
        assert result.total_weight == pytest.approx(weight)
        np.testing.assert_allclose(result.mean, expected, atol=atol)
        np.testing.assert_allclose(models[server_round].ravel(), expected, atol=atol)
