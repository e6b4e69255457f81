"""Simplification and proof for expressions with class-axis sums.

``sympy.simplify`` cannot be used on the cross-entropy expressions: on a ``Sum`` of
``KroneckerDelta`` terms it raises ``StopIteration`` inside ``sum_simplify`` (SymPy 1.14), and
``Sum.doit`` answers with a ``Piecewise`` over whether ``i`` lies in ``1..C``. The rules here are
the few a derivation needs, each an identity that holds for a class index ``i`` in ``1..C``:

* ``Σ_k δ_{ik} f(k) = f(i)``;
* ``Σ_k (a_k + b_k) = Σ_k a_k + Σ_k b_k`` and ``Σ_k c·a_k = c·Σ_k a_k`` for ``c`` free of ``k``;
* ``Σ_{k=1}^{C} c = C·c``.

A difference is *proved* zero only when these rules, followed by ``expand`` (and, for an
expression without sums, ``sympy.simplify`` on its ``exp`` form), reduce it to exactly 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import sympy as sp
from sympy import KroneckerDelta, Sum

from .primitives import (
    SUM_INDEX,
    accurate,
    bernoulli_curvature,
    clamp_min,
    clamped_log,
    exp_sub,
    log_softmax,
    log_sub,
    power,
    sigmoid,
    sigmoid_pow,
    sigmoid_sub,
    softmax,
    softmax_complement,
    softmax_hvp,
    softmax_sub,
    softplus,
)

__all__ = [
    "compared_operands",
    "exact_comparison",
    "exp_terms",
    "expand_products",
    "is_zero",
    "magnitude",
    "modulated_slope",
    "normalize",
    "print_with_steps",
    "printed_comparison",
    "printed_ratios",
    "ratio_powers",
    "reduce_sums",
    "rounding_bound",
    "scaled_difference",
    "sigmoid_curvature",
    "soft_modulated_slope",
    "step_relations",
    "tidy",
    "written_out",
]

Assumption = tuple[sp.Expr, sp.Expr]


#: A power of a sum with a larger integer exponent is kept whole by :func:`expand_products`.
EXPAND_MAX_EXPONENT = 8


def expand_products(expr: sp.Expr) -> sp.Expr:
    """``sp.expand(expr)``, except that a power of a sum whose integer exponent exceeds
    :data:`EXPAND_MAX_EXPONENT` is kept whole: ``(eps + a[k] - p[k])**998``
    (triplet_margin_loss at p=1000) would expand to half a million terms, and SymPy does not
    finish. Products are still distributed over sums, which is what a class sum needs.

    >>> from sympy import symbols
    >>> a, b, c = symbols("a b c")
    >>> expand_products(c * (a + b) ** 2 + c * (a + b) ** 9)
    a**2*c + 2*a*b*c + b**2*c + c*(a + b)**9
    """
    whole = {pw: sp.Dummy("w") for pw in expr.atoms(sp.Pow)
             if pw.base.is_Add and pw.exp.is_Integer and abs(int(pw.exp)) > EXPAND_MAX_EXPONENT}
    if not whole:
        return sp.expand(expr)
    return sp.expand(expr.xreplace(whole)).xreplace({d: pw for pw, d in whole.items()})


def _split_factors(term: sp.Expr, k: sp.Symbol) -> tuple[sp.Expr, list[sp.Expr]]:
    const: list[sp.Expr] = []
    dependent: list[sp.Expr] = []
    for factor in sp.Mul.make_args(term):
        # free_symbols, not has(): a factor whose k is bound by an inner sum is constant in k.
        (dependent if k in factor.free_symbols else const).append(factor)
    return sp.Mul(*const), dependent


def _reduce_one_sum(
    summand: sp.Expr, k: sp.Symbol, lo: sp.Expr, hi: sp.Expr, expand: bool = True
) -> sp.Expr:
    """Apply the rules to ``Σ_{k=lo}^{hi} summand`` whose summand has no inner sums left.

    With ``expand=False`` a term is expanded only where a δ hides inside a factor, so that a
    stable form such as ``(1 − y_k) σ(z_k)`` reaches the kernel as written, not as
    ``σ(z_k) − y_k σ(z_k)``.
    """
    total = sp.S.Zero
    for term in sp.Add.make_args(expand_products(summand) if expand else summand):
        const, dependent = _split_factors(term, k)
        if not expand and not any(isinstance(f, KroneckerDelta) for f in dependent) and any(
            f.has(KroneckerDelta) for f in dependent
        ):
            total += const * _reduce_one_sum(sp.Mul(*dependent), k, lo, hi, expand=True)
            continue
        if not dependent:
            total += const * (hi - lo + 1)
            continue
        deltas = [f for f in dependent if isinstance(f, KroneckerDelta)]
        if deltas:
            delta = deltas[0]
            other = delta.args[0] if delta.args[1] == k else delta.args[1]
            if not other.has(k):
                rest = sp.Mul(*(f for f in dependent if f is not delta))
                # Σ_k δ_{ik} f(k) = f(i): i is a class index, so it lies in lo..hi.
                total += const * rest.subs(k, other)
                continue
        rest = sp.Mul(*dependent)
        # Name every summation index k so that equal sums compare equal. (A local name: the
        # loop's k must stay the index of the sum being reduced for the following terms.)
        index = k
        if k != SUM_INDEX and not rest.has(SUM_INDEX):
            rest = rest.subs(k, SUM_INDEX)
            index = SUM_INDEX
        total += const * Sum(rest, (index, lo, hi))
    return total


def reduce_sums(expr: sp.Expr, expand: bool = True) -> sp.Expr:
    """Apply the sum rules bottom-up until nothing changes (memoized: a pure function of an
    immutable expression, asked again by every renderer and proof).

    ``expand=False`` keeps each summand's form where no δ needs it expanded (for printing
    stable kernels); the proofs use the default, which expands every summand.

    >>> from sympy import IndexedBase, Sum, KroneckerDelta, Symbol
    >>> from symloss.primitives import CLASS_INDEX as i, SUM_INDEX as k, NUM_CLASSES as C
    >>> y = IndexedBase("y")
    >>> reduce_sums(Sum(y[k] * (KroneckerDelta(i, k) - 2), (k, 1, C)))
    y[i] - 2*Sum(y[k], (k, 1, C))
    """
    return _reduce_sums(expr, expand)


@lru_cache(maxsize=8192)
def _reduce_sums(expr: sp.Expr, expand: bool) -> sp.Expr:

    def rebuild(e: sp.Expr) -> sp.Expr:
        if not e.args:
            return e
        args = [rebuild(a) for a in e.args]
        if isinstance(e, Sum):
            # Σ_{k,l} f = Σ_l (Σ_k f): the first limit is the innermost sum.
            body = args[0]
            for k, lo, hi in e.limits:
                body = _reduce_one_sum(body, k, lo, hi, expand)
            return body
        return e.func(*args)

    previous = None
    while previous != expr:
        previous, expr = expr, rebuild(expr)
    return expr


def written_out(expr: sp.Expr, doit: bool = True) -> sp.Expr:
    """``expr`` with each sum of whole-number limits replaced by the sum of its terms (the
    index set to each value; nested sums innermost first), then (``doit``) ``expr.doit()``.

    Not ``Sum.doit``: its ``eval_sum_direct`` hands a summand to ``apart``, which expands it
    as a polynomial in the index's other symbols -- ``|a_k − p_k + ε|^1000`` multiplied out
    into 1001 terms of each row entry's powers, which did not finish in minutes
    (triplet_margin_loss at p = 10³); a row's few terms need none of that.

    >>> from sympy import IndexedBase, Sum, Symbol
    >>> k = Symbol("k", integer=True)
    >>> x = IndexedBase("x")
    >>> written_out(Sum(abs(x[k] - 1) ** 1000, (k, 1, 2)))
    Abs(x[1] - 1)**1000 + Abs(x[2] - 1)**1000
    """
    def out(e: sp.Expr) -> sp.Expr:
        body = e.args[0]
        for k, lo, hi in e.limits:  # the first limit is the innermost sum
            if not (lo.is_Integer and hi.is_Integer):
                return e
            body = sp.Add(*(body.xreplace({k: sp.Integer(j)})
                            for j in range(int(lo), int(hi) + 1)))
        return body

    e = sp.sympify(expr.replace(lambda e: isinstance(e, Sum), out))
    return e.doit() if doit else e


def normalize(expr: sp.Expr) -> sp.Expr:
    """Write every primitive in one canonical orientation.

    ``σ(-x) → 1 - σ(x)``, ``1 - softmax`` for ``softmax_complement`` and ``log(softmax)`` for
    ``log_softmax``, so that expressions
    that are equal by these identities become equal term by term.
    """

    def flip(e: sp.Expr) -> sp.Expr:
        (x,) = e.args
        if x.could_extract_minus_sign():
            return 1 - sigmoid(-x)
        return e

    def log_sigmoid(e: sp.Expr) -> sp.Expr:
        # log σ(x) = −softplus(−x) and log(1 − σ(x)) = log σ(−x) = −softplus(x)
        (arg,) = e.args
        if isinstance(arg, sigmoid):
            return -softplus(-arg.args[0])
        rest = sp.expand(1 - arg)
        if isinstance(rest, sigmoid):
            return -softplus(rest.args[0])
        return e

    expr = expr.replace(lambda e: isinstance(e, accurate), lambda e: e.args[0])
    expr = expr.replace(lambda e: isinstance(e, bernoulli_curvature), lambda e: e.rewrite(clamp_min))
    expr = expr.replace(lambda e: isinstance(e, sp.log), log_sigmoid)
    expr = expr.replace(lambda e: isinstance(e, sigmoid), flip)
    expr = expr.replace(
        lambda e: isinstance(e, softmax_complement), lambda e: 1 - softmax(*e.args)
    )
    expr = expr.replace(lambda e: isinstance(e, log_softmax), lambda e: sp.log(softmax(*e.args)))
    expr = expr.replace(lambda e: isinstance(e, clamped_log), lambda e: sp.log(e.args[0]))
    expr = expr.replace(lambda e: isinstance(e, clamp_min), lambda e: e.args[0])
    # σ(x)^γ and q^γ as powers, so that exponents add up
    expr = expr.replace(lambda e: isinstance(e, (power, sigmoid_pow)), lambda e: e.rewrite(sp.Pow))
    expr = expr.replace(lambda e: isinstance(e, (softmax_hvp, softmax_sub)),
                        lambda e: e.rewrite(Sum))
    expr = expr.replace(lambda e: isinstance(e, (sigmoid_sub, exp_sub)),
                        lambda e: e.rewrite(sp.Add))  # f(x) − y evaluated in double-double
    return expr


def _apply(expr: sp.Expr, assumptions: Iterable[Assumption]) -> sp.Expr:
    for lhs, rhs in assumptions:
        expr = expr.subs(lhs, rhs)
    return expr


def tidy(expr: sp.Expr, assumptions: Iterable[Assumption] = ()) -> sp.Expr:
    """Simplify for display: normalize, reduce sums, expand, and collect on the primitives."""
    return _tidy(expr, tuple(assumptions))


@lru_cache(maxsize=4096)
def _tidy(expr: sp.Expr, assumptions: tuple[Assumption, ...]) -> sp.Expr:
    expr = sp.expand(reduce_sums(normalize(expr)))
    expr = sp.expand(_apply(expr, assumptions))
    if not expr.has(Sum):
        expr = sp.cancel(expr)
        _, denom = sp.fraction(expr)
        if denom != 1:
            return sp.factor(expr)
        expr = sp.expand(expr)
    atoms = sorted(
        expr.atoms(sigmoid, softmax), key=sp.default_sort_key
    )
    if atoms:
        expr = sp.collect(expr, atoms, func=sp.factor_terms)
    return sp.factor_terms(expr)


def _by_cases(expr: sp.Expr, assumptions: list[Assumption]) -> bool | None:
    """Zero case by case, for ``Piecewise`` terms on values of one symbol (``Eq(y, 0)``, ...):
    at each value the symbol is substituted (every such ``Piecewise`` takes its branch), and
    every default branch for all other values. ``None`` when there is no such ``Piecewise``."""

    def equalities(piece: sp.Piecewise) -> list[sp.Eq]:
        # Eq(y, 0) | Eq(y, 1) (SymPy merges equal branches) counts as its two equalities
        return [e for _, c in piece.args[:-1] for e in (c.args if isinstance(c, sp.Or) else (c,))]

    def on_values(piece: sp.Piecewise) -> sp.Symbol | None:
        eqs = equalities(piece)
        if piece.args[-1][1] is not sp.true or not eqs or not all(
            isinstance(c, sp.Eq) and c.lhs.is_Symbol and c.rhs.is_number for c in eqs
        ):
            return None
        symbols = {c.lhs for c in eqs}
        return symbols.pop() if len(symbols) == 1 else None

    pieces = [p for p in expr.atoms(sp.Piecewise) if on_values(p) is not None]
    if not pieces:
        return None
    symbol = on_values(pieces[0])
    pieces = [p for p in pieces if on_values(p) == symbol]
    values = {c.rhs for p in pieces for c in equalities(p)}
    for value in sorted(values, key=sp.default_sort_key):
        if not is_zero(expr.subs(symbol, value), assumptions):
            return False
    return is_zero(expr.xreplace({p: p.args[-1][0] for p in pieces}), assumptions)


def is_zero(expr: sp.Expr, assumptions: Iterable[Assumption] = ()) -> bool:
    """True only when the rules reduce ``expr`` to exactly 0.

    >>> from sympy import Symbol
    >>> from symloss.primitives import sigmoid
    >>> z, y = Symbol("z"), Symbol("y")
    >>> is_zero(-y * sigmoid(-z) + (1 - y) * sigmoid(z) - (sigmoid(z) - y))
    True
    >>> is_zero(sigmoid(z) - y)
    False
    """
    return _is_zero(expr, tuple(assumptions))


@lru_cache(maxsize=4096)
def _is_zero(expr: sp.Expr, assumptions_: tuple[Assumption, ...]) -> bool:
    # memoized: every twin of a derivation (other option values, other threads) asks again
    assumptions = list(assumptions_)
    cases = _by_cases(expr, assumptions)
    if cases is not None:
        return cases
    reduced = sp.expand(_apply(sp.expand(reduce_sums(normalize(expr))), assumptions))
    reduced = sp.expand(reduce_sums(reduced))
    if reduced == 0:
        return True
    if reduced.has(Sum):
        # Last resort for definitions such as softmax = exp(z_i) / Σ_j exp(z_j): both sides
        # rewritten to exponentials must agree term by term.
        if sp.expand(reduce_sums(reduced.rewrite(sp.exp))) == 0:
            return True
        # Or, each sum an opaque quantity (equal sums, one symbol), a rational function of them
        # that cancels to 0 (norms of a row: d³ = d·Σ uₖ² only cancels over one denominator).
        opaque = reduced.xreplace({s: sp.Dummy("S", real=True) for s in reduced.atoms(Sum)})
        return bool(sp.cancel(sp.together(opaque)) == 0)
    candidate = sp.simplify(reduced.rewrite(sp.exp))
    return bool(candidate == 0)


def equal(a: sp.Expr, b: sp.Expr, assumptions: Iterable[Assumption] = ()) -> bool:
    """True only when SymPy proves ``a == b`` (see :func:`is_zero`)."""
    if isinstance(a, sp.Eq) or isinstance(b, sp.Eq):
        raise TypeError("equal() compares expressions, not equations")
    return is_zero(a - b, assumptions)


def compared_operands(piecewise: sp.Piecewise) -> list[sp.Expr]:
    """The non-constant sides of every comparison in ``piecewise``'s conditions, each once, in
    a fixed order: what the evaluators test for NaN (a comparison with NaN is False, and would
    fall through to the last branch)."""
    operands: list[sp.Expr] = []
    for _, cond in piecewise.args:
        for rel in sorted(cond.atoms(sp.core.relational.Relational), key=sp.default_sort_key):
            operands += [side for side in (rel.lhs, rel.rhs)
                         if not side.is_number and side not in operands]
    return operands


def magnitude(expr: sp.Expr, pairs: bool = False) -> sp.Expr:
    """``expr`` with every sum's terms in absolute value (through products, integer powers and
    Piecewise arms): the scale of a float evaluation's rounding, ``|expr|`` where nothing
    cancels and larger by the factor the sums cancel by. A function's value is taken whole
    (``|f(x)|``): its argument's own cancellation is the function form's business.

    >>> from sympy import Symbol, exp
    >>> z, y = Symbol("z", real=True), Symbol("y", real=True)
    >>> magnitude(exp(z) - y*z)
    exp(z) + Abs(y)*Abs(z)

    A sum of two exact values (inputs, numbers float64 holds) rounds once, relative to its
    result: its magnitude is its absolute value (``1 − y`` at ``y = 1`` is an exact 0, no
    cancellation of anything rounded).

    >>> magnitude((1 - y)*exp(z))
    exp(z)*Abs(y - 1)

    ``pairs``: the scale of a double-double evaluation's rounding (what
    :func:`symloss.ddouble.certified` judges a pair against). A difference primitive ``f(x) −
    y`` (``sigmoid_sub``, ``exp_sub``, ``log_sub``) is a float-rounded value in a float form
    (within an ulp of itself), but inside a pair form it is the pair ``f(x) − y``, whose error
    is a few 2⁻¹⁰⁶ of ``|f(x)| + |y|``: its terms count. (sigmoid_focal_loss's soft gradient
    at z = 10⁻⁶, y = 0.500000104764946: σ(z) − y ≈ 1.5e-7 cancels by 2²², the gradient by
    2³⁴ more; judged against ``|σ(z) − y|`` the pair passed, 5.49 ulp off.)

    >>> from symloss.primitives import sigmoid_sub
    >>> magnitude(2*sigmoid_sub(z, y)), magnitude(2*sigmoid_sub(z, y), pairs=True)
    (2*Abs(sigmoid_sub(z, y)), 2*Abs(y) + 2*sigmoid(z))
    """
    if isinstance(expr, sp.Add) and len(expr.args) == 2 and all(map(_exact_input, expr.args)):
        return sp.Abs(expr)
    if isinstance(expr, sp.Add):
        return sp.Add(*(magnitude(t, pairs) for t in expr.args))
    if isinstance(expr, sp.Mul):
        return sp.Mul(*(magnitude(f, pairs) for f in expr.args))
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        return magnitude(expr.base, pairs) ** expr.exp
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*((magnitude(e, pairs), c) for e, c in expr.args))
    if pairs and isinstance(expr, (sigmoid_sub, exp_sub, log_sub)):
        return magnitude(expr.rewrite(sp.Add), pairs)
    return sp.Abs(expr)


#: Relative error bounds, in units of ``u = 2⁻⁵³``, of the float64 helpers that evaluate each
#: primitive of an exact argument (``symloss._fastmath``'s ``*_m``; libm's exp and log1p each
#: within 1 ulp, i.e. ``2u`` relative):
#:
#: * ``exp``: ``2``.
#: * ``sigmoid``: ``t = e^(−|x|)`` within ``2u``; ``1/(1 + t)`` inherits ``t/(1 + t)·2u ≤ u``
#:   of it, ``t/(1 + t)`` at most ``2u``; the quotient rounds (``u``) and so does the
#:   subtraction that takes the rounding of ``1 + t`` out (``u``; its other operations touch a
#:   term ``u`` times smaller): ``4``.
#: * ``softplus``: ``b = log1p(t)`` inherits at most ``2u`` relative from ``t`` (``t/((1 + t)
#:   log1p t) ≤ 1``) and rounds within ``2u``; ``max(x, 0) + b`` rounds (``u``): ``4u·b + u(x⁺ +
#:   b) ≤ 5u·softplus``: ``5``.
#: * ``sigmoid_pow(x, γ) = e^(−γ(a + b))``: the exponent is an exact pair but for ``b``'s ``4u``
#:   relative error, ``γ·b·4u ≤ 4 ln 2·|γ|u`` absolute, which ``e^`` makes relative; ``e^``
#:   within ``2u``, ``1 − lo`` and the product each ``u``: ``4 + 2.78|γ|`` (taken ``4 + 3|γ|``).
_HELPER_BOUNDS: dict[type, int] = {sp.exp: 2, sigmoid: 4, softplus: 5}


def rounding_bound(expr: sp.Expr, computed: bool = False) -> sp.Expr | None:
    """``K`` with ``|fl(expr) − expr| ≤ K·u·magnitude(expr)``, ``u = 2⁻⁵³``: a bound on the
    rounding of ``expr`` evaluated in float64 as the numba evaluator prints it with libm's
    helpers (``*_m``), relative to the sum of its terms' magnitudes (:func:`magnitude`), to
    first order in ``u`` and away from under/overflow; ``None`` where no such bound is
    derived (a function of a computed argument, a power with a non-integer exponent, a
    reciprocal of a sum that may cancel, a primitive without a bound).

    With ``computed``, also ``log`` of an input (libm's, within an ulp: ``2``), and ``eᵃ``
    and ``xexp(y, a) = y·eᵃ`` of a computed argument ``a``
    (within ``K_a·u·M_a``): ``eᵃ`` turns that absolute error into a relative one, so ``K`` is
    an expression of the inputs' values, evaluated per element (``2 + K_a·M_a`` for ``eᵃ``;
    ``xexp`` as printed, ``(y·e^(a/2))·e^(a/2)`` past 700: ``6 + K_y + K_a·M_a``).

    Proof, by induction on the expression, with ``M = magnitude``, every value within
    ``K·u·M`` of its exact value (``|value| ≤ M`` throughout):

    * an input or a number float64 holds: exact, ``K = 0``; another rational (``1/3``) is
      rounded once, ``K = 1``; ``log 2``, ``π``: ``K = 2``; a primitive of an exact argument: its helper's bound
      (:data:`_HELPER_BOUNDS`, ``sigmoid_pow``: ``4 + 3|γ|``).
    * a product ``a·b``: ``|âb̂ − ab| ≤ |b||â − a| + |a||b̂ − b| ≤ (K_a + K_b)u·M_aM_b``, and
      the multiplication rounds by at most ``u|âb̂| ≤ u·M_aM_b``: ``K = K_a + K_b + 1``; a
      product of ``n`` factors ``ΣK + n − 1`` in any order (a quotient alike, where the
      divisor has no sum to cancel: ``M`` is then its absolute value); ``xⁿ``: ``n·K + n``.
    * a sum of ``n`` terms: each partial sum rounds by at most ``u`` times the sum of the
      magnitudes so far: ``K = max K_i + n − 1``; a sum of two exact inputs rounds once
      relative to itself, its magnitude: ``K = 1``.
    * a Piecewise: the arm taken, ``K = max`` over the arms.

    >>> from sympy import Symbol
    >>> z, g = Symbol("z", real=True), Symbol("gamma", nonnegative=True)
    >>> rounding_bound(sigmoid(z)*sigmoid(-z) - 1)
    10
    >>> rounding_bound(sigmoid_pow(z, g)*softplus(z))
    3*gamma + 10
    >>> rounding_bound(sigmoid(z*g)) is None  # σ of a computed argument
    True
    >>> from sympy import exp
    >>> rounding_bound(exp(z*(2 - g)) - 1, computed=True)  # (2 − γ) and the product: K_a = 2
    2*Abs(z)*Abs(gamma - 2) + 3
    """
    def exact_argument(e: sp.Expr) -> bool:
        if _exact_input(e) or isinstance(-e if e.could_extract_minus_sign() else e, sp.Indexed):
            return True  # (an element of an input array, x[i], as exact as a Symbol)
        # 2ᵏ·x: a power of two times an input is exact too
        coeff, rest = e.as_coeff_Mul()
        return bool(rest.is_Symbol and coeff.is_Rational and _exact_input(coeff)
                    and (abs(coeff.p) & (abs(coeff.p) - 1)) == 0)

    def no_sum(e: sp.Expr) -> bool:
        return all(magnitude(a) == sp.Abs(a) for a in e.atoms(sp.Add))

    def rec(e: sp.Expr) -> sp.Expr | None:
        if e.is_Symbol or isinstance(e, sp.Indexed):
            return sp.S.Zero
        if e.is_number:  # p/q is one division; π, log 2 a libm call (1 ulp)
            return sp.S.Zero if _exact_input(e) else sp.S.One if e.is_Rational else sp.Integer(2)
        if isinstance(e, sp.Add):
            if len(e.args) == 2 and all(map(_exact_input, e.args)):
                return sp.S.One
            parts = [rec(t) for t in e.args]
            if any(p is None for p in parts):
                return None
            return sp.Max(*parts) + len(parts) - 1  # type: ignore[no-any-return]
        if isinstance(e, sp.Mul):
            coeff, rest = e.as_coeff_Mul()
            factors = sp.Mul.make_args(rest) if coeff in (1, -1) else sp.Mul.make_args(e)
            parts = [rec(f) for f in factors]
            if any(p is None for p in parts):
                return None
            return sp.Add(*parts) + len(parts) - 1  # type: ignore[arg-type,no-any-return]
        if isinstance(e, sp.Pow) and e.exp.is_Integer:
            n = int(e.exp)
            if n < 0 and not no_sum(e.base):
                return None
            k = rec(e.base)
            return None if k is None else abs(n) * k + abs(n)
        if isinstance(e, sp.Abs):
            return rec(e.args[0])
        if isinstance(e, sp.Piecewise):
            parts = [rec(a) for a, _ in e.args]
            if any(p is None for p in parts):
                return None
            return sp.Max(*parts)  # type: ignore[no-any-return]
        if isinstance(e, sigmoid_pow):
            x, g = e.args
            if exact_argument(x) and _exact_input(g):
                return 4 + 3 * sp.Abs(g)  # type: ignore[no-any-return]
            return None
        if type(e) in _HELPER_BOUNDS and exact_argument(e.args[0]):
            return sp.Integer(_HELPER_BOUNDS[type(e)])
        if computed and isinstance(e, sp.log) and exact_argument(e.args[0]):
            return sp.Integer(2)  # libm's log, within an ulp
        if computed and isinstance(e, sp.exp):
            k = rec(e.args[0])
            return None if k is None else 2 + k * magnitude(e.args[0])
        if computed and type(e).__name__ == "xexp":  # symloss.catalog_boosting.xexp
            ky, ka = rec(e.args[0]), rec(e.args[1])
            if ky is None or ka is None:
                return None
            return 6 + ky + ka * magnitude(e.args[1])  # type: ignore[no-any-return]
        return None

    return rec(expr)


#: A relation's operator with its sides swapped.
_SWAPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}


def scaled_difference(expr: sp.Expr) -> tuple[sp.Expr, sigmoid_sub] | None:
    """``(S, sigmoid_sub(x, y))`` where ``expr`` is ``S·(σ(x) − y)`` with ``x`` and ``y``
    inputs (Symbols or array elements: exact) and ``S`` a scale (no function of them), else
    ``None``: the form a weighted ``sigmoid_sub`` takes inside its one rounding
    (:func:`symloss.layout.scaled_inside`: ``accurate(w·(σ(x) − y)/C)``), which an evaluator
    may take from ``σ(x) − y``'s own first tier scaled by ``S`` as a pair. Checked, not
    guessed: ``S·(σ(x) − y) − expr`` expands to 0.

    >>> from sympy import IndexedBase, Symbol
    >>> x, y, w, c = IndexedBase("x"), IndexedBase("y"), IndexedBase("w"), Symbol("C")
    >>> i = Symbol("i", integer=True)
    >>> scaled_difference(w[i] * (sigmoid(x[i]) - y[i]) / c)
    (w[i]/C, sigmoid_sub(x[i], y[i]))
    >>> scaled_difference(sigmoid(x[i]) - y[i] * x[i]) is None  # y·x: no input
    True
    """
    heads = expr.atoms(sigmoid)
    if len(heads) != 1:
        return None
    (head,) = heads
    x, h = head.args[0], sp.Dummy("h")
    linear = expr.xreplace({head: h})
    scale = sp.diff(linear, h)
    if scale == 0 or scale.atoms(sp.Function) or scale.has(x, h):
        return None
    y = sp.cancel(-sp.expand(linear - scale * h) / scale)
    if not all(a.is_Symbol or isinstance(a, sp.Indexed) for a in (x, y)):
        return None
    if sp.expand(scale * (head - y) - expr) != 0:
        return None
    return scale, sigmoid_sub(x, y)


def modulated_slope(expr: sp.Expr, order: int = 1) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """``(S, s, γ)`` where ``expr`` is ``S·dⁿ/dsⁿ[σ(s)^γ·softplus(s)]`` (``n = order``, the
    derivative by ``sympy.diff``) -- at order 1 ``S·σ(s)^γ·(σ(s) + γ·softplus(s)·σ(−s))``, the
    slope of a modulated softplus, ``S·σ(s)`` where there is no ``σ^γ`` (``γ = 0``); at order 2
    ``S·σ(s)^γ·σ(−s)·((1 + 2γ)σ(s) + γ·softplus(s)·(γσ(−s) − σ(s)))``, its curvature -- with
    ``s`` an input or its negation, ``γ`` an input or exact number and ``S`` a scale (no
    function, no input of ``s``), else ``None``. At order 1 both terms of the sum are
    positive, so it cancels nowhere; at order 2 the bracket crosses 0. An evaluator may take
    either from a first tier of pairs a few 2⁻⁶⁰ from exact
    (:func:`symloss._fastmath.modulated_slope_q`, :func:`~symloss._fastmath.modulated_curvature_q`;
    sigmoid_focal_loss's hard-label gradient is ``−α·`` the slope at ``s = −z``, ``(1 − α)·``
    it at ``s = z``, its Hessian ``α_t·`` the curvature). Checked, not guessed: ``S`` times
    the shape minus ``expr``, with ``σ(−s) = 1 − σ(s)``, expands to 0.

    >>> from sympy import Symbol
    >>> z, g, a = Symbol("z"), Symbol("gamma"), Symbol("alpha")
    >>> e = -a * sigmoid_pow(-z, g) * (sigmoid(-z) + g * softplus(-z) * sigmoid(z))
    >>> modulated_slope(sp.expand(e))
    (-alpha, -z, gamma)
    >>> modulated_slope((1 - a) * sigmoid(z))
    (1 - alpha, z, 0)
    >>> modulated_slope(sigmoid(z) * sigmoid(-z)) is None
    True
    >>> h = g * (g * sigmoid(-z) + sigmoid(-z) - 1) * sigmoid(-z) * sigmoid_pow(z, g) * softplus(z)
    >>> modulated_slope(a * ((1 + 2 * g) * sigmoid(z) * sigmoid(-z) * sigmoid_pow(z, g) + h), 2)
    (alpha, z, gamma)
    >>> modulated_slope(a * h, 2) is None
    True
    """
    powers = expr.atoms(sigmoid_pow)
    if len(powers) > 1:
        return None
    if powers:
        (head,) = powers
        s, g = head.args
        base = head * softplus(s)
    else:
        heads = expr.atoms(sigmoid)
        if len(heads) != 1 or order != 1:
            return None
        (shape,) = heads
        s, g = shape.args[0], sp.S.Zero
        base = softplus(s)
    variable = -s if s.could_extract_minus_sign() else s
    if not ((variable.is_Symbol or isinstance(variable, sp.Indexed)) and _exact_input(g)):
        return None
    # σ(−v) as 1 − σ(v): the derivative and the derived form agree term by term
    one_way = {sigmoid(-variable): 1 - sigmoid(variable)}
    shape = sp.diff(base, variable, order) * (-1 if variable != s and order % 2 else 1)
    flat = sp.expand(shape.xreplace(one_way))
    scale = sp.cancel(sp.expand(expr.xreplace(one_way)) / flat)
    if scale == 0 or scale.atoms(sp.Function) or scale.has(variable):
        return None
    if sp.expand(scale * flat - expr.xreplace(one_way)) != 0:
        return None
    return scale, s, g


def exp_terms(expr: sp.Expr) -> tuple[sp.Symbol, list[tuple[sp.Expr, sp.Expr, sp.Expr]]] | None:
    """``(z, [(c, k, w), …])`` -- one or two terms -- where ``expr`` is ``Σ c·w·e^(k·z)`` with
    ``z`` an input, ``w`` 1 or an input (``xexp(y, k·z)``: ``y·e^(k·z)``, 0 for ``y = 0``), and
    ``c``, ``k`` free of ``z`` and ``w`` and of functions (options, numbers; a constant term is
    ``k = 0``), else ``None``. Each term is a product of pairs a few 2⁻⁶⁶ from exact, so an
    evaluator may take their sum from a first tier that vouches where it keeps enough of the
    terms' magnitude (:func:`symloss._fastmath.exp_terms_q`: tweedie_loss's gradient
    ``e^((2−ρ)z) − y·e^((1−ρ)z)`` and Hessian, gamma_loss's gradient ``1 − y·e^(−z)``).
    Checked, not guessed: ``Σ c·w·e^(k·z) − expr`` expands to 0.

    >>> from sympy import Symbol, exp
    >>> from symloss.catalog_boosting import xexp
    >>> z, y, r = Symbol("z"), Symbol("y"), Symbol("rho")
    >>> exp_terms(exp((2 - r) * z) - xexp(y, (1 - r) * z))
    (z, [(1, 2 - rho, 1), (-1, 1 - rho, y)])
    >>> exp_terms(1 - xexp(y, -z))
    (z, [(-1, -1, y), (1, 0, 1)])
    >>> exp_terms(exp(z))
    (z, [(1, 1, 1)])
    >>> exp_terms(exp(z) * exp(y)) is None  # e^z·e^y: not one exponential of z a term
    True
    """
    heads = sorted((e for e in expr.atoms(sp.exp, sp.Function)
                    if isinstance(e, sp.exp) or type(e).__name__ == "xexp"),
                   key=sp.default_sort_key)
    if not 1 <= len(heads) <= 2:
        return None
    dummies = [sp.Dummy(f"h{i}") for i in range(len(heads))]
    linear = sp.expand(expr.xreplace(dict(zip(heads, dummies, strict=True))))
    if linear.atoms(sp.Function):
        return None
    variable: sp.Symbol | None = None
    terms: list[tuple[sp.Expr, sp.Expr, sp.Expr]] = []
    rest = linear
    for head, h in zip(heads, dummies, strict=True):
        c = sp.diff(linear, h)
        w, a = (sp.S.One, head.args[0]) if isinstance(head, sp.exp) else head.args
        if not (w == 1 or w.is_Symbol or isinstance(w, sp.Indexed)):
            return None
        for s in sorted(a.free_symbols, key=sp.default_sort_key):
            k = sp.cancel(a / s)
            if not k.has(s) and sp.expand(k * s - a) == 0 and variable in (None, s):
                variable = s
                break
        else:
            return None
        if c.has(*dummies) or c.has(variable) or (w != 1 and (c.has(w) or k.has(w))):
            return None
        terms.append((c, k, w))
        rest = rest - c * h
    rest = sp.expand(rest)
    if rest != 0:
        if rest.free_symbols & ({variable} | {w for _, _, w in terms}) or len(terms) == 2:
            return None
        terms.append((rest, sp.S.Zero, sp.S.One))
    if variable is None or sp.expand(sum(c * w * sp.exp(k * variable) for c, k, w in terms)
                                     - expr.replace(lambda e: type(e).__name__ == "xexp",
                                                    lambda e: e.args[0] * sp.exp(e.args[1]))) != 0:
        return None
    return variable, terms


def sigmoid_curvature(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """``(S, x)`` where ``expr`` is ``S·σ(x)σ(−x)`` with ``x`` and ``S`` free of functions
    (sums and products of inputs and numbers: an evaluator holds each as a pair within 2⁻¹⁰⁴
    of it), else ``None``: ``S·t/(1 + t)²`` with ``t = e^(−|x|)`` has no difference in it, so
    an evaluator may take it from a first tier of pairs
    (:func:`symloss._fastmath.sigmoid_curvature_q`; the Bernoulli variance of
    binary_cross_entropy_with_logits' and soft_margin_loss's Hessians, log_cosh_loss's
    ``4σ(2r)σ(−2r)``, ``r = z − y``). Checked, not guessed: ``S·σ(x)σ(−x) − expr`` expands
    to 0.

    >>> from sympy import Symbol
    >>> z, y, w = Symbol("z"), Symbol("y"), Symbol("w")
    >>> sigmoid_curvature(4 * sigmoid(2 * z - 2 * y) * sigmoid(2 * y - 2 * z))
    (4, 2*y - 2*z)
    >>> sigmoid_curvature(y**2 * sigmoid(y * z) * sigmoid(-y * z))
    (y**2, y*z)
    >>> sigmoid_curvature(w * sigmoid(z) ** 2) is None  # σ(z)², not σ(z)σ(−z)
    True
    """
    heads = sorted(expr.atoms(sigmoid), key=sp.default_sort_key)
    if len(heads) != 2 or sp.expand(heads[0].args[0] + heads[1].args[0]) != 0:
        return None
    x = sp.expand(heads[0].args[0])
    x = -x if x.could_extract_minus_sign() else x
    h = sp.Dummy("h")
    scale = sp.cancel(expr.xreplace({heads[0]: h, heads[1]: h}) / h**2)
    if scale.atoms(sp.Function) or scale.has(h) or x.atoms(sp.Function) or scale == 0:
        return None
    if sp.expand(scale * sigmoid(x) * sigmoid(-x) - expr) != 0:
        return None
    return scale, x


def soft_modulated_slope(expr: sp.Expr, order: int = 1
                         ) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr] | None:
    """``(S, z, y, γ)`` where ``expr`` is ``S·d/dz[Q^γ·C]`` with ``Q = y·σ(−z) + (1 − y)·σ(z)``
    and ``C = y·softplus(−z) + (1 − y)·softplus(z)`` -- ``S`` times the slope of a modulated
    Bernoulli cross-entropy at a soft label ``y``, ``S·Q^(γ−1)·(γ(1 − 2y)·C·σ(z)σ(−z) + Q·(σ(z)
    − y))`` -- with ``z`` and ``y`` inputs, ``γ`` an input or exact number and ``S`` a scale
    (no function, no ``z``), else ``None``. Its two terms cancel (where ``σ(z) ≈ y`` and
    elsewhere): an evaluator may take it from a first tier of pairs that vouches only where
    they keep enough of their magnitude (:func:`symloss._fastmath.soft_modulated_slope_q`;
    sigmoid_focal_loss's soft-label gradient, ``S = α_t``). ``Q^a`` is :class:`power`.
    Checked, not guessed: with ``Q`` a symbol, ``σ(−z) = 1 − σ(z)`` and ``σ(z) − y`` written
    out, ``S`` times the shape minus ``expr`` expands to 0. ``Q^(γ−1)·Q′`` may be written
    ``Q^γ·(Q′/Q)``, the ratio kept one factor (an ``UnevaluatedExpr``: the catalogue's form,
    finite where ``Q`` is subnormal and ``Q^(γ−1)`` is not).

    At ``order = 2``: ``S·d²/dz²[Q^γ·C] = S·Q^(γ−2)·(γ(γ − 1)·Q′²·C + γ·Q·Q″·C + 2γ·Q·Q′·(σ(z)
    − y) + Q²·σ(z)σ(−z))``, ``Q′ = (1 − 2y)σ(z)σ(−z)``, ``Q″ = Q′·(σ(−z) − σ(z))`` (which the
    catalogue writes ``−Q′·tanh(z/2)``) -- the soft-label Hessian, whose four terms cancel
    (:func:`symloss._fastmath.soft_modulated_curvature_q`).

    >>> from sympy import Symbol, UnevaluatedExpr
    >>> z, y, g, a = Symbol("z"), Symbol("y"), Symbol("gamma"), Symbol("alpha")
    >>> q = y * sigmoid(-z) + (1 - y) * sigmoid(z)
    >>> c = y * softplus(-z) + (1 - y) * softplus(z)
    >>> e = a * (power(q, g) * sigmoid_sub(z, y)
    ...          - g * (2 * y - 1) * c * power(q, g - 1) * sigmoid(z) * sigmoid(-z))
    >>> soft_modulated_slope(e)
    (alpha, z, y, gamma)
    >>> ratio = UnevaluatedExpr((1 - 2 * y) * sigmoid(z) * sigmoid(-z) / q)
    >>> soft_modulated_slope(a * power(q, g) * (sigmoid_sub(z, y) + g * c * ratio))
    (alpha, z, y, gamma)
    >>> soft_modulated_slope(a * power(q, g) * sigmoid_sub(z, y)) is None
    True
    >>> d1 = (1 - 2 * y) * sigmoid(z) * sigmoid(-z)
    >>> e2 = a * (g * (g - 1) * power(q, g - 2) * d1**2 * c - g * power(q, g - 1) * d1
    ...           * sp.tanh(z / 2) * c + 2 * g * power(q, g - 1) * d1 * sigmoid_sub(z, y)
    ...           + power(q, g) * sigmoid(z) * sigmoid(-z))
    >>> soft_modulated_slope(e2, 2)
    (alpha, z, y, gamma)
    >>> soft_modulated_slope(e2, 1) is None
    True
    """
    heads = [e for e in expr.atoms(power) if not e.args[1].free_symbols - {*e.args[0].free_symbols,
                                                                          *e.args[1].free_symbols}]
    bases = {e.args[0] for e in heads}
    if len(bases) != 1:
        return None
    (q,) = bases
    sigmoids = q.atoms(sigmoid)
    variables = {-s.args[0] if s.args[0].could_extract_minus_sign() else s.args[0]
                 for s in sigmoids}
    if len(variables) != 1:
        return None
    (z,) = variables
    one_way = {sigmoid(-z): 1 - sigmoid(z)}
    flat_q = sp.expand(q.xreplace(one_way))
    y = flat_q.subs(sigmoid(z), 0)  # Q = y + (1 − 2y)σ(z)
    exponents = [e.args[1] for e in heads]
    g = min(exponents, key=lambda x: len(str(x)))  # γ, beside γ − 1
    if not (all(a.is_Symbol or isinstance(a, sp.Indexed) for a in (z, y)) and _exact_input(g)
            and y != z and sp.expand(flat_q - (y + (1 - 2 * y) * sigmoid(z))) == 0
            and all((x - g).is_Integer for x in exponents)):
        return None
    qs = sp.Dummy("Q", positive=True)
    ce = y * softplus(-z) + (1 - y) * softplus(z)
    d1 = (1 - 2 * y) * sigmoid(z) * sigmoid(-z)  # Q′; Q″ = Q′·(σ(−z) − σ(z))
    shape = g * qs ** (g - 1) * d1 * ce + qs ** g * (sigmoid(z) - y)
    if order == 2:
        shape = (g * (g - 1) * qs ** (g - 2) * d1**2 * ce
                 + g * qs ** (g - 1) * d1 * (sigmoid(-z) - sigmoid(z)) * ce
                 + 2 * g * qs ** (g - 1) * d1 * (sigmoid(z) - y) + qs ** g * sigmoid(z) * sigmoid(-z))
    elif order != 1:
        return None
    one_way[sp.tanh(z / 2)] = 2 * sigmoid(z) - 1  # σ(z) − σ(−z)

    def flat(e: sp.Expr) -> sp.Expr:
        e = e.replace(lambda x: isinstance(x, sp.UnevaluatedExpr), lambda x: x.args[0])
        e = e.replace(lambda x: isinstance(x, power) and x.args[0] == q,
                      lambda x: qs ** x.args[1]).xreplace({q: qs})  # Q′/Q's Q too
        e = e.replace(lambda x: isinstance(x, sigmoid_sub), lambda x: x.rewrite(sp.Add))
        return sp.expand(sp.expand_power_exp(e.xreplace(one_way)))

    target, form = flat(expr), flat(shape)
    scale = sp.cancel(target / form)
    if scale == 0 or scale.atoms(sp.Function) or scale.has(z, qs):
        return None
    if sp.expand(scale * form - target) != 0:
        return None
    return scale, z, y, g


def _exact_input(e: sp.Expr) -> bool:
    """An input (a Symbol, its negation) or a number that float64 holds exactly."""
    if e.is_Symbol or (isinstance(e, sp.Mul) and e.args[0] == -1 and len(e.args) == 2
                       and e.args[1].is_Symbol):
        return True
    if e.is_Integer:
        return abs(int(e)) <= 2**53
    if e.is_Rational:  # a dyadic fraction: q a power of 2
        q = int(e.q)
        return q & (q - 1) == 0 and abs(int(e.p)) <= 2**53
    return bool(e.is_Float)


#: The most products :func:`exact_comparison` sums exactly (``cmp_products``' arity).
MAX_EXACT_TERMS = 4


def _exact_products(e: sp.Expr) -> list[tuple[sp.Expr, sp.Expr]] | None:
    """``e`` expanded as a sum of at most :data:`MAX_EXACT_TERMS` products ``a·b`` of two
    inputs or exact numbers (``a`` may carry the sign), else ``None``:
    ``margin − y·(z₁ − z₂)`` is ``[(margin, 1), (−y, z₁), (y, z₂)]``."""
    terms = sp.Add.make_args(sp.expand(e))
    if len(terms) > MAX_EXACT_TERMS:
        return None
    out = []
    for term in terms:
        c, factors = term.as_coeff_mul()
        if not _exact_input(c) or not all(f.is_Symbol for f in factors):
            return None
        if not factors:
            out.append((c, sp.S.One))
        elif len(factors) == 1:
            out.append((c * factors[0], sp.S.One) if abs(c) == 1 else (c, factors[0]))
        elif len(factors) == 2 and abs(c) == 1:
            out.append((c * factors[0], factors[1]))
        else:
            return None
    return out


def exact_comparison(rel: sp.Basic) -> tuple[str, tuple[sp.Expr, ...], str] | None:
    """``(function, arguments, op)`` where the evaluators decide ``rel`` exactly, as
    ``function(*arguments) op 0`` with ``function`` the exact sign of a difference:

    * ``cmp_sum(a, b, s)``, ``cmp_abs_sum(a, b, s)``: ``rel`` compares a sum of two inputs
      ``a + b`` (or its absolute value) with an input or exact number ``s``; the sign of
      ``(a + b) − s`` or ``|a + b| − s`` (huber's ``|z − y| < δ``: Hessian 1 where the exact
      one is 1, not the 0 that ``z − y``'s rounding gives);
    * ``cmp_products(a0, b0, …, a3, b3)``: ``lhs − rhs`` expands to a sum of at most four
      products of two inputs or exact numbers; the sign of ``Σ aᵢ·bᵢ`` (margin_ranking's
      ``margin − y·(z₁ − z₂) ≥ 0``, whose rounded form is 0 where the exact one is −1e-17).

    ``None`` for any other relation.

    >>> from sympy import Abs, Symbol
    >>> z, y, d = Symbol("z"), Symbol("y"), Symbol("delta")
    >>> exact_comparison(d > Abs(y - z))
    ('cmp_abs_sum', (y, -z, delta), '<')
    >>> exact_comparison(d - y*(z - Symbol("w")) >= 0)
    ('cmp_products', (delta, 1, w, y, -y, z, 0, 0), '>=')
    """
    if not isinstance(rel, sp.core.relational.Relational) or rel.rel_op not in _SWAPPED:
        return None
    for x, s, op in ((rel.lhs, rel.rhs, rel.rel_op), (rel.rhs, rel.lhs, _SWAPPED[rel.rel_op])):
        inner = x.args[0] if isinstance(x, sp.Abs) else x
        if (isinstance(inner, sp.Add) and len(inner.args) == 2
                and all(_exact_input(t) for t in inner.args) and _exact_input(s)):
            name = "cmp_abs_sum" if isinstance(x, sp.Abs) else "cmp_sum"
            return name, (inner.args[0], inner.args[1], s), op
    if rel.has(sp.Abs) or (_exact_input(rel.lhs) and _exact_input(rel.rhs)):
        return None  # a comparison of two floats is exact as it is
    products = _exact_products(rel.lhs - rel.rhs)
    if products is None or len(products) < 2:
        return None
    products += [(sp.S.Zero, sp.S.Zero)] * (MAX_EXACT_TERMS - len(products))
    return "cmp_products", tuple(f for pair in products for f in pair), rel.rel_op


def ratio_powers(expr: sp.Mul) -> tuple[list[tuple[sp.Expr, sp.Expr, int]], sp.Expr] | None:
    """``([(x, c, n), ...], rest)`` where the product ``expr`` has factors ``xⁿ·c⁻ⁿ`` (n ≥ 2),
    else ``None``: the evaluators print such a pair as ``(x/c)ⁿ``, which stays in range where
    ``xⁿ`` underflows or overflows and the quotient does not (BCE's Hessian (p − y)²/c² at
    p = 1e-164: p² is subnormal, (p/c)² is 6.6e-305).

    >>> from sympy import Symbol
    >>> p, c = Symbol("p"), Symbol("c")
    >>> ratio_powers(3*p**2/c**2)
    ([(p, c, 2)], 3)
    """
    ups = {f.exp: f for f in expr.args
           if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp >= 2}
    downs = {-f.exp: f for f in expr.args
             if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp <= -2}
    shared = sorted(set(ups) & set(downs))
    if not shared:
        return None
    used = {ups[n] for n in shared} | {downs[n] for n in shared}
    rest = sp.Mul(*(f for f in expr.args if f not in used))
    return [(ups[n].base, downs[n].base, int(n)) for n in shared], rest


def printed_comparison(rel: sp.Basic, show: Callable[[sp.Expr], str], prefix: str = "") -> str | None:
    """The code of :func:`exact_comparison`'s test for ``rel`` (``show`` prints a side in the
    host printer's language, ``prefix`` qualifies the sign function), or ``None``."""
    exact = exact_comparison(rel)
    if exact is None:
        return None
    name, arguments, op = exact
    return f"({prefix}{name}({', '.join(show(a) for a in arguments)}) {op} 0.0)"


def printed_ratios(expr: sp.Mul, show: Callable[[sp.Expr], str]) -> str | None:
    """The code of the product ``expr`` with each pair of :func:`ratio_powers` as ``(x/c)ⁿ``
    (``show`` prints a factor), or ``None`` where it has no such pair."""
    ratios = ratio_powers(expr)
    if ratios is None:
        return None
    pairs, rest = ratios
    return " * ".join([f"({show(rest)})", *(f"(({show(x)}) / ({show(c)})) ** {n}"
                                            for x, c, n in pairs)])


def step_relations(piecewise: sp.Piecewise) -> frozenset[sp.Basic]:
    """The relations of ``piecewise``'s conditions that the evaluators decide exactly
    (:func:`exact_comparison`): those whose compared inputs no arm reads, so that the value
    steps at the kink (huber's Hessian: 1 or 0). Where the arms read them (huber's value and
    gradient), the arms agree at the kink and either side is as good: the plain test stays.
    A sum of products (``cmp_products``) is always decided exactly: its float64 sum decides
    but next to the kink, and arms such as margin_ranking's gradient ``−y`` read the compared
    inputs and still step.

    >>> from sympy import Abs, Piecewise, Symbol
    >>> z, y, d = Symbol("z"), Symbol("y"), Symbol("delta")
    >>> len(step_relations(Piecewise((1, d > Abs(y - z)), (0, True))))
    1
    >>> len(step_relations(Piecewise((z - y, d > Abs(y - z)), (d, True))))
    0
    """
    read: set[sp.Basic] = set().union(*(arm.free_symbols for arm, _ in piecewise.args))
    steps = set()
    for _, cond in piecewise.args:
        for rel in cond.atoms(sp.core.relational.Relational):
            exact = exact_comparison(rel)
            if exact is None:
                continue
            if exact[0] == "cmp_products" or not (
                    exact[1][0].free_symbols | exact[1][1].free_symbols) & read:
                steps.add(rel)
    return frozenset(steps)


def print_with_steps(printer: Any, piecewise: sp.Piecewise, show: Callable[[sp.Piecewise], str]) -> str:
    """``show(piecewise)`` with ``printer._steps`` set to :func:`step_relations` of it (and put
    back after): the relations its ``_print_Relational`` decides exactly, for both evaluators."""
    previous, printer._steps = printer._steps, step_relations(piecewise)
    try:
        return str(show(piecewise))
    finally:
        printer._steps = previous
