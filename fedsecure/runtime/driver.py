"""Drivers run one sans-I/O party over one transport.  The only code that reads a clock.

``PartyDriver.step()`` never blocks: it flushes the party's outbox, decodes what arrived and
feeds it to the party, and — for the server — closes the current phase when everyone
expected has answered or the phase's deadline has passed.  ``run_party`` is the blocking
loop used by real transports (MPI); the in-process simulation steps every driver in turn on
a virtual clock.  Either way the protocol code is the same.

Checks done here, below the protocol, because only the driver sees bytes and the transport's
source: a message larger than the party's ``max_message_bytes`` (refused before it is
decoded), undecodable bytes, or a sender field that differs from the transport-level source
are reported to the party with ``peer_failed`` (the server drops that client; a client ignores
it unless it came from the server).  Session, round, recipient and who may write to whom are
checked by the parties themselves, so any front end gets those checks.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fedsecure.errors import MalformedMessage
from fedsecure.messages import CODEC
from fedsecure.protocols.base import Event, Party, ServerParty
from fedsecure.transport.base import Transport


@dataclass(frozen=True)
class Deadlines:
    """Seconds the server waits in each collection phase; ``client_idle_s`` bounds how long a
    client waits for the server before it gives up."""

    default_s: float = 30.0
    per_phase_s: Mapping[str, float] = field(default_factory=dict)
    client_idle_s: float = 300.0

    def for_phase(self, phase: str) -> float:
        return self.per_phase_s.get(phase, self.default_s)


@dataclass
class PartyStats:
    """What one party spent: bytes by message tag; wall and CPU seconds of its own work
    (protocol calls, encoding) by phase — waiting for others is not counted."""

    bytes_sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_received: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds_by_phase: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cpu_seconds_by_phase: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    input_cpu_seconds: float = 0.0
    """CPU seconds spent making the party's input on demand inside its steps
    (:meth:`PartyDriver.untimed`): the caller's work, not counted in the phases."""

    @property
    def total_bytes_sent(self) -> int:
        return sum(self.bytes_sent.values())

    @property
    def total_bytes_received(self) -> int:
        return sum(self.bytes_received.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds_by_phase.values())

    @property
    def total_cpu_seconds(self) -> float:
        return sum(self.cpu_seconds_by_phase.values())


class PartyDriver:
    def __init__(
        self,
        party: Party,
        transport: Transport,
        *,
        deadlines: Deadlines | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[int, Event], None] | None = None,
        codec=CODEC,
        started: bool = False,
    ):
        self.party = party
        self.transport = transport
        self.deadlines = deadlines or Deadlines()
        self.clock = clock
        self.on_event = on_event
        self.codec = codec
        self.stats = PartyStats()
        self._untimed_s = self._untimed_cpu_s = 0.0  # time of untimed() calls so far
        self.is_server = isinstance(party, ServerParty)
        self.gave_up = False
        self._started = started  # True for a party restored from a snapshot
        self._deadline_phase: str | None = None
        self._deadline_at: float | None = None
        self._last_activity = clock()

    # ------------------------------------------------------------------ public
    @property
    def done(self) -> bool:
        if not self.transport.alive or self.gave_up:
            return True
        return self.party.done and not self.transport.has_pending()

    def step(self) -> bool:
        """Do all work possible now; True if anything happened."""
        if not self.transport.alive:
            return False
        progress = False
        if not self._started:
            self._started = True
            self._timed(self.party.start)
            progress = True
        for source, data in self.transport.poll():
            progress = True
            self._deliver(source, data)
        if self.is_server:
            progress |= self._maybe_proceed()
        progress |= self._flush()
        self._drain_events()
        if progress:
            self._last_activity = self.clock()
        elif not self.is_server and not self.party.done:
            if self.clock() - self._last_activity > self.deadlines.client_idle_s:
                self.gave_up = True
        return progress

    def next_wakeup(self) -> float | None:
        """The next clock time at which stepping may do something without new input."""
        times = []
        if self.is_server:
            self._track_deadline()
            if self._deadline_at is not None:
                times.append(self._deadline_at)
        elif not self.party.done:
            times.append(self._last_activity + self.deadlines.client_idle_s)
        transport_time = self.transport.next_wakeup()
        if transport_time is not None:
            times.append(transport_time)
        return min(times) if times else None

    # ------------------------------------------------------------------ internals
    def untimed(self, fn):
        """``fn()``, called from inside one of this party's steps (e.g. an input source made
        on demand), its time left out of the step's phase: its CPU goes to
        ``stats.input_cpu_seconds`` instead."""
        began, cpu_began = time.perf_counter(), time.thread_time()
        try:
            return fn()
        finally:
            cpu = time.thread_time() - cpu_began
            self._untimed_s += time.perf_counter() - began
            self._untimed_cpu_s += cpu
            self.stats.input_cpu_seconds += cpu

    def _timed(self, fn, *args):
        phase = self.party.phase
        untimed_s, untimed_cpu_s = self._untimed_s, self._untimed_cpu_s
        began, cpu_began = time.perf_counter(), time.thread_time()
        try:
            return fn(*args)
        finally:
            self.stats.seconds_by_phase[phase] += (
                time.perf_counter() - began - (self._untimed_s - untimed_s))
            self.stats.cpu_seconds_by_phase[phase] += (
                time.thread_time() - cpu_began - (self._untimed_cpu_s - untimed_cpu_s))

    def _deliver(self, source: int, data: bytes) -> None:
        limit = self.party.max_message_bytes
        if len(data) > limit:
            self.stats.bytes_received["<oversized>"] += len(data)
            self._timed(self.party.peer_failed, source, MalformedMessage(
                f"message of {len(data)} bytes exceeds this round's cap of {limit}", source))
            return
        try:
            envelope = self.codec.decode(data)
        except MalformedMessage as exc:
            self.stats.bytes_received["<malformed>"] += len(data)
            self._timed(self.party.peer_failed, source, MalformedMessage(str(exc), source))
            return
        self.stats.bytes_received[type(envelope.body).__name__] += len(data)
        if envelope.sender != source:
            self._timed(self.party.peer_failed, source, MalformedMessage(
                f"envelope claims sender {envelope.sender} but came from {source}", source))
            return
        self._timed(self.party.receive, envelope)

    def _track_deadline(self) -> None:
        phase = self.party.deadline_phase
        if phase != self._deadline_phase:
            self._deadline_phase = phase
            self._deadline_at = (
                None if phase is None else self.clock() + self.deadlines.for_phase(phase)
            )

    def _maybe_proceed(self) -> bool:
        self._track_deadline()
        if self._deadline_phase is None:
            return False
        if self.party.ready_for_next_round or self.clock() >= self._deadline_at:
            self._timed(self.party.proceed_to_next_round)
            self._track_deadline()
            return True
        return False

    def _flush(self) -> bool:
        envelopes = self._timed(self.party.messages_to_send)
        for envelope in envelopes:
            data = self._timed(self.codec.encode, envelope)
            if self.transport.send(envelope.recipient, data):
                self.stats.bytes_sent[type(envelope.body).__name__] += len(data)
        return bool(envelopes)

    def _drain_events(self) -> None:
        while (event := self.party.next_event()) is not None:
            if self.on_event is not None:
                self.on_event(self.party.party_id, event)


def run_party(driver: PartyDriver, *, poll_interval_s: float = 0.002) -> PartyDriver:
    """Blocking loop for real transports: step until done, sleeping in ``transport.wait``."""
    while not driver.done:
        if not driver.step():
            wake = driver.next_wakeup()
            timeout = poll_interval_s if wake is None else max(0.0, min(wake - driver.clock(), 0.05))
            driver.transport.wait(max(timeout, poll_interval_s))
    return driver
