"""What a loss declares: its per-element formula and the facts the derivation checks.

A :class:`Declaration` is built once per option set by a catalogue entry. It says *what* the
loss is; everything else -- the gradient, the proof, the steps, the kernels -- is derived from it
by :mod:`symloss.derive` and :mod:`symloss.numeric`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.printing.pretty.stringpict import prettyForm

__all__ = [
    "CLASS_INDEX_SETS",
    "CLASS_INDICES",
    "CLASS_PROBABILITIES",
    "COUNTS",
    "LOG_PROBABILITIES",
    "NONNEGATIVE",
    "PROBABILITIES",
    "REALS",
    "SIGNS",
    "AlsoWrt",
    "Argument",
    "Assumption",
    "Declaration",
    "Definition",
    "Domain",
    "Kink",
    "Link",
    "Partial",
]


# --------------------------------------------------------------------------- what arrays hold
@dataclass(frozen=True)
class Domain:
    """The values one positional array of a loss may hold, as data the battery reads.

    A domain is either *element-wise* -- every element on its own in ``[lo, hi]`` (integers
    only with ``integer``; only the listed ``values`` when they are given) -- or *structured*
    along the class axis (``layout``): class indices, one distribution per sample, sets of
    class indices. ``points`` are values every battery includes whatever it draws at random,
    so that each branch of a loss is tried (y = −1 as well as y = 1; counts 0, 1 *and* > 1).

    Attributes:
        name: a short name for reports (``"±1"``, ``"counts"``).
        description: one line for the reader.
        lo, hi: the closed range of every element (``±inf``: unbounded).
        integer: only integers (counts, class indices).
        values: the complete finite set, if there is one (``(-1.0, 1.0)`` for labels ±1).
        points: values each battery includes.
        layout: ``"elementwise"`` (the input's shape), ``"class_index"`` (the input's shape
            without the class axis, integers in ``[0, C)``; ``ignore_index`` as well),
            ``"class_distribution"`` (the input's shape, each sample's entries ≥ 0 summing
            to 1 along the class axis), ``"class_index_set"`` (the input's shape, each row a
            set of class indices padded with −1, as ``multilabel_margin_loss`` takes them).

    >>> SIGNS.contains(-1.0), SIGNS.contains(0.5), COUNTS.contains(3.0)
    (True, False, True)
    """

    name: str
    description: str
    lo: float = -float("inf")
    hi: float = float("inf")
    integer: bool = False
    values: tuple[float, ...] | None = None
    points: tuple[float, ...] = ()
    layout: str = "elementwise"

    def contains(self, value: float) -> bool:
        """Whether one element value lies in this (element-wise) domain."""
        if self.values is not None:
            return value in self.values
        if self.integer and value != int(value):
            return False
        return self.lo <= value <= self.hi


_INF = float("inf")

#: Every finite real (regression targets, logits).
REALS = Domain("reals", "any finite real number", points=(-2.0, 0.0, 1.5))
#: Probabilities: hard labels {0, 1} and soft labels in between.
PROBABILITIES = Domain("probabilities", "a probability in [0, 1]: hard 0/1 labels and soft ones",
                       0.0, 1.0, points=(0.0, 1.0))
#: Labels ±1 (hinge_embedding_loss, soft_margin_loss, margin_ranking_loss).
SIGNS = Domain("±1", "a label −1 or +1", -1.0, 1.0, integer=True, values=(-1.0, 1.0),
               points=(-1.0, 1.0))
#: Poisson counts: non-negative integers, including values > 1 (Stirling's term).
COUNTS = Domain("counts", "a non-negative integer count (0, 1 and counts > 1)", 0.0, _INF,
                integer=True, points=(0.0, 1.0, 2.0, 7.0, 40.0))
#: Log-probabilities (kl_div with log_target=True).
LOG_PROBABILITIES = Domain("log-probabilities", "a log-probability ≤ 0", -_INF, 0.0,
                           points=(0.0, -1.0, -30.0))
#: Non-negative reals (gaussian_nll_loss's var; values below eps are clamped).
NONNEGATIVE = Domain("non-negative reals", "a real ≥ 0 (below eps it is clamped)", 0.0, _INF,
                     points=(0.0, 1e-9, 1.0, 4.0))
#: Class indices in [0, C), and ignore_index (cross_entropy, nll_loss, multi_margin_loss).
CLASS_INDICES = Domain("class indices", "an integer class index in [0, C) (or ignore_index)",
                       0.0, _INF, integer=True, layout="class_index")
#: One probability distribution over the C classes per sample (cross_entropy's soft targets).
CLASS_PROBABILITIES = Domain("class probabilities",
                             "per sample, C probabilities summing to 1 along the class axis",
                             0.0, 1.0, layout="class_distribution")
#: Sets of class indices padded with −1 (multilabel_margin_loss).
CLASS_INDEX_SETS = Domain("sets of class indices",
                          "per sample, distinct class indices, then −1 padding",
                          -1.0, _INF, integer=True, layout="class_index_set")


@dataclass(frozen=True)
class Argument:
    """One positional array of a loss, in torch's order, under torch's parameter name.

    Attributes:
        name: torch's parameter name (``input``, ``target``, ``var``; ``input1`` and
            ``input2`` for ``margin_ranking_loss``). ``grad_fn(..., wrt=name)`` takes it.
        domains: the values it may hold; several when torch accepts several kinds
            (``cross_entropy``'s target: class indices or class probabilities).
        differentiable: whether symloss gives (and the checker compares) a gradient for it.
        key: the name the declaration's ``symbols`` and the kernels use for it, when not
            ``name`` (``margin_ranking_loss``'s ``input1`` is the kernels' ``"input"``).
        why: one line on what the array is.
    """

    name: str
    domains: tuple[Domain, ...]
    differentiable: bool = False
    key: str = ""
    why: str = ""

    @property
    def symbol_key(self) -> str:
        """The key of this array in :attr:`Declaration.symbols` and the kernels."""
        return self.key or self.name


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
    """A point where the loss is not differentiable: its one-sided derivatives and the value
    symloss takes there.

    At a kink the derivative is a *set*, the subdifferential ``[min(left, right), max(left,
    right)]``; any value in it is a correct subgradient (torch itself changed its choice at
    ``hinge_embedding_loss``'s and ``margin_ranking_loss``'s hinge between 2.13 and 2.14).
    The checker accepts every value in the set and says which side an implementation took.

    Attributes:
        at: the substitution that puts an element on the kink, the input first
            (``((z, y),)``; ``((z, margin), (y, -1))``). Symbols not given stay free: the
            battery puts several values there.
        value: the derivative symloss's own kernels return at the kink (its stated choice;
            the derivation evaluates its gradient at ``at`` and checks it equals this).
        why: one line: which side ``value`` is, and why.
        hessian_value: the second derivative symloss returns at the kink (checked likewise).
        left: ∂ℓ/∂input approached from below (the input a little less than at the kink).
        right: ∂ℓ/∂input approached from above. The tests check both against the derived
            gradient evaluated just beside the kink.
    """

    at: tuple[tuple[sp.Basic, sp.Basic], ...]
    value: sp.Expr
    why: str
    hessian_value: sp.Expr | None = None
    left: sp.Expr | None = None
    right: sp.Expr | None = None

    @property
    def convention(self) -> str:
        """Which one-sided derivative :attr:`value` is: ``"left"``, ``"right"``, ``"both"``
        (the derivative is continuous there), or ``"between"``."""
        return side_of(self.value, self.left, self.right)


def side_of(value: Any, left: Any, right: Any) -> str:
    """``"left"``, ``"right"``, ``"both"`` or ``"between"``: which one-sided derivative a value
    at a kink equals (``"outside"`` when it is not in the subdifferential at all).

    >>> side_of(-1, -1, 0), side_of(0, -1, 0), side_of(1, 1, 1), side_of(-0.5, -1, 0)
    ('left', 'right', 'both', 'between')
    """
    if left is None or right is None:
        return "unknown"
    v, a, b = (sp.sympify(x) for x in (value, left, right))
    at_left, at_right = sp.simplify(v - a) == 0, sp.simplify(v - b) == 0
    if at_left and at_right:
        return "both"
    if at_left:
        return "left"
    if at_right:
        return "right"
    inside = sp.And(sp.Min(a, b) <= v, v <= sp.Max(a, b))
    return "between" if inside == sp.true else "outside"


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
        stable_loss: a form of the loss for evaluation, proved equal to ``loss`` (which stays the
            form the derivation differentiates and shows); ``None``: ``loss`` is evaluated.
        stable_loss_why: one line on how that form avoids cancellation or overflow.
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
        names: sub-expressions the printed derivation names, as the notebook would (``q``,
            ``α_t``; ``u[k]`` names an expression at every class index). Display only: the
            mathematics keeps the full expressions, and each abbreviation is checked by SymPy.
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
    stable_loss: sp.Expr | None = None
    stable_loss_why: str = ""
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
    names: tuple[Definition, ...] = ()

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
