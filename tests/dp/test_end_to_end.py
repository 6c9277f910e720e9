"""End to end in the simulator: DP placements over SecAgg (and plaintext), with dropouts.

Distributed DP: the decoded integer sum equals, exactly, the sum of the survivors' noisy
integer vectors (no wrap-around), and the decoded estimate minus the sum of the clipped
updates is noise of the target scale.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsecure.dp import make_dp_aggregator
from fedsecure.dp.clipping import l2_clip
from fedsecure.errors import ConfigurationError, InvalidInput
from fedsecure.messages import SERVER_ID
from fedsecure.protocols.base import AggregationSpec, RoundFinished
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round
from tests.dp.stats import variance_fits


def updates(n: int, d: int, seed: int) -> dict[int, tuple[np.ndarray, int]]:
    """Test data (numpy is fine for data, never for noise): norms between 0.2 and 3."""
    gen = np.random.default_rng(seed)
    return {cid: (gen.normal(size=d) * gen.uniform(0.2, 3.0) / math.sqrt(d), 1)
            for cid in range(1, n + 1)}


def recording(aggregator):
    """Keep every client party the simulator makes, to inspect what each one sent."""
    made, make = {}, aggregator.client
    aggregator.client = lambda cid, rng=None: made.setdefault(cid, make(cid, rng=rng))
    return made


@pytest.mark.parametrize("silent", [(), (3,), (2, 5, 7)])
def test_distributed_dp_under_secagg_is_exact_noise_of_the_target_scale(silent):
    n, d, clip = 10, 4096, 1.0  # a power of two: the estimate is not truncated, so it maps back
    spec = AggregationSpec(n_clients=n, vector_length=d, min_clients=6)
    agg = make_dp_aggregator("distributed", spec, protocol="secagg", clip_norm=clip,
                             noise_multiplier=0.5, rng=DeterministicRandom(f"e2e-{silent}"))
    made = recording(agg)
    inputs = updates(n, d, seed=len(silent))
    report = simulate_round(agg, inputs, faults=[Silent(c, before="MaskedInput") for c in silent])
    assert report.error is None
    result = report.result
    survivors = [c for c in spec.client_ids if c not in silent]
    assert list(result.survivors) == survivors and result.total_weight == len(survivors)

    # exact integer sum of what the survivors handed SecAgg: nothing wrapped or was rounded
    integers = agg.rotation.forward(result.weighted_sum) / agg.granularity
    assert np.abs(integers - np.round(integers)).max() < 1e-6
    expected = sum(made[c].encoded for c in survivors)
    assert np.array_equal(np.round(integers), expected)
    bound = agg.inner.fixed_point
    assert bound.bound >= n * (agg.coordinate_bound + 1) and 2 * bound.bound + 1 <= 2**bound.modulus_bits
    assert all(np.abs(made[c].encoded).max() <= agg.coordinate_bound for c in survivors)

    # the error is noise of the planned scale: the survivors' shares (s each; the unbiased
    # rounding adds at most 1/4 per client, far inside the test's resolution)
    clipped = sum(l2_clip(inputs[c][0], clip) for c in survivors)
    error = (result.weighted_sum - clipped) / agg.granularity
    variance_fits(error, len(survivors) * agg.local_variance)
    # the guarantee reached is accounted with the clients that really survived
    assert agg.privacy_event(len(survivors)).rho <= agg.planned_event.rho


def test_distributed_noise_sized_for_min_clients_carries_the_target():
    spec = AggregationSpec(n_clients=50, vector_length=500, min_clients=30)
    agg = make_dp_aggregator("distributed", spec, noise_multiplier=1.3, clip_norm=2.0,
                             rng=DeterministicRandom(1))
    assert 30 * agg.local_variance >= (1.3 * agg.l2_bound) ** 2 > 29 * agg.local_variance


@pytest.mark.parametrize("placement, protocol", [("central", "secagg"), ("central", "plaintext"),
                                                 ("local", "secagg"), ("local", "plaintext")])
def test_central_and_local_noise_has_the_target_scale(placement, protocol):
    n, d, clip, z = 8, 4000, 1.0, 0.7
    spec = AggregationSpec(n_clients=n, vector_length=d)
    agg = make_dp_aggregator(placement, spec, protocol=protocol, clip_norm=clip,
                             noise_multiplier=z, rng=DeterministicRandom(placement + protocol))
    inputs = updates(n, d, seed=1)
    report = simulate_round(agg, inputs, faults=[Silent(4, before="*")] if protocol == "plaintext"
                            else [])
    result = report.result
    clipped = sum(l2_clip(inputs[c][0], clip) for c in result.survivors)
    per_client = (2 * z * clip) ** 2 if placement == "local" else 0.0
    variance = per_client * len(result.survivors) if placement == "local" else (z * clip) ** 2
    assert agg.quantization_error * n < 1e-3 * math.sqrt(variance)  # SecAgg's fixed point
    variance_fits(result.weighted_sum - clipped, variance)
    assert result.total_weight == len(result.survivors)


class CountingRandom:
    """A random source that counts the bytes drawn from it."""

    def __init__(self, seed: str):
        self.inner, self.drawn = DeterministicRandom(seed), 0

    def bytes(self, n: int) -> bytes:
        self.drawn += n
        return self.inner.bytes(n)


def test_central_dp_noise_is_drawn_once_in_the_step_that_finishes_the_round():
    """The noise is the server's own (driver-timed) work, not drawn later by ``result()``,
    and every ``result()`` is that one release: asking again never draws fresh noise."""
    n, d = 5, 300
    agg = make_dp_aggregator("central", AggregationSpec(n_clients=n, vector_length=d),
                             protocol="plaintext", noise_multiplier=1.0)
    rng, servers = CountingRandom("central-once"), []
    make = agg.server
    agg.server = lambda rng_=None: servers.append(make(rng=rng)) or servers[-1]
    drawn_at_finish = []
    report = simulate_round(agg, updates(n, d, seed=2), on_event=lambda pid, event: (
        drawn_at_finish.append(rng.drawn) if pid == SERVER_ID and isinstance(event, RoundFinished)
        else None))
    assert report.error is None and drawn_at_finish == [rng.drawn] and rng.drawn >= 8 * d
    again = servers[0].result()
    assert rng.drawn == drawn_at_finish[0]
    assert np.array_equal(again.weighted_sum, report.result.weighted_sum)


def test_the_central_release_is_drawn_once():
    """Asking the server again returns the same noisy sum: fresh noise on every call would
    hand out more than the one accounted release (the MPI runner asks twice)."""
    agg = make_dp_aggregator("central", AggregationSpec(n_clients=3, vector_length=50),
                             protocol="plaintext", noise_multiplier=1.0,
                             rng=DeterministicRandom("once"))
    inputs = updates(3, 50, seed=2)
    servers = []
    server = agg.server
    agg.server = lambda rng=None: servers.append(server(rng=rng)) or servers[-1]
    first = simulate_round(agg, inputs).result
    assert servers[0].result() is first
    clipped = sum(l2_clip(inputs[c][0], 1.0) for c in first.survivors)
    assert not np.allclose(first.weighted_sum, clipped)  # the noise is in it


def test_dp_aggregation_is_unweighted():
    agg = make_dp_aggregator("central", AggregationSpec(n_clients=3, vector_length=4),
                             protocol="plaintext", noise_multiplier=1.0)
    with pytest.raises(InvalidInput, match="unweighted"):
        agg.client(1).set_input(np.zeros(4), 5)


def test_distributed_dp_refuses_a_fractional_fixed_point():
    with pytest.raises(ConfigurationError, match="scale_bits"):
        make_dp_aggregator("distributed", AggregationSpec(n_clients=3, vector_length=4),
                           noise_multiplier=1.0, protocol_options={"scale_bits": 8})


def test_distributed_dp_refuses_integers_too_large_for_the_exact_quantizer():
    with pytest.raises(ConfigurationError, match="2\\^21|2\\^24"):
        make_dp_aggregator("distributed", AggregationSpec(n_clients=3, vector_length=4000),
                           noise_multiplier=1.0, resolution=4096.0)


def test_unknown_placement():
    with pytest.raises(ConfigurationError, match="dp"):
        make_dp_aggregator("shuffled", AggregationSpec(n_clients=3, vector_length=4),
                           noise_multiplier=1.0)
