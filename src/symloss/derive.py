"""Differentiate a declared loss, simplify, prove the canonical form, and record the steps.

Every equation in :attr:`Derivation.steps` is produced by SymPy from the declaration and checked
by SymPy (:func:`symloss.algebra.equal`); nothing here is a typed-in result.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sympy as sp

from .algebra import equal, is_zero, reduce_sums, tidy
from .declaration import Declaration, Partial
from .primitives import SUM_INDEX

if TYPE_CHECKING:
    import numpy.typing as npt

    from .catalog import LossSpec

__all__ = ["Derivation", "Step"]

_ELL = sp.Symbol("ℓ")
_L = sp.Symbol("L")
_SAMPLES = sp.Symbol("n", integer=True, positive=True)
_M = sp.Symbol("m", integer=True, positive=True)
_T = sp.Symbol("t", integer=True, positive=True)


@dataclass(frozen=True)
class Step:
    """One step of a derivation: ``lhs = rhs[0] = rhs[1] = …`` and why it holds.

    ``checked`` is True when SymPy proved every ``=`` in the chain, None for a definition (there
    is nothing to prove), and False when SymPy could not reduce a difference to 0.
    """

    title: str
    why: str
    lhs: sp.Expr
    rhs: tuple[sp.Expr, ...]
    checked: bool | None

    @property
    def equations(self) -> list[sp.Eq]:
        """The chain as SymPy equations ``Eq(lhs, r)``, unevaluated."""
        return [sp.Eq(self.lhs, r, evaluate=False) for r in self.rhs]


def _chain(items: list[sp.Expr]) -> tuple[sp.Expr, ...]:
    """Drop consecutive duplicates from a chain of equal expressions."""
    out: list[sp.Expr] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return tuple(out)


def _all_equal(
    items: tuple[sp.Expr, ...], substitute: Callable[[sp.Expr], sp.Expr] = lambda e: e
) -> bool:
    """True when SymPy proves every neighbouring pair equal (after ``substitute``)."""
    items = tuple(substitute(e) for e in items)
    return all(equal(a, b) for a, b in itertools.pairwise(items))


class Derivation:
    """The derivation of one loss with one set of options.

    Build it with :func:`symloss.derive`. Attributes are computed on first use and cached.

    >>> import symloss
    >>> d = symloss.derive("bce")
    >>> d.gradient
    -y + sigmoid(z)
    >>> d.proved
    True
    """

    def __init__(
        self, spec: LossSpec, options: Mapping[str, Any], declaration: Declaration
    ) -> None:
        self.spec = spec
        self.options = dict(options)
        self.declaration = declaration

    def _with_options(self, options: Mapping[str, Any]) -> Derivation:
        """This derivation with the option values (arrays) the numbers need.

        The symbolic results depend only on which options are present, so they are shared.
        """
        twin = copy.copy(self)
        twin.__dict__.pop("_numeric", None)
        twin.options = dict(options)
        return twin

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.display_options.items())
        return f"<Derivation {self.name}({shown}) proved={self.proved}>"

    # ------------------------------------------------------------------ identity
    @property
    def name(self) -> str:
        """The torch.nn.functional name of the loss."""
        return self.spec.name

    @property
    def display_options(self) -> dict[str, Any]:
        """The options as a reader wants to see them (arrays summarised)."""
        shown: dict[str, Any] = {}
        for key, value in self.options.items():
            if value is None:
                continue
            if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
                value = f"array{tuple(value.shape)}"
            shown[key] = value
        return shown

    # ------------------------------------------------------------------ symbolic results
    @property
    def input(self) -> sp.Expr:
        """The variable differentiated with respect to."""
        return self.declaration.input

    @property
    def loss(self) -> sp.Expr:
        """The per-element loss, as evaluated (stable form)."""
        return self.declaration.loss

    @cached_property
    def raw_gradient(self) -> sp.Expr:
        """``sympy.diff(loss, input)`` before any simplification."""
        return sp.diff(self.declaration.loss, self.declaration.input)

    @cached_property
    def gradient(self) -> sp.Expr:
        """∂ℓ/∂input per element: ``sympy.diff`` of :attr:`loss`, simplified."""
        return tidy(self.raw_gradient)

    @property
    def canonical(self) -> sp.Expr:
        """The canonical form the gradient is proved equal to."""
        return self.declaration.canonical

    @property
    def assumptions(self) -> list[tuple[sp.Expr, sp.Expr]]:
        return [(a.lhs, a.rhs) for a in self.declaration.assumptions]

    def _prove(self, a: sp.Expr, b: sp.Expr) -> bool:
        subst = self.declaration.substitute_definitions
        return is_zero(subst(a) - subst(b), self.assumptions)

    @cached_property
    def proved(self) -> bool:
        """True only when SymPy reduces ``gradient - canonical`` to 0 (under the assumptions)."""
        return self._prove(self.gradient, self.canonical)

    @cached_property
    def kernel_gradient(self) -> sp.Expr:
        """The form of the gradient the NumPy kernel evaluates (proved equal to the gradient)."""
        declared = self.declaration.stable_gradient
        return self.raw_gradient if declared is None else declared

    @cached_property
    def kernel_proved(self) -> bool:
        """True when the kernel's form is proved equal to the derived gradient."""
        return self._prove(self.kernel_gradient, self.raw_gradient)

    # ------------------------------------------------------------------ steps
    @cached_property
    def steps(self) -> list[Step]:
        """The derivation in the seed notebook's order, each step produced and checked by SymPy."""
        d = self.declaration
        z = d.input
        steps: list[Step] = []
        link = d.link
        if link is not None:
            var_elem = link.var[SUM_INDEX] if link.class_axis else link.var  # type: ignore[index]
            expr_elem = link.expr
            chain = _chain([expr_elem, link.definition])
            steps.append(Step("Link", link.why, var_elem, chain, _all_equal(chain)))
        for definition in d.definitions:
            steps.append(Step("Definition", definition.why, definition.symbol, (definition.expr,), None))

        ell = _ELL
        loss_chain: list[sp.Expr] = []
        if link is not None and d.loss_in_link is not None:
            loss_chain += [d.loss_in_link, link.from_var(d.loss_in_link)]
        loss_chain.append(d.loss)
        chain = _chain(loss_chain)
        in_input = link.from_var if link is not None else (lambda e: e)
        steps.append(
            Step("Per-element loss", d.loss_why, ell, chain, _all_equal(chain, in_input))
        )
        steps.append(self._reduction_step())

        if link is not None and d.loss_in_link is not None:
            steps += self._chain_rule_steps()
        else:
            raw = self.raw_gradient
            chain = _chain([raw, self.gradient])
            steps.append(
                Step(
                    "Derivative",
                    "sympy.diff of the per-element loss, then simplified.",
                    Partial(ell, z),
                    chain,
                    _all_equal(chain),
                )
            )

        canonical_chain = _chain([self.gradient, self.canonical])
        why = d.canonical_why
        if d.assumptions:
            why += " Assuming " + "; ".join(a.why for a in d.assumptions) + "."
        steps.append(
            Step("Canonical form", why, Partial(ell, z), canonical_chain, self.proved)
        )
        if d.stable_gradient is not None or self.raw_gradient != self.gradient:
            steps.append(
                Step(
                    "Evaluated as",
                    d.stable_why or "The form the NumPy kernel evaluates.",
                    Partial(ell, z),
                    (self.kernel_gradient,),
                    self.kernel_proved,
                )
            )
        steps.append(self._reduced_gradient_step())
        return steps

    def _reduction_step(self) -> Step:
        d = self.declaration
        reduction = self.options.get("reduction", "mean")
        ell_m = sp.IndexedBase(_ELL)[_M]
        total = sp.Sum(ell_m, (_M, 1, _SAMPLES))
        if reduction == "mean":
            return Step("Reduction", d.mean_why, _L, (total / d.mean_denominator,), None)
        if reduction == "sum":
            return Step("Reduction", "reduction='sum' adds the per-element losses.", _L, (total,), None)
        return Step(
            "Reduction",
            "reduction='none' keeps one loss per element.",
            sp.IndexedBase(_L)[_M],
            (ell_m,),
            None,
        )

    def _chain_rule_steps(self) -> list[Step]:
        d = self.declaration
        link = d.link
        assert link is not None and d.loss_in_link is not None
        z = d.input
        ell = _ELL
        k = SUM_INDEX
        if link.class_axis:
            p_k = link.var[k]  # type: ignore[index]
            fresh = sp.Symbol("m", integer=True, positive=True)
            d_loss_dp = reduce_sums(sp.diff(d.loss_in_link, link.var[fresh])).subs(fresh, k)  # type: ignore[index]
            dp_dz = link.to_var(sp.diff(link.expr, z))
            rule = sp.Sum(Partial(ell, p_k) * Partial(p_k, z), (k, 1, link.expr.args[2]))
            product = sp.Sum(d_loss_dp * dp_dz, (k, 1, link.expr.args[2]))
            rule_why = "Chain rule: ℓ depends on zᵢ through every pₖ."
        else:
            p_k = link.var
            d_loss_dp = sp.diff(d.loss_in_link, link.var)
            dp_dz = link.to_var(sp.diff(link.expr, z))
            rule = Partial(ell, p_k) * Partial(p_k, z)
            product = d_loss_dp * dp_dz
            rule_why = "Chain rule: ℓ depends on z through p."
        d_loss_dp_tidy = tidy(d_loss_dp)
        product_tidy = tidy(link.from_var(product))
        direct = self.raw_gradient
        product_ok = equal(link.from_var(product), direct) and equal(product_tidy, self.gradient)
        return [
            Step("Chain rule", rule_why, Partial(ell, z), (rule,), None),
            Step(
                "Outer factor",
                "sympy.diff of the loss with respect to the prediction.",
                Partial(ell, p_k),
                _chain([d_loss_dp, d_loss_dp_tidy]),
                equal(d_loss_dp, d_loss_dp_tidy),
            ),
            Step(
                "Inner factor",
                f"The derivative of the {link.name}, which each primitive carries (fdiff).",
                Partial(p_k, z),
                _chain([sp.diff(link.expr, z), dp_dz]),
                equal(link.from_var(dp_dz), sp.diff(link.expr, z)),
            ),
            Step(
                "Product",
                "Multiply the factors and simplify; equal to sympy.diff of ℓ in z directly.",
                Partial(ell, z),
                _chain([product, product_tidy]),
                product_ok,
            ),
        ]

    def _reduced_gradient_step(self) -> Step:
        d = self.declaration
        reduction = self.options.get("reduction", "mean")
        z = d.input
        if isinstance(z, sp.Indexed):
            z_m = sp.IndexedBase(z.base.label)[_M, z.indices[0]]
            at_m: dict[sp.Basic, sp.Basic] = {}
        else:
            z_m = sp.IndexedBase(z)[_M]
            # For an element-wise loss, element m's gradient is the per-element one at (z_m, y_m).
            y = d.target
            at_m = {z: z_m, y: sp.IndexedBase(y)[_M]}
        ell_m = sp.IndexedBase(_ELL)[_M]
        per_element = Partial(ell_m, z_m)
        if reduction == "none":
            return Step(
                "Gradient",
                "With reduction='none' each element's gradient is its own (backward with ones).",
                Partial(sp.IndexedBase(_L)[_M], z_m),
                (per_element, self.canonical.subs(at_m)),
                True,
            )
        denominator = d.mean_denominator if reduction == "mean" else sp.S.One
        # The bookkeeping is linear: check with SymPy that ∂/∂ζ_t Σ_m F(ζ_m) / D = F'(ζ_t) / D
        # for a denominator D that does not depend on the input.
        f = sp.Function("F")
        zz = sp.IndexedBase("zeta")
        big_d = sp.Symbol("D", positive=True)
        total = sp.Sum(f(zz[_M]), (_M, 1, _SAMPLES)) / big_d
        lhs = reduce_sums(sp.diff(total, zz[_T])).doit()
        checked = not denominator.has(zz) and not denominator.has(z) and bool(
            sp.simplify(lhs - sp.diff(f(zz[_T]), zz[_T]) / big_d) == 0
        )
        why = (
            "Each ℓₘ depends only on its own input, so the reduced gradient is the "
            "per-element gradient"
            + (" divided by the mean's denominator." if reduction == "mean" else ".")
        )
        return Step(
            "Reduced gradient",
            why,
            Partial(_L, z_m),
            _chain([per_element / denominator, self.canonical.subs(at_m) / denominator]),
            checked,
        )

    # ------------------------------------------------------------------ rendering
    def latex(self, document: bool = False) -> str:
        """The derivation as an ``align*`` body, or a complete document pdflatex compiles."""
        from .render import latex

        return latex(self, document=document)

    def markdown(self) -> str:
        """The derivation as GitHub-flavoured Markdown with ``$$`` math."""
        from .render import markdown

        return markdown(self)

    def text(self) -> str:
        """The derivation as Unicode text for a terminal."""
        from .render import text

        return text(self)

    def _repr_latex_(self) -> str:
        from .render import latex

        return "$$" + latex(self, document=False, environment=True) + "$$"

    def _repr_markdown_(self) -> str:
        return self.markdown()

    # ------------------------------------------------------------------ numbers
    @cached_property
    def _numeric(self) -> Any:
        from .numeric import build

        return build(self)

    @property
    def loss_fn(self) -> Callable[[npt.ArrayLike, npt.ArrayLike], Any]:
        """``loss_fn(input, target)``: the reduced loss, with torch's semantics, in NumPy."""
        return self._numeric.loss  # type: ignore[no-any-return]

    @property
    def grad_fn(self) -> Callable[[npt.ArrayLike, npt.ArrayLike], Any]:
        """``grad_fn(input, target)``: ∂(reduced loss)/∂input, with the input's shape and dtype."""
        return self._numeric.grad  # type: ignore[no-any-return]
