"""Conformance vectors for the SecAgg+ building blocks: graph derivation (from the session and
round, and in malicious mode from the closed registration), parameters, packing, and mask
values by ring width (SecAgg SPEC, "Mask PRG").

``python -m tests.secaggplus.conformance`` rewrites ``protocols/secaggplus/vectors/*.json``;
only do that for a deliberate change of the specification, and say so in the change.
test_conformance.py replays every vector and requires it to match exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from fedsecure.hazmat.prg import expand
from fedsecure.kernels.packing import pack
from fedsecure.protocols.secagg.harary import (
    PRG_CONTEXT,
    HararyGraph,
    graph_seed,
    registry_graph_seed,
)
from fedsecure.protocols.secagg.parameters import find_graph_parameters
from fedsecure.rng import DeterministicRandom

VECTOR_DIR = Path(__file__).resolve().parents[2] / "protocols" / "secaggplus" / "vectors"

GRAPH_CASES = [
    {"name": "five_clients_degree_2", "clients": list(range(1, 6)), "degree": 2,
     "session": "000102030405060708090a0b0c0d0e0f", "round": 7},
    {"name": "scattered_ids_degree_4", "degree": 4, "session": "6665647365637572", "round": 0,
     "clients": [3, 17, 42, 99, 1000, 65536, 2**31 - 1, 2**32 - 1, 0, 7]},
    {"name": "sixty_four_clients_degree_12", "clients": list(range(1, 65)), "degree": 12,
     "session": "ff" * 16, "round": 2**64 - 1},
    {"name": "empty_session_degree_6", "clients": list(range(100, 120)), "degree": 6,
     "session": "", "round": 3},
    {"name": "thousand_clients_degree_30", "clients": list(range(1, 1001)), "degree": 30,
     "session": "000102030405060708090a0b0c0d0e0f", "round": 1},
]
REGISTRY_CASES = [
    {"name": "nine_registered_degree_4", "clients": list(range(1, 10)), "degree": 4,
     "nonce": "5ec0a995" * 8},
    {"name": "scattered_registered_degree_6", "degree": 6, "nonce": "00" * 31 + "01",
     "clients": [2, 3, 5, 7, 11, 13, 17, 19, 23, 2**32 - 1]},
    {"name": "two_hundred_registered_degree_28", "clients": list(range(1, 201)), "degree": 28,
     "nonce": "ff" * 32},
]
"""Identity keys: 32 bytes per client from DeterministicRandom("fedsecure-registry/<name>")."""
PARAMETER_CASES = [
    {"clients": n, "corrupt_fraction": gamma, "dropout_fraction": delta, "adversary": adversary,
     "security_bits": sigma, "correctness_bits": eta}
    for n, gamma, delta, adversary, sigma, eta in [
        (1000, 0.05, 0.05, "semi-honest", 40, 20), (10000, 0.05, 0.05, "semi-honest", 40, 20),
        (1000000, 0.05, 0.05, "semi-honest", 40, 20), (100, 0.1, 0.1, "semi-honest", 40, 20),
        (1000, 0.1, 0.1, "semi-honest", 40, 20), (3000, 0.05, 0.1, "semi-honest", 40, 20),
        (1000, 0.05, 0.05, "semi-malicious", 40, 20), (10000, 0.33, 0.05, "semi-honest", 40, 20),
        (10, 0.0, 0.33, "semi-honest", 40, 20), (5000, 0.02, 0.2, "semi-honest", 64, 30),
        (1000, 0.0, 0.0, "semi-honest", 40, 20),
    ]
]
PACKING_WIDTHS = [("<u4", 1), ("<u4", 3), ("<u4", 8), ("<u4", 17), ("<u4", 24), ("<u4", 31),
                  ("<u4", 32), ("<u8", 33), ("<u8", 34), ("<u8", 52), ("<u8", 63), ("<u8", 64)]


def graph_vector(case: dict) -> dict:
    session = bytes.fromhex(case["session"])
    graph = HararyGraph(case["clients"], case["degree"], session=session,
                        round_number=case["round"])
    seed = graph_seed(case["clients"], session=session, round_number=case["round"])
    listed = sorted(case["clients"])[:12]  # full lists for small graphs, a sample for large
    return case | {
        "seed": seed.hex(),
        "first_keys": expand(seed, PRG_CONTEXT, min(4, len(listed)), "<u8").tolist(),
        "ring": graph.ring.tolist(),
        "neighbours": {str(c): sorted(graph.neighbours(c)) for c in listed},
    }


def registry_vector(case: dict) -> dict:
    stream = DeterministicRandom(f"fedsecure-registry/{case['name']}")
    keys = {c: stream.bytes(32) for c in sorted(case["clients"])}
    seed = registry_graph_seed(keys, bytes.fromhex(case["nonce"]))
    graph = HararyGraph(case["clients"], case["degree"], seed=seed)
    listed = sorted(case["clients"])[:12]
    return case | {
        "keys": {str(c): k.hex() for c, k in keys.items()},
        "seed": seed.hex(),
        "ring": graph.ring.tolist(),
        "neighbours": {str(c): sorted(graph.neighbours(c)) for c in listed},
    }


def parameter_vector(case: dict) -> dict:
    arguments = dict(case)
    found = find_graph_parameters(arguments.pop("clients"), **arguments)
    return case | {"degree": found.degree, "threshold": found.threshold,
                   "achieved_security_bits": finite_or_none(found.security_bits),
                   "achieved_correctness_bits": finite_or_none(found.correctness_bits)}


def finite_or_none(bits: float) -> float | None:
    """JSON has no infinity: ``null`` stands for a bad event that cannot happen."""
    return None if math.isinf(bits) else bits


def packing_vector(dtype: str, bits: int) -> dict:
    stream = DeterministicRandom(f"fedsecure-secaggplus-packing/{dtype}/{bits}")
    words = np.frombuffer(stream.bytes(8 * 13), "<u8") >> np.uint64(64 - bits)
    words = np.concatenate([np.array([0, 2**bits - 1], np.uint64), words]).astype(dtype)
    return {"dtype": dtype, "bits": bits, "words": [int(w) for w in words],
            "packed": pack(words, bits).tobytes().hex()}


MASK_RINGS = [("<u4", 24), ("<u4", 32), ("<u8", 34), ("<u8", 40), ("<u8", 48), ("<u8", 49),
              ("<u8", 64)]
MASK_SEED, MASK_CONTEXT, MASK_VALUES = bytes(range(32)), b"fedsecure-mask-vector", 19


def mask_vector(dtype: str, bits: int) -> dict:
    """The first values of one mask of a ``bits``-bit ring: 19 values straddle the 8-value
    blocks of the 5- and 6-byte draws."""
    values = expand(MASK_SEED, MASK_CONTEXT, MASK_VALUES, dtype, bits)
    return {"dtype": dtype, "bits": bits, "seed": MASK_SEED.hex(),
            "context": MASK_CONTEXT.hex(), "values": [int(v) for v in values]}


def malformed_packings() -> list[dict]:
    """Byte strings a receiver must refuse (MalformedMessage) for the stated count and width."""
    good = pack(np.array([5, 1, 6], dtype="<u4"), 3).tobytes()  # 9 bits: 2 bytes, 7 spare bits
    return [
        {"why": "one byte short", "dtype": "<u4", "bits": 3, "count": 3, "packed": good[:1].hex()},
        {"why": "one byte too many", "dtype": "<u4", "bits": 3, "count": 3,
         "packed": (good + b"\0").hex()},
        {"why": "a padding bit set", "dtype": "<u4", "bits": 3, "count": 3,
         "packed": (good[:1] + bytes([good[1] | 0x80])).hex()},
        {"why": "count 0 needs no bytes", "dtype": "<u8", "bits": 40, "count": 0, "packed": "00"},
    ]


def build_vectors() -> dict[str, dict]:
    common = {"protocol": "secaggplus", "spec": "protocols/secaggplus/SPEC.md"}
    return {
        "harary_graphs": common | {"section": "Graph derivation",
                                   "cases": [graph_vector(c) for c in GRAPH_CASES]},
        "registry_graphs": common | {"section": "Graph derivation in malicious mode",
                                     "cases": [registry_vector(c) for c in REGISTRY_CASES]},
        "graph_parameters": common | {"section": "Parameters",
                                      "cases": [parameter_vector(c) for c in PARAMETER_CASES]},
        "packing": common | {"section": "Packing",
                             "cases": [packing_vector(d, b) for d, b in PACKING_WIDTHS],
                             "malformed": malformed_packings()},
        "mask_values": {"protocol": "secagg", "spec": "protocols/secagg/SPEC.md",
                        "section": "Mask PRG",
                        "cases": [mask_vector(d, b) for d, b in MASK_RINGS]},
    }


def main() -> None:
    VECTOR_DIR.mkdir(parents=True, exist_ok=True)
    for name, vector in build_vectors().items():
        path = VECTOR_DIR / f"{name}.json"
        path.write_text(json.dumps(vector, indent=1, allow_nan=False) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
