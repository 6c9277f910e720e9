"""benchmarks/compare_runs.py on synthetic runs: noise passes, a flipped ordering or a changed
ratio fails, and the command line exits non-zero on disagreement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import compare_runs

COSTS = {  # technique -> (client CPU s, server CPU s, bytes up, bytes down, round trips, error)
    "plaintext": (2e-5, 3e-4, 4_053, 0, 1, 3e-9),
    "secagg": (0.020, 0.080, 11_600, 9_520, 5, 3.7e-5),
    "secaggplus": (0.004, 0.030, 5_060, 2_130, 5, 3.7e-5),
    "ckks": (0.012, 0.030, 655_000, 375_000, 4, 7e-9),
}
METRICS = ("client_cpu_s", "server_cpu_s", "bytes_up", "bytes_down", "rounds", "error")


def synthetic_run(noise: float = 0.0, seed: int = 0) -> dict:
    """Round cases at three n (CPU growing with n) and one training point; CPU and error
    scaled by a factor in (1 - noise, 1 + noise) per value, independently (bytes and round
    trips are exact), final accuracy moved by up to noise / 10."""
    rng = np.random.default_rng(seed)
    benchmarks = []
    for n in (20, 40, 80):
        for technique, values in COSTS.items():
            info = {"kind": "round", "technique": technique, "n": n, "d": 1000, "dropout": 0.1}
            for metric, value in zip(METRICS, values):
                jitter = rng.uniform(1 - noise, 1 + noise) if metric in (
                    "client_cpu_s", "server_cpu_s", "error") else 1.0
                info[metric] = value * n / 20 * jitter if metric.endswith("cpu_s") else value * jitter
            benchmarks.append({"extra_info": info, "stats": {"median": 1.0}})
    for technique, accuracy in (("dp-central", 0.80), ("dp-distributed", 0.79), ("dp-local", 0.30)):
        benchmarks.append({"extra_info": {
            "kind": "train", "technique": technique, "epsilon": 4.0, "seed": 0,
            "final_accuracy": accuracy + rng.uniform(-noise, noise) / 10}, "stats": {"median": 1.0}})
    return {"benchmarks": benchmarks}


def _set(run: dict, technique: str, n: int, metric: str, value: float) -> None:
    for bench in run["benchmarks"]:
        info = bench["extra_info"]
        if info.get("technique") == technique and info.get("n") == n:
            info[metric] = value


def test_noise_is_accepted():
    found, checked = compare_runs.compare(synthetic_run(0.15, seed=1), synthetic_run(0.15, seed=2))
    assert found == []
    assert checked > 50


def test_a_flipped_ordering_is_detected():
    a, b = synthetic_run(), synthetic_run()
    _set(b, "secaggplus", 40, "client_cpu_s", 0.08)  # 2x SecAgg's 0.04 instead of a tenth
    found, _ = compare_runs.compare(a, b)
    assert found
    assert {f.pair for f in found} >= {("secagg", "secaggplus")}
    assert all(f.where.startswith("n=40") and f.metric == "client_cpu_s" for f in found)


def test_a_flip_inside_the_tie_margin_is_not_one():
    a, b = synthetic_run(), synthetic_run()
    _set(a, "ckks", 20, "server_cpu_s", 0.031)  # 1.03x secaggplus's 0.030 in A ...
    _set(b, "ckks", 20, "server_cpu_s", 0.029)  # ... 0.97x in B: a tie both times
    assert compare_runs.compare(a, b)[0] == []


def test_a_changed_byte_ratio_is_detected():
    a, b = synthetic_run(), synthetic_run()
    _set(b, "ckks", 80, "bytes_up", 700_000)  # 7 % more: bytes are exact, so not noise
    found, _ = compare_runs.compare(a, b)
    assert found and all(f.kind == "ratio changed" and f.metric == "bytes_up" for f in found)


def test_cpu_below_the_floor_is_not_compared():
    a, b = synthetic_run(), synthetic_run()
    _set(b, "plaintext", 20, "client_cpu_s", 2e-4)  # 10x, but far below a millisecond
    assert compare_runs.compare(a, b)[0] == []


def _set_accuracy(run: dict, technique: str, accuracy: float) -> None:
    for bench in run["benchmarks"]:
        info = bench["extra_info"]
        if info["kind"] == "train" and info["technique"] == technique:
            info["final_accuracy"] = accuracy


def test_dp_training_orderings():
    a, b = synthetic_run(), synthetic_run()
    _set_accuracy(b, "dp-central", 0.70)  # 10 points lower: one noisy DP sample, same order
    assert compare_runs.compare(a, b)[0] == []
    _set_accuracy(b, "dp-local", 0.9)  # local DP now beats central and distributed: flipped
    found, _ = compare_runs.compare(a, b)
    assert {(f.kind, f.pair) for f in found} == {("ordering flipped", ("dp-central", "dp-local")),
                                                ("ordering flipped", ("dp-distributed", "dp-local"))}


def test_training_accuracy_without_dp_must_match():
    def run(secagg_accuracy):
        return {"benchmarks": [{"extra_info": {
            "kind": "train", "technique": t, "epsilon": None, "seed": 0, "final_accuracy": acc}}
            for t, acc in (("plaintext", 0.889), ("secagg", secagg_accuracy))]}

    assert compare_runs.compare(run(0.889), run(0.886))[0] == []
    found, _ = compare_runs.compare(run(0.889), run(0.80))
    assert [(f.kind, f.pair) for f in found] == [("accuracy changed", ("secagg", "itself"))]


def test_command_line_exit_status(tmp_path, capsys):
    paths = []
    for name, run in (("a", synthetic_run(0.1, 1)), ("b", synthetic_run(0.1, 2))):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(run))
    assert compare_runs.main([str(p) for p in paths]) == 0
    assert "the runs agree" in capsys.readouterr().out
    flipped = synthetic_run()
    _set(flipped, "secagg", 80, "client_cpu_s", 0.002)  # now below SecAgg+'s 0.016
    paths[1].write_text(json.dumps(flipped))
    assert compare_runs.main([str(p) for p in paths]) == 1
    out = capsys.readouterr().out
    assert "n=80 d=1000 dropout=0.1 client_cpu_s secagg / secaggplus" in out
    assert "the runs disagree" in out
    paths[1].write_text(json.dumps({"benchmarks": []}))
    assert compare_runs.main([str(p) for p in paths]) == 2


def test_training_cpu_to_target_ratios():
    def run(secagg_cpu):
        return {"benchmarks": [{"extra_info": {
            "kind": "train", "technique": t, "epsilon": None, "seed": 0, "final_accuracy": 0.88,
            "cpu_s_to_target": cpu}} for t, cpu in (("plaintext", 2.0), ("secagg", secagg_cpu),
                                                    ("ckks", None))]}

    assert compare_runs.compare(run(6.0), run(7.5))[0] == []  # 3x vs 3.75x plaintext: noise
    found, _ = compare_runs.compare(run(6.0), run(1.0))  # SecAgg now twice as fast as plaintext
    assert [(f.metric, f.pair, f.kind) for f in found] == [
        ("cpu_s_to_target", ("plaintext", "secagg"), "ratio changed")]


@pytest.mark.parametrize("metric", ["bytes_up", "rounds"])
def test_exact_metrics_tolerate_no_change(metric):
    a, b = synthetic_run(), synthetic_run()
    _set(b, "secagg", 20, metric, COSTS["secagg"][METRICS.index(metric)] + 1 if metric == "rounds"
         else COSTS["secagg"][METRICS.index(metric)] * 1.2)
    assert compare_runs.compare(a, b)[0]
