"""Your own loss: a full :class:`~symloss.Derivation` from a SymPy expression or a formula.

:func:`custom_loss` takes a per-element loss written with symloss's primitives (``sigmoid``,
``softplus``, ``clamped_log``, ``log``, ``exp``, ...) in an input and a target and returns a
:class:`~symloss.Derivation` -- derived by ``sympy.diff``, rendered, compiled to NumPy -- that
:func:`symloss.testing.assert_grad_matches` and :func:`symloss.stability.stability_map` accept.

:func:`parse_loss` reads a formula from text (the command line) with a restricted grammar:
numbers, the names ``z`` (a logit) or ``p`` (a probability) and ``y`` (the target), ``+ - * /
**``, parentheses, and calls of whitelisted functions. The text is parsed by :mod:`ast` into a
tree that is walked node by node against that whitelist; nothing is ever evaluated, and the
text is never given to ``eval`` or ``sympify``.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import sympy as sp

from .catalog import LossSpec, _check, _reduction_option
from .declaration import Declaration
from .derive import Derivation
from .errors import SymlossTypeError, SymlossValueError
from .primitives import clamped_log, sigmoid, softplus

__all__ = ["FUNCTIONS", "CustomDerivation", "custom_loss", "parse_loss"]

Z = sp.Symbol("z", real=True)
P = sp.Symbol("p", positive=True)
Y = sp.Symbol("y", real=True)

#: The functions a formula may call, by name.
FUNCTIONS: dict[str, Any] = {
    "sigmoid": sigmoid,
    "softplus": softplus,
    "log": sp.log,
    "clamped_log": clamped_log,
    "exp": sp.exp,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "abs": sp.Abs,
}
_NAMES = {"z": Z, "p": P, "y": Y}
_BINARY = {ast.Add: sp.Add, ast.Sub: None, ast.Mult: sp.Mul, ast.Div: None, ast.Pow: sp.Pow}
MAX_LENGTH = 500


class CustomDerivation(Derivation):
    """A :class:`Derivation` of a user's loss. ``proved`` is False unless a canonical form was
    given and SymPy reduced the difference to 0; ``proof_note`` says why not."""

    @property
    def proof_note(self) -> str:
        if self.declaration.notes and "no canonical" in self.declaration.notes[0]:
            return self.declaration.notes[0]
        return "proved" if self.proved else "SymPy did not reduce gradient − canonical to 0"

    @property
    def proved(self) -> bool:  # type: ignore[override]
        if self.declaration.notes and "no canonical" in self.declaration.notes[0]:
            return False
        return bool(self._prove(self.gradient, self.canonical))


def _spec(
    name: str, loss: sp.Expr, input: sp.Symbol, target: sp.Symbol, canonical: Any
) -> LossSpec:
    probability = bool(input.is_positive)

    def declare(opts: Mapping[str, Any]) -> Declaration:
        notes: tuple[str, ...] = ()
        if canonical is None:
            notes = (
                "no canonical form was given, so there is nothing to prove the gradient "
                "equal to; pass canonical=... to prove one",
            )
        return Declaration(
            input=input,
            target=target,
            loss=loss,
            canonical=canonical if canonical is not None else sp.diff(loss, input),
            canonical_why=notes[0] if notes else "The canonical form given with the loss.",
            loss_why="A user-defined per-element loss.",
            mean_denominator=sp.Symbol("n", integer=True, positive=True),
            mean_why="reduction='mean' averages the per-element losses over all n elements.",
            symbols={"input": input, "target": target},
            notes=notes,
        )

    return LossSpec(
        name=name,
        summary="user-defined loss",
        options=(_reduction_option(),),
        declare=declare,
        family="elementwise",
        input_domain=lambda o: "probability" if probability else "real",
    )


def custom_loss(
    loss: sp.Expr | str,
    *,
    input: sp.Symbol | None = None,
    target: sp.Symbol = Y,
    canonical: sp.Expr | str | None = None,
    name: str = "custom",
    reduction: str = "mean",
) -> CustomDerivation:
    """A full derivation of a per-element loss symloss does not know.

    Args:
        loss: the per-element loss, a SymPy expression (or a formula, see :func:`parse_loss`)
            in ``input`` and ``target``, built from symloss's primitives.
        input: the input symbol; by default ``z`` (a logit) or ``p`` (a probability in
            ``[0, 1]``), whichever ``loss`` uses.
        target: the target symbol (``y``).
        canonical: a form to prove the gradient equal to (optional).
        name: the loss's name in reports.
        reduction: ``"none"``, ``"mean"`` or ``"sum"``, as torch.

    Returns:
        A :class:`CustomDerivation` (a :class:`~symloss.Derivation`).

    >>> from symloss.primitives import softplus
    >>> d = custom_loss(softplus(Z) - Y * Z, canonical=sigmoid(Z) - Y)
    >>> d.gradient, d.proved
    (-y + sigmoid(z), True)
    """
    if isinstance(loss, str):
        loss = parse_loss(loss)
    if isinstance(canonical, str):
        canonical = parse_loss(canonical)
    if not isinstance(loss, sp.Expr):
        raise SymlossTypeError(f"loss must be a SymPy expression or a formula, got {loss!r}")
    if input is None:
        found = [s for s in (Z, P) if loss.has(s)]
        if len(found) > 1:
            raise SymlossValueError(
                "a loss uses one input, z (a logit) or p (a probability), not both"
            )
        input = found[0] if found else Z
    extra = loss.free_symbols - {input, target}
    if extra:
        raise SymlossValueError(
            f"the loss may use only the input {input} and the target {target}; "
            f"it also uses {', '.join(sorted(map(str, extra)))}"
        )
    spec = _spec(name, loss, input, target, canonical)
    options = {"reduction": _check(name, spec.option("reduction"), reduction)}
    return CustomDerivation(spec, options, spec.declare(options))


def parse_loss(text: str) -> sp.Expr:
    """Parse a per-element loss from text with a restricted grammar -- never ``eval``.

    Grammar: numbers; the names ``z``, ``p``, ``y``; ``+ - * / **``; parentheses; calls of
    ``sigmoid, softplus, log, clamped_log, exp, sqrt, tanh, abs`` with one argument.

    Raises:
        SymlossValueError: the text is not such a formula; the message names what is allowed.

    >>> parse_loss("y*softplus(-z) + (1 - y)*softplus(z)")
    y*softplus(-z) + (1 - y)*softplus(z)
    """
    if not isinstance(text, str):
        raise SymlossTypeError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise SymlossValueError(f"a formula may have at most {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise SymlossValueError(f"not a formula: {exc.msg} in {text!r}") from None
    return _build(tree.body, text)


def _allowed() -> str:
    return (
        f"numbers, the names {', '.join(_NAMES)}, + - * / **, parentheses and the functions "
        f"{', '.join(FUNCTIONS)}"
    )


def _build(node: ast.AST, text: str) -> sp.Expr:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise SymlossValueError(
                f"{node.value!r} is not allowed in a formula; allowed: {_allowed()}"
            )
        return sp.Integer(node.value) if isinstance(node.value, int) else sp.Float(node.value)
    if isinstance(node, ast.Name):
        if node.id in _NAMES:
            return _NAMES[node.id]
        raise SymlossValueError(f"unknown name {node.id!r} in a formula; allowed: {_allowed()}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _build(node.operand, text)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _build(node.left, text), _build(node.right, text)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
        if b.is_Number and abs(b) > 64:  # 9**9**9 would be computed exactly: refuse
            raise SymlossValueError(f"exponent {b} is too large in a formula (at most 64)")
        return a**b
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = ast.unparse(node.func)
            raise SymlossValueError(
                f"{shown!r} is not a function a formula may call; allowed: {', '.join(FUNCTIONS)}"
            )
        if node.keywords or len(node.args) != 1:
            raise SymlossValueError(f"{node.func.id} takes exactly one argument")
        return FUNCTIONS[node.func.id](_build(node.args[0], text))
    raise SymlossValueError(
        f"{ast.unparse(node)!r} is not allowed in a formula; allowed: {_allowed()}"
    )
