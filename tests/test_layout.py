"""The layering of ``sync/`` holds: no import cycles, and the core imports neither the
service nor the command line (docs/architecture.md §2.2).

Imports are read from the source, type-checking and function-level imports included:
a cycle hidden in a function body is still a cycle a reader has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the ``sync`` modules it imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    paths = sorted((ROOT / "sync").rglob("*.py"))
    modules = {module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                if subs:
                    deps.update(subs)
                elif node.module in modules:
                    deps.add(node.module)
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_sync_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("layer", ["sync.service", "sync.cli"])
def test_the_core_does_not_import_the_layers_above(layer: str) -> None:
    graph = import_graph()
    # ``python -m sync`` is the command line's door, not the core
    core = [m for m in graph if not m.startswith(("sync.service", "sync.cli", "sync.__main__"))]
    upward = sorted(f"{m} → {d}" for m in core for d in graph[m] if d.startswith(layer))
    assert upward == []


def test_the_service_does_not_import_the_command_line() -> None:
    graph = import_graph()
    service = [m for m in graph if m.startswith("sync.service")]
    assert sorted(f"{m} → {d}" for m in service for d in graph[m] if d.startswith("sync.cli")) == []
