"""CKKS: encrypt, aggregate and decrypt steps next to the raw TenSEAL calls they are made of,
measured in the same run; whole rounds with bytes per client.

Run all:      pytest benchmarks/bench_ckks.py --benchmark-only
Quick subset: pytest benchmarks/bench_ckks.py --benchmark-only -m "not slow"
CI smoke:     pytest benchmarks/bench_ckks.py --benchmark-disable   (runs each quick case once;
              the slow cases skip themselves when benchmarking is disabled)

``test_ckks_step[op-n-d]`` times one step of fedsecure's round (``encrypt``: one client opens
its sealed key material, encrypts w*x || w and encodes its CkksUpdate; ``aggregate``: the
server decodes n updates, checks and adds their ciphertexts and encodes the decryption
request; ``decrypt``: the key holder decodes the request, decrypts and encodes the answer).
The raw TenSEAL calls the step is made of (context_from / ckks_vector / serialize;
ckks_vector_from / add_ / serialize; ckks_vector_from / decrypt) run on the same data in the
same test, interleaved with fedsecure's runs (in the untimed setup of each round);
``extra_info`` records the CPU seconds (``time.process_time``: wall time on a shared machine
measures the neighbours) of the fastest run of each and their ratio ``fedsecure_over_raw``.
Aggregation cases with n clients feed the server n updates (two real clients' ciphertexts, the others
re-addressed copies: the server deserializes each), so encryption cost does not grow with n.
``test_ckks_round`` runs whole rounds through the in-process simulation (every client really
encrypts), next to the same round as raw TenSEAL calls (key generation, n context loads and
encryptions, the sum, its decryption), and records bytes per client, expansion over float32
and the measured error against the documented bound.
"""

from __future__ import annotations

import statistics
import time

import msgspec
import numpy as np
import pytest

from fedsecure.hazmat import generate_keypair
from fedsecure.hazmat.ckks import PRESETS
from fedsecure.messages import CODEC
from fedsecure.messages.ckks import CkksAdvertise
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.runtime.simulation import simulate_round

ts = pytest.importorskip("tenseal", reason="TenSEAL is not installed (pip install 'fedsecure[he]')")

pytestmark = pytest.mark.he
PRESET = "n8192"
MAX_WEIGHT = 100
STEP_CASES = [(op, n, d) for op in ("encrypt", "aggregate", "decrypt")
              for n in (10, 50) for d in (10**4, 10**5, 10**6)
              if not (op != "aggregate" and n == 50)]  # encrypt/decrypt do not depend on n
ROUND_CASES = [(10, 10**4), (50, 10**4), (10, 10**5), (50, 10**5), (10, 10**6)]


def _heavy(d: int) -> bool:
    return d > 10**4


def _cases(cases, ids):
    return [pytest.param(*c, id=ids(*c), marks=[pytest.mark.slow] if _heavy(c[-1]) else [])
            for c in cases]


def _skip_heavy_if_disabled(benchmark, d):
    if benchmark.disabled and _heavy(d):
        pytest.skip("heavy case: runs only when benchmarking (--benchmark-only)")


def _inputs(d: int, seed: int):
    data = np.random.default_rng(seed)
    return data.uniform(-1, 1, d), int(data.integers(1, MAX_WEIGHT + 1))


class Staged:
    """One fedsecure round driven step by step, every message through the codec."""

    def __init__(self, n: int, d: int):
        spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=MAX_WEIGHT)
        self.n, self.d = n, d
        self.aggregator = make_aggregator("ckks", spec, preset=PRESET)
        self.server = self.aggregator.server()
        self.holder, self.client = self.aggregator.client(1), self.aggregator.client(2)
        self.inputs = {1: _inputs(d, 1), 2: _inputs(d, 2)}
        for party, client_id in ((self.holder, 1), (self.client, 2)):
            party.set_input(*self.inputs[client_id])
        self.server.start()
        self.holder.start()
        self.client.start()
        adverts = self._sent(self.holder) + self._sent(self.client)
        for client_id in range(3, n + 1):  # the other clients' advertised keys (real ones)
            body = CkksAdvertise(generate_keypair().public)
            adverts.append(CODEC.encode(self.aggregator.envelope(client_id, 0, body)))
        self._to_server(adverts)
        self.pending = self._close()

    # ---- helpers
    @staticmethod
    def _sent(party) -> list[bytes]:
        return [CODEC.encode(e) for e in party.messages_to_send()]

    def _to_server(self, blobs) -> None:
        for blob in blobs:
            self.server.receive(CODEC.decode(blob))

    def _close(self) -> dict[int, list[bytes]]:
        self.server.proceed_to_next_round()
        out: dict[int, list[bytes]] = {}
        for envelope in self.server.messages_to_send():
            out.setdefault(envelope.recipient, []).append(CODEC.encode(envelope))
        return out

    @staticmethod
    def _deliver(party, blobs) -> list[bytes]:
        for blob in blobs:
            party.receive(CODEC.decode(blob))
        return Staged._sent(party)

    # ---- steps
    def keys(self) -> None:
        """Key holder makes and seals the key; the server checks the public context."""
        self._to_server(self._deliver(self.holder, self.pending[1]))
        self.pending = self._close()
        self.client_key = self.pending[2]

    def encrypt(self) -> list[bytes]:
        return self._deliver(self.client, self.client_key)

    def prepare_updates(self) -> None:
        self.updates = self._deliver(self.holder, self.pending[1]) + self.encrypt()
        template = CODEC.decode(self.updates[1])
        for client_id in range(3, self.n + 1):
            self.updates.append(CODEC.encode(msgspec.structs.replace(template, sender=client_id)))

    def aggregate(self) -> None:
        self._to_server(self.updates)
        self.pending = self._close()

    def decrypt(self) -> list[bytes]:
        return self._deliver(self.holder, self.pending[1])

    def finish(self, answer) -> np.ndarray:
        self._to_server(answer)
        self.server.proceed_to_next_round()
        return self.server.result().mean

    def expected_mean(self) -> np.ndarray:
        (x1, w1), (x2, w2) = self.inputs[1], self.inputs[2]
        return (w1 * x1 + (self.n - 1) * w2 * x2) / (w1 + (self.n - 1) * w2)


class Raw:
    """The same round as raw TenSEAL calls: what each step is made of, nothing else."""

    def __init__(self, staged: Staged):
        params = staged.aggregator.parameters
        self.slots = params.slots
        context = ts.context(ts.SCHEME_TYPE.CKKS, params.poly_modulus_degree,
                             coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
        context.global_scale = 2.0**params.scale_bits
        options = {"save_public_key": True, "save_galois_keys": False, "save_relin_keys": False}
        self.public_bytes = context.serialize(save_secret_key=False, **options)
        self.secret = ts.context_from(context.serialize(save_secret_key=True, **options))
        self.public = ts.context_from(self.public_bytes)
        (x1, w1), (x2, w2) = staged.inputs[1], staged.inputs[2]
        self.values = [np.append(w1 * x1, w1), np.append(w2 * x2, w2)]
        self.n = staged.n

    def encrypt(self, values=None) -> list[bytes]:
        values = self.values[1] if values is None else values
        context = ts.context_from(self.public_bytes)
        return [ts.ckks_vector(context, values[i:i + self.slots].tolist()).serialize()
                for i in range(0, len(values), self.slots)]

    def prepare_updates(self) -> None:
        first, second = self.encrypt(self.values[0]), self.encrypt(self.values[1])
        self.updates = [first] + [second] * (self.n - 1)

    def aggregate(self) -> list[bytes]:
        sums = [ts.ckks_vector_from(self.public, c) for c in self.updates[0]]
        for update in self.updates[1:]:
            for total, chunk in zip(sums, update):
                total.add_(ts.ckks_vector_from(self.public, chunk))
        self.summed = [total.serialize() for total in sums]
        return self.summed

    def decrypt(self) -> list[float]:
        out = []
        for chunk in self.summed:
            out.extend(ts.ckks_vector_from(self.secret, chunk).decrypt())
        return out


def _staged_until(op: str, n: int, d: int) -> Staged:
    staged = Staged(n, d)
    staged.keys()
    if op in ("aggregate", "decrypt"):
        staged.prepare_updates()
    if op == "decrypt":
        staged.aggregate()
    return staged


def _cpu_seconds(fn) -> float:
    began = time.process_time()
    fn()
    return time.process_time() - began


def _record_ratio(benchmark, fedsecure_cpu: list[float], raw_cpu: list[float]) -> None:
    """CPU seconds (not wall: the machine may be shared), fastest of the interleaved runs."""
    fedsecure_s, raw_s = min(fedsecure_cpu), min(raw_cpu)
    benchmark.extra_info.update({"fedsecure_cpu_s": fedsecure_s, "raw_tenseal_cpu_s": raw_s,
                                 "fedsecure_over_raw": fedsecure_s / raw_s})


def _raw_until(op: str, staged: Staged) -> Raw:
    raw = Raw(staged)
    if op in ("aggregate", "decrypt"):
        raw.prepare_updates()
    if op == "decrypt":
        raw.aggregate()
    return raw


@pytest.mark.parametrize("op, n, d", _cases(STEP_CASES, lambda op, n, d: f"{op}-n{n}-d{d:.0e}"
                                             .replace("+0", "")))
def test_ckks_step(benchmark, op, n, d):
    _skip_heavy_if_disabled(benchmark, d)
    states: list[Staged] = []
    fedsecure_cpu: list[float] = []
    raw_cpu: list[float] = []

    def setup():  # untimed: build the state, and run the raw step on the same data
        staged = _staged_until(op, n, d)
        states.append(staged)
        if not benchmark.disabled:
            raw_cpu.append(_cpu_seconds(getattr(_raw_until(op, staged), op)))
        return (), {}

    def step():
        staged = states[-1]
        began = time.process_time()
        staged.output = getattr(staged, op)()
        fedsecure_cpu.append(time.process_time() - began)

    benchmark.group = f"ckks {op} d={d:.0e}"
    benchmark.pedantic(step, setup=setup, rounds=2 if d >= 10**6 else 5, iterations=1)
    staged = states[-1]
    if op == "decrypt":  # the result is right, not just fast
        error = np.max(np.abs(staged.finish(staged.output) - staged.expected_mean()))
        assert error <= staged.aggregator.quantization_error
        benchmark.extra_info["max_error"] = float(error)
    if op == "encrypt":
        update = staged.output[0]
        benchmark.extra_info.update({"update_bytes": len(update),
                                     "bytes_per_value": len(update) / d,
                                     "expansion_vs_float32": len(update) / (4 * d)})
    if raw_cpu:
        _record_ratio(benchmark, fedsecure_cpu, raw_cpu)


def _raw_round_seconds(n: int, d: int, inputs) -> float:
    """CPU seconds of keys, n encryptions, the sum and its decryption as raw TenSEAL calls."""
    params = PRESETS[PRESET]
    began = time.process_time()
    context = ts.context(ts.SCHEME_TYPE.CKKS, params.poly_modulus_degree,
                         coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes))
    context.global_scale = 2.0**params.scale_bits
    options = {"save_public_key": True, "save_galois_keys": False, "save_relin_keys": False}
    public_bytes = context.serialize(save_secret_key=False, **options)
    secret_bytes = context.serialize(save_secret_key=True, **options)
    public = ts.context_from(public_bytes)
    slots, sums = params.slots, None
    for client_id in range(1, n + 1):
        x, w = inputs[client_id]
        values = np.append(w * np.clip(x, -1, 1), w)
        client_context = ts.context_from(secret_bytes if client_id == 1 else public_bytes)
        chunks = [ts.ckks_vector(client_context, values[i:i + slots].tolist()).serialize()
                  for i in range(0, d + 1, slots)]
        vectors = [ts.ckks_vector_from(public, c) for c in chunks]
        if sums is None:
            sums = vectors
        else:
            for total, vector in zip(sums, vectors):
                total.add_(vector)
    summed = [total.serialize() for total in sums]
    secret = ts.context_from(secret_bytes)
    for chunk in summed:
        ts.ckks_vector_from(secret, chunk).decrypt()
    return time.process_time() - began


@pytest.mark.parametrize("n, d", _cases(ROUND_CASES, lambda n, d: f"n{n}-d{d:.0e}"
                                        .replace("+0", "")))
def test_ckks_round(benchmark, n, d):
    _skip_heavy_if_disabled(benchmark, d)
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=MAX_WEIGHT)
    inputs = {c: _inputs(d, 100 + c) for c in spec.client_ids}
    reports, fedsecure_cpu, raw_cpu = [], [], []

    def setup():  # untimed: the same round as raw TenSEAL calls, interleaved
        if not benchmark.disabled:
            raw_cpu.append(_raw_round_seconds(n, d, inputs))
        return (), {}

    def one_round():
        began = time.process_time()
        aggregator = make_aggregator("ckks", spec, preset=PRESET)
        reports.append((aggregator, simulate_round(aggregator, inputs)))
        fedsecure_cpu.append(time.process_time() - began)

    benchmark.group = f"ckks round d={d:.0e}"
    benchmark.pedantic(one_round, setup=setup, rounds=2 if n * d >= 10**6 else 3, iterations=1)
    aggregator, report = reports[-1]
    assert report.error is None, report.error
    weights = sum(w for _, w in inputs.values())
    expected = sum(w * np.clip(x, -1, 1) for x, w in inputs.values()) / weights
    error = float(np.max(np.abs(report.result.mean - expected)))
    assert error <= aggregator.quantization_error
    clients = [s for pid, s in report.stats.items() if pid != 0]
    update_bytes = statistics.mean(s.bytes_sent["CkksUpdate"] for s in clients)
    info = {
        "bytes_per_client": statistics.mean(s.total_bytes_sent for s in clients),
        "update_bytes_per_value": update_bytes / d,
        "expansion_vs_float32": update_bytes / (4 * d),
        "key_material_bytes_per_client": report.stats[0].bytes_sent["CkksClientKey"] / n,
        "server_cpu_s": report.stats[0].total_cpu_seconds,
        "client_cpu_s_mean": statistics.mean(s.total_cpu_seconds for s in clients),
        "max_error": error,
        "error_bound": aggregator.quantization_error,
    }
    benchmark.extra_info.update(info)
    if raw_cpu:
        _record_ratio(benchmark, fedsecure_cpu, raw_cpu)
