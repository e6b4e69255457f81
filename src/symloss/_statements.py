"""Printed kernel expressions lowered to statements: each call computed once, lazy branches kept.

The printers (:mod:`symloss.fast`) write one Python expression per output. A derived Hessian
repeats its pieces -- ``sigmoid(-z)`` six times, a double-double ``sigmoid_pow`` pair three
times -- and numba inlines every call site, so the expression form compiles for minutes and
evaluates the double-double chain several times over. :func:`lower` turns the expressions into
statements (single assignments) in which

* every call is computed once per scope and reused by name (all the printed calls are pure:
  ``math``/NumPy functions and :mod:`symloss._fastmath` / :mod:`symloss.ddouble` helpers);
* a conditional expression whose arms make calls becomes an ``if`` statement, so an arm is
  evaluated only where taken (a double-double fallback stays as lazy as in the expression);
  its test, and arms without calls, stay expressions;
* the float-first tests (``fits_*``, see :func:`symloss._fastmath.fits_v`) are decided where
  the generator can: ``fits_m`` and ``fitsk_m`` are constant ``False``, so their
  double-double arm is taken directly; with ``plain=True`` the float form is taken and the
  test's failure recorded in the boolean ``ok`` instead -- the branch-free first pass of a
  two-pass kernel, whose failures a second pass recomputes with the tests
  (:func:`symloss.fast._elementwise_source`).

Every operation keeps its operands and order (the same parse tree, unparsed), so the statements
round exactly as the expression did: this only names values and decides branches.

A float-first test's accurate arm is a *later tier* (it runs only where the test fails): its
lines are marked (:func:`later`), so that :func:`symloss.fast._quick_twins` can print a quick
twin of the kernel without it.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Sequence

__all__ = ["LATER", "LATER_END", "later", "lower"]

#: The comment lines around a later tier's section of a generated kernel: the first says what
#: a quick twin runs instead (one line: ``flag[0] = 1``, "incomplete: call the full kernel", or
#: values that only later tiers read), the second ends the section, at the same indent.
LATER = "# later tier, instead: "
LATER_END = "# later tier end"


def later(lines: str, indent: str, instead: str) -> str:
    """``lines`` (statements at ``indent`` or deeper, each ending in a newline) marked as a
    later tier that a quick twin replaces by the one-line statement ``instead``."""
    return f"{indent}{LATER}{instead}\n{lines}{indent}{LATER_END}\n"

#: The float-first tests of the flavours: ``fits_m`` and ``fitsk_m`` are constant ``False``
#: (float64 results take the double-double form of ``accurate`` but for its first tiers), and
#: ``fitsqs_v`` (float32 results: their float form's own test decides).
_TESTS = ("fits_v", "fits_m", "fits1_m", "fitsk_v", "fitsk_m", "fitsk32", "fitsq_v", "fitsq_m",
          "fitsqs_v", "fitsqs_m", "fitszd32")
_NEVER = ("fits_m", "fitsk_m", "fitsqs_v")
#: A test wrapped with its form's rounding bound (:func:`symloss._fastmath.fitsz_m`): the
#: wrapped test's own (``fitsx_m``: none, a plain branch), but for ``fitszd32``, Ziv's.
_WRAPPERS = ("fitsz_v", "fitsz_m", "fitsz_w", "fitsz32")


def _test_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id in _WRAPPERS and node.args:
            return _test_name(node.args[0])
        if node.func.id in _TESTS:
            return node.func.id
    return None


def _calls(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) for n in ast.walk(node))


class _Lowering:
    def __init__(self, prefix: str, plain: bool, exact: bool = False) -> None:
        self.names: Iterator[int] = itertools.count()
        self.prefix = prefix
        self.plain = plain
        self.exact = exact  # every test taken as failed: the accurate arms, branch-free
        self.tested = False  # a float-first test was taken as passed (plain mode)

    def fresh(self) -> str:
        return f"{self.prefix}{next(self.names)}"

    def expr(self, node: ast.expr, lines: list[str], scopes: list[dict[str, str]],
             indent: str) -> ast.expr:
        """``node`` with each call replaced by the name of its value, appending the lines that
        compute them at ``indent``; ``scopes`` maps a call's text to its name (innermost last)."""
        if isinstance(node, ast.IfExp):
            return self._ifexp(node, lines, scopes, indent)
        if isinstance(node, ast.Call):
            node.args = [self.expr(a, lines, scopes, indent) for a in node.args]
            if node.keywords:
                raise ValueError("a printed call with keyword arguments")
            text = ast.unparse(node)
            for scope in reversed(scopes):
                if text in scope:
                    return ast.Name(scope[text], ast.Load())
            name = self.fresh()
            lines.append(f"{indent}{name} = {text}")
            scopes[-1][text] = name
            return ast.Name(name, ast.Load())
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.expr) and not (isinstance(node, ast.Attribute)):
                setattr(node, field, self.expr(value, lines, scopes, indent))
            elif isinstance(value, list):
                setattr(node, field, [self.expr(v, lines, scopes, indent)
                                      if isinstance(v, ast.expr) else v for v in value])
        return node

    def _ifexp(self, node: ast.IfExp, lines: list[str], scopes: list[dict[str, str]],
               indent: str) -> ast.expr:
        test = _test_name(node.test)
        if test in _NEVER or (test is not None and self.exact):
            return self.expr(node.orelse, lines, scopes, indent)
        if test is not None and self.plain:
            passed = self.expr(node.test, lines, scopes, indent)
            lines.append(f"{indent}ok = ok & {ast.unparse(passed)}")
            self.tested = True
            return self.expr(node.body, lines, scopes, indent)
        node.test = self.expr(node.test, lines, scopes, indent)
        if not (_calls(node.body) or _calls(node.orelse)):
            node.body = self.expr(node.body, lines, scopes, indent)
            node.orelse = self.expr(node.orelse, lines, scopes, indent)
            return node
        name = self.fresh()
        lines.append(f"{indent}if {ast.unparse(node.test)}:")
        for arm in (node.body, node.orelse):
            inner = indent + "    "
            if arm is node.orelse and test is not None:  # the accurate arm: a later tier
                lines.append(f"{inner}{LATER}flag[0] = 1; {name} = math.nan")
            value = self.expr(arm, lines, [*scopes, {}], inner)
            lines.append(f"{inner}{name} = {ast.unparse(value)}")
            if arm is node.body:
                lines.append(f"{indent}else:")
        if test is not None:
            lines.append(f"{indent}    {LATER_END}")
        return ast.Name(name, ast.Load())


def lower(assignments: Sequence[tuple[str, str]], indent: str, prefix: str = "u",
          plain: bool = False, exact: bool = False) -> tuple[list[str], bool]:
    """The statements that set each ``target`` of ``(target, expression)``, in order.

    ``prefix`` names the temporaries (``u0``, ``u1``, ...: a prefix no other name of the kernel
    starts with). With ``plain=True`` the float-first tests are not branched on: the float form
    is taken and ``ok`` (which the caller sets to ``True`` first) and-ed with the test. With
    ``exact=True`` every test is taken as failed (its accurate arm, without a branch: the
    second pass of a float64 two-pass kernel, over the elements whose one test failed).
    Returns the lines and whether any test was so taken.
    """
    lowering = _Lowering(prefix, plain, exact)
    lines: list[str] = []
    scopes: list[dict[str, str]] = [{}]
    for target, code in assignments:
        value = lowering.expr(ast.parse(code.strip(), mode="eval").body, lines, scopes, indent)
        lines.append(f"{indent}{target} = {ast.unparse(value)}")
    return lines, lowering.tested
