"""Accuracy of symloss's ``grad_fn`` and torch's autograd against an exact reference.

For every loss in ``symloss.losses()`` (and the aliases that preset an option), both dtypes,
over a fixed battery of typical and extreme inputs, print the maximum and median error in
ulps of each gradient against the exact value: the *derived* symbolic gradient evaluated by
mpmath at 60 significant digits, with the primitives written in their exact analytic forms
(mpmath's exponent range is unbounded, so ``σ(−10⁴)`` and ``1 − softmax`` near 0 keep all
their digits). The truth never passes through the float kernels being measured.

Gradients are taken with ``reduction='sum'``, so each entry is the per-element derivative.
Errors are in ulps of the exact value in the dtype; an exact value below the smallest normal
number counts as met by 0 (flushing subnormals is allowed).

Then an adversarial search (:func:`run_search`) for the worst point of every loss's value,
gradient, Hessian-vector product and Hessian diagonal (``hess_diag_fn``: ∂²ℓ/∂zᵢ² per element,
the ``hess`` that ``symloss.objective`` returns, against the derivation's
``hessian_diagonal``; unreduced, so searched once, not again at a mean), float32 and
float64, on both evaluators (the NumPy path and the numba fast path), with how many floats
apart the two are at each point: it exits 1 where any is above the 4-ulp goal (1 float apart).
A class-axis loss is also searched at rows of :data:`UNDERFLOW_CLASSES` classes whose other
exponentials round to the subnormal grid and are summed. The default run
searches every loss at its default options (and each alias's preset). ``--variants`` adds the
same search at every loss's option variants (:func:`option_variants`, read from the declared
options: each choice, weights given or not, continuous options at their declared examples
and stress values such as focal's gamma ∈ {0, 10⁻⁶, 0.5, 1, 2, 3, 5, 10³}, a margin of 0 and
−1, delta / beta 10⁻⁶ and 10³; reduction='mean' / 'batchmean'), with ``--quick``'s budget of
points per option set; its rows name the options of each worst point, and are printed as each
set finishes. Targets are read from the declared target domain (and bisected to the roots in
y at a few inputs); a target outside it is never drawn. Each loss at each option set has a
limit of CPU seconds (``--set-limit``, counted by the process's CPU clock, so that a machine
busy with other work does not cut a set short): one cut short is reported with its worst
point so far, as not finished, and fails the run.

    python benchmarks/accuracy.py            # full battery and search, markdown tables
    python benchmarks/accuracy.py --quick    # smaller battery and search (a smoke run)
    python benchmarks/accuracy.py --quick --only mse_loss   # one loss
    python benchmarks/accuracy.py --variants-only           # the option variants' search only
    python benchmarks/accuracy.py --variants-only --set-limit 60   # at most 60 CPU s per set
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import mpmath
import numpy as np
import sympy as sp

import symloss
from symloss.algebra import reduce_sums, written_out
from symloss.catalog import ALIASES, resolve
from symloss.primitives import (
    SUM_INDEX,
    clamped_log,
    softmax,
    softmax_complement,
    softmax_sub,
)
from symloss.spec import IGNORE_INDEX, Option
from symloss.testing import ulps_from_exact as ulps  # each result against its own exact value

DPS = 60


# --------------------------------------------------------------------------- exact reference
def _mp_sigmoid(x: Any) -> Any:
    return 1 / (1 + mpmath.exp(-x))


def _mp_softplus(x: Any) -> Any:
    # log(1 + e^x) with log1p so that e^x ≪ 10^-60 keeps its digits.
    return x + mpmath.log1p(mpmath.exp(-x)) if x > 0 else mpmath.log1p(mpmath.exp(x))


def _row_functions() -> dict[str, Callable[..., Any]]:
    """mpmath class-axis primitives on a 1-based list of logits (index 0 unused)."""

    def exps(z: list[Any], c: int) -> list[Any]:
        return [mpmath.exp(z[j]) for j in range(1, c + 1)]

    def softmax(z: list[Any], i: int, c: int) -> Any:
        e = exps(z, c)
        return e[i - 1] / mpmath.fsum(e)

    def log_softmax(z: list[Any], i: int, c: int) -> Any:
        # (z_i − m) − log1p(Σ_{j≠argmax} e^{z_j − m}): keeps its digits where it is ≈ 0.
        m = max(z[1:c + 1])
        top = z[1:c + 1].index(m) + 1
        rest = mpmath.fsum(mpmath.exp(z[j] - m) for j in range(1, c + 1) if j != top)
        return (z[i] - m) - mpmath.log1p(rest)

    def softmax_hvp(z: list[Any], v: list[Any], i: int, c: int, scale: Any = 1) -> Any:
        e = exps(z, c)  # p_i (v_i − Σ p_k v_k) as p_i Σ p_k (v_i − v_k): no cancellation
        d = mpmath.fsum(e)
        return scale * e[i - 1] * mpmath.fsum(e[k - 1] * (v[i] - v[k])
                                              for k in range(1, c + 1)) / d**2

    def softmax_complement(z: list[Any], i: int, c: int) -> Any:
        e = exps(z, c)  # Σ_{j≠i} e_j / Σ e_j: no 1 − p cancellation
        return mpmath.fsum(e[:i - 1] + e[i:]) / mpmath.fsum(e)

    return {"softmax": softmax, "log_softmax": log_softmax,
            "softmax_complement": softmax_complement, "softmax_hvp": softmax_hvp}


_NAMESPACE: dict[str, Any] = {
    "sigmoid": _mp_sigmoid,
    "softplus": _mp_softplus,
    "clamped_log": lambda x: max(mpmath.log(x), -100) if x > 0 else mpmath.mpf(-100),
    "clamped_log1m": lambda x: max(mpmath.log1p(-x), -100) if x < 1 else mpmath.mpf(-100),
    "clamp_min": lambda x, lo: max(x, lo),
    "sigmoid_pow": lambda x, g: mpmath.exp(-g * _mp_softplus(-x)),
    "sigmoid_sub": lambda x, y: _mp_sigmoid(x) - y,  # 60 digits: ample next to the root
    "exp_sub": lambda x, y: mpmath.exp(x) - y,
    "accurate": lambda x: x,
    "power": lambda q, g: q**g,
    "heaviside": lambda u, h0: mpmath.mpf(1) if u > 0 else (mpmath.mpf(h0) if u == 0 else 0),
    "step": lambda u: mpmath.mpf(1) if u > 0 else mpmath.mpf(0),
    "hinge": lambda u: max(u, 0),
    "at_target": lambda x, y: mpmath.fsum(a * b for a, b in zip(x[1:], y[1:], strict=True)),
    "KroneckerDelta": lambda a, b: 1 if a == b else 0,
    "off_target": lambda y, e: (1 - y) * e,  # multi_margin's stable hvp
    "fsum": lambda a, b, c: a + b + c,
    **_row_functions(),
}


def exact_gradient(d: symloss.Derivation) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The derived gradient ``d.kernel_gradient`` as an mpmath function over arrays."""
    return exact(d, "grad")  # type: ignore[return-value]


#: What each order measures: 0 the per-element loss (reduction='none'), 1 the gradient,
#: 2 the Hessian-vector product (reduction='sum'), 3 the Hessian's diagonal ∂²ℓ/∂zᵢ² per
#: element (``hess_diag_fn``, unreduced whatever the reduction: the ``hess`` that
#: ``symloss.objective`` returns).
ORDERS = {0: "loss", 1: "grad", 2: "hvp", 3: "hess_diag"}
#: The orders measured per element whatever a variant's reduction (searched once, at the sum).
UNREDUCED = (0, 3)


def exact(d: symloss.Derivation, kind: str) -> Callable[..., np.ndarray]:
    """The derived ``kind`` ('loss', 'grad', 'hvp' or 'hess_diag') of ``d`` as an mpmath
    function over arrays: ``fn(input, target)``, or ``fn(input, target, v)`` for 'hvp'.
    'hess_diag' is :attr:`~symloss.Derivation.hessian_diagonal`, the kernel Hessian's
    diagonal (proved equal to the derived Hessian), not the product form the evaluators
    substitute for it (``layout.softmax_variances``).

    The expressions are the proved-equal evaluated forms (stable forms, e.g. σ(z)σ(−z)), at
    ``DPS`` digits with mpmath's unbounded exponent range.
    """
    decl = d.declaration
    direction = kind == "hvp"
    # only the one asked for: triplet's HVP at p = 10³ takes minutes to form
    source = {"loss": lambda: decl.loss, "grad": lambda: d.kernel_gradient,
              "hvp": lambda: d.hvp_expr, "hess_diag": lambda: d.hessian_diagonal}[kind]()
    # expand=False: the stable form as derived (an expanded σ(z) − y σ(z) would cancel even
    # at 60 digits once σ(z) is within 10⁻⁶⁰ of 1).
    expr = reduce_sums(decl.substitute_definitions(source), expand=False)
    # pᵢΣa − aᵢ as pᵢ(Σa − aᵢ) − aᵢ(1 − pᵢ), 1 − pᵢ summed over the other classes: no
    # cancellation left where pᵢ → 1 (a class index with label smoothing); Σa − aᵢ summed over
    # the other classes too: at 60 digits Σa − aᵢ was 0 where aᵢ = 2.55e303 (a class weight
    # near the largest float) and the others' a sum to 0.147 (-3.9e-131 for 0.147 at z = [1000,
    # 0, 0, 0], target 0, label smoothing 0.1; reduce_sums would write it as Σa − aᵢ again)
    expr = expr.replace(lambda e: isinstance(e, softmax_sub), lambda e: (
        softmax(e.args[0], e.args[2], e.args[3])
        * sp.Sum(e.target(SUM_INDEX) * (1 - sp.KroneckerDelta(SUM_INDEX, e.args[2])),
                 (SUM_INDEX, 1, e.args[3]))
        - reduce_sums(e.target(e.args[2]) * softmax_complement(e.args[0], e.args[2], e.args[3]),
                      expand=False)))
    # log(1 − p) as log1p(−p): 1 − 10⁻⁸³ is 1 at 60 digits
    expr = expr.replace(
        lambda e: isinstance(e, clamped_log) and sp.expand(1 - e.args[0]).is_Symbol,
        lambda e: sp.Function("clamped_log1m")(sp.expand(1 - e.args[0])))
    names = list(decl.symbols)
    args = [decl.symbols[n] for n in names]
    if direction:
        names.append("v")
        args.append(sp.IndexedBase("v") if d.spec.family in ("class_axis", "rows")
                    else sp.Symbol("v", real=True))
    per_row = kind == "loss" and d.spec.family in ("class_axis", "rows")
    plain = [sp.Symbol(str(a.label)) if isinstance(a, sp.IndexedBase) else a for a in args]
    renamed = expr.subs({a: s for a, s in zip(args, plain, strict=True)
                         if not isinstance(a, sp.IndexedBase)})
    index = sp.Symbol("i", integer=True)
    extra = [index] if d.spec.family in ("class_axis", "rows") and not per_row else []
    fn = sp.lambdify([*plain, *extra], renamed, modules=[_NAMESPACE, "mpmath"])
    opts = d.options

    def scalar_options() -> dict[str, Any]:
        out = {}
        for n in names:
            if n in ("input", "target", "weight", "pos_weight", "num_classes", "v",
                     *d.spec.arguments):
                continue
            out[n] = mpmath.mpf(float(opts[n]))
        return out

    def elementwise(x: np.ndarray, y: np.ndarray, v: np.ndarray | None = None,
                    **others: np.ndarray) -> np.ndarray:
        # others: the further arrays by key (var, input2), the input's shape
        arrays = {"input": x, "target": y, **others}
        if v is not None:
            arrays["v"] = v
        for n in ("weight", "pos_weight"):
            if n in names and n not in arrays:  # given per call: weights laid out per element
                arrays[n] = np.broadcast_to(opts[n], x.shape)
        scalars = scalar_options()
        out = np.empty(x.shape, dtype=object)
        for idx in np.ndindex(x.shape):
            vals = [mpmath.mpf(float(arrays[n][idx])) if n in arrays else scalars[n] for n in names]
            span = _span(vals)
            if span:  # 1 − 10⁻³⁰⁰ and z²/2 beside O(1) terms: more digits, until settled
                out[idx] = _settled(lambda vals=vals: fn(*vals), start=DPS + 2 * span)
                continue
            value = fn(*vals)
            if value and abs(value) < mpmath.mpf(10) ** -(DPS // 2):
                # a root of the exact value at the given floats (tweedie at z = 0, y = 1 with
                # ρ = 1.9: terms of size 10 that cancel exactly) is left as a residue of
                # 10⁻⁶⁰ at 60 digits: more digits until it settles (a true tiny value) or
                # shrinks with them (0)
                value = _settled(lambda vals=vals: fn(*vals), start=2 * DPS)
            out[idx] = value
        return out

    def class_axis(x: np.ndarray, t: np.ndarray, v: np.ndarray | None = None) -> np.ndarray:
        class_dim = 0 if x.ndim == 1 else 1
        c = x.shape[class_dim]
        z = np.moveaxis(x, class_dim, -1)
        dv = None if v is None else np.moveaxis(v, class_dim, -1)
        hard = t.shape != x.shape
        y = None if hard else np.moveaxis(t, class_dim, -1)
        w = opts.get("weight")
        ignore = opts.get("ignore_index", IGNORE_INDEX)
        scalars = scalar_options()
        out = np.empty(z.shape[:-1] if per_row else z.shape, dtype=object)
        for row in np.ndindex(z.shape[:-1]):
            zl = [None, *(mpmath.mpf(float(v)) for v in z[row])]
            if hard:
                label = int(t[row])
                if label == ignore:
                    out[row] = mpmath.mpf(0) if per_row else [mpmath.mpf(0)] * c
                    continue
                yl = [None, *(mpmath.mpf(int(k == label)) for k in range(c))]
            else:
                yl = [None, *(mpmath.mpf(float(v)) for v in y[row])]  # type: ignore[index]
            wl = [None, *(mpmath.mpf(float(v)) for v in w)] if w is not None else None
            vl = None if dv is None else [None, *(mpmath.mpf(float(a)) for a in dv[row])]
            table = {"input": zl, "target": yl, "weight": wl, "num_classes": c, "v": vl,
                     **scalars}
            vals = [table[n] for n in names]
            if per_row:
                out[row] = fn(*vals)
                continue
            out[row] = [fn(*vals, i) for i in range(1, c + 1)]
        return out if per_row else np.moveaxis(out, -1, class_dim)

    if d.spec.family == "elementwise":
        return elementwise
    if d.spec.family == "class_axis":
        return class_axis
    if d.spec.family == "rows":
        return _exact_rows(d, renamed, [*plain, *extra], names, per_row)
    raise NotImplementedError(f"family {d.spec.family!r}")


def _span(vals: list[Any]) -> int:
    """The decades below 10⁻¹⁰ of the smallest nonzero argument (0 if none is that small): an
    element-wise point at z = 10⁻³⁰⁰ needs 300 more digits to see 1 − z, twice that for a
    value z²/2 that is a difference of O(1) terms (tweedie's at its minimum)."""
    small = [abs(v) for v in vals if isinstance(v, mpmath.mpf) and 0 < abs(v) < 1e-10]
    return int(-mpmath.floor(mpmath.log10(min(small)))) if small else 0


def _settled(call: Callable[[], Any], start: int = DPS) -> Any:
    """``call()`` at ``start`` digits, then at twice as many until two agree to 40 digits: a
    row loss cancels where rows are parallel (1 − cos ≈ ε/|a|², below 10⁻⁶⁰ for |a| ≳ 10²⁴)."""
    prev: Any = None
    value: Any = None
    for dps in (start, 2 * start, 4 * start, 8 * start):
        with mpmath.workdps(dps):
            try:
                value = call()
            except ZeroDivisionError:  # a difference that is 0 at these digits (|a − p|²)
                prev = None
                continue
        if prev is not None:
            pairs = zip(prev, value, strict=True) if isinstance(value, list) else [(prev, value)]
            # two zeros agree only at the last precision (as symloss.exact's rule): a hinge
            # argument that cancels by 127 digits (triplet at p = 10³ on its kink, 8.0e-127)
            # is 0 at 60 and at 120 digits
            if all(b != 0 and abs(a - b) <= mpmath.mpf(10) ** -40 * abs(b) for a, b in pairs):
                return value
        prev = value
    return value


def _exact_rows(d: symloss.Derivation, expr: sp.Expr, args: list[sp.Basic], names: list[str],
                per_row: bool) -> Callable[..., np.ndarray]:
    """The row family's exact function: ``fn(arrays, v=None)`` with ``arrays`` torch's
    positional arrays (in ``spec.arguments`` order); one value per row for the loss, the
    input's shape otherwise. Targets are decoded as the evaluator does (:mod:`symloss.rows`).

    A per-row target of a few values (y = ±1) is substituted before evaluating: the derived
    forms carry (1 ± y)/2 expanded, whose terms cancel exactly only symbolically.
    """
    from symloss.rows import RowAdapter

    adapter = RowAdapter(d)
    sizes = ("num_features", "num_classes")
    symbols = d.declaration.symbols
    discrete = {a.symbol_key: a.domains[0].values for a in d.spec.arguments_for(d.options)
                if isinstance(symbols.get(a.symbol_key), sp.Symbol) and a.domains[0].values}
    fns: dict[tuple[float, ...], Callable[..., Any]] = {}
    # the arguments given as a row (1-based lists): the arrays and the direction
    row_names = [n for n in names if isinstance(symbols.get(n), sp.IndexedBase) or n == "v"]
    rows_of: dict[tuple[tuple[float, ...], int], Callable[..., Any] | None] = {}

    def discrete_at(vals: list[Any]) -> tuple[tuple[float, ...], dict[sp.Basic, sp.Expr]]:
        key = tuple(float(vals[names.index(n)]) for n in discrete)
        return key, {args[names.index(n)]: sp.nsimplify(t)
                     for n, t in zip(discrete, key, strict=True)}

    def fn(*vals: Any) -> Any:
        key, at = discrete_at(list(vals))
        if key not in fns:
            fns[key] = sp.lambdify(args, expr.subs(at), modules=[_NAMESPACE, "mpmath"])
        return fns[key](*vals)

    def whole_row(vals: list[Any], width: int) -> Callable[..., Any] | None:
        """Every column of a row at once: the expression at ``i = 1 … width`` with its sums
        written out, one mpmath function whose common subexpressions (the row's sums,
        distances) are computed once per row, not once per column; ``None`` where the
        written-out form keeps a sum or a whole row (an argument no entry stands for)."""
        key, at = discrete_at(vals)
        if (key, width) not in rows_of:
            rows_of[key, width] = _whole_row(expr.subs(at), args, names, row_names, sizes, width)
        return rows_of[key, width]

    def rows_fn(arrays: list[np.ndarray], v: np.ndarray | None = None) -> np.ndarray:
        prep = adapter.prepare(*arrays)
        width = prep.width
        values = dict(prep.values)
        if v is not None:
            values["v"] = np.asarray(v).reshape((*prep.rows, width))
        out = np.empty(prep.rows if per_row else (*prep.rows, width), dtype=object)
        for row in np.ndindex(prep.rows):
            def call(row: tuple[int, ...] = row) -> Any:
                vals: list[Any] = []
                for n in names:
                    value = values[n]
                    if n in sizes:
                        vals.append(width)
                    elif n in row_names:  # a row, 1-based
                        vals.append([None, *(mpmath.mpf(float(t)) for t in value[row])])
                    elif np.ndim(value) == 0:  # an option
                        vals.append(mpmath.mpf(float(value)))
                    else:  # one number per row (y = ±1)
                        vals.append(mpmath.mpf(float(value[row])))
                if per_row:
                    return fn(*vals)
                columns = whole_row(vals, width)
                if columns is not None:
                    try:
                        return list(columns(*_entries(vals, names, sizes)))
                    except ZeroDivisionError:
                        # a subexpression of a branch not taken, computed once for all
                        # columns (1/(d₊ + d₋) at a = p = n): the columns one by one
                        pass
                return [fn(*vals, i) for i in range(1, width + 1)]

            out[row] = _settled(call)
        return out

    return rows_fn


def _entries(vals: list[Any], names: list[str], sizes: tuple[str, ...]) -> list[Any]:
    """The arguments of :func:`_whole_row`'s function: each row's entries (the 1-based lists
    without their unused 0th place) and the numbers, in ``names``' order, sizes left out."""
    out: list[Any] = []
    for n, value in zip(names, vals, strict=False):
        if n in sizes:
            continue
        if isinstance(value, list):
            out += value[1:]
        else:
            out.append(value)
    return out


def _whole_row(expr: sp.Expr, args: list[sp.Basic], names: list[str], row_names: list[str],
               sizes: tuple[str, ...], width: int) -> Callable[..., Any] | None:
    """``expr`` (a row family's per-element ``grad`` or ``hvp``, of the free index ``i``) as one
    mpmath function of a row's entries (:func:`_entries`) giving the ``width`` columns: the
    size set to ``width``, ``i`` to 1 … ``width``, the sums written out, the entries as plain
    symbols, common subexpressions shared (``cse``). ``None`` where an entry is not resolved."""
    index = next(a for a in args if str(a) == "i")
    size_of = {a: sp.Integer(width) for a, n in zip(args, names, strict=False) if n in sizes}
    e = expr.xreplace({s: w for s, w in size_of.items() if s in expr.free_symbols})
    e = written_out(e, doit=False)  # only the sums (not Sum.doit: see written_out)
    columns = [e.xreplace({s: sp.Integer(c) for s in e.free_symbols if str(s) == str(index)})
               for c in range(1, width + 1)]
    flat: list[sp.Symbol] = []
    table: dict[sp.Basic, sp.Symbol] = {}
    for n, a in zip(names, args, strict=False):
        if n in sizes:
            continue
        if n not in row_names:
            flat.append(a)  # a number (an option, a per-row ±1)
            continue
        for k in range(1, width + 1):
            entry = sp.Symbol(f"_{n}_{k}")
            table[sp.IndexedBase(str(a))[k]] = entry
            flat.append(entry)
    found: list[sp.Expr] = []
    for c in columns:
        renamed = c.xreplace({x: table.get(sp.IndexedBase(str(x.base.label))[x.indices], x)
                              for x in c.atoms(sp.Indexed)})
        if renamed.has(sp.Sum, sp.Indexed) or not renamed.free_symbols <= set(flat):
            return None
        found.append(renamed)
    return sp.lambdify(flat, found, modules=[_NAMESPACE, "mpmath"], cse=True)  # type: ignore[no-any-return]


def floats_apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many floats of the arrays' dtype lie from ``a`` to ``b``, element by element: 0 where
    they are equal, both NaN, or both below the smallest normal number (which may flush to 0);
    across 0 the floats of both signs count."""
    a, b = np.asarray(a), np.asarray(b)
    it = np.int32 if a.dtype == np.float32 else np.int64
    low = np.int64(np.iinfo(it).min)
    ia, ib = (x.view(it).astype(np.int64) for x in (np.ascontiguousarray(a), np.ascontiguousarray(b)))
    ia, ib = np.where(ia < 0, low - ia, ia), np.where(ib < 0, low - ib, ib)
    tiny = np.finfo(a.dtype).tiny
    with np.errstate(invalid="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b)) | ((np.abs(a) < tiny) & (np.abs(b) < tiny))
    return np.where(same, 0, np.abs(ia - ib))


# --------------------------------------------------------------------------- the battery
def battery(
    d: symloss.Derivation, dtype: str, quick: bool
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(description, input, target)``: typical values, then extremes up to |z| = 10⁴.

    Descriptions with "soft" or "probabilities" are soft targets; the rest hard labels.
    """
    rng = np.random.default_rng(1234)
    dt = np.dtype(dtype)
    grid = np.concatenate([-np.logspace(-3, 4, 15 if quick else 60), [0.0],
                           np.logspace(-3, 4, 15 if quick else 60)]).astype(dt)
    n = 50 if quick else 400
    if d.spec.family == "elementwise":
        probability = d.spec.input_domain(d.options) == "probability"
        if probability:
            x = rng.random(n).astype(dt)
            edges = np.concatenate([np.logspace(-30 if dtype == "float32" else -300, -1, 40),
                                    1 - np.logspace(-7 if dtype == "float32" else -16, -1, 40),
                                    [0.0, 1.0]]).astype(dt)
        else:
            x = (rng.standard_normal(n) * 4).astype(dt)
            edges = grid
        yield "typical, hard labels", x, (rng.random(n) < 0.5).astype(dt)
        yield "typical, soft labels", x, rng.random(n).astype(dt)
        for label in (0.0, 1.0):
            yield f"extreme, y = {label:g}", edges, np.full(edges.shape, label, dt)
    elif d.spec.multi_hot_targets:  # one 0/1 label per class, the input's shape
        c = 10
        x = (rng.standard_normal((n // 5, c)) * 3).astype(dt)
        yield "typical, multi-hot labels", x, (rng.random((n // 5, c)) < 0.5).astype(dt)
        yield "typical, soft labels", x, rng.random((n // 5, c)).astype(dt)
        e = np.zeros((grid.size, c), dtype=dt)
        e[:, 0] = grid
        for label in (0.0, 1.0):
            yield f"extreme, y = {label:g}", e, np.full(e.shape, label, dt)
    else:
        c = 10
        x = (rng.standard_normal((n // 5, c)) * 3).astype(dt)
        yield "typical, class indices", x, rng.integers(0, c, n // 5)
        p = rng.random((n // 5, c))
        yield "typical, probabilities", x, (p / p.sum(axis=1, keepdims=True)).astype(dt)
        e = np.zeros((grid.size, c), dtype=dt)
        e[:, 0] = grid  # one logit swept over ±10⁴, the rest 0: p₀ from ~0 to ~1
        yield "extreme, target = swept class", e, np.zeros(grid.size, np.int64)
        yield "extreme, target = another class", e, np.ones(grid.size, np.int64)


def _torch_grad(d: symloss.Derivation, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    import torch

    from symloss.testing import torch_function

    fn = torch_function(d)
    xt = torch.tensor(x, requires_grad=True)
    fn(xt, torch.tensor(y)).backward()
    return xt.grad.numpy()  # type: ignore[union-attr]


def variants() -> list[tuple[str, dict[str, Any]]]:
    """Every loss at its defaults, plus each alias that presets an option."""
    out: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in symloss.losses()]
    for alias, (_, preset) in sorted(ALIASES.items()):
        if preset:
            out.append((alias, {}))
    return out


def _grid_not_measured(d: symloss.Derivation) -> list[dict[str, Any]]:
    """The grid's row for a loss whose arrays are not (input, target): said, not dropped."""
    why = (f"NOT MEASURED by the grid: it draws (input, target), {d.name} takes "
           f"{', '.join(d.spec.torch_arguments)} (see the search table)")
    return [{"loss": d.name, "dtype": dtype, "targets": "-", "exact_hard": False, "n": 0,
             "symloss_max": float("nan"), "symloss_median": float("nan"),
             "torch_max": float("nan"), "torch_median": float("nan"),
             "symloss_worst": "", "torch_worst": why} for dtype in ("float32", "float64")]


def run(quick: bool, only: list[str] | None = None) -> list[dict[str, Any]]:
    mpmath.mp.dps = DPS
    rows = []
    for name, opts in variants():
        if only and name not in only:
            continue
        try:
            d = symloss.derive(name, reduction="sum", **opts)
            if d.spec.family == "rows" or d.spec.arguments != ("input", "target"):
                rows += _grid_not_measured(d)
                continue
            truth = exact_gradient(d)
        except Exception as exc:  # a new loss this script cannot evaluate yet
            print(f"skipped {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        for dtype in ("float32", "float64"):
            groups: dict[str, dict[str, list[np.ndarray]]] = {}
            worst: dict[tuple[str, str], tuple[float, str]] = {}
            for what, x, y in battery(d, dtype, quick):
                group = "soft" if ("soft" in what or "probabilities" in what) else "hard"
                try:
                    exact = truth(x, y)
                except Exception as exc:  # a primitive mpmath cannot evaluate yet
                    print(f"skipped {name} {dtype} {what}: exact value: "
                          f"{type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                for who, grad in (("symloss", lambda x=x, y=y, d=d: d.grad_fn(x, y)),
                                  ("torch", lambda x=x, y=y, d=d: _torch_grad(d, x, y))):
                    if who == "torch" and not d.spec.has_torch_twin:  # tweedie_loss, …
                        continue
                    try:
                        e = ulps(np.asarray(grad()), exact, np.dtype(dtype))
                    except Exception as exc:
                        print(f"skipped {who} {name} {dtype} {what}: {exc}", file=sys.stderr)
                        continue
                    groups.setdefault(group, {"symloss": [], "torch": []})[who].append(e.ravel())
                    if e.max() >= worst.get((group, who), (-1.0, ""))[0]:
                        worst[group, who] = (float(e.max()), what)
            for group, errs in groups.items():
                row: dict[str, Any] = {
                    "loss": name, "dtype": dtype, "targets": group,
                    # The claim "hard labels within 4 ulp" is the canonical-link losses' (the
                    # kernel that never cancels for y ∈ {0, 1}); the others are held to torch.
                    "exact_hard": d.declaration.soft_targets_take_gradient,
                }
                for who in ("symloss", "torch"):
                    all_e = np.concatenate(errs[who]) if errs[who] else np.array([np.nan])
                    row[f"{who}_max"] = float(np.max(all_e))
                    row[f"{who}_median"] = float(np.median(all_e))
                    row[f"{who}_worst"] = worst.get((group, who), (0.0, ""))[1]
                    if who == "symloss":
                        row["n"] = all_e.size
                    elif not d.spec.has_torch_twin:
                        row["torch_worst"] = "no torch twin"
                rows.append(row)
    return rows


# --------------------------------------------------------------------------- adversarial search
#: The goal: every value, gradient and Hessian-vector product within this many ulps.
GOAL_ULP = 4.0
#: The search's pseudo-evaluator: how many floats apart the two evaluators' results are at each
#: point searched (the same points, so the agreement is searched where it hurts too), and its
#: goal: the NumPy evaluator gives the numba one's answer within one float on every input.
APART = "numpy↔numba floats apart"
GOAL_APART = 1.0
#: Classes in the class-axis search's rows next to exp's underflow (:func:`_class_points`).
UNDERFLOW_CLASSES = 30
#: Where exponentials over/underflow: float32's and float64's exp range, σ(−z) in long double.
_BOUNDARIES = (87.3365, 88.7228, 103.972, 708.396, 709.782, 745.133, 11355.1, 11400.0)


def _ulp_steps(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` moved ``k`` ulps (in its dtype) up (k > 0) or down."""
    out = x.copy()
    direction = np.inf if k > 0 else -np.inf
    for _ in range(abs(k)):
        out = np.nextafter(out, direction).astype(x.dtype)
    return out


def _bisect_root(f: Callable[[float], Any], a: float, b: float, dt: np.dtype) -> float:
    """The float of ``dt`` next to a sign change of ``f`` in [a, b] (f(a)·f(b) < 0), found by
    bisection in the floats' ordering, so that it ends on two adjacent floats."""
    ia, ib = _ordinal(a, dt), _ordinal(b, dt)
    fa = f(a)
    while ib - ia > 1:
        mid = (ia + ib) // 2
        xm = _from_ordinal(mid, dt)
        fm = f(xm)
        if fm == 0:
            return xm
        if (fm > 0) == (fa > 0):
            ia, fa = mid, fm
        else:
            ib = mid
    return _from_ordinal(ia, dt)


def _ordinal(x: float, dt: np.dtype) -> int:
    bits = {4: np.int32, 8: np.int64}[dt.itemsize]
    i = int(np.array(x, dt).view(bits))
    return i if i >= 0 else -(i & ((1 << (8 * dt.itemsize - 1)) - 1))


def _from_ordinal(i: int, dt: np.dtype) -> float:
    bits = {4: np.int32, 8: np.int64}[dt.itemsize]
    if i < 0:
        i = (-i) | (1 << (8 * dt.itemsize - 1))
        i = i - (1 << (8 * dt.itemsize))
    return float(np.array(i, bits).view(dt))


class _Case:
    """One loss × dtype × option set: the derivations, the exact functions, and the symloss
    evaluations.

    ``opts`` may hold :data:`GIVEN` for an array option (a seeded array is laid out for it:
    one weight per class for ``shape="class"``, with :attr:`classes` classes; one number
    broadcast along the last axis for ``shape="last"``), or :data:`GIVEN_EXTREME` (weights
    from the ends of the dtype's range mixed within the array: one per class, or one per
    element for ``shape="last"``, laid out for each call's input, :meth:`given_for`) and
    ``reduction`` ('mean',
    'batchmean'), which the gradient and HVP are taken with (the loss value is always
    reduction='none'); the exact ones are then the per-element ones over the mean's
    denominator (:func:`_mean_denominator`).
    """

    def __init__(self, name: str, opts: dict[str, Any], dtype: str) -> None:
        self.name, self.dt = name, np.dtype(dtype)
        opts = dict(opts)
        self.reduction = opts.pop("reduction", "sum")
        spec = resolve(name)[0]
        #: the number of classes a class-axis search uses (None: several), fixed by a weight
        self.classes: int | None = None
        #: the options laid out per element (GIVEN_EXTREME of shape "last"): given_for
        self.laid: list[str] = []
        for key, value in list(opts.items()):
            if isinstance(value, str) and value in (GIVEN, GIVEN_EXTREME):
                opts[key] = _given_array(spec.option(key), self, value == GIVEN_EXTREME)
        self.options = opts
        self.by_order = {0: symloss.derive(name, reduction="none", **opts),
                         1: symloss.derive(name, reduction=self.reduction, **opts)}
        self.by_order[2] = self.by_order[1]
        self.by_order[3] = self.by_order[0]  # hess_diag_fn: per element, unreduced
        self.d = self.by_order[1]
        per_element = (self.d if self.reduction == "sum"
                       else symloss.derive(name, reduction="sum", **opts))
        # each order's exact function built when first asked for: one that is slow to derive
        # (triplet's p = 10³ HVP expands a power 10³) does not hold up the others
        self.truth = _Lazy({0: lambda: exact(self.by_order[0], "loss"),
                            **{o: lambda o=o: _over_denominator(
                                self, exact(per_element, ORDERS[o])) for o in (1, 2)},
                           3: lambda: exact(self.by_order[0], ORDERS[3])})
        self.family = self.d.spec.family

    def given_for(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The per-element arrays of :attr:`laid` for an input ``x`` (seeded by its size and
        the option's place: weight and pos_weight differ)."""
        return {k: _extreme_weights(x.shape, self.dt, x.size + 7919 * j)
                for j, k in enumerate(self.laid)}

    def symloss(self, order: int, evaluator: str, x: np.ndarray, y: np.ndarray,
                v: np.ndarray | None) -> np.ndarray:
        d = self.by_order[order]
        if self.laid:  # the weights laid out for x (the derivations share one declaration)
            d = symloss.derive(self.name,
                               reduction="none" if order in UNREDUCED else self.reduction,
                               **{**self.options, **self.given_for(x)})
        return _evaluate(d, order, evaluator, [x, y], v)


class _Lazy(dict):  # type: ignore[type-arg]
    """A dict whose values are made by the given functions when first read."""

    def __init__(self, makers: dict[int, Callable[[], Any]]) -> None:
        super().__init__()
        self.makers = makers

    def __missing__(self, key: int) -> Any:
        self[key] = value = self.makers[key]()
        return value


def _elementwise_points(case: _Case, order: int, quick: bool,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs where an elementwise loss's ``order`` is hard to get right: roots of the exact
    value (where it is a difference of nearly equal terms) found by bisection, ± a few ulps;
    kinks ± a few ulps; exp's under/overflow boundaries; a grid; random restarts."""
    dt, d = case.dt, case.d
    probability = d.spec.input_domain(d.options) == "probability"
    truth = case.truth[order]
    labels = d.declaration.symbols
    dom = _target_domain(case)
    ys = _target_values(case, rng, quick)
    xs: list[float] = []
    ts: list[float] = []

    def f(z: float, y: float, fn: Callable[..., Any] = truth, o: int = order) -> Any:
        return fn(np.array([z], dt), np.array([y], dt), np.ones(1, dt))[0] if o == 2 \
            else fn(np.array([z], dt), np.array([y], dt))[0]

    # the value's roots, and for the value the gradient's too: the loss's minimum, where a
    # loss that is 0 there (tweedie's, gamma's) is a difference of nearly equal terms
    signs = [(truth, order)] + ([(case.truth[1], 1)] if order == 0 else [])
    if probability:
        grid = np.concatenate([np.logspace(-30 if dt == np.float32 else -300, -1, 12),
                               1 - np.logspace(-7 if dt == np.float32 else -16, -1, 12)])
    else:
        tiny = [1e-20, 1e-30, 1e-37] if dt == np.float32 else [1e-30, 1e-100, 1e-300]
        g = np.concatenate([tiny, np.logspace(-9, 4, 10 if quick else 40)])
        grid = np.concatenate([-g[::-1], [0.0], g])
    grid = np.unique(grid.astype(dt)).astype(float)
    lo, hi = _input_range(case)
    grid = grid[(grid >= lo) & (grid <= hi)]  # poisson's log_input=False: a rate ≥ 0
    offsets = range(-2, 3) if quick else range(-4, 5)
    for y in ys:
        y = float(dt.type(y))
        for fn, o in signs:
            vals = [f(z, y, fn, o) for z in grid]
            for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:], strict=True):
                if fa * fb < 0:  # a root of the exact value: the difference cancels around it
                    root = _bisect_root(lambda z, y=y, fn=fn, o=o: f(z, y, fn, o), a, b, dt)
                    for k in offsets:
                        xs.append(float(_ulp_steps(np.array([root], dt), k)[0]))
                        ts.append(y)
        xs.extend(grid)
        ts.extend([y] * grid.size)
        for kink in d.declaration.kinks:
            at = dict(kink.at)
            zk = at.get(labels["input"])
            yk = float(at.get(labels["target"], y))
            scalars = {labels[n]: float(d.options[n]) for n in labels
                       if n not in ("input", "target", "weight", "pos_weight")}
            try:
                z0 = float(sp.sympify(zk).subs({labels["target"]: yk, **scalars}))
            except (TypeError, ValueError):
                continue
            for k in offsets:
                xs.append(float(_ulp_steps(np.array([z0], dt), k)[0]))
                ts.append(yk)
        if not probability:
            for edge in _BOUNDARIES:
                for sign in (-1.0, 1.0):
                    for k in (-1, 0, 1):
                        xs.append(float(_ulp_steps(np.array([sign * edge], dt), k)[0]))
                        ts.append(y)
    # the target side: at a few inputs, the roots in y of the value (and of the gradient, for
    # the value) bisected over a grid of targets in the declared domain, ± a few ulps
    if dom.values is None and not dom.integer:
        ygrid = sorted(set(_target_values(case, rng, quick=quick, grid=True)))
        zs = list(grid[::max(1, grid.size // (3 if quick else 12))]) + list(
            rng.choice(grid, 1 if quick else 4))
        for z in zs:
            for fn, o in signs:
                vals = [f(z, t, fn, o) for t in ygrid]
                for a, b, fa, fb in zip(ygrid[:-1], ygrid[1:], vals[:-1], vals[1:],
                                        strict=True):
                    if fa * fb < 0:
                        root = _bisect_root(lambda t, z=z, fn=fn, o=o: f(z, t, fn, o),
                                            a, b, dt)
                        for k in offsets:
                            xs.append(float(z))
                            ts.append(float(_ulp_steps(np.array([root], dt), k)[0]))
    n = 20 if quick else 400
    if probability:
        rx = rng.random(n)
    else:
        rx = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-10, 4, n)
    xs.extend(rx)
    ts.extend(rng.choice(ys, n))
    x, y = np.array(xs, dt), np.array(ts, dt)
    with np.errstate(all="ignore"):
        keep = np.isfinite(x) & (x >= lo) & (x <= hi) & _in_domain(dom, y)
    return x[keep], y[keep]


def _target_domain(case: _Case) -> Any:
    """The declared domain of an element-wise loss's target (at the case's options)."""
    return case.d.spec.target_domains(case.d.options)[0]


def _in_domain(dom: Any, y: np.ndarray) -> np.ndarray:
    """Which entries of ``y`` the domain ``dom`` holds (a target outside it is not an input
    the loss is defined at, so never a point of the search)."""
    with np.errstate(all="ignore"):
        inside = np.isfinite(y) & (y >= dom.lo) & (y <= dom.hi)
        if dom.integer:
            inside &= np.floor(y) == y
        if dom.values is not None:
            inside &= np.isin(y, np.asarray(dom.values, y.dtype))
    return inside


def _target_values(case: _Case, rng: np.random.Generator, quick: bool,
                   grid: bool = False) -> list[float]:
    """Targets of an element-wise loss's search, read from the declared target domain: its
    listed values (±1), else its declared points, 0.5 and 0.999 and 10⁻³ where inside, the
    domain's finite ends moved in by 1 and 2 ulps (1 − ulp; 0 + the smallest normal and
    10⁻³⁰ / 10⁻³⁰⁰), random draws in the domain (integers for an integer one). ``grid``: a
    wider spread for bisecting roots in y (decades from 10⁻⁹ to 10⁴ where unbounded)."""
    dom, dt = _target_domain(case), case.dt
    if dom.values is not None:
        return [float(t) for t in dom.values]
    out = [*dom.points, 0.5, 0.999, 1e-3]
    tiny = 1e-30 if dt == np.float32 else 1e-300
    for end, sign in ((dom.lo, 1.0), (dom.hi, -1.0)):
        if not np.isfinite(end):
            continue
        if abs(end) < np.finfo(dt).tiny:  # 0 (or a subnormal): the normal numbers next to it
            out += [sign * tiny, sign * float(np.finfo(dt).tiny)]
            continue
        out += [float(_ulp_steps(np.array([end], dt), int(sign) * k)[0]) for k in (1, 2)]
    if grid:
        g = np.logspace(-6, 3, 4) if quick else np.logspace(-9, 4, 14)
        out += [*g, *(-g), 0.0, 0.1, 0.9, 1 - 1e-6]
    draws = rng.standard_normal(1 if quick else 6) * 3
    if np.isfinite(dom.lo) and np.isfinite(dom.hi):
        draws = rng.uniform(dom.lo, dom.hi, draws.size)
    elif np.isfinite(dom.lo):
        draws = dom.lo + np.abs(draws)
    elif np.isfinite(dom.hi):
        draws = dom.hi - np.abs(draws)
    out += list(np.round(draws) if dom.integer else draws)
    if quick:  # --quick: the points, one value inside, the ends, one draw (and the grid)
        out = [*dom.points, 0.5, *out[len(dom.points) + 3:]]
    values = np.unique(np.array(out, np.float64).astype(dt))
    return [float(t) for t in values[_in_domain(dom, values)]]


def _input_range(case: _Case) -> tuple[float, float]:
    """The closed range the input's declared domain allows (at the case's options)."""
    dom = case.d.spec.arguments_for(case.d.options)[0].domains[0]
    return dom.lo, dom.hi


def _class_points(case: _Case, quick: bool,
                  rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rows where a class-axis loss is hard: one logit swept so that pᵢ → 1 or → 0 (roots of
    1 − pᵢ), soft targets equal to the rounded prediction (p − y cancels), random rows."""
    dt, d = case.dt, case.d
    out: list[tuple[np.ndarray, np.ndarray]] = []
    # class probabilities too, unless an ignore_index ≥ 0 is set (torch rejects them then)
    soft = not d.spec.index_targets_only and d.options.get("ignore_index", IGNORE_INDEX) < 0
    g = np.logspace(-9, 4, 14 if quick else 40)
    sweep = np.concatenate([-g[::-1], [0.0], g, _BOUNDARIES, -np.array(_BOUNDARIES)])
    for c in (case.classes,) if case.classes else (3,) if quick else (2, 3, 10):
        x = np.zeros((sweep.size, c), dt)
        x[:, 0] = sweep
        if d.spec.multi_hot_targets:
            for label in (0.0, 1.0, 0.5):
                out.append((x, np.full(x.shape, label, dt)))
            continue
        out.append((x, np.zeros(sweep.size, np.int64)))
        out.append((x, np.ones(sweep.size, np.int64)))
        if soft:
            onehot = np.zeros(x.shape, dt)
            onehot[:, 0] = 1
            out.append((x, onehot))
    # many classes next to exp's underflow: one logit ahead by z₀, the others' e^(−z₀) each
    # rounded to the subnormal grid and summed where a class's Σ_{k≠i} pₖ is (C − 1 half-unit
    # errors that add up: subnormal results, and normal ones up to z₀ = −log(tiny) + log(C − 1))
    info = np.finfo(dt)
    lo, sub = -np.log(float(info.tiny)), -np.log(float(info.smallest_subnormal))
    edge = np.linspace(lo - 1, sub, 4 if quick else 12)
    for c in (case.classes,) if case.classes else (UNDERFLOW_CLASSES,):
        x = np.zeros((edge.size, c), dt)
        x[:, 0] = edge
        if d.spec.multi_hot_targets:
            out.append((x, np.zeros(x.shape, dt)))
            continue
        out.append((x, np.zeros(edge.size, np.int64)))
        out.append((x, np.ones(edge.size, np.int64)))
    n = 10 if quick else 200
    for c in (case.classes,) if case.classes else (3, 10):
        x = (rng.standard_normal((n, c)) * 10.0 ** rng.uniform(-3, 1.5, (n, 1))).astype(dt)
        if d.spec.multi_hot_targets:
            p = 1 / (1 + np.exp(-x.astype(np.float64)))
            out.append((x, p.astype(dt)))  # y = σ(x) rounded: σ(x) − y cancels
            out.append((x, (rng.random((n, c)) < 0.5).astype(dt)))
            continue
        out.append((x, rng.integers(0, c, n)))
        if soft:
            e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
            p = (e / e.sum(axis=1, keepdims=True)).astype(dt)  # p − y cancels
            out.append((x, p))
    return out


def _errors(case: _Case, order: int, evaluators: list[str], exact_value: Callable[[], Any],
            evaluate: Callable[[str], Any]) -> list[tuple[str, np.ndarray]]:
    """Each evaluator's error in ulps against ``exact_value()``; a failure is said on stderr
    (the exact value's: nothing is measured; an evaluator's: that evaluator is left out)."""
    try:
        ex = exact_value()
    except Exception as exc:
        print(f"search {case.name} order {order}: exact value: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return []
    found = []
    got = {}
    for e in evaluators:
        try:
            got[e] = np.asarray(evaluate(e))
            err = ulps(got[e], ex, case.dt)
        except Exception as exc:
            print(f"search {case.name} order {order} {e}: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            continue
        found.append((e, err))
    if "numpy" in got and "numba" in got:  # (a result with a class axis: apart per element)
        found.append((APART, floats_apart(got["numpy"], got["numba"]).astype(float)))
    return found


def search(case: _Case, order: int, evaluators: list[str], quick: bool,
           seed: int = 0, worst: dict[str, tuple[float, str, int]] | None = None
           ) -> dict[str, tuple[float, str, int]]:
    """The worst error (ulps) each evaluator makes on the points :func:`_elementwise_points`
    / :func:`_class_points` pick, then refined: the worst points moved by ±1…4 ulps, kept
    while the error grows. Returns ``{evaluator: (worst ulp, its inputs, points)}``, filled
    into ``worst`` as it goes when given (what a time limit leaves is the worst so far)."""
    rng = np.random.default_rng(seed)
    dt = case.dt
    truth = case.truth[order]
    if worst is None:
        worst = {}
    worst.update({e: (0.0, "", 0) for e in evaluators})

    def measure(x: np.ndarray, y: np.ndarray,
                v: np.ndarray | None = None) -> list[tuple[str, np.ndarray]]:
        if v is None and case.family == "elementwise":
            v = np.ones(x.shape, dt)
        elif v is None:
            v = np.zeros(x.shape, dt)
            v[..., 0] = 1  # e₀: the column of the swept logit
        given = case.given_for(x)
        return _errors(case, order, evaluators,
                       lambda: truth(x, y, v, **given) if order == 2 else truth(x, y, **given),
                       lambda e: case.symloss(order, e, x, y, v))

    def record(x: np.ndarray, y: np.ndarray, found: list[tuple[str, np.ndarray]]) -> None:
        for e, err in found:
            flat = np.nan_to_num(err.reshape(err.shape[0], -1).max(axis=1), nan=np.inf)
            j = int(np.argmax(flat))
            w, where, n = worst.get(e, (0.0, "", 0))
            n += err.size
            if flat[j] > w or not where:
                where = (f"input={np.array2string(x[j], precision=17, max_line_width=10**6)}, "
                         f"target={np.array2string(np.asarray(y[j]), precision=17, max_line_width=10**6)}")
                where += "".join(f", {k}={float(a.ravel()[j])!r}" for k, a in case.given_for(x).items())
                w = float(flat[j])
            worst[e] = (w, where, n)

    if case.family == "elementwise":
        x, y = _elementwise_points(case, order, quick, rng)
        found = measure(x, y)
        record(x, y, found)
        # refine: around the 8 worst points of each evaluator, ±1…4 ulps in the input
        picks: set[int] = set()
        for _, err in found:
            picks.update(np.argsort(np.nan_to_num(err, nan=np.inf))[-8:].tolist())
        idx = np.array(sorted(picks), dtype=np.int64)
        if idx.size:
            steps = [k for k in (-4, -3, -2, -1, 1, 2, 3, 4)]
            xr = np.concatenate([_ulp_steps(x[idx], k) for k in steps])
            yr = np.concatenate([y[idx]] * len(steps))
            lo, hi = _input_range(case)
            inside = (xr >= lo) & (xr <= hi)  # a step past 0 or 1 is not an input
            xr, yr = xr[inside], yr[inside]
            record(xr, yr, measure(xr, yr))
    else:
        for x, y in _class_points(case, quick, rng):
            record(x, y, measure(x, y))
            if order == 2:  # and a direction whose entry 1 is the p-weighted mean of the rest
                v = _centred_direction(x, rng)
                record(x, y, measure(x, y, v))
    return worst


def _centred_direction(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded normal direction per row with ``v₁ = Σ_{k≠1} pₖvₖ / (1 − p₁)`` (p = softmax(x)),
    rounded: there ``v₁ − Σₖ pₖvₖ`` -- the bracket of cross-entropy's hvp -- cancels."""
    v = rng.standard_normal(x.shape)
    with np.errstate(all="ignore"):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        rest = (p * v).sum(axis=1) - p[:, 1] * v[:, 1]
        mean = rest / (1.0 - p[:, 1])
    v[:, 1] = np.where(np.isfinite(mean), mean, v[:, 1])
    return v.astype(x.dtype)


# ----------------------------------------------------------- losses of more than (input, target)
def _torch_order(d: symloss.Derivation, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The arrays by key (``input``, ``input2``, ``var``, …) in torch's positional order."""
    return [arrays[k] for k in d.spec.arguments]


def _multi_call(case: _Case, order: int, evaluator: str, arrays: dict[str, np.ndarray],
                v: np.ndarray) -> np.ndarray:
    """symloss's loss (reduction='none'), gradient w.r.t. the input or HVP at ``arrays``."""
    d = case.by_order[order]
    return _evaluate(d, order, evaluator, _torch_order(d, arrays), v)


def _evaluate(d: symloss.Derivation, order: int, evaluator: str, given: list[np.ndarray],
              v: np.ndarray | None) -> np.ndarray:
    """``d``'s order ``order`` (loss, gradient, HVP along ``v``, Hessian diagonal) at the
    arrays ``given`` in torch's order, by ``evaluator``: ``"numpy"``, or ``"numba"`` -- the
    compiled kernels (element-wise, class-axis and row) on arrays of any size."""
    from symloss import fast, rows

    calls = {0: lambda: d.loss_fn(*given), 1: lambda: d.grad_fn(*given),
             2: lambda: d.hvp_fn(*given, v), 3: lambda: d.hess_diag_fn(*given)}
    if evaluator == "numpy":
        with fast.disabled():
            return np.asarray(calls[order]())
    floor, fast.MIN_SIZE = fast.MIN_SIZE, 0
    row_floor, rows.COMPILED_MIN_SIZE = rows.COMPILED_MIN_SIZE, 0
    try:
        return np.asarray(calls[order]())
    finally:
        fast.MIN_SIZE, rows.COMPILED_MIN_SIZE = floor, row_floor


def _multi_exact(case: _Case, order: int, arrays: dict[str, np.ndarray],
                 v: np.ndarray) -> np.ndarray:
    truth, d = case.truth[order], case.d
    if case.family == "rows":
        return truth(_torch_order(d, arrays), v) if order == 2 \
            else truth(_torch_order(d, arrays))
    others = {k: a for k, a in arrays.items() if k not in ("input", "target")}
    if order == 2:
        return truth(arrays["input"], arrays["target"], v, **others)
    return truth(arrays["input"], arrays["target"], **others)


def _side_values(case: _Case, key: str, rng: np.random.Generator, quick: bool) -> list[float]:
    """Values an element-wise loss's further array (``var``, ``input2``, the ±1 target) takes in
    the search: its domain's listed values, its declared points, tiny and huge ones, the
    clamps of the loss (``clamp_min(σ², ε)``: ε ± a few ulps), random draws."""
    d, dt = case.d, case.dt
    arg = next(a for a in d.spec.arguments_for(d.options) if a.symbol_key == key)
    dom = arg.domains[0]
    if dom.values:
        return [float(t) for t in dom.values]
    big = 1e30 if dt == np.float32 else 1e200
    out = [*dom.points, 1e-30, 1e-3, 1e3, big]
    if dom.lo < 0:
        out += [-t for t in out if t > 0]
    symbol = d.declaration.symbols[key]
    for clamp in d.declaration.loss.atoms(sp.Function):
        if type(clamp).__name__ == "clamp_min" and clamp.args[0] == symbol:
            lo = float(sp.sympify(clamp.args[1]).subs(
                {d.declaration.symbols[n]: float(d.options[n]) for n in d.declaration.symbols
                 if n in d.options and not isinstance(d.options[n], bool)}))
            out += [float(_ulp_steps(np.array([lo], dt), k)[0]) for k in (-2, -1, 0, 1, 2)]
    out += list(np.abs(rng.standard_normal(1 if quick else 3)) * 3)
    return [t for t in out if dom.contains(t)]


def _multi_elementwise_points(case: _Case, order: int, quick: bool,
                              rng: np.random.Generator) -> dict[str, np.ndarray]:
    """:func:`_elementwise_points` for a loss of further arrays: each combination of the
    other arrays' values (:func:`_side_values`), the input swept over a grid with every root
    of the exact value bisected (± a few ulps), the declared kinks ± a few ulps, huge inputs
    (squares overflow), random restarts."""
    d, dt = case.d, case.dt
    keys = [k for k in d.spec.arguments if k != "input"]
    labels = d.declaration.symbols
    choices = [_side_values(case, k, rng, quick) for k in keys]
    combos = [dict(zip(keys, c, strict=True)) for c in np.array(np.meshgrid(*choices)).reshape(
        len(keys), -1).T.tolist()]
    if quick:
        combos = [combos[j] for j in rng.choice(len(combos), min(12, len(combos)), replace=False)]
    g = np.logspace(-9, 4, 10 if quick else 30)
    huge = [1e15, 1e30] if dt == np.float32 else [1e15, 1e100, 1e200, 1e300]
    grid = np.unique(np.concatenate([-g[::-1], [0.0], g, huge, -np.array(huge)]).astype(dt)
                     ).astype(float)
    offsets = range(-2, 3) if quick else range(-4, 5)
    pts: list[tuple[float, dict[str, float]]] = []

    def f(z: float, combo: dict[str, float]) -> Any:
        arrays = {"input": np.array([z], dt),
                  **{k: np.array([t], dt) for k, t in combo.items()}}
        return _multi_exact(case, order, arrays, np.ones(1, dt))[0]

    for combo in combos:
        vals = [f(z, combo) for z in grid]
        for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:], strict=True):
            if fa * fb < 0:
                def along(z: float, c: dict[str, float] = combo) -> Any:
                    return f(z, c)

                root = _bisect_root(along, a, b, dt)
                pts += [(float(_ulp_steps(np.array([root], dt), k)[0]), combo) for k in offsets]
        pts += [(z, combo) for z in grid]
        for kink in d.declaration.kinks:
            at = dict(kink.at)
            given = {labels[k]: t for k, t in combo.items()}
            if any(given.get(s, t) != t for s, t in at.items() if s != labels["input"]):
                continue  # the kink is at another target
            subs = {**given, **{labels[n]: float(d.options[n]) for n in labels
                                if n in d.options and not isinstance(d.options[n], bool)}}
            try:
                z0 = float(sp.sympify(at[labels["input"]]).subs(subs))
            except (TypeError, ValueError, KeyError):
                continue
            pts += [(float(_ulp_steps(np.array([z0], dt), k)[0]), combo) for k in offsets]
    n = 20 if quick else 400
    rx = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-10, 4, n)
    pts += [(float(z), combos[int(rng.integers(len(combos)))]) for z in rx]
    out = {"input": np.array([z for z, _ in pts], dt)}
    for k in keys:
        out[k] = np.array([c[k] for _, c in pts], dt)
    return out


def _extreme_scales(dt: np.dtype) -> list[float]:
    """Row scales at either end of ``dt``'s range, where a row kernel's intermediate products
    leave it: subnormal elements; rows whose squares and products underflow (10⁻³⁰⁰ and 10⁻¹⁶⁰
    in float64: a dot product of 10⁻⁶⁰⁰ is 0, and cosine_embedding_loss's gradient at y = −1
    is normal, 10⁻²⁸⁸, only on the side of 0 that dot product's sign picks); rows whose
    squares or products of norms overflow (10¹⁵⁰, 10³⁰⁰ in float64)."""
    info = np.finfo(dt)
    tiny, big = float(info.tiny), float(info.max)
    return [tiny * 2.0**-10, tiny * 2.0**30, tiny**0.5 * 2.0**-20, big**0.5 * 2.0**-14,
            big * 2.0**-20]


def _row_points(case: _Case, quick: bool,
                rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """Batches of rows where a row-wise loss is hard: the checker's row battery (its rows on
    each declared kink found by bisection: c = margin, d(a, p) + margin = d(a, n)) and those
    rows' input moved ± a few ulps; second arrays nearly parallel / antiparallel to the input
    (cos ≈ ±1: 1 − c cancels; a ≈ p: d(a, p) ≈ ε), permuted differences (d(a, p) = d(a, n)),
    rows scaled from 10⁻³⁰ to 10³⁰ and, the first five of each batch, to either end of the
    dtype's range (:func:`_extreme_scales`: products underflow or overflow); classes one margin
    apart (1 − x_l + x_k ≈ 0)."""
    from symloss.rows_battery import _index_lists, battery_cases

    d, dt = case.d, case.dt
    args = d.spec.arguments_for(d.options)
    vectors = [a.symbol_key for a in args if a.symbol_key != "target" and a.differentiable]
    has_target = "target" in d.spec.arguments
    domain = d.spec.target_domains(d.options)[0].name if has_target else ""
    out: list[dict[str, np.ndarray]] = []

    def targets(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
        if not has_target:
            return {}
        if domain == "±1":
            return {"target": np.where(np.arange(shape[0]) % 2 == 0, 1.0, -1.0).astype(dt)}
        return {"target": _index_lists(rng, shape)}

    for c in battery_cases(d, rng, str(dt), (-np.inf, np.inf)):
        arrays = dict(zip(d.spec.arguments, c.arrays(d.spec), strict=True))
        if np.ndim(arrays["input"]) != 2:
            continue
        out.append(arrays)
        if c.kink:
            for k in (-2, -1, 1, 2):
                out.append({**arrays, "input": _ulp_steps(arrays["input"], k)})
    n = 8 if quick else 64
    for width in (3,) if quick else (2, 3, 16):
        shape = (n, width)
        a = rng.standard_normal(shape)
        scale = 10.0 ** rng.uniform(-30, 30, (n, 1))
        ends = _extreme_scales(dt)
        scale[: len(ends), 0] = ends
        base = {"input": (a * scale).astype(dt)}
        for sign in (1.0, -1.0):
            for rel in (0.0, 1e-12, 1e-6, 1e-3):
                near = {"input": base["input"]}
                for key in vectors[1:]:  # parallel (+1) / antiparallel (−1), nearly
                    near[key] = ((sign * a + rel * rng.standard_normal(shape)) * scale).astype(dt)
                out.append({**near, **targets(shape)})
        if len(vectors) == 3:  # |a − n| a permutation of |a − p|: d(a, p) = d(a, n)
            diff = rng.standard_normal(shape)
            p = a + diff
            nn = a + rng.permuted(diff, axis=1) * (1 + 10.0 ** rng.uniform(-12, -1, (n, 1)))
            for s in (1e-3, 1.0, 1e3):
                out.append({"input": (a * s).astype(dt), vectors[1]: (p * s).astype(dt),
                            vectors[2]: (nn * s).astype(dt)})
        if len(vectors) == 1:  # one margin apart: x_k = x_l − 1 (± ulps)
            x = np.round(rng.standard_normal(shape) * 4).astype(dt)
            x[:, 1] = x[:, 0] - 1
            t = _index_lists(rng, shape)
            t[:, 0], t[:, 1] = 0, -1
            for k in (-2, -1, 0, 1, 2):
                out.append({"input": _ulp_steps(x, k), "target": t})
            out.append({"input": (x * 1e20).astype(dt), "target": t})
        out.append({**{k: (rng.standard_normal(shape) * scale).astype(dt) for k in vectors},
                    **targets(shape)})
    return out


def search_multi(case: _Case, order: int, evaluators: list[str], quick: bool,
                 seed: int = 0, worst: dict[str, tuple[float, str, int]] | None = None
                 ) -> dict[str, tuple[float, str, int]]:
    """:func:`search` for an element-wise loss of further arrays (``var``, ``input2``) and for
    the row family: the worst error per evaluator with its inputs (all arrays, one element /
    row); element-wise points refined by moving the worst inputs ±1…4 ulps."""
    rng = np.random.default_rng(seed)
    dt = case.dt
    if worst is None:
        worst = {}
    worst.update({e: (0.0, "", 0) for e in evaluators})

    def direction(arrays: dict[str, np.ndarray]) -> np.ndarray:
        x = arrays["input"]
        if case.family == "rows":
            return np.random.default_rng(1).standard_normal(x.shape).astype(dt)
        return np.ones(x.shape, dt)

    def measure(arrays: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        v = direction(arrays)
        return _errors(case, order, evaluators, lambda: _multi_exact(case, order, arrays, v),
                       lambda e: _multi_call(case, order, e, arrays, v))

    def show(a: np.ndarray) -> str:
        return np.array2string(np.asarray(a), precision=17, max_line_width=10**6)

    def record(arrays: dict[str, np.ndarray], found: list[tuple[str, np.ndarray]]) -> None:
        rows = arrays["input"].shape[0]
        for e, err in found:
            flat = np.nan_to_num(err.reshape(rows, -1).max(axis=1), nan=np.inf)
            j = int(np.argmax(flat))
            w, where, n = worst.get(e, (0.0, "", 0))
            if flat[j] > w or not where:
                where = ", ".join(f"{k}={show(np.broadcast_to(t, arrays['input'].shape[:1] + np.shape(t)[1:])[j])}"
                                  for k, t in arrays.items())
                w = float(flat[j])
            worst[e] = (w, where, n + err.size)

    if case.family == "rows":
        for arrays in _row_points(case, quick, rng):
            record(arrays, measure(arrays))
        return worst
    arrays = _multi_elementwise_points(case, order, quick, rng)
    found = measure(arrays)
    record(arrays, found)
    picks: set[int] = set()
    for _, err in found:
        picks.update(np.argsort(np.nan_to_num(err, nan=np.inf))[-8:].tolist())
    idx = np.array(sorted(picks), dtype=np.int64)
    if idx.size:
        steps = (-4, -3, -2, -1, 1, 2, 3, 4)
        moved = {k: np.concatenate([_ulp_steps(t[idx], s) if k == "input" else t[idx]
                                    for s in steps]) for k, t in arrays.items()}
        record(moved, measure(moved))
    return worst


class TimeLimitReached(BaseException):
    """Raised (by a timer signal) when one option set's search has run its time limit: a
    BaseException, so that the search's ``except Exception`` (an evaluator failing) lets it
    through to :func:`run_search`, which reports the worst found so far."""


#: CPU seconds one option set (a loss at one set of options, both dtypes, every order) may
#: search before it is cut short and reported as not finished (``--set-limit``). CPU time,
#: not wall time: on a machine shared with other work (2 cores, 8 processes) a wall-clock
#: limit cut sets that take a fraction of it alone.
SET_LIMIT_S = 300.0


class _Deadline:
    """``with _Deadline(seconds):`` raises :class:`TimeLimitReached` in the block once
    ``seconds`` of this process's CPU time have passed (ITIMER_PROF / SIGPROF: user and system
    time of all its threads, so that waiting for a busy CPU does not count; no limit where
    there is none: off the main thread, on Windows, or ``seconds`` ≤ 0).

    A signal handler's exception can be lost: Python runs the handler at the next bytecode,
    which may be inside a weakref finaliser or a ``__del__`` whose exceptions are only printed.
    So the timer keeps firing (every :data:`_DEADLINE_REPEAT_S` CPU seconds at most) until the
    block ends, and a block that swallowed every raise still ends in
    :class:`TimeLimitReached` at its exit: a limit is never silently missed. A raise that a
    finaliser swallowed reaches :data:`sys.unraisablehook`: the block's own hook drops it (it
    is recorded) and, while any hook runs, the timer does not raise (a raise inside pytest's
    hook failed a CI run: "Failed to process unraisable exception")."""

    def __init__(self, seconds: float | None) -> None:
        import signal
        import threading

        self.seconds = seconds or 0.0
        self.armed = (self.seconds > 0 and hasattr(signal, "setitimer")
                      and threading.current_thread() is threading.main_thread())
        self.expired = False
        self.hooked = False

    def __enter__(self) -> _Deadline:
        import signal
        import sys

        if self.armed:
            def fire(signum: int, frame: Any) -> None:
                self.expired = True
                if not self.hooked:
                    raise TimeLimitReached

            previous_hook = self.previous_hook = sys.unraisablehook

            def hook(unraisable: Any) -> None:
                self.hooked = True
                try:
                    if not isinstance(unraisable.exc_value, TimeLimitReached):
                        previous_hook(unraisable)
                finally:
                    self.hooked = False

            sys.unraisablehook = hook
            self.previous = signal.signal(signal.SIGPROF, fire)
            signal.setitimer(signal.ITIMER_PROF, self.seconds,
                             min(self.seconds, _DEADLINE_REPEAT_S))
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: Any) -> None:
        import signal
        import sys

        if self.armed:
            # A signal may land here too: disarm whatever happens. (Not by blocking SIGPROF
            # with pthread_sigmask around the disarm: a signal pending when the old handler,
            # SIG_DFL, is back and the mask lifted would end the process.)
            try:
                signal.setitimer(signal.ITIMER_PROF, 0)
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
                signal.signal(signal.SIGPROF, self.previous)
                sys.unraisablehook = self.previous_hook
            if self.expired and kind is None:  # every raise was swallowed on the way
                raise TimeLimitReached


#: the most CPU seconds between two raises of an expired :class:`_Deadline`
_DEADLINE_REPEAT_S = 1.0


def run_search(quick: bool, only: list[str] | None = None,
               variants_of: dict[str, dict[str, Any]] | None = None,
               limit: float | None = None) -> list[dict[str, Any]]:
    """The worst point per loss × order × dtype × evaluator (at the options ``variants_of``
    gives a loss, else at every loss's defaults and each alias's preset).

    ``limit``: seconds per loss and option set; a search cut short by it gives rows with
    ``"time_limit": True``: the order being searched with its worst point so far, the orders
    not reached with no points -- never counted as meeting the goal."""
    from symloss import fast

    mpmath.mp.dps = DPS
    evaluators = ["numpy", "numba"] if fast.available() else ["numpy"]
    rows: list[dict[str, Any]] = []
    listed = list(variants_of.items()) if variants_of else variants()
    for name, opts in listed:
        if only and name not in only:
            continue
        start = len(rows)
        todo = [(dt, o) for o in ORDERS for dt in ("float32", "float64")]
        worst: dict[str, tuple[float, str, int]] = {}
        try:
            with _Deadline(limit):
                _search_one(name, opts, evaluators, quick, rows, todo, worst)
        except TimeLimitReached:
            why = f"TIME LIMIT ({limit:g} CPU s) reached"
            print(f"search {name} ({describe(opts)}): {why}", file=sys.stderr, flush=True)
            if todo:  # the order being searched: its worst point so far
                dt, o = todo.pop(0)
                for e in evaluators:
                    w, where, n = worst.get(e, (0.0, "", 0))
                    rows.append({"loss": name, "dtype": dt, "order": ORDERS[o],
                                 "evaluator": e, "worst": w if n else float("nan"), "n": n,
                                 "time_limit": True,
                                 "where": f"{why} after {n} points; worst so far at {where}"
                                 if n else f"NOT MEASURED: {why} before any point"})
            rows += [{"loss": name, "dtype": dt, "order": ORDERS[o], "evaluator": e,
                      "worst": float("nan"), "n": 0, "time_limit": True,
                      "where": f"NOT MEASURED: {why} before this order"}
                     for dt, o in todo for e in evaluators]
            # the value and hess_diag are not searched at a mean: no row for them (as when
            # there is time)
            rows[start:] = [r for r in rows[start:] if not (
                r["order"] in [ORDERS[o] for o in UNREDUCED] and r.get("time_limit")
                and r["n"] == 0
                and opts.get("reduction", "sum") != "sum")]
        # the tables' order: dtype, then order (searched order by order)
        rank = {o: k for k, o in enumerate(ORDERS.values())}
        rows[start:] = sorted(rows[start:], key=lambda r: (r["dtype"], rank.get(r["order"], -1)))
    return rows


def _search_one(name: str, opts: dict[str, Any], evaluators: list[str], quick: bool,
                rows: list[dict[str, Any]], todo: list[tuple[str, int]],
                worst: dict[str, tuple[float, str, int]]) -> None:
    """:func:`run_search` for one loss and option set: appends its rows to ``rows`` and pops
    each (dtype, order) off ``todo`` once done; ``worst`` holds the order being searched.
    Order by order, both dtypes each, so that an order slow to derive (an HVP) leaves the
    others measured when the time limit cuts it short."""
    cases = {}
    for dtype in ("float32", "float64"):
        try:
            cases[dtype] = case = _Case(name, opts, dtype)
        except Exception as exc:
            print(f"not searched {name} ({describe(opts)}): {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            todo.clear()
            return
        multi = case.family == "rows" or case.d.spec.arguments != ("input", "target")
        if case.family not in ("elementwise", "class_axis", "rows") or (
                multi and case.family == "class_axis"):
            rows.append({"loss": name, "dtype": dtype, "order": "-", "evaluator": "-",
                         "worst": float("nan"), "where": "NOT MEASURED: the search has no "
                         f"points for family {case.family!r} with arrays "
                         f"{', '.join(case.d.spec.arguments)}", "n": 0})
            todo.clear()
            return
    while todo:
        dtype, order = todo[0]
        case = cases[dtype]
        if order in UNREDUCED and case.reduction != "sum":
            todo.pop(0)
            continue  # the value and hess_diag are per element whatever the reduction
        multi = case.family == "rows" or case.d.spec.arguments != ("input", "target")
        worst.clear()
        # the row family: its NumPy kernels and its compiled ones (rows_compiled)
        (search_multi if multi else search)(case, order, evaluators, quick, worst=worst)
        for e, (w, where, n) in worst.items():
            rows.append({"loss": name, "dtype": dtype, "order": ORDERS[order],
                         "evaluator": e, "worst": w, "where": where, "n": n})
        todo.pop(0)


# --------------------------------------------------------------------------- option variants
#: In a variant's options: this array option is given (:func:`_given_array` lays it out).
GIVEN = "given"
#: In a variant's options: this array option is given with extreme magnitudes
#: (:func:`_extreme_weights`), mixed within the array.
GIVEN_EXTREME = "given extreme"
#: Values that stress a continuous option, by its declared ``kind``, tried beside its default
#: and its declared examples (:meth:`Option.tried`): 0 and a negative value for a real one
#: (margins, alpha), tiny and large scales for a positive one (delta, eps), exponents 0 … 5
#: and tiny / large ones for a non-negative one (gamma, beta), near 0 and 1 for one in [0, 1]
#: (label_smoothing, quantile). Values a loss rejects are said on stderr and left out.
STRESS: dict[str, tuple[float, ...]] = {
    "real": (0.0, -1.0, 1e3),
    "positive": (1e-6, 1e3),
    "nonnegative": (0.0, 1e-6, 1.0, 5.0, 1e3),
    "unit_interval": (1e-3, 0.9, 0.999),
}
#: How close to the ends of an option's declared open interval (:attr:`Option.interval`) the
#: variant search goes, as a fraction of its width: tweedie's power 1.001 and 1.999.
INTERVAL_END = 1e-3
#: Every combination of the options' values when there are at most this many
#: (``--max-variants``), else each option's values one at a time.
MAX_VARIANTS = 40


def option_values(opt: Option) -> list[Any]:
    """The values the variant search gives one option, read from its declaration: every
    choice of a finite one, absent / :data:`GIVEN` / :data:`GIVEN_EXTREME` for an array, else
    the default, the
    declared examples and :data:`STRESS` for its kind. The default comes first."""
    if opt.kind == "array":
        return [None, GIVEN, GIVEN_EXTREME]
    if opt.choices is not None:
        values = [opt.default, *opt.choices]
    else:
        values = [opt.default, *opt.tried(), *STRESS.get(opt.kind, ())]
    if opt.interval is not None:  # inside the declared open interval, and next to both ends
        lo, hi = opt.interval
        values = [v for v in values if lo < v < hi]
        values += [lo + INTERVAL_END * (hi - lo), hi - INTERVAL_END * (hi - lo)]
    out: list[Any] = []
    for v in values:
        if not any(v == u and type(v) is type(u) for u in out):
            out.append(v)
    return out


def option_variants(name: str, cap: int = MAX_VARIANTS) -> list[dict[str, Any]]:
    """The option sets searched for ``name`` besides its defaults, from its declaration.

    Every option but ``reduction`` and ``link``-free structure takes :func:`option_values`;
    the sets are the combinations of those values -- all of them when there are at most
    ``cap`` (``sigmoid_focal_loss``: alpha × gamma), else each option's values one at a time
    (``triplet_margin_loss``'s 4 options). Then ``reduction='mean'``
    (and ``'batchmean'`` where the loss accepts it) at the defaults and with each option of
    kind ``array`` or ``int`` (weights, ignore_index: what the mean's denominator reads) given.
    """
    spec = resolve(name)[0]
    opts = [o for o in spec.options if o.name != "reduction"]
    grid = {o.name: option_values(o) for o in opts}
    default = {o.name: o.default for o in opts}

    def changed(combo: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in combo.items()
                if not (v == default[k] and type(v) is type(default[k]))}

    singles = [{o.name: v} for o in opts for v in grid[o.name][1:]]
    total = int(np.prod([len(v) for v in grid.values()])) if grid else 1
    chosen: list[dict[str, Any]] = []
    if total - 1 <= cap:
        import itertools

        for values in itertools.product(*grid.values()):
            combo = changed(dict(zip(grid, values, strict=True)))
            if combo:
                chosen.append(combo)
    else:
        chosen = list(singles)
    means = [r for r in spec.option("reduction").choices or () if r in ("mean", "batchmean")] \
        if any(o.name == "reduction" for o in spec.options) else []
    for r in means:
        chosen.append({"reduction": r})
        for o in opts:
            if o.kind in ("array", "int"):
                chosen += [{"reduction": r, o.name: v} for v in grid[o.name][1:]]
    return chosen


def _extreme_weights(shape: tuple[int, ...] | int, dt: np.dtype, seed: int) -> np.ndarray:
    """Seeded positive weights in ``dt`` (as float64) from the ends of its range, mixed within
    the array: in turn near the largest finite number (2^(e_max − 64 … e_max)), just above
    the smallest normal one (2^(e_min … e_min + 64)), subnormal (2^(e_sub … e_min)) and
    moderate (2^(−4 … 4)), each times a mantissa in [1, 2); the four kinds in a random order,
    so that an array of four holds one of each."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    fi = np.finfo(dt)
    top, low = fi.maxexp - 1, fi.minexp  # 1023, −1022 (float64); 127, −126 (float32)
    sub = low - fi.nmant  # the smallest subnormal's exponent: −1074, −149
    kind = np.concatenate([rng.permutation(4) for _ in range(-(-n // 4))])[:n]
    lo = np.array([top - 64, low, sub, -4])[kind]
    hi = np.array([top, low + 64, low, 4])[kind]
    e = np.floor(rng.uniform(lo, hi))
    w = np.ldexp(rng.uniform(1.0, 2.0, n), e.astype(np.int64)).astype(dt).astype(np.float64)
    return w.reshape(shape)


def _given_array(opt: Option, case: _Case, extreme: bool = False) -> np.ndarray:
    """A seeded array for an array option, rounded to float32 (so that float32 and float64
    inputs see the same weights): one per class (3 classes) or one broadcast number. With
    ``extreme``, :func:`_extreme_weights` in the case's dtype: one per class (4 classes, one
    of each kind), or, for ``shape="last"``, one per element of each call's input
    (:meth:`_Case.given_for`; the one returned here only sets up the derivations)."""
    rng = np.random.default_rng(7)
    if extreme:
        if opt.shape == "class":
            case.classes = 4
            return _extreme_weights(4, case.dt, 7)
        case.laid.append(opt.name)
        return _extreme_weights(1, case.dt, 7)
    if opt.shape == "class":
        case.classes = 3
        return rng.uniform(0.1, 3.0, 3).astype(np.float32).astype(np.float64)
    return rng.uniform(0.1, 3.0, 1).astype(np.float32).astype(np.float64)


def _mean_denominator(case: _Case, arrays: list[Any]) -> float:
    """What ``case.reduction`` divides by, as torch defines it, for the arrays an exact function
    is called with: the element count ('mean', element-wise), the batch size ('batchmean',
    rows), the samples ('mean', class axis), and for class-index targets with ``ignore_index``
    the weights of the labels not ignored (their count without weights)."""
    if case.reduction not in ("mean", "batchmean"):
        return 1.0
    if case.family == "rows":
        return float(np.asarray(arrays[0][0]).shape[0])
    x = np.asarray(arrays[0])
    if case.family == "elementwise":
        return float(x.shape[0] if case.reduction == "batchmean" and x.ndim else x.size)
    t = np.asarray(arrays[1])
    samples = float(x.size // x.shape[0 if x.ndim == 1 else 1])
    if t.shape == x.shape or "ignore_index" not in case.d.options:
        return samples  # class probabilities, multi-hot targets, multi_margin: the samples
    labels = t.ravel().astype(np.int64)
    keep = labels != case.d.options["ignore_index"]
    w = case.d.options.get("weight")
    return float(np.sum(np.asarray(w, np.float64)[labels[keep]])) if w is not None \
        else float(keep.sum())


def _over_denominator(case: _Case, truth: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``truth`` divided by the mean's denominator where ``case`` takes a mean."""
    if case.reduction not in ("mean", "batchmean"):
        return truth

    def scaled(*args: Any, **kwargs: Any) -> np.ndarray:
        denominator = _mean_denominator(case, list(args))
        if denominator == 0:
            raise ValueError("a mean over no element (every label ignored): torch's is nan")
        return truth(*args, **kwargs) / mpmath.mpf(denominator)  # type: ignore[no-any-return]

    return scaled


def describe(opts: dict[str, Any]) -> str:
    """A variant's options as written in the tables (``alpha=0.75, gamma=5``)."""
    if not opts:
        return "defaults"
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in opts.items())


def set_slice(text: str) -> slice:
    """``--sets START:STOP`` as a slice of a loss's :func:`option_variants` (either end may be
    left out: ``30:`` is the 31st set on; ``5`` alone is that one set).

    >>> set_slice("30:"), set_slice(":2"), set_slice("5")
    (slice(30, None, None), slice(None, 2, None), slice(5, 6, None))
    """
    try:
        if ":" not in text:
            return slice(int(text), int(text) + 1)
        start, stop = text.split(":")
        return slice(int(start) if start else None, int(stop) if stop else None)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sets takes START:STOP (numbers of the option sets, from 0), got {text!r}"
        ) from None


def run_variants(quick: bool, only: list[str] | None = None, cap: int = MAX_VARIANTS,
                 jobs: int = 1, limit: float | None = SET_LIMIT_S,
                 stream: bool = False, sets: slice = slice(None)) -> list[dict[str, Any]]:
    """:func:`run_search` over every loss's :func:`option_variants` (the defaults are
    :func:`run_search`'s), each with the ``--quick`` budget of points unless ``quick`` is
    False and at most ``limit`` seconds; rows carry ``options``, in the same order whatever
    ``jobs`` (worker processes). ``stream``: print each option set's rows (the lines of
    :func:`variant_search_table`) as the set finishes, so that a run stopped by hand keeps
    what it found. ``sets``: only these of each loss's option sets (a run cut short, resumed)."""
    tasks = [(name, opts, quick, limit) for name in symloss.losses() if not only or name in only
             for opts in option_variants(name, cap)[sets]]
    found: list[list[dict[str, Any]]] = []

    def keep(rows: list[dict[str, Any]]) -> None:
        found.append(rows)
        if stream:
            print("\n".join(variant_search_table(rows).splitlines()[2:]), flush=True)

    if stream:
        print("\n".join(variant_search_table([]).splitlines()), flush=True)
    if jobs <= 1:
        for t in tasks:
            keep(_search_variant(t))
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for rows in pool.imap(_search_variant, tasks, chunksize=1):
                keep(rows)
    return [r for rows in found for r in rows]


def _search_variant(task: tuple[str, dict[str, Any], bool, float | None]
                    ) -> list[dict[str, Any]]:
    """One loss at one option set: its search rows, a row saying why where it was not."""
    name, opts, quick, limit = task
    began = time.perf_counter()
    try:
        found = run_search(quick, [name], variants_of={name: opts}, limit=limit)
    except Exception as exc:  # counted as not measured: the run goes on
        print(f"search {name} ({describe(opts)}): {type(exc).__name__}: {exc}",
              file=sys.stderr)
        found = [{"loss": name, "dtype": dt, "order": o, "evaluator": "-",
                  "worst": float("nan"), "n": 0,
                  "where": f"NOT MEASURED: {type(exc).__name__}: {exc}"}
                 for dt in ("float32", "float64") for o in ORDERS.values()]
    if not found:  # the loss rejects these options (stderr says why): left out
        found = [{"loss": name, "dtype": "-", "order": "-", "evaluator": "-",
                  "worst": float("nan"), "n": 0,
                  "where": "not searched: the loss rejects these options (stderr)"}]
    for r in found:
        r["options"] = describe(opts)
    worst = max((r["worst"] for r in found if r["n"] and r["evaluator"] != APART),
                default=float("nan"))
    cut = " (TIME LIMIT reached: not finished)" if any(r.get("time_limit") for r in found) \
        else ""
    print(f"searched {name} ({describe(opts)}): worst {_fmt(worst)} ulp{cut} "
          f"in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    return found


def _goal(r: dict[str, Any]) -> float:
    """A search row's goal: :data:`GOAL_ULP`, or :data:`GOAL_APART` for the :data:`APART` row."""
    return GOAL_APART if r["evaluator"] == APART else GOAL_ULP


def _not_met(r: dict[str, Any]) -> bool:
    """A search row that fails the goal: above it, unmeasured, or cut short by the limit."""
    return bool((not np.isnan(r["worst"]) and r["worst"] > _goal(r))
                or (r["n"] == 0 and r["order"] != "-") or r.get("time_limit"))


def _apart_cell(rows: list[dict[str, Any]], with_options: bool = False) -> str:
    """The most floats apart the two evaluators' results were over ``rows`` (one loss's
    :data:`APART` rows; bold above :data:`GOAL_APART`), and where; – where none was measured."""
    measured = [r for r in rows if r["evaluator"] == APART and r["n"]]
    if not measured:
        return "–"
    r = max(measured, key=lambda r: float(np.nan_to_num(r["worst"], nan=np.inf)))
    if r["worst"] == 0:  # the same bits at every point: no row to name
        return "0"
    text = f"{r['worst']:g} ({r['dtype']} {r['order']}" + (
        f", {r['options']})" if with_options else ")")
    return f"**{text}**" if r["worst"] > GOAL_APART else text


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The search's worst ulp per loss, dtype and order, the larger of the two evaluators
    (bold: above the goal; NOT MEASURED where a row could not be measured)."""
    cells: dict[str, dict[tuple[str, str], str]] = {}
    worst: dict[tuple[str, str, str], float] = {}
    unmeasured: set[tuple[str, str, str]] = set()
    cut: set[tuple[str, str, str]] = set()
    for r in rows:
        if r["order"] == "-":
            cells.setdefault(r["loss"], {})
            continue
        if r["evaluator"] == APART:  # its own column
            continue
        key = (r["loss"], r["dtype"], r["order"])
        if r["n"] == 0:
            unmeasured.add(key)
            continue
        w = float(np.nan_to_num(r["worst"], nan=np.inf))  # a NaN result: an infinite error
        worst[key] = max(worst.get(key, 0.0), w)
        if r.get("time_limit"):
            cut.add(key)
    for key in unmeasured:
        cells.setdefault(key[0], {})[key[1:]] = "**NOT MEASURED**"
    for (loss, dtype, order), w in worst.items():
        if (loss, dtype, order) not in unmeasured:
            text = _fmt(w)
            if (loss, dtype, order) in cut:
                text, w = f"≥ {text} (time limit reached)", np.inf
            cells.setdefault(loss, {})[(dtype, order)] = f"**{text}**" if w > GOAL_ULP else text
    columns = [(dt, o) for dt in ("float32", "float64") for o in ORDERS.values()]
    lines = ["| loss | " + " | ".join(f"{dt} {o}" for dt, o in columns)
             + f" | {APART} (goal ≤ {GOAL_APART:g}) |",
             "|---|" + "---|" * (len(columns) + 1)]
    for loss in sorted(cells):
        apart = _apart_cell([r for r in rows if r["loss"] == loss])
        lines.append(f"| {loss} | " + " | ".join(cells[loss].get(c, "–") for c in columns)
                     + f" | {apart} |")
    return "\n".join(lines)


def search_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| loss | dtype | order | evaluator | points | worst ulp | worst point |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        w = "-" if np.isnan(r["worst"]) else _fmt(r["worst"])
        if r["n"] == 0 and r["order"] != "-" and not r["where"].startswith("NOT MEASURED"):
            # (an order a time limit did not reach says so itself)
            w, r = "-", {**r, "where": "NOT MEASURED: the exact value failed (see stderr)"}
        lines.append(f"| {r['loss']} | {r['dtype']} | {r['order']} | {r['evaluator']} "
                     f"| {r['n']} | {w} | {r['where']} |")
    return "\n".join(lines)


def variant_search_table(rows: list[dict[str, Any]]) -> str:
    """:func:`search_table` with each row's option set."""
    lines = ["| loss | options | dtype | order | evaluator | points | worst ulp | worst point |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        w = "-" if np.isnan(r["worst"]) else _fmt(r["worst"])
        where = r["where"]
        if r["n"] == 0 and r["order"] != "-" and not where.startswith("NOT MEASURED"):
            w, where = "-", "NOT MEASURED: the exact value failed (see stderr)"
        lines.append(f"| {r['loss']} | {r['options']} | {r['dtype']} | {r['order']} "
                     f"| {r['evaluator']} | {r['n']} | {w} | {where} |")
    return "\n".join(lines)


def variant_summary_table(rows: list[dict[str, Any]]) -> str:
    """Per loss, dtype and order: the worst ulp over its option sets and both evaluators, and
    the options it was found at (bold: above the goal)."""
    sets: dict[str, set[str]] = {}
    worst: dict[tuple[str, str, str], tuple[float, str]] = {}
    for r in rows:
        sets.setdefault(r["loss"], set()).add(r["options"])
        if r["order"] == "-" or r["evaluator"] == APART:
            continue
        key = (r["loss"], r["dtype"], r["order"])
        w = np.inf if r["n"] == 0 else float(np.nan_to_num(r["worst"], nan=np.inf))
        options = r["options"]
        if r.get("time_limit"):  # not finished: counted as not met, whatever it found so far
            w, options = np.inf, f"{options}: time limit reached"
        if key not in worst or w > worst[key][0]:
            worst[key] = (w, options)
    columns = [(dt, o) for dt in ("float32", "float64") for o in ORDERS.values()]
    lines = ["| loss | option sets | " + " | ".join(f"{dt} {o}" for dt, o in columns)
             + f" | {APART} (goal ≤ {GOAL_APART:g}) |",
             "|---|---|" + "---|" * (len(columns) + 1)]
    for loss in sorted(sets):
        cells = []
        for dt, o in columns:
            if (loss, dt, o) not in worst:
                cells.append("–")
                continue
            w, opts = worst[loss, dt, o]
            text = (f"not finished ({opts})" if opts.endswith("time limit reached")
                    else f"{_fmt(w)} ({opts})")
            cells.append(f"**{text}**" if w > GOAL_ULP else text)
        apart = _apart_cell([r for r in rows if r["loss"] == loss], with_options=True)
        lines.append(f"| {loss} | {len(sets[loss])} | " + " | ".join(cells) + f" | {apart} |")
    return "\n".join(lines)


def _fmt(v: float) -> str:
    if np.isnan(v):  # no torch twin
        return "—"
    if np.isinf(v):
        return "inf"
    return f"{v:.2f}" if v < 1e3 else f"{v:.2e}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| loss | dtype | targets | points | symloss max | symloss median | torch max "
        "| torch median | torch's worst case |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['loss']} | {r['dtype']} | {r['targets']} | {r['n']} "
            f"| {_fmt(r['symloss_max'])} | "
            f"{_fmt(r['symloss_median'])} | {_fmt(r['torch_max'])} | {_fmt(r['torch_median'])} "
            f"| {r['torch_worst'] or '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small battery (smoke run)")
    parser.add_argument("--numpy-path", action="store_true",
                        help="measure symloss's NumPy fallback instead of the numba fast path")
    parser.add_argument("--only", nargs="+", metavar="LOSS",
                        help="measure only these losses (names as symloss.losses() lists them)")
    parser.add_argument("--no-search", action="store_true",
                        help="skip the adversarial worst-point search (grid table only)")
    parser.add_argument("--variants", action="store_true",
                        help="also search every loss at its option variants (option_variants)")
    parser.add_argument("--variants-only", action="store_true",
                        help="only the option-variant search (no grid, no search at defaults)")
    parser.add_argument("--max-variants", type=int, default=MAX_VARIANTS, metavar="N",
                        help="all combinations of the options' values up to N per loss, else one "
                        f"option at a time (default {MAX_VARIANTS})")
    parser.add_argument("--variant-budget", choices=("quick", "full"), default="quick",
                        help="points per option set: --quick's (default) or the full search's")
    parser.add_argument("--sets", type=set_slice, default=slice(None), metavar="START:STOP",
                        help="only these of each loss's option sets, numbered from 0 in "
                        "option_variants' order (resume a run cut short: --sets 30:)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="search the option variants in N processes (default 1)")
    parser.add_argument("--set-limit", type=float, default=SET_LIMIT_S, metavar="SECONDS",
                        help="CPU seconds each loss's search at one option set may take; one cut "
                        "short is reported with its worst point so far and fails the run "
                        f"(0: no limit; default {SET_LIMIT_S:g})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    from symloss import fast

    if args.variants_only:
        return _main_variants(args, start)
    if args.numpy_path:
        with fast.disabled():
            rows = run(args.quick, args.only)
    else:
        floor, fast.MIN_SIZE = fast.MIN_SIZE, 0  # small arrays: measure the fast kernels anyway
        try:
            rows = run(args.quick, args.only)
        finally:
            fast.MIN_SIZE = floor

    path = ("numba fast path" if fast.available() and not args.numpy_path and fast.enabled()
            else "NumPy path")
    print(f"Gradient error in ulps against mpmath at {DPS} digits (reduction='sum'); "
          f"symloss evaluated on its {path}.\n")
    print(table(rows))
    # The claims: symloss never worse than torch; hard-label gradients within 4 ulp of exact.
    worse = [r for r in rows if r["symloss_max"] > r["torch_max"]
             or (r["targets"] == "hard" and r["exact_hard"] and r["symloss_max"] > 4.0)]
    above: list[dict[str, Any]] = []
    if not args.no_search:
        found = run_search(args.quick, args.only, limit=args.set_limit)
        print(f"\nWorst point found per loss × order × dtype × evaluator (error in ulps against "
              f"mpmath at {DPS} digits; loss: reduction='none', grad and hvp: reduction='sum', "
              "hvp direction 1 (element-wise), e₀ and a seeded normal one whose entry 1 cancels "
              "(class axis) or a seeded normal row (rows); hess_diag: hess_diag_fn, ∂²ℓ/∂zᵢ² "
              "per element, symloss.objective's hess, against the derived Hessian's diagonal). "
              "Points: roots of the exact "
              "value found by bisection ± a few ulps (where it is a difference of nearly equal "
              "terms; for the loss value the gradient's roots too, the loss's minimum), "
              "|z| down to 1e-300 (1e-37 in float32), kinks ± a few ulps, exp's over/underflow "
              "boundaries, a grid, random "
              "restarts; then the worst ones moved by ±1…4 ulps; for a loss of further arrays (var, "
              "input2) each combination of their values; for row losses the checker's rows "
              "on each kink, nearly (anti)parallel rows, equal distances, rows scaled "
              "10⁻³⁰…10³⁰ and to either end of the dtype's range (subnormal elements, squares "
              "that underflow or overflow). numpy: the NumPy path "
              "(symloss.fast.disabled()); numba: the fast path forced on every size (losses "
              "without fast kernels answer on the NumPy path there); "
              f"{APART}: at the same points, how many floats lie between the two evaluators' "
              f"results (goal ≤ {GOAL_APART:g}).\n")
        print(search_table(found))
        print(f"\nThe worst of both evaluators per loss, dtype and order (bold: above the "
              f"{GOAL_ULP:g}-ulp goal):\n")
        print(summary_table(found))
        above = [r for r in found if _not_met(r)]  # unmeasured or cut short: not met
    code = 0
    if args.variants:
        code = _print_variants(args)
    print(f"\nmachine: {platform.machine()}, {platform.processor() or platform.platform()}, "
          f"numpy {np.__version__}; {time.perf_counter() - start:.1f} s")
    if worse:
        print("symloss LESS accurate than torch (or a hard label above 4 ulp) for: "
              + ", ".join(f"{r['loss']} {r['dtype']} {r['targets']}" for r in worse))
        code = 1
    if above:
        print(f"ABOVE the goal ({GOAL_ULP:g} ulp; {APART} ≤ {GOAL_APART:g}) ({len(above)} of the "
              "searched rows): "
              + ", ".join(f"{r['loss']} {r['dtype']} {r['order']} {r['evaluator']} "
                          f"({_fmt(r['worst'])})" for r in above))
        code = 1
    return code


def _print_variants(args: argparse.Namespace) -> int:
    """The option-variant search's tables; 1 if any row is above the goal or unmeasured."""
    quick = args.quick or args.variant_budget == "quick"
    print(f"\nOption variants: every loss at the option sets of option_variants (read from its "
          f"declaration: each choice, array options given or not, continuous options at their "
          f"default, declared examples and the stress values {STRESS}, kept inside an "
          f"option's declared open interval, plus values {INTERVAL_END:g} of its width from "
          f"each end; all combinations when "
          f"at most {args.max_variants}, else each value alone; "
          "reduction='mean'/'batchmean' at the defaults and with each array or int option), "
          f"searched as above with the {'--quick' if quick else 'full'} budget of points each. "
          "Error in ulps of the exact value (over the mean's denominator where the reduction "
          f"is a mean). At most {args.set_limit:g} CPU s per option set (0: no limit): a set cut "
          "short says TIME LIMIT with its worst point so far, and counts as not met. "
          + ("" if args.sets == slice(None) else
             f"Only each loss's option sets {args.sets.start or 0}:{args.sets.stop or ''} "
             "(--sets). ")
          + "Each set's rows as it finishes:\n", flush=True)
    found = run_variants(quick, args.only, args.max_variants, args.jobs, args.set_limit,
                         stream=True, sets=args.sets)
    print("\nAll option sets' rows:\n")
    print(variant_search_table(found))
    print(f"\nThe worst over every option set and both evaluators per loss, dtype and order, "
          f"with the options it was found at (bold: above the {GOAL_ULP:g}-ulp goal):\n")
    print(variant_summary_table(found))
    above = [r for r in found if _not_met(r)]
    print()
    if above:
        print(f"ABOVE the goal ({GOAL_ULP:g} ulp; {APART} ≤ {GOAL_APART:g}) at option variants "
              f"({len(above)} of the searched rows): " + "; ".join(
                  f"{r['loss']} ({r['options']}) {r['dtype']} {r['order']} {r['evaluator']} "
                  f"({_fmt(r['worst'])}) at {r['where']}" for r in above))
        return 1
    return 0


def _main_variants(args: argparse.Namespace, start: float) -> int:
    code = _print_variants(args)
    print(f"\nmachine: {platform.machine()}, {platform.processor() or platform.platform()}, "
          f"numpy {np.__version__}; {time.perf_counter() - start:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
