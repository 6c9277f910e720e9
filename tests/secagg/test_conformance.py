"""Replay the SecAgg (and malicious SecAgg+) conformance vectors byte for byte: any change of
the wire is deliberate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsecure.messages import decode, encode
from tests.secagg.conformance import CASES, VECTOR_DIR, run_case

VECTORS = sorted(VECTOR_DIR.glob("*.json"))


def test_every_case_has_a_vector_file():
    assert sorted(p.stem for p in VECTORS) == sorted(CASES)


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_transcript_replays_byte_for_byte(path):
    vector = json.loads(path.read_text())
    faults = [(f["party"], f["before"]) for f in vector["faults"]]
    inputs, report, _ = run_case(vector["seed"], faults, vector["parameters"],
                                 vector.get("hostile"), vector.get("security", "semi-honest"),
                                 vector.get("threshold"), vector.get("protocol", "secagg"))
    for c, (v, w) in inputs.items():
        assert v.tolist() == vector["inputs"][str(c)]["vector"]
        assert w == vector["inputs"][str(c)]["weight"]
    recorded = [(m["from"], m["to"], m["hex"]) for m in vector["transcript"]]
    replayed = [(s, r, data.hex()) for s, r, data in report.transcript]
    assert len(replayed) == len(recorded)
    for index, (got, want) in enumerate(zip(replayed, recorded)):
        assert got == want, f"message {index} differs"
    assert list(report.result.survivors) == vector["result"]["survivors"]
    np.testing.assert_array_equal(report.result.weighted_sum, vector["result"]["weighted_sum"])
    assert report.result.total_weight == vector["result"]["total_weight"]


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_every_vector_message_decodes_and_reencodes_identically(path):
    for message in json.loads(path.read_text())["transcript"]:
        data = bytes.fromhex(message["hex"])
        envelope = decode(data)
        assert (envelope.sender, envelope.recipient) == (message["from"], message["to"])
        assert encode(envelope) == data
