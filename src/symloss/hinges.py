"""Primitives for margin losses: the hinge ``max(0, u)`` and its derivative, a step.

``step(u)`` is ``1`` for ``u > 0`` and ``0`` otherwise, 0 exactly at the kink, which is the
one-sided value torch's ``multi_margin_loss`` backward takes there (measured, torch 2.13). Its
own derivative is a Dirac delta, which :func:`symloss.derive.drop_distributions` drops, as
autograd's double backward does.
"""

from __future__ import annotations

import sympy as sp
from sympy import Function, S
from sympy.printing.pretty.stringpict import prettyForm

from .primitives import SUM_INDEX, _pretty_call, power  # power: kept importable from here

__all__ = ["at_target", "hinge", "power", "split_sum", "step"]


class step(Function):
    """:math:`\\mathbb{1}[u > 0]`, 0 at ``u = 0``.

    >>> from sympy import Symbol, diff
    >>> u = Symbol("u", real=True)
    >>> diff(hinge(u), u)
    step(u)
    >>> step(0)
    0
    """

    nargs = 1

    @classmethod
    def eval(cls, u: sp.Expr) -> sp.Expr | None:
        if u.is_positive:
            return S.One
        if u.is_nonpositive:
            return S.Zero
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.DiracDelta(self.args[0])

    def _eval_power(self, exponent: sp.Expr) -> sp.Expr | None:
        if exponent.is_positive:  # an indicator: 1ᵖ = 1, 0ᵖ = 0
            return self
        return None

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"\mathbb{{1}}\left[{printer._print(self.args[0])} > 0\right]"

    def _pretty(self, printer: object) -> prettyForm:
        return _pretty_call("1[>0]", self.args[0], printer)

    def _numpycode(self, printer: object) -> str:
        # heaviside(u, 0): 1 for u > 0, 0 for u ≤ 0 (the kink counts as inactive).
        return f"numpy.heaviside({printer._print(self.args[0])}, 0.0)"  # type: ignore[attr-defined]

    _scipycode = _numpycode

    def _mpmathcode(self, printer: object) -> str:
        # for symloss.exact's mpmath functions: the comparison of an mpf with 0 is exact
        u = printer._print(self.args[0])  # type: ignore[attr-defined]
        mpf = printer._module_format("mpmath.mpf")  # type: ignore[attr-defined]
        return f"({mpf}(1) if ({u}) > 0 else {mpf}(0))"


class hinge(Function):
    """:math:`\\max(0, u)`, whose derivative is :class:`step`."""

    nargs = 1

    @classmethod
    def eval(cls, u: sp.Expr) -> sp.Expr | None:
        if u.is_nonpositive:
            return S.Zero
        if u.is_nonnegative:
            return u
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return step(self.args[0])

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"\max\left(0, {printer._print(self.args[0])}\right)"

    def _pretty(self, printer: object) -> prettyForm:
        return _pretty_call("max0", self.args[0], printer)

    def _numpycode(self, printer: object) -> str:
        return f"numpy.maximum({printer._print(self.args[0])}, 0.0)"  # type: ignore[attr-defined]

    _scipycode = _numpycode

    def _mpmathcode(self, printer: object) -> str:
        u = printer._print(self.args[0])  # type: ignore[attr-defined]
        mpf = printer._module_format("mpmath.mpf")  # type: ignore[attr-defined]
        return f"max({mpf}(0), {u})"


class at_target(Function):
    """``at_target(x, y)`` is :math:`x_t = \\sum_m y_m x_m`, the entry of ``x`` at the class
    of the one-hot target ``y`` (both IndexedBases over the class axis).

    Its derivative with respect to ``x[i]`` is ``y[i]``; it is a primitive rather than a
    ``Sum`` so that it never nests inside the class sums of a margin loss.
    """

    nargs = 2

    def _eval_derivative(self, s: sp.Expr) -> sp.Expr:
        base, onehot = self.args
        if isinstance(s, sp.Indexed) and s.base == base:
            return onehot[s.indices[0]]  # type: ignore[index]
        return S.Zero

    def _eval_is_real(self) -> bool:
        return True

    def _sympystr(self, printer: object) -> str:
        return f"{self.args[0]}_t"

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"{printer._print(self.args[0])}_{{t}}"

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(sp.Symbol(f"{self.args[0]}_t"))  # type: ignore[attr-defined]

    def _numpycode(self, printer: object) -> str:
        base, onehot = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        return f"numpy.sum({base} * {onehot}, axis=-1, keepdims=True)"

    _scipycode = _numpycode


class split_sum(Function):
    """``split_sum(w, a, b, C)`` is :math:`w \\sum_{k=1}^{C} (a_k + b_k)`: a class sum whose
    summand is a difference that cancels -- ``a_k = v_k``, ``b_k = −v_t`` and the ``v_k``
    averaging about ``v_t`` -- with ``a_k`` and ``b_k`` each an exact float (an entry times
    0/1 factors).

    Symbolically ``w`` times the sum (``rewrite(Sum)``, ``rewrite(exp)``: the proofs and
    :mod:`symloss.exact` see it so). Numerically every ``a_k`` and ``b_k`` is its own term of
    one compensated sum (:func:`symloss.ddouble.np_split_sum`; the compiled kernels print the
    same from row buffers), NaN where even that cannot vouch for the result's last bits (for
    :mod:`symloss.exact`), and ``w = 0`` gives 0 whatever the sum: a row's sum is read only
    where its weight is not 0 (the target's own class).

    >>> from sympy import IndexedBase, Sum, Symbol
    >>> v, w, C = IndexedBase("v"), Symbol("w"), Symbol("C")
    >>> split_sum(w, v[SUM_INDEX], -v[1], C).rewrite(Sum)
    w*Sum(-v[1] + v[k], (k, 1, C))
    """

    nargs = 4

    def _eval_rewrite_as_Sum(self, w: sp.Expr, a: sp.Expr, b: sp.Expr, c: sp.Expr,
                             **kwargs: object) -> sp.Expr:
        return w * sp.Sum(a + b, (SUM_INDEX, 1, c))

    _eval_rewrite_as_exp = _eval_rewrite_as_Sum

    def _eval_derivative(self, s: sp.Basic) -> sp.Expr:
        return sp.diff(self.rewrite(sp.Sum), s)  # type: ignore[no-any-return]

    def _eval_is_real(self) -> bool | None:
        return True if all(a.is_real for a in self.args) else None

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return printer._print(self.rewrite(sp.Sum))  # type: ignore[no-any-return]

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(self.rewrite(sp.Sum))  # type: ignore[attr-defined,no-any-return]

    def _sympystr(self, printer: object) -> str:
        return printer._print(self.rewrite(sp.Sum))  # type: ignore[attr-defined,no-any-return]

    def _numpycode(self, printer: object) -> str:
        w, a, b = (printer._print(x) for x in self.args[:3])  # type: ignore[attr-defined]
        return (f"numpy.where(({w}) != 0, ({w}) * ddouble.np_split_sum({a}, {b}), 0.0)")

    _scipycode = _numpycode

    def _mpmathcode(self, printer: object) -> str:
        return printer._print(self.rewrite(sp.Sum))  # type: ignore[attr-defined,no-any-return]
