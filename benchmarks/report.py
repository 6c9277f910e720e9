"""Benchmark reports.

The comparison (docs/benchmarks.md, its plots and the run's JSON), in one command:

    python -m benchmarks.report --quick             # or --full (docs/benchmarks-full.md)
    python -m benchmarks.report --quick --baseline benchmarks/results/compare_quick_run1.json
    python -m benchmarks.report --render benchmarks/results/compare_quick.json   # no run

``--quick`` / ``--full`` run ``pytest benchmarks/bench_compare.py --benchmark-only --grid ...
--benchmark-json ...``, add the command and its wall time to the JSON, and render it
(``benchmarks/compare_report.py``); with ``--baseline`` the JSON names the earlier run and the
report adds the verdict of ``benchmarks/compare_runs.py`` against it.  ``--render`` redraws the
report of a run without running anything (the committed report is ``--render`` of the
committed JSON: tests/bench/test_report.py checks it).

Any pytest-benchmark JSON as Markdown tables (docs/protocol-benchmarks.md):

    python benchmarks/report.py benchmarks/results/secagg_prg.json [more.json ...]

prints one table per benchmark group: the median time and every ``extra_info`` field.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def tables(paths: list[str]) -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    machine = ""
    for path in paths:
        data = json.load(open(path))
        info = data.get("machine_info", {})
        machine = f"{info.get('cpu', {}).get('brand_raw', '?')}, python {info.get('python_version', '?')}"
        for bench in data["benchmarks"]:
            groups[bench.get("group") or "ungrouped"].append(bench)
    out = [f"Machine: {machine}\n"]
    for group, benches in groups.items():
        extra = sorted({k for b in benches for k in b.get("extra_info", {})})
        out.append(f"### {group}\n")
        out.append("| case | median s | rounds | " + " | ".join(extra) + " |")
        out.append("|---" * (3 + len(extra)) + "|")
        for b in benches:
            case = b["name"].split("[", 1)[-1].rstrip("]") if "[" in b["name"] else b["name"]
            row = [b["name"].split("[")[0].removeprefix("test_") + f" [{case}]",
                   _cell(b["stats"]["median"]), str(b["stats"]["rounds"])]
            row += [_cell(b.get("extra_info", {}).get(k, "")) for k in extra]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- the comparison


def _shown(path: Path) -> str:
    """``path`` relative to the repository root when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def run_grid(grid: str, json_path: Path, command: str, baseline: Path | None) -> None:
    """One pytest-benchmark run of bench_compare.py on ``grid`` into ``json_path``, with the
    command, its wall time and the baseline run (if any) added under ``fedsecure``."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    began = time.perf_counter()
    status = subprocess.call(
        [sys.executable, "-m", "pytest", "benchmarks/bench_compare.py", "--benchmark-only",
         f"--grid={grid}", f"--benchmark-json={json_path}", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env)
    wall = time.perf_counter() - began
    if status != 0:
        raise SystemExit(f"the benchmark run failed (pytest exit status {status})")
    data = json.loads(json_path.read_text())
    data["fedsecure"].update(command=command, wall_s=wall, json=_shown(json_path))
    if baseline is not None:
        data["fedsecure"]["baseline"] = _shown(baseline)
    json_path.write_text(json.dumps(data, indent=2) + "\n")


def plot_prefix(data: dict) -> str:
    return "bench-" if data["fedsecure"]["grid"] == "quick" else "bench-full-"


def markdown(data: dict) -> str:
    """The report of the run ``data`` (with the verdict against its baseline run, if any)."""
    from benchmarks import compare_report, compare_runs

    comparison = None
    if "baseline" in data["fedsecure"]:
        found, checked = compare_runs.compare(
            compare_runs.load(str(ROOT / data["fedsecure"]["baseline"])), data)
        comparison = [str(f) for f in found] + [
            f"{len(found)} disagreements in {checked} comparisons"
            f" ({'the runs agree' if not found else 'the runs disagree'})"]
    plots = compare_report.plot_files(plot_prefix(data))
    return compare_report.render(data, plots=plots, comparison=comparison) + "\n"


def write_report(json_path: Path, out: Path) -> None:
    """Render the run in ``json_path`` into ``out`` and its PNGs beside it."""
    from benchmarks import compare_report

    data = json.loads(json_path.read_text())
    plots = compare_report.plot_all(compare_report.Run(data), out.parent, plot_prefix(data))
    out.write_text(markdown(data))
    print(f"wrote {_shown(out)} and {', '.join(plots.values())}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-"):
        print(tables(argv))
        return
    parser = argparse.ArgumentParser(description="Run and render the DP vs SMPC vs HE comparison")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_const", const="quick", dest="grid")
    mode.add_argument("--full", action="store_const", const="full", dest="grid")
    mode.add_argument("--render", type=Path, metavar="JSON", help="render an existing run")
    parser.add_argument("--json", type=Path, help="where the run's JSON goes (default"
                        " benchmarks/results/compare_<grid>.json)")
    parser.add_argument("--baseline", type=Path, help="an earlier run to compare this one with"
                        " (recorded in the new run's JSON; --render uses the recorded one)")
    parser.add_argument("--out", type=Path, help="the Markdown file (default docs/benchmarks.md"
                        " for quick, docs/benchmarks-full.md for full)")
    args = parser.parse_args(argv)
    json_path = args.render or args.json or ROOT / f"benchmarks/results/compare_{args.grid}.json"
    if args.grid is not None:
        run_grid(args.grid, json_path, shlex.join(["python", "-m", "benchmarks.report", *argv]),
                 args.baseline)
    elif args.baseline is not None:
        parser.error("--baseline goes with --quick or --full")
    grid = json.loads(json_path.read_text())["fedsecure"]["grid"]
    write_report(json_path, args.out or ROOT / ("docs/benchmarks.md" if grid == "quick"
                                                else "docs/benchmarks-full.md"))


if __name__ == "__main__":
    main()
