"""Local training: lowers the loss, is deterministic on the CPU, FedProx stays closer."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytestmark = pytest.mark.train

from fedsecure.errors import ConfigurationError  # noqa: E402
from fedsecure.fl.client import resolve_device, train_local  # noqa: E402
from fedsecure.fl.data import load_dataset  # noqa: E402
from fedsecure.fl.model import (  # noqa: E402
    build_model,
    evaluate,
    model_to_vector,
    vector_to_model,
)


@pytest.fixture(scope="module")
def digits_client():
    ds = load_dataset("digits")
    x = torch.from_numpy(ds.x_train[:300])
    y = torch.from_numpy(ds.y_train[:300])
    return x, y


def _train(model, x, y, **kwargs):
    options = dict(epochs=2, batch_size=32, lr=0.05, momentum=0.9, seed=7)
    options.update(kwargs)
    return train_local(model, x, y, **options)


def test_local_training_lowers_loss_and_returns_delta(digits_client):
    x, y = digits_client
    model = build_model("mlp", 64, 10, hidden=32, seed=0)
    before_vector = model_to_vector(model)
    _, loss_before = evaluate(model, x, y)
    update = _train(model, x, y)
    np.testing.assert_array_equal(model_to_vector(model), before_vector)  # global untouched
    assert update.n_samples == 300
    assert update.delta.dtype == np.float64 and update.delta.shape == before_vector.shape
    trained = build_model("mlp", 64, 10, hidden=32, seed=0)
    vector_to_model(before_vector + update.delta, trained)
    _, loss_after = evaluate(trained, x, y)
    assert loss_after < 0.5 * loss_before
    assert update.train_loss < loss_before


def test_training_is_deterministic_given_the_seed(digits_client):
    x, y = digits_client
    model = build_model("logistic", 64, 10, seed=1)
    a = _train(model, x, y, seed=11)
    b = _train(model, x, y, seed=11)
    c = _train(model, x, y, seed=12)
    np.testing.assert_array_equal(a.delta, b.delta)
    assert a.train_loss == b.train_loss
    assert not np.array_equal(a.delta, c.delta)


def test_fedprox_term_keeps_the_update_closer_to_the_global_model(digits_client):
    x, y = digits_client
    model = build_model("mlp", 64, 10, hidden=32, seed=0)
    plain = _train(model, x, y, epochs=3)
    prox = _train(model, x, y, epochs=3, mu=1.0)
    assert np.linalg.norm(prox.delta) < 0.8 * np.linalg.norm(plain.delta)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigurationError, match=r"^device='tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match=r"^device='cuda': no CUDA device"):
            resolve_device("cuda")


def test_client_without_data_is_refused():
    model = build_model("logistic", 4, 2)
    with pytest.raises(ConfigurationError):
        train_local(model, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), epochs=1,
                    batch_size=4, lr=0.1)
