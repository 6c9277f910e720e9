"""No import cycles inside ``fedsecure.fl`` (type-checking-only imports count too): each module
can be read knowing only the ones it imports."""

from __future__ import annotations

import ast
from pathlib import Path

FL = Path(__file__).resolve().parents[2] / "fedsecure" / "fl"


def _fl_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                 [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        if isinstance(node, ast.ImportFrom) and node.module == "fedsecure.fl":
            names = [f"fedsecure.fl.{a.name}" for a in node.names]
        found |= {n.split(".")[2] for n in names if n.startswith("fedsecure.fl.")}
    return found


def test_fl_modules_import_each_other_without_cycles():
    graph = {p.stem: _fl_imports(p) - {p.stem} for p in FL.glob("*.py")}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join(path + [module])}"
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            visit(imported, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])
    assert "loop" not in graph["personalize"] and "personalize" in graph["loop"]
