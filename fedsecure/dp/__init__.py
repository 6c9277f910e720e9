"""Differential privacy: clipping, mechanisms, exact discrete Gaussian noise, accounting, and the
local / central / distributed placements as wrappers around any aggregator.  See docs/dp.md."""

from fedsecure.dp.accounting import (
    PrivacyAccountant,
    PrivacyBudget,
    calibrate_noise_multiplier,
    distributed_discrete_gaussian_event,
    gaussian_event,
    laplace_event,
)
from fedsecure.dp.aggregators import (
    PLACEMENTS,
    CentralDPAggregator,
    DistributedDPAggregator,
    DPAggregateResult,
    DPAggregator,
    LocalDPAggregator,
    make_dp_aggregator,
)
from fedsecure.dp.clipping import AdaptiveClip, l2_clip

__all__ = [
    "PLACEMENTS", "AdaptiveClip", "CentralDPAggregator", "DPAggregateResult", "DPAggregator",
    "DistributedDPAggregator",
    "LocalDPAggregator", "PrivacyAccountant", "PrivacyBudget", "calibrate_noise_multiplier",
    "distributed_discrete_gaussian_event", "gaussian_event", "l2_clip", "laplace_event",
    "make_dp_aggregator",
]
