"""Collect ``bench_*.py`` files when the folder is run: ``pytest benchmarks --benchmark-only``.

Also: ``--grid quick|full`` (or ``FEDSECURE_BENCH_GRID``) picks the grid of
``bench_compare.py``; the ``--benchmark-json`` output gains ``skipped`` (each skipped case and
why) and ``fedsecure`` (grid, package versions, cores, load average) for ``report.py``.
Under ``--benchmark-disable`` (the smoke run) the summary says what was not measured.
"""

import importlib.metadata
import os
import platform

import pytest

GRID_ENV = "FEDSECURE_BENCH_GRID"
VERSIONED = ("fedsecure", "numpy", "numba", "cryptography", "msgspec", "tenseal", "torch",
             "scikit-learn", "flwr", "pytest-benchmark", "matplotlib")
_SKIPPED: list[dict] = []


def pytest_addoption(parser):
    parser.addoption("--grid", choices=("quick", "full"), default=os.environ.get(GRID_ENV, "quick"),
                     help="grid of bench_compare.py (default quick; env FEDSECURE_BENCH_GRID)")


def pytest_collect_file(file_path, parent):
    # Files named on the command line are already collected by pytest itself.
    if file_path.name.startswith("bench_") and file_path.suffix == ".py" \
            and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_runtest_logreport(report):
    if report.skipped and isinstance(report.longrepr, tuple):
        _SKIPPED.append({"name": report.nodeid.rsplit("::", 1)[-1],
                         "reason": report.longrepr[2].removeprefix("Skipped: ")})


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def pytest_terminal_summary(terminalreporter, config):
    if config.getoption("benchmark_disable"):
        terminalreporter.write_line(
            "--benchmark-disable: each benchmarked function ran once, untimed, and its asserts ran;"
            " rates and ratios derived from timings were not measured (benchmarks/timing.py)")


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["skipped"] = list(_SKIPPED)
    output_json["fedsecure"] = {
        "grid": config.getoption("--grid"),
        "versions": {p: _version(p) for p in VERSIONED},
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
