"""``fedsecure mpi-round`` under mpirun: the shared end-to-end scenarios, one rank per party.

Each scenario of ``tests/e2e_scenarios.py`` (the list the memory-transport tests run too) is
launched as ``mpirun -n n+1 python -m fedsecure mpi-round ...``; the test checks the JSON
report and, independently of rank 0's own check, the saved aggregate against the plain sum
of the expected survivors.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsecure.protocols.base import available_protocols, make_aggregator
from tests.e2e_scenarios import SCENARIOS

pytestmark = pytest.mark.mpi

CRASH_EXIT_STATUS = 75  # fedsecure.runtime.mpi_runner.CRASH_EXIT_STATUS, as mpirun reports it


def mpi_round(launcher, n_ranks: int, options: list[str], tmp_path, **kwargs):
    out, aggregate = tmp_path / "result.json", tmp_path / "aggregate.npy"
    done = launcher.run(n_ranks, ["-m", "fedsecure", "mpi-round", *options, "--out", str(out),
                                  "--save-aggregate", str(aggregate)], **kwargs)
    report = json.loads(out.read_text()) if out.exists() else None
    return done, report, (np.load(aggregate) if aggregate.exists() else None)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_as_mpi_ranks(launcher, scenario, tmp_path):
    if scenario.protocol not in available_protocols():
        pytest.skip(f"protocol {scenario.protocol!r} is not in this build")
    if scenario.skip_reason():
        pytest.skip(scenario.skip_reason())
    done, report, aggregate = mpi_round(launcher, scenario.n_clients + 1, scenario.cli_args(),
                                        tmp_path)
    context = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert report is not None, context
    expected_status = CRASH_EXIT_STATUS if scenario.crashes else (1 if scenario.aborts else 0)
    assert done.returncode == expected_status, context

    assert report["n_clients"] == scenario.n_clients
    assert report["missing_reports"] == list(scenario.crashes)  # exactly the dead ranks
    assert report["clean_shutdown"] is (not scenario.crashes)
    reported = {r["rank"] for r in report["ranks"] if r["status"] != "no report"}
    assert reported == set(range(scenario.n_clients + 1)) - set(scenario.crashes)
    if scenario.aborts:
        assert report["outcome"] == "aborted"
        assert "round ABORTED" in done.stdout
        assert aggregate is None
        return

    assert report["outcome"] == "finished", context
    assert report["survivors"] == list(scenario.survivors)
    assert report["dropped"] == list(scenario.dropped)
    assert report["check"]["ok"] is True
    expected, weight = scenario.expected_sum()
    assert report["check"]["total_weight"] == weight
    tolerance = make_aggregator(scenario.protocol, scenario.spec()).quantization_error * weight
    np.testing.assert_allclose(aggregate, expected, rtol=0, atol=tolerance + 1e-9)


def test_crash_without_disable_auto_cleanup_takes_the_whole_job_down(launcher, tmp_path):
    """What docs/mpi.md warns about: Hydra's default kills every rank once one exits."""
    if not launcher.hydra:
        pytest.skip("documents MPICH Hydra's behaviour")
    done, report, _ = mpi_round(
        launcher, 4, ["--protocol", "plaintext", "--dim", "10", "--deadline", "3",
                      "--crash", "2:PlainUpdate"], tmp_path, keep_going=False)
    assert done.returncode not in (0, CRASH_EXIT_STATUS)  # killed, not a finished round
    assert report is None  # rank 0 never got to write it
    assert "injected crash" in done.stderr


def test_launch_script_keeps_the_job_alive_through_a_crash(launcher, tmp_path):
    if not launcher.hydra:
        pytest.skip("run_round.sh disables auto-cleanup only for MPICH's Hydra")
    out = tmp_path / "result.json"
    done = launcher.run_script(["mpi_launch/run_round.sh", "-n", "4", "--", "--config",
                                "mpi_launch/configs/quick_check.json", "--out", str(out)])
    assert done.returncode == CRASH_EXIT_STATUS, done.stderr
    report = json.loads(out.read_text())
    assert report["outcome"] == "finished" and report["check"]["ok"] is True
    assert report["survivors"] == [1, 3] and report["missing_reports"] == [2]


def test_ranks_with_different_configurations_refuse_to_start(launcher, tmp_path):
    options = ["--protocol", "plaintext", "--deadline", "3"]
    done = launcher.run(2, ["-m", "fedsecure", "mpi-round", *options, "--dim", "10"],
                        mpmd=[(1, ["-m", "fedsecure", "mpi-round", *options, "--dim", "11"])],
                        keep_going=False, timeout_s=60)
    assert done.returncode == 2
    # every rank stops, and one (rank 0) says why, in one line
    assert done.stderr.count("run a different round configuration") == 1, done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr


def test_too_few_ranks_is_a_configuration_error(launcher, tmp_path):
    done, report, _ = mpi_round(launcher, 2, ["--protocol", "plaintext"], tmp_path,
                                keep_going=False, timeout_s=60)
    assert done.returncode == 2
    assert "world size" in done.stderr and "mpirun -n 3" in done.stderr
    assert report is None


def test_config_file_with_command_line_override(launcher, tmp_path):
    config = tmp_path / "round.toml"
    config.write_text('protocol = "plaintext"\ndim = 300\nseed = 9\ndeadline_s = 3.0\n'
                      'silent = ["2:PlainUpdate"]\n')
    done, report, aggregate = mpi_round(launcher, 4, ["--config", str(config), "--dim", "40"],
                                        tmp_path)
    assert done.returncode == 0, done.stderr
    assert report["dim"] == 40 and report["config"]["seed"] == 9
    assert report["survivors"] == [1, 3]
    assert report["config"]["faults"] == ["silent 2:PlainUpdate"]
    assert aggregate.shape == (40,)
