"""FedAvg / FedProx training loop with checkpoints, resume and optional personalization.

Each round r = 1..R: sample ``ceil(fraction * clients)`` clients, train each locally from the
global model (FedProx when ``mu > 0``), aggregate the clipped deltas with the configured
protocol through :func:`fedsecure.fl.server.aggregate_round` (the loop never branches on the
protocol), add the mean delta to the global model, evaluate on the test set, and write the
checkpoint and metrics to the run directory.  An aborted round leaves the model unchanged and
is recorded as such; so is a client whose local training diverged (its update is dropped, see
:func:`fedsecure.fl.server.aggregate_round`).  With a robust rule or a simulated attack
configured, :mod:`fedsecure.fl.robust_round` picks the protocol, poisons the malicious
clients' data (at preparation) or deltas (between training and aggregation) and adds the
rule's verdicts to the row.  Clients are numbered 1..clients in the metrics,
as the protocols number their parties.  :func:`run_rounds` takes the round as a function, so the MPI driver
(:mod:`fedsecure.fl.mpi`) plays its rounds through the same loop, :func:`local_update` and
:func:`finish_round`.

Randomness: every draw of round r (client sampling, each client's batch order) comes from a
generator seeded by ``SeedSequence(seed, spawn_key=(r, purpose[, client]))``, so the seed and
the number of completed rounds are the whole RNG state: resuming from a checkpoint replays the
remaining rounds exactly as an uninterrupted run would (on the CPU, and with an aggregation
protocol whose result does not depend on fresh randomness -- secure protocols that round
stochastically with the OS CSPRNG differ run to run by at most their quantization error).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
from torch import nn

from fedsecure.config import require
from fedsecure.errors import ConfigurationError
from fedsecure.fl import robust_round, rundir
from fedsecure.fl.client import LocalUpdate, train_local
from fedsecure.fl.config import TrainConfig
from fedsecure.fl.federation import (
    PURPOSE_ATTACK,
    PURPOSE_PERSONALIZE,
    PURPOSE_SAMPLE,
    PURPOSE_STRAGGLE,
    PURPOSE_TRAIN,
    Federation,
    attack_seed,
    derived_seed,
    prepare,
)
from fedsecure.fl.model import evaluate, model_to_vector, vector_to_model
from fedsecure.fl.personalize import personalize
from fedsecure.fl.server import (
    AggregateFn,
    RoundAggregate,
    aggregate_round,
    sample_clients,
    secure_aggregate,
)

__all__ = ["Federation", "TrainResult", "prepare", "train", "resume", "run_rounds",
           "run_round", "finish_round", "local_update", "claim_run_dir", "default_run_dir"]

RESUMABLE_CHANGES = ("rounds", "device")
"""The options a resumed run may change; everything else comes from the checkpoint."""


@dataclass(frozen=True)
class TrainResult:
    config: TrainConfig
    run_dir: Path
    model: nn.Module
    metrics: list[dict]
    personalization: list[dict] | None
    resumed_from: int = 0
    """Rounds completed before this call (0 for a fresh run): ``metrics[resumed_from:]`` are
    the rounds it played."""


RoundCallback = Callable[[dict, TrainConfig], None]
"""Called after each round with its metrics row and the run's configuration."""

RoundFn = Callable[[Federation, int], dict]
"""Plays one round on ``fed.model`` (updated in place) and returns its metrics row."""


def local_update(fed: Federation, round_index: int, client: int) -> LocalUpdate:
    """Client ``client``'s training of round ``round_index``, from the current global model."""
    cfg = fed.config
    x, y = fed.client_data[client]
    dp_sgd = None
    if cfg.dp_sgd is not None:  # sample-level DP-SGD (extra: dp-sgd, checked by prepare)
        from fedsecure.dp.dpsgd import DPSGD

        dp_sgd = DPSGD(cfg.dp_sgd, cfg.dp_sgd_clip)
    return train_local(fed.model, x, y, epochs=cfg.local_epochs, batch_size=cfg.batch_size,
                       lr=cfg.lr, momentum=cfg.momentum, mu=cfg.mu,
                       seed=derived_seed(cfg.seed, round_index, PURPOSE_TRAIN, client),
                       dp_sgd=dp_sgd)


def run_round(fed: Federation, round_index: int, *,
              aggregate: AggregateFn = secure_aggregate) -> dict:
    """One federated round on ``fed.model`` (updated in place); returns its metrics row."""
    cfg = fed.config
    sampler = np.random.default_rng(derived_seed(cfg.seed, round_index, PURPOSE_SAMPLE))
    sampled = sample_clients(cfg.clients, cfg.fraction, sampler)
    began = time.perf_counter()
    updates = robust_round.attack_updates(
        cfg, [(client, local_update(fed, round_index, client)) for client in sampled],
        seed=attack_seed(cfg), round_seed=derived_seed(cfg.seed, round_index, PURPOSE_ATTACK))
    trained = time.perf_counter()
    straggle = np.random.default_rng(derived_seed(cfg.seed, round_index, PURPOSE_STRAGGLE))
    stragglers = sorted(int(c) for c in straggle.choice(
        sampled, size=int(round(cfg.stragglers * len(sampled))), replace=False))
    protocol, options = robust_round.aggregation(cfg)
    outcome = aggregate_round(updates, protocol=protocol, options=options,
                              clip=cfg.clip, round_index=round_index,
                              deadline_s=cfg.deadline_s, stragglers=stragglers,
                              allow_small_cohort=cfg.allow_small_cohort, aggregate=aggregate)
    return finish_round(fed, round_index, sampled=sampled, stragglers=stragglers,
                        outcome=outcome, losses=[(u.n_samples, u.train_loss) for _, u in updates],
                        seconds_train=trained - began,
                        seconds_aggregate=time.perf_counter() - trained)


def round_player(fed: Federation, metrics: list[dict], aggregate: AggregateFn) -> RoundFn:
    """The round function of a run: DP rounds (:mod:`fedsecure.fl.dp_round`) when
    ``config.dp`` is set, else :func:`run_round`."""
    if fed.config.dp is None:
        return lambda f, r: run_round(f, r, aggregate=aggregate)
    from fedsecure.fl.dp_round import DPRounds, in_process

    return DPRounds(fed, metrics, in_process(run_round)).play


def finish_round(fed: Federation, round_index: int, *, sampled: list[int],
                 stragglers: list[int], outcome: RoundAggregate,
                 losses: list[tuple[int, float]], seconds_train: float,
                 seconds_aggregate: float) -> dict:
    """Add the round's mean delta (if it did not abort) to the global model, evaluate it and
    return the round's metrics row; ``losses`` holds each client's (sample count, training
    loss).  Clients are given as partition indices 0..clients-1 and reported as 1..clients."""
    began = time.perf_counter()
    if outcome.mean is not None:
        vector_to_model(model_to_vector(fed.model) + outcome.mean, fed.model)
    accuracy, loss = evaluate(fed.model, fed.x_test, fed.y_test)
    finite = [(n, lo) for n, lo in losses if math.isfinite(lo)]
    weights = np.array([n for n, _ in finite], dtype=np.float64)
    return {
        "round": round_index,
        "accuracy": accuracy,
        "loss": loss,
        "train_loss": float(np.dot(weights, [lo for _, lo in finite]) / weights.sum())
        if finite else None,
        "sampled": client_numbers(sampled),
        "survivors": client_numbers(outcome.survivors),
        "dropped": client_numbers(outcome.dropped),
        "stragglers": client_numbers(stragglers),
        "diverged": client_numbers(outcome.diverged),
        "aborted": None if outcome.error is None else str(outcome.error),
        "bytes": outcome.bytes_total,
        "clipped_fraction": outcome.clipped_fraction,
        "quantization_error": outcome.quantization_error,
        "epsilon": None,
        "record_epsilon": record_epsilon(fed.config, round_index),
        "seconds_train": seconds_train,
        "seconds_aggregate": seconds_aggregate,
        "seconds_eval": time.perf_counter() - began,
        "phase_seconds": outcome.phase_seconds,
        "robust": outcome.robust,
        **robust_round.round_metrics(fed, sampled, seed=attack_seed(fed.config)),
    }


def record_epsilon(config: TrainConfig, round_index: int) -> float | None:
    """Under DP-SGD, the record-level epsilon (at ``config.delta``) of a client that took part
    in every round so far -- an upper bound for the others (:mod:`fedsecure.dp.dpsgd`)."""
    if config.dp_sgd is None:
        return None
    from fedsecure.dp.dpsgd import record_epsilon as epsilon_after

    return epsilon_after(config.dp_sgd, config.local_epochs * round_index, config.delta)


def client_numbers(indices) -> list[int]:
    """Partition indices 0..clients-1 as the client numbers 1..clients every output uses."""
    return [int(i) + 1 for i in indices]


def default_run_dir() -> Path:
    return Path("runs") / datetime.now().strftime("train-%Y%m%d-%H%M%S")


def claim_run_dir(config: TrainConfig) -> TrainConfig:
    """``config`` with its run directory resolved (default: a new timestamped folder), after
    checking that it does not already hold a run."""
    run_dir = Path(config.run_dir) if config.run_dir is not None else default_run_dir()
    require(not (run_dir / rundir.CHECKPOINT_FILE).exists(), "run_dir", str(run_dir),
            "already holds a run; continue it with --resume or choose another folder")
    return replace(config, run_dir=str(run_dir))


def train(config: TrainConfig, *, aggregate: AggregateFn = secure_aggregate,
          on_round: RoundCallback | None = None) -> TrainResult:
    """A fresh run: pre-flight checks, then ``config.rounds`` rounds into the run directory.

    Nothing is printed: pass ``on_round=fedsecure.fl.report.print_progress`` for the per-round
    lines ``fedsecure train`` prints.  Aborted rounds are rows with ``aborted`` set (see
    :func:`fedsecure.fl.report.run_failure`); they do not raise."""
    fed = prepare(claim_run_dir(config))
    return run_rounds(fed, [], play=round_player(fed, [], aggregate), on_round=on_round)


def resume(run_dir: str | Path, *, rounds: int | None = None, device: str | None = None,
           aggregate: AggregateFn = secure_aggregate,
           on_round: RoundCallback | None = None) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint up to its (or ``rounds``) rounds.

    Only ``rounds`` (to extend a run) and ``device`` may differ from the saved configuration.
    """
    run_dir = Path(run_dir)
    checkpoint = rundir.load_checkpoint(run_dir)
    config = TrainConfig.from_mapping(checkpoint["config"], source=str(run_dir))
    changes = {k: v for k, v in (("rounds", rounds), ("device", device)) if v is not None}
    config = replace(config, run_dir=str(run_dir), **changes)
    done = checkpoint["round"]
    require(config.rounds >= done, "rounds", config.rounds,
            f"the run in {run_dir} already completed {done} rounds")
    fed = prepare(config)
    fed.model.load_state_dict(checkpoint["model"])
    return run_rounds(fed, checkpoint["metrics"],
                      play=round_player(fed, checkpoint["metrics"], aggregate), on_round=on_round)


def run_rounds(fed: Federation, metrics: list[dict], *, play: RoundFn,
               on_round: RoundCallback | None = None) -> TrainResult:
    """Play the rounds after ``metrics`` up to ``fed.config.rounds`` with ``play`` into the run
    directory ``fed.config.run_dir``: checkpoint and metrics after every round, then the final
    model, the plot and (if configured) personalization."""
    cfg = fed.config
    run_dir = Path(cfg.run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"run_dir={str(run_dir)!r}: cannot create it ({exc.strerror});"
                                 " choose another folder (--run-dir)") from None
    resumed_from = len(metrics)
    # config.json records the device actually used ("cuda:0", not "auto"); the checkpoint
    # keeps the requested one, so a resumed run picks its device again.
    rundir.write_json(run_dir / rundir.CONFIG_FILE, dict(cfg.to_dict(), device=str(fed.device)))
    for round_index in range(len(metrics) + 1, cfg.rounds + 1):
        row = play(fed, round_index)
        metrics.append(row)
        rundir.save_checkpoint(run_dir, completed_round=round_index,
                               model_state=fed.model.state_dict(), config=cfg.to_dict(),
                               metrics=metrics, seed=cfg.seed)
        rundir.write_metrics(run_dir, metrics)
        if on_round is not None:
            on_round(row, cfg)
    rundir.save_model(run_dir, fed.model.state_dict())
    rundir.plot_metrics(run_dir / rundir.PLOT_FILE, metrics)
    personal = None
    if cfg.personalize:
        personal = personalize(
            fed, split_seed=derived_seed(cfg.seed, 0, PURPOSE_PERSONALIZE),
            seeds=[derived_seed(cfg.seed, cfg.rounds, PURPOSE_PERSONALIZE, c)
                   for c in range(cfg.clients)])
        rundir.write_json(run_dir / rundir.PERSONALIZATION_FILE, personal)
    return TrainResult(config=cfg, run_dir=run_dir, model=fed.model, metrics=metrics,
                       personalization=personal, resumed_from=resumed_from)
