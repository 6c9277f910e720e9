"""Byzantine-robust aggregation with per-client access: a robust rule at a plaintext server.

``make_aggregator("robust", spec, rule="trimmed-mean", f=None, rule_options=None)``.

Theory of operation: the clients are the plaintext protocol's (each sends weight * vector and
its weight in the clear); the server recovers each survivor's vector (update / weight) and
replaces the sum by the robust rule of :mod:`fedsecure.robust` over those vectors (rules are
unweighted: a client's claimed sample count buys it no extra votes).  The server sees every
update — this is the composition for the threat "malicious clients, trusted server".  With a
curious server as well, use ``grouped`` (robust across securely aggregated groups).

The result is a :class:`RobustResult`: ``mean`` is the rule's output (``weighted_sum`` is that
output times the survivors' total weight, so callers that divide keep working) and
``verdicts`` says, per input, its share of the output, its anomaly score and whether it was
kept, down-weighted or rejected.  ``f`` (the Byzantine inputs to withstand) defaults to the
most the rule withstands with ``spec.min_clients`` survivors; an explicit ``f`` must be
withstood with all ``spec.n_clients``; a round left with too few survivors for the rule aborts
(``InsufficientParticipants``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedsecure.errors import InsufficientParticipants, MalformedMessage
from fedsecure.protocols.base import AggregateResult, AggregationSpec, register_protocol
from fedsecure.protocols.plaintext import PlaintextAggregator, PlaintextServer
from fedsecure.rng import DEFAULT_RNG, RandomSource
from fedsecure.robust import FLAG_SCORE, Rule, anomaly_scores, make_rule


@dataclass(frozen=True)
class InputVerdict:
    """What the rule did with one input (one client, or one group's sum)."""

    members: tuple[int, ...]  # client ids whose data the input is
    share: float  # its share of the aggregate (0 = no influence)
    score: float  # anomaly score (nan with fewer than 3 inputs or for an input not aggregated)
    status: str  # "kept", "down-weighted" or "rejected"
    reason: str = ""

    @property
    def flagged(self) -> bool:
        return bool(self.score > FLAG_SCORE)


@dataclass(frozen=True)
class RobustResult(AggregateResult):
    rule: str = "mean"
    verdicts: tuple[InputVerdict, ...] = ()

    def with_status(self, status: str) -> list[tuple[int, ...]]:
        return [v.members for v in self.verdicts if v.status == status]


def make_robust_rule(spec_inputs: int, rule: str, f: int | None, rule_options) -> Rule:
    """The rule for at most ``spec_inputs`` inputs; ``f=None``: the most it withstands."""
    options = dict(rule_options or {})
    built = make_rule(rule, **options)
    if f is None:
        return make_rule(rule, **options, f=max(0, built.max_f(spec_inputs)))
    built = make_rule(rule, **options, f=f)
    built.check(spec_inputs)
    return built


def robust_combine(rule: Rule, inputs: Sequence[tuple[tuple[int, ...], np.ndarray]],
                   *, total_weight: float, survivors, dropped,
                   refused: Sequence[InputVerdict] = ()) -> RobustResult:
    """Apply ``rule`` to the input vectors; ``refused`` are inputs rejected before the rule
    (a group that aborted or failed its norm check).  Raises InsufficientParticipants when
    fewer inputs remain than the rule needs."""
    if len(inputs) < rule.min_inputs():
        raise InsufficientParticipants(f"too few inputs for rule {rule.name!r} with f={rule.f}",
                                       remaining=len(inputs), threshold=rule.min_inputs())
    x = np.stack([vector for _, vector in inputs])
    outcome = rule(x)
    scores = anomaly_scores(x) if len(inputs) >= 3 else np.full(len(inputs), np.nan)
    rejected, down = set(outcome.rejected()), set(outcome.downweighted())
    verdicts = [InputVerdict(members, float(share), float(score),
                             "rejected" if i in rejected else
                             "down-weighted" if i in down else "kept")
                for i, ((members, _), share, score) in enumerate(zip(inputs, outcome.shares,
                                                                     scores))]
    return RobustResult(weighted_sum=outcome.aggregate * total_weight,
                        total_weight=float(total_weight), survivors=tuple(sorted(survivors)),
                        dropped=tuple(sorted(dropped)), rule=rule.name,
                        verdicts=tuple(verdicts) + tuple(refused))


class RobustServer(PlaintextServer):
    """The plaintext server with the sum replaced by the aggregator's robust rule."""

    def _check_update(self, sender: int, body) -> tuple[np.ndarray, float]:
        update, weight = super()._check_update(sender, body)
        vector = update / weight
        with np.errstate(over="ignore"):
            overflows = not np.isfinite(vector @ vector)
        if overflows:
            raise MalformedMessage("update's squared norm overflows float64", sender)
        return update, weight

    def _close_updates(self, answered: dict) -> None:
        self._require(len(answered), "sent an update", self.agg.spec.min_clients)
        survivors = sorted(answered)
        inputs = [((c,), answered[c][0] / answered[c][1]) for c in survivors]
        self._finish(robust_combine(
            self.agg.rule, inputs, total_weight=sum(answered[c][1] for c in survivors),
            survivors=survivors, dropped=set(self.agg.spec.client_ids) - set(survivors)))


class RobustAggregator(PlaintextAggregator):
    """Plaintext clients, a robust-rule server; see the module docstring."""

    name = "robust"

    def __init__(self, spec: AggregationSpec, *, rule: str = "trimmed-mean",
                 f: int | None = None, rule_options: dict | None = None,
                 rng: RandomSource = DEFAULT_RNG):
        super().__init__(spec, rng=rng)
        self.rule = make_robust_rule(spec.n_clients if f is not None else spec.min_clients,
                                     rule, f, rule_options)

    def server(self, *, rng=None) -> RobustServer:
        return RobustServer(self)


register_protocol("robust", RobustAggregator)
