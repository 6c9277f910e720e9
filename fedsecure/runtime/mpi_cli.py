"""``fedsecure mpi-round``: one aggregation round with every party an MPI rank.

Run it under ``mpirun`` on every rank: ``mpirun -n N`` gives rank 0 the server and ranks
1..N-1 the clients.  Options may come from a ``--config`` file (TOML or JSON, see
``mpi_launch/configs/``); options given on the command line override it.  Every rank must see
the same configuration (checked before the round starts).  Rank 0 prints the outcome and a
per-rank table and, with ``--out``, writes the JSON report.  Start it with ``mpirun
-disable-auto-cleanup`` (or ``mpi_launch/run_round.sh``) so the job outlives a rank that dies.

Exit status (of mpirun): 0 the round finished, its aggregate matches the plain sum of the
survivors and every rank reported; 1 the round aborted or the aggregate did not match; 2 a
configuration error (printed once, by rank 0, before the round); 75 a rank was lost (crashed,
killed by a signal, hung or sent a bad control message): rank 0 wrote the report and ended
the job -- the report says how the round went.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fedsecure.config import require
from fedsecure.errors import BackendUnavailable, ConfigurationError
from fedsecure.runtime.mpi_supervisor import launched_world_size, supervise


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
                   help="skip the small in-process rounds each rank runs first (kernels, heap)")
    p.add_argument("--out", metavar="FILE", help="rank 0 writes the JSON report here")
    p.add_argument("--save-aggregate", dest="aggregate", metavar="FILE.npy",
                   help="rank 0 saves the weighted sum (NumPy .npy) here")
    p.add_argument("--pid-dir", dest="pid_dir", metavar="DIR",
                   help="each rank writes its process id to DIR/rank<R>.pid when the round"
                   " starts (to signal a rank from outside)")
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
    supervise("mpi-round")  # before MPI starts: a rank killed by a signal is then a dropout
    try:
        config, error = build_config(args), None  # before MPI: a bad option fails fast
    except ConfigurationError as exc:
        if launched_world_size() is None:
            raise  # not under mpirun: nothing to agree with
        config, error = None, str(exc)
    try:
        from mpi4py import MPI
    except ImportError:
        raise BackendUnavailable("mpi4py", "mpi") from None
    from fedsecure.runtime.mpi_config import MPIRoundConfig
    from fedsecure.runtime.mpi_runner import (
        DIGEST_BYTES,
        agree_on_configuration,
        run_mpi_round,
        run_rank,
    )

    # Every rank takes part, so a rank whose options failed (e.g. a config file missing on
    # its host) stops all of them with its message instead of leaving them waiting.
    world = MPI.COMM_WORLD
    agree_on_configuration(world, bytes(DIGEST_BYTES) if config is None
                           else config.digest(world.Get_size()), what="round configuration",
                           timeout_s=(config or MPIRoundConfig()).round_timeout_s, error=error)
    on_start = None if args.pid_dir is None else (lambda rank: _write_pid(args.pid_dir, rank))
    return run_rank(lambda: run_mpi_round(config, out_path=args.out, on_start=on_start,
                                          aggregate_path=args.aggregate))


def _write_pid(pid_dir: str, rank: int) -> None:
    path = Path(pid_dir) / f"rank{rank}.pid"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(f"{os.getpid()}\n")
    temporary.replace(path)  # appears whole: a reader never sees a partial number
