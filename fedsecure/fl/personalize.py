"""Personalization: fine-tune the trained global model on each client's own data.

Each client copies the global model and trains it for ``personalize_epochs`` on its local
training data (plain SGD with the run's lr, momentum and batch size, no proximal term).  Its
accuracy before and after is measured on its own share of the test set, drawn with the same
label mix as its training data (:func:`fedsecure.fl.data.matching_test_split`), which is where
a personalized model should do better under label skew.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from fedsecure.fl.client import fit
from fedsecure.fl.data import label_histograms, matching_test_split
from fedsecure.fl.federation import Federation
from fedsecure.fl.model import evaluate


def personalize(fed: Federation, *, seeds: Sequence[int], split_seed: int) -> list[dict]:
    """One row per client (numbered 1..clients): sample counts and test accuracy before / after
    fine-tuning.

    ``seeds[k]`` seeds the batch order of partition k (client k + 1); ``split_seed`` the
    per-client test split.  Accuracies are None for a client that received no test samples.
    """
    cfg = fed.config
    histograms = label_histograms(fed.dataset.y_train, fed.parts, fed.dataset.n_classes)
    test_parts = matching_test_split(histograms, fed.dataset.y_test, seed=split_seed)
    rows = []
    for client, ((x, y), test_index) in enumerate(zip(fed.client_data, test_parts, strict=True)):
        index = torch.from_numpy(test_index).to(fed.device)
        x_test, y_test = fed.x_test[index], fed.y_test[index]
        local = copy.deepcopy(fed.model)
        fit(local, x, y, epochs=cfg.personalize_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
            momentum=cfg.momentum, seed=seeds[client])
        has_test = len(test_index) > 0
        rows.append({
            "client": client + 1,  # clients are numbered 1..clients, as in the metrics
            "train_samples": len(y),
            "test_samples": len(test_index),
            "accuracy_before": evaluate(fed.model, x_test, y_test)[0] if has_test else None,
            "accuracy_after": evaluate(local, x_test, y_test)[0] if has_test else None,
        })
    return rows


def summarize(rows: Sequence[dict]) -> tuple[float, float]:
    """Test-sample-weighted mean accuracy over clients, before and after fine-tuning."""
    tested = [r for r in rows if r["test_samples"] > 0]
    total = sum(r["test_samples"] for r in tested)
    if total == 0:
        return float("nan"), float("nan")
    before = sum(r["accuracy_before"] * r["test_samples"] for r in tested) / total
    after = sum(r["accuracy_after"] * r["test_samples"] for r in tested) / total
    return before, after
