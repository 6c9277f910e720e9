"""The server side of a federated round: sample clients, aggregate their deltas, update.

Aggregation goes through the one interface of :mod:`fedsecure.protocols.base`: the protocol is a
name (``plaintext``, ``secagg``, ...) and options, never a branch here.  :func:`secure_aggregate`
builds the round's :class:`~fedsecure.protocols.base.AggregationSpec` -- client ids 1..m, integer
weights = sample counts, per-coordinate clip -- and runs it with
:func:`fedsecure.runtime.simulation.simulate_round`.  :func:`aggregate_round` clips the deltas
(counting the clipped coordinates), maps round ids back to client indices and returns the mean
delta that FedAvg / FedProx add to the global model.  A client whose local training diverged
(NaN or infinite values) is that client's failure in that round: its update is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedsecure.errors import ProtocolAborted
from fedsecure.fl.client import LocalUpdate
from fedsecure.fl.robust_round import robust_report
from fedsecure.protocols.base import AggregateResult, AggregationSpec, Aggregator, make_aggregator
from fedsecure.runtime.driver import Deadlines
from fedsecure.runtime.faults import ANY_MESSAGE, Delay
from fedsecure.runtime.simulation import simulate_round


@dataclass(frozen=True)
class AggregationReport:
    """What an aggregation function reports for one round (ids are 1..m)."""

    result: AggregateResult | None  # None when the round aborted
    error: Exception | None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    bytes_total: int = 0
    quantization_error: float = 0.0


AggregateFn = Callable[..., AggregationReport]
"""``aggregate(protocol, spec, inputs, *, options, deadline_s, stragglers) -> AggregationReport``
where ``inputs`` maps round ids 1..m to (delta, weight) and ``stragglers`` lists round ids
whose messages arrive after the deadline."""


def secure_aggregate(protocol: str, spec: AggregationSpec,
                     inputs: Mapping[int, tuple[np.ndarray, int]], *, options: Mapping,
                     deadline_s: float | None, stragglers: Sequence[int] = (),
                     build: Callable[..., Aggregator] = make_aggregator) -> AggregationReport:
    """Run one round of ``protocol`` over ``inputs`` with the in-process simulation driver.

    ``build(protocol, spec, **options)`` makes the aggregator (e.g. a DP wrapper around it).

    ``deadline_s`` bounds each collection phase (clients that miss it are dropped as
    stragglers); None keeps the driver's default.  Every message of a client in
    ``stragglers`` is delayed past the deadline, so the server cuts it off.
    """
    aggregator = build(protocol, spec, **options)
    deadlines = Deadlines() if deadline_s is None else Deadlines(default_s=deadline_s)
    late = [Delay(rid, ANY_MESSAGE, 2 * deadlines.default_s) for rid in stragglers]
    report = simulate_round(aggregator, dict(inputs), deadlines=deadlines, faults=late)
    return AggregationReport(
        result=report.result,
        error=report.error,
        phase_seconds={str(k): float(v) for k, v in report.phase_seconds.items()},
        bytes_total=int(report.bytes_total),
        quantization_error=float(aggregator.quantization_error),
    )


def sampled_per_round(n_clients: int, fraction: float) -> int:
    """How many clients a round samples: ceil(fraction * n_clients)."""
    return max(1, math.ceil(fraction * n_clients - 1e-9))


def sample_clients(n_clients: int, fraction: float, rng: np.random.Generator) -> list[int]:
    """A sorted sample without replacement of ``sampled_per_round`` client indices."""
    m = sampled_per_round(n_clients, fraction)
    return sorted(int(i) for i in rng.choice(n_clients, size=m, replace=False))


@dataclass(frozen=True)
class RoundAggregate:
    """The server's view of a round: mean delta over survivors (None if aborted) and costs.

    Clients are the caller's indices; ``diverged`` lists the clients whose local training
    produced non-finite values: their updates were never sent, so they are also ``dropped``."""

    mean: np.ndarray | None
    survivors: tuple[int, ...]  # client indices
    dropped: tuple[int, ...]
    error: Exception | None
    clipped_fraction: float
    phase_seconds: dict[str, float]
    bytes_total: int
    quantization_error: float
    diverged: tuple[int, ...] = ()
    robust: dict | None = None  # the robust rule's verdicts (fl.robust_round.robust_report)


def clip_update(delta: np.ndarray, clip: float) -> tuple[np.ndarray, int]:
    """``delta`` clipped to [-clip, clip] per coordinate, and how many coordinates were cut."""
    return np.clip(delta, -clip, clip), int(np.count_nonzero(np.abs(delta) > clip))


def has_diverged(update: LocalUpdate) -> bool:
    """True if local training blew up: a NaN or infinite delta coordinate or training loss."""
    return not (math.isfinite(update.train_loss) and np.isfinite(update.delta).all())


def aggregate_round(updates: Sequence[tuple[int, LocalUpdate]], *, protocol: str,
                    options: Mapping, clip: float, round_index: int,
                    deadline_s: float | None = None, stragglers: Sequence[int] = (),
                    allow_small_cohort: bool = False,
                    aggregate: AggregateFn = secure_aggregate) -> RoundAggregate:
    """Clip each delta to [-clip, clip], aggregate with ``protocol``, return the mean delta.

    ``stragglers`` are client indices whose messages miss the deadline.  A client whose update
    diverged (:func:`has_diverged`) sends nothing: the protocol, configured for every sampled
    client, drops it like any absent client; if every client diverged the round aborts without
    running the protocol."""
    clients = [client for client, _ in updates]
    d = len(updates[0][1].delta)
    diverged = tuple(client for client, u in updates if has_diverged(u))
    sending = {rid: (client, u) for rid, (client, u) in enumerate(updates, start=1)
               if client not in diverged}
    if not sending:
        return RoundAggregate(
            mean=None, survivors=(), dropped=tuple(clients), diverged=diverged,
            error=ProtocolAborted("every client's local training diverged (non-finite update)"),
            clipped_fraction=0.0, phase_seconds={}, bytes_total=0, quantization_error=0.0)
    clipped_updates = {rid: clip_update(u.delta, clip) for rid, (_, u) in sending.items()}
    inputs = {rid: (vector, sending[rid][1].n_samples)
              for rid, (vector, _) in clipped_updates.items()}
    spec = AggregationSpec(n_clients=len(updates), vector_length=d,
                           max_weight=max(u.n_samples for _, u in updates), clip=clip,
                           session=None, round=round_index,
                           allow_small_cohort=allow_small_cohort)
    late = [rid for rid, client in enumerate(clients, start=1) if client in set(stragglers)]
    report = aggregate(protocol, spec, inputs, options=options, deadline_s=deadline_s,
                       stragglers=late)
    result = report.result
    return RoundAggregate(
        mean=None if result is None else np.asarray(result.mean, dtype=np.float64),
        survivors=() if result is None else tuple(clients[i - 1] for i in result.survivors),
        dropped=tuple(clients) if result is None else tuple(
            clients[i - 1] for i in result.dropped),
        error=report.error,
        clipped_fraction=sum(count for _, count in clipped_updates.values())
        / (len(clipped_updates) * d),
        phase_seconds=report.phase_seconds,
        bytes_total=report.bytes_total,
        quantization_error=report.quantization_error,
        diverged=diverged,
        robust=robust_report(result, clients),
    )
