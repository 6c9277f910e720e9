"""DP training: epsilon per round within the target, budget enforced before a round, resume."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytest.importorskip("dp_accounting", reason="dp-accounting is not installed (extra: dp)")
pytestmark = pytest.mark.train

from fedsecure.cli import main  # noqa: E402
from fedsecure.errors import ConfigurationError, PrivacyBudgetExceeded  # noqa: E402
from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.loop import resume, train  # noqa: E402

SMALL = dict(clients=6, rounds=3, hidden=8, local_epochs=1, seed=3, epsilon=3.0, delta=1e-5,
             clip_norm=1.0)


def _config(tmp_path, name="run", **changes) -> TrainConfig:
    return TrainConfig(**dict(SMALL, run_dir=str(tmp_path / name), **changes))


@pytest.mark.parametrize("dp, protocol", [("central", "plaintext"), ("local", "secagg"),
                                          ("distributed", "secagg")])
def test_each_round_reports_the_cumulative_epsilon_within_the_target(tmp_path, dp, protocol):
    result = train(_config(tmp_path, dp=dp, protocol=protocol))
    epsilons = [row["epsilon"] for row in result.metrics]
    assert all(a < b for a, b in zip(epsilons, epsilons[1:])) and epsilons[-1] <= 3.0
    if dp == "distributed":  # noise sized for the threshold (4 of 6), all 6 survived
        assert epsilons[-1] < 3.0 * 0.95
    else:
        assert epsilons[-1] == pytest.approx(3.0, rel=1e-3)
    saved = json.loads((result.run_dir / "metrics.json").read_text())
    assert [row["epsilon"] for row in saved] == epsilons
    assert "epsilon" in (result.run_dir / "metrics.csv").read_text().splitlines()[0]


def test_extending_a_finished_run_stops_before_the_round_that_would_overspend(tmp_path):
    first = train(_config(tmp_path, dp="central", protocol="plaintext"))
    with pytest.raises(PrivacyBudgetExceeded, match="budget 3"):
        resume(first.run_dir, rounds=4)
    rows = json.loads((first.run_dir / "metrics.json").read_text())
    assert len(rows) == 3  # nothing of round 4 ran


def test_distributed_dp_needs_secure_aggregation():
    with pytest.raises(ConfigurationError, match="distributed DP needs secure aggregation"):
        TrainConfig(dp="distributed", epsilon=1.0, protocol="plaintext")


def test_cli_prints_epsilon_in_the_round_line(tmp_path, capsys):
    code = main(["train", "--dp", "central", "--epsilon", "3", "--delta", "1e-5",
                 "--clip-norm", "1", "--protocol", "plaintext", "--clients", "4", "--rounds",
                 "2", "--hidden", "8", "--local-epochs", "1", "--run-dir", str(tmp_path / "r")])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("round")]
    assert len(lines) == 2 and all("epsilon" in line for line in lines)
    assert lines[-1].split("epsilon ")[1].startswith("3.00") or "epsilon 2.99" in lines[-1]
