"""Robust rules and attacks in training: configuration, the attacks themselves, and short runs
whose per-round rows report the rule's verdicts."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytestmark = pytest.mark.train

from fedsecure.errors import ConfigurationError  # noqa: E402
from fedsecure.fl import robust_round  # noqa: E402
from fedsecure.fl.attacks import alie_z, poison_data, poison_updates, stamp_trigger  # noqa: E402
from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.loop import train  # noqa: E402

SMALL = dict(clients=10, rounds=2, hidden=8, local_epochs=1, protocol="plaintext", seed=3,
             threads=1)


@pytest.mark.parametrize("changes, match", [
    ({"attack": "sign-flip"}, "malicious"),
    ({"malicious": 0.2}, "malicious"),
    ({"attack": "teleport", "malicious": 0.2}, "attack"),
    ({"attack": "scaling", "malicious": 0.2, "attack_options": {"sigma": 1}}, "not accepted"),
    ({"robust": "krum", "protocol": "secagg"}, "--robust-groups"),
    ({"robust": "average"}, "unknown rule"),
    ({"robust_groups": 2}, "needs a rule"),
    ({"robust": "mean", "robust_max_norm": 1.0}, "needs robust_groups"),
    ({"malicious": 1.0, "attack": "ipm"}, "fraction"),
])
def test_bad_robust_configurations_are_refused(changes, match):
    with pytest.raises(ConfigurationError, match=match):
        TrainConfig(**dict(SMALL, **changes))


def test_aggregation_maps_the_config_to_a_protocol():
    plain = TrainConfig(**dict(SMALL, robust="median", attack="ipm", malicious=0.3))
    assert robust_round.aggregation(plain) == (
        "robust", {"rule": "median", "f": 3, "rule_options": {}})
    grouped = TrainConfig(**dict(SMALL, protocol="secagg", robust="median", robust_groups=5,
                                 attack="ipm", malicious=0.3))
    protocol, options = robust_round.aggregation(grouped)
    assert protocol == "grouped" and options["inner"] == "secagg" and options["f"] == 3
    assert robust_round.aggregation(TrainConfig(**SMALL)) == ("plaintext", {})


def test_malicious_clients_are_a_fixed_seeded_fraction():
    cfg = TrainConfig(**dict(SMALL, attack="sign-flip", malicious=0.3))
    assert robust_round.malicious_clients(cfg, 7) == robust_round.malicious_clients(cfg, 7)
    assert len(robust_round.malicious_clients(cfg, 7)) == 3


def test_update_attacks():
    rng = np.random.default_rng(0)
    own, honest = rng.normal(size=(2, 5)), rng.normal(size=(8, 5))
    assert np.array_equal(poison_updates("sign-flip", own, honest, rng=rng), -own)
    assert np.array_equal(poison_updates("scaling", own, honest, rng=rng, scale=3.0), 3 * own)
    noise = poison_updates("gaussian", np.zeros((2, 20000)), honest, rng=rng, sigma=2.0)
    assert noise.std() == pytest.approx(2.0, rel=0.02)
    ipm = poison_updates("ipm", own, honest, rng=rng)
    assert np.allclose(ipm, -0.5 * honest.mean(axis=0))
    alie = poison_updates("alie", own, honest, rng=rng)
    z = alie_z(10, 2)
    assert np.allclose(alie, honest.mean(axis=0) - z * honest.std(axis=0, ddof=1))
    assert z > 0
    with pytest.raises(ConfigurationError, match="data attack"):
        poison_updates("label-flip", own, honest, rng=rng)


def test_data_attacks():
    rng = np.random.default_rng(1)
    x, y = torch.zeros((200, 6)), torch.arange(200) % 10
    fx, fy = poison_data("label-flip", x, y, n_classes=10, rng=rng)
    assert torch.equal(fy, 9 - y) and fx is x
    bx, by = poison_data("backdoor", x, y, n_classes=10, rng=rng, fraction=0.5, target=7)
    stamped = (bx[:, -4:] == 3.0).all(dim=1)
    assert 60 < int(stamped.sum()) < 140
    assert bool((by[stamped] == 7).all()) and torch.equal(by[~stamped], y[~stamped])
    assert torch.equal(x, torch.zeros((200, 6)))  # the originals are untouched
    assert (stamp_trigger(np.zeros((2, 6)), trigger_features=2, trigger_value=1.0)[:, -2:]
            == 1).all()


def test_plaintext_robust_run_reports_rejected_malicious_clients(tmp_path):
    cfg = TrainConfig(**dict(SMALL, robust="multi-krum", attack="scaling", malicious=0.2,
                             attack_options={"scale": 50.0}, run_dir=str(tmp_path / "r")))
    result = train(cfg)
    for row in result.metrics:
        report = row["robust"]
        assert report["rule"] == "multi-krum" and report["inputs"] == 10
        assert sorted(c for members in report["rejected"] for c in members) == row["malicious"]
        assert len(row["malicious"]) == 2


def test_grouped_secure_run_with_a_backdoor_reports_its_success_rate(tmp_path):
    cfg = TrainConfig(**dict(SMALL, protocol="secagg", robust="median", robust_groups=3,
                             attack="backdoor", malicious=0.1, rounds=1,
                             run_dir=str(tmp_path / "g")))
    (row,) = train(cfg).metrics
    assert row["robust"]["inputs"] == 3 and row["aborted"] is None
    assert 0.0 <= row["backdoor_success"] <= 1.0
    assert len(row["malicious"]) == 1
