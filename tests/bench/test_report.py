"""The committed docs/benchmarks.md is what the committed code renders from the committed run."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import report

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs/benchmarks.md"


def _committed_run() -> Path:
    line = next(li for li in DOC.read_text().splitlines() if li.startswith("- run: "))
    return ROOT / line.split("results in `")[1].split("`")[0]


def test_docs_benchmarks_md_is_rendered_from_the_committed_run():
    data = json.loads(_committed_run().read_text())
    assert report.markdown(data) == DOC.read_text(), (
        "docs/benchmarks.md differs from its rendering: run `python -m benchmarks.report"
        f" --render {_committed_run().relative_to(ROOT)}`")


def test_the_report_names_its_plots_and_they_exist():
    from benchmarks import compare_report

    text = DOC.read_text()
    for name in compare_report.plot_files("bench-").values():
        assert f"]({name})" in text
        assert (ROOT / "docs" / name).stat().st_size > 1000
