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

from fedsecure.dp import (
    AdaptiveClip,
    DPAggregator,
    PrivacyBudget,
    calibrate_noise_multiplier,
    make_dp_aggregator,
)
from fedsecure.fl.server import secure_aggregate
from fedsecure.protocols.base import AggregationSpec


class DPRounds:
    """The DP state of one run: calibrated noise, budget, and the round function to play."""

    def __init__(self, fed, metrics: list[dict], run_round):
        """``run_round(fed, round_index, aggregate=...)`` plays one round (the loop's)."""
        self.fed, cfg = fed, fed.config
        self._run_round = run_round
        self.n = cfg.clients_per_round
        self.d = sum(p.numel() for p in fed.model.parameters())
        self.adaptive = None if cfg.adaptive_clip is None else AdaptiveClip(
            cfg.clip_norm, quantile=cfg.adaptive_clip, learning_rate=cfg.adaptive_clip_lr)
        if metrics:  # resumed: keep the noise the run was calibrated with
            self.noise_multiplier = float(metrics[0]["noise_multiplier"])
        else:
            self.noise_multiplier = calibrate_noise_multiplier(
                cfg.epsilon, cfg.delta, cfg.rounds,
                lambda z: self._plan(noise_multiplier=z).planned_event)
        self.budget = PrivacyBudget(cfg.epsilon, cfg.delta)
        plan = self._plan()
        for row in metrics:
            if row["aborted"] is None or cfg.dp == "local":
                self.budget.spend(plan.privacy_event(len(row["survivors"]) or self.n))
            if self.adaptive is not None and row.get("unclipped_count") is not None:
                self.adaptive.update(row["unclipped_count"], len(row["survivors"]))

    @property
    def clip_norm(self) -> float:
        """The L2 clip of this round's updates (fixed, or the adaptive clip's current norm)."""
        return self.fed.config.clip_norm if self.adaptive is None else self.adaptive.clip_norm

    @property
    def min_survivors(self) -> int | None:
        share = self.fed.config.dp_survivors
        return None if share is None else max(1, math.ceil(share * self.n - 1e-9))

    def _spec(self, spec: AggregationSpec) -> AggregationSpec:
        return dataclasses.replace(spec, max_weight=1, min_clients=self.min_survivors)

    def _plan(self, noise_multiplier: float | None = None) -> DPAggregator:
        spec = self._spec(AggregationSpec(n_clients=self.n, vector_length=self.d,
                                          clip=self.fed.config.clip))
        return self._build(self.fed.config.protocol, spec, noise_multiplier=noise_multiplier,
                           **self.fed.config.protocol_options)

    def _build(self, protocol: str, spec: AggregationSpec, *,
               noise_multiplier: float | None = None, **options) -> DPAggregator:
        cfg = self.fed.config
        z = self.noise_multiplier if noise_multiplier is None else noise_multiplier
        share = None if self.adaptive is None else cfg.adaptive_clip_share
        return make_dp_aggregator(cfg.dp, spec, protocol=protocol, protocol_options=options,
                                  clip_norm=self.clip_norm, noise_multiplier=z,
                                  count_share=share)

    def aggregate(self, protocol, spec, inputs, **kwargs):
        """An ``AggregateFn``: the round through the DP wrapper, every client with weight 1."""
        built: list[DPAggregator] = []

        def build(protocol, spec, **options):
            built.append(self._build(protocol, spec, **options))
            return built[-1]

        report = secure_aggregate(protocol, self._spec(spec),
                                  {rid: (vector, 1) for rid, (vector, _) in inputs.items()},
                                  build=build, **kwargs)
        self._last = (built[0], report)
        return report

    def play(self, fed, round_index: int) -> dict:
        self.budget.check(self._plan().planned_event)
        clip_norm = self.clip_norm
        row = self._run_round(fed, round_index, aggregate=self.aggregate)
        aggregator, report = self._last
        count = None
        if report.result is not None:
            self.budget.spend(aggregator.privacy_event(len(report.result.survivors)))
            count = report.result.unclipped_count
        elif fed.config.dp == "local":
            self.budget.spend(aggregator.planned_event)
        if count is not None:
            self.adaptive.update(count, len(report.result.survivors))
        row["epsilon"] = self.budget.spent
        row["noise_multiplier"] = self.noise_multiplier
        row["clip_norm"] = clip_norm
        row["unclipped_count"] = count
        return row
