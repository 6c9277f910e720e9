"""``fedsecure mpi-round``: one aggregation round with every party an MPI rank.

Run it under ``mpirun`` on every rank: ``mpirun -n N`` gives rank 0 the server and ranks
1..N-1 the clients.  Options may come from a ``--config`` file (TOML or JSON, see
``mpi_launch/configs/``); options given on the command line override it.  Every rank must see
the same configuration (checked before the round starts).  Rank 0 prints the outcome and a
per-rank table and, with ``--out``, writes the JSON report.  Exit status: 0 when the round
finished and its aggregate matches the plain sum of the survivors, 1 otherwise; a rank killed
by ``--crash`` exits with 75 (use ``mpirun -disable-auto-cleanup``, or mpirun kills the job).
"""

from __future__ import annotations

import argparse

from fedsecure.config import require
from fedsecure.errors import BackendUnavailable, ConfigurationError


def register(subparsers) -> None:
    p = subparsers.add_parser("mpi-round", help="one aggregation round, run under mpirun",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="round configuration (.toml or .json)")
    p.add_argument("--protocol", help="aggregation protocol (default secagg)")
    p.add_argument("--dim", type=int, help="vector length (default 1000)")
    p.add_argument("--seed", type=int,
                   help="seed of the synthetic client updates (default 0)")
    p.add_argument("--max-weight", dest="max_weight", type=int,
                   help="largest client weight (default 1)")
    p.add_argument("--clip", type=float, help="per-coordinate clipping bound (default 1.0)")
    p.add_argument("--min-clients", dest="min_clients", type=int,
                   help="fewest survivors for the round to finish (default: a strict majority)")
    p.add_argument("--deadline", dest="deadline_s", type=float, metavar="SECONDS",
                   help="server deadline per phase (default 30)")
    p.add_argument("--phase-deadline", dest="phase_deadlines", action="append", default=[],
                   metavar="PHASE=SECONDS", help="deadline of one server phase, e.g. "
                   "collect_masked=5 (repeatable)")
    p.add_argument("--silent", action="append", default=[], metavar="RANK:MESSAGE",
                   help="that rank stops sending from MESSAGE on, e.g. 3:MaskedInput "
                   "(repeatable)")
    p.add_argument("--crash", action="append", default=[], metavar="RANK:MESSAGE",
                   help="that rank's process exits just before sending MESSAGE, e.g. "
                   "5:UnmaskShares (repeatable; needs mpirun -disable-auto-cleanup)")
    p.add_argument("--round-timeout", dest="round_timeout_s", type=float, metavar="SECONDS",
                   help="longest any rank waits for the round (default 600)")
    p.add_argument("--report-timeout", dest="report_timeout_s", type=float, metavar="SECONDS",
                   help="how long rank 0 waits for the other ranks' statistics (default 10)")
    p.add_argument("--no-warm-up", dest="warm_up", action="store_false", default=None,
                   help="skip the tiny in-process round each rank runs first to load kernels")
    p.add_argument("--out", metavar="FILE", help="rank 0 writes the JSON report here")
    p.add_argument("--save-aggregate", dest="aggregate", metavar="FILE.npy",
                   help="rank 0 saves the weighted sum (NumPy .npy) here")
    p.set_defaults(run=run)


def build_config(args):
    """The round configuration from ``--config`` and the command-line overrides."""
    from fedsecure.runtime.mpi_config import MPIRoundConfig, faults_from_cli, load_config_file

    options = load_config_file(args.config) if args.config else {}
    for name in ("protocol", "dim", "seed", "max_weight", "clip", "min_clients", "deadline_s",
                 "round_timeout_s", "report_timeout_s", "warm_up"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    phases = dict(options.get("phase_deadlines_s", {}))
    for item in args.phase_deadlines:
        phase, sep, seconds = item.partition("=")
        require(bool(sep and phase), "--phase-deadline", item, "expected PHASE=SECONDS")
        try:
            phases[phase] = float(seconds)
        except ValueError:
            raise ConfigurationError(
                f"--phase-deadline={item!r}: SECONDS is not a number") from None
    options["phase_deadlines_s"] = phases
    cli_faults = faults_from_cli(args.silent, args.crash)
    if cli_faults:
        options["faults"] = tuple(options.get("faults", ())) + cli_faults
    return MPIRoundConfig(**options)


def run(args) -> int:
    config = build_config(args)  # before MPI starts: a bad option fails fast on every rank
    try:
        import mpi4py.MPI  # noqa: F401  (initializes MPI)
    except ImportError:
        raise BackendUnavailable("mpi4py", "mpi") from None
    from fedsecure.runtime.mpi_runner import run_mpi_round, run_rank

    return run_rank(lambda: run_mpi_round(config, out_path=args.out,
                                          aggregate_path=args.aggregate))
