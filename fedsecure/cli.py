"""``fedsecure`` command line: one sub-command per job.

Each sub-command lives beside the code it drives and exposes ``register(subparsers)``; this
module only collects them, so the CLI never imports an optional backend it does not run.
Configuration errors are printed as one line naming the option, before any work starts; under
``mpirun`` only rank 0 prints them (and argparse's usage errors), the other ranks exit quietly
with the same status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fedsecure.errors import BackendUnavailable, ConfigurationError
from fedsecure.runtime.mpi_supervisor import is_lead_rank

SUBCOMMAND_MODULES = (
    "fedsecure.runtime.simulate_cli",  # fedsecure simulate: one secure-aggregation round
    "fedsecure.fl.cli",  # fedsecure train: federated training
    "fedsecure.runtime.mpi_cli",  # fedsecure mpi-round: one round, run under mpirun
)


class _Parser(argparse.ArgumentParser):
    """An argument parser that stays quiet on MPI ranks other than 0 (one message per job)."""

    def _print_message(self, message, file=None):
        if is_lead_rank():
            super()._print_message(message, file)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fedsecure", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("fedsecure"):
                continue  # that sub-command is not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ConfigurationError, BackendUnavailable) as exc:
        if is_lead_rank():
            print(f"fedsecure {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fedsecure {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
