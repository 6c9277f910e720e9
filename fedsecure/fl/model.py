"""Small torch models, their evaluation, and the flat vector form that aggregation works on.

Aggregation protocols take one float64 vector per client.  :func:`model_to_vector` concatenates
every floating-point entry of a state_dict (parameters *and* float buffers such as BatchNorm
running statistics, in state_dict order) as float64, which holds float16, bfloat16, float32 and
float64 values exactly; :func:`vector_to_model` writes such a vector back, casting each slice to
its entry's dtype, so the round trip is bit-exact.  Entries that are not floating point (integer
or boolean buffers, e.g. BatchNorm's ``num_batches_tracked``) are never averaged: they travel
separately through :func:`integer_state` / :func:`load_integer_state`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from fedsecure.config import require
from fedsecure.errors import ConfigurationError

MODELS = ("mlp", "logistic")


def build_model(kind: str, n_features: int, n_classes: int, *, hidden: int = 64,
                seed: int = 0) -> nn.Module:
    """A seeded ``mlp`` (one hidden ReLU layer) or ``logistic`` (linear softmax) classifier.

    The global torch RNG is left as it was.
    """
    require(kind in MODELS, "model", kind, f"must be one of {list(MODELS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "logistic":
            return nn.Linear(n_features, n_classes)
        return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(),
                             nn.Linear(hidden, n_classes))


def _state(model_or_state) -> Mapping[str, torch.Tensor]:
    if isinstance(model_or_state, nn.Module):
        return model_or_state.state_dict()
    return model_or_state


def _float_entries(state: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(name, t) for name, t in state.items() if t.is_floating_point()]


def vector_size(model_or_state) -> int:
    """Length of the vector :func:`model_to_vector` returns."""
    return sum(t.numel() for _, t in _float_entries(_state(model_or_state)))


def model_to_vector(model_or_state) -> np.ndarray:
    """Every floating-point state_dict entry, flattened and concatenated, as float64."""
    entries = _float_entries(_state(model_or_state))
    if not entries:
        return np.zeros(0, dtype=np.float64)
    return torch.cat([t.detach().reshape(-1).to("cpu", torch.float64) for _, t in entries]
                     ).numpy()


def vector_to_model(vector, model_or_state):
    """Write ``vector`` into the floating-point entries (in place); returns the argument."""
    vector = np.asarray(vector, dtype=np.float64)
    state = _state(model_or_state)
    entries = _float_entries(state)
    expected = sum(t.numel() for _, t in entries)
    if vector.ndim != 1 or vector.shape[0] != expected:
        raise ConfigurationError(
            f"vector: shape {vector.shape} does not match the model's {expected} float entries")
    source = torch.from_numpy(vector)
    offset = 0
    with torch.no_grad():
        for _, tensor in entries:
            n = tensor.numel()
            tensor.copy_(source[offset:offset + n].view(tensor.shape).to(tensor.dtype))
            offset += n
    return model_or_state


def integer_state(model_or_state) -> dict[str, torch.Tensor]:
    """Copies of the entries that are not floating point (carried beside the vector)."""
    return {name: t.detach().clone() for name, t in _state(model_or_state).items()
            if not t.is_floating_point()}


def load_integer_state(model_or_state, integers: Mapping[str, torch.Tensor]) -> None:
    """Write entries saved by :func:`integer_state` back (in place)."""
    state = _state(model_or_state)
    with torch.no_grad():
        for name, value in integers.items():
            state[name].copy_(value)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy loss) of ``model`` on ``x``, ``y``."""
    was_training = model.training
    model.eval()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(dim=1) == y).double().mean().item()
    model.train(was_training)
    return accuracy, loss
