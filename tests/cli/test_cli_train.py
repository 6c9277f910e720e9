"""``fedsecure train`` as a user runs it: failed runs exit non-zero with one line, checkpoints
are verified before use, the run directory tells the truth about the run."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

pytest.importorskip("torch", reason="torch is not installed (extra: train)")
pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytest.importorskip("matplotlib", reason="matplotlib is not installed (extra: train)")
pytestmark = pytest.mark.train

from .conftest import one_line_error  # noqa: E402

SMALL = ("--clients", "4", "--hidden", "8", "--local-epochs", "1", "--device", "cpu")


def test_a_run_where_every_round_aborts_exits_1(fedsecure):
    done = fedsecure("train", *SMALL, "--rounds", "1", "--stragglers", "0.9",
                     "--run-dir", "run")
    line = one_line_error(done, 1)
    assert line.startswith("fedsecure train: error: no round trained the model: round 1"
                           " aborted (last: too few clients advertised keys")
    assert "lower --stragglers (now 0.9)" in line
    assert "ABORTED" in done.stdout and "clients 0/4  dropped 1,2,3,4" in done.stdout
    assert "final test accuracy" not in done.stdout


def test_diverging_clients_are_dropped_not_a_traceback(fedsecure):
    done = fedsecure("train", *SMALL, "--rounds", "1", "--lr", "1e6", "--protocol",
                     "plaintext", "--run-dir", "run")
    line = one_line_error(done, 1)
    assert "every client's local training diverged" in line and "lower --lr (now 1e+06)" in line
    assert "diverged 1,2,3,4" in done.stdout


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One small successful run (2 rounds, plaintext), shared by the tests below."""
    from .conftest import run_python

    where = tmp_path_factory.mktemp("finished")
    done = run_python("-m", "fedsecure", "train", *SMALL, "--rounds", "2", "--protocol",
                      "plaintext", "--run-dir", "run", cwd=where)
    assert done.returncode == 0, done.stderr
    return where / "run", done


def test_a_successful_run_reports_clients_and_records_what_it_used(finished_run):
    run, done = finished_run
    assert done.stderr == ""
    lines = [line for line in done.stdout.splitlines() if line.startswith("round ")]
    assert len(lines) == 2 and all("clients 4/4" in line for line in lines)
    assert "final test accuracy" in done.stdout
    assert json.loads((run / "config.json").read_text())["device"] == "cpu"
    rows = json.loads((run / "metrics.json").read_text())
    with (run / "metrics.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert set(table[0]) == (set(rows[0]) - {"phase_seconds"}) | {
        f"seconds_{p}" for p in rows[0]["phase_seconds"]}
    for row, cells in zip(rows, table, strict=True):
        for field in ("sampled", "survivors", "dropped", "stragglers", "diverged"):
            assert json.loads(cells[field]) == row[field]
    assert rows[0]["sampled"] == [1, 2, 3, 4]  # clients numbered as the protocol numbers them


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbage(data: bytes) -> bytes:
    return b"\x80\x02not a checkpoint" * 100


def _flip_a_bit(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x04]) + data[middle + 1:]


@pytest.mark.parametrize("damage", [_truncate, _garbage, _flip_a_bit])
def test_a_damaged_checkpoint_is_refused_in_one_line(fedsecure, finished_run, tmp_path,
                                                      damage):
    run, _ = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    checkpoint = copy / "checkpoint.pt"
    checkpoint.write_bytes(damage(checkpoint.read_bytes()))
    line = one_line_error(fedsecure("train", "--resume", str(copy), "--rounds", "3"), 2)
    assert line.startswith(f"fedsecure train: error: resume='{copy}': checkpoint.pt does not"
                           " match its SHA-256 digest in checkpoint.sha256")
    assert "weights_only" not in line


def test_a_checkpoint_without_its_digest_is_refused(fedsecure, finished_run, tmp_path):
    run, _ = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "checkpoint.sha256").unlink()
    line = one_line_error(fedsecure("train", "--resume", str(copy)), 2)
    assert "checkpoint.sha256 is missing" in line


def test_resume_extends_a_verified_run(fedsecure, finished_run, tmp_path):
    run, _ = finished_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    done = fedsecure("train", "--resume", str(copy), "--rounds", "3")
    assert done.returncode == 0, done.stderr
    assert "round   3/3" in done.stdout
    assert len(json.loads((copy / "metrics.json").read_text())) == 3


@pytest.mark.parametrize(("argv", "expected"), [
    (["--rounds", "0"], "fedsecure train: error: rounds=0: must be an integer >= 1"),
    (["--dataset", "csv:nope.csv"], "dataset='csv:nope.csv': file or folder 'nope.csv' does"
                                    " not exist"),
    (["--config", "nope.toml"], "config='nope.toml': cannot read"),
])
def test_bad_options_and_files(fedsecure, argv, expected):
    assert expected in one_line_error(fedsecure("train", *argv), 2)


def test_a_garbage_data_file_is_one_line_without_numpys_pickle_advice(fedsecure, tmp_path):
    (tmp_path / "data.npz").write_bytes(b"\x80\x04garbage" * 10)
    line = one_line_error(fedsecure("train", "--dataset", "npz:data.npz", "--quiet"), 2)
    assert "dataset='npz:data.npz': cannot be read as npz data" in line
    assert "pickle" not in line


def test_an_unusable_run_directory_is_one_line(fedsecure, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    line = one_line_error(fedsecure("train", *SMALL, "--rounds", "1", "--protocol",
                                    "plaintext", "--run-dir", "file/run", "--quiet"), 2)
    assert line == ("fedsecure train: error: run_dir='file/run': cannot create it (Not a"
                    " directory); choose another folder (--run-dir)")
