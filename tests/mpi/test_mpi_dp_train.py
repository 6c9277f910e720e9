"""``fedsecure train --mpi --dp ...`` under mpirun: the DP rounds of the in-process loop
(:mod:`fedsecure.fl.dp_round`), each party on its own rank.

What is deterministic is compared with the in-process loop on the same configuration and seed:
the calibrated noise multiplier and the cumulative epsilon after every round are equal exactly,
and so are each round's protocol (clients, bytes, quantization error).  The noise is fresh
CSPRNG noise in both runs, so the models are not comparable after it; rank 0 records no
per-client training statistics (each would be an un-noised release of that client's data).  A
client rank killed mid-aggregation under distributed DP: the round finishes with the three
survivors and spends the event of three survivors' noise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytest.importorskip("dp_accounting", reason="dp-accounting is not installed (extra: dp)")
pytestmark = [pytest.mark.mpi, pytest.mark.train]

import torch  # noqa: E402

from fedsecure.dp import PrivacyBudget, make_dp_aggregator  # noqa: E402
from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.loop import train  # noqa: E402
from fedsecure.fl.rundir import load_checkpoint  # noqa: E402
from fedsecure.protocols.base import AggregationSpec  # noqa: E402

SMALL = dict(clients=4, rounds=2, hidden=8, local_epochs=1, epsilon=3.0)
JOB = ["--clients", "4", "--rounds", "2", "--hidden", "8", "--local-epochs", "1",
       "--epsilon", "3"]  # mpirun -n 5
CRASH_WORKER = str(Path(__file__).with_name("train_crash_worker.py"))
CRASH_EXIT_STATUS = 75  # fedsecure.runtime.mpi_runner.CRASH_EXIT_STATUS
SAME_IN_BOTH = ("round", "sampled", "survivors", "dropped", "diverged", "aborted",
                "noise_multiplier", "epsilon", "bytes")


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def rows_of(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("dp, protocol, options", [
    ("central", "plaintext", {"adaptive_clip": 0.5}),  # the clip travels from rank 0
    ("local", "secagg", {}),
    ("distributed", "secagg", {}),
])
def test_dp_training_as_mpi_ranks_spends_what_the_in_process_loop_spends(
        launcher, tmp_path, dp, protocol, options):
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]
    done = launcher.run(5, ["-m", "fedsecure", "train", "--mpi", *JOB, "--dp", dp, "--protocol",
                            protocol, *flags, "--run-dir", str(tmp_path / "mpi")], timeout_s=240)
    context = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, context
    assert "Traceback" not in done.stderr, context
    mpi = rows_of(tmp_path / "mpi")
    lines = [line for line in done.stdout.splitlines() if line.startswith("round ")]
    assert len(lines) == len(mpi) == 2, context
    assert all(f"epsilon {row['epsilon']:.3f}" in line for line, row in zip(lines, mpi))
    assert (tmp_path / "mpi" / "mpi_rounds.log").read_text().count(f"inside {dp} DP") == 2
    here = train(TrainConfig(**SMALL, dp=dp, protocol=protocol, **options,
                             run_dir=str(tmp_path / "here"))).metrics
    for row, ref in zip(mpi, here, strict=True):
        assert set(row) == set(ref)  # the same metrics, the same schema
        assert {key: row[key] for key in SAME_IN_BOTH} == {key: ref[key] for key in SAME_IN_BOTH}
        assert row["survivors"] == [1, 2, 3, 4] and row["aborted"] is None
        if row["clip_norm"] == ref["clip_norm"]:  # the inner protocol's rounding scales with it
            assert row["quantization_error"] == ref["quantization_error"] > 0
        # nothing about a client's data but its noised update leaves its rank
        assert row["train_loss"] is row["clipped_fraction"] is None
        assert ref["train_loss"] is not None and ref["clipped_fraction"] is not None
    assert 0 < mpi[0]["epsilon"] < mpi[1]["epsilon"] <= 3.0
    assert mpi[0]["clip_norm"] == here[0]["clip_norm"] == 1.0
    if options:  # adaptive: rank 0 moves the clip by the count the client ranks noised
        fraction = min(1.0, max(0.0, mpi[0]["unclipped_count"] / 4))
        assert mpi[1]["clip_norm"] == pytest.approx(math.exp(-0.2 * (fraction - 0.5)))
        assert mpi[1]["unclipped_count"] is not None
    else:
        assert [row["clip_norm"] for row in mpi] == [1.0, 1.0]
        assert [row["unclipped_count"] for row in mpi] == [None, None]


def test_a_killed_client_rank_under_distributed_dp_spends_the_survivors_event(launcher, tmp_path):
    run_dir = tmp_path / "mpi"
    done = launcher.run(5, [CRASH_WORKER, "4", "2", "train", "--mpi", *JOB, "--rounds", "3",
                            "--dp", "distributed", "--protocol", "secagg", "--deadline-s", "2",
                            "--quiet", "--run-dir", str(run_dir)], timeout_s=240)
    context = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == CRASH_EXIT_STATUS, context
    assert "client ranks [4] stopped reporting in round 2; training stops" in done.stderr
    assert "Traceback" not in done.stderr, context
    rows = rows_of(run_dir)
    assert [(r["round"], r["survivors"], r["dropped"], r["aborted"]) for r in rows] == [
        (1, [1, 2, 3, 4], [], None), (2, [1, 2, 3], [4], None)]
    # The accountant's epsilon, recomputed independently: round 1's noise from 4 shares,
    # round 2's from the 3 survivors' shares (noise sized for SecAgg's threshold, 3 of 4).
    d = sum(t.numel() for t in load_checkpoint(run_dir)["model"].values())
    aggregator = make_dp_aggregator(
        "distributed", AggregationSpec(n_clients=4, vector_length=d, max_weight=1, clip=2.0),
        protocol="secagg", clip_norm=1.0, noise_multiplier=rows[0]["noise_multiplier"])
    budget = PrivacyBudget(3.0, 1e-5)
    expected = [budget.spend(aggregator.privacy_event(4)), budget.spend(aggregator.privacy_event(3))]
    assert [r["epsilon"] for r in rows] == pytest.approx(expected, rel=1e-12)
    full = PrivacyBudget(3.0, 1e-5)
    full.spend(aggregator.privacy_event(4))
    assert rows[1]["epsilon"] > full.spend(aggregator.privacy_event(4))  # fewer shares, less noise
