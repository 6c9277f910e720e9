"""examples/flower-app trains digits under fedsecure SecAgg in a Flower simulation (small)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("flwr", reason="flwr is not installed (pip install 'fedsecure[flower]')")
pytest.importorskip("torch", reason="torch is not installed (pip install 'fedsecure[train]')")

pytestmark = pytest.mark.flower
APP = Path(__file__).resolve().parents[2] / "examples" / "flower-app"


def test_example_app_learns_digits(monkeypatch):
    monkeypatch.syspath_prepend(str(APP))
    monkeypatch.setenv("PYTHONPATH", f"{APP}:{Path(__file__).resolve().parents[2]}")
    from fedsecure_app import client_app, server_app
    from flwr.simulation import run_simulation

    accuracies = []
    original = server_app.central_evaluation

    def recording(server_round, arrays):
        metrics = original(server_round, arrays)
        accuracies.append(metrics["accuracy"])
        return metrics

    monkeypatch.setattr(server_app, "central_evaluation", recording)
    monkeypatch.setattr(sys, "argv", ["flwr"])
    run_simulation(server_app.app, client_app.app, num_supernodes=5,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2, "include_dashboard": False}})
    assert len(accuracies) == 4  # before training and after each of 3 rounds
    assert accuracies[-1] > max(accuracies[0], 0.5)
