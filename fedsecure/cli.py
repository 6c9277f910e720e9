"""``fedsecure`` command line: one sub-command per job.

Each sub-command lives beside the code it drives and exposes ``register(subparsers)``; this
module only collects them, so the CLI never imports an optional backend it does not run.
Every expected failure is one line on stderr naming the value and the fix, with the exit
status of :data:`EXIT_STATUS` (the table in docs/cli.md).  Under ``mpirun`` only rank 0 prints
them (and argparse's messages); the other ranks exit quietly with the same status.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from fedsecure.errors import BackendUnavailable, ConfigurationError, ProtocolAborted
from fedsecure.runtime.mpi_supervisor import is_lead_rank

SUBCOMMAND_MODULES = (
    "fedsecure.runtime.simulate_cli",  # fedsecure simulate: one secure-aggregation round
    "fedsecure.fl.cli",  # fedsecure train: federated training
    "fedsecure.runtime.mpi_cli",  # fedsecure mpi-round: one round, run under mpirun
)

EXIT_STATUS = {
    "ok": 0,
    "failed": 1,  # the work ran and failed: a round aborted, no training round succeeded
    "usage": 2,  # bad flag, option value, input file or checkpoint
    "missing_extra": 3,  # an optional dependency is not installed
    "interrupted": 130,  # Ctrl-C
}


def package_version() -> str:
    try:
        return version("fedsecure")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), no abbreviated flags, and help text
    without the reST markup of the docstrings it is built from."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _print_message(self, message, file=None):
        if is_lead_rank():  # one message per MPI job
            super()._print_message(message, file)

    def error(self, message: str):
        self.exit(EXIT_STATUS["usage"],
                  f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def format_help(self) -> str:
        return super().format_help().replace("``", "")

    def unknown_arguments(self, extras: list[str]):
        """Refuse ``extras``, suggesting the nearest known flag for each unknown one."""
        known = [flag for action in self._actions for flag in action.option_strings]
        hints = []
        for word in extras:
            if word.startswith("-"):
                name = word.split("=", 1)[0]
                close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
                close += [f for f in known if len(name) > 3 and name.strip("-") in f
                          and f not in close]
                if close:
                    hints.append(f"{name}: did you mean {' or '.join(close[:2])}?")
        self.error(f"unrecognized arguments: {' '.join(extras)}"
                   + (f" ({'; '.join(hints)})" if hints else ""))


def build_parser() -> Parser:
    parser = Parser(prog="fedsecure", description=__doc__.splitlines()[0],
                    epilog="Exit status: 0 done, 1 the run failed (e.g. every round aborted),"
                           " 2 a bad flag, value, file or checkpoint, 3 an optional dependency"
                           " is missing, 130 interrupted; see docs/cli.md.")
    parser.add_argument("--version", action="version", version=f"fedsecure {package_version()}")
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
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.choices[args.command].unknown_arguments(extras)
    prog = f"fedsecure {args.command}"
    try:
        return int(args.run(args) or 0)
    except ConfigurationError as exc:
        return _fail(prog, exc, "usage")
    except BackendUnavailable as exc:
        return _fail(prog, exc, "missing_extra")
    except ProtocolAborted as exc:
        return _fail(prog, exc, "failed")
    except BrokenPipeError:  # stdout closed early (e.g. piped into head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_STATUS["failed"]
    except OSError as exc:  # a file the command was pointed at: missing, unreadable, no space
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(prog, f"{where}{exc.strerror or exc}", "usage")
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_STATUS["interrupted"]


def _fail(prog: str, problem, kind: str) -> int:
    if is_lead_rank():
        print(f"{prog}: error: {problem}", file=sys.stderr, flush=True)
    return EXIT_STATUS[kind]


if __name__ == "__main__":
    sys.exit(main())
