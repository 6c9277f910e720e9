"""The start of ``fedsecure train --mpi``, before torch is imported and before MPI starts.

Importing torch takes seconds per rank (every rank imports it, on shared cores), so what can
be known without it is checked here first, from the command line and the launcher's
environment (:mod:`fedsecure.runtime.mpi_supervisor`), with one clear line that says what to
run instead:

* ``--mpi`` outside ``mpirun``;
* ``--mpi`` with ``--resume`` (not supported: the run continues in one process);
* ``--clients`` that does not match the number of ranks (one server rank plus one per client).

Then the rank is put under the supervisor (a rank killed by a signal is a dropout, not the
end of the job) and rank 0 says that the long part of the start-up begins.  The same checks
run again, authoritatively, in :func:`fedsecure.fl.mpi.train_mpi` once MPI is up (the number
of clients may come from a ``--config`` file, read only after torch is imported).
"""

from __future__ import annotations

from fedsecure.errors import ConfigurationError
from fedsecure.runtime.mpi_supervisor import is_lead_rank, launched_world_size, supervise


def launch_line(clients: int | None) -> str:
    """The command that starts ``clients`` client ranks (``CLIENTS`` when not known)."""
    ranks = "CLIENTS+1" if clients is None else str(clients + 1)
    clients_flag = "" if clients is None else f" --clients {clients}"
    return f"mpirun -disable-auto-cleanup -n {ranks} python -m fedsecure train --mpi{clients_flag}"


def check_mpi_launch(args) -> None:
    """Refuse, with one line, an ``--mpi`` launch that cannot work; then supervise the rank."""
    clients = args.clients
    if args.resume is not None:
        raise ConfigurationError(
            f"--resume cannot be combined with --mpi; continue the run in one process:"
            f" fedsecure train --resume {args.resume}")
    world = launched_world_size()
    if world is None:
        raise ConfigurationError(
            f"--mpi runs one MPI rank per party and must be started by mpirun:"
            f" {launch_line(clients)} ... (or leave out --mpi to train in one process)")
    if world < 3:
        raise ConfigurationError(
            f"--mpi: this job has {world} rank(s); it needs rank 0 (the server) and one rank"
            f" per client, at least 2: {launch_line(clients if clients is not None else 2)} ...")
    if clients is not None and clients != world - 1:
        raise ConfigurationError(
            f"--clients={clients}: this job has {world} ranks (rank 0 is the server), so it"
            f" trains {world - 1} clients: give --clients {world - 1}, or start"
            f" {launch_line(clients)} ...")
    supervise("train")
    if is_lead_rank() and not args.quiet:
        print(f"fedsecure train --mpi: {world} ranks starting (rank 0 the server); importing"
              " torch and loading the data on every rank...", flush=True)
