"""The MPI round's configuration, CLI parsing, synthetic data and summary: no MPI needed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from fedsecure.errors import ConfigurationError
from fedsecure.runtime.faults import Crash, Delay, Silent
from fedsecure.runtime.mpi_cli import build_config, register
from fedsecure.runtime.mpi_config import MPIRoundConfig, load_config_file, synthetic_update
from fedsecure.runtime.mpi_runner import format_summary

CONFIGS = sorted((Path(__file__).absolute().parents[2] / "mpi_launch" / "configs").iterdir())


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["mpi-round", *argv])


@pytest.mark.parametrize("faults, match", [
    ((Silent(0, "MaskedInput"),), "rank 0 is the server"),
    ((Crash(2, "MaskedInputs"),), "unknown message tag"),
    ((Delay(2, "MaskedInput", 1.0),), "only Silent and Crash"),
])
def test_unusable_faults_are_refused(faults, match):
    with pytest.raises(ConfigurationError, match=match):
        MPIRoundConfig(protocol="plaintext", faults=faults)


@pytest.mark.parametrize("option, value", [
    ("protocol", "rot13"), ("dim", 0), ("deadline_s", 0.0), ("deadline_s", float("inf")),
    ("round_timeout_s", -1.0), ("seed", -1), ("phase_deadlines_s", {"collect_keys": 0}),
    ("protocol_options", {1: 2}), ("protocol_options", "scale_bits=20"), ("round", -1),
])
def test_bad_values_are_refused_by_name(option, value):
    with pytest.raises(ConfigurationError, match=option.split("_s")[0]):
        MPIRoundConfig(**{"protocol": "plaintext", option: value})


def test_world_size_gives_the_clients_and_bounds_fault_ranks():
    config = MPIRoundConfig(protocol="plaintext", faults=(Silent(5, "PlainUpdate"),))
    assert config.check_world(6) == 5
    with pytest.raises(ConfigurationError, match=r"client ranks are 1\.\.3"):
        config.check_world(4)
    with pytest.raises(ConfigurationError, match="mpirun -n 3"):
        config.check_world(2)


def test_digest_changes_with_any_option_and_the_world_size():
    base = MPIRoundConfig(protocol="plaintext", dim=10)
    assert base.digest(4) == MPIRoundConfig(protocol="plaintext", dim=10).digest(4)
    variants = [MPIRoundConfig(protocol="plaintext", dim=11),
                MPIRoundConfig(protocol="plaintext", dim=10, seed=1),
                MPIRoundConfig(protocol="plaintext", dim=10, faults=(Crash(1, "PlainUpdate"),)),
                MPIRoundConfig(protocol="plaintext", dim=10, round=2),
                MPIRoundConfig(protocol="plaintext", dim=10, protocol_options={"x": 1})]
    digests = {base.digest(4), base.digest(5), *(v.digest(4) for v in variants)}
    assert len(digests) == 7


def test_protocol_options_and_round_reach_the_aggregator():
    config = MPIRoundConfig(protocol="secagg", dim=8, round=4, protocol_options={"scale_bits": 20})
    aggregator = config.aggregator(3, bytes(16))
    assert aggregator.spec.round == 4 and aggregator.spec.n_clients == 3
    assert aggregator.quantization_error == 2.0**-20
    bad = MPIRoundConfig(protocol="secagg", dim=8, protocol_options={"scale_bitz": 20})
    with pytest.raises(ConfigurationError, match=r"^protocol_options=\{'scale_bitz': 20\}: not"
                                                 r" accepted by protocol 'secagg'"):
        bad.aggregator(3, bytes(16))


def test_a_dp_round_builds_the_placement_around_the_protocol():
    pytest.importorskip("dp_accounting", reason="dp-accounting is not installed (extra: dp)")
    dp = {"placement": "distributed", "clip_norm": 1.0, "noise_multiplier": 2.0,
          "count_share": None}
    config = MPIRoundConfig(protocol="secagg", dim=8, max_weight=1, min_clients=2, dp=dp)
    aggregator = config.aggregator(3, bytes(16))
    assert aggregator.placement == "distributed" and aggregator.protocol == "secagg"
    assert aggregator.spec.min_clients == 2 and aggregator.noise_multiplier == 2.0
    assert config.digest(4) != MPIRoundConfig(protocol="secagg", dim=8, max_weight=1,
                                              min_clients=2).digest(4)
    assert config.digest(4) != MPIRoundConfig(
        protocol="secagg", dim=8, max_weight=1, min_clients=2,
        dp={**dp, "noise_multiplier": 2.5}).digest(4)
    with pytest.raises(ConfigurationError, match="dp"):
        MPIRoundConfig(protocol="secagg", dp={"clip_norm": 1.0})


def test_synthetic_updates_are_reproducible_per_client_and_in_range():
    config = MPIRoundConfig(protocol="plaintext", dim=500, seed=3, max_weight=7, clip=0.5)
    v1, w1 = synthetic_update(config, 1)
    again, w_again = synthetic_update(config, 1)
    v2, _ = synthetic_update(config, 2)
    np.testing.assert_array_equal(v1, again)
    assert w1 == w_again and 1 <= w1 <= 7
    assert not np.array_equal(v1, v2)
    assert v1.shape == (500,) and np.max(np.abs(v1)) <= 0.5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_configs_load(path):
    config = MPIRoundConfig(**load_config_file(str(path)))
    assert config.dim >= 1


def test_config_files_toml_and_json_agree(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text('protocol = "secagg"\ndim = 64\nsilent = ["3:MaskedInput"]\n'
                    'crash = ["5:UnmaskShares"]\n[phase_deadlines_s]\ncollect_keys = 9.0\n')
    js = tmp_path / "r.json"
    js.write_text(json.dumps({"protocol": "secagg", "dim": 64, "silent": ["3:MaskedInput"],
                              "crash": ["5:UnmaskShares"],
                              "phase_deadlines_s": {"collect_keys": 9.0}}))
    a, b = (MPIRoundConfig(**load_config_file(str(p))) for p in (toml, js))
    assert a == b
    assert a.faults == (Silent(3, "MaskedInput"), Crash(5, "UnmaskShares"))
    assert a.deadlines().for_phase("collect_keys") == 9.0


@pytest.mark.parametrize("name, text, match", [
    ("r.toml", "dimm = 3\n", "unknown options"),
    ("r.toml", "[dp]\nplacement = 'central'\n", "unknown options"),  # set by DP training
    ("r.toml", "dim = \n", "r.toml"),
    ("r.yaml", "dim: 3\n", "toml or .json"),
    ("r.json", "[1, 2]", "table of options"),
])
def test_bad_config_files_are_refused(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=match):
        load_config_file(str(path))


def test_missing_config_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config_file(str(tmp_path / "nope.toml"))


def test_command_line_overrides_the_file_and_adds_faults(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('protocol = "plaintext"\ndim = 50\ndeadline_s = 7.0\n'
                    'silent = ["2:PlainUpdate"]\n')
    config = build_config(parse("--config", str(path), "--dim", "60", "--crash",
                                "3:PlainUpdate", "--phase-deadline", "collect_updates=2.5",
                                "--no-warm-up"))
    assert (config.dim, config.deadline_s, config.warm_up) == (60, 7.0, False)
    assert config.faults == (Silent(2, "PlainUpdate"), Crash(3, "PlainUpdate"))
    assert config.phase_deadlines_s == {"collect_updates": 2.5}


@pytest.mark.parametrize("argv, match", [
    (["--phase-deadline", "collect_keys"], "PHASE=SECONDS"),
    (["--phase-deadline", "collect_keys=soon"], "not a number"),
    (["--silent", "three:MaskedInput"], "PARTY:MESSAGE"),
])
def test_bad_command_lines_are_refused(argv, match):
    with pytest.raises(ConfigurationError, match=match):
        build_config(parse("--protocol", "plaintext", *argv))


def summary_report(**changes) -> dict:
    report = {
        "protocol": "secagg", "dp": None, "n_clients": 2, "dim": 4, "session": "ab" * 16,
        "outcome": "finished", "error": None, "survivors": [1], "dropped": [2],
        "dropouts": [{"client": 2, "phase": "collect_masked", "reason": "late"}],
        "check": {"max_abs_error": 0.5, "tolerance": 0.1, "total_weight": 1.0,
                  "expected_total_weight": 1.0, "ok": False},
        "round_s": 1.0, "wall_s": 1.5, "missing_reports": [2], "clean_shutdown": False,
        "bad_control": {},
        "ranks": [{"rank": 0, "role": "server", "status": "finished", "fault": None,
                   "bytes_sent": 10, "bytes_received": 20, "cpu_s": 0.1, "round_s": 1.0},
                  {"rank": 1, "role": "client", "status": "finished", "fault": None,
                   "bytes_sent": 20, "bytes_received": 10, "cpu_s": 0.1, "round_s": 0.9},
                  {"rank": 2, "role": "client", "status": "no report",
                   "fault": "crash 2:MaskedInput"}],
    }
    return {**report, **changes}


def test_summary_flags_a_mismatch_and_the_silent_ranks():
    text = format_summary(summary_report())
    assert "MISMATCH" in text
    assert "dropped client 2 in collect_masked: late" in text
    assert "crash 2:MaskedInput" in text
    assert "no report from ranks [2]" in text


def test_summary_names_the_dp_placement_around_the_protocol():
    assert "protocol secagg, 2 client ranks" in format_summary(summary_report())
    assert "protocol secagg inside distributed DP, 2 client ranks" in format_summary(
        summary_report(dp="distributed"))


def test_summary_names_a_rank_dropped_for_a_bad_control_message():
    text = format_summary(summary_report(bad_control={"2": "undecodable control message"}))
    assert "dropped rank 2 from the wind-down: undecodable control message" in text


def test_summary_of_an_aborted_round():
    text = format_summary(summary_report(outcome="aborted", error="too few", check=None,
                                         dropouts=[]))
    assert "round ABORTED: too few" in text
    assert "aggregate check" not in text
