"""The import graph of lib/mpdrec runs one way: each top-level module or package sits in a layer
(docs/architecture.md draws the same list) and imports only from layers below it, and no chain of
imports between modules comes back to where it started. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "mpdrec"

LAYERS: list[set[str]] = [  # bottom first
    {"__init__", "errors", "hashing", "text", "categories"},
    {"config", "schemas", "csr", "vectors", "sorted_groups", "negative_sampling", "report_plots"},
    {"spark", "io", "metrics"},
    {"upstream", "blocked_topn"},
    {"etl", "synth"},
    {"lists"},
    {"models"},
    {"rank", "studies", "charts", "explicit"},
    {"evaluation"},
    {"evaluation_table"},
    {"cli", "submit"},
]
LAYER = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in LIB.rglob("*.py")}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The mpdrec modules that `name` imports (a `from package import submodule` names the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "mpdrec"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mpdrec":
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & modules.keys()
            found |= subs or {target}
    return found & modules.keys()


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) - {name} for name, path in modules.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_top_level_module_has_a_layer():
    units = {_unit(m) for m in _modules()}
    assert units - LAYER.keys() == set(), "add the new module or package to LAYERS (and docs/architecture.md)"
    assert LAYER.keys() - units == set(), "LAYERS names a module that no longer exists"


def test_no_module_imports_from_its_own_layer_or_above():
    upward = sorted(
        f"{a} imports {b} ({_unit(a)}: layer {LAYER[_unit(a)]}, {_unit(b)}: layer {LAYER[_unit(b)]})"
        for a, targets in _graph().items()
        for b in targets
        if _unit(a) != _unit(b) and LAYER[_unit(b)] >= LAYER[_unit(a)]
    )
    assert upward == []


def test_no_import_cycle_between_modules():
    graph, state, cycles = _graph(), {}, []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from mpdrec.rank import stage\n", {"mpdrec.rank.stage"}),
        ("from mpdrec.io.paths import join\n", {"mpdrec.io.paths"}),
        ("from . import stage\n", {"mpdrec.rank.stage"}),
        ("def f():\n    import mpdrec.models.als\n", {"mpdrec.models.als"}),
    ],
)
def test_the_reader_sees_every_form_of_import(tmp_path, source, expected):
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert _imports("mpdrec.rank.probe", path, _modules()) == expected
