"""Conformance vectors for SecAgg: fixed seeds, full 5-client transcripts with dropouts, and
malicious-mode SecAgg+ transcripts on a 9-client ring of degree 4 (its graph from the closed
registration: the identity keys and the registrar's nonce in the vector's parameters).

``python -m tests.secagg.conformance`` rewrites ``protocols/secagg/vectors/*.json``; only do
that for a deliberate change of the wire format, and say so in the change.
The tests (test_conformance.py) replay each vector and require every byte to match.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fedsecure.hazmat import generate_signing_key
from fedsecure.protocols.base import AggregationSpec
from fedsecure.protocols.identity import StaticRegistry
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round
from tests.hostile import BEHAVIOURS, HostileSecAgg, HostileSecAggPlus

VECTOR_DIR = Path(__file__).resolve().parents[2] / "protocols" / "secagg" / "vectors"

CASES = {
    "five_clients_drop_before_masked_input_and_unmasking": {
        "seed": "fedsecure-secagg-vector-1",
        "faults": [[2, "MaskedInput"], [4, "UnmaskShares"]],
    },
    "five_clients_drop_before_shares_and_masked_input": {
        "seed": "fedsecure-secagg-vector-2",
        "faults": [[5, "EncryptedShares"], [2, "MaskedInput"]],
    },
    "five_clients_false_complaint_settled_by_opening": {
        "seed": "fedsecure-secagg-vector-3",
        "faults": [],
        "hostile": {"3": "false_complaints"},
    },
    "five_clients_malicious_mode_drop_before_consistency_check": {
        "seed": "fedsecure-secagg-vector-4",
        "faults": [[2, "ConsistencySignature"]],
        "security": "malicious",
        "threshold": 4,
    },
}
PARAMETERS = {"n_clients": 5, "vector_length": 6, "max_weight": 3, "clip": 1.0,
              "scale_bits": 8, "threshold": 3, "round": 7,
              "session": "000102030405060708090a0b0c0d0e0f"}
PLUS_PARAMETERS = PARAMETERS | {"n_clients": 9, "degree": 4, "threshold": 3,
                                "registry_nonce": "5ec0a995" * 8}
CASES |= {
    "nine_clients_secaggplus_malicious_drop_before_masked_input_and_consistency_check": {
        "seed": "fedsecure-secaggplus-vector-1",
        "faults": [[3, "MaskedInput"], [6, "ConsistencySignature"]],
        "security": "malicious",
        "protocol": "secaggplus",
        "parameters": PLUS_PARAMETERS,
    },
    "nine_clients_secaggplus_malicious_corrupted_unmask_share_and_late_unmask": {
        "seed": "fedsecure-secaggplus-vector-2",
        "faults": [[8, "UnmaskShares"]],
        "hostile": {"2": "corrupt_unmask_share"},
        "security": "malicious",
        "protocol": "secaggplus",
        "parameters": PLUS_PARAMETERS,
    },
}


def run_case(seed: str, faults, parameters=PARAMETERS, hostile=None, security="semi-honest",
             threshold=None, protocol="secagg"):
    """Run the round a vector describes; returns (inputs, report, aggregator).  ``hostile``
    maps client ids (strings) to a behaviour name of ``tests.hostile``; in malicious mode the
    identity keys are Ed25519 seeds drawn from DeterministicRandom(seed + "/identities").
    SecAgg+ takes its degree and, in malicious mode, the registrar's nonce from ``parameters``."""
    p = parameters
    options = {}
    if security == "malicious":
        keys = DeterministicRandom(seed + "/identities")
        pairs = {c: generate_signing_key(keys) for c in range(1, p["n_clients"] + 1)}
        public = {c: k.public for c, k in pairs.items()}
        options = {"security": security, "identities": public,
                   "identity_keys": {c: k.private for c, k in pairs.items()}}
    kind = HostileSecAgg
    if protocol == "secaggplus":
        kind, options["degree"] = HostileSecAggPlus, p["degree"]
        if security == "malicious":
            options["identities"] = StaticRegistry(public, bytes.fromhex(p["registry_nonce"]))
    spec = AggregationSpec(n_clients=p["n_clients"], vector_length=p["vector_length"],
                           max_weight=p["max_weight"], clip=p["clip"],
                           session=bytes.fromhex(p["session"]), round=p["round"])
    aggregator = kind(spec, hostile={int(c): BEHAVIOURS[b] for c, b in (hostile or {}).items()},
                      scale_bits=p["scale_bits"], threshold=threshold or p["threshold"],
                      rng=DeterministicRandom(seed), **options)
    grid = DeterministicRandom(seed + "/inputs")
    limit = int(p["clip"] * 2 ** p["scale_bits"])
    inputs = {}
    for c in spec.client_ids:
        raw = np.frombuffer(grid.bytes(4 * spec.vector_length), "<u4").astype(np.int64)
        vector = (raw % (2 * limit + 1) - limit) / 2 ** p["scale_bits"]
        inputs[c] = (vector, int(grid.bytes(1)[0] % p["max_weight"]) + 1)
    report = simulate_round(aggregator, inputs, faults=[Silent(c, tag) for c, tag in faults],
                            record_transcript=True)
    return inputs, report, aggregator


def build_vector(name: str) -> dict:
    case = CASES[name]
    parameters = case.get("parameters", PARAMETERS)
    inputs, report, aggregator = run_case(case["seed"], case["faults"], parameters,
                                          hostile=case.get("hostile"),
                                          security=case.get("security", "semi-honest"),
                                          threshold=case.get("threshold"),
                                          protocol=case.get("protocol", "secagg"))
    result = report.result
    return {
        "protocol": case.get("protocol", "secagg"),
        "wire_version": 1,
        "name": name,
        "rng": "DeterministicRandom(seed): AES-256-CTR keystream keyed by "
               "SHA-256('fedsecure/test-rng/v1' || seed), one stream shared by all parties "
               "in the order the simulation runs them",
        "seed": case["seed"],
        "parameters": parameters,
        "inputs": {str(c): {"vector": v.tolist(), "weight": w} for c, (v, w) in inputs.items()},
        "faults": [{"kind": "silent", "party": c, "before": tag} for c, tag in case["faults"]],
        "hostile": case.get("hostile", {}),
        "security": case.get("security", "semi-honest"),
        "identities": {str(c): k.hex() for c, k in
                       (aggregator.identities.registered.items() if aggregator.malicious else ())},
        "threshold": case.get("threshold", parameters["threshold"]),
        "transcript": [{"from": s, "to": r, "hex": data.hex()} for s, r, data in report.transcript],
        "result": {
            "survivors": list(result.survivors),
            "weighted_sum": result.weighted_sum.tolist(),
            "total_weight": result.total_weight,
        },
    }


def main() -> None:
    VECTOR_DIR.mkdir(parents=True, exist_ok=True)
    for name in CASES:
        path = VECTOR_DIR / f"{name}.json"
        path.write_text(json.dumps(build_vector(name), indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
