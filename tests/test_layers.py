"""The layering of DESIGN.md holds: a layer imports only itself and layers below it.

hazmat -> kernels -> messages -> protocols -> transport/runtime -> fl -> cli; errors, config
and rng are the foundation every layer may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fedsecure"
LAYERS = {
    "errors": 0, "config": 0, "rng": 0,
    "hazmat": 1,
    "kernels": 2, "robust": 2,
    "messages": 3,
    "protocols": 4, "dp": 4,
    "transport": 5, "runtime": 5,
    "fl": 6,
    "cli": 7, "__main__": 7, "__init__": 7,
}


def _layer(dotted: str) -> int:
    return LAYERS[dotted.split(".")[1]]


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fedsecure."):
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("fedsecure."):
                    yield node.lineno, alias.name


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert tops <= set(LAYERS), tops - set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_same_or_lower_layers(path):
    own = "fedsecure." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    upward = [f"line {line}: {module}" for line, module in _imports(path)
              if _layer(module) > _layer(own)]
    assert not upward, f"{own} imports a higher layer: {upward}"
