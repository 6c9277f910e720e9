"""``fedsecure train --mpi`` under mpirun: rank 0 the server, rank r trains client r's shard.

The MPI run is compared with the in-process loop on the same configuration: with SecAgg every
round ends within 0.5 percentage points of the in-process accuracy and the final models differ
by no more than the accumulated quantization error; with plaintext aggregation the two runs
are identical bit for bit.  The run directory is an ordinary one (the in-process loop resumes
it).  Configuration errors stop every rank with the same line before any training; a client
rank that dies mid-aggregation is dropped from that round, and the run stops after it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytestmark = [pytest.mark.mpi, pytest.mark.train]

import torch  # noqa: E402

from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.loop import resume, train  # noqa: E402
from fedsecure.fl.model import model_to_vector  # noqa: E402
from fedsecure.protocols.base import available_protocols  # noqa: E402

JOB = ["--dataset", "digits", "--clients", "4", "--rounds", "3"]  # mpirun -n 5
CRASH_WORKER = str(Path(__file__).with_name("train_crash_worker.py"))
CRASH_EXIT_STATUS = 75  # fedsecure.runtime.mpi_runner.CRASH_EXIT_STATUS, as mpirun reports it


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The in-process runs set torch's thread count (TrainConfig.threads); put it back."""
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def train_under_mpirun(launcher, run_dir, *options: str, n_ranks: int = 5):
    return launcher.run(n_ranks, ["-m", "fedsecure", "train", "--mpi", *JOB, *options,
                                  "--run-dir", str(run_dir)], timeout_s=240)


def final_model(run_dir) -> np.ndarray:
    return model_to_vector(torch.load(run_dir / "model.pt", weights_only=True))


@pytest.mark.skipif("secagg" not in available_protocols(), reason="secagg is not in this build")
def test_secagg_training_as_mpi_ranks_matches_the_in_process_loop(launcher, tmp_path):
    done = train_under_mpirun(launcher, tmp_path / "mpi", "--protocol", "secagg")
    context = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, context
    assert "Traceback" not in done.stderr, context
    assert "rank 0 is the server, ranks 1..4 the clients" in done.stdout
    assert [line.split()[1] for line in done.stdout.splitlines()
            if line.startswith("round ")] == ["1/3", "2/3", "3/3"], context

    mpi = json.loads((tmp_path / "mpi" / "metrics.json").read_text())
    here = train(TrainConfig(clients=4, rounds=3, protocol="secagg",
                             run_dir=str(tmp_path / "here"))).metrics
    assert [row["round"] for row in mpi] == [1, 2, 3]
    for row, ref in zip(mpi, here, strict=True):
        assert set(row) == set(ref)  # the same metrics, the same schema
        assert row["aborted"] is None and row["survivors"] == row["sampled"] == [1, 2, 3, 4]
        assert abs(row["accuracy"] - ref["accuracy"]) <= 0.005
        assert row["bytes"] == ref["bytes"] > 0  # the very same protocol messages
        assert row["quantization_error"] == ref["quantization_error"] > 0
    # Round 1 starts from the same model: same shards, seeds and local training, bit for bit.
    assert mpi[0]["train_loss"] == here[0]["train_loss"]
    assert mpi[0]["clipped_fraction"] == here[0]["clipped_fraction"]
    # Each round's SecAgg mean is within q = 2^-16 of the exact mean in both runs, but the two
    # runs draw independent rounding noise and local training amplifies it from round 2 on
    # (observed: up to ~60 q after 3 rounds), so the final models agree only to a small
    # fraction of the weights' scale.  test_plaintext_* pins bit-for-bit equality.
    mpi_model, here_model = final_model(tmp_path / "mpi"), final_model(tmp_path / "here")
    gap = np.max(np.abs(mpi_model - here_model))
    assert gap <= 0.01 * np.max(np.abs(here_model)), gap

    for name in ("config.json", "metrics.csv", "checkpoint.pt", "metrics.png", "mpi_rounds.log"):
        assert (tmp_path / "mpi" / name).exists(), name
    assert (tmp_path / "mpi" / "mpi_rounds.log").read_text().count("every rank reported") == 3
    # An ordinary run directory: the in-process loop continues it.
    extended = resume(tmp_path / "mpi", rounds=4)
    assert [row["round"] for row in extended.metrics] == [1, 2, 3, 4]


def test_plaintext_training_as_mpi_ranks_equals_the_in_process_loop(launcher, tmp_path):
    done = train_under_mpirun(launcher, tmp_path / "mpi", "--protocol", "plaintext", "--quiet")
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    here = train(TrainConfig(clients=4, rounds=3, protocol="plaintext",
                             run_dir=str(tmp_path / "here")))
    np.testing.assert_array_equal(final_model(tmp_path / "mpi"),
                                  model_to_vector(here.model.state_dict()))


def test_a_client_count_that_does_not_match_the_ranks_stops_every_rank(launcher, tmp_path):
    done = train_under_mpirun(launcher, tmp_path / "mpi", n_ranks=3)  # 2 client ranks
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("fedsecure train:")]
    assert len(lines) == 1, done.stderr  # every rank stops; rank 0 alone says why
    assert "--clients=4" in lines[0] and "give --clients 2" in lines[0] and "-n 5" in lines[0]
    assert not (tmp_path / "mpi").exists()  # refused before any work


def test_ranks_with_different_training_options_refuse_to_start(launcher, tmp_path):
    options = ["-m", "fedsecure", "train", "--mpi", "--clients", "3", "--run-dir",
               str(tmp_path / "mpi")]
    done = launcher.run(3, options, mpmd=[(1, [*options, "--lr", "0.1"])], keep_going=False,
                        timeout_s=240)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("ranks [3] run a different training configuration or data") == 1
    assert not (tmp_path / "mpi" / "checkpoint.pt").exists()


@pytest.mark.skipif("secagg" not in available_protocols(), reason="secagg is not in this build")
def test_a_client_rank_that_dies_ends_the_run_after_its_round(launcher, tmp_path):
    run_dir = tmp_path / "mpi"
    done = launcher.run(5, [CRASH_WORKER, "4", "2", "train", "--mpi", *JOB, "--rounds", "4",
                            "--deadline-s", "2", "--quiet", "--run-dir", str(run_dir)],
                        timeout_s=240)
    context = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == CRASH_EXIT_STATUS, context  # mpirun passes the dead rank's on
    assert "client ranks [4] stopped reporting in round 2; training stops" in done.stderr
    assert "Traceback" not in done.stderr, context
    rows = json.loads((run_dir / "metrics.json").read_text())
    # Round 2 finished without client 4 (rank 4) -- SecAgg's threshold is 3 of 4 -- and was
    # saved; no round ran after it.
    assert [(r["round"], r["survivors"], r["dropped"], r["aborted"]) for r in rows] == [
        (1, [1, 2, 3, 4], [], None), (2, [1, 2, 3], [4], None)]
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["round"] == 2
