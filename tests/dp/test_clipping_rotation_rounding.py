"""L2 clipping bounds the norm exactly; the rotation is orthonormal and invertible; conditional
rounding is unbiased and never exceeds its bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.linalg import hadamard

from fedsecure.dp.clipping import AdaptiveClip, l2_clip
from fedsecure.dp.rotation import HadamardRotation, _hadamard, padded_length, rotation_seed
from fedsecure.dp.rounding import conditional_round, rounded_l1_bound, rounded_l2_bound
from fedsecure.errors import ConfigurationError
from fedsecure.rng import DeterministicRandom
from tests.dp.stats import FALSE_ALARM

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
vectors = st.lists(finite, min_size=1, max_size=300).map(np.array)
norms = st.floats(min_value=1e-6, max_value=1e6)


@settings(max_examples=300, deadline=None)
@given(vectors, norms)
def test_l2_clip_bounds_the_norm_exactly_and_keeps_the_direction(x, c):
    y = l2_clip(x, c)
    assert np.linalg.norm(y) <= c
    if np.linalg.norm(x) <= c:
        assert np.array_equal(x, y)
    else:
        assert np.allclose(y * np.linalg.norm(x) / c, x, rtol=1e-9, atol=1e-9 * np.abs(x).max())


def test_l2_clip_refuses_a_bad_norm():
    with pytest.raises(ConfigurationError, match="clip_norm"):
        l2_clip(np.ones(3), 0.0)


def test_adaptive_clip_moves_towards_the_target_quantile():
    clip = AdaptiveClip(clip_norm=1.0, quantile=0.5, learning_rate=0.2)
    assert clip.update(noisy_count=9.0, n_clients=10) < 1.0  # most unclipped: shrink
    before = clip.clip_norm
    assert clip.update(noisy_count=0.0, n_clients=10) == pytest.approx(before * math.exp(0.1))


@pytest.mark.parametrize("n", [1, 2, 8, 256])
def test_fast_hadamard_matches_the_matrix(n):
    x = np.random.default_rng(n).normal(size=n)  # test data only; noise never uses numpy
    assert np.allclose(_hadamard(x), hadamard(n) @ x / math.sqrt(n), atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(finite, min_size=1, max_size=700).map(np.array), st.binary(min_size=8, max_size=8))
def test_rotation_is_invertible_to_floating_point_precision(x, salt):
    rotation = HadamardRotation(x.size, rotation_seed(salt * 2, 3))
    y = rotation.forward(x)
    assert y.size == padded_length(x.size)
    scale = max(1.0, float(np.abs(x).max()))
    assert np.allclose(rotation.inverse(y), x, rtol=0, atol=1e-12 * scale * math.log2(y.size + 1))
    assert np.linalg.norm(y) == pytest.approx(np.linalg.norm(x), rel=1e-12, abs=1e-300)


def test_rotation_depends_on_the_public_seed_only():
    a = HadamardRotation(100, rotation_seed(bytes(16), 1))
    b = HadamardRotation(100, rotation_seed(bytes(16), 1))
    c = HadamardRotation(100, rotation_seed(bytes(16), 2))
    assert np.array_equal(a.signs, b.signs) and not np.array_equal(a.signs, c.signs)


def test_rotation_flattens_a_spike():
    x = np.zeros(1000)
    x[17] = 1.0
    y = HadamardRotation(1000, rotation_seed(bytes(16), 0)).forward(x)
    assert np.abs(y).max() == pytest.approx(1 / math.sqrt(1024))


def test_conditional_rounding_never_exceeds_its_bound_and_is_unbiased():
    rng = DeterministicRandom("round")
    d, c = 256, 40.0
    y = np.linspace(-1, 1, d)
    y *= c / np.linalg.norm(y)
    bound = rounded_l2_bound(c, d, beta=0.3)  # tight: redraws happen
    draws = np.array([conditional_round(rng, y, bound) for _ in range(4000)])
    assert np.all(np.einsum("ij,ij->i", draws, draws) <= math.floor(bound * bound))
    assert np.all((draws == np.floor(y)) | (draws == np.floor(y) + 1))
    # conditioning on the norm biases each coordinate by far less than its rounding noise
    z = (draws.mean(axis=0) - y) / (0.5 / math.sqrt(len(draws)))
    assert np.abs(z).max() < -stats.norm.ppf(FALSE_ALARM / (2 * d))


def test_rounded_bounds():
    assert rounded_l2_bound(10.0, 100, 1e-3) <= 10.0 + math.sqrt(100)
    assert rounded_l2_bound(10.0, 100, 1e-3) > 10.0
    assert rounded_l1_bound(3.0, 100) == 9.0 and rounded_l1_bound(100.0, 4) == 200.0
