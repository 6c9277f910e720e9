"""Helpers for CKKS tests: small parameters, random inputs, a phase-by-phase harness."""

from __future__ import annotations

import numpy as np

from fedsecure.hazmat.ckks import CkksParameters
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.rng import DeterministicRandom

# N=4096 keeps tests fast: 2048 slots, 128-bit secure, 2^17 headroom, error bound ~7e-5.
TEST_PARAMS = CkksParameters(4096, (50, 50), 30)
SESSION = bytes(range(16, 32))
TENSEAL_REASON = "TenSEAL is not installed (pip install 'fedsecure[he]')"


def make_ckks(n: int = 4, d: int = 50, *, seed: int = 0, max_weight: int = 5, clip: float = 1.0,
              min_clients: int | None = None, **options):
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=max_weight, clip=clip,
                           min_clients=min_clients, session=SESSION)
    options.setdefault("parameters", TEST_PARAMS)
    return make_aggregator("ckks", spec, rng=DeterministicRandom(seed), **options)


def random_inputs(spec, seed: int, spread: float = 1.5) -> dict[int, tuple[np.ndarray, int]]:
    """Uniform vectors in [-spread*clip, spread*clip] (some get clipped), random weights."""
    data = np.random.default_rng(seed)
    return {c: (data.uniform(-spread * spec.clip, spread * spec.clip, spec.vector_length),
                int(data.integers(1, spec.max_weight + 1))) for c in spec.client_ids}


def plain_mean(spec, inputs, survivors) -> tuple[np.ndarray, int]:
    """The weighted mean of the clipped inputs of ``survivors``, and their total weight."""
    total = sum(inputs[c][1] * np.clip(inputs[c][0], -spec.clip, spec.clip) for c in survivors)
    weight = sum(inputs[c][1] for c in survivors)
    return total / weight, weight
