"""Sample-level DP-SGD for a client's local training (Abadi et al., CCS 2016), through Opacus.

Theory of operation.  Opacus' ``GradSampleModule`` gives the gradient of every example of a
batch separately.  Each example's gradient (all parameters together) is L2-clipped to
``clip_norm`` = C_s, the clipped gradients are summed, Gaussian noise N(0, (sigma C_s)^2) is
added to every coordinate and the sum is divided by the batch size before the optimizer step.
The noise comes from the injected :class:`~fedsecure.rng.RandomSource` (the OS CSPRNG by
default), not from torch's generator, which is why Opacus' own optimizer is not used.

Accounting (record-level, per client).  Batches are a seeded shuffle of the client's records,
not Poisson sampling, so no amplification by sampling is claimed.  In one local epoch every
record enters exactly one noised sum (the batches partition the records) and replacing it
changes that sum by at most 2 C_s; the other steps see it only through the model, a
post-processing of earlier releases.  An epoch is therefore a Gaussian release with noise
multiplier sigma / 2 under replace-one adjacency, and k local epochs (over all the rounds a
client took part in) compose as ``SelfComposedDpEvent(GaussianDpEvent(sigma / 2), k)``
(:func:`record_epsilon`).  Every message derived from the client's deltas inherits this
record-level guarantee, against anyone, the server included, whatever user-level placement
(:mod:`fedsecure.dp.aggregators`) runs on top.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from fedsecure.config import require
from fedsecure.dp import accounting
from fedsecure.dp.sampling import gaussian
from fedsecure.errors import BackendUnavailable
from fedsecure.rng import DEFAULT_RNG, RandomSource

try:
    from opacus import GradSampleModule
except ImportError:
    raise BackendUnavailable("opacus", "dp-sgd") from None


@dataclass
class DPSGD:
    """Per-example clipping and noise for local SGD steps (see the module docstring)."""

    noise_multiplier: float
    clip_norm: float = 1.0
    rng: RandomSource = field(default=DEFAULT_RNG, repr=False)

    def __post_init__(self):
        require(math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0,
                "dp_sgd", self.noise_multiplier, "must be a noise multiplier > 0")
        require(math.isfinite(self.clip_norm) and self.clip_norm > 0, "dp_sgd_clip",
                self.clip_norm, "must be a number > 0")

    def per_example(self, model: nn.Module) -> GradSampleModule:
        """``model`` with per-example gradients (for a loss summed over the batch)."""
        return GradSampleModule(model, loss_reduction="sum")

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, quiet about Opacus' hooks on inputs that need no gradient."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss.backward()

    def privatize(self, model: GradSampleModule, batch_size: int) -> None:
        """Replace each parameter's gradient by the noisy mean of the clipped per-example
        gradients (of the ``batch_size`` examples of the last backward pass)."""
        params = [p for p in model.parameters() if p.requires_grad]
        samples = [p.grad_sample.reshape(batch_size, -1).to(torch.float64) for p in params]
        norms = torch.sqrt(sum((g * g).sum(dim=1) for g in samples))
        factors = torch.clamp(self.clip_norm / torch.clamp(norms, min=1e-300), max=1.0)
        stddev = self.noise_multiplier * self.clip_norm
        for p, g in zip(params, samples, strict=True):
            noise = torch.from_numpy(gaussian(self.rng, stddev, p.numel())).to(g.device)
            total = (factors[:, None] * g).sum(dim=0) + noise
            p.grad = (total / batch_size).reshape(p.shape).to(p.dtype)
            p.grad_sample = None


def record_epsilon(noise_multiplier: float, epochs: int, delta: float) -> float:
    """Record-level epsilon at ``delta`` of a client after ``epochs`` local DP-SGD epochs."""
    require(isinstance(epochs, int) and epochs >= 0, "epochs", epochs, "must be an integer >= 0")
    if epochs == 0:
        return 0.0
    event = accounting.gaussian_event(noise_multiplier / 2)
    return accounting.PrivacyAccountant(delta).epsilon_if(event, epochs)

