"""What a rank knows before MPI starts, and the supervisor that makes a signal death a dropout.

**The launcher's environment.** ``mpirun`` tells each process its rank and the job's size in
environment variables (Hydra: ``PMI_RANK`` / ``PMI_SIZE``; Open MPI: ``OMPI_COMM_WORLD_*``;
PMIx launchers: ``PMIX_RANK``).  :func:`launched_rank` and :func:`launched_world_size` read
them without initializing MPI, so a command can check its arguments, and print a mistake on
rank 0 only, before any heavy import.

**Why a supervisor.** MPICH's Hydra proxy (``hydra_pmi_proxy``, the parent of every rank on
a host) reaps its children in its main loop and, when one was *terminated by a signal*
(``WIFSIGNALED``: SIGKILL, SIGTERM's default action, SIGSEGV, ...), sends SIGKILL to every
other rank -- unconditionally, ``-disable-auto-cleanup`` or not.  A rank that *exits* without
finalizing (``os._exit``) only makes the proxy send SIGUSR1 to the others (MPICH's own
handler absorbs it), and the job goes on.  Measured with the ``mpich`` 5.0.2 wheel; see
docs/mpi.md.  So :func:`supervise` forks before MPI starts: the child goes on to be the MPI
rank, the parent -- the process Hydra sees -- only waits for it and *exits* with the child's
status, or ``128 + signal`` when the child was killed by a signal.  The proxy then sees a
normal exit and the other ranks live on: the dead rank is a dropout.

The parent ignores SIGUSR1 (Hydra's "a rank died" notice, sent to every rank's process group)
and passes SIGTERM, SIGINT and SIGHUP on to the child, so killing either process ends the rank
the same way.  Killing the parent with SIGKILL still ends the whole job (the proxy sees that
signal death); a test or a tool should signal the rank itself (``fedsecure mpi-round
--pid-dir`` writes each rank's process id).  Set ``FEDSECURE_MPI_SUPERVISOR=0`` to run
without it.
"""

from __future__ import annotations

import os
import signal
import sys

RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
DISABLE_VARIABLE = "FEDSECURE_MPI_SUPERVISOR"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _first_int(names: tuple[str, ...]) -> int | None:
    for name in names:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def launched_rank() -> int | None:
    """This process's rank as the launcher set it, or None when not started by mpirun."""
    return _first_int(RANK_VARIABLES)


def launched_world_size() -> int | None:
    """The number of ranks mpirun started, or None when not known (not under mpirun)."""
    return _first_int(SIZE_VARIABLES)


def is_lead_rank() -> bool:
    """True on rank 0, and outside mpirun: the process that prints a command's errors."""
    return launched_rank() in (None, 0)


def supervise(command: str) -> None:
    """Under Hydra, fork: return in the child (the MPI rank to be); in the parent, wait for the
    child and exit with its status (``128 + signal`` for a signal death), never returning.

    Call it before MPI is initialized (before importing ``mpi4py.MPI``) and before starting
    threads.  Does nothing outside Hydra or with ``FEDSECURE_MPI_SUPERVISOR=0``.
    """
    if "PMI_FD" not in os.environ and "PMI_PORT" not in os.environ:
        return  # not MPICH's Hydra: its proxy is what needs this
    if os.environ.get(DISABLE_VARIABLE, "1") == "0":
        return
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        return
    pmi_fd = os.environ.get("PMI_FD", "")
    if pmi_fd.isdigit():
        os.close(int(pmi_fd))  # the child's connection to the proxy; it closes when the child dies
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda received, _frame: _forward(child, received))
    os._exit(_wait_for(child, command))


def _forward(child: int, signum: int) -> None:
    try:
        os.kill(child, signum)
    except ProcessLookupError:
        pass


def _wait_for(child: int, command: str) -> int:
    while True:
        pid, status = os.waitpid(child, 0)
        if pid == child and (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
            break
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    signum = os.WTERMSIG(status)
    try:
        name = signal.Signals(signum).name
    except ValueError:  # a real-time signal has no name
        name = f"signal {signum}"
    print(f"fedsecure {command}: rank {launched_rank()}: process {child} was killed by {name};"
          " the other ranks go on without it", file=sys.stderr, flush=True)
    return 128 + signum
