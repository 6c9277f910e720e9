"""The prepared state of a training run: data partitioned over clients, the model, the device.

:func:`prepare` runs every pre-flight check that needs the data or the aggregator, so a bad
configuration fails before the first round.  The training loop (:mod:`fedsecure.fl.loop`), the
MPI driver (:mod:`fedsecure.fl.mpi`) and personalization (:mod:`fedsecure.fl.personalize`) all
work on a :class:`Federation`; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedsecure.fl import robust_round
from fedsecure.fl.client import resolve_device
from fedsecure.fl.config import TrainConfig
from fedsecure.fl.data import Dataset, load_dataset, partition
from fedsecure.fl.model import build_model, model_to_vector
from fedsecure.protocols.base import AggregationSpec, make_aggregator

PURPOSE_SAMPLE, PURPOSE_TRAIN, PURPOSE_PERSONALIZE, PURPOSE_STRAGGLE, PURPOSE_ATTACK = range(5)


def derived_seed(seed: int, round_index: int, purpose: int, client: int | None = None) -> int:
    """A 63-bit seed for one purpose of one round (and client), derived from ``seed``."""
    key = (round_index, purpose) if client is None else (round_index, purpose, client)
    state = np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def attack_seed(cfg: TrainConfig) -> int:
    """The seed of a run's malicious client set and data poisoning (simulated attacks)."""
    return derived_seed(cfg.seed, 0, PURPOSE_ATTACK)


@dataclass
class Federation:
    """The prepared data and model of a run, with tensors on the training device.

    ``parts[k]`` (and ``client_data[k]``) belong to client ``k + 1``: clients are numbered
    1..clients in every output, as the aggregation protocols number them.
    """

    config: TrainConfig
    device: torch.device
    dataset: Dataset
    parts: list[np.ndarray]
    client_data: list[tuple[torch.Tensor, torch.Tensor]]
    x_test: torch.Tensor
    y_test: torch.Tensor
    model: nn.Module


def prepare(config: TrainConfig) -> Federation:
    """Load and partition the data, build the model and check the aggregation configuration.

    Everything that can be wrong with the configuration fails here, before any training.
    """
    device = resolve_device(config.device)
    if config.threads:
        # The built-in models are tiny: one thread per process avoids oversubscribing a
        # shared CPU (measured 4 s vs 22-88 s for the default job on a loaded 2-core machine).
        torch.set_num_threads(config.threads)
    dataset = load_dataset(config.dataset, seed=config.seed, test_fraction=config.test_fraction,
                           label_column=config.label_column)
    parts = partition(dataset.y_train, config.clients, scheme=config.partition,
                      alpha=config.alpha, seed=config.seed)
    model = build_model(config.model, dataset.n_features, dataset.n_classes,
                        hidden=config.hidden, seed=config.seed).to(device)
    # Build the aggregator of the most demanding round this run can have (largest weight):
    # bad protocol options, a fixed-point ring that would overflow or a cohort too small to
    # hide an input fail here.
    protocol, options = robust_round.aggregation(config)
    make_aggregator(protocol, AggregationSpec(
        n_clients=config.clients_per_round, vector_length=len(model_to_vector(model)),
        max_weight=max(len(p) for p in parts), clip=config.clip,
        allow_small_cohort=config.allow_small_cohort), **options)
    if config.dp_sgd is not None:
        import fedsecure.dp.dpsgd  # noqa: F401  -- BackendUnavailable (extra: dp-sgd) up front
    x = torch.from_numpy(dataset.x_train).to(device)
    y = torch.from_numpy(dataset.y_train).to(device)
    return Federation(
        config=config, device=device, dataset=dataset, parts=parts,
        client_data=robust_round.poison_client_data(
            config, [(x[torch.from_numpy(p).to(device)], y[torch.from_numpy(p).to(device)])
                     for p in parts], dataset.n_classes, attack_seed(config)),
        x_test=torch.from_numpy(dataset.x_test).to(device),
        y_test=torch.from_numpy(dataset.y_test).to(device),
        model=model,
    )
