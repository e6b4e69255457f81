"""What a loss declares: its per-element formula and the facts the derivation checks.

A :class:`Declaration` is built once per option set by a catalogue entry. It says *what* the
loss is; everything else -- the gradient, the proof, the steps, the kernels -- is derived from it
by :mod:`symloss.derive` and :mod:`symloss.numeric`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy.printing.pretty.stringpict import prettyForm

__all__ = ["AlsoWrt", "Assumption", "Declaration", "Definition", "Kink", "Link", "Partial"]


@dataclass(frozen=True)
class Link:
    """The link from the input to the prediction the likelihood is written in.

    ``var`` is the prediction's symbol (``p``, or an :class:`~sympy.IndexedBase` ``p`` whose
    element ``p[k]`` is ``expr`` with the class index ``k``); ``expr`` is it as a function of the
    input (``sigmoid(z)``, ``softmax(z, k, C)``).
    """

    name: str
    var: sp.Basic
    expr: sp.Expr
    definition: sp.Expr
    why: str

    @property
    def class_axis(self) -> bool:
        return isinstance(self.var, sp.IndexedBase)

    def to_var(self, expr: sp.Expr) -> sp.Expr:
        """Write every occurrence of the link function in ``expr`` with the prediction symbol."""
        func = type(self.expr)
        if self.class_axis:
            base = self.var
            return expr.replace(
                lambda e: isinstance(e, func) and e.args[0] == self.expr.args[0],
                lambda e: base[e.args[1]],  # type: ignore[index]
            )
        return expr.subs(self.expr, self.var)

    def from_var(self, expr: sp.Expr) -> sp.Expr:
        """Replace the prediction symbol in ``expr`` by the link function of the input."""
        if self.class_axis:
            base = self.var
            template = self.expr
            index = template.args[1]
            return expr.replace(
                lambda e: isinstance(e, sp.Indexed) and e.base == base,
                lambda e: template.subs(index, e.indices[0]),
            )
        return expr.subs(self.var, self.expr)


@dataclass(frozen=True)
class Definition:
    """A symbol introduced for readability, ``symbol = expr``, e.g. the smoothed target q."""

    symbol: sp.Expr
    expr: sp.Expr
    why: str


@dataclass(frozen=True)
class Assumption:
    """A stated fact the canonical form relies on, ``lhs = rhs`` (e.g. Σ_k y_k = 1)."""

    lhs: sp.Expr
    rhs: sp.Expr
    why: str


@dataclass(frozen=True)
class AlsoWrt:
    """Another argument the loss is differentiated with respect to, and its closed form."""

    name: str
    canonical: sp.Expr
    why: str


@dataclass(frozen=True)
class Kink:
    """A point where the loss is not differentiable, and the one-sided values taken there.

    ``at`` substitutes the kink (``{z: y}``); ``value`` and ``hessian_value`` are what torch's
    backward and double backward return there (measured with torch 2.13; the tests check them
    at the kink). The derivation evaluates its own derivatives at ``at`` and checks that they
    equal these values; ``why`` says which side that is.
    """

    at: tuple[tuple[sp.Basic, sp.Basic], ...]
    value: sp.Expr
    why: str
    hessian_value: sp.Expr | None = None


@dataclass(frozen=True)
class Declaration:
    """One loss with one set of options, written symbolically.

    Attributes:
        input: the variable differentiated with respect to (``z``, or ``z[i]`` on a class axis).
        target: the target (``y`` or ``y[i]``).
        loss: the per-element loss as evaluated -- in terms of ``input``, in its stable form.
        canonical: the form the gradient is proved equal to.
        canonical_why: one line on why that form appears (the canonical-link fact, say).
        link: the link from input to prediction, if the likelihood is written in a prediction.
        loss_in_link: the textbook loss in terms of ``link.var``.
        loss_why: one line on what the loss is.
        stable_gradient: a form of the gradient for evaluation, proved equal to the derived one;
            ``None`` means the raw ``sympy.diff`` of ``loss`` is already stable.
        stable_why: one line on how the evaluated form avoids cancellation or overflow.
        soft_targets_take_gradient: the kernel form is exact for hard labels y ∈ {0, 1} but
            cancels twice for a soft target, where the simplified gradient (σ(z) − y,
            softmax(z)ᵢ − yᵢ) cancels once: evaluate soft targets with the gradient.
        definitions: readability symbols, substituted before numbers are computed.
        assumptions: stated facts the canonical form needs.
        mean_denominator: what ``reduction="mean"`` divides by, symbolically.
        mean_why: one line saying what that denominator is.
        symbols: which torch argument each free symbol stands for
            (``{"input": z, "target": y, "weight": w, ...}``).
        canonical_hessian: the form the second derivative is proved equal to, if one is known.
        hessian_why: one line on that form.
        stable_hessian: a form of the second derivative for evaluation, proved equal to the
            derived one; ``None`` means the derived one is evaluated.
        stable_hessian_why: one line on that form.
        stable_soft_gradient: with ``soft_targets_take_gradient``, the form a soft target's
            gradient is evaluated in (e.g. ``σ(z) − y`` in double-double), proved equal to the
            derived one; ``None``: the simplified gradient.
        stable_hvp: the per-sample Hessian-vector product as evaluated (direction ``v``),
            proved equal to the one formed from the Hessian; ``None``: that one.
        kinks: the points where the loss is not differentiable, with torch's one-sided values.
        also_wrt: other torch arguments the loss is differentiated with respect to (``var``
            of ``gaussian_nll_loss``, ``input2`` of ``margin_ranking_loss``).
    """

    input: sp.Expr
    target: sp.Expr
    loss: sp.Expr
    canonical: sp.Expr
    canonical_why: str
    loss_why: str
    mean_denominator: sp.Expr
    mean_why: str
    symbols: dict[str, sp.Basic]
    link: Link | None = None
    loss_in_link: sp.Expr | None = None
    stable_gradient: sp.Expr | None = None
    stable_why: str = ""
    soft_targets_take_gradient: bool = False
    definitions: tuple[Definition, ...] = ()
    assumptions: tuple[Assumption, ...] = ()
    notes: tuple[str, ...] = field(default=())
    canonical_hessian: sp.Expr | None = None
    hessian_why: str = ""
    stable_hessian: sp.Expr | None = None
    stable_hessian_why: str = ""
    stable_soft_gradient: sp.Expr | None = None
    stable_hvp: sp.Expr | None = None
    kinks: tuple[Kink, ...] = ()
    also_wrt: tuple[AlsoWrt, ...] = ()

    @property
    def class_axis(self) -> bool:
        return isinstance(self.input, sp.Indexed)

    def substitute_definitions(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every readability symbol replaced by what it stands for."""
        for d in reversed(self.definitions):
            if isinstance(d.symbol, sp.Indexed):
                base, (index,) = d.symbol.base, d.symbol.indices
                expr = expr.replace(
                    lambda e, base=base: isinstance(e, sp.Indexed) and e.base == base,
                    lambda e, d=d, index=index: d.expr.subs(index, e.indices[0]),
                )
            else:
                expr = expr.subs(d.symbol, d.expr)
        return expr


class Partial(sp.Expr):
    """The display of a partial derivative ``∂num/∂den`` (no evaluation)."""

    def __new__(cls, num: sp.Basic, den: sp.Basic, order: int = 1) -> Partial:
        return sp.Expr.__new__(cls, num, den, sp.Integer(order))

    @property
    def num(self) -> sp.Basic:
        return self.args[0]

    @property
    def den(self) -> sp.Basic:
        return self.args[1]

    @property
    def order(self) -> int:
        return int(self.args[2])  # type: ignore[call-overload]

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        num, den = printer._print(self.num), printer._print(self.den)
        if self.order == 1:
            return rf"\frac{{\partial {num}}}{{\partial {den}}}"
        return rf"\frac{{\partial^{{{self.order}}} {num}}}{{\partial {den}^{{{self.order}}}}}"

    def _sympystr(self, printer: object) -> str:
        num, den = printer._print(self.num), printer._print(self.den)  # type: ignore[attr-defined]
        if self.order == 1:
            return f"∂{num}/∂{den}"
        return f"∂^{self.order}{num}/∂{den}^{self.order}"

    def _pretty(self, printer: object) -> prettyForm:
        num = printer._print(self.num)  # type: ignore[attr-defined]
        den = printer._print(self.den)  # type: ignore[attr-defined]
        sup = "" if self.order == 1 else "²" if self.order == 2 else f"^{self.order}"
        top = prettyForm(*num.left("∂" + sup))
        bottom = prettyForm(*den.left("∂"))
        if sup:
            bottom = prettyForm(*bottom.right(sup))
        return top / bottom
