"""Our rules and attacks against an independent implementation: ByzFL 0.0.11 (EPFL's
Byzantine-robust FL library; https://byzfl.epfl.ch).

Only ByzFL's aggregator and attack modules are loaded (its package ``__init__`` also imports its
training framework, which needs torchvision and seaborn).  Where the two libraries define a rule
differently, the mapping is stated in the test: ByzFL's Krum scores against n - f - 1
neighbours where Blanchard et al. (and we) use n - f - 2, so our f is ByzFL's f - 1; ByzFL's
centred clipping starts at 0 where ours starts at the coordinate-wise median, so the inputs are
built with median 0; ByzFL's ALIE adds tau * std where Baruch et al. (and we) subtract z * std.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest

from fedsecure.fl.attacks import alie_z, poison_updates
from fedsecure.robust import make_rule

pytest.importorskip("torch", reason="ByzFL needs torch (extra: train)")
_SPEC = importlib.util.find_spec("byzfl")
if _SPEC is None:
    pytest.skip("byzfl is not installed (pip install --no-deps byzfl==0.0.11; extra: robust-check)",
                allow_module_level=True)
if "byzfl" not in sys.modules:  # a bare package: skip byzfl/__init__ and its framework imports
    _package = types.ModuleType("byzfl")
    _package.__path__ = list(_SPEC.submodule_search_locations)
    sys.modules["byzfl"] = _package
from byzfl.aggregators import aggregators as byz  # noqa: E402
from byzfl.aggregators import preaggregators as byz_pre  # noqa: E402
from byzfl.attacks import attacks as byz_attacks  # noqa: E402

N, D = 15, 64


@pytest.fixture(params=range(5))
def updates(request):
    rng = np.random.default_rng(request.param)
    x = rng.normal(size=(N, D))
    x[:3] = rng.normal(scale=50, size=(3, D))  # three outliers
    return x


def test_median(updates):
    assert np.allclose(make_rule("median")(updates).aggregate, byz.Median()(updates))


@pytest.mark.parametrize("f", [0, 2, 5])
def test_trimmed_mean(updates, f):
    assert np.allclose(make_rule("trimmed-mean", f=f)(updates).aggregate,
                       byz.TrMean(f=f)(updates))


@pytest.mark.parametrize("f", [1, 3, 6])
def test_krum(updates, f):
    assert np.allclose(make_rule("krum", f=f - 1)(updates).aggregate, byz.Krum(f=f)(updates))


@pytest.mark.parametrize("f", [1, 3, 6])
def test_multi_krum(updates, f):
    ours = make_rule("multi-krum", f=f - 1, m=N - f)(updates).aggregate
    assert np.allclose(ours, byz.MultiKrum(f=f)(updates))


def test_geometric_median(updates):
    ours = make_rule("geometric-median", iterations=5000, tol=1e-15, eps=1e-12)(updates)
    theirs = byz.GeometricMedian(nu=1e-12, T=5000)(updates)
    assert np.allclose(ours.aggregate, theirs, atol=1e-6)


@pytest.mark.filterwarnings("ignore:divide by zero")  # ByzFL divides by the zero row's norm
def test_centered_clipping_from_a_zero_median():
    rng = np.random.default_rng(7)
    half = rng.normal(size=(7, D))
    half[0] *= 40
    x = np.concatenate([half, -half, np.zeros((1, D))])  # coordinate-wise median exactly 0
    for iterations in (1, 3):
        ours = make_rule("centered-clipping", tau=2.0, iterations=iterations)(x).aggregate
        theirs = byz.CenteredClipping(tau=2.0, L=iterations)(x.copy())
        assert np.allclose(ours, theirs)


def test_norm_bound_is_the_mean_of_byzfl_clipped_vectors(updates):
    ours = make_rule("norm-bound", tau=3.0)(updates).aggregate
    assert np.allclose(ours, byz_pre.Clipping(c=3.0)(updates.copy()).mean(axis=0))


def test_inner_product_manipulation(updates):
    honest = updates[3:]
    ours = poison_updates("ipm", updates[:3], honest, rng=np.random.default_rng(0),
                          epsilon=0.7)
    theirs = byz_attacks.InnerProductManipulation(tau=0.7)(honest)
    assert np.allclose(ours, np.tile(theirs, (3, 1)))


def test_a_little_is_enough(updates):
    honest = updates[3:]
    ours = poison_updates("alie", updates[:3], honest, rng=np.random.default_rng(0))
    theirs = byz_attacks.ALittleIsEnough(tau=-alie_z(N, 3))(honest)
    assert np.allclose(ours, np.tile(theirs, (3, 1)))
