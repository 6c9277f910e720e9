"""Helpers for CKKS tests: small parameters, random inputs, a phase-by-phase harness."""

from __future__ import annotations

import numpy as np

from fedsecure.hazmat.ckks import CkksParameters
from fedsecure.messages import decode, encode
from fedsecure.protocols.base import AggregationSpec, make_aggregator
from fedsecure.rng import DeterministicRandom

# N=4096 keeps tests fast: 2048 slots, 128-bit secure, 2^17 headroom, error bound ~7e-5.
TEST_PARAMS = CkksParameters(4096, (50, 50), 30)
SESSION = bytes(range(16, 32))
TENSEAL_REASON = "TenSEAL is not installed (pip install 'fedsecure[he]')"


def make_ckks(n: int = 4, d: int = 50, *, seed: int = 0, max_weight: int = 5, clip: float = 1.0,
              min_clients: int | None = None, **options):
    spec = AggregationSpec(n_clients=n, vector_length=d, max_weight=max_weight, clip=clip,
                           min_clients=min_clients, session=SESSION)
    options.setdefault("parameters", TEST_PARAMS)
    return make_aggregator("ckks", spec, rng=DeterministicRandom(seed), **options)


def random_inputs(spec, seed: int, spread: float = 1.5) -> dict[int, tuple[np.ndarray, int]]:
    """Uniform vectors in [-spread*clip, spread*clip] (some get clipped), random weights."""
    data = np.random.default_rng(seed)
    return {c: (data.uniform(-spread * spec.clip, spread * spec.clip, spec.vector_length),
                int(data.integers(1, spec.max_weight + 1))) for c in spec.client_ids}


def plain_mean(spec, inputs, survivors) -> tuple[np.ndarray, int]:
    """The weighted mean of the clipped inputs of ``survivors``, and their total weight."""
    total = sum(inputs[c][1] * np.clip(inputs[c][0], -spec.clip, spec.clip) for c in survivors)
    weight = sum(inputs[c][1] for c in survivors)
    return total / weight, weight


def events_of(party, kind=None) -> list:
    out = []
    while (event := party.next_event()) is not None:
        if kind is None or isinstance(event, kind):
            out.append(event)
    return out


class Harness:
    """Drive the parties by hand, phase by phase, every message round-tripped through the
    codec, so that tests can inspect, drop or tamper with messages between phases."""

    def __init__(self, aggregator, inputs):
        self.aggregator = aggregator
        self.server = aggregator.server()
        self.clients = {}
        for client_id, (vector, weight) in inputs.items():
            client = aggregator.client(client_id)
            client.set_input(vector, weight)
            self.clients[client_id] = client
        self.server.start()
        self.to_server: list = []
        for client in self.clients.values():
            client.start()
        self.collect()

    def collect(self) -> list:
        for client in self.clients.values():
            self.to_server.extend(decode(encode(e)) for e in client.messages_to_send())
        return self.to_server

    def deliver_to_server(self) -> None:
        pending, self.to_server = self.to_server, []
        for envelope in pending:
            self.server.receive(envelope)

    def close_phase(self) -> dict[int, list]:
        """The server closes its phase; returns its messages by recipient (undelivered)."""
        self.server.proceed_to_next_round()
        out: dict[int, list] = {}
        for envelope in self.server.messages_to_send():
            out.setdefault(envelope.recipient, []).append(decode(encode(envelope)))
        return out

    def deliver_to_clients(self, messages: dict[int, list]) -> None:
        for recipient, envelopes in messages.items():
            if recipient in self.clients:
                for envelope in envelopes:
                    self.clients[recipient].receive(envelope)
        self.collect()

    def run_phase(self) -> dict[int, list]:
        self.deliver_to_server()
        out = self.close_phase()
        self.deliver_to_clients(out)
        return out

    def run_until_server_phase(self, phase: str) -> None:
        while self.server.phase != phase:
            self.run_phase()

    def run_to_end(self):
        while not self.server.done:
            self.run_phase()
        return self.server
