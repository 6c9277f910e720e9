"""Run under ``mpirun`` by ``test_mpi_faults.py``: an MPI rank that lies on the control channel.

``python hostile_control_worker.py [fedsecure mpi-round options]`` runs the ordinary command
(the same configuration as every other rank, so it passes the start-up agreement, and an
honest party in the protocol), but in the wind-down it sends garbage on the runner's control
tag to every other rank, and garbage to rank 0 instead of its statistics -- or, with
``HOSTILE_CONTROL=huge``, a 16 MiB message.
"""

from __future__ import annotations

import os
import sys

from fedsecure.cli import main
from fedsecure.runtime import mpi_runner
from fedsecure.runtime.mpi_control import RankStats

GARBAGE = (bytes(16 << 20) if os.environ.get("HOSTILE_CONTROL") == "huge"
           else b"\xc1\xff not a control message")
_encode_control = mpi_runner.encode_control
_finish_client = mpi_runner._finish_client


def _lying_encode(message):
    return GARBAGE if isinstance(message, RankStats) else _encode_control(message)


def _spamming_finish(rank, config, stats, endpoint, *args):
    control = endpoint.control
    for other in range(control.world_size):
        if other not in (0, rank):
            control.send(other, GARBAGE)
    return _finish_client(rank, config, stats, endpoint, *args)


mpi_runner.encode_control = _lying_encode
mpi_runner._finish_client = _spamming_finish
sys.exit(main(sys.argv[1:]))
