"""MPI launch mistakes, as a user meets them: through ``subprocess``, the exit status and the line.

Under ``mpirun`` every rank runs the command, so a mistake must be printed once (by rank 0),
as one line on stderr, with a non-zero status -- and, for ``train --mpi``, before torch is
imported (seconds per rank).  A stand-in ``torch`` package that refuses to be imported is put
first on the path to prove the last point.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.mpi.conftest import REPO


@pytest.fixture
def no_torch(tmp_path) -> str:
    """A PYTHONPATH on which importing torch fails loudly."""
    fake = tmp_path / "no-torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("torch was imported")\n')
    return os.pathsep.join([str(fake.parent), str(REPO)])


def fedsecure(*argv: str, pythonpath: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    return subprocess.run([sys.executable, "-m", "fedsecure", *argv], cwd=REPO, timeout=120,
                          env={**env, "PYTHONPATH": pythonpath}, capture_output=True, text=True,
                          check=False)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_train_mpi_without_mpirun_says_what_to_run(no_torch):
    done = fedsecure("train", "--mpi", "--clients", "4", pythonpath=no_torch)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "must be started by mpirun" in line
    assert "mpirun -disable-auto-cleanup -n 5 python -m fedsecure train --mpi --clients 4" in line
    assert "clients=0" not in line


def test_train_mpi_with_resume_is_one_clear_line(no_torch, tmp_path):
    done = fedsecure("train", "--mpi", "--resume", str(tmp_path), pythonpath=no_torch)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert "--resume cannot be combined with --mpi" in line
    assert f"fedsecure train --resume {tmp_path}" in line


def test_run_round_script_help_is_whole_and_succeeds():
    done = subprocess.run(["bash", "mpi_launch/run_round.sh", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("One fedsecure aggregation round under mpirun")
    assert "-disable-auto-cleanup" in done.stdout and "75 a rank was lost" in done.stdout
    assert done.stdout.rstrip().endswith("See mpi_launch/README.md and docs/mpi.md.")


def test_run_round_script_refuses_a_bad_rank_count():
    done = subprocess.run(["bash", "mpi_launch/run_round.sh", "-n", "two"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("run_round.sh: -n RANKS (>= 3) is required")


@pytest.mark.mpi
def test_train_mpi_with_the_wrong_rank_count_fails_on_rank_0_before_torch(launcher, no_torch):
    done = launcher.run(3, ["-m", "fedsecure", "train", "--mpi", "--clients", "4"],
                        keep_going=False, timeout_s=120, PYTHONPATH=no_torch)
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert line.startswith("fedsecure train: error: --clients=4: this job has 3 ranks")
    assert "give --clients 2" in line and "-n 5" in line


@pytest.mark.mpi
@pytest.mark.parametrize("argv, expected", [
    (["--dim", "0"], "fedsecure mpi-round: error: rank 0: dim=0: must be an integer >= 1"),
    (["--crash", "9:MaskedInput"], "client ranks are 1..2"),
])
def test_mpi_round_option_errors_are_one_line_from_rank_0(launcher, argv, expected):
    done = launcher.run(3, ["-m", "fedsecure", "mpi-round", "--protocol", "plaintext", *argv],
                        keep_going=False, timeout_s=120)
    assert done.returncode == 2, done.stderr
    assert expected in one_line(done.stderr)


@pytest.mark.mpi
def test_an_unknown_flag_is_reported_once(launcher):
    done = launcher.run(3, ["-m", "fedsecure", "mpi-round", "--bogus"], keep_going=False,
                        timeout_s=120)
    assert done.returncode == 2
    assert done.stderr.count("unrecognized arguments: --bogus") == 1, done.stderr


@pytest.mark.mpi
def test_a_config_file_missing_on_one_rank_stops_every_rank(launcher, tmp_path):
    """One rank (think: one host) cannot read its --config: every rank stops with its line."""
    good = tmp_path / "round.json"
    good.write_text('{"protocol": "plaintext", "dim": 10}')
    command = ["-m", "fedsecure", "mpi-round", "--config"]
    done = launcher.run(2, [*command, str(good)],
                        mpmd=[(1, [*command, str(tmp_path / "missing.json")])],
                        keep_going=False, timeout_s=120)
    assert done.returncode == 2, done.stderr
    line = one_line(done.stderr)
    assert line.startswith("fedsecure mpi-round: error: rank 2: --config=")
    assert "missing.json" in line and "cannot read it" in line
