"""``fedsecure train``: federated training with secure aggregation, from flags or a TOML file.

Options come from the defaults, then ``--config FILE.toml``, then flags.  ``--resume RUN_DIR``
continues an interrupted run from its checkpoint (only ``--rounds`` and ``--device`` may be
given with it).  torch is imported only when the command runs, so other sub-commands work
without the ``train`` extra.
"""

from __future__ import annotations

import time
from dataclasses import replace

from fedsecure.config import require
from fedsecure.errors import BackendUnavailable

# flag -> (TrainConfig field, type, help)
FLAGS = (
    ("--dataset", "dataset", str,
     "digits (default), breast_cancer, csv:PATH, npz:PATH, npy:X.npy,Y.npy, images:ROOT,"
     " idx:IMAGES,LABELS"),
    ("--label-column", "label_column", str, "csv label column name or index (default: last)"),
    ("--clients", "clients", int, "number of clients (default 10)"),
    ("--partition", "partition", str, "iid, dirichlet (label skew, default) or quantity"),
    ("--alpha", "alpha", float, "Dirichlet concentration; smaller is more skewed (default 0.5)"),
    ("--rounds", "rounds", int, "federated rounds (default 12)"),
    ("--fraction", "fraction", float, "fraction of clients sampled per round (default 1.0)"),
    ("--protocol", "protocol", str, "aggregation protocol, e.g. plaintext or secagg (default)"),
    ("--clip", "clip", float, "per-coordinate clip of each delta (default 2.0)"),
    ("--deadline-s", "deadline_s", float, "per-phase aggregation deadline in seconds"),
    ("--stragglers", "stragglers", float,
     "fraction of each round's clients whose messages arrive after the deadline (default 0)"),
    ("--model", "model", str, "mlp (default) or logistic"),
    ("--hidden", "hidden", int, "hidden units of the mlp (default 64)"),
    ("--local-epochs", "local_epochs", int, "local epochs per round (default 2)"),
    ("--batch-size", "batch_size", int, "local batch size (default 32)"),
    ("--lr", "lr", float, "local SGD learning rate (default 0.05)"),
    ("--momentum", "momentum", float, "local SGD momentum (default 0.9)"),
    ("--mu", "mu", float, "FedProx proximal weight; 0 is FedAvg (default 0)"),
    ("--seed", "seed", int, "seed of data split, partition, sampling and training (default 0)"),
    ("--device", "device", str, "auto (default: cuda if available), cpu, cuda, cuda:N"),
    ("--threads", "threads", int, "torch CPU threads (default 1; 0 keeps torch's default)"),
    ("--run-dir", "run_dir", str, "run directory (default runs/train-<timestamp>)"),
    ("--personalize-epochs", "personalize_epochs", int, "fine-tuning epochs (default 2)"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="federated training (FedAvg/FedProx) with secure aggregation",
        description="Federated training (FedAvg/FedProx) with secure aggregation. Options come"
                    " from the defaults, then --config FILE.toml, then flags; see"
                    " docs/training.md.")
    parser.add_argument("--config", metavar="FILE.toml", help="TOML file of options")
    for flag, dest, kind, text in FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    parser.add_argument("--personalize", action="store_true", default=None,
                        help="fine-tune the final model on each client and report accuracy")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--mpi", action="store_true",
                        help="run as MPI ranks under mpirun -n CLIENTS+1: rank 0 the server,"
                             " rank r trains client r's shard (see docs/training.md)")
    parser.add_argument("--quiet", action="store_true", help="no per-round progress lines")
    parser.set_defaults(run=run)


def _overrides(args) -> dict:
    names = [dest for _, dest, _, _ in FLAGS] + ["personalize"]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def format_round(row: dict, rounds: int) -> str:
    """One progress line: round, accuracy, loss, bytes, seconds per phase."""
    phases = " ".join(f"{name} {seconds:.2f}s" for name, seconds in row["phase_seconds"].items()
                      if seconds >= 0.005)
    status = f"  ABORTED: {row['aborted']}" if row["aborted"] else ""
    return (f"round {row['round']:>3}/{rounds}  acc {100 * row['accuracy']:6.2f}%"
            f"  loss {row['loss']:.4f}  {row['bytes'] / 1e6:8.3f} MB"
            f"  train {row['seconds_train']:.2f}s  aggregate {row['seconds_aggregate']:.2f}s"
            f"  clipped {100 * row['clipped_fraction']:.2f}%"
            f"{'  [' + phases + ']' if phases else ''}{status}")


def run(args) -> int:
    if args.mpi:  # before torch: launch mistakes fail in a second, once per job
        from fedsecure.fl.mpi_start import check_mpi_launch

        check_mpi_launch(args)
    try:
        from fedsecure.fl import loop
        from fedsecure.fl.config import TrainConfig
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "sklearn", "matplotlib"):
            raise BackendUnavailable(exc.name, "train") from None
        raise
    overrides = _overrides(args)
    progress = None if args.quiet else (
        lambda row, config: print(format_round(row, config.rounds), flush=True))
    began = time.perf_counter()
    if args.resume is not None:
        extra = sorted(set(overrides) - set(loop.RESUMABLE_CHANGES)
                       | ({"config"} if args.config else set()))
        require(not extra, "resume", args.resume,
                f"continues the saved configuration; only --rounds and --device may be given"
                f" with it, not {extra}")
        if not args.quiet:
            print(f"resuming {args.resume}", flush=True)
        result = loop.resume(args.resume, rounds=overrides.get("rounds"),
                             device=overrides.get("device"), on_round=progress)
    else:
        config = TrainConfig.load(args.config, overrides)
        if config.run_dir is None:
            config = replace(config, run_dir=str(loop.default_run_dir()))
        if args.mpi:
            return _train_mpi(config, quiet=args.quiet, progress=progress, began=began)
        if not args.quiet:
            print(_heading(config), flush=True)
        result = loop.train(config, on_round=progress)
    _print_result(result, began)
    return 0


def _heading(config) -> str:
    return (f"training {config.dataset}: {config.clients} clients ({config.partition}"
            f" partition), {config.clients_per_round} per round, protocol {config.protocol},"
            f" {config.rounds} rounds -> {config.run_dir}")


def _train_mpi(config, *, quiet: bool, progress, began: float) -> int:
    """This rank's part of ``fedsecure train --mpi``; rank 0 prints what the command prints."""
    try:
        import mpi4py.MPI  # noqa: F401  (initializes MPI)
    except ImportError:
        raise BackendUnavailable("mpi4py", "mpi") from None
    from fedsecure.fl.mpi import train_mpi
    from fedsecure.runtime.mpi_runner import run_rank

    def print_now(text: str) -> None:
        print(text, flush=True)

    def start(config) -> None:
        if not quiet:
            print(f"{_heading(config)}; rank 0 is the server, ranks 1..{config.clients} the"
                  " clients", flush=True)

    def rank_part():
        outcome, result = train_mpi(config, on_start=start, on_round=progress,
                                    on_progress=None if quiet else print_now)
        if result is not None:
            _print_result(result, began)
        return outcome

    return run_rank(rank_part)


def _print_result(result, began: float) -> None:
    from fedsecure.fl.personalize import summarize

    final = result.metrics[-1]
    print(f"final test accuracy {100 * final['accuracy']:.2f}% (loss {final['loss']:.4f}) after"
          f" {final['round']} rounds, {time.perf_counter() - began:.1f} s;"
          f" run directory {result.run_dir}")
    if result.personalization is not None:
        before, after = summarize(result.personalization)
        print(f"personalization: mean per-client accuracy {100 * before:.2f}% ->"
              f" {100 * after:.2f}% after {result.config.personalize_epochs} local epochs")
