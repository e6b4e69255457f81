"""SymPy primitives that carry their own derivative, definition and printing.

Each primitive is a :class:`sympy.Function` subclass in the style of
``sympy.codegen.numpy_nodes.logaddexp``: the mathematics lives with the object, so
``sympy.diff``, ``rewrite``, ``evalf`` and the printers need no special cases.

Scalar primitives act on one logit:

* :class:`sigmoid`  -- :math:`\\sigma(x) = 1 / (1 + e^{-x})`, with :math:`\\sigma' = \\sigma(1-\\sigma)`.
* :class:`softplus` -- :math:`\\log(1 + e^{x})`, with derivative :math:`\\sigma(x)`;
  :math:`\\log\\sigma(x) = -\\operatorname{softplus}(-x)`.

Class-axis primitives act on a vector of ``C`` logits, ``C`` symbolic, written with an
:class:`~sympy.IndexedBase` ``z``:

* :class:`softmax`     -- ``softmax(z, i, C)`` is :math:`e^{z_i} / \\sum_{j=1}^{C} e^{z_j}`.
* :class:`log_softmax` -- ``log_softmax(z, i, C)`` is :math:`z_i - \\log\\sum_j e^{z_j}`.
* :class:`softmax_complement` -- :math:`1 - \\operatorname{softmax}(z)_i`, the quantity a
  stable kernel needs where :math:`p_i \\to 1` (it is computed without cancellation).
"""

from __future__ import annotations

from typing import Any

import mpmath
import sympy as sp
from sympy import Function, Indexed, IndexedBase, KroneckerDelta, S, Sum, exp, log
from sympy.codegen import cfunctions as _cfunctions
from sympy.printing.pretty.stringpict import prettyForm

__all__ = [
    "CLASS_INDEX",
    "NUM_CLASSES",
    "SUM_INDEX",
    "accurate",
    "bernoulli_curvature",
    "clamp_min",
    "clamped_log",
    "class_sum",
    "dd_code",
    "exp_sub",
    "fsum",
    "log1p",
    "log_softmax",
    "log_sub",
    "mp_softplus",
    "off_target",
    "power",
    "product_of_inputs",
    "sigmoid",
    "sigmoid_pow",
    "sigmoid_pow_large",
    "sigmoid_sub",
    "softmax",
    "softmax_complement",
    "softmax_hvp",
    "softmax_sub",
    "softmax_variance",
    "softplus",
]

#: The number of classes, a symbol: cross-entropy is derived for every C at once.
NUM_CLASSES = sp.Symbol("C", integer=True, positive=True)
#: The free class index of a per-class gradient.
CLASS_INDEX = sp.Symbol("i", integer=True, positive=True)
#: The summation index over classes.
SUM_INDEX = sp.Symbol("k", integer=True, positive=True)
#: A second, internal summation index (inside log-sum-exp).
_J = sp.Symbol("j", integer=True, positive=True)


class sigmoid(Function):
    """The logistic sigmoid :math:`\\sigma(x) = 1/(1+e^{-x})`.

    >>> from sympy import Symbol, diff
    >>> x = Symbol("x")
    >>> diff(sigmoid(x), x)
    (1 - sigmoid(x))*sigmoid(x)
    >>> sigmoid(0)
    1/2
    """

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return self * (1 - self)

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_zero:
            return S.Half
        if x is S.Infinity:
            return S.One
        if x is S.NegativeInfinity:
            return S.Zero
        return None

    def _eval_rewrite_as_exp(self, x: sp.Expr, **kwargs: object) -> sp.Expr:
        return 1 / (1 + exp(-x))

    _eval_rewrite_as_tractable = _eval_rewrite_as_exp

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(exp)._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_is_positive(self) -> bool | None:
        return True if self.args[0].is_real else None

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"\sigma\left({printer._print(self.args[0])}\right)"

    def _pretty(self, printer: object) -> prettyForm:
        name = "σ" if getattr(printer, "_use_unicode", True) else "sigmoid"
        return _pretty_call(name, self.args[0], printer)

    def _numpycode(self, printer: object) -> str:
        # kernels.sigmoid: e^{−|x|} never overflows, nothing cancels, 1 + t is compensated.
        product = _printed_product(self.args[0], printer)
        if product is not None:  # σ(p + e) = σ(p)(1 + σ(−p)e): a product's rounding corrected
            p, err = product
            return f"(kernels.sigmoid({p}) * (1.0 + kernels.sigmoid(-{p}) * {err}))"
        return f"kernels.sigmoid({printer._print(self.args[0])})"  # type: ignore[attr-defined]

    _scipycode = _numpycode


def product_of_inputs(arg: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """``(a, b)`` where ``arg`` is a product of two inputs ``a·b`` (a sign on ``a``), else
    ``None``: the evaluators correct ``f(a·b)`` by the product's exact rounding error.

    >>> from sympy import Symbol
    >>> y, z = Symbol("y"), Symbol("z")
    >>> product_of_inputs(-y*z)
    (-y, z)
    """
    if not isinstance(arg, sp.Mul):
        return None
    sign = sp.S.One
    factors = list(arg.args)
    if factors[0] == -1:
        sign, factors = sp.S.NegativeOne, factors[1:]
    if len(factors) != 2 or not all(f.is_Symbol for f in factors):
        return None
    return sp.Mul(sign, factors[0], evaluate=False) if sign == -1 else factors[0], factors[1]


def _printed_product(arg: sp.Expr, printer: Any) -> tuple[str, str] | None:
    """The NumPy code of a product of two inputs and of its exact rounding error
    (:func:`symloss.kernels.prod_err`), or ``None``: ``f(y·z)`` is corrected to first order
    where ``f`` amplifies the rounding of ``y·z`` (softplus(−yz) at yz ≈ 700: 450 ulp)."""
    pair = product_of_inputs(arg)
    if pair is None:
        return None
    a, b = (printer._print(x) for x in pair)
    return f"(({a}) * ({b}))", f"kernels.prod_err({a}, {b})"


def mp_softplus(x: Any) -> Any:
    """:class:`softplus` of an mpmath number at the working precision, as
    ``max(x, 0) + log1p(e^(−|x|))``: ``log(1 + eˣ)`` rounds ``1 + eˣ`` to 1 where ``eˣ`` is
    below the working precision (softplus(−464) was 0 at 120 digits; it is e^(−464))."""
    return max(x, 0) + mpmath.log1p(mpmath.exp(-abs(x)))


class softplus(Function):
    """:math:`\\operatorname{softplus}(x) = \\log(1 + e^{x})`; :math:`\\log\\sigma(x) = -\\operatorname{softplus}(-x)`.

    >>> from sympy import Symbol, diff
    >>> x = Symbol("x")
    >>> diff(softplus(x), x)
    sigmoid(x)
    """

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        return sigmoid(self.args[0])

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_zero:
            return log(2)
        return None

    def _eval_rewrite_as_log(self, x: sp.Expr, **kwargs: object) -> sp.Expr:
        return log(1 + exp(x))

    _eval_rewrite_as_exp = _eval_rewrite_as_log

    def _eval_evalf(self, prec: int) -> sp.Expr:
        # max(x, 0) + log1p(e^(−|x|)) in mpmath: log(1 + eˣ) rounds 1 + eˣ to 1 where eˣ is
        # below the working precision (softplus(−464) was 0 at 120 digits; it is e^(−464)).
        x = self.args[0]._eval_evalf(prec)
        if x is None or not (x.is_Number and x.is_real):
            return self.rewrite(log)._eval_evalf(prec)
        with mpmath.workprec(prec + 10):
            value = mp_softplus(mpmath.mpf(sp.Float(x, precision=prec + 10)._mpf_))
        return sp.Float._new(value._mpf_, prec)  # type: ignore[no-any-return]

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"

    def _pretty(self, printer: object) -> prettyForm:
        return _pretty_call("softplus", self.args[0], printer)

    def _numpycode(self, printer: object) -> str:
        # logaddexp(0, x) = log(1 + e^x) without overflow for large x or loss for small x.
        product = _printed_product(self.args[0], printer)
        if product is not None:  # softplus(p + e) = softplus(p) + σ(p)e: the product's rounding
            p, err = product
            return f"(numpy.logaddexp(0, {p}) + kernels.sigmoid({p}) * {err})"
        return f"numpy.logaddexp(0, {printer._print(self.args[0])})"  # type: ignore[attr-defined]

    _scipycode = _numpycode


class sigmoid_pow(Function):
    """:math:`\\sigma(x)^\\gamma` for :math:`\\gamma \\ge 0`, differentiated as
    :math:`\\gamma\\,\\sigma(x)^\\gamma\\,\\sigma(-x)` rather than the chain rule's
    :math:`\\gamma\\,\\sigma(x)^{\\gamma-1}\\,\\sigma(x)(1-\\sigma(x))`.

    The two are equal, but the second is :math:`\\infty \\cdot 0` for :math:`\\gamma < 1` where
    :math:`\\sigma(x)` underflows (the focal loss's modulating factor at a confident
    prediction); the first is a product of factors in [0, 1]. Evaluated as
    :math:`e^{-\\gamma \\operatorname{softplus}(-x)}` (log space: finite and accurate where
    :math:`\\sigma(x)` itself underflows).

    >>> from sympy import Symbol, diff
    >>> x, g = Symbol("x"), Symbol("gamma", positive=True)
    >>> diff(sigmoid_pow(x, g), x)
    gamma*sigmoid(-x)*sigmoid_pow(x, gamma)
    """

    nargs = 2

    @classmethod
    def eval(cls, x: sp.Expr, exponent: sp.Expr) -> sp.Expr | None:
        if exponent.is_zero:
            return S.One
        if exponent == 1:
            return sigmoid(x)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, exponent = self.args
        if argindex == 1:
            return exponent * self * sigmoid(-x)
        return -self * softplus(-x)  # ∂/∂γ e^{−γ softplus(−x)}

    def _eval_rewrite_as_Pow(self, x: sp.Expr, exponent: sp.Expr, **kw: object) -> sp.Expr:
        return sigmoid(x) ** exponent

    _eval_rewrite_as_sigmoid = _eval_rewrite_as_Pow

    def _eval_rewrite_as_exp(self, x: sp.Expr, exponent: sp.Expr, **kw: object) -> sp.Expr:
        return exp(-exponent * log(1 + exp(-x)))

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(exp)._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        x, exponent = (printer._print(a) for a in self.args)
        return rf"\sigma\left({x}\right)^{{{exponent}}}"

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(sp.Pow(sigmoid(self.args[0]), self.args[1], evaluate=False))  # type: ignore[attr-defined]

    def _numpycode(self, printer: object) -> str:
        x, exponent = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        # log σ(x) = −softplus(−x): no underflow of σ(x), no 0^(γ−1); the exponent
        # −γ softplus(−x) as an exact pair (kernels.sigmoid_pow): e^u would turn u's rounding
        # (|u| ulp) into a relative error of |u|·2⁻⁵³, 32 ulp at σ(−32)².
        return f"kernels.sigmoid_pow({x}, {exponent})"

    _scipycode = _numpycode


class sigmoid_pow_large(sigmoid_pow):
    """:class:`sigmoid_pow` evaluated with ``log1p(e^(−|x|))`` to about 2⁻⁶⁶ rather than to
    float64's rounding, which ``e^(−γ softplus(−x))`` multiplies by γ (about γ/2 ulp: 464 ulp
    at γ = 1000). The same function (SymPy derives, renders and proves it as
    :class:`sigmoid_pow`); its evaluators take two more exponentials
    (:func:`symloss._fastmath.sigmoid_pow_lb_m`, :func:`symloss.kernels.sigmoid_pow` with
    ``exact_b``), so the focal loss declares it only where γ > 2.

    >>> from sympy import Symbol, diff
    >>> x, g = Symbol("x"), Symbol("gamma", positive=True)
    >>> diff(sigmoid_pow_large(x, g), x)
    gamma*sigmoid(-x)*sigmoid_pow_large(x, gamma)
    """

    def _numpycode(self, printer: object) -> str:
        x, exponent = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        return f"kernels.sigmoid_pow({x}, {exponent}, exact_b=True)"

    _scipycode = _numpycode

    def _mpmathcode(self, printer: object) -> str:  # a reference's namespace knows sigmoid_pow
        x, exponent = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        return f"sigmoid_pow({x}, {exponent})"


class _Difference(Function):
    """Base of ``f(x) − y`` primitives evaluated in double-double (:mod:`symloss.ddouble`):
    symbolically the difference, numerically one rounding of a 106-bit value, so the result
    keeps its digits next to the root ``f(x) = y`` where float64 cancels."""

    nargs = 2
    _fn = "sigmoid_sub"

    def _head(self, x: sp.Expr) -> sp.Expr:
        raise NotImplementedError

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        if argindex == 2:
            return S.NegativeOne
        u = sp.Dummy("u")
        return sp.diff(self._head(u), u).subs(u, self.args[0])

    def _eval_rewrite_as_Add(self, x: sp.Expr, y: sp.Expr, **kw: object) -> sp.Expr:
        return self._head(x) - y

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return (self._head(self.args[0]) - self.args[1])._eval_evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real and self.args[1].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        inner = printer._print(sp.Add(self._head(self.args[0]), -self.args[1], evaluate=False))
        return rf"\left({inner}\right)"  # a difference: parenthesized inside a product

    def _pretty(self, printer: object) -> prettyForm:
        inner = printer._print(sp.Add(self._head(self.args[0]), -self.args[1], evaluate=False))  # type: ignore[attr-defined]
        return prettyForm(*inner.parens())

    def _sympystr(self, printer: object) -> str:
        x, y = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        return f"{self._fn}({x}, {y})"

    #: The NumPy path's function: double-double for every element, or (``kernels.``) float64
    #: where the difference keeps its digits and the accurate form elsewhere.
    _numpy_fn = "ddouble.np_{fn}"

    def _numpycode(self, printer: object) -> str:
        x, y = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        fn = self._numpy_fn.format(fn=self._fn)
        return _certified(printer, f"{fn}({x}, {y})", self.rewrite(sp.Add))

    _scipycode = _numpycode


def _certified(printer: object, code: str, inner: sp.Expr) -> str:
    """``code``, a double-double evaluation of ``inner``, as NaN where it is too cancelled to
    trust, for a printer that asks: one with a ``certified(code, inner)`` method (the NumPy
    evaluator's, :mod:`symloss.numeric`, which wraps it in :func:`symloss.ddouble.certified`
    with the magnitude of ``inner``'s terms; its NaN elements :mod:`symloss.exact` recomputes).
    The primitive prints the pair, the evaluator decides how to certify it."""
    certified = getattr(printer, "certified", None)  # the printer knows the form's magnitude
    return code if certified is None else str(certified(code, inner))


class sigmoid_sub(_Difference):
    """:math:`\\sigma(x) - y`, evaluated in double-double (:func:`symloss.ddouble.sigmoid_sub`).

    >>> from sympy import Symbol, diff
    >>> x, y = Symbol("x"), Symbol("y")
    >>> diff(sigmoid_sub(x, y), x), diff(sigmoid_sub(x, y), y)
    ((1 - sigmoid(x))*sigmoid(x), -1)
    """

    _fn = "sigmoid_sub"

    def _head(self, x: sp.Expr) -> sp.Expr:
        return sigmoid(x)

    _eval_rewrite_as_sigmoid = _Difference._eval_rewrite_as_Add

    def _eval_rewrite_as_exp(self, x: sp.Expr, y: sp.Expr, **kw: object) -> sp.Expr:
        return 1 / (1 + exp(-x)) - y


class exp_sub(_Difference):
    """:math:`e^x - y`, evaluated in double-double (:func:`symloss.ddouble.exp_sub`).

    >>> from sympy import Symbol, diff
    >>> x, y = Symbol("x"), Symbol("y")
    >>> diff(exp_sub(x, y), x)
    exp(x)
    """

    _fn = "exp_sub"

    def _head(self, x: sp.Expr) -> sp.Expr:
        return exp(x)

    _numpy_fn = "kernels.{fn}"  # float64 where the difference keeps its digits

    _eval_rewrite_as_exp = _Difference._eval_rewrite_as_Add


class log_sub(_Difference):
    """:math:`\\log x - y`: in float64 where it is at least half of ``|log x| + |y|``, else from
    a value good to about 2⁻¹¹⁵ of the terms (:func:`symloss.ddouble.log_sub`), so that it keeps
    its digits next to the root ``y = log x``, where a double-double ``log x`` (2⁻¹⁰⁶ of it)
    does not.

    >>> from sympy import Symbol, diff
    >>> x, y = Symbol("x"), Symbol("y")
    >>> diff(log_sub(x, y), x), diff(log_sub(x, y), y)
    (1/x, -1)
    """

    _fn = "log_sub"

    def _head(self, x: sp.Expr) -> sp.Expr:
        return log(x)

    _numpy_fn = "kernels.{fn}"  # float64 where the difference keeps its digits

    _eval_rewrite_as_log = _Difference._eval_rewrite_as_Add
    _eval_rewrite_as_exp = _Difference._eval_rewrite_as_Add


class accurate(Function):
    """``accurate(e)`` is ``e``; numerically, ``e`` evaluated in double-double arithmetic
    (:mod:`symloss.ddouble`: every +, −, ×, ÷ and primitive on ~106-bit pairs, one rounding at
    the end), for a form whose terms cancel near a root of the exact value where no float64
    form keeps its digits (a value, gradient or Hessian crossing 0).

    Symbolically transparent: its derivative is the inner expression's, it prints as the
    inner expression, and :func:`symloss.algebra.normalize` unwraps it, so a form with it is
    proved equal exactly as without. Where the pair is not finite (beyond double-double's
    range) the plain float64 evaluation of ``e`` answers.

    >>> from sympy import Symbol, diff, exp
    >>> z = Symbol("z")
    >>> diff(accurate(exp(z) - z), z)
    exp(z) - 1
    """

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_number or x.is_Symbol:
            return x
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return S.One

    def _eval_derivative(self, s: sp.Basic) -> sp.Expr:
        return sp.diff(self.args[0], s)  # type: ignore[no-any-return]

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.args[0]._eval_evalf(prec)  # type: ignore[no-any-return]

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real  # type: ignore[no-any-return]

    @property
    def precedence(self) -> int:
        """The inner expression's: a printer parenthesizes the wrapper as it would the sum."""
        from sympy.printing.precedence import precedence

        return precedence(self.args[0])  # type: ignore[no-any-return]

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return printer._print(self.args[0])  # type: ignore[no-any-return]

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(self.args[0])  # type: ignore[attr-defined,no-any-return]

    def _sympystr(self, printer: object) -> str:
        return printer._print(self.args[0])  # type: ignore[attr-defined,no-any-return]

    def _numpycode(self, printer: object) -> str:
        plain = printer._print(self.args[0])  # type: ignore[attr-defined]
        try:
            pair = dd_code(self.args[0], printer._print, "ddouble.",  # type: ignore[attr-defined]
                           lambda c, a, b: f"ddouble.t_where({c}, {a}, {b})",
                           lambda base: printer._print(base.label))  # type: ignore[attr-defined]
        except NotImplementedError:
            return str(plain)
        return _certified(printer, f"ddouble.t_final({pair}, {plain})", self.args[0])

    _scipycode = _numpycode


class power(Function):
    """``power(q, γ)`` is :math:`q^\\gamma` for ``q ≥ 0``, differentiated as
    :math:`\\gamma q^{\\gamma - 1}` rather than SymPy's :math:`\\gamma q^\\gamma / q`.

    The two are equal, but the second is 0·0/0 where ``q`` underflows to 0 (the focal loss's
    modulating factor at confident predictions); the first is finite there for γ ≥ 1.

    >>> from sympy import Symbol, diff
    >>> q, g = Symbol("q", positive=True), Symbol("gamma", positive=True)
    >>> diff(power(q, g), q)
    gamma*power(q, gamma - 1)
    """

    nargs = 2

    @classmethod
    def eval(cls, q: sp.Expr, exponent: sp.Expr) -> sp.Expr | None:
        if exponent.is_zero:
            return S.One
        if exponent == 1:
            return q
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        q, exponent = self.args
        if argindex == 1:
            return exponent * power(q, exponent - 1)
        return power(q, exponent) * sp.log(q)

    def _eval_rewrite_as_Pow(self, q: sp.Expr, exponent: sp.Expr, **kw: object) -> sp.Expr:
        # q^(γ + k), k an integer, as q^γ·q^k (q > 0 where q^γ is taken): SymPy combines
        # powers of a sum only where the exponents are integers, so q^(γ−2)·Q′² and
        # q^γ·(Q′/q)² (the focal loss's evaluated Hessian) then agree term by term
        k, rest = exponent.as_coeff_Add()
        if k.is_Integer and k != 0 and rest != 0:
            return q**rest * q**k
        return q**exponent

    _eval_rewrite_as_exp = _eval_rewrite_as_Pow

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        q, exponent = (printer._print(a) for a in self.args)
        if self.args[0].is_Atom:  # a name such as q needs no parentheses
            return rf"{q}^{{{exponent}}}"
        return rf"\left({q}\right)^{{{exponent}}}"

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(sp.Pow(*self.args, evaluate=False))  # type: ignore[attr-defined]

    def _sympystr(self, printer: object) -> str:
        q, exponent = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        return f"power({q}, {exponent})"

    def _numpycode(self, printer: object) -> str:
        q, exponent = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        return f"numpy.power({q}, {exponent})"

    _scipycode = _numpycode


def dd_code(expr: sp.Expr, leaf: Any, prefix: str, where: Any, row: Any = None) -> str:
    """``expr`` as one nested expression of :mod:`symloss.ddouble`'s pair functions
    (``t_add``, ``t_prod``, ``t_exp``, …, each named ``prefix + name``); ``leaf`` prints an
    input (a Symbol, an Indexed, a condition) in the host printer's language, ``where(c, a, b)``
    selects a pair, ``row`` prints a class-axis array (an IndexedBase) as the row functions
    take it (the NumPy evaluator: the 2-D array; the kernels: the row). A class sum is a
    sum of the row functions' pairs, one per product read at each class, times its
    coefficient: ``Σₖ yₖ log softmax(z)ₖ`` (``t_lsm_dot``; with class weights ``t_lsm_dot2``;
    of log-softmax alone ``t_lsm_sum``); one class's log-softmax is ``t_log_softmax_at``.
    Raises :class:`NotImplementedError` for what has no pair function."""
    unary: dict[type, str] = {sp.exp: "t_exp", sp.log: "t_log", sp.tanh: "t_tanh", sp.sinh: "t_sinh",
                              log1p: "t_log1p",
                              sigmoid: "t_sigmoid", softplus: "t_softplus"}
    binary: dict[type, str] = {sigmoid_pow: "t_sigmoid_pow", sigmoid_sub: "t_sigmoid_sub",
                               exp_sub: "t_exp_sub"}

    def exp_arg(e: Any) -> str | None:
        # eᵘ's u as a pair. (Not y·eᵃ as e^(a + log y), whose expm1 kept 1 − y e^(−z)'s
        # digits next to z = log y: t_xexp's pair product is within a few 2⁻¹⁰⁶ of y·eᵃ, so
        # 1 − y e^(−z) is within a few 2⁻¹⁰⁶·(1 + y e^(−z)) as it was, without a
        # double-double log: what ddouble.certified asks.)
        if isinstance(e, sp.exp):
            return rec(e.args[0])
        return None

    def lift(code: str) -> str:
        return f"{prefix}t_lift({code})"

    def mul(parts: list[str]) -> str:
        # t_prod: a factor may be of any finite size (an exponential, a weight)
        out = parts[0]
        for p in parts[1:]:
            out = f"{prefix}t_prod({out}, {p})"
        return out

    def rows(base: Any) -> str:
        if row is None:
            raise NotImplementedError("a class-axis row outside a class-axis printer")
        return str(row(base))

    def row_sum(keyed: tuple[Any, ...], k: Any) -> str:
        # Σₖ log softmax(z)ₖ times at most two rows read at k: the row functions' pairs
        lsm = [f for f in keyed if isinstance(f, log_softmax)]
        read = [f for f in keyed if isinstance(f, Indexed) and f.indices == (k,)]
        if (len(lsm) != 1 or lsm[0].index != k or len(read) > 2
                or len(lsm) + len(read) != len(keyed)):
            raise NotImplementedError(f"no double-double form for a class sum of {keyed}")
        name = ("t_lsm_sum", "t_lsm_dot", "t_lsm_dot2")[len(read)]
        return f"{prefix}{name}({', '.join([rows(lsm[0].logits), *(rows(f.base) for f in read)])})"

    def class_sum(e: Any) -> str:
        # Σₖ (Σ cⱼ·(a product read at k)): each product's class sum a row function's pair
        # (Σₖ yₖ log softmax(z)ₖ, Σₖ wₖyₖ log softmax(z)ₖ, …), times its coefficient (no k)
        # as a pair; the terms grouped by what they read at k (a coefficient 1 − ε one pair)
        (k, lo, hi), = e.limits
        if (lo, hi) != (S.One, NUM_CLASSES):
            raise NotImplementedError(f"no double-double form for Sum over {lo}..{hi}")
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for term in sp.Add.make_args(sp.expand(e.function)):
            keyed = tuple(sorted((f for f in sp.Mul.make_args(term) if f.has(k)),
                                 key=sp.default_sort_key))
            coeff = sp.Mul(*(f for f in sp.Mul.make_args(term) if not f.has(k)))
            groups.setdefault(keyed, []).append(coeff)
        out = None
        for keyed, coeffs in groups.items():
            c = sp.Add(*coeffs)
            part = row_sum(keyed, k)
            part = part if c == 1 else f"{prefix}t_prod({rec(c)}, {part})"
            out = part if out is None else f"{prefix}t_add({out}, {part})"
        if out is None:
            raise NotImplementedError("an empty class sum")
        return out

    def rec(e: Any) -> str:
        if e.is_Integer or e.is_Float:
            return f"({float(e)!r}, 0.0)"
        if isinstance(e, Sum):
            return class_sum(e)
        if isinstance(e, log_softmax):
            return f"{prefix}t_log_softmax_at({rows(e.logits)}, {leaf(e.index)})"
        if e.is_number:  # 1/3, π, log 2: the constant's two leading float64 parts
            value = sp.N(e, 40)
            hi = float(value)
            return f"({hi!r}, {float(value - sp.Float(hi, 40))!r})"
        if isinstance(e, sp.UnevaluatedExpr):  # a factor kept whole (focal's Q′/Q)
            return rec(e.args[0])
        if e.is_Symbol or isinstance(e, sp.Indexed | KroneckerDelta):  # δ: 0 or 1, exact
            return lift(leaf(e))
        if isinstance(e, sp.Add):
            terms = list(e.args)
            for one in (sp.S.NegativeOne, sp.S.One):
                exps = [t for t in terms if exp_arg(-one * t) is not None]
                if one in terms and len(exps) == 1:
                    # ±(eᵘ − 1) as expm1(u): its relative accuracy where u is tiny
                    rest = [t for t in terms if t is not one and t is not exps[0]]
                    m = f"{prefix}t_expm1({exp_arg(-one * exps[0])})"
                    m = m if one == -1 else f"{prefix}t_neg({m})"
                    return f"{prefix}t_add({m}, {rec(sp.Add(*rest))})" if rest else m
            out = rec(terms[0])
            for t in terms[1:]:
                if t.could_extract_minus_sign():
                    out = f"{prefix}t_sub({out}, {rec(-t)})"
                else:
                    out = f"{prefix}t_add({out}, {rec(t)})"
            return out
        if isinstance(e, sp.Mul):
            coeff, rest = e.as_coeff_Mul()
            if coeff == -1:
                return f"{prefix}t_neg({rec(rest)})"
            num, den, given = [], [], []
            for f in sp.Mul.make_args(e):
                if f.is_Pow and f.exp.is_Integer and f.exp < 0:
                    den.append(rec(f.base ** -f.exp))
                elif f.is_Symbol or isinstance(f, sp.Indexed):
                    given.append(leaf(f))  # a float of any size (a weight): t_scale
                else:
                    num.append(rec(f))
            if given and not num:
                num.append(lift(given.pop(0)))
            top = mul(num) if num else "(1.0, 0.0)"
            for g in given:
                top = f"{prefix}t_scale({g}, {top})"
            return f"{prefix}t_quot({top}, {mul(den)})" if den else top
        if e.is_Pow:
            base, n = e.args
            if n.is_Integer and n > 0:
                return mul([rec(base)] * int(n))
            if n.is_Integer and n < 0:
                return f"{prefix}t_quot((1.0, 0.0), {rec(base ** -n)})"
            return f"{prefix}t_pow({rec(base)}, {rec(n)})"
        if isinstance(e, sp.Piecewise):
            chosen: str | None = None
            for value, cond in reversed(e.args):
                if cond is sp.true and chosen is None:
                    chosen = rec(value)
                    continue
                if chosen is None:
                    raise NotImplementedError("Piecewise without a default")
                chosen = where(leaf(cond), rec(value), chosen)
            if chosen is None:
                raise NotImplementedError("empty Piecewise")
            return chosen
        args = e.args
        if isinstance(e, sp.log) and isinstance(args[0], sp.Add) and sp.S.One in args[0].args:
            return f"{prefix}t_log1p({rec(args[0] - 1)})"  # log(1 + x) as log1p(x)
        if type(e).__name__ == "hypot1":  # √(1 + x²) (symloss.catalog_boosting)
            return f"{prefix}t_hypot1({rec(args[0])})"
        if type(e).__name__ == "hypot1m1":  # √(1 + x²) − 1 (symloss.catalog_boosting)
            return f"{prefix}t_hypot1m1({rec(args[0])})"
        if isinstance(e, clamped_log):  # max(log x, −100), log(1 − p) as log1p(−p)
            complement = e.complement
            inner = (f"{prefix}t_log1p({prefix}t_neg({rec(complement)}))"
                     if complement is not None else f"{prefix}t_log({rec(args[0])})")
            return f"{prefix}t_clamp_min({inner}, -100.0)"
        if isinstance(e, log_sub):  # log x − y good to 2⁻¹¹⁵ of its terms (ddouble.log_sub)
            return f"{prefix}t_log_sub({rec(args[0])}, {rec(args[1])})"
        if type(e).__name__ == "xexp":  # y·eᵃ (symloss.catalog_boosting)
            return f"{prefix}t_xexp({rec(args[0])}, {rec(args[1])})"
        if isinstance(e, sigmoid | softplus | sigmoid_pow):
            # from their shared parts e^(−|x|) and its log1p, printed the same for x and −x:
            # a form that reads σ(±x), softplus(±x), σ(±x)^γ computes each once (fast's
            # statements name every call once)
            x = args[0]
            t = f"{prefix}t_expna({rec(-x if x.could_extract_minus_sign() else x)})"
            if isinstance(e, sigmoid):  # σ(±x) share 1/(1 + e^(−|x|)) too: one division
                return f"{prefix}t_sigmoid_r({rec(x)}, {t}, {prefix}t_recip1p({t}))"
            b = f"{prefix}t_log1p({t})"
            if isinstance(e, softplus):
                return f"{prefix}t_softplus_l({rec(x)}, {b})"
            return f"{prefix}t_sigmoid_pow_l({rec(x)}, {rec(args[1])}, {b})"
        for kind, name in unary.items():
            if isinstance(e, kind):
                return f"{prefix}{name}({rec(args[0])})"
        for kind, name in binary.items():
            if isinstance(e, kind):
                return f"{prefix}{name}({rec(args[0])}, {rec(args[1])})"
        if isinstance(e, power):
            return f"{prefix}t_pow({rec(e.args[0])}, {rec(e.args[1])})"
        raise NotImplementedError(f"no double-double form for {type(e).__name__}")

    return rec(expr)


def _pretty_call(name: str, arg: sp.Expr, printer: object) -> prettyForm:
    inner = printer._print(arg)  # type: ignore[attr-defined]
    return prettyForm(*prettyForm(*inner.parens()).left(name))


def _pretty_indexed(text: str, printer: object) -> prettyForm:
    return printer._print(sp.Symbol(text))  # type: ignore[attr-defined]


class _ClassAxisFunction(Function):
    """Base of the class-axis primitives: arguments ``(z, i, C)``."""

    nargs = 3
    _name = ""
    _pretty_name = ""
    _latex_name = ""

    @property
    def logits(self) -> IndexedBase:
        return self.args[0]  # type: ignore[return-value]

    @property
    def index(self) -> sp.Expr:
        return self.args[1]

    @property
    def classes(self) -> sp.Expr:
        return self.args[2]

    def _dlogit(self, s: sp.Expr) -> sp.Expr | None:
        """The index ``k`` when ``s`` is the logit ``z_k`` of this function's vector."""
        if isinstance(s, Indexed) and s.base == self.logits:
            return s.indices[0]
        return None

    def _eval_derivative(self, s: sp.Expr) -> sp.Expr:
        k = self._dlogit(s)
        if k is None:
            return S.Zero
        return self._d_dlogit(k)

    def _d_dlogit(self, k: sp.Expr) -> sp.Expr:
        raise NotImplementedError

    def _sympystr(self, printer: object) -> str:
        return f"{self._name}({self.logits})[{self.index}]"

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"{self._latex_name}\left({printer._print(self.logits)}\right)_{{{printer._print(self.index)}}}"

    def _pretty(self, printer: object) -> prettyForm:
        name = self._pretty_name or self._name
        return _pretty_indexed(f"{name}({self.logits})_{self.index}", printer)


class softmax(_ClassAxisFunction):
    """:math:`\\operatorname{softmax}(z)_i = e^{z_i} / \\sum_{j=1}^{C} e^{z_j}`.

    >>> from sympy import IndexedBase, diff
    >>> z = IndexedBase("z")
    >>> p = softmax(z, CLASS_INDEX, NUM_CLASSES)
    >>> diff(p, z[SUM_INDEX])
    (KroneckerDelta(i, k) - softmax(z)[k])*softmax(z)[i]
    """

    _name = "softmax"
    _latex_name = r"\operatorname{softmax}"

    def _d_dlogit(self, k: sp.Expr) -> sp.Expr:
        return self * (KroneckerDelta(self.index, k) - softmax(self.logits, k, self.classes))

    def _eval_rewrite_as_exp(self, z: sp.Expr, i: sp.Expr, c: sp.Expr, **kw: object) -> sp.Expr:
        return exp(z[i]) / Sum(exp(z[_J]), (_J, 1, c))  # type: ignore[index]

    def _eval_is_positive(self) -> bool:
        return True

    def _numpycode(self, printer: object) -> str:
        return f"kernels.softmax({printer._print(self.logits)})"  # type: ignore[attr-defined]


class log_softmax(_ClassAxisFunction):
    """:math:`\\log\\operatorname{softmax}(z)_i = z_i - \\log\\sum_{j=1}^{C} e^{z_j}`.

    >>> from sympy import IndexedBase, diff
    >>> z = IndexedBase("z")
    >>> diff(log_softmax(z, SUM_INDEX, NUM_CLASSES), z[CLASS_INDEX])
    KroneckerDelta(i, k) - softmax(z)[i]
    """

    _name = "log_softmax"
    _pretty_name = "log softmax"
    _latex_name = r"\log\operatorname{softmax}"

    def _d_dlogit(self, k: sp.Expr) -> sp.Expr:
        return KroneckerDelta(self.index, k) - softmax(self.logits, k, self.classes)

    def _eval_rewrite_as_exp(self, z: sp.Expr, i: sp.Expr, c: sp.Expr, **kw: object) -> sp.Expr:
        return z[i] - log(Sum(exp(z[_J]), (_J, 1, c)))  # type: ignore[index]

    def _eval_rewrite_as_softmax(self, z: sp.Expr, i: sp.Expr, c: sp.Expr, **kw: object) -> sp.Expr:
        return log(softmax(z, i, c))

    def _numpycode(self, printer: object) -> str:
        return f"kernels.log_softmax({printer._print(self.logits)})"  # type: ignore[attr-defined]


class softmax_complement(_ClassAxisFunction):
    """:math:`1 - \\operatorname{softmax}(z)_i = \\sum_{j \\ne i} \\operatorname{softmax}(z)_j`.

    Symbolically it is just ``1 - softmax``; numerically it is summed over the other classes,
    so it keeps full relative accuracy where ``softmax(z)_i`` rounds to 1.
    """

    _name = "softmax_complement"
    _latex_name = r"\overline{\operatorname{softmax}}"

    def _d_dlogit(self, k: sp.Expr) -> sp.Expr:
        return -softmax(self.logits, self.index, self.classes)._d_dlogit(k)

    def _eval_rewrite_as_softmax(self, z: sp.Expr, i: sp.Expr, c: sp.Expr, **kw: object) -> sp.Expr:
        return 1 - softmax(z, i, c)

    def _numpycode(self, printer: object) -> str:
        return f"kernels.softmax_complement({printer._print(self.logits)})"  # type: ignore[attr-defined]

    def _pretty(self, printer: object) -> prettyForm:
        inner = _pretty_indexed(f"softmax({self.logits})_{self.index}", printer)
        return prettyForm(*prettyForm(*inner.left("1 - ")).parens())

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        z, i = printer._print(self.logits), printer._print(self.index)
        return rf"\left(1 - \operatorname{{softmax}}\left({z}\right)_{{{i}}}\right)"


class softmax_variance(_ClassAxisFunction):
    """:math:`p_i \\sum_{k \\ne i} p_k = p_i (1 - p_i)`, :math:`p = \\operatorname{softmax}(z)`:
    cross-entropy's Hessian diagonal (per unit of target weight).

    As ``softmax·softmax_complement`` in float64 its five roundings cost up to 4 ulp (the
    rounding of ``1 + s``, a sum up to ``C``, is half an ulp of that sum), and the evaluators'
    sums ``s`` (the kernels' chain, NumPy's pairwise ``np.sum``) put them 4 floats apart. It is
    evaluated on pairs instead, :math:`e_i (D - e_i) / D^2` rounded once
    (:func:`symloss.ddouble.np_softmax_variance`, in the compiled kernels
    :func:`~symloss.ddouble.softmax_variance_row_m`): nothing cancels, ``D − eᵢ`` at the
    arg-max being the other classes' sum.
    """

    _name = "softmax_variance"
    _latex_name = r"\operatorname{softmax\_variance}"

    def _d_dlogit(self, k: sp.Expr) -> sp.Expr:
        p, q = softmax(*self.args), softmax_complement(*self.args)
        return p._d_dlogit(k) * q + p * q._d_dlogit(k)

    def _eval_rewrite_as_Sum(self, z: sp.Expr, i: sp.Expr, c: sp.Expr, **kw: object) -> sp.Expr:
        return softmax(z, i, c) * softmax_complement(z, i, c)

    def _eval_rewrite_as_softmax(self, z: sp.Expr, i: sp.Expr, c: sp.Expr, **kw: object) -> sp.Expr:
        return softmax(z, i, c) * (1 - softmax(z, i, c))

    def _numpycode(self, printer: object) -> str:
        return f"ddouble.np_softmax_variance({printer._print(self.logits)})"  # type: ignore[attr-defined]


class softmax_hvp(Function):
    """``softmax_hvp(z, v, i, C)`` is :math:`p_i (v_i - \\sum_k p_k v_k)`,
    :math:`p = \\operatorname{softmax}(z)`: cross-entropy's Hessian-vector product (one
    target's share).

    The bracket cancels wherever :math:`v_i` is near the p-weighted mean of ``v``; its error
    there is that of the probabilities times :math:`\\sum_k p_k |v_k - \\bar v|`, so no float64
    form of ``p`` keeps a float64 result's digits (a nearly uniform ``p`` and ``v = e_0`` cost
    9.8 ulp). float64 results are therefore evaluated in double-double
    (:func:`symloss.ddouble.np_softmax_hvp`; in the compiled kernels the row's pairs from
    :func:`~symloss.ddouble.softmax_hvp_row_m` and :func:`~symloss.ddouble.softmax_hvp_at_m`):
    every ``e^(z_k − m)``, :math:`D = \\sum e`, :math:`W = \\sum_k e_k (c - v_k)` (``c`` the
    ``v`` of the arg-max of ``z``) and :math:`e_i ((v_i - c) + W/D) / D` on ~106-bit pairs,
    rounded once. float32 results take the float64 form :math:`p_i ((v_i - c) + \\sum_k
    p_k (c - v_k))`: its error is 10⁶ times under a float32 ulp except in a cancellation
    deeper than :data:`symloss.ddouble.UNCERTIFIED`, which is NaN and computed exactly.
    """

    nargs = (4, 5)

    def _eval_derivative(self, s: sp.Expr) -> sp.Expr:
        return S.Zero  # only ever differentiated after the Hessian is formed

    def _eval_rewrite_as_Sum(self, z: sp.Expr, v: sp.Expr, i: sp.Expr, c: sp.Expr,
                             scale: sp.Expr = S.One, **kw: object) -> sp.Expr:
        return scale * softmax(z, i, c) * (v[i] - Sum(softmax(z, _J, c) * v[_J], (_J, 1, c)))  # type: ignore[index]

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return printer._print(self.rewrite(Sum))  # type: ignore[no-any-return]

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(self.rewrite(Sum))  # type: ignore[attr-defined,no-any-return]

    def _sympystr(self, printer: object) -> str:
        z, v, i = self.args[:3]
        scale = f"{printer._print(self.args[4])}*" if len(self.args) == 5 else ""  # type: ignore[attr-defined]
        return f"{scale}softmax_hvp({z}, {v})[{i}]"

    def _numpycode(self, printer: object) -> str:
        z, v = (printer._print(a) for a in self.args[:2])  # type: ignore[attr-defined]
        plain = printer._print(self.rewrite(Sum))  # type: ignore[attr-defined]
        # a scale (cross-entropy's total target weight) multiplies the rounded pair before the
        # flush: a product normal where pᵢ(vᵢ − v̄) alone is below the normal range
        scale = printer._print(self.args[4]) if len(self.args) == 5 else None  # type: ignore[attr-defined]
        code = f"ddouble.np_softmax_hvp({z}, {v}, {plain}, {scale})"
        if not getattr(printer, "certify", False):
            return code
        size = f"ddouble.np_softmax_hvp_size({z}, {v})"
        if scale is not None:
            size = f"(numpy.abs({scale}) * {size})"
        return f"ddouble.certified({code}, {size})"


class softmax_sub(Function):
    """``softmax_sub(z, y, i, C)`` is :math:`\\operatorname{softmax}(z)_i \\sum_k y_k - y_i`:
    cross-entropy's gradient for a target distribution ``y`` (mean minus target). The target
    may also be an expression of the class index ``k`` (:data:`SUM_INDEX`), the per-class
    target weight ``a_k`` (``w[k]*y[k]`` with class weights, ``(1 − ε) y_k + ε/C`` with label
    smoothing): :math:`p_i \\sum_k a_k - a_i`.

    Evaluated in double-double (:func:`symloss.ddouble.np_softmax_sub`, and in the compiled
    kernels the row's values :func:`~symloss.ddouble.softmax_sub_row_m` with
    :func:`~symloss.ddouble.softmax_sub_at_m`; float32 results take the float64 form wherever
    it keeps their digits): every ``e^(z_j − m)``, ``D = Σ e``, ``T = Σ y``
    and ``(eᵢ T − yᵢ D)/D`` on ~106-bit pairs, one rounding at the end, so that the result
    keeps its digits where ``pᵢ T ≈ yᵢ`` (a soft target equal to the rounded prediction).
    A target expression is first evaluated as a pair per class (:func:`dd_code`), then
    :func:`~symloss.ddouble.np_softmax_suba` / :func:`~symloss.ddouble.softmax_suba_row_m`.
    """

    nargs = 4

    def target(self, index: sp.Expr) -> sp.Expr:
        """The target (weight) of class ``index``: ``y[index]``, or the expression at it."""
        y = self.args[1]
        if isinstance(y, IndexedBase):
            return y[index]
        return y.xreplace({SUM_INDEX: index})  # type: ignore[no-any-return]

    def _eval_rewrite_as_Sum(self, z: sp.Expr, y: sp.Expr, i: sp.Expr, c: sp.Expr,
                             **kw: object) -> sp.Expr:
        return (softmax(z, i, c) * Sum(self.target(SUM_INDEX), (SUM_INDEX, 1, c))  # type: ignore[index]
                - self.target(i))

    def _eval_derivative(self, s: sp.Basic) -> sp.Expr:
        return sp.diff(self.rewrite(Sum), s)  # type: ignore[no-any-return]

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return printer._print(self.rewrite(Sum))  # type: ignore[no-any-return]

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(self.rewrite(Sum))  # type: ignore[attr-defined,no-any-return]

    def _sympystr(self, printer: object) -> str:
        z, y, i = self.args[:3]
        return f"softmax_sub({z}, {y})[{i}]"

    def _numpycode(self, printer: object) -> str:
        z, y = (printer._print(a) for a in self.args[:2])  # type: ignore[attr-defined]
        plain = printer._print(self.rewrite(Sum))  # type: ignore[attr-defined]
        if not isinstance(self.args[1], IndexedBase):  # the target weights as pairs
            pair = dd_code(self.args[1], printer._print, "ddouble.",  # type: ignore[attr-defined]
                           lambda c, a, b: f"ddouble.t_where({c}, {a}, {b})")
            return _certified(printer, f"ddouble.np_softmax_suba({z}, {pair}, {plain})",
                              self.rewrite(Sum))
        return _certified(printer, f"ddouble.np_softmax_sub({z}, {y}, {plain})",
                          self.rewrite(Sum))


def class_sum(expr: sp.Expr, index: sp.Symbol = SUM_INDEX) -> Sum:
    """:math:`\\sum_{k=1}^{C}` of ``expr`` over the class axis."""
    return Sum(expr, (index, 1, NUM_CLASSES))


class clamped_log(Function):
    """:math:`\\log x` as torch's ``binary_cross_entropy`` evaluates it: clamped at −100.

    Symbolically it is ``log``; the clamp only matters at ``x = 0``, where the loss stays finite.
    """

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return 1 / self.args[0]

    def _eval_rewrite_as_log(self, x: sp.Expr, **kwargs: object) -> sp.Expr:
        return log(x)

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        # as evaluated: max(log x, −100)
        value = log(self.args[0])._eval_evalf(prec)
        if value is None or not value.is_Number:
            return None
        return sp.Max(value, sp.Float(-100, precision=prec))  # type: ignore[no-any-return]

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"\log\left({printer._print(self.args[0])}\right)"

    def _pretty(self, printer: object) -> prettyForm:
        return _pretty_call("log", self.args[0], printer)

    def _sympystr(self, printer: object) -> str:
        return f"log({printer._print(self.args[0])})"  # type: ignore[attr-defined]

    @property
    def complement(self) -> sp.Expr | None:
        """``p`` where the argument is ``1 − p`` (``p`` not a number): then ``log1p(−p)`` is the
        value, with no rounding of ``1 − p`` where ``p`` is tiny (the printed form and
        :mod:`symloss.exact`'s evaluation both read it); else ``None``."""
        rest = sp.expand(1 - self.args[0])
        if rest.could_extract_minus_sign() is False and rest != 0 and not rest.is_number:
            return rest
        return None

    def _numpycode(self, printer: object) -> str:
        rest = self.complement
        if rest is not None:  # log(1 − p) as log1p(−p)
            return f"numpy.maximum(numpy.log1p(-({printer._print(rest)})), -100.0)"  # type: ignore[attr-defined]
        return f"numpy.maximum(numpy.log({printer._print(self.args[0])}), -100.0)"  # type: ignore[attr-defined]

    _scipycode = _numpycode


class clamp_min(Function):
    """``clamp_min(x, lo)`` is ``x`` symbolically and ``max(x, lo)`` numerically (torch's guard)."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return S.One if argindex == 1 else S.Zero

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        # as evaluated: max(x, lo)
        x, lo = (a._eval_evalf(prec) if not a.is_Number else a for a in self.args)
        if x is None or lo is None or not (x.is_Number and lo.is_Number):
            return None
        return sp.Max(x, lo)  # type: ignore[no-any-return]

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        x, lo = (printer._print(a) for a in self.args)
        return rf"\max\left({x}, {lo}\right)"

    def _numpycode(self, printer: object) -> str:
        x, lo = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        return f"numpy.maximum({x}, {lo})"

    _scipycode = _numpycode


class bernoulli_curvature(Function):
    """``bernoulli_curvature(p, y, ε, s)`` is
    :math:`s\\,\\frac{(p - y)^2 + y(1 - y)}{\\max(p(1 - p), \\varepsilon)^2}`, ``s`` 1 when
    left out: the second derivative in ``p`` of the Bernoulli log-loss
    ``−y log p − (1 − y) log(1 − p)`` over torch's guarded variance (binary_cross_entropy's
    Hessian, its weight ``s``).

    Symbolically that expression (``rewrite(clamp_min)``, for the proofs; its derivative and
    printing are the expression's); numerically one rounding of a pair
    (:func:`symloss.ddouble.bernoulli_curvature`, within about half an ulp, the weight inside
    the rounding: :meth:`scaled`), where the float64 form rounds seven times and its two terms
    ≥ 0 keep every rounding (4.2 ulp with a weight).

    >>> from sympy import Symbol
    >>> p, y, w = Symbol("p", positive=True), Symbol("y", real=True), Symbol("w", real=True)
    >>> bernoulli_curvature(p, y, 0.25).rewrite(clamp_min)
    y*(1 - y)/clamp_min(p*(1 - p), 0.25)**2 + (p - y)**2/clamp_min(p*(1 - p), 0.25)**2
    >>> bernoulli_curvature(p, y, 0.25).scaled(w).args[3]
    w
    """

    nargs = (3, 4)

    def _plain(self) -> sp.Expr:
        p, y, eps = self.args[:3]
        guard = clamp_min(p * (1 - p), eps)
        return self._scale() * ((p - y) ** 2 / guard**2 + y * (1 - y) / guard**2)

    def _scale(self) -> sp.Expr:
        return self.args[3] if len(self.args) == 4 else S.One

    def scaled(self, c: sp.Expr) -> bernoulli_curvature:
        """The same form with its scale multiplied by ``c`` (inside the one rounding)."""
        return bernoulli_curvature(*self.args[:3], c * self._scale())

    def _eval_rewrite_as_clamp_min(self, *args: sp.Expr, **kw: object) -> sp.Expr:
        return self._plain()

    _eval_rewrite_as_Add = _eval_rewrite_as_clamp_min

    def _eval_derivative(self, s: sp.Basic) -> sp.Expr:
        return sp.diff(self._plain(), s)  # type: ignore[no-any-return]

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self._plain()._eval_evalf(prec)  # type: ignore[no-any-return]

    def _eval_is_real(self) -> bool | None:
        return True if all(a.is_real for a in self.args) else None

    @property
    def precedence(self) -> int:
        """The expression's: a printer parenthesizes it as it would the sum."""
        from sympy.printing.precedence import precedence

        return precedence(self._plain())  # type: ignore[no-any-return]

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return printer._print(self._plain())  # type: ignore[no-any-return]

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(self._plain())  # type: ignore[attr-defined,no-any-return]

    def _sympystr(self, printer: object) -> str:
        return printer._print(self._plain())  # type: ignore[attr-defined,no-any-return]

    def _mpmathcode(self, printer: object) -> str:
        return str(printer._print(self._plain()))  # type: ignore[attr-defined]

    def _operands(self, printer: object) -> str:
        return ", ".join(printer._print(a) for a in (*self.args[:3], self._scale()))  # type: ignore[attr-defined]

    def _numpycode(self, printer: object) -> str:
        return f"ddouble.bernoulli_curvature({self._operands(printer)})"

    _scipycode = _numpycode

    def _pythoncode(self, printer: object) -> str:
        # the numba kernels' printer (symloss.fast): ddouble's compiled twin, by result dtype
        # (the flavour _F: _m float64, the pair; _v float32, the plain float64 form)
        return f"dd_bernoulli_curvature_F({self._operands(printer)})"


class log1p(_cfunctions.log1p):
    """:math:`\\log(1 + x)`, printed as ``log1p`` (NumPy, ``math``, double-double): its relative
    accuracy where ``x`` is tiny, where ``log(1 + x)`` would round ``1 + x`` first. Reads as
    :math:`\\log(1 + x)`, and rewritten so (``rewrite(exp)``) for the proofs.

    >>> from sympy import Symbol, diff
    >>> x = Symbol("x", real=True)
    >>> diff(log1p(x), x), log1p(x).rewrite(exp)
    (1/(x + 1), log(x + 1))
    """

    def _eval_rewrite_as_exp(self, x: sp.Expr, **kwargs: object) -> sp.Expr:
        return log(1 + x)

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"\log\left(1 + {printer._print(self.args[0])}\right)"

    def _pretty(self, printer: object) -> prettyForm:
        inner = printer._print(self.args[0])  # type: ignore[attr-defined]
        inner = prettyForm(*prettyForm(*inner.left("1 + ")).parens())
        return prettyForm(*inner.left("log"))


class off_target(Function):
    """``off_target(y_k, e)`` is :math:`(1 - y_k)\\,e`: a class term that a one-hot target's own
    class drops (a margin loss's sum over the classes other than the target's).

    Symbolically the product (``rewrite(exp)``, for the proofs); one opaque term for the class
    sums, so that a class-index target's ``y_k = δ_kt`` is not distributed into
    ``Σ_k e_k − e_t`` (which cancels where the other classes' terms are small): printed as
    ``(1 − y_k)·e`` per class, exactly 0 for the target's class.

    >>> from sympy import Symbol, exp
    >>> y, e = Symbol("y"), Symbol("e")
    >>> off_target(y, e).rewrite(exp)
    e*(1 - y)
    """

    nargs = 2

    def _eval_rewrite_as_exp(self, y: sp.Expr, e: sp.Expr, **kwargs: object) -> sp.Expr:
        return (1 - y) * e

    def _eval_derivative(self, s: sp.Basic) -> sp.Expr:
        return sp.diff(self.rewrite(exp), s)  # type: ignore[no-any-return]

    def _eval_is_real(self) -> bool | None:
        return True if all(a.is_real for a in self.args) else None

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return printer._print(sp.Mul(1 - self.args[0], self.args[1], evaluate=False))  # type: ignore[no-any-return]

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(sp.Mul(1 - self.args[0], self.args[1], evaluate=False))  # type: ignore[attr-defined,no-any-return]

    def _sympystr(self, printer: object) -> str:
        y, e = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        return f"(1 - {y})*({e})"

    def _numpycode(self, printer: object) -> str:
        y, e = (printer._print(a) for a in self.args)  # type: ignore[attr-defined]
        return f"((1.0 - ({y})) * ({e}))"

    _scipycode = _numpycode
    _pythoncode = _numpycode


class fsum(Function):
    """``fsum(a, b, c)`` is :math:`a + b + c`, evaluated as the exact sum rounded once
    (:func:`symloss.ddouble.fsum3`, as ``math.fsum``): a margin ``m − x_t + x_k`` keeps its digits
    next to its kink, where the float sum keeps the rounding of ``m − x_t``.

    Symbolically the sum (``rewrite(exp)``, for the proofs); it prints as the sum.

    >>> from sympy import Symbol, diff, exp
    >>> a, b, c = Symbol("a"), Symbol("b"), Symbol("c")
    >>> fsum(a, -b, c).rewrite(exp), diff(fsum(a, -b, c), b)
    (a - b + c, -1)
    """

    nargs = 3

    def _eval_rewrite_as_exp(self, *args: sp.Expr, **kwargs: object) -> sp.Expr:
        return sp.Add(*args)

    def _eval_derivative(self, s: sp.Basic) -> sp.Expr:
        return sp.diff(sp.Add(*self.args), s)  # type: ignore[no-any-return]

    def _eval_is_real(self) -> bool | None:
        return True if all(a.is_real for a in self.args) else None

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return printer._print(sp.Add(*self.args))  # type: ignore[no-any-return]

    def _pretty(self, printer: object) -> prettyForm:
        return printer._print(sp.Add(*self.args))  # type: ignore[attr-defined,no-any-return]

    def _sympystr(self, printer: object) -> str:
        return printer._print(sp.Add(*self.args))  # type: ignore[attr-defined,no-any-return]

    def _numpycode(self, printer: object) -> str:
        a, b, c = (printer._print(x) for x in self.args)  # type: ignore[attr-defined]
        return f"ddouble.fsum3({a}, {b}, {c})"

    _scipycode = _numpycode

    def _pythoncode(self, printer: object) -> str:
        # the numba kernels' printer (symloss.fast): ddouble's compiled twin
        a, b, c = (printer._print(x) for x in self.args)  # type: ignore[attr-defined]
        return f"dd_fsum3({a}, {b}, {c})"
