"""Exact values for the elements the evaluators could not certify.

Both evaluators evaluate a form that may cancel -- ``σ(z) − y``, ``eᶻ − y``, a whole
``accurate(...)`` form -- in double-double, about 106 bits, and round once. That keeps every
digit unless the terms cancel by more than about 50 bits beyond float64's, which only happens
within a hair of a root (an input bisected towards ``y = σ(z)``, ``y = e^z``, a Hessian's zero).
There the result's error would be about 2⁻¹⁰⁴ of the terms, not of the result, so the
evaluators return NaN instead (:func:`symloss.ddouble.certified`: more than 39 bits cancelled),
and :func:`rescue` replaces each such element by the exact value of the same expression at the
same floats, computed by SymPy's ``evalf`` (mpmath, with the inputs exact and 60 digits of
working precision, enough for a cancellation of 140 bits), rounded once.

Such elements are rare -- none in random data; each costs about a millisecond -- so the fast
paths keep their speed and every element keeps its digits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from .algebra import written_out
from .layout import Layout, expression
from .primitives import clamped_log, mp_softplus, softplus

if TYPE_CHECKING:
    from .derive import Derivation

__all__ = ["rescue"]

#: Decimal digits of the denominator the result is divided by (exact: a float64).
DIGITS = 60

#: Decimal digits of the successive evaluations (:func:`_evaluate`).
PRECISIONS = (40, 120, 400, 1200)

#: The hvp's direction, as Derivation.hvp_expr writes it for an element-wise loss.
_DIRECTION = sp.Symbol("v", real=True)


def _expression(derivation: Derivation, what: str, hard: bool) -> sp.Expr:
    """The expression the evaluators evaluate (:func:`symloss.layout.expression`); ``grad``
    is its hard or soft form. Each ``clamped_log(1 − p)`` is :class:`_clamped_log1m` of ``p``
    (the printed ``log1p(−p)``): substituted floats make ``1 − p`` one number, and
    ``1 − 10⁻³⁰⁰`` is 1 to 120 digits (binary_cross_entropy's weighted loss at
    p = y = 10⁻³⁰⁰ lost its ``(1 − y)·p`` term, 8.2e13 ulp)."""
    if what == "grad":
        what = "grad_hard" if hard else "grad_soft"
    return expression(derivation, what).replace(  # type: ignore[no-any-return]
        lambda e: isinstance(e, clamped_log) and e.complement is not None,
        lambda e: _clamped_log1m(e.complement))


class _clamped_log1m(sp.Function):
    """``clamped_log(1 − p)`` evaluated as ``max(log1p(−p), −100)`` from ``p`` (see
    :func:`_expression`)."""

    nargs = 1

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        import mpmath

        p = self.args[0]._eval_evalf(prec)
        if p is None or not (p.is_Number and p.is_real):
            return None
        with mpmath.workprec(prec + 10):
            m = mpmath.mpf(sp.Float(p, precision=prec + 10)._mpf_)
            value = max(mpmath.log1p(-m), -100) if m < 1 else mpmath.mpf(-100)
        return sp.Float._new(mpmath.mpf(value)._mpf_, prec)  # type: ignore[no-any-return]


def rescue(derivation: Derivation, layout: Layout, out: np.ndarray, what: str,
           v: np.ndarray | None = None) -> np.ndarray:
    """``out`` (an element-wise loss's per-element ``what``: ``loss``, ``grad``, ``hvp`` or
    ``hess``, as an evaluator returned it) with each NaN at finite inputs replaced by the exact
    value of the expression the evaluators evaluate there, rounded once (and divided by the
    layout's denominator for ``grad`` and ``hvp``, as the evaluators do).

    >>> import numpy as np, symloss
    >>> d = symloss.derive("gamma_loss", reduction="sum")
    >>> z, y = np.array([-0.00100050033358353]), np.array([0.999])  # 1 − y·e^(−z): 57 bits cancel
    >>> float(d.grad_fn(z, y)[0])  # exact: 4.36245346694569552…e-18
    4.362453466945696e-18
    """
    if layout.family == "class_axis":
        return _rescue_rows(derivation, layout, out, what, v)
    if layout.family != "elementwise":
        return out
    flat = out.reshape(-1)
    nan = np.flatnonzero(np.isnan(flat))
    if nan.size == 0:
        return out
    d = derivation
    shape = layout.arrays["input"].shape
    columns = {n: np.broadcast_to(a, shape).reshape(-1) for n, a in layout.arrays.items()}
    if v is not None:
        columns["v"] = np.broadcast_to(v, shape).reshape(-1)
    finite = np.ones(nan.size, dtype=bool)
    for column in columns.values():
        finite &= np.isfinite(column[nan])
    nan = nan[finite]
    if nan.size == 0 or not all(np.isfinite(s) for s in layout.scalars.values()):
        return out
    symbols = d.declaration.symbols
    scalars = {symbols[n]: float(s) for n, s in layout.scalars.items()}
    divisor = sp.Float(float(layout.divisor), DIGITS) if what in ("grad", "hvp") else sp.S.One
    target = columns.get("target")
    exprs: dict[bool, sp.Expr] = {}
    for j in nan:
        hard = target is not None and float(target[j]) in (0.0, 1.0)
        if hard not in exprs:
            exprs[hard] = sp.sympify(_expression(d, what, hard))
        values: dict[Any, float] = {
            (_DIRECTION if n == "v" else symbols[n]): float(c[j])
            for n, c in columns.items() if n == "v" or n in symbols}
        values.update(scalars)
        value = _evaluate(exprs[hard], values)
        if value is not None:
            flat[j] = float(value / divisor)
    return out


def _evaluate(expr: sp.Expr, values: dict[Any, float]) -> sp.Expr | None:
    """``expr`` at ``values`` (exact binary Floats), to about 20 correct digits: evaluated at
    growing precision until two nonzero evaluations agree (log(1 + e^(−215)) needs 100 digits to
    differ from 0), 0 where every precision gives 0; ``None`` where it is not a real number."""
    if expr.has(sp.UnevaluatedExpr):
        # a factor the evaluators keep whole (focal's Q′/Q: its numerator underflows in
        # float64) is one number to mpmath, and evalf leaves an UnevaluatedExpr unevaluated
        expr = expr.replace(lambda e: isinstance(e, sp.UnevaluatedExpr), lambda e: e.args[0])
    last = None
    for digits in PRECISIONS:
        # the floats exact, and 20 digits more for what SymPy evaluates on substitution
        at = {s: sp.Float(v, digits + 20) for s, v in values.items()}
        value = expr.xreplace(at).evalf(digits)
        if not (value.is_number and value.is_real and value.is_Number):
            return None
        # two zeros agree only at the last precision: 1 − (1 − 10⁻³⁰⁴) is 0 to 120 digits
        if last is not None and value != 0 and abs(value - last) <= abs(value) * 2.0**-70:
            return value
        last = value
    return last


def _rescue_rows(derivation: Derivation, layout: Layout, out: np.ndarray, what: str,
                 v: np.ndarray | None) -> np.ndarray:
    """:func:`rescue` on a class axis: ``out`` is per row (``loss``) or per row and class."""
    z = layout.arrays["input"]
    n_rows, n_classes = z.shape
    table = out.reshape(n_rows, -1)
    nan = np.argwhere(np.isnan(table))
    if nan.size == 0 or not all(np.isfinite(s) for s in layout.scalars.values()):
        return out
    d = derivation
    symbols = d.declaration.symbols
    zb, yb, wb = symbols["input"], symbols["target"], symbols.get("weight")
    weight = layout.arrays.get("weight")
    divisor = sp.Float(float(layout.divisor), DIGITS) if what in ("grad", "hvp") else sp.S.One
    scalars = {symbols[n]: float(s) for n, s in layout.scalars.items()}
    exprs: dict[tuple[bool, int], sp.Expr | None] = {}
    fns: dict[tuple[bool, int], Any] = {}
    read: dict[tuple[bool, int], list[tuple[Any, ...]]] = {}
    own: dict[bool, bool] = {}  # by hard: whether the expression reads only its own class
    # the row's entries as symbols, made once (an Indexed is slow to make)
    entries = [(zb[j + 1], yb[j + 1], wb[j + 1] if wb is not None else None,
                sp.IndexedBase("v")[j + 1]) for j in range(n_classes)]
    for r, c in nan:
        if layout.labels is not None:
            if layout.valid is not None and not layout.valid[r]:
                continue
            y = np.zeros(n_classes)
            y[int(layout.labels[r])] = 1.0
        else:
            y = np.asarray(layout.arrays["target"][r], dtype=np.float64)
        rows = [z[r], y] + ([v[r]] if v is not None else [])
        if not all(np.all(np.isfinite(row)) for row in rows):
            continue
        hard = bool(np.all((y == 0.0) | (y == 1.0)))
        if hard not in own:
            own[hard] = what != "loss" and _own_class_only(_expression(d, what, hard))
        # an expression of the class's own entries alone is one for every class: written out
        # (and printed) once, at class 0, and read at class c
        key = (hard, 0 if own[hard] else int(c))
        if key not in exprs:
            exprs[key] = _cached_row_expression(d, what, hard, key[1], n_classes)
        expr = exprs[key]
        if expr is None:
            continue
        if key not in read:  # the entries the expression reads (z[1] … z[n], y, w, v)
            used = expr.free_symbols
            read[key] = [(j, *(s if s in used else None for s in entry))
                         for j, entry in enumerate(entries) if any(s in used for s in entry)]
        values: dict[Any, float] = {}
        for j, zj, yj, wj, vj in read[key]:
            at = int(c) if own[hard] else j
            if zj is not None:
                values[zj] = float(z[r, at])
            if yj is not None:
                values[yj] = float(y[at])
            if wj is not None and weight is not None:
                values[wj] = float(np.broadcast_to(weight, (n_classes,))[at])
            if vj is not None and v is not None:
                values[vj] = float(v[r, at])
        values.update(scalars)
        if key not in fns:  # the same arguments in every row of this call
            fns[key] = _row_function(expr, tuple(values))
        value = _evaluate_row(fns[key], expr, values)
        if value is not None:
            table[r, c] = float(value / divisor)
    return out


def _own_class_only(template: sp.Expr) -> bool:
    """Whether a class-axis gradient or hvp ``template`` (class ``CLASS_INDEX``) reads its row
    only at its own class -- no class sum, no class-axis function, every array entry at
    ``CLASS_INDEX`` and the index nowhere else -- so that its value at class c is the same
    expression of class c's entries for every c (multilabel_soft_margin_loss's
    ``wᵢ(σ(zᵢ) − yᵢ)/C``). Written out and printed per class instead, a row of 4099 classes with
    1183 of them to rescue took 28 s of SymPy (and, printed with every entry as an argument,
    over 120 s)."""
    from .hinges import at_target
    from .primitives import CLASS_INDEX, _ClassAxisFunction

    if template.has(sp.Sum, at_target) or template.atoms(_ClassAxisFunction):
        return False
    entries = template.atoms(sp.Indexed)
    if any(e.indices != (CLASS_INDEX,) for e in entries):
        return False
    return CLASS_INDEX not in template.xreplace({e: sp.Dummy() for e in entries}).free_symbols


#: A row expression compiled to an mpmath function, by (expression, its arguments).
_ROW_FUNCTIONS: dict[tuple[sp.Expr | tuple[sp.Expr, ...], tuple[Any, ...]], Any] = {}

#: Decimal digits of :func:`_evaluate_row`'s evaluations (:data:`PRECISIONS`, with the 20
#: digits more :func:`_evaluate` gives the substituted floats).
_ROW_DIGITS = tuple(digits + 20 for digits in PRECISIONS)


def _row_function(expr: sp.Expr | tuple[sp.Expr, ...], args: tuple[Any, ...]) -> Any:
    """``expr`` as an mpmath function of ``args`` (compiled once), or ``None`` where it has
    none; a tuple of expressions (a row's columns) as one function giving their list, with
    their common subexpressions computed once (``cse``)."""
    key = (expr, args)
    if key not in _ROW_FUNCTIONS:
        exprs = expr if isinstance(expr, tuple) else (expr,)
        # each argument (an Indexed a[3] is no Python name) as a plain symbol, in one pass:
        # lambdify's dummify replaces them one by one, a pass over the whole written-out row
        # each (~6 s for a width-16 triplet gradient column, 70 arguments)
        taken = {str(s) for e in exprs for s in e.free_symbols}
        plain = [sp.Symbol(f"_x{j}") for j in range(len(args))]
        if taken & {str(s) for s in plain}:
            plain = [sp.Dummy() for _ in args]
        renamed = [e.xreplace(dict(zip(args, plain, strict=True))) for e in exprs]
        try:
            _ROW_FUNCTIONS[key] = sp.lambdify(
                plain, renamed if isinstance(expr, tuple) else renamed[0],
                modules=[_MPMATH_NAMES, "mpmath"],
                dummify=False, cse=isinstance(expr, tuple))
        except Exception:  # nothing to print it with: SymPy's evalf
            _ROW_FUNCTIONS[key] = None
    return _ROW_FUNCTIONS[key]


def _evaluate_row(fn: Any, expr: sp.Expr, values: dict[Any, float]) -> sp.Expr | None:
    """:func:`_evaluate` of a row expression, first by ``fn``, the expression as one mpmath
    function of the row's entries (:func:`_row_function`), by the same rule: evaluated at
    growing precision (:data:`_ROW_DIGITS`) until two nonzero values agree to 2⁻⁷⁰ of the
    second (a value that cancels by 10ᵏ loses k digits in each: two that agree to 21 digits
    leave the second's error below 10⁻⁹⁹ of it), 0 where every precision gives exactly 0 (a
    hinge's inactive side, decided by an exact comparison at 1220 digits); else, or where it
    cannot be evaluated so, :func:`_evaluate`'s.

    SymPy's substitution and ``evalf`` rebuild the written-out row (sums of C exponentials,
    each several times) for every element: ~35 ms each where the accuracy search's centred
    directions leave one element per row to rescue, ~170 ms for a triplet_margin_loss
    gradient element; this takes about 1 ms."""
    import mpmath

    if fn is not None:
        try:
            args = [mpmath.mpf(v) for v in values.values()]  # exact: 53 bits
            found: list[Any] = []
            for digits in _ROW_DIGITS:
                with mpmath.workdps(digits):
                    value = fn(*args)
                if not (isinstance(value, mpmath.mpf) and mpmath.isfinite(value)):
                    break
                if found and value != 0 and abs(value - found[-1]) <= abs(value) * mpmath.mpf(2) ** -70:
                    return sp.Float(value, digits)
                found.append(value)
            else:
                if all(value == 0 for value in found):
                    return sp.S.Zero
        except Exception:  # a function mpmath has no twin of: evalf
            pass
    return _evaluate(expr, values)


#: Class-axis row expressions (:func:`row_expression`), by the expression evaluated, the
#: result, the class and the row width: each call of an evaluator rescues anew.
_CLASS_ROWS: dict[tuple[sp.Expr, str, int, int], sp.Expr | None] = {}


def _cached_row_expression(derivation: Derivation, what: str, hard: bool, c: int,
                           n_classes: int) -> sp.Expr | None:
    """:func:`row_expression`, written out once per expression, class and row width."""
    key = (_expression(derivation, what, hard), what, c, n_classes)
    if key not in _CLASS_ROWS:
        _CLASS_ROWS[key] = row_expression(derivation, what, hard, c, n_classes)
    return _CLASS_ROWS[key]


def row_expression(derivation: Derivation, what: str, hard: bool, c: int,
                   n_classes: int) -> sp.Expr | None:
    """A class-axis ``what`` at class ``c`` (0-based) of a row of ``n_classes``, with its sums
    written out and its class-axis functions as exponentials: an expression of the entries
    ``z[1] … z[n]`` (and ``y``, ``w``, ``v``) that ``evalf`` evaluates; ``None`` where one of
    them has no such form."""
    from .hinges import at_target
    from .primitives import (
        CLASS_INDEX,
        NUM_CLASSES,
        SUM_INDEX,
        _ClassAxisFunction,
        accurate,
        log1p,
        log_softmax,
        softmax,
    )

    # accurate(...) says how a float evaluator rounds; the exact value is its argument's (the
    # rewrites below do not reach through it: a class-weighted value, rounded once since the
    # twentieth session, kept log softmax as zₖ − log Σ e^z and lost w₀·log p₀ = 0.82 next to 103)
    e = sp.sympify(_expression(derivation, what, hard)).replace(
        lambda a: isinstance(a, accurate), lambda a: a.args[0])
    if what != "loss":
        e = e.xreplace({CLASS_INDEX: sp.Integer(c + 1)})
    # the target's entry x_t as the sum Σ_k y_k x_k it stands for
    e = e.replace(lambda a: isinstance(a, at_target),
                  lambda a: sp.Sum(a.args[1][SUM_INDEX] * a.args[0][SUM_INDEX],
                                   (SUM_INDEX, 1, NUM_CLASSES)))
    e = e.xreplace({NUM_CLASSES: sp.Integer(n_classes)})
    # log softmax(z)ₖ as −log1p(Σ_{j≠k} e^(z_j − z_k)): as zₖ − log Σⱼ e^(z_j) it is 0 at 40
    # and at 120 digits alike where the other terms are below 10⁻¹²⁰ of the largest, and a
    # large weight times it (label smoothing's ε/C·w_t log p_t next to the other classes'
    # terms) agreed with itself without it (cross_entropy, w_t = 2.76e303 at z = [700, 0, 0,
    # 0]: 102.755 for 103.510). Held by a name of its own while the rest is rewritten.
    held = sp.Function("_log1p_held")
    e = e.replace(lambda a: isinstance(a, log_softmax), lambda a: -held(sp.Sum(
        (1 - sp.KroneckerDelta(_J, a.args[1])) * sp.exp(a.args[0][_J] - a.args[0][a.args[1]]),
        (_J, 1, a.args[2]))))
    # the class-axis functions as sums of exponentials, the sums written out; softplus kept
    # whole (evaluated as mp_softplus): its log(1 + eˣ) rounds 1 + eˣ to 1 at every
    # precision tried where eˣ is below 10⁻¹²⁰⁰, and at 40 and 120 digits already for
    # eˣ = e^(−708.4), which a class weight 2.8e303 makes count (multilabel_soft_margin_loss's
    # row loss was 6.9e10 ulp off)
    for _ in range(3):
        e = e.replace(lambda a: isinstance(a, softplus), lambda a: _KEPT_SOFTPLUS(*a.args))
        e = e.rewrite(sp.Sum).rewrite(softmax).rewrite(sp.exp)
    e = e.doit().replace(held, log1p).replace(
        lambda a: getattr(a, "func", None) == _KEPT_SOFTPLUS, lambda a: softplus(*a.args))
    return None if e.atoms(_ClassAxisFunction) or e.has(sp.Sum) else e


#: The summation index of :func:`row_expression`'s log softmax.
_J = sp.Dummy("j", integer=True)

#: softplus hidden from :func:`row_expression`'s rewrites (a function with no rewrite).
_KEPT_SOFTPLUS = sp.Function("softplus_kept")

#: What the row functions' mpmath printing reads besides mpmath: the primitives left whole.
_MPMATH_NAMES = {"softplus": mp_softplus}

#: A row expression with its sums written out, by (expression, row width, free index value),
#: with its arguments: the arrays' elements (element, array name, position; ``None`` where an
#: index is left unresolved) and the per-row numbers and options (symbol, name).
_ROW_EXPRESSIONS: dict[tuple[sp.Expr, int, int | None],
                       tuple[sp.Expr, list[tuple[Any, str, int]] | None,
                             list[tuple[Any, str]]]] = {}


def _row_form(expr: sp.Expr, symbols: dict[str, Any], size: Any, width: int, index: Any,
              column: int | None) -> tuple[sp.Expr, list[tuple[Any, str, int]] | None,
                                           list[tuple[Any, str]]]:
    """:func:`row_value`'s expression written out for ``width`` (and ``column``), with its
    arguments (:data:`_ROW_EXPRESSIONS`), made once."""
    key = (expr, width, column)
    if key not in _ROW_EXPRESSIONS:
        e = expr.xreplace({size: sp.Integer(width)}) if size is not None else expr
        if column is not None:
            e = e.xreplace({index: sp.Integer(column + 1)})
        e = written_out(e)  # not Sum.doit: see written_out
        # its arguments, in one order for every row: the arrays' elements, then the numbers
        labels = {str(s.label): n for n, s in symbols.items() if isinstance(s, sp.IndexedBase)}
        found: list[tuple[Any, str, int]] = []
        resolved = True
        for element in sorted(e.atoms(sp.Indexed), key=sp.default_sort_key):
            (k,) = element.indices
            if not k.is_Integer:
                resolved = False  # an index the sums did not resolve
                break
            found.append((element, labels[str(element.base.label)], int(k) - 1))
        elements = found if resolved else None
        numbers = [(symbol, name) for name, symbol in symbols.items()
                   if isinstance(symbol, sp.Symbol) and symbol in e.free_symbols]
        _ROW_EXPRESSIONS[key] = (e, elements, numbers)
    return _ROW_EXPRESSIONS[key]


def _row_point(elements: list[tuple[Any, str, int]], numbers: list[tuple[Any, str]],
               point: dict[str, Any]) -> dict[Any, float]:
    """The arguments of a written-out row expression (:func:`_row_form`) at ``point``."""
    values: dict[Any, float] = {
        element: float(point[name][k]) for element, name, k in elements}
    for symbol, name in numbers:
        if name in point:
            values[symbol] = float(point[name])
    return values


def row_value(expr: sp.Expr, symbols: dict[str, Any], point: dict[str, Any], size: Any,
              width: int, index: Any, column: int | None) -> float | None:
    """The exact value of a row-wise loss's per-row expression (:mod:`symloss.rows`) at one
    row, rounded once to float64: its sums over the ``size`` (``D``) features written out for
    this ``width``, the free ``index`` set to ``column + 1`` (a gradient's element), the arrays'
    elements and the per-row numbers and options from ``point`` (name -> float or list of
    floats, as ``symbols`` names them); ±inf where it is real but beyond float64's range (its
    correct rounding), ``None`` where it is not a real number.

    :class:`symloss.rows.RowAdapter` calls it for the few elements that even double-double
    cannot certify (a hinge argument or a gradient component cancelling by more than ~45
    bits), as :func:`rescue` does for the element-wise losses. A gradient's or HVP's element
    is taken from its whole row's (:func:`_row_columns`): where one element of a row cannot
    be certified, its neighbours seldom can (a = p = n: every column cancels to 0).
    """
    if column is not None:
        columns = _row_columns(expr, symbols, point, size, width, index)
        if columns is not None:
            value = columns[column]
            return None if value is None else _real(float(value))
    e, elements, numbers = _row_form(expr, symbols, size, width, index, column)
    if elements is None:
        return None
    values = _row_point(elements, numbers, point)
    # one mpmath function per expression and arguments, as for a class-axis row
    value = _evaluate_row(_row_function(e, tuple(values)), e, values)
    return None if value is None else _real(float(value))


def _real(x: float) -> float | None:
    return None if np.isnan(x) else x


#: The exact columns of recently rescued rows (:func:`_row_columns`), by expression, width
#: and the row's arguments: both evaluators rescue the same elements of a row.
_ROW_VALUES: dict[tuple[Any, ...], list[sp.Expr | None]] = {}


def _row_columns(expr: sp.Expr, symbols: dict[str, Any], point: dict[str, Any], size: Any,
                 width: int, index: Any) -> list[sp.Expr | None] | None:
    """Every column of a row's gradient or HVP (:func:`row_value`) at ``point``, each by
    :func:`_evaluate_row`'s rule, from one mpmath function of the row's entries computing the
    columns together (their sums and distances once: ``cse``); ``None`` where a column has no
    written-out form. Remembered for the row (:data:`_ROW_VALUES`)."""
    forms = [_row_form(expr, symbols, size, width, index, c) for c in range(width)]
    if any(elements is None for _, elements, _ in forms):
        return None
    union: dict[Any, tuple[Any, str, int]] = {}
    numbers: dict[Any, tuple[Any, str]] = {}
    for _, elements, names in forms:
        union.update((element[0], element) for element in elements or [])
        numbers.update((number[0], number) for number in names)
    ordered = sorted(union.values(), key=lambda t: sp.default_sort_key(t[0]))
    values = _row_point(ordered, list(numbers.values()), point)
    key = (expr, width, tuple(values.items()))
    if key not in _ROW_VALUES:
        if len(_ROW_VALUES) > 4096:
            _ROW_VALUES.clear()
        exprs = [e for e, _, _ in forms]
        fn = _row_function(tuple(exprs), tuple(values))
        _ROW_VALUES[key] = _evaluate_columns(fn, exprs, values)
    return _ROW_VALUES[key]


def _evaluate_columns(fn: Any, exprs: list[sp.Expr], values: dict[Any, float]
                      ) -> list[sp.Expr | None]:
    """:func:`_evaluate_row` of each of ``exprs`` (a row's columns), by ``fn`` giving them all
    at once (:func:`_row_function` of the tuple): each column decided by the same rule at the
    same precisions (:data:`_ROW_DIGITS`); a column it leaves undecided (a value that is not
    a finite real number, ``fn`` failing: a shared part of a branch not taken dividing by 0)
    by :func:`_evaluate_row` alone."""
    import mpmath

    undecided = object()
    out: list[Any] = [undecided] * len(exprs)
    found: list[list[Any]] = [[] for _ in exprs]
    if fn is not None:
        try:
            args = [mpmath.mpf(v) for v in values.values()]  # exact: 53 bits
            for digits in _ROW_DIGITS:
                with mpmath.workdps(digits):
                    row = fn(*args)
                for c, value in enumerate(row):
                    if out[c] is not undecided or found[c] is None:
                        continue
                    if not (isinstance(value, mpmath.mpf) and mpmath.isfinite(value)):
                        found[c] = None  # type: ignore[call-overload]
                        continue
                    if found[c] and value != 0 and \
                            abs(value - found[c][-1]) <= abs(value) * mpmath.mpf(2) ** -70:
                        out[c] = sp.Float(value, digits)
                        continue
                    found[c].append(value)
                if all(o is not undecided or f is None for o, f in zip(out, found, strict=True)):
                    break
            else:
                for c, seen in enumerate(found):
                    if out[c] is undecided and seen is not None and all(v == 0 for v in seen):
                        out[c] = sp.S.Zero
        except Exception:  # a function mpmath has no twin of, a division by 0: by column
            out = [undecided] * len(exprs)
    for c, e in enumerate(exprs):
        if out[c] is undecided:
            free = e.free_symbols  # an Indexed is one of them
            own = {x: value for x, value in values.items() if x in free}
            out[c] = _evaluate_row(_row_function(e, tuple(own)), e, own)
    return out  # type: ignore[no-any-return]
