"""Double-double arithmetic: a float64 pair ``hi + lo`` with about 106 bits, for the differences
a loss cannot evaluate in float64 (``σ(z) − y`` and ``eᶻ − y`` next to their roots).

Every function here is written with arithmetic operators and ``numpy`` ufuncs only, so the same
code runs element-wise on NumPy arrays (the NumPy path) and, compiled by :func:`jitted`, on
scalars inside numba kernels (the fast path): one algorithm, both evaluators.

* error-free transforms: :func:`two_sum`, :func:`fast_two_sum`, :func:`two_prod` (Dekker's
  split, no FMA needed);
* double-double ``+``, ``×``, ``÷``: :func:`dd_add`, :func:`dd_mul`, :func:`dd_div`;
* :func:`dd_exp`, :func:`dd_expm1`: ``eˣ`` and ``eˣ − 1`` as pairs, relative error below 2⁻¹⁰⁴
  (Cody–Waite reduction by a three-part ln 2/256 to ``|r| ≤ ln 2/512``, a table of
  ``2^(j/256)`` and ``2^(j/256) − 1`` as pairs, ``expm1(r)`` by its series to r¹⁰ in Estrin's
  scheme, in double-double only where a term is above 2⁻⁵⁴ r; the scaling by ``2ᵏ`` through
  a table of powers of 2: the two forms share every operation, and no libm call);
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

import math
import types
from typing import Any

import mpmath
import numpy as np

__all__ = ["UNCERTIFIED", "certified", "dd_add", "dd_div", "dd_exp", "dd_mul", "exp_sub",
           "exp_sub_pair", "fast_two_sum", "jitted", "log_sub", "np_exp_sub", "np_log_sub",
           "np_sigmoid_sub", "sigmoid_sub", "sigmoid_sub_pair", "two_prod", "two_sum"]


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
    #: ln 2/256 in three parts; the first two have 34 bits so that N·L256_A and N·L256_B are
    #: exact for |N| < 2¹⁹ (|x| ≤ 800 gives |N| ≤ 295 464).
    L256_A, L256_B, L256_C = _parts(mpmath.log(2) / 256, (34, 34, 53))
    INV_LN2_256 = float(256 / mpmath.log(2))
    #: 1/n! for n = 1 … 10 as double-double pairs (hi, lo).
    _FACT = [_parts(1 / mpmath.factorial(n), (53, 53)) for n in range(1, 11)]
    #: 2^(j/256) and 2^(j/256) − 1 for j = −128 … 127 as double-double pairs, indexed by j + 128.
    _TABLE = [(_parts(mpmath.power(2, mpmath.mpf(j) / 256), (53, 53)),
               _parts(mpmath.power(2, mpmath.mpf(j) / 256) - 1, (53, 53)))
              for j in range(-128, 128)]
    #: ln 2 in three parts, the first two of 42 bits: k·LN2_A and k·LN2_B are exact for
    #: |k| < 2¹¹.
    LN2_A, LN2_B, LN2_C = _parts(mpmath.log(2), (42, 42, 53))
    #: For m in [0.7, 1.42] and j = round(128 m): r = 1/(j/128) rounded to 10 bits (so that
    #: m·r − 1 is an exact pair, |m·r − 1| < 2⁻⁷) and −log r in three parts, indexed by j.
    _LOG_R = [mpmath.mpf(0) if j < 89 else mpmath.mpf(_parts(mpmath.mpf(128) / j, (10,))[0])
              for j in range(184)]
    _LOG_T = [_parts(-mpmath.log(r), (53, 53, 53)) if r else (0.0, 0.0, 0.0) for r in _LOG_R]
    #: log1p(v) = v + v²·Σₙ (−1)ⁿ⁺¹ vⁿ/(n + 2): the coefficients as pairs, n = 0 … 15.
    _LOG1P_Q = [_parts(mpmath.mpf((-1) ** (n + 1)) / (n + 2), (53, 53)) for n in range(16)]
LOG_R = np.array([float(r) for r in _LOG_R])
LOG_T1 = np.array([t[0] for t in _LOG_T])
LOG_T2 = np.array([t[1] for t in _LOG_T])
LOG_T3 = np.array([t[2] for t in _LOG_T])
LQ_H = np.array([c[0] for c in _LOG1P_Q])
LQ_L = np.array([c[1] for c in _LOG1P_Q])
EXP_TH = np.array([t[0][0] for t in _TABLE])
EXP_TL = np.array([t[0][1] for t in _TABLE])
EXP_DH = np.array([t[1][0] for t in _TABLE])
EXP_DL = np.array([t[1][1] for t in _TABLE])
#: 2ⁱ for i = −600 … 512, indexed by i + 600 (a table lookup is cheaper than ``ldexp``).
POW2 = np.array([2.0 ** i for i in range(-600, 513)])
C3H, C3L = _FACT[2]
C4H, C4L = _FACT[3]
C5H, C5L = _FACT[4]
C6H = _FACT[5][0]
C7, C8, C9, C10 = (c[0] for c in _FACT[6:10])
SPLIT = 134217729.0  # 2²⁷ + 1, Dekker's splitter
TWO_600, TWO_M600 = 2.0**600, 2.0**-600  # t_log's scalings at the ends of the float64 range
#: :func:`t_xexp` scales ``y`` by ``2^∓600`` above ``XEXP_Y`` (2⁴⁰⁰) and below its inverse, and
#: shifts an exponent above ``XEXP_MAX`` by ∓1024 ln 2 (:func:`_exp_reduce`'s exact range).
XEXP_Y, XEXP_MAX = 2.0**400, 1400.0
#: Above this magnitude Dekker's split (``SPLIT·a``) overflows; below :data:`EXACT_PROD_MIN` a
#: product's error is not a normal number (it may not be exact): :func:`bernoulli_curvature`
#: scales its scale by ``2⁻⁶⁴`` or ``2⁶⁴`` there (and its result back: exact for a normal one).
SPLIT_MAX = 2.0**996
EXACT_PROD_MIN = 2.0**-960
TWO_64, TWO_M64 = 2.0**64, 2.0**-64
#: :func:`bernoulli_curvature` scales ``p − y`` by ``2³²⁰`` and ``y`` by ``2⁶⁴⁰`` (its value by
#: ``2⁶⁴⁰``; the result back) where ``y/c²`` and ``((p − y)/c)²`` are below ``CURV_TINY``, and
#: ``p − y`` by ``2⁶⁴⁰`` (the value by ``2¹²⁸⁰``) where ``y = 0`` and ``|p − y|/c`` is below
#: ``CURV_TINIER``: so that every product's error is a normal number wherever a large scale
#: makes the value a normal one, and the scaled value stays below ``2⁻⁹⁹`` (no overflow).
CURV_TINY, CURV_TINIER = 2.0**-740, 2.0**-690
TWO_320, TWO_640, TWO_M640 = 2.0**320, 2.0**640, 2.0**-640


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


def _split_mul(a: Any, b: Any, bh: Any, bl: Any) -> tuple[Any, Any]:
    """:func:`two_prod` with ``b`` already split (``b = bh + bl``, Dekker's halves)."""
    p = a * b
    t = SPLIT * a
    ah = t - (t - a)
    al = a - ah
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def _pow2(k: Any) -> tuple[Any, Any]:
    """``(s1, s2)`` with ``s1·s2 = 2ᵏ``, each a normal float (``k`` an integral float in
    [−1200, 1024]): ``(v·s1)·s2`` is ``v·2ᵏ`` rounded once for ``|v|`` in [2⁻⁴²², 2]."""
    k1 = np.floor(k * 0.5)
    return POW2[np.int64(k1) + 600], POW2[np.int64(k - k1) + 600]


def dd_exp(x: Any) -> tuple[Any, Any]:
    """``eˣ`` as a pair ``(hi, lo)``; ``x`` is clamped to [−800, log(float64 max)] (0 and +inf beyond:
    the callers never need more).

    >>> hi, lo = dd_exp(np.float64(1.0))  # e = 2.71828182845904523536028747135…
    >>> float(hi), float(lo)
    (2.718281828459045, 1.4456468917292502e-16)
    """
    uh, ul, k = _exp_parts(x)
    return _exp_of_parts(uh, ul, k)


def dd_expm1(x: Any) -> tuple[Any, Any]:
    """``eˣ − 1`` as a pair, with its relative accuracy also where ``x`` is tiny
    (``x`` in [−800, 709.78])."""
    uh, ul, k = _exp_parts(x)
    return _expm1_of_parts(uh, ul, k)


def _exp_of_parts(uh: Any, ul: Any, k: Any) -> tuple[Any, Any]:
    """``eˣ = 2ᵏ (1 + u)`` from :func:`_exp_parts`."""
    hi, lo = fast_two_sum(1.0, uh)
    lo = lo + ul
    hi, lo = fast_two_sum(hi, lo)
    s1, s2 = _pow2(k)  # × 2ᵏ in two steps, rounded once also below 2⁻¹⁰²²
    return hi * s1 * s2, lo * s1 * s2


def _expm1_of_parts(uh: Any, ul: Any, k: Any) -> tuple[Any, Any]:
    """``eˣ − 1 = 2ᵏ u + (2ᵏ − 1)`` from :func:`_exp_parts`, written as
    ``2ᵃ (2ᵇ u + (2ᵇ − 2⁻ᵃ))`` with ``a = max(k, 0)``, ``b = min(k, 0)`` so that no power of 2
    overflows (``k`` reaches 1024) and ``2ᵇ − 2⁻ᵃ`` is an exact pair."""
    a = np.maximum(k, 0.0)
    b1, b2 = _pow2(np.minimum(k, 0.0))
    sb = b1 * b2
    a1, a2 = _pow2(-a)
    mh, ml = two_sum(sb, -(a1 * a2))
    hi, lo = dd_add(uh * b1 * b2, ul * b1 * b2, mh, ml)
    a1, a2 = _pow2(a)
    return hi * a1 * a2, lo * a1 * a2


def _exp_parts(x: Any) -> tuple[Any, Any, Any]:
    """``(uh, ul, k)`` with ``eˣ = 2ᵏ (1 + uh + ul)``, ``−0.3 < u < 0.42`` (``k`` a float, not
    NaN: −1200 where ``x`` is NaN, and then ``u`` is NaN), ``x`` clamped to [−800, 709.78]
    (:func:`_exp_reduce`)."""
    uh, ul, k = _exp_reduce(np.minimum(np.maximum(x, -800.0), 709.782712893384))
    return uh, ul, np.fmax(k, -1200.0)


def _exp_reduce(x: Any) -> tuple[Any, Any, Any]:
    """:func:`_exp_parts` of ``|x| ≤ XEXP_MAX`` (1400) without the clamps (``k`` NaN where
    ``x`` is NaN): the reduction is exact for ``|n| < 2¹⁹`` (``|x| < 1419``).

    ``x = k ln 2 + j ln 2/256 + r`` with ``j`` in [−128, 127] and ``|r| ≤ ln 2/512``; then
    ``u = (2^(j/256) − 1) + 2^(j/256) expm1(r)`` from a table of both as pairs (``u`` keeps
    its relative accuracy where it is tiny, for :func:`dd_expm1`), and ``expm1(r)`` by its
    series to r¹⁰ (the rest is below 2⁻¹¹⁹ r): the terms above 2⁻⁵⁴ r (to r⁵) in
    double-double, the others in float64.
    """
    n = np.floor(x * INV_LN2_256 + 0.5)
    k = np.floor((n + 128.0) * 0.00390625)
    jf = np.fmin(np.fmax(n - 256.0 * k + 128.0, 0.0), 255.0)  # j + 128, an index also for NaN
    j = np.int64(jf)
    r1 = x - n * L256_A  # exact: n·L256_A is exact, and x − n·L256_A is a multiple of ulp(x) or
    # of n·L256_A's last bit below 2⁻⁹
    rh, rl = two_sum(r1, -(n * L256_B))  # n·L256_B exact
    rl = rl - n * L256_C
    rh, rl = two_sum(rh, rl)
    # expm1(rh) = rh + rh²/2 + rh·X, X = rh²(1/3! + rh/4!) + rh⁴(1/5! + rh·s) with
    # s = 1/6! + … + rh⁴/10! (Estrin's scheme: short chains of dependent operations)
    t = SPLIT * rh
    hh = t - (t - rh)  # rh's halves for the exact products
    hl = rh - hh
    sh, sl = _split_mul(rh, rh, hh, hl)  # rh², exact
    fh, fl = two_prod(sh, sh)
    fl = fl + 2.0 * sh * sl  # rh⁴
    p, e = _split_mul(C4H, rh, hh, hl)
    bh, bl = fast_two_sum(C3H, p)
    bh, bl = fast_two_sum(bh, bl + (e + C4L * rh + C3L))
    s = C6H + rh * (C7 + rh * (C8 + rh * (C9 + rh * C10)))
    ch, cl = fast_two_sum(C5H, rh * s)
    cl = cl + C5L
    bh, bl = dd_mul(sh, sl, bh, bl)
    ch, cl = dd_mul(fh, fl, ch, cl)
    xh, e = fast_two_sum(bh, ch)  # X, |X| < rh²/5
    xl = e + (bl + cl)
    q, e = _split_mul(xh, rh, hh, hl)
    s, f = fast_two_sum(0.5 * sh, q)
    ph, g = fast_two_sum(rh, s)
    # expm1(rh + rl) = expm1(rh) + rl·e^rh (+ rl²/2…, below 2⁻¹⁰⁶ r): e^rh ≈ 1 + ph
    pl = g + (((f + (e + xl * rh)) + 0.5 * sl) + (rl + rl * ph))
    ph, pl = fast_two_sum(ph, pl)
    # u = D + T·expm1(r): |T·expm1(r)| < |D|/1.9 where j ≠ 0 (D = 0 where j = 0)
    th = EXP_TH[j]
    q, e = two_prod(th, ph)
    s, f = fast_two_sum(EXP_DH[j], q)
    f, g = two_sum(f, EXP_DL[j])  # the two largest low parts, added exactly and
    s, f = fast_two_sum(s, f)  # taken into s: the last rounding is of a part below ulp(u)
    f = f + (g + (e + (th * pl + EXP_TL[j] * ph)))
    uh, ul = fast_two_sum(s, f)
    return uh, ul, k


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


def log_sub(x: Any, z: Any) -> Any:
    """``log x − z`` rounded once from a value good to about 2⁻¹¹⁵ of ``|z| + |log x|``, so that
    it keeps its digits next to the root ``z = log x`` (kl_div's ``y (log y − z)``): ``x = 2ᵏ m``,
    ``log x = k ln 2 − log r + log1p(v)`` with ``v = m·r − 1`` an exact pair (a table of ``r``
    ≈ 1/m of 10 bits and of ``−log r`` in three parts), ``log1p(v) − v`` by its series in
    double-double; the terms of ``|z|``'s size are summed exactly (TwoSum) and their errors, of
    2⁻⁵³ of it, in double-double (:func:`log_sub_pair`). ``x`` not positive and finite, or ``z``
    not finite: the float64 ``log x − z``.

    >>> z = np.float64(-0.09128714805397004)  # the nearest float to log 0.9127555772777217
    >>> float(log_sub(np.float64(0.9127555772777217), z))  # exact: −4.36303379863252826…e-19
    -4.363033798632528e-19
    """
    rh, rl, ok = log_sub_pair(x, z)
    return _sel(ok, rh + rl, np.log(x) - z)


def log_sub_pair(x: Any, z: Any) -> tuple[Any, Any, Any]:
    """:func:`log_sub`'s value before its rounding, ``(hi, lo, ok)``: ``hi + lo`` rounds to it,
    ``ok`` where ``x`` is positive and finite and ``z`` finite (elsewhere the pair is
    meaningless). A subnormal ``x`` is scaled by 2⁶⁴ first (exact), ``k`` by −64: the pair
    there too, where the float64 ``log x`` of libm and NumPy's differ in their last bit."""
    sub = (x > 0.0) & (x < 2.2250738585072014e-308)
    ok = (x > 0.0) & (x < np.inf) & (np.abs(z) < np.inf)
    xs = _sel(sub, x * TWO_64, _sel(ok, x, 1.0))
    zs = _sel(np.abs(z) < np.inf, z, 0.0)
    k = np.floor(np.log2(xs))
    s1, s2 = _pow2(-k)
    m = xs * s1 * s2  # exact: a power of 2, m in [1, 2) give or take log2's rounding
    up = m > 1.4142135623730951
    m = _sel(up, 0.5 * m, m)
    k = _sel(up, k + 1.0, k)
    k = _sel(sub, k - 64.0, k)
    j = np.int64(np.floor(m * 128.0 + 0.5))
    p, e = two_prod(m, LOG_R[j])
    vh, vl = two_sum(p - 1.0, e)  # v = m·r − 1 exactly (p − 1 is exact: p is within 2⁻⁷ of 1)
    # log1p(v) − v = v²·Q(v) − v·vl/(1 + v) (+ O(v·vl²)): Q by Horner, the terms below 2⁻⁵⁵
    # in float64, the others in double-double
    q = LQ_H[15]
    for n in range(14, 7, -1):
        q = LQ_H[n] + vh * q
    qh, ql = q, 0.0 * q
    for n in range(7, -1, -1):
        ph, pl = two_prod(vh, qh)
        pl = pl + vh * ql
        qh, ql = dd_add(LQ_H[n], LQ_L[n], ph, pl)
    sh, sl = two_prod(vh, vh)
    th, tl = dd_mul(sh, sl, qh, ql)
    corr = -(vh * vl) / (1.0 + vh)
    # the terms of |z|'s size exactly, their rounding errors (2⁻⁵³ of them) in double-double
    a, e1 = two_sum(k * LN2_A, LOG_T1[j])
    a, e2 = two_sum(a, -zs)
    a, e3 = two_sum(a, vh)
    a, e4 = two_sum(a, th)
    mh, ml = two_sum(e1, e2)
    for t in (e3, e4, k * LN2_B, LOG_T2[j], vl, tl, corr):
        mh, ml = dd_add(mh, ml, t, 0.0 * t)
    rh, rl = two_sum(a, mh)
    return rh, rl + (ml + (k * LN2_C + LOG_T3[j])), ok


def fsum3(a: Any, b: Any, c: Any) -> Any:
    """``a + b + c`` rounded once from its exact value (two TwoSums, their errors added: off by
    at most 2⁻¹⁰⁶ of ``|a| + |b| + |c|`` before the last rounding), so that it keeps its digits
    where the terms cancel; the plain sum where that is not finite. No branch: it vectorizes.

    >>> float(fsum3(np.float64(1.0), np.float64(1e-16), np.float64(-1.0)))  # float64: 0.0
    1e-16
    """
    s, e = two_sum(a, b)
    t, f = two_sum(s, c)
    r = t + (e + f)
    return _sel(np.abs(r) < np.inf, r, t)


def split_sum_row(a: Any, b: Any, flag: Any) -> Any:
    """``Σₖ (aₖ + bₖ)`` over one row's classes (1-D arrays, the compiled kernels' row
    buffers), every ``aₖ`` and ``bₖ`` its own term of one compensated (Neumaier) sum: where
    ``bₖ = −x_t`` and the ``aₖ`` average about ``x_t``, the sum of the rounded ``aₖ + bₖ`` would
    cancel, its terms' roundings left in it; each TwoSum error here is exact, and only their
    sum rounds. NaN where that sum's own rounding (at most ``2n·2⁻⁵³`` of ``Σ|errors|``) could
    reach 1/8 ulp of the result, with ``flag[0]`` set (the kernel's: :mod:`symloss.exact`
    looks). The plain sum where it is not finite. The NumPy path's twin: :func:`np_split_sum`.

    >>> import numpy as np
    >>> float(split_sum_row(np.array([1.0, 1e-16]), np.array([-1.0, 0.0]), np.zeros(1)))
    1e-16
    """
    s = 0.0
    c = 0.0
    m = 0.0
    n = a.shape[0]
    for j in range(2 * n):
        x = a[j >> 1] if j % 2 == 0 else b[j >> 1]
        t = s + x
        if np.abs(s) >= np.abs(x):
            e = (s - t) + x
        else:
            e = (x - t) + s
        c += e
        m += np.abs(e)
        s = t
    if not np.isfinite(s):
        return s
    r = s + c
    if m > 0.0 and 16.0 * n * m > np.abs(r):
        flag[0] = 1
        return np.nan
    return r


def np_split_sum(a: Any, b: Any) -> Any:
    """:func:`split_sum_row` on NumPy arrays, class axis last (kept, length 1)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    n = a.shape[-1]
    s = np.zeros(a.shape[:-1])
    c = np.zeros_like(s)
    m = np.zeros_like(s)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(n):
            for x in (a[..., j], b[..., j]):
                t = s + x
                e = np.where(np.abs(s) >= np.abs(x), (s - t) + x, (x - t) + s)
                c = c + e
                m = m + np.abs(e)
                s = t
        finite = np.isfinite(s)
        r = np.where(finite, s + c, s)
        r = np.where(finite & (m > 0.0) & (16.0 * n * m > np.abs(r)), np.nan, r)
    return r[..., None]


def _ihc_u(a: Any, b: Any, d: Any) -> tuple[Any, Any]:
    """``u = (a + b)/d`` as a pair, ``a + b`` exact (TwoSum); the remainder ``a + b − uh·d``
    is exact, so ``uh`` needs no correct rounding (a product by ``1/d``: no division)."""
    rh, rl = two_sum(a, b)
    inv = 1.0 / d
    uh = rh * inv
    p, e = two_prod(uh, d)
    return uh, (((rh - p) - e) + rl) * inv


def _ihc_near(uh: Any, ul: Any) -> Any:
    """``(1 + u²)^(−3/2)`` for ``|u| ≤ 2⁶⁰``: ``q = 1 + u²`` as a pair, ``w = 1/√q`` rounded,
    then ``w³ (1 + 3ρ/2)`` with ``ρ = 1 − q·w²`` to 2⁻¹⁰⁶ (``w³`` and ``q·w²`` by Dekker's
    products)."""
    sh, sl = two_prod(uh, uh)
    qh, ql = two_sum(1.0, sh)
    qh, ql = fast_two_sum(qh, ql + (sl + 2.0 * uh * ul))
    w = 1.0 / np.sqrt(qh)
    ah, al = two_prod(w, w)
    p, e = two_prod(qh, ah)
    rho = ((1.0 - p) - e) - (qh * al + ql * ah)
    th, tl = two_prod(ah, w)
    return th + ((tl + al * w) + th * (1.5 * rho))


def _ihc_far(uh: Any, ul: Any) -> Any:
    """``|u|⁻³`` for ``2⁶⁰ < |u| ≤ 2³⁴¹`` (the 1 is below 2⁻¹²⁰ of ``u²``): ``1/|u|`` as a pair,
    cubed (no overflow of ``u²`` or of the splits)."""
    v = np.abs(uh)
    gh = 1.0 / v
    p, e = two_prod(gh, v)
    gl = (((1.0 - p) - e) - gh * _sel(uh < 0.0, -ul, ul)) / v
    ch, cl = dd_mul(gh, gl, gh, gl)
    ch, cl = dd_mul(ch, cl, gh, gl)
    return ch + cl


def inv_hypot1_cube(a: Any, b: Any, d: Any) -> Any:
    """``(1 + u²)^(−3/2)`` with ``u = (a + b)/d`` (pseudo-Huber's Hessian at ``a + b = z − y``),
    about half an ulp: ``a + b`` exact (TwoSum), ``u``, ``1 + u²`` and ``ρ = 1 − (1 + u²)w²``
    as pairs for ``w = 1/√(1 + u²)`` rounded (for |u| ≫ 1 the value ≈ |u|⁻³ triples every
    rounding of them); 0 past ``|u| = 2³⁴¹``, where it is below the smallest normal number.

    >>> float(inv_hypot1_cube(np.float64(2154.434690031876), np.float64(-0.9127555772777217), 1.0))
    1.0012717446840951e-10
    """
    uh, ul = _ihc_u(a, b, d)
    au = np.abs(uh)
    big = au > 1.152921504606847e18  # 2⁶⁰
    gone = au > 4.479489484355608e+102  # 2³⁴¹
    near = _ihc_near(_sel(big, 1.0, uh), _sel(big, 0.0, ul))
    far = _ihc_far(_sel(big & ~gone, uh, 2.0**61), _sel(big & ~gone, ul, 0.0))
    return _sel(gone, 0.0 * d, _sel(big, far, near))


def _inv_hypot1_cube_scalar(a: Any, b: Any, d: Any) -> Any:
    """:func:`inv_hypot1_cube` in the compiled twins: only the branch that is used."""
    uh, ul = _ihc_u(a, b, d)
    au = abs(uh)
    if au > 4.479489484355608e+102:
        return 0.0
    if au > 1.152921504606847e18:
        return _ihc_far(uh, ul)
    return _ihc_near(uh, ul)


#: The float64 kernels' name (flavour ``_m``) of :func:`inv_hypot1_cube`.
inv_hypot1_cube_m = inv_hypot1_cube


def inv_hypot1_cube_v(a: Any, b: Any, d: Any) -> Any:
    """:func:`inv_hypot1_cube` for float32 results: the plain float64 ``1/√(1 + u²)³`` (its few
    float64 roundings are far below a float32 ulp; 0 where ``u²`` overflows, as the value)."""
    u = (a + b) / d
    h = np.sqrt(1.0 + u * u)
    return 1.0 / (h * h * h)


def bernoulli_curvature(p: Any, y: Any, eps: Any, s: Any) -> Any:
    """``s·((p − y)² + y(1 − y))/max(p(1 − p), ε)²`` (binary_cross_entropy's Hessian in the
    probability ``p``, scaled by ``s``) rounded once from a pair, within half an ulp and a few
    2⁻¹⁰⁵ of the value: its float64 form rounds seven times, and both terms ≥ 0 carry every
    rounding whole (4.2 ulp with a weight at p = 0.99981).

    ``1 − p`` and ``1 − y`` are exact pairs (|1| ≥ p, y), ``c = p(1 − p)`` a pair (Dekker's
    product), clamped at ``ε`` as a pair, ``1/c`` a pair from the exact residual
    ``1 − fl(1/c)·c``, and ``q = (p − y)/c`` (``p − y`` exact, TwoSum), ``q²`` and
    ``(y/c)((1 − y)/c)`` pairs; each pair's error is a few 2⁻¹⁰⁶ of it and the sum has no
    cancellation (both terms ≥ 0 for y in [0, 1]). Divided before it is squared, as the float
    form, so that ``(p − y)²`` does not underflow where the value is normal. Where the value
    is tiny, ``p − y`` and ``y`` are scaled up first (the value by ``2⁶⁴⁰``, or by ``2¹²⁸⁰`` at
    ``y = 0``: :data:`CURV_TINY`) and the result back, so that no product's error is
    subnormal where the scale makes the value normal (``y = p = 10⁻³²³`` was 1469 ulp off,
    the unscaled ``y/c`` subnormal). The scale ``s``
    (a weight) multiplies the pair before the one rounding: ``s`` scaled by ``2⁻⁶⁴`` where
    ``|s| > 2⁹⁹⁶`` (:data:`SPLIT_MAX`: the split would overflow), by ``2⁶⁴`` where
    ``|s|·hi < 2⁻⁹⁶⁰`` and ``|s| < 2⁹⁶⁰`` (the product's error would not be a normal number),
    and the result back
    (exact where it is a normal number), so that the product is exact in both evaluators and
    the compiled twin, whose exact products are fused multiply-adds
    (:func:`symloss._fastmath.vector_dd`), rounds the same value wherever the pair's own terms
    are normal numbers; where the product is not finite, ``fl(s·hi)``. No branch: it
    vectorizes.

    >>> p, y = np.float64(0.9998126182577138), np.float64(1 - 2**-53)
    >>> float(bernoulli_curvature(p, y, 9.999999960041972e-13, 1.9127768278121948))
    1.9134938743036456
    """
    ah = 1.0 - p
    al = (1.0 - ah) - p
    ch, cl = two_prod(p, ah)
    cl = cl + p * al
    small = (ch < eps) | ((ch == eps) & (cl < 0.0))  # max(c, ε) of the pair; NaN stays
    ch = _sel(small, eps, ch)
    cl = _sel(small, 0.0 * cl, cl)
    r0 = 1.0 / ch
    ph, pl = two_prod(r0, ch)
    r1 = r0 * (((1.0 - ph) - pl) - r0 * cl)  # 1 − ph is exact (Sterbenz)
    dh, dl = two_sum(p, -y)
    # the value's scale 2⁰, 2⁶⁴⁰ or 2¹²⁸⁰ by its size (y > 0 keeps y/c² ≥ 2⁻¹⁰⁷⁰: only y = 0
    # can need the second); a power of 2 up is exact
    gap = np.abs(dh) * r0
    tiny = (np.abs(y) * r0 * r0 < CURV_TINY) & (gap * gap < CURV_TINY)
    tinier = (y == 0.0) & (gap < CURV_TINIER)
    up = _sel(tinier, TWO_640, _sel(tiny, TWO_320, 1.0))
    dh = dh * up
    dl = dl * up
    qh, ql = two_prod(dh, r0)
    ql = ql + (dh * r1 + dl * r0)
    sh, sl = two_prod(qh, qh)
    sl = sl + 2.0 * qh * ql
    bh = 1.0 - y
    bl = (1.0 - bh) - y
    yu = y * up * up
    gh, gl = two_prod(yu, r0)
    gl = gl + yu * r1
    kh, kl = two_prod(bh, r0)
    kl = kl + (bh * r1 + bl * r0)
    th, tl = two_prod(gh, kh)
    tl = tl + (gh * kl + gl * kh)
    hh, hl = two_sum(sh, th)
    hl = hl + (sl + tl)
    big = np.abs(s) > SPLIT_MAX
    # (not where s·2⁶⁴ would overflow: there s·hh < 2⁻⁹⁶⁰ is hh < 2⁻¹⁹²⁰, its product 0 or
    # subnormal, and inf·0 was NaN)
    small = (np.abs(s) * hh < EXACT_PROD_MIN) & (np.abs(s) * EXACT_PROD_MIN < 1.0)
    sk = s * _sel(big, TWO_M64, _sel(small, TWO_64, 1.0))
    back = _sel(big, TWO_64, _sel(small, TWO_M64, 1.0)) * _sel(tiny, TWO_M640, 1.0)
    mh, ml = two_prod(sk, hh)
    r = mh + (ml + sk * hl)
    return _sel(r == r, r, mh) * back * _sel(tinier, TWO_M640, 1.0)


#: The float64 kernels' name (flavour ``_m``) of :func:`bernoulli_curvature`.
bernoulli_curvature_m = bernoulli_curvature


def bernoulli_curvature_v(p: Any, y: Any, eps: Any, s: Any) -> Any:
    """:func:`bernoulli_curvature` for float32 results: the plain float64 form (its seven
    roundings are far below a float32 ulp)."""
    c = p * (1.0 - p)
    c = _sel(c < eps, eps, c)
    q = (p - y) / c
    return s * (q * q + (y * (1.0 - y) / c) / c)


def np_log_sub(x: Any, z: Any) -> Any:
    """:func:`log_sub` on NumPy arrays of any float dtype (the NumPy path's printing)."""
    x, z = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(z, dtype=np.float64))
    with np.errstate(all="ignore"):
        return log_sub(x, z)


# --------------------------------------------------------------------------- expressions
# A double-double value as a tuple ``(hi, lo)``: what :mod:`symloss.accurate` prints a whole
# expression into, one nested call per operation, so that it is one expression for both
# evaluators (NumPy arrays, numba scalars). ``_sel`` is NumPy's ``where`` here and a plain
# conditional in the compiled twins (:func:`jitted`), so an unused branch's inf/NaN never
# reaches the other one.


def _sel(c: Any, a: Any, b: Any) -> Any:
    return np.where(c, a, b)


def _sel_scalar(c: Any, a: Any, b: Any) -> Any:
    return a if c else b


def t_lift(x: Any) -> tuple[Any, Any]:
    """A float as a pair (its low part 0)."""
    return x, 0.0 * x


def _t_lift_scalar(x: Any) -> tuple[Any, Any]:
    # the low part a literal 0, not 0·x: LLVM may not fold 0·x (x may be ±inf or NaN), and a
    # scale pair (v, 0·v) kept BCE-with-logits' hvp loop from vectorizing well (1e6 float64,
    # 1 thread: 2.3 → 4.2 ms). The pair's value is the same; a non-finite x is no pair
    # (its high part is already ±inf or NaN, and so is every result that reads it).
    return x, 0.0


def t_neg(a: tuple[Any, Any]) -> tuple[Any, Any]:
    return -a[0], -a[1]


def t_add(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    return dd_add(a[0], a[1], b[0], b[1])


def t_sub(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    return dd_add(a[0], a[1], -b[0], -b[1])


def t_mul(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    return dd_mul(a[0], a[1], b[0], b[1])


def t_prod(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """:func:`t_mul` of a printed form (:func:`symloss.primitives.dd_code`): the same bits,
    but for an operand above :data:`SPLIT_MAX`, whose Dekker split overflows (the pair NaN,
    and the plain float form answered): there the operand is scaled by ``2⁻⁶⁴`` and the
    product back (powers of 2: exact, but where the product overflows). A factor of any
    finite size reaches a printed product: a weight as given
    (``binary_cross_entropy_with_logits``' gradient with weight 7.2e307 at z = 2.8e-8,
    y = 0.5 was 4.6e7 ulp off), an exponential (tweedie_loss's Hessian
    ``(2 − ρ)·e^((2−ρ)z)`` at ρ = 1.001, z = 708.396: 379 ulp) or a sum of class weights
    (cross_entropy's (Σa)pᵢ − aᵢ with label smoothing and the class weight 2.76e303: 4.5e8
    ulp at z = (21.5, 0, 0, 0)). Only an operand that large is scaled (its scaled product is
    at least ``2⁹³²`` times the other, so its error is a normal number wherever the other is
    not 0): a small factor is never scaled down into the subnormal range."""
    big_a = np.abs(a[0]) > SPLIT_MAX
    big_b = np.abs(b[0]) > SPLIT_MAX
    ka = _sel(big_a, TWO_M64, 1.0)
    kb = _sel(big_b, TWO_M64, 1.0)
    p, e = dd_mul(a[0] * ka, a[1] * ka, b[0] * kb, b[1] * kb)
    back = _sel(big_a, TWO_64, 1.0) * _sel(big_b, TWO_64, 1.0)
    return p * back, e * back


def t_scale(s: Any, a: tuple[Any, Any]) -> tuple[Any, Any]:
    """A float ``s`` (an input or option as given: a weight of any finite size) times a pair:
    :func:`t_prod` of ``(s, 0)``."""
    return t_prod((s, 0.0 * s), a)


def t_div(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    return dd_div(a[0], a[1], b[0], b[1])


#: :func:`t_quot` scales a numerator or quotient, and a divisor, above this (2⁹⁶⁰) by 2⁻⁶⁴.
QUOT_MAX = 2.0**960


def t_quot(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """:func:`t_div` of a printed form (:func:`symloss.primitives.dd_code`): the same bits,
    but where the quotient, the numerator or the divisor is above :data:`QUOT_MAX`, whose
    Dekker splits (of the quotient's digits and the divisor) overflowed above
    :data:`SPLIT_MAX` (the pair NaN: multilabel_soft_margin_loss's w(σ(x) − y)/C with
    w = 2.76e303 at x = 0.01, y = 0.5 fell back to its float form, 132 ulp): there each is
    scaled by ``2⁻⁶⁴`` and the quotient back (powers of 2: exact, but where it overflows)."""
    big_a = (np.abs(a[0]) > QUOT_MAX) | (np.abs(a[0] / b[0]) > QUOT_MAX)
    big_b = np.abs(b[0]) > QUOT_MAX
    ka = _sel(big_a, TWO_M64, 1.0)
    kb = _sel(big_b, TWO_M64, 1.0)
    qh, ql = dd_div(a[0] * ka, a[1] * ka, b[0] * kb, b[1] * kb)
    back = _sel(big_a, TWO_64, 1.0) * kb
    return qh * back, ql * back


def t_where(c: Any, a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """``a`` where ``c``, else ``b`` (Piecewise)."""
    return _sel(c, a[0], b[0]), _sel(c, a[1], b[1])


def _exp_scaled(uh: Any, ul: Any, lo: Any) -> tuple[Any, Any]:
    """``v (1 + c)``, ``e^(x + lo)/2ᵏ`` from ``(uh, ul, k)`` of ``x`` (:func:`_exp_reduce`):
    ``e^x = 2ᵏ v`` and ``c = e^lo − 1 = lo + lo²/2`` (``|lo| < 2⁻⁴³``), a pair in [0.7, 1.42]
    before the scaling (so its Dekker splits cannot overflow)."""
    vh, vl = fast_two_sum(1.0, uh)
    vl = vl + ul
    p, e = two_prod(vh, lo)
    e = e + (vl * lo + vh * (0.5 * lo * lo))
    s, f = fast_two_sum(vh, p)
    f = f + (vl + e)
    return fast_two_sum(s, f)


def t_exp(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``e^(hi + lo) = 2ᵏ v (1 + c)`` (:func:`_exp_scaled`); +inf past float64's range."""
    over = a[0] > 709.782712893384
    uh, ul, k = _exp_parts(a[0])
    hi, lo = _exp_scaled(uh, ul, a[1])
    s1, s2 = _pow2(k)
    return _sel(over, np.inf, hi * s1 * s2), _sel(over, 0.0, lo * s1 * s2)


def t_expm1(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``e^(hi + lo) − 1 = (e^hi − 1) + 2ᵏ v c`` (as in :func:`t_exp`), with its relative
    accuracy where it is tiny."""
    over = a[0] > 709.782712893384
    uh, ul, k = _exp_parts(a[0])
    mh, ml = _expm1_of_parts(uh, ul, k)
    vh, vl = fast_two_sum(1.0, uh)
    p, e = two_prod(vh, a[1])
    e = e + ((vl + ul) * a[1] + vh * (0.5 * a[1] * a[1]))
    s1, s2 = _pow2(k)
    rh, rl = dd_add(mh, ml, p * s1 * s2, e * s1 * s2)
    return _sel(over, np.inf, rh), _sel(over, 0.0, rl)


def t_log1p(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``log(1 + a)``, relative accuracy where ``a`` is tiny: :func:`t_log1p_from` the seed
    ``x = log1p(hi)``."""
    return t_log1p_from(a, np.log1p(np.maximum(a[0], -1.0)))


def t_log1p_from(a: tuple[Any, Any], x: Any) -> tuple[Any, Any]:
    """``log(1 + a)`` from a seed ``x`` within a few ulp of it: one Newton step on
    ``expm1(x) = a``: ``x + (a − expm1 x)/(1 + expm1 x)``, the quotient (about 2⁻⁵³ x) to two
    digits. (:func:`t_log1p` seeds it with libm's log1p, the vectorized pair functions of
    :mod:`symloss._fastmath` with fdlibm's.)"""
    finite = np.abs(x) < 700.0
    xs = _sel(finite, x, 0.0)
    eh, el = dd_expm1(xs)
    nh, nl = dd_add(a[0], a[1], -eh, -el)
    dh, dl = dd_add(1.0, 0.0, eh, el)
    ch = nh / dh
    ph, pl = two_prod(ch, dh)
    cl = ((((nh - ph) - pl) + nl) - ch * dl) / dh
    rh, rl = dd_add(xs, 0.0 * xs, ch, cl)
    return _sel(finite, rh, x), _sel(finite, rl, 0.0 * x)


def _t_log_near(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """:func:`t_log` for ``a`` in (½, 2): ``log1p(a − 1)``."""
    return t_log1p(t_sub(a, t_lift(1.0 + 0.0 * a[0])))


def _t_log_far(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """:func:`t_log` elsewhere: ``x + (a e⁻ˣ − 1)`` from ``x = log(hi)``, with ``e⁻ˣ = 2ᵏ v``
    and ``a e⁻ˣ = (a 2ᵏ) v`` (``a 2ᵏ`` ≈ 1: no pair's low part is subnormal). Where
    ``|log a| > 700`` (``a`` next to either end of the float64 range, subnormals included),
    ``a = 2ᵐ a'`` with ``m = ∓600`` (exact) and ``log a = log a' + m ln 2``: the Newton step
    then stays inside :func:`_exp_parts`'s range (without it, ``log a`` there was float64's,
    ``|log a|·2⁻⁵³`` off: gamma_loss 8.7e5 ulp at ``z = −708.396, y = 2⁻¹⁰²²``)."""
    x0 = np.log(np.maximum(a[0], 0.0))
    big = x0 > 700.0
    small = x0 < -700.0
    m = _sel(big, 600.0, _sel(small, -600.0, 0.0))
    sc = _sel(big, TWO_M600, _sel(small, TWO_600, 1.0))
    ah = a[0] * sc  # exact: a power of 2 that keeps ah normal (or 0, inf, NaN)
    al = a[1] * sc
    x = np.log(np.maximum(ah, 0.0))
    finite = np.abs(x) < 700.0
    xs = _sel(finite, x, 0.0)
    uh, ul, k = _exp_parts(-xs)
    vh, vl = fast_two_sum(1.0, uh)
    s1, s2 = _pow2(k)
    bh, bl = dd_mul(ah * s1 * s2, al * s1 * s2, vh, vl + ul)
    rh, rl = dd_add(bh, bl, -1.0, 0.0)
    nh, nl = dd_add(xs, 0.0 * xs, rh, rl)
    ch, cl = fast_two_sum(m * LN2_A, m * LN2_B)  # m ln 2: m·LN2_A, m·LN2_B exact
    nh, nl = dd_add(nh, nl, ch, cl + m * LN2_C)
    return _sel(finite, nh, x0), _sel(finite, nl, 0.0 * x0)


def t_log(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``log a``: ``log1p(a − 1)`` for ``a`` in (½, 2) (relative accuracy next to 1), else
    one Newton step from ``x = log(hi)`` on ``eˣ = a``."""
    near = (a[0] > 0.5) & (a[0] < 2.0)
    # each branch's operand: a where it is used, any value elsewhere
    lh, ll = _t_log_near((_sel(near, a[0], 1.0), _sel(near, a[1], 0.0)))
    fh, fl = _t_log_far((_sel(near, 1.5, a[0]), _sel(near, 0.0, a[1])))
    return _sel(near, lh, fh), _sel(near, ll, fl)


def _t_log_scalar(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """:func:`t_log` in the compiled twins: only the branch that is used."""
    if (a[0] > 0.5) & (a[0] < 2.0):
        return _t_log_near(a)
    return _t_log_far(a)


def t_xexp(y: tuple[Any, Any], a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``y·eᵃ`` for ``y > 0``, as ``(f·v(1 + c))·2^(k + m)``: ``y = f·2ᵐ`` (``m`` = 0 or ±600,
    exact: ``f`` in [2⁻⁴⁷⁴, 2⁴²⁴]) and ``eᵃ = 2ᵏ v(1 + c)`` (:func:`_exp_reduce`,
    :func:`_exp_scaled`; past ``|a| = 1400``, the reduction's exact range, ``(e^(a/2))²``).
    Neither ``eᵃ`` nor ``y·eᵃ`` is formed before the last scaling,
    so no pair leaves float64's range where the result is in it: ``eᵃ`` near 2¹⁰²⁴ would
    overflow Dekker's split of the product, near 2⁻¹⁰²² its low part would be subnormal. The
    pair product's error is a few 2⁻¹⁰⁶ of it (its operands' are 2⁻¹⁰⁴: ``eᵃ``'s relative
    accuracy, unamplified by ``|a|``; twice that past ``|a| = 1400``, the square's); the
    power of 2 is applied in three steps of one sign (each at most 2⁵¹² or 2⁻⁶⁰⁰), exact
    wherever the result is a normal number. (It was ``e^(a + log y)``: a double-double log and
    exponential, the exponent's rounding amplified ``|a + log y|``-fold; tweedie_loss's
    float64 gradient 3x slower.) 0 for ``y = 0``, NaN for ``y < 0`` (the plain form answers).

    >>> h, l = t_xexp((np.float64(3.0), np.float64(0.0)), (np.float64(-1.0986122886681098), 0.0))
    >>> float(h), float(l)  # 3·e^(−1.0986122886681098) = 1 − 9.0712972350015296…e-17
    (0.9999999999999999, 2.0309330112500354e-17)
    """
    pos = y[0] > 0.0
    yh = _sel(pos, y[0], 1.0)
    big = yh > XEXP_Y
    small = yh < 1.0 / XEXP_Y
    m = _sel(big, 600.0, _sel(small, -600.0, 0.0))
    sc = _sel(big, TWO_M600, _sel(small, TWO_600, 1.0))
    fh = yh * sc  # exact: powers of 2, fh normal
    fl = _sel(pos, y[1], 0.0) * sc
    # past the reduction's range: eᵃ = (e^(a/2))² (a/2 exact), a clamped to ±2800 where
    # y·eᵃ is 0 or inf whatever y is (|a| > 709.79 + 745.14)
    far = np.abs(a[0]) > XEXP_MAX
    out = np.abs(a[0]) > 2.0 * XEXP_MAX
    half = _sel(far, 0.5, 1.0)
    uh, ul, k = _exp_reduce(np.minimum(np.maximum(a[0], -2.0 * XEXP_MAX), 2.0 * XEXP_MAX) * half)
    vh, vl = _exp_scaled(uh, ul, _sel(out, 0.0, a[1]) * half)
    wh, wl = dd_mul(vh, vl, vh, vl)
    vh = _sel(far, wh, vh)
    vl = _sel(far, wl, vl)
    ph, pl = dd_mul(fh, fl, vh, vl)
    # 2^(k + m): past ±1501 the result is inf or 0 for every f·v in [2⁻⁴⁷⁵, 2⁴²⁶]
    kk = np.fmin(np.fmax(_sel(far, 2.0 * k, k) + m, -1501.0), 1501.0)
    k1 = np.floor(kk * (1.0 / 3.0))
    k2 = np.floor((kk - k1) * 0.5)
    s1 = POW2[np.int64(k1) + 600]
    s2 = POW2[np.int64(k2) + 600]
    s3 = POW2[np.int64(kk - k1 - k2) + 600]
    rh = ph * s1 * s2 * s3
    rl = pl * s1 * s2 * s3
    at0 = _sel(y[0] == 0.0, 0.0, np.nan)
    # (0·y, not 0·rl: where y = 0 the product of 1 by eᵃ may overflow, and 0·inf is NaN)
    return _sel(pos, rh, at0), _sel(pos, rl, 0.0 * y[0])


def t_sigmoid(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``σ(a) = 1/(1 + e^{−a})`` or ``e^{a}/(1 + e^{a})``: e^{−|a|} ≤ 1 never overflows."""
    pos = a[0] >= 0.0
    e = t_exp((-np.abs(a[0]), _sel(pos, -a[1], a[1])))
    one = t_lift(1.0 + 0.0 * a[0])
    num = (_sel(pos, 1.0, e[0]), _sel(pos, 0.0, e[1]))
    return t_div(num, t_add(one, e))


def t_softplus(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``log(1 + e^a) = max(a, 0) + log1p(e^{−|a|})``."""
    pos = a[0] >= 0.0
    e = t_exp((-np.abs(a[0]), _sel(pos, -a[1], a[1])))
    top = (_sel(pos, a[0], 0.0), _sel(pos, a[1], 0.0))
    return t_add(top, t_log1p(e))


# The same primitives from their shared parts (as symloss._fastmath's expna/sigmoid_e/...):
# σ(±a), softplus(±a) and σ(±a)^γ all start from e^(−|a|), the last two from its log1p, so a
# printed form that reads several of them computes each part once
# (:func:`symloss.primitives.dd_code` prints them so). softplus and σ^γ do the one-piece
# functions' arithmetic, operation for operation (the same pairs); σ(a) and σ(−a) also share
# the quotient 1/(1 + e^(−|a|)) and differ from t_sigmoid's by a few 2⁻¹⁰⁶.


def t_expna(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``e^(−|a|)`` (the same pair for ``a`` and ``−a``)."""
    pos = a[0] >= 0.0
    return t_exp((-np.abs(a[0]), _sel(pos, -a[1], a[1])))


def t_recip1p(e: tuple[Any, Any]) -> tuple[Any, Any]:
    """``1/(1 + e)``: for ``e = t_expna(a)``, σ(|a|), which σ(a) and σ(−a) share."""
    one = t_lift(1.0 + 0.0 * e[0])
    return t_div(one, t_add(one, e))


def t_sigmoid_r(a: tuple[Any, Any], e: tuple[Any, Any], r: tuple[Any, Any]
                ) -> tuple[Any, Any]:
    """σ(a) from ``e = t_expna(a)`` and ``r = t_recip1p(e)``: ``r`` for ``a ≥ 0``, else
    ``e·r`` (a product, not a second quotient; within a few 2⁻¹⁰⁶ as :func:`t_sigmoid`)."""
    pos = a[0] >= 0.0
    er = t_mul(e, r)
    return _sel(pos, r[0], er[0]), _sel(pos, r[1], er[1])


def t_softplus_l(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """:func:`t_softplus` from ``b = t_log1p(t_expna(a))``."""
    pos = a[0] >= 0.0
    top = (_sel(pos, a[0], 0.0), _sel(pos, a[1], 0.0))
    return t_add(top, b)


def t_sigmoid_pow_l(a: tuple[Any, Any], g: tuple[Any, Any], b: tuple[Any, Any]
                    ) -> tuple[Any, Any]:
    """:func:`t_sigmoid_pow` from ``b = t_log1p(t_expna(a))``."""
    return t_exp(t_neg(t_mul(g, t_softplus_l(t_neg(a), b))))


def t_tanh(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``tanh a = sign(a) m/(m + 2)``, ``m = expm1(2|a|)``; ±1 past |a| = 40 (there 1 − tanh
    is below 2⁻¹¹⁴)."""
    pos = a[0] >= 0.0
    big = np.abs(a[0]) > 40.0
    x = (_sel(big, 0.0, 2.0 * np.abs(a[0])), _sel(big | pos, 2.0 * a[1], -2.0 * a[1]))
    x = (x[0], _sel(big, 0.0, x[1]))
    m = t_expm1(x)
    th, tl = t_div(m, t_add(m, t_lift(2.0 + 0.0 * a[0])))
    sign = _sel(pos, 1.0, -1.0)
    return _sel(big, sign, sign * th), _sel(big, 0.0, sign * tl)


def t_sinh(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``sinh a = sign(a) (m/2)(m + 2)/(m + 1)``, ``m = expm1(|a|)``: nothing cancels, relative
    accuracy where ``a`` is tiny, and no overflow before ``m``'s own (past it, not finite:
    :func:`t_final` takes the plain form)."""
    pos = a[0] >= 0.0
    m = t_expm1((np.abs(a[0]), _sel(pos, a[1], -a[1])))
    one = 1.0 + 0.0 * a[0]
    s = t_mul(m, t_div(t_add(m, t_lift(2.0 * one)), t_add(m, t_lift(one))))
    half = _sel(pos, 0.5, -0.5)
    return half * s[0], half * s[1]


def t_sqrt(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``√a`` for ``a ≥ 0``: ``s = √hi`` and one Newton step ``s + (a − s²)/(2s)``, ``s²`` exact
    (Dekker's product)."""
    s = np.sqrt(a[0])
    p, e = two_prod(s, s)
    pos = s > 0.0
    d = _sel(pos, 2.0 * s, 1.0)
    c = (((a[0] - p) - e) + a[1]) / d
    return fast_two_sum(s, _sel(pos, c, 0.0 * c))


def t_hypot1(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``√(1 + a²)`` (:class:`symloss.catalog_boosting.hypot1`); ``|a|`` past ``|a| = 2⁶⁰``,
    where ``1/(2a²)`` is below 2⁻¹²¹ of it (and ``a²`` would overflow past 2⁵¹²)."""
    big = np.abs(a[0]) > 1.152921504606847e18
    x = (_sel(big, 0.0, a[0]), _sel(big, 0.0, a[1]))
    sh, sl = t_sqrt(t_add(t_lift(1.0 + 0.0 * a[0]), t_mul(x, x)))
    pos = a[0] >= 0.0
    return _sel(big, np.abs(a[0]), sh), _sel(big, _sel(pos, a[1], -a[1]), sl)


def hypot1(x: Any) -> Any:
    """``√(1 + x²)`` (:class:`symloss.catalog_boosting.hypot1`) rounded once from
    :func:`t_hypot1`'s pair: within 0.5 ulp and a few 2⁻¹⁰⁵, where libm's ``hypot(1, x)`` is
    an opaque call (not vectorized) within 1 ulp. Both evaluators call it (the numba kernels
    as the inlined ``vd_hypot1``): the same bits. ±inf gives inf, NaN NaN."""
    ax = np.abs(x)
    h, lo = t_hypot1((x, 0.0 * x))
    return _sel(ax == np.inf, ax, h + lo)


def tanh(x: Any) -> Any:
    """``tanh x`` rounded once from :func:`t_tanh`'s pair: within 0.5 ulp and a few 2⁻¹⁰⁵,
    where libm's tanh is within 2 ulp. The NumPy evaluator's; the numba kernels' is
    :func:`symloss._fastmath.tanh_m` (within ``0.5 + 2⁻⁷`` ulp), so the two agree within 1 ulp.
    NaN gives NaN, ±inf ±1."""
    h, lo = t_tanh((x, 0.0 * x))
    return _sel(np.abs(x) == np.inf, np.sign(x), _sel(x == 0.0, x, h + lo))  # tanh(−0) = −0


def t_pow(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """``a^b = e^{b log a}`` for ``a > 0``; ``0^b`` is 0 (b > 0), 1 (b = 0) or inf (b < 0)."""
    zero = a[0] == 0.0
    safe = (_sel(zero, 1.0, a[0]), _sel(zero, 0.0, a[1]))
    rh, rl = t_exp(t_mul(b, t_log(safe)))
    at0 = _sel(b[0] > 0.0, 0.0, _sel(b[0] == 0.0, 1.0, np.inf))
    return _sel(zero, at0, rh), _sel(zero, 0.0, rl)


def t_sigmoid_pow(a: tuple[Any, Any], g: tuple[Any, Any]) -> tuple[Any, Any]:
    """``σ(a)^γ = e^{−γ softplus(−a)}``."""
    return t_exp(t_neg(t_mul(g, t_softplus(t_neg(a)))))


def t_sigmoid_sub(a: tuple[Any, Any], y: tuple[Any, Any]) -> tuple[Any, Any]:
    return t_sub(t_sigmoid(a), y)


def t_exp_sub(a: tuple[Any, Any], y: tuple[Any, Any]) -> tuple[Any, Any]:
    return t_sub(t_exp(a), y)


def t_log_sub(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """``log a − b`` (:class:`symloss.primitives.log_sub`) as a pair: :func:`log_sub_pair` of
    the high parts, good to about 2⁻¹¹⁵ of ``|log a| + |b|`` next to the root ``b = log a``,
    where ``t_sub(t_log(a), b)`` keeps 2⁻¹⁰⁶ of ``|log a|``; the low parts to first order
    (``log(a₀ + a₁) = log a₀ + a₁/a₀ + O(2⁻¹⁰⁶)``). NaN where ``a`` is not positive and finite
    or ``b`` not finite (the plain form answers there: :func:`t_final`)."""
    rh, rl, ok = log_sub_pair(a[0], b[0])
    rl = rl + (a[1] / _sel(ok, a[0], 1.0) - b[1])
    sh, sl = two_sum(rh, rl)
    return _sel(ok, sh, np.nan), _sel(ok, sl, np.nan)


def t_clamp_min(a: tuple[Any, Any], lo: Any) -> tuple[Any, Any]:
    """``max(a, lo)`` for a float ``lo`` (:class:`symloss.primitives.clamped_log`'s −100);
    NaN stays NaN."""
    below = a[0] < lo
    return _sel(below, lo, a[0]), _sel(below, 0.0, a[1])


def t_hypot1m1(a: tuple[Any, Any]) -> tuple[Any, Any]:
    """``√(1 + a²) − 1`` (:class:`symloss.catalog_boosting.hypot1m1`) as ``a²/(√(1 + a²) + 1)``:
    nothing cancels where ``a`` is tiny; past ``|a| = 2⁵⁰⁰`` (``a²`` overflows) the difference,
    which cancels nothing there."""
    h = t_hypot1(a)
    big = np.abs(a[0]) > 3.273390607896142e150
    x = (_sel(big, 0.0, a[0]), _sel(big, 0.0, a[1]))
    qh, ql = t_quot(t_mul(x, x), t_add(h, (1.0, 0.0)))
    dh, dl = t_sub(h, (1.0, 0.0))
    return _sel(big, dh, qh), _sel(big, dl, ql)


def t_final(a: tuple[Any, Any], plain: Any) -> Any:
    """``hi + lo`` rounded once; the plain float evaluation where the pair is not finite (an
    intermediate beyond double-double's range: there the stable float form is the answer)."""
    r = a[0] + a[1]
    # below the smallest normal number the pair has lost its low part: flush to 0 (allowed)
    r = np.where(np.abs(r) < 2.2250738585072014e-308, 0.0 * r, r)
    # NaN in, NaN out: the plain form's printing propagates NaN through a Piecewise, the
    # pair's selection does not
    return np.where(np.isfinite(r) & ~np.isnan(plain), r, plain)


#: A double-double result ``r`` of a form whose terms' magnitudes sum to ``M`` is trusted where
#: ``|r| ≥ UNCERTIFIED·M``: its error, a few 2⁻¹⁰⁴·M (up to 2¹²·2⁻¹⁰⁴·M where e^u amplifies the
#: rounding of a large exponent u), is then under 2⁻⁵³|r|. Below, more than 39 bits cancel and
#: the evaluators return NaN, which :mod:`symloss.exact` replaces by the exact value (mpmath).
UNCERTIFIED = 2.0**-39


#: Terms below this (2⁻⁹⁶⁸) leave a pair's low part subnormal: fewer than 106 bits. A normal
#: result of such terms is not trusted either (a subnormal one may flush, as allowed).
TINY_TERMS = 2.0**-968


def certified(r: Any, m: Any) -> Any:
    """``r``, or NaN where ``|r| < UNCERTIFIED·m`` (see :data:`UNCERTIFIED`) or where a
    normal ``r`` comes from terms below :data:`TINY_TERMS`. An exact 0 passes only where
    ``UNCERTIFIED·m`` is below the smallest normal number (the exact value may then flush to
    0): elsewhere the pair cancelling to its last bit does not tell an exact root from a value
    below the pair's precision (tweedie's deviance at z = log y: 0 here, 1.9e-34 exactly)."""
    a = np.abs(r)
    with np.errstate(invalid="ignore"):
        bound = UNCERTIFIED * m
        bad = ((a < bound) & ((r != 0.0) | (bound >= 2.2250738585072014e-308))) | (
            (m < TINY_TERMS) & (a >= 2.2250738585072014e-308))
        return np.where(bad, np.nan, r)


def _t_final_scalar(a: tuple[Any, Any], plain: Any) -> Any:
    if plain != plain:
        return plain
    r = a[0] + a[1]
    if abs(r) < 2.2250738585072014e-308:
        return 0.0 * r
    return r if np.isfinite(r) else plain


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


# --------------------------------------------------------------------------- softmax − target
# pᵢ T − yᵢ = (eᵢ Aᵢ − yᵢ Bᵢ)/D with Aᵢ = Σ_{k≠i} yₖ and Bᵢ = Σ_{j≠i} eⱼ (T = Σ y, e = e^(z − m),
# D = Σ e): a difference of two small terms where both pᵢ and yᵢ are ≈ 1 (not of two terms ≈ 1).
# Aᵢ is T − yᵢ except at the largest y, where it is U = the sum of the others; Bᵢ is D − eᵢ
# except at the arg-max of z, where it is S = the sum of the others (there eᵢ = 1). T − yᵢ and
# D − eᵢ elsewhere are at least half of T and D: no cancellation.
#
# The compiled row functions compute every class's double-double value in one loop without
# calls or branches (both sides of each choice computed, then selected), which LLVM vectorizes,
# and leave it, rounded, in ``lbuf``; the per-class functions the kernels call only read it.
def _argmax(x: Any) -> Any:
    """The first index of the largest element of a row (compiled)."""
    top = 0
    for j in range(x.shape[0]):
        if x[j] > x[top]:
            top = j
    return top


def _final_r(r: Any, plain: Any) -> Any:
    """:func:`_t_final_scalar` of a pair already summed (``r = hi + lo``): the same bits."""
    if plain != plain:
        return plain
    if abs(r) < 2.2250738585072014e-308:
        return 0.0 * r
    return r if np.isfinite(r) else plain


def softmax_sub_row_m(z: Any, y: Any, m: Any, buf: Any, lbuf: Any) -> Any:
    """A row's values for :func:`softmax_sub_at_m` in one pass (compiled; ``z``, ``y`` one row,
    ``m`` its max): the pairs ``S = Σ_{j≠argmax z} e^(zⱼ − m)``, ``T = Σ y``,
    ``U = Σ_{k≠argmax y} yₖ``, the arg-maxes of z and y (first, as floats) and the pair
    ``1/D = 1/(1 + S)``; every ``e^(z − m)``'s float64 value in ``buf`` (overwritten) and every
    class's ``(eᵢAᵢ − yᵢBᵢ)·(1/D)``, its pair summed, in ``lbuf``."""
    n = z.shape[0]
    zmax, ymax = _argmax(z), _argmax(y)
    for j in range(n):  # no calls, no dependence: vectorized
        buf[j], lbuf[j] = t_exp(two_sum(z[j] + 0.0, -m))
    sh, sl, th, tl, uh, ul = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for j in range(n):
        eh, el = buf[j], lbuf[j]
        if j != zmax:
            sh, sl = dd_add(sh, sl, eh, el)
        yj = y[j] + 0.0
        th, tl = dd_add(th, tl, yj, 0.0)
        if j != ymax:
            uh, ul = dd_add(uh, ul, yj, 0.0)
    dh, dl = t_add((1.0, 0.0), (sh, sl))
    ih, il = t_div((1.0, 0.0), (dh, dl))
    for i in range(n):  # no calls, no branches: vectorized
        yi = np.float64(y[i])
        e = (buf[i], lbuf[i])
        ta = t_sub((th, tl), (yi, 0.0))
        tb = t_sub((dh, dl), e)
        top_y, top_z = i == ymax, i == zmax
        a = (_sel(top_y, uh, ta[0]), _sel(top_y, ul, ta[1]))
        b = (_sel(top_z, sh, tb[0]), _sel(top_z, sl, tb[1]))
        rh, rl = t_mul(t_sub(t_mul(e, a), t_mul((yi, 0.0), b)), (ih, il))
        lbuf[i] = rh + rl
    return sh, sl, th, tl, uh, ul, float(zmax), float(ymax), ih, il


def softmax_sub_at_m(z: Any, y: Any, buf: Any, lbuf: Any, i: Any, yi: Any, sh: Any, sl: Any,
                     th: Any, tl: Any, uh: Any, ul: Any, zmax: Any, ymax: Any, ih: Any,
                     il: Any, plain: Any) -> Any:
    """``softmax(z)ᵢ·T − yᵢ = (eᵢAᵢ − yᵢBᵢ)·(1/D)`` in double-double, rounded once (``plain``
    where the pair is not finite): :func:`softmax_sub_row_m` left it in ``lbuf[i]``."""
    return _final_r(lbuf[i], plain)


def softmax_sub_at_v(z: Any, y: Any, buf: Any, lbuf: Any, i: Any, yi: Any, sh: Any, sl: Any,
                     th: Any, tl: Any, uh: Any, ul: Any, zmax: Any, ymax: Any, ih: Any,
                     il: Any, plain: Any) -> Any:
    """float32 results whose float64 form cancels more than 6 bits (a float64 exp good to
    6e-11 then leaves too few): the row's values here (:func:`softmax_sub_row_m`; the kernel
    passes zeros for them and computes no row of its own), then :func:`softmax_sub_at_m`."""
    m = z[0] + 0.0
    for j in range(z.shape[0]):
        m = max(m, z[j] + 0.0)
    softmax_sub_row_m(z, y, m, buf, lbuf)
    return _final_r(lbuf[i], plain)


# --------------------------------------------------------------------------- log-softmax pairs
# log softmax(z)ᵢ = (zᵢ − m) − log1p(S), S = Σ_{j≠argmax} e^(zⱼ − m): zᵢ − m an exact pair
# (TwoSum), every e^(zⱼ − m) a pair (t_exp: no libm call), S summed in double-double in class
# order, log1p(S) a pair (t_log1p). A class-axis loss value (cross_entropy's −Σ yₖ log pₖ) is
# then one pair, rounded once (primitives.accurate): the same operations in the same order in
# both evaluators -- the compiled row functions on one row, the NumPy ones on every row at once.
def _row_lse(z: Any) -> tuple[Any, Any, Any]:
    """``(m, lh, ll)`` of one row (compiled): its max and the pair ``log1p(S)``."""
    top = _argmax(z)
    m = z[top] + 0.0
    sh, sl = 0.0, 0.0
    for j in range(z.shape[0]):
        if j != top:
            eh, el = t_exp(two_sum(z[j] + 0.0, -m))
            sh, sl = dd_add(sh, sl, eh, el)
    lh, ll = t_log1p((sh, sl))
    return m, lh, ll


def _t_log_softmax_at_row(z: Any, i: Any) -> tuple[Any, Any]:
    """``log softmax(z)ᵢ`` of one row as a pair (compiled)."""
    m, lh, ll = _row_lse(z)
    return t_sub(two_sum(z[i] + 0.0, -m), (lh, ll))


def _t_lsm_dot_row(z: Any, y: Any) -> tuple[Any, Any]:
    """``Σₖ yₖ log softmax(z)ₖ`` of one row as a pair (compiled); ``y`` 1.0 for every class
    where ``y`` is ``z`` itself (:func:`t_lsm_sum`)."""
    m, lh, ll = _row_lse(z)
    ah, al = 0.0, 0.0
    for k in range(z.shape[0]):
        ah, al = t_add((ah, al), t_scale(y[k] + 0.0, t_sub(two_sum(z[k] + 0.0, -m), (lh, ll))))
    return ah, al


def _t_lsm_sum_row(z: Any) -> tuple[Any, Any]:
    m, lh, ll = _row_lse(z)
    ah, al = 0.0, 0.0
    for k in range(z.shape[0]):
        ah, al = t_add((ah, al), t_sub(two_sum(z[k] + 0.0, -m), (lh, ll)))
    return ah, al


#: The first tier's bound (the kernels, float64 results): ``log1p(S)`` from the exponential
#: pass's pairs (``symloss._fastmath.exp_shifted_pair``, within 2⁻⁷² of each ``e^(zⱼ − m)`` for
#: ``zⱼ − m ≥ −600``) is within ``2⁻⁷²·log1p(S)`` (``S/((1 + S) log1p S) ≤ 1``) and a few
#: 2⁻¹⁰⁴ of its terms; a class's ``(zₖ − m) − log1p(S)`` then within ``2⁻⁷¹`` of
#: ``|zₖ − m| + log1p(S)``, taken with a margin of 8.
TIER_LSE_ERR = 2.0**-68
#: The smallest exponential the first tier takes (2⁻⁸⁶⁰: ``zⱼ − m ≥ −596``); NaN fails.
TIER_LSE_MIN_E = 2.0**-860


#: Ziv's rounding test, read by the compiled tiers below: bound to
#: :func:`symloss._bits.rounds_alone` in their namespace (:func:`_namespace`); written with the
#: float's bits there, in a leaf that imports numba, as this module must not.
rounds_alone: Any = None


def _row_lse_tier(z: Any, buf: Any, bl: Any) -> tuple[Any, Any, Any, Any]:
    """:func:`_row_lse` from the kernel's exponentials ``(buf, bl)`` (compiled): ``(m, lh,
    ll, ok)``, ``ok`` where every exponential is within the tier's range."""
    top = _argmax(z)
    m = z[top] + 0.0
    sh, sl = 0.0, 0.0
    ok = True
    for j in range(z.shape[0]):
        if j != top:
            ok = ok and buf[j] >= TIER_LSE_MIN_E
            sh, sl = dd_add(sh, sl, buf[j], bl[j])
    lh, ll = t_log1p((sh, sl))
    return m, lh, ll, ok


def t_log_softmax_at_m(z: Any, i: Any, buf: Any, bl: Any) -> tuple[Any, Any]:
    """:func:`_t_log_softmax_at_row` in the float64 kernels (compiled): first from the
    exponential pass's pairs, taken where every value within :data:`TIER_LSE_ERR` of the pair
    rounds to the same float (Ziv's test, ``symloss._bits.rounds_alone``): then it is the
    exact value rounded once, as the double-double row's is (its error is far smaller) -- the
    same bits without ``C`` exponentials in double-double; else the double-double row."""
    m, lh, ll, ok = _row_lse_tier(z, buf, bl)
    dh, dl = two_sum(z[i] + 0.0, -m)
    vh, vl = t_sub((dh, dl), (lh, ll))
    if ok and rounds_alone(vh, vl, TIER_LSE_ERR * (abs(dh) + abs(lh))):
        return vh, vl
    return t_log_softmax_at(z, i)  # (compiled: the row function)


def t_log_softmax_at_v(z: Any, i: Any, buf: Any, bl: Any) -> tuple[Any, Any]:
    """float32 results (their exponentials are not pairs): the double-double row."""
    return t_log_softmax_at(z, i)  # (compiled: the row function)


def t_lsm_dot_m(z: Any, y: Any, buf: Any, bl: Any) -> tuple[Any, Any]:
    """:func:`_t_lsm_dot_row` in the float64 kernels, first tier as :func:`t_log_softmax_at_m`
    (the bound the sum of each class's, times ``|yₖ|``: a sum that cancels fails the test)."""
    m, lh, ll, ok = _row_lse_tier(z, buf, bl)
    ah, al, size = 0.0, 0.0, 0.0
    for k in range(z.shape[0]):
        dh, dl = two_sum(z[k] + 0.0, -m)
        yk = y[k] + 0.0
        ah, al = t_add((ah, al), t_scale(yk, t_sub((dh, dl), (lh, ll))))
        size += abs(yk) * (abs(dh) + abs(lh))
    if ok and rounds_alone(ah, al, TIER_LSE_ERR * size):
        return ah, al
    return t_lsm_dot(z, y)


def t_lsm_dot_v(z: Any, y: Any, buf: Any, bl: Any) -> tuple[Any, Any]:
    return t_lsm_dot(z, y)


def t_lsm_sum_m(z: Any, buf: Any, bl: Any) -> tuple[Any, Any]:
    """:func:`_t_lsm_sum_row` in the float64 kernels, first tier as :func:`t_lsm_dot_m`."""
    m, lh, ll, ok = _row_lse_tier(z, buf, bl)
    ah, al, size = 0.0, 0.0, 0.0
    for k in range(z.shape[0]):
        dh, dl = two_sum(z[k] + 0.0, -m)
        ah, al = t_add((ah, al), t_sub((dh, dl), (lh, ll)))
        size += abs(dh) + abs(lh)
    if ok and rounds_alone(ah, al, TIER_LSE_ERR * size):
        return ah, al
    return t_lsm_sum(z)


def t_lsm_sum_v(z: Any, buf: Any, bl: Any) -> tuple[Any, Any]:
    return t_lsm_sum(z)


def _lse(z: Any) -> tuple[Any, Any, Any, Any]:
    """:func:`_row_lse` of every row of ``z`` (the class axis last) at once, and the pairs
    ``zₖ − m`` (NumPy)."""
    z = np.asarray(z, dtype=np.float64)
    top = np.argmax(z, axis=-1)[..., None]
    m = np.take_along_axis(z, top, axis=-1)
    xh, xl = two_sum(z, -m)
    eh, el = t_exp((xh, xl))
    sh = np.zeros(m.shape)
    sl = np.zeros(m.shape)
    for j in range(z.shape[-1]):
        keep = top != j
        nh, nl = dd_add(sh, sl, eh[..., j:j + 1], el[..., j:j + 1])
        sh, sl = np.where(keep, nh, sh), np.where(keep, nl, sl)
    lh, ll = t_log1p((sh, sl))
    return xh, xl, lh, ll


def t_lsm_dot(z: Any, y: Any) -> tuple[Any, Any]:
    """``Σₖ yₖ log softmax(z)ₖ`` along the last axis as a pair (kept, length 1): the NumPy
    evaluator's; the compiled twin (:func:`_t_lsm_dot_row`) takes one row, the same bits."""
    with np.errstate(all="ignore"):
        xh, xl, lh, ll = _lse(z)
        y = np.broadcast_to(np.asarray(y, dtype=np.float64), xh.shape)
        ah, al = np.zeros(lh.shape), np.zeros(lh.shape)
        for k in range(xh.shape[-1]):
            th, tl = t_scale(y[..., k:k + 1], t_sub((xh[..., k:k + 1], xl[..., k:k + 1]),
                                                    (lh, ll)))
            ah, al = t_add((ah, al), (th, tl))
        return ah, al


def t_lsm_sum(z: Any) -> tuple[Any, Any]:
    """``Σₖ log softmax(z)ₖ`` along the last axis as a pair (kept, length 1)."""
    with np.errstate(all="ignore"):
        xh, xl, lh, ll = _lse(z)
        ah, al = np.zeros(lh.shape), np.zeros(lh.shape)
        for k in range(xh.shape[-1]):
            ah, al = t_add((ah, al), t_sub((xh[..., k:k + 1], xl[..., k:k + 1]), (lh, ll)))
        return ah, al


def _t_lsm_dot2_row(z: Any, y: Any, w: Any) -> tuple[Any, Any]:
    """``Σₖ wₖ yₖ log softmax(z)ₖ`` of one row as a pair (compiled; ``w`` the class weights)."""
    m, lh, ll = _row_lse(z)
    ah, al = 0.0, 0.0
    for k in range(z.shape[0]):
        t = t_scale(y[k] + 0.0, t_sub(two_sum(z[k] + 0.0, -m), (lh, ll)))
        ah, al = t_add((ah, al), t_scale(w[k] + 0.0, t))
    return ah, al


def _class_rows(*arrays: Any) -> list[Any]:
    """``arrays`` as float64, broadcast against each other (a row of class weights against
    the rows of a 2-D target), the class axis last."""
    return list(np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays)))


def t_lsm_dot2(z: Any, y: Any, w: Any) -> tuple[Any, Any]:
    """``Σₖ wₖ yₖ log softmax(z)ₖ`` along the last axis as a pair (kept, length 1): the NumPy
    evaluator's; the compiled twin (:func:`_t_lsm_dot2_row`) takes one row, the same bits."""
    with np.errstate(all="ignore"):
        xh, xl, lh, ll = _lse(z)
        y, w = _class_rows(y, w, xh)[:2]
        ah, al = np.zeros(lh.shape), np.zeros(lh.shape)
        for k in range(xh.shape[-1]):
            t = t_scale(y[..., k:k + 1], t_sub((xh[..., k:k + 1], xl[..., k:k + 1]), (lh, ll)))
            ah, al = t_add((ah, al), t_scale(w[..., k:k + 1], t))
        return ah, al


def t_log_softmax_at(z: Any, i: Any) -> tuple[Any, Any]:
    """``log softmax(z)ᵢ`` as a pair: the compiled row function's (the NumPy evaluator never
    reads one class of a row)."""
    raise NotImplementedError("log_softmax of one class: the compiled row function only")


def np_softmax_sub(z: Any, y: Any, plain: Any) -> Any:
    """``softmax(z)ᵢ Σₖ yₖ − yᵢ`` along the last axis (the NumPy path's printing of
    :class:`symloss.primitives.softmax_sub`): ``(eᵢ Aᵢ − yᵢ Bᵢ)/D`` with every exponential and
    sum in double-double, so that the result keeps its digits where pᵢ·Σy ≈ yᵢ."""
    z = np.asarray(z, dtype=np.float64)
    y = np.array(np.broadcast_to(np.asarray(y, dtype=np.float64), z.shape))
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        xh, xl = two_sum(z, -m)
        eh, el = t_exp((xh, xl))
        top_z = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(top_z, np.argmax(z, axis=-1)[..., None], True, axis=-1)
        top_y = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(top_y, np.argmax(y, axis=-1)[..., None], True, axis=-1)
        zero = 0.0 * eh[..., :1]
        sh, sl, th, tl, uh, ul = zero, zero, zero, zero, zero, zero
        for j in range(z.shape[-1]):
            keep_z, keep_y = ~top_z[..., j:j + 1], ~top_y[..., j:j + 1]
            sh, sl = dd_add(sh, sl, np.where(keep_z, eh[..., j:j + 1], 0.0),
                            np.where(keep_z, el[..., j:j + 1], 0.0))
            th, tl = dd_add(th, tl, y[..., j:j + 1], 0.0)
            uh, ul = dd_add(uh, ul, np.where(keep_y, y[..., j:j + 1], 0.0), 0.0)
        d = t_add((1.0 + zero, zero), (sh, sl))
        rest_t = t_sub((th, tl), (y, 0.0 * y))
        a = (np.where(top_y, uh, rest_t[0]), np.where(top_y, ul, rest_t[1]))
        rest_d = t_sub(d, (eh, el))
        b = (np.where(top_z, sh, rest_d[0]), np.where(top_z, sl, rest_d[1]))
        n = t_sub(t_mul((eh, el), a), t_mul((y, 0.0 * y), b))
        return t_final(t_mul(n, t_div((1.0 + zero, zero), d)), plain)


# --------------------------------------------------------------- softmax − weighted target
# (Σₖ aₖ) pᵢ − aᵢ for per-class target weights aₖ given as exact pairs (class weights, label
# smoothing: aₖ = wₖ((1 − ε) yₖ + ε/C)): the same (eᵢ Aᵢ − aᵢ Bᵢ)/D, with Aᵢ = T − aᵢ except at
# the largest a, where it is U = the sum of the others; every product and sum in double-double.
# A row whose weights are near the top of the range (Σ|a|·(C + 1) above SPLIT_MAX: one
# comparison per row) takes its products from t_prod, whose Dekker splits do not overflow.
def _suba_big(size: Any, n: Any) -> Any:
    """Whether a row of target weights whose magnitudes sum to ``size`` (``n`` classes) can
    give :func:`softmax_suba_row_m` an operand above :data:`SPLIT_MAX` (Σa − aᵢ and aᵢ are at
    most ``size``, eᵢ(Σa − aᵢ) − aᵢ(D − eᵢ) at most ``(n + 1)·size``, D ≤ n): then its products
    are :func:`t_prod`'s (the same bits wherever no operand is that large)."""
    return size * (n + 1.0) > SPLIT_MAX


def softmax_suba_row_m(z: Any, ah: Any, al: Any, m: Any, buf: Any, lbuf: Any) -> Any:
    """:func:`softmax_sub_row_m` for the target weights ``a = ah + al`` (pairs, one row):
    every class's ``(eᵢAᵢ − aᵢBᵢ)·(1/D)``, its pair summed, in ``lbuf``; ``buf`` overwritten."""
    n = z.shape[0]
    zmax, amax = _argmax(z), _argmax(ah)
    for j in range(n):  # no calls, no dependence: vectorized
        buf[j], lbuf[j] = t_exp(two_sum(z[j] + 0.0, -m))
    sh, sl, th, tl, uh, ul, size = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for j in range(n):
        eh, el = buf[j], lbuf[j]
        if j != zmax:
            sh, sl = dd_add(sh, sl, eh, el)
        th, tl = dd_add(th, tl, ah[j], al[j])
        if j != amax:
            uh, ul = dd_add(uh, ul, ah[j], al[j])
        size += abs(ah[j])
    dh, dl = t_add((1.0, 0.0), (sh, sl))
    ih, il = t_div((1.0, 0.0), (dh, dl))
    big = _suba_big(size, n)
    for i in range(n):  # no calls; the one branch the same for the row: vectorized
        ai = (ah[i], al[i])
        e = (buf[i], lbuf[i])
        ta = t_sub((th, tl), ai)
        tb = t_sub((dh, dl), e)
        top_a, top_z = i == amax, i == zmax
        a = (_sel(top_a, uh, ta[0]), _sel(top_a, ul, ta[1]))
        b = (_sel(top_z, sh, tb[0]), _sel(top_z, sl, tb[1]))
        if big:
            rh, rl = t_prod(t_sub(t_prod(a, e), t_prod(ai, b)), (ih, il))
        else:
            rh, rl = t_mul(t_sub(t_mul(a, e), t_mul(ai, b)), (ih, il))
        lbuf[i] = rh + rl
    return ih


def softmax_suba_at_m(z: Any, ah: Any, al: Any, buf: Any, lbuf: Any, i: Any, plain: Any) -> Any:
    """``(Σₖ aₖ) pᵢ − aᵢ`` in double-double, rounded once (``plain`` where the pair is not
    finite): :func:`softmax_suba_row_m` left it in ``lbuf[i]``."""
    return _final_r(lbuf[i], plain)


def softmax_suba_at_v(z: Any, ah: Any, al: Any, buf: Any, lbuf: Any, i: Any, plain: Any) -> Any:
    """float32 results whose float64 form cancels: the row's values here
    (:func:`softmax_suba_row_m`), then :func:`softmax_suba_at_m`."""
    m = z[0] + 0.0
    for j in range(z.shape[0]):
        m = max(m, z[j] + 0.0)
    softmax_suba_row_m(z, ah, al, m, buf, lbuf)
    return _final_r(lbuf[i], plain)


def np_softmax_suba(z: Any, a: Any, plain: Any) -> Any:
    """``(Σₖ aₖ) softmax(z)ᵢ − aᵢ`` along the last axis for target weights given as a pair
    ``a = (hi, lo)`` of arrays (the NumPy path's printing of
    :class:`symloss.primitives.softmax_sub` of a weighted target), as
    :func:`softmax_suba_row_m` computes it (:func:`t_prod`'s products for every row where
    one row needs them: the same bits)."""
    z = np.asarray(z, dtype=np.float64)
    ah = np.array(np.broadcast_to(np.asarray(a[0], dtype=np.float64), z.shape))
    al = np.array(np.broadcast_to(np.asarray(a[1], dtype=np.float64), z.shape))
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        eh, el = t_exp(two_sum(z, -m))
        top_z = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(top_z, np.argmax(z, axis=-1)[..., None], True, axis=-1)
        top_a = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(top_a, np.argmax(ah, axis=-1)[..., None], True, axis=-1)
        zero = 0.0 * eh[..., :1]
        sh, sl, th, tl, uh, ul = zero, zero, zero, zero, zero, zero
        for j in range(z.shape[-1]):
            keep_z, keep_a = ~top_z[..., j:j + 1], ~top_a[..., j:j + 1]
            aj = (ah[..., j:j + 1], al[..., j:j + 1])
            sh, sl = dd_add(sh, sl, np.where(keep_z, eh[..., j:j + 1], 0.0),
                            np.where(keep_z, el[..., j:j + 1], 0.0))
            th, tl = dd_add(th, tl, *aj)
            uh, ul = dd_add(uh, ul, np.where(keep_a, aj[0], 0.0), np.where(keep_a, aj[1], 0.0))
        d = t_add((1.0 + zero, zero), (sh, sl))
        rest_t = t_sub((th, tl), (ah, al))
        a2 = (np.where(top_a, uh, rest_t[0]), np.where(top_a, ul, rest_t[1]))
        rest_d = t_sub(d, (eh, el))
        b = (np.where(top_z, sh, rest_d[0]), np.where(top_z, sl, rest_d[1]))
        mul = t_prod if np.any(_suba_big(np.sum(np.abs(ah), axis=-1), z.shape[-1])) \
            else t_mul
        n = t_sub(mul(a2, (eh, el)), mul((ah, al), b))
        return t_final(mul(n, t_div((1.0 + zero, zero), d)), plain)


# ------------------------------------------------------ cross-entropy's Hessian-vector product
# pᵢ(vᵢ − Σₖ pₖvₖ) = eᵢ((vᵢ − c) + W/D)/D with e = e^(z − m), D = Σ e, W = Σₖ eₖ(c − vₖ) and c
# the v of the arg-max of z: the bracket's error is the probabilities' times Σₖ pₖ|vₖ − v̄|, so
# it needs every eₖ to ~2⁻¹⁰⁰ wherever vᵢ is near the p-weighted mean v̄.
def _softmax_hvp_pairs(z: Any, v: Any, m: Any, buf: Any, lbuf: Any) -> Any:
    """A row's pairs ``1/D`` and ``W/D`` (``D = Σ e``, ``W = Σₖ eₖ(c − vₖ)``) and ``c``
    (compiled; ``z``, ``v`` one row, ``m`` its max); each ``e = e^(z − m)``'s float64 value in
    ``buf`` and every class's ``eᵢ((vᵢ − c) + W/D)/D``, its pair summed, in ``lbuf``."""
    n = z.shape[0]
    c = v[_argmax(z)] + 0.0
    for j in range(n):  # no calls, no dependence: vectorized
        buf[j], lbuf[j] = t_exp(two_sum(z[j] + 0.0, -m))
    dh, dl, wh, wl = 0.0, 0.0, 0.0, 0.0
    for j in range(n):
        eh, el = buf[j], lbuf[j]
        dh, dl = dd_add(dh, dl, eh, el)
        wh, wl = t_add((wh, wl), t_mul((eh, el), two_sum(c, -v[j])))
    ih, il = t_div((1.0, 0.0), (dh, dl))
    mh, ml = t_mul((wh, wl), (ih, il))
    for i in range(n):  # no calls, no branches: vectorized
        b = t_add(two_sum(np.float64(v[i]), -c), (mh, ml))
        rh, rl = t_mul(t_mul((buf[i], lbuf[i]), b), (ih, il))
        lbuf[i] = rh + rl
    return ih, il, mh, ml, c


def softmax_hvp_row_m(z: Any, v: Any, m: Any, buf: Any, lbuf: Any) -> Any:
    """A row's values for :func:`softmax_hvp_at_m` (compiled; ``z``, ``v`` one row, ``m`` its
    max): the pairs ``1/D`` and ``W/D`` (``D = Σ e^(z − m)``, ``W = Σₖ eₖ(c − vₖ)``) and ``c``;
    every ``e^(z − m)``'s float64 value in ``buf`` (overwritten) and every class's result in
    ``lbuf`` (:func:`_softmax_hvp_pairs`)."""
    return _softmax_hvp_pairs(z, v, m, buf, lbuf)


def softmax_hvp_row_v(z: Any, v: Any, m: Any, buf: Any, lbuf: Any) -> Any:
    """:func:`softmax_hvp_row_m` for float32 results: ``c`` only (the few elements whose float64
    form cancels compute the rest in :func:`softmax_hvp_at_v`)."""
    return 0.0, 0.0, 0.0, 0.0, v[_argmax(z)] + 0.0


def softmax_hvp_at_m(z: Any, v: Any, buf: Any, lbuf: Any, i: Any, m: Any, vi: Any, ih: Any,
                     il: Any, mh: Any, ml: Any, c: Any, size: Any, plain: Any) -> Any:
    """``pᵢ(vᵢ − Σₖ pₖvₖ)`` as ``eᵢ((vᵢ − c) + W/D)/D`` in double-double, rounded once
    (``plain``, the float64 form, where the pair is not finite): :func:`softmax_hvp_row_m`
    left it in ``lbuf[i]``."""
    return _final_r(lbuf[i], plain)


def softmax_hvp_sat_m(z: Any, v: Any, buf: Any, lbuf: Any, i: Any, m: Any, vi: Any, ih: Any,
                     il: Any, mh: Any, ml: Any, c: Any, size: Any, scale: Any,
                     plain: Any) -> Any:
    """:func:`softmax_hvp_at_m` times ``scale`` before the flush below the normal range:
    ``scale·pᵢ(vᵢ − Σₖ pₖvₖ)`` is normal where the unscaled value may not be."""
    return _final_r(lbuf[i] * scale, plain)


def softmax_hvp_sat_v(z: Any, v: Any, buf: Any, lbuf: Any, i: Any, m: Any, vi: Any, ih: Any,
                      il: Any, mh: Any, ml: Any, c: Any, size: Any, scale: Any,
                      plain: Any) -> Any:
    """:func:`softmax_hvp_at_v` times ``scale`` (float32 results: nothing flushes)."""
    return scale * softmax_hvp_at_v(z, v, buf, lbuf, i, m, vi, ih, il, mh, ml, c, size, plain)


def softmax_hvp_at_v(z: Any, v: Any, buf: Any, lbuf: Any, i: Any, m: Any, vi: Any, ih: Any,
                     il: Any, mh: Any, ml: Any, c: Any, size: Any, plain: Any) -> Any:
    """float32 results where the float64 form ``plain`` cancels more than 6 bits of its terms'
    ``size`` (its probabilities come from a float64 exp good to 6e-11): again with libm's exp
    (≤ 1 float64 ulp; z − m is exact for float32 logits), within 2⁻²⁸ of a float32 ulp where
    it cancels at most 2⁻²⁰ of its terms; else in double-double."""
    d, w = 0.0, 0.0
    for j in range(z.shape[0]):
        ej = np.exp((z[j] + 0.0) - m)
        d += ej
        w += ej * (c - v[j])
    e = np.exp((z[i] + 0.0) - m)
    again = (e / d) * ((vi - c) + w / d)
    if abs(again) >= 9.5367431640625e-07 * (e / d) * size or again != again:
        return again
    _softmax_hvp_pairs(z, v, m, buf, lbuf)
    return _final_r(lbuf[i], again)


def np_softmax_hvp(z: Any, v: Any, plain: Any, scale: Any = None) -> Any:
    """``pᵢ(vᵢ − Σₖ pₖvₖ)`` along the last axis (the NumPy path's printing of
    :class:`symloss.primitives.softmax_hvp`), as :func:`softmax_hvp_at_m` computes it; times
    ``scale`` (a float, or an array broadcast along the rows) after the pair's rounding and
    before the flush below the normal range, as :func:`softmax_hvp_sat_m` (the compiled
    kernels keep only the rounded pair: rounding the scaled pair instead put the evaluators
    2 ulp apart on soft cross-entropy, mean reduction)."""
    z = np.asarray(z, dtype=np.float64)
    v = np.array(np.broadcast_to(np.asarray(v, dtype=np.float64), z.shape))
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        c = np.take_along_axis(v, np.argmax(z, axis=-1)[..., None], axis=-1)
        eh, el = t_exp(two_sum(z, -m))
        zero = 0.0 * c
        d, w = (zero, zero), (zero, zero)
        for j in range(z.shape[-1]):
            e = (eh[..., j:j + 1], el[..., j:j + 1])
            d = t_add(d, e)
            w = t_add(w, t_mul(e, two_sum(c, -v[..., j:j + 1])))
        inv = t_div((1.0 + zero, zero), d)
        b = t_add(two_sum(v, -c), t_mul(w, inv))
        r = t_mul(t_mul((eh, el), b), inv)
        if scale is not None:
            r = t_lift((r[0] + r[1]) * np.asarray(scale, dtype=np.float64))  # _final_r's
        return t_final(r, plain)


# ------------------------------------------------------------ cross-entropy's Hessian diagonal
# pᵢ Σ_{k≠i} pₖ = eᵢ(D − eᵢ)/D² with e = e^(z − m), D = Σ e: as p(1 − p) in float64 its five
# roundings (1 + s among them, half an ulp of a sum up to C) cost up to 4 ulp, and the two
# evaluators' sums s (a plain chain, NumPy's pairwise np.sum) put them 4 floats apart; on pairs
# nothing cancels (D − eᵢ ≥ 1 off the arg-max, the other classes' sum at it), rounded once.
#: Below this ``S = Σ_{k≠argmax} eₖ`` is summed again from exponentials scaled by
#: ``2^SV_SHIFT`` (:func:`_sv_term`): the other classes' ``eₖ`` may lie on the subnormal grid,
#: each then off by up to 2⁻¹⁰⁷⁵, which is up to C/2 units of the last place of an ``S`` near
#: the smallest normal number (30 classes: 5.7 ulp at the arg-max's Hessian diagonal). Above
#: it, C·2⁻¹⁰⁷⁵ is below 2⁻¹⁷⁰ of ``S``'s last place for any C < 2¹²⁰.
SV_RESCALE = 2.0**-900
#: The scaling's exponent; ``S·2^SV_SHIFT`` is scaled back by ``SV_BACK`` after its rounding
#: (exact where the result is a normal number; once more rounded, to the subnormal grid,
#: where it is not).
SV_SHIFT = 600.0
SV_BACK = 2.0**-600


def _sv_term(x: Any, lo: Any) -> tuple[Any, Any]:
    """``e^(x + lo)·2^SV_SHIFT`` as a pair, a normal float for every ``x ≥ −800``
    (:func:`_exp_scaled` times ``2^(k + SV_SHIFT)``, as :func:`t_exp` times ``2ᵏ``); ``x`` below
    is taken as −800 (a term below 2⁻¹¹⁵⁴ of which the sum keeps nothing the final rounding
    sees), NaN stays NaN."""
    uh, ul, k = _exp_parts(x)
    h, f = _exp_scaled(uh, ul, lo)
    s1, s2 = _pow2(k + SV_SHIFT)
    return h * s1 * s2, f * s1 * s2


def softmax_variance_row_m(z: Any, buf: Any, bl: Any, s: Any, lbuf: Any) -> Any:
    """Every class's ``pᵢ Σ_{k≠i} pₖ`` in ``lbuf`` (compiled; ``z`` one row, ``(buf, bl)`` its
    exponentials ``e^(z − m)`` as pairs, the kernel's exp pass, within 2⁻⁷² of them; ``s``
    unused):
    ``eᵢ(D − eᵢ)/D²`` on pairs, ``D − eᵢ`` at the arg-max the sum of the other classes, summed
    apart; as :func:`np_softmax_variance`, whose pairs' error is far below (at most an ulp
    apart, where the value is within 2⁻¹⁹ ulp of a midpoint)."""
    n = z.shape[0]
    a = _argmax(z)
    # S = Σ_{k≠a} eₖ (e_a = 1 exactly): positive terms, so TwoSum's errors and the low parts
    # summed plainly keep S to ~C·2⁻¹⁰⁶ (a chain of double-double adds cost 2x the kernel)
    sh, sl = 0.0, 0.0
    for j in range(n):
        h = buf[j] if j != a else 0.0
        sh, err = two_sum(sh, h)
        sl += err + (bl[j] if j != a else 0.0)
    sh, sl = fast_two_sum(sh, sl)
    dh, dl = dd_add(1.0, 0.0, sh, sl)
    i2 = t_div((1.0, 0.0), t_mul((dh, dl), (dh, dl)))  # 1/D², once a row
    ah, al, back = sh, sl, 1.0  # the arg-max's D − e_a = S
    if sh < SV_RESCALE:  # S near the subnormals: again from scaled exponentials
        ah, al = 0.0, 0.0
        m = z[a] + 0.0
        for j in range(n):
            if j != a:
                xh, xl = two_sum(z[j] + 0.0, -m)
                th, tl = _sv_term(xh, xl)
                ah, err = two_sum(ah, th)
                al += err + tl
        ah, al = fast_two_sum(ah, al)
        back = SV_BACK
    for i in range(n):  # no calls: vectorized
        e = (buf[i], bl[i])
        other = t_sub((dh, dl), e)
        top = i == a
        rest = (ah if top else other[0], al if top else other[1])
        rh, rl = t_mul(t_mul(e, rest), i2)
        lbuf[i] = (rh + rl) * (back if top else 1.0)
    return 0.0


def softmax_variance_row_v(z: Any, buf: Any, bl: Any, s: Any, lbuf: Any) -> Any:
    """:func:`softmax_variance_row_m` for float32 results (``bl`` unused): in float64 from the
    kernel's ``s = Σ_{k≠argmax} eₖ``, ``eᵢ(D − eᵢ)/D²`` with ``D = 1 + s`` (``D − eᵢ`` = ``s``
    where ``eᵢ = 1``), a few float64 ulp from the exact value (2⁻²⁷ of a float32 ulp):
    nothing cancels."""
    d = 1.0 + s
    dd = d * d
    for i in range(z.shape[0]):  # no calls: vectorized
        lbuf[i] = buf[i] * (s if buf[i] == 1.0 else d - buf[i]) / dd
    return 0.0


def np_softmax_variance(z: Any) -> Any:
    """``pᵢ Σ_{k≠i} pₖ = pᵢ(1 − pᵢ)`` along the last axis (the NumPy path's printing of
    :class:`symloss.primitives.softmax_variance`), as :func:`softmax_variance_row_m`
    computes it."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        eh, el = t_exp(two_sum(z, -m))
        gone = z - m == -np.inf  # e = 0 (its pair NaN), as the kernels' exp pass
        eh, el = np.where(gone, 0.0, eh), np.where(gone, 0.0, el)
        top = np.zeros(z.shape, dtype=bool)
        np.put_along_axis(top, np.argmax(z, axis=-1)[..., None], True, axis=-1)
        zero = 0.0 * m

        def others(h: Any, lo: Any, top: Any) -> tuple[Any, Any]:
            # the compiled row's arithmetic: Σ_{k≠argmax} of the pairs in one chain (TwoSum's
            # errors and the low parts summed plainly)
            rh, rl = 0.0 * h[..., :1], 0.0 * h[..., :1]
            for j in range(h.shape[-1]):
                keep = ~top[..., j:j + 1]
                rh, err = two_sum(rh, np.where(keep, h[..., j:j + 1], 0.0))
                rl = rl + (err + np.where(keep, lo[..., j:j + 1], 0.0))
            return fast_two_sum(rh, rl)

        sh, sl = others(eh, el, top)  # S; D = 1 + S (e at the arg-max is 1 exactly)
        dh, dl = dd_add(1.0 + zero, zero, sh, sl)
        i2 = t_div((1.0 + zero, zero), t_mul((dh, dl), (dh, dl)))
        ah, al, back = sh, sl, 1.0 + zero  # the arg-max's D − e_a = S
        low = (sh < SV_RESCALE)[..., 0]
        if low.any():  # S near the subnormals: again from scaled exponentials, those rows
            rh, rl = others(*_sv_term(*two_sum(z[low], -m[low])), top[low])
            ah, al, back = ah.copy(), al.copy(), back.copy()
            ah[low], al[low], back[low] = rh, rl, SV_BACK
        other = t_sub((dh, dl), (eh, el))
        rest = (np.where(top, ah, other[0]), np.where(top, al, other[1]))
        rh, rl = t_mul(t_mul((eh, el), rest), i2)
        return (rh + rl) * np.where(top, back, 1.0)


def np_softmax_hvp_size(z: Any, v: Any) -> Any:
    """The size of :func:`np_softmax_hvp`'s terms, ``pᵢ(|vᵢ − c| + Σₖ pₖ|c − vₖ|)``, for
    :func:`certified` (the compiled kernels print the same from the row's values)."""
    z = np.asarray(z, dtype=np.float64)
    v = np.array(np.broadcast_to(np.asarray(v, dtype=np.float64), z.shape))
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        c = np.take_along_axis(v, np.argmax(z, axis=-1)[..., None], axis=-1)
        e = np.exp(z - m)
        p = e / np.sum(e, axis=-1, keepdims=True)
        return p * (np.abs(v - c) + np.sum(p * np.abs(c - v), axis=-1, keepdims=True))


_ORDER = ("two_sum", "fast_two_sum", "two_prod", "dd_add", "dd_mul", "dd_div", "_split_mul",
          "_pow2", "_exp_reduce", "_exp_parts", "_exp_scaled", "_exp_of_parts",
          "_expm1_of_parts", "dd_exp",
          "dd_expm1", "sigmoid_sub_pair", "sigmoid_sub", "exp_sub_pair", "exp_sub", "_sel",
          "t_lift", "t_neg", "t_add", "t_sub", "t_mul", "t_prod", "t_scale", "t_div", "t_quot",
          "t_where", "t_exp", "t_expm1",
          "t_log1p_from", "t_log1p", "_t_log_near", "_t_log_far", "t_log", "t_xexp", "t_sigmoid",
          "t_softplus", "t_tanh",
          "t_expna", "t_recip1p", "t_sigmoid_r", "t_softplus_l", "t_sigmoid_pow_l",
          "t_sinh", "t_sqrt", "t_hypot1", "hypot1", "tanh", "t_pow", "t_sigmoid_pow", "t_sigmoid_sub", "t_exp_sub",
          "t_final", "softmax_sub_row_m", "softmax_sub_at_m",
          "softmax_sub_at_v", "_suba_big", "softmax_suba_row_m",
          "softmax_suba_at_m", "softmax_suba_at_v", "_softmax_hvp_pairs", "softmax_hvp_row_m",
          "softmax_hvp_row_v",
          "softmax_hvp_at_m", "softmax_hvp_at_v", "softmax_hvp_sat_m", "softmax_hvp_sat_v",
          "_argmax", "_row_lse", "t_log_softmax_at", "t_lsm_dot", "t_lsm_sum", "_row_lse_tier",
          "t_log_softmax_at_m", "t_log_softmax_at_v", "t_lsm_dot_m", "t_lsm_dot_v",
          "t_lsm_sum_m", "t_lsm_sum_v", "t_lsm_dot2",
          "log_sub_pair", "log_sub", "t_log_sub", "t_clamp_min", "t_hypot1m1", "fsum3", "split_sum_row",
          "_ihc_u", "_ihc_near", "_ihc_far", "inv_hypot1_cube", "inv_hypot1_cube_m",
          "inv_hypot1_cube_v", "bernoulli_curvature", "bernoulli_curvature_m",
          "bernoulli_curvature_v", "_sv_term", "softmax_variance_row_m",
          "softmax_variance_row_v")
#: The compiled twins' own versions (scalars: a conditional, not ``numpy.where``).
_SCALAR = {"_sel": "_sel_scalar", "t_lift": "_t_lift_scalar", "t_final": "_t_final_scalar", "t_log": "_t_log_scalar",
           "t_log_softmax_at": "_t_log_softmax_at_row", "t_lsm_dot": "_t_lsm_dot_row",
           "t_lsm_sum": "_t_lsm_sum_row", "t_lsm_dot2": "_t_lsm_dot2_row",
           "inv_hypot1_cube": "_inv_hypot1_cube_scalar",
           "inv_hypot1_cube_m": "_inv_hypot1_cube_scalar"}
_JITTED: dict[str, Any] = {}
_INLINED: dict[str, Any] = {}
#: Compiled ``forceinline``, against each other (``jitted(inline=True)``): the chain up to
#: eᶻ − y and the pair arithmetic of the class-axis row functions. A loop over them has no
#: calls, so LLVM vectorizes it (1.5e5 ``exp_sub`` 54 → 10 ns each, 1e6 ``t_exp`` 80 → 14 ns,
#: the same bits).
_INLINE_ORDER = (*_ORDER[:_ORDER.index("exp_sub") + 1], "_sel", "t_add", "t_sub", "t_mul",
                 "t_prod", "t_scale", "t_div", "t_quot", "t_exp", "t_final", "_argmax",
                 "_final_r", "_suba_big", "bernoulli_curvature",
                 "bernoulli_curvature_m", "bernoulli_curvature_v")
#: The class-axis row functions: compiled against :data:`_INLINE_ORDER`'s functions (their
#: loops over a row's classes have no calls: vectorized); plainly (one function each, as the
#: kernels call them once per row), except the per-class readers in :data:`_ROW_INLINE`.
_ROW_USERS = ("softmax_sub_row_m", "softmax_sub_at_m", "softmax_sub_at_v",
              "softmax_suba_row_m", "softmax_suba_at_m",
              "softmax_suba_at_v",
              "_softmax_hvp_pairs", "softmax_hvp_row_m", "softmax_hvp_row_v", "softmax_hvp_at_m",
              "softmax_hvp_at_v", "softmax_hvp_sat_m", "softmax_hvp_sat_v",
              "_row_lse", "t_log_softmax_at", "t_lsm_dot", "t_lsm_sum", "_row_lse_tier",
              "t_log_softmax_at_m", "t_log_softmax_at_v", "t_lsm_dot_m", "t_lsm_dot_v",
              "t_lsm_sum_m", "t_lsm_sum_v", "t_lsm_dot2", "softmax_variance_row_m",
              "softmax_variance_row_v")
_ROW_INLINE = ("softmax_sub_at_m", "softmax_suba_at_m", "softmax_hvp_at_m",
               "softmax_hvp_sat_m", "softmax_variance_row_m", "softmax_variance_row_v")


def _compile(name: str, namespace: dict[str, Any], inline: bool = False) -> Any:
    """``name``'s code (its compiled twin's, :data:`_SCALAR`) bound to ``namespace``, njit-ed."""
    import numba

    source = globals()[_SCALAR.get(name, name)]
    fn = types.FunctionType(source.__code__, namespace, name, source.__defaults__)
    # LLVM's alwaysinline, not numba's inline="always" (which copies and re-types the IR at
    # every call site: cross_entropy's soft-target row function ~5 s cold that way)
    options: dict[str, Any] = {"forceinline": True} if inline else {}
    return numba.njit(fastmath=False, error_model="numpy", **options)(fn)


def _namespace() -> dict[str, Any]:
    """The module's constants, ``np`` and Ziv's rounding test (compiled only, written with the
    float's bits in :mod:`symloss._bits`, a leaf that imports numba): what the compiled
    functions read besides each other."""
    from ._bits import rounds_alone

    namespace: dict[str, Any] = {k: v for k, v in globals().items() if k.isupper()}
    namespace.update(np=np, math=math, rounds_alone=rounds_alone)
    return namespace


def jitted(inline: bool = False) -> dict[str, Any]:
    """The same functions compiled by numba for scalars (for the generated fast kernels).

    Each function's code is re-bound to a namespace in which the functions it calls are the
    compiled ones, so that numba sees one chain of ``@njit`` functions. With ``inline=True``,
    :data:`_INLINE_ORDER` compiled ``forceinline``: one body without calls, which LLVM can
    vectorize, for kernels that call it on many elements (``exp_sub``: 54 → 10 ns each, the
    same bits). The class-axis row functions (:data:`_ROW_USERS`) are compiled against those.
    """
    if not _INLINED:
        namespace = _namespace()
        for name in _INLINE_ORDER:
            namespace[name] = _compile(name, namespace, inline=True)
        _INLINED.update({name: namespace[name] for name in _INLINE_ORDER})
    if inline:
        return _INLINED
    if not _JITTED:
        namespace = _namespace()
        for name in _ORDER:
            namespace[name] = _compile(name, namespace)
        # (the log-softmax pairs read t_log1p, compiled plainly: one call a row)
        rows = {**_namespace(), "t_log1p": namespace["t_log1p"], **_INLINED}
        for name in _ROW_USERS:
            rows[name] = namespace[name] = _compile(name, rows, inline=name in _ROW_INLINE)
        _JITTED.update({name: namespace[name] for name in _ORDER})
    return _JITTED
