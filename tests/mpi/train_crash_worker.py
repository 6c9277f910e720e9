"""Run under ``mpirun`` by ``test_mpi_train.py``: ``fedsecure train --mpi`` with one crash.

``python train_crash_worker.py RANK ROUND [fedsecure train options]``: every rank runs the
ordinary command, except that the aggregation round of training round ROUND schedules the
MPI runner's own ``Crash`` fault for client rank RANK, just before it sends its masked input
(every rank adds the same fault, so the ranks still agree on the round's configuration).
"""

from __future__ import annotations

import sys
from dataclasses import replace

from fedsecure.cli import main
from fedsecure.fl import mpi
from fedsecure.runtime.faults import Crash

CRASH_RANK, CRASH_ROUND = int(sys.argv[1]), int(sys.argv[2])
_round_config = mpi._round_config


def _with_crash(fed, round_index, **options):
    config = _round_config(fed, round_index, **options)
    if round_index != CRASH_ROUND:
        return config
    return replace(config, faults=(Crash(CRASH_RANK, "MaskedInput"),))


mpi._round_config = _with_crash
sys.exit(main(sys.argv[3:]))
