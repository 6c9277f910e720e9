"""What one comparison case measures (benchmarks/comparison.py), on cases small enough for CI."""

from __future__ import annotations

import pytest

from benchmarks import comparison
from fedsecure.errors import ConfigurationError


@pytest.mark.parametrize("technique, rounds", [("plaintext", 1), ("secagg", 5),
                                               ("secagg-malicious", 6), ("secaggplus", 5)])
def test_a_round_case_measures_cost_and_error(technique, rounds):
    n, d = 6, 32  # one client drops: malicious SecAgg needs 2n/3 + 1 = 5 survivors
    m = comparison.measure_round(technique, n, d, 1 / 6)
    assert m["survivors"] == n - 1
    assert m["rounds"] == rounds
    assert m["client_cpu_s"] > 0 and m["server_cpu_s"] > 0 and m["peak_rss_mb"] > 0
    assert m["bytes_up"] >= 4 * d  # at least the vector itself
    exactness = 1e-6 if technique == "plaintext" else 2.0**-16 * (n - 1)
    assert m["error"] < exactness
    if technique != "plaintext":
        assert m["bytes_down"] > 0


def test_dp_error_is_the_noise():
    """Central DP: one Gaussian of sigma = z * C on the sum; local DP: one of 2 z C per client."""
    n, d = 8, 4000
    central = comparison.measure_round("dp-central", n, d, 0.0)["error"]
    local = comparison.measure_round("dp-local", n, d, 0.0)["error"]
    sigma = comparison.NOISE_MULTIPLIER * comparison.CLIP_NORM
    assert central == pytest.approx(sigma, rel=0.1)
    assert local == pytest.approx(2 * sigma * n**0.5, rel=0.1)


def test_dropped_clients_spare_the_key_holder():
    dropped = comparison.dropped_clients(10, 0.5, seed=3)
    assert len(dropped) == 5 and 1 not in dropped


def test_malicious_secaggplus_is_available():
    comparison.check_available(comparison.BY_NAME["secaggplus-malicious"])


def test_a_mode_the_protocol_refuses_is_unavailable_with_its_reason(monkeypatch):
    def refusing(protocol, spec, **options):
        raise ConfigurationError("security='malicious': this protocol is semi-honest only")

    monkeypatch.setattr(comparison, "make_aggregator", refusing)
    with pytest.raises(comparison.Unavailable, match="secaggplus: .*semi-honest only"):
        comparison.check_available(comparison.BY_NAME["secaggplus-malicious"])


def test_the_peer_is_unavailable_without_flwr_or_its_module(monkeypatch):
    monkeypatch.setattr(comparison.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(comparison.Unavailable, match="flwr is not installed"):
        comparison.measure_round("flower-secaggplus", 10, 100, 0.1)
    monkeypatch.setattr(comparison.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(comparison, "PEER_MODULE", "benchmarks.no_such_peer_module")
    with pytest.raises(comparison.Unavailable, match="no_such_peer_module"):
        comparison.check_available(comparison.BY_NAME["flower-secaggplus"])


def test_quick_grid_has_curves():
    grid = comparison.GRIDS["quick"]
    cases = grid.round_cases()
    assert len({n for n, d, _ in cases if d == grid.d_fixed}) >= 4
    assert len({d for n, d, _ in cases if n == grid.n_fixed}) >= 4


def test_the_peer_is_measured_by_its_module(monkeypatch):
    """benchmarks/flower_peer.py's dict is taken as is, its RMS error as the error."""
    import sys
    import types

    calls = []
    peer = types.ModuleType("fake_flower_peer")

    def measure_flower_secaggplus(n, d, dropout, seed):
        calls.append((n, d, dropout, seed))
        return {"client_cpu_s": 0.1, "server_cpu_s": 0.2, "bytes_up": 3, "bytes_down": 4,
                "rounds": 5, "error": 1e-3, "error_rms": 1e-4, "peak_rss_mb": 6.0}

    peer.measure_flower_secaggplus = measure_flower_secaggplus
    monkeypatch.setitem(sys.modules, "fake_flower_peer", peer)
    monkeypatch.setattr(comparison, "PEER_MODULE", "fake_flower_peer")
    monkeypatch.setattr(comparison.importlib.util, "find_spec", lambda name: object())
    measured = comparison.measure_round("flower-secaggplus", 20, 1000, 0.1, seed=7)
    assert calls == [(20, 1000, 0.1, 7)]
    assert measured["error"] == 1e-4 and measured["error_max"] == 1e-3
    assert measured["rounds"] == 5 and measured["bytes_down"] == 4
