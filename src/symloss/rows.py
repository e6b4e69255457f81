"""The row family: losses that reduce each row of their arrays to one number.

A row-wise loss -- ``cosine_embedding_loss``, ``triplet_margin_loss``,
``multilabel_margin_loss`` -- takes arrays of shape ``(*B, D)`` (``B`` the rows, often ``(N,)``
or ``()``, ``D`` features or classes) and computes one loss per row from dot products, norms or
sums over pairs of classes. Its declaration writes the per-row loss with
:class:`~sympy.IndexedBase` arrays (``a[k]``) and sums ``Σ_{k=1}^{D}`` over a symbolic ``D``;
this module evaluates such expressions with NumPy, with torch's bookkeeping around them:

* every index symbol of an expression (the free index ``i`` of a gradient, ``j`` of a Hessian,
  each summation index) gets its own trailing axis, so ``a[i]`` and ``a[k]`` are the same row
  laid along two axes and ``Σ_k f(a_i, a_k)`` is a (compensated) sum over ``k``'s axis: pairwise
  sums need no special case;
* the positional arrays are the declared signature's (torch's names and order): an
  :class:`~sympy.IndexedBase` symbol is a row of ``D`` numbers, a :class:`~sympy.Symbol` one
  number per row; the target is decoded from its declared domain (:data:`TARGET_DOMAINS`:
  ``±1`` per row, or sets of class indices padded with −1) and checked;
* arrays broadcast as in torch, and the gradient of a broadcast array sums over the broadcast
  axes; ``reduction='mean'`` divides by the number of rows;
* every loss, gradient and Hessian-vector product is certified: the kernel also runs on
  numbers that carry a bound on their error, and a result whose terms cancel beyond what the
  working precision can vouch for (long double for float64, float64 for float32) is evaluated
  again in double-double, then, if even that cannot certify it, exactly
  (:meth:`RowAdapter._certified`).

A new row-wise loss is a declaration (a :class:`RowLossSpec` in the catalogue); nothing here
names a loss.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
from sympy.printing.numpy import SciPyPrinter

from . import kernels
from .algebra import reduce_sums
from .declaration import CLASS_INDEX_SETS, SIGNS
from .errors import SymlossTypeError, SymlossValueError, choice_error
from .spec import LossSpec, RowLossSpec

if TYPE_CHECKING:
    from .derive import Derivation
    from .numeric import Numeric

__all__ = ["COMPILED_MIN_SIZE", "TARGET_DOMAINS", "RowLossSpec", "axis_dot", "axis_sum", "build", "compile_rows"]


# --------------------------------------------------------------------------- targets
def _sign_target(loss: str, t: np.ndarray, rows: tuple[int, ...], width: int) -> np.ndarray:
    """One ±1 per row: 1 for a similar pair, −1 for a dissimilar one."""
    if t.shape != rows:
        raise SymlossValueError(
            f"{loss}: target must have shape {rows} (one 1 or -1 per row of the inputs), "
            f"got {t.shape}"
        )
    if t.dtype.kind not in "fiub":
        raise SymlossTypeError(f"{loss}: target must hold numbers 1 or -1, got dtype {t.dtype}")
    # a small target's entries as Python numbers (a set: 0.3 µs at 10 rows, where NumPy's two
    # comparisons and their any() took 3-4 µs a call); a large one's by NumPy. The same test:
    # x == 1 or x == -1 (True counts as 1, NaN as neither), the same values read
    if t.size > _SMALL_TARGET or not _SIGNS.issuperset(t.ravel().tolist()):
        bad = (t != 1) & (t != -1)
        if bad.any():
            raise SymlossValueError(
                f"{loss}: target entries must be 1 or -1, got {np.asarray(t)[bad].flat[0]!r}"
            )
    return t.astype(np.float64)


#: Up to this many entries a ±1 target is checked in Python (:func:`_sign_target`).
_SMALL_TARGET = 256
_SIGNS = frozenset((1, -1))


def _index_sets(loss: str, t: np.ndarray, rows: tuple[int, ...], width: int) -> np.ndarray:
    """Per row, the class indices of its targets, padded with −1: the first −1 ends the list.

    Decoded to the count of each class in the list (a class listed twice counts twice, as in
    torch's kernel), shape ``(*rows, C)``.
    """
    if t.shape != (*rows, width):
        raise SymlossValueError(
            f"{loss}: target must have the input's shape {(*rows, width)} (class indices "
            f"padded with -1), got {t.shape}"
        )
    if t.dtype.kind not in "iu":
        raise SymlossTypeError(f"{loss}: target class indices must be integers, got dtype {t.dtype}")
    flat = t.reshape(-1, width)
    # whole numbers up to the width, in the narrowest unsigned type that holds them (a quarter
    # of a float32 input's bytes below 256 classes); the kernels read them as float64
    counts = np.zeros(flat.shape, dtype=np.min_scalar_type(width))
    # a block of rows at a time: the temporaries (masks, indices) stay a small part of the input
    step = max(1, min(2**16, max(2**12, flat.size // 64)) // max(width, 1))
    for start in range(0, flat.shape[0], step):
        block = flat[start:start + step]
        if block.size and (block.min() < -1 or block.max() >= width):
            bad = (block < -1) | (block >= width)
            raise SymlossValueError(
                f"{loss}: target {int(block[bad].flat[0])} is out of range; entries are class "
                f"indices 0..{width - 1}, padded with -1"
            )
        listed = np.logical_and.accumulate(block != -1, axis=-1)  # before the first −1
        # each listed class's count in its row: one bincount of the flat (row, class) indices
        # (np.add.at's unbuffered loop took 4x the kernel's time at 1e6 elements)
        flat_index = (block + np.arange(0, block.size, width)[:, None])[listed]
        counts[start:start + step] = np.bincount(flat_index, minlength=block.size).reshape(
            block.shape)
    return counts.reshape(t.shape)


#: How a row-wise loss reads its target, by the target's declared domain:
#: ``domain name -> decode(loss, target, rows, width)``.
TARGET_DOMAINS: dict[str, Callable[[str, np.ndarray, tuple[int, ...], int], np.ndarray]] = {
    SIGNS.name: _sign_target,  # one ±1 per row
    CLASS_INDEX_SETS.name: _index_sets,  # per row, class indices padded with −1
}


# --------------------------------------------------------------------------- compiling
def axis_sum(x: Any, axis: int) -> np.ndarray:
    """Σ over ``axis`` (kept, length 1), compensated like :func:`symloss.kernels.class_sum`.

    >>> import numpy as np
    >>> axis_sum(np.array([[1.0, 1e-16, 1e-16]]), -1).tolist()
    [[1.0000000000000002]]
    """
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[axis] == 1:
        return x
    return np.moveaxis(kernels.class_sum(np.moveaxis(x, axis, -1)), -1, axis)


def axis_dot(x: Any, y: Any, axis: int) -> np.ndarray:
    """Σ ``x·y`` over ``axis`` (kept, length 1) with every product exact: Dekker's two-product
    in the arrays' own precision (float64, or long double), then one compensated sum of the
    products and their rounding errors. A dot product of nearly orthogonal rows (a cosine at
    its margin, a difference of squared distances) keeps its digits.

    >>> import numpy as np
    >>> x = np.array([[1.0 + 2.0**-30, -1.0]])
    >>> float(axis_dot(x, np.array([[1.0 - 2.0**-30, 1.0]]), -1)[0, 0]) == -2.0**-60
    True
    """
    x, y = np.broadcast_arrays(np.asarray(x), np.asarray(y))
    product = x * y
    if product.dtype.kind != "f" or product.ndim == 0:
        return axis_sum(product, axis)
    kind = product.dtype.type
    splitter = kind(2.0 ** ((np.finfo(product.dtype).nmant + 2) // 2) + 1)

    def split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = splitter * v
        hi = t - (t - v)
        return hi, v - hi

    with np.errstate(all="ignore"):
        xh, xl = split(x)
        yh, yl = split(y)
        error = ((xh * yh - product) + xh * yl + xl * yh) + xl * yl
        # past the splitter's range (or an inf/NaN factor) the plain product is the answer
        error = np.where(np.isfinite(error), error, kind(0))
    return axis_sum(np.concatenate([product, error], axis=axis), axis)


class _AxisSum(sp.Function):
    """``Σ`` over one axis of the row layout (printed as :func:`axis_sum`)."""

    nargs = 2

    def _numpycode(self, printer: Any) -> str:
        body, axis = self.args
        return f"axis_sum({printer._print(body)}, {int(axis)})"  # type: ignore[call-overload]

    _scipycode = _numpycode


class _AxisDot(sp.Function):
    """``Σ x·y`` over one axis with exact products (printed as :func:`axis_dot`)."""

    nargs = 3

    def _numpycode(self, printer: Any) -> str:
        x, y, axis = self.args
        return f"axis_dot({printer._print(x)}, {printer._print(y)}, {int(axis)})"  # type: ignore[call-overload]

    _scipycode = _numpycode


class _Group(sp.Function):
    """A sub-sum evaluated on its own, before the terms around it (printed parenthesized)."""

    nargs = 1

    def _numpycode(self, printer: Any) -> str:
        return f"({printer._print(self.args[0])})"

    _scipycode = _numpycode


def _element(term: sp.Expr) -> tuple[int, sp.Expr] | None:
    """``(n, x)`` for a term ``n·x`` of an integer ``n`` and an array element ``x``."""
    coeff, rest = term.as_coeff_Mul()
    if isinstance(rest, sp.Indexed) and coeff.is_Integer and coeff != 0:
        return int(coeff), rest
    return None


def _grouped_add(terms: tuple[sp.Expr, ...]) -> sp.Expr:
    """A sum whose array elements are subtracted pairwise first, then added to the rest.

    ``2a − p − n + 2ε`` is evaluated ``((a − p) + (a − n)) + 2ε``: the difference of two
    nearly equal elements is exact, so the sum keeps the digits a flat left-to-right
    evaluation (``2a + 2ε − p − n``) loses, and ``a − p + ε`` is torch's ``(a − p) + ε``
    (pairwise_distance), whose ε survives where |a| is huge.
    """
    elements = [(_element(t), t) for t in terms]
    plus = [x for found, _ in elements if found and found[0] > 0 for x in [found[1]] * found[0]]
    minus = [x for found, _ in elements if found and found[0] < 0 for x in [found[1]] * -found[0]]
    rest = [t for found, t in elements if not found]
    if len(plus) + len(minus) < 2 or not (rest or (plus and minus)):
        return sp.Add(*terms)
    pairs = [_Group(x - y) for x, y in zip(plus, minus, strict=False)]
    n = len(pairs)
    single = [*plus[n:], *(-y for y in minus[n:])]
    inner = sp.Add(*pairs, *single)
    if not rest:
        return inner
    return sp.Add(_Group(inner) if len(pairs) + len(single) > 1 else inner, *rest)


def _dot_factors(body: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """``(c, x, y)`` for a summand ``c·x·y`` of two factors (neither a constant nor a step), else
    ``None``."""
    if not isinstance(body, sp.Mul):
        return None
    coeff, rest = body.as_coeff_Mul()
    factors = sp.Mul.make_args(rest)
    if len(factors) != 2 or any(f.is_number for f in factors):
        return None
    # a factor of steps or hinges (class counts times indicators, multilabel margins): the
    # products are of whole numbers and indicators, and the exact dot only costs memory
    if any(f.has(sp.Heaviside, sp.Piecewise, sp.Max, sp.Min) or any(
            type(g).__name__ in ("step", "hinge") for g in f.atoms(sp.Function)) for f in factors):
        return None
    return coeff, factors[0], factors[1]


class _Printer(SciPyPrinter):
    """SciPy printer whose Min and Max broadcast (NumPy's amin of a tuple does not)."""

    def _print_Min(self, expr: sp.Min) -> str:
        out = self._print(expr.args[0])
        for arg in expr.args[1:]:
            out = f"numpy.minimum({out}, {self._print(arg)})"
        return out

    def _print_And(self, expr: sp.And) -> str:
        return self._chain("numpy.logical_and", expr.args)

    def _print_Or(self, expr: sp.Or) -> str:
        return self._chain("numpy.logical_or", expr.args)

    def _chain(self, func: str, args: tuple[sp.Basic, ...]) -> str:
        out = self._print(args[0])
        for arg in args[1:]:  # pairwise: the operands broadcast (reduce over a tuple does not)
            out = f"{func}({out}, {self._print(arg)})"
        return out

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # nested where: the pieces broadcast (numpy.select wants one shape for every condition)
        out = "numpy.nan"
        for value, cond in reversed(expr.args):
            if cond == sp.true:
                out = self._print(value)
            else:
                out = f"numpy.where({self._print(cond)}, {self._print(value)}, {out})"
        return out

    def _print_Rational(self, expr: sp.Rational) -> str:
        q = int(expr.q)
        if q & (q - 1) == 0:  # a dyadic rational: the float is exact
            return super()._print_Rational(expr)  # type: ignore[no-any-return]
        return f"_q({int(expr.p)}, {q})"  # rounded once; the tracked evaluation knows it

    def _print_Max(self, expr: sp.Max) -> str:
        out = self._print(expr.args[0])
        for arg in expr.args[1:]:
            out = f"numpy.maximum({out}, {self._print(arg)})"
        return out


# --------------------------------------------------------------------------- certified values
# A row kernel is also run on tracked numbers: each value carries a bound on its distance to
# the exact value of its subexpression at the given floats (a running error analysis: every
# rounding adds U·|result|, every operation propagates its operands' bounds to first order and
# beyond). A result is certified where that bound is under 2⁻ᵖ⁻¹ of it (p: the mantissa bits of
# its dtype; at most 1 ulp): it is then within 1.5 ulp of exact after the final rounding. Elsewhere -- a result that
# cancels by more than the working precision's extra bits (11 for float64 in long double, 29
# for float32 in float64) -- the row is evaluated again in double-double (about 104 bits), and
# what even that cannot certify (cancellation beyond ~45 bits, a kink decided by less than the
# error) is computed exactly by :func:`symloss.exact.row_value` (mpmath), rounded once.


class _Untracked(Exception):
    """The kernel uses an operation the tracked evaluation has no error bound for."""


class _DD:
    """A double-double array: ``hi + lo``, ``|lo| ≤ ulp(hi)/2``, float64 parts."""

    __array_ufunc__ = None
    __slots__ = ("hi", "lo")

    def __init__(self, hi: Any, lo: Any = 0.0) -> None:
        self.hi, self.lo = np.asarray(hi, dtype=np.float64), np.asarray(lo, dtype=np.float64)

    @staticmethod
    def _two_sum(a: Any, b: Any) -> tuple[Any, Any]:
        s = a + b
        bb = s - a
        return s, (a - (s - bb)) + (b - bb)

    @staticmethod
    def _split(a: Any) -> tuple[Any, Any]:
        t = 134217729.0 * a
        hi = t - (t - a)
        return hi, a - hi

    @classmethod
    def _two_prod(cls, a: Any, b: Any) -> tuple[Any, Any]:
        p = a * b
        ah, al = cls._split(a)
        bh, bl = cls._split(b)
        return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl

    @staticmethod
    def _fast(s: Any, e: Any) -> _DD:
        hi = s + e
        return _DD(hi, e - (hi - s))

    def __add__(self, other: _DD) -> _DD:
        s, e = self._two_sum(self.hi, other.hi)
        t, f = self._two_sum(self.lo, other.lo)
        s, e = self._two_sum(s, e + t)
        out = self._fast(s, e + f)
        return out

    def __neg__(self) -> _DD:
        return _DD(-self.hi, -self.lo)

    def __sub__(self, other: _DD) -> _DD:
        return self + (-other)

    def __mul__(self, other: _DD) -> _DD:
        p, e = self._two_prod(self.hi, other.hi)
        return self._fast(p, e + (self.hi * other.lo + self.lo * other.hi))

    def __truediv__(self, other: _DD) -> _DD:
        q1 = self.hi / other.hi
        r = self - other * _DD(q1)
        q2 = r.hi / other.hi
        r = r - other * _DD(q2)
        q3 = r.hi / other.hi
        return self._fast(q1, q2) + _DD(q3)

    def sqrt(self) -> _DD:
        s = np.sqrt(self.hi)
        safe = np.where(s > 0, s, 1.0)
        p, e = self._two_prod(s, s)
        r = self - _DD(p, e)
        return self._fast(s, np.where(s > 0, r.hi / (2.0 * safe), 0.0))

    def mag(self) -> Any:
        return np.abs(self.hi)

    def where(self, cond: Any, other: _DD) -> _DD:
        return _DD(np.where(cond, self.hi, other.hi), np.where(cond, self.lo, other.lo))


def _mag(v: Any) -> Any:
    """``|v|`` in float64: the error bounds are float64 (beyond 10³⁰⁸ a bound is inf, the
    result uncertified, and the exact evaluation answers)."""
    return v.mag() if isinstance(v, _DD) else np.abs(np.asarray(v, dtype=np.float64))


def _sign_of(v: Any) -> Any:
    return np.sign(v.hi) if isinstance(v, _DD) else np.sign(v)


def _integral(x: _Tracked) -> float | None:
    """The largest ``|x|`` if ``x`` is exact and holds whole numbers only, else ``None`` (its
    first element decides at once for the usual non-integer data)."""
    v = x.v
    if isinstance(v, _DD):
        if np.any(v.lo):
            return None
        v = v.hi
    v = np.asarray(v)
    if v.dtype.kind != "f" or v.size == 0:
        return None
    first = v.flat[0]
    if first != np.trunc(first) or np.any(x.e):
        return None
    with np.errstate(invalid="ignore"):
        if not np.all(v == np.trunc(v)):
            return None
    return float(np.max(np.abs(v)))


class _Unit(float):
    """The relative error of one rounding (with slack), and how many numbers a per-row array
    of the evaluation holds (:meth:`_Tracked._exact_operands`)."""

    per_row: int

    def __new__(cls, unit: float, per_row: int) -> _Unit:
        out = super().__new__(cls, unit)
        out.per_row = per_row
        return out


class _Tracked:
    """A value (an array in the working precision, or a :class:`_DD`) and a bound ``e`` on its
    distance to the exact value; ``unit``: the relative error of one rounding (with slack)."""

    __array_ufunc__ = None
    __slots__ = ("e", "unit", "v")

    def __init__(self, v: Any, e: Any, unit: _Unit) -> None:
        self.v, self.e, self.unit = v, e, unit

    def _lift(self, x: Any) -> _Tracked:
        if isinstance(x, _Tracked):
            return x
        if isinstance(x, _Rational):
            return x.tracked(self)
        if isinstance(x, (int, float, np.floating, np.integer)):
            return _Tracked(_DD(float(x)) if isinstance(self.v, _DD) else x, 0.0, self.unit)
        raise _Untracked(type(x).__name__)

    def _round(self, v: Any, e: Any, o: _Tracked | None = None) -> _Tracked:
        rounding = self.unit * _mag(v)
        if o is not None and isinstance(v, _DD):
            # the double-double sum and product of two exact doubles are exact
            exact = (self.e == 0) & (o.e == 0) & (self.v.lo == 0) & (o.v.lo == 0)
            rounding = np.where(exact, 0.0, rounding)
        return _Tracked(v, e + rounding, self.unit)

    def _exact_operands(self, o: _Tracked) -> bool:
        """Both operands exact and the operands per row (not per element, where it would cost
        a pass per operation): then the operation's own rounding error is computed exactly (a
        factor 1/2, a ±1 target, a step: no error where there is none)."""
        if isinstance(self.v, _DD):  # see _round: exact where both are doubles
            return False
        if max(np.size(self.e), np.size(o.e), np.size(_mag(self.v)), np.size(_mag(o.v))) \
                > self.unit.per_row:
            return False
        return not (np.any(self.e) or np.any(o.e))

    def _integers(self, o: _Tracked, product: bool) -> bool:
        """Both operands exact whole numbers whose sum (or product) float64 holds exactly --
        counts of classes, steps, their sums: the result is exact too."""
        a, b = _integral(self), _integral(o)
        if a is None or b is None:
            return False
        return (a * b if product else a + b) < 2.0**53

    def _rounded_exactly(self, v: Any, error: Any) -> _Tracked:
        return _Tracked(v, np.abs(np.asarray(error, dtype=np.float64)), self.unit)

    def __add__(self, other: Any) -> _Tracked:
        o = self._lift(other)
        if self._integers(o, product=False):
            return _Tracked(self.v + o.v, 0.0, self.unit)
        if self._exact_operands(o):
            a, b = np.asarray(self.v), np.asarray(o.v)
            s = a + b
            bb = s - a
            return self._rounded_exactly(s, (a - (s - bb)) + (b - bb))  # TwoSum's error
        return self._round(self.v + o.v, self.e + o.e, o)

    __radd__ = __add__

    def __neg__(self) -> _Tracked:
        return _Tracked(-self.v, self.e, self.unit)

    def __pos__(self) -> _Tracked:
        return self

    def __abs__(self) -> _Tracked:
        return _t_abs(self)

    def __sub__(self, other: Any) -> _Tracked:
        o = self._lift(other)
        if self._integers(o, product=False):
            return _Tracked(self.v - o.v, 0.0, self.unit)
        if self._exact_operands(o):
            return self + (-o)
        return self._round(self.v - o.v, self.e + o.e, o)

    def __rsub__(self, other: Any) -> _Tracked:
        return self._lift(other) - self

    def __mul__(self, other: Any) -> _Tracked:
        o = self._lift(other)
        if self._integers(o, product=True):
            return _Tracked(self.v * o.v, 0.0, self.unit)
        if self._exact_operands(o):
            a, b = np.asarray(self.v), np.asarray(o.v)
            p = a * b
            kind = p.dtype.type if p.dtype.kind == "f" else np.float64
            splitter = kind(2.0 ** ((np.finfo(kind).nmant + 2) // 2) + 1)

            def split(x: Any) -> tuple[Any, Any]:
                t = splitter * x
                hi = t - (t - x)
                return hi, x - hi

            ah, al = split(a)
            bh, bl = split(b)
            error = ((ah * bh - p) + ah * bl + al * bh) + al * bl  # Dekker's product error
            # past the splitter's range the error is not known: one rounding
            error = np.where(np.isfinite(error), np.abs(np.asarray(error, np.float64)),
                             self.unit * _mag(p))
            return _Tracked(p, error, self.unit)
        e = _mag(self.v) * o.e + _mag(o.v) * self.e + self.e * o.e
        return self._round(self.v * o.v, e, o)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> _Tracked:
        o = self._lift(other)
        q = self.v / o.v
        low = _mag(o.v) - o.e  # |b| can be no smaller than this
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(low > 0, (self.e + _mag(q) * o.e) / np.where(low > 0, low, 1.0), np.inf)
        return self._round(q, e)

    def __rtruediv__(self, other: Any) -> _Tracked:
        return self._lift(other) / self

    def sqrt(self) -> _Tracked:
        s = self.v.sqrt() if isinstance(self.v, _DD) else np.sqrt(self.v)
        m = _mag(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            # |√(x + δ) − √x| ≤ |δ|/√x, and ≤ √|δ| (x = 0)
            e = np.where(m > 0, self.e / np.where(m > 0, m, 1.0), np.sqrt(self.e))
        return self._round(s, e)

    def __pow__(self, n: Any) -> _Tracked:
        given = n
        n = n.p / n.q if isinstance(n, _Rational) else float(n)
        if n == 2:
            if isinstance(self.v, _DD):
                return self * self
            e = 2 * _mag(self.v) * self.e + self.e * self.e
            return self._round(self.v**2, e)  # the plain kernel's own operation
        if n == -1:
            if isinstance(self.v, _DD):
                return 1.0 / self
            return self._round(self.v ** (-1.0), (1.0 / self).e)
        if not binary_powered(n):
            return self._any_power(n, given)
        whole = int(abs(n))
        out: _Tracked | None = None
        base: _Tracked = self
        k = whole
        while k:
            if k & 1:
                out = base if out is None else out * base
            k >>= 1
            if k:
                base = base * base
        if n != int(n):
            root = self.sqrt()
            out = root if out is None else out * root
        if out is None:
            return self._lift(1.0)
        return 1.0 / out if n < 0 else out

    def _any_power(self, n: float, given: Any) -> _Tracked:
        """``x**n`` for any real ``n`` (triplet_margin_loss's ``1/p`` and ``p − 1``,
        ``p = 10³``): of ``|x|`` in the working precision (libm's pow, within one ulp: two
        roundings counted) or as ``e^(n log|x|)`` in double-double (:func:`ddouble.t_pow`,
        relative error below ``(|n log|x|| + 4)·2⁻⁹⁶``), times the sign for an odd whole ``n``
        (NaN for a negative base and a fractional ``n``, as NumPy). The error carried over:
        ``|x ± e|^n = |x|^n (1 ± r)^n`` with ``r = e/|x|``, so at most ``|x|^n`` times the
        larger of ``|(1 + r)^n − 1|`` and ``|(1 − r)^n − 1|`` (expm1 of n log1p: no bound
        overflows where ``|x|^n`` is finite; unbounded where the interval reaches 0 and
        ``n < 0``: uncertified, computed again or exactly). A rational exponent ``given``
        as :class:`_Rational` (2/3 for p = 1.5) is a rounded float in the working precision
        (its error ``δ`` adds ``|x^n log|x||·δ``: 10⁻¹⁶ of a distance, as much as the
        margin's cancellation leaves) and a pair in double-double."""
        from .ddouble import t_pow

        m = _mag(self.v)
        exact_n = not isinstance(given, _Rational) or given.q & (given.q - 1) == 0
        sign = _sign_of(self.v)
        whole = n == int(n)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            odd = whole and int(n) % 2 == 1
            factor = np.where(sign < 0, -1.0 if odd else (1.0 if whole else np.nan), 1.0)
            log_m = np.abs(np.log(m))
            if isinstance(self.v, _DD):
                base = self.v.where(self.v.hi >= 0, -self.v)
                pair = _DD(n) if exact_n else _DD(float(given.p)) / _DD(float(given.q))
                hi, lo = t_pow((base.hi, base.lo), (pair.hi, pair.lo))
                v: Any = _DD(hi * factor, lo * factor)
                size = np.abs(hi)
                rounding = np.where(size > 0, (abs(n) * log_m + 4.0) * 2.0**-96 * size, 0.0)
            else:
                x = np.asarray(self.v)
                v = np.abs(x) ** n * factor.astype(x.dtype) if x.dtype.kind == "f" else \
                    np.abs(x.astype(np.float64)) ** n * factor
                size = _mag(v)
                rounding = self.unit * size
                if not exact_n:  # Python's p/q: within half an ulp of float64
                    rounding = rounding + np.where(size > 0, size * log_m * abs(n) * 2.0**-52, 0.0)
            # relative: |x ± e|^n = |x|^n (1 ± r)^n, r = e/|x| (no overflow of a bound
            # where |x|^n is finite: p = 10³)
            r = np.where(m > 0, self.e / np.where(m > 0, m, 1.0), np.inf)
            up = np.abs(np.expm1(n * np.log1p(r)))
            down = np.abs(np.expm1(n * np.log1p(-np.minimum(r, 1.0))))  # 1 (or inf) past 0
            rel = np.maximum(up, down) * (1.0 + 2.0**-40)
            at0 = self.e**n if n > 0 else np.inf  # |x| ≤ e: |x|^n ≤ e^n
            e = np.where(self.e > 0, np.where(m > 0, _mag(v) * rel, at0), 0.0)
            # a power of a nonzero base below float64's smallest normal number (|u|^1000 at
            # |u| = 0.05 is 1e-1301, 0 in float64 and in double-double): the relative bounds
            # above say nothing there, and the float64 bounds cannot hold a long double's
            # tiny error, so it is off by up to that number (uncertified: computed again, or
            # exactly)
            tiny = float(np.finfo(np.float64).tiny)
            e = e + np.where((m > 0) & (_mag(v) < tiny), tiny, 0.0)
        return self._round(v, e + rounding)

    def _compare(self, other: Any, op: Callable[[Any, Any], Any]) -> _Decision:
        o = self._lift(other)
        if isinstance(self.v, _DD) or isinstance(o.v, _DD):
            diff = (self - o).v
            decided = op(diff.hi, 0.0)
        else:
            decided = op(self.v, o.v)
        d = self - o  # the decision is sure where the difference exceeds its error
        return _Decision(decided, ~((_mag(d.v) > d.e) | ((d.e == 0) & (_mag(d.v) == 0))), self)


@dataclass
class _Decision:
    """A comparison's outcome and where the values' errors leave it undecided."""

    value: Any
    unsure: Any
    #: a tracked operand of the comparison: the precision a choice between two constants takes
    like: Any = None


@dataclass
class _Rational:
    """``p/q`` as the kernels print a rational constant (see :func:`_q`)."""

    p: int
    q: int

    def __neg__(self) -> _Rational:  # the printer's −_q(1, 3)
        return _Rational(-self.p, self.q)

    def tracked(self, like: _Tracked) -> _Tracked:
        if isinstance(like.v, _DD):
            return _Tracked(_DD(float(self.p)) / _DD(float(self.q)), abs(self.p / self.q) * 2.0**-100,
                            like.unit)
        value = self.p / self.q
        return _Tracked(value, abs(value) * 2.0**-53, like.unit)  # Python's p/q, rounded once


def _q(p: int, q: int) -> float:
    """A rational constant ``p/q`` (a float, as printed before: one rounding)."""
    return p / q


def _t_where(cond: Any, a: Any, b: Any) -> _Tracked:
    if not isinstance(a, _Tracked | _Rational) and not isinstance(b, _Tracked | _Rational) and \
            isinstance(cond, _Decision) and cond.like is not None:
        # a choice between two constants (a Heaviside's 0, 1/2, 1): off by their difference
        # where the comparison is unsure
        v = np.where(cond.value, np.float64(a), np.float64(b))
        e = np.where(cond.unsure, abs(np.float64(a) - np.float64(b)), 0.0)
        return _Tracked(_DD(v) if isinstance(cond.like.v, _DD) else v, e, cond.like.unit)
    like = next(x for x in (a, b) if isinstance(x, _Tracked))
    a, b = like._lift(a), like._lift(b)
    if isinstance(cond, _Decision):
        value, unsure = cond.value, cond.unsure
    else:
        value, unsure = cond, False
    if isinstance(a.v, _DD):
        v = a.v.where(value, b.v)
    else:
        v = np.where(value, a.v, b.v)
    e = np.where(value, a.e, b.e)
    if np.any(unsure):  # either side may be the exact one
        e = np.where(unsure, np.maximum(a.e, b.e) + _mag((a - b).v) + a.e + b.e, e)
    return _Tracked(v, e, a.unit)


def _t_heaviside(x: _Tracked, h0: Any) -> _Tracked:
    d = x._compare(0.0, np.greater)
    s = _sign_of(x.v)
    value = np.where(s > 0, 1.0, np.where(s < 0, 0.0, float(h0)))
    v = _DD(value) if isinstance(x.v, _DD) else np.heaviside(x.v, h0)
    return _Tracked(v, np.where(d.unsure, 1.0, 0.0), x.unit)


def binary_powered(n: float) -> bool:
    """Whether ``x**n`` is evaluated by binary powering (and one square root): ``n`` a whole
    or half-integer number up to 64 in size, as :meth:`_Tracked.__pow__` and
    :mod:`symloss.rows_compiled` do; any other power is :meth:`_Tracked._any_power`'s."""
    return n == int(2 * n) / 2 and abs(n) <= 64


def _t_sign(x: _Tracked) -> _Tracked:
    """``sign(x)``: off by up to 2 where ``|x|`` is within its error of 0."""
    d = x._compare(0.0, np.greater)
    s = _sign_of(x.v)
    return _Tracked(_DD(s) if isinstance(x.v, _DD) else np.sign(x.v),
                    np.where(d.unsure, 2.0, 0.0), x.unit)


def _t_maximum(a: Any, b: Any) -> _Tracked:
    like = next(x for x in (a, b) if isinstance(x, _Tracked))
    a, b = like._lift(a), like._lift(b)
    if isinstance(a.v, _DD):
        v = a.v.where((a - b).v.hi >= 0, b.v)
    else:
        v = np.maximum(a.v, b.v)
    # 1-Lipschitz in each argument; the larger one's own error where the order is sure
    first = a._compare(b, np.greater_equal)
    e = np.where(first.unsure, np.maximum(a.e, b.e), np.where(first.value, a.e, b.e))
    return _Tracked(v, e, a.unit)


def _t_minimum(a: Any, b: Any) -> _Tracked:
    return -_t_maximum(-a, -b)


def _t_abs(x: _Tracked) -> _Tracked:
    if isinstance(x.v, _DD):
        return _Tracked(x.v.where(x.v.hi >= 0, -x.v), x.e, x.unit)
    return _Tracked(np.abs(x.v), x.e, x.unit)


def _t_sum(x: Any, axis: int) -> _Tracked:
    if not isinstance(x, _Tracked):
        raise _Untracked("an untracked sum")
    if isinstance(x.v, _DD):
        n = np.broadcast_shapes(np.shape(x.v.hi), np.shape(x.v.lo), np.shape(x.e))
        x = _Tracked(_DD(np.broadcast_to(x.v.hi, n), np.broadcast_to(x.v.lo, n)), x.e, x.unit)
    else:
        n = np.broadcast_shapes(np.shape(x.v), np.shape(x.e))
    if not n or n[axis] == 1:
        return x
    width = n[axis]
    whole = _integral(x)
    if whole is not None and whole * n[axis] < 2.0**53:  # whole numbers: every sum is exact
        if isinstance(x.v, _DD):
            return _Tracked(_DD(np.sum(x.v.hi, axis=axis, keepdims=True)), 0.0, x.unit)
        return _Tracked(np.sum(x.v, axis=axis, keepdims=True), 0.0, x.unit)
    total_mag = np.sum(np.broadcast_to(_mag(x.v), n), axis=axis, keepdims=True)
    e = np.sum(np.broadcast_to(x.e, n), axis=axis, keepdims=True)
    if isinstance(x.v, _DD):
        hi, lo = np.moveaxis(x.v.hi, axis, 0), np.moveaxis(x.v.lo, axis, 0)
        acc = _DD(hi[0], lo[0])
        for j in range(1, width):
            acc = acc + _DD(hi[j], lo[j])
        total = _DD(np.expand_dims(acc.hi, axis), np.expand_dims(acc.lo, axis))
        return _Tracked(total, e + width * x.unit * total_mag, x.unit)
    s = axis_sum(np.broadcast_to(x.v, n), axis)  # compensated: one rounding, O(n²u²) of the terms
    return _Tracked(s, e + x.unit * _mag(s) + (2 * width) ** 2 * x.unit**2 * total_mag, x.unit)


def _t_dot(x: Any, y: Any, axis: int) -> _Tracked:
    like = next(t for t in (x, y) if isinstance(t, _Tracked))
    x, y = like._lift(x), like._lift(y)
    if isinstance(x.v, _DD):
        return _t_sum(x * y, axis)
    # the products exact (Dekker), their sum compensated: the rounding of a 2n-term sum
    prod_mag = _mag(x.v) * _mag(y.v)
    e = _mag(x.v) * y.e + _mag(y.v) * x.e + x.e * y.e
    shape = np.broadcast_shapes(np.shape(prod_mag), np.shape(e))
    width = shape[axis]
    v = axis_dot(x.v, y.v, axis)
    e = np.sum(np.broadcast_to(e, shape), axis=axis, keepdims=True)
    total = np.sum(np.broadcast_to(prod_mag, shape), axis=axis, keepdims=True)
    return _Tracked(v, e + x.unit * _mag(v) + (4 * width) ** 2 * x.unit**2 * total, x.unit)


class _TrackedNumpy:
    """What a row kernel's ``numpy.`` names mean on tracked values."""

    nan = np.nan
    sqrt = staticmethod(lambda x: x.sqrt())
    maximum = staticmethod(_t_maximum)
    minimum = staticmethod(_t_minimum)
    heaviside = staticmethod(_t_heaviside)
    sign = staticmethod(_t_sign)
    where = staticmethod(_t_where)
    abs = staticmethod(_t_abs)
    greater = staticmethod(lambda a, b: a._compare(b, np.greater)
                           if isinstance(a, _Tracked) else b._compare(a, np.less))
    greater_equal = staticmethod(lambda a, b: a._compare(b, np.greater_equal)
                                 if isinstance(a, _Tracked) else b._compare(a, np.less_equal))
    less = staticmethod(lambda a, b: a._compare(b, np.less)
                        if isinstance(a, _Tracked) else b._compare(a, np.greater))
    less_equal = staticmethod(lambda a, b: a._compare(b, np.less_equal)
                              if isinstance(a, _Tracked) else b._compare(a, np.greater_equal))
    # SciPy's printer writes Heaviside(x, 1/2) as where(x > 0, …, where(x == 0, 1/2, …))
    equal = staticmethod(lambda a, b: a._compare(b, np.equal)
                         if isinstance(a, _Tracked) else b._compare(a, np.equal))

    @staticmethod
    def logical_and(a: _Decision, b: _Decision) -> _Decision:
        return _Decision(np.logical_and(a.value, b.value), np.logical_or(a.unsure, b.unsure),
                         a.like if a.like is not None else b.like)

    @staticmethod
    def logical_or(a: _Decision, b: _Decision) -> _Decision:
        return _Decision(np.logical_or(a.value, b.value), np.logical_or(a.unsure, b.unsure),
                         a.like if a.like is not None else b.like)

    def __getattr__(self, name: str) -> Any:
        raise _Untracked(f"numpy.{name}")


_TRACKED_NAMESPACE = {"numpy": _TrackedNumpy(), "axis_sum": _t_sum, "axis_dot": _t_dot,
                      "_q": lambda p, q: _Rational(p, q)}


_NAMESPACE = {"numpy": np, "kernels": kernels, "axis_sum": axis_sum, "axis_dot": axis_dot,
              "_q": _q}


@dataclass(frozen=True)
class RowKernel:
    """A compiled per-row expression: call it with the arrays by name.

    ``views`` lists the placeholders in argument order: ``(array name, slot)`` for an array
    element laid along a slot's axis, ``(name, None)`` for a per-row number or a scalar option.
    ``free`` is the slot of the result's free index (``i``), if it has one.
    """

    fn: Callable[..., Any]
    views: tuple[tuple[str, int | None], ...]
    slots: int
    free: int | None
    #: the expression ``fn`` evaluates (placeholders ``_r0 …`` for ``views``) and its arguments,
    #: for :mod:`symloss.rows_compiled`
    expr: sp.Expr | None = None
    args: tuple[sp.Symbol, ...] = ()

    def __call__(self, values: Mapping[str, np.ndarray], rows: tuple[int, ...], width: int) -> np.ndarray:
        """The result, shape ``(*rows, width)`` with a free index, ``rows`` without."""
        args = []
        for name, slot in self.views:
            value = np.asarray(values[name])
            if value.ndim == 0:  # a scalar option
                args.append(value)
                continue
            lead = value.shape[: len(rows)]
            if slot is None:  # one number per row
                args.append(value.reshape((*lead, *([1] * self.slots))))
            else:
                shape = [1] * self.slots
                shape[slot] = value.shape[-1]
                args.append(value.reshape((*lead, *shape)))
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            out = np.asarray(self.fn(*args))
        return self._laid_out(out, rows, width)

    def _laid_out(self, out: Any, rows: tuple[int, ...], width: int) -> np.ndarray:
        full = [1] * self.slots
        if self.free is not None:
            full[self.free] = width
        tail = (width,) if self.free is not None else ()
        return np.broadcast_to(out, (*rows, *full)).reshape((*rows, *tail))

    def tracked(self, values: Mapping[str, np.ndarray], rows: tuple[int, ...], width: int,
                double_double: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The result and a bound on its distance to the exact value at these floats, both
        laid out as :meth:`__call__`'s: evaluated in the arrays' own precision (the same
        operations as :meth:`__call__`, the same values) or, with ``double_double``, in
        double-double (the arrays must hold float64 values). Raises :class:`_Untracked` for an
        operation without an error bound (one :class:`_TrackedNumpy` does not name)."""
        first = next(np.asarray(v) for v in values.values() if np.ndim(v))
        unit = _Unit(2.0**-100 if double_double else float(np.finfo(first.dtype).eps),
                     max(int(np.prod(rows)), 1))

        def track(value: np.ndarray) -> _Tracked:
            if double_double:
                return _Tracked(_DD(value.astype(np.float64)), 0.0, unit)
            return _Tracked(value, 0.0, unit)

        args = []
        for name, slot in self.views:
            value = np.asarray(values[name])
            if value.ndim == 0:
                args.append(track(value))
                continue
            lead = value.shape[: len(rows)]
            shape = [1] * self.slots
            if slot is not None:
                shape[slot] = value.shape[-1]
            args.append(track(value.reshape((*lead, *shape))))
        fn = self.__dict__.get("_tracked_fn")
        if fn is None:
            fn = types.FunctionType(self.fn.__code__, {**self.fn.__globals__, **_TRACKED_NAMESPACE})
            object.__setattr__(self, "_tracked_fn", fn)
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            out = fn(*args)
            if not isinstance(out, _Tracked):
                raise _Untracked("a result that depends on no array")
            v, e = out.v, out.e
            if isinstance(v, _DD):
                work = np.asarray(values[self.views[0][0]]).dtype
                v = v.hi.astype(work) + v.lo.astype(work)  # rounded once to the working dtype
                e = e + float(np.finfo(work).eps) * _mag(v)
            e = np.broadcast_to(e, np.shape(v))
        return self._laid_out(v, rows, width), self._laid_out(e, rows, width)


def compile_rows(
    expr: sp.Expr, symbols: Mapping[str, sp.Basic], free: sp.Symbol | None = None
) -> RowKernel:
    """Compile a per-row expression of the arrays ``symbols`` (name -> symbol) for NumPy.

    Args:
        expr: the expression; Indexed elements of the IndexedBase symbols and Sums over their
            feature index (nested sums too).
        symbols: every free symbol of ``expr`` by the name its value is given under.
        free: the free index of the result (``i`` of a gradient), if any.

    Returns:
        A :class:`RowKernel`.
    """
    expr = reduce_sums(expr, expand=False)  # Σ_k δ_ik f(k) = f(i): no δ is evaluated
    index_symbols: set[sp.Basic] = set()
    for element in expr.atoms(sp.Indexed):
        index_symbols |= set(element.indices)
    for total in expr.atoms(sp.Sum):
        index_symbols |= {limit[0] for limit in total.limits}
    if free is not None:
        index_symbols.add(free)
    order = sorted(index_symbols, key=sp.default_sort_key)
    slot = {s: n for n, s in enumerate(order)}
    nslots = len(order)

    def rebuild(e: sp.Basic) -> sp.Basic:
        if not e.args:
            return e
        args = [rebuild(a) for a in e.args]
        if isinstance(e, sp.Sum):  # Σ_{k,l}: the first limit is the innermost sum
            body = args[0]
            dot = _dot_factors(body) if len(e.limits) == 1 else None
            if dot is not None:  # Σ c·x·y: exact products (a dot product may cancel)
                coeff, x, y = dot
                return coeff * _AxisDot(x, y, sp.Integer(slot[e.limits[0][0]] - nslots))
            for index, _, _ in e.limits:
                body = _AxisSum(body, sp.Integer(slot[index] - nslots))
            return body
        if isinstance(e, sp.Add):
            return _grouped_add(tuple(args))
        return e.func(*args)

    expr = rebuild(expr)
    label = {str(s.label): name for name, s in symbols.items() if isinstance(s, sp.IndexedBase)}
    placeholders: dict[sp.Basic, sp.Symbol] = {}
    views: list[tuple[str, int | None]] = []
    for element in sorted(expr.atoms(sp.Indexed), key=sp.default_sort_key):
        (index,) = element.indices
        placeholders[element] = sp.Symbol(f"_r{len(views)}", real=True)
        views.append((label[str(element.base.label)], slot[index]))
    expr = expr.xreplace(placeholders)
    args: list[sp.Basic] = list(placeholders.values())
    for name, symbol in symbols.items():
        if isinstance(symbol, sp.Symbol) and symbol in expr.free_symbols:
            placeholder = sp.Symbol(f"_r{len(views)}", real=True)
            expr = expr.xreplace({symbol: placeholder})
            args.append(placeholder)
            views.append((name, None))
    left = expr.free_symbols - set(args)
    if left:
        raise ValueError(f"no value for {sorted(map(str, left))} in a row kernel")
    # not modules=[..., "numpy"]: ``from numpy import *`` (0.1-0.3 s on the first call); the
    # printer qualifies every NumPy name
    fn = sp.lambdify(args, expr, modules=[_NAMESPACE], printer=_Printer(), cse=True)
    return RowKernel(fn, tuple(views), nslots, None if free is None else slot[free], expr,
                     tuple(args))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bookkeeping
def _as_array(value: Any, what: str) -> np.ndarray:
    if type(value) is np.ndarray:  # the usual case, without hasattr's failed lookup
        arr = value
    elif hasattr(value, "detach"):  # a torch tensor, on any device; torch is not imported here
        arr = np.asarray(value.detach().cpu().numpy())
    else:
        arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise SymlossTypeError(f"{what} must be a real array, got dtype {arr.dtype}")
    return arr


_MANTISSAS: dict[Any, int] = {}


def _mantissa(dtype: Any) -> int:
    """``np.finfo(dtype).nmant``, looked up once per dtype (finfo costs microseconds a call)."""
    bits = _MANTISSAS.get(dtype)
    if bits is None:
        bits = _MANTISSAS[dtype] = int(np.finfo(dtype).nmant)
    return bits


def _out_dtype(arr: np.ndarray) -> np.dtype:
    return arr.dtype if arr.dtype in (np.float32, np.float64, np.float16) else np.dtype(np.float64)


def _read_only(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``np.broadcast_to(a, shape)``: a read-only view (the kernels' one signature); a plain
    read-only view where ``a`` has the shape already (a tenth of broadcast_to's time)."""
    if a.shape != shape:
        return np.broadcast_to(a, shape)
    view = a.view()
    view.flags.writeable = False
    return view


def _repeated(value: Any, n: int) -> np.ndarray:
    """``np.broadcast_to(np.float64(value), (n,))`` (a read-only view with stride 0), made
    directly: broadcast_to's checks cost ten times as much, at every call of a kernel."""
    view = np.ndarray((n,), np.float64, np.array([value], dtype=np.float64), 0, (0,))
    view.flags.writeable = False
    return view


def _cast(arr: Any, dtype: np.dtype) -> Any:
    if isinstance(arr, np.ndarray) and arr.dtype == dtype:  # nothing to round
        return arr
    with np.errstate(under="ignore", over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(arr).astype(dtype, copy=False)


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes an array of ``shape`` was broadcast along."""
    if grad.shape == shape:  # not broadcast (the usual call): nothing to sum
        return grad
    lead = grad.ndim - len(shape)
    out = grad.sum(axis=tuple(range(lead))) if lead else grad
    axes = tuple(n for n, size in enumerate(shape) if size == 1 and out.shape[n] != 1)
    return out.sum(axis=axes, keepdims=True).reshape(shape) if axes else out.reshape(shape)


#: Below this many elements per array a row loss is evaluated by the NumPy kernels, at and
#: above by the compiled ones (:mod:`symloss.rows_compiled`; both certify every result within
#: 1 ulp before its rounding, so they agree within 1 ulp). 0: the compiled kernels at every
#: size wherever numba is installed -- one evaluator, no size cliff (at 100 elements 70–140 µs
#: per call instead of 0.9–13 ms); a row kernel's first call compiles it (seconds, once: then
#: numba's cache on disk holds it), at any size. The NumPy kernels answer where numba is
#: missing or turned off (:func:`symloss.fast.disabled`) and for the rows a compiled kernel
#: cannot certify.
COMPILED_MIN_SIZE = 0


@dataclass
class _Prepared:
    """The checked arrays: ``raw`` in their own dtypes (broadcast views; the target decoded),
    ``values`` the same in the working precision (made when first asked for)."""

    raw: dict[str, Any]
    rows: tuple[int, ...]
    width: int
    dtype: np.dtype
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, np.dtype]
    work: Any = np.float64
    _values: dict[str, Any] | None = None

    @property
    def values(self) -> dict[str, Any]:
        if self._values is None:
            self._values = {n: _working(a, self.work) for n, a in self.raw.items()}
        return self._values


def _working(value: Any, work: Any) -> Any:
    """``value`` in the working precision (an option stays a float64 scalar)."""
    if np.ndim(value) == 0:
        return value
    return np.asarray(value).astype(work)


class RowAdapter:
    """The row family's functions for one derivation: loss, gradient (any array), HVP."""

    def __init__(self, derivation: Derivation) -> None:
        d = derivation.declaration
        self.derivation = derivation
        self.spec: LossSpec = derivation.spec
        self.name = derivation.name
        self.reduction: str = derivation.options.get("reduction", "mean")
        self.symbols = dict(d.symbols)
        self.index = d.input.indices[0]  # type: ignore[attr-defined]
        args = self.spec.arguments_for(derivation.options)
        #: kernel keys of the differentiable arrays (grad_fn maps torch's names to them)
        self.differentiable = [a.symbol_key for a in args if a.differentiable]
        self.torch_names = {a.symbol_key: a.name for a in args}
        self._kernels: dict[str, RowKernel] = {}
        self._compiled_kernels: dict[str, Any] = {}
        # the spec's positional arrays, read once (each call of prepare needs them)
        self._keys: tuple[str, ...] = self.spec.arguments
        self._names: tuple[str, ...] = self.spec.torch_arguments
        self._target_domain = self.spec.target_domains()[0].name if "target" in self._keys else None
        self._expressions: dict[str, sp.Expr] = {}
        self._options: list[tuple[str, np.float64 | None]] | None = None
        self._row_dims: tuple[int, ...] | None = getattr(self.spec, "row_dims", None)
        # scalar options repeated along the rows (read-only views), by (name, rows, value)
        self._repeats: dict[tuple[str, int, float], np.ndarray] = {}

    # ------------------------------------------------------------------ kernels
    def _kernel(self, key: str) -> RowKernel:
        if key not in self._kernels:
            d = self.derivation
            subst = d.declaration.substitute_definitions
            free: sp.Symbol | None = self.index
            symbols = dict(self.symbols)
            if key == "loss":
                expr, free = d.kernel_loss, None
            elif key == "hvp":
                expr = d.hvp_expr
                symbols["v"] = sp.IndexedBase("v")
            elif key == "hess_diag":
                expr = d.hessian_diagonal
            else:  # "grad:<name>": the raw sympy.diff, like numeric's (tidy drops guards)
                wrt = key.split(":", 1)[1]
                expr = d.kernel_gradient if wrt == self.spec.arguments[0] else sp.diff(
                    d.declaration.loss, d.wrt_variable(wrt)
                )
            self._expressions[key] = subst(expr)
            self._kernels[key] = compile_rows(self._expressions[key], symbols, free)
        return self._kernels[key]

    # ------------------------------------------------------------------ inputs
    def _arity(self, arrays: tuple[Any, ...], extra: str = "") -> None:
        names = self._names
        if len(arrays) != len(names):
            shown = ", ".join([*names, *([extra] if extra else [])])
            raise SymlossTypeError(
                f"{self.name} takes ({shown}); got {len(arrays) + bool(extra)} arrays"
            )

    def prepare(self, *arrays: Any) -> _Prepared:
        """Check and lay out torch's positional arrays; the kernels' values by name."""
        quick = self._prepare_same_shape(arrays)
        if quick is not None:
            return quick
        self._arity(arrays)
        spec = self.spec
        given = dict(zip(self._keys, arrays, strict=True))
        vectors = [n for n in self._keys if n != "target"]
        shown = self.torch_names
        raw = {n: _as_array(given[n], f"{self.name}: {shown[n]}") for n in vectors}
        allowed = getattr(spec, "row_dims", None)
        scalar_row = allowed is not None and -1 in allowed and all(a.ndim == 0 for a in raw.values())
        if scalar_row:  # a 0-d input: one row of one class
            raw = {n: a.reshape(1) for n, a in raw.items()}
        for n, arr in raw.items():
            if arr.dtype.kind not in "f":
                raise SymlossTypeError(
                    f"{self.name}: {shown[n]} must be a floating-point array, got dtype {arr.dtype}"
                )
        first = raw[vectors[0]]
        given_shapes = {a.shape for a in raw.values()}
        try:  # one shape (the usual case): nothing to broadcast, and no call to find so
            shape = (next(iter(given_shapes)) if len(given_shapes) == 1
                     else np.broadcast_shapes(*given_shapes))
        except ValueError:
            sizes = ", ".join(f"{shown[n]} {a.shape}" for n, a in raw.items())
            raise SymlossValueError(f"{self.name}: the arrays do not broadcast: {sizes}") from None
        if len({a.ndim for a in raw.values()}) > 1:
            dims = ", ".join(f"{shown[n]} {a.ndim}-D" for n, a in raw.items())
            raise SymlossValueError(
                f"{self.name}: the arrays must have the same number of dimensions, got {dims}"
            )
        if len(shape) == 0 or (allowed is not None and len(shape) - 1 not in allowed):
            dims = "1 or more" if allowed is None else " or ".join(
                str(n + 1) for n in allowed
            )
            raise SymlossValueError(
                f"{self.name}: the inputs must have {dims} dimensions (rows, then the "
                f"{'feature' if 'num_features' in self.symbols else 'class'} axis), got shape "
                f"{shape}"
            )
        rows, width = tuple(shape[:-1]), int(shape[-1])
        dtype = _out_dtype(first)
        # float32 is evaluated in float64, float64 in the platform's extended precision:
        # one final rounding to the input's dtype, as in symloss.numeric.
        work = np.longdouble if dtype == np.float64 else np.float64
        values: dict[str, Any] = {n: _read_only(a, shape) for n, a in raw.items()}
        if self._target_domain is not None:
            domain = self._target_domain
            if domain not in TARGET_DOMAINS:  # pragma: no cover - a declaration bug
                raise AssertionError(f"{self.name}: no row layout for target domain {domain!r}")
            t = _as_array(given["target"], f"{self.name}: target")
            if scalar_row and t.ndim == 0:
                t = t.reshape(1)
            values["target"] = TARGET_DOMAINS[domain](self.name, t, rows, width)
        for option, number in self._option_numbers():
            values[option] = np.float64(width) if number is None else number
        shapes = {n: () if scalar_row else a.shape for n, a in raw.items()}
        return _Prepared(values, rows, width, dtype, shapes, {n: _out_dtype(a) for n, a in raw.items()},
                         work)

    def _prepare_same_shape(self, arrays: tuple[Any, ...]) -> _Prepared | None:
        """:meth:`prepare` of the usual call, or ``None`` for any other (which :meth:`prepare`
        then checks and lays out, raising its errors): NumPy floating-point arrays of one shape
        with an allowed number of row axes, and a target that is a NumPy array of numbers.
        The same checks and the same layout, without the general path's broadcasting and
        per-array bookkeeping (half of its 10-15 µs at 10 rows)."""
        keys = self._keys
        if len(arrays) != len(keys):
            return None
        shape: tuple[int, ...] | None = None
        raw: dict[str, np.ndarray] = {}
        target = None
        for name, a in zip(keys, arrays, strict=True):
            if type(a) is not np.ndarray:
                return None
            if name == "target":
                if a.dtype.kind not in "fiub":
                    return None
                target = a
                continue
            if a.dtype.kind != "f" or (shape is not None and a.shape != shape):
                return None
            shape = a.shape
            raw[name] = a
        if not shape:  # no array (a declaration bug) or a 0-d one: the general path
            return None
        allowed = self._row_dims
        if allowed is not None and len(shape) - 1 not in allowed:
            return None
        rows, width = shape[:-1], shape[-1]
        dtype = _out_dtype(raw[next(iter(raw))])
        work = np.longdouble if dtype == np.float64 else np.float64
        values: dict[str, Any] = {n: _read_only(a, shape) for n, a in raw.items()}
        if self._target_domain is not None:
            if target is None:  # pragma: no cover - a declaration bug
                return None
            domain = self._target_domain
            if domain not in TARGET_DOMAINS:  # pragma: no cover - a declaration bug
                raise AssertionError(f"{self.name}: no row layout for target domain {domain!r}")
            values["target"] = TARGET_DOMAINS[domain](self.name, target, rows, width)
        for option, number in self._option_numbers():
            values[option] = np.float64(width) if number is None else number
        return _Prepared(values, rows, width, dtype, {n: shape for n in raw},
                         {n: _out_dtype(a) for n, a in raw.items()}, work)

    def _option_numbers(self) -> list[tuple[str, np.float64 | None]]:
        """The scalar options' numbers (``None``: the width), read once."""
        if self._options is None:
            self._options = [
                (option, None if option in ("num_features", "num_classes")
                 else np.float64(self.derivation.options[option]))
                for option, symbol in self.symbols.items()
                if option not in self._keys and isinstance(symbol, sp.Symbol)]
        return self._options

    def _certified(self, key: str, p: _Prepared, dtype: np.dtype,
                   values: Mapping[str, Any] | None = None) -> np.ndarray:
        """Kernel ``key`` at the prepared arrays, each result certified within 1 ulp of
        ``dtype`` before its rounding (see :meth:`RowKernel.tracked`): the rows it cannot certify evaluated again
        in double-double, and the elements even that cannot certify computed exactly
        (:func:`symloss.exact.row_value`). The same values as the plain kernel elsewhere."""
        kernel = self._kernel(key)
        values = p.values if values is None else values
        n = int(np.prod(p.rows))
        try:
            out, err = kernel.tracked(values, p.rows, p.width)
        except _Untracked:
            # no error bound for an operation (one _TrackedNumpy does not name): the plain
            # values, but a NaN or
            # an infinity (an intermediate past the float range, e.g. inf − inf of
            # triplet_margin_loss's norms at p = 10⁻⁶) computed exactly
            plain = np.asarray(kernel(values, p.rows, p.width), dtype=np.float64)
            flat = plain.reshape(n, -1).copy()
            self._exactly(key, values, p, kernel, flat, np.argwhere(~np.isfinite(flat)))
            return flat.reshape(plain.shape)
        tolerance = 2.0 ** -(np.finfo(dtype).nmant + 1)  # an error ≤ 1 ulp before rounding

        def unsure(v: np.ndarray, e: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore"):
                return np.isfinite(v) & ~(e <= tolerance * np.abs(v))

        flat_out = out.reshape(n, -1).copy()
        # and a NaN or an infinity: an intermediate past the float range (inf − inf of
        # triplet_margin_loss's norms ~10^698968 at p = 10⁻⁶), computed again or exactly
        bad = unsure(flat_out, err.reshape(n, -1)) | ~np.isfinite(flat_out)
        rows = np.flatnonzero(bad.any(axis=1))
        if rows.size:
            sub = {name: self._rows_of(value, p.rows, rows) for name, value in values.items()}
            try:
                v2, e2 = kernel.tracked(sub, (rows.size,), p.width, double_double=True)
            except _Untracked:  # pragma: no cover - the working-precision pass would have raised
                v2, e2 = flat_out[rows], np.full(flat_out[rows].shape, np.inf)
            v2, e2 = v2.reshape(rows.size, -1), e2.reshape(rows.size, -1)
            # past float64's range (triplet_margin_loss's |u|^1000 ~ 1e477 at p = 10³, finite
            # in long double): exactly, mpmath's exponent range being unbounded (its form's
            # sums written out term by term: algebra.written_out)
            still = unsure(v2, e2) | ~np.isfinite(v2)
            flat_out[rows] = np.where(still, flat_out[rows], v2)
            cells = np.argwhere(still)
            cells[:, 0] = rows[cells[:, 0]]
            self._exactly(key, values, p, kernel, flat_out, cells)
        return flat_out.reshape(out.shape)

    def _exactly(self, key: str, values: Mapping[str, Any], p: _Prepared, kernel: RowKernel,
                 flat: np.ndarray, cells: np.ndarray) -> None:
        """``flat[r, c]`` set to its exact value (:meth:`_exact`) for each ``(r, c)`` of
        ``cells``; kept where there is none (a non-finite input)."""
        for (r, c) in cells:
            exact = self._exact(key, values, p, int(r), int(c) if kernel.free is not None
                                else None)
            if exact is not None:
                flat[r, c] = exact

    def _compiled(self, key: str, size: int | None = None) -> Any:
        """Kernel ``key`` compiled by :mod:`symloss.rows_compiled`, or ``None`` (numba missing
        or turned off, an operation without a compiled tracked form, or ``size`` input
        elements below :data:`COMPILED_MIN_SIZE`)."""
        from . import fast

        if not fast.enabled() or (size is not None and size < COMPILED_MIN_SIZE):
            return None
        if key in self._compiled_kernels:  # built while numba was there (the usual call)
            return self._compiled_kernels[key]
        if not fast.available():  # an import lookup: once per kernel, not once per call
            return None
        from .rows_compiled import build_planned

        self._compiled_kernels[key] = built = build_planned(self.derivation, key,
                                                            lambda: self._kernel(key))
        return built

    def _run(self, key: str, p: _Prepared, dtype: np.dtype, divisor: float,
             extra: Mapping[str, np.ndarray] | None = None, out_dtype: Any = np.float64,
             ) -> np.ndarray:
        """Kernel ``key`` at the prepared arrays (and ``extra`` ones, ``(*rows, width)``),
        divided by ``divisor``, each result certified within 1 ulp of ``dtype`` before its
        rounding; in ``out_dtype`` (the compiled kernel's results rounded once to it), laid out
        as :meth:`RowKernel.__call__`'s. The compiled kernel
        where there is one (the rows it cannot certify evaluated again by
        :meth:`_certified`), else :meth:`_certified`."""
        n = math.prod(p.rows)
        compiled = self._compiled(key, n * p.width)
        if compiled is None:
            values = {**p.values, **{n: _working(a, p.work) for n, a in (extra or {}).items()}}
            return self._certified(key, p, dtype, values) / np.float64(divisor)  # type: ignore[no-any-return]
        # float32 (and float16) results: float64 with a running error bound suffices, as on
        # the NumPy path (a cheaper first tier, then the tracked kernel at the rows it
        # leaves: rows_compiled's "first tier"); float64 results: unrenormalised float64
        # pairs, then double-double at the rows they leave ("the float64 first tier")
        nmant = _mantissa(dtype)
        free = compiled.free
        raw = {**p.raw, **extra} if extra else p.raw
        per_row = len(p.rows)
        args = []
        for name in compiled.params:
            value = raw[name]
            ndim = value.ndim if isinstance(value, np.ndarray) else 0
            if ndim == 0:  # a scalar option: the same number on every row (a view, kept)
                known = (name, n, float(value))
                repeated = self._repeats.get(known)
                if repeated is None:
                    if len(self._repeats) > 64:
                        self._repeats.clear()
                    repeated = self._repeats[known] = _repeated(value, n)
                args.append(repeated)
            else:  # one number per row, or one per element
                args.append(value.reshape(n) if ndim == per_row else value.reshape(n, p.width))
        out = np.empty((n, p.width) if free else (n,), dtype=out_dtype)
        bad = np.zeros(n, dtype=np.bool_)
        left = compiled.run("f64" if nmant <= 23 else "dd", out, bad, 2.0 ** -(nmant + 1),
                            p.width, float(divisor), *args)
        if left:  # a cancellation beyond double-double's certainty: the NumPy path
            picked = np.flatnonzero(bad)
            sub = _Prepared({name: self._rows_of(value, p.rows, picked)
                             for name, value in raw.items()}, (picked.size,), p.width, p.dtype,
                            p.shapes, p.dtypes, p.work)
            again = self._certified(key, sub, dtype) / np.float64(divisor)
            out[picked] = _cast(again.reshape(out[picked].shape), np.dtype(out_dtype))
        return out.reshape((*p.rows, p.width) if free else p.rows)

    @staticmethod
    def _rows_of(value: Any, rows: tuple[int, ...], picked: np.ndarray) -> Any:
        value = np.asarray(value)
        if value.ndim == 0:
            return value
        lead = value.shape[: len(rows)]
        flat = np.broadcast_to(value, (*rows, *value.shape[len(rows):]))
        return flat.reshape((int(np.prod(rows)) if rows else 1, *value.shape[len(lead):]))[picked]

    def _exact(self, key: str, values: Mapping[str, Any], p: _Prepared, row: int,
               column: int | None) -> float | None:
        """The exact value of kernel ``key``'s expression at one row (and column), rounded
        once; ``None`` where it is not a finite real number or an input is not finite."""
        from .exact import row_value

        expr = self._expressions[key]
        point: dict[str, Any] = {}
        for name, value in values.items():
            value = np.asarray(value)
            if value.ndim == 0:
                point[name] = float(value)
            else:
                taken = self._rows_of(value, p.rows, np.array([row]))[0]
                point[name] = [float(t) for t in np.atleast_1d(taken)] if np.ndim(taken) else \
                    float(taken)
        if not all(np.all(np.isfinite(t)) for t in point.values()):
            return None
        size = self.symbols.get("num_features", self.symbols.get("num_classes"))
        symbols = {**self.symbols, **({"v": sp.IndexedBase("v")} if "v" in values else {})}
        return row_value(expr, symbols, point, size, p.width, self.index, column)

    def _denominator(self, rows: tuple[int, ...]) -> float:
        return float(math.prod(rows)) if self.reduction == "mean" else 1.0  # (np.prod: 2 µs)

    # ------------------------------------------------------------------ functions
    def loss(self, *arrays: Any) -> Any:
        """The reduced loss (per row for ``reduction='none'``), in the first array's dtype."""
        p = self.prepare(*arrays)
        per_row = self._run("loss", p, p.dtype, 1.0)
        if self.reduction == "none":
            return _cast(per_row, p.dtype)
        total = float(kernels.class_sum(per_row.reshape(1, -1))[0, 0]) if per_row.size else 0.0
        return p.dtype.type(_cast(np.float64(total) / np.float64(self._denominator(p.rows)), p.dtype))

    def grad(self, *arrays: Any, wrt: str | None = None) -> np.ndarray:
        """∂(reduced loss)/∂(array ``wrt``, torch's name; the first array by default)."""
        if wrt is None:  # the first array (differentiable in every row loss)
            wrt = self._keys[0]
        else:
            wrt = next((k for k, n in self.torch_names.items() if wrt == n), wrt)  # torch's name
        if wrt not in self.differentiable:
            raise choice_error(f"wrt for {self.name}", wrt, self.spec.differentiable())
        p = self.prepare(*arrays)
        whole = p.shapes[wrt] == (*p.rows, p.width)  # not broadcast: rounded once, in place
        per_element = self._run(f"grad:{wrt}", p, p.dtypes[wrt], self._denominator(p.rows),
                                out_dtype=p.dtypes[wrt] if whole else np.float64)
        return _cast(_unbroadcast(np.asarray(per_element), p.shapes[wrt]), p.dtypes[wrt])

    def hvp(self, *arrays: Any) -> np.ndarray:
        """The Hessian of the reduced loss with respect to the first array, times ``v``."""
        *given, v = arrays
        self._arity(tuple(given), "v")
        p = self.prepare(*given)
        first = self._keys[0]
        direction = _as_array(v, f"{self.name}: v")
        full = (*p.rows, p.width)
        if direction.shape != p.shapes[first] or direction.size != int(np.prod(full)):
            raise SymlossValueError(
                f"{self.name}: v must have the shape {p.shapes[first]} of "
                f"{self.torch_names[first]} (not broadcast), got {direction.shape}"
            )
        if direction.dtype.kind != "f":
            direction = direction.astype(np.float64)
        out = self._run("hvp", p, p.dtype, self._denominator(p.rows), {"v": direction.reshape(full)},
                        out_dtype=p.dtype)
        return _cast(out.reshape(p.shapes[first]), p.dtype)  # type: ignore[no-any-return]

    def hess_diag(self, *arrays: Any) -> np.ndarray:
        """∂²ℓ/∂xᵢ² per element of the first array (reduction ignored), certified as the other
        results are (:meth:`_run`): the plain kernel's sum of each distance's terms left
        triplet_margin_loss's −8.9e-16 where p = n makes the exact value 0."""
        p = self.prepare(*arrays)
        out = self._run("hess_diag", p, p.dtype, 1.0, out_dtype=p.dtype)
        return _cast(out.reshape(p.shapes[self._keys[0]]), p.dtype)  # type: ignore[no-any-return]


def evaluate(derivation: Derivation, expr: sp.Expr, arrays: tuple[Any, ...]) -> np.ndarray:
    """The numbers of a per-row expression (a step of the derivation) at torch's arrays: one
    per row, or one per element where ``expr`` has the free index (a worked example's values).
    """
    adapter = RowAdapter(derivation)
    prep = adapter.prepare(*arrays)
    expr = derivation.declaration.substitute_definitions(expr)
    free = adapter.index if adapter.index in expr.free_symbols else None
    kernel = compile_rows(expr, adapter.symbols, free)
    return np.asarray(kernel(prep.values, prep.rows, prep.width), dtype=np.float64)


def build(derivation: Derivation) -> Numeric:
    """The row family's :class:`~symloss.numeric.Numeric` for ``derivation``."""
    from .numeric import Numeric

    adapter = RowAdapter(derivation)
    return Numeric(loss=adapter.loss, grad=adapter.grad, hvp=adapter.hvp, hess_diag=adapter.hess_diag)
