"""One aggregation interface, many protocols.

Training, the MPI runner, the Flower adapter and the benchmarks talk only to this module:

* an :class:`Aggregator` is configured once from an :class:`AggregationSpec` (n clients,
  vector length, weights, dropout tolerance) and makes the parties of one round:
  ``aggregator.client(client_id)`` and ``aggregator.server()``;
* parties are sans-I/O state machines (no sockets, threads, clocks or global RNG):
  ``start()``, ``receive(envelope)``, ``messages_to_send()``, ``next_event()``; the server adds
  ``ready_for_next_round``, ``proceed_to_next_round()`` and ``result()``;
* ``result()`` is an :class:`AggregateResult`: the weighted sum and total weight over the
  clients that survived, whichever protocol ran.

Plaintext, SecAgg, SecAgg+ and CKKS plug in behind it; DP wrappers (noise added in
``set_input`` / ``result``) and robust rules (a server with per-client access) wrap or replace
parties without the caller branching on which protocol runs.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fedsecure.config import require
from fedsecure.errors import (
    ConfigurationError,
    InvalidInput,
    LocalProtocolError,
    ProtocolAborted,
    RemoteProtocolError,
)
from fedsecure.rng import DEFAULT_RNG, RandomSource

# --------------------------------------------------------------------------- spec and result


@dataclass(frozen=True)
class AggregationSpec:
    """What every protocol is configured from.

    ``max_weight`` bounds the integer client weights (e.g. sample counts); ``clip`` bounds each
    coordinate's absolute value; ``min_clients`` is the fewest survivors with which a round may
    still finish (the Shamir threshold for masking protocols; default a strict majority).
    Secure protocols refuse a round of fewer than :data:`MIN_PRIVATE_COHORT` clients (each of
    two learns the other's input from the sum) unless ``allow_small_cohort`` is True; note
    that a round that may finish with only two survivors (``min_clients=2``) reveals the same
    way when a client drops.
    """

    n_clients: int
    vector_length: int
    max_weight: int = 1
    clip: float = 1.0
    min_clients: int | None = None
    session: bytes | None = None
    round: int = 0
    allow_small_cohort: bool = False

    def __post_init__(self):
        require(isinstance(self.n_clients, int) and self.n_clients >= 2, "n_clients",
                self.n_clients, "must be an integer >= 2")
        require(isinstance(self.vector_length, int) and self.vector_length >= 1,
                "vector_length", self.vector_length, "must be an integer >= 1")
        require(isinstance(self.max_weight, int) and self.max_weight >= 1, "max_weight",
                self.max_weight, "must be an integer >= 1")
        require(math.isfinite(self.clip) and self.clip > 0, "clip", self.clip,
                "must be a finite number > 0")
        if self.min_clients is None:
            object.__setattr__(self, "min_clients", self.n_clients // 2 + 1)
        require(isinstance(self.min_clients, int) and 1 <= self.min_clients <= self.n_clients,
                "min_clients", self.min_clients, f"must be in [1, n_clients={self.n_clients}]")
        require(self.session is None or len(self.session) == 16, "session", self.session,
                "must be 16 bytes (or None for a random one)")
        require(isinstance(self.round, int) and self.round >= 0, "round", self.round,
                "must be an integer >= 0")
        require(isinstance(self.allow_small_cohort, bool), "allow_small_cohort",
                self.allow_small_cohort, "must be True or False")

    @property
    def client_ids(self) -> range:
        return range(1, self.n_clients + 1)


MIN_PRIVATE_COHORT = 3
"""The fewest survivors whose sum hides each input from the others."""


def refuse_small_cohort(spec: AggregationSpec) -> None:
    """ConfigurationError for a secure round of fewer than 3 clients (unless allowed)."""
    require(spec.n_clients >= MIN_PRIVATE_COHORT or spec.allow_small_cohort, "n_clients",
            spec.n_clients, f"with {spec.n_clients} clients each learns the other's input from"
            " the sum, so secure aggregation protects nothing: use at least"
            f" {MIN_PRIVATE_COHORT} clients, or pass allow_small_cohort=True"
            " (CLI: --allow-small-cohort) if that is acceptable")


@dataclass(frozen=True)
class AggregateResult:
    """The outcome of one round: sum over survivors of weight * vector, and of the weights."""

    weighted_sum: np.ndarray
    total_weight: float
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]

    @property
    def mean(self) -> np.ndarray:
        """The weighted average of the survivors' vectors."""
        return self.weighted_sum / self.total_weight


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """Something a party reports to its driver (progress, dropouts, the end of the round)."""


@dataclass(frozen=True)
class PhaseStarted(Event):
    phase: str


@dataclass(frozen=True)
class ClientDropped(Event):
    """The server stopped counting on ``client`` (silent, late, or misbehaving)."""

    client: int
    phase: str
    reason: str
    error: Exception | None = field(default=None, compare=False)


@dataclass(frozen=True)
class PeerIgnored(Event):
    """A client ignores a peer whose data failed a check (e.g. a share that fails AEAD)."""

    peer: int
    reason: str
    error: Exception | None = field(default=None, compare=False)


@dataclass(frozen=True)
class MessageIgnored(Event):
    """A message that cannot concern this round (another session, round or recipient, a sender
    that has no say, a repeat): it is discarded and nobody is blamed, so a replay or an
    injected message cannot drop the party it names."""

    sender: int
    reason: str


@dataclass(frozen=True)
class LateMessage(Event):
    """A message for a phase that already closed; it is discarded."""

    sender: int
    message: str


@dataclass(frozen=True)
class RoundFinished(Event):
    survivors: tuple[int, ...]


@dataclass(frozen=True)
class RoundAborted(Event):
    reason: str
    error: Exception | None = field(default=None, compare=False)


# --------------------------------------------------------------------------- parties


class Party(ABC):
    """A sans-I/O protocol participant.  Subclasses declare a transition table per phase."""

    party_id: int
    phase: str

    def __init__(self) -> None:
        self._outbox: list = []
        self._events: deque[Event] = deque()

    @abstractmethod
    def start(self) -> None:
        """Begin the round (queue the first messages, if any)."""

    @abstractmethod
    def receive(self, envelope) -> None:
        """Feed one decoded envelope addressed to this party."""

    def messages_to_send(self) -> list:
        """Envelopes produced since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once this party will neither send nor accept anything more."""

    @abstractmethod
    def peer_failed(self, peer: int, error: RemoteProtocolError) -> None:
        """The driver saw ``peer`` misbehave below the protocol (undecodable or oversized bytes,
        spoofed sender): a server drops that client; a client aborts if ``peer`` is the server
        and ignores anyone else."""

    @property
    @abstractmethod
    def max_message_bytes(self) -> int:
        """The largest encoded envelope a correct peer can send this party in this round:
        drivers refuse anything larger *before* decoding it (``peer_failed``)."""


class ClientParty(Party):
    """A client: holds one private vector and a weight."""

    @abstractmethod
    def set_input(self, vector: np.ndarray, weight: int = 1) -> None:
        """Provide this round's vector (validated before anything is sent) and its weight."""


class ServerParty(Party):
    """The server / aggregator of one round."""

    party_id = 0

    @property
    @abstractmethod
    def ready_for_next_round(self) -> bool:
        """True when every party still expected in this phase has answered."""

    @property
    @abstractmethod
    def deadline_phase(self) -> str | None:
        """The phase whose collection a deadline applies to now (None: nothing to wait for)."""

    @abstractmethod
    def proceed_to_next_round(self) -> None:
        """Close the current phase: whoever has not answered is dropped."""

    def result(self) -> AggregateResult:
        """The round's result; raises ProtocolAborted if it aborted, LocalProtocolError if it
        has not finished.  Servers keep them in ``_result`` and ``_abort_error``."""
        if self.aborted is not None:
            raise self.aborted
        result = getattr(self, "_result", None)
        if result is None:
            raise LocalProtocolError(f"no result yet (phase {self.phase!r})")
        return result

    @property
    def aborted(self) -> ProtocolAborted | None:
        return getattr(self, "_abort_error", None)


# --------------------------------------------------------------------------- aggregators


class Aggregator(ABC):
    """Makes the parties of one aggregation round for one protocol."""

    name: ClassVar[str]

    def __init__(self, spec: AggregationSpec, *, rng: RandomSource = DEFAULT_RNG):
        self.spec = spec
        self.rng = rng
        self.session = spec.session if spec.session is not None else rng.bytes(16)

    @abstractmethod
    def client(self, client_id: int, *, rng: RandomSource | None = None) -> ClientParty: ...

    @abstractmethod
    def server(self, *, rng: RandomSource | None = None) -> ServerParty: ...

    def check_client_id(self, client_id: int) -> None:
        if client_id not in self.spec.client_ids:
            raise LocalProtocolError(
                f"client id {client_id} is outside 1..{self.spec.n_clients}"
            )

    @property
    def quantization_error(self) -> float:
        """Largest absolute error of one coordinate of the decoded mean (0 if exact)."""
        return 0.0

    @abstractmethod
    def max_message_bytes(self, *, to_server: bool) -> int:
        """Upper bound on one encoded envelope a correct party sends the server
        (``to_server``) or a client in this round, from the spec alone."""

    def envelope(self, sender: int, recipient: int, body):
        """Wrap ``body`` in this round's envelope."""
        from fedsecure.messages import Envelope

        return Envelope(session=self.session, round=self.spec.round, sender=sender,
                        recipient=recipient, body=body)


AggregatorFactory = Callable[..., Aggregator]
_REGISTRY: dict[str, AggregatorFactory] = {}


def register_protocol(name: str, factory: AggregatorFactory) -> None:
    _REGISTRY[name] = factory


def available_protocols() -> list[str]:
    return sorted(_REGISTRY)


def make_aggregator(protocol: str, spec: AggregationSpec, **options) -> Aggregator:
    """Build the aggregator named ``protocol`` (see :func:`available_protocols`).

    An unknown protocol, or ``options`` its factory does not accept, is a ConfigurationError.
    """
    import fedsecure.protocols  # noqa: F401  (registers the built-in protocols)

    try:
        factory = _REGISTRY[protocol]
    except KeyError:
        raise ConfigurationError(
            f"protocol={protocol!r}: unknown; choose one of {available_protocols()}"
        ) from None
    try:
        inspect.signature(factory).bind(spec, **options)
    except TypeError as exc:
        raise ConfigurationError(
            f"protocol_options={options!r}: not accepted by protocol {protocol!r} ({exc})"
        ) from None
    return factory(spec, **options)


def validate_vector(vector, length: int) -> np.ndarray:
    """Check a client's input before anything is sent: 1-D, real, finite, right length."""
    array = np.asarray(vector)
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise InvalidInput(f"input dtype {array.dtype} is not a real number type")
    if array.ndim != 1 or array.shape[0] != length:
        raise InvalidInput(f"input shape {array.shape}, expected ({length},)")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise InvalidInput(f"input has a non-finite value {array[bad]} at index {bad}")
    return array


def validate_weight(weight, max_weight: int) -> int:
    if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, (int, np.integer)):
        raise InvalidInput(f"weight={weight!r}: must be an integer in [1, {max_weight}]")
    if not 1 <= int(weight) <= max_weight:
        raise InvalidInput(f"weight={weight!r}: must be an integer in [1, {max_weight}]")
    return int(weight)
