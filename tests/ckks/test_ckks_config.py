"""CKKS parameter sets and aggregator configuration: pure Python, no TenSEAL needed
(except where an aggregator is built)."""

from __future__ import annotations

import sys

import pytest

from fedsecure.errors import BackendUnavailable, ConfigurationError
from fedsecure.hazmat.ckks import PRESETS, CkksParameters
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from tests.ckks.helpers import TENSEAL_REASON, TEST_PARAMS, make_ckks


@pytest.mark.parametrize("name, security, slots", [
    ("n8192", 128, 4096),
    ("n8192-compact", 192, 4096),
    ("n16384", 256, 8192),
])
def test_presets_meet_the_he_standard(name, security, slots):
    params = PRESETS[name]
    assert params.security_bits == security
    assert params.slots == slots
    assert params.error_bound < 1e-6
    assert params.headroom_bits >= 17


def test_test_parameters_are_128_bit():
    assert TEST_PARAMS.security_bits == 128
    assert TEST_PARAMS.headroom_bits == 17


@pytest.mark.parametrize("degree, sizes, scale, option", [
    (8192, (60, 60, 60, 60), 40, "coeff_mod_bit_sizes"),  # 240 > 218 bits: not 128-bit secure
    (4096, (60, 50), 30, "coeff_mod_bit_sizes"),  # 110 > 109
    (2048, (27, 27), 20, "poly_modulus_degree"),
    (8192, (60,), 40, "coeff_mod_bit_sizes"),  # no special prime
    (8192, (61, 60), 40, "coeff_mod_bit_sizes"),
    (8192, (60, 60), 58, "scale_bits"),  # no headroom left
])
def test_parameters_refused(degree, sizes, scale, option):
    with pytest.raises(ConfigurationError, match=option):
        CkksParameters(degree, sizes, scale)


def test_noise_model_grows_with_degree_and_shrinks_with_scale():
    small, large = CkksParameters(8192, (60, 60), 40), CkksParameters(16384, (60, 60), 40)
    assert large.noise_std > 1.9 * small.noise_std
    assert CkksParameters(8192, (60, 60), 30).noise_std == pytest.approx(small.noise_std * 2**10)


def test_missing_tenseal_is_a_backend_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tenseal", None)  # makes `import tenseal` fail
    spec = AggregationSpec(n_clients=3, vector_length=10)
    with pytest.raises(BackendUnavailable, match=r"fedsecure\[he\]"):
        make_aggregator("ckks", spec)


@pytest.mark.he
class TestAggregatorOptions:
    @pytest.fixture(autouse=True)
    def _tenseal(self):
        pytest.importorskip("tenseal", reason=TENSEAL_REASON)

    def test_headroom_refused(self):
        # 3 clients x weight 50000 x clip 1 = 150000 > 2^17: the decoded sum could wrap around
        with pytest.raises(ConfigurationError, match="headroom|2\\^17"):
            make_ckks(3, 10, max_weight=50_000)
        make_ckks(3, 10, max_weight=40_000)

    def test_compact_preset_headroom(self):
        with pytest.raises(ConfigurationError, match="parameters"):
            make_ckks(100, 10, max_weight=2000, parameters=None, preset="n8192-compact")
        assert make_ckks(100, 10, max_weight=2000, parameters=None, preset="n8192") is not None

    @pytest.mark.parametrize("options, option", [
        ({"key_holder": 0}, "key_holder"),
        ({"key_holder": 5}, "key_holder"),
        ({"key_model": "threshold"}, "key_model"),
        ({"parameters": None, "preset": "n4096"}, "preset"),
        ({"signing_public_keys": {1: bytes(32)}}, "signing_public_keys"),
    ])
    def test_bad_options(self, options, option):
        with pytest.raises(ConfigurationError, match=option):
            make_ckks(4, 10, **options)

    def test_client_needs_a_signing_key_when_the_server_verifies(self):
        aggregator = make_ckks(3, 10, signing_public_keys={c: bytes(32) for c in (1, 2, 3)})
        with pytest.raises(ConfigurationError, match="signing_key"):
            aggregator.client(2)

    def test_quantization_error_is_the_parameters_bound(self):
        aggregator = make_ckks(3, 10)
        assert aggregator.quantization_error == TEST_PARAMS.error_bound
        assert 1e-5 < aggregator.quantization_error < 1e-4
