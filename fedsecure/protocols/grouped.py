"""Robust aggregation under secure aggregation: a robust rule across securely summed groups.

``make_aggregator("grouped", spec, inner="secagg", groups=G, rule="median", f=None,
max_norm=None, inner_options=None, rule_options=None)``.

Theory of operation: the bucketing of Karimireddy, He & Jaggi ("Byzantine-robust learning on
heterogeneous datasets via bucketing", ICLR'22, §3: average random buckets of s updates, then
apply a robust rule to the bucket means), with each bucket's average computed by secure
aggregation, so that the server sees only bucket sums:

1. **Groups.**  The n clients are split into G groups of n/G (sizes differ by at most one) by a
   permutation drawn from a public PRG keyed with SHA-256(session, round): every party computes
   the same groups from the round's public data, and a fresh session gives fresh groups.  The
   session itself comes from the aggregator's injected RandomSource.  The groups are only as
   random as the session: a server that picks sessions may grind them to place clients
   together; where that matters, derive the session from randomness the clients contribute.
2. **Secure sums.**  Each group runs one unmodified instance of the ``inner`` protocol
   (SecAgg by default) among its members, under its own session derived from the round's
   (SHA-256(session, group)) and with local ids 1..|group|.  This party only renames envelopes
   (outer client id <-> group-local id, outer session <-> group session): no protocol logic is
   repeated, and dropouts, thresholds and checks are the inner protocol's, per group.  All
   groups advance in lock step (a phase closes when every group is ready or at the deadline).
3. **Norm bound in the masked domain** (``max_norm`` = B, optional).  Every honest client
   scales its vector to L2 norm <= B before it is masked; the server cannot see one update, so
   it checks what the sum allows: a group whose decoded weighted sum exceeds B * (its total
   weight) (+ the quantization slack) contains a client that broke the bound, and the whole
   group is rejected.  What it cannot check: a client that exceeds B while its group's sum
   stays within the bound (one cheater may use its honest peers' slack: up to about
   B * W_group - ||honest sum||), or which member cheated.  Enforcing the bound per client
   needs a zero-knowledge proof of each masked input's norm (RoFL, S&P'23; ACORN, USENIX
   Security'23; EIFFeL, CCS'22), which this protocol does not have.
4. **Robust rule across groups.**  The group means (weighted sum / weight of each group that
   finished and passed the check) are the inputs of ``rule`` (:mod:`fedsecure.robust`), as if
   each group were one client; ``f`` defaults to the most the rule withstands with G inputs.
   The result is a ``RobustResult`` (see
   :mod:`fedsecure.protocols.robust`) whose verdicts are per group.

**Privacy cost.**  The server learns each group's sum, a sum of about n/G updates, instead of
the sum of all n: smaller groups mean more robustness and less privacy (a server colluding
with all but one member of a group learns that member's update; with the inner SecAgg
threshold a group never reveals a sum of fewer than |group|/2 + 1 clients).  ``groups=1`` is
plain secure aggregation (only ``rule="mean"``, optionally with ``max_norm``).

**Tolerated corrupt fraction.**  One malicious client spoils its group's sum, so the rule
sees up to min(m, G) bad inputs for m malicious clients.  The rule withstands f bad groups
(median, trimmed mean, geometric median: f < G/2; Krum: G > 2f + 2; Bulyan: G >= 4f + 3), so
in the worst case (adversarial placement) at most f malicious clients are tolerated, a
fraction f/n < 1/(2s) for groups of size s = n/G.  With the random placement above, each group
is clean with probability (1 - p)^s for a malicious fraction p, so a breakdown-1/2 rule holds
in expectation while (1 - p)^s > 1/2, i.e. p < 1 - 2^(-1/s) (29 % for s = 2, 13 % for s = 5,
7 % for s = 10).  Rules that need individual updates are refused with ``groups=1`` (a single
masked sum) with a ConfigurationError naming the alternatives.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import msgspec
import numpy as np

from fedsecure.config import require
from fedsecure.errors import (
    ConfigurationError,
    InsufficientParticipants,
    LocalProtocolError,
    MalformedMessage,
    ProtocolAborted,
)
from fedsecure.hazmat import expand
from fedsecure.messages import SERVER_ID
from fedsecure.protocols.base import (
    AggregationSpec,
    Aggregator,
    ClientDropped,
    ClientParty,
    Event,
    LateMessage,
    MessageIgnored,
    PeerIgnored,
    PhaseStarted,
    RoundAborted,
    RoundFinished,
    ServerParty,
    make_aggregator,
    register_protocol,
    validate_vector,
)
from fedsecure.protocols.robust import InputVerdict, make_robust_rule, robust_combine
from fedsecure.rng import DEFAULT_RNG, RandomSource

NOT_INNER = ("grouped", "robust")


@dataclass(frozen=True)
class GroupRejected(Event):
    """Group ``group`` (client ids ``members``) contributes nothing this round."""

    group: int
    members: tuple[int, ...]
    reason: str


def assign_groups(session: bytes, round_index: int, client_ids, groups: int
                  ) -> tuple[tuple[int, ...], ...]:
    """The public, pseudorandom split of ``client_ids`` into ``groups`` groups (see step 1)."""
    ids = np.array(sorted(client_ids))
    seed = hashlib.sha256(b"fedsecure/grouped/assignment/v1" + session
                          + round_index.to_bytes(8, "little")).digest()
    keys = expand(seed, b"group-assignment", len(ids), "<u8")
    order = ids[np.lexsort((ids, keys))]
    return tuple(tuple(sorted(int(c) for c in part)) for part in np.array_split(order, groups))


def group_session(session: bytes, group: int) -> bytes:
    return hashlib.sha256(b"fedsecure/grouped/session/v1" + session
                          + group.to_bytes(4, "little")).digest()[:16]


def scale_to_norm(vector: np.ndarray, max_norm: float) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector if norm <= max_norm else vector * (max_norm / norm)


class GroupedAggregator(Aggregator):
    """Secure sums of random groups, a robust rule across them; see the module docstring."""

    name = "grouped"

    def __init__(self, spec: AggregationSpec, *, inner: str = "secagg", groups: int = 2,
                 rule: str = "median", f: int | None = None, max_norm: float | None = None,
                 inner_options: dict | None = None, rule_options: dict | None = None,
                 rng: RandomSource = DEFAULT_RNG):
        super().__init__(spec, rng=rng)
        n = spec.n_clients
        require(inner not in NOT_INNER, "inner", inner,
                "must be a protocol that sums (plaintext, secagg, ...), not a robust one")
        require(isinstance(groups, int) and 1 <= groups <= n // 2, "groups", groups,
                f"must be an integer in [1, n_clients/2] = [1, {n // 2}] (every group needs"
                " >= 2 clients: a group of one reveals its update)")
        require(max_norm is None or (isinstance(max_norm, (int, float)) and math.isfinite(max_norm)
                                     and max_norm > 0), "max_norm", max_norm,
                "must be a number > 0 (per-client L2 bound) or None")
        self.groups = groups
        self.max_norm = None if max_norm is None else float(max_norm)
        self.rule = make_robust_rule(groups, rule, f, rule_options)
        if groups == 1 and self.rule.per_update:
            raise ConfigurationError(
                f"rule={rule!r} with groups=1: the rule needs individual updates, and one masked"
                " sum reveals none. Use groups >= "
                f"{make_robust_rule(10**6, rule, 1, rule_options).min_inputs()} (robust across"
                " secure groups), or rule='mean' with max_norm=B (norm bound checked on the"
                " masked sum), or protocol 'robust' (plaintext: the server sees each update)")
        self.members = assign_groups(self.session, spec.round, spec.client_ids, groups)
        self.location = {c: (g, local) for g, members in enumerate(self.members)
                         for local, c in enumerate(members, start=1)}
        self.inner = [make_aggregator(inner, AggregationSpec(
            n_clients=len(members), vector_length=spec.vector_length,
            max_weight=spec.max_weight, clip=spec.clip,
            session=group_session(self.session, g), round=spec.round,
            allow_small_cohort=spec.allow_small_cohort),
            **dict(inner_options or {}), rng=rng) for g, members in enumerate(self.members)]

    def client(self, client_id: int, *, rng: RandomSource | None = None) -> GroupedClient:
        self.check_client_id(client_id)
        return GroupedClient(self, client_id, rng or self.rng)

    def server(self, *, rng: RandomSource | None = None) -> GroupedServer:
        return GroupedServer(self)

    @property
    def quantization_error(self) -> float:
        return max(a.quantization_error for a in self.inner)

    def max_message_bytes(self, *, to_server: bool) -> int:
        return max(a.max_message_bytes(to_server=to_server) for a in self.inner)

    # ------------------------------------------------------------------ renaming envelopes
    def outer_id(self, group: int, local: int) -> int:
        return SERVER_ID if local == SERVER_ID else self.members[group][local - 1]

    def local_id(self, client: int) -> int:
        return SERVER_ID if client == SERVER_ID else self.location[client][1]

    def to_inner(self, group: int, envelope):
        return msgspec.structs.replace(envelope, session=self.inner[group].session,
                                       sender=self.local_id(envelope.sender),
                                       recipient=self.local_id(envelope.recipient))

    def to_outer(self, group: int, envelope):
        return msgspec.structs.replace(envelope, session=self.session,
                                       sender=self.outer_id(group, envelope.sender),
                                       recipient=self.outer_id(group, envelope.recipient))

    def outer_event(self, group: int, event: Event) -> Event:
        """An inner party's event with group-local ids renamed to client ids."""
        rename = {ClientDropped: "client", PeerIgnored: "peer", LateMessage: "sender",
                  MessageIgnored: "sender"}
        field = rename.get(type(event))
        if field is not None:
            return replace(event, **{field: self.outer_id(group, getattr(event, field))})
        if isinstance(event, RoundFinished):
            return RoundFinished(tuple(self.outer_id(group, c) for c in event.survivors))
        return event


class GroupedClient(ClientParty):
    """One inner-protocol client of the client's group, behind renamed envelopes."""

    @property
    def max_message_bytes(self) -> int:
        return self.inner.max_message_bytes

    def __init__(self, aggregator: GroupedAggregator, client_id: int, rng: RandomSource):
        super().__init__()
        self.agg = aggregator
        self.party_id = client_id
        self.group, local = aggregator.location[client_id]
        self.inner = aggregator.inner[self.group].client(local, rng=rng)

    @property
    def phase(self) -> str:
        return self.inner.phase

    def set_input(self, vector, weight: int = 1) -> None:
        array = validate_vector(vector, self.agg.spec.vector_length)
        if self.agg.max_norm is not None:
            array = scale_to_norm(array, self.agg.max_norm)
        self.inner.set_input(array, weight)

    def start(self) -> None:
        self.inner.start()

    def receive(self, envelope) -> None:
        if envelope.session != self.agg.session:  # renaming would hide it from the inner party
            self.inner.peer_failed(envelope.sender, MalformedMessage(
                "envelope belongs to another session", envelope.sender))
            return
        self.inner.receive(self.agg.to_inner(self.group, envelope))

    def messages_to_send(self) -> list:
        return [self.agg.to_outer(self.group, e) for e in self.inner.messages_to_send()]

    def next_event(self) -> Event | None:
        event = self.inner.next_event()
        return None if event is None else self.agg.outer_event(self.group, event)

    @property
    def done(self) -> bool:
        return self.inner.done

    def peer_failed(self, peer: int, error) -> None:
        self.inner.peer_failed(peer, error)  # a client aborts whoever the peer was


class GroupedServer(ServerParty):
    """One inner-protocol server per group, advanced in lock step, and the robust rule."""

    @property
    def max_message_bytes(self) -> int:
        return self.agg.max_message_bytes(to_server=True)

    def __init__(self, aggregator: GroupedAggregator):
        super().__init__()
        self.agg = aggregator
        self.servers = [a.server() for a in aggregator.inner]
        self._state = "idle"
        self._shown_phase: str | None = None
        self._result = None
        self._abort_error = None

    @property
    def phase(self) -> str:
        return self._state if self._state != "running" else (self.deadline_phase or "running")

    def start(self) -> None:
        if self._state != "idle":
            raise LocalProtocolError("start() called twice")
        self._state = "running"
        for g, server in enumerate(self.servers):
            server.start()
            self._pump(g)

    def receive(self, envelope) -> None:
        where = self.agg.location.get(envelope.sender)
        if where is None or self.done:
            self._emit(LateMessage(envelope.sender, type(envelope.body).__name__))
            return
        if envelope.session != self.agg.session:  # renaming would hide it from the inner server
            self.servers[where[0]].peer_failed(where[1], MalformedMessage(
                "envelope belongs to another session", envelope.sender))
        else:
            self.servers[where[0]].receive(self.agg.to_inner(where[0], envelope))
        self._pump(where[0])

    def peer_failed(self, peer: int, error) -> None:
        where = self.agg.location.get(peer)
        if where is not None:
            self.servers[where[0]].peer_failed(where[1], error)
            self._pump(where[0])

    @property
    def ready_for_next_round(self) -> bool:
        waiting = [s for s in self.servers if s.deadline_phase is not None]
        return bool(waiting) and all(s.ready_for_next_round for s in waiting)

    @property
    def deadline_phase(self) -> str | None:
        phases = sorted({s.deadline_phase for s in self.servers if s.deadline_phase is not None})
        return "+".join(phases) if phases and self._state == "running" else None

    def proceed_to_next_round(self) -> None:
        if self.deadline_phase is None:
            raise LocalProtocolError(f"nothing to proceed from in phase {self.phase!r}")
        for g, server in enumerate(self.servers):
            if server.deadline_phase is not None:
                server.proceed_to_next_round()
                self._pump(g)
        if all(s.done for s in self.servers):
            self._conclude()

    @property
    def done(self) -> bool:
        return self._state in ("done", "aborted")

    # ------------------------------------------------------------------ internals
    def _pump(self, group: int) -> None:
        server = self.servers[group]
        self._outbox.extend(self.agg.to_outer(group, e) for e in server.messages_to_send())
        while (event := server.next_event()) is not None:
            if isinstance(event, RoundAborted):
                self._emit(GroupRejected(group, self.agg.members[group], event.reason))
            elif not isinstance(event, (PhaseStarted, RoundFinished)):
                self._emit(self.agg.outer_event(group, event))
        phase = self.deadline_phase
        if phase is not None and phase != self._shown_phase:
            self._shown_phase = phase
            self._emit(PhaseStarted(phase))

    def _conclude(self) -> None:
        inputs, refused, survivors, weight = [], [], [], 0.0
        for g, server in enumerate(self.servers):
            if server.aborted is not None:
                refused.append(InputVerdict(self.agg.members[g], 0.0, math.nan, "rejected",
                                            f"group aborted: {server.aborted}"))
                continue
            res = server.result()
            members = tuple(self.agg.outer_id(g, c) for c in res.survivors)
            problem = self._norm_problem(g, res)
            if problem is not None:
                refused.append(InputVerdict(members, 0.0, math.nan, "rejected", problem))
                self._emit(GroupRejected(g, members, problem))
                continue
            inputs.append((members, res.weighted_sum / res.total_weight))
            survivors.extend(members)
            weight += res.total_weight
        try:
            if len(survivors) < self.agg.spec.min_clients:
                raise InsufficientParticipants("too few clients in accepted groups",
                                               remaining=len(survivors),
                                               threshold=self.agg.spec.min_clients)
            self._result = robust_combine(
                self.agg.rule, inputs, total_weight=weight, survivors=survivors,
                dropped=set(self.agg.spec.client_ids) - set(survivors), refused=refused)
        except ProtocolAborted as exc:
            self._abort_error = exc
            self._state = "aborted"
            self._emit(RoundAborted(str(exc), exc))
            return
        self._state = "done"
        self._emit(RoundFinished(self._result.survivors))

    def _norm_problem(self, group: int, res) -> str | None:
        """Why group ``group``'s sum cannot be a sum of updates of norm <= max_norm (None:
        it can)."""
        bound = self.agg.max_norm
        if bound is None:
            return None
        slack = math.sqrt(self.agg.spec.vector_length) * res.total_weight \
            * self.agg.inner[group].quantization_error
        norm = float(np.linalg.norm(res.weighted_sum))
        limit = bound * res.total_weight + slack
        if norm > limit:
            return (f"group sum has L2 norm {norm:.4g} > max_norm x weight + quantization slack"
                    f" = {limit:.4g}: a member broke the norm bound")
        return None


register_protocol("grouped", GroupedAggregator)
