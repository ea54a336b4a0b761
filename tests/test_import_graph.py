"""Imports run downhill and never in a circle: a static analysis of the package files (no module is imported).

The rooms, lowest first: ``edge`` (the device) < ``train`` < ``convert`` < ``hardware`` < ``bench`` <
``tasks.py``. A module may import its own room and the rooms below it, at module level or inside a
function. Every import counts except one under ``if TYPE_CHECKING:`` (never executed). ``from package
import name`` depends on the submodule ``package.name`` when there is one, else on the package; importing
a module also runs the ``__init__`` of each of its packages that does not contain the importer already,
so it depends on those too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("edge", "train", "convert", "hardware", "bench", "tasks")
"""Lowest first."""


def module_files() -> dict[str, Path]:
    """Every module of the rooms, by dotted name (a package by its own name)."""
    modules = {"tasks": REPO / "tasks.py"}
    for room in ROOMS[:-1]:
        for path in (REPO / room).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            hidden |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return hidden


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project's modules ``name`` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
                found |= _packages(target) - _packages(name) - {name}
    return found


def _packages(module: str) -> set[str]:
    """The packages containing ``module`` (``a`` and ``a.b`` for ``a.b.c``)."""
    parts = module.split(".")
    return {".".join(parts[:end]) for end in range(1, len(parts))}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports."""
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def rank(module: str) -> int:
    return ROOMS.index(module.split(".")[0])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in sorted(graph.get(node, ())):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_rooms_and_their_imports() -> None:
    graph = import_graph()
    assert {"edge.contract", "edge.board", "train.fitting", "convert.quantize", "hardware.emulator.cyton",
            "tasks"} <= set(graph)
    assert "edge.contract" in graph["edge.bundle"] and "edge.errors" in graph["edge.contract"]
    assert "train.conversion_data" in graph["convert.quantize"]


def test_no_import_runs_from_a_lower_room_to_a_higher_one() -> None:
    upward = sorted(f"{module} -> {target}" for module, targets in import_graph().items() for target in targets
                    if rank(target) > rank(module))
    assert upward == []


def test_there_are_no_import_cycles() -> None:
    assert cycles(import_graph()) == []
