"""Acceptance: federated training under SecAgg matches plaintext FedAvg.

On digits with 10 non-IID clients and the same seed, SecAgg training ends within 0.5 percentage
points of plaintext FedAvg's test accuracy, and every round's SecAgg aggregate of the very same
deltas equals the plaintext mean to within the aggregator's quantization error.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytestmark = pytest.mark.train

from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.loop import train  # noqa: E402
from fedsecure.fl.server import secure_aggregate  # noqa: E402
from fedsecure.protocols.base import available_protocols  # noqa: E402

if "secagg" not in available_protocols():
    pytest.skip("the secagg protocol is not registered in this build", allow_module_level=True)


def test_secagg_training_matches_plaintext_fedavg(tmp_path):
    base = TrainConfig(seed=0)  # the default job: digits, 10 Dirichlet(0.5) clients
    assert (base.dataset, base.clients, base.partition) == ("digits", 10, "dirichlet")
    comparisons = []

    def plaintext_and_secagg(protocol, spec, inputs, *, options, deadline_s, stragglers=()):
        plain = secure_aggregate("plaintext", spec, inputs, options={}, deadline_s=deadline_s)
        secure = secure_aggregate("secagg", spec, inputs, options={}, deadline_s=deadline_s)
        comparisons.append((plain, secure))
        return plain

    plain_run = train(TrainConfig(**dict(base.to_dict(), protocol="plaintext",
                                         run_dir=str(tmp_path / "plain"))),
                      aggregate=plaintext_and_secagg)
    secure_run = train(TrainConfig(**dict(base.to_dict(), protocol="secagg",
                                          run_dir=str(tmp_path / "secagg"))))

    assert len(comparisons) == base.rounds
    for plain, secure in comparisons:
        assert secure.error is None and secure.result.survivors == plain.result.survivors
        bound = secure.quantization_error
        assert 0 < bound <= 2.0**-16
        assert np.max(np.abs(secure.result.mean - plain.result.mean)) <= bound
    plain_accuracy = plain_run.metrics[-1]["accuracy"]
    secure_accuracy = secure_run.metrics[-1]["accuracy"]
    assert plain_accuracy > 0.85
    assert abs(secure_accuracy - plain_accuracy) <= 0.005
    assert all(row["bytes"] > 0 and row["aborted"] is None for row in secure_run.metrics)


def test_a_ring_that_would_overflow_is_refused_before_training(tmp_path):
    from fedsecure.errors import ConfigurationError

    config = TrainConfig(clip=1e13, run_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigurationError, match=r"^scale_bits=16: .*needs a \d+-bit ring"):
        train(config)
    assert not (tmp_path / "run").exists()
