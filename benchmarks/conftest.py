"""Collect ``bench_*.py`` files when the folder is run: ``pytest benchmarks --benchmark-only``."""

import pytest


def pytest_collect_file(file_path, parent):
    # Files named on the command line are already collected by pytest itself.
    if file_path.name.startswith("bench_") and file_path.suffix == ".py" \
            and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
