"""Every expected failure is one line on stderr naming the value and the fix, with the exit
status of the table in docs/cli.md (tests run the command as a user does)."""

from __future__ import annotations

import re

import pytest

from .conftest import ROOT, one_line_error, run_python


def test_version(fedsecure):
    done = fedsecure("--version")
    assert done.returncode == 0
    assert re.fullmatch(r"fedsecure \S+", done.stdout.strip())


def test_unknown_flag_suggests_the_nearest_one_without_the_usage(fedsecure):
    line = one_line_error(fedsecure("simulate", "--dimension", "10"), 2)
    assert line.startswith("fedsecure simulate: error: unrecognized arguments: --dimension 10")
    assert "did you mean --dim" in line


def test_unknown_train_flag_epochs(fedsecure):
    line = one_line_error(fedsecure("train", "--epochs", "3"), 2)
    assert "unrecognized arguments: --epochs 3" in line
    assert "did you mean --local-epochs" in line


def test_abbreviated_flags_are_not_guessed(fedsecure):
    line = one_line_error(fedsecure("simulate", "--clie", "4"), 2)
    assert "did you mean" in line and "--clients" in line


def test_missing_command_and_bad_type(fedsecure):
    assert "required: COMMAND" in one_line_error(fedsecure(), 2)
    line = one_line_error(fedsecure("simulate", "--clients", "many"), 2)
    assert "--clients: invalid int value: 'many'" in line


def test_help_text_has_no_rest_markup_and_lists_every_protocol(fedsecure):
    for command in ([], ["simulate"], ["train"], ["mpi-round"]):
        done = fedsecure(*command, "--help")
        assert done.returncode == 0, done.stderr
        assert "``" not in done.stdout
    train_help = fedsecure("train", "--help").stdout
    assert re.search(r"ckks,.*plaintext,.*secagg", train_help, re.S)
    assert "--allow-small-cohort" in train_help
    assert "--allow-small-cohort" in fedsecure("simulate", "--help").stdout


@pytest.mark.parametrize(("argv", "expected"), [
    (["simulate", "--clients", "1"], "fedsecure simulate: error: --clients=1: must be"),
    (["simulate", "--dropout", "1.5"], "fedsecure simulate: error: --dropout=1.5: must be in"),
    (["simulate", "--protocol", "rot13"], "--protocol='rot13': choose one of"),
    (["simulate", "--protocol", "ckks", "--security", "malicious"],
     "--security='malicious': is available for --protocol secagg and secaggplus"),
])
def test_bad_simulate_values(fedsecure, argv, expected):
    assert expected in one_line_error(fedsecure(*argv), 2)


def test_an_aborted_simulated_round_exits_1(fedsecure):
    line = one_line_error(fedsecure("simulate", "--clients", "10", "--dim", "10",
                                    "--dropout", "0.8", "--quiet"), 1)
    assert line.startswith("fedsecure simulate: error: round aborted:")
    assert "--dropout, now 0.8" in line


def test_missing_extra_names_the_install_command(tmp_path):
    """Run as if TenSEAL were not installed: exit 3 and the pip command, in one line."""
    done = run_python("-c", "import sys; sys.modules['tenseal'] = None\n"
                      "from fedsecure.cli import main; sys.exit(main())",
                      "simulate", "--protocol", "ckks", "--clients", "4", "--dim", "10",
                      "--quiet", cwd=tmp_path)
    line = one_line_error(done, 3)
    assert line == ("fedsecure simulate: error: tenseal is not installed; install it with:"
                    " pip install 'fedsecure[he]'")


def test_train_without_torch_names_the_extra(tmp_path):
    done = run_python("-c", "import sys; sys.modules['torch'] = None\n"
                      "from fedsecure.cli import main; sys.exit(main())", "train",
                      cwd=tmp_path)
    assert "pip install 'fedsecure[train]'" in one_line_error(done, 3)


def test_the_exit_status_table_in_the_docs_matches_the_code():
    from fedsecure.cli import EXIT_STATUS

    table = (ROOT / "docs" / "cli.md").read_text()
    for status in EXIT_STATUS.values():
        assert re.search(rf"^\| `{status}` \|", table, re.MULTILINE), status
