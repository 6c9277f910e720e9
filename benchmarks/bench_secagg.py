"""One SecAgg round, client and server CPU reported separately; client masking vs raw PRG.

Run all:     pytest benchmarks/bench_secagg.py --benchmark-only
A subset:    pytest benchmarks/bench_secagg.py --benchmark-only -k "n100 and d1e5"
Each round case records in ``extra_info``: CPU seconds of the server and of the mean client
(protocol work only), bytes sent per client, and the survivors.  The masking case times a
client's masking work (quantize + self mask + n-1 pairwise masks; the X25519 agreements are
done earlier, when the key roster arrives, and are timed apart) next to the raw AES-256-CTR
keystream of the same number of bytes, measured in the same run, and records their ratio.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from benchmarks.timing import timings
from fedsecure.hazmat import generate_keypair
from fedsecure.kernels import quantize
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.protocols.secagg import masking
from fedsecure.rng import DeterministicRandom, random_uint32
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round

CLIENT_TAGS = ("AdvertiseKeys", "EncryptedShares", "MaskedInput", "UnmaskShares")
CASES = [(n, d, drop) for n in (10, 50, 100) for d in (10**4, 10**5, 10**6)
         for drop in (0.0, 0.1, 0.3)]


def _case_id(case):
    n, d, drop = case
    return f"n{n}-d{d:.0e}-drop{int(drop * 100)}".replace("+0", "")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_secagg_round(benchmark, case):
    n, d, drop = case
    data = np.random.default_rng(n * d)
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=100)
    inputs = {c: (data.uniform(-1, 1, d), int(data.integers(1, 101))) for c in spec.client_ids}
    dropped = data.choice(list(spec.client_ids), size=int(round(drop * n)), replace=False)
    faults = [Silent(int(c), CLIENT_TAGS[i % len(CLIENT_TAGS)]) for i, c in enumerate(dropped)]
    reports = []

    def one_round():
        aggregator = make_aggregator("secagg", spec)
        reports.append(simulate_round(aggregator, inputs, faults=faults))

    benchmark.group = f"secagg round d={d:.0e}"
    benchmark.pedantic(one_round, rounds=1 if n * d >= 10**7 else 3, iterations=1)
    report = reports[-1]
    assert report.error is None, report.error
    clients = [s for pid, s in report.stats.items() if pid != 0]
    benchmark.extra_info.update({
        "server_cpu_s": report.stats[0].total_cpu_seconds,
        "client_cpu_s_mean": statistics.mean(s.total_cpu_seconds for s in clients),
        "all_parties_cpu_s": sum(s.total_cpu_seconds for s in report.stats.values()),
        "bytes_per_client": statistics.mean(s.total_bytes_sent for s in clients),
        "survivors": len(report.result.survivors),
    })


def _raw_keystream_seconds(nbytes: int, repeats: int = 5, clock=time.perf_counter) -> float:
    """Median ``clock`` seconds of AES-256-CTR keystream of ``nbytes`` (pyca ``update_into``)."""
    chunk = 256 * 1024
    zeros, buffer = memoryview(bytes(chunk)), bytearray(chunk + 15)
    times = []
    for _ in range(repeats):
        encryptor = Cipher(algorithms.AES(bytes(32)), modes.CTR(bytes(16))).encryptor()
        began = clock()
        for start in range(0, nbytes, chunk):
            encryptor.update_into(zeros[:min(chunk, nbytes - start)], buffer)
        times.append(clock() - began)
    return statistics.median(times)


@pytest.mark.parametrize("peers, d", [(99, 10**5), (49, 10**6)])
def test_client_masking_vs_raw_prg(benchmark, peers, d):
    rng = DeterministicRandom(1)
    own = generate_keypair(rng)
    publics = {p: generate_keypair(rng).public for p in range(2, peers + 2)}
    vector = np.random.default_rng(0).uniform(-1, 1, d)
    context = masking.round_context(bytes(16), 0)

    began = time.perf_counter()
    seeds = masking.agreed_secrets(own.private, publics)
    agreement_s = time.perf_counter() - began

    def mask_once():
        words = np.empty(d + 1, dtype="<u4")
        words[:-1] = quantize(vector, random_uint32(rng, d), scale=2.0**16, clip=1.0, weight=3,
                              modulus_bits=32, dtype="<u4")
        words[-1] = 3
        masking.add_self_mask(words, bytes(32), 1, context, +1, 32)
        for peer, seed in seeds.items():
            masking.add_pairwise_mask(words, seed, 1, peer, context, masking.pairwise_sign(1, peer),
                                      32)
        return words

    benchmark.group = "client masking vs raw PRG"
    benchmark.pedantic(mask_once, rounds=5, iterations=1)
    benchmark.extra_info["key_agreement_s"] = agreement_s
    if (stats := timings(benchmark)) is not None:
        raw = _raw_keystream_seconds(4 * (d + 1) * (peers + 1))
        benchmark.extra_info["raw_keystream_s"] = raw
        benchmark.extra_info["masking_over_raw_prg"] = stats.median / raw
        benchmark.extra_info["masking_bytes_per_s"] = 4 * (d + 1) * (peers + 1) / stats.median
