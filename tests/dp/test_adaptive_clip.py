"""Adaptive clipping (Andrew et al. 2021) inside the DP placements: the private unclipped count
travels as one more noised coordinate of the same release, its noise has the planned scale,
the sensitivity bound holds, the update noise is z C / sqrt(1 - f), and the clip converges to
the target quantile.  Noise comes from DeterministicRandom with fixed seeds (no flakes); the
statistical checks run at the false-alarm rate of tests/dp/stats.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fedsecure.dp import AdaptiveClip, DPAggregateResult, make_dp_aggregator
from fedsecure.dp.clipping import l2_clip
from fedsecure.errors import ConfigurationError
from fedsecure.protocols.base import AggregationSpec
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round
from tests.dp.stats import FALSE_ALARM, variance_fits


def norms_inputs(norms: list[float], d: int, seed: int) -> dict[int, tuple[np.ndarray, int]]:
    """Client updates (test data from numpy) with the given L2 norms, random directions."""
    gen = np.random.default_rng(seed)
    out = {}
    for cid, norm in enumerate(norms, start=1):
        direction = gen.normal(size=d)
        out[cid] = (direction * norm / np.linalg.norm(direction), 1)
    return out


@pytest.mark.parametrize("share", [0.05, 0.5])
def test_the_count_coordinate_keeps_the_sensitivity_bound(share):
    agg = make_dp_aggregator("central", AggregationSpec(n_clients=3, vector_length=5),
                             protocol="plaintext", clip_norm=2.0, noise_multiplier=1.0,
                             count_share=share)
    assert agg.clip_norm == pytest.approx(2.0 / math.sqrt(1 - share))
    for norm in (0.0, 1.0, 2.0, 2.0000001, 50.0):
        x = np.full(5, norm / math.sqrt(5))
        u = agg._with_count(x)
        assert u.size == 6 and np.linalg.norm(u) <= agg.clip_norm * (1 + 1e-12)
        assert np.linalg.norm(u[:5]) <= 2.0
        inside = np.linalg.norm(x) <= 2.0
        assert u[5] == pytest.approx(agg.count_scale * (0.5 if inside else -0.5))


def test_the_noisy_count_is_unbiased_with_the_planned_noise():
    # 6 clients, 2 of them within C = 1; z = 0.8 and f = 0.2: sigma_b = z / (2 sqrt f)
    spec = AggregationSpec(n_clients=6, vector_length=2)
    inputs = norms_inputs([0.3, 0.9, 1.5, 2.0, 4.0, 9.0], d=2, seed=0)
    rng, rounds, z, share = DeterministicRandom("count-noise"), 240, 0.8, 0.2
    errors = []
    for _ in range(rounds):
        agg = make_dp_aggregator("central", spec, protocol="plaintext", clip_norm=1.0,
                                 noise_multiplier=z, count_share=share, rng=rng)
        result = simulate_round(agg, inputs).result
        assert isinstance(result, DPAggregateResult) and result.weighted_sum.size == 2
        errors.append(result.unclipped_count - 2)
    errors = np.array(errors)
    sigma_b = z / (2 * math.sqrt(share))
    limit = stats.norm.ppf(1 - FALSE_ALARM / 2) * sigma_b / math.sqrt(rounds)
    assert abs(errors.mean()) < limit  # unbiased: the centred bit decodes to the count
    variance_fits(errors, sigma_b**2)


@pytest.mark.parametrize("silent", [(), (2, 7)])
def test_distributed_adaptive_round_under_secagg(silent):
    """Under SecAgg with dropouts: the update keeps noise of the target scale z C / sqrt(1 - f)
    (discrete Gaussian shares, n s = (z Delta_2)^2 in integer units) and the count is near the
    survivors' true count; the round's event is the distributed discrete Gaussian of the
    (d + 1)-vector."""
    n, d, clip, z, share = 10, 2047, 1.0, 0.5, 0.1  # d + 1 = 2048: no truncation on the way back
    spec = AggregationSpec(n_clients=n, vector_length=d, min_clients=6)
    agg = make_dp_aggregator("distributed", spec, protocol="secagg", clip_norm=clip,
                             noise_multiplier=z, count_share=share,
                             rng=DeterministicRandom(f"adaptive-{silent}"))
    assert agg.padded == 2048
    norms = [0.2, 0.5, 0.8, 0.95, 1.1, 1.3, 2.0, 3.0, 0.4, 5.0]
    inputs = norms_inputs(norms, d, seed=3)
    report = simulate_round(agg, inputs, faults=[Silent(c, before="MaskedInput") for c in silent])
    result = report.result
    survivors = [c for c in spec.client_ids if c not in silent]
    assert list(result.survivors) == survivors and result.weighted_sum.size == d
    clipped = sum(l2_clip(inputs[c][0], clip) for c in survivors)
    error = (result.weighted_sum - clipped) / agg.granularity
    variance_fits(error, len(survivors) * agg.local_variance)
    true_count = sum(norms[c - 1] <= clip for c in survivors)
    count_sigma = math.sqrt(len(survivors) * agg.local_variance) * agg.granularity \
        / agg.count_scale
    assert abs(result.unclipped_count - true_count) < 5.3 * count_sigma  # two-sided 1e-7
    fixed = make_dp_aggregator("distributed", spec, protocol="secagg", clip_norm=clip,
                               noise_multiplier=z)
    assert agg.planned_event.rho == pytest.approx(fixed.planned_event.rho, rel=1e-2)


@pytest.mark.parametrize("placement", ["central", "local"])
def test_update_noise_is_z_times_the_widened_sensitivity(placement):
    n, d, clip, z, share = 8, 3000, 1.0, 0.7, 0.25
    spec = AggregationSpec(n_clients=n, vector_length=d)
    agg = make_dp_aggregator(placement, spec, protocol="plaintext", clip_norm=clip,
                             noise_multiplier=z, count_share=share,
                             rng=DeterministicRandom("widened-" + placement))
    inputs = norms_inputs([0.5, 1.0, 1.5, 2.0, 0.1, 3.0, 0.7, 1.2], d, seed=4)
    result = simulate_round(agg, inputs).result
    clipped = sum(l2_clip(v, clip) for v, _ in inputs.values())
    sigma = z * clip / math.sqrt(1 - share)
    variance = (2 * sigma) ** 2 * n if placement == "local" else sigma**2
    variance_fits(result.weighted_sum - clipped, variance)
    # the same multiplier z is accounted as with fixed clipping: nothing is added to epsilon
    fixed = make_dp_aggregator(placement, spec, protocol="plaintext", noise_multiplier=z)
    assert agg.planned_event == fixed.planned_event


def test_the_clip_converges_to_the_target_quantile():
    """Updates with norms spread over [0.1, 4]: starting 10x too small, the private estimate
    drives C to the median of the norms."""
    n, d = 40, 4
    norms = list(np.linspace(0.1, 4.0, n))
    inputs = norms_inputs(norms, d, seed=5)
    spec = AggregationSpec(n_clients=n, vector_length=d)
    adaptive = AdaptiveClip(clip_norm=0.2, quantile=0.5, learning_rate=0.2)
    rng = DeterministicRandom("converge")
    for _ in range(80):
        agg = make_dp_aggregator("central", spec, protocol="plaintext",
                                 clip_norm=adaptive.clip_norm, noise_multiplier=1.0,
                                 count_share=0.1, rng=rng)
        result = simulate_round(agg, inputs).result
        adaptive.update(result.unclipped_count, len(result.survivors))
    median = float(np.median(norms))
    assert 0.75 * median < adaptive.clip_norm < 1.33 * median


def test_count_share_is_checked():
    with pytest.raises(ConfigurationError, match="count_share"):
        make_dp_aggregator("central", AggregationSpec(n_clients=3, vector_length=4),
                           protocol="plaintext", noise_multiplier=1.0, count_share=1.0)
