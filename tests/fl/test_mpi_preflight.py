"""``fedsecure train --mpi`` without MPI: the pre-flight each rank runs, the digest the ranks
compare, the aggregation round they run and the wire messages.  The runs under ``mpirun`` are
in ``tests/mpi/test_mpi_train.py``."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest

pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytestmark = pytest.mark.train

from fedsecure.cli import main  # noqa: E402
from fedsecure.errors import ConfigurationError  # noqa: E402
from fedsecure.fl import mpi  # noqa: E402
from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.model import vector_size  # noqa: E402
from fedsecure.protocols.base import AggregationSpec, make_aggregator  # noqa: E402

SMALL = dict(clients=4, rounds=2, hidden=8, protocol="plaintext")


@pytest.mark.parametrize("changes, world, match", [
    ({}, 4, (r"^clients=4: --mpi runs one client per client rank; this job has 4 ranks .*"
             r"trains 3 clients: set clients = 3, or start it with mpirun -n 5$")),
    ({"fraction": 0.5}, 5, r"^fraction=0\.5: under --mpi every client rank trains"),
    ({"stragglers": 0.25}, 5, r"^stragglers=0\.25: simulated stragglers are not available"),
    ({"personalize": True}, 5, r"^personalize=True: is not available under --mpi"),
])
def test_preflight_refuses_what_mpi_ranks_cannot_run(tmp_path, changes, world, match):
    config = TrainConfig(**SMALL, run_dir=str(tmp_path / "run"), **changes)
    with pytest.raises(ConfigurationError, match=match):
        mpi._preflight(config, rank=1, world=world)


def test_rank_0_claims_the_run_directory_and_clients_do_not(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")
    config = TrainConfig(**SMALL, run_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigurationError, match="^run_dir=.*already holds a run"):
        mpi._preflight(config, rank=0, world=5)
    assert mpi._preflight(config, rank=2, world=5)[0].config.run_dir == str(tmp_path / "run")


def test_digest_covers_what_ranks_compute_not_where_they_run(tmp_path):
    config = TrainConfig(**SMALL, run_dir=str(tmp_path / "a"))
    base = mpi._digest(mpi._preflight(config, rank=1, world=5)[0], 5)
    local = replace(config, run_dir=str(tmp_path / "b"), device="cpu", threads=0)
    assert mpi._digest(mpi._preflight(local, rank=1, world=5)[0], 5) == base
    assert mpi._digest(mpi._preflight(replace(config, lr=0.1), rank=1, world=5)[0], 5) != base
    assert mpi._digest(mpi._preflight(replace(config, seed=1), rank=1, world=5)[0], 5) != base
    assert len(base) == 32


def test_each_round_is_the_in_process_loops_aggregation(tmp_path):
    config = TrainConfig(**dict(SMALL, protocol="secagg"), protocol_options={"scale_bits": 20},
                         deadline_s=7.0, run_dir=str(tmp_path / "run"))
    fed, plan = mpi._preflight(config, rank=1, world=5)
    assert plan is None  # no DP
    round_config = mpi._round_config(fed, 3, warm_up=False)
    assert (round_config.protocol, round_config.protocol_options) == ("secagg",
                                                                      {"scale_bits": 20})
    assert (round_config.round, round_config.deadline_s, round_config.clip) == (3, 7.0, 2.0)
    assert round_config.dim == vector_size(fed.model)
    assert round_config.max_weight == max(len(p) for p in fed.parts)
    assert not round_config.warm_up and not round_config.faults
    in_process = make_aggregator("secagg", AggregationSpec(
        n_clients=4, vector_length=round_config.dim, max_weight=round_config.max_weight,
        clip=2.0), scale_bits=20)
    assert round_config.aggregator(4, bytes(16)).quantization_error == \
        in_process.quantization_error
    assert mpi._round_config(replace(fed, config=replace(config, deadline_s=None)), 1,
                             warm_up=True).deadline_s == 30.0  # the runner's default


def test_a_dp_round_is_the_in_process_dp_aggregation(tmp_path):
    pytest.importorskip("dp_accounting", reason="dp-accounting is not installed (extra: dp)")
    config = TrainConfig(**dict(SMALL, protocol="secagg"), dp="distributed", epsilon=3.0,
                         run_dir=str(tmp_path / "run"))
    fed, plan = mpi._preflight(config, rank=1, world=5)
    dp = plan.round(0.5)
    round_config = mpi._round_config(fed, 2, warm_up=False, dp=dp)
    assert round_config.dp == dp.options and dp.options["clip_norm"] == 0.5
    assert (round_config.max_weight, round_config.min_clients) == (1, None)
    aggregator = round_config.aggregator(4, bytes(16))
    assert aggregator.placement == "distributed"
    assert aggregator.noise_multiplier == plan.noise_multiplier
    assert aggregator.privacy_event(3) == plan.privacy_event(0.5, 3)


@pytest.mark.parametrize("message", [
    mpi.GlobalModel(round=2, weights=b"\x00" * 16),
    mpi.LocalReport(round=2, n_samples=300, train_loss=0.25, clipped=4),
    mpi.TrainingOver(rounds=3, clean=True),
])
def test_training_messages_round_trip(message):
    assert mpi._DECODER.decode(mpi._ENCODER.encode(message)) == message


def test_undecodable_training_bytes_are_refused_as_decode_errors():
    with pytest.raises(msgspec.DecodeError):
        mpi._DECODER.decode(b"\x93\x01\x02\x03")


def test_cli_refuses_resume_under_mpi(capsys, tmp_path):
    assert main(["train", "--resume", str(tmp_path), "--mpi"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"fedsecure train: error: --resume cannot be combined with --mpi; continue"
                   f" the run in one process: fedsecure train --resume {tmp_path}")
