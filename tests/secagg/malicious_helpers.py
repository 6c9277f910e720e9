"""Identity keys and aggregators for malicious-server-mode tests."""

from __future__ import annotations

from fedsecure.hazmat import generate_signing_key
from fedsecure.protocols.base import AggregationSpec
from fedsecure.rng import DeterministicRandom
from tests.hostile import HostileSecAgg
from tests.secagg.helpers import SESSION


def identities(n: int, seed="identities"):
    """(registry mapping id -> public key, id -> private key) for clients 1..n."""
    rng = DeterministicRandom(seed)
    pairs = {c: generate_signing_key(rng) for c in range(1, n + 1)}
    return {c: p.public for c, p in pairs.items()}, {c: p.private for c, p in pairs.items()}


def make_malicious(n, d=6, *, seed=0, hostile=None, threshold=None, round_number=0,
                   registry=None):
    public, private = identities(n)
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=4, session=SESSION,
                           round=round_number)
    return HostileSecAgg(spec, hostile=hostile or {}, scale_bits=8, threshold=threshold,
                         security="malicious", identities=registry or public,
                         identity_keys=private, rng=DeterministicRandom(seed))
