"""Replay the SecAgg+ conformance vectors: graph derivation, parameters, packing and mask values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fedsecure.errors import MalformedMessage
from fedsecure.hazmat.prg import expand
from fedsecure.kernels.packing import pack, pack_reference, unpack, unpack_reference
from fedsecure.protocols.secagg.harary import (
    PRG_CONTEXT,
    HararyGraph,
    graph_seed,
    registry_graph_seed,
)
from fedsecure.protocols.secagg.parameters import find_graph_parameters
from tests.secaggplus.conformance import VECTOR_DIR, build_vectors


def load(name: str) -> dict:
    return json.loads((VECTOR_DIR / f"{name}.json").read_text())


def test_vector_files_are_what_the_generator_writes():
    assert sorted(p.stem for p in VECTOR_DIR.glob("*.json")) == sorted(build_vectors())


@pytest.mark.parametrize("case", load("harary_graphs")["cases"], ids=lambda c: c["name"])
def test_graph_derivation_replays(case):
    session = bytes.fromhex(case["session"])
    seed = graph_seed(case["clients"], session=session, round_number=case["round"])
    assert seed.hex() == case["seed"]
    assert expand(seed, PRG_CONTEXT, len(case["first_keys"]), "<u8").tolist() == case["first_keys"]
    graph = HararyGraph(case["clients"], case["degree"], session=session,
                        round_number=case["round"])
    assert graph.ring.tolist() == case["ring"]
    for client, neighbours in case["neighbours"].items():
        assert sorted(graph.neighbours(int(client))) == neighbours


@pytest.mark.parametrize("case", load("registry_graphs")["cases"], ids=lambda c: c["name"])
def test_registry_graph_derivation_replays(case):
    keys = {int(c): bytes.fromhex(k) for c, k in case["keys"].items()}
    seed = registry_graph_seed(keys, bytes.fromhex(case["nonce"]))
    assert seed.hex() == case["seed"]
    graph = HararyGraph(case["clients"], case["degree"], seed=seed)
    assert graph.ring.tolist() == case["ring"]
    for client, neighbours in case["neighbours"].items():
        assert sorted(graph.neighbours(int(client))) == neighbours


@pytest.mark.parametrize("case", load("graph_parameters")["cases"],
                         ids=lambda c: f"{c['clients']}-{c['corrupt_fraction']}-"
                                       f"{c['dropout_fraction']}-{c['adversary']}")
def test_parameters_replay(case):
    found = find_graph_parameters(
        case["clients"], corrupt_fraction=case["corrupt_fraction"],
        dropout_fraction=case["dropout_fraction"], adversary=case["adversary"],
        security_bits=case["security_bits"], correctness_bits=case["correctness_bits"])
    assert (found.degree, found.threshold) == (case["degree"], case["threshold"])
    for achieved, recorded in [(found.security_bits, case["achieved_security_bits"]),
                               (found.correctness_bits, case["achieved_correctness_bits"])]:
        assert achieved == (np.inf if recorded is None else pytest.approx(recorded, rel=1e-9))


@pytest.mark.parametrize("case", load("packing")["cases"],
                         ids=lambda c: f"{c['dtype']}-{c['bits']}")
def test_packing_replays(case):
    words = np.array(case["words"], dtype=np.uint64).astype(case["dtype"])
    for encode in (pack, pack_reference):
        assert encode(words, case["bits"]).tobytes().hex() == case["packed"]
    for decode in (unpack, unpack_reference):
        out = decode(bytes.fromhex(case["packed"]), len(words), case["bits"], case["dtype"])
        assert out.tolist() == case["words"]


@pytest.mark.parametrize("case", load("packing")["malformed"], ids=lambda c: c["why"])
def test_malformed_packings_are_refused(case):
    for decode in (unpack, unpack_reference):
        with pytest.raises(MalformedMessage):
            decode(bytes.fromhex(case["packed"]), case["count"], case["bits"], case["dtype"])


@pytest.mark.parametrize("case", load("mask_values")["cases"],
                         ids=lambda c: f"{c['dtype']}-{c['bits']}")
def test_mask_values_replay(case):
    values = expand(bytes.fromhex(case["seed"]), bytes.fromhex(case["context"]),
                    len(case["values"]), case["dtype"], case["bits"])
    assert values.tolist() == case["values"]
