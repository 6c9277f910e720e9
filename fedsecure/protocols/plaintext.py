"""Plaintext aggregation: the insecure baseline every secure protocol is measured against.

Theory of operation: each client sends weight * vector and its weight in the clear; the server
adds what arrives before the deadline.  The server sees every individual update — use it only
as a baseline (benchmarks, accuracy comparisons) or where updates are not sensitive.
"""

from __future__ import annotations

import numpy as np

from fedsecure.errors import (
    InsufficientParticipants,
    LocalProtocolError,
    MalformedMessage,
    RemoteProtocolError,
    UnexpectedMessage,
)
from fedsecure.messages import SERVER_ID, ArrayPayload, PlainUpdate
from fedsecure.protocols.base import (
    AggregateResult,
    Aggregator,
    ClientDropped,
    ClientParty,
    LateMessage,
    PhaseStarted,
    RoundAborted,
    RoundFinished,
    ServerParty,
    register_protocol,
    validate_vector,
    validate_weight,
)


class PlaintextClient(ClientParty):
    def __init__(self, aggregator: "PlaintextAggregator", client_id: int):
        super().__init__()
        self.agg = aggregator
        self.party_id = client_id
        self.phase = "idle"
        self._update: tuple[np.ndarray, int] | None = None

    def set_input(self, vector, weight: int = 1) -> None:
        if self._update is not None:
            raise LocalProtocolError("input already set for this round")
        spec = self.agg.spec
        array = validate_vector(vector, spec.vector_length)
        self._update = (np.clip(array, -spec.clip, spec.clip), validate_weight(weight, spec.max_weight))

    def start(self) -> None:
        if self._update is None:
            raise LocalProtocolError("set_input() must be called before start()")
        vector, weight = self._update
        body = PlainUpdate(weighted_update=ArrayPayload.pack(vector * weight), weight=float(weight))
        self._outbox.append(self.agg.envelope(self.party_id, SERVER_ID, body))
        self.phase = "done"

    def receive(self, envelope) -> None:
        self.phase = "aborted"
        self._emit(RoundAborted("the plaintext server sends nothing",
                                UnexpectedMessage(type(envelope.body).__name__, envelope.sender)))

    def peer_failed(self, peer: int, error: RemoteProtocolError) -> None:
        self.phase = "aborted"
        self._emit(RoundAborted(str(error), error))

    @property
    def done(self) -> bool:
        return self.phase in ("done", "aborted")


class PlaintextServer(ServerParty):
    def __init__(self, aggregator: "PlaintextAggregator"):
        super().__init__()
        self.agg = aggregator
        self.phase = "idle"
        self._sum = np.zeros(aggregator.spec.vector_length)
        self._weight = 0.0
        self._received: set[int] = set()
        self._dropped: set[int] = set()
        self._abort_error = None

    def start(self) -> None:
        self.phase = "collect_updates"
        self._emit(PhaseStarted(self.phase))

    def receive(self, envelope) -> None:
        sender = envelope.sender
        if self.phase != "collect_updates" or sender in self._dropped:
            self._emit(LateMessage(sender, type(envelope.body).__name__))
            return
        try:
            if not isinstance(envelope.body, PlainUpdate) or sender in self._received:
                raise UnexpectedMessage(type(envelope.body).__name__, sender)
            spec = self.agg.spec
            update = envelope.body.weighted_update.unpack(
                length=spec.vector_length, dtype="<f8", sender=sender)
            weight = envelope.body.weight
            if not (1 <= weight <= spec.max_weight) or not np.all(np.isfinite(update)):
                raise MalformedMessage("weight or values out of range", sender)
        except RemoteProtocolError as exc:
            self.peer_failed(sender, exc)
            return
        self._sum += update
        self._weight += weight
        self._received.add(sender)

    def peer_failed(self, peer: int, error: RemoteProtocolError) -> None:
        if peer in self.agg.spec.client_ids and peer not in self._dropped:
            self._dropped.add(peer)
            self._emit(ClientDropped(peer, self.phase, str(error), error))

    @property
    def ready_for_next_round(self) -> bool:
        expected = set(self.agg.spec.client_ids) - self._dropped
        return self.phase == "collect_updates" and expected <= self._received

    @property
    def deadline_phase(self) -> str | None:
        return "collect_updates" if self.phase == "collect_updates" else None

    def proceed_to_next_round(self) -> None:
        if self.phase != "collect_updates":
            raise LocalProtocolError(f"nothing to proceed from in phase {self.phase!r}")
        for client in set(self.agg.spec.client_ids) - self._received - self._dropped:
            self._dropped.add(client)
            self._emit(ClientDropped(client, self.phase, "no update before the deadline"))
        if len(self._received) < self.agg.spec.min_clients:
            self.phase = "aborted"
            self._abort_error = InsufficientParticipants(
                "plaintext round", remaining=len(self._received),
                threshold=self.agg.spec.min_clients)
            self._emit(RoundAborted(str(self._abort_error), self._abort_error))
            return
        self.phase = "done"
        self._emit(RoundFinished(tuple(sorted(self._received))))

    def result(self) -> AggregateResult:
        if self._abort_error is not None:
            raise self._abort_error
        if self.phase != "done":
            raise LocalProtocolError(f"no result yet (phase {self.phase!r})")
        return AggregateResult(self._sum.copy(), self._weight, tuple(sorted(self._received)),
                               tuple(sorted(self._dropped)))

    @property
    def done(self) -> bool:
        return self.phase in ("done", "aborted")


class PlaintextAggregator(Aggregator):
    name = "plaintext"

    def client(self, client_id: int, *, rng=None) -> PlaintextClient:
        self.check_client_id(client_id)
        return PlaintextClient(self, client_id)

    def server(self, *, rng=None) -> PlaintextServer:
        return PlaintextServer(self)


register_protocol("plaintext", PlaintextAggregator)
