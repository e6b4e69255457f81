"""Double-double arithmetic: a float64 pair ``hi + lo`` with about 106 bits, for the differences
a loss cannot evaluate in float64 (``σ(z) − y`` and ``eᶻ − y`` next to their roots).

Every function here is written with arithmetic operators and ``numpy`` ufuncs only, so the same
code runs element-wise on NumPy arrays (the NumPy path) and, compiled by :func:`jitted`, on
scalars inside numba kernels (the fast path): one algorithm, both evaluators.

* error-free transforms: :func:`two_sum`, :func:`fast_two_sum`, :func:`two_prod` (Dekker's
  split, no FMA needed);
* double-double ``+``, ``×``, ``÷``: :func:`dd_add`, :func:`dd_mul`, :func:`dd_div`;
* :func:`dd_exp`: ``eˣ`` as a pair, relative error about 2⁻¹⁰⁰ (Cody–Waite reduction by a
  three-part ln 2, ``expm1`` of ``r/32`` by a degree-13 series, five squarings written as
  ``u ↦ u(2 + u)`` so that ``eʳ − 1`` keeps its relative accuracy);
* the primitives' kernels :func:`sigmoid_sub` (``σ(z) − y``) and :func:`exp_sub` (``eᶻ − y``):
  one rounding of a 106-bit value, so the result keeps its digits unless it cancels by more
  than about 50 bits beyond float64's.

>>> import numpy as np
>>> float(sigmoid_sub(np.float64(1e-9), np.float64(0.5)))  # exact: 2.5e-10 − 2.1e-28 …
2.5e-10
>>> float(exp_sub(np.float64(1e-9), np.float64(1.0)))  # exact: 1.0000000005000000000166…e-09
1.0000000005000001e-09
"""

from __future__ import annotations

import types
from typing import Any

import mpmath
import numpy as np

__all__ = ["dd_add", "dd_div", "dd_exp", "dd_mul", "exp_sub", "exp_sub_pair", "fast_two_sum",
           "jitted", "np_exp_sub", "np_sigmoid_sub", "sigmoid_sub", "sigmoid_sub_pair",
           "two_prod", "two_sum"]


def _parts(value: Any, bits: tuple[int, ...]) -> tuple[float, ...]:
    """``value`` (an mpmath number) as a sum of floats with the given significant bits."""
    out = []
    rest = mpmath.mpf(value)
    for b in bits:
        with mpmath.workprec(b):
            part = mpmath.mpf(rest)  # rounded to b bits
        out.append(float(part))
        rest -= mpmath.mpf(out[-1])
    return tuple(out)


with mpmath.workprec(300):
    #: ln 2 in three parts; the first has 32 bits so that k·LN2_A is exact for |k| < 2²¹.
    LN2_A, LN2_B, LN2_C = _parts(mpmath.log(2), (32, 53, 53))
    INV_LN2 = float(1 / mpmath.log(2))
    #: 1/n! for n = 1 … 13 as double-double pairs (hi, lo).
    _FACT = [_parts(1 / mpmath.factorial(n), (53, 53)) for n in range(1, 14)]
C1H, C1L = _FACT[0]
C2H, C2L = _FACT[1]
C3H, C3L = _FACT[2]
C4H, C4L = _FACT[3]
C5H, C5L = _FACT[4]
C6H, C6L = _FACT[5]
C7H, C7L = _FACT[6]
C8H, C8L = _FACT[7]
C9H, C9L = _FACT[8]
C10H, C10L = _FACT[9]
C11H, C11L = _FACT[10]
C12H, C12L = _FACT[11]
C13H, C13L = _FACT[12]
SPLIT = 134217729.0  # 2²⁷ + 1, Dekker's splitter


def two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def fast_two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """:func:`two_sum` for ``|a| ≥ |b|`` (Dekker), three operations."""
    s = a + b
    e = b - (s - a)
    return s, e


def two_prod(a: Any, b: Any) -> tuple[Any, Any]:
    """``(p, e)`` with ``p = fl(a·b)`` and ``a·b = p + e`` exactly (Dekker's split)."""
    p = a * b
    t = SPLIT * a
    ah = t - (t - a)
    al = a - ah
    t = SPLIT * b
    bh = t - (t - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def dd_add(ah: Any, al: Any, bh: Any, bl: Any) -> tuple[Any, Any]:
    """``(ah + al) + (bh + bl)`` as a pair (the accurate, IEEE-style double-double add)."""
    s, e = two_sum(ah, bh)
    t, f = two_sum(al, bl)
    e = e + t
    s, e = fast_two_sum(s, e)
    e = e + f
    return fast_two_sum(s, e)


def dd_mul(ah: Any, al: Any, bh: Any, bl: Any) -> tuple[Any, Any]:
    """``(ah + al)(bh + bl)`` as a pair."""
    p, e = two_prod(ah, bh)
    e = e + (ah * bl + al * bh)
    return fast_two_sum(p, e)


def dd_div(ah: Any, al: Any, bh: Any, bl: Any) -> tuple[Any, Any]:
    """``(ah + al)/(bh + bl)`` as a pair: three quotient digits, each from the exact remainder."""
    q1 = ah / bh
    ph, pl = dd_mul(q1, 0.0 * q1, bh, bl)
    rh, rl = dd_add(ah, al, -ph, -pl)
    q2 = rh / bh
    ph, pl = dd_mul(q2, 0.0 * q2, bh, bl)
    rh, rl = dd_add(rh, rl, -ph, -pl)
    q3 = rh / bh
    s, e = fast_two_sum(q1, q2)
    return dd_add(s, e, q3, 0.0 * q3)


def _horner_step(ph: Any, pl: Any, rh: Any, rl: Any, ch: float, cl: float) -> tuple[Any, Any]:
    ph, pl = dd_mul(ph, pl, rh, rl)
    return dd_add(ph, pl, ch, cl)


def dd_exp(x: Any) -> tuple[Any, Any]:
    """``eˣ`` as a pair ``(hi, lo)``; ``x`` is clamped to [−800, log(float64 max)] (0 and +inf beyond:
    the callers never need more)."""
    x = np.minimum(np.maximum(x, -800.0), 709.782712893384)
    k = np.floor(x * INV_LN2 + 0.5)
    r1 = x - k * LN2_A  # exact: k·LN2_A is exact and within a factor 2 of x (or k = 0)
    p, e = two_prod(k, LN2_B)
    rh, rl = dd_add(r1, 0.0 * r1, -p, -e)
    rh, rl = dd_add(rh, rl, -k * LN2_C, 0.0 * rh)
    rh = rh * 0.03125  # r/32, exact
    rl = rl * 0.03125
    # expm1(r/32) = r(1/1! + r(1/2! + … r/13!)): Horner in double-double
    ph, pl = _horner_step(C13H + 0.0 * rh, C13L + 0.0 * rh, rh, rl, C12H, C12L)
    ph, pl = _horner_step(ph, pl, rh, rl, C11H, C11L)
    ph, pl = _horner_step(ph, pl, rh, rl, C10H, C10L)
    ph, pl = _horner_step(ph, pl, rh, rl, C9H, C9L)
    ph, pl = _horner_step(ph, pl, rh, rl, C8H, C8L)
    ph, pl = _horner_step(ph, pl, rh, rl, C7H, C7L)
    ph, pl = _horner_step(ph, pl, rh, rl, C6H, C6L)
    ph, pl = _horner_step(ph, pl, rh, rl, C5H, C5L)
    ph, pl = _horner_step(ph, pl, rh, rl, C4H, C4L)
    ph, pl = _horner_step(ph, pl, rh, rl, C3H, C3L)
    ph, pl = _horner_step(ph, pl, rh, rl, C2H, C2L)
    ph, pl = _horner_step(ph, pl, rh, rl, C1H, C1L)
    uh, ul = dd_mul(ph, pl, rh, rl)
    # (1 + u)² − 1 = u(2 + u), five times: expm1(r)
    for _ in range(5):
        th, tl = dd_add(uh, ul, 2.0, 0.0)
        uh, ul = dd_mul(uh, ul, th, tl)
    hi, lo = fast_two_sum(1.0, uh)
    lo = lo + ul
    hi, lo = fast_two_sum(hi, lo)
    # × 2ᵏ in two exact steps (2ᵏ alone underflows for k < −1022)
    half = np.floor(k * 0.5)
    s1 = 2.0 ** half
    s2 = 2.0 ** (k - half)
    return hi * s1 * s2, lo * s1 * s2


def sigmoid_sub(z: Any, y: Any) -> Any:
    """``σ(z) − y`` rounded once from a double-double value (see :func:`sigmoid_sub_pair`)."""
    qh, ql = sigmoid_sub_pair(z, y)
    return qh + ql


def sigmoid_sub_pair(z: Any, y: Any) -> tuple[Any, Any]:
    """``σ(z) − y`` as a double-double pair.

    With ``E = e^{−|z|} ≤ 1``: ``σ(z) − y = ((1 − y) − yE)/(1 + E)`` for ``z ≥ 0`` and
    ``((1 − y)E − y)/(1 + E)`` for ``z < 0``; numerator and quotient in double-double.
    """
    eh, el = dd_exp(-np.abs(z))
    pos = 1.0 * (z >= 0)
    neg = 1.0 - pos
    # A = 1 or E, B = E or 1 (exact selections by the 0/1 weights)
    ah, al = pos + neg * eh, neg * el
    bh, bl = neg + pos * eh, pos * el
    oh, ol = two_sum(1.0, -y)
    nh, nl = dd_mul(oh, ol, ah, al)
    mh, ml = dd_mul(y, 0.0 * y, bh, bl)
    nh, nl = dd_add(nh, nl, -mh, -ml)
    dh, dl = dd_add(1.0, 0.0, eh, el)
    return dd_div(nh, nl, dh, dl)


def exp_sub(z: Any, y: Any) -> Any:
    """``eᶻ − y`` rounded once from a double-double value (inf where eᶻ overflows)."""
    sh, sl = exp_sub_pair(z, y)
    return sh + sl


def exp_sub_pair(z: Any, y: Any) -> tuple[Any, Any]:
    """``eᶻ − y`` as a double-double pair (``hi`` is +inf where eᶻ overflows)."""
    over = 1.0 * (z > 709.782712893384)  # past log(float64 max) the answer is +inf
    eh, el = dd_exp(np.minimum(z, 709.782712893384))
    sh, sl = dd_add(eh, el, -y, 0.0 * y)
    keep = 1.0 - over
    return sh * keep + (over * 1e308) * 10.0, sl * keep


def _on_arrays(pair: Any, z: Any, y: Any) -> Any:
    """Apply ``pair`` to float64 copies of NumPy arrays; the result in their working dtype
    (long double on the NumPy path's float64: ``hi + lo`` rounded once to its 64 bits)."""
    z, y = np.asarray(z), np.asarray(y)
    work = np.result_type(z, y, np.float64)
    with np.errstate(all="ignore"):
        hi, lo = pair(z.astype(np.float64), y.astype(np.float64))
        return np.asarray(hi, dtype=work) + np.asarray(lo, dtype=work)


def np_sigmoid_sub(z: Any, y: Any) -> Any:
    """:func:`sigmoid_sub` on NumPy arrays of any float dtype (the NumPy path's printing)."""
    return _on_arrays(sigmoid_sub_pair, z, y)


def np_exp_sub(z: Any, y: Any) -> Any:
    """:func:`exp_sub` on NumPy arrays of any float dtype (the NumPy path's printing)."""
    return _on_arrays(exp_sub_pair, z, y)


_ORDER = ("two_sum", "fast_two_sum", "two_prod", "dd_add", "dd_mul", "dd_div", "_horner_step",
          "dd_exp", "sigmoid_sub_pair", "sigmoid_sub", "exp_sub_pair", "exp_sub")
_JITTED: dict[str, Any] = {}


def jitted() -> dict[str, Any]:
    """The same functions compiled by numba for scalars (for the generated fast kernels).

    Each function's code is re-bound to a namespace in which the functions it calls are the
    compiled ones, so that numba sees one chain of ``@njit`` functions.
    """
    if not _JITTED:
        import numba

        namespace: dict[str, Any] = {k: v for k, v in globals().items() if k.isupper()}
        namespace["np"] = np
        for name in _ORDER:
            source = globals()[name]
            fn = types.FunctionType(source.__code__, namespace, name, source.__defaults__)
            namespace[name] = numba.njit(fastmath=False, error_model="numpy")(fn)
        _JITTED.update({name: namespace[name] for name in _ORDER})
    return _JITTED
