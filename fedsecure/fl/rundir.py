"""The run directory: configuration echo, per-round metrics, plot, checkpoint and final model.

Layout (see docs/training.md)::

    config.json            the validated TrainConfig of the run, with the device actually used
    metrics.json           one object per round
    metrics.csv            the same fields, one row per round: client lists as JSON arrays,
                           null as an empty cell, phase timings as seconds_<phase> columns
    metrics.png            test accuracy and loss per round (drawn when the run ends)
    checkpoint.pt          everything resume needs, rewritten atomically after every round
    checkpoint.sha256      the checkpoint's SHA-256 digest (``sha256sum -c`` format)
    model.pt               the final global model's state_dict
    personalization.json   per-client accuracy before/after local fine-tuning (if requested)
    mpi_rounds.log         under ``train --mpi``: rank 0's per-rank table of every round

The checkpoint is written with ``torch.save`` and holds only tensors, strings and numbers.  Resume
first checks its bytes against ``checkpoint.sha256`` (a truncated, garbled or altered file is
refused before torch reads it), then reads it with ``torch.load(..., weights_only=True)``,
which refuses arbitrary objects, and checks every field it uses.  Every failure is one
:class:`~fedsecure.errors.ConfigurationError` naming the run directory.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from fedsecure.config import require
from fedsecure.errors import ConfigurationError

CONFIG_FILE = "config.json"
METRICS_JSON = "metrics.json"
METRICS_CSV = "metrics.csv"
PLOT_FILE = "metrics.png"
CHECKPOINT_FILE = "checkpoint.pt"
DIGEST_FILE = "checkpoint.sha256"
MODEL_FILE = "model.pt"
PERSONALIZATION_FILE = "personalization.json"
MPI_LOG_FILE = "mpi_rounds.log"

CHECKPOINT_FORMAT = "fedsecure.fl.checkpoint/1"
RNG_SCHEME = "numpy SeedSequence(seed, spawn_key=(round, purpose[, client]))/1"
"""Every random draw of round r derives from (seed, r), so (seed, completed round) is the full
RNG state.  Stored in checkpoints; resume refuses a checkpoint made under another scheme."""

LIST_FIELDS = ("sampled", "survivors", "dropped", "stragglers", "diverged")
"""Per-round fields that list client numbers (JSON arrays in both metrics files)."""


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
    """Atomically (re)write the checkpoint after ``completed_round``, then its digest."""
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
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getvalue()
    _replace_atomically(run_dir / CHECKPOINT_FILE, lambda handle: handle.write(data))
    line = f"{hashlib.sha256(data).hexdigest()}  {CHECKPOINT_FILE}\n".encode()
    _replace_atomically(run_dir / DIGEST_FILE, lambda handle: handle.write(line))


def _refuse(run_dir: Path, problem: str) -> ConfigurationError:
    return ConfigurationError(
        f"resume={str(run_dir)!r}: {problem}; it cannot be resumed -- start a new run"
        f" (--run-dir elsewhere) or restore {CHECKPOINT_FILE} and {DIGEST_FILE} from a copy")


def _verified_bytes(run_dir: Path) -> bytes:
    """The checkpoint's bytes, after checking them against the digest file."""
    path = run_dir / CHECKPOINT_FILE
    require(path.is_file(), "resume", str(run_dir), f"no {CHECKPOINT_FILE} in that folder")
    try:
        data = path.read_bytes()
        recorded = (run_dir / DIGEST_FILE).read_text().split()
    except FileNotFoundError:
        raise _refuse(run_dir, f"{DIGEST_FILE} is missing, so {CHECKPOINT_FILE} cannot be"
                      " verified") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _refuse(run_dir, f"cannot read the checkpoint ({exc})") from None
    if recorded[:1] != [hashlib.sha256(data).hexdigest()]:
        raise _refuse(run_dir, f"{CHECKPOINT_FILE} does not match its SHA-256 digest in"
                      f" {DIGEST_FILE} (the file is truncated, corrupted or was changed)")
    return data


def load_checkpoint(run_dir: Path) -> dict:
    """The checkpoint of ``run_dir``, verified, with config and metrics decoded."""
    run_dir = Path(run_dir)
    data = _verified_bytes(run_dir)
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises many types; its advice is unsafe)
        raise _refuse(run_dir, f"{CHECKPOINT_FILE} is not a readable checkpoint"
                      f" ({type(exc).__name__})") from None
    require(isinstance(checkpoint, dict) and checkpoint.get("format") == CHECKPOINT_FORMAT,
            "resume", str(run_dir), f"{CHECKPOINT_FILE} is not a {CHECKPOINT_FORMAT} checkpoint")
    rng = checkpoint.get("rng")
    scheme = rng.get("scheme") if isinstance(rng, dict) else None
    require(scheme == RNG_SCHEME, "resume", str(run_dir),
            f"checkpoint uses RNG scheme {scheme!r}, this version {RNG_SCHEME!r}: the run cannot"
            " be continued exactly")
    try:
        checkpoint["config"] = json.loads(checkpoint.pop("config_json"))
        checkpoint["metrics"] = json.loads(checkpoint.pop("metrics_json"))
    except (KeyError, TypeError, ValueError):
        raise _refuse(run_dir, f"{CHECKPOINT_FILE} lacks a valid configuration or metrics"
                      ) from None
    valid = (isinstance(checkpoint.get("round"), int) and isinstance(checkpoint["config"], dict)
             and isinstance(checkpoint["metrics"], list)
             and len(checkpoint["metrics"]) == checkpoint["round"]
             and isinstance(checkpoint.get("model"), dict)
             and all(isinstance(t, torch.Tensor) for t in checkpoint["model"].values()))
    if not valid:
        raise _refuse(run_dir, f"{CHECKPOINT_FILE} has missing or inconsistent fields")
    return checkpoint


def save_model(run_dir: Path, model_state: Mapping) -> None:
    state = {name: t.detach().to("cpu").clone() for name, t in model_state.items()}
    _replace_atomically(run_dir / MODEL_FILE, lambda handle: torch.save(state, handle))


def write_metrics(run_dir: Path, rows: Sequence[dict]) -> None:
    """metrics.json and metrics.csv from the per-round rows (cheap: written every round).

    Both files carry the same fields: the CSV has a column per field of the JSON rows, client
    lists as JSON arrays (``[1, 4]``), null as an empty cell, and ``phase_seconds`` spread over
    ``seconds_<phase>`` columns."""
    write_json(run_dir / METRICS_JSON, list(rows))
    fields: list[str] = []
    phases: list[str] = []
    for row in rows:
        fields += [f for f in row if f != "phase_seconds" and f not in fields]
        phases += [p for p in row["phase_seconds"] if p not in phases]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields + [f"seconds_{p}" for p in phases])
    writer.writeheader()
    for row in rows:
        flat = {f: _csv_cell(f, row.get(f)) for f in fields}
        flat.update({f"seconds_{p}": s for p, s in row["phase_seconds"].items()})
        writer.writerow(flat)
    data = text.getvalue().encode()
    _replace_atomically(run_dir / METRICS_CSV, lambda handle: handle.write(data))


def _csv_cell(name: str, value):
    if value is None:
        return ""
    return json.dumps(value) if name in LIST_FIELDS else value


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
    _plot_epsilon(accuracy, rounds, [row.get("epsilon") for row in rows],
                  [row.get("record_epsilon") for row in rows])
    loss.plot(rounds, [row["loss"] for row in rows], marker="o", color="tab:red")
    loss.set(xlabel="round", ylabel="test loss", title="loss")
    for axes in (accuracy, loss):
        axes.grid(alpha=0.3)
    _replace_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=100))


def _plot_epsilon(axes, rounds: list[int], epsilons: list, record: list) -> None:
    """Under DP training, the cumulative epsilon (user-level; record-level under DP-SGD) on a
    second y axis of ``axes``."""
    if all(e is None for e in epsilons + record):
        return
    privacy = axes.twinx()
    if any(e is not None for e in epsilons):
        privacy.plot(rounds, epsilons, marker=".", color="tab:green", label="user-level epsilon")
    if any(e is not None for e in record):
        privacy.plot(rounds, record, marker="x", color="tab:olive", label="record-level epsilon")
    privacy.set_ylabel("epsilon spent", color="tab:green")
    privacy.legend(loc="lower right", fontsize="small")
    axes.set_title("accuracy and privacy spent")
