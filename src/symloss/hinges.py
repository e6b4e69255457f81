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

from .primitives import _pretty_call, power  # power: a primitive, kept importable from here

__all__ = ["at_target", "hinge", "power", "step"]


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
