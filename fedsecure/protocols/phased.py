"""The skeleton every round-based protocol shares: phases, transition tables, dropouts.

A :class:`PhasedServer` runs a sequence of *collection phases*.  Each phase is declared once,
in the subclass's ``PHASES`` table: the one message type it accepts, the method that checks
one such message (its return value is kept as that client's answer) and the method that
closes the phase when the driver calls ``proceed_to_next_round`` (deadline passed or everyone
answered).  Everything else is here, written once:

* parties check every envelope themselves, whatever drives them: one of another session or
  round, addressed to someone else, from a sender that has no say (a client writing to a
  client), or a client's second message in a phase is a ``MessageIgnored`` event — discarded,
  nobody blamed, so a replay or an injected message cannot drop the party it names;
* a message from a dropped client, or after the round ended, is a ``LateMessage`` event;
* a message from a client not expected in this phase or of the wrong type is
  ``UnexpectedMessage``; a check that raises ``RemoteProtocolError`` — both drop that client
  (an event, plus ``Abort`` sent to it), never the round.  A client that has answered in the
  current phase is not dropped in it any more (its answer may already be summed);
* closing a phase drops whoever has not answered; a closer that raises ``ProtocolAborted``
  (e.g. ``InsufficientParticipants``) aborts the round and tells the remaining clients.

A :class:`PhasedClient` declares, per phase, which server message it waits for and its
handler; any other server message, or a handler that raises ``RemoteProtocolError`` /
``InsufficientParticipants``, aborts the client (an event, never an exception).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from fedsecure.errors import (
    InsufficientParticipants,
    LocalProtocolError,
    ProtocolAborted,
    RemoteProtocolError,
    UnexpectedMessage,
)
from fedsecure.messages import SERVER_ID, Abort
from fedsecure.protocols import state
from fedsecure.protocols.base import (
    AggregateResult,
    ClientDropped,
    ClientParty,
    LateMessage,
    MessageIgnored,
    PhaseStarted,
    RoundAborted,
    RoundFinished,
    ServerParty,
    validate_vector,
    validate_weight,
)

FINAL_PHASES = ("done", "aborted")


def foreign_envelope(party, envelope) -> str | None:
    """Why ``envelope`` cannot belong to ``party``'s round (None if it may)."""
    agg = party.agg
    if envelope.session != agg.session:
        return "envelope of another session"
    if envelope.round != agg.spec.round:
        return f"envelope of round {envelope.round}, this is round {agg.spec.round}"
    if envelope.recipient != party.party_id:
        return f"envelope addressed to {envelope.recipient}"
    return None


class PhasedServer(ServerParty):
    """``PHASES = {phase: (message type, check method name, close method name)}``, in order;
    the first phase starts with ``start()``."""

    PHASES: ClassVar[dict[str, tuple[type, str, str]]]

    def __init__(self, aggregator):
        super().__init__()
        self.agg = aggregator
        self.phase = "idle"
        self._abort_error: ProtocolAborted | None = None
        self._result: AggregateResult | None = None
        self._expected: set[int] = set(aggregator.spec.client_ids)
        self._answered: dict[int, object] = {}
        self._dropped: set[int] = set()

    # ------------------------------------------------------------------ driver API
    def start(self) -> None:
        if self.phase != "idle":
            raise LocalProtocolError("start() called twice")
        self._enter(next(iter(self.PHASES)))

    def receive(self, envelope) -> None:
        sender, body = envelope.sender, envelope.body
        problem = foreign_envelope(self, envelope)
        if problem is None and sender not in self.agg.spec.client_ids:
            problem = f"sender {sender} is not a client of this round"
        if problem is None and sender in self._answered:
            problem = f"second message ({type(body).__name__}) in phase {self.phase!r}"
        if problem is not None:
            self._emit(MessageIgnored(sender, problem))
            return
        if self._is_late(sender):
            self._emit(LateMessage(sender, type(body).__name__))
            return
        try:
            declared = self.PHASES.get(self.phase)
            if declared is None or sender not in self._expected \
                    or not isinstance(body, declared[0]):
                raise UnexpectedMessage(f"{type(body).__name__} in phase {self.phase!r}", sender)
            self._authenticate(envelope)
            self._answered[sender] = getattr(self, declared[1])(sender, body)
        except RemoteProtocolError as exc:
            self._drop(sender, str(exc), exc)

    def peer_failed(self, peer: int, error: RemoteProtocolError) -> None:
        if peer not in self.agg.spec.client_ids or peer in self._answered:
            self._emit(MessageIgnored(peer, str(error)))
        elif self._is_late(peer):
            self._emit(LateMessage(peer, type(error).__name__))
        else:
            self._drop(peer, str(error), error)

    @property
    def max_message_bytes(self) -> int:
        return self.agg.max_message_bytes(to_server=True)

    @property
    def ready_for_next_round(self) -> bool:
        return self.phase in self.PHASES and self._expected <= self._answered.keys()

    @property
    def deadline_phase(self) -> str | None:
        return self.phase if self.phase in self.PHASES else None

    def proceed_to_next_round(self) -> None:
        if self.phase not in self.PHASES:
            raise LocalProtocolError(f"nothing to proceed from in phase {self.phase!r}")
        for client in sorted(self._expected - self._answered.keys()):
            self._drop(client, "no answer before the deadline")
            if self.done:
                return
        answered, self._answered = self._answered, {}
        try:
            getattr(self, self.PHASES[self.phase][2])(answered)
        except ProtocolAborted as exc:
            self._abort(exc)

    @property
    def done(self) -> bool:
        return self.phase in FINAL_PHASES

    # ------------------------------------------------------------------ for subclasses
    def _is_late(self, sender: int) -> bool:
        """True if nothing ``sender`` says can matter any more (it is discarded as late)."""
        return sender in self._dropped or self.done

    def _authenticate(self, envelope) -> None:
        """Raise IntegrityError if the envelope is not authentic (default: nothing to check)."""

    def _require(self, count: int, what: str, threshold: int) -> None:
        if count < threshold:
            raise InsufficientParticipants(f"too few clients {what}", remaining=count,
                                           threshold=threshold)

    def _next_phase(self, phase: str, expected) -> None:
        self._expected = set(expected) - self._dropped
        self._enter(phase)

    def _finish(self, result: AggregateResult) -> None:
        self._result = result
        self.phase = "done"
        self._emit(RoundFinished(result.survivors))

    def _enter(self, phase: str) -> None:
        self.phase = phase
        self._emit(PhaseStarted(phase))

    def _send(self, client: int, body) -> None:
        self._outbox.append(self.agg.envelope(SERVER_ID, client, body))

    def _drop(self, client: int, reason: str, error: Exception | None = None) -> None:
        self._dropped.add(client)
        self._expected.discard(client)
        self._answered.pop(client, None)
        self._emit(ClientDropped(client, self.phase, reason, error))
        self._send(client, Abort(reason[:1000]))

    def _abort(self, error: ProtocolAborted) -> None:
        self._abort_error = error
        for client in sorted(set(self.agg.spec.client_ids) - self._dropped):
            self._send(client, Abort(str(error)[:1000]))
        self.phase = "aborted"
        self._emit(RoundAborted(str(error), error))


class PhasedClient(ClientParty):
    """``HANDLERS = {phase: {message type: handler method name}}``: what the client waits for."""

    HANDLERS: ClassVar[dict[str, dict[type, str]]]
    STATE: ClassVar[dict[str, object]] = {"phase": str, "_input": tuple[np.ndarray, int] | None}
    """What ``snapshot()`` keeps: attribute -> type (see ``protocols/state.py``)."""
    REBUILT: ClassVar[frozenset[str]] = frozenset(
        {"agg", "party_id", "rng", "context", "HANDLERS", "_outbox", "_events", "_input_source"})
    """Attributes a fresh party of the same aggregator already has right (not snapshotted)."""

    def __init__(self, aggregator, client_id: int):
        super().__init__()
        self.agg = aggregator
        self.party_id = client_id
        self.phase = "idle"
        self._input: tuple[np.ndarray, int] | None = None
        self._input_source: Callable[[], tuple[np.ndarray, int]] | None = None

    def set_input(self, vector, weight: int = 1) -> None:
        """Validate (InvalidInput before anything is sent) and clip this round's input."""
        self._check_input_unset("set_input")
        self._input = self._clipped(vector, weight)

    def set_input_source(self, source: Callable[[], tuple[np.ndarray, int]]) -> None:
        """Make this round's input only when the protocol first reads it: ``source()`` returns
        ``(vector, weight)``, is called at most once, and is validated then -- so a bad input
        is refused (InvalidInput from that step) after the round has started, not before.
        For simulations of many clients that should not all hold their vectors at once
        (``simulate_round(..., lean=True)``); ``snapshot()`` makes the input first."""
        self._check_input_unset("set_input_source")
        if not callable(source):
            raise LocalProtocolError(f"source={source!r}: must be callable")
        self._input_source = source

    def _check_input_unset(self, method: str) -> None:
        if self._input is not None or self._input_source is not None:
            raise LocalProtocolError("input already set for this round")
        if self.phase != "idle":
            raise LocalProtocolError(f"{method}() after start (phase {self.phase!r})")

    def _clipped(self, vector, weight) -> tuple[np.ndarray, int]:
        spec = self.agg.spec
        array = validate_vector(vector, spec.vector_length)
        return np.clip(array, -spec.clip, spec.clip), validate_weight(weight, spec.max_weight)

    def _take_input(self) -> tuple[np.ndarray, int]:
        """This round's clipped (vector, weight), for its one use: made from the source if it
        was deferred, and no longer held by the client afterwards."""
        self._make_input()
        taken, self._input = self._input, None
        if taken is None:
            raise LocalProtocolError("this client's input was already used (or never set)")
        return taken

    def _make_input(self) -> None:
        if self._input is None and self._input_source is not None:
            source, self._input_source = self._input_source, None
            self._input = self._clipped(*source())

    def start(self) -> None:
        if self._input is None and self._input_source is None:
            raise LocalProtocolError("set_input() must be called before start()")
        if self.phase != "idle":
            raise LocalProtocolError(f"start() called twice (phase {self.phase!r})")
        self._begin()

    @abstractmethod
    def _begin(self) -> None:
        """Send the first message of the round (input is set, phase is idle)."""

    def receive(self, envelope) -> None:
        if self.done:
            return
        body = envelope.body
        problem = foreign_envelope(self, envelope)
        if problem is None and envelope.sender != SERVER_ID:
            problem = f"clients accept messages from the server only, not from {envelope.sender}"
        if problem is not None:
            self._emit(MessageIgnored(envelope.sender, problem))
            return
        if isinstance(body, Abort):
            self._abort(f"server aborted the round: {body.reason}")
            return
        try:
            handler = self.HANDLERS.get(self.phase, {}).get(type(body))
            if handler is None:
                raise UnexpectedMessage(
                    f"{type(body).__name__} in phase {self.phase!r}", envelope.sender)
            getattr(self, handler)(body)
        except (RemoteProtocolError, InsufficientParticipants) as exc:
            self._abort(str(exc), exc)

    def peer_failed(self, peer: int, error: RemoteProtocolError) -> None:
        if self.done:
            return
        if peer != SERVER_ID:
            self._emit(MessageIgnored(peer, str(error)))
        else:
            self._abort(str(error), error)

    @property
    def max_message_bytes(self) -> int:
        return self.agg.max_message_bytes(to_server=False)

    def snapshot(self) -> bytes:
        """This party's round state as bytes, secrets included (``protocols/state.py``)."""
        self._make_input()  # a snapshot carries the input itself, not a way to make it
        return state.snapshot(self)

    def restore(self, data: bytes) -> None:
        """Continue from ``snapshot()`` of this party (same aggregator and id), made fresh."""
        state.restore(self, data)

    @property
    def done(self) -> bool:
        return self.phase in FINAL_PHASES

    def _send(self, body) -> None:
        self._outbox.append(self.agg.envelope(self.party_id, SERVER_ID, body))

    def _enter(self, phase: str) -> None:
        self.phase = phase
        self._emit(PhaseStarted(phase))

    def _finish(self, survivors) -> None:
        self.phase = "done"
        self._forget_secrets()
        self._emit(RoundFinished(tuple(sorted(survivors))))

    def _abort(self, reason: str, error: Exception | None = None) -> None:
        self.phase = "aborted"
        self._forget_secrets()
        self._emit(RoundAborted(reason, error))

    def _forget_secrets(self) -> None:
        """Drop key material once the round is over (subclasses override)."""
