"""The FedAvg/FedProx loop: aggregation through the interface, run directory, resume, stragglers,
personalization.  Most tests inject an exact in-the-clear aggregation function; the last ones run
the real in-process driver."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytest.importorskip("matplotlib", reason="matplotlib is not installed (extra: train)")
pytestmark = pytest.mark.train

from fedsecure.errors import ConfigurationError, ProtocolAborted  # noqa: E402
from fedsecure.fl import rundir  # noqa: E402
from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.fl.loop import resume, train  # noqa: E402
from fedsecure.fl.model import model_to_vector  # noqa: E402
from fedsecure.fl.server import AggregationReport, secure_aggregate  # noqa: E402

from .conftest import exact_mean_aggregate  # noqa: E402

SMALL = dict(clients=4, rounds=3, hidden=16, local_epochs=1, protocol="plaintext", seed=5)


def _config(tmp_path, name="run", **changes) -> TrainConfig:
    return TrainConfig(**dict(SMALL, run_dir=str(tmp_path / name), **changes))


def _assert_same_model(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_rounds_aggregate_through_the_interface_and_fill_the_run_dir(tmp_path):
    calls = []
    config = _config(tmp_path)
    result = train(config, aggregate=exact_mean_aggregate(calls))
    run = tmp_path / "run"
    assert [c["protocol"] for c in calls] == ["plaintext"] * 3
    for r, call in enumerate(calls, start=1):
        spec = call["spec"]
        assert spec.round == r and spec.n_clients == 4 and spec.clip == config.clip
        assert sorted(call["inputs"]) == [1, 2, 3, 4]
        weights = [w for _, w in call["inputs"].values()]
        # weights are the clients' sample counts: every training sample counted once
        assert all(isinstance(w, int) and 1 <= w <= spec.max_weight for w in weights)
        assert spec.max_weight == max(weights) and sum(weights) == 1437
    # metrics: accuracy improves, rows carry the aggregation's costs
    rows = json.loads((run / rundir.METRICS_JSON).read_text())
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert rows[-1]["accuracy"] > rows[0]["accuracy"] and rows[-1]["loss"] < rows[0]["loss"]
    assert rows[0]["bytes"] == 32 and rows[0]["phase_seconds"] == {"server:sum": 0.001}
    assert rows[0]["epsilon"] is None and rows[0]["clipped_fraction"] == 0.0
    with (run / rundir.METRICS_CSV).open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 3 and table[2]["accuracy"] == str(rows[2]["accuracy"])
    assert table[0]["seconds_server:sum"] == "0.001"
    # the CSV carries the JSON rows' fields: lists as JSON arrays, null as an empty cell
    assert set(table[0]) == (set(rows[0]) - {"phase_seconds"}) | {"seconds_server:sum"}
    for field in rundir.LIST_FIELDS:
        assert [json.loads(t[field]) for t in table] == [r[field] for r in rows]
    assert rows[0]["sampled"] == [1, 2, 3, 4] and rows[0]["stragglers"] == []
    assert table[0]["epsilon"] == "" and table[0]["aborted"] == ""
    assert (run / rundir.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # config.json records the device the run used, not "auto"
    assert config.device == "auto"
    assert json.loads((run / rundir.CONFIG_FILE).read_text()) == dict(
        config.to_dict(), device=str(result.model.state_dict()["0.weight"].device))
    saved = torch.load(run / rundir.MODEL_FILE, weights_only=True)
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(saved[name], tensor)
    checkpoint = torch.load(run / rundir.CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["round"] == 3 and "dp_accountant" in checkpoint
    assert checkpoint["dp_accountant"] is None
    assert checkpoint["rng"] == {"scheme": rundir.RNG_SCHEME, "seed": 5}


def test_the_mean_delta_is_added_to_the_global_model(tmp_path):
    seen = []

    def aggregate(protocol, spec, inputs, *, options, deadline_s, stragglers=()):
        report = exact_mean_aggregate()(protocol, spec, inputs, options=options,
                                        deadline_s=deadline_s)
        seen.append(report.result.mean)
        return report

    one = train(_config(tmp_path, "one", rounds=1), aggregate=aggregate)
    zero = train(_config(tmp_path, "zero", rounds=1), aggregate=lambda *a, **k: replace(
        exact_mean_aggregate()(*a, **k), result=None, error=ProtocolAborted("test abort")))
    np.testing.assert_allclose(model_to_vector(one.model) - model_to_vector(zero.model),
                               seen[0], atol=1e-6)
    assert zero.metrics[0]["aborted"] == "test abort" and zero.metrics[0]["survivors"] == []


def test_an_aborted_round_leaves_the_model_unchanged(tmp_path):
    exact = exact_mean_aggregate()

    def abort_round_2(protocol, spec, inputs, **kwargs):
        report = exact(protocol, spec, inputs, **kwargs)
        if spec.round == 2:
            return AggregationReport(result=None, error=ProtocolAborted("too few survivors"))
        return report

    result = train(_config(tmp_path), aggregate=abort_round_2)
    first, second, third = result.metrics
    assert second["aborted"] == "too few survivors" and first["aborted"] is None
    assert second["accuracy"] == first["accuracy"] and second["loss"] == first["loss"]
    assert second["dropped"] == second["sampled"]
    assert third["loss"] != second["loss"]


def test_client_sampling_is_seeded_and_varies_by_round(tmp_path):
    calls = []
    config = _config(tmp_path, clients=8, fraction=0.5, rounds=3)
    result = train(config, aggregate=exact_mean_aggregate(calls))
    sampled = [row["sampled"] for row in result.metrics]
    assert all(len(s) == 4 and len(set(s)) == 4 for s in sampled)
    assert len({tuple(s) for s in sampled}) > 1
    again = train(replace(config, run_dir=str(tmp_path / "again")),
                  aggregate=exact_mean_aggregate())
    assert [row["sampled"] for row in again.metrics] == sampled
    assert all(c["spec"].n_clients == 4 for c in calls)


def test_deltas_are_clipped_and_counted(tmp_path):
    calls = []
    result = train(_config(tmp_path, rounds=1, clip=1e-3), aggregate=exact_mean_aggregate(calls))
    vectors = [v for v, _ in calls[0]["inputs"].values()]
    assert max(np.abs(v).max() for v in vectors) == pytest.approx(1e-3)
    assert result.metrics[0]["clipped_fraction"] > 0.3
    assert calls[0]["spec"].clip == 1e-3


def test_deadline_is_passed_through_to_aggregation(tmp_path):
    calls = []
    train(_config(tmp_path, rounds=1, deadline_s=2.5), aggregate=exact_mean_aggregate(calls))
    assert calls[0]["deadline_s"] == 2.5


def test_fedprox_changes_the_trajectory(tmp_path):
    avg = train(_config(tmp_path, "avg", rounds=1), aggregate=exact_mean_aggregate())
    prox = train(_config(tmp_path, "prox", rounds=1, mu=0.5), aggregate=exact_mean_aggregate())
    assert not np.array_equal(model_to_vector(avg.model), model_to_vector(prox.model))


def test_threads_option_sets_torchs_cpu_threads(tmp_path):
    torch.set_num_threads(2)
    train(_config(tmp_path, "keep", rounds=1, threads=0), aggregate=exact_mean_aggregate())
    assert torch.get_num_threads() == 2
    train(_config(tmp_path, "one", rounds=1, threads=1), aggregate=exact_mean_aggregate())
    assert torch.get_num_threads() == 1


# --------------------------------------------------------------------------- resume


class Killed(Exception):
    """Stands in for the process dying."""


def test_resume_after_a_kill_reproduces_the_uninterrupted_run_bit_exactly(tmp_path):
    full = train(_config(tmp_path, "full", rounds=4), aggregate=exact_mean_aggregate())

    def kill_after_round_2(row, config):
        if row["round"] == 2:
            raise Killed

    config = _config(tmp_path, "killed", rounds=4)
    with pytest.raises(Killed):
        train(config, aggregate=exact_mean_aggregate(), on_round=kill_after_round_2)
    assert rundir.load_checkpoint(tmp_path / "killed")["round"] == 2
    resumed = resume(tmp_path / "killed", aggregate=exact_mean_aggregate())
    _assert_same_model(full.model, resumed.model)
    assert [r["round"] for r in resumed.metrics] == [1, 2, 3, 4]
    assert [r["loss"] for r in resumed.metrics] == [r["loss"] for r in full.metrics]


def test_resume_after_a_kill_in_the_middle_of_a_round(tmp_path):
    full = train(_config(tmp_path, "full", rounds=3), aggregate=exact_mean_aggregate())
    exact = exact_mean_aggregate()

    def die_in_round_3(protocol, spec, inputs, **kwargs):
        if spec.round == 3:
            raise Killed
        return exact(protocol, spec, inputs, **kwargs)

    with pytest.raises(Killed):
        train(_config(tmp_path, "killed", rounds=3), aggregate=die_in_round_3)
    resumed = resume(tmp_path / "killed", aggregate=exact_mean_aggregate())
    _assert_same_model(full.model, resumed.model)


def test_resume_can_extend_a_finished_run(tmp_path):
    full = train(_config(tmp_path, "full", rounds=3), aggregate=exact_mean_aggregate())
    train(_config(tmp_path, "short", rounds=2), aggregate=exact_mean_aggregate())
    extended = resume(tmp_path / "short", rounds=3, aggregate=exact_mean_aggregate())
    _assert_same_model(full.model, extended.model)
    assert json.loads((tmp_path / "short" / rundir.CONFIG_FILE).read_text())["rounds"] == 3


def _rewrite_with_digest(run_dir, checkpoint) -> None:
    """Save ``checkpoint`` as the run's checkpoint with a matching digest (a deliberate edit)."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    (run_dir / rundir.CHECKPOINT_FILE).write_bytes(buffer.getvalue())
    (run_dir / rundir.DIGEST_FILE).write_text(
        f"{hashlib.sha256(buffer.getvalue()).hexdigest()}  {rundir.CHECKPOINT_FILE}\n")


def test_resume_and_run_dir_errors(tmp_path):
    train(_config(tmp_path, rounds=2), aggregate=exact_mean_aggregate())
    with pytest.raises(ConfigurationError, match=r"^run_dir=.*already holds a run"):
        train(_config(tmp_path, rounds=2), aggregate=exact_mean_aggregate())
    with pytest.raises(ConfigurationError, match=r"^rounds=1: .*already completed 2 rounds"):
        resume(tmp_path / "run", rounds=1)
    with pytest.raises(ConfigurationError, match=r"^resume=.*no checkpoint.pt"):
        resume(tmp_path / "nothing-here")
    checkpoint = torch.load(tmp_path / "run" / rundir.CHECKPOINT_FILE, weights_only=True)
    checkpoint["rng"]["scheme"] = "something older"
    _rewrite_with_digest(tmp_path / "run", checkpoint)
    with pytest.raises(ConfigurationError, match="cannot be continued exactly"):
        resume(tmp_path / "run")


def test_more_clients_than_samples_fails_before_any_work(tmp_path):
    rows = "\n".join(f"{i},{i % 2}" for i in range(10))
    (tmp_path / "tiny.csv").write_text(rows)
    config = _config(tmp_path, dataset=f"csv:{tmp_path / 'tiny.csv'}", clients=9)
    with pytest.raises(ConfigurationError, match=r"^clients=9: more clients than the 8"):
        train(config, aggregate=exact_mean_aggregate())
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- personalization


def test_personalization_improves_accuracy_on_skewed_clients(tmp_path):
    config = _config(tmp_path, clients=5, partition="dirichlet", alpha=0.1, rounds=2,
                     personalize=True, personalize_epochs=2)
    result = train(config, aggregate=exact_mean_aggregate())
    rows = result.personalization
    assert [r["client"] for r in rows] == [1, 2, 3, 4, 5]  # numbered as in the metrics
    assert sum(r["train_samples"] for r in rows) == 1437
    saved = json.loads((tmp_path / "run" / rundir.PERSONALIZATION_FILE).read_text())
    assert saved == rows
    from fedsecure.fl.personalize import summarize

    before, after = summarize(rows)
    assert after > before + 0.05


# --------------------------------------------------------------------------- real driver


def test_training_over_the_real_plaintext_protocol(tmp_path):
    """secure_aggregate -> make_aggregator -> simulate_round, end to end."""
    real = train(_config(tmp_path, "real", rounds=2))
    exact = train(_config(tmp_path, "exact", rounds=2), aggregate=exact_mean_aggregate())
    np.testing.assert_allclose(model_to_vector(real.model), model_to_vector(exact.model),
                               atol=1e-6)
    row = real.metrics[-1]
    # the plaintext baseline sends float32: 4 bytes per value and client, plus small overhead
    d = len(model_to_vector(real.model))
    assert 4 * 4 * d < row["bytes"] < 4 * 4 * d + 4 * 200
    assert row["quantization_error"] == pytest.approx(real.config.clip * 2.0**-24)
    assert row["survivors"] == row["sampled"] and row["aborted"] is None
    assert any(name.startswith("server:") for name in row["phase_seconds"])


def test_bad_protocol_options_are_refused_in_preflight(tmp_path):
    config = _config(tmp_path, protocol_options={"no_such_option": 1})
    with pytest.raises(ConfigurationError, match=r"^protocol_options=.*no_such_option"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_secure_aggregate_passes_a_deadline_to_the_driver(monkeypatch):
    from fedsecure.fl import server
    from fedsecure.protocols.base import AggregationSpec
    from fedsecure.runtime.driver import Deadlines

    seen = []

    def recording(aggregator, inputs, **kwargs):
        seen.append(kwargs["deadlines"])
        return real_simulate_round(aggregator, inputs, **kwargs)

    real_simulate_round = server.simulate_round
    monkeypatch.setattr(server, "simulate_round", recording)
    spec = AggregationSpec(n_clients=3, vector_length=4, max_weight=5, clip=1.0)
    inputs = {1: (np.full(4, 0.5), 5), 2: (np.full(4, -0.5), 3)}  # client 3 never shows up
    report = secure_aggregate("plaintext", spec, inputs, options={}, deadline_s=0.5)
    secure_aggregate("plaintext", spec, inputs, options={}, deadline_s=None)
    assert seen == [Deadlines(default_s=0.5), Deadlines()]
    assert report.result.survivors == (1, 2) and report.result.dropped == (3,)
    np.testing.assert_allclose(report.result.mean, 0.5 * 2 / 8)
    assert report.bytes_total > 0 and report.quantization_error == 2.0**-24  # float32, clip 1


# --------------------------------------------------------------------------- failures


def test_a_diverging_client_is_dropped_from_its_round(tmp_path, monkeypatch):
    from fedsecure.fl import loop

    honest = loop.local_update

    def client_2_diverges_in_round_1(fed, round_index, client):
        update = honest(fed, round_index, client)
        if round_index == 1 and client == 1:  # partition 1 is client 2
            return replace(update, delta=np.full_like(update.delta, np.nan),
                           train_loss=float("nan"))
        return update

    monkeypatch.setattr(loop, "local_update", client_2_diverges_in_round_1)
    calls = []
    result = train(_config(tmp_path, rounds=2), aggregate=exact_mean_aggregate(calls))
    first, second = result.metrics
    assert first["diverged"] == [2] and first["aborted"] is None
    assert sorted(calls[0]["inputs"]) == [1, 3, 4]  # round id 2 never sent anything
    assert calls[0]["spec"].n_clients == 4
    assert np.isfinite(first["train_loss"])
    assert second["diverged"] == [] and sorted(calls[1]["inputs"]) == [1, 2, 3, 4]
    assert np.isfinite(model_to_vector(result.model)).all()


def test_a_round_where_every_client_diverges_aborts_and_the_run_failed(tmp_path):
    from fedsecure.fl.report import format_round, run_failure

    calls = []
    config = _config(tmp_path, rounds=1, lr=1e6)
    result = train(config, aggregate=exact_mean_aggregate(calls))
    (row,) = result.metrics
    assert calls == []  # nothing was aggregated
    assert row["diverged"] == row["dropped"] == row["sampled"] == [1, 2, 3, 4]
    assert row["aborted"].startswith("every client's local training diverged")
    assert row["train_loss"] is None
    line = format_round(row, 1)
    assert "clients 0/4" in line and "diverged 1,2,3,4" in line and "ABORTED" in line
    failure = run_failure(result.metrics, result.config)
    assert failure.startswith("no round trained the model: round 1 aborted")
    assert "lower --lr (now 1e+06)" in failure


def test_run_failure_needs_every_round_of_the_invocation_to_abort(tmp_path):
    from fedsecure.fl.report import run_failure

    exact = exact_mean_aggregate()

    def abort_round_2(protocol, spec, inputs, **kwargs):
        if spec.round == 2:
            return AggregationReport(result=None, error=ProtocolAborted("too few survivors"))
        return exact(protocol, spec, inputs, **kwargs)

    result = train(_config(tmp_path, rounds=2), aggregate=abort_round_2)
    assert run_failure(result.metrics, result.config) is None
    # a resumed invocation that played only the aborted round failed
    assert run_failure(result.metrics[1:], result.config).startswith(
        "no round trained the model: round 2 aborted (last: too few survivors)")


def test_a_checkpoint_with_arbitrary_objects_is_refused_without_torchs_advice(tmp_path):
    train(_config(tmp_path, rounds=1), aggregate=exact_mean_aggregate())
    run = tmp_path / "run"
    checkpoint = torch.load(run / rundir.CHECKPOINT_FILE, weights_only=True)
    _rewrite_with_digest(run, dict(checkpoint, model=Killed()))  # weights_only refuses it
    with pytest.raises(ConfigurationError) as caught:
        resume(run)
    assert "is not a readable checkpoint (UnpicklingError)" in str(caught.value)
    assert "weights_only" not in str(caught.value)
    _rewrite_with_digest(run, dict(checkpoint, metrics_json="[]"))  # 0 rounds, but round is 1
    with pytest.raises(ConfigurationError, match="missing or inconsistent fields"):
        resume(run)


def test_allow_small_cohort_reaches_every_rounds_spec(tmp_path):
    from fedsecure.cli import build_parser
    from fedsecure.fl.cli import _overrides

    args = build_parser().parse_args(["train", "--allow-small-cohort"])
    assert _overrides(args) == {"allow_small_cohort": True}
    for allowed in (False, True):
        calls = []
        train(_config(tmp_path, f"allowed-{allowed}", rounds=1, allow_small_cohort=allowed),
              aggregate=exact_mean_aggregate(calls))
        assert calls[0]["spec"].allow_small_cohort is allowed
    with pytest.raises(ConfigurationError, match="^allow_small_cohort='yes'"):
        TrainConfig(allow_small_cohort="yes")
