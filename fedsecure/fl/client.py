"""Local training on one client: a few epochs of SGD from the global model, returning the delta.

The client trains a copy of the global model on its own data (mini-batch SGD with optional
momentum; with ``mu > 0`` the FedProx proximal term ``mu/2 * ||w - w_global||^2`` is added to
the loss) and returns ``new - global`` as one float64 vector (see :mod:`fedsecure.fl.model`)
with its sample count, the weight it aggregates with.  Batches are shuffled by a
``torch.Generator`` seeded from ``seed`` and nothing reads torch's global RNG, so training on
the CPU is deterministic given the seed.  With ``dp_sgd`` (a :class:`fedsecure.dp.dpsgd.DPSGD`)
each step uses the noisy mean of per-example clipped gradients instead (sample-level DP-SGD;
the noise then comes from its CSPRNG, so such a run is not reproducible bit for bit).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedsecure.config import require
from fedsecure.errors import ConfigurationError
from fedsecure.fl.model import model_to_vector


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cpu``/``cuda``/``cuda:N`` force one.

    A CUDA device is returned with its index (``cuda`` is the current device), so
    ``str(device)`` names the device actually used, e.g. ``cuda:0``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigurationError(
            f"device={name!r}: must be auto, cpu, cuda or cuda:N") from None
    require(device.type in ("cpu", "cuda"), "device", name, "must be auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        require(torch.cuda.is_available(), "device", name,
                "no CUDA device is available (use auto or cpu)")
        index = torch.cuda.current_device() if device.index is None else device.index
        require(index < torch.cuda.device_count(), "device", name,
                f"only {torch.cuda.device_count()} CUDA device(s) present")
        device = torch.device("cuda", index)
    return device


def torch_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (any non-negative integer; reduced to 63 bits)."""
    return torch.Generator().manual_seed(int(seed) % (2**63))


@dataclass(frozen=True)
class LocalUpdate:
    """What one client sends to aggregation: its delta and weight, plus its training loss."""

    delta: np.ndarray  # float64, new - global
    n_samples: int
    train_loss: float  # mean loss over the last local epoch


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int,
        lr: float, momentum: float = 0.0, mu: float = 0.0, seed: int = 0,
        dp_sgd=None) -> float:
    """Train ``model`` in place; returns the mean loss of the last epoch.

    With ``mu > 0`` the proximal term anchors the parameters to their values on entry; with
    ``dp_sgd`` every step is a DP-SGD step (FedProx's term is then refused: it would be
    clipped per example).
    """
    require(dp_sgd is None or mu == 0, "mu", mu, "must be 0 with DP-SGD")
    generator = torch_generator(seed)
    anchor = [p.detach().clone() for p in model.parameters()] if mu > 0 else None
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    forward = model if dp_sgd is None else dp_sgd.per_example(model)
    model.train()
    n = len(y)
    epoch_loss = float("nan")
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(x.device)
        total = 0.0
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            if dp_sgd is not None:
                loss = nn.functional.cross_entropy(forward(x[batch]), y[batch], reduction="sum")
                total += loss.item()
                dp_sgd.backward(loss)
                dp_sgd.privatize(forward, len(batch))
                optimizer.step()
                continue
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            total += loss.item() * len(batch)
            if anchor is not None:
                loss = loss + 0.5 * mu * sum(
                    (p - a).pow(2).sum() for p, a in zip(model.parameters(), anchor, strict=True))
            loss.backward()
            optimizer.step()
        epoch_loss = total / n
    return epoch_loss


def train_local(global_model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
                batch_size: int, lr: float, momentum: float = 0.0, mu: float = 0.0,
                seed: int = 0, dp_sgd=None) -> LocalUpdate:
    """Train a copy of ``global_model`` on (x, y); return the float64 delta and sample count.

    ``x`` and ``y`` must be on the model's device; the global model is not modified.
    """
    require(len(y) >= 1, "client data", len(y), "a client needs at least one sample")
    model = copy.deepcopy(global_model)
    loss = fit(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
               mu=mu, seed=seed, dp_sgd=dp_sgd)
    delta = model_to_vector(model) - model_to_vector(global_model)
    return LocalUpdate(delta=delta, n_samples=len(y), train_loss=loss)
