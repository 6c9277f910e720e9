"""``fedsecure train``: federated training with secure aggregation, from flags or a TOML file.

Options come from the defaults, then ``--config FILE.toml``, then flags.  ``--resume RUN_DIR``
continues an interrupted run from its checkpoint (only ``--rounds`` and ``--device`` may be
given with it).  torch is imported only when the command runs, so other sub-commands work
without the ``train`` extra.  Exit status: 0 when the run trained (single aborted rounds are
reported and keep the previous model), 1 when no round of it changed the model, 2 for a bad
option, file or checkpoint (see docs/cli.md).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from fedsecure.config import require
from fedsecure.errors import BackendUnavailable
from fedsecure.protocols.base import available_protocols

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
    ("--protocol", "protocol", str,
     f"aggregation protocol: {', '.join(available_protocols())} (default secagg)"),
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
    ("--dp", "dp", str, "differential privacy: local, central or distributed (docs/dp.md)"),
    ("--epsilon", "epsilon", float, "DP target epsilon over all rounds (with --dp)"),
    ("--delta", "delta", float, "DP target delta (default 1e-5)"),
    ("--clip-norm", "clip_norm", float, "DP: L2 clip of each client's delta (default 1.0; the"
     " initial clip with --adaptive-clip)"),
    ("--adaptive-clip", "adaptive_clip", float, "DP: adapt the clip to this quantile of the"
     " update norms, estimated privately (Andrew et al. 2021; e.g. 0.5)"),
    ("--adaptive-clip-lr", "adaptive_clip_lr", float, "DP: learning rate of the adaptive clip"
     " (default 0.2)"),
    ("--adaptive-clip-share", "adaptive_clip_share", float, "DP: share of the noise budget"
     " spent on the private unclipped count (default 0.1)"),
    ("--dp-sgd", "dp_sgd", float, "sample-level DP-SGD in local training with this noise"
     " multiplier (Opacus; extra: dp-sgd)"),
    ("--dp-sgd-clip", "dp_sgd_clip", float, "DP-SGD: per-example L2 gradient clip (default 1.0)"),
    # Byzantine robustness and attack simulation (docs/robust.md)
    ("--robust", "robust", str, "robust rule, e.g. median, trimmed-mean, krum, multi-krum,"
     " bulyan, norm-bound, centered-clipping, geometric-median (default: plain mean)"),
    ("--robust-f", "robust_f", int, "Byzantine inputs the rule withstands (default: the"
     " malicious clients a round can hold)"),
    ("--robust-groups", "robust_groups", int, "run the rule across this many securely"
     " aggregated groups (needed with a secure --protocol)"),
    ("--robust-max-norm", "robust_max_norm", float, "per-client L2 bound, checked on each"
     " group's masked sum (with --robust-groups)"),
    ("--attack", "attack", str, "simulate an attack: sign-flip, scaling, gaussian, alie, ipm,"
     " label-flip, backdoor"),
    ("--malicious", "malicious", float, "fraction of clients that are malicious (with --attack)"),
)

# switch -> (TrainConfig field, help); given, it sets the field to true
SWITCHES = (
    ("--personalize", "personalize",
     "fine-tune the final model on each client and report accuracy"),
    ("--allow-small-cohort", "allow_small_cohort",
     "let a secure protocol run a round whose result could be the sum of only two clients"
     " (each then learns the other's input); refused by default"),
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
    for flag, dest, text in SWITCHES:
        parser.add_argument(flag, dest=dest, action="store_true", default=None, help=text)
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--mpi", action="store_true",
                        help="run as MPI ranks under mpirun -n CLIENTS+1: rank 0 the server,"
                             " rank r trains client r's shard (see docs/training.md)")
    parser.add_argument("--quiet", action="store_true", help="no per-round progress lines")
    parser.set_defaults(run=run)


def _overrides(args) -> dict:
    names = [dest for _, dest, _, _ in FLAGS] + [dest for _, dest, _ in SWITCHES]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def run(args) -> int:
    if args.mpi:  # before torch: launch mistakes fail in a second, once per job
        from fedsecure.fl.mpi_start import check_mpi_launch

        check_mpi_launch(args)
    try:
        from fedsecure.fl import loop
        from fedsecure.fl.config import TrainConfig
        from fedsecure.fl.report import print_progress
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "sklearn", "matplotlib"):
            raise BackendUnavailable(exc.name, "train") from None
        raise
    overrides = _overrides(args)
    progress = None if args.quiet else print_progress
    began = time.perf_counter()
    if args.resume is not None:
        flags = {dest: flag for flag, dest, *_ in FLAGS + SWITCHES} | {"config": "--config"}
        extra = sorted(flags[name] for name in set(overrides) - set(loop.RESUMABLE_CHANGES)
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
    return _print_result(result, began)


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


def _print_result(result, began: float) -> int:
    """The run's last lines; returns the exit status (1 if no round trained the model)."""
    from fedsecure.fl.personalize import summarize
    from fedsecure.fl.report import run_failure

    failure = run_failure(result.metrics[result.resumed_from:], result.config)
    if failure is not None:
        print(f"fedsecure train: error: {failure}", file=sys.stderr, flush=True)
        return 1
    final = result.metrics[-1]
    aborted = [row["round"] for row in result.metrics if row["aborted"]]
    note = f"; rounds {aborted} aborted (the model was kept)" if aborted else ""
    print(f"final test accuracy {100 * final['accuracy']:.2f}% (loss {final['loss']:.4f}) after"
          f" {final['round']} rounds, {time.perf_counter() - began:.1f} s{note};"
          f" run directory {result.run_dir}")
    if result.personalization is not None:
        before, after = summarize(result.personalization)
        print(f"personalization: mean per-client accuracy {100 * before:.2f}% ->"
              f" {100 * after:.2f}% after {result.config.personalize_epochs} local epochs")
    return 0
