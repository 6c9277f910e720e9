"""Run ``fedsecure`` as a user does: a subprocess, its exit status, stdout and stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300  # generous: a 2-core machine shared with other jobs


def run_python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)


@pytest.fixture
def fedsecure(tmp_path):
    """``fedsecure(*argv)``: run ``python -m fedsecure *argv`` in a fresh folder."""

    def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return run_python("-m", "fedsecure", *argv, cwd=cwd or tmp_path)

    return run


def one_line_error(done: subprocess.CompletedProcess, status: int) -> str:
    """The command exited with ``status`` and printed exactly one line on stderr: return it."""
    context = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == status, context
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, context
    assert "Traceback" not in done.stderr and "usage:" not in done.stderr, context
    return lines[0]
