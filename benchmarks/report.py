"""Turn pytest-benchmark JSON files into the Markdown tables of docs/benchmarks.md.

    python benchmarks/report.py benchmarks/results/secagg_prg.json [more.json ...]

Prints one table per benchmark group: the median time and every ``extra_info`` field.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


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


if __name__ == "__main__":
    print(tables(sys.argv[1:]))
