"""The numba evaluator: the derived expressions compiled to fused loops, for every loss.

:mod:`symloss.layout` lays the arrays out and says which form is evaluated where
(:func:`symloss.layout.forms`); here the same SymPy expressions the NumPy evaluator prints are
printed as the body of one loop that reads each input once and writes each output once:

* element-wise losses: one loop over the flat arrays, ``out[j] = expr / divisor``;
* class-axis losses: one pass per block of rows that finds each row's max and
  ``s = Σ_{j ≠ argmax} exp(z_j − m)`` (the stable parts of :mod:`symloss.kernels`), then writes
  the row. Class-index targets are substituted symbolically (``y_k = δ(k, t)``) and the sums
  over ``k`` reduced by SymPy before printing, so no one-hot array is ever built.

Every catalogue loss (and any loss added later) gets its kernels this way: nothing lists which
losses are "fast". The kernels answer at every size -- serial below :data:`PARALLEL_MIN`
elements, parallel above, the same arithmetic either way -- so a result never depends on the
array's size. Arithmetic is float64 whatever the input dtype, without fast-math (not even FMA
contraction), as in the NumPy evaluator; the result is rounded once to the input's dtype. For
float32 the exponential is :func:`symloss._fastmath.exp_v` (vectorized, relative error < 6e-11);
for float64 :func:`symloss._fastmath.exp_m` (vectorized, within 0.52 ulp; in a float64 kernel's
branch-free pass over label arms the ``*_w`` helpers, with fdlibm's log1p, vectorize too).

numba is a core dependency. Where it is missing, or for an expression the printer does not
handle, :func:`build` returns ``None`` and the NumPy evaluator answers, for that derivation at
every size. ``SYMLOSS_FAST=0`` (or :func:`disabled`) forces the NumPy evaluator.

Compiled kernels are cached on disk (numba ``cache=True``) in ``$SYMLOSS_CACHE_DIR`` or
``~/.cache/symloss``: a kernel compiles once per dtype and serial/parallel variant, on first use;
later processes load the machine code. A serial kernel is also saved as object code that a later
process links without importing numba (:mod:`symloss.native`: a warm first call in ~0.07 s
instead of ~1.1 s); its module is imported only where that is not possible.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import operator
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from . import cache, native
from ._statements import LATER, LATER_END, later, lower
from .algebra import (
    compared_operands,
    exp_terms,
    magnitude,
    modulated_slope,
    print_with_steps,
    printed_comparison,
    printed_ratios,
    reduce_sums,
    rounding_bound,
    scaled_difference,
    sigmoid_curvature,
    soft_modulated_slope,
)
from .layout import ARRAY_OPTIONS, Layout, expression, forms
from .primitives import (
    CLASS_INDEX,
    NUM_CLASSES,
    SUM_INDEX,
    dd_code,
    log_sub,
    product_of_inputs,
    sigmoid_pow_large,
    softmax,
    softmax_hvp,
    softmax_sub,
    softmax_variance,
)

if TYPE_CHECKING:
    from .derive import Derivation

__all__ = ["MIN_SIZE", "FastKernels", "available", "build", "disabled", "enabled", "worth_it"]

_ENABLED = os.environ.get("SYMLOSS_FAST", "1").strip().lower() not in ("0", "false", "no", "off")
#: Why the last :func:`build` returned ``None`` (for diagnostics and the benchmark's notes).
last_reason: str | None = None


def available() -> bool:
    """Whether numba can be imported (the ``[fast]`` extra is installed)."""
    return importlib.util.find_spec("numba") is not None


def enabled() -> bool:
    """Whether the fast path is used when available (``SYMLOSS_FAST=0`` turns it off)."""
    return _ENABLED


#: Below this many input elements the NumPy evaluator would answer. 0: the numba kernels
#: answer at every size (serial below :data:`PARALLEL_MIN`), so one call never gives another
#: answer than the same call on a larger array. Kept settable for experiments.
MIN_SIZE = 0


def worth_it(derivation: Derivation, input: Any) -> bool:
    """Whether a call with ``input`` should try the numba kernels (cheap: imports nothing)."""
    return _ENABLED and (MIN_SIZE == 0 or int(np.size(input)) >= MIN_SIZE)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within the block, every ``loss_fn``/``grad_fn`` takes the NumPy path."""
    global _ENABLED
    before, _ENABLED = _ENABLED, False
    try:
        yield
    finally:
        _ENABLED = before


class _Unsupported(Exception):
    """The generator does not handle this expression; the NumPy path will."""


def _where(c: str, a: str, b: str) -> str:
    """A pair selected by a printed condition (:func:`~symloss.primitives.dd_code`'s ``where``)."""
    return f"({a} if {c} else {b})"


class _Printer(PythonCodePrinter):
    """Prints one scalar float64 expression of the loop variables of a generated kernel.

    ``names`` maps Symbols to the code for their value; ``indexed`` maps IndexedBase labels to
    a function of the printed index. ``_F`` in a helper name is replaced by the flavour.
    """

    def __init__(self, names: Mapping[sp.Basic, str], indexed: Mapping[str, Callable[[str], str]],
                 logits: str | None = None, rows: Mapping[str, str] | None = None,
                 label: str | None = None, certify: bool = False,
                 vectors: Mapping[str, str] | None = None,
                 per_class: frozenset[sp.Basic] = frozenset(),
                 tables: dict[str, int] | None = None, first_table: int = 0) -> None:
        super().__init__({"strict": True, "fully_qualified_modules": True})
        #: An element-wise kernel over flattened ``rows × C`` elements: the symbols of its
        #: per-class arrays, and its tables of per-class scale pairs (:meth:`_scale_pair`),
        #: shared by the printers of one kernel module, numbered from ``first_table``
        self.per_class = per_class
        self.tables = tables
        self.first_table = first_table
        #: IndexedBase label -> its 1-D array, one value per class (the class weights)
        self.vectors = vectors or {}
        self.label = label  # the row's class index variable (class-index targets)
        self.names = names
        self.indexed = indexed
        self.logits = logits
        self.rows = rows or {}  # IndexedBase label -> its 2-D array (one row per row of z)
        self.hoisted: list[tuple[str, str, str]] = []  # (accumulator, index, body)
        self.dots: dict[str, str] = {}  # accumulator of Σ_k softmax_k·x_k -> x's 2-D array
        #: Row values already hoisted, by the expression they stand for: a sum (written
        #: twice, accumulated once), a softmax_sub / softmax_hvp row, a split sum's pair
        #: ``Tuple(a, b)``, a per-row scale ``Tuple(row_value, e)``.
        self._sums: dict[sp.Basic, str] = {}
        #: The sums printed within :meth:`_lanes` (a bound's or a fallback's), and whether
        #: printing is within it.
        self._lane_sums: dict[sp.Sum, str] = {}
        self._in_lanes = False
        self._steps: frozenset[sp.Basic] = frozenset()  # decided exactly (step_relations)
        #: A double-double result too cancelled to trust is NaN (element-wise kernels, whose
        #: NaN elements symloss.exact recomputes; ddouble.UNCERTIFIED).
        self.certify = certify

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr in self.names:
            return self.names[expr]
        raise _Unsupported(f"free symbol {expr}")

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        label = str(expr.base.label)
        if label not in self.indexed:
            raise _Unsupported(f"indexed {label}")
        return self.indexed[label](self._print(expr.indices[0]))

    def _print_Integer(self, expr: sp.Integer) -> str:
        if abs(int(expr)) <= 2**53:  # exact in float64, and an int64 literal for numba
            return str(int(expr))
        return self._print_exact_number(expr)

    def _print_Rational(self, expr: sp.Rational) -> str:
        if max(abs(int(expr.p)), int(expr.q)) <= 2**53:
            return f"{int(expr.p)}/{int(expr.q)}"
        return self._print_exact_number(expr)

    @staticmethod
    def _print_exact_number(expr: sp.Rational) -> str:
        """A number beyond int64 as the nearest float64 (Python's int/int rounds once), as
        NumPy does with a Python int in float arithmetic; past float64's range, ±inf."""
        try:
            return repr(int(expr.p) / int(expr.q))
        except OverflowError:
            return "math.inf" if expr > 0 else "-math.inf"

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> str:
        a, b = (self._print(x) for x in expr.args)
        return f"(1.0 if {a} == {b} else 0.0)"

    def _print_exp(self, expr: sp.Expr) -> str:
        return f"exp_F({self._print(expr.args[0])})"

    def _print_Mul(self, expr: sp.Mul) -> str:
        # 0 · softplus(±inf) = 0, as on the NumPy path (symloss.numeric's printer)
        logs = [f for f in expr.args if type(f).__name__ == "softplus"]
        if len(logs) == 1:
            weight = self._print(sp.Mul(*(f for f in expr.args if f is not logs[0])))
            return f"({weight}) * ({self._print(logs[0])} if {weight} != 0.0 else 0.0)"
        # xⁿ·c⁻ⁿ as (x/c)ⁿ: no under/overflow of xⁿ alone
        return printed_ratios(expr, self._print) or str(super()._print_Mul(expr))

    def _product(self, arg: sp.Expr) -> tuple[str, str] | None:
        """``(p, err)``: the printed product and its exact rounding error, where ``arg`` is a
        product of two inputs (``algebra.product_of_inputs``)."""
        pair = product_of_inputs(arg)
        if pair is None:
            return None
        a, b = (self._print(x) for x in pair)
        return f"(({a}) * ({b}))", f"prod_err({a}, {b})"

    def _expna_product(self, arg: sp.Expr) -> str:
        """``e^(−|p|)`` of a product of two inputs (:meth:`_product`), printed from the
        factors without their signs (|fl(a·b)| = fl(|a|·|b|)): σ(±p) and softplus(±p) share
        one exponential, as :meth:`_expna` shares it between σ(±x)."""
        pair = product_of_inputs(arg)
        assert pair is not None
        a, b = (self._print(-x if x.could_extract_minus_sign() else x) for x in pair)
        return f"expna_F(({a}) * ({b}))"

    def _print_sigmoid(self, expr: sp.Expr) -> str:
        product = self._product(expr.args[0])
        if product is not None:  # σ(p + e) = σ(p)(1 + σ(−p)e) to first order
            p, err = product
            t = self._expna_product(expr.args[0])
            return f"(sigmoid_e_F({p}, {t}) * (1.0 + sigmoid_e_F(-{p}, {t}) * {err}))"
        x = self._print(expr.args[0])
        return f"sigmoid_e_F({x}, {self._expna(expr.args[0])})"

    def _expna(self, x: sp.Expr) -> str:
        """``e^(−|x|)`` printed from ``x`` without its sign, so that ``x`` and ``−x`` print
        the same call: σ(±x), softplus(±x), σ(±x)^γ share it (``_fastmath.expna_m``)."""
        return f"expna_F({self._print(-x if x.could_extract_minus_sign() else x)})"

    def _print_softplus(self, expr: sp.Expr) -> str:
        product = self._product(expr.args[0])
        if product is not None:  # softplus(p + e) = softplus(p) + σ(p)e to first order
            p, err = product
            t = self._expna_product(expr.args[0])
            return f"(softplus_l_F({p}, log1p_F({t})) + sigmoid_e_F({p}, {t}) * {err})"
        x = self._print(expr.args[0])
        return f"softplus_l_F({x}, log1p_F({self._expna(expr.args[0])}))"

    def _print_sigmoid_pow(self, expr: sp.Expr) -> str:
        # σ(x)^γ = e^(−γ softplus(−x)): log space, no 0^(γ−1) where σ(x) underflows; the
        # exponent as an exact pair (e^u amplifies u's rounding |u|-fold), see sigmoid_pow_m.
        x, exponent = (self._print(a) for a in expr.args)
        # sigmoid_pow_large: log1p(e^(−|x|)) to ~2⁻⁶⁶ in the exponent (_fastmath.sigmoid_pow_lb_m)
        helper = "sigmoid_pow_lb" if isinstance(expr, sigmoid_pow_large) else "sigmoid_pow_l"
        return f"{helper}_F({x}, {exponent}, log1p_F({self._expna(expr.args[0])}))"

    # SymPy's printers skip a parent's method for a renamed Function subclass: named here
    _print_sigmoid_pow_large = _print_sigmoid_pow

    def _float_first(self, inner: sp.Expr, exact: str, test: str = "fits_F",
                     bound: sp.Expr | None = None) -> str:
        """``inner`` in float64 where the flavour's ``test`` says its cancellation leaves the
        result's digits (see ``_fastmath.fits_v``), else ``exact`` (double-double): the float
        form's magnitude ``M`` is ``inner`` with every sum's terms taken in absolute value.
        With ``bound`` (``K``: the float form rounds by at most ``K·2⁻⁵³·M``,
        ``algebra.rounding_bound``) the test is ``fitsk_F(plain, M, K·2⁻¹⁹)``: float32
        results evaluated with libm's helpers then keep the float form wherever ``|plain| ≥
        K·2⁻¹⁹·M`` (``_fastmath.fitsk32``), not only where it cancels by under 2⁶."""
        plain, size = self._print(inner), self._print(magnitude(inner))
        if self.certify:  # too cancelled even in double-double: NaN, for symloss.exact
            exact = f"certified({exact}, {self._print(magnitude(inner, pairs=True))}, flag)"
        if bound is not None:
            k = self._print(sp.Mul(bound, sp.Rational(1, 2**19)))
            test_call = f"fitsk_F({plain}, {size}, {k})"
        else:
            test_call = f"{test}({plain}, {size})"
        # the rounding bound with libm's helpers, also where it is a value per element (eᵃ of
        # a computed a): a float32 kernel's second pass takes Ziv's test where the form is its
        # whole result (_fastmath.fitszd32, _ziv_pass2); elsewhere the wrapper is its test
        known = bound if bound is not None else rounding_bound(inner, computed=True)
        if known is not None:
            k = self._print(sp.Mul(known, sp.Rational(1, 2**19)))
            test_call = f"fitsz_F({test_call}, {plain}, {size}, {k})"
        return f"(({plain}) if {test_call} else {exact})"

    def _row_buffer(self) -> str:
        # The row functions leave every class's double-double result in their own buffer
        # (lbuf, lbuf1, …: a second softmax_sub/softmax_hvp of the same row keeps the first's).
        rows = sum(isinstance(e, (softmax_sub, softmax_hvp, softmax_variance)) for e in self._sums)
        return f"lbuf{rows}" if rows else "lbuf"

    def _print_softmax_hvp(self, expr: sp.Expr) -> str:
        # Per row: c (the v of z's arg-max) and, for float64 results, every class's value in
        # lbuf (the first tier _fastmath.softmax_hvp_qb_m, once per block of rows, from the exp
        # pass's pairs; else ddouble.softmax_hvp_row_F, its pairs 1/D and W/D, in dbuf:
        # _row_values); the float64
        # spread Σ pₖ(c − vₖ) and the terms' size Σ pₖ|c − vₖ| as class sums. Per class: the
        # float64 form pᵢ((vᵢ − c) + spread) where it keeps a float32 result's digits (fits_v;
        # fits_m is never), else double-double.
        z, v, i, n = expr.args[:4]
        if self.logits is None or str(z.label) != self.logits:
            raise _Unsupported("softmax_hvp outside a class-axis kernel")
        if str(v.label) != _DIRECTION_LABEL:
            raise _Unsupported(f"softmax_hvp of {v}")
        k = SUM_INDEX
        if len(expr.args) == 5:  # scale·pᵢ(vᵢ − v̄): scaled before the flush below normal
            return self._scaled_hvp(expr)
        if expr not in self._sums:
            names = [f"acc{len(self.hoisted)}_{j}" for j in range(5)]
            lbuf = self._row_buffer()
            j = len(self.hoisted)
            self._row_values(", ".join(names), f"(qb{j}[q, 0], 0.0, 0.0, 0.0, qb{j}[q, 1])",
                             f"dd_softmax_hvp_row_F(zr, dr, m, dbuf, {lbuf})",
                             (f"softmax_hvp_qb_m(z, dv, r0, r1, ms, ebuf, elo, {lbuf}b, qb{j}, "
                              "twork)", lbuf))
            center = sp.Symbol(names[4], real=True)
            self.names = {**self.names, center: names[4]}
            with self._lanes():  # read by the float form and the bound only
                spread = self._print(sp.Sum(softmax(z, k, n) * (center - v[k]), (k, 1, n)))
                size = self._print(sp.Sum(softmax(z, k, n) * sp.Abs(center - v[k]), (k, 1, n)))
            self._sums[expr] = ", ".join([*names, spread, size, lbuf])
        dh, dl, wh, wl, c, spread, size, lbuf = self._sums[expr].split(", ")
        vi, p = self._print(v[i]), self._print(softmax(z, i, n))
        plain = f"({p} * (({vi} - {c}) + {spread}))"
        ii = self._print(i)
        exact = (f"dd_softmax_hvp_at_F(zr, dr, buf, {lbuf}, {ii}, m, {vi}, "
                 f"{dh}, {dl}, {wh}, {wl}, {c}, {size}, {plain})")
        value = f"({plain} if fits_F({plain}, {p} * {size}) else {exact})"
        if not self.certify:
            return value
        return f"certified({value}, {p} * (abs({vi} - {c}) + {size}), flag)"

    def _print_softmax_variance(self, expr: sp.Expr) -> str:
        # Per row every class's pᵢ Σ_{k≠i} pₖ in lbuf (ddouble.softmax_variance_row_F, its exact
        # products by fused multiply-adds: _fastmath.vector_dd; from the
        # exp pass's pairs: float64 results on pairs, rounded once); per class lbuf[i].
        z, i = expr.args[:2]
        if self.logits is None or str(z.label) != self.logits:
            raise _Unsupported("softmax_variance outside a class-axis kernel")
        if expr not in self._sums:
            lbuf = self._row_buffer()
            self.hoisted.append((f"acc{len(self.hoisted)}", "",
                                 f"vd_softmax_variance_row_F(zr, buf, bufl, s, {lbuf})"))
            self._sums[expr] = lbuf
        return f"{self._sums[expr]}[{self._print(i)}]"

    def _scaled_hvp(self, expr: sp.Expr) -> str:
        # softmax_hvp(z, v, i, C, scale): the unscaled one's row values, then per class
        # scale·(its value) with the pair's result scaled before the flush (sat_F).
        z, v, i, n, scale = expr.args
        unscaled = softmax_hvp(z, v, i, n)
        self._print(unscaled)  # the row's hoisted values
        dh, dl, wh, wl, c, spread, size, lbuf = self._sums[unscaled].split(", ")
        vi, p, sc = self._print(v[i]), self._print(softmax(z, i, n)), self._row_value(scale)
        plain = f"(({sc}) * ({p} * (({vi} - {c}) + {spread})))"
        exact = (f"dd_softmax_hvp_sat_F(zr, dr, buf, {lbuf}, {self._print(i)}, m, {vi}, "
                 f"{dh}, {dl}, {wh}, {wl}, {c}, {size}, {sc}, {plain})")
        value = f"({plain} if fits_F({plain}, abs({sc}) * {p} * {size}) else {exact})"
        if not self.certify:
            return value
        return f"certified({value}, abs({sc}) * {p} * (abs({vi} - {c}) + {size}), flag)"

    def _row_value(self, e: sp.Expr) -> str:
        """``e`` printed, as a name set once per row where it reads no class ``i`` (hoisted: the
        same expression, the same bits) and is more than a name or a number: the label-smoothed
        soft hvp's scale ``(1 − ε)·Σy + ε``, printed in the class loop three times, left that
        loop compiled worse (its float64 kernel at 1e6 elements, 1 thread: 40 -> 29 ms).

        A class sum that reads of its row only the class index (cross-entropy's hvp scale
        ``Σₖ((1 − ε)δ(k, t) + ε/C)wₖ``, kept as written: :func:`_scales_as_written`) is a table
        of one value per class instead (:meth:`_label_table`)."""
        key = sp.Tuple(sp.Symbol("row_value"), e)
        if key in self._sums:
            return self._sums[key]
        label = next((x for x, n in self.names.items() if self.label and n == self.label), None)
        if (label is not None and self.logits is not None and e.has(label) and e.has(sp.Sum)
                and not e.has(CLASS_INDEX) and self._per_call(e.xreplace({label: NUM_CLASSES}))):
            table = self._label_table(e)
            if table is not None:
                self._sums[key] = table
                return table
        printed = self._print(e)
        if (self.logits is None or e.has(CLASS_INDEX)
                or re.fullmatch(r"[\w.]+", printed) is not None):
            return printed
        name = f"acc{len(self.hoisted)}"
        self.hoisted.append((name, "", printed))
        self._sums[key] = name
        return name

    def _label_table(self, e: sp.Expr) -> str | None:
        """A row value ``e`` that reads of its row only the class index ``t`` as a table of its
        value at each class, each computed once a chunk of rows, at the first row of that label,
        by the code the row would run (its class sums too: the same bits), then read at the
        row's label (:func:`_label_tables`); ``None`` where printing ``e`` hoists anything but
        class sums."""
        sub = copy.copy(self)  # its own hoisted sums, numbered after this printer's
        sub.hoisted, sub._sums, sub._lane_sums, sub.dots = list(self.hoisted), {}, {}, {}
        value = sub._print(e)
        sums = sub.hoisted[len(self.hoisted):]
        if any(not k or k.startswith("=") for _, k, _ in sums):
            return None
        self.hoisted += [(acc, _TABLE_SUM + k, body) for acc, k, body in sums]
        table, name = f"tbuf{len(self.hoisted)}", f"acc{len(self.hoisted) + 1}"
        self.hoisted.append((table, _SETUP_TABLE, value))
        # read into a name: an array element is reloaded after every store to the output
        self.hoisted.append((name, "", f"{table}[{self.label}]"))
        return name

    def _row_of(self, base: sp.IndexedBase) -> str:
        """The current row of a class-axis array (:func:`~symloss.primitives.dd_code`'s
        ``row``: the logits' ``zr``, the targets' ``yr``; the class weights' ``w``)."""
        label = str(base.label)
        if self.logits is not None and label == self.logits:
            return "zr"
        if self.rows.get(label) == "y":
            return "yr"
        if label in self.vectors:
            return self.vectors[label]
        raise NotImplementedError(f"no row of {label} in this kernel")

    def _print_accurate(self, expr: sp.Expr) -> str:
        # The inner expression in double-double (symloss.ddouble's pair functions), the plain
        # form where the pair is not finite. float32 results first try the float64 form (its
        # cancellation measured by fits_v): with two float32 inputs free, eᶻ − y·z can cancel
        # by ~48 bits, more than float64's 29 to spare, but nearly all elements cancel little.
        plain = self._print(expr.args[0])
        try:
            pair = dd_code(expr.args[0], self._print, "dd_",
                           lambda c, a, b: f"({a} if {c} else {b})", self._row_of)
        except NotImplementedError:
            return plain
        # the log-softmax pairs: float64 results first from the exponential pass's pairs
        # (ddouble.t_log_softmax_at_m: the same bits, without C exponentials in double-double)
        pair = re.sub(r"\bdd_(t_log_softmax_at|t_lsm_dot|t_lsm_sum)\(([^()]*)\)",
                      r"dd_\1_F(\2, buf, bufl)", pair)
        value = self._float_first(expr.args[0], f"dd_t_final({pair}, {plain})",
                                  bound=rounding_bound(expr.args[0]))
        scaled_log = _scaled_log_sub(expr.args[0])
        if scaled_log is not None:
            # s·(log x − z) (kl_div's value, y·log_sub(y, z)): for float64 results the first
            # tier _fastmath.log_sub_q (rounded once where Ziv's test vouches for the exact
            # value and the pair alike: the pair's bits), else the double-double form; float32
            # results keep their float form's test (fitsqs_v is never)
            q = f"log_sub_q_F({', '.join(self._print(a) for a in scaled_log)})"
            return f"({q} if fitsqs_F({q}) else {value})"
        for order, tier in ((1, "modulated_slope_q"), (2, "modulated_curvature_q")):
            slope = modulated_slope(expr.args[0], order)
            if slope is not None:
                return self._slope_tier(slope, value, tier)
        soft = soft_modulated_slope(expr.args[0])
        if soft is not None:
            # S·d/dz[Q^γ·C] at a soft label (sigmoid_focal_loss's soft-label gradient): for
            # float64 results the first tier _fastmath.soft_modulated_slope_q (within 0.72 ulp
            # where its two terms cancel by under 2⁴ and S's pair is within 2⁻⁶⁰ of S: the
            # size of S's terms passed), else the double-double form
            scale, z, y, g = soft
            return self._slope_tier((scale, z, g), value, "soft_modulated_slope_q", (y,), True)
        soft = soft_modulated_slope(expr.args[0], 2)
        if soft is not None:
            # S·d²/dz²[Q^γ·C] (its soft-label Hessian): for float64 results the first tier
            # _fastmath.soft_modulated_curvature_q (within 0.71 ulp where its four terms
            # cancel by under 2⁴), else the double-double form (1e6 soft targets, float64,
            # 1 thread: the double-double form at every element took ~120 ms)
            scale, z, y, g = soft
            return self._slope_tier((scale, z, g), value, "soft_modulated_curvature_q", (y,),
                                    True)
        exps = exp_terms(expr.args[0])
        if exps is not None:
            # Σ c·w·e^(k·z), one or two terms (tweedie_loss's gradient and Hessian, gamma_loss's
            # gradient): for float64 results the first tier _fastmath.exp_terms_q (pairs:
            # within 0.5 + 2⁻⁹ ulp where the sum keeps 2⁻⁴ of its terms), else the
            # double-double form; float32 results keep their float form's test
            z, terms = exps
            # a term without an exponential (k = 0) last: exp_term1_q, one exponential
            terms = sorted(terms, key=lambda t: t[1] == 0)
            one = len(terms) == 1 or terms[1][1] == 0
            try:
                args = [self._print(z)]
                for c, k, w in (*terms, (sp.S.Zero, sp.S.Zero, sp.S.Zero))[:2]:
                    args += ["0.0" if w == 0 else self._print(sp.Float(w) if w.is_number else w),
                             self._scale_pair(c)]
                    if not (one and len(args) > 3):
                        args.append(self._scale_pair(k))
            except NotImplementedError:
                return value
            q = f"exp_term{'1' if one else 's'}_q_F({', '.join(args)})"
            return f"({q} if fitsqs_F({q}) else {value})"
        curvature = sigmoid_curvature(expr.args[0])
        if curvature is not None:
            # S·σ(x)σ(−x) (the Bernoulli variance, log_cosh_loss's Hessian): for float64
            # results the first tier _fastmath.sigmoid_curvature_q (x and S pairs, nothing
            # cancels: within 0.5 + 2⁻¹¹ ulp for |x| ≤ 600), else the double-double form;
            # float32 results keep their float form's test (fitsqs_v is never)
            scale, x = curvature
            try:
                q = f"sigmoid_curvature_q_F({self._scale_pair(x)}, {self._scale_pair(scale)})"
            except NotImplementedError:
                return value
            return f"({q} if fitsqs_F({q}) else {value})"
        scaled = scaled_difference(expr.args[0])
        if scaled is None:
            return value
        # S·(σ(x) − y) (a weight, 1/C: layout.scaled_inside): for float64 results σ(x) − y's
        # own first tier (_fastmath.sigmoid_subq_s: within 0.75 ulp where it certifies, the
        # scale a pair); float32 results keep their float form's test (fitsqs_v is never)
        scale, difference = scaled
        try:
            s = self._scale_pair(scale)
        except NotImplementedError:
            return value
        z, y = (self._print(a) for a in difference.args)
        q = f"sigmoid_subq_s_F({z}, {y}, {s})"
        return f"({q} if fitsqs_F({q}) else {value})"

    def _slope_tier(self, slope: tuple[sp.Expr, sp.Expr, sp.Expr], value: str,
                    tier: str, more: tuple[sp.Expr, ...] = (), sized: bool = False) -> str:
        # S·dⁿ/dsⁿ[σ(s)^γ·softplus(s)] (algebra.modulated_slope: sigmoid_focal_loss's
        # hard-label gradient, n = 1, and Hessian, n = 2): for float64 results the first tier
        # _fastmath.modulated_slope_q (positive terms that cancel nowhere: within 0.57 ulp
        # where it certifies; 1e6 elements ~4x cheaper than the double-double form), or
        # modulated_curvature_q (within 0.72 ulp where its bracket cancels by under 2⁴), the
        # scale a pair; float32 results keep their float form's test (fitsqs_v is never).
        # ``more``: arguments after ``s`` (the soft tier's label); ``sized``: the size of the
        # scale's terms passed last (the soft tier's check of its scale pair)
        scale, s, g = slope
        try:
            sc = self._scale_pair(scale)
        except NotImplementedError:
            return value
        g = sp.Float(g) if g.is_number else g  # a float argument, 0.0 not 0
        args = [self._print(a) for a in (s, *more, g)] + [sc]
        if sized:
            args.append(self._print(magnitude(scale)))
        q = f"{tier}_F({', '.join(args)})"
        return f"({q} if fitsqs_F({q}) else {value})"

    def _scale_pair(self, scale: sp.Expr) -> str:
        """The printed pair (``vd_`` pair functions) of the scale ``S`` of ``S·(σ(x) − y)``.
        In a class-axis kernel an ``S`` that reads no row (a class weight over C, ``w[i]/C``;
        ``1/C``) is read from a pair computed once per call -- one per class, or one -- by the
        same code (:meth:`_call_pairs`: the same bits), not again for every element.
        Element-wise kernels print it in place: an ``S`` that reads no element is
        loop-invariant there -- but for one over flattened ``rows × C`` elements that reads
        only per-class arrays and scalars (``w/C``, its class's weight): that pair is computed
        once per class, by the same code (the same bits), into a table its loops read as two
        more arrays (:func:`_by_class`), not in every element (a double-double quotient:
        multilabel_soft_margin_loss's float64 weighted soft gradient, 1e5 elements, 1 thread,
        5.95 -> see benchmarks/README.md)."""
        pair = dd_code(scale, self._print, "vd_", _where)
        if self.logits is None:
            if (self.tables is None or not scale.free_symbols & self.per_class
                    or scale.atoms(sp.Indexed) or not all(
                        s in self.per_class or re.fullmatch(r"c\d+", self.names.get(s, ""))
                        for s in scale.free_symbols)):
                return pair
            n = self.tables.setdefault(pair, self.first_table + 2 * len(self.tables))
            return f"(x{n}, x{n + 1})"
        if scale.has(CLASS_INDEX) and scale.has(SUM_INDEX):
            return pair
        at = "i" if scale.has(CLASS_INDEX) else "k"
        per_class = scale.xreplace({CLASS_INDEX: SUM_INDEX})
        if not self._per_call(per_class):
            return pair
        whole = dd_code(per_class, self._print, "dd_", _where)
        return self._call_pairs(per_class, whole, len(self.hoisted), at)

    def _print_softmax_sub(self, expr: sp.Expr) -> str:
        # The row's values for ddouble.softmax_sub_at_F (every class's value in lbuf) in one
        # pass per row: for float64 results the first tier _fastmath.softmax_sub_qb_m (once per
        # block of rows) from the exp pass's pairs, else ddouble.softmax_sub_row_F (the pairs
        # S, T, U, 1/D, the arg-maxes of
        # z and y; its exponentials in dbuf: _row_values); then (eᵢAᵢ − yᵢBᵢ)/D in double-double per class for
        # float64 results (fits_m is never), and for float32 ones the float64 form pᵢT − yᵢ
        # wherever it keeps their digits (fits_v).
        z, y, i, n = expr.args
        if self.logits is None or str(z.label) != self.logits:
            raise _Unsupported("softmax_sub outside a class-axis kernel")
        if not isinstance(y, sp.IndexedBase):
            return self._softmax_suba(expr)
        if expr not in self._sums:
            names = [f"acc{len(self.hoisted)}_{j}" for j in range(10)]
            lbuf = self._row_buffer()
            j = len(self.hoisted)
            self._row_values(", ".join(names), f"(qb{j}[q, 0], {', '.join(['0.0'] * 9)})",
                             f"dd_softmax_sub_row_F(zr, yr, m, dbuf, {lbuf})",
                             (f"softmax_sub_qb_m(y, y, 0.0, r0, r1 - r0, ebuf, elo, {lbuf}b, "
                              f"qb{j}, twork)", lbuf), later_only=True)
            self._sums[expr] = ", ".join([lbuf, *names])
        with self._lanes():  # the float form and the bound
            plain = self._print(expr.rewrite(sp.Sum))
            # its terms' magnitude pᵢ·T + |yᵢ| (T = Σy as the plain form sums it)
            total = self._print(sp.Sum(y[SUM_INDEX], (SUM_INDEX, 1, n)))
        yi = self._print(y[i])
        lbuf, values = self._sums[expr].split(", ", 1)
        exact = (f"dd_softmax_sub_at_F(zr, yr, buf, {lbuf}, {self._print(i)}, {yi}, "
                 f"{values}, {plain})")
        size = f"(abs({self._print(softmax(z, i, n))}) * abs({total}) + abs({yi}))"
        value = f"(({plain}) if fits_F({plain}, {size}) else {exact})"
        if not self.certify:
            return value
        return f"certified({value}, {size}, flag)"

    def _softmax_suba(self, expr: sp.Expr) -> str:
        # softmax_sub of target weights aₖ (class weights, label smoothing): per row each aₖ
        # as an exact pair (abufJh, abufJl: the declaration's aₖ printed by dd_code, its parts
        # that read no row computed once per call, _call_pairs; float64 results: each row of
        # the block before its first tier _fastmath.softmax_sub_qb_m), then
        # ddouble.softmax_suba_row_F as softmax_sub_row_F; per class the float64 form
        # pᵢΣa − aᵢ where it keeps a float32 result's digits (fits_v; fits_m is never).
        z, a, i, n = expr.args
        if expr not in self._sums:
            j = len(self.hoisted)
            lbuf, ah, al = self._row_buffer(), f"abuf{j}h", f"abuf{j}l"
            try:
                pair = dd_code(a, self._print, "dd_", _where)
            except NotImplementedError:
                raise _Unsupported(f"softmax_sub of {a}") from None
            pair = self._call_pairs(a, pair, j)
            self.hoisted.append((f"{ah}, {al}", _BLOCK_FILL + _ONLY_M, pair))
            self.hoisted.append((ah, _ONLY_M, f"{ah}b[q]"))
            self.hoisted.append((al, _ONLY_M, f"{al}b[q]"))
            # float32 results read the pairs only where a class's float64 form cancels
            self.hoisted.append((f"{ah}, {al}", _LATER_FILL + _ONLY_V, pair))
            q = len(self.hoisted)
            self._row_values(f"acc{q + 2}", f"qb{q}[q, 0]",
                             f"dd_softmax_suba_row_F(zr, {ah}, {al}, m, dbuf, {lbuf})",
                             (f"softmax_sub_qb_m({ah}b, {al}b, 1.0, 0, r1 - r0, ebuf, elo, "
                              f"{lbuf}b, qb{q}, twork)", lbuf), later_only=True)
            self._sums[expr] = f"{lbuf}, {ah}, {al}"
        lbuf, ah, al = self._sums[expr].split(", ")
        with self._lanes():  # the float form and the bound
            plain = self._print(expr.rewrite(sp.Sum))
            # its terms' magnitude pᵢ·|Σa| + |aᵢ| (Σa as the plain form sums it)
            total = self._print(sp.Sum(expr.target(SUM_INDEX), (SUM_INDEX, 1, n)))
        exact = f"dd_softmax_suba_at_F(zr, {ah}, {al}, buf, {lbuf}, {self._print(i)}, {plain})"
        size = (f"(abs({self._print(softmax(z, i, n))}) * abs({total}) "
                f"+ abs({self._print(expr.target(i))}))")
        value = f"(({plain}) if fits_F({plain}, {size}) else {exact})"
        if not self.certify:
            return value
        return f"certified({value}, {size}, flag)"

    def _row_values(self, names: str, quick: str, row: str,
                    block: tuple[str, str] | None = None, later_only: bool = False) -> None:
        """Hoist a row function's values ``names``: its first tier ``quick``
        (``_fastmath.softmax_sub_q_m``, …: every class's value where Ziv's test vouches for
        it, the double-double row's bits, from the exp pass's pairs ``buf``, ``bufl``), then the
        double-double ``row`` where ``quick``'s first value is its NaN marker. ``quick`` returns
        ``row``'s type (a tuple or a float). ``row`` works in ``dbuf``, not ``buf``: the plain
        forms read ``buf`` and ``s`` (its sum), one set of exponentials whichever tier answers.
        With ``block`` (``(call, lbuf)``): for float64 results the first tier is one call per
        block of rows (``_fastmath.softmax_hvp_qb_m``: rows side by side), its values in the
        rows of ``lbuf + "b"``, and ``quick`` reads its results for row ``q``; the block's rows
        that it leaves to ``row`` are computed in a loop of their own after it (:func:`_fallback_rows`),
        every row's values in a block array the row's code reads: a call in the row's code,
        even never taken, kept its arrays' reference counts (cross-entropy's float64 hvp, 1e6
        elements: 7 of 39 ms). float32 results (no first tier) call ``row``; ``later_only``:
        only the accurate arms (later tiers) read its values, and for float32 results they
        compute the row themselves (``ddouble.softmax_sub_at_v``: a few elements of a few rows),
        so there the values are zeros, unread, and no row function is called."""
        held = f"acc{len(self.hoisted)}q"
        first = f"{held}[0]" if ", " in names else held
        if block is None:
            self.hoisted.append((held, "", quick))
            self.hoisted.append((names, "", f"{held} if {first} == {first} else {row}"))
            return
        call, lbuf = block
        width = names.count(", ") + 1
        rb = f"rb{len(self.hoisted)}_{width}"
        cells = ", ".join(f"{rb}[q, {x}]" for x in range(width))
        self.hoisted.append(("", _BLOCK + _ONLY_M, call))
        self.hoisted.append(("", _BLOCK + _ONLY_M, _fallback_rows(cells, f"{rb}[q, 0]", quick, row)))
        self.hoisted.append((lbuf, _ONLY_M, f"{lbuf}b[q]"))
        # float32 results call the row function for every row, where any arm reads its
        # values (softmax_hvp's centre c); where only the accurate arms do (softmax_sub's),
        # none: those compute the row where they run
        self.hoisted.append((names, _ONLY_V, ", ".join(["0.0"] * width) if later_only else row))
        self.hoisted.append((names, _ONLY_M, cells))

    def _per_call(self, e: sp.Expr) -> bool:
        """Whether ``e`` reads nothing of a row: only scalar options, C, the class index ``k``
        and per-class arrays (class weights) -- not the target row, its label or the logits."""
        rows = {*self.rows, self.logits}
        bases = {x.base.label for x in e.atoms(sp.Indexed)}
        if any(str(b) in rows for b in bases):
            return False
        return all(s in bases or s == SUM_INDEX
                   or re.fullmatch(r"c\d+|n_classes", self.names.get(s, "")) is not None
                   for s in e.atoms(sp.Symbol))

    def _call_pairs(self, a: sp.Expr, pair: str, j: int, at: str = "k") -> str:
        """``pair`` (``a``'s printed pair, one class ``k`` of one row) with each pair of a
        largest part of ``a`` that reads no row (ε/C, 1 − ε, …) read from a value computed once
        per call (hoisted ``_SETUP``: a scalar pair; ``_SETUP_FILL``: one pair per class, read
        at the class ``at`` of where ``pair`` is evaluated), by the same code: the same bits.
        Its pair functions inlined (``vd_``, no calls) where they are the same code (not
        ``t_log1p``, whose ``vd_`` seed differs)."""
        parts: list[sp.Expr] = []

        def walk(e: sp.Expr) -> None:
            if e.is_Atom or isinstance(e, sp.Indexed):
                return
            if self._per_call(e):
                parts.append(e)
                return
            for x in e.args:
                walk(x)

        walk(a)
        for q, part in enumerate(dict.fromkeys(parts)):
            try:
                code = dd_code(part, self._print, "dd_", _where)
            except NotImplementedError:
                continue
            hit = re.compile(r"(?<![\w.])" + re.escape(code))
            if not hit.search(pair):
                continue
            if part.has(SUM_INDEX):
                h, lo = f"cbuf{j}_{q}h", f"cbuf{j}_{q}l"
                self.hoisted.append((f"{h}, {lo}", _SETUP_FILL, code))
                value = f"({h}[{at}], {lo}[{at}])"
            else:
                value = f"pc{j}_{q}"
                self.hoisted.append((value, _SETUP, code))
            pair = hit.sub(value, pair)  # value: names and brackets, no escapes
        if "t_log1p" not in pair:
            pair = pair.replace("dd_t_", "vd_t_")
        return pair

    def _print_sigmoid_sub(self, expr: sp.Expr) -> str:
        # σ(z) − y within 0.75 ulp where _fastmath.sigmoid_subq certifies it (cancelling by
        # at most 8 bits: nearly every element; branch-free), else double-double
        z, y = (self._print(a) for a in expr.args)
        exact = f"dd_sigmoid_sub({z}, {y})"
        if self.certify:  # too cancelled even in double-double: NaN, for symloss.exact
            exact = f"certified({exact}, {self._print(magnitude(expr.rewrite(sp.Add)))}, flag)"
        q = f"sigmoid_subq_F({z}, {y})"
        return f"({q} if fitsq_F({q}) else {exact})"

    def _print_exp_sub(self, expr: sp.Expr) -> str:
        # eᶻ − y: for float64 results the first tier _fastmath.exp_terms_q (within
        # 0.5 + 2⁻⁹ ulp where it cancels by under 2⁴), else double-double (fitsx_m: never the
        # float form, as the NumPy evaluator's kernels.exp_sub); float32 results: the float64
        # form where it keeps their digits (fits_v), else double-double
        a, y = (self._print(x) for x in expr.args)
        value = self._float_first(expr.rewrite(sp.Add), f"dd_exp_sub({a}, {y})", "fitsx_F")
        q = f"exp_term1_q_F({a}, 1.0, (1.0, 0.0), (1.0, 0.0), {y}, (-1.0, 0.0))"
        return f"({q} if fitsqs_F({q}) else {value})"

    def _print_clamped_log(self, expr: sp.Expr) -> str:
        rest = expr.complement  # type: ignore[attr-defined]
        if rest is not None:  # log(1 − p) as log1p(−p)
            return f"max(math.log1p(-({self._print(rest)})), -100.0)"
        return f"clamped_log({self._print(expr.args[0])})"

    def _print_clamp_min(self, expr: sp.Expr) -> str:
        x, lo = (self._print(a) for a in expr.args)
        return f"maximum({x}, {lo})"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # NaN in, NaN out, as the NumPy evaluator's printer: a comparison with NaN is False and
        # would fall through to the last branch.
        text = print_with_steps(self, expr, super()._print_Piecewise)
        operands = compared_operands(expr)
        if not operands:
            return text
        tests = " or ".join(f"math.isnan({self._print(side)})" for side in operands)
        return f"(math.nan if ({tests}) else ({text}))"

    def _print_Relational(self, expr: sp.Expr) -> str:
        # a sum of two inputs against a threshold: compared exactly (algebra.exact_comparison)
        if expr in self._steps:
            return printed_comparison(expr, self._print) or str(super()._print_Relational(expr))
        return str(super()._print_Relational(expr))

    def _print_step(self, expr: sp.Expr) -> str:
        # numpy.heaviside(u, 0): 1 for u > 0, 0 for u ≤ 0, NaN for NaN.
        u = self._print(expr.args[0])
        return f"(1.0 if {u} > 0.0 else (0.0 if {u} <= 0.0 else {u}))"

    def _print_hinge(self, expr: sp.Expr) -> str:
        return f"maximum({self._print(expr.args[0])}, 0.0)"

    def _print_power(self, expr: sp.Expr) -> str:
        q, exponent = (self._print(a) for a in expr.args)
        return f"(({q}) ** ({exponent}))"

    def _print_xexp(self, expr: sp.Expr) -> str:
        # y·e^a, 0 for y = 0; where e^a alone overflows, (y·e^(a/2))·e^(a/2) (as NumPy's).
        y, a = (self._print(x) for x in expr.args)
        return (f"(0.0 if ({y}) == 0.0 else ((({y}) * exp_F(0.5 * ({a}))) * exp_F(0.5 * ({a})) "
                f"if ({a}) > 700.0 else ({y}) * exp_F({a})))")

    def _print_hypot1(self, expr: sp.Expr) -> str:
        # ddouble.hypot1, inlined (libm's hypot is an opaque call): the NumPy evaluator's bits
        return f"vd_hypot1({self._print(expr.args[0])})"

    def _print_hypot1m1(self, expr: sp.Expr) -> str:
        x = self._print(expr.args[0])
        return f"(abs({x}) * (abs({x}) / (1 + vd_hypot1({x}))))"

    def _print_tanh(self, expr: sp.Expr) -> str:
        # _fastmath.tanh_m: vectorized, within 0.5 + 2⁻⁷ ulp (libm's: an opaque call, 2 ulp)
        return f"tanh_F({self._print(expr.args[0])})"

    def _print_at_target(self, expr: sp.Expr) -> str:
        base, onehot = expr.args
        if self.label is not None:  # a class index: the entry at the target's class
            return self.indexed[str(base.label)]("tr")
        return self._print(sp.Sum(onehot[SUM_INDEX] * base[SUM_INDEX], (SUM_INDEX, 1, NUM_CLASSES)))

    def _print_split_sum(self, expr: sp.Expr) -> str:
        # w·Σₖ(aₖ + bₖ) (hinges.split_sum): each class's aₖ and bₖ written to row buffers,
        # then one compensated sum of all 2C terms (ddouble.split_sum_row; NaN, flagged for
        # symloss.exact, where it cannot vouch for the last bits); 0 where w is
        w, a, b = expr.args[:3]
        key = sp.Tuple(a, b)
        if key not in self._sums:
            j = len(self.hoisted)
            ah, al = f"abuf{j}h", f"abuf{j}l"
            self.hoisted.append((f"{ah}, {al}", _FILL, f"{self._print(a)}, {self._print(b)}"))
            self.hoisted.append((f"acc{j + 1}", "", f"dd_split_sum_row({ah}, {al}, flag)"))
            self._sums[key] = f"acc{j + 1}"
        acc, weight = self._sums[key], self._print(w)
        return f"(0.0 if ({weight}) == 0.0 else ({weight}) * {acc})"

    def _class_axis(self, expr: sp.Expr) -> str:
        if self.logits is None or str(expr.args[0].label) != self.logits:
            raise _Unsupported(f"{type(expr).__name__} outside a class-axis kernel")
        return self._print(expr.args[1])

    def _print_softmax(self, expr: sp.Expr) -> str:
        return f"(buf[{self._class_axis(expr)}] / one_s)"

    def _print_log_softmax(self, expr: sp.Expr) -> str:
        x = self._class_axis(expr)
        # log softmax = (z − m) − log1p(s): both terms ≤ 0, nothing cancels.
        return f"((np.float64(zr[{x}]) - m) - lse)"

    def _print_softmax_complement(self, expr: sp.Expr) -> str:
        x = self._class_axis(expr)
        # 1 − p is s/(1+s) at the arg-max (e = 1; s summed from the small terms), else
        # (1+s−e)/(1+s).
        return f"((s if buf[{x}] == 1.0 else one_s - buf[{x}]) / one_s)"

    @contextlib.contextmanager
    def _lanes(self) -> Iterator[None]:
        """Within the block, a class sum is printed for float64 results as one plain chain,
        fused with its neighbours (:func:`_class_sum`, :func:`_fused_sums`), not a compensated
        one: for what reads it only as a certification's bound (a threshold at 2⁻³⁹ of it) or
        in the float form a row function's pair replaces wherever the pair is finite
        (:func:`symloss.ddouble._final_r`). float32 results keep their lane sums. The
        compensated chains cost cross-entropy's float64 hvp 9 of 37 ms at 1e6 elements
        (1 thread). A sum already compensated is reused."""
        before, self._in_lanes = self._in_lanes, True
        try:
            yield
        finally:
            self._in_lanes = before

    def _print_Sum(self, expr: sp.Sum) -> str:
        if len(expr.limits) != 1:
            raise _Unsupported("nested sum")
        k, lo, hi = expr.limits[0]
        if (lo, hi) != (sp.S.One, NUM_CLASSES) or CLASS_INDEX in expr.function.free_symbols:
            raise _Unsupported(f"sum {expr}")
        if expr in self._sums:
            return self._sums[expr]
        lanes = self._in_lanes
        if lanes and expr in self._lane_sums:
            return self._lane_sums[expr]
        name = f"acc{len(self.hoisted)}"
        index = self._print(k)
        self.hoisted.append((name, _LANES + index if lanes else index,
                             self._print(expr.function)))
        (self._lane_sums if lanes else self._sums)[expr] = name
        array = self._dot_array(expr.function, k)
        if array is not None:
            self.dots[name] = array
        return name

    def _dot_array(self, body: sp.Expr, k: sp.Basic) -> str | None:
        """The 2-D array ``x`` where ``body`` is ``softmax(z)[k]·x[k]``, else ``None``.

        Such a sum is ``Σ_k e_k·x_k / (1 + s)``: the kernel can accumulate ``Σ e_k·x_k`` in its
        exp-sum pass (:func:`symloss._fastmath.block_sums_dot`) instead of a pass of its own.
        """
        if self.logits is None or not isinstance(body, sp.Mul) or len(body.args) != 2:
            return None
        p, x = body.args
        if isinstance(x, softmax):
            p, x = x, p
        if not (isinstance(p, softmax) and str(p.args[0].label) == self.logits
                and p.args[1] == k and isinstance(x, sp.Indexed) and x.indices == (k,)):
            return None
        return self.rows.get(str(x.base.label))

    def _print_log_sub(self, expr: sp.Expr) -> str:
        # log x − y (primitives.log_sub): float64 where it keeps the result's digits (as
        # kernels.log_sub on the NumPy path), else symloss.ddouble.log_sub
        exact = f"dd_log_sub({self._print(expr.args[0])}, {self._print(expr.args[1])})"
        return self._float_first(expr.rewrite(sp.Add), exact, "fits1_F")

    def _print_Function(self, expr: sp.Expr) -> str:
        raise _Unsupported(f"function {type(expr).__name__}")


def _scaled_log_sub(inner: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """``(s, x, z)`` where ``inner`` is ``s·log_sub(x, z)`` (``s`` an input or option: one
    float), or a Piecewise whose last arm is that and whose other arms hold only where ``x =
    0`` (kl_div's ``−y·z`` at ``y = 0``: there :func:`symloss._fastmath.log_sub_q` is NaN,
    ``log 0``, and the double-double form answers); else ``None``."""
    body = inner
    if isinstance(inner, sp.Piecewise):
        body, last = inner.args[-1]
        if last != sp.true:
            return None
    if not (isinstance(body, sp.Mul) and len(body.args) == 2):
        return None
    pair = [a for a in body.args if isinstance(a, log_sub)]
    if len(pair) != 1:
        return None
    s = next(a for a in body.args if a is not pair[0])
    x, z = pair[0].args
    if not (s.is_Symbol or isinstance(s, sp.Indexed)):
        return None
    if isinstance(inner, sp.Piecewise) and any(
            cond != sp.Eq(x, 0) for _, cond in inner.args[:-1]):
        return None
    return s, x, z


#: What a kernel call returns: the per-element results in the kernel layout, and whether the
#: kernel left an element NaN for :mod:`symloss.exact` (uncertified, or a NaN input).
Result = tuple[np.ndarray, bool]


class FastKernels:
    """The compiled kernels of one derivation. Each takes a :class:`~symloss.layout.Layout`
    (the one bookkeeping) and returns a :data:`Result` (the per-element results in its kernel
    layout, and the kernel's flag), or ``None`` where the generator does not handle the
    expression (the NumPy evaluator answers).
    """

    def __init__(self, derivation: Derivation, module: Any, arrays: tuple[str, ...],
                 scalars: tuple[str, ...]) -> None:
        self.derivation = derivation
        self.module = module
        self.arrays = arrays  # element-wise: the array arguments' names, in kernel order
        self.scalars = scalars
        #: The second-order kernels' module: ``None`` until the first use, ``False`` where
        #: the generator does not handle them.
        self.hvp_module: Any = None
        #: The Hessian-vector product is 0 as an expression (a piecewise-linear loss, nll_loss).
        self.hvp_zero = False
        self._kernels: dict[tuple[int, str, str, bool], Any] = {}
        #: The scalar options' values in kernel order, for the layout's ``scalars`` they
        #: were read from (a derivation's layouts share one dict: read once).
        self._scalar_values: tuple[Any, tuple[float, ...]] = (None, ())

    def _hvp_source(self) -> str:
        raise NotImplementedError

    def _hvp_kernels(self) -> Any:
        """The kernels printed from ``hvp_expr`` and ``hessian_diagonal``, or ``None``.

        Generated and loaded on first use, not in :func:`build`: deriving the Hessian costs
        SymPy time that callers of ``loss_fn``/``grad_fn`` alone should not pay.
        """
        global last_reason
        if self.hvp_module is None:
            try:
                key = _plan_key(self.derivation, "second")
                plan = cache.read_plan(key) if key is not None else None
                if plan is None:
                    plan = {"source": self._hvp_source(), "zero": self._second_exprs()[0] == 0}
                    if key is not None:
                        cache.write_plan(key, plan)
                self.hvp_zero = bool(plan.get("zero", False))
                self.hvp_module = _module(plan["source"])
            except (_Unsupported, NotImplementedError, TypeError) as exc:
                last_reason = f"{self.derivation.name} hvp: {exc}"
                self.hvp_module = False
        return self.hvp_module or None

    def _second_exprs(self) -> tuple[sp.Expr, sp.Expr]:
        d = self.derivation
        return (_scales_as_written(expression(d, "hvp"), reduce_sums, numpy_form=True),
                _scales_as_written(expression(d, "hess"), reduce_sums, numpy_form=True))

    def _kernel(self, module: Any, what: str, layout: Layout, size: int) -> Any:
        """The kernel ``<what>_<flavour>[_s]`` of ``module`` (looked up once); where it has a
        quick twin (:func:`_quick_twins`), first the two staged (:class:`_Staged`)."""
        parallel = size >= PARALLEL_MIN and _parallel(size)
        key = (id(module), what, layout.work.char, parallel)
        kernel = self._kernels.get(key)
        if kernel is None:
            flavour = "v" if layout.work == np.float32 else "m"
            kernel = self._named(module, f"{what}_{flavour}", parallel)
            if _has_quick(module, f"{what}_{flavour}"):
                def swap(kernel: Any) -> None:  # the full kernel, once it answers
                    self._kernels[key] = kernel

                kernel = _Staged(kernel, self._named(module, f"{what}_{flavour}{QUICK}", parallel),
                                 None if what == "grad_flat" else self.flag_at, swap)
            self._kernels[key] = kernel
        return kernel

    #: Where a kernel takes its flag array (``None``: it returns its flag; a class-axis
    #: loss's ``grad_flat`` kernels are element-wise ones).
    flag_at: int | None = None

    @staticmethod
    def _named(module: Any, name: str, parallel: bool) -> Any:
        name += "" if parallel else "_s"
        if not parallel and isinstance(module, _LazyModule):
            # a saved native entry where there is one (no numba import), else numba's
            return native.Kernel(module.name, name, lambda: getattr(module.load(), name))
        return getattr(module, name)

    def _scalars(self, layout: Layout) -> tuple[float, ...]:
        """The layout's scalar options in kernel order."""
        given, values = self._scalar_values
        if given is not layout.scalars:
            values = tuple(layout.scalars[s] for s in self.scalars)
            self._scalar_values = (layout.scalars, values)
        return values

    def loss(self, layout: Layout) -> Result | None:
        raise NotImplementedError

    def grad(self, layout: Layout) -> Result | None:
        raise NotImplementedError

    def hvp(self, layout: Layout, v: np.ndarray) -> Result | None:
        raise NotImplementedError

    def hess(self, layout: Layout) -> Result | None:
        raise NotImplementedError


def _parallel(size: int) -> bool:
    """The parallel kernels: from :data:`PARALLEL_MIN` elements, and only with more than one
    numba thread (with one, launching the pool costs ~10x the work on a busy machine)."""
    if size < PARALLEL_MIN:
        return False
    cache.select_threading_layer()  # before numba's pool starts (the module may be unloaded)
    import numba

    return bool(numba.get_num_threads() > 1)


def _has_quick(module: Any, name: str) -> bool:
    """Whether ``module``'s kernel ``name`` has a quick twin (:func:`_quick_twins`)."""
    if isinstance(module, _LazyModule):
        return module.has_quick(name)
    return hasattr(module, name + QUICK)


class _Staged:
    """A kernel whose quick twin (:func:`_quick_twins`) answers first while the full kernel is
    not ready -- not linked from a saved native entry, not compiled by numba in this process --
    so that a cold first call compiles the first tiers alone. Where the twin says incomplete
    (its flag), the full kernel runs on the same arguments, recomputing every element: its
    results and flag are the answer. Once the full kernel has run (or was ready at the first
    call), ``swap`` puts it in the caller's table: no wrapper on the hot path. Until then an
    element-wise kernel's table holds a closure of the two, not this object (its attribute
    reads cost ~0.3 µs a call at n = 100)."""

    __slots__ = ("checked", "flag_at", "full", "quick", "swap")

    def __init__(self, full: Any, quick: Any, flag_at: int | None,
                 swap: Callable[[Any], None]) -> None:
        self.full = full
        self.quick = quick
        self.flag_at = flag_at  # the flag array's argument (class-axis), or None (returned)
        self.swap = swap
        self.checked = False

    def _full(self, args: tuple[Any, ...]) -> Any:
        self.swap(self.full)
        return self.full(*args)

    def __call__(self, *args: Any) -> Any:
        if not self.checked:  # once: a saved entry or a compiled kernel answers at once
            self.checked = True
            if isinstance(self.full, native.Kernel) and self.full.ready(args):
                return self._full(args)
            if self.flag_at is None:
                quick, full = self.quick, self._full

                def staged(*args: Any) -> Any:
                    return quick(*args) and full(args)

                self.swap(staged)
        if self.flag_at is None:
            return self.quick(*args) and self._full(args)
        flag = args[self.flag_at]
        self.quick(*args)
        if flag[0] == 0:
            return False
        flag[0] = 0
        return self._full(args)


class _ElementwiseKernels(FastKernels):
    """One loop over the flat arrays: ``out[j] = expr / divisor``."""

    def __init__(self, derivation: Derivation, module: Any, arrays: tuple[str, ...],
                 scalars: tuple[str, ...]) -> None:
        super().__init__(derivation, module, arrays, scalars)
        #: The layout's arrays in kernel order, in one C call (there are always two or more:
        #: input and target).
        self._pick = operator.itemgetter(*arrays)

    def _call(self, module: Any, what: str, layout: Layout, out_dtype: Any, divisor: float,
              extra: tuple[np.ndarray, ...] = ()) -> Result:
        # The hot path of every call (n = 100: ~1 µs here besides the kernel's own work):
        # the serial kernel looked up in one dict, the flag returned by the kernel.
        arrays = layout.arrays
        n = arrays["input"].size
        kernel = (self._kernels.get((id(module), what, layout.work.char, False))
                  if n < PARALLEL_MIN else None)
        if kernel is None:
            kernel = self._kernel(module, what, layout, n)
        given, scalars = self._scalar_values
        if given is not layout.scalars:
            scalars = self._scalars(layout)
        out = np.empty(n, out_dtype)
        return out, kernel(out, divisor, *self._pick(arrays), *extra, *scalars)

    def loss(self, layout: Layout) -> Result | None:
        return self._call(self.module, "loss", layout, np.float64, 1.0)

    def grad(self, layout: Layout) -> Result | None:
        return self._call(self.module, "grad", layout, layout.work, layout.divisor)

    def _hvp_source(self) -> str:
        d = self.derivation.declaration
        hvp, hess = self._second_exprs()
        return _elementwise_source([("hvp", hvp, hvp), ("hess", hess, hess)],
                                   [d.symbols[n] for n in self.arrays],
                                   [d.symbols[n] for n in self.scalars])

    def hvp(self, layout: Layout, v: np.ndarray) -> Result | None:
        module = self._hvp_kernels()
        if module is None:
            return None
        if self.hvp_zero and layout.divisor != 0.0:  # what the kernel writes, unread
            return np.zeros(layout.arrays["input"].size, dtype=layout.work), False  # exact zeros
        return self._call(module, "hvp", layout, layout.work, layout.divisor, (v,))

    def hess(self, layout: Layout) -> Result | None:
        module = self._hvp_kernels()
        if module is None:
            return None
        return self._call(module, "hess", layout, layout.work, 1.0)


_NO_LABELS = np.zeros(1, dtype=np.int64)
_NO_WEIGHT = np.ones(1)
_NO_TARGET = {t.char: np.zeros((1, 1), dtype=t) for t in (np.dtype(np.float32), np.dtype(np.float64))}


class _ClassAxisKernels(FastKernels):
    """Per block of rows: the max, the exponentials, their sum, then each row's outputs."""

    flag_at = 2

    def __init__(self, derivation: Derivation, module: Any, arrays: tuple[str, ...],
                 scalars: tuple[str, ...]) -> None:
        super().__init__(derivation, module, arrays, scalars)
        #: The gradient reads each class alone: element-wise kernels (:func:`_per_class`).
        self._flat = (module.defines("grad_flat_v") if isinstance(module, _LazyModule)
                      else hasattr(module, "grad_flat_v"))

    def _call(self, module: Any, what: str, layout: Layout, out_shape: tuple[int, ...],
              out_dtype: Any, divisor: float, extra: tuple[np.ndarray, ...] = ()) -> Result:
        arrays = layout.arrays
        z = arrays["input"]
        if layout.hard:
            tag, labels, y = "hard", layout.labels, _NO_TARGET[z.dtype.char]
        else:
            tag, labels, y = "soft", _NO_LABELS, arrays["target"]
        kernel = self._kernel(module, f"{what}_{tag}", layout, z.size)
        chunks = _chunks(z.shape[0]) if z.size >= PARALLEL_MIN and _parallel(z.size) else 1
        out = np.empty(out_shape, out_dtype)
        flag = np.zeros(1, np.uint8)
        kernel(out, divisor, flag, chunks, z, labels, y, arrays.get("weight", _NO_WEIGHT),
               layout.ignore_index, *extra, *self._scalars(layout))
        return out, flag.item() != 0

    def loss(self, layout: Layout) -> Result | None:
        return self._call(self.module, "loss", layout, (layout.n_rows,), np.float64, 1.0)

    def grad(self, layout: Layout) -> Result | None:
        z = layout.arrays["input"]
        if self._flat:
            # a gradient of each class alone (_per_class): the element-wise kernels over the
            # flattened rows, a class weight read per class, the class count their first scalar
            # (float32, twenty-first session: weight 1.25x -> 0.49x torch, weight:soft 1.65x ->
            # 0.67x). float64 with a class weight too since its scale pair w/C is read from a
            # per-class table (_Printer._scale_pair), not formed in every element
            # (multilabel_soft_margin_loss:weight:soft, 1e5, 1 thread: see benchmarks/README.md)
            kernel = self._kernel(self.module, "grad_flat", layout, z.size)
            out = np.empty(z.size, z.dtype)
            weight = (layout.arrays["weight"],) if "weight" in layout.arrays else ()
            flag = kernel(out, layout.divisor, z.reshape(-1), layout.arrays["target"].reshape(-1),
                          *weight, float(z.shape[1]), *self._scalars(layout))
            return out.reshape(z.shape), bool(flag)
        return self._call(self.module, "grad", layout, z.shape, z.dtype, layout.divisor)

    def _hvp_source(self) -> str:
        d = self.derivation.declaration
        hvp, hess = self._second_exprs()
        return _class_axis_source([("hvp", hvp, hvp), ("hess", hess, hess)], d.symbols,
                                  [d.symbols[n] for n in self.scalars], _tags(self.derivation))

    def hvp(self, layout: Layout, v: np.ndarray) -> Result | None:
        """``Σⱼ Hᵢⱼ vⱼ`` per row (0 for an ignored target), divided as the reduction says.

        Per block of rows: a vector max pass, the exponentials, one pass for the exponential
        sum (float32: with ``Σ e·v``, so cross-entropy's ``p·v`` needs no pass of its own; the
        other hoisted sums of the derived expression take one each), one to write the row.
        """
        module = self._hvp_kernels()
        if module is None:
            return None
        z = layout.arrays["input"]
        if self.hvp_zero and layout.divisor != 0.0:  # what the kernel writes, unread
            return np.zeros(z.shape, dtype=z.dtype), False  # exact zeros: nothing to rescue
        return self._call(module, "hvp", layout, z.shape, z.dtype, layout.divisor, (v,))

    def hess(self, layout: Layout) -> Result | None:
        module = self._hvp_kernels()
        if module is None:
            return None
        z = layout.arrays["input"]
        return self._call(module, "hess", layout, z.shape, z.dtype, 1.0)


def _tags(derivation: Derivation) -> tuple[bool, ...]:
    """The class-axis kernels a loss needs: class indices (True), probabilities (False)."""
    if derivation.spec.index_targets_only:
        return (True,)
    if derivation.spec.multi_hot_targets:
        return (False,)
    return (True, False)


def _scales_as_written(expr: sp.Expr, reduce: Callable[[sp.Expr], sp.Expr],
                       numpy_form: bool = False) -> sp.Expr:
    """``reduce(expr)`` (the sum rules) with the scale of each scaled ``softmax_hvp`` kept as
    it is (``numpy_form``: first as the NumPy evaluator prints it, ``reduce_sums(scale,
    expand=False)``, which leaves a declared class sum as written): its class sum neither
    split nor reduced for a class index (a ``y_k = δ(k, t)`` in it read as 0 or 1), the same
    terms in the same compensated sum as the NumPy evaluator's, the same bits.

    The scale multiplies the rounded pair ``pᵢ(vᵢ − v̄)``, so two roundings of it put the
    evaluators as far apart as the product: cross-entropy's total target weight
    ``Σₖ((1 − ε)yₖ + ε/C)wₖ`` reduced here for a class index to ``(1 − ε)w_t + (ε/C)Σw`` and
    split for a distribution into ``−εΣwy + Σwy + (ε/C)Σw`` left its float64 hvp 2-4 floats
    from the NumPy evaluator's. A class index's scale reads of its row only the label: the
    kernels compute it once a chunk for each label (:meth:`_Printer._label_table`).

    A scale whose sums all reduce away is reduced, as before: a class index's ``Σₖ wₖyₖ`` is
    ``w_t`` and ``Σₖ yₖ`` is 1, the NumPy evaluator's compensated sums over a one-hot row
    exactly; label smoothing's ``Σₖ((1 − ε)yₖ + ε/C)`` is 1, within an ulp of that sum of
    rounded terms (a per-label table of them cost 64 × 1000 logits 8%)."""
    kept: dict[sp.Basic, sp.Expr] = {}

    def hide(e: sp.Expr) -> sp.Expr:
        written = reduce_sums(e.args[4], expand=False) if numpy_form else e.args[4]
        if not reduce_sums(written).has(sp.Sum):
            return e.func(*e.args[:4], written)
        scale = sp.Dummy("scale")
        kept[scale] = written
        return e.func(*e.args[:4], scale)

    def hide_factor(e: sp.Mul) -> sp.Expr:
        # softmax_variance(z, i, C)·(the row's target weight): the Hessian diagonal's scale, as
        # the hvp's (with class weights and label smoothing it was reduced here, and the
        # evaluators' float64 diagonals 2 floats apart: accuracy.py's hess_diag rows)
        rest = sp.Mul(*(a for a in e.args if not isinstance(a, softmax_variance)))
        written = reduce_sums(rest, expand=False) if numpy_form else rest
        if not reduce_sums(written).has(sp.Sum):
            return e
        scale = sp.Dummy("scale")
        kept[scale] = written
        return sp.Mul(*(a for a in e.args if isinstance(a, softmax_variance))) * scale

    hidden = expr.replace(lambda e: isinstance(e, softmax_hvp) and len(e.args) == 5, hide)
    hidden = hidden.replace(
        lambda e: (isinstance(e, sp.Mul) and e.has(sp.Sum)
                   and any(isinstance(a, softmax_variance) for a in e.args)), hide_factor)
    return reduce(hidden).xreplace(kept)


def _chunks(rows: int) -> int:
    cache.select_threading_layer()
    import numba

    return max(1, min(rows, 8 * numba.get_num_threads()))


# --------------------------------------------------------------------------- code generation
_HEADER = """\
# Generated by symloss.fast from a derived SymPy expression; do not edit.
import math

import numpy as np
from numba import njit, prange

from symloss._fastmath import (
    block_max, block_rows, block_sums, label_rows, block_sums_dot, certified, certified_b, clamped_log,
    cmp_abs_sum, cmp_products, cmp_products_f,
    cmp_sum, exp_m, exp_v, fill_exp_block_m, fill_exp_m, fill_exp_v, fits1_m, fits_m, fits_v, maximum,
    fitsk32, fitsk_m, fitsk_v, fitsz32, fitsz_m, fitsz_v, fitsz_w, fitszd32,
    prod_err, sigmoid_m, sigmoid_pow_m, sigmoid_pow_v, sigmoid_v, softplus_m, softplus_v,
    expna_m, expna_v, expna_w, exp_w, log1p_m, log1p_v, log1p_w, sigmoid_e_m, sigmoid_e_v,
    sigmoid_e_w, sigmoid_pow_l_m, sigmoid_pow_l_v, sigmoid_pow_l_w, softplus_l_m, softplus_l_v,
    softplus_l_w, log_w, pow_w, sigmoid_subq_m, sigmoid_subq_v, sigmoid_subq_w, fitsq_m,
    powi_ok, powi_w,
    sigmoid_subq_s_m, sigmoid_subq_s_w, fitsqs_m, fitsqs_v, fitsqs_w,
    fitsq_v, fitsq_w, sigmoid_pow_lb_m, sigmoid_pow_lb_v, sigmoid_pow_lb_w,
    softmax_sub_qb_m, softmax_hvp_qb_m, tier_work, TIER_BLOCK,
    modulated_slope_q_m, modulated_slope_q_v, modulated_slope_q_w,
    modulated_curvature_q_m, modulated_curvature_q_v, modulated_curvature_q_w,
    soft_modulated_slope_q_m, soft_modulated_slope_q_v, soft_modulated_slope_q_w,
    soft_modulated_curvature_q_m, soft_modulated_curvature_q_v, soft_modulated_curvature_q_w,
    tanh_m, tanh_v, tanh_w,
    sigmoid_curvature_q_m, sigmoid_curvature_q_v, sigmoid_curvature_q_w,
    exp_terms_q_m, exp_terms_q_v, exp_terms_q_w, fitsx_m, fitsx_v, fitsx_w,
    exp_term1_q_m, exp_term1_q_v, exp_term1_q_w, sigmoid_e_c,
    log_sub_q_m, log_sub_q_v, log_sub_q_w,
)
from symloss.ddouble import jitted as _ddouble

dd_sigmoid_sub = _ddouble()["sigmoid_sub"]
dd_exp_sub = _ddouble()["exp_sub"]
globals().update({"dd_" + _k: _f for _k, _f in _ddouble().items()})
dd_exp_sub = _ddouble(inline=True)["exp_sub"]  # no calls: 54 -> 10 ns, vectorized
dd_sigmoid_sub = _ddouble(inline=True)["sigmoid_sub"]  # no calls (scalar: 430 -> ~50 ns)
dd_bernoulli_curvature_v = _ddouble(inline=True)["bernoulli_curvature_v"]
from symloss._fastmath import vector_dd as _vector_dd

globals().update({"vd_" + _k: _f for _k, _f in _vector_dd().items()})  # vectorizable pairs
dd_bernoulli_curvature_m = vd_bernoulli_curvature_m  # its exact products fused multiply-adds
from symloss._fastmath import kernel_twins as _kernel_twins

globals().update(_kernel_twins(globals()))  # the helpers compiled without Python wrappers
# ddouble.py: {ddouble} (the compiled pair functions are cached inside the kernels)



@njit(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def ftz(r):
    # symloss.layout.finish: a float64 result below the smallest normal number is 0
    return r if abs(r) >= 2.2250738585072014e-308 else 0.0 * r


# No fast-math, not even contraction into FMAs: each +, −, ×, ÷ rounds as NumPy's does, so
# the NumPy evaluator, printing the same expression, does the same arithmetic.
_OPTS = dict(parallel=True, cache=True, error_model="numpy", nogil=True)
_SERIAL = dict(parallel=False, cache=True, error_model="numpy", nogil=True)
"""

_HEADER = _HEADER.replace("{ddouble}", hashlib.sha256(
    Path(__file__).with_name("ddouble.py").read_bytes()).hexdigest()[:16])

#: Below this many elements a kernel runs on one thread: waking the workers costs more
#: (measured on 2 CPUs: a serial 1M-element BCE gradient takes ~1.1 ms, about as long).
PARALLEL_MIN = 1_000_000


def _serial_twins(source: str) -> str:
    """Each ``@njit(**_OPTS)`` kernel again as ``<name>_s``, single-threaded."""
    out = [source]
    for block in source.split("\n\n@njit(**_OPTS)\n")[1:]:
        name = block.split("(", 1)[0].removeprefix("def ")
        out.append("\n\n@njit(**_SERIAL)\n" + block.replace(f"def {name}(", f"def {name}_s(", 1)
                   .replace("prange(", "range("))
    return "".join(out)


#: A later tier's section of a kernel (:func:`symloss._statements.later`): its indent, what a
#: quick twin runs instead, and the lines up to its end at the same indent.
_LATER_SECTION = re.compile(rf"^( *){re.escape(LATER)}(.*)\n(?:.*\n)*?\1{re.escape(LATER_END)}\n",
                            re.MULTILINE)
#: A kernel of a generated module: its decorator line, where it starts.
_KERNEL_START = re.compile(r"\n\n(?=@njit\(\*\*_(?:OPTS|SERIAL)\)\n)")
#: A quick twin's name: the kernel's with this before the serial twin's ``_s``.
QUICK = "_q"


def _quick_twins(source: str) -> str:
    """Each kernel of ``source`` that has a later tier again as ``<name>_q``, its quick twin:
    the same text with every later tier's section (:func:`symloss._statements.later`: a
    double-double rescue, a gathered pass 2, a row function for rows a first tier left) replaced
    by what the marker says -- ``flag[0] = 1``, "incomplete: call the full kernel" (an
    element-wise twin returns its flag, a class-axis one writes it) -- and nothing else changed.

    Why: numba compiles a kernel's later tiers and the dozens of double-double helpers they
    call on its first call, most of a cold first call's time, though they run only for the few
    elements whose first-tier test fails. Where the twin sets no flag, every element took its
    first tier, whose statements are the full kernel's (no fast-math, no contraction: the
    same IEEE operations), so the full kernel would have written the same values and no flag
    (:class:`_Staged`; tests/test_quick_kernels.py)."""
    out = [source]
    for block in _KERNEL_START.split(source)[1:]:
        if LATER not in block:
            continue
        decorator, body = block.split("\n", 1)
        name = body.split("(", 1)[0].removeprefix("def ")
        twin = _LATER_SECTION.sub(lambda m: f"{m[1]}{m[2]}\n", body)
        # the values only later tiers read, which the twin sets NaN: read nowhere else
        unread = [v for m in _LATER_SECTION.finditer(body) if "flag[0] = 1" not in m[2]
                  for v in re.findall(r"\w+", m[2].split(" = ")[0])]
        if LATER in twin or LATER_END in twin:  # pragma: no cover - a generator bug
            raise AssertionError(f"{name}: a later tier's marker without its end")
        read = [v for v in unread if len(re.findall(rf"\b{v}\b", twin)) > 1]
        if read:  # pragma: no cover - a generator bug
            raise AssertionError(f"{name}: a first tier reads {read}, marked as later tiers'")
        if "flag" not in body.split("\n", 1)[0] and "\n    flag = np.zeros(1, np.uint8)\n" not in twin:
            # an element-wise kernel without a flag of its own: the twin's, returned
            head, rest = twin.split("\n", 1)
            twin = (f"{head}\n    flag = np.zeros(1, np.uint8)\n"
                    + rest.removesuffix("    return False\n") + "    return flag[0] != 0\n")
        out.append(f"\n\n{decorator}\n" + twin.replace(f"def {name}(", f"def {name}{QUICK}(", 1))
    return "".join(out)


def _flavoured(code: str) -> dict[str, str]:
    # float32 results take one float-first test for every form (fits_v), float64 two
    return {f: code.replace("_F(", f"_{f}(").replace("fits1_v(", "fits_v(").replace("fitsx_v(", "fits_v(")
            for f in ("v", "m")}


def _ziv_pass2(steps: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """A float32 kernel's second pass (``steps``, libm's helpers) with Ziv's test
    (:func:`symloss._fastmath.fitszd32`) for the float-first form that is the whole result
    ``res`` (under tests that are never taken), where its rounding bound is known (a
    ``fitsz32`` wrapper): the float form is then taken wherever its float32 result is the
    double-double arm's, not only where it cancels by under 2⁶ (its own test). ``None``
    where there is no such form."""
    out = []
    done = False
    for target, code in steps:
        if target == "res":
            tree = ast.parse(code.strip(), mode="eval")
            node = tree.body
            while (isinstance(node, ast.IfExp) and isinstance(node.test, ast.Call)
                   and isinstance(node.test.func, ast.Name)
                   and node.test.func.id in ("fitsqs_v", "fits_m", "fitsk_m")):
                node = node.orelse  # never taken: its accurate arm is the value
            test = node.test if isinstance(node, ast.IfExp) else None
            if (isinstance(test, ast.Call) and isinstance(test.func, ast.Name)
                    and test.func.id == "fitsz32"):
                test.func.id = "fitszd32"
                test.args.append(ast.Name("divisor", ast.Load()))
                code = ast.unparse(tree)
                done = True
        out.append((target, code))
    return out if done else None


def _fits_for(code: str, flavour: str) -> str:
    """``code`` (printed in either flavour's helpers) with its float-first tests for results
    of ``flavour``'s dtype: a float32 kernel that evaluates with libm's helpers still keeps the
    float64 form wherever it leaves a float32 result's digits."""
    # float32 results: one test for every form (fits_v); float64: fits1_m for eᶻ − y
    # a form with a rounding bound: fitsk32 for float32 results (libm's helpers), else never
    if flavour == "v":  # σ(z) − y: the float64 form where it keeps float32's digits
        code = code.replace("sigmoid_subq_m(", "sigmoid_subq_v(").replace(
            "fitsqs_m(", "fitsqs_v(")
        # σ from the shared float e^(−|x|): float64's last digits are rounded away
        code = code.replace("sigmoid_e_m(", "sigmoid_e_c(")
    return code.replace("fits_m(", f"fits_{flavour}(").replace(
        "fits1_m(", "fits_v(" if flavour == "v" else "fits1_m(").replace(
        "fitsk_m(", "fitsk32(" if flavour == "v" else "fitsk_m(").replace(
        "fitsz_m(", "fitsz32(" if flavour == "v" else "fitsz_m(")


#: The helpers of symloss._fastmath, by name (read from its source: fast imports no numba):
#: its functions, those it makes by ``_flavoured`` and its aliases (``a = b = function``).
_FASTMATH = Path(__file__).with_name("_fastmath.py").read_text()
_HELPERS = frozenset(
    [a or b for a, b in re.findall(r"^(?:def (\w+)\(|(\w+) = _flavoured\()", _FASTMATH,
                                   re.MULTILINE)]
    + [name for line in re.findall(r"^[a-z_]\w*(?: = [a-z_]\w*)+$", _FASTMATH, re.MULTILINE)
       for name in line.split(" = ")[:-1]])


def _vectorizable(steps: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """``steps`` (printed with ``_F`` helpers) with the vectorizable float64 helpers ``*_w``,
    or ``None`` where a helper has no ``_w`` twin or a step has a float-first test, a
    double-double form or a certification (those keep the scalar loop's lazy branches)."""
    out = []
    for target, code in steps:
        if re.search(r"\b(fits\w*|certified|dd_\w+)\(", code):
            return None
        code = code.replace("_F(", "_w(")
        if not all(n in _HELPERS for n in re.findall(r"\b(\w+_w)\(", code)):
            return None
        out.append((target, code))
    return out


def _vector_arms(printed: list[str]) -> list[tuple[list[str], list[str] | None]] | None:
    """Each label arm's statements (printed with ``_F`` helpers), for a float64 pass that LLVM
    vectorizes: the double-double pairs as :func:`symloss._fastmath.vector_dd`'s (``vd_``),
    the float forms with the ``*_w`` helpers, :func:`~symloss._fastmath.certified_b`; ``None``
    where an arm calls libm, a helper without a ``_w`` twin, or ``t_log1p`` of anything but a
    ``t_expna`` pair (the only argument ``vd_t_log1p``'s seed is good for). An arm with a
    first tier (``fitsqs_m``: :func:`symloss._fastmath.modulated_slope_q`) comes as two lists:
    the tier alone, its failures in ``ok`` (``lower``'s plain mode), and the double-double arm
    for the elements it declined; else the arm and ``None``."""
    out: list[tuple[list[str], list[str] | None]] = []
    for n, arm in enumerate(printed):
        code = _flavoured(arm)["m"]
        # fits_m and fitsk_m are never taken (their double-double arm is); the others may be
        if re.search(r"\b(fits_v|fits1_m|fitsk_v|fitsk32)\(|\bmath\.(?!isnan\b|nan\b|inf\b)\w+\(",
                     code):
            return None
        code = code.replace("dd_t_", "vd_t_").replace("certified(", "certified_b(")
        if "dd_" in code:
            return None
        for name in set(re.findall(r"\b(\w+)_m\(", code)) - {"fits", "fitsk", "fitsqs"}:
            if name + "_w" not in _HELPERS:
                return None
            code = re.sub(rf"\b{name}_m\(", f"{name}_w(", code)
        tiered = "fitsqs_m(" in code
        lines, _ = lower([(f"h{n}", code)], " " * 12, prefix=f"g{n}_", exact=tiered)
        made = {m[1]: m[2] for m in (re.match(r"\s*(\w+) = (\w+)\(", line) for line in lines) if m}
        for arg in re.findall(r"vd_t_log1p\((\w+)\)", "\n".join(lines)):
            if made.get(arg) != "vd_t_expna":
                return None
        if not tiered:
            out.append((lines, None))
            continue
        first, _ = lower([(f"h{n}", code)], " " * 12, prefix=f"q{n}_", plain=True)
        out.append(([" " * 12 + "ok = True", *first, f"{' ' * 12}h{n} = h{n} if ok else math.nan"],
                    lines))
    return out


def _gathered(listed: str, inputs: list[str], held: list[str], lines: list[str],
              result: str) -> str:
    """The ``nb`` elements listed in ``listed`` (per block, by the loop before): their
    ``inputs`` gathered to contiguous rows of ``held`` (so that the loop over them vectorizes),
    ``lines`` evaluated over them into ``result``, and scattered back to ``out``, counting the
    NaN results in ``n_nan`` (:func:`_vector_arms_source`, :func:`_two_pass`)."""
    return ("        for i in range(nb):\n"
            f"            j = {listed}[i]\n"
            + "".join(f"            held[{k}, i] = np.float64({a}[j])\n"
                      for k, a in enumerate(inputs))
            + "        for i in range(nb):\n"
            + "".join(f"            {x} = held[{k}, i]\n" for k, x in enumerate(held))
            + "".join(f"{line}\n" for line in lines)
            + f"            held[0, i] = {result} / divisor\n"
            "        for i in range(nb):\n"
            f"            out[{listed}[i]] = held[0, i]\n"
            "            n_nan += 1 if math.isnan(held[0, i]) else 0\n")


def _vector_arms_source(arms: list[tuple[list[str], list[str] | None]], labels: tuple[str, ...],
                        n_arrays: int, direction: bool) -> str:
    """The first loop of a float64 kernel whose label arms are double-double forms: per block
    of :data:`SOFT_BLOCK`, for each label, the elements with that target listed without a
    branch, their inputs gathered to contiguous rows, the label's arm over them (no branch,
    no call: vectorized), the results scattered back; ``flag[0]`` set where one is NaN
    (uncertified, or a NaN input: :mod:`symloss.exact` looks). Other targets are left to the
    soft pass. (sigmoid_focal_loss's float64 Hessian, 1e6 elements, 1 thread: 1.0 s → 0.1 s.)
    An arm with a first tier (:func:`_vector_arms`) runs it so first, then lists the elements
    it left NaN and runs the double-double arm over them, gathered the same way."""
    inputs = [*(f"a{n}" for n in range(n_arrays)), *(["dv"] if direction else [])]
    held = [f"x{n}" for n in range(n_arrays)] + (["xv"] if direction else [])
    text = (_BLOCKS
            + "        idx = np.empty(hi - lo, np.int64)\n"
            f"        held = np.empty(({len(inputs)}, hi - lo))\n"
            "        n_nan = 0\n")
    for n, ((lines, again), label) in enumerate(zip(arms, labels, strict=True)):
        text += ("        nb = 0\n"
                 "        for jj in range(hi - lo):  # (range(lo, hi) is not vectorized)\n"
                 "            idx[nb] = lo + jj\n"
                 f"            nb += 1 if np.float64(a1[lo + jj]) == {label} else 0\n"
                 + _gathered("idx", inputs, held, lines, f"h{n}"))
        if again is not None:  # the tier's NaN elements (kept in order in idx), again
            text += ("        n_bad = 0\n"
                     "        for i in range(nb):\n"
                     "            idx[n_bad] = idx[i]\n"
                     "            n_bad += 1 if math.isnan(out[idx[i]]) else 0\n"
                     + later("        if n_bad > 0:\n"
                             "            n_nan -= n_bad\n"
                             "            nb = n_bad\n"
                             + _indented(_gathered("idx", inputs, held, again, f"h{n}"), 4),
                             " " * 8, "if n_bad > 0: flag[0] = 1"))
    return text + ("        if n_nan > 0:\n"
                   "            flag[0] = 1\n")


#: The direction ``v`` of a Hessian-vector product, as :attr:`Derivation.hvp_expr` writes it:
#: a Symbol for element-wise losses, an IndexedBase on a class axis. In the generated code it
#: is the array ``dv`` (``dr``: its row), so it never clashes with a loop temporary.
_DIRECTION = sp.Symbol("v", real=True)
_DIRECTION_LABEL = "v"


def _at_labels(expr: sp.Expr, target: sp.Basic) -> list[tuple[sp.Expr, sp.Expr]] | None:
    """``[(label, expr at that label), ...]``: each Piecewise of ``expr`` whose conditions read
    only the target (``Eq(y, 0)``, ``Eq(y, 0) | Eq(y, 1)``) replaced by the arm it takes where
    the target is the label; the rest of ``expr`` is untouched (the same arithmetic, with
    ``y`` still read). ``None`` where ``expr`` has no such Piecewise."""
    pieces = [p for p in expr.atoms(sp.Piecewise)
              if p.args[-1][1] == sp.true
              and all(c.free_symbols == {target} for _, c in p.args[:-1])]
    labels = sorted({e.rhs if e.lhs == target else e.lhs
                     for p in pieces for _, c in p.args[:-1] for e in c.atoms(sp.Eq)
                     if target in (e.lhs, e.rhs)}, key=sp.default_sort_key)
    if not pieces or not labels or not all(c.is_number for c in labels):
        return None
    out = []
    for label in labels:
        chosen = {}
        for p in pieces:
            taken = [arm for arm, c in p.args if c.subs(target, label) == sp.true]
            if not taken:
                return None
            chosen[p] = taken[0]
        out.append((label, expr.xreplace(chosen)))
    return out


def _off_labels(expr: sp.Expr, target: sp.Basic) -> sp.Expr:
    """``expr`` where the target is none of the labels :func:`_at_labels` reads: each
    Piecewise whose conditions read only the target as its last (``True``) arm."""
    pieces = [p for p in expr.atoms(sp.Piecewise)
              if p.args[-1][1] == sp.true
              and all(c.free_symbols == {target} for _, c in p.args[:-1])]
    return expr.xreplace({p: p.args[-1][0] for p in pieces})


#: Elements per block of an element-wise kernel's soft-target and float-first passes.
SOFT_BLOCK = 4096
#: The head of an element-wise kernel's loop over blocks of :data:`SOFT_BLOCK` elements, and
#: of its loop over every element (:func:`_by_class` rewrites both where it reads per-class arrays).
_BLOCKS = (f"    for b in prange((out.size + {SOFT_BLOCK - 1}) // {SOFT_BLOCK}):\n"
           f"        lo = b * {SOFT_BLOCK}\n"
           f"        hi = min(lo + {SOFT_BLOCK}, out.size)\n")
_EACH = "    for j in prange(out.size):\n"


def _indented(lines: str, width: int) -> str:
    return "".join(" " * width + line for line in lines.splitlines(True))


@dataclasses.dataclass(frozen=True)
class _Elementwise:
    """What :func:`_elementwise_source` decided for one element-wise kernel, that each
    flavour's text (:func:`_flavour_text`) reads."""

    #: whether the kernel takes the direction array ``dv`` (the hvp)
    direction: bool
    #: ``x<n>`` of the given arrays loaded as float64, then ``xv``
    load_v: str
    #: (target, code) per flavour: the label arms h0, h1, ... then the result
    by_flavour: dict[str, list[tuple[str, str]]]
    #: float64 results: the label arms' branch-free steps (the *_w helpers), or None
    vector_m: list[tuple[str, str]] | None
    #: float64 results: the double-double label arms gathered by label (_vector_arms), or None
    arms_dd: Any
    #: the target's labels that take the hard form
    labels: tuple[str, ...]
    #: the soft form's code, or None where there is one form
    soft_code: str | None
    #: the condition of a soft target (none of the labels)
    soft_test: str
    #: the label pass skips a block of soft targets only where a soft pass writes them
    only_hard: str | None


def _flavour_text(plan: _Elementwise, flavour: str, steps_f: list[tuple[str, str]],
                  n_in: int) -> str:
    """The text of an element-wise kernel's ``flavour`` (``"v"``: float32 results, ``"m"``:
    float64), its loops reading ``n_in`` arrays: the given ones, then the per-class tables of
    scale pairs (:meth:`_Printer._scale_pair`)."""
    loads = "".join(f"x{n} = np.float64(a{n}[j])\n" for n in range(n_in))
    text = ""
    first, tested = lower(steps_f, " " * 12, plain=True)
    one_test = sum(line.lstrip().startswith("ok = ") for line in first) == 1
    held = [*(f"x{n}" for n in range(n_in)), *(["xv"] if plan.direction else [])]
    vector = flavour == "m" and plan.vector_m is not None
    two_pass = not vector and tested and (
        flavour == "v" or (one_test and not any("dd_" in line for line in first)))
    loop_steps = plan.vector_m if vector and plan.vector_m is not None else steps_f
    filtered = None
    if not (flavour == "m" and plan.arms_dd is not None):
        # float64 with one test keeps its gathered pass 2 (the accurate arm of the
        # test for every element there: another rounding than the float form's)
        filtered = (_filtered(first) if flavour == "v" else None) if two_pass else (
            _filtered(lower(loop_steps, " " * 12)[0]))
    if filtered is not None:
        # an exact sign of a sum of products: its float64 filter in a first pass, the
        # elements it left undecided again with the exact one (_filtered)
        again = ([(t, _fits_for(c, flavour)) for t, c in plan.by_flavour["m"]] if two_pass
                 else loop_steps)
        text += _two_pass(loads + plan.load_v, filtered, again, None, held, plan.only_hard)
    elif flavour == "m" and plan.vector_m is not None:
        lines, _ = lower(plan.vector_m, " " * 8)
        text += (_EACH
                 + _indented(loads + plan.load_v, 8)
                 + "".join(f"{line}\n" for line in lines)
                 + "        out[j] = res / divisor\n")
    elif flavour == "m" and plan.arms_dd is not None:
        text += _vector_arms_source(plan.arms_dd, plan.labels, n_in, plan.direction)
    elif tested and (flavour == "v" or (one_test and not any("dd_" in line for line in first))):
        # float64 with one test (no double-double in the float form): pass 2 gathered,
        # vectorized; float32 (libm's helpers: scalar code either way): branching
        gather = ([*(f"a{n}" for n in range(n_in)), *(["dv"] if plan.direction else [])]
                  if flavour == "m" else None)
        text += _two_pass(loads + plan.load_v, first,
                          [(t, _fits_for(c, flavour)) for t, c in plan.by_flavour["m"]],
                          gather, held, plan.only_hard)
    else:
        lines, _ = lower(steps_f, " " * 8)
        in_pairs = (_w_helpers(lines) if flavour == "m"
                    and any("dd_" in line for line in lines) else None)
        if in_pairs is not None:
            # a float64 form taken in double-double for every element (fits_m is
            # never): its pairs vector_dd's, its helpers the *_w ones, so that the
            # loop has no calls and LLVM vectorizes it (1e6 elements, 1 thread:
            # tweedie_loss's gradient 233 -> 47 ms, log_cosh_loss's hvp 140 -> 20);
            # certified_b leaves an uncertified result NaN, counted: flag[0] set
            text += ("    n_dd = 0\n"
                     + _EACH
                     + _indented(loads + plan.load_v, 8)
                     + "".join(f"{line}\n" for line in in_pairs)
                     + "        out[j] = res / divisor\n"
                     "        n_dd += 1 if res != res else 0\n"
                     "    if n_dd > 0:  # uncertified (or NaN inputs): symloss.exact looks\n"
                     "        flag[0] = 1\n")
        else:
            text += (_EACH
                     + _indented(loads + plan.load_v, 8)
                     + "".join(f"{line}\n" for line in lines)
                     + "        out[j] = res / divisor\n")
    if plan.soft_code is not None:
        loop = _EACH
        hard_body = None
        if text.startswith(loop) and text.count("prange(") == 1:
            # one loop over every element: run per block, and only in blocks that
            # have a hard target (soft targets alone: the label pass is not paid)
            hard_body, text = _indented(text[len(loop):], 8), ""
        text += _soft_pass(_fits_for(_flavoured(plan.soft_code)["m"], flavour), plan.soft_test,
                           n_in, plan.direction, hard_body, flavour == "m")
    return text


def _elementwise_source(kernels: list[tuple[str, sp.Expr, sp.Expr]],
                        arrays: list[sp.Basic], scalars: list[sp.Basic],
                        classed: int = 0) -> str:
    """The element-wise kernels ``<what>_F`` for each ``(what, hard, soft)``.

    Each is one ``prange`` loop ``out[j] = (expr) / divisor`` over the flattened arrays, where
    ``expr`` is ``hard`` for a target (``arrays[1]``) of 0 or 1 and ``soft`` else (one form
    when they are the same). An expression with the direction ``v`` (the hvp) takes its array
    ``dv`` after the arrays. Each returns whether it left an element NaN for
    :mod:`symloss.exact` (:func:`_returning_flag`). The last ``classed`` arrays hold one value
    per class of a flattened ``rows × C`` array (:func:`_by_class`); a scale pair that reads
    only them and the scalars (a class weight over C, ``w/C``) is computed once per class into
    a table the loops read as one more array (:meth:`_Printer._scale_pair`), not in every
    element.
    """
    names: dict[sp.Basic, str] = {a: f"x{n}" for n, a in enumerate(arrays)}
    names.update({s: f"c{n}" for n, s in enumerate(scalars)})
    names[_DIRECTION] = "xv"
    array_params = [f"a{n}" for n in range(len(arrays))]
    scalar_params = [f"c{n}" for n in range(len(scalars))]
    #: the per-class tables: a scale pair's printed code -> the number of its first array
    #: (two: its high and low parts), numbered after the arrays
    tables: dict[str, int] = {}
    per_class = frozenset(arrays[len(arrays) - classed:]) if classed else frozenset()

    def printer() -> _Printer:
        return _Printer(names, {}, certify=True, per_class=per_class, tables=tables,
                        first_table=len(arrays))

    src = [_HEADER]
    for what, hard, soft in kernels:
        code = printer().doprint(hard)
        printed: list[str] = []  # the label arms of a split Piecewise, computed first
        branchy = code
        # A hard label takes the stable kernel form (nothing cancels); a soft one the derived
        # gradient (σ(z) − y: one rounding in the cancellation, as few as torch's). The hard
        # form is written for every element by a branch-free loop (LLVM vectorizes it), then
        # a second loop rewrites the elements whose target is soft: a per-element choice in
        # one loop would keep it scalar (1e6 float32 bce_with_logits: 12 -> 2 ms).
        soft_code = printer().doprint(soft) if soft != hard else None
        labels: tuple[str, ...] = ("0.0", "1.0")
        arms = _at_labels(hard, arrays[1]) if len(arrays) > 1 and soft == hard else None
        if arms is not None:
            # A Piecewise on the target's value (sigmoid_focal_loss: Eq(y, 0), Eq(y, 1), else
            # the soft form): the expression at each label computed and one chosen (a select,
            # vectorized); the whole expression, as printed, for the other targets.
            labels = tuple(str(float(c)) for c, _ in arms)
            printed = [printer().doprint(e) for _, e in arms]
            # the soft pass reads targets that are none of the labels: each such Piecewise
            # as its last arm (no branch on the target left in its loop)
            soft_code = printer().doprint(_off_labels(hard, arrays[1]))
            code = f"h{len(arms) - 1}"
            branchy = printed[-1]  # libm's helpers are calls: there one arm only, branching
            for n, (c, _) in reversed(list(enumerate(arms[:-1]))):
                code = f"(h{n} if x1 == {float(c)} else {code})"
                branchy = f"(({printed[n]}) if x1 == {float(c)} else ({branchy}))"
        # the hvp takes its direction even where the Hessian is 0 (a piecewise-linear loss)
        direction = what == "hvp" or _DIRECTION in hard.free_symbols | soft.free_symbols
        params = ", ".join([*array_params, *(["dv"] if direction else []), *scalar_params])
        load_v = "xv = np.float64(dv[j])\n" if direction else ""
        # (target, code) per flavour: the label arms h0, h1, ... then the result
        steps = [(f"h{n}", e) for n, e in enumerate(printed)]
        by_flavour = {f: [(t, _flavoured(c)[f]) for t, c in [*steps, ("res", code)]]
                      for f in ("v", "m")}
        vector_m = None
        arms_dd = None
        if printed:
            by_flavour["m"] = [("res", _flavoured(branchy)["m"])]
            # float64 results: the label arms branch-free with the *_w helpers (fdlibm's exp
            # and log1p, within 1 ulp as libm's, but vectorizable), where every helper the
            # arms call has one and no arm has a float-first test or a double-double form
            vector_m = _vectorizable([*steps, ("res", code)])
            # else, double-double arms: gathered by label and vectorized (_vector_arms)
            arms_dd = _vector_arms(printed) if vector_m is None and soft_code is not None else None
        if vector_m is None and arms_dd is None and what in ("hvp", "hess"):
            # float64 second derivatives without a float-first test: the *_w helpers too
            # (exp_m within 0.52 ulp, branch-free, against libm's opaque call), so that the
            # loop vectorizes: σ(z)σ(−z) of 1e6 float64 logits 25 -> ~9 ms, torch's double
            # backward ~35 ms
            vector_m = _vectorizable([*steps, ("res", code)])
        if what == "grad" and "x1 ==" in code and not printed:
            # A form chosen per element by the target's value (a Piecewise on it) is a branch
            # LLVM cannot vectorize around; scalar, libm's exp is 2.5-3x faster than the
            # polynomial exp_v (measured, 1e6 float32 focal: 92 -> 37 ms) and no less exact.
            by_flavour["v"] = by_flavour["m"]
        soft_test = " & ".join(f"(x1 != {c})" for c in labels)
        # the label pass skips a block of soft targets only where a soft pass writes them
        only_hard = soft_test if soft_code is not None else None

        plan = _Elementwise(direction, load_v, by_flavour, vector_m, arms_dd, labels, soft_code,
                            soft_test, only_hard)
        for flavour, steps_f in by_flavour.items():
            steps_f = [(t, _fits_for(c, flavour)) for t, c in steps_f]
            n_in = len(arrays) + 2 * len(tables)
            text = _flavour_text(plan, flavour, steps_f, n_in)
            if n_in > len(arrays) and not _reads_tables(text, range(len(arrays), n_in)):
                # a flavour that takes no table (float32: no scale pair) gathers none
                n_in = len(arrays)
                text = _flavour_text(plan, flavour, steps_f, n_in)
            if classed:
                text = _by_class(text, range(len(arrays) - classed, len(arrays)),
                                 {n: pair for pair, n in tables.items() if n < n_in})
            src.append(_returning_flag(f"{what}_{flavour}(out, divisor, {params})", text))
    return "".join(src)


#: :func:`symloss.layout.finish`, the rule of the last rounding, in a float64 kernel: each
#: ``x / divisor`` it stores is flushed to 0 below the smallest normal number
#: (:data:`_FTZ_M`, in the loop), and where the divisor is above 1 a read-only pass after the
#: loop leaves an overflowed element NaN (flagged) for :mod:`symloss.exact`. (float32 results
#: need neither: their float64 values round to float32 once, flushing what is below its range.)
_FINISH_M = """\
    if divisor > 1.0:
        n_inf = 0
        for j in prange(out.size):
            n_inf += 1 if abs(out[j]) == math.inf else 0
        if n_inf > 0:
            for j in range(out.size):
                if abs(out[j]) == math.inf:
                    out[j] = math.nan
            flag[0] = 1
"""
_FTZ_M = re.compile(r"\b(res|h\d+) / divisor\b")


class _SoftWeights(ast.NodeTransformer):
    """In the soft pass the target ``x1`` is none of the ``labels``: a product's guard ``(f if
    w != 0.0 else 0.0)`` (:meth:`_Printer._print_Mul`: 0·softplus(±∞) = 0) on a weight ``w``
    of ``x1`` or ``c − x1`` for a label ``c`` -- nonzero there (IEEE: ``a − b = 0`` only where
    ``a = b``) -- is ``f``: the same values, without the branch that kept LLVM from vectorizing
    the pass (float32 sigmoid_focal_loss, 1e6 soft targets, 1 thread: 16.9 -> 12.7 ns an
    element)."""

    def __init__(self, labels: set[float]) -> None:
        self.labels = labels

    def _nonzero(self, w: ast.expr) -> bool:
        if isinstance(w, ast.Name) and w.id == "x1":
            return 0.0 in self.labels
        return (isinstance(w, ast.BinOp) and isinstance(w.op, ast.Sub)
                and isinstance(w.left, ast.Constant) and isinstance(w.left.value, int | float)
                and isinstance(w.right, ast.Name) and w.right.id == "x1"
                and float(w.left.value) in self.labels)

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        self.generic_visit(node)
        t = node.test
        if (isinstance(node.orelse, ast.Constant) and node.orelse.value == 0.0
                and isinstance(t, ast.Compare) and len(t.ops) == 1
                and isinstance(t.ops[0], ast.NotEq) and isinstance(t.comparators[0], ast.Constant)
                and t.comparators[0].value == 0.0 and self._nonzero(t.left)):
            return node.body
        return node


class _Pow(ast.NodeTransformer):
    """``a ** b`` as ``pow_w(a, b)`` (libm's pow is an opaque call), except an integer power
    (numba multiplies)."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow) and not (
                isinstance(node.right, ast.Constant) and isinstance(node.right.value, int)):
            return ast.Call(ast.Name("pow_w", ast.Load()), [node.left, node.right], [])
        return node


class _ScalarPowers(ast.NodeTransformer):
    """Each ``pow_w(a, c)`` whose exponent is a per-call scalar ``c<n>`` as ``powi_w(a, c)``;
    the scalars in ``found``."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        if (isinstance(node.func, ast.Name) and node.func.id == "pow_w" and len(node.args) == 2
                and isinstance(node.args[1], ast.Name) and re.fullmatch(r"c\d+", node.args[1].id)):
            self.found.append(node.args[1].id)
            return ast.Call(ast.Name("powi_w", ast.Load()), node.args, [])
        return node


def _whole_powers(lines: list[str]) -> tuple[str, list[str]] | None:
    """``lines`` (lowered, vectorizable) with each ``pow_w(a, c)`` whose exponent is a
    per-call scalar ``c`` as ``powi_w(a, c)``, and the test that ``c`` is one
    :func:`symloss._fastmath.powi_w` takes (a whole number 0 … 7; several and-ed), for a loop
    printed twice, the choice made once per block; ``None`` where no line has one. In a
    vectorized loop a select between the two (or a branch inside it: LLVM does not unswitch
    it) pays for pow_w's log and exp at every element (sigmoid_focal_loss's (1 − p_t)^γ at its
    default γ = 2)."""
    out: list[str] = []
    powers = _ScalarPowers()
    for line in lines:
        if "pow_w(" in line:
            indent = line[:len(line) - len(line.lstrip())]
            line = indent + ast.unparse(powers.visit(ast.parse(line.strip())))
        out.append(line)
    if not powers.found:
        return None
    return " & ".join(f"powi_ok({c})" for c in dict.fromkeys(powers.found)), out


def _w_helpers(lines: list[str]) -> list[str] | None:
    """Lowered ``lines`` (``*_m`` helpers, ``dd_`` pairs, ``certified``) with their
    vectorizable twins: the ``*_w`` helpers, :func:`symloss._fastmath.vector_dd`'s pairs
    (``vd_``), :func:`~symloss._fastmath.certified_b`; ``None`` where one has no twin, a line
    calls libm, or ``t_log1p`` reads anything but a ``t_expna`` pair (``vd_t_log1p``'s seed
    is good in [0, 1] only)."""
    code = "\n".join(lines)
    if re.search(r"\bmath\.(?!isnan\b|nan\b|inf\b|floor\b)\w+\(", code):
        return None
    code = re.sub(r"\bdd_(t_\w+|sigmoid_sub|exp_sub)\(", r"vd_\1(", code).replace(
        "dd_inv_hypot1_cube_m(", "vd_inv_hypot1_cube(")
    code = code.replace("certified(", "certified_b(")
    if re.search(r"\bdd_\w+\(", code):
        return None
    for name in set(re.findall(r"\b(\w+)_m\(", code)):
        if name + "_w" not in _HELPERS:
            return None
        code = re.sub(rf"\b{name}_m\(", f"{name}_w(", code)
    out = code.split("\n")
    made = {m[1]: m[2] for m in (re.match(r"\s*(\w+) = (\w+)\(", line) for line in out) if m}
    for arg in re.findall(r"vd_t_log1p\((\w+)\)", code):
        if made.get(arg) != "vd_t_expna":
            return None
    return out


def _soft_pass(code: str, soft_test: str, n_arrays: int, direction: bool,
               hard_body: str | None = None, count_apart: bool = False) -> str:
    """The loop of an element-wise kernel over the elements whose target is soft (``code``,
    printed with ``*_m`` helpers and the flavour's float-first tests), after the label pass
    wrote every element: per block of :data:`SOFT_BLOCK`, the soft elements counted, then

    * where the form has a float-first test that can pass (``fits_v``, ``fitsk32``,
      ``fits1_m``): the float form, branch-free with the ``*_w`` helpers (vectorized), NaN
      where a test fails -- over the block's arrays as they are where every target in it is
      soft, else over the soft elements listed without a branch and their inputs gathered to
      contiguous rows -- then the elements left NaN listed;
    * the accurate form over the elements listed (every test taken as failed, the pairs
      :func:`symloss._fastmath.vector_dd`'s: vectorized), scattered back, ``flag[0]`` set
      where one is NaN (uncertified or NaN inputs: :mod:`symloss.exact` looks).

    A form without vectorizable twins keeps a scalar loop over the listed elements, its tests
    branched on. ``hard_body`` (the body of a label pass that is one loop over ``j``): run
    first in each block that has an element with a hard target, instead of a pass of its own.
    (binary_cross_entropy_with_logits, 1e6 soft targets, 1 thread, float64: the scalar
    double-double loop after the label pass 430 ms; this 25 ms, torch 25-29 ms.)"""
    inputs = [*(f"a{n}" for n in range(n_arrays)), *(["dv"] if direction else [])]
    held = [f"x{n}" for n in range(n_arrays)] + (["xv"] if direction else [])
    scalar = code
    labels = {float(c) for c in re.findall(r"\bx1 != ([-+.\w]+)\)", soft_test)}
    code = ast.unparse(_Pow().visit(_SoftWeights(labels).visit(ast.parse(code.strip(),
                                                                          mode="eval"))))
    first, tested = lower([("res", code)], " " * 12, prefix="f", plain=True)
    first_w = _w_helpers(first) if tested and not any("dd_" in line for line in first) else None
    exact_w = _w_helpers(lower([("res", code)], " " * 12, prefix="e", exact=True)[0])
    listed = ("        nb = 0\n"
              "        for jj in range(hi - lo):  # (range(lo, hi) is not vectorized)\n"
              "            idx[nb] = lo + jj\n"
              "            x1 = np.float64(a1[lo + jj])\n"
              f"            nb += 1 if {soft_test} else 0\n")
    text = (_BLOCKS
            + "        idx = np.empty(hi - lo, np.int64)\n"
            "        nb = 0\n"
            "        for jj in range(hi - lo):  # counted first: a count vectorizes, a list not\n"
            "            x1 = np.float64(a1[lo + jj])\n"
            f"            nb += 1 if {soft_test} else 0\n"
            + ("        if nb < hi - lo:\n"
               "            for jj in range(hi - lo):\n"
               "                j = lo + jj\n" + hard_body if hard_body is not None else "")
            + "        if nb == 0:\n"
            "            continue\n"
            f"        held = np.empty(({len(inputs)}, nb))\n"
            "        n_nan = 0\n")
    if first_w is None:
        text += listed
    else:
        # A block of soft targets only (the usual case): the float form straight over the
        # arrays, without the list, the gather and the scatter, then the elements it declined
        # listed (float32 binary_cross_entropy_with_logits, 1e6 soft targets, the serial
        # kernel: 10 -> 8 ns an element, with sigmoid_subq_v's margin 4.5)
        loads = "".join(f"{x} = np.float64({a}[j])\n" for a, x in zip(inputs, held, strict=True))

        def straight(lines: list[str], width: int) -> str:
            # the float form over the block's arrays, NaN where a test fails
            return _indented("            for jj in range(hi - lo):\n"
                             "                j = lo + jj\n"
                             + _indented(loads, 16)
                             + "                ok = True\n"
                             + _indented("".join(f"{line}\n" for line in lines), 4)
                             + "                out[j] = res / divisor if ok else math.nan\n"
                             + ("" if count_apart
                                else "                n_bad += 1 if math.isnan(out[j]) else 0\n"),
                             width)

        whole = _whole_powers(first_w)
        # a power to a per-call scalar exponent: the loop again with powi_w where the scalar
        # is a small whole number (its choice made here, not per element)
        loop = (straight(first_w, 0) if whole is None else
                f"            if {whole[0]}:\n" + straight(whole[1], 4)
                + "            else:\n" + straight(first_w, 4))
        text += ("        if nb == hi - lo:\n"
                 "            n_bad = 0\n"
                 + loop
                 # float64: counted in a loop of its own: counted in the loop above, the float
                 # form was left scalar where the kernel has a double-double tier after it
                 # (multilabel_soft_margin_loss's float64 weighted soft gradient, 1e5
                 # elements, 1 thread, the serial kernel with every target soft: 3.0 -> 0.85
                 # ms); float32 (binary_cross_entropy_with_logits:soft, 1e6: 8.1 -> 10.3 ms)
                 # not
                 + ("            for jj in range(hi - lo):\n"
                    "                n_bad += 1 if math.isnan(out[lo + jj]) else 0\n"
                    if count_apart else "")
                 + "            if n_bad == 0:\n"
                 "                continue\n"
                 "            nb = 0\n"
                 "            for jj in range(hi - lo):\n"
                 "                idx[nb] = lo + jj\n"
                 "                nb += 1 if math.isnan(out[lo + jj]) else 0\n"
                 "        else:\n"
                 + _indented(listed, 4)
                 + "            for i in range(nb):\n"
                 "                j = idx[i]\n"
                 + "".join(f"                held[{k}, i] = np.float64({a}[j])\n"
                           for k, a in enumerate(inputs))
                 + "            for i in range(nb):\n"
                 + "".join(f"                {x} = held[{k}, i]\n" for k, x in enumerate(held))
                 + "                ok = True\n"
                 + _indented("".join(f"{line}\n" for line in first_w), 4)
                 + "                held[0, i] = res / divisor if ok else math.nan\n"
                 "            n_bad = 0\n"
                 "            for i in range(nb):\n"
                 "                out[idx[i]] = held[0, i]\n"
                 "                idx[n_bad] = idx[i]\n"
                 "                n_bad += 1 if math.isnan(held[0, i]) else 0\n"
                 "            nb = n_bad\n")
    if exact_w is not None:
        accurate = _gathered("idx", inputs, held, exact_w, "res")
    else:
        again, _ = lower([("res", scalar)], " " * 12, prefix="s")
        loads = "".join(f"x{n} = np.float64(a{n}[j])\n" for n in range(n_arrays))
        accurate = ("        for i in range(nb):\n"
                    "            j = idx[i]\n"
                    + _indented(loads + ("xv = np.float64(dv[j])\n" if direction else ""), 12)
                    + "".join(f"{line}\n" for line in again)
                    + "            out[j] = res / divisor\n")
    # the elements listed: a later tier (every soft element, where the form has no first tier)
    text += later(accurate, " " * 8, "if nb > 0: flag[0] = 1")
    return text + ("        if n_nan > 0:\n"
                   "            flag[0] = 1\n")


def _returning_flag(signature: str, body: str) -> str:
    """The element-wise kernel ``signature`` with ``body``, returning whether it left an
    element NaN for :mod:`symloss.exact` (``certified`` and the gathered pass 2 set ``flag[0]``
    where they do; a kernel without them returns ``False``): the caller passes no flag array
    in, and reads no flag out of one. float64 kernels end with :data:`_FINISH_M`."""
    if "_m(out, divisor" in signature:
        body = _FTZ_M.sub(r"ftz(\1 / divisor)", body) + _FINISH_M
    if not re.search(r"\bflag\b", body):
        return f"\n\n@njit(**_OPTS)\ndef {signature}:\n{body}    return False\n"
    return (f"\n\n@njit(**_OPTS)\ndef {signature}:\n    flag = np.zeros(1, np.uint8)\n{body}"
            "    return flag[0] != 0\n")


#: :data:`symloss._fastmath.CMP_UNDECIDED` (read here as a literal: fast imports no numba).
CMP_UNDECIDED = 2.0
_CMP_CALL = re.compile(r"^(\s*)(\w+) = cmp_products\((.*)\)$")


def _filtered(lines: list[str]) -> list[str] | None:
    """``lines`` (lowered, in a loop whose ``ok`` is set to ``True`` first) with each exact
    sign of a sum of products, ``u = cmp_products(...)``, taken from its float64 filter alone
    (:func:`symloss._fastmath.cmp_products_f`) and ``ok`` and-ed with its being decided there;
    ``None`` where no line calls ``cmp_products``. The elements left not ``ok`` are evaluated
    again, exactly, by :func:`_two_pass`'s second pass: a call to the exact expansion in the
    loop, even never taken, kept it scalar and its sign a branch (margin_ranking_loss's
    gradient, 1e6 elements, 1 thread: 0.5 -> 29 ms)."""
    out: list[str] = []
    for line in lines:
        m = _CMP_CALL.match(line)
        if m is None:
            out.append(line)
        else:
            out += [f"{m[1]}{m[2]} = cmp_products_f({m[3]})",
                    f"{m[1]}ok = ok & ({m[2]} != {CMP_UNDECIDED})"]
    return out if len(out) > len(lines) else None


def _two_pass(loads: str, first: list[str], again_steps: list[tuple[str, str]],
              gather: list[str] | None, held: list[str], soft_test: str | None = None) -> str:
    """The loop of a kernel whose float form has float-first tests, in two passes per block
    of :data:`SOFT_BLOCK` elements (a branch per element on the tests would keep the whole
    loop scalar).

    Pass 1 evaluates the float forms branch-free, ``first`` (lowered ``plain``: each element's
    tests and-ed into ``ok``), and writes NaN where a test fails. Where a block left NaN,
    pass 2 evaluates ``again_steps`` there, one of two ways:

    * ``gather`` (a float64 kernel with one test: the input arrays, read into ``held``): the
      elements left NaN listed without a branch, their inputs gathered to contiguous rows, and
      the accurate arm of the test evaluated branch-free over them (``dd_exp_sub`` is inlined):
      LLVM vectorizes it (poisson_nll_loss's float64 gradient, Poisson(2) targets at
      z ~ 3·N(0, 1), 15% of them eᶻ/y in [½, 2]: 1e6 elements 24 -> 9 ms); a NaN left there
      (uncertified, or NaN inputs) sets ``flag`` for :mod:`symloss.exact` to look;
    * else (``None``: float32 kernels, whose libm helpers are scalar code either way, and
      calls compile faster than numba's inlined polynomials): a scalar loop over the block,
      the tests branched on, double-double where they fail.

    ``soft_test`` (the label pass of a kernel with a soft pass after it, :func:`_soft_pass`):
    a block whose targets all pass it is skipped, as the soft pass writes each of its
    elements (sigmoid_focal_loss, 1e6 soft targets, float32, 1 thread: the label pass's
    hard forms at every element cost ~7 ms of the gradient's ~24 and ~10 of the hvp's ~30).
    """
    head = (_BLOCKS
            + ("" if soft_test is None else
               "        n_hard = 0\n"
               "        for jj in range(hi - lo):  # counted first: a count vectorizes\n"
               "            x1 = np.float64(a1[lo + jj])\n"
               f"            n_hard += 0 if {soft_test} else 1\n"
               "        if n_hard == 0:\n"
               "            continue\n")
            + "        n_bad = 0\n"
            "        for jj in range(hi - lo):  # (range(lo, hi) is not vectorized)\n"
            "            j = lo + jj\n"
            + _indented(loads, 12)
            + "            ok = True\n"
            + "".join(f"{line}\n" for line in first))
    if gather is None:
        ziv = _ziv_pass2(again_steps)
        again, _ = lower(ziv or again_steps, " " * 16, prefix="w")
        pass2 = ("        for j in range(lo, hi):\n"
                 "            if math.isnan(out[j]):\n"
                 + _indented(loads, 16)
                 + "".join(f"{line}\n" for line in again)
                 + "                out[j] = res / divisor\n")
        # Where Ziv's test takes nearly every element the first pass left (it cancelled by
        # over 2⁶: 0.5-1% of random ones), pass 2 is no later tier, only its double-double
        # arm is (marked by lower): a quick twin completes there without it
        first_tier = ziv is not None and "dd_" not in _LATER_SECTION.sub("", pass2)
        return (head
                + "            out[j] = res / divisor if ok else math.nan\n"
                "            n_bad += 0 if ok else 1\n"
                "        if n_bad == 0:\n"
                "            continue\n"
                + (pass2 if first_tier else later(pass2, " " * 8, "flag[0] = 1")))
    again, _ = lower(again_steps, " " * 12, prefix="w", exact=True)
    again = [line.replace("certified(", "certified_b(") for line in again]
    return (head
            + "            r = res / divisor if ok else math.nan\n"
            "            out[j] = r\n"
            "            n_bad += 1 if r != r else 0\n"
            "        if n_bad == 0:\n"
            "            continue\n"
            + later("        bad = np.empty(n_bad + 1, np.int64)\n"
                    "        nb = 0\n"
                    "        for jj in range(hi - lo):\n"
                    "            bad[nb] = lo + jj\n"
                    "            nb += 1 if math.isnan(out[lo + jj]) else 0\n"
                    # the inputs gathered to contiguous rows, so that the loop vectorizes
                    f"        held = np.empty(({len(gather)}, nb))\n"
                    "        n_nan = 0\n"
                    + _gathered("bad", gather, held, again, "res")
                    + "        if n_nan > 0:  # uncertified (or NaN inputs): symloss.exact looks\n"
                    "            flag[0] = 1\n", " " * 8, "flag[0] = 1"))


#: Independent partial sums in a float32 kernel's class sums: one chain of adds is latency
#: bound (each add waits for the previous one); interleaved chains run several times faster.
SUM_LANES = 8


#: The index of a hoisted row fill (:func:`_class_fill`), not a sum.
_FILL = "=fill"
#: The indices of a value computed once per call (per chunk of rows), before the rows: a
#: scalar, and a fill of one pair per class (what a row's fill reads that reads no row).
_SETUP = "=setup"
_SETUP_FILL = "=setup_fill"
#: A table of one row value per class (:meth:`_Printer._label_table`), NaN as each chunk
#: starts, after its class sums (their index after the prefix), each summed where it fills.
_SETUP_TABLE = "=setup_table"
_TABLE_SUM = "=table_sum:"
#: The index of a call once per block of rows, after the softmax passes (a block tier), and
#: of a row fill written for each row of the block before it (what a block tier reads).
_BLOCK = "=block"
_BLOCK_FILL = "=block_fill"
#: The index of a row fill that only later tiers read: filled by the first later tier of a
#: row that reads it (:func:`_lazy_fills`), not as each row starts.
_LATER_FILL = "=later_fill"
#: An index's suffix: the entry is for float64 (``m``) or float32 (``v``) kernels only.
_ONLY_M, _ONLY_V = "@m", "@v"
#: A class sum's index prefix: lane sums in every flavour (:meth:`_Printer._lanes`).
_LANES = "~"


def _for_flavour(hoisted: list[tuple[str, str, str]],
                 flavour: str) -> list[tuple[str, str, str]]:
    """The hoisted entries of ``flavour``'s kernels, their indices without the suffix."""
    out = []
    for acc, k, body in hoisted:
        kind, _, only = k.partition("@")
        if only in ("", flavour):
            out.append((acc, kind, body))
    return out


#: The per-row arrays a class-axis row function reads (its block's row ``q`` of ``<name>b``
#: where a block tier fills one, :func:`_fallback_rows`).
_ROW_ARRAYS = re.compile(r"\b(lbuf\d*|abuf\d+[hl])\b")


def _fallback_rows(cells: str, first: str, quick: str, row: str) -> str:
    """A block's loop (after its first tier) that sets each row ``q``'s values ``cells`` (a
    block array's row) to the tier's ``quick`` and, where its first value is the tier's NaN
    marker (``first``, the first cell), to the double-double row function ``row`` (its arguments the row's own: ``zr``,
    ``m``, the direction's or target's row, its buffers' rows)."""
    pad = " " * 16
    loads = ["zr = z[r0 + q]", "m = ms[q]"]
    loads += [f"{a} = {b}[r0 + q]" for a, b in (("dr", "dv"), ("yr", "y"))
              if re.search(rf"\b{a}\b", row)]
    loads += [f"{b} = {b}b[q]" for b in dict.fromkeys(_ROW_ARRAYS.findall(row))]
    return ("for q in range(r1 - r0):\n"
            f"{pad}{cells} = {quick}\n"
            f"{pad}if {first} != {first}:\n"
            + later("".join(f"{pad}    {line}\n" for line in [*loads, f"{cells} = {row}"]),
                    pad + "    ", "flag[0] = 1").rstrip("\n"))


def _label_tables(hoisted: list[tuple[str, str, str]], flavour: str) -> dict[str, str]:
    """The row code of each label table among ``hoisted`` (a flavour's entries) by its name:
    where the row's label ``tr`` has no value yet (NaN, as each chunk starts), the class sums
    listed before it (compensated for float64 results as in a row: :func:`_class_sum`) and
    the value, stored at ``tr``. Filled as the labels come (at most ``min(C, rows)`` values a
    chunk: a table filled for every class first cost C² a chunk, 64 × 1000 logits 8x the
    kernel's own work)."""
    out, sums = {}, []
    for acc, k, body in hoisted:
        code = _flavoured(body)[flavour]
        if k.startswith(_TABLE_SUM):
            index = k.removeprefix(_TABLE_SUM)
            lanes = index.startswith(_LANES) and flavour == "m"
            sums.append(_class_sum(acc, index.removeprefix(_LANES), code,
                                   _LANES if lanes else flavour, 20))
        elif k == _SETUP_TABLE:
            out[acc] = (f"                if {acc}[tr] != {acc}[tr]:\n" + "".join(sums)
                        + f"                    {acc}[tr] = {code}\n")
            sums = []
    return out


def _class_fill(accs: str, body: str, pad: int = 16, at: str = "[k]") -> str:
    """Code that writes the pair ``body`` of each class ``k`` into the row buffers ``accs``
    (``"hi, lo"``), at ``at``."""
    hi, lo = accs.split(", ")
    return (f"{' ' * pad}for k in range(n_classes):\n"
            f"{' ' * pad}    {hi}{at}, {lo}{at} = {body}\n")


def _due(accs: str) -> str:
    """The name of whether a row's lazy fill of ``accs`` (:data:`_LATER_FILL`) is still due."""
    return accs.split(", ")[0] + "_due"


def _lazy_fills(code: str, fills: list[tuple[str, str]]) -> str:
    """A row's statements ``code`` with each later tier's section that reads a lazy fill's
    buffers (``(accs, pair code)``, :data:`_LATER_FILL`) beginning with that fill where it is
    still due in the row (:func:`_due`, set as the row starts): a row whose classes all pass
    their first tier fills nothing (cross_entropy's label-smoothed float32 gradient: the
    smoothed targets' exact pairs, 12-15% of its time). Everything else must not read them."""
    if not fills:
        return code

    def section(m: re.Match[str]) -> str:
        head, rest = m[0].split("\n", 1)
        pad = m[1]
        first = "".join(
            f"{pad}if {_due(accs)}:\n" + _class_fill(accs, pair, len(pad) + 4)
            + f"{pad}    {_due(accs)} = False\n"
            for accs, pair in fills if re.search(rf"\b{accs.split(', ')[0]}\b", rest))
        return f"{head}\n{first}{rest}"

    out = _LATER_SECTION.sub(section, code)
    outside = _LATER_SECTION.sub("", out)
    for accs, _ in fills:
        for buffer in accs.split(", "):
            if re.search(rf"\b{buffer}\b", outside):  # pragma: no cover - a generator bug
                raise AssertionError(f"{buffer}: a lazy fill read outside a later tier")
    return out


def _class_sum(acc: str, k: str, body: str, flavour: str, indent: int = 16) -> str:
    """Code that sets ``acc`` to Σ_k ``body`` over the classes, as accurate as the flavour needs.

    :data:`_LANES` (float64 results, a sum read only by a bound or a float form a pair
    replaces, :meth:`_Printer._lanes`): one plain chain, fused with its neighbours.

    ``m`` (float64 results): one compensated (Neumaier) chain, as :func:`kernels.class_sum`:
    a sum of probabilities 1 ulp off 1 costs hundreds of ulps where p·Σy − y nearly cancels.
    ``v`` (float32 results): :data:`SUM_LANES` plain float64 partial sums. Their error, at
    most about n·2⁻⁵³ of Σ|terms|, is of the order of the exponential's own (exp_v, 1e-15)
    and 10⁶ times under a float32 ulp, so compensating would only cost time.
    """
    pad, inner = " " * indent, " " * (indent + 4)
    if flavour == _LANES:  # one plain chain; :func:`_fused_sums` joins neighbouring ones
        return (f"{pad}{acc} = 0.0\n"
                f"{pad}for {k} in range(n_classes):\n"
                f"{inner}{acc} += {body}\n")
    if flavour == "m":
        return (f"{pad}{acc} = 0.0\n"
                f"{pad}{acc}_c = 0.0\n"
                f"{pad}for {k} in range(n_classes):\n"
                f"{inner}v = {body}\n"
                f"{inner}tot = {acc} + v\n"
                # a select, not a branch: which term is larger is a coin toss per class
                f"{inner}{acc}_c += (({acc} - tot) + v) if abs({acc}) >= abs(v) "
                f"else ((v - tot) + {acc})\n"
                f"{inner}{acc} = tot\n"
                # an infinite term leaves a NaN compensation (inf − inf): the sum is the term's
                f"{pad}if math.isfinite({acc}):\n"
                f"{pad}    {acc} += {acc}_c\n")
    lanes = range(SUM_LANES)
    code = "".join(f"{pad}{acc}_{j} = 0.0\n" for j in lanes)
    code += f"{pad}for {k}0 in range(0, n_classes - {SUM_LANES - 1}, {SUM_LANES}):\n"
    for j in lanes:
        code += f"{inner}{k} = {k}0 + {j}\n{inner}{acc}_{j} += {body}\n"
    code += (f"{pad}for {k} in range(n_classes - n_classes % {SUM_LANES}, n_classes):\n"
             f"{inner}{acc}_0 += {body}\n")
    return code + f"{pad}{acc} = " + " + ".join(f"{acc}_{j}" for j in lanes) + "\n"


_PLAIN_SUM = re.compile(r"( {16})(\w+) = 0\.0\n\1for (\w+) in range\(n_classes\):\n"
                        r"\1    \2 \+= (.*)\n")


def _fused_sums(code: str) -> str:
    """``code`` (a row's hoisted statements) with each run of neighbouring plain class sums
    (:func:`_class_sum`'s :data:`_LANES` chains over one index) in one loop: the chains
    interleaved, their common terms (``e/(1 + s)``) computed once (cross-entropy's float64
    hvp, 1e6 elements, 1 thread: 37 -> 29 ms), each chain's own order, its bits, kept."""
    out, last = [], 0
    runs: list[list[re.Match[str]]] = []
    for m in _PLAIN_SUM.finditer(code):
        if runs and runs[-1][-1].end() == m.start() and runs[-1][-1][3] == m[3]:
            runs[-1].append(m)
        else:
            runs.append([m])
    for run in runs:
        pad, k = run[0][1], run[0][3]
        out.append(code[last:run[0].start()])
        out += [f"{pad}{m[2]} = 0.0\n" for m in run]
        out.append(f"{pad}for {k} in range(n_classes):\n")
        out += [f"{pad}    {m[2]} += {m[4]}\n" for m in run]
        last = run[-1].end()
    return "".join(out) + code[last:]


def _class_axis_source(kernels: list[tuple[str, sp.Expr, sp.Expr]],
                       symbols: Mapping[str, sp.Basic], scalars: list[sp.Basic],
                       tags: tuple[bool, ...] = (True, False)) -> str:
    """The class-axis kernels ``<what>_<hard|soft>_F`` for each ``(what, hard, soft)``.

    ``hard`` is the expression evaluated for class-index targets, ``soft`` for class
    probabilities. ``loss`` writes one value per row; any other kernel one per class. An
    expression with the direction ``v`` (the hvp) takes its array ``dv`` after ``ignore``.
    """
    z, y = symbols["input"], symbols["target"]
    label = sp.Symbol("t", integer=True)  # the row's class index
    w = symbols.get("weight")
    names: dict[sp.Basic, str] = {
        CLASS_INDEX: "i", SUM_INDEX: "k", NUM_CLASSES: "n_classes", label: "tr",
    }
    names.update({s: f"c{n}" for n, s in enumerate(scalars)})
    src = [_HEADER]
    for hard in tags:
        indexed: dict[str, Callable[[str], str]] = {
            str(z.label): lambda x: f"np.float64(zr[{x}])",
            str(y.label): lambda x: f"np.float64(yr[{x}])",
            _DIRECTION_LABEL: lambda x: f"np.float64(dr[{x}])",
        }
        if w is not None:
            indexed[str(w.label)] = lambda x: f"w[{x}]"
        for what, hard_expr, soft_expr in kernels:
            expr = hard_expr if hard else soft_expr
            # the direction appears as v[k] or, inside softmax_hvp, as v itself
            direction = what == "hvp" or any(
                str(e.label) == _DIRECTION_LABEL for e in expr.atoms(sp.IndexedBase))
            params = ", ".join(["z", "t", "y", "w", "ignore", *(["dv"] if direction else []),
                                *(f"c{n}" for n in range(len(scalars)))])
            # a class index t: y_k = δ(k, t), and the sums over k reduce symbolically (but an
            # hvp's scale, evaluated as the NumPy evaluator does: _scales_as_written)
            if hard:
                expr = _scales_as_written(expr.replace(
                    lambda e: isinstance(e, sp.Indexed) and e.base == y,
                    lambda e: sp.KroneckerDelta(e.indices[0], label),
                ), reduce_sums)
            else:
                expr = _scales_as_written(expr, lambda e: reduce_sums(e, expand=False))
            printer = _Printer(names, indexed, logits=str(z.label),
                               rows={str(y.label): "y", _DIRECTION_LABEL: "dv"},
                               label="tr" if hard else None, certify=True,
                               vectors={} if w is None else {str(w.label): "w"})
            code = printer.doprint(expr)
            choose = not hard and hard_expr != soft_expr
            if choose:
                # Probability targets: a one-hot row takes the hard form, as a class index
                # does (the layout's rule), any other row the soft one; multi-hot targets
                # (each class a label of its own) by element, each 0/1 label the hard form.
                hard_code = printer.doprint(reduce_sums(hard_expr, expand=False))
                if tags == (False,):  # (a row of 0/1 labels first: its loop vectorizes)
                    code = f"({hard_code}) if (yr[i] == 0.0 or yr[i] == 1.0) else ({code})"
                code = f"({hard_code}) if onehot else ({code})"
            if what == "loss":
                write, at = "                out[r] = res / divisor\n", " " * 16
                skip = "                    out[r] = 0.0\n"
            else:
                write, at = ("                for i in range(n_classes):\n"
                             "{body}                    out[r, i] = res / divisor\n"), " " * 20
                skip = "                    out[r, :] = 0.0\n"
            tag = "hard" if hard else "soft"
            flavours = _flavoured(code)
            if not hard and "fitsk_m(" in flavours["m"]:
                # float32 results of a form with a rounding bound (multilabel_soft_margin_loss's
                # σ(xᵢ) − yᵢ): libm's helpers and fitsk32, as the element-wise soft pass, not
                # exp_v and fits_v, which sent every form cancelling by over 6 bits to double-
                # double (2.9% of uniform soft targets; 1e6 elements 24 -> 15 ns an element)
                flavours["v"] = _fits_for(flavours["m"], "v")
            for flavour, body in flavours.items():
                hoisted = _for_flavour(printer.hoisted, flavour)
                # float32 results: the first Σ softmax·x rides along the exp-sum pass (a float64
                # dot of e and x, as accurate as the lane sums); float64: compensated sums.
                dot = next(iter(printer.dots.items())) if flavour == "v" and printer.dots else None
                sums = (f"            block_sums_dot(ebuf, r1 - r0, smalls, ones, {dot[1]}, r0, "
                        "dots)\n" if dot else
                        "            block_sums(ebuf, r1 - r0, smalls, ones)\n")
                tables = _label_tables(hoisted, flavour)
                hoisted_f = _fused_sums("".join(
                    tables[acc] if k == _SETUP_TABLE else
                    f"                {acc} = dots[q] * inv_s\n" if dot and acc == dot[0] else
                    f"                {acc} = {_flavoured(b)[flavour]}\n" if not k else
                    f"                {_due(acc)} = True\n" if k == _LATER_FILL else
                    _class_fill(acc, _flavoured(b)[flavour]) if k == _FILL else
                    _class_sum(acc, k.removeprefix(_LANES), _flavoured(b)[flavour],
                               _LANES if k.startswith(_LANES) and flavour == "m" else flavour)
                    for acc, k, b in hoisted
                    if k not in (_SETUP, _SETUP_FILL, _BLOCK, _BLOCK_FILL)
                    and not k.startswith(_TABLE_SUM)))
                block = "".join(
                    f"            {_flavoured(b)[flavour]}\n" if k == _BLOCK else
                    "            for q in range(r1 - r0):\n"
                    + ("                tr = t[r0 + q]\n" if hard else
                       "                yr = y[r0 + q]\n")
                    + _class_fill(acc.replace(", ", "b, ") + "b", _flavoured(b)[flavour], 16,
                                  "[q, k]")
                    for acc, k, b in hoisted if k in (_BLOCK, _BLOCK_FILL))
                if flavour == "v":
                    # float32 results: x·(1/(1+s)) is as good as x/(1+s) (1e-16 vs 6e-8) and
                    # a multiply is several times cheaper than a divide.
                    body = body.replace(" / one_s)", " * inv_s)")
                    hoisted_f = hoisted_f.replace(" / one_s)", " * inv_s)")
                if hard and what != "loss" and _per_label(expr, symbols, label):
                    src.append(_label_table_kernel(f"{what}_{tag}_{flavour}", params, body))
                    continue
                row = hoisted_f + _lazy_fills(_class_write(write, at, body), [
                    (acc, _flavoured(b)[flavour]) for acc, k, b in hoisted if k == _LATER_FILL])
                # once per call, what the rows and blocks read (float32 results may take no scale
                # pair)
                setup = "".join(
                    f"        {acc} = {_flavoured(b)[flavour]}\n" if k == _SETUP else
                    _class_fill(acc, _flavoured(b)[flavour], 8) if k == _SETUP_FILL else
                    f"        {acc}[:] = math.nan\n"
                    for acc, k, b in hoisted if k in (_SETUP, _SETUP_FILL, _SETUP_TABLE)
                    and re.search(rf"\b{acc.split(',')[0]}\b", row + block))
                src.append(_class_axis_kernel(
                    f"{what}_{tag}_{flavour}", params, flavour, sums, bool(dot), direction, hard,
                    choose, row, skip, setup, block))
    return "".join(src)


#: A per-class gradient as an element-wise expression (:func:`_per_class`): the logit and the
#: target of one element, its class's weight (read per class: :func:`_by_class`), and the
#: class count as a scalar argument.
_FLAT_ARRAYS = (sp.Symbol("x", real=True), sp.Symbol("y", real=True))
_FLAT_WEIGHT = sp.Symbol("w", real=True)
_FLAT_CLASSES = sp.Symbol("C", positive=True, integer=True)


def _per_class(hard: sp.Expr, soft: sp.Expr, symbols: Mapping[str, sp.Basic],
               scalars: list[sp.Basic]) -> tuple[sp.Expr, sp.Expr] | None:
    """A class-axis gradient that reads no other class than its own -- ``wᵢ(σ(xᵢ) − yᵢ)/C``,
    multilabel_soft_margin_loss's -- as an element-wise ``(hard, soft)`` of
    :data:`_FLAT_ARRAYS`, :data:`_FLAT_WEIGHT` (the class's weight) and :data:`_FLAT_CLASSES`;
    ``None`` where it reads a sum over classes, a softmax or a class index.

    Such a gradient is an element-wise loss's over the ``rows × C`` elements: its kernels are
    the element-wise generator's (:func:`_elementwise_source`: a branch-free vectorized pass over
    blocks of 4096 elements for 0/1 targets, the soft targets' float form, then double-double
    for those it leaves uncertified) on the flattened arrays, the weight read at each
    element's class (:func:`_by_class`), not a loop of C classes per row with every form's
    branches inside it (1e6 float32 logits, 1 thread: 9.0 -> 1.6 ms, soft targets 8.4 -> 2.2
    ms; torch 6.6-7.2).
    """
    z, y = symbols["input"], symbols["target"]
    x, t = _FLAT_ARRAYS
    given = {z[CLASS_INDEX]: x, y[CLASS_INDEX]: t, NUM_CLASSES: _FLAT_CLASSES}  # type: ignore[index]
    if "weight" in symbols:
        given[symbols["weight"][CLASS_INDEX]] = _FLAT_WEIGHT  # type: ignore[index]
    out = []
    for e in (hard, soft):
        e = reduce_sums(e, expand=False).xreplace(given)
        if e.atoms(sp.Indexed, sp.IndexedBase, sp.Sum, sp.KroneckerDelta) or not (
                e.free_symbols <= {x, t, _FLAT_WEIGHT, _FLAT_CLASSES, *scalars}):
            return None
        out.append(e)
    return out[0], out[1]


def _reads_tables(text: str, tables: range) -> bool:
    """Whether a kernel's ``text`` reads an array ``x<n>`` of ``tables`` other than in loading
    it (``x<n> = ...``, where each loop loads its arrays)."""
    for line in text.splitlines():
        for n in tables:
            if re.search(rf"\bx{n}\b", line) and not re.match(rf"\s*x{n} = ", line):
                return True
    return False


def _by_class(text: str, classed: range, tables: Mapping[int, str] | None = None) -> str:
    """``text``, an element-wise kernel's body over the flattened ``rows × C`` elements, with
    each array ``a<n>`` of ``classed`` (a per-class weight: C values) read at each element's
    class: the array repeated over one block of whole rows (``k<n>``, once per call), the
    blocks that long, so that element ``j`` of the block from ``lo`` reads ``k<n>[j − lo]``
    (contiguous in ``j``: the loops vectorize as over a flat array; ``j % C`` would divide
    in every element). A loop over every element finds its block's ``lo`` itself.

    ``tables`` (``n`` -> a pair's printed code of the ``x<m>`` of ``classed`` and the
    scalars, :meth:`_Printer._scale_pair`): the arrays ``a<n>``, ``a<n+1>`` the loops read,
    which no caller passes: that pair's high and low parts, computed once per class from the
    classed arrays and laid out as they are."""
    tables = tables or {}
    n0 = classed[0]
    text = (text.replace(_BLOCKS, _BLOCKS.replace(str(SOFT_BLOCK - 1), "blk - 1")
                         .replace(str(SOFT_BLOCK), "blk"))
            .replace(_EACH, _EACH + "        lo = j - j % blk\n"))
    read = [*classed, *(m for n in tables for m in (n, n + 1))]
    for n in read:
        text = re.sub(rf"\ba{n}\[j\]", f"k{n}[j - lo]", text)
        if re.search(rf"\ba{n}\b", text):  # pragma: no cover - the generator reads a[j] only
            raise AssertionError(f"a{n} is read other than at an element j")
    fills = ""
    for n, pair in tables.items():
        for m in classed:
            pair = re.sub(rf"\bx{m}\b", f"np.float64(a{m}[ik])", pair)
        fills += (f"    k{n} = np.empty(blk)\n"
                  f"    k{n + 1} = np.empty(blk)\n"
                  f"    for ik in range(a{n0}.size):\n"
                  f"        k{n}[ik], k{n + 1}[ik] = {pair}\n"
                  f"    for rk in range(n_classes, blk, n_classes):\n"
                  f"        for ik in range(a{n0}.size):\n"
                  f"            k{n}[rk + ik] = k{n}[ik]\n"
                  f"            k{n + 1}[rk + ik] = k{n + 1}[ik]\n")
    return (f"    n_classes = max(a{n0}.size, 1)\n"
            f"    # whole rows per block (element j of the block from lo: class j - lo mod C)\n"
            f"    blk = n_classes * max(1, min({SOFT_BLOCK}, out.size) // n_classes)\n"
            + "".join(f"    k{n} = np.empty(blk)\n"
                      f"    for rk in range(0, blk, n_classes):\n"
                      f"        for ik in range(a{n}.size):\n"
                      f"            k{n}[rk + ik] = a{n}[ik]\n" for n in classed)
            + fills
            + text)


def _class_write(write: str, at: str, body: str) -> str:
    """A class-axis kernel's store ``write`` of ``res``, the row's (or class's) value ``body``
    lowered to statements (:func:`symloss._statements.lower`) at indent ``at``: each call
    computed once (numba does not merge two inlined calls of one first tier, e.g.
    ``sigmoid_subq_s_m`` in its test and its value: 61 against 35 ns an element), each lazy
    arm evaluated only where taken."""
    lines, _ = lower([("res", body)], at)
    code = "".join(f"{line}\n" for line in lines)
    if "{body}" in write:
        return write.format(body=code)
    return code + write


def _per_label(expr: sp.Expr, symbols: Mapping[str, sp.Basic], label: sp.Basic) -> bool:
    """Whether a class-index target's per-class ``expr`` reads nothing of its row but whether
    the class is the row's label (``δ(i, t)``): no logit, no sum, only the class's own weight --
    nll_loss's ``−δ(i, t)·wᵢ``. Each class then has two results, at its label and off it."""
    delta = sp.Dummy("delta")
    plain = expr.replace(
        lambda e: isinstance(e, sp.KroneckerDelta) and set(e.args) == {CLASS_INDEX, label},
        lambda e: delta)
    w = symbols.get("weight")
    return (not plain.has(sp.Sum) and label not in plain.free_symbols
            and all(e.base == w and e.indices == (CLASS_INDEX,) for e in plain.atoms(sp.Indexed))
            and plain.atoms(sp.IndexedBase) <= ({w} if w is not None else set()))


def _label_table_kernel(name: str, params: str, body: str) -> str:
    """A class-index kernel of a result that :func:`_per_label` found reads only whether the
    class is the row's label: each class's two results (``body`` at ``tr = i``, its label, and
    at ``tr = −1``, none), divided and rounded to the result's dtype once per call, as the row
    loop would store them; then each chunk's rows written from them by
    :func:`symloss._fastmath.label_rows` (1e6 float32 logits of nll_loss, 1 thread: 0.41 ->
    0.20 ms; torch's zeros and scatter 0.35)."""
    lines = "".join(f"{line}\n" for line in lower([("res", body)], " " * 8)[0])
    return (
        f"\n\n@njit(**_OPTS)\n"
        f"def {name}(out, divisor, flag, chunks, {params}):\n"
        "    n_rows, n_classes = z.shape\n"
        "    at = np.empty(n_classes, out.dtype)\n"
        "    off = np.empty(n_classes, out.dtype)\n"
        "    for i in range(n_classes):\n"
        "        tr = i\n" + lines +
        "        at[i] = res / divisor\n"
        "        tr = -1\n" + lines +
        "        off[i] = res / divisor\n"
        "    for c in prange(chunks):\n"
        "        label_rows(out, t, ignore, at, off, c * n_rows // chunks,\n"
        "                   (c + 1) * n_rows // chunks)\n"
    )


#: What the softmax passes of a class-axis kernel define for the row's code: a row that reads
#: none of them (nll_loss, multi_margin_loss, multilabel_soft_margin_loss) skips the passes.
_SOFTMAX_STATE = re.compile(r"\b(m|s|one_s|lse|inv_s|buf|dots)\b")


def _class_axis_kernel(name: str, params: str, flavour: str, sums: str, dot: bool,
                       direction: bool, hard: bool, choose: bool, row: str, skip: str,
                       setup: str = "", block: str = "") -> str:
    """One class-axis kernel: per block of rows, the softmax passes (the max, ``e = exp(z −
    m)``, ``s``; float64 rows keep each ``e`` as a pair, ``ebuf`` + ``elo``, for the first
    tier of the rows' double-double values) where ``row`` -- the code that writes row ``r`` --
    reads them, then ``block`` (the block's first tiers: row ``q`` of ``lbufb``, ``qb0``, …),
    then ``row``;
    ``setup`` (what the rows read that reads no row) once per chunk, before its rows."""
    softmax = bool(_SOFTMAX_STATE.search(row))
    blocked = set(re.findall(r"\b(lbuf\d*|abuf\d+[hl])b\b", block))
    rows_1d = sorted(set(re.findall(r"\b(?:lbuf\d*|dbuf|abuf\d+[hl]|cbuf\d+_\d+[hl]|tbuf\d+)\b",
                                    setup + row + block)) - blocked)
    return (
        f"\n\n@njit(**_OPTS)\n"
        f"def {name}(out, divisor, flag, chunks, {params}):\n"
        "    n_rows, n_classes = z.shape\n"
        + ("    nb = block_rows(n_classes, TIER_BLOCK)\n" if "_qb_m(" in block else
           "    nb = block_rows(n_classes)\n")
        + "    for c in prange(chunks):\n"
        + ("        ebuf = np.empty((nb, n_classes))\n"
           "        elo = np.empty((nb, n_classes))\n"
           "        ms = np.empty(nb)\n"
           "        smalls = np.empty(nb)\n"
           "        ones = np.empty(nb)\n" if softmax else "")
        + ("        mrow = np.empty(nb * n_classes)\n" if softmax and flavour == "m" else "")
        + ("        dots = np.empty(nb)\n" if softmax and dot else "")
        + "".join(f"        {b} = np.empty(n_classes)\n" for b in rows_1d)
        + "".join(f"        {b}b = np.empty((nb, n_classes))\n" for b in sorted(blocked))
        + "".join(f"        {b} = np.empty((nb, 2))\n"
                  for b in sorted(set(re.findall(r"\bqb\d+\b", block))))
        + "".join(f"        {b} = np.empty((nb, {w}))\n"
                  for b, w in sorted(set(re.findall(r"\b(rb\d+_(\d+))\b", block))))
        + ("        twork = tier_work(nb, n_classes)\n" if "twork" in block else "")
        + setup
        + "        hi = (c + 1) * n_rows // chunks\n"
        "        for r0 in range(c * n_rows // chunks, hi, nb):\n"
        "            r1 = min(r0 + nb, hi)\n"
        + ("            block_max(z, r0, r1, ms)\n"
           + ("            fill_exp_block_m(z, r0, r1, ms, ebuf, elo, mrow)\n" if flavour == "m" else
              "            for q in range(r1 - r0):\n"
              f"                fill_exp_{flavour}(z[r0 + q], ms[q], ebuf[q], elo[q])\n")
           + sums + block if softmax else "")
        + "            for q in range(r1 - r0):\n"
        "                r = r0 + q\n"
        "                zr = z[r]\n"
        + ("                buf = ebuf[q]\n"
           "                bufl = elo[q]\n" if softmax else "")
        + ("                dr = dv[r]\n" if direction else "")
        + ("                tr = t[r]\n"
           "                if tr == ignore:\n" + skip +
           "                    continue\n" if hard else
           "                yr = y[r]\n")
        + ("                onehot = True\n"
           "                for k in range(n_classes):\n"
           "                    if yr[k] != 0.0 and yr[k] != 1.0:\n"
           "                        onehot = False\n"
           "                        break\n" if choose else "")
        + ("                m = ms[q]\n"
           "                s = smalls[q] + (ones[q] - 1.0)\n"
           "                one_s = 1.0 + s\n"
           "                lse = math.log1p(s)\n"
           "                inv_s = 1.0 / one_s\n" if softmax else "")
        + row
    )


def _cache_dir() -> Path:
    return cache.cache_dir()


def _compiled(source: str) -> str:
    """The module numba compiles from the printed ``source``: with its kernels' quick and
    serial twins (:func:`_quick_twins`, :func:`_serial_twins`)."""
    return _serial_twins(_quick_twins(source))


def _module_name(compiled: str) -> str:
    """The name of the module ``compiled``: the hash of that text (twins included, so a change
    to how twins are printed is a new module, never a stale cache) and of the helpers'."""
    helpers = Path(__file__).with_name("_fastmath.py").read_bytes()
    return f"symloss_fast_{cache.digest(compiled.encode(), helpers)}"


def _load(compiled: str) -> Any:
    """Write ``compiled`` (:func:`_compiled`) to a file named by its hash (and the helpers'),
    import it (see :mod:`symloss.cache`: atomic per-writer files, parallel kernels gated for
    threads)."""
    cache.select_threading_layer()
    return cache.load_module(compiled, _module_name(compiled))


class _LazyModule:
    """A kernel module, imported (and numba with it) only when a kernel is looked up in it: a
    warm serial call may not need it (:mod:`symloss.native`)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.compiled = _compiled(source)
        self.name = _module_name(self.compiled)

    def load(self) -> Any:
        return _load(self.compiled)  # once per process (cache.load_module)

    def defines(self, name: str) -> bool:
        """Whether the module defines kernel ``name`` (read from its source: not imported)."""
        return f"\ndef {name}(" in self.source

    def has_quick(self, name: str) -> bool:
        """Whether kernel ``name`` has a later tier, so a quick twin (:func:`_quick_twins`)."""
        at = self.source.find(f"\ndef {name}(")
        end = self.source.find("\n@njit(", at + 1)
        return at >= 0 and LATER in self.source[at:end if end >= 0 else len(self.source)]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self.load(), attr)


def _module(source: str) -> Any:
    """The kernel module printed from ``source``: imported on first use where its serial
    kernels may answer through their native entries, else now."""
    return _LazyModule(source) if native.enabled() else _load(_compiled(source))


#: Kernels by declaration (kept alive here, so its id is not reused): derive() shares one
#: declaration between the derivations that differ only in array values.
_BUILT: dict[tuple[int, int, int], tuple[Any, ...]] = {}


def build(derivation: Derivation) -> FastKernels | None:
    """Generate and load the fused kernels for ``derivation``; ``None`` where not supported.

    numba compiles each kernel for its argument types on first call (or loads it from the
    on-disk cache). The expressions are :func:`symloss.layout.forms`' -- the ones the NumPy
    evaluator evaluates -- for every loss: nothing lists which losses are "fast". A catalogue
    derivation's printed kernels are kept on disk too (:func:`_plan_key`), so that a later
    process loads them without SymPy deriving and printing them again.
    """
    global last_reason
    if not available():
        last_reason = "numba is not installed (pip install symloss[fast])"
        return None
    d = derivation.declaration
    family = derivation.spec.family
    plan_key = _plan_key(derivation, "first")
    if plan_key is not None:  # a catalogue derivation: its expressions are its name's
        key: tuple[Any, ...] = (plan_key,)
        cached = _BUILT.get(key)
    else:
        # Keyed by the expressions evaluated, not only the declaration: a twin derivation may
        # evaluate another kernel form (symloss.testing's hypotheses do).
        key = (id(d), id(derivation.kernel_gradient), id(derivation.gradient))
        cached = _BUILT.get(key)
        if cached is not None and cached[:3] != (d, derivation.kernel_gradient,
                                                 derivation.gradient):
            cached = None
    if cached is not None:
        # the same symbolic derivation (the entry keeps it alive), other array values
        last_reason = None
        return cached[3](derivation, *cached[4:])  # type: ignore[no-any-return]
    plan = cache.read_plan(plan_key) if plan_key is not None else None
    try:
        if plan is None:
            plan = _generate(derivation)
            if plan is None:
                last_reason = f"family {family!r} has no numba kernels yet"
                return None
            if plan_key is not None:
                cache.write_plan(plan_key, plan)
        module = _module(plan["source"])
    except (_Unsupported, NotImplementedError, TypeError) as exc:
        last_reason = f"{derivation.name}: {exc}"
        return None
    kind = _ElementwiseKernels if plan["kind"] == "elementwise" else _ClassAxisKernels
    arrays, scalar_names = tuple(plan["arrays"]), tuple(plan["scalars"])
    _BUILT[key] = ((d, derivation.kernel_gradient, derivation.gradient) if plan_key is None
                   else (d, None, None)) + (kind, module, arrays, scalar_names)
    last_reason = None
    return kind(derivation, module, arrays, scalar_names)


def _generate(derivation: Derivation) -> dict[str, Any] | None:
    """The first-order kernels' source, with the names of their array and scalar arguments
    (``None`` for a family without kernels)."""
    d = derivation.declaration
    family = derivation.spec.family
    f = forms(derivation)
    if family == "elementwise":
        taken = {*derivation.spec.arguments, *ARRAY_OPTIONS}
        arrays = ["input", "target", *(n for n in d.symbols
                                       if n in taken and n not in ("input", "target"))]
        scalar_names = [n for n in d.symbols if n not in taken]
        source = _elementwise_source(
            [("loss", reduce_sums(f.loss), reduce_sums(f.loss)),
             ("grad", reduce_sums(f.grad_hard), reduce_sums(f.grad_soft))],
            [d.symbols[n] for n in arrays],
            [d.symbols[n] for n in scalar_names],
        )
    elif family == "class_axis":
        arrays = []
        scalar_names = [n for n in d.symbols
                        if n not in ("input", "target", "weight", "num_classes")]
        scalars = [d.symbols[n] for n in scalar_names]
        source = _class_axis_source(
            [("loss", f.loss, f.loss), ("grad", f.grad_hard, f.grad_soft)],
            d.symbols, scalars, _tags(derivation))
        flat = _per_class(f.grad_hard, f.grad_soft, d.symbols, scalars)
        if _tags(derivation) == (False,) and flat is not None:
            weight = [_FLAT_WEIGHT] if "weight" in d.symbols else []  # read or not: one call
            source += _elementwise_source([("grad_flat", *flat)], [*_FLAT_ARRAYS, *weight],
                                          [_FLAT_CLASSES, *scalars],
                                          classed=len(weight)).removeprefix(_HEADER)
    else:
        return None
    return {"kind": family, "source": source, "arrays": arrays, "scalars": scalar_names}


def _plan_key(derivation: Derivation, order: str) -> str | None:
    """The on-disk name of a catalogue derivation's printed kernels of ``order``, or ``None``.

    A catalogue derivation's expressions are determined by its loss name and the options the
    symbolic derivation reads (:attr:`Derivation.symbolic_key`) -- and by symloss's own code,
    whose digest is part of the name. A loss of the user's own, or a twin that evaluates
    other forms, has no such name: it is generated in every process.
    """
    symbolic = getattr(derivation, "symbolic_key", None)
    if symbolic is None:
        return None
    return cache.digest(repr((symbolic, order)).encode(), cache.code_digest().encode())
