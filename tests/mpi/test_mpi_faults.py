"""Ranks that fail for real under ``mpirun``: killed by a signal, stopped, or lying.

Each test launches ``fedsecure mpi-round`` with ``-disable-auto-cleanup`` and ``--pid-dir``
(every rank writes its process id when the round starts), signals one client rank from
outside while the round is under way -- a silent client keeps the server in its second phase
until the deadline, so the round is certainly still running -- and checks that

* ``mpirun`` exits by itself, within a generous bound, with the documented status 75 (a rank
  was lost; rank 0 wrote the report and ended the job);
* the report names the lost rank, and the saved aggregate is the plain sum of the survivors
  the report lists, recomputed here from the synthetic inputs.

Whether the signalled rank's input made it into the sum depends on when the signal lands
(before or after it sent its update), so the expected survivors are read from the report and
the sum is checked against them; the silent rank is always dropped.  No timing assertions.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from fedsecure.protocols.base import available_protocols, make_aggregator
from fedsecure.runtime.mpi_config import MPIRoundConfig, plain_sum, synthetic_update
from tests.mpi.conftest import finish

pytestmark = pytest.mark.mpi

LOST_RANK_EXIT_STATUS = 75  # fedsecure.runtime.mpi_runner.LOST_RANK_EXIT_STATUS
HOSTILE_WORKER = str(Path(__file__).with_name("hostile_control_worker.py"))
JOB_BOUND_S = 300  # generous: the deadlines below plus start-up on a loaded 2-core machine


def round_options(tmp_path, protocol: str, dim: int, *extra: str) -> list[str]:
    return ["-m", "fedsecure", "mpi-round", "--protocol", protocol, "--dim", str(dim),
            "--deadline", "10", "--report-timeout", "5", "--silent", "2:" + {
                "plaintext": "PlainUpdate", "secagg": "MaskedInput"}[protocol],
            "--out", str(tmp_path / "result.json"),
            "--save-aggregate", str(tmp_path / "aggregate.npy"), *extra]


def wait_for_pids(pid_dir: Path, n_ranks: int, process) -> dict[int, int]:
    """Every rank's process id, once all have written theirs (the round has started)."""
    give_up_at = time.monotonic() + JOB_BOUND_S
    while time.monotonic() < give_up_at and process.poll() is None:
        files = {int(p.stem[4:]): p for p in pid_dir.glob("rank*.pid")}
        if len(files) == n_ranks:
            return {rank: int(path.read_text()) for rank, path in files.items()}
        time.sleep(0.05)
    done = finish(process, 10)
    pytest.fail(f"the ranks never all started\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")


def check_report_and_sum(tmp_path, protocol: str, dim: int, lost: int, done) -> dict:
    context = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == LOST_RANK_EXIT_STATUS, context
    report = json.loads((tmp_path / "result.json").read_text())
    assert report["outcome"] == "finished", context
    assert report["missing_reports"] == [lost], context
    assert report["clean_shutdown"] is False
    assert 2 in report["dropped"]  # the silent client
    assert report["check"]["ok"] is True, context
    config = MPIRoundConfig(protocol=protocol, dim=dim)
    update = lambda client: synthetic_update(config, client)  # noqa: E731
    expected, weight = plain_sum(update, report["survivors"], config.clip)
    spec = config.aggregator(report["n_clients"], bytes(16)).spec
    tolerance = make_aggregator(protocol, spec).quantization_error * weight
    np.testing.assert_allclose(np.load(tmp_path / "aggregate.npy"), expected, rtol=0,
                               atol=tolerance + 1e-9)
    assert "Traceback" not in done.stderr, context
    return report


def signal_a_rank_mid_round(launcher, tmp_path, protocol, dim, n_ranks, victim, signum):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    process = launcher.start(n_ranks, round_options(tmp_path, protocol, dim,
                                                    "--pid-dir", str(pid_dir)))
    pids = wait_for_pids(pid_dir, n_ranks, process)
    os.kill(pids[victim], signum)
    return finish(process, JOB_BOUND_S), pids


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV],
                         ids=lambda s: signal.Signals(s).name)
def test_a_client_killed_by_a_signal_is_a_dropout(launcher, tmp_path, signum):
    # 5 clients (at least 3 must send): the round finishes whether the signal reaches client 3
    # before or after it sent its update, which no test can time on a loaded machine
    done, _ = signal_a_rank_mid_round(launcher, tmp_path, "plaintext", 200, 6, 3, signum)
    check_report_and_sum(tmp_path, "plaintext", 200, 3, done)
    assert f"was killed by {signal.Signals(signum).name}" in done.stderr


@pytest.mark.skipif("secagg" not in available_protocols(), reason="secagg is not in this build")
def test_secagg_survives_a_client_killed_with_sigkill(launcher, tmp_path):
    done, _ = signal_a_rank_mid_round(launcher, tmp_path, "secagg", 100, 6, 4, signal.SIGKILL)
    check_report_and_sum(tmp_path, "secagg", 100, 4, done)


def test_a_stopped_client_is_cut_off_and_the_job_still_ends(launcher, tmp_path):
    done, pids = signal_a_rank_mid_round(launcher, tmp_path, "plaintext", 200, 6, 3,
                                         signal.SIGSTOP)  # 5 clients: as above
    report = check_report_and_sum(tmp_path, "plaintext", 200, 3, done)
    assert "no report from ranks [3]" in done.stdout
    assert report["ranks"][3]["status"] == "no report"
    give_up_at = time.monotonic() + 60  # MPI_Abort killed the stopped process too
    while time.monotonic() < give_up_at and _exists(pids[3]):
        time.sleep(0.1)
    assert not _exists(pids[3])


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("kind, reason", [
    ("garbage", "undecodable control message"),
    ("huge", "control message of 16777216 bytes (at most 65536)"),
])
def test_a_rank_sending_garbage_on_the_control_channel_is_dropped(launcher, tmp_path, kind,
                                                                   reason):
    options = ["--protocol", "plaintext", "--dim", "50", "--deadline", "30",
               "--report-timeout", "30"]
    done = launcher.run(4, ["-m", "fedsecure", "mpi-round", *options,
                            "--out", str(tmp_path / "result.json")],
                        mpmd=[(1, [HOSTILE_WORKER, "mpi-round", *options])],
                        timeout_s=JOB_BOUND_S, HOSTILE_CONTROL=kind)
    context = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == LOST_RANK_EXIT_STATUS, context
    report = json.loads((tmp_path / "result.json").read_text())
    # the round itself is untouched: the liar was an honest party in the protocol
    assert report["outcome"] == "finished" and report["check"]["ok"] is True, context
    assert report["survivors"] == [1, 2, 3, 4]
    assert list(report["bad_control"]) == ["4"] and report["missing_reports"] == [4]
    assert report["ranks"][4]["status"] == "bad control message"
    assert [r["status"] for r in report["ranks"][1:4]] == ["finished"] * 3
    assert reason in report["bad_control"]["4"]
    assert "dropped rank 4 from the wind-down" in done.stdout
    assert "Traceback" not in done.stderr, context
