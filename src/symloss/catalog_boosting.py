"""The losses gradient-boosting users ask for beyond torch.nn: Tweedie, Gamma, pseudo-Huber,
quantile (pinball) and log-cosh.

Each is one declaration, like every catalogue entry, in :data:`SPECS`, which the catalogue adds
(``catalog.py``). They have no torch twin (``has_torch_twin=False``): their
references are scikit-learn's ``sklearn._loss`` (``HalfTweedieLoss``, ``HalfGammaLoss``,
``PinballLoss``) and the built-in objectives of XGBoost and LightGBM (``reg:tweedie``,
``reg:gamma``, ``reg:pseudohubererror``, ``tweedie``, ``gamma``, ``quantile``), which the tests
compare them with.

scikit-learn's "half" convention: ``HalfTweedieLoss`` and ``HalfGammaLoss`` are half the unit
deviance, ``d(y, μ)/2``; that is the loss declared here, so the values agree too, and it differs
from the negative log-likelihood the boosting libraries differentiate only by a term free of the
margin, so every derivative agrees with theirs.

Two small primitives keep the kernels finite wherever the exact value is finite:

* :class:`xexp` -- ``y·e^a``, 0 for ``y = 0`` even where ``e^a`` overflows (Tweedie and Gamma at
  extreme margins), and evaluated as ``sign(y)·e^(a + log|y|)`` where only ``e^a`` overflows;
* :class:`hypot1` and :class:`hypot1m1` -- ``√(1 + x²)`` and ``√(1 + x²) − 1`` (pseudo-Huber),
  as ``hypot(1, x)`` and ``x²/(1 + hypot(1, x))``: no overflow of ``x²``, no cancellation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp
from sympy import Function, S, Symbol, exp, log
from sympy.printing.pretty.stringpict import prettyForm

from .declaration import REALS, Argument, Declaration, Domain, Kink, Link
from .primitives import accurate, log1p, sigmoid, softplus
from .spec import LossSpec, Option, reduction_option

__all__ = ["SPECS", "hypot1", "hypot1m1", "inv_hypot1_cube", "xexp"]


# --------------------------------------------------------------------------- primitives
class xexp(Function):
    """:math:`y\\,e^{a}`, exactly 0 for :math:`y = 0` (no ``0·∞``).

    >>> from sympy import Symbol, diff, exp
    >>> y, a = Symbol("y"), Symbol("a")
    >>> diff(xexp(y, a), a), diff(xexp(y, a), y)
    (xexp(y, a), exp(a))
    >>> xexp(0, a), xexp(y, 0)
    (0, y)
    """

    nargs = 2

    @classmethod
    def eval(cls, y: sp.Expr, a: sp.Expr) -> sp.Expr | None:
        if y.is_zero:
            return S.Zero
        if a.is_zero:
            return y
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        _, a = self.args
        if argindex == 1:
            return exp(a)
        if argindex == 2:
            return self
        raise sp.ArgumentIndexError(self, argindex)

    def _eval_rewrite_as_exp(self, y: sp.Expr, a: sp.Expr, **kwargs: object) -> sp.Expr:
        return y * exp(a)

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(exp)._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        y, a = self.args
        return True if (y.is_real and a.is_real) else None

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return str(printer._print(self.rewrite(exp)))

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(self.rewrite(exp))  # type: ignore[attr-defined,no-any-return]

    def _mpmathcode(self, printer: object) -> str:
        return str(printer._print(self.rewrite(exp)))  # type: ignore[attr-defined]

    def _numpycode(self, printer: object) -> str:
        y = printer._print(self.args[0])  # type: ignore[attr-defined]
        a = printer._print(self.args[1])  # type: ignore[attr-defined]
        # y·e^a with y = 0 → 0 (not 0·inf = nan); where e^a alone overflows (a beyond the
        # dtype's exp range) but y·e^a does not, (y·e^(a/2))·e^(a/2): a/2 is exact, where
        # e^(a + log|y|) turned the rounding of a + log|y| into 350 ulp at a = 708.
        return (
            f"numpy.where(({y}) == 0, 0.0, numpy.where(({a}) > 700, "
            f"(({y})*numpy.exp(0.5*({a})))*numpy.exp(0.5*({a})), "
            f"({y})*numpy.exp({a})))"
        )

    _scipycode = _numpycode


class hypot1(Function):
    """:math:`\\sqrt{1 + x^2}`, evaluated as ``hypot(1, x)`` (no overflow of ``x²``).

    >>> from sympy import Symbol, diff
    >>> x = Symbol("x", real=True)
    >>> diff(hypot1(x), x)
    x/hypot1(x)
    """

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_zero:
            return S.One
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return self.args[0] / self

    def _eval_rewrite_as_sqrt(self, x: sp.Expr, **kwargs: object) -> sp.Expr:
        return sp.sqrt(1 + x**2)

    _eval_rewrite_as_exp = _eval_rewrite_as_sqrt

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return sp.sqrt(1 + self.args[0] ** 2)._eval_evalf(prec)

    def _eval_is_positive(self) -> bool | None:
        return True if self.args[0].is_real else None

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return str(printer._print(sp.sqrt(1 + self.args[0] ** 2)))

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(sp.sqrt(1 + self.args[0] ** 2))  # type: ignore[attr-defined,no-any-return]

    def _mpmathcode(self, printer: object) -> str:
        return str(printer._print(sp.sqrt(1 + self.args[0] ** 2)))  # type: ignore[attr-defined]

    def _numpycode(self, printer: object) -> str:
        # within 0.5 ulp, the numba kernels' bits (libm's hypot: 1 ulp, not vectorized)
        return f"ddouble.hypot1({printer._print(self.args[0])})"  # type: ignore[attr-defined]

    _scipycode = _numpycode


class hypot1m1(Function):
    """:math:`\\sqrt{1 + x^2} - 1`, evaluated as ``|x|·(|x| / (1 + hypot(1, x)))``: no
    cancellation for small ``x``, no overflow of ``x²`` for large ``x``.

    >>> from sympy import Symbol, diff
    >>> x = Symbol("x", real=True)
    >>> diff(hypot1m1(x), x)
    x/hypot1(x)
    """

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_zero:
            return S.Zero
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return self.args[0] / hypot1(self.args[0])

    def _eval_rewrite_as_sqrt(self, x: sp.Expr, **kwargs: object) -> sp.Expr:
        return sp.sqrt(1 + x**2) - 1

    _eval_rewrite_as_exp = _eval_rewrite_as_sqrt

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return (sp.sqrt(1 + self.args[0] ** 2) - 1)._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"\left({printer._print(sp.sqrt(1 + self.args[0] ** 2))} - 1\right)"

    def _pretty(self, printer: object) -> prettyForm:
        inner = printer._print(sp.sqrt(1 + self.args[0] ** 2))  # type: ignore[attr-defined]
        return prettyForm(*prettyForm(*inner.right(" - 1")).parens())

    def _mpmathcode(self, printer: object) -> str:
        x = self.args[0]
        return str(printer._print(x**2 / (1 + sp.sqrt(1 + x**2))))  # type: ignore[attr-defined]

    def _numpycode(self, printer: object) -> str:
        x = printer._print(self.args[0])  # type: ignore[attr-defined]
        return f"(numpy.abs({x})*(numpy.abs({x})/(1 + ddouble.hypot1({x}))))"

    _scipycode = _numpycode


class inv_hypot1_cube(Function):
    """``inv_hypot1_cube(r, δ)`` is :math:`(1 + (r/\\delta)^2)^{-3/2} = 1/\\operatorname{hypot1}(r/\\delta)^3`
    (pseudo-Huber's Hessian), evaluated by :func:`symloss.ddouble.inv_hypot1_cube` to about half
    an ulp: where ``r`` is a difference of two inputs (``z − y``) it is taken exactly, and
    ``r/δ``, ``1 + u²``, its root and the cube as pairs (for large ``|u|`` the value ≈ ``|u|⁻³``
    would triple each of their roundings).

    >>> from sympy import Symbol, sqrt
    >>> r, d = Symbol("r", real=True), Symbol("delta", positive=True)
    >>> inv_hypot1_cube(r, d).rewrite(sqrt)
    (1 + r**2/delta**2)**(-3/2)
    """

    nargs = 2

    @classmethod
    def eval(cls, r: sp.Expr, d: sp.Expr) -> sp.Expr | None:
        if r.is_zero:
            return S.One
        return None

    def _eval_rewrite_as_sqrt(self, r: sp.Expr, d: sp.Expr, **kwargs: object) -> sp.Expr:
        return (1 + r**2 / d**2) ** sp.Rational(-3, 2)

    _eval_rewrite_as_exp = _eval_rewrite_as_sqrt
    _eval_rewrite_as_Pow = _eval_rewrite_as_sqrt

    def _eval_derivative(self, s: sp.Basic) -> sp.Expr:
        return sp.diff(self.rewrite(sp.sqrt), s)  # type: ignore[no-any-return]

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(sp.sqrt)._eval_evalf(prec)  # type: ignore[no-any-return]

    def _eval_is_positive(self) -> bool | None:
        return True if all(a.is_real for a in self.args) else None

    def _eval_is_real(self) -> bool | None:
        return True if all(a.is_real for a in self.args) else None

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return str(printer._print(1 / hypot1(self.args[0] / self.args[1]) ** 3))

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(1 / hypot1(self.args[0] / self.args[1]) ** 3)  # type: ignore[attr-defined,no-any-return]

    def _mpmathcode(self, printer: object) -> str:
        return str(printer._print(self.rewrite(sp.sqrt)))  # type: ignore[attr-defined]

    def _operands(self, printer: object) -> str:
        """``a, b, δ`` with ``r = a + b``: the two inputs of a difference ``z − y``, taken
        exactly by the kernel; any other ``r`` as ``r, 0``."""
        r, d = self.args
        show = printer._print  # type: ignore[attr-defined]
        terms = sp.Add.make_args(r)
        if len(terms) == 2 and all(t.is_Symbol or (-t).is_Symbol for t in terms):
            return f"{show(terms[0])}, {show(terms[1])}, {show(d)}"
        return f"{show(r)}, 0.0, {show(d)}"

    def _numpycode(self, printer: object) -> str:
        return f"ddouble.inv_hypot1_cube({self._operands(printer)})"

    _scipycode = _numpycode

    def _pythoncode(self, printer: object) -> str:
        # the numba kernels' printer (symloss.fast): ddouble's compiled twins, by result dtype
        # (the flavour _F: _m float64, _v float32, whose plain float64 form is ample)
        return f"dd_inv_hypot1_cube_F({self._operands(printer)})"


# --------------------------------------------------------------------------- declarations
_Z = Symbol("z", real=True)
_Y = Symbol("y", real=True)
_N = Symbol("n", integer=True, positive=True)
_MU = Symbol("mu", positive=True)
_RHO = Symbol("rho", positive=True)
_DELTA = Symbol("delta", positive=True)
_TAU = Symbol("tau", positive=True)

_MEAN_WHY = "reduction='mean' averages the per-element losses over all n elements."

_SKLEARN_HALF = (
    "scikit-learn's convention: half the unit deviance, d(y, μ)/2, zero where μ = y; the "
    "boosting libraries differentiate the negative log-likelihood, which differs from it by "
    "a term free of z, so their gradients and Hessians are these."
)


def _log_link() -> Link:
    return Link(
        name="exponential (log link)",
        var=_MU,
        expr=exp(_Z),
        definition=exp(_Z),
        why="The log link: the margin z is log μ, so the mean is μ = e^z > 0.",
    )


def _declaration(**fields: Any) -> Declaration:
    return Declaration(
        input=_Z,
        target=_Y,
        mean_denominator=_N,
        mean_why=_MEAN_WHY,
        **fields,
    )


def _declare_tweedie(opts: Mapping[str, Any]) -> Declaration:
    r = _RHO
    constant = _Y ** (2 - r) / ((1 - r) * (2 - r))
    in_mu = constant - _Y * _MU ** (1 - r) / (1 - r) + _MU ** (2 - r) / (2 - r)
    # y·e^((1−ρ)z) as xexp: 0 for y = 0 where e^((1−ρ)z) overflows (z → −∞).
    loss = constant - xexp(_Y, (1 - r) * _Z) / (1 - r) + exp((2 - r) * _Z) / (2 - r)
    return _declaration(
        # the deviance cancels to 0 next to its minimum μ = y: in double-double (accurate)
        loss=accurate(loss),
        loss_in_link=in_mu,
        link=_log_link(),
        loss_why=(
            "Tweedie half deviance with variance power ρ ∈ (1, 2) (compound Poisson-Gamma) and "
            "the log link μ = e^z. " + _SKLEARN_HALF
        ),
        canonical=exp((2 - r) * _Z) - _Y * exp((1 - r) * _Z),
        canonical_why=(
            "Mean minus target over the variance function V(μ) = μ^ρ, times dμ/dz = μ: "
            "(μ − y) μ^(1−ρ) = e^((2−ρ)z) − y e^((1−ρ)z), the form XGBoost's reg:tweedie and "
            "LightGBM's tweedie compute."
        ),
        stable_gradient=accurate(exp((2 - r) * _Z) - xexp(_Y, (1 - r) * _Z)),
        stable_why=(
            "Evaluated as e^((2−ρ)z) − y e^((1−ρ)z) with y e^((1−ρ)z) as xexp: 0 for y = 0 "
            "where e^((1−ρ)z) overflows; the two terms cancel only near μ = y, where both are "
            "about y^(2−ρ)."
        ),
        canonical_hessian=(2 - r) * exp((2 - r) * _Z) - (1 - r) * _Y * exp((1 - r) * _Z),
        hessian_why=(
            "(2 − ρ) e^((2−ρ)z) + (ρ − 1) y e^((1−ρ)z): both terms ≥ 0 for y ≥ 0, so nothing "
            "cancels; y e^((1−ρ)z) is evaluated as xexp, 0 at y = 0 for every z."
        ),
        # in double-double: the exponents' products (1 − ρ)·z round by up to |z|·2⁻⁵³, which
        # e^(…) turns into as many ulps (463 at z = −708 for ρ = 1.9)
        stable_hessian=accurate((2 - r) * exp((2 - r) * _Z) - (1 - r) * xexp(_Y, (1 - r) * _Z)),
        stable_hessian_why=(
            "The same two terms in double-double: e^((1−ρ)z) of a product (1−ρ)z rounded in "
            "float64 is off by that rounding times |(1−ρ)z|, hundreds of ulps where |z| is "
            "hundreds."
        ),
        symbols={"input": _Z, "target": _Y, "power": r},
    )


def _declare_gamma(opts: Mapping[str, Any]) -> Declaration:
    in_mu = log(_MU) - log(_Y) + _Y / _MU - 1
    # y·e^(−z) as xexp: finite (and exact) where e^(−z) overflows but y e^(−z) does not.
    loss = _Z - log(_Y) + xexp(_Y, -_Z) - 1
    return _declaration(
        # the deviance cancels to 0 next to its minimum z = log y: in double-double (accurate)
        loss=accurate(loss),
        loss_in_link=in_mu,
        link=_log_link(),
        loss_why=(
            "Gamma half deviance log(μ/y) + y/μ − 1 with the log link μ = e^z (y > 0). "
            + _SKLEARN_HALF
        ),
        canonical=1 - _Y * exp(-_Z),
        canonical_why=(
            "Mean minus target over the variance function V(μ) = μ², times dμ/dz = μ: "
            "(μ − y)/μ = 1 − y e^(−z), the form XGBoost's reg:gamma and LightGBM's gamma compute."
        ),
        stable_gradient=accurate(1 - xexp(_Y, -_Z)),
        stable_why="Evaluated as 1 − y e^(−z) in double-double: it cancels next to z = log y.",
        canonical_hessian=_Y * exp(-_Z),
        hessian_why="y e^(−z) = y/μ, positive for y > 0.",
        # as a pair product (within half an ulp in both evaluators; the float product of a
        # rounded e^(−z) was up to 1.5 ulp off, and the two evaluators 2 ulp apart)
        stable_hessian=accurate(xexp(_Y, -_Z)),
        stable_hessian_why="Evaluated as y·e^(−z) rounded once from a pair (xexp: 0 for y = 0).",
        symbols={"input": _Z, "target": _Y},
    )


def _declare_pseudo_huber(opts: Mapping[str, Any]) -> Declaration:
    d = _DELTA
    u = (_Z - _Y) / d
    return _declaration(
        loss=d**2 * hypot1m1(u),
        loss_why=(
            "Pseudo-Huber loss δ²(√(1 + ((z − y)/δ)²) − 1): quadratic near the target, linear "
            "with slope δ far from it, smooth everywhere (XGBoost's reg:pseudohubererror with "
            "huber_slope = δ). √(1 + u²) − 1 is evaluated as u²/(1 + hypot(1, u))."
        ),
        canonical=(_Z - _Y) / sp.sqrt(1 + (_Z - _Y) ** 2 / d**2),
        canonical_why=(
            "The residual divided by √(1 + (r/δ)²): about r near the target, tending to ±δ far "
            "from it."
        ),
        stable_gradient=(_Z - _Y) / hypot1(u),
        stable_why="Evaluated as r / hypot(1, r/δ): finite for every finite residual.",
        canonical_hessian=(1 + (_Z - _Y) ** 2 / d**2) ** sp.Rational(-3, 2),
        hessian_why="(1 + (r/δ)²)^(−3/2): 1 at the target, decaying like (δ/|r|)³.",
        # from the exact r = z − y, with u, 1 + u², √ and the cube as pairs: for large |u| the
        # value ≈ |u|⁻³ triples the relative errors of r, u and hypot (5.55 ulp at u = 2153)
        stable_hessian=inv_hypot1_cube(_Z - _Y, d),
        stable_hessian_why=(
            "Evaluated as 1 / hypot(1, r/δ)³: the derived form's (1 + u²) − u² cancels."
        ),
        symbols={"input": _Z, "target": _Y, "delta": d},
    )


def _declare_quantile(opts: Mapping[str, Any]) -> Declaration:
    t = _TAU
    above = _Z >= _Y
    return _declaration(
        loss=sp.Piecewise(((1 - t) * (_Z - _Y), above), (t * (_Y - _Z), True)),
        loss_why=(
            "Pinball (quantile) loss for the quantile τ ∈ (0, 1): τ (y − z) below the target, "
            "(1 − τ)(z − y) above it; scikit-learn's PinballLoss (no half), XGBoost's "
            "reg:quantileerror (quantile_alpha = τ), LightGBM's quantile (alpha = τ)."
        ),
        canonical=sp.Piecewise((1 - t, above), (-t, True)),
        canonical_why="−τ below the target, 1 − τ above it.",
        canonical_hessian=S.Zero,
        hessian_why=(
            "Piecewise linear: 0 away from the kink. XGBoost, LightGBM and scikit-learn use the "
            "constant 1 as the Hessian instead (symloss.objective(..., library=...) does too)."
        ),
        kinks=(
            Kink(
                ((_Z, _Y),),
                1 - t,
                "At z = y the one-sided derivatives are −τ (from the left) and 1 − τ (from the "
                "right); XGBoost (quantile_obj.cu: d = predt − label ≥ 0 gives 1 − α) and "
                "LightGBM (regression_objective.hpp: delta ≥ 0 gives 1 − α) take the right-hand "
                "value 1 − τ, as z ≥ y does here; scikit-learn's PinballLoss takes the left-hand "
                "−τ (y_true ≥ raw_prediction gives −τ, measured with 1.9). Both are subgradients.",
                S.Zero,
                left=-t,
                right=1 - t,
            ),
        ),
        symbols={"input": _Z, "target": _Y, "quantile": t},
    )


def _declare_log_cosh(opts: Mapping[str, Any]) -> Declaration:
    r = _Z - _Y
    return _declaration(
        # log cosh r = r + log(1 + e^(−2r)) − log 2 = |r| + log1p(e^(−2|r|)) − log 2: softplus
        # is evaluated as logaddexp(0, ·), so cosh never overflows.
        loss=accurate(r + softplus(-2 * r) - log(2)),  # in double-double: ≈ r²/2 near r = 0
        loss_why=(
            "Log-cosh loss log cosh(z − y), written r + softplus(−2r) − log 2 with r = z − y: "
            "no overflow of cosh for large |r|."
        ),
        # log cosh r = log(1 + 2 sinh²(r/2)) for |r| < 1, in double-double from the exact
        # r = z − y: the form above is ≈ r²/2 below terms ≈ |r|, beyond double-double's digits
        # where |r| < 2⁻³³ (264 ulp at r = 1.8e-10); log1p(2 sinh²(r/2)) cancels nowhere.
        stable_loss=accurate(sp.Piecewise(
            (log1p(2 * sp.sinh(r / 2) ** 2), sp.Abs(r) < 1),
            (r + softplus(-2 * r) - log(2), True))),
        stable_loss_why=(
            "Evaluated as log(1 + 2 sinh²(r/2)) (log1p; cosh r = 1 + 2 sinh²(r/2): ≈ r²/2 "
            "without cancellation) for |r| < 1 and r + softplus(−2r) − log 2 beyond, both in "
            "double-double from the exact r = z − y."
        ),
        canonical=sp.tanh(r),
        canonical_why="The derivative of log cosh r is tanh r: about r near 0, ±1 far away.",
        stable_gradient=sp.tanh(r),
        stable_why="Evaluated as tanh(z − y): no 2σ(2r) − 1 cancellation near r = 0.",
        canonical_hessian=1 - sp.tanh(r) ** 2,
        hessian_why="sech² r = 1 − tanh² r.",
        # in double-double: σ(−2r) ≈ e^(−2r) turns the rounding of r = z − y into a relative
        # error of |2r|·2⁻⁵³ (180 ulp at r = 189)
        stable_hessian=accurate(4 * sigmoid(2 * r) * sigmoid(-2 * r)),
        stable_hessian_why=(
            "Evaluated as 4σ(2r)σ(−2r): 1 − tanh² r would cancel to 0 where tanh r rounds to ±1."
        ),
        symbols={"input": _Z, "target": _Y},
    )


#: Tweedie targets: amounts ≥ 0, zeros included (compound Poisson-Gamma).
AMOUNTS = Domain("amounts", "a non-negative amount (0 included: the compound Poisson-Gamma's "
                 "point mass)", 0.0, float("inf"), points=(0.0, 0.5, 1.0, 3.0))
#: Gamma targets: positive reals (log y enters the loss).
POSITIVE = Domain("positive reals", "a real > 0", 5e-324, float("inf"), points=(0.25, 1.0, 4.0))

_INPUT = Argument("input", (REALS,), differentiable=True, why="the raw margin (log μ for a log link)")


def _signature(target: Domain, why: str) -> Any:
    arguments = (_INPUT, Argument("target", (target,), why=why))
    return lambda options: arguments


#: The boosting losses, in the catalogue's order (:mod:`symloss.catalog` adds them).
SPECS: tuple[LossSpec, ...] = (
    LossSpec(
        name="gamma_loss",
        summary="Gamma half deviance with the log link (XGBoost reg:gamma, LightGBM gamma); "
        "no torch twin.",
        options=(reduction_option(),),
        declare=_declare_gamma,
        signature=_signature(POSITIVE, "the positive target"),
        short=("gamma",),
        family="elementwise",
        has_torch_twin=False,
    ),
    LossSpec(
        name="log_cosh_loss",
        summary="Log-cosh loss log cosh(z − y); no torch twin.",
        options=(reduction_option(),),
        declare=_declare_log_cosh,
        signature=_signature(REALS, "the regression target"),
        short=("log_cosh", "logcosh"),
        family="elementwise",
        has_torch_twin=False,
    ),
    LossSpec(
        name="pseudo_huber_loss",
        summary="Pseudo-Huber loss δ²(√(1 + ((z − y)/δ)²) − 1) (XGBoost "
        "reg:pseudohubererror); no torch twin.",
        options=(
            Option("delta", 1.0, "the slope far from the target (huber_slope), > 0",
                   kind="positive", examples=(0.25, 3.0)),
            reduction_option(),
        ),
        declare=_declare_pseudo_huber,
        signature=_signature(REALS, "the regression target"),
        short=("pseudo_huber", "pseudohuber"),
        family="elementwise",
        has_torch_twin=False,
    ),
    LossSpec(
        name="quantile_loss",
        summary="Pinball (quantile) loss (XGBoost reg:quantileerror, LightGBM quantile); "
        "no torch twin.",
        options=(
            Option("quantile", 0.5, "the quantile τ, in (0, 1)", kind="unit_interval",
                   examples=(0.1, 0.9), interval=(0.0, 1.0)),
            reduction_option(),
        ),
        declare=_declare_quantile,
        signature=_signature(REALS, "the regression target"),
        short=("quantile", "pinball", "pinball_loss"),
        family="elementwise",
        has_torch_twin=False,
    ),
    LossSpec(
        name="tweedie_loss",
        summary="Tweedie half deviance, log link, 1 < power < 2 (XGBoost reg:tweedie, "
        "LightGBM tweedie); no torch twin.",
        options=(
            Option("power", 1.5, "the variance power ρ, in (1, 2)", kind="real",
                   examples=(1.1, 1.9), interval=(1.0, 2.0),
                   why="compound Poisson-Gamma; power=1 is poisson_nll_loss, power=2 is "
                   "gamma_loss"),
            reduction_option(),
        ),
        declare=_declare_tweedie,
        signature=_signature(AMOUNTS, "the non-negative amount"),
        short=("tweedie",),
        family="elementwise",
        has_torch_twin=False,
    ),
)
