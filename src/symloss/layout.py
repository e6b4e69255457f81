"""The one bookkeeping layer: torch's semantics *around* the per-element math, written once.

Every evaluator (:mod:`symloss.numeric`: NumPy; :mod:`symloss.fast`: numba) gets its arrays from
:func:`lay_out` and its expressions from :func:`forms`, and only evaluates expressions printed
from the derivation. What lives here, for every loss:

* validation: arity, dtypes, shapes, broadcasting, the input's domain, class indices in bounds;
* the kernel layout: element-wise losses take flat, contiguous arrays of one length; class-axis
  losses take ``(rows, classes)`` arrays (the class axis moved last), class indices as int64
  labels with their ``ignore_index`` mask -- never a dense one-hot array;
* the working dtype (float32 arrays stay float32 in memory, everything else is float64; the
  arithmetic is float64 on every path) and the result's dtype (the input's);
* the mean's denominator (the element count, ``batchmean``'s batch size, the targets' total
  weight) and the reductions;
* which derived form is evaluated where (:func:`forms`): the kernel form for hard targets
  (0/1 labels, class indices, one-hot rows), the derived gradient for soft ones;
* the value rounded once (:func:`rounded_once`): a loss value that reads a transcendental
  function is evaluated as a double-double pair where every part has one, so that the two
  evaluators (libm's and NumPy's last bits) return the same float;
* where the scales enter: a weight's or constant's factor of a double-double form inside its
  one rounding (:func:`scaled_inside`), and the rule of the last rounding of every element-wise
  result (:func:`finish`: below the smallest normal number 0; an overflow that the mean's
  divisor brings back recomputed exactly).

This module imports no evaluator and nothing above it (arrows point down).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from ._bounds import any_below, within, within_both
from .errors import SymlossTypeError, SymlossValueError, choice_error
from .primitives import (
    _Difference,
    accurate,
    bernoulli_curvature,
    clamp_min,
    clamped_log,
    dd_code,
    softmax,
    softmax_complement,
    softmax_variance,
)
from .spec import IGNORE_INDEX

if TYPE_CHECKING:
    from .derive import Derivation

__all__ = [
    "Forms",
    "Layout",
    "Numeric",
    "class_index_denominator",
    "finish",
    "forms",
    "largest_scale",
    "lay_out",
    "plain_reason",
    "restore_unrescued",
    "rounded_once",
    "scaled_from_underflow",
    "scaled_inside",
    "weight_last",
]


#: The kernels' ``ignore`` for a loss without the option: no int64 class index equals it.
NO_IGNORE = np.iinfo(np.int64).min

#: Primitives that carry torch's numeric guards; ``tidy`` drops them, so a kernel form that
#: has one is the only faithful form to evaluate.
_GUARDS = (clamp_min, clamped_log)

#: The direction of an element-wise Hessian-vector product (:attr:`Derivation.hvp_expr`).
_DIRECTION = sp.Symbol("v", real=True)

#: Options that are arrays broadcast against the input (the rest are scalars).
ARRAY_OPTIONS = ("weight", "pos_weight")


@dataclass
class Numeric:
    """The numeric functions of one derivation, with torch's bookkeeping around them."""

    loss: Callable[..., Any]
    grad: Callable[..., Any]
    hvp: Callable[..., Any]
    hess_diag: Callable[..., Any]


@dataclass(frozen=True)
class Forms:
    """The substituted expressions an evaluator evaluates for one derivation.

    ``grad_hard`` is evaluated where the target is hard (a 0/1 label, a class index, a one-hot
    row, a multi-hot target's 0/1 element), ``grad_soft`` elsewhere; they are the same object
    when there is nothing to choose.
    """

    loss: sp.Expr
    grad_hard: sp.Expr
    grad_soft: sp.Expr
    symbols: Mapping[str, sp.Basic]


def forms(derivation: Derivation) -> Forms:
    """The expressions of ``derivation`` each evaluator prints (first order).

    Where the declaration says so (``soft_targets_take_gradient``: the Bernoulli and categorical
    losses), hard labels take the kernel form, where nothing cancels, and soft targets the
    derived gradient, whose one cancellation where it is ≈ 0 loses no more than torch's p − y.
    A kernel form that carries torch's numeric guards (clamps) is used for every target: the
    simplified gradient does not keep them.
    """
    d = derivation.declaration
    subst = d.substitute_definitions
    hard = subst(derivation.kernel_gradient)
    choose = (
        d.soft_targets_take_gradient
        and derivation.soft_gradient != derivation.kernel_gradient
        and not derivation.kernel_gradient.has(*_GUARDS)
    )
    soft = _placed(derivation, subst(derivation.soft_gradient)) if choose else None
    hard = _placed(derivation, hard)
    # the loss as evaluated (Declaration.stable_loss where declared, proved equal to the loss),
    # rounded once from a pair where it reads a transcendental function (rounded_once)
    loss = _placed(derivation, rounded_once(subst(derivation.kernel_loss)))
    return Forms(loss=loss, grad_hard=hard, grad_soft=hard if soft is None else soft,
                 symbols=d.symbols)


def _placed(derivation: Derivation, expr: sp.Expr) -> sp.Expr:
    """``expr`` with its scales where they enter: the weights last (:func:`weight_last`), the
    factors of a double-double form inside its rounding (:func:`scaled_inside`)."""
    symbols = derivation.declaration.symbols
    weights = {symbols[n] for n in ARRAY_OPTIONS if n in symbols}
    elementwise = derivation.spec.family == "elementwise"
    return scaled_inside(weight_last(expr, weights, products=elementwise))


def weight_last(expr: sp.Expr, weights: set[sp.Basic], products: bool = False) -> sp.Expr:
    """``expr`` with each product that divides, ``w·X/c``, evaluated as ``w·(X/c)``, and with
    ``products`` (an element-wise loss: a class axis's sums keep their printed shapes) each
    product of several values, ``w·y·X``, as ``w·(y·X)``: the weights (``weights``: Symbols
    or IndexedBases) multiply the rest once it is formed.

    A weight is a given float of any size; a product ``w·X`` rounded before the division can
    leave the normal range where the result does not (binary_cross_entropy's gradient with
    w = 5.9e-320, p = 1 − 2.3e-15: ``w·(p − y)`` a subnormal number with 13 bits, divided by
    p(1 − p) ≈ 2.3e-15, was 4.97e15 ulp from 2.52e-305). ``(p − y)/c`` is formed from the
    inputs alone, and the weight then rounds once, as an unweighted loss rounds.

    >>> from sympy import Symbol, exp
    >>> w, x, z = Symbol("w"), Symbol("x"), Symbol("z")
    >>> weight_last(w * x / (1 + exp(z)), {w}).args
    (w, x/(exp(z) + 1))
    >>> weight_last(w * x / 2, {w}).args  # a division by a constant: one rounding either way
    (1/2, w, x)
    >>> weight_last(w * x * exp(z), {w}, products=True).args
    (w, x*exp(z))
    """
    def is_weight(f: sp.Basic) -> bool:
        return f in weights or (isinstance(f, sp.Indexed) and f.base in weights)

    def walk(e: sp.Basic) -> sp.Basic:
        if not e.args or isinstance(e, sp.UnevaluatedExpr):
            return e
        e = e.func(*(walk(a) for a in e.args))
        if isinstance(e, sp.Mul):
            scale = [f for f in e.args if is_weight(f)]
            rest = [f for f in e.args if not is_weight(f)]
            # a division by a computed value (not 1/C), outside any pair form: scaled_inside
            # moves the weight into those, inside their one rounding
            divides = any(isinstance(f, sp.Pow) and f.exp.is_negative
                          and f.base.atoms(sp.Function) for f in rest)
            # or a product of several values: w₊·y·softplus(−z) rounded w₊·y first, a
            # subnormal number where w₊ is (pos_weight 9.6e-311: 316 ulp)
            several = products and sum(not f.is_number for f in rest) > 1
            if scale and (divides or several) and not any(f.has(*_PAIRS) for f in rest):
                return sp.Mul(*scale) * sp.UnevaluatedExpr(sp.Mul(*rest))
        return e

    return walk(expr)  # type: ignore[return-value]


def rounded_once(expr: sp.Expr) -> sp.Expr:
    """``expr`` as ``accurate(expr)`` (evaluated as a double-double pair, rounded once:
    :func:`symloss.primitives.dd_code`) where it reads a function (a transcendental one: log,
    exp, log1p, softplus, σ, log_sub, power, ...; not a Piecewise's arms alone) and its every
    part has a pair evaluation; else ``expr`` as it is.

    A function's float64 value is libm's in the numba kernels and NumPy's in the NumPy
    evaluator, whose last bits differ (``np.log`` at 0.01 % of random arguments, ``np.exp``
    4.6 %, ``np.log1p`` 4.9 %): a loss value formed from them was 2 floats apart between the
    evaluators (binary_cross_entropy at p = 0.9350724237877679, y = 0.9350724237877682;
    kl_div at z = −1e-30, y = 1 − 2⁻⁵², where ``np.log`` is one float off). The pair is within
    a few 2⁻¹⁰⁶ of its terms in both, so the two evaluators round it to the same float, within
    about half an ulp (certified, as the gradients' pairs are: :func:`scaled_inside`). The
    forms without a pair evaluation stay plain (:func:`plain_reason` says why).

    >>> from sympy import Symbol, log
    >>> y, p = Symbol("y"), Symbol("p")
    >>> rounded_once(-y*log(p)).func.__name__, rounded_once(y*p).func.__name__
    ('accurate', 'Mul')
    """
    if isinstance(expr, accurate) or plain_reason(expr) is not None:
        return expr
    return accurate(expr)


def plain_reason(expr: sp.Expr) -> str | None:
    """Why :func:`rounded_once` leaves ``expr`` plain (``None``: it does not): it reads no
    function whose float64 value the evaluators could round apart, or a part of it has no
    pair evaluation (:func:`symloss.primitives.dd_code`'s :class:`NotImplementedError`)."""
    if not any(not isinstance(f, sp.Piecewise | sp.Abs) for f in expr.atoms(sp.Function)) and not any(
            not p.exp.is_Integer for p in expr.atoms(sp.Pow)):
        return "no function to round apart"
    try:
        dd_code(expr, str, "", lambda c, a, b: a, str)
    except NotImplementedError as exc:
        return str(exc)
    return None


#: The double-double forms :func:`scaled_inside` moves a scale into.
_PAIRS = (accurate, _Difference, bernoulli_curvature)


def scaled_inside(expr: sp.Expr) -> sp.Expr:
    """``expr`` with each factor of a double-double form moved inside its one rounding:
    ``c·accurate(X)`` is ``accurate(c·X)``, ``c·(f(x) − y)`` (:class:`sigmoid_sub`,
    :class:`exp_sub`, ...) is ``accurate(c·(f(x) − y))`` and ``c·bernoulli_curvature(p, y, ε)``
    is ``bernoulli_curvature(p, y, ε, c)``, for every other factor ``c`` of the
    product that is a scale (a weight, ``pos_weight``, a constant: no function of the inputs).

    The pair is then scaled before it is rounded: a weighted value ``w·X`` is normal where ``X``
    alone is below the smallest normal number (``binary_cross_entropy_with_logits`` with weight
    and pos_weight at z = −708.396, y = 2⁻¹⁰²²: ``X`` flushed to 0 before the weight, 7.9e15
    ulp), and the certification (:func:`symloss.ddouble.certified`) judges the scaled value.
    The same value symbolically (``accurate`` is transparent), so every evaluator and
    :mod:`symloss.exact` evaluate the same expression.

    >>> from sympy import Symbol
    >>> from symloss.primitives import sigmoid_sub
    >>> w, z, y = Symbol("w"), Symbol("z"), Symbol("y")
    >>> scaled_inside(w * sigmoid_sub(z, y)).func.__name__, scaled_inside(w * sigmoid_sub(z, y))
    ('accurate', w*(-y + sigmoid(z)))
    """
    kinds = _PAIRS

    def walk(e: sp.Basic) -> sp.Basic:
        if isinstance(e, kinds) or not e.has(*kinds):
            return e  # (inside a pair form the pair arithmetic is already one rounding)
        if isinstance(e, sp.Mul):
            pairs = [f for f in e.args if isinstance(f, kinds)]
            others = [f for f in e.args if f is not pairs[0]] if len(pairs) == 1 else []
            # the hvp's direction multiplies the rounded value, as before
            outside = [f for f in others if _DIRECTION in f.free_symbols]
            rest = [f for f in others if _DIRECTION not in f.free_symbols]
            # scales only: products and sums of the arrays and options, no function of them
            if rest and not any(f.atoms(sp.Function) for f in rest):
                pair = pairs[0]
                if isinstance(pair, bernoulli_curvature):  # a form with its own scale
                    return sp.Mul(*outside) * pair.scaled(sp.Mul(*rest))
                inner = pair.args[0] if isinstance(pair, accurate) else pair
                try:  # where the form has a pair evaluation (log_sub has its own, finer one)
                    dd_code(inner, str, "", lambda c, a, b: a)
                except NotImplementedError:
                    return e
                if isinstance(pair, _Difference):
                    inner = pair.rewrite(sp.Add)
                return sp.Mul(*outside) * accurate(sp.Mul(*rest) * inner)
        return e.func(*(walk(a) for a in e.args))

    return walk(expr)  # type: ignore[return-value]


#: What an evaluator computes, by the name :func:`expression` takes.
RESULTS = ("loss", "grad_hard", "grad_soft", "hvp", "hess")


def expression(derivation: Derivation, what: str) -> sp.Expr:
    """The substituted expression every evaluator (NumPy, numba, :mod:`symloss.exact`)
    evaluates for ``what``: ``loss``, ``grad_hard``, ``grad_soft`` (:func:`forms`), ``hvp``
    (:attr:`Derivation.hvp_expr`, in the direction ``v``) or ``hess`` (the Hessian's
    diagonal). One mapping, so that no evaluator evaluates another expression than the others.
    """
    if what in ("loss", "grad_hard", "grad_soft"):
        return getattr(forms(derivation), what)  # type: ignore[no-any-return]
    subst = derivation.declaration.substitute_definitions
    if what == "hvp":
        return _placed(derivation, subst(derivation.hvp_expr))
    if what == "hess":
        return _placed(derivation, softmax_variances(subst(derivation.hessian_diagonal)))
    raise choice_error("result", what, RESULTS)


def softmax_variances(expr: sp.Expr) -> sp.Expr:
    """``expr`` with each product ``softmax(z)ᵢ·softmax_complement(z)ᵢ`` as one
    :class:`~symloss.primitives.softmax_variance` (cross-entropy's Hessian diagonal): evaluated
    on pairs and rounded once, where the product's own roundings cost up to 4 ulp."""

    def pair(e: sp.Basic) -> sp.Expr | None:
        if isinstance(e, sp.Mul):
            for a in e.args:
                if isinstance(a, softmax) and softmax_complement(*a.args) in e.args:
                    return a
        return None

    def fold(e: sp.Mul) -> sp.Expr:
        p = pair(e)
        assert p is not None  # replace calls fold only where pair found one
        rest = [a for a in e.args if a not in (p, softmax_complement(*p.args))]
        return softmax_variance(*p.args) * sp.Mul(*rest)

    return expr.replace(lambda e: pair(e) is not None, fold)  # type: ignore[no-any-return]


def _as_real(value: Any, loss: str, what: str) -> np.ndarray:
    if type(value) is np.ndarray and value.dtype.kind == "f":
        return value
    if hasattr(value, "detach"):  # a torch tensor; torch itself is never imported here
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise SymlossTypeError(f"{loss}: {what} must be a real array: {exc}") from None
    if arr.dtype.kind not in "fiub":
        raise SymlossTypeError(f"{loss}: {what} must be a real array, got dtype {arr.dtype}")
    return arr


F32, F64, F16 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16)


def _kernel_dtype(arr: np.ndarray) -> np.dtype:
    """float32 stays float32 in memory (the kernels compute in float64); all else is float64."""
    dtype = arr.dtype
    return F32 if dtype == F32 else F64


def _result_dtype(arr: np.ndarray) -> np.dtype:
    dtype = arr.dtype
    return F32 if dtype == F32 else F16 if dtype == F16 else F64


def _flat(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``arr`` as a flat C-contiguous array of ``dtype`` (a view when it already is one)."""
    if arr.dtype == dtype and arr.flags.c_contiguous:
        return arr.reshape(-1)
    return np.ascontiguousarray(arr, dtype=dtype).reshape(-1)


def _companion_dtype(arr: np.ndarray, work: np.dtype) -> np.dtype:
    """A target-like array keeps the input's working dtype when that loses nothing."""
    if work == F64 or arr.dtype == work or arr.dtype.kind in "biu":
        return work
    return F64  # float64 targets with float32 input: keep every bit


def _broadcast(value: np.ndarray, shape: tuple[int, ...], what: str, loss: str) -> np.ndarray:
    if value.shape == shape:
        return value
    try:
        return np.broadcast_to(value, shape)
    except ValueError:
        raise SymlossValueError(
            f"{loss}: {what} of shape {value.shape} does not broadcast to the input's shape {shape}"
        ) from None


def _mean_by_weight(derivation: Derivation) -> bool:
    """Whether the declaration's mean divides by the targets' total weight."""
    declared = derivation.declaration
    return "weight" in declared.symbols and bool(
        declared.mean_denominator.has(declared.symbols["weight"]))


def class_index_denominator(derivation: Derivation, labels: np.ndarray, valid: np.ndarray,
                            by_weight: bool | None = None) -> float:
    """What ``reduction='mean'`` divides by for class-index targets (``valid``: not ignored).

    The declaration says which: the targets' total weight (cross_entropy, nll_loss) or the
    number of samples counted (multi_margin_loss).
    """
    weight = derivation.options.get("weight")
    if by_weight is None:
        by_weight = _mean_by_weight(derivation)
    if weight is not None and by_weight:
        return float(np.sum(weight[np.where(valid, labels, 0)][valid]))
    return float(np.count_nonzero(valid))


def _label_rows(labels: np.ndarray, n_classes: int, ignore_index: int, ignoring: bool
                ) -> tuple[np.ndarray | None, int | None]:
    """``(valid, bad)`` of class-index targets: the rows not ignored (``None``: every label
    is a class and ``ignore_index`` none, no row is ignored -- the layout's mask is made only
    where an evaluator reads it) and the first label neither ignored nor in ``0..C−1``
    (``None``: none). ``ignoring``: whether the loss was given ``ignore_index``."""
    in_bounds = within(labels, 0, n_classes - 1)
    if in_bounds and not 0 <= ignore_index < n_classes:
        return None, None
    valid = labels != ignore_index if ignoring else np.ones(labels.shape, dtype=bool)
    if not in_bounds:
        bad = valid & ((labels < 0) | (labels >= n_classes))
        if bad.any():
            return valid, int(labels[bad][0])
    return valid, None


def _index_denominator(derivation: Derivation, weight: np.ndarray | None, by_weight: bool,
                       labels: np.ndarray, valid: np.ndarray | None) -> float:
    """The mean's denominator of class-index targets, ``valid`` from :func:`_label_rows`."""
    if valid is None:
        return _unmasked_denominator(weight, by_weight, labels)
    return class_index_denominator(derivation, labels, valid, by_weight)


@dataclass(eq=False, slots=True)
class Layout:
    """One call's arrays in the kernels' layout, with everything needed to finish the result.

    Attributes:
        family: ``"elementwise"`` or ``"class_axis"``.
        shape: the input's shape (the shape of a gradient).
        dtype: the result's dtype (the input's; float64 for integer input).
        work: the dtype of the kernel arrays in memory (float32 or float64).
        reduction: ``"none"``, ``"mean"``, ``"sum"`` or ``"batchmean"``.
        denominator: what the mean divides by (1 for other reductions' gradients).
        arrays: element-wise: flat arrays by symbol name (input, target, the other positional
            arrays, weight/pos_weight broadcast); class axis: ``input`` as ``(rows, C)`` and,
            for probability targets, ``target`` likewise.
        scalars: scalar options by symbol name (``beta``, ``margin``, ``label_smoothing``, ...).
        labels: class axis, index targets: int64 class per row (``ignore_index`` where ignored).
        valid: class axis, index targets: the rows not ignored.
        ignore_index: the class index whose rows are ignored.
        class_dim: class axis: the input's class dimension.
    """

    family: str
    shape: tuple[int, ...]
    dtype: np.dtype
    work: np.dtype
    reduction: str
    denominator: float
    arrays: dict[str, np.ndarray]
    scalars: dict[str, float] = field(default_factory=dict)
    labels: np.ndarray | None = None
    _valid: np.ndarray | None = None
    ignore_index: int = IGNORE_INDEX
    class_dim: int = -1

    @property
    def valid(self) -> np.ndarray | None:
        """Class axis, index targets: the rows not ignored (made on first use: the numba
        kernels read ``labels`` and ``ignore_index`` instead)."""
        if self._valid is None and self.labels is not None:
            self._valid = self.labels != self.ignore_index
        return self._valid

    @property
    def hard(self) -> bool:
        """Class axis: the targets are class indices (``labels``), not probabilities."""
        return self.labels is not None

    @property
    def divisor(self) -> float:
        """What each per-element derivative is divided by: the mean's denominator, else 1."""
        return self.denominator if self.reduction in ("mean", "batchmean") else 1.0

    @property
    def n_rows(self) -> int:
        return int(self.arrays["input"].shape[0])

    # ------------------------------------------------------------- layout <-> input shape
    def to_kernel(self, arr: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        """An array of the input's shape in the kernel layout (flat, or ``(rows, C)``)."""
        dtype = self.work if dtype is None else dtype
        if self.family == "elementwise":
            return _flat(arr, dtype)
        if self.class_dim != arr.ndim - 1:
            arr = np.moveaxis(arr, self.class_dim, -1)
        if arr.dtype != dtype or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr, dtype=dtype)
        return arr.reshape(-1, arr.shape[-1])

    def from_kernel(self, out: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        """A per-element result in the kernel layout, back in the input's shape and dtype."""
        shape = self.shape
        if out.shape == shape:  # a flat input, or (N, C) rows: nothing to move
            pass
        elif self.family == "elementwise":
            out = out.reshape(shape)
        else:
            row_shape = shape[: self.class_dim] + shape[self.class_dim + 1 :]
            out = out.reshape(*row_shape, shape[self.class_dim])
            if self.class_dim != len(shape) - 1:  # (N, C, d1, ...): the class axis back
                out = np.moveaxis(out, -1, self.class_dim)
        if dtype is None:
            dtype = self.dtype
        return out if out.dtype == dtype else cast(out, dtype)

    def direction(self, v: Any, name: str) -> np.ndarray:
        """The Hessian-vector product's direction ``v``, checked, in the kernel layout."""
        arr = _as_real(v, name, "v")
        if arr.shape != self.shape:
            raise SymlossValueError(
                f"{name}: v must have the input's shape {self.shape}, got {arr.shape}"
            )
        return self.to_kernel(arr, _companion_dtype(arr, self.work))  # a float64 v keeps its bits

    # ------------------------------------------------------------- reductions
    def reduce_loss(self, per_element: np.ndarray) -> Any:
        """Per-element (per-row) float64 losses in the kernel layout -> the reduced loss."""
        if self.reduction == "none":
            if self.family == "elementwise":
                return cast(per_element.reshape(self.shape), self.dtype)
            row_shape = self.shape[: self.class_dim] + self.shape[self.class_dim + 1 :]
            return cast(per_element.reshape(row_shape), self.dtype)
        total = float(np.add.reduce(per_element, axis=None))  # np.sum's pairwise sum
        value = total if self.reduction == "sum" else (
            total / self.denominator if self.denominator else np.nan)
        tiny, largest = _NORMAL[self.dtype.char]
        if tiny <= abs(value) <= largest or value == 0.0:
            # a normal number of the dtype (not NaN): one rounding, no warning to silence
            return self.dtype.type(value)
        # A loss beyond the dtype's range rounds to inf, quietly, as any other rounding.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if self.reduction == "sum":
                return self.dtype.type(total)
            return self.dtype.type(np.float64(total) / np.float64(self.denominator))


#: The smallest normal and the largest finite value of each result dtype (by its code).
_NORMAL = {t.char: (float(np.finfo(t).smallest_normal), float(np.finfo(t).max))
           for t in (F16, F32, F64)}


#: The smallest normal float64: a per-element result below it is flushed to 0 (:func:`finish`).
TINY = 2.2250738585072014e-308


def finish(raw: np.ndarray, divisor: float, rescued: bool = True) -> np.ndarray:
    """An element-wise loss's evaluated per-element values ``raw`` (float64) divided by the
    mean's ``divisor`` (1 for any other reduction, the loss and the Hessian's diagonal): the
    rule of the last rounding, the same for every loss on both evaluators (:mod:`symloss.fast`
    prints it into each float64 kernel, ``_FINISH_M``).

    * A result below the smallest normal number is flushed to 0 (the accuracy goal allows it):
      a subnormal product has lost the digits of its factors (``pos_weight·y`` at
      y = 10⁻³²³ is rounded to a multiple of 2⁻¹⁰⁷⁴ before ``softplus(10⁴)`` multiplies it:
      1.7e3 subnormal ulp), as a double-double pair has lost its low part
      (:func:`symloss.ddouble.t_final` flushes those too).
    * Where ``raw`` overflowed and the divisor is above 1, the finite mean of the elements
      may still be finite (gamma_loss's ``1 − y e^(−z)`` over n at z = −709.782, y = 4:
      −9.0e307 exactly, −inf evaluated): NaN, which :func:`symloss.exact.rescue` replaces by
      the exact ``raw/divisor`` rounded once (±inf where that overflows too). Not where no
      rescue follows (``rescued=False``: the gradient of another argument, ``wrt=``): ±inf.
    """
    with np.errstate(divide="ignore", invalid="ignore", under="ignore", over="ignore"):
        out = raw / np.float64(divisor) if divisor != 1.0 else np.array(raw, dtype=np.float64)
        out = np.where(np.abs(out) < TINY, 0.0 * out, out)
        if divisor > 1.0 and rescued:
            out = np.where(np.isinf(raw), np.nan, out)
    return out


#: A scale (weight, pos_weight) above this magnitude can lift a value that left the normal
#: range to a normal result; the elements :func:`scaled_from_underflow` checks.
SCALE_CHECKED = 2.0

#: A result below ``scale·2⁻⁹⁶⁸`` is a factor below 2⁻⁹⁶⁸ of its scale: an intermediate that
#: may have been subnormal (or 0) before the scale multiplied it.
_NEAR_UNDERFLOW = 2.0**-968

#: From this scale on, a result of 0 may be an underflowed factor (below 2⁻¹⁰⁷⁵) that the
#: scale would have brought to a normal number.
_ZERO_CHECKED = 2.0**50


def largest_scale(derivation: Derivation) -> float:
    """The largest magnitude of any array option (``weight``, ``pos_weight``) of
    ``derivation``, their product where both are given (1 without them; decided once per
    derivation): only above :data:`SCALE_CHECKED` does :func:`scaled_from_underflow` look."""
    largest = 1.0
    for name in ARRAY_OPTIONS:
        value = derivation.options.get(name)
        if value is not None and np.size(value):
            with np.errstate(invalid="ignore", over="ignore"):
                largest *= max(1.0, float(np.nanmax(np.abs(np.asarray(value, np.float64)))))
    return largest


def _scales(layout: Layout, out: np.ndarray, bound: Callable[..., Any] = np.maximum
            ) -> np.ndarray:
    """Each element's scale magnitude, at least 1, in ``out``'s layout: element-wise, the
    product of ``max(1, |a|)`` over the array options (with ``bound=np.minimum``, of
    ``min(1, |a|)``: the scales that shrink, at most 1); on a class axis, the larger of the
    class's weight and the target's weight (``Σ_k |w_k| q_k``, q the target as smoothed:
    ``(1 − ε) y + ε/C`` with label smoothing ε, which gives every row every class's weight;
    per row for the loss)."""
    if layout.family == "elementwise":
        scale = np.ones(out.shape)
        for name in ARRAY_OPTIONS:
            if name in layout.arrays:
                scale = scale * bound(1.0, np.abs(layout.arrays[name])).reshape(out.shape)
        return scale
    weight = layout.arrays.get("weight")
    n_rows = layout.n_rows
    if weight is None:
        return np.ones(out.shape)
    w = np.abs(np.broadcast_to(weight, (layout.arrays["input"].shape[1],)))
    if layout.labels is not None:
        target = np.where(layout.labels == layout.ignore_index, 0.0,
                          w[np.clip(layout.labels, 0, w.size - 1)])
    else:
        target = np.abs(layout.arrays["target"]) @ w
    eps = layout.scalars.get("label_smoothing", 0.0)
    if eps:  # the smoothed target (1 − ε)y + ε/C weighs every class (Σₖ wₖ ε/C, not overflowed)
        target = abs(1.0 - eps) * target + abs(eps) * np.sum(w / w.size)
    if out.size == n_rows:  # a loss per row: every class's weight may enter
        return np.maximum(1.0, np.maximum(target, w.max())).reshape(out.shape)
    return np.maximum(1.0, np.maximum(target[:, None], w[None, :])).reshape(out.shape)


def scaled_from_underflow(layout: Layout, out: np.ndarray, what: str, largest: float
                          ) -> tuple[np.ndarray, np.ndarray] | None:
    """Mark NaN, for :func:`symloss.exact.rescue`, each element of ``out`` (an evaluator's
    per-element ``what``) whose scale may have multiplied a factor that had left the normal
    range: its result below ``scale·2⁻⁹⁶⁸`` (0 too, for a scale from 2⁵⁰ on); return the
    marked flat indices and their values, for :func:`restore_unrescued` (``None``: none).
    ``largest``: :func:`largest_scale`, above :data:`SCALE_CHECKED`; one pass over ``out``
    against it (:func:`symloss._bounds.any_below`, compiled where numba is) before any
    element's own scale is read.

    A weight or pos_weight is a given float of any size, and a subnormal or underflowed
    factor has lost its digits before the scale makes a normal number of it (σ(−745.133)
    ≈ 4.9e-324 times pos_weight 1.5e293 was 7.6e-31, exactly 3.8e-31; e^(−1000) = 0 times a
    class weight 2.8e303 was 0, exactly 1.4e-131). The exact value answers there; a result
    of a scale ≤ 2 is within 2 ulp of its factor's error and is never checked. Element-wise,
    an infinite result under a scale below 1 is marked too: a factor overflowed that the
    scale brings back (weight 5.5e-317 times pos_weight 5.4e306 times 709.78).
    """
    if layout.family not in ("elementwise", "class_axis") or out.dtype.kind != "f":
        return None
    divisor = layout.divisor if what in ("grad", "hvp") else 1.0
    if not (divisor > 0.0 and np.isfinite(divisor)):  # every row ignored, or a total ≤ 0
        return None
    weight = layout.arrays.get("weight")
    if layout.family == "class_axis" and weight is not None:  # as laid out (_balanced)
        largest = max(1.0, float(np.nanmax(np.abs(weight))))
    bound = largest * _NEAR_UNDERFLOW / divisor
    flat = out.reshape(-1) if out.flags.c_contiguous else np.ravel(out)
    # the common case: no result near the underflow of its scale (an exact 0 -- a Hessian in
    # the direction of ones, a hard label's hit -- counts only for a scale that would lift
    # a factor below 2⁻¹⁰⁷⁵: 130 -> 160 ms for cross_entropy's weighted hvp at 1e6 before)
    # element-wise, an infinite result too where a scale below 1 multiplied it: the
    # overflow may be a factor's that the scale brings back (weight 5.5e-317 times
    # pos_weight 5.4e306·y·softplus(709.78): inf, exactly 2.1e-7)
    infinite = layout.family == "elementwise"
    if not any_below(flat, bound, largest >= _ZERO_CHECKED, infinite):
        return None
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        raw = np.abs(out)
        small = raw < bound
        lifted = raw == np.inf
        if not (small.any() or (infinite and lifted.any())):
            return None
        scale = _scales(layout, out)
        raw *= divisor
        suspect = (small & (scale > SCALE_CHECKED) & (raw < scale * _NEAR_UNDERFLOW)
                   & ((raw != 0.0) | (scale >= _ZERO_CHECKED)))
        if infinite and lifted.any():
            suspect |= lifted & (_scales(layout, out, np.minimum) < 1.0)
    marked = np.flatnonzero(suspect)
    if marked.size == 0:
        return None
    flat = out.reshape(-1)
    values = flat[marked].copy()
    flat[marked] = np.nan
    return marked, values


def restore_unrescued(out: np.ndarray, marked: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Put back the evaluated value of each element :func:`scaled_from_underflow` marked and
    :func:`symloss.exact.rescue` left NaN (an infinite input, an infinite scalar option, a
    form with no exact row expression): as evaluated, never NaN for a finite result."""
    if marked is None:
        return
    index, values = marked
    flat = out.reshape(-1)
    left = np.isnan(flat[index])
    flat[index[left]] = values[left]


def cast(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 -> the result's dtype: one rounding; a subnormal result may flush to 0, quietly."""
    if arr.dtype == dtype:
        return arr
    with np.errstate(under="ignore", over="ignore"):
        return arr.astype(dtype)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes an argument of ``shape`` was broadcast along."""
    if grad.shape == shape:
        return grad
    if len(shape) == grad.ndim - 1 and shape == grad.shape[:-1]:  # var of shape input[:-1]
        return grad.sum(axis=-1)
    lead = grad.ndim - len(shape)
    out = grad.sum(axis=tuple(range(lead))) if lead else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and out.shape[i] != 1)
    return out.sum(axis=axes, keepdims=True).reshape(shape)


def check_arity(derivation: Derivation, arrays: tuple[Any, ...], extra: str = "") -> None:
    names = derivation.spec.arguments
    if len(arrays) != len(names):
        shown = ", ".join([*names, *([extra] if extra else [])])
        raise SymlossTypeError(
            f"{derivation.name} takes ({shown}); got {len(arrays) + bool(extra)} arrays"
        )


def check_wrt(derivation: Derivation, wrt: str) -> None:
    differentiable = ["input", *(w.name for w in derivation.declaration.also_wrt)]
    if wrt not in differentiable:
        raise choice_error(f"wrt for {derivation.spec.name}", wrt, differentiable)


def lay_out(derivation: Derivation, arrays: tuple[Any, ...]) -> Layout:
    """Check the user's arrays against ``derivation`` and lay them out for the kernels."""
    return Planner(derivation)(arrays)


class Planner:
    """:func:`lay_out` for one derivation, with what does not depend on the arrays (names,
    options, scalars, checks) worked out once, and what depends only on the arrays' dtypes and
    shapes worked out once per such signature (kept for :data:`_MAX_PLANS` of them): a repeat
    call pays only for what depends on the values -- a compiled pass per checked array
    (:func:`symloss._bounds.within`) and, for class indices, the mean's denominator. A call at
    n = 100 then costs 1.5-3 µs here."""

    def __init__(self, derivation: Derivation) -> None:
        spec = derivation.spec
        self.derivation = derivation
        self.name = derivation.name
        self.family = spec.family
        self.arguments = spec.arguments
        self.extra = tuple(a for a in spec.arguments if a not in ("input", "target"))
        self.checks = spec.argument_check
        self.options = derivation.options
        self.reduction: str = derivation.options.get("reduction", "mean")
        self.probability = spec.input_domain(derivation.options) == "probability"
        symbols = derivation.declaration.symbols
        self.array_options = tuple(o for o in ARRAY_OPTIONS
                                   if o in symbols and o not in spec.arguments)
        taken = {*spec.arguments, *self.array_options, "weight", "num_classes"}
        self.scalars = _scalars(derivation, taken)
        self.by_weight = _mean_by_weight(derivation)
        from .catalog import TARGET_CHECKS

        self.target_check = TARGET_CHECKS.get(spec.name)
        bounds = getattr(self.target_check, "bounds", None)
        #: binary_cross_entropy: targets in [0, 1], as torch (checked with the input's
        #: probabilities in one compiled pass where both are: a repeat call's only checks)
        self.target_bounds = (float(bounds[0]), float(bounds[1])) if bounds is not None else None
        #: Per (input dtype, input shape): what the element-wise layout decides from them
        #: alone (working and result dtypes, denominator, the array options laid out).
        self._shapes: dict[tuple[np.dtype, tuple[int, ...]], _ShapePlan] = {}
        #: Per (input dtype and shape, target dtype and shape): what the class-axis layout
        #: checked and decided from them alone.
        self._class_plans: dict[tuple[Any, ...], _ClassPlan] = {}
        if self.family == "class_axis":  # read from the spec once, not per call
            given_ignore = derivation.options.get("ignore_index")
            self.class_axis = _ClassAxisFacts(
                index_only=spec.index_targets_only, multi_hot=spec.multi_hot_targets,
                spatial=spec.spatial, has_weight="weight" in symbols,
                ignore_index=int(given_ignore) if given_ignore is not None else NO_IGNORE,
                ignoring=given_ignore is not None)

    def __call__(self, arrays: tuple[Any, ...]) -> Layout:
        if self.family == "elementwise":
            return self._elementwise(arrays)
        if len(arrays) != len(self.arguments):
            check_arity(self.derivation, arrays)
        if self.family == "class_axis":
            x, t = arrays
            if type(x) is np.ndarray and type(t) is np.ndarray:
                plan = self._class_plans.get((x.dtype, x.shape, t.dtype, t.shape))
                if plan is not None:
                    layout = self._class_axis_again(plan, x, t)
                    if layout is not None:
                        return layout
            layout = _class_axis(self.derivation, arrays, self.scalars, self.by_weight,
                                 self.class_axis)
            if (type(x) is np.ndarray and type(t) is np.ndarray
                    and len(self._class_plans) < _MAX_PLANS):
                # the weights as given (a layout's may be scaled with its total: _balanced)
                weight = (np.ascontiguousarray(self.options["weight"], dtype=np.float64)
                          if "weight" in layout.arrays else None)
                self._class_plans[x.dtype, x.shape, t.dtype, t.shape] = _ClassPlan(
                    layout.work, layout.dtype, weight,
                    None if layout.hard else layout.arrays["target"].dtype)
            return layout
        raise AssertionError(f"no layout for family {self.family!r}")  # pragma: no cover

    @property
    def call(self) -> Callable[[tuple[Any, ...]], Layout]:
        """``self(arrays)``, as the family's own method where it has one (a call less)."""
        return self._elementwise if self.family == "elementwise" else self.__call__

    def _elementwise(self, given_arrays: tuple[Any, ...]) -> Layout:
        # The hot path of every element-wise call: NumPy float arrays, flat and contiguous,
        # take no function call until the checks (n = 100: ~1.5 µs here in all).
        if len(given_arrays) != len(self.arguments):
            check_arity(self.derivation, given_arrays)
        name = self.name
        given = dict(zip(self.arguments, given_arrays, strict=True)) if self.extra else None
        if given is None:
            x, y = given_arrays
        else:
            x, y = given["input"], given["target"]
        if type(x) is not _NDARRAY:
            x = _as_real(x, name, "input")
        plan = self._shapes.get((x.dtype, x.shape))
        if plan is None:  # (a kept plan's dtype was checked when it was made)
            x = _as_real(x, name, "input")
            plan = self._shape_plan(x)
        work = plan.work
        if type(y) is not _NDARRAY or y.dtype is not work:  # (work: a real dtype)
            y = _as_real(y, name, "target")
        shape = x.shape
        if y.shape != shape:
            raise SymlossValueError(
                f"{name}: target shape {y.shape} must equal input shape {shape}")
        xi = x if x.ndim == 1 and x.dtype is work and x.flags.c_contiguous else _flat(x, work)
        yf = (y if y.ndim == 1 and y.dtype is work and y.flags.c_contiguous
              else _flat(y, _companion_dtype(y, work)))
        out: dict[str, np.ndarray] = {"input": xi, "target": yf}
        if not (self.probability and self.target_bounds is not None
                and within_both(xi, 0.0, 1.0, yf, *self.target_bounds)):
            # (binary_cross_entropy: both proved in one compiled pass; else each checked)
            if self.probability and not within(xi, 0.0, 1.0):  # NaN is not in [0, 1]
                raise SymlossValueError(
                    f"{name}: every input must be a probability in [0, 1] "
                    "(use link='sigmoid' or binary_cross_entropy_with_logits for logits)"
                )
            if self.target_check is not None:
                _check_values(self.target_check, name, yf)
        for arg in self.extra:
            assert given is not None
            arr = given[arg]
            if (type(arr) is _NDARRAY and arr.dtype is work and arr.shape == shape
                    and arr.flags.c_contiguous):  # laid out as it is (as x and y above)
                arr = arr if arr.ndim == 1 else arr.reshape(-1)
            else:
                arr = _as_real(arr, name, arg)
                if arr.ndim == x.ndim - 1 and arr.shape == x.shape[:-1] and arr.shape != x.shape:
                    arr = arr[..., None]  # torch: a var without the last dimension is unsqueezed
                arr = _flat(_broadcast(arr, shape, arg, name), _companion_dtype(arr, work))
            check = self.checks.get(arg)
            if check is not None:
                _check_values(check, name, arr)
            out[arg] = arr
        if plan.options:
            out.update(plan.options)
        for option in plan.copied:  # laid out anew: a copy kept would miss an in-place edit
            out[option] = _flat(_broadcast(self.options[option], shape, option, name), F64)
        return Layout("elementwise", shape, plan.result, work, self.reduction,
                      plan.denominator, out, self.scalars)

    def _class_axis_again(self, plan: _ClassPlan, x: np.ndarray, t: np.ndarray) -> Layout | None:
        """A class-axis layout for arrays of the dtypes and shapes of one laid out before
        (:func:`_class_axis` checked those): the class axis last, contiguous arrays and every
        label a class or ignored -- else ``None``, and :func:`_class_axis` lays it out (or
        says what is wrong)."""
        if x.ndim > 2 or x.dtype != plan.work or not x.flags.c_contiguous:
            return None
        n_classes = x.shape[-1]
        arrays = {"input": x.reshape(-1, n_classes)}
        labels = valid = None
        if plan.target is None:  # class indices
            labels = t.reshape(-1) if t.dtype == _INT64 and t.flags.c_contiguous else (
                np.ascontiguousarray(t, dtype=np.int64).reshape(-1))
            facts = self.class_axis
            valid, bad = _label_rows(labels, n_classes, facts.ignore_index, facts.ignoring)
            if bad is not None:  # _class_axis raises
                return None
            denominator = _index_denominator(self.derivation, self.options.get("weight"),
                                             self.by_weight, labels, valid)
        else:
            if t.dtype != plan.target or not t.flags.c_contiguous:
                return None
            arrays["target"] = t.reshape(-1, n_classes)
            denominator = float(arrays["input"].shape[0])
        if plan.weight is not None:
            arrays["weight"] = plan.weight
            if self.by_weight and labels is not None and self.reduction == "mean":
                arrays["weight"], denominator = _balanced(plan.weight, denominator, labels,
                                                          valid)
        return Layout("class_axis", x.shape, plan.result, plan.work, self.reduction,
                      denominator, arrays, self.scalars, labels, valid,
                      self.class_axis.ignore_index, 0 if x.ndim == 1 else 1)

    def _shape_plan(self, x: np.ndarray) -> _ShapePlan:
        """What an element-wise layout decides from the input's dtype and shape (kept)."""
        shape = x.shape
        options, copied = {}, []
        for option in self.array_options:
            given = self.options[option]
            value = _flat(_broadcast(given, shape, option, self.name), F64)
            if np.shares_memory(value, given):  # a view: kept (read-only), it sees any edit
                value = value.view()
                value.flags.writeable = False
                options[option] = value
            else:  # a broadcast copy: made per call
                copied.append(option)
        if self.reduction == "batchmean":
            denominator = float(shape[0]) if x.ndim else 1.0
        else:
            denominator = float(x.size)
        plan = _ShapePlan(_kernel_dtype(x), _result_dtype(x), denominator, options,
                          tuple(copied))
        if len(self._shapes) < _MAX_PLANS:
            self._shapes[x.dtype, shape] = plan
        return plan


#: Kept layouts per derivation (a long-running caller's shapes need not all be kept).
_MAX_PLANS = 64


_INT64 = np.dtype(np.int64)
_NDARRAY = np.ndarray


@dataclass(frozen=True, slots=True)
class _ClassPlan:
    """What :func:`_class_axis` decided for arrays of one dtype and shape each."""

    work: np.dtype
    result: np.dtype
    weight: np.ndarray | None  # the class weights laid out (float64), where the loss has them
    target: np.dtype | None  # probability targets' dtype in the layout; None: class indices


def _balanced(weight: np.ndarray, denominator: float, labels: np.ndarray,
              valid: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The class weights and the mean's denominator, their total weight, both scaled by one
    power of two where the denominator is below 1, so that it is about 1 (exact: the weights
    wᵢ/Σw are the same numbers).

    Each row's result is its target's weight times a value, divided by the total: a
    subnormal total (the weight 1.843e-320 of every target) had rounded ``w·value`` to a
    subnormal number, or to 0, before the division (cross_entropy at z = [700, 0, 0, 0],
    target 1: 0 for 9.9e-305, 4.9e15 ulp; its loss at z₁ − lse = −745.133: 745.13297587).
    Scaled, the product is a normal number and the mean's division rounds once. The scale
    stops where the largest weight a row takes would pass 2¹⁰⁰⁰; a class no row takes may
    overflow, and is held at the largest float.
    """
    if not 0.0 < abs(denominator) < 1.0:
        return weight, denominator
    taken = labels if valid is None else labels[valid]
    largest = float(np.max(np.abs(weight[taken]))) if taken.size else 0.0
    scale = -np.frexp(denominator)[1]
    if largest > 0.0:
        scale = min(scale, 1000 - int(np.frexp(largest)[1]))
    if scale <= 0:
        return weight, denominator
    top = np.finfo(np.float64).max
    with np.errstate(over="ignore"):
        scaled = np.clip(np.ldexp(weight, scale), -top, top)
    return scaled, float(np.ldexp(denominator, scale))


def _unmasked_denominator(weight: np.ndarray | None, by_weight: bool,
                          labels: np.ndarray) -> float:
    """:func:`class_index_denominator` where no row is ignored (every label in bounds)."""
    if weight is not None and by_weight:
        return float(np.sum(weight[labels]))
    return float(labels.size)


@dataclass(frozen=True, slots=True)
class _ShapePlan:
    work: np.dtype
    result: np.dtype
    denominator: float
    options: dict[str, np.ndarray]  # array options laid out as views of the option
    copied: tuple[str, ...]  # array options that take a copy to lay out (made per call)


def _check_values(check: Callable[[str, Any], None], loss: str, arr: np.ndarray) -> None:
    """``check(loss, arr)`` (a flat array), unless one compiled pass proves its ``bounds``
    (an interval, NaN excluded; :func:`symloss._bounds.within`): on a small array the check's
    NumPy temporaries cost more than the kernels' work. Where the proof fails the check itself
    decides (and raises its own message)."""
    bounds = getattr(check, "bounds", None)
    if bounds is None or not within(arr, float(bounds[0]), float(bounds[1])):
        check(loss, arr)


def _scalars(derivation: Derivation, taken: set[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in derivation.declaration.symbols:
        if name in taken:
            continue
        value = derivation.options.get(name)
        if value is None or hasattr(value, "shape"):
            raise AssertionError(f"{derivation.name}: no value for option {name!r}")
        out[name] = float(value)
    return out


@dataclass(frozen=True)
class _ClassAxisFacts:
    """What a class-axis layout needs from the spec (worked out once per derivation)."""

    index_only: bool
    multi_hot: bool
    spatial: bool
    has_weight: bool
    ignore_index: int  # NO_IGNORE for a loss without the option
    ignoring: bool  # whether the option is given (a label equal to it is ignored)


def _class_axis(derivation: Derivation, given_arrays: tuple[Any, ...],
                scalars: dict[str, float], by_weight: bool, spec: _ClassAxisFacts) -> Layout:
    name = derivation.name
    options = derivation.options
    input, target = given_arrays
    x = _as_real(input, name, "input")
    if x.ndim == 0:
        raise SymlossValueError(
            f"{name}: input must have shape (C), (N, C) or (N, C, d1, ..., dk); got a scalar"
        )
    t = target if type(target) is np.ndarray else np.asarray(
        target.detach().cpu().numpy() if hasattr(target, "detach") else target)
    class_dim = 0 if x.ndim == 1 else 1
    n_classes = x.shape[class_dim]
    work = _kernel_dtype(x)
    weight = options.get("weight")
    if weight is not None and weight.shape != (n_classes,):
        raise SymlossValueError(
            f"{name}: weight must have shape ({n_classes},) for {n_classes} classes, "
            f"got {weight.shape}"
        )
    # A loss without an ignore_index option (multi_margin_loss) ignores no target.
    given_ignore = options.get("ignore_index")
    ignore_index = int(given_ignore) if given_ignore is not None else NO_IGNORE
    if x.ndim > 2 and not spec.spatial and spec.index_only:
        raise SymlossValueError(  # torch's multi_margin_loss: (C) or (N, C) only
            f"{name}: input must have shape (C) or (N, C), got {x.shape} (torch: expected "
            "non-empty vector or matrix)")
    if t.shape == x.shape and spec.index_only:
        raise SymlossValueError(
            f"{name}: targets are class indices of shape "
            f"{x.shape[:class_dim] + x.shape[class_dim + 1:]}, got the input's shape {t.shape}"
        )
    if spec.multi_hot and t.shape != x.shape:
        raise SymlossValueError(
            f"{name}: the target must have the input's shape {x.shape} (one label per "
            f"class), got {t.shape}"
        )

    def rows(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if class_dim != arr.ndim - 1:
            arr = np.moveaxis(arr, class_dim, -1)
        if arr.dtype != dtype or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr, dtype=dtype)
        return arr.reshape(-1, n_classes)

    arrays: dict[str, np.ndarray] = {"input": rows(x, work)}
    labels = valid = None
    if t.shape == x.shape:
        if spec.multi_hot and t.dtype.kind in "iub":
            t = t.astype(work)
        if t.dtype.kind != "f":
            raise SymlossTypeError(
                f"{name}: a target of the input's shape holds class probabilities and must "
                f"be floating point, got dtype {t.dtype}"
            )
        if given_ignore is not None and ignore_index >= 0:
            raise SymlossValueError(
                f"{name}: ignore_index is not supported for probability targets "
                f"(got ignore_index={ignore_index})"
            )
        arrays["target"] = rows(t, _companion_dtype(t, work))
        denominator = float(arrays["input"].shape[0])
    else:
        expected = x.shape[:class_dim] + x.shape[class_dim + 1 :]
        if t.shape != expected:
            raise SymlossValueError(
                f"{name}: target must have shape {expected} (class indices) or "
                f"{x.shape} (class probabilities), got {t.shape}"
            )
        if t.dtype.kind not in "iu":
            raise SymlossTypeError(
                f"{name}: class-index targets must be integers, got dtype {t.dtype}"
            )
        labels = np.ascontiguousarray(t, dtype=np.int64).reshape(-1)
        valid, bad = _label_rows(labels, n_classes, ignore_index, given_ignore is not None)
        if bad is not None:
            also = f" (or ignore_index={ignore_index})" if given_ignore is not None else ""
            raise SymlossValueError(
                f"{name}: target {bad} is out of bounds; class indices are "
                f"0..{n_classes - 1}{also}"
            )
        denominator = _index_denominator(derivation, weight, by_weight, labels, valid)
    if spec.has_weight:
        arrays["weight"] = np.ascontiguousarray(weight, dtype=np.float64)
        if by_weight and labels is not None and options.get("reduction", "mean") == "mean":
            arrays["weight"], denominator = _balanced(arrays["weight"], denominator, labels,
                                                      valid)
    return Layout(
        family="class_axis", shape=x.shape, dtype=_result_dtype(x), work=work,
        reduction=options.get("reduction", "mean"), denominator=denominator, arrays=arrays,
        scalars=scalars, labels=labels, _valid=valid,
        ignore_index=ignore_index, class_dim=class_dim,
    )
