"""Identity keys and aggregators for malicious-server-mode tests, for SecAgg and SecAgg+."""

from __future__ import annotations

import hashlib

from fedsecure.hazmat import generate_signing_key
from fedsecure.protocols.base import AggregationSpec
from fedsecure.protocols.identity import StaticRegistry
from fedsecure.rng import DeterministicRandom
from tests.hostile import HostileSecAgg, HostileSecAggPlus
from tests.secagg.helpers import SESSION

PROTOCOLS = ("secagg", "secaggplus")
PLUS_DEGREE = 4
"""SecAgg+ tests run on a sparse ring of degree 4 (5 share holders per client)."""
PLUS_THRESHOLD = 3
"""The smallest t that a server lying about dropouts cannot break with no corrupt neighbour:
2t - k - 1 = 1 > 0 (parameters.py)."""
NONCE = hashlib.sha256(b"fedsecure-test-registrar-nonce").digest()


def identities(n: int, seed="identities"):
    """(registry mapping id -> public key, id -> private key) for clients 1..n."""
    rng = DeterministicRandom(seed)
    pairs = {c: generate_signing_key(rng) for c in range(1, n + 1)}
    return {c: p.public for c, p in pairs.items()}, {c: p.private for c, p in pairs.items()}


def make_malicious(n, d=6, *, seed=0, hostile=None, threshold=None, round_number=0,
                   registry=None, protocol="secagg", session=SESSION, nonce=NONCE):
    """A malicious-mode aggregator over clients 1..n.  SecAgg+ gets a closed registration
    (``nonce``) and the ring of degree PLUS_DEGREE with PLUS_THRESHOLD unless ``threshold``."""
    public, private = identities(n)
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=4, session=session,
                           round=round_number)
    options = {"hostile": hostile or {}, "scale_bits": 8, "security": "malicious",
               "identity_keys": private, "rng": DeterministicRandom(seed)}
    if protocol == "secagg":
        return HostileSecAgg(spec, threshold=threshold, identities=registry or public, **options)
    registry = StaticRegistry(registry or public, nonce=nonce)
    return HostileSecAggPlus(spec, degree=PLUS_DEGREE, threshold=threshold or PLUS_THRESHOLD,
                             identities=registry, **options)
