"""``fedsecure simulate``: what it prints agrees with the result, and ``--out`` writes it."""

from __future__ import annotations

import json
import re

import pytest


def test_printed_counts_agree_with_the_result_and_the_json_report(fedsecure, tmp_path):
    done = fedsecure("simulate", "--clients", "20", "--dim", "1000", "--dropout", "0.25",
                     "--quiet", "--out", "round.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "round.json").read_text())
    assert report["outcome"] == "finished" and report["error"] is None and report["ok"]
    silent = {f["client"] for f in report["silent"]}
    assert len(silent) == 5
    # every silent client is either dropped, or a survivor whose input was already in the sum
    assert silent == set(report["dropped"]) | set(report["silent_after_input"])
    assert sorted(report["survivors"] + report["dropped"]) == list(range(1, 21))
    assert report["silent_after_input"], "seed 0 has a client silent at unmasking"
    match = re.search(r"round finished: (\d+) survivors, (\d+) dropped (\[[\d, ]*\])",
                      done.stdout)
    assert match, done.stdout
    assert int(match[1]) == len(report["survivors"]) and int(match[2]) == len(report["dropped"])
    assert json.loads(match[3]) == report["dropped"]
    assert report["bytes_total"] == sum(report["bytes_by_message"].values())
    assert report["max_abs_error"] <= report["bound"]


def test_allow_small_cohort_runs_two_clients(fedsecure):
    done = fedsecure("simulate", "--clients", "2", "--dim", "10", "--dropout", "0",
                     "--allow-small-cohort", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "round finished: 2 survivors" in done.stdout


def test_plaintext_baseline_sends_float32(fedsecure, tmp_path):
    done = fedsecure("simulate", "--protocol", "plaintext", "--clients", "4", "--dim", "1000",
                     "--dropout", "0", "--quiet", "--out", "plain.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "plain.json").read_text())
    sent = report["bytes_by_message"]["PlainUpdate"]
    assert 4 * 4 * 1000 < sent < 4 * (4 * 1000 + 200)  # 4 bytes per value, small envelope


def test_secaggplus_prints_the_chosen_graph_and_runs_lean(fedsecure, tmp_path):
    done = fedsecure("simulate", "--protocol", "secaggplus", "--clients", "120", "--dim", "50",
                     "--lean", "--quiet", "--out", "plus.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "plus.json").read_text())
    graph = report["graph"]
    assert graph["degree"] < 119 and 2 <= graph["threshold"] <= graph["degree"] + 1
    assert isinstance(graph["security_bits"], float) and graph["security_bits"] >= 40
    assert f"graph: degree {graph['degree']} of 119 others, threshold {graph['threshold']}" \
        in done.stdout
    assert "privacy fails with probability < 2^-" in done.stdout
    assert report["peak_rss_bytes"] > 0 and report["ok"]
    # the dropouts of secaggplus strike at its own messages (not an unknown tag)
    assert report["dropped"] or report["silent_after_input"]


@pytest.mark.parametrize("protocol", ["secagg", "secaggplus"])
def test_malicious_security_signs_and_checks_consistency(fedsecure, tmp_path, protocol):
    """``--security malicious``: identity keys registered for the simulated clients, every
    survivor signs the survivor set (the consistency round), and the mean is still right."""
    done = fedsecure("simulate", "--protocol", protocol, "--clients", "30", "--dim", "200",
                     "--security", "malicious", "--quiet", "--out", "mal.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "mal.json").read_text())
    assert report["security"] == "malicious" and report["ok"]
    assert report["bytes_by_message"]["ConsistencySignature"] > 0
    plain = fedsecure("simulate", "--protocol", protocol, "--clients", "30", "--dim", "200",
                      "--quiet", "--out", "plain.json")
    assert plain.returncode == 0, plain.stderr
    assert "ConsistencySignature" not in json.loads((tmp_path / "plain.json").read_text())[
        "bytes_by_message"]
