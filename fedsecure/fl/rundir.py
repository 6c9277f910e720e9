"""The run directory: configuration echo, per-round metrics, plot, checkpoint and final model.

Layout (see docs/training.md)::

    config.json            the validated TrainConfig of the run
    metrics.json           one object per round
    metrics.csv            the same, one row per round (phase timings as seconds_<phase>)
    metrics.png            test accuracy and loss per round (drawn when the run ends)
    checkpoint.pt          everything resume needs, rewritten atomically after every round
    model.pt               the final global model's state_dict
    personalization.json   per-client accuracy before/after local fine-tuning (if requested)
    mpi_rounds.log         under ``train --mpi``: rank 0's per-rank table of every round

The checkpoint is written with ``torch.save`` and holds only tensors, strings and numbers; it is
read back with ``torch.load(..., weights_only=True)``, which refuses arbitrary objects.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from fedsecure.config import require

CONFIG_FILE = "config.json"
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
PLOT_FILE = "metrics.png"
CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
PERSONALIZATION_FILE = "personalization.json"
MPI_LOG_FILE = "mpi_rounds.log"

CHECKPOINT_FORMAT = "fedsecure.fl.checkpoint/1"
RNG_SCHEME = "numpy SeedSequence(seed, spawn_key=(round, purpose[, client]))/1"
"""Every random draw of round r derives from (seed, r), so (seed, completed round) is the full
RNG state.  Stored in checkpoints; resume refuses a checkpoint made under another scheme."""

CSV_COLUMNS = ("round", "accuracy", "loss", "train_loss", "sampled", "survivors", "dropped",
               "aborted", "bytes", "clipped_fraction", "quantization_error", "epsilon",
               "seconds_train", "seconds_aggregate", "seconds_eval")


def _replace_atomically(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: Path, value) -> None:
    data = (json.dumps(value, indent=2) + "\n").encode()
    _replace_atomically(path, lambda handle: handle.write(data))


def save_checkpoint(run_dir: Path, *, completed_round: int, model_state: Mapping,
                    config: dict, metrics: Sequence[dict], seed: int) -> None:
    """Atomically (re)write the checkpoint after ``completed_round``."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "round": completed_round,
        "model": {name: t.detach().to("cpu").clone() for name, t in model_state.items()},
        "config_json": json.dumps(config),
        "metrics_json": json.dumps(list(metrics)),
        "rng": {"scheme": RNG_SCHEME, "seed": seed},
        # Slot for the DP accountant's state (None until DP training exists).
        "dp_accountant": None,
    }
    _replace_atomically(run_dir / CHECKPOINT_FILE, lambda handle: torch.save(checkpoint, handle))


def load_checkpoint(run_dir: Path) -> dict:
    """The checkpoint of ``run_dir`` with config and metrics decoded; checked for its format."""
    path = Path(run_dir) / CHECKPOINT_FILE
    require(path.is_file(), "resume", str(run_dir), f"no {CHECKPOINT_FILE} in that folder")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    require(isinstance(checkpoint, dict) and checkpoint.get("format") == CHECKPOINT_FORMAT,
            "resume", str(run_dir), f"{CHECKPOINT_FILE} is not a {CHECKPOINT_FORMAT} checkpoint")
    require(checkpoint["rng"].get("scheme") == RNG_SCHEME, "resume", str(run_dir),
            f"checkpoint uses RNG scheme {checkpoint['rng'].get('scheme')!r}, this version"
            f" {RNG_SCHEME!r}: the run cannot be continued exactly")
    checkpoint["config"] = json.loads(checkpoint.pop("config_json"))
    checkpoint["metrics"] = json.loads(checkpoint.pop("metrics_json"))
    return checkpoint


def save_model(run_dir: Path, model_state: Mapping) -> None:
    state = {name: t.detach().to("cpu").clone() for name, t in model_state.items()}
    _replace_atomically(run_dir / MODEL_FILE, lambda handle: torch.save(state, handle))


def write_metrics(run_dir: Path, rows: Sequence[dict]) -> None:
    """metrics.json and metrics.csv from the per-round rows (cheap: written every round)."""
    write_json(run_dir / METRICS_JSON, list(rows))
    phases: list[str] = []
    for row in rows:
        phases += [p for p in row["phase_seconds"] if p not in phases]
    columns = list(CSV_COLUMNS) + [f"seconds_{p}" for p in phases]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        flat = dict(row, sampled=len(row["sampled"]), survivors=len(row["survivors"]),
                    dropped=len(row["dropped"]), aborted=row["aborted"] or "")
        flat.update({f"seconds_{p}": s for p, s in row["phase_seconds"].items()})
        flat["epsilon"] = "" if row["epsilon"] is None else row["epsilon"]
        writer.writerow(flat)
    data = text.getvalue().encode()
    _replace_atomically(run_dir / METRICS_CSV, lambda handle: handle.write(data))


def plot_metrics(path: Path, rows: Sequence[dict]) -> None:
    """Test accuracy and loss per round, as a PNG (matplotlib's Agg backend, no display).

    Drawn once at the end of a run: at ~0.2 s it costs more than a round of the default job.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rounds = [row["round"] for row in rows]
    figure = Figure(figsize=(9, 3.5))
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.3)
    FigureCanvasAgg(figure)
    accuracy, loss = figure.subplots(1, 2)
    accuracy.plot(rounds, [100 * row["accuracy"] for row in rows], marker="o")
    accuracy.set(xlabel="round", ylabel="test accuracy (%)", title="accuracy")
    _plot_epsilon(accuracy, rounds, [row.get("epsilon") for row in rows])
    loss.plot(rounds, [row["loss"] for row in rows], marker="o", color="tab:red")
    loss.set(xlabel="round", ylabel="test loss", title="loss")
    for axes in (accuracy, loss):
        axes.grid(alpha=0.3)
    _replace_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=100))


def _plot_epsilon(axes, rounds: list[int], epsilons: list) -> None:
    """Under DP training, the cumulative epsilon on a second y axis of ``axes``."""
    if all(e is None for e in epsilons):
        return
    privacy = axes.twinx()
    privacy.plot(rounds, epsilons, marker=".", color="tab:green", label="epsilon")
    privacy.set_ylabel("epsilon spent", color="tab:green")
    axes.set_title("accuracy and privacy spent")
