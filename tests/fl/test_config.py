"""TrainConfig validation, TOML loading and CLI flags: one clear line naming the option."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytestmark = pytest.mark.train

from fedsecure.cli import build_parser, main  # noqa: E402
from fedsecure.errors import ConfigurationError  # noqa: E402
from fedsecure.fl.config import TrainConfig  # noqa: E402
from fedsecure.protocols.base import available_protocols  # noqa: E402


def test_defaults_are_the_documented_job():
    config = TrainConfig()
    assert (config.dataset, config.clients, config.partition, config.protocol) == (
        "digits", 10, "dirichlet", "secagg")
    assert 10 <= config.rounds <= 15 and 2.0 <= config.clip <= 4.0
    assert config.clients_per_round == 10 and config.epsilon is None


@pytest.mark.parametrize("option, value, rule", [
    ("rounds", 0, "must be an integer >= 1"),
    ("rounds", 2.5, "must be an integer >= 1"),
    ("clients", 1, "must be an integer >= 2"),
    ("fraction", 0.0, r"must be a number in \(0, 1\]"),
    ("fraction", 1.5, r"must be a number in \(0, 1\]"),
    ("fraction", 0.1, "samples 1 of 10 clients per round"),
    ("epsilon", -1.0, "must be a number > 0"),
    ("epsilon", 2.0, "give both --dp and --epsilon"),
    ("dp", "shuffled", "must be one of"),
    ("delta", 1.0, r"must be a number in \(0, 1\)"),
    ("clip_norm", 0.0, "must be a number > 0"),
    ("dp_survivors", 1.5, r"must be a fraction in \(0, 1\]"),
    ("alpha", 0.0, "must be a number > 0"),
    ("partition", "shards", "must be one of"),
    ("lr", -0.1, "must be a number > 0"),
    ("momentum", 1.0, r"must be a number in \[0, 1\)"),
    ("mu", -1.0, "must be a number >= 0"),
    ("clip", float("inf"), "must be a number > 0"),
    ("deadline_s", 0, "must be a number of seconds > 0"),
    ("device", "tpu", "must be auto, cpu, cuda or cuda:N"),
    ("model", "resnet", "must be one of"),
    ("batch_size", 0, "must be an integer >= 1"),
    ("threads", -1, "must be an integer >= 0"),
    ("personalize", "yes", "must be true or false"),
    ("dataset", "mnist", "must be one of"),
    ("dataset", "csv:/no/such.csv", "does not exist"),
    ("test_fraction", 1.0, r"must be a number in \(0, 1\)"),
])
def test_each_bad_option_is_named_in_one_line(option, value, rule):
    with pytest.raises(ConfigurationError, match=rf"^{option}={value!r}: .*{rule}") as info:
        TrainConfig(**{option: value})
    assert "\n" not in str(info.value)


def test_unknown_protocol_lists_the_available_ones():
    with pytest.raises(ConfigurationError) as info:
        TrainConfig(protocol="homomorphic-magic")
    message = str(info.value)
    assert message.startswith("protocol='homomorphic-magic': unknown; choose one of")
    assert all(name in message for name in available_protocols())
    assert {"plaintext", "secagg"} <= set(available_protocols())


def test_toml_then_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('rounds = 3\nclients = 6\nlr = 1\nprotocol = "plaintext"\n'
                    '[protocol_options]\n')
    config = TrainConfig.load(path, {"clients": 8})
    assert (config.rounds, config.clients, config.protocol) == (3, 8, "plaintext")
    assert config.lr == 1.0 and isinstance(config.lr, float)


@pytest.mark.parametrize("text, message", [
    ("round = 3\n", r"^round=3: unknown option in .*run.toml; known options: \["),
    ("rounds = 0\n", r"^rounds=0: must be an integer >= 1"),
    ("rounds = \n", r"^config='.*run.toml': invalid TOML"),
])
def test_toml_errors(tmp_path, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        TrainConfig.load(path)
    with pytest.raises(ConfigurationError, match=r"^config='.*missing.toml': cannot read"):
        TrainConfig.load(tmp_path / "missing.toml")


# --------------------------------------------------------------------------- CLI


def test_train_flags_map_onto_the_config():
    args = build_parser().parse_args(
        ["train", "--clients", "5", "--rounds", "2", "--protocol", "plaintext", "--alpha",
         "0.3", "--local-epochs", "1", "--batch-size", "16", "--personalize",
         "--device", "cpu", "--run-dir", "runs/x", "--fraction", "0.6", "--mu", "0.01",
         "--threads", "2"])
    from fedsecure.fl.cli import _overrides

    config = TrainConfig.load(None, _overrides(args))
    assert (config.clients, config.rounds, config.protocol, config.alpha) == (
        5, 2, "plaintext", 0.3)
    assert (config.local_epochs, config.batch_size, config.personalize) == (1, 16, True)
    assert (config.device, config.run_dir, config.fraction, config.mu, config.threads) == (
        "cpu", "runs/x", 0.6, 0.01, 2)
    assert callable(args.run)


def test_cli_reports_a_bad_option_in_one_line(capsys):
    assert main(["train", "--rounds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "fedsecure train: error: rounds=0: must be an integer >= 1"


def test_cli_resume_refuses_other_flags(capsys, tmp_path):
    assert main(["train", "--resume", str(tmp_path), "--clients", "3"]) == 2
    err = capsys.readouterr().err
    assert "resume=" in err and "['--clients']" in err


def test_cli_runs_and_resumes_a_small_job(capsys, tmp_path):
    run = tmp_path / "cli-run"
    argv = ["train", "--clients", "3", "--rounds", "2", "--protocol", "plaintext",
            "--hidden", "8", "--local-epochs", "1", "--run-dir", str(run), "--personalize"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("training digits: 3 clients (dirichlet partition)")
    assert lines[1].startswith("round   1/2  acc ") and " MB " in lines[1]
    assert lines[2].startswith("round   2/2  acc ")
    assert "final test accuracy" in lines[3] and str(run) in lines[3]
    assert lines[4].startswith("personalization: mean per-client accuracy")
    assert main(["train", "--resume", str(run), "--rounds", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "round " not in out and "after 3 rounds" in out
