"""The supervisor and the launcher's environment, without mpirun: a forked child stands in for
the rank, and the parent must exit (never die by a signal) with the child's status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from fedsecure.runtime import mpi_supervisor
from tests.mpi.conftest import REPO

CHILD = """
import os, signal, sys
from fedsecure.runtime.mpi_supervisor import supervise
supervise("test")
print(os.getpid(), flush=True)  # the child: the rank to be
action = sys.argv[1]
if action == "exit":
    sys.exit(7)
os.kill(os.getpid(), getattr(signal, action))
"""


def supervised(action: str, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "PMI_FD": "", "PMI_RANK": "3", **env}
    environment.pop("PMI_PORT", None)
    return run_child(action, environment)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV],
                         ids=lambda s: signal.Signals(s).name)
def test_a_signal_death_of_the_rank_becomes_an_exit_of_the_supervisor(signum):
    done = supervised(signal.Signals(signum).name)
    assert done.returncode == 128 + signum  # an exit status, not a death by a signal
    child = int(done.stdout.split()[0])
    assert child != 0
    assert (f"fedsecure test: rank 3: process {child} was killed by "
            f"{signal.Signals(signum).name}") in done.stderr


def test_an_ordinary_exit_status_is_passed_on():
    done = supervised("exit")
    assert done.returncode == 7 and done.stderr == ""


def run_child(action: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, action], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


def test_when_disabled_nothing_is_forked():
    done = supervised("SIGTERM", FEDSECURE_MPI_SUPERVISOR="0")
    assert done.returncode == -signal.SIGTERM  # the process itself died: no supervisor
    assert "was killed by" not in done.stderr


def test_outside_hydra_nothing_is_forked():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMI")}
    done = run_child("SIGTERM", {**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == -signal.SIGTERM
    assert "was killed by" not in done.stderr


@pytest.mark.parametrize("env, rank, size", [
    ({}, None, None),
    ({"PMI_RANK": "2", "PMI_SIZE": "5"}, 2, 5),
    ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "3"}, 0, 3),
    ({"PMIX_RANK": "4"}, 4, None),
    ({"PMI_RANK": "x"}, None, None),
])
def test_rank_and_size_come_from_the_launcher(monkeypatch, env, rank, size):
    for name in mpi_supervisor.RANK_VARIABLES + mpi_supervisor.SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert mpi_supervisor.launched_rank() == rank
    assert mpi_supervisor.launched_world_size() == size
    assert mpi_supervisor.is_lead_rank() is (rank in (None, 0))
