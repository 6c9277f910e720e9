"""Launch helpers for the MPI tests: every multi-rank test runs ``mpirun`` in a subprocess.

Tests that need ranks take the ``launcher`` fixture; it skips, with the reason, where mpi4py
or an ``mpirun``/``mpiexec`` launcher is missing.  Only MPICH's Hydra launcher is known to keep
a job alive after one rank exits (``-disable-auto-cleanup``); crash tests skip elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).absolute().parents[2]


@dataclass(frozen=True)
class Launcher:
    path: str
    hydra: bool

    def run(self, n: int, argv: list[str], *, timeout_s: float = 120.0,
            keep_going: bool = True, mpmd: list[tuple[int, list[str]]] | None = None,
            **env: str) -> subprocess.CompletedProcess:
        """``mpirun -n n python argv...`` (plus MPMD blocks) from the repository root.

        ``keep_going`` adds Hydra's ``-disable-auto-cleanup`` so the job outlives a rank that
        exits.  The whole process group is killed if it runs past ``timeout_s``.
        """
        return finish(self.start(n, argv, keep_going=keep_going, mpmd=mpmd, **env), timeout_s)

    def start(self, n: int, argv: list[str], *, keep_going: bool = True,
              mpmd: list[tuple[int, list[str]]] | None = None, **env: str) -> subprocess.Popen:
        """The same job as :meth:`run`, started and not waited for (see :func:`finish`)."""
        command = [self.path]
        if keep_going:
            if not self.hydra:
                pytest.skip("only MPICH's Hydra mpirun (-disable-auto-cleanup) keeps a job "
                            "alive after a rank dies")
            command.append("-disable-auto-cleanup")
        command += ["-n", str(n), sys.executable, *argv]
        for count, extra in mpmd or ():
            command += [":", "-n", str(count), sys.executable, *extra]
        return start_command(command, **env)

    def run_script(self, argv: list[str], *, timeout_s: float = 120.0
                   ) -> subprocess.CompletedProcess:
        """A launch script (``mpi_launch/run_round.sh``) using this mpirun and this Python."""
        return run_command(argv, timeout_s, MPIRUN=self.path, PYTHON=sys.executable)


def run_command(command: list[str], timeout_s: float, **env) -> subprocess.CompletedProcess:
    """Run ``command`` from the repository root (importable without installing); kill its
    whole process group and fail the test if it runs past ``timeout_s``."""
    return finish(start_command(command, **env), timeout_s)


def start_command(command: list[str], **env) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p), **env}
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(process: subprocess.Popen, timeout_s: float) -> subprocess.CompletedProcess:
    """Wait for a started command; past ``timeout_s``, kill its process group and fail."""
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{' '.join(process.args)} did not finish within {timeout_s} s\n"
                    f"stdout:\n{stdout}\nstderr:\n{stderr}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def launcher() -> Launcher:
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install 'fedsecure[mpi]')")
    path = shutil.which("mpirun") or shutil.which("mpiexec")
    if path is None:
        pytest.skip("no mpirun/mpiexec launcher on PATH (pip install 'fedsecure[mpi]' brings "
                    "MPICH's)")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{path} --version failed: {exc}")
    return Launcher(path, hydra="HYDRA" in version.upper())
