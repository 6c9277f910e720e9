"""Every command the documentation shows runs as pasted.

* every ``fedsecure ...`` line of a shell block in README.md and docs/*.md (also under
  ``mpirun ... python -m fedsecure``) parses, and its training options pass validation;
* the cheap ones (``simulate``, ``--help``, ``--version``) run, as pasted, and succeed;
* the Python blocks of docs/quickstart.md run, in order, as one session.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest

from .conftest import ROOT, run_python

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL = ("bash", "sh", "shell", "console")


def _blocks(path, languages):
    for language, body in FENCE.findall(path.read_text()):
        if language in languages:
            yield body


def _documented_commands():
    """(doc name, command line, argv after ``fedsecure``) for every documented command."""
    for path in DOCS:
        for body in _blocks(path, SHELL):
            for line in body.replace("\\\n", " ").splitlines():
                for segment in line.split("&&"):
                    words = shlex.split(segment, comments=True)
                    if "fedsecure" in words:
                        argv = words[words.index("fedsecure") + 1:]
                        yield pytest.param(argv, id=f"{path.name}: {segment.strip()[:70]}")


COMMANDS = list(_documented_commands())


def test_the_docs_show_commands():
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("argv", COMMANDS)
def test_every_documented_command_parses(argv):
    from fedsecure.cli import build_parser

    parser = build_parser()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            args, extras = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help and --version exit 0 after printing
        assert exc.code == 0, argv
        return
    assert extras == [], argv
    if args.command == "train" and args.config is None and args.resume is None:
        pytest.importorskip("torch", reason="torch is not installed (extra: train)")
        from fedsecure.fl.cli import _overrides
        from fedsecure.fl.config import TrainConfig

        overrides = _overrides(args)
        if ":" in overrides.get("dataset", ""):  # a placeholder file (csv:data/patients.csv)
            del overrides["dataset"]
        TrainConfig.load(None, overrides)  # the values are valid, too


CHEAP = [p for p in COMMANDS if p.values[0][:1] == ["simulate"]
         or any(flag in p.values[0] for flag in ("--help", "--version"))]


@pytest.mark.parametrize("argv", CHEAP)
def test_cheap_documented_commands_run_as_pasted(argv, tmp_path):
    if "ckks" in argv:
        pytest.importorskip("tenseal", reason="TenSEAL is not installed (extra: he)")
    done = run_python("-m", "fedsecure", *argv, cwd=tmp_path)
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"


def test_quickstart_python_blocks_run_as_pasted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    session: dict = {}
    blocks = list(_blocks(ROOT / "docs" / "quickstart.md", ("python",)))
    assert len(blocks) >= 2
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        for code in blocks:
            exec(compile(code, "docs/quickstart.md", "exec"), session)  # noqa: S102
    assert session["server"].result().survivors == tuple(session["spec"].client_ids)
    assert printed.getvalue().strip() == str(tuple(session["spec"].client_ids))
