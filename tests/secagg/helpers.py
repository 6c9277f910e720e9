"""Helpers for SecAgg tests: grid inputs whose quantization is exact, and expected sums."""

from __future__ import annotations

import numpy as np

from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.rng import DeterministicRandom

CLIENT_TAGS = ("AdvertiseKeys", "EncryptedShares", "ShareReceipt", "MaskedInput", "UnmaskShares")
SESSION = bytes(range(16))


def make_secagg(n: int, d: int, *, seed=0, threshold=None, max_weight=5, scale_bits=8, clip=1.0,
                round_number=0):
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=max_weight, clip=clip,
                           session=SESSION, round=round_number)
    return make_aggregator("secagg", spec, scale_bits=scale_bits, threshold=threshold,
                           rng=DeterministicRandom(seed))


def grid_inputs(aggregator, seed: int) -> dict[int, tuple[np.ndarray, int]]:
    """Inputs that are exact multiples of 1/scale inside [-clip, clip]: stochastic rounding
    leaves them unchanged, so the secure sum must match the plain sum exactly."""
    spec, fixed = aggregator.spec, aggregator.fixed_point
    data = np.random.default_rng(seed)
    limit = int(spec.clip * fixed.scale)
    return {
        c: (data.integers(-limit, limit + 1, spec.vector_length) / fixed.scale,
            int(data.integers(1, spec.max_weight + 1)))
        for c in spec.client_ids
    }


def exact_sum(aggregator, inputs, survivors) -> tuple[np.ndarray, int]:
    fixed = aggregator.fixed_point
    total = sum(np.round(inputs[c][0] * fixed.scale).astype(np.int64) * inputs[c][1]
                for c in survivors)
    return total / fixed.scale, sum(inputs[c][1] for c in survivors)
