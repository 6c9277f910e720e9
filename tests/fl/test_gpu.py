"""One training round on a CUDA device (skipped on CPU-only machines)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytestmark = [
    pytest.mark.train,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

from fedsecure.fl import rundir  # noqa: E402
from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.loop import resume, train  # noqa: E402
from fedsecure.fl.model import model_to_vector  # noqa: E402


def test_one_secagg_round_on_cuda_matches_the_cpu(tmp_path):
    options = dict(clients=4, rounds=1, local_epochs=1, protocol="secagg", seed=3)
    gpu = train(TrainConfig(**options, device="cuda", run_dir=str(tmp_path / "gpu")))
    assert all(t.device.type == "cuda" for t in gpu.model.state_dict().values())
    assert gpu.metrics[0]["accuracy"] > 0.5 and gpu.metrics[0]["aborted"] is None
    cpu = train(TrainConfig(**options, device="cpu", run_dir=str(tmp_path / "cpu")))
    # Same seeds, same batches: only float32 kernel differences and quantization separate them.
    np.testing.assert_allclose(model_to_vector(gpu.model), model_to_vector(cpu.model),
                               atol=1e-3)
    assert abs(gpu.metrics[0]["accuracy"] - cpu.metrics[0]["accuracy"]) <= 0.02
    # A checkpoint written from the GPU resumes on the CPU.
    assert rundir.load_checkpoint(tmp_path / "gpu")["model"]["0.weight"].device.type == "cpu"
    more = resume(tmp_path / "gpu", rounds=2, device="cpu")
    assert len(more.metrics) == 2 and more.metrics[1]["accuracy"] > 0.5
