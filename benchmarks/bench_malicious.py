"""Malicious-server mode next to semi-honest, in the same run: the extra consistency round,
signing and verifying — for SecAgg (complete graph) and for SecAgg+ at n = 100 and n = 1000.
One round per case, 10 % dropouts; ``extra_info`` records the server's and the mean client's
CPU seconds, bytes per client and the ratio to semi-honest.

    pytest benchmarks/bench_malicious.py --benchmark-only

SecAgg+ runs at d = 10^4 (small enough for n = 1000 on a shared 2-core machine) with the
default 5 % corrupt / 10 % dropout targets; malicious mode also takes the finder's
semi-malicious degree and threshold (k = 28, t = 18 at n = 100; k = 78, t = 52 at n = 1000,
against 16 / 6 and 36 / 19 semi-honest), so its ratio includes the larger neighbourhoods;
``semi-honest-same-graph`` runs semi-honest on that degree and threshold, to separate the cost
of the neighbourhoods from that of signing and the consistency round.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.protocols.identity import enroll_simulated
from fedsecure.protocols.secagg.parameters import find_graph_parameters
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round

CASES = [(50, 10**4), (100, 10**4), (100, 10**5)]
PLUS_CASES = [(100, 10**4), (1000, 10**4)]
TAGS = ("EncryptedShares", "MaskedInput", "UnmaskShares")
_MEASURED: dict[tuple, dict[str, float]] = {}


def _options(security: str, n: int) -> dict:
    if security == "semi-honest":
        return {}
    if security == "semi-honest-same-graph":  # the degree and threshold malicious mode takes
        found = find_graph_parameters(n, corrupt_fraction=0.05, dropout_fraction=0.1,
                                      adversary="semi-malicious")
        return {"degree": found.degree, "threshold": found.threshold}
    registry, private = enroll_simulated(range(1, n + 1), DeterministicRandom("identities"))
    return {"security": "malicious", "identities": registry, "identity_keys": private}


def _ids(cases):
    return [f"n{n}-d{d:.0e}".replace("+0", "") for n, d in cases]


@pytest.mark.parametrize("security", ["semi-honest", "malicious"])
@pytest.mark.parametrize("n, d", CASES, ids=_ids(CASES))
def test_secagg_round_by_security_mode(benchmark, n, d, security):
    _measure(benchmark, "secagg", n, d, security)


@pytest.mark.parametrize("security", ["semi-honest", "semi-honest-same-graph", "malicious"])
@pytest.mark.parametrize("n, d", PLUS_CASES, ids=_ids(PLUS_CASES))
def test_secaggplus_round_by_security_mode(benchmark, n, d, security):
    _measure(benchmark, "secaggplus", n, d, security)


def _measure(benchmark, protocol, n, d, security):
    data = np.random.default_rng(n + d)
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=100)
    inputs = {c: (data.uniform(-1, 1, d), int(data.integers(1, 101))) for c in spec.client_ids}
    dropped = data.choice(list(spec.client_ids), size=n // 10, replace=False)
    faults = [Silent(int(c), TAGS[i % len(TAGS)]) for i, c in enumerate(dropped)]
    options = _options(security, n)
    reports, aggregators = [], []

    def one_round():
        aggregator = make_aggregator(protocol, spec, **options)
        aggregators.append(aggregator)
        reports.append(simulate_round(aggregator, inputs, faults=faults))

    benchmark.group = f"{protocol} by security mode n={n} d={d:.0e}"
    benchmark.pedantic(one_round, rounds=1, iterations=1)
    report = reports[-1]
    assert report.error is None, report.error
    clients = [s for pid, s in report.stats.items() if pid != 0]
    measured = {"server_cpu_s": report.stats[0].total_cpu_seconds,
                "client_cpu_s_mean": statistics.mean(s.total_cpu_seconds for s in clients),
                "bytes_per_client": statistics.mean(s.total_bytes_sent + s.total_bytes_received
                                                    for s in clients)}
    benchmark.extra_info.update(measured)
    benchmark.extra_info.update(degree=aggregators[-1].graph.degree,
                                threshold=aggregators[-1].threshold)
    _MEASURED[(protocol, n, d, security)] = measured
    for mode in ("semi-honest", "semi-honest-same-graph"):
        baseline = _MEASURED.get((protocol, n, d, mode))
        if security == "malicious" and baseline is not None:
            for key, value in measured.items():
                benchmark.extra_info[f"{key}_over_{mode.replace('-', '_')}"] = \
                    value / baseline[key]
