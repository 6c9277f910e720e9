"""SecAgg+ at scale next to SecAgg, and the issue-17 ratios, each against a floor measured in
the same run.

Quick subset (a few minutes on 2 cores):
    pytest benchmarks/bench_secaggplus.py --benchmark-only -m "not slow"
Everything (n up to 3000, d = 1e6; tens of minutes, ~10 GB RSS at n = 1000, d = 1e6):
    pytest benchmarks/bench_secaggplus.py --benchmark-only

``test_round``: one round (the lean simulation, runtime/simulation.py) at n x d with 10 %
dropouts, half before upload (silent at MaskedInput, after sharing: the server must recover
their pairwise masks) and half after (silent at UnmaskShares: their input counts).
``extra_info``: mean client CPU, server CPU, whole-round CPU, bytes per client and per value,
peak RSS, and ``over_floor``: whole-round CPU over the raw AES-256-CTR keystream (masks +
rounding randomness) plus X25519 scalar multiplications that this round needs, each unit timed
in the same test. SecAgg runs only where a case fits.
``test_client_cost_growth``: mean client CPU at n = 100, 200, 400 (d = 1e5) and the 400 / 100
ratio. ``test_mask_step_vs_keystream``: the client's real masking step (quantize with its
rounding randomness, self mask, k = 20 pairwise masks, reduction) over the raw keystream of the
same mask bytes. ``test_server_peak_memory``: the server's peak traced memory over d ring
words. ``test_upload_vs_16_bit_plaintext``: bytes a client sends at n = 1024, d = 2^20 over a
16-bit plaintext of d values (16-bit inputs, as Bonawitz et al. count, and the rounds'
max_weight = 100), and per value at n = 100 with the default settings.
"""

from __future__ import annotations

import math
import statistics
import time
import tracemalloc

import numpy as np
import pytest

from benchmarks.bench_secagg import _raw_keystream_seconds as raw_keystream_seconds
from fedsecure.hazmat import agree_each, generate_keypair
from fedsecure.hazmat.prg import draw_bytes
from fedsecure.kernels import packed_size
from fedsecure.messages import SERVER_ID
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.rng import DeterministicRandom
from fedsecure.runtime.driver import PartyDriver
from fedsecure.runtime.faults import Silent
from fedsecure.runtime.simulation import simulate_round

BEFORE_UPLOAD, AFTER_UPLOAD = "MaskedInput", "UnmaskShares"
SECAGG_FITS = {(100, 10**5), (100, 10**6), (300, 10**5)}  # complete graph within ~10 min
QUICK = {(100, 10**5), (300, 10**5)}


def _synthetic(d: int, max_weight: int = 100):
    def inputs(client_id: int):
        data = np.random.default_rng([d, client_id])
        return data.uniform(-1, 1, d), int(data.integers(1, max_weight + 1))
    return inputs


def _faults(n: int, drop: float = 0.1) -> list[Silent]:
    chosen = np.random.default_rng(n).choice(np.arange(1, n + 1), int(round(drop * n)),
                                             replace=False)
    return [Silent(int(c), BEFORE_UPLOAD if i % 2 == 0 else AFTER_UPLOAD)
            for i, c in enumerate(sorted(chosen))]


def _raw_keystream_seconds(nbytes: int, repeats: int = 3) -> float:
    """Median CPU time of AES-256-CTR keystream of ``nbytes`` through pyca ``update_into``."""
    return raw_keystream_seconds(nbytes, repeats, clock=time.process_time)


def _x25519_seconds(count: int = 2000) -> float:
    """CPU seconds of one X25519 scalar multiplication (an agreement), from ``count``."""
    rng = DeterministicRandom(7)
    own, publics = generate_keypair(rng), [generate_keypair(rng).public for _ in range(count)]
    began = time.process_time()
    agree_each(own.private, publics)
    return (time.process_time() - began) / count


def _round_needs(aggregator, faults) -> tuple[int, int]:
    """(keystream bytes, X25519 multiplications) this round cannot do without.  Every client
    expands its self mask, one mask per neighbour and its rounding randomness (those silent
    at the upload do that work too); the server expands each survivor's self mask and, per
    client dropped before upload, one mask per surviving neighbour.  Each client makes 2 key
    pairs and, per neighbour, a mask agreement, an ephemeral key pair, its agreement and the
    opening of that neighbour's share; the server, per dropped client, one key check and one
    agreement per surviving neighbour."""
    spec, graph = aggregator.spec, aggregator.graph
    word = _mask_bytes(aggregator)  # keystream bytes drawn per mask value
    gone = {f.party for f in faults if f.before == BEFORE_UPLOAD}
    survivors = set(spec.client_ids) - gone
    vector = spec.vector_length + 1
    keystream = sum((1 + graph.degree) * word * vector + 4 * spec.vector_length
                    for _ in spec.client_ids)
    keystream += len(survivors) * word * vector
    keystream += sum(len(graph.neighbours(c) & survivors) for c in gone) * word * vector
    x25519 = (2 + 4 * graph.degree) * spec.n_clients
    x25519 += sum(1 + len(graph.neighbours(c) & survivors) for c in gone)
    return keystream, x25519


def _mask_bytes(aggregator) -> int:
    """Keystream bytes a mask draws per ring word (``hazmat.prg.draw_bytes``)."""
    fixed = aggregator.fixed_point
    return draw_bytes(fixed.modulus_bits, fixed.dtype)


def _case(protocol: str, n: int, d: int):
    slow = (n, d) not in QUICK or (protocol == "secagg" and n > 100)
    marks = [pytest.mark.slow, pytest.mark.timeout(3600)] if slow else []
    return pytest.param(protocol, n, d, id=f"{protocol}-n{n}-d{d:.0e}".replace("+0", ""),
                        marks=marks)


ROUNDS = [_case(p, n, d) for d in (10**5, 10**6) for n in (100, 300, 1000, 3000)
          for p in ("secagg", "secaggplus") if p == "secaggplus" or (n, d) in SECAGG_FITS]


@pytest.mark.parametrize("protocol, n, d", ROUNDS)
def test_round(benchmark, protocol, n, d):
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=100)
    faults = _faults(n)
    reports, aggregators = [], []

    def one_round():
        aggregators.append(make_aggregator(protocol, spec))
        reports.append(simulate_round(aggregators[-1], _synthetic(d), faults=faults, lean=True))

    benchmark.group = f"secaggplus round d={d:.0e}"
    benchmark.pedantic(one_round, rounds=1, iterations=1)
    report, aggregator = reports[-1], aggregators[-1]
    assert report.error is None, report.error
    clients = [s for pid, s in report.stats.items() if pid != SERVER_ID]
    whole = sum(s.total_cpu_seconds for s in report.stats.values())
    keystream, x25519 = _round_needs(aggregator, faults)
    floor = (_raw_keystream_seconds(min(keystream, 2**30)) * keystream / min(keystream, 2**30)
             + x25519 * _x25519_seconds())
    masked = [s.bytes_sent.get("MaskedInput", 0) for s in clients if s.bytes_sent.get("MaskedInput")]
    benchmark.extra_info.update({
        "degree": aggregator.graph.degree, "threshold": aggregator.threshold,
        "modulus_bits": aggregator.fixed_point.modulus_bits,
        "client_cpu_s_mean": statistics.mean(s.total_cpu_seconds for s in clients),
        "server_cpu_s": report.server_stats.total_cpu_seconds,
        "all_parties_cpu_s": whole,
        "floor_s": floor, "over_floor": whole / floor,
        "floor_keystream_bytes": keystream, "floor_x25519": x25519,
        "bytes_per_client": statistics.mean(s.total_bytes_sent for s in clients),
        "bytes_per_value": statistics.mean(s.total_bytes_sent for s in clients) / d,
        "masked_input_bytes_per_value": statistics.mean(masked) / d,
        "peak_rss_mib": report.peak_rss_bytes / 2**20,
        "survivors": len(report.result.survivors),
    })


def test_client_cost_growth(benchmark):
    """Mean client CPU of SecAgg+ at d = 1e5 for growing n, and the n = 400 / n = 100 ratio,
    next to the same ratio of a client's floor: its raw keystream ((k + 1) masks of d + 1
    values of ``draw_bytes`` bytes and 4 bytes of rounding randomness per value) plus its 2 + 4k
    X25519 multiplications, unit costs timed in the same test.  n = 1000 shows the curve past
    the finder's exact regime (at n = 100, 5 corrupt + 10 dropped < k: no bad event is
    possible), where k grows with log n: the n = 1000 / n = 400 ratios, next to log ratios.
    Each n runs 3 rounds after a warm-up; the ratios use each n's lowest mean (other jobs on
    a shared machine only add time), and every round's mean is recorded."""
    d, curve, repeats = 10**5, {}, 3

    def rounds():
        for n in (100, 200, 400, 1000):
            spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=100)
            aggregator = make_aggregator("secaggplus", spec)
            # warm-up at d = 1000, same n (the same ring width and kernels): the first client
            # to call a numba kernel loads it from the cache, which would count in the mean
            warm = AggregationSpec(n_clients=n, vector_length=1000, max_weight=100)
            simulate_round(make_aggregator("secaggplus", warm), _synthetic(1000),
                           faults=_faults(n), lean=True)
            means = []
            for _ in range(repeats):
                report = simulate_round(aggregator, _synthetic(d), faults=_faults(n), lean=True)
                assert report.error is None, report.error
                means.append(statistics.mean(s.total_cpu_seconds for pid, s in report.stats.items()
                                             if pid != SERVER_ID))
            curve[n] = (aggregator.graph.degree, aggregator.fixed_point.modulus_bits,
                        _mask_bytes(aggregator), min(means), means)

    benchmark.group = "secaggplus client cost growth"
    benchmark.pedantic(rounds, rounds=1, iterations=1)
    per_byte = _raw_keystream_seconds(2**27) / 2**27
    per_agreement = _x25519_seconds()
    floors = {n: ((k + 1) * word * (d + 1) + 4 * d) * per_byte + (2 + 4 * k) * per_agreement
              for n, (k, _, word, _, _) in curve.items()}
    benchmark.extra_info.update({f"n{n}": {"degree": k, "modulus_bits": bits,
                                           "client_cpu_s": s, "client_cpu_s_each_round": means,
                                           "client_floor_s": floors[n]}
                                 for n, (k, bits, _, s, means) in curve.items()})
    for high, low in ((400, 100), (1000, 400)):
        benchmark.extra_info[f"client_cpu_{high}_over_{low}"] = curve[high][3] / curve[low][3]
        benchmark.extra_info[f"client_floor_{high}_over_{low}"] = floors[high] / floors[low]
        benchmark.extra_info[f"degree_{high}_over_{low}"] = curve[high][0] / curve[low][0]
    benchmark.extra_info["log_n_1000_over_400"] = math.log(1000) / math.log(400)


@pytest.mark.parametrize("n, max_weight", [(100, 1), (100, 100), (1000, 100)],
                         ids=["ring24-u32", "ring31-u32", "ring34-u64"])
def test_mask_step_vs_keystream(benchmark, n, max_weight):
    """The client's own ``_masked_input`` (k = 20) at d = 1e6 against the raw keystream of
    the mask bytes it draws (k + 1 masks of d + 1 values of ``draw_bytes`` bytes each: 4 for
    the 24- and 31-bit rings, 5 for the 34-bit one; ``step_over_all_its_keystream`` also
    counts the 4 bytes of rounding randomness per value).  The two are timed alternately, 9
    times each, and compared by their fastest runs (other jobs on a shared machine only ever
    add time) and by their medians."""
    d, k = 10**6, 20
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=max_weight)
    aggregator = make_aggregator("secaggplus", spec, degree=k)
    client = aggregator.client(1)
    client.set_input(np.random.default_rng(0).uniform(-1, 1, d), min(3, max_weight))
    clipped = client._input  # ``_masked_input`` releases it: restored before every call
    rng = DeterministicRandom(1)
    peers = sorted(aggregator.graph.neighbours(1))
    client._seed = rng.bytes(32)  # what the key-roster phase leaves behind
    client._mask_seeds = {p: rng.bytes(32) for p in peers}

    def step():
        client._input = clipped
        return client._masked_input(peers)

    benchmark.group = "client mask step vs keystream"
    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    word = _mask_bytes(aggregator)
    steps, raws = [], []
    for _ in range(9):
        client._input = clipped
        began = time.process_time()
        client._masked_input(peers)
        steps.append(time.process_time() - began)
        raws.append(_raw_keystream_seconds(word * (d + 1) * (k + 1), repeats=1))
    masks, rounding = word * (d + 1) * (k + 1), 4 * d
    benchmark.extra_info.update({
        "modulus_bits": aggregator.fixed_point.modulus_bits, "mask_bytes_per_value": word,
        "step_cpu_s_min": min(steps), "raw_keystream_cpu_s_min": min(raws),
        "step_over_keystream": min(steps) / min(raws),
        "median_step_over_keystream": statistics.median(steps) / statistics.median(raws),
        # the same, against all the keystream the step draws (its rounding randomness too)
        "step_over_all_its_keystream": min(steps) / (min(raws) * (masks + rounding) / masks),
    })


def test_server_peak_memory(benchmark, monkeypatch):
    """The server's memory at n = 100, d = 1e6 in units of d ring words: the most that one
    step of its driver holds above what it started with (traced: numpy buffers, messages,
    the inbound message included) plus the running sum it keeps between steps (d + 1 words;
    counted twice in the step that makes it, so this is an upper bound).  A cumulative
    balance over steps is not used: the garbage collector frees other parties' objects
    inside server steps."""
    n, d = 100, 10**6
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=100)
    aggregator = make_aggregator("secaggplus", spec)
    step, held = PartyDriver.step, {"peak": 0}

    def traced_step(self):
        if not self.is_server:
            return step(self)
        polled = []  # sizes only: holding the messages would keep them alive
        poll = self.transport.poll

        def recording_poll():
            messages = poll()
            polled.extend(len(data) for _, data in messages)
            return messages

        self.transport.poll = recording_poll
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        try:
            return step(self)
        finally:
            del self.transport.poll
            peak = tracemalloc.get_traced_memory()[1]
            inbound = sum(polled)
            held["peak"] = max(held["peak"], inbound + peak - before)

    monkeypatch.setattr(PartyDriver, "step", traced_step)
    reports = []

    def one_round():
        tracemalloc.start()
        try:
            reports.append(simulate_round(aggregator, _synthetic(d), faults=_faults(n), lean=True))
        finally:
            tracemalloc.stop()

    benchmark.group = "secaggplus server memory"
    benchmark.pedantic(one_round, rounds=1, iterations=1)
    assert reports[-1].error is None, reports[-1].error
    vector = d * np.dtype(aggregator.fixed_point.dtype).itemsize
    bound = held["peak"] + vector + np.dtype(aggregator.fixed_point.dtype).itemsize
    benchmark.extra_info.update({"server_step_peak_bytes": held["peak"],
                                 "server_peak_bound_bytes": bound,
                                 "server_peak_over_d_words": bound / vector})


UPLOADS = [  # (n, d, max_weight, scale_bits)
    # Bonawitz et al.'s setting: 16-bit inputs (clip 1 at 14 fractional bits: |q| <= 2^14 + 1),
    # unweighted, so the sum of 1024 needs a 26-bit ring
    pytest.param(1024, 2**20, 1, 14, id="n1024-16bit-inputs"),
    pytest.param(1024, 2**20, 100, 16, id="n1024-max_weight100"),  # the rounds' setting: 34 bits
    pytest.param(100, 10**5, 1, 16, id="n100-defaults"),  # AggregationSpec / make_aggregator defaults
]


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("n, d, max_weight, scale_bits", UPLOADS)
def test_upload_vs_16_bit_plaintext(benchmark, n, d, max_weight, scale_bits):
    """A client's bytes at n x d over 2 bytes per value, and per value: every message but the
    masked input measured in a round at d = 256 (they do not depend on d), the masked input's
    envelope at d from its measured overhead at d = 256."""
    small = 256
    spec = AggregationSpec(n_clients=n, vector_length=small, max_weight=max_weight)
    aggregator = make_aggregator("secaggplus", spec, scale_bits=scale_bits)
    reports = []
    benchmark.group = "secaggplus upload"
    benchmark.pedantic(lambda: reports.append(simulate_round(aggregator, _synthetic(small, max_weight),
                                                             lean=True)), rounds=1, iterations=1)
    report = reports[-1]
    assert report.error is None, report.error
    bits = aggregator.fixed_point.modulus_bits
    clients = [s for pid, s in report.stats.items() if pid != SERVER_ID]
    other = statistics.mean(s.total_bytes_sent - s.bytes_sent["MaskedInput"] for s in clients)
    overhead = statistics.mean(s.bytes_sent["MaskedInput"] for s in clients) \
        - packed_size(small + 1, bits)
    upload = other + overhead + packed_size(d + 1, bits)
    benchmark.extra_info.update({"modulus_bits": bits, "degree": aggregator.graph.degree,
                                 "max_weight": max_weight, "scale_bits": scale_bits,
                                 "other_messages_bytes": other,
                                 "client_upload_bytes": upload,
                                 "bytes_per_value": upload / d,
                                 "over_16_bit_plaintext": upload / (2 * d),
                                 "masked_input_bytes_per_value": (overhead + packed_size(
                                     d + 1, bits)) / d})
