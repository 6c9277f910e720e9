"""Malicious-server mode next to semi-honest SecAgg, in the same run: the extra consistency
round, signing and verifying.  One round per case, 10 % dropouts; ``extra_info`` records the
server's and the mean client's CPU seconds, bytes per client and the ratio to semi-honest.

    pytest benchmarks/bench_malicious.py --benchmark-only

SecAgg+ runs semi-honest only for now, so its malicious cost (n = 1000) is not measured here.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from fedsecure.hazmat import generate_signing_key
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round

CASES = [(50, 10**4), (100, 10**4), (100, 10**5)]
TAGS = ("EncryptedShares", "MaskedInput", "UnmaskShares")
_MEASURED: dict[tuple, dict[str, float]] = {}


def _options(security: str, n: int) -> dict:
    if security == "semi-honest":
        return {}
    keys = {c: generate_signing_key(DeterministicRandom(f"id{c}")) for c in range(1, n + 1)}
    return {"security": "malicious", "identities": {c: k.public for c, k in keys.items()},
            "identity_keys": {c: k.private for c, k in keys.items()}}


@pytest.mark.parametrize("security", ["semi-honest", "malicious"])
@pytest.mark.parametrize("n, d", CASES, ids=[f"n{n}-d{d:.0e}".replace("+0", "") for n, d in CASES])
def test_secagg_round_by_security_mode(benchmark, n, d, security):
    data = np.random.default_rng(n + d)
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=100)
    inputs = {c: (data.uniform(-1, 1, d), int(data.integers(1, 101))) for c in spec.client_ids}
    dropped = data.choice(list(spec.client_ids), size=n // 10, replace=False)
    faults = [Silent(int(c), TAGS[i % len(TAGS)]) for i, c in enumerate(dropped)]
    options = _options(security, n)
    reports = []

    def one_round():
        aggregator = make_aggregator("secagg", spec, **options)
        reports.append(simulate_round(aggregator, inputs, faults=faults))

    benchmark.group = f"secagg by security mode n={n} d={d:.0e}"
    benchmark.pedantic(one_round, rounds=1, iterations=1)
    report = reports[-1]
    assert report.error is None, report.error
    clients = [s for pid, s in report.stats.items() if pid != 0]
    measured = {"server_cpu_s": report.stats[0].total_cpu_seconds,
                "client_cpu_s_mean": statistics.mean(s.total_cpu_seconds for s in clients),
                "bytes_per_client": statistics.mean(s.total_bytes_sent + s.total_bytes_received
                                                    for s in clients)}
    benchmark.extra_info.update(measured)
    _MEASURED[(n, d, security)] = measured
    baseline = _MEASURED.get((n, d, "semi-honest"))
    if security == "malicious" and baseline is not None:
        for key, value in measured.items():
            benchmark.extra_info[f"{key}_over_semi_honest"] = value / baseline[key]
