"""The modules' layers: imports point down only, so no import circle exists.

Every import is read from the source (no import runs): at module level, inside functions (the
lazy ones) and under ``TYPE_CHECKING``. :data:`LAYERS` places every module of ``symloss``; a
module imports its own layer or those below it. The exceptions are listed, each with its reason:
:data:`FACADES` (``Derivation``'s rendering and number methods, which hand the derivation to a
higher layer) and :data:`LAZY_WITHIN_LAYER` (a circle inside one layer, closed by a lazy import).
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
    # the compiled value check: a leaf, NumPy and numba (through its saved native entry) only
    assert imports("_bounds") <= {"native", "cache"}
    assert imports("numeric") <= {"kernels", "ddouble", "algebra", "layout", "primitives", "derive"}
    # double-double arithmetic: a leaf, NumPy only at import; its compiled twins read Ziv's
    # rounding test from _bits (numba's bit casts), the one place it is written
    assert imports("ddouble") <= {"_bits"}
    assert imports("_bits") <= set()
    assert imports("fast") <= {"algebra", "cache", "native", "layout", "primitives", "derive",
                               "_statements"}
    assert imports("_statements") <= set()  # statements from printed code: Python's ast only
    # the exact values of what neither evaluator could certify: from the derivation's forms
    # (a row's sums written out by algebra.written_out, as the evaluators print through algebra)
    assert imports("exact") <= {"layout", "primitives", "hinges", "derive", "algebra"}
    assert "evaluate" in imports("derive") and "numeric" not in imports("derive")


# --------------------------------------------------------------------------- every import
#: The layers, bottom first. A module may import its own layer and the ones below.
LAYERS: list[tuple[str, set[str]]] = [
    # NumPy/numba/Python only (words: the phrases per language; declaration: the dataclasses
    # a declaration is made of; isolate: run a call in a subprocess)
    ("leaves", {"errors", "words", "declaration", "_bounds", "_statements", "cache", "native",
                "_bits", "ddouble", "kernels", "_fastmath", "isolate", "torch_twins"}),
    ("primitives", {"primitives"}),  # every SymPy Function: derivative, rewrite, printing
    ("algebra", {"hinges", "algebra"}),  # kinks; sum rules, normalize, "proved", magnitudes
    ("declarations", {"spec", "row_losses", "catalog_boosting", "catalog"}),
    ("derive", {"derive"}),
    # the one bookkeeping (layout) and what evaluates the printed expressions
    ("evaluators", {"layout", "numeric", "fast", "exact", "rows", "rows_compiled", "evaluate"}),
    ("documents", {"render", "example", "relations", "documents"}),
    ("testing", {"cases", "rows_battery", "testing", "stability", "plot"}),
    ("applications", {"boosting", "custom", "cli", "pytest_plugin", "warm", "__init__"}),
]

#: The upward imports accepted, as (module, function, imported module): ``Derivation`` is what a
#: user holds, so ``d.latex()``, ``d.example(...)`` and ``d.grad_fn`` (through ``_numeric``) are
#: its methods; each is a façade -- its docstring, the lazy import and one ``return`` that hands
#: ``self`` to the higher layer (:func:`_is_facade`) -- and derive itself uses none of them.
#: Moving them up instead (methods attached by a higher module, or a subclass that a higher
#: ``derive()`` returns) would hide them from type checkers and from ``help(Derivation)``.
FACADES: set[tuple[str, str, str]] = {
    ("derive", "Derivation.latex", "render"),
    ("derive", "Derivation.markdown", "render"),
    ("derive", "Derivation.text", "render"),
    ("derive", "Derivation._repr_latex_", "render"),
    ("derive", "Derivation.example", "example"),
    ("derive", "Derivation._numeric", "evaluate"),
}

#: Lazy imports that close a circle inside one layer, as (module, imported module): the row
#: kernels' generator (rows_compiled) prints the row evaluator's own expression nodes
#: (rows._AxisSum, _AxisDot, _Group), and the row evaluator loads the generated kernels. The
#: nodes belong in a module below both; rows.py's evaluator is being changed on another branch
#: (s7-kinks), so they move after it lands.
LAZY_WITHIN_LAYER: set[tuple[str, str]] = {("rows_compiled", "rows")}


def _modules() -> set[str]:
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    return {p.stem for p in SRC.glob("*.py")} | packages


class _Imports(ast.NodeVisitor):
    """Every ``symloss`` import of one module: (enclosing function or ``<module>``, imported
    module, line), in functions, classes and ``TYPE_CHECKING`` blocks too."""

    def __init__(self, module: str, modules: set[str]) -> None:
        self.module, self.modules = module, modules
        self.scope: list[str] = []
        self.found: list[tuple[str, str, int]] = []

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 1:
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
        elif (node.module or "").startswith("symloss."):
            names = [node.module.split(".")[1]]  # type: ignore[union-attr]
        else:
            names = []
        for name in names:
            if name in self.modules and name != self.module:
                self.found.append((".".join(self.scope) or "<module>", name, node.lineno))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "symloss" and len(parts) > 1 and parts[1] in self.modules:
                self.found.append((".".join(self.scope) or "<module>", parts[1], node.lineno))


def _imports(module: str, source: str, modules: set[str]) -> list[tuple[str, str, int]]:
    visitor = _Imports(module, modules)
    visitor.visit(ast.parse(source))
    return visitor.found


def _all_imports() -> dict[str, list[tuple[str, str, int]]]:
    modules = _modules()
    return {p.stem: _imports(p.stem, p.read_text(encoding="utf-8"), modules)
            for p in SRC.glob("*.py")}


def _layer() -> dict[str, int]:
    return {m: n for n, (_, members) in enumerate(LAYERS) for m in members}


def _upward(imports: dict[str, list[tuple[str, str, int]]]) -> set[tuple[str, str, str]]:
    layer = _layer()
    return {(module, where, name) for module, found in imports.items()
            for where, name, _ in found if layer[name] > layer[module]}


def test_every_module_has_one_layer() -> None:
    placed = [m for _, members in LAYERS for m in members]
    assert len(placed) == len(set(placed)), "a module in two layers"
    assert set(placed) == _modules(), (
        f"not placed: {sorted(_modules() - set(placed))}; "
        f"no longer a module: {sorted(set(placed) - _modules())}")


def test_the_reader_sees_lazy_and_type_checking_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .derive import Derivation\n"
        "class A:\n    def f(self):\n        from .render import latex\n"
        "        import symloss.testing\n"
    )
    found = _imports("primitives", source, _modules())
    assert [(w, n) for w, n, _ in found] == [
        ("<module>", "derive"), ("A.f", "render"), ("A.f", "testing")]
    assert _upward({"primitives": found}) == {
        ("primitives", "<module>", "derive"), ("primitives", "A.f", "render"),
        ("primitives", "A.f", "testing")}


def test_imports_point_down_but_for_the_facades() -> None:
    """No import, at module level or in a function, reaches a higher layer, except exactly
    :data:`FACADES` (each of which is still there: the list stays short and true)."""
    upward = _upward(_all_imports())
    assert upward - FACADES == set(), "imports that point up"
    assert FACADES - upward == set(), "façades listed that no longer import up: drop them"


def _is_facade(function: ast.FunctionDef) -> bool:
    """A docstring, imports, then one ``return`` (nothing derive computes itself)."""
    body = list(function.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    while body and isinstance(body[0], ast.ImportFrom | ast.Import):
        body = body[1:]
    return len(body) == 1 and isinstance(body[0], ast.Return)


def test_facades_only_forward() -> None:
    for module, where, _ in FACADES:
        tree = ast.parse((SRC / f"{module}.py").read_text(encoding="utf-8"))
        cls, name = where.split(".")
        (klass,) = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
        (function,) = (n for n in klass.body if isinstance(n, ast.FunctionDef) and n.name == name)
        assert _is_facade(function), f"{module}.{where} computes more than a forward"


def test_no_import_circle_even_through_lazy_imports() -> None:
    """Counting every import (but the façades and :data:`LAZY_WITHIN_LAYER`), no circle."""
    graph: dict[str, set[str]] = {m: set() for m in _modules()}
    for module, found in _all_imports().items():
        graph[module] = {name for where, name, _ in found
                         if (module, where, name) not in FACADES
                         and (module, name) not in LAZY_WITHIN_LAYER}
    assert _cycle(graph) is None
    layer = _layer()
    for module, name in LAZY_WITHIN_LAYER:  # still there, still inside one layer, still lazy
        found = [w for w, n, _ in _all_imports()[module] if n == name]
        assert found and "<module>" not in found and layer[module] == layer[name], (module, name)
