"""Differentially private training rounds: ``fedsecure train --dp {local,central,distributed}``.

Theory of operation.  DP-FedAvg (McMahan et al., ICLR 2018) at the user level: every sampled
client's delta is L2-clipped to ``clip_norm`` and counts once (weight 1); the mean is the noisy
sum over the survivors divided by their number.  Before the first round the noise multiplier z
is calibrated so that ``rounds`` rounds spend exactly the target (epsilon, delta) in the worst
case the configuration allows (for distributed DP: only the ``dp_survivors`` fraction of the
sampled clients -- by default the protocol's threshold -- survive every round).  The noise
itself is added by the wrappers of :mod:`fedsecure.dp` around the configured protocol.

Per round: the :class:`~fedsecure.dp.PrivacyBudget` first checks the round's planned (worst
case) event and raises :class:`~fedsecure.errors.PrivacyBudgetExceeded` before any training if
it would overspend (e.g. a run extended with ``--resume --rounds``); after the round it spends
the event actually reached (distributed: with the clients that really survived), and the
cumulative epsilon goes into the metrics row. An aborted round releases nothing, except under
local DP, where each client's noised update left the client anyway. Resuming replays the
budget from the saved rows, with the noise multiplier the run was calibrated with (extending a
finished run with ``--resume --rounds`` therefore stops at the first round beyond the budget).
Client sampling is seeded (reproducible, hence not secret), so no amplification by sampling is
claimed.

Where it runs.  :class:`DPPlan` is what every party derives alike from the configuration (the
calibrated z, the survivors the noise is sized for) and gives each round's
:class:`DPRound`: the keywords of :func:`~fedsecure.dp.make_dp_aggregator` every party builds
the round's aggregator from.  :class:`DPRounds` is the run's accountant -- budget, adaptive
clip, metrics columns -- and plays each round through a :data:`DPRoundFn`: :func:`in_process`
for the one-process loop, :class:`fedsecure.fl.mpi`'s rank 0 under ``--mpi`` (the clients'
ranks build the same aggregator, so each clips and noises its own update on its own rank, and
only rank 0 accounts).  Live rounds and the rounds a resumed run replays are accounted by the
same :meth:`DPRounds._account`, from the metrics row.

Adaptive clipping (``adaptive_clip`` = target quantile): each round's aggregator clips to the
current :class:`~fedsecure.dp.AdaptiveClip` norm and carries the clients' unclipped count as
one more noised coordinate (``count_share`` of :func:`~fedsecure.dp.make_dp_aggregator`) --
inside the same accounted release, so the calibration and the per-round epsilon are those of
fixed clipping; after the round the noisy count moves the norm.  Each row records the clip it
used (``clip_norm``) and the noisy count (``unclipped_count``), from which a resumed run
replays the norm.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from fedsecure.dp import (
    AdaptiveClip,
    DPAggregateResult,
    DPAggregator,
    PrivacyBudget,
    calibrate_noise_multiplier,
    make_dp_aggregator,
)
from fedsecure.fl.server import secure_aggregate
from fedsecure.protocols.base import AggregationSpec


@dataclasses.dataclass(frozen=True)
class DPRound:
    """One round's DP aggregation, built alike by every party that runs it."""

    options: dict[str, Any]
    """:func:`~fedsecure.dp.make_dp_aggregator`'s keywords besides the spec and the inner
    protocol: ``placement``, ``clip_norm``, ``noise_multiplier``, ``count_share``."""
    min_clients: int | None
    """The fewest survivors the noise is sized for (None: the protocol's threshold)."""

    @property
    def clip_norm(self) -> float:
        return self.options["clip_norm"]

    def spec(self, spec: AggregationSpec) -> AggregationSpec:
        """``spec`` as the DP round runs it: every client with weight 1, ``min_clients``."""
        return dataclasses.replace(spec, max_weight=1, min_clients=self.min_clients)

    def build(self, protocol: str, spec: AggregationSpec, **protocol_options) -> DPAggregator:
        """The round's DP aggregator around ``protocol`` over ``spec`` (a :meth:`spec`)."""
        return make_dp_aggregator(spec=spec, protocol=protocol, protocol_options=protocol_options,
                                  **self.options)


DPRoundFn = Callable[..., "tuple[dict, DPAggregateResult | None]"]
"""``run_round(fed, round_index, dp: DPRound) -> (row, released)``: plays one round through the
DP aggregator of ``dp``; ``released`` is the round's result (None when it aborted)."""


class DPPlan:
    """What every party of a DP run derives alike from the configuration: the noise multiplier
    (calibrated, unless given), the survivors the noise is sized for, and each round's
    :class:`DPRound`."""

    def __init__(self, fed, noise_multiplier: float | None = None):
        self.config = cfg = fed.config
        self.n = cfg.clients_per_round
        share = cfg.dp_survivors
        self.min_survivors = None if share is None else max(1, math.ceil(share * self.n - 1e-9))
        self._spec = AggregationSpec(n_clients=self.n, clip=cfg.clip, vector_length=sum(
            p.numel() for p in fed.model.parameters()))
        self.noise_multiplier = noise_multiplier if noise_multiplier is not None else \
            calibrate_noise_multiplier(cfg.epsilon, cfg.delta, cfg.rounds,
                                       lambda z: self._aggregator(cfg.clip_norm, z).planned_event)

    def round(self, clip_norm: float) -> DPRound:
        """The DP aggregation of a round that clips to ``clip_norm``."""
        return self._round(clip_norm, self.noise_multiplier)

    def privacy_event(self, clip_norm: float, n_survivors: int):
        """The event of a round (clipping to ``clip_norm``) in which ``n_survivors`` survived."""
        return self._aggregator(clip_norm, self.noise_multiplier).privacy_event(n_survivors)

    def planned_event(self, clip_norm: float):
        """The event of the worst such round the configuration allows."""
        return self._aggregator(clip_norm, self.noise_multiplier).planned_event

    def _round(self, clip_norm: float, noise_multiplier: float) -> DPRound:
        cfg = self.config
        share = None if cfg.adaptive_clip is None else cfg.adaptive_clip_share
        return DPRound({"placement": cfg.dp, "clip_norm": float(clip_norm),
                        "noise_multiplier": float(noise_multiplier), "count_share": share},
                       self.min_survivors)

    def _aggregator(self, clip_norm: float, noise_multiplier: float) -> DPAggregator:
        dp = self._round(clip_norm, noise_multiplier)
        return dp.build(self.config.protocol, dp.spec(self._spec), **self.config.protocol_options)


class DPRounds:
    """The DP state of one run where its accountant lives (the one process, or MPI rank 0):
    the plan, the budget, the adaptive clip, and the round function to play."""

    def __init__(self, fed, metrics: list[dict], run_round: DPRoundFn, *,
                 plan: DPPlan | None = None):
        """``metrics``: the rows of the rounds already played (resumed: they are replayed).
        ``plan``: the run's :class:`DPPlan`, if already made (else calibrated here, or for a
        resumed run made with the noise multiplier it was calibrated with)."""
        cfg = fed.config
        self._run_round = run_round
        if plan is None:
            plan = DPPlan(fed, float(metrics[0]["noise_multiplier"]) if metrics else None)
        self.plan = plan
        self.adaptive = None if cfg.adaptive_clip is None else AdaptiveClip(
            cfg.clip_norm, quantile=cfg.adaptive_clip, learning_rate=cfg.adaptive_clip_lr)
        self.budget = PrivacyBudget(cfg.epsilon, cfg.delta)
        for row in metrics:
            self._account(row)

    @property
    def noise_multiplier(self) -> float:
        return self.plan.noise_multiplier

    @property
    def clip_norm(self) -> float:
        """The L2 clip of this round's updates (fixed, or the adaptive clip's current norm)."""
        return self.plan.config.clip_norm if self.adaptive is None else self.adaptive.clip_norm

    def play(self, fed, round_index: int) -> dict:
        """A :data:`~fedsecure.fl.loop.RoundFn`: check, play, account one round."""
        clip_norm = self.clip_norm
        self.budget.check(self.plan.planned_event(clip_norm))
        row, released = self._run_round(fed, round_index, self.plan.round(clip_norm))
        row.update(noise_multiplier=self.noise_multiplier, clip_norm=clip_norm,
                   unclipped_count=None if released is None else released.unclipped_count)
        self._account(row)
        row["epsilon"] = self.budget.spent
        return row

    def _account(self, row: dict) -> None:
        """Spend the event a round reached and move the adaptive clip, from its metrics row:
        for a round just played and, alike, for each saved round of a resumed run."""
        if row["aborted"] is None:
            self.budget.spend(self.plan.privacy_event(row["clip_norm"], len(row["survivors"])))
        elif self.plan.config.dp == "local":  # the noised updates left the clients anyway
            self.budget.spend(self.plan.planned_event(row["clip_norm"]))
        if self.adaptive is not None and row.get("unclipped_count") is not None:
            self.adaptive.update(row["unclipped_count"], len(row["survivors"]))


def in_process(run_round) -> DPRoundFn:
    """The :data:`DPRoundFn` of the one-process loop: ``run_round``
    (:func:`fedsecure.fl.loop.run_round`) aggregating through the round's DP aggregator, every
    client with weight 1."""

    def play(fed, round_index: int, dp: DPRound):
        released: list[DPAggregateResult | None] = []

        def aggregate(protocol, spec, inputs, **kwargs):
            report = secure_aggregate(protocol, dp.spec(spec),
                                      {rid: (vector, 1) for rid, (vector, _) in inputs.items()},
                                      build=dp.build, **kwargs)
            released.append(report.result)
            return report

        row = run_round(fed, round_index, aggregate=aggregate)
        return row, released[0] if released else None  # none: every client diverged

    return play
