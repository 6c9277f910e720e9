"""DP training: epsilon per round within the target, budget enforced before a round, resume."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytest.importorskip("dp_accounting", reason="dp-accounting is not installed (extra: dp)")
pytestmark = pytest.mark.train

from fedsecure.cli import main  # noqa: E402
from fedsecure.errors import BackendUnavailable, ConfigurationError, PrivacyBudgetExceeded  # noqa: E402
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


@pytest.mark.parametrize("dp, protocol", [("central", "plaintext"), ("local", "plaintext")])
def test_a_round_where_every_client_diverges_releases_nothing(tmp_path, dp, protocol):
    rows = train(_config(tmp_path, dp=dp, protocol=protocol, rounds=2, lr=1e6)).metrics
    assert [row["aborted"].startswith("every client's local training diverged")
            for row in rows] == [True, True]
    if dp == "central":  # nothing was aggregated, so nothing was released
        assert [row["epsilon"] for row in rows] == [0.0, 0.0]
    else:  # local DP accounts an aborted round as released (conservative: nothing left here)
        assert 0 < rows[0]["epsilon"] < rows[1]["epsilon"] < 3.0


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


@pytest.mark.parametrize("dp, protocol", [("central", "plaintext"), ("distributed", "secagg")])
def test_adaptive_clipping_moves_the_clip_at_the_fixed_clip_epsilon(tmp_path, dp, protocol):
    fixed = train(_config(tmp_path, "fixed", dp=dp, protocol=protocol))
    adaptive = train(_config(tmp_path, "adaptive", dp=dp, protocol=protocol, adaptive_clip=0.5,
                             adaptive_clip_lr=0.3, adaptive_clip_share=0.2))
    rows = adaptive.metrics
    # the count rides in the same release: the same calibration, the same epsilon per round
    assert [r["noise_multiplier"] for r in rows] == [r["noise_multiplier"] for r in fixed.metrics]
    assert [r["epsilon"] for r in rows] == pytest.approx([r["epsilon"] for r in fixed.metrics])
    # each round's clip follows the geometric rule from the previous round's noisy count
    assert rows[0]["clip_norm"] == 1.0 and all(r["unclipped_count"] is not None for r in rows)
    for before, after in zip(rows, rows[1:]):
        fraction = min(1.0, max(0.0, before["unclipped_count"] / len(before["survivors"])))
        assert after["clip_norm"] == pytest.approx(
            before["clip_norm"] * math.exp(-0.3 * (fraction - 0.5)))
    assert all(r["unclipped_count"] is None for r in fixed.metrics)
    header = (adaptive.run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "clip_norm" in header and "unclipped_count" in header


class Killed(Exception):
    """Stands in for the process dying."""


def test_a_resumed_adaptive_run_replays_the_clip(tmp_path):
    def kill_after_round_2(row, config):
        if row["round"] == 2:
            raise Killed

    config = _config(tmp_path, dp="central", protocol="plaintext", adaptive_clip=0.5)
    with pytest.raises(Killed):
        train(config, on_round=kill_after_round_2)
    rows = resume(config.run_dir).metrics
    fraction = min(1.0, max(0.0, rows[1]["unclipped_count"] / len(rows[1]["survivors"])))
    assert rows[2]["clip_norm"] == pytest.approx(
        rows[1]["clip_norm"] * math.exp(-0.2 * (fraction - 0.5)))


def test_adaptive_clipping_needs_dp():
    with pytest.raises(ConfigurationError, match="adaptive_clip"):
        TrainConfig(adaptive_clip=0.5)
    with pytest.raises(ConfigurationError, match="quantile"):
        TrainConfig(dp="central", epsilon=1.0, protocol="plaintext", adaptive_clip=1.5)


def test_cli_adaptive_clip_prints_the_clip_in_the_round_line(tmp_path, capsys):
    code = main(["train", "--dp", "central", "--epsilon", "3", "--clip-norm", "0.5",
                 "--adaptive-clip", "0.5", "--protocol", "plaintext", "--clients", "4",
                 "--rounds", "2", "--hidden", "8", "--local-epochs", "1",
                 "--run-dir", str(tmp_path / "r")])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("round")]
    assert "clip-norm 0.5 " in lines[0] + " " and "clip-norm" in lines[1]


@pytest.mark.skipif(importlib.util.find_spec("opacus") is not None,
                    reason="opacus is installed: tests/dp/test_dpsgd.py covers DP-SGD")
def test_dp_sgd_without_opacus_fails_before_any_round(tmp_path):
    with pytest.raises(BackendUnavailable, match="dp-sgd"):
        train(_config(tmp_path, dp="central", protocol="plaintext", dp_sgd=1.0))
    assert not (tmp_path / "run" / "metrics.json").exists()
