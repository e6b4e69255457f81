"""The NumPy evaluator: the derived expressions printed for NumPy, one array call per operation.

The per-element loss and the forms of the gradient (:func:`symloss.layout.forms`) are printed
by SymPy's NumPy printer (each primitive carries its own stable printing) and compiled with
``lambdify``. Everything torch does *around* the per-element math -- shapes, the class axis,
targets, ``ignore_index``, weights, denominators and reductions -- is :mod:`symloss.layout`'s:
this module gets a :class:`~symloss.layout.Layout` and returns per-element results in its
kernel layout.

It is the fallback where numba is missing or turned off (:func:`symloss.fast.disabled`). The
arithmetic is float64 for every input dtype, as in the numba kernels, and the same form is
chosen for the same element, so the two evaluators agree (``tests/test_fast.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
from sympy.printing.numpy import SciPyPrinter

from . import ddouble, kernels
from .algebra import (
    compared_operands,
    magnitude,
    print_with_steps,
    printed_comparison,
    printed_ratios,
    ratio_powers,
    reduce_sums,
)
from .layout import Layout, Numeric, expression, finish
from .primitives import accurate, log_softmax, product_of_inputs, sigmoid, softplus

if TYPE_CHECKING:
    from .derive import Derivation

__all__ = ["Numeric", "NumpyEvaluator", "compile_expr"]

#: The printed code's names. ``scipy`` is added only to a function whose code reads it (a loss
#: of the user's own with a special function, e.g. ``erf``): importing ``scipy.special`` costs
#: 0.1-0.3 s, most of the NumPy evaluator's first call, and no catalogue loss prints it.
_NAMESPACE = {"numpy": np, "kernels": kernels, "ddouble": ddouble}


class _Printer(SciPyPrinter):
    """SciPy printer that also knows the class axis: ``z[k]`` is the array ``z`` (class axis
    last) and ``Σ_k`` is a sum over that axis, kept as a length-1 axis so it broadcasts."""

    #: The relations of the Piecewise being printed decided exactly (algebra.step_relations).
    _steps: frozenset[sp.Basic] = frozenset()

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        return self._print(expr.base.label)

    def _print_Mul(self, expr: sp.Mul) -> str:
        # 0 · log p = 0, the convention of entropy (torch's nll_loss only gathers the target
        # class): a class of zero target weight adds nothing, even where log p = −inf.
        # softplus(x) = −log σ(−x) is a log too: 0 · softplus(±inf) = 0 (BCE of a hard label
        # at an infinite logit is 0 for the class it does not take, as its limit).
        logs = [f for f in expr.args if isinstance(f, log_softmax | softplus)]
        if len(logs) == 1:
            weight = sp.Mul(*(f for f in expr.args if f is not logs[0]))
            return f"kernels.xlog({self._print(weight)}, {self._print(logs[0])})"
        # xⁿ·c⁻ⁿ as (x/c)ⁿ: no under/overflow of xⁿ alone
        return printed_ratios(expr, self._print) or str(super()._print_Mul(expr))

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # NaN in, NaN out: a comparison with NaN is False, so numpy.select would fall through
        # to the last branch (0 for a hinge). NaN in a condition's operands gives NaN, as
        # torch's clamp_min does for the value.
        text = print_with_steps(self, expr, super()._print_Piecewise)
        operands = compared_operands(expr)
        if not operands:
            return text
        tests = " | ".join(f"numpy.isnan({self._print(side)})" for side in operands)
        return f"numpy.where({tests}, numpy.nan, {text})"

    def _print_Relational(self, expr: sp.Expr) -> str:
        # a sum of two inputs against a threshold: compared exactly (algebra.exact_comparison)
        if expr in self._steps:
            return (printed_comparison(expr, self._print, "kernels.")
                    or str(super()._print_Relational(expr)))
        return str(super()._print_Relational(expr))

    def _print_tanh(self, expr: sp.Expr) -> str:
        # within 0.5 ulp (libm's: 2): the numba kernels' tanh_m is within 0.5 + 2⁻⁷
        return f"ddouble.tanh({self._print(expr.args[0])})"

    def _print__RatioPow(self, expr: sp.Expr) -> str:
        x, c, n = expr.args
        return f"((({self._print(x)}) / ({self._print(c)})) ** {int(n)})"

    def _print_Sum(self, expr: sp.Sum) -> str:
        if len(expr.limits) != 1:
            raise NotImplementedError("only single sums over the class axis print")
        return f"kernels.class_sum({self._print(expr.function)})"  # compensated sum


class _CertifyingPrinter(_Printer):
    certify = True

    def certified(self, code: str, inner: sp.Expr) -> str:
        """``code``, a double-double evaluation of ``inner``, as NaN where it cancelled beyond
        what its pair can vouch for (:func:`symloss.ddouble.certified`, against the magnitude of
        ``inner``'s terms); :mod:`symloss.exact` recomputes those elements."""
        return f"ddouble.certified({code}, {self._print(magnitude(inner, pairs=True))})"


def compile_expr(expr: sp.Expr, args: list[sp.Basic], certify: bool = False) -> Callable[..., Any]:
    """Compile ``expr`` to a NumPy function of ``args`` (Symbols or IndexedBases, by name);
    with ``certify``, a double-double result too cancelled to trust is NaN
    (:func:`symloss.ddouble.certified`), for :mod:`symloss.exact` to recompute."""
    expr = reduce_sums(expr, expand=False)  # keep the stable forms as they are written
    symbols = [sp.Symbol(str(a.label)) if isinstance(a, sp.IndexedBase) else a for a in args]
    renamed = expr.subs(
        {a: s for a, s in zip(args, symbols, strict=True) if not isinstance(a, sp.IndexedBase)}
    )
    # Not modules=[..., "numpy"]: that runs ``from numpy import *`` once per process (0.1-0.3 s:
    # it imports numpy.testing, f2py, ma, ...); the printer qualifies every name it writes.
    fn = sp.lambdify(symbols, renamed, modules=[_NAMESPACE],
                     printer=_CertifyingPrinter if certify else _Printer, cse=_cse)
    if "scipy" in fn.__code__.co_names:  # its own globals: lambdify's namespace of this call
        import scipy.special

        fn.__globals__["scipy"] = scipy
    return fn  # type: ignore[no-any-return]


def _cse(expr: Any) -> tuple[list[tuple[sp.Symbol, sp.Expr]], Any]:
    """SymPy's ``cse``, blind to the inside of :class:`~symloss.primitives.accurate` (a common
    subexpression taken out of it would be evaluated in float64, not in its double-double) and
    of σ/softplus of a product of inputs (see :func:`symloss.primitives.product_of_inputs`)."""
    hidden: dict[sp.Dummy, sp.Expr] = {}

    def hide(e: sp.Expr) -> sp.Dummy:
        d = sp.Dummy("accurate")
        hidden[d] = e
        return d

    # inside accurate(), and σ/softplus of a product of two inputs (corrected by the product's
    # rounding error: a common y·z taken out would hide the product from the printer); from
    # the outside in: accurate(softplus(−y·z)) hidden inside first was accurate(Dummy), which
    # is the Dummy (accurate of a symbol is the symbol), and its value was printed plain
    def veil(e: sp.Basic) -> sp.Basic:
        if isinstance(e, accurate) or (isinstance(e, sigmoid | softplus)
                                       and product_of_inputs(e.args[0]) is not None):
            return hide(e)
        if not e.args:
            return e
        return e.func(*(veil(a) for a in e.args))

    veiled = veil(sp.sympify(expr))
    # xⁿ·c⁻ⁿ kept one quotient (a common c⁻ⁿ taken out would be xⁿ·x0 again: see _RatioPow)
    veiled = veiled.replace(
        lambda e: isinstance(e, sp.Mul) and ratio_powers(e) is not None,
        lambda e: ratio_powers(e)[1] * sp.Mul(*(_RatioPow(x, c, n)  # type: ignore[index]
                                                for x, c, n in ratio_powers(e)[0])))  # type: ignore[index]
    subs, reduced = sp.cse(veiled, list=False)

    def unveiled(e: sp.Expr) -> sp.Expr:
        # a hidden part may hold another (σ(y·z) inside accurate(y²σ(y·z)σ(−y·z)))
        while e.atoms(sp.Dummy) & hidden.keys():
            e = e.xreplace(hidden)
        return e

    return [(s, unveiled(v)) for s, v in subs], unveiled(sp.sympify(reduced))


class _RatioPow(sp.Function):
    """``(x/c)ⁿ``, printed as one quotient raised to ``n`` (:func:`symloss.algebra.ratio_powers`);
    only ever inside :func:`_cse`'s printing."""

    nargs = 3


def _direction_symbol(derivation: Derivation) -> sp.Basic:
    return sp.IndexedBase("v") if derivation.declaration.class_axis else sp.Symbol("v", real=True)


class NumpyEvaluator:
    """The compiled NumPy functions of one derivation; each compiled on first use."""

    def __init__(self, derivation: Derivation) -> None:
        self.derivation = derivation
        self.names = list(derivation.declaration.symbols)
        self._args = [derivation.declaration.symbols[n] for n in self.names]
        self._compiled: dict[str, Callable[..., Any]] = {}

    def _kernel(self, what: str) -> Callable[..., Any]:
        """``loss``, ``grad_hard``, ``grad_soft``, ``hvp``, ``hess`` or ``wrt:<name>``."""
        if what not in self._compiled:
            d = self.derivation
            args = self._args
            if what.startswith("wrt:"):  # the raw sympy.diff, which keeps torch's guards (clamp_min)
                declared = d.declaration
                expr = declared.substitute_definitions(
                    sp.diff(declared.loss, declared.symbols[what.removeprefix("wrt:")]))
            else:
                expr = expression(d, what)
                if what == "grad_soft" and expr == expression(d, "grad_hard"):
                    self._compiled[what] = self._kernel("grad_hard")
                    return self._compiled[what]
                if what == "hvp":
                    args = [*args, _direction_symbol(d)]
            self._compiled[what] = compile_expr(expr, args, certify=not what.startswith("wrt:"))
        return self._compiled[what]

    # ------------------------------------------------------------------ values
    def _values(self, layout: Layout) -> dict[str, Any]:
        """The arrays by symbol name, float64, as the printed expressions take them."""
        values: dict[str, Any] = {
            n: np.asarray(a, dtype=np.float64) for n, a in layout.arrays.items()
        }
        values.update({n: np.float64(v) for n, v in layout.scalars.items()})
        if layout.family == "class_axis":
            z = values["input"]
            values["num_classes"] = z.shape[1]
            if layout.labels is not None and layout.valid is not None:
                # class indices: the one-hot rows (0 where ignored)
                y = np.zeros(z.shape)
                rows = np.flatnonzero(layout.valid)
                y[rows, layout.labels[rows]] = 1.0
                values["target"] = y
        return values

    def _run(self, what: str, values: Mapping[str, Any], extra: tuple[Any, ...] = ()) -> np.ndarray:
        kernel = self._kernel(what)
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            return np.asarray(kernel(*(values[n] for n in self.names), *extra), dtype=np.float64)

    def _soft(self, layout: Layout, values: Mapping[str, Any]) -> np.ndarray | None:
        """Where the soft form is evaluated (``None``: nowhere); by row on a class axis whose
        row is one distribution (a one-hot row is a class index), by element where each class
        is a label of its own (multi-hot targets: multilabel_soft_margin_loss)."""
        if layout.family == "class_axis" and layout.labels is not None:
            return None
        y = values["target"]
        soft = (y != 0) & (y != 1)
        if layout.family == "class_axis" and not self.derivation.spec.multi_hot_targets:
            soft = np.any(soft, axis=-1, keepdims=True)
        return soft if np.any(soft) else None

    def _finish(self, layout: Layout, raw: np.ndarray, divide: bool,
                rescued: bool = True) -> np.ndarray:
        """Broadcast to the layout's shape, divide by the mean's denominator, zero the ignored
        (``rescued``: symloss.exact recomputes the NaN elements after)."""
        out = np.broadcast_to(raw, layout.arrays["input"].shape)
        if layout.family == "elementwise":  # the layout's rule of the last rounding
            return finish(out, layout.divisor if divide else 1.0, rescued)
        if divide:
            with np.errstate(divide="ignore", invalid="ignore", under="ignore", over="ignore"):
                out = out / np.float64(layout.divisor)
        if layout.valid is not None:
            # Reduce, then mask: an ignored row's derivative is 0 even when every row is
            # ignored (torch never writes it), not 0/0.
            out = np.where(layout.valid[:, None], out, 0.0)
        return np.array(out, dtype=np.float64)

    # ------------------------------------------------------------------ results
    def loss(self, layout: Layout) -> np.ndarray:
        """Per-element (class axis: per-row) float64 losses, 0 for an ignored row."""
        raw = self._run("loss", self._values(layout))
        if layout.family == "elementwise":
            return finish(np.broadcast_to(raw, layout.arrays["input"].shape), 1.0)
        per_row = np.broadcast_to(raw, (layout.n_rows, 1))[:, 0]
        if layout.valid is not None:
            per_row = np.where(layout.valid, per_row, 0.0)
        return np.array(per_row, dtype=np.float64)

    def grad(self, layout: Layout) -> np.ndarray:
        """∂(reduced loss)/∂input per element, float64, in the kernel layout."""
        values = self._values(layout)
        raw = self._run("grad_hard", values)
        soft = self._soft(layout, values)
        if soft is not None and self._kernel("grad_soft") is not self._kernel("grad_hard"):
            raw = np.where(soft, self._run("grad_soft", values), raw)
        return self._finish(layout, raw, divide=True)

    def hvp(self, layout: Layout, v: np.ndarray) -> np.ndarray:
        """The Hessian of the reduced loss times ``v`` (kernel layout), float64."""
        values = self._values(layout)
        raw = self._run("hvp", values, (np.asarray(v, dtype=np.float64),))
        return self._finish(layout, raw, divide=True)

    def hess(self, layout: Layout) -> np.ndarray:
        """The unreduced diagonal of the Hessian, per element (the reduction is ignored)."""
        return self._finish(layout, self._run("hess", self._values(layout)), divide=False)

    def grad_wrt(self, layout: Layout, wrt: str) -> np.ndarray:
        """∂(reduced loss)/∂``wrt`` per element of the input's layout, float64."""
        return self._finish(layout, self._run(f"wrt:{wrt}", self._values(layout)), divide=True,
                            rescued=False)
