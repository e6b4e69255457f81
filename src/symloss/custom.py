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

**A budget for symbolic work.** A formula typed by someone else must not take the machine:
before SymPy sees it, :func:`parse_loss` checks its tree against :class:`FormulaLimits` --
characters (500), tree nodes (200), nesting depth (30), functions nested in functions (4),
integer size (12 digits), exponent size (16), polynomial degree (16) and the size of exact
constants (200 digits) -- and refuses constants that are not finite real numbers (``z/0``,
``log(0)*z``, ``sqrt(-1)``) with one line naming the sub-formula. Simplification and proofs of
a :class:`CustomDerivation` run in a worker process with a time limit (``time_limit``, 10 s
each): past it, the gradient is ``sympy.diff``'s unsimplified result (still exact) and
``proved`` is False with ``proof_note`` saying "not proved within 10 s".
"""

from __future__ import annotations

import ast
import math
import multiprocessing
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy as sp

from .algebra import is_zero, tidy
from .declaration import Declaration
from .derive import Derivation
from .errors import SymlossTypeError, SymlossValueError
from .primitives import clamped_log, sigmoid, softplus
from .spec import LossSpec, check_option, reduction_option

__all__ = ["FUNCTIONS", "CustomDerivation", "FormulaLimits", "custom_loss", "parse_loss"]

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


@dataclass(frozen=True)
class FormulaLimits:
    """How much symbolic work a formula may ask for; checked on its syntax tree before SymPy
    builds anything, so a refusal is immediate.

    Args:
        max_length: characters of formula text.
        max_nodes: nodes of the syntax tree (numbers, names, operators, calls).
        max_depth: nesting depth of the syntax tree.
        max_call_depth: functions nested in functions (``sigmoid(sigmoid(z))`` is 2): each
            level multiplies the size of the derivative and its simplification.
        max_integer_digits: digits of an integer literal.
        max_exponent: absolute value of a numeric exponent.
        max_degree: the polynomial degree the formula can reach (``(z+y)**8*(z-y)**8`` is 16):
            simplification expands products, and an expanded power of degree d in z and y
            has O(d²) terms (degree 32 takes about 30 s to derive and render).
        max_constant_digits: digits of an exact constant SymPy would compute (``9**16`` has 16).
        time_limit: seconds for each simplification and each proof (run in a worker process);
            past it the result is stated as "not proved within N s", never a hang.
    """

    max_length: int = MAX_LENGTH
    max_nodes: int = 200
    max_depth: int = 30
    max_call_depth: int = 4
    max_integer_digits: int = 12
    max_exponent: float = 16
    max_degree: int = 16
    max_constant_digits: int = 200
    time_limit: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_length", "max_nodes", "max_depth", "max_call_depth",
                     "max_integer_digits", "max_degree", "max_constant_digits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SymlossValueError(f"FormulaLimits.{name} must be a positive integer, "
                                        f"got {value!r}")
        for name in ("max_exponent", "time_limit"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value <= 0):
                raise SymlossValueError(f"FormulaLimits.{name} must be a positive finite "
                                        f"number, got {value!r}")


DEFAULT_LIMITS = FormulaLimits()


class _OutOfTime(Exception):
    """The worker did not finish within its time limit."""


def _worker(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        result: tuple[str, Any] = ("ok", fn(*args))
    except BaseException as exc:  # reported to the parent, which decides
        result = ("error", f"{type(exc).__name__}: {exc}")
    try:
        conn.send(result)
    except Exception as exc:  # an unpicklable result
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    # fork is cheap (SymPy is already imported) and safe while this process runs one thread;
    # otherwise a fresh interpreter.
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _within(seconds: float, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker process; :class:`_OutOfTime` if it takes over ``seconds``.

    SymPy has no cancellation: a worker that runs over is terminated, and nothing is left
    running. An exception in the worker is re-raised here as ``_OutOfTime`` too (the caller
    falls back to the unsimplified result, which is exact).
    """
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_worker, args=(child, fn, args), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(seconds):
            raise _OutOfTime(f"not within {seconds:g} s")
        status, value = parent.recv()
    except EOFError:
        raise _OutOfTime("the worker process died") from None
    finally:
        parent.close()
        if process.is_alive():
            process.terminate()
            process.join(1)
            if process.is_alive():
                process.kill()
        process.join()
    if status != "ok":
        raise _OutOfTime(str(value))
    return value


def _tidy_shorter(expr: sp.Expr) -> sp.Expr:
    return min((tidy(expr), expr), key=sp.count_ops)


class CustomDerivation(Derivation):
    """A :class:`Derivation` of a user's loss. ``proved`` is False unless a canonical form was
    given and SymPy reduced the difference to 0; ``proof_note`` says why not.

    Simplification and proofs run in a worker process, each within ``limits.time_limit``
    seconds: past it, the gradient (or Hessian) is ``sympy.diff``'s result unsimplified -- still
    exact -- and a proof counts as not proved, which ``proof_note`` states.
    """

    limits: FormulaLimits = DEFAULT_LIMITS

    @cached_property
    def _out_of_time(self) -> list[str]:
        return []

    def _bounded(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return _within(self.limits.time_limit, fn, *args)
        except _OutOfTime as exc:
            self._out_of_time.append(f"{what}: {exc}")
            raise

    @cached_property
    def gradient(self) -> sp.Expr:
        """``sympy.diff`` of the loss, simplified within the time limit (else unsimplified)."""
        try:
            return self._bounded("simplifying the gradient", tidy, self.raw_gradient)
        except _OutOfTime:
            return self.raw_gradient

    @cached_property
    def hessian(self) -> sp.Expr:
        """The second derivative, simplified within the time limit (else unsimplified)."""
        from .derive import drop_distributions

        dropped = drop_distributions(self.raw_hessian)
        try:
            return self._bounded("simplifying the Hessian", _tidy_shorter, dropped)
        except _OutOfTime:
            return dropped

    def _prove(self, a: sp.Expr, b: sp.Expr) -> bool:
        if a == b:
            return True
        subst = self.declaration.substitute_definitions
        try:
            return bool(self._bounded("the proof", is_zero, subst(a) - subst(b),
                                      self.assumptions))
        except _OutOfTime:
            return False

    @property
    def proof_note(self) -> str:
        if self.declaration.notes and "no canonical" in self.declaration.notes[0]:
            return self.declaration.notes[0]
        if self.proved:
            return "proved"
        if any(w.startswith("the proof") for w in self._out_of_time):
            return (f"not proved within {self.limits.time_limit:g} s (the time limit for "
                    "symbolic work on a custom loss; raise FormulaLimits.time_limit)")
        return "SymPy did not reduce gradient − canonical to 0"

    @property
    def proved(self) -> bool:  # type: ignore[override]
        if self.declaration.notes and "no canonical" in self.declaration.notes[0]:
            return False
        cached = self.__dict__.get("_proved")
        if cached is None:
            cached = self.__dict__["_proved"] = bool(self._prove(self.gradient, self.canonical))
        return bool(cached)


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
        options=(reduction_option(),),
        declare=declare,
        family="elementwise",
        input_domain=lambda o: "probability" if probability else "real",
    )


def _refuse_non_finite(expr: sp.Expr, where: str) -> None:
    """One line naming a constant that is not a finite real number (``z/0``, ``sqrt(-1)``)."""
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise SymlossValueError(
            f"{where!r} is not finite (a division by zero, log(0) or an infinite value); "
            "a loss must be finite for finite inputs")
    if expr.has(sp.I):
        raise SymlossValueError(
            f"{where!r} is not a real number (an imaginary unit appears: sqrt or log of a "
            "negative constant?); a loss must be real")
    for number in expr.atoms(sp.Float):
        if not math.isfinite(float(number)):
            raise SymlossValueError(f"{where!r} overflows a float; a loss must be finite")
    if expr.is_number and not expr.has(sp.Float):  # an exact constant: (-8)**(1/3) is complex
        value = complex(sp.N(expr, 20))
        if value.imag != 0:
            raise SymlossValueError(
                f"{where!r} is not a real number ({value:.6g}); a loss must be real")


def custom_loss(
    loss: sp.Expr | str,
    *,
    input: sp.Symbol | None = None,
    target: sp.Symbol = Y,
    canonical: sp.Expr | str | None = None,
    name: str = "custom",
    reduction: str = "mean",
    limits: FormulaLimits | None = None,
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
        limits: the budget for symbolic work (:class:`FormulaLimits`): the size of a formula,
            checked before SymPy sees it, and the time each simplification or proof may take.

    Returns:
        A :class:`CustomDerivation` (a :class:`~symloss.Derivation`).

    Raises:
        SymlossValueError: a formula over its limits, or with a constant that is not a finite
            real number; the message names which.

    >>> from symloss.primitives import softplus
    >>> d = custom_loss(softplus(Z) - Y * Z, canonical=sigmoid(Z) - Y)
    >>> d.gradient, d.proved
    (-y + sigmoid(z), True)
    >>> custom_loss("log(0)*z")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symloss.errors.SymlossValueError: 'log(0)' is not finite (a division by zero, log(0) ...
    """
    if limits is None:
        limits = DEFAULT_LIMITS
    if not isinstance(limits, FormulaLimits):
        raise SymlossTypeError(f"limits must be a FormulaLimits, got {type(limits).__name__}")
    if isinstance(loss, str):
        loss = parse_loss(loss, limits=limits)
    if isinstance(canonical, str):
        canonical = parse_loss(canonical, limits=limits)
    if not isinstance(loss, sp.Expr):
        raise SymlossTypeError(f"loss must be a SymPy expression or a formula, got {loss!r}")
    for what, expr in (("the loss", loss), ("the canonical form", canonical)):
        if expr is None:
            continue
        if not isinstance(expr, sp.Expr):
            raise SymlossTypeError(f"{what} must be a SymPy expression or a formula, "
                                   f"got {expr!r}")
        size = sum(1 for _ in sp.preorder_traversal(expr))
        if size > 4 * limits.max_nodes:
            raise SymlossValueError(f"{what} has {size} nodes, more than the limit "
                                    f"{4 * limits.max_nodes} (4 × FormulaLimits.max_nodes)")
        _refuse_non_finite(expr, str(expr))
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
    options = {"reduction": check_option(name, spec.option("reduction"), reduction)}
    derivation = CustomDerivation(spec, options, spec.declare(options))
    derivation.limits = limits
    return derivation


def parse_loss(text: str, *, limits: FormulaLimits | None = None) -> sp.Expr:
    """Parse a per-element loss from text with a restricted grammar -- never ``eval``.

    Grammar: numbers; the names ``z``, ``p``, ``y``; ``+ - * / **``; parentheses; calls of
    ``sigmoid, softplus, log, clamped_log, exp, sqrt, tanh, abs`` with one argument. The tree
    is checked against ``limits`` (:class:`FormulaLimits`) before any SymPy object is built.

    Raises:
        SymlossValueError: the text is not such a formula, is over a limit, or has a constant
            that is not a finite real number; the message names what is wrong.

    >>> parse_loss("y*softplus(-z) + (1 - y)*softplus(z)")
    y*softplus(-z) + (1 - y)*softplus(z)
    >>> parse_loss("(z + y)**64")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symloss.errors.SymlossValueError: exponent 64 in '(z + y) ** 64' is too large (at most 16: ...
    """
    limits = DEFAULT_LIMITS if limits is None else limits
    if not isinstance(text, str):
        raise SymlossTypeError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > limits.max_length:
        raise SymlossValueError(
            f"a formula may have at most {limits.max_length} characters, this one has "
            f"{len(text)} (FormulaLimits.max_length)")
    if not text.strip():
        raise SymlossValueError("the formula is empty")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise SymlossValueError(f"not a formula: {exc.msg} in {text[:80]!r}") from None
    except ValueError as exc:  # a NUL character, on some Pythons
        raise SymlossValueError(f"not a formula: {exc}") from None
    except (RecursionError, MemoryError):
        raise SymlossValueError(
            f"the formula is nested too deeply (at most {limits.max_depth} levels)") from None
    nodes = sum(1 for _ in ast.walk(tree.body))
    if nodes > limits.max_nodes:
        raise SymlossValueError(f"the formula has {nodes} parts, more than the limit "
                                f"{limits.max_nodes} (FormulaLimits.max_nodes)")
    expr, _ = _Builder(limits).build(tree.body, 1, 0)
    return expr


def _allowed() -> str:
    return (
        f"numbers, the names {', '.join(_NAMES)}, + - * / **, parentheses and the functions "
        f"{', '.join(FUNCTIONS)}"
    )


def _digits(value: sp.Expr) -> int:
    """Decimal digits of an exact rational constant (numerator and denominator), else 0."""
    if isinstance(value, sp.Rational):
        p, q = abs(int(value.p)), int(value.q)
        return max(len(str(p)) if p < 10**50 else int(p.bit_length() * 0.30103) + 1,
                   len(str(q)) if q < 10**50 else int(q.bit_length() * 0.30103) + 1)
    return 0


class _Builder:
    """Builds the SymPy expression node by node, checking each against the limits first.

    ``build`` returns ``(expression, degree)``: ``degree`` bounds the polynomial degree in
    the names (a function call counts as one name), which bounds expansion's work.
    """

    def __init__(self, limits: FormulaLimits) -> None:
        self.limits = limits

    def build(self, node: ast.AST, depth: int, calls: int) -> tuple[sp.Expr, int]:
        lim = self.limits
        if depth > lim.max_depth:
            raise SymlossValueError(f"the formula is nested deeper than {lim.max_depth} "
                                    "levels (FormulaLimits.max_depth)")
        try:
            expr, degree = self._node(node, depth, calls)
        except SymlossValueError:
            raise
        except (ArithmeticError, TypeError, ValueError, KeyError, AttributeError,
                RecursionError, MemoryError) as exc:  # SymPy failed on a legal formula
            raise SymlossValueError(
                f"{ast.unparse(node)[:80]!r} cannot be built: {type(exc).__name__}: "
                f"{str(exc)[:120]}") from None
        where = ast.unparse(node)
        if degree > lim.max_degree:
            raise SymlossValueError(
                f"{where!r} reaches polynomial degree {degree}, more than {lim.max_degree} "
                "(FormulaLimits.max_degree)")
        if _digits(expr) > lim.max_constant_digits:
            raise SymlossValueError(
                f"{where!r} is a constant of more than {lim.max_constant_digits} digits "
                "(FormulaLimits.max_constant_digits)")
        _refuse_non_finite(expr, where)
        return expr, degree

    def _node(self, node: ast.AST, depth: int, calls: int) -> tuple[sp.Expr, int]:
        lim = self.limits
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SymlossValueError(
                    f"{value!r} is not allowed in a formula; allowed: {_allowed()}")
            if isinstance(value, int):
                if value >= 10**lim.max_integer_digits:
                    raise SymlossValueError(
                        f"the integer {ast.unparse(node)[:20]}... has more than "
                        f"{lim.max_integer_digits} digits (FormulaLimits.max_integer_digits)")
                return sp.Integer(value), 0
            if not math.isfinite(value):
                raise SymlossValueError(f"{ast.unparse(node)!r} overflows a float; a loss "
                                        "must be finite")
            return sp.Float(value), 0
        if isinstance(node, ast.Name):
            if node.id in _NAMES:
                return _NAMES[node.id], 1
            raise SymlossValueError(
                f"unknown name {node.id!r} in a formula; allowed: {_allowed()}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand, degree = self.build(node.operand, depth + 1, calls)
            return (-operand if isinstance(node.op, ast.USub) else operand), degree
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            (a, da), (b, db) = (self.build(node.left, depth + 1, calls),
                                self.build(node.right, depth + 1, calls))
            if isinstance(node.op, ast.Add):
                return a + b, max(da, db)
            if isinstance(node.op, ast.Sub):
                return a - b, max(da, db)
            if isinstance(node.op, ast.Mult):
                return a * b, da + db
            if isinstance(node.op, ast.Div):
                return a / b, da + db
            return self._power(node, a, da, b, db)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                shown = ast.unparse(node.func)
                raise SymlossValueError(
                    f"{shown!r} is not a function a formula may call; allowed: "
                    f"{', '.join(FUNCTIONS)}")
            if node.keywords or len(node.args) != 1:
                raise SymlossValueError(f"{node.func.id} takes exactly one argument")
            if calls + 1 > lim.max_call_depth:
                raise SymlossValueError(
                    f"functions are nested more than {lim.max_call_depth} deep in "
                    f"{ast.unparse(node)[:60]!r} (FormulaLimits.max_call_depth)")
            arg, _ = self.build(node.args[0], depth + 1, calls + 1)
            return FUNCTIONS[node.func.id](arg), 1
        raise SymlossValueError(
            f"{ast.unparse(node)!r} is not allowed in a formula; allowed: {_allowed()}")

    def _power(self, node: ast.BinOp, a: sp.Expr, da: int, b: sp.Expr,
               db: int) -> tuple[sp.Expr, int]:
        lim = self.limits
        where = ast.unparse(node)
        if b.free_symbols:  # a symbolic exponent is never expanded
            return a**b, da + db
        try:
            size = abs(float(b))
        except (TypeError, ValueError):
            raise SymlossValueError(f"the exponent in {where!r} is not a real number") from None
        if not size <= lim.max_exponent:
            raise SymlossValueError(
                f"exponent {b} in {where!r} is too large (at most {lim.max_exponent:g}: "
                "FormulaLimits.max_exponent)")
        steps = max(1, math.ceil(size))
        if _digits(a) * steps > lim.max_constant_digits:
            raise SymlossValueError(
                f"{where!r} is a constant of more than {lim.max_constant_digits} digits "
                "(FormulaLimits.max_constant_digits)")
        return a**b, da * steps
