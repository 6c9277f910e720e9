"""Model <-> vector conversion: exact round trips of any state_dict, integer buffers apart."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytestmark = pytest.mark.train

from torch import nn  # noqa: E402

from fedsecure.errors import ConfigurationError  # noqa: E402
from fedsecure.fl.model import (  # noqa: E402
    build_model,
    evaluate,
    integer_state,
    load_integer_state,
    model_to_vector,
    vector_size,
    vector_to_model,
)


class Mixed(nn.Module):
    """Float32 and float64 parameters, BatchNorm buffers (incl. an int64 counter), a half and a
    bfloat16 buffer, and a boolean buffer."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5, 3)
        self.norm = nn.BatchNorm1d(3)
        self.wide = nn.Parameter(torch.randn(2, 2, dtype=torch.float64))
        self.register_buffer("halves", torch.randn(4).half())
        self.register_buffer("brain", torch.randn(3).bfloat16())
        self.register_buffer("flags", torch.tensor([True, False]))


def _randomized(seed: int) -> Mixed:
    torch.manual_seed(seed)
    model = Mixed()
    model.train()
    for _ in range(3):  # moves running stats and num_batches_tracked away from defaults
        model.norm(torch.randn(8, 3))
    with torch.no_grad():
        model.norm.running_var.mul_(torch.rand(3) * 5)
    return model


def _assert_state_equal(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].dtype == sb[name].dtype, name
        assert torch.equal(sa[name], sb[name]), name


def test_round_trip_of_mixed_state_is_bit_exact():
    source, target = _randomized(1), _randomized(2)
    vector = model_to_vector(source)
    assert vector.dtype == np.float64
    float_count = sum(t.numel() for t in source.state_dict().values() if t.is_floating_point())
    assert vector.shape == (float_count,) == (vector_size(source),)
    vector_to_model(vector, target)
    load_integer_state(target, integer_state(source))
    _assert_state_equal(source, target)
    np.testing.assert_array_equal(model_to_vector(target), vector)


def test_integer_buffers_are_not_in_the_vector():
    model = _randomized(3)
    ints = integer_state(model)
    assert set(ints) == {"norm.num_batches_tracked", "flags"}
    assert int(ints["norm.num_batches_tracked"]) == 3
    before = model_to_vector(model)
    with torch.no_grad():
        model.norm.num_batches_tracked.fill_(1000)
    np.testing.assert_array_equal(model_to_vector(model), before)


def test_vector_to_model_writes_in_place_and_into_plain_state_dicts():
    model = build_model("mlp", 4, 3, hidden=5, seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    vector = np.arange(vector_size(model), dtype=np.float64) / 7
    vector_to_model(vector, state)
    np.testing.assert_allclose(model_to_vector(state), vector.astype(np.float32))
    returned = vector_to_model(vector, model)
    assert returned is model
    np.testing.assert_array_equal(model_to_vector(model), model_to_vector(state))


def test_wrong_length_vector_is_refused():
    model = build_model("logistic", 4, 3)
    with pytest.raises(ConfigurationError, match="vector"):
        vector_to_model(np.zeros(vector_size(model) + 1), model)


def test_build_model_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("mlp", 8, 3, hidden=6, seed=5)
    assert torch.equal(torch.rand(1), expected_next)
    b = build_model("mlp", 8, 3, hidden=6, seed=5)
    c = build_model("mlp", 8, 3, hidden=6, seed=6)
    np.testing.assert_array_equal(model_to_vector(a), model_to_vector(b))
    assert not np.array_equal(model_to_vector(a), model_to_vector(c))
    with pytest.raises(ConfigurationError, match="model="):
        build_model("transformer", 8, 3)


def test_evaluate_reports_accuracy_and_loss():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    accuracy, loss = evaluate(model, x, torch.tensor([0, 1, 0, 0]))
    assert accuracy == pytest.approx(0.75)
    expected = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 0, 0])).item()
    assert loss == pytest.approx(expected)
