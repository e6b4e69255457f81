"""The modules' layers: module-level imports point down only, so no import circle exists;
the evaluators' own imports (in functions too) stay below derive.

A module-level ``from .x import y`` is read from the source (no import runs); imports inside
functions are the façades' lazy calls (``Derivation.latex`` → render) and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "symloss"


def _module_imports(path: Path, modules: set[str]) -> set[str]:
    """The sibling modules ``path`` imports at module level (``from .x import``, ``from . import x``)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            out.update(n for n in names if n in modules)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("symloss."):
            out.add(node.module.split(".")[1])  # type: ignore[union-attr]
    return out & modules


def _graph() -> dict[str, set[str]]:
    modules = {p.stem for p in SRC.glob("*.py")}
    return {p.stem: _module_imports(p, modules) for p in SRC.glob("*.py")}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order, the first repeated), or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_level_import_circle() -> None:
    assert _cycle(_graph()) is None


@pytest.mark.parametrize(
    "low, high",
    [
        ("spec", "catalog"),  # an entry's type is below the catalogue of entries
        ("row_losses", "catalog"),  # the catalogue collects the row family's declarations
        ("catalog_boosting", "catalog"),
        ("row_losses", "rows"),  # declaring a row loss needs no row evaluator
        ("spec", "rows"),
        ("catalog", "derive"),
        ("catalog", "layout"),
    ],
)
def test_lower_layer_does_not_import_higher(low: str, high: str) -> None:
    graph = _graph()
    reach, todo = set(), [low]
    while todo:
        for nxt in graph[todo.pop()] - reach:
            reach.add(nxt)
            todo.append(nxt)
    assert high not in reach, f"{low} imports {high} (through {sorted(reach)})"


def test_evaluators_import_downwards_only():
    """layout imports no evaluator; the evaluators import neither each other nor derive."""
    src = SRC

    def imports(module: str) -> set[str]:
        tree = ast.parse((src / f"{module}.py").read_text())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    out.add(node.module)
                else:
                    out.update(a.name for a in node.names)
        return out

    # derive is imported for type hints only (under TYPE_CHECKING), never at run time
    assert imports("layout") <= {"errors", "primitives", "spec", "catalog", "derive", "_bounds"}
    assert imports("_bounds") <= set()  # the compiled value check: a leaf, NumPy and numba only
    assert imports("numeric") <= {"kernels", "ddouble", "algebra", "layout", "primitives", "derive"}
    assert imports("ddouble") <= set()  # double-double arithmetic: a leaf, NumPy and numba only
    assert imports("fast") <= {"algebra", "cache", "layout", "primitives", "derive", "_statements"}
    assert imports("_statements") <= set()  # statements from printed code: Python's ast only
    # the exact values of what neither evaluator could certify: from the derivation's forms
    assert imports("exact") <= {"layout", "primitives", "hinges", "derive"}
    assert "evaluate" in imports("derive") and "numeric" not in imports("derive")
