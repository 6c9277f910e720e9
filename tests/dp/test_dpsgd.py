"""Sample-level DP-SGD (fedsecure.dp.dpsgd, through Opacus): per-example clipping is exact,
the noise has the planned scale and comes from the injected RandomSource, the record-level
accountant is dp-accounting's composition, and training reports the record-level epsilon."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("opacus", reason="opacus is not installed (extra: dp-sgd)")
pytest.importorskip("dp_accounting", reason="dp-accounting is not installed (extra: dp)")

from dp_accounting import dp_event  # noqa: E402
from dp_accounting.rdp import rdp_privacy_accountant  # noqa: E402
from torch import nn  # noqa: E402

from fedsecure.cli import main  # noqa: E402
from fedsecure.dp.accounting import RDP_ORDERS  # noqa: E402
from fedsecure.dp.dpsgd import DPSGD, record_epsilon  # noqa: E402
from fedsecure.errors import ConfigurationError  # noqa: E402
from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.loop import train  # noqa: E402
from fedsecure.rng import DeterministicRandom  # noqa: E402
from tests.dp.stats import variance_fits  # noqa: E402


def per_example_gradients(model: nn.Module, x, y) -> list[np.ndarray]:
    """Each example's gradient, flattened over all parameters, by one backward pass each."""
    out = []
    for i in range(len(y)):
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1], reduction="sum").backward()
        out.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().numpy())
    return out


def one_step(noise_multiplier: float, clip: float, seed: str):
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 10)).double()
    with torch.no_grad():  # weights from the seeded generator, not torch's global one
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.2)
    x = torch.randn(12, 40, generator=gen, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (12,), generator=gen)
    expected = per_example_gradients(model, x, y)
    dp = DPSGD(noise_multiplier, clip, rng=DeterministicRandom(seed))
    wrapped = dp.per_example(model)
    model.zero_grad(set_to_none=True)
    dp.backward(nn.functional.cross_entropy(wrapped(x), y, reduction="sum"))
    dp.privatize(wrapped, len(y))
    got = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().numpy()
    return expected, got


def test_per_example_clipping_is_exact():
    clip = 20.0  # the example gradients' norms span 11.9 .. 33.0
    expected, got = one_step(1e-15, clip, "clip")  # noise ~1e-14, below the tolerance
    norms = np.array([np.linalg.norm(g) for g in expected])
    assert norms.min() < clip < norms.max()  # some examples are clipped, some are not
    clipped = [g * min(1.0, clip / np.linalg.norm(g)) for g in expected]
    assert all(np.linalg.norm(g) <= clip * (1 + 1e-12) for g in clipped)
    assert np.allclose(got, np.mean(clipped, axis=0), rtol=1e-9, atol=1e-12)


def test_noise_has_the_planned_scale():
    sigma, clip = 1.3, 0.5
    expected, got = one_step(sigma, clip, "noise")
    clipped = [g * min(1.0, clip / np.linalg.norm(g)) for g in expected]
    noise_of_sum = (got - np.mean(clipped, axis=0)) * len(expected)
    variance_fits(noise_of_sum, (sigma * clip) ** 2)  # 1540 coordinates


def test_the_noise_comes_from_the_injected_random_source():
    _, first = one_step(1.0, 1.0, "same")
    _, again = one_step(1.0, 1.0, "same")
    _, other = one_step(1.0, 1.0, "other")
    assert np.array_equal(first, again) and not np.allclose(first, other)


@pytest.mark.parametrize("sigma, epochs", [(1.0, 1), (2.0, 12), (5.0, 100)])
def test_record_epsilon_is_the_composed_gaussian_of_dp_accounting(sigma, epochs):
    accountant = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
    accountant.compose(dp_event.GaussianDpEvent(sigma / 2), epochs)  # replace-one: 2 C_s
    assert record_epsilon(sigma, epochs, 1e-5) == pytest.approx(accountant.get_epsilon(1e-5),
                                                                rel=1e-9)
    assert record_epsilon(sigma, 0, 1e-5) == 0.0


def test_training_reports_the_record_level_epsilon(tmp_path, capsys):
    code = main(["train", "--dp-sgd", "1.5", "--dp-sgd-clip", "1", "--dp", "central",
                 "--epsilon", "3", "--protocol", "plaintext", "--clients", "4", "--rounds", "2",
                 "--hidden", "8", "--local-epochs", "2", "--run-dir", str(tmp_path / "r")])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("round")]
    rows = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert [r["record_epsilon"] for r in rows] == pytest.approx(
        [record_epsilon(1.5, 2 * t, 1e-5) for t in (1, 2)])
    assert all("record-epsilon" in line and "  epsilon " in line for line in lines)


def test_dp_sgd_refuses_fedprox():
    with pytest.raises(ConfigurationError, match="mu"):
        TrainConfig(dp_sgd=1.0, mu=0.1)


def test_plain_training_has_no_record_epsilon(tmp_path):
    result = train(TrainConfig(clients=3, rounds=1, hidden=4, local_epochs=1,
                               protocol="plaintext", run_dir=str(tmp_path / "r")))
    assert result.metrics[0]["record_epsilon"] is None
