"""Stragglers: clients whose messages miss the round deadline are cut off and the round goes
on with the others, under every protocol."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytestmark = pytest.mark.train

from fedsecure.errors import ConfigurationError  # noqa: E402
from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.loop import train  # noqa: E402


@pytest.mark.parametrize("protocol", ["plaintext", "secagg"])
def test_stragglers_are_cut_off_by_the_deadline(tmp_path, protocol):
    config = TrainConfig(rounds=3, stragglers=0.2, deadline_s=5.0, protocol=protocol,
                         run_dir=str(tmp_path / protocol))
    run = train(config)
    for row in run.metrics:
        assert len(row["stragglers"]) == 2
        assert sorted(row["dropped"]) == row["stragglers"]
        assert sorted(row["survivors"] + row["dropped"]) == row["sampled"]
        assert row["aborted"] is None
    assert len({tuple(row["stragglers"]) for row in run.metrics}) > 1  # drawn per round
    assert run.metrics[-1]["accuracy"] > 0.7


def test_straggler_fraction_is_validated():
    with pytest.raises(ConfigurationError, match="^stragglers=1.0"):
        TrainConfig(stragglers=1.0)
