"""Fault injection that works over any transport (memory or MPI).

A fault names a party and the wire message (by its tag, e.g. ``"MaskedInput"``) at which it
strikes, so the same schedule means the same thing in simulation and under ``mpirun``:

* ``Silent(party, before=tag)`` – the party stops sending from that message on (it still
  receives): a dropout at that phase.
* ``Crash(party, before=tag)`` – the party's process dies just before sending that message;
  in simulation its endpoint goes dead, under MPI the runner's ``on_crash`` really exits.
* ``Delay(party, message=tag, seconds=s)`` – that message leaves ``s`` seconds late (a
  straggler when ``s`` exceeds the phase deadline); ``message="*"`` delays every message.
* ``Corrupt(party, message=tag, offset=-1)`` – one byte of that message is flipped in transit.
* ``Inject(party, before=tag, recipients, data)`` – just before sending that message the party
  also sends the raw bytes ``data`` to each of ``recipients`` (a hostile party writing to
  peers it has no business writing to, or sending garbage).

``FaultyTransport`` wraps a real transport and applies the schedule of its own party.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from fedsecure.transport.base import Transport

ANY_MESSAGE = "*"


@dataclass(frozen=True)
class Fault:
    party: int


@dataclass(frozen=True)
class Silent(Fault):
    before: str


@dataclass(frozen=True)
class Crash(Fault):
    before: str


@dataclass(frozen=True)
class Delay(Fault):
    message: str
    seconds: float


@dataclass(frozen=True)
class Corrupt(Fault):
    message: str
    offset: int = -1


@dataclass(frozen=True)
class Inject(Fault):
    before: str
    recipients: tuple[int, ...]
    data: bytes


def parse_fault(kind: str, text: str) -> Fault:
    """``parse_fault("silent", "3:MaskedInput")`` -> Silent(3, "MaskedInput") (CLI syntax)."""
    from fedsecure.errors import ConfigurationError

    party, sep, tag = text.partition(":")
    if not sep or not party.isdigit() or not tag:
        raise ConfigurationError(f"--{kind}={text!r}: expected PARTY:MESSAGE, e.g. 3:MaskedInput")
    makers = {"silent": Silent, "crash": Crash}
    if kind not in makers:
        raise ConfigurationError(f"fault kind {kind!r}: expected one of {sorted(makers)}")
    return makers[kind](int(party), tag)


def message_tag(data: bytes) -> str | None:
    """The body tag of an encoded envelope, read without trusting or fully decoding it."""
    try:
        envelope = msgspec.msgpack.decode(data)
        return envelope[4][0]
    except Exception:  # noqa: BLE001 - any undecodable blob simply has no tag
        return None


class FaultyTransport(Transport):
    """Applies the faults of ``transport.party_id`` from ``faults`` to what it sends."""

    def __init__(
        self,
        transport: Transport,
        faults: Iterable[Fault],
        clock: Callable[[], float],
        on_crash: Callable[[], None] | None = None,
    ):
        self.inner = transport
        self.party_id = transport.party_id
        self.faults = [f for f in faults if f.party == transport.party_id]
        self.clock = clock
        self.on_crash = on_crash
        self._silent = False
        self._dead = False
        self._held: list[tuple[float, int, bytes]] = []

    def send(self, recipient: int, data: bytes) -> bool:
        if self._dead or self._silent:
            return False
        tag = message_tag(data) if self.faults else None
        delay = 0.0
        for fault in self.faults:
            if isinstance(fault, Crash) and fault.before == tag:
                self._dead = True
                if self.on_crash is not None:
                    self.on_crash()
                self.inner.close()
                return False
            if isinstance(fault, Silent) and fault.before == tag:
                self._silent = True
                return False
            if isinstance(fault, Delay) and fault.message in (tag, ANY_MESSAGE):
                delay = max(delay, fault.seconds)
            if isinstance(fault, Inject) and fault.before == tag:
                for target in fault.recipients:
                    self.inner.send(target, fault.data)
            if isinstance(fault, Corrupt) and fault.message == tag and data:
                corrupted = bytearray(data)
                corrupted[fault.offset] ^= 0x01
                data = bytes(corrupted)
        if delay > 0:
            self._held.append((self.clock() + delay, recipient, data))
            return True
        return self.inner.send(recipient, data)

    def _release_due(self) -> None:
        now = self.clock()
        due = [h for h in self._held if h[0] <= now]
        self._held = [h for h in self._held if h[0] > now]
        for _, recipient, data in due:
            self.inner.send(recipient, data)

    def poll(self) -> list[tuple[int, bytes]]:
        if self._dead:
            return []
        self._release_due()
        return self.inner.poll()

    def wait(self, timeout_s: float) -> None:
        self.inner.wait(timeout_s)

    def close(self) -> None:
        self.inner.close()

    @property
    def alive(self) -> bool:
        return not self._dead and self.inner.alive

    def has_pending(self) -> bool:
        return bool(self._held) or self.inner.has_pending()

    def next_wakeup(self) -> float | None:
        times = [h[0] for h in self._held]
        inner = self.inner.next_wakeup()
        if inner is not None:
            times.append(inner)
        return min(times) if times else None
