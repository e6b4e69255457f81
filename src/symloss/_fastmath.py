"""Scalar float64 building blocks for the numba kernels of :mod:`symloss.fast`.

Imported only by the kernels that :mod:`symloss.fast` generates (so only when numba is
installed and a kernel is first built). Two flavours of each primitive:

* ``*_v``: ``exp`` is :func:`exp_v`, a branch-free float64 exponential that LLVM vectorizes
  (libm's ``exp`` is an opaque call it cannot). Its relative error is below 6e-11, under
  0.001 of a float32 ulp (6e-8), so float32 results computed with it and rounded once stay
  within 0.501 ulp: this flavour is used for float32 arrays.
* ``*_m``: for float64 arrays, whose results need every bit: :func:`exp_m` is within 0.52
  float64 ulp and branch-free (vectorized where a loop calls it); the other helpers call
  libm (``math.exp``, ``math.log1p``, < 1 ulp).
* ``*_w``: float64 results too, every part branch-free (:func:`exp_m`, fdlibm's log1p, an
  FMA for a product's error), so that LLVM vectorizes a float64 kernel's pass over the label
  arms of a form.
* :func:`vector_dd`: :mod:`symloss.ddouble`'s pair functions compiled to inline, for the
  float64 kernels' vectorized pass over label arms that are double-double forms
  (sigmoid_focal_loss's Hessian).

The helpers a kernel inlines are compiled ``forceinline`` (LLVM's ``alwaysinline``): numba
compiles each once per argument types and LLVM inlines its body at each call, so a kernel's
loop has no calls and vectorizes as before. numba's own ``inline="always"`` copies and re-types
the helper's IR at every call site instead (sigmoid_focal_loss's soft-target float32 gradient,
cold: ~45 -> ~18 s of compiling, the same bits and speed); it is kept only for
:func:`block_rows`, one integer line, cheaper copied than compiled on its own (~0.1 s).
"""

from __future__ import annotations

import math
import threading
import types as pytypes
from typing import Any

import mpmath
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.dispatcher import Dispatcher
from numba.extending import intrinsic

from ._bits import bits_to_float64 as _bits_to_float64
from ._bits import float64_to_bits as _float64_to_bits
from ._bits import rounds_alone as _rounds_alone
from .ddouble import t_log1p_from
from .kernels import FITS1_MARGIN

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k·ln2_hi is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634




@njit(forceinline=True, error_model="numpy")
def _log_v(u: float) -> float:
    """``log(u)`` for finite ``u > 0`` (normal), vectorizable; relative error below 1e-13.

    u = 2^k·f with f in [√½, √2); log f = 2·atanh(s), s = (f − 1)/(f + 1), |s| < 0.172.
    """
    bits = _float64_to_bits(u)
    k = ((bits >> 52) & 0x7FF) - 1023
    f = _bits_to_float64((bits & 0xFFFFFFFFFFFFF) | (1023 << 52))
    big = f > 1.4142135623730951
    f = f * 0.5 if big else f
    k = k + 1 if big else k
    s = (f - 1.0) / (f + 1.0)
    s2 = s * s
    p = 1.0 / 15.0
    p = p * s2 + 1.0 / 13.0
    p = p * s2 + 1.0 / 11.0
    p = p * s2 + 1.0 / 9.0
    p = p * s2 + 1.0 / 7.0
    p = p * s2 + 1.0 / 5.0
    p = p * s2 + 1.0 / 3.0
    p = p * s2 + 1.0
    return k * _LN2_HI + (2.0 * s * p + k * _LN2_LO)


@njit(forceinline=True, error_model="numpy")
def log1p_v(x: float) -> float:
    """``log1p(x)`` for ``x`` in [0, 1], vectorizable (libm's log1p is an opaque call)."""
    u = 1.0 + x
    # Goldberg: log(u)·x/(u − 1) cancels the rounding of 1 + x; u == 1 means log1p(x) = x.
    return x if u == 1.0 else _log_v(u) * (x / (u - 1.0))


#: ``1.5·2⁵²``: ``x + SHIFT`` rounds ``x`` to an integer held in the low mantissa bits.
_SHIFT = 6755399441055744.0

#: ``2·c_k`` for ``e^r ≈ Σ c_k r^k`` on ``|r| ≤ ln2/2``, ``c_0 = c_1 = 1`` (so ``e^0`` is exactly
#: 1): a near-minimax fit of ``(e^r − 1 − r)/r²`` (Lawson-weighted least squares on Chebyshev
#: points), relative error 5.2e-11, against 2.7e-10 for the degree-8 Taylor polynomial. Doubled
#: (exactly) so that the scale is ``2^(k−1)``: ``k = 1024`` then still has a normal exponent.
_EXP_C = (
    2.0, 2.0, 1.0000000135318152, 0.33333331738819632, 0.083332590092140890,
    0.016666993974138566, 0.0027889303119027244, 0.00039580745028463790,
)


@njit(forceinline=True, error_model="numpy")
def exp_v(x: float) -> float:
    """``exp(x)`` in float64, vectorizable: Cody–Waite reduction, degree-7 polynomial.

    Relative error below 6e-11, under 0.001 of a float32 ulp (6e-8), the only precision it
    serves (float64 arrays use libm's exp): float32 results stay within 0.501 ulp. Results
    below 2^-1021 (``x < −708``, the float64 subnormals) are 0: 10²⁶⁰ times under float32's
    smallest subnormal. The integer part of ``x/ln2`` comes from the ``SHIFT`` rounding trick
    and one power of two scales the result: 30% faster than ``floor``, a conversion and two
    scales.
    """
    xc = -708.0 if x < -708.0 else x  # a NaN passes both tests untouched
    xc = 710.0 if xc > 710.0 else xc  # 2·p·2^1023 overflows to inf there, as exp does
    t = xc * _LOG2E + _SHIFT
    kf = t - _SHIFT
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO  # |r| <= ln2/2
    p = _EXP_C[7]
    p = p * r + _EXP_C[6]
    p = p * r + _EXP_C[5]
    p = p * r + _EXP_C[4]
    p = p * r + _EXP_C[3]
    p = p * r + _EXP_C[2]
    p = p * r + _EXP_C[1]
    p = p * r + _EXP_C[0]
    # The low 12 bits of t's bits are k mod 4096: shifted up they are the exponent field of
    # 2^(k−1) for −1021 ≤ k ≤ 1024.
    y = p * _bits_to_float64((_float64_to_bits(t) + 1022) << 52)
    return 0.0 if x < -708.0 else y


#: ``exp_m``'s constants: ``ln 2/32`` in two parts, the first of 37 bits (``n·_L32_A`` is exact
#: for ``|n| < 2¹⁶``, and ``|x| ≤ 745.5`` gives ``|n| ≤ 34 420``); ``32/ln 2``; ``2^(j/32)`` for
#: ``j = 0 … 31`` as pairs (high, low); ``1/n!`` for ``n = 2 … 8``.
with mpmath.workprec(200):
    _L32 = mpmath.log(2) / 32
    with mpmath.workprec(37):
        _L32_A = float(+_L32)
    _L32_B = float(_L32 - _L32_A)
    _INV_L32 = float(1 / _L32)
    _EXP32 = [mpmath.power(2, mpmath.mpf(j) / 32) for j in range(32)]
    _EXP32_HI = np.array([float(t) for t in _EXP32])
    _EXP32_LO = np.array([float(t - float(t)) for t in _EXP32])
    _F2, _F3, _F4, _F5, _F6, _F7, _F8 = (float(1 / mpmath.factorial(n)) for n in range(2, 9))
#: The bits of :data:`_SHIFT`: ``bits(n + SHIFT) − _SHIFT_BITS`` is the integer ``n``.
_SHIFT_BITS = 0x4338000000000000


@njit(forceinline=True, error_model="numpy")
def exp_m(x: float) -> float:
    """``exp(x)`` in float64 within 0.52 ulp (normal results; 0.74 ulp for subnormal ones),
    branch-free, so that LLVM vectorizes the loops that call it (libm's exp is an opaque call:
    1e6 float64 exps 4.3 ms, this 1.6 ms; torch's is SLEEF's, vectorized, 1 ulp).

    Tang's method: ``x = (32k + j)·ln2/32 + r``, ``|r| ≤ ln2/64``, ``r = rh + rl`` (``x − n·A``
    exact, ``A`` of 37 bits); ``e^r − 1 = rh + (rl + rh²·P(rh))`` by its Taylor series to r⁷
    (the rest is below 2⁻⁶⁶); ``eˣ = 2ᵏ (T + (T_lo + T·(e^r − 1)))`` with ``T = 2^(j/32)`` a pair
    from a table: one rounding of a sum whose small part (≤ 2⁻⁶·T) is good to 2⁻⁶⁰ relative,
    so the result is within 0.5 + 2⁻⁵ ulp; ``2ᵏ`` is applied as two normal powers of 2 (one
    rounding also where the result is subnormal). NaN gives NaN, ±inf gives inf and 0. The
    bound is checked against mpmath in tests/test_fast.py.
    """
    xc = -745.5 if x < -745.5 else x  # e^−745.5 < 2⁻¹⁰⁷⁵: rounds to 0, as exp does
    xc = 709.8 if xc > 709.8 else xc  # past log(max float64): overflows to inf, as exp does
    t = xc * _INV_L32 + _SHIFT
    nf = t - _SHIFT  # n = round(32x/ln 2)
    r1 = xc - nf * _L32_A  # exact (n·A exact; x and n·A agree to within |r1| < 2⁻⁶)
    rh = r1 - nf * _L32_B
    rl = (r1 - rh) - nf * _L32_B  # |n·B| < 2⁻²⁷: its rounding is 2⁻⁸⁰ of the result
    q = rh * rh * (_F2 + rh * (_F3 + rh * (_F4 + rh * (_F5 + rh * (_F6 + rh * _F7)))))
    u = rh + (rl + q)
    n = _float64_to_bits(t) - _SHIFT_BITS
    j = n & 31
    th = _EXP32_HI[j]
    p = th + (_EXP32_LO[j] + th * u)
    k = n >> 5
    k1 = k >> 1
    s1 = _bits_to_float64((k1 + 1023) << 52)
    s2 = _bits_to_float64((k - k1 + 1023) << 52)
    return p * s1 * s2


@njit(forceinline=True, error_model="numpy")
def sigmoid_v(x: float) -> float:
    # exp(−|x|) never overflows; σ(x) = 1/(1+t) for x ≥ 0 and t/(1+t) for x < 0: no cancellation.
    t = exp_v(-abs(x))
    return (1.0 if x >= 0.0 else t) / (1.0 + t)


@njit(error_model="numpy")
def sigmoid_m(x: float) -> float:
    """``σ(x)`` in float64 within ``0.5 + 2⁻¹²`` ulp (:func:`sigmoid_e_m`)."""
    return sigmoid_e_m(x, 0.0)


@njit(forceinline=True, error_model="numpy")
def softplus_v(x: float) -> float:
    # log(1 + e^x) = max(x, 0) + log1p(e^−|x|): no overflow, full accuracy for x ≪ 0.
    return (x if x > 0.0 else 0.0) + log1p_v(exp_v(-abs(x)))


@njit(error_model="numpy")
def softplus_m(x: float) -> float:
    return (x if x > 0.0 else 0.0) + math.log1p(math.exp(-abs(x)))


@njit(forceinline=True, error_model="numpy")
def sigmoid_pow_v(x: float, g: float) -> float:
    # σ(x)^γ = e^(−γ softplus(−x)); for float32 results the float64 exponent's rounding
    # (|γ softplus| · 2⁻⁵³ relative, ≤ 2⁻⁴³ for finite results) is far under an ulp.
    return exp_v(-g * softplus_v(-x))


@njit(error_model="numpy")
def sigmoid_pow_m(x: float, g: float) -> float:
    """``σ(x)^γ = e^(−γ softplus(−x))`` with the exponent as an exact pair: ``softplus(−x) =
    a + b``, ``a = max(−x, 0)`` exact and ``b = log1p(e^(−|x|)) ≤ ln 2``; ``γa`` and ``γb`` by
    Dekker's product, their sum by TwoSum, and ``e^(−(hi + lo)) = e^(−hi)(1 − lo)``. So ``e^u``
    no longer turns the rounding of a large exponent ``u`` into ``|u|`` ulps: about 1 + γ/2
    ulp at every ``x``, without double-double's cost (:func:`symloss.kernels.sigmoid_pow`
    is the same arithmetic on arrays). The steps after ``b`` are :func:`sigmoid_pow_l_m`'s."""
    return sigmoid_pow_l_m(x, g, math.log1p(math.exp(-abs(x))))


# The primitives again, from their shared parts: σ(x), σ(−x), softplus(±x) and σ(±x)^γ of one
# x all start from e^(−|x|), and the last two from log1p(e^(−|x|)). A derived Hessian reads
# them together (sigmoid_focal_loss: five exponentials and two log1p per element); printed as
# these (:meth:`symloss.fast._Printer._print_sigmoid`), each part is computed once per element
# (:mod:`symloss._statements` names every call once). The arithmetic is the one-piece
# helpers', operation for operation: the results are the same bits.


@njit(forceinline=True, error_model="numpy")
def expna_v(x: float) -> float:
    """``e^(−|x|)``, the part :func:`sigmoid_v`, :func:`softplus_v`, :func:`sigmoid_pow_v`
    share."""
    return exp_v(-abs(x))


@njit(forceinline=True, error_model="numpy")
def expna_m(x: float) -> float:
    """``e^(−|x|)`` (libm's exp), the part the ``*_m`` primitives share."""
    return math.exp(-abs(x))


@njit(forceinline=True, error_model="numpy")
def log1p_m(t: float) -> float:
    """libm's ``log1p`` (:func:`log1p_v` is the float32 kernels')."""
    return math.log1p(t)


@njit(forceinline=True, error_model="numpy")
def sigmoid_e_v(x: float, t: float) -> float:
    """:func:`sigmoid_v` from ``t = expna_v(x)``."""
    return (1.0 if x >= 0.0 else t) / (1.0 + t)


@njit(forceinline=True, error_model="numpy")
def sigmoid_e_c(x: float, t: float) -> float:
    """``σ(x)`` from ``t = e^(−|x|)`` (the float the ``*_m`` primitives share), the rounding of
    ``1 + t`` compensated (Fast2Sum, ``1 ≥ t``): within about 1.5 ulp of float64, 2⁻²⁹ of a
    float32 ulp. The float32 kernels that print the ``_m`` helpers take it (``fast._fits_for``):
    :func:`sigmoid_e_m`'s pair costs them up to 1.7x (multilabel_soft_margin_loss's soft
    gradient at 1e6 float32 elements, 8 -> 14 ms) for digits they round away."""
    u = 1.0 + t
    lo = t - (u - 1.0)
    q = (1.0 if x >= 0.0 else t) / u
    return q - q * (lo / u)


@njit(forceinline=True, error_model="numpy")
def sigmoid_e_m(x: float, t: float) -> float:
    """``σ(x)`` in float64 rounded once from pairs, within ``0.5 + 2⁻¹²`` ulp (for results
    above 2⁻¹⁰¹⁰; below, within a few 2⁻¹⁰⁷⁵), branch-free: ``1/(1 + t)`` or ``t/(1 + t)``
    with ``t = e^(−|x|)`` a pair (:func:`exp_pair`, 2⁻⁶⁶), ``1 + t`` by Fast2Sum and the
    quotient as ``q0 + q1`` (the remainder exact, a fused multiply-add). The NumPy evaluator's
    :func:`symloss.kernels.sigmoid` rounds once from double-double, so the two agree within one
    float (each rounding a float quotient of its own exponential was up to 1.5 ulp off: 2 apart).
    ``t`` (the float ``e^(−|x|)`` the ``*_m`` primitives share) is not read: the pair is
    computed again (LLVM drops an unused ``t``)."""
    th, tl = exp_pair(-abs(x))
    dh = 1.0 + th  # t ≤ 1: Fast2Sum
    dl = (th - (dh - 1.0)) + tl
    nh = 1.0 if x >= 0.0 else th
    nl = 0.0 if x >= 0.0 else tl
    q0 = nh / dh
    return q0 + ((_fma(-q0, dh, nh) + nl) - q0 * dl) / dh


@njit(forceinline=True, error_model="numpy")
def softplus_l_v(x: float, b: float) -> float:
    """:func:`softplus_v` from ``b = log1p_v(e^(−|x|))``."""
    return (x if x > 0.0 else 0.0) + b


@njit(forceinline=True, error_model="numpy")
def softplus_l_m(x: float, b: float) -> float:
    """:func:`softplus_m` from ``b = log1p(e^(−|x|))``."""
    return (x if x > 0.0 else 0.0) + b


@njit(forceinline=True, error_model="numpy")
def sigmoid_pow_l_v(x: float, g: float, b: float) -> float:
    """:func:`sigmoid_pow_v` from ``b = log1p_v(e^(−|x|))``."""
    return exp_v(-g * ((-x if -x > 0.0 else 0.0) + b))


@njit(forceinline=True, error_model="numpy")
def _exp_reduced(x: float) -> tuple[float, float, int]:
    """``(rh, rl, n)`` with ``x = n·ln2/32 + rh + rl`` (:func:`exp_m`'s reduction: ``|rh| ≤
    ln2/64``, ``|rl| ≲ 2⁻⁶⁰``), ``x`` clamped to [−745.5, 709.8] as :func:`exp_m`."""
    xc = -745.5 if x < -745.5 else x
    xc = 709.8 if xc > 709.8 else xc
    t = xc * _INV_L32 + _SHIFT
    nf = t - _SHIFT
    r1 = xc - nf * _L32_A
    rh = r1 - nf * _L32_B
    rl = (r1 - rh) - nf * _L32_B
    return rh, rl, _float64_to_bits(t) - _SHIFT_BITS


@njit(forceinline=True, error_model="numpy")
def _exp_scaled(n: int, uh: float, ul: float) -> tuple[float, float]:
    """``2^(n/32)·(1 + uh + ul)`` as a pair (``|u| ≤ 2⁻⁶``): the table's ``T = 2^(j/32)``
    (a pair) times ``1 + u``, its product ``T·uh`` exact (a fused multiply-add) and ``T + T·uh``
    by Fast2Sum; the rest, ``≲ 2⁻⁵³``, in the low part; scaled by ``2ᵏ`` (two normal powers)."""
    j = n & 31
    th = _EXP32_HI[j]
    tl = _EXP32_LO[j]
    p = th * uh
    pe = _fma(th, uh, -p)
    hi = th + p  # |p| < 2⁻⁶ th: Fast2Sum
    lo = (p - (hi - th)) + (pe + (tl + (th * ul + tl * uh)))
    k = n >> 5
    k1 = k >> 1
    s1 = _bits_to_float64((k1 + 1023) << 52)
    s2 = _bits_to_float64((k - k1 + 1023) << 52)
    return hi * s1 * s2, lo * s1 * s2


@njit(forceinline=True, error_model="numpy")
def exp_pair(x: float) -> tuple[float, float]:
    """``e^x`` as a pair ``(hi, lo)``, ``hi + lo`` within about 2⁻⁶⁶ of it (relative; for
    results down to 2⁻⁹⁶⁰, below which ``lo`` loses bits), branch-free: :func:`exp_m`'s
    reduction (Tang's method) with ``r``'s series, ``e^r − 1 = uh + ul``, and the last
    product and sum kept as pairs (one fused multiply-add, TwoSum). ``x`` in [−745.5, 709.8]
    (clamped as :func:`exp_m`)."""
    rh, rl, n = _exp_reduced(x)
    q = rh * rh * (_F2 + rh * (_F3 + rh * (_F4 + rh * (_F5 + rh * (_F6 + rh * _F7)))))
    w = rl + q  # |w| < 2⁻¹³: its rounding is 2⁻⁶⁶
    uh = rh + w
    bb = uh - rh
    ul = (rh - (uh - bb)) + (w - bb)
    return _exp_scaled(n, uh, ul)


@njit(forceinline=True, error_model="numpy")
def exp_pair_fine(x: float) -> tuple[float, float]:
    """``e^x`` as a normalized pair within 2⁻⁷² of it (relative), branch-free, for ``x`` in
    [−600, 709.7] (results above 2⁻⁸⁶⁵: ``lo`` keeps its bits): :func:`exp_pair` with the
    terms it rounds at 2⁻⁶⁶ kept -- ``rh²/2`` exact (a fused multiply-add; ``rh + rh²/2`` by
    Fast2Sum), ``rh·rl``, the series to ``r⁸`` (the rest below 2⁻⁷⁷); what is left in float64
    (``rh³/6 + …``, below 2⁻²²) rounds at 2⁻⁷⁵. :func:`softmax_sub_q` and
    :func:`softmax_hvp_qb` need it: their Ziv test passes about 2⁻¹⁴ less often per bit of error."""
    rh, rl, n = _exp_reduced(x)
    s = rh * rh
    se = _fma(rh, rh, -s)  # rh² = s + se exactly
    hs = 0.5 * s
    uh = rh + hs  # |rh²/2| ≤ |rh|: Fast2Sum
    u0 = hs - (uh - rh)
    c = s * rh * (_F3 + rh * (_F4 + rh * (_F5 + rh * (_F6 + rh * (_F7 + rh * _F8)))))
    ul = u0 + (0.5 * se + (rl + (rl * rh + c)))
    hi, lo = _exp_scaled(n, uh, ul)
    h = hi + lo
    return h, lo - (h - hi)


#: tanh's Taylor coefficients ``c₃ … c₁₃`` (``tanh a = a + a·Σₖ c₂ₖ₊₁ a²ᵏ``), from the
#: Bernoulli numbers: ``c₂ₙ₋₁ = 2²ⁿ(2²ⁿ − 1)B₂ₙ/(2n)!``.
with mpmath.workprec(200):
    _TANH_C = tuple(float(2 ** (2 * n) * (2 ** (2 * n) - 1) * mpmath.bernoulli(2 * n)
                          / mpmath.factorial(2 * n)) for n in range(2, 8))
#: Below ``2⁻⁵`` :func:`tanh_m` takes the series (the next term, ``c₁₅a¹⁴ < 2⁻⁷⁹``).
_TANH_SMALL = 2.0**-5


@njit(forceinline=True, error_model="numpy")
def tanh_m(x: float) -> float:
    """``tanh x`` in float64 within ``0.5 + 2⁻⁷`` ulp, branch-free, so that LLVM vectorizes a loop
    of it (libm's tanh is an opaque call, within 2 ulp: log_cosh's gradient at 10⁶ elements,
    1 thread, 13.4 ms against torch's 5.9 in float32). Both arms are computed, one selected:

    * ``|x| < 2⁻⁵``: ``a + a·(c₃a² + … + c₁₃a¹²)`` (Taylor; the rest below 2⁻⁷⁹ of it): the
      sum's small part, under 2⁻¹⁰ of ``a``, rounds at 2⁻⁶³, the last addition once.
    * else ``1 − q``, ``q = 2/(e^(2a) + 1)``, ``a = min(|x|, 20)`` (past 20, ``2e^(−2a)`` is
      below 2⁻⁵⁶: the result rounds to 1): ``e^(2a)`` a pair (:func:`exp_pair`, 2⁻⁶⁶), its
      sum with 1 by Fast2Sum, ``q`` as ``qh + ql`` (the remainder ``2 − qh·D`` exact, a fused
      multiply-add), ``1 − qh`` by TwoSum: ``q``'s error, under 2⁻⁶⁶, is at most 2⁻⁶¹ of
      ``tanh a ≥ tanh 2⁻⁵``; one rounding at the end.

    The sign is ``x``'s (``tanh(−0) = −0``); NaN gives NaN, ±inf ±1. Measured against mpmath in
    tests/test_fast.py.
    """
    a = abs(x)
    s = a * a
    c = _TANH_C
    p = s * (c[0] + s * (c[1] + s * (c[2] + s * (c[3] + s * (c[4] + s * c[5])))))
    small = a + a * p
    eh, el = exp_pair(2.0 * (20.0 if a > 20.0 else a))
    dh = eh + 1.0  # e^(2a) ≥ 1: Fast2Sum
    dl = (1.0 - (dh - eh)) + el
    qh = 2.0 / dh
    ql = (_fma(-qh, dh, 2.0) - qh * dl) / dh
    th = 1.0 - qh
    bb = th - 1.0
    tl = (1.0 - (th - bb)) + (-qh - bb)
    return math.copysign(small if a < _TANH_SMALL else th + (tl - ql), x)


#: float32 results (an error of 2⁻⁵³ is 2⁻²⁹ of their ulp) and the vectorized pass's name.
tanh_v = tanh_w = tanh_m


@njit(forceinline=True, error_model="numpy")
def log1p_expna_err(x: float, b: float) -> float:
    """``log1p(e^(−|x|)) − b`` for ``b`` within a few ulp of it (libm's or fdlibm's log1p of
    the rounded ``e^(−|x|)``), to about 2⁻⁶⁶: with ``T = e^(−|x|)`` and ``E = e^(−b)`` as
    pairs (:func:`exp_pair`), ``(1 + T)·E = 1 + δ`` and ``log(1 + δ) = δ`` (``δ²`` is below
    2⁻¹⁰⁰); ``(1 + T_hi)·E_hi − 1`` is exact (TwoSum, a fused multiply-add)."""
    th, tl = exp_pair(-abs(x))
    eh, el = exp_pair(-b)
    s = 1.0 + th
    se = th - (s - 1.0)  # exact: 1 ≥ th
    d = _fma(s, eh, -1.0)
    return d + (s * el + (se + tl) * eh)


def _sigmoid_pow_l(x: float, g: float, b: float) -> float:
    """:func:`sigmoid_pow_m` from ``b = log1p(e^(−|x|))``: the body of :func:`sigmoid_pow_l_m`
    (``_EXP`` libm's exp, ``_PROD_ERR`` :func:`prod_err`) and of :func:`sigmoid_pow_l_w`
    (:func:`exp_w`, :func:`_prod_err_w`), compiled once for each by :func:`_flavoured`."""
    a = -x if x < 0.0 else 0.0
    p = g * a
    pe = _PROD_ERR(g, a)  # noqa: F821 (bound by _flavoured)
    q = g * b
    qe = _PROD_ERR(g, b)  # noqa: F821
    s = p + q
    bb = s - p
    se = (p - (s - bb)) + (q - bb)
    lo = se + (pe + qe)
    e = _EXP(-s)  # noqa: F821
    # the correction wherever e^(−s) is not 0 (to 746): e^(−703) was left 53 ulp off
    return e if not abs(s) <= 746.0 else e * (1.0 - lo)


def _sigmoid_pow_lb(x: float, g: float, b: float) -> float:
    """:func:`_sigmoid_pow_l` with ``b``'s own error (and that of the ``e^(−|x|)`` it was
    computed from) in the exponent's low part (:func:`log1p_expna_err`): ``e^(−γb)`` multiplies
    it by γ, up to about γ/2 ulp (464 ulp at γ = 1000); with it, within 2 ulp at every γ. Two
    more exponentials per element (:func:`exp_pair`): the form of
    :class:`symloss.primitives.sigmoid_pow_large`, which the focal loss takes only where γ > 2
    (at γ ≤ 2 the part is at most 1 ulp)."""
    a = -x if x < 0.0 else 0.0
    p = g * a
    pe = _PROD_ERR(g, a)  # noqa: F821 (bound by _flavoured)
    q = g * b
    qe = _PROD_ERR(g, b) + g * log1p_expna_err(x, b)  # noqa: F821
    s = p + q
    bb = s - p
    se = (p - (s - bb)) + (q - bb)
    lo = se + (pe + qe)
    e = _EXP(-s)  # noqa: F821
    # the correction wherever e^(−s) is not 0 (to 746): e^(−703) was left 53 ulp off
    return e if not abs(s) <= 746.0 else e * (1.0 - lo)


def _flavoured(body: Any, name: str, **bound: Any) -> Any:
    """``body``'s code as the function ``name`` with ``bound`` among its globals, compiled
    ``forceinline``: one body, a flavour per set of helpers."""
    fn = pytypes.FunctionType(body.__code__, {**globals(), **bound}, name, body.__defaults__)
    fn.__doc__ = body.__doc__
    return njit(forceinline=True, error_model="numpy")(fn)


# ``*_w``: float64 results without libm's opaque calls, so that LLVM vectorizes a loop of them
# (a float64 kernel's branch-free first pass, :func:`symloss.fast._elementwise_source`): exp_m
# (Tang's, 0.52 ulp) and fdlibm's log1p (Sun Microsystems, 1993), written branch-free, whose
# published error analysis bounds its error below 1 ulp -- the bound the float64 kernels
# assume of libm's; tests/test_fast.py measures both against mpmath.
_LP = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)


@njit(forceinline=True, error_model="numpy")
def exp_w(x: float) -> float:
    """``e^x``: :func:`exp_m` (within 0.52 ulp, branch-free), under the ``_w`` flavour's name."""
    return exp_m(x)


@njit(forceinline=True, error_model="numpy")
def log1p_w(x: float) -> float:
    """``log1p(x)`` in float64 within 1 ulp for ``x`` in [0, 1] (the ``e^(−|x|)`` of
    softplus and σ^γ), vectorizable: fdlibm's ``log1p`` on that range, written branch-free.

    Below √2 − 1: ``f = x``, ``k = 0``. Else ``u = 1 + x = 2ᵏ(1 + f)`` with ``1 + f`` in
    [√2/2, √2) and ``c = x − (u − 1)`` (``k = 0``) or ``1 − (u − x)`` (``k = 1``), the
    rounding of ``1 + x``, added back as ``c/u``. Then ``log(1 + f) = f − (f²/2 −
    s(f²/2 + R(s²)))``, ``s = f/(2 + f)``, ``R`` a degree-7 minimax fit (error below 2⁻⁵⁸·⁴⁵);
    fdlibm's analysis: below 1 ulp. A NaN is the result.
    """
    small = x < 0.41421353816986084  # fdlibm's bound 0x3FDA827A (√2 − 1, rounded down)
    u = 1.0 + x
    bits = _float64_to_bits(u)
    k = ((bits >> 52) & 0x7FF) - 1023
    c = (1.0 - (u - x)) if k > 0 else (x - (u - 1.0))
    c = c / u
    m = bits & 0xFFFFFFFFFFFFF
    big = (m >> 32) >= 0x6A09E
    un = _bits_to_float64(m | ((0x3FE if big else 0x3FF) << 52))
    k = k + 1 if big else k
    f = un - 1.0
    f = x if small else f
    k = 0 if small else k
    c = 0.0 if small else c
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    r = z * (_LP[0] + z * (_LP[1] + z * (_LP[2] + z * (_LP[3] + z * (_LP[4] + z * (
        _LP[5] + z * _LP[6]))))))
    kf = float(k)
    y = kf * _LN2_HI - ((hfsq - (s * (hfsq + r) + (kf * _LN2_LO + c))) - f)
    return y if x == x else x


@njit(forceinline=True, error_model="numpy")
def log_w(x: float) -> float:
    """``log(x)`` in float64 within 1 ulp, vectorizable: fdlibm's ``log`` written branch-free
    (the kernel of :func:`log1p_w`). ``x = 2ᵏ(1 + f)`` with ``1 + f`` in [√2/2, √2) (a
    subnormal ``x`` scaled by 2⁵⁴ first), ``log(1 + f) = f − (f²/2 − s(f²/2 + R(s²)))``,
    ``s = f/(2 + f)``. 0 gives −inf, a negative ``x`` NaN, +inf and NaN themselves."""
    sub = x < 2.2250738585072014e-308
    xs = x * 18014398509481984.0 if sub else x  # 2⁵⁴
    bits = _float64_to_bits(xs)
    k = ((bits >> 52) & 0x7FF) - 1023 - (54 if sub else 0)
    m = bits & 0xFFFFFFFFFFFFF
    big = (m >> 32) >= 0x6A09E
    un = _bits_to_float64(m | ((0x3FE if big else 0x3FF) << 52))
    k = k + 1 if big else k
    f = un - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    r = z * (_LP[0] + z * (_LP[1] + z * (_LP[2] + z * (_LP[3] + z * (_LP[4] + z * (
        _LP[5] + z * _LP[6]))))))
    kf = float(k)
    y = kf * _LN2_HI - ((hfsq - (s * (hfsq + r) + kf * _LN2_LO)) - f)
    y = -math.inf if x == 0.0 else y
    y = math.nan if x < 0.0 else y
    return x if (x == math.inf) | (x != x) else y


@njit(forceinline=True, error_model="numpy")
def pow_w(x: float, y: float) -> float:
    """``x ** y`` (C's ``pow`` on its special values: 0, ±inf, a negative ``x``, NaN),
    vectorizable: ``e^(y log|x|)`` with :func:`log_w` and :func:`exp_w` (relative error about
    ``(|y log x| + 2)·2⁻⁵²``: under 2⁻⁴¹ for every finite normal result, far under a float32
    ulp; the float64 kernels read it only in a magnitude or where a pair is not finite)."""
    ax = abs(x)
    fin = (ax > 0.0) & (ax < math.inf)
    r = exp_w(y * log_w(ax if fin else 1.0))
    # |x| = 0 or inf: 0, 1 or inf by the signs of log|x| and y (inf for 0 and y < 0, or inf
    # and y > 0); the per-element part two selects, what reads y alone hoisted by LLVM
    big = (ax == 0.0) == (y < 0.0)
    edge = 1.0 if y == 0.0 else (math.inf if big else 0.0)
    r = r if fin else edge
    whole = math.floor(y) == y
    h = 0.5 * y
    odd = whole & (abs(y) < 9007199254740992.0) & (math.floor(h) != h)
    # a negative x: the sign of y's parity, NaN for a y that is not whole, as a factor of
    # y alone (the same values as the nested selects it replaces: float32
    # sigmoid_focal_loss's soft gradient, 1e6 elements, 1 thread, 18.8 -> 16.4 ms)
    sign = (-1.0 if odd else 1.0) if whole else math.nan
    r = r * sign if x < 0.0 else r
    return 1.0 if (y == 0.0) | (x == 1.0) else (math.nan if (x != x) | (y != y) else r)


#: The whole exponents :func:`powi_w` takes: 0 … POWI_MAX.
POWI_MAX = 7.0


@njit(forceinline=True, error_model="numpy")
def powi_ok(y: float) -> bool:
    """Whether :func:`powi_w` takes the exponent ``y``: a whole number 0 … :data:`POWI_MAX`
    (a per-call scalar: ``symloss.fast._whole_powers`` branches on it once per block)."""
    return (y >= 0.0) & (y <= POWI_MAX) & (math.floor(y) == y)


@njit(forceinline=True, error_model="numpy")
def powi_w(x: float, y: float) -> float:
    """``x ** y`` for a whole ``y`` in 0 … 7 (:func:`powi_ok`): ``x``, ``x²`` and ``x⁴`` each
    taken or not by ``y``'s bits (selects on a loop invariant: the loop stays vectorized),
    at most four roundings (relative error under 7·2⁻⁵³, :func:`pow_w`'s is up to
    ``(|y log x| + 2)·2⁻⁵²``), and C's ``pow`` on the special values (``0⁰ = NaN⁰ = 1``, a
    NaN ``x`` NaN, ``±0``, ``±inf``, a negative ``x`` its sign by ``y``'s parity). Four
    multiplications against pow_w's log and exp (float32 sigmoid_focal_loss, 1e5 soft
    targets, the soft pass's loop: 14.1 -> 7.7 ns an element at γ = 2)."""
    n = int(y)
    x2 = x * x
    r = x if (n & 1) != 0 else 1.0
    r = r * x2 if (n & 2) != 0 else r
    return r * (x2 * x2) if (n & 4) != 0 else r


@njit(forceinline=True, error_model="numpy")
def expna_w(x: float) -> float:
    """``e^(−|x|)`` (:func:`exp_w`)."""
    return exp_w(-abs(x))


@njit(forceinline=True, error_model="numpy")
def sigmoid_e_w(x: float, t: float) -> float:
    """:func:`sigmoid_e_m` (its arithmetic calls nothing: it vectorizes as it is)."""
    return sigmoid_e_m(x, t)


@njit(forceinline=True, error_model="numpy")
def softplus_l_w(x: float, b: float) -> float:
    return softplus_l_m(x, b)


@intrinsic
def _fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """``a·b + c`` rounded once (LLVM's ``llvm.fma.f64``: one instruction where the CPU has
    FMA, a correctly rounded library call where it has not)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        double = ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module,
                                            ir.FunctionType(double, [double] * 3), "llvm.fma.f64")
        return builder.call(fn, args)

    return sig, codegen


@njit(forceinline=True, error_model="numpy")
def two_prod_fma(a: float, b: float) -> tuple[float, float]:
    """:func:`symloss.ddouble.two_prod` by one fused multiply-add: the same exact pair
    wherever Dekker's split is exact (no overflow of ``SPLIT·a``, no underflow), in two
    operations where the split takes seventeen."""
    p = a * b
    return p, _fma(a, b, -p)


@njit(forceinline=True, error_model="numpy")
def _two_prod_w(a: float, b: float) -> tuple[float, float]:
    """:func:`symloss.ddouble.two_prod` for :func:`vector_dd`: :func:`two_prod_fma`'s exact
    pair, and NaN as the error where Dekker's split of an operand overflows (``|a| > 2⁹⁹⁷``;
    there the NumPy path's pair is NaN too, and :func:`symloss.ddouble.t_final` answers the
    plain form on both). Where the split is exact the same pair; where it is not (a product
    whose error is subnormal: terms below 2⁻⁹⁶⁸, :func:`symloss.ddouble.certified` flags
    them) the exact one."""
    p = a * b
    split = (abs(134217729.0 * a) < math.inf) & (abs(134217729.0 * b) < math.inf)
    return p, _fma(a, b, -p) if split else math.nan


@njit(forceinline=True, error_model="numpy")
def _split_mul_w(a: float, b: float, bh: float, bl: float) -> tuple[float, float]:
    """:func:`symloss.ddouble._split_mul` (``b``'s halves given) for :func:`vector_dd`:
    :func:`_two_prod_w`'s pair (its callers, inside the exponential, never overflow)."""
    return _two_prod_w(a, b)


@njit(forceinline=True, error_model="numpy")
def _prod_err_w(a: float, b: float) -> float:
    """:func:`prod_err` by one fused multiply-add, ``fma(a, b, −fl(a·b))``: the same exact
    error (0 where it is not finite), and LLVM vectorizes it where Dekker's split, after
    two exponentials, was left scalar (measured: 12 ns per element against 2):
    :func:`two_prod_fma`'s error."""
    e = two_prod_fma(a, b)[1]
    return e if abs(e) < math.inf else 0.0


@njit(error_model="numpy")
def prod_err(a: float, b: float) -> float:
    """``a·b − fl(a·b)`` exactly (Dekker's product, as :func:`symloss.ddouble.two_prod`); 0
    where the product or the split is not finite (:func:`symloss.kernels.prod_err`)."""
    p = a * b
    t = 134217729.0 * a
    ah = t - (t - a)
    al = a - ah
    t = 134217729.0 * b
    bh = t - (t - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return e if abs(e) < math.inf else 0.0


#: :func:`sigmoid_pow_m` from ``b = log1p(e^(−|x|))`` (libm's exp, Dekker's product error).
sigmoid_pow_l_m = _flavoured(_sigmoid_pow_l, "sigmoid_pow_l_m", _EXP=math.exp, _PROD_ERR=prod_err)
#: :func:`sigmoid_pow_l_m` with :func:`exp_w` and :func:`_prod_err_w` (the same bound: ``e^(−s)``
#: within 1 ulp; the same exact product errors), branch-free: vectorized.
sigmoid_pow_l_w = _flavoured(_sigmoid_pow_l, "sigmoid_pow_l_w", _EXP=exp_w,
                             _PROD_ERR=_prod_err_w)
#: :func:`_sigmoid_pow_lb` in both float64 flavours (libm's exp; :func:`exp_w`), for
#: :class:`symloss.primitives.sigmoid_pow_large`; float32 results need no more than
#: :func:`sigmoid_pow_l_v` (the exponent's rounding is far under their ulp).
sigmoid_pow_lb_m = _flavoured(_sigmoid_pow_lb, "sigmoid_pow_lb_m", _EXP=math.exp,
                              _PROD_ERR=prod_err)
sigmoid_pow_lb_w = _flavoured(_sigmoid_pow_lb, "sigmoid_pow_lb_w", _EXP=exp_w,
                              _PROD_ERR=_prod_err_w)
sigmoid_pow_lb_v = sigmoid_pow_l_v


# ------------------------------------------------------------- the slope of a modulated softplus
# S·σ(s)^γ·(σ(s) + γ·softplus(s)·σ(−s)) = S·d/ds[σ(s)^γ·softplus(s)] (sigmoid_focal_loss's
# hard-label gradient: algebra.modulated_slope finds the shape): every term positive, so
# nothing cancels, and pairs whose parts are within ~2⁻⁶⁰ of exact, rounded once, are within
# 0.57 ulp -- branch-free, without the double-double exponentials and quotients.

#: :func:`modulated_slope_q` certifies results from this magnitude up (and ``e^(−|s|)``, and
#: ``σ(s)^γ·T``: the low parts of their pairs are normal numbers; below, double-double answers).
SLOPE_MIN = 2.0**-900
#: ... and for ``γ`` up to this: its error bound grows as ``γ·2⁻⁶⁰`` (the exponent's).
SLOPE_MAX_GAMMA = 8.0
#: :func:`log1p_pair` takes ``expm1(b)`` from its series below this ``b``, else from
#: :func:`exp_pair` (whose ~2⁻⁶⁶ of ``e^b`` is then under 2⁻⁶⁰ of ``b``).
_EXPM1_SERIES = 0.0625
_EXPM1_C = (1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0, 1.0 / 40320.0,
            1.0 / 362880.0, 1.0 / 3628800.0)


@njit(forceinline=True, error_model="numpy")
def log1p_pair(eh: float, el: float) -> tuple[float, float]:
    """``log1p(E)`` for a pair ``E = eh + el`` in [0, 1] as ``(b, c)``: ``b = log1p_w(eh)``
    (within 1 ulp) and ``c`` its correction, ``b + c`` within about 2⁻⁶⁰·b of ``log1p(E)``
    (relative, also where ``E`` is tiny: :func:`log1p_expna_err`'s 2⁻⁶⁶ is absolute),
    branch-free.

    One Newton step on ``expm1(x) = E``: ``c = d/(1 + E)``, ``d = E − expm1(b)`` (about
    2⁻⁵²·b: ``d²`` is below 2⁻¹⁰⁴·b). ``expm1(b)`` is a pair: ``b + b²/2`` (exact, a fused
    multiply-add) plus its series to ``b¹⁰/10!`` in float64 (for ``b < 1/16``: the rest and
    the series' rounding below 2⁻⁶¹·b), else ``(e_h − 1) + e_l`` from :func:`exp_pair` (``e_h − 1``
    exact, its error ≤ 2⁻⁶⁵ ≤ 2⁻⁶¹·b). The differences ``eh − b``, ``(eh − b) − b²/2`` and
    ``eh − (e_h − 1)`` are of numbers within a factor 2 of each other: exact (Sterbenz)."""
    b = log1p_w(eh)
    h = 0.5 * b
    m2 = h * b
    m2e = _fma(h, b, -m2)
    tail = b * b * b * (_EXPM1_C[0] + b * (_EXPM1_C[1] + b * (_EXPM1_C[2] + b * (
        _EXPM1_C[3] + b * (_EXPM1_C[4] + b * (_EXPM1_C[5] + b * (_EXPM1_C[6]
                                                                   + b * _EXPM1_C[7])))))))
    small = ((eh - b) - m2) + ((el - m2e) - tail)
    big = b >= _EXPM1_SERIES
    xh, xl = exp_pair(b if big else 0.0)
    large = (eh - (xh - 1.0)) + (el - xl)
    d = large if big else small
    return b, d / (1.0 + eh)


@njit(forceinline=True, error_model="numpy")
def log1p_pair_fine(eh: float, el: float) -> tuple[float, float]:
    """``log1p(E)`` for a pair ``E = eh + el`` in [2⁻⁸⁶⁵, 1] as ``(b, c)``, ``b + c`` within
    2⁻⁷¹ + 2⁻¹⁰⁰ of it (absolute: where ``E`` is below 2⁻⁵³, ``b = 0`` and ``c`` is ``E``
    rounded, 2⁻⁵³ of it), branch-free: :func:`log1p_pair`'s finer twin for the soft tiers'
    ``C``, whose error they bound absolutely (:func:`log1p_pair`'s 2⁻⁶⁰, relative, kept
    Ziv's test from most elements whose bracket cancels).

    ``D = 1 + E = dh + dl`` (Fast2Sum: exact but for ``dl``'s last rounding, 2⁻¹⁰⁶), ``b =
    log_w(dh)`` (within an ulp), ``t = D·e^(−b) − 1`` from :func:`exp_pair_fine` (within 2⁻⁷²,
    relative: times ``D ≤ 2``, 2⁻⁷¹ absolute; ``|t|`` ≲ 2⁻⁵², its fused multiply-add and sums
    round at 2⁻¹⁰⁴) and ``log D = b + log1p(t) = b + t − t²/2`` (the rest ``t³/3`` below
    2⁻¹⁵⁰). ``E``'s own error (``δE``) adds ``δE/(1 + E)``."""
    dh = 1.0 + eh
    dl = (eh - (dh - 1.0)) + el
    b = log_w(dh)
    xh, xl = exp_pair_fine(-b)
    t = _fma(dh, xh, -1.0) + (dh * xl + dl * xh)
    return b, t - 0.5 * t * t


@njit(forceinline=True, error_model="numpy")
def _modulated_parts(s: float, g: float) -> tuple[float, float, float, float, float, float,
                                                  float, float, float, float, float]:
    """The pairs :func:`modulated_slope_q` and :func:`modulated_curvature_q` build from: ``A =
    σ(s)``, ``B = σ(−s)``, ``L = softplus(s)``, ``P = σ(s)^γ`` as ``(ah, al, bh, bl, lh, ll,
    ph, pl, eh, b, c)`` (``eh``: ``e^(−|s|)``'s high part; ``b + c``: ``log1p(E)``). ``E = e^(−|s|)`` (:func:`exp_pair`,
    relative error ε ≤ 2⁻⁶⁴); ``σ(|s|) = 1/(1 + E)`` (one quotient corrected by its exact
    remainder), ``σ(−|s|) = E·σ(|s|)`` (within 1.5ε); ``L = max(s, 0) + log1p(E)``
    (:func:`log1p_pair`: within 2⁻⁶⁰ + ε); ``P = e^(−u)``, ``u = γ(max(−s, 0) + log1p(E))``
    an exact-product pair whose error is at most ``γ(2⁻⁶⁰ + ε)`` (``e^(−u)`` by
    :func:`exp_pair` times ``1 − u_l``)."""
    eh, el = exp_pair(-abs(s))
    pos = s >= 0.0
    dh = 1.0 + eh  # 1 + E (Fast2Sum: 1 ≥ eh)
    dl = (eh - (dh - 1.0)) + el
    r0 = 1.0 / dh
    r1 = (_fma(-r0, dh, 1.0) - r0 * dl) / dh  # σ(|s|) = r0 + r1 (exact remainder)
    qh = eh * r0
    ql = _fma(eh, r0, -qh) + (eh * r1 + el * r0)  # σ(−|s|) = E·σ(|s|)
    ah = r0 if pos else qh  # σ(s)
    al = r1 if pos else ql
    bh = qh if pos else r0  # σ(−s)
    bl = ql if pos else r1
    b, c = log1p_pair(eh, el)
    t = s if pos else 0.0  # softplus(s) = max(s, 0) + b + c (TwoSum)
    lh = t + b
    lb = lh - t
    ll = ((t - (lh - lb)) + (b - lb)) + c
    a = 0.0 if pos else -s  # u = γ·softplus(−s) = γ(max(−s, 0) + b + c)
    p = g * a
    q = g * b
    uh = p + q
    ub = uh - p
    ul = ((p - (uh - ub)) + (q - ub)) + (_fma(g, a, -p) + (_fma(g, b, -q) + g * c))
    ph, pl = exp_pair(-uh)  # σ(s)^γ = e^(−uh)(1 − ul): ul² below 2⁻⁸⁰
    return ah, al, bh, bl, lh, ll, ph, pl - ph * ul, eh, b, c


#: :func:`_modulated_parts` from :func:`exp_pair_fine` and :func:`log1p_pair_fine` (the soft
#: tiers'): ``E = e^(−|s|)`` within 2⁻⁷² for ``|s| ≤ 600``, so ``A``, ``B`` within ε' ≤ 2⁻⁷¹
#: (the quotient's remainder and products add a few 2⁻¹⁰⁴), ``L = softplus(s)`` within 2⁻⁷⁰·⁹
#: (absolute: the log1p's 2⁻⁷¹ + 2⁻¹⁰⁰ and ``E``'s 2⁻⁷²·E/(1 + E)).
_modulated_parts_fine = _flavoured(_modulated_parts.py_func, "_modulated_parts_fine",
                                   exp_pair=exp_pair_fine, log1p_pair=log1p_pair_fine)


@njit(forceinline=True, error_model="numpy")
def modulated_slope_q(s: float, g: float, sc: tuple[float, float]) -> float:
    """``S·σ(s)^γ·(σ(s) + γ·softplus(s)·σ(−s))`` (``S = sh + sl`` a pair within 2⁻¹⁰⁴ of the
    scale, ``γ ≥ 0``) rounded once, within 0.57 ulp of the exact value, or NaN where that is
    not certain: ``γ > 8`` (:data:`SLOPE_MAX_GAMMA`), ``e^(−|s|)``, ``σ(s)^γ·T`` or the result
    below 2⁻⁹⁰⁰ (:data:`SLOPE_MIN`), a result that is not finite, a NaN. The first tier of
    ``accurate(...)`` of that shape (:func:`symloss.algebra.modulated_slope`); there the
    double-double form answers. Branch-free (LLVM vectorizes it).

    Every factor is a pair (:func:`_modulated_parts`). The products and the sum of the two
    positive terms add a few 2⁻¹⁰⁴ each (fused multiply-adds, TwoSum). So before the last
    rounding the relative error is below ``2⁻⁶⁰ + 4ε + γ(2⁻⁶⁰ + ε)``, ≤ 2⁻⁵⁶·⁸ for ``γ ≤ 8``:
    under 2⁻⁵⁵|r|, a quarter of an ulp (≥ 2⁻⁵³|r|) -- with the rounding's half, within 0.57
    ulp."""
    sh, sl = sc
    ah, al, bh, bl, lh, ll, ph, pl, eh, _, _ = _modulated_parts(s, g)
    gh = g * lh  # T = σ(s) + γ·softplus(s)·σ(−s), both terms ≥ 0
    gl = _fma(g, lh, -gh) + g * ll
    mh = gh * bh
    ml = _fma(gh, bh, -mh) + (gh * bl + gl * bh)
    th = ah + mh
    tb = th - ah
    tl = ((ah - (th - tb)) + (mh - tb)) + (al + ml)
    vh = ph * th  # σ(s)^γ·T
    vl = _fma(ph, th, -vh) + (ph * tl + pl * th)
    w = sh * vh  # S·σ(s)^γ·T
    r = w + (_fma(sh, vh, -w) + (sh * vl + sl * vh))
    good = ((eh >= SLOPE_MIN) & (abs(vh) >= SLOPE_MIN) & (abs(r) >= SLOPE_MIN)
            & (abs(r) < math.inf) & (g <= SLOPE_MAX_GAMMA))
    return r if good else math.nan


#: :func:`modulated_curvature_q` certifies where its sum keeps this share of its terms'
#: magnitude (cancels by at most 2⁴): its relative error, ≤ 2⁻⁵⁹·⁷ of the magnitude, is then
#: ≤ 2⁻⁵⁵·⁷ of the sum.
CANCEL_MARGIN = 2.0**-4
#: The soft tiers' bound on their bracket ``K``, absolute: 2⁻⁶⁶ of its terms' magnitude ``M``
#: (every part but ``C`` relative, at most 9ε' ≤ 2⁻⁶⁷·⁸: the products' and sums' few 2⁻¹⁰⁴ and
#: those of :func:`_modulated_parts_fine`) plus ``C``'s absolute error, ≤ 2⁻⁷⁰ (its two
#: softplus' 2⁻⁷⁰·⁹ with weights ``y`` and ``1 − y``), times ``C``'s weight in ``K``.
SOFT_K_ERR = 2.0**-66
SOFT_C_ERR = 2.0**-70
#: ... and the relative error of ``Q^(γ−k)`` per unit of ``|γ − k|`` (``Q`` within 2ε', its log
#: one more 2⁻⁷², :func:`_q_power`), with ``S``'s (2⁻⁷⁰: its pair at least 2⁻³⁰ of its terms'
#: size) and the last exponential's (2⁻⁷²) in the same unit, once.
SOFT_POW_ERR = 2.0**-69
#: ``e^(−|z|)``, ``Q`` and ``Q^(γ−k)`` from this size up (:func:`exp_pair_fine`'s range, e^(−600)).
SOFT_MIN = 2.0**-865


@njit(forceinline=True, error_model="numpy")
def modulated_curvature_q(s: float, g: float, sc: tuple[float, float]) -> float:
    """``S·σ(s)^γ·σ(−s)·((1 + 2γ)σ(s) + γ·softplus(s)·(γσ(−s) − σ(s)))`` -- ``S`` times
    ``d²/ds²[σ(s)^γ·softplus(s)]``, sigmoid_focal_loss's hard-label Hessian -- rounded once,
    within 0.72 ulp of the exact value, or NaN where that is not certain: the bracket's terms
    cancel by more than 2⁴ (:data:`CANCEL_MARGIN`; it crosses 0 near ``s = 2 + 1/γ``),
    ``γ > 8``, ``e^(−|s|)``, a product or the result below 2⁻⁹⁰⁰ (:data:`SLOPE_MIN`), a result
    that is not finite, a NaN. The first tier of ``accurate(...)`` of that shape
    (:func:`symloss.algebra.modulated_slope` at order 2); there the double-double form answers.
    Branch-free.

    From :func:`_modulated_parts`' pairs: the bracket's terms ``T₁ = (1 + 2γ)A`` (``1 + 2γ``
    a TwoSum pair: within 2ε), ``T₂ = γ²LB`` and ``T₃ = γLA`` (within 2⁻⁶⁰ + 3ε), each
    product exact but for a few 2⁻¹⁰⁴, summed ``T₁ + T₂ − T₃`` by TwoSum: within
    ``(2⁻⁶⁰ + 3ε)·M ≤ 2⁻⁵⁹·⁷·M``, ``M = T₁ + T₂ + T₃`` (every ``T`` ≥ 0; ``T₁ ≥ A ≥ 2⁻⁹⁰¹``,
    so that ``T₃``'s underflow where ``s → −∞`` is far below it). Where the bracket is at least
    ``M/16``, its relative error is ≤ 2⁻⁵⁵·⁷; with ``P``'s ``γ(2⁻⁶⁰ + ε) ≤ 2⁻⁵⁶·⁹`` (``γ ≤
    8``), ``B``'s 1.5ε and the products', below 2⁻⁵⁵·² in all: under 0.22 ulp (≥ 2⁻⁵³|r|),
    with the rounding's half, within 0.72 ulp."""
    sh, sl = sc
    ah, al, bh, bl, lh, ll, ph, pl, eh, _, _ = _modulated_parts(s, g)
    g2 = g + g
    ch = 1.0 + g2  # 1 + 2γ (TwoSum)
    cb = ch - 1.0
    cl = (1.0 - (ch - cb)) + (g2 - cb)
    t1h = ch * ah  # T₁ = (1 + 2γ)·A
    t1l = _fma(ch, ah, -t1h) + (ch * al + cl * ah)
    gh = g * lh  # γL
    gl = _fma(g, lh, -gh) + g * ll
    nh = gh * ah  # T₃ = γL·A
    nl = _fma(gh, ah, -nh) + (gh * al + gl * ah)
    mh = gh * bh  # γL·B
    ml = _fma(gh, bh, -mh) + (gh * bl + gl * bh)
    t2h = g * mh  # T₂ = γ·γLB
    t2l = _fma(g, mh, -t2h) + g * ml
    uh = t1h + t2h  # T₁ + T₂ (TwoSum), then − T₃
    ub = uh - t1h
    ul = (t1h - (uh - ub)) + (t2h - ub)
    kh = uh - nh
    kb = kh - uh
    kl = ((uh - (kh - kb)) + (-nh - kb)) + ((ul + (t1l + t2l)) - nl)
    vh = ph * bh  # σ(s)^γ·σ(−s)
    vl = _fma(ph, bh, -vh) + (ph * bl + pl * bh)
    wh = vh * kh  # ·bracket
    wl = _fma(vh, kh, -wh) + (vh * kl + vl * kh)
    w = sh * wh  # S·…
    r = w + (_fma(sh, wh, -w) + (sh * wl + sl * wh))
    size = uh + nh
    good = ((eh >= SLOPE_MIN) & (abs(vh) >= SLOPE_MIN) & (abs(wh) >= SLOPE_MIN)
            & (abs(r) >= SLOPE_MIN) & (abs(r) < math.inf) & (g <= SLOPE_MAX_GAMMA)
            & (abs(kh) >= CANCEL_MARGIN * size))
    return r if good else math.nan


@njit(forceinline=True, error_model="numpy")
def _soft_parts(z: float, y: float) -> tuple[float, float, float, float, float, float, float,
                                             float, float, float, float, float, float, float,
                                             float]:
    """The pairs :func:`soft_modulated_slope_q` and :func:`soft_modulated_curvature_q` build
    from, as ``(ah, al, bh, bl, fh, fl, ch, cl, wh, wl, dh, dl, xh, xl, eh)``: ``A = σ(z)``,
    ``B = σ(−z)`` (:func:`_modulated_parts_fine`: within ε', ε' ≤ 2⁻⁷¹), ``1 − 2y`` (two
    TwoSums: within 2⁻¹⁰⁶), ``C = y·softplus(−z) + (1 − y)·softplus(z)`` (within 2⁻⁷⁰,
    absolute, and a few 2⁻¹⁰⁴ of ``C``) and ``Q = y·σ(−z) + (1 − y)·σ(z)`` (within 2ε'),
    ``A − y`` (a TwoSum pair: within ε'·A), ``A·B`` (within 3ε') and ``e^(−|z|)``'s high
    part."""
    ah, al, bh, bl, lh, ll, _, _, eh, b, c = _modulated_parts_fine(z, 0.0)
    t = 0.0 if z >= 0.0 else -z  # softplus(−z) = max(−z, 0) + b + c (TwoSum)
    kh = t + b
    kb = kh - t
    kl = ((t - (kh - kb)) + (b - kb)) + c
    yh = 1.0 - y  # 1 − y (TwoSum), 1 − 2y = (1 − y) − y (TwoSum)
    yb = yh - 1.0
    yl = (1.0 - (yh - yb)) + (-y - yb)
    fh = yh - y
    fb = fh - yh
    fl = ((yh - (fh - fb)) + (-y - fb)) + yl
    ch = y * kh  # C = y·softplus(−z) + (1 − y)·softplus(z), both terms ≥ 0
    cl = _fma(y, kh, -ch) + y * kl
    dh = yh * lh
    dl = _fma(yh, lh, -dh) + (yh * ll + yl * lh)
    eh2 = ch + dh
    eb = eh2 - ch
    el = ((ch - (eh2 - eb)) + (dh - eb)) + (cl + dl)
    qh = y * bh  # Q = y·σ(−z) + (1 − y)·σ(z), both terms ≥ 0
    ql = _fma(y, bh, -qh) + y * bl
    rh = yh * ah
    rl = _fma(yh, ah, -rh) + (yh * al + yl * ah)
    wh = qh + rh
    wb = wh - qh
    wl = ((qh - (wh - wb)) + (rh - wb)) + (ql + rl)
    dah = ah - y  # σ(z) − y (TwoSum)
    dab = dah - ah
    dal = ((ah - (dah - dab)) + (-y - dab)) + al
    xh = ah * bh  # σ(z)σ(−z)
    xl = _fma(ah, bh, -xh) + (ah * bl + al * bh)
    return ah, al, bh, bl, fh, fl, eh2, el, wh, wl, dah, dal, xh, xl, eh


@njit(forceinline=True, error_model="numpy")
def _q_power(wh: float, wl: float, g: float, k: float) -> tuple[float, float]:
    """``Q^(γ − k)`` as a pair for ``Q = wh + wl`` (``k`` 1 or 2; ``Q`` and the result in
    [2⁻⁸⁶⁵, 2¹⁰⁰⁰]: :func:`exp_pair_fine`'s range): ``log Q`` as ``log_w(wh)`` plus one Newton
    step from :func:`exp_pair_fine` (``wh − e_h`` exact: Sterbenz), within 2⁻⁷² + a few
    2⁻¹⁰⁴ (absolute); ``γ − k`` a TwoSum pair; the exponent an exact-product pair; so within
    ``|γ − k|·(2⁻⁷² + δQ) + 2⁻⁷²`` of it (relative; ``δQ`` the pair ``Q``'s own relative
    error)."""
    lq = log_w(wh)  # log Q: one Newton step from e^lq as a pair
    gh, gl = exp_pair_fine(lq)
    lc = ((wh - gh) + (wl - gl)) / gh
    g1 = g - k  # γ − k (TwoSum)
    g1b = g1 - g
    g1l = (g - (g1 - g1b)) + (-k - g1b)
    ph = g1 * lq  # (γ − k)·log Q as a pair
    pl = _fma(g1, lq, -ph) + (g1 * lc + g1l * lq)
    sh2, sl2 = exp_pair_fine(ph)  # Q^(γ−k) = e^ph·(1 + pl)
    return sh2, sl2 + sh2 * pl


@njit(forceinline=True, error_model="numpy")
def _soft_scaled(sh: float, sl: float, wh: float, wl: float, g: float, k: float, kh: float,
                 kl: float, magnitude: float, kerr: float, y: float, eh: float,
                 size: float) -> float:
    """``S·Q^(γ−k)·K`` from the pairs ``S``, ``Q`` and ``K`` (the bracket, whose terms'
    magnitudes sum to ``magnitude``, within ``kerr`` of its exact value), rounded once where
    Ziv's test (:func:`symloss._bits.rounds_alone`) vouches that every value within its bound
    ``E`` -- the exact value and the double-double pair alike -- rounds to it, else NaN: the
    last step and the conditions shared by :func:`soft_modulated_slope_q` (``k = 1``) and
    :func:`soft_modulated_curvature_q` (``k = 2``).

    ``E = (|S·Q^(γ−k)|·kerr + (|γ − k| + 1)·2⁻⁶⁹·|r|)·(1 + 2⁻⁵)``: ``K``'s error carried by
    the rest, and the relative errors of ``Q^(γ−k)`` (:data:`SOFT_POW_ERR`), ``S`` (within
    2⁻⁷⁰ where its pair is at least 2⁻³⁰ of its terms' ``size``: the pair is within 2⁻¹⁰⁰ of
    that size) and the products (a few 2⁻¹⁰⁴); the last factor covers the bound's own
    rounding and the double-double pair's error (a few hundred 2⁻¹⁰⁴ of the same terms). So
    the result is the pair's bits, which the NumPy evaluator returns, wherever it is not NaN.
    NaN too where ``y`` is outside (0, 1), ``γ > 8``, ``e^(−|z|)``, ``Q`` or ``Q^(γ−k)`` is below
    2⁻⁸⁶⁵ (:data:`SOFT_MIN`) or ``Q^(γ−k)`` above 2¹⁰⁰⁰, the magnitude, ``Q^(γ−k)·K`` or the
    result is below 2⁻⁹⁰⁰ (:data:`SLOPE_MIN`: the products' relative bounds hold), or the
    result is not finite. (Soft targets uniform in (0, 1), ``z`` ~ N(0, 9), γ = 2: the
    first tier with :func:`_modulated_parts`' 2⁻⁶⁰ softplus and a relative bound where the
    bracket kept 2⁻⁴ of its terms declined 8.3 % of the gradient's elements, to the
    double-double form at ~170 ns each; this one ~0.4 %.)"""
    sh2, sl2 = _q_power(wh, wl, g, k)
    rh2 = sh2 * kh  # Q^(γ−k)·K
    rl2 = _fma(sh2, kh, -rh2) + (sh2 * kl + sl2 * kh)
    w = sh * rh2  # S·…
    wl2 = _fma(sh, rh2, -w) + (sh * rl2 + sl * rh2)
    r = w + wl2
    e = (abs(sh * sh2) * kerr + (abs(g - k) + 1.0) * SOFT_POW_ERR * abs(r)) * 1.03125
    good = ((y > 0.0) & (y < 1.0) & (eh >= SOFT_MIN) & (wh >= SOFT_MIN)
            & (magnitude >= SLOPE_MIN) & (sh2 >= SOFT_MIN) & (sh2 <= 2.0**1000)
            & (abs(rh2) >= SLOPE_MIN) & (abs(r) >= SLOPE_MIN) & (abs(r) < math.inf)
            & (g <= SLOPE_MAX_GAMMA) & (abs(sh) >= 2.0**-30 * size)
            & _rounds_alone(w, wl2, e))
    return r if good else math.nan


@njit(forceinline=True, error_model="numpy")
def soft_modulated_slope_q(z: float, y: float, g: float, sc: tuple[float, float],
                           size: float) -> float:
    """``S·Q^(γ−1)·(γ(1 − 2y)·C·σ(z)σ(−z) + Q·(σ(z) − y))`` with ``Q = y·σ(−z) + (1 − y)·σ(z)``,
    ``C = y·softplus(−z) + (1 − y)·softplus(z)`` -- ``S·d/dz[Q^γ·C]``, sigmoid_focal_loss's
    soft-label gradient (:func:`symloss.algebra.soft_modulated_slope`) -- rounded once where
    Ziv's test vouches that it is the exact value's rounding (:func:`_soft_scaled`), or NaN:
    where the bracket's two terms cancel by more than about 2¹² (next to ``σ(z) = y`` and the
    other roots), ``|z|`` above ~600 (``e^(−|z|)`` below 2⁻⁸⁶⁵), the scale's pair ``S``
    under 2⁻³⁰ of its terms' ``size``, :func:`_soft_scaled`'s other conditions, a NaN. The
    double-double form answers there. Branch-free.

    The bracket's terms may be subnormal where the result is not: ``Q^(γ−1)`` is large for
    ``γ < 1`` and small ``Q`` (``z = −359.38``, ``y = 2⁻¹⁰²²``: both terms about 10⁻³¹²,
    ``Q^(−1/2)`` 10⁷⁸, the result 10⁻²³⁴), and each product that lands below 2⁻¹⁰²² keeps
    only its absolute 2⁻¹⁰⁷⁵, not its relative 2⁻¹⁰⁴ (1.1e4 ulp there). From a magnitude of
    2⁻⁹⁰⁰ up those losses (a few times 2⁻¹⁰⁷¹, ``γ ≤ 8``, ``|1 − 2y| ≤ 1``) are below
    2⁻¹⁷⁰ of it, and the bound below holds.

    From :func:`_soft_parts`' pairs (``A = σ(z)``, ``B = σ(−z)`` within ε' ≤ 2⁻⁷¹, ``C``
    within 2⁻⁷⁰ absolute): ``1 − y`` and ``1 − 2y`` TwoSum pairs; ``Q`` within 2ε'; ``A − y``
    a TwoSum pair within ``ε'·A``, so ``Q·(A − y)`` within ``3ε'·Q·(A + y)``; the first term
    within ``5ε'`` of itself plus ``γ|1 − 2y|·AB·2⁻⁷⁰``. The bracket is so within
    :data:`SOFT_K_ERR`·M + :data:`SOFT_C_ERR`·γ|1 − 2y|·AB (``M`` its terms' magnitudes'
    sum, the products' few 2⁻¹⁰⁴ in it), whatever it cancels."""
    sh, sl = sc
    ah, _, _, _, fh, fl, eh2, el, wh, wl, dah, dal, xh, xl, eh = _soft_parts(z, y)
    mh = xh * eh2  # σ(z)σ(−z)·C
    ml = _fma(xh, eh2, -mh) + (xh * el + xl * eh2)
    nh = fh * mh  # ·(1 − 2y)
    nl = _fma(fh, mh, -nh) + (fh * ml + fl * mh)
    uh = g * nh  # first term: γ(1 − 2y)·C·σ(z)σ(−z)
    ul = _fma(g, nh, -uh) + g * nl
    vh = wh * dah  # second term: Q·(σ(z) − y)
    vl = _fma(wh, dah, -vh) + (wh * dal + wl * dah)
    oh = uh + vh  # the bracket (TwoSum)
    ob = oh - uh
    ol = ((uh - (oh - ob)) + (vh - ob)) + (ul + vl)
    magnitude = abs(uh) + wh * (ah + y)
    # K's error: C's weight in it is γ|1 − 2y|·σ(z)σ(−z)
    kerr = SOFT_K_ERR * magnitude + SOFT_C_ERR * (g * abs(fh) * xh)
    return _soft_scaled(sh, sl, wh, wl, g, 1.0, oh, ol, magnitude, kerr, y, eh, size)


@njit(forceinline=True, error_model="numpy")
def soft_modulated_curvature_q(z: float, y: float, g: float, sc: tuple[float, float],
                               size: float) -> float:
    """``S·Q^(γ−2)·K`` with ``K = γ(γ − 1)·D²·C + γ·Q·D·(B − A)·C + 2γ·Q·D·(A − y) + Q²·A·B``
    (``A = σ(z)``, ``B = σ(−z)``, ``D = (1 − 2y)·A·B = Q′``, ``B − A = Q″/Q′``; ``Q``, ``C`` as
    in :func:`soft_modulated_slope_q`) -- ``S·d²/dz²[Q^γ·C]``, sigmoid_focal_loss's soft-label
    Hessian (:func:`symloss.algebra.soft_modulated_slope` at order 2) -- rounded once where
    Ziv's test vouches that it is the exact value's rounding (:func:`_soft_scaled`), or NaN
    as :func:`soft_modulated_slope_q`. The double-double form answers there. Branch-free.

    From :func:`_soft_parts`' pairs (``A``, ``B`` within ε' ≤ 2⁻⁷¹, ``C`` 2⁻⁷⁰ absolute,
    ``Q`` 2ε', ``A − y`` within 1.5ε'·(A + y) absolute, ``A·B`` 3ε') and ``B − A`` a TwoSum
    pair (within 1.5ε', absolute), every product a pair that adds a few 2⁻¹⁰⁴: the parts of
    ``K`` but ``C`` within 9ε' of ``M = |γ(γ − 1)|D²C + γQ|D|C + 2γQ|D|(A + y) + Q²AB``,
    ``C``'s 2⁻⁷⁰ times its weight ``|γ(γ − 1)|D² + γQ|D|`` (:data:`SOFT_K_ERR`,
    :data:`SOFT_C_ERR`), whatever ``K`` cancels. A product that lands below 2⁻¹⁰²² loses at
    most a few 2⁻¹⁰⁷⁵ times ``γ²C`` (≤ 2¹⁶ for ``γ ≤ 8``, ``|z| ≤ 600``): below 2⁻¹⁵⁰ of
    ``M ≥ 2⁻⁹⁰⁰``."""
    sh, sl = sc
    ah, al, bh, bl, fh, fl, ch, cl, wh, wl, dah, dal, xh, xl, eh = _soft_parts(z, y)
    dh = fh * xh  # D = (1 − 2y)·A·B
    dl = _fma(fh, xh, -dh) + (fh * xl + fl * xh)
    qdh = wh * dh  # Q·D
    qdl = _fma(wh, dh, -qdh) + (wh * dl + wl * dh)
    ba = bh - ah  # B − A (TwoSum)
    bab = ba - bh
    bal = ((bh - (ba - bab)) + (-ah - bab)) + (bl - al)
    g1 = g - 1.0  # γ − 1 (TwoSum)
    g1b = g1 - g
    g1l = (g - (g1 - g1b)) + (-1.0 - g1b)
    # T₁ = γ(γ − 1)·D²·C
    d2h = dh * dh
    d2l = _fma(dh, dh, -d2h) + 2.0 * (dh * dl)
    p1h = d2h * ch
    p1l = _fma(d2h, ch, -p1h) + (d2h * cl + d2l * ch)
    p1gh = g * p1h
    p1gl = _fma(g, p1h, -p1gh) + g * p1l
    t1h = g1 * p1gh
    t1l = _fma(g1, p1gh, -t1h) + (g1 * p1gl + g1l * p1gh)
    # T₂ = γ·Q·D·(B − A)·C
    p2h = qdh * ch
    p2l = _fma(qdh, ch, -p2h) + (qdh * cl + qdl * ch)
    m2 = g * abs(p2h)  # γQ|D|C, T₂'s weight in M
    p2bh = p2h * ba
    p2bl = _fma(p2h, ba, -p2bh) + (p2h * bal + p2l * ba)
    t2h = g * p2bh
    t2l = _fma(g, p2bh, -t2h) + g * p2bl
    # T₃ = 2γ·Q·D·(A − y)
    g2 = g + g
    p3h = qdh * dah
    p3l = _fma(qdh, dah, -p3h) + (qdh * dal + qdl * dah)
    t3h = g2 * p3h
    t3l = _fma(g2, p3h, -t3h) + g2 * p3l
    m3 = g2 * abs(qdh) * (ah + y)
    # T₄ = Q²·A·B
    q2h = wh * wh
    q2l = _fma(wh, wh, -q2h) + 2.0 * (wh * wl)
    t4h = q2h * xh
    t4l = _fma(q2h, xh, -t4h) + (q2h * xl + q2l * xh)
    # K = T₁ + T₂ + T₃ + T₄ (TwoSums, the low parts summed after)
    ah1 = t1h + t2h
    ab1 = ah1 - t1h
    ae1 = (t1h - (ah1 - ab1)) + (t2h - ab1)
    ah2 = ah1 + t3h
    ab2 = ah2 - ah1
    ae2 = (ah1 - (ah2 - ab2)) + (t3h - ab2)
    kh = ah2 + t4h
    kb = kh - ah2
    ke = (ah2 - (kh - kb)) + (t4h - kb)
    kl = (ae1 + ae2 + ke) + ((t1l + t2l) + (t3l + t4l))
    magnitude = abs(t1h) + m2 + m3 + t4h
    # K's error: C's weight in it is |γ(γ − 1)|·D² + γQ|D|·|B − A| (T₁'s and T₂'s, |B − A| ≤ 1)
    kerr = SOFT_K_ERR * magnitude + SOFT_C_ERR * (abs(g * g1) * d2h + g * abs(qdh))
    return _soft_scaled(sh, sl, wh, wl, g, 2.0, kh, kl, magnitude, kerr, y, eh, size)


# Its names in the printers' flavours (aliases, read by symloss.fast's helper list): one
# function for float64 results (as cheap as the float form once vectorized); float32 results
# never take it (fitsqs_v: their float form decides).
modulated_slope_q_m = modulated_slope_q_w = modulated_slope_q_v = modulated_slope_q
modulated_curvature_q_m = modulated_curvature_q_w = modulated_curvature_q_v = modulated_curvature_q
soft_modulated_slope_q_m = soft_modulated_slope_q_w = soft_modulated_slope_q_v = soft_modulated_slope_q
soft_modulated_curvature_q_m = soft_modulated_curvature_q_w = soft_modulated_curvature_q_v = soft_modulated_curvature_q


#: :func:`exp_terms_q` vouches for exponents ``k·z`` up to this size: ``e^(k·z)`` between
#: 2⁻⁸⁶⁵ (:func:`exp_pair`'s low part keeps its bits) and 2⁸⁶⁵.
EXP_TERMS_MAX_X = 600.0


@njit(forceinline=True, error_model="numpy")
def _exp_term(z: float, w: float, c: tuple[float, float], k: tuple[float, float]
              ) -> tuple[float, float, float]:
    """``c·w·e^(k·z)`` as a pair (``c``, ``k`` pairs; ``z``, ``w`` floats) and ``k·z``'s high
    part: ``k·z = xh + xl`` (a fused multiply-add), ``e^(xh)`` from :func:`exp_pair` times
    ``1 + xl`` (``|xl| ≤ 2⁻⁵³·|xh|``: the dropped ``xl²/2`` is below 2⁻⁸⁸ for ``|xh| ≤ 600``),
    the products by fused multiply-adds: within 2⁻⁶⁵·⁹ of it, relative."""
    xh = k[0] * z
    xl = _fma(k[0], z, -xh) + k[1] * z
    eh, el = exp_pair(xh)
    el = el + eh * xl
    ph = c[0] * eh
    pl = _fma(c[0], eh, -ph) + (c[0] * el + c[1] * eh)
    qh = w * ph
    return qh, _fma(w, ph, -qh) + w * pl, xh


#: :func:`_terms_q`'s bound on the pair ``sh + t``'s distance from the exact sum, relative to
#: the terms' magnitude ``m``: each term within 2⁻⁶⁵·⁹ of its own (:func:`_exp_term`; an exact
#: product for ``exp_term1_q``'s second), the roundings in ``t`` below 2⁻¹⁰³·m; taken 2⁻⁶⁵.
TERMS_Q_ERR = 2.0**-65


@njit(forceinline=True, error_model="numpy")
def _terms_q(ah: float, al: float, bh: float, bl: float, fine: bool) -> float:
    """The pairs ``a + b`` summed (TwoSum) and rounded once, or NaN unless ``fine`` (the
    caller's own conditions), the sum is at least 2⁻⁹⁰⁰ (:data:`SLOPE_MIN`) and finite, and
    either keeps 2⁻⁴ of ``|a| + |b|`` (:data:`CANCEL_MARGIN`: within ``0.5 + 2⁻⁹`` ulp) or
    passes Ziv's test (the exact sum rounded once; random ``eᶻ − y`` cancelled by over 2⁴ in
    2.7% of the elements, which all went to double-double): :func:`exp_terms_q`'s and
    :func:`exp_term1_q`'s last step."""
    sh = ah + bh
    bb = sh - ah
    t = ((ah - (sh - bb)) + (bh - bb)) + (al + bl)
    r = sh + t
    m = abs(ah) + abs(bh)
    good = fine & (abs(r) >= SLOPE_MIN) & (abs(r) < math.inf)
    # where the sum cancels by more than 2⁴: Ziv's test on the pair sh + t (within
    # TERMS_Q_ERR·m of the exact sum; t ≤ 2⁻¹⁰|sh| keeps fl(sh + t) next to sh, as the test
    # needs): r is then the exact sum rounded once, the double-double form's bits
    ziv = (abs(t) <= 0.0009765625 * abs(sh)) & _rounds_alone(sh, t, TERMS_Q_ERR * m)
    return r if good & ((abs(r) >= CANCEL_MARGIN * m) | ziv) else math.nan


@njit(forceinline=True, error_model="numpy")
def exp_terms_q(z: float, w1: float, c1: tuple[float, float], k1: tuple[float, float],
                w2: float, c2: tuple[float, float], k2: tuple[float, float]) -> float:
    """``c₁w₁e^(k₁z) + c₂w₂e^(k₂z)`` (``c``, ``k`` pairs within 2⁻¹⁰⁴ of the options' values,
    ``w`` 1 or an input) rounded once, within ``0.5 + 2⁻⁹`` ulp, or NaN where that is not
    certain: an exponent beyond ±600 (:data:`EXP_TERMS_MAX_X`), a sum that cancels by more than
    2⁴ (:data:`CANCEL_MARGIN`) and is not certain by Ziv's test either (then it is the exact
    sum rounded once, :func:`_terms_q`), a result below 2⁻⁹⁰⁰ (:data:`SLOPE_MIN`) or not
    finite, a NaN.
    The first tier of ``accurate(...)`` of that shape (:func:`symloss.algebra.exp_terms`:
    tweedie_loss's gradient and Hessian, gamma_loss's gradient); there the double-double
    form answers. Branch-free (LLVM vectorizes it).

    Each term is a pair within 2⁻⁶⁵·⁹ of it (:func:`_exp_term`), their sum by TwoSum: where
    the sum keeps 2⁻⁴ of the terms' magnitude ``m``, its error, under 2⁻⁶⁵·⁹·m, is under
    2⁻⁶¹·⁹ of it, 2⁻⁹ ulp."""
    ah, al, x1 = _exp_term(z, w1, c1, k1)
    bh, bl, x2 = _exp_term(z, w2, c2, k2)
    return _terms_q(ah, al, bh, bl, (abs(x1) <= EXP_TERMS_MAX_X) & (abs(x2) <= EXP_TERMS_MAX_X))


exp_terms_q_m = exp_terms_q_w = exp_terms_q_v = exp_terms_q


@njit(forceinline=True, error_model="numpy")
def exp_term1_q(z: float, w1: float, c1: tuple[float, float], k1: tuple[float, float],
                w0: float, c0: tuple[float, float]) -> float:
    """:func:`exp_terms_q` where the second term's exponent is 0 (``c₁w₁e^(k₁z) + c₀w₀``:
    poisson's ``eᶻ − y``, gamma's ``1 − y·e^(−z)``): one exponential, the same bound."""
    ah, al, x1 = _exp_term(z, w1, c1, k1)
    bh = w0 * c0[0]
    return _terms_q(ah, al, bh, _fma(w0, c0[0], -bh) + w0 * c0[1], abs(x1) <= EXP_TERMS_MAX_X)


exp_term1_q_m = exp_term1_q_w = exp_term1_q_v = exp_term1_q


#: :func:`log_sub_q`'s error in ``log x`` (absolute): :func:`exp_pair_fine`'s 2⁻⁷² (relative
#: in ``e^(−L)``, so absolute in its log), the roundings of ``c`` (below 2⁻¹⁰⁰: ``|c| ≤
#: 2⁻⁴²``) and the series' dropped ``c³/3`` (below 2⁻¹²⁶), with a margin of 4.
LOG_SUB_Q_ERR = 2.0**-70
#: The double-double pair's own error (``ddouble.log_sub_pair``: 2⁻¹¹⁵ of the terms ``|log x|
#: + |z|``, then its product by ``s``, 2⁻¹⁰⁴ of it), taken as 2⁻¹⁰⁰ of ``|s|(|log x| + |z|)``:
#: the test vouches for the pair's rounding too.
LOG_SUB_Q_PAIR = 2.0**-100


@njit(forceinline=True, error_model="numpy")
def log_sub_q(s: float, x: float, z: float) -> float:
    """``s·(log x − z)`` rounded once from its exact value, or NaN where that is not certain:
    the first tier of ``accurate(s·log_sub(x, z))`` (kl_div's value ``y(log y − z)``), whose
    double-double form (:func:`symloss.ddouble.log_sub_pair`: a table and a degree-15
    double-double series per element) took 190 ms at 10⁶ soft targets, float64, 1 thread.
    Branch-free (LLVM vectorizes it).

    ``L = log_w(x)`` (within an ulp), then one correction from ``e^(−L)`` as a pair
    (:func:`exp_pair_fine`, 2⁻⁷²): ``c = x·e^(−L) − 1`` (a fused multiply-add: ``x·e^(−L)`` is
    within ``2⁻⁴²`` of 1) and ``log x = L + log1p(c) = L + c − c²/2`` within
    :data:`LOG_SUB_Q_ERR`, absolute. ``L − z`` exactly by TwoSum (``dh + dl``), ``c − c²/2``
    joined to ``dl``, the product by ``s`` split by one fused multiply-add. The bound ``E``
    adds the low parts' roundings (2⁻⁵² each, counted twice) and the pair's error
    (:data:`LOG_SUB_Q_PAIR`), and Ziv's test (:func:`symloss._bits.rounds_alone`) vouches that every value
    within ``E`` -- the exact value and the double-double pair -- rounds to the result: the
    pair's bits, which the NumPy evaluator returns. NaN where ``x`` is outside ``[e^(−708),
    e^600]`` (the pair's range: ``x`` subnormal, 0, negative), ``z`` or the result is not
    finite, or the result is below 2⁻⁹⁰⁰ (:data:`SLOPE_MIN`: the splits stay exact)."""
    L = log_w(x)
    ok = (L > -708.0) & (L < 600.0)
    eh, el = exp_pair_fine(-L if ok else 0.0)
    c = _fma(x, eh, -1.0) + x * el
    c = c - 0.5 * c * c
    dh = L - z
    bb = dh - L
    dl = (L - (dh - bb)) + (-z - bb)
    low = dl + c
    ph = s * dh
    pl = _fma(s, dh, -ph) + s * low
    a = abs(s)
    e = (a * (LOG_SUB_Q_ERR + 2.0**-52 * abs(low) + LOG_SUB_Q_PAIR * (abs(L) + abs(z)))
         + 2.0**-52 * (abs(s * low) + abs(pl))) * (1.0 + 2.0**-50)
    good = ok & _rounds_alone(ph, pl, e) & (abs(ph) >= SLOPE_MIN)
    return ph + pl if good else math.nan


log_sub_q_m = log_sub_q_w = log_sub_q_v = log_sub_q


#: :func:`sigmoid_curvature_q` vouches for ``|x|`` up to this: ``e^(−|x|)`` above 2⁻⁸⁶⁵, where
#: :func:`exp_pair`'s low part keeps its bits.
CURVATURE_MAX_X = 600.0


@njit(forceinline=True, error_model="numpy")
def sigmoid_curvature_q(x: tuple[float, float], sc: tuple[float, float]) -> float:
    """``S·σ(x)σ(−x) = S·t/(1 + t)²`` (``t = e^(−|x|)``; ``x = xh + xl`` and ``S = sh + sl``
    pairs within 2⁻¹⁰⁴ of their values) rounded once, within ``0.5 + 2⁻¹¹`` ulp, or NaN where
    that is not certain: ``|x| > 600`` (:data:`CURVATURE_MAX_X`), a result below 2⁻⁹⁰⁰
    (:data:`SLOPE_MIN`) or not finite, a NaN. The first tier of ``accurate(...)`` of that
    shape (:func:`symloss.algebra.sigmoid_curvature`: the Bernoulli variance, log_cosh_loss's
    Hessian); there the double-double form answers. Branch-free (LLVM vectorizes it).

    ``x`` a pair (``z − y`` by TwoSum, ``y·z`` by a fused multiply-add), so its rounding is
    not amplified by ``|x|`` as in ``e^(−fl(|x|))``. ``t = e^(−xh)·(1 − xl)`` from
    :func:`exp_pair` (2⁻⁶⁶; the dropped ``xl²/2`` is below 2⁻⁸⁷); ``1 + t`` by Fast2Sum, its
    square by a fused multiply-add, ``t/(1 + t)²`` as ``q0 + q1`` (the remainder exact):
    nothing cancels, so the relative error before the last rounding is below 2⁻⁶⁵·⁹, under
    2⁻¹² ulp."""
    sh, sl = sc
    neg = x[0] < 0.0
    xh = -x[0] if neg else x[0]
    xl = -x[1] if neg else x[1]
    th, tl = exp_pair(-xh)
    tl = tl - th * xl
    dh = 1.0 + th  # t ≤ 1: Fast2Sum
    dl = (th - (dh - 1.0)) + tl
    p = dh * dh
    pl = _fma(dh, dh, -p) + 2.0 * dh * dl
    q0 = th / p
    q1 = ((_fma(-q0, p, th) + tl) - q0 * pl) / p
    w = sh * q0
    r = w + (_fma(sh, q0, -w) + (sh * q1 + sl * q0))
    good = (xh <= CURVATURE_MAX_X) & (abs(r) >= SLOPE_MIN) & (abs(r) < math.inf)
    return r if good else math.nan


sigmoid_curvature_q_m = sigmoid_curvature_q_w = sigmoid_curvature_q_v = sigmoid_curvature_q


@njit(forceinline=True, error_model="numpy")
def _sign_against(d: float, e: float, s: float) -> float:
    """The sign of the exact ``(d + e) − s`` for ``d = fl(d + e)``: rounding is monotonic, so
    ``d`` compares with the float ``s`` as ``d + e`` does unless they are equal; there the sign
    of ``e`` decides."""
    if d != s:
        return 1.0 if d > s else -1.0
    return 1.0 if e > 0.0 else (-1.0 if e < 0.0 else 0.0)


@njit(forceinline=True, error_model="numpy")
def cmp_sum(a: float, b: float, s: float) -> float:
    """The sign of the exact ``(a + b) − s`` (−1.0, 0.0 or 1.0), by TwoSum's error
    (:func:`symloss.kernels.cmp_sum`)."""
    d = a + b
    bb = d - a
    return _sign_against(d, (a - (d - bb)) + (b - bb), s)


@njit(forceinline=True, error_model="numpy")
def cmp_abs_sum(a: float, b: float, s: float) -> float:
    """The sign of the exact ``|a + b| − s`` (:func:`cmp_sum` of the absolute value)."""
    d = a + b
    bb = d - a
    e = (a - (d - bb)) + (b - bb)
    return _sign_against(-d, -e, s) if d < 0.0 else _sign_against(d, e, s)


#: The largest rounding error of ``(p0 + p1) + (p2 + p3)`` over four rounded products, as a
#: fraction of ``Σ|pᵢ|`` (four products, three sums: under 7 units of 2⁻⁵³; 2⁻⁵⁰ with slack),
#: and an absolute part for the products' underflow (four of 2⁻¹⁰⁷⁵), taken as the normal
#: 2⁻¹⁰²⁰: a subnormal operand costs a microcode assist per element (the kernels ran 20 times
#: slower), and only sums below 1e-307 go to the exact path for it.
_CMP_REL = 2.0 ** -50
_CMP_ABS = 2.0 ** -1020


def _grow_expansion_source(n: int) -> str:
    """The source of ``_cmp_products_exact`` for ``n`` products, unrolled: scalars only (an
    array here, allocated in a kernel's loop even where the branch is not taken, made the
    kernels 20 times slower)."""
    args = ", ".join(f"a{i}, b{i}" for i in range(n))
    lines = [f"def _cmp_products_exact({args}):"]
    parts = []
    for i in range(n):
        lines += [f"    p{i} = a{i} * b{i}", f"    e{i} = _fma(a{i}, b{i}, -p{i})"]
        parts += [f"p{i}", f"e{i}"]
    for j, x in enumerate(parts):
        lines.append(f"    q = {x}")
        for i in range(j):
            lines += [f"    s = q + h{i}", "    bb = s - q",
                      f"    h{i} = (q - (s - bb)) + (h{i} - bb)", "    q = s"]
        lines.append(f"    h{j} = q")
    for j in reversed(range(len(parts))):
        lines.append(f"    if h{j} != 0.0:\n        return 1.0 if h{j} > 0.0 else -1.0")
    lines.append("    return 0.0")
    return "\n".join(lines) + "\n"


_namespace: dict[str, object] = {"_fma": _fma}
exec(_grow_expansion_source(4), _namespace)  # our own generated source
#: The sign of the exact ``a0·b0 + a1·b1 + a2·b2 + a3·b3``: each product split exactly into
#: ``p + e`` (one fused multiply-add), the eight floats summed into a nonoverlapping expansion
#: (Shewchuk's Grow-Expansion, TwoSum by TwoSum), whose largest nonzero component has the sum's
#: sign.
_cmp_products_exact = njit(error_model="numpy")(_namespace["_cmp_products_exact"])


#: What :func:`cmp_products_f` returns where its float64 sum does not decide (no sign is 2).
CMP_UNDECIDED = 2.0


@njit(forceinline=True, error_model="numpy")
def cmp_products_f(a0: float, b0: float, a1: float, b1: float, a2: float, b2: float,
                   a3: float, b3: float) -> float:
    """:func:`cmp_products`' float64 filter alone, branch-free: its sign where the sum exceeds
    the rounding bound (the same bits as :func:`cmp_products` there), else
    :data:`CMP_UNDECIDED`. A kernel's first pass calls this (a conditional call to the exact
    expansion keeps a loop scalar, its sign a mispredicted branch: margin_ranking_loss's
    gradient, 1e6 elements, 0.5 -> 29 ms) and evaluates the elements it left undecided again
    with :func:`cmp_products` (:func:`symloss.fast._filtered`)."""
    p0 = a0 * b0
    p1 = a1 * b1
    p2 = a2 * b2
    p3 = a3 * b3
    s = (p0 + p1) + (p2 + p3)
    m = (abs(p0) + abs(p1)) + (abs(p2) + abs(p3))
    sign = 1.0 if s > 0.0 else (-1.0 if s < 0.0 else (0.0 if s == 0.0 else math.nan))
    sure = (abs(s) > _CMP_REL * m + _CMP_ABS) | (not m < math.inf)
    return sign if sure else CMP_UNDECIDED


@njit(forceinline=True, error_model="numpy")
def cmp_products(a0: float, b0: float, a1: float, b1: float, a2: float, b2: float,
                 a3: float, b3: float) -> float:
    """The sign of the exact ``a0·b0 + a1·b1 + a2·b2 + a3·b3`` (−1.0, 0.0 or 1.0; NaN for a
    NaN): the float64 sum decides where it exceeds its rounding error's bound, else
    :func:`_cmp_products_exact` (:func:`symloss.kernels.cmp_products`). A product that
    overflows decides as its float64 value does."""
    sign = cmp_products_f(a0, b0, a1, b1, a2, b2, a3, b3)
    if sign != CMP_UNDECIDED:
        return sign
    return _cmp_products_exact(float(a0), float(b0), float(a1), float(b1), float(a2),
                               float(b2), float(a3), float(b3))


#: :func:`sigmoid_subq` certifies a result ``r`` where ``|r| ≥ SUBQ_MARGIN·M`` (``M`` the
#: terms' magnitude): its error before the last rounding, at most about 2⁻⁶³·⁹·M, is then
#: under 2⁻⁵⁵·|r|, a quarter of an ulp.
SUBQ_MARGIN = 2.0**-8
#: ... and where ``e^(−|z|) ≥ 2⁻⁹⁰⁰`` (every part of the pairs a normal number).
_SUBQ_MIN_E = 2.0**-900
#: :func:`sigmoid_subq_v` (float32 results) takes its float64 form where ``|r| ≥
#: SUBQ32_MARGIN·(σ + |y|)``.
SUBQ32_MARGIN = 2.0**-14


@njit(forceinline=True, error_model="numpy")
def _sigmoid_subq_parts(z: float, y: float) -> tuple[float, float, bool]:
    """:func:`sigmoid_subq`'s value before its last rounding, ``q0 + c`` (``c`` below an ulp of
    ``q0``), and whether it certifies ``r = fl(q0 + c)``: the one computation of the first
    tier, for :func:`sigmoid_subq` and its scaled form :func:`sigmoid_subq_s`."""
    eh, el = exp_pair(-abs(z))
    ah = 1.0 - y
    bb = ah - 1.0
    al = (1.0 - (ah - bb)) + (-y - bb)  # 1 − y = ah + al exactly (TwoSum)
    pos = z >= 0.0
    p1 = ah * eh
    p1e = _fma(ah, eh, -p1) + (ah * el + al * eh)
    p2 = y * eh
    p2e = _fma(y, eh, -p2) + y * el
    c1h = ah if pos else p1
    c1l = al if pos else p1e
    c2h = p2 if pos else y
    c2l = p2e if pos else 0.0
    d = c1h - c2h
    bb = d - c1h
    e = (c1h - (d - bb)) + (-c2h - bb)  # TwoSum
    tl = e + (c1l - c2l)
    th = d + tl
    bb = th - d
    tl = (d - (th - bb)) + (tl - bb)  # TwoSum
    dh = 1.0 + eh
    dl = (eh - (dh - 1.0)) + el
    q0 = th / dh
    rho = _fma(-q0, dh, th)  # exact remainder
    c = ((rho + tl) - q0 * dl) / dh
    r = q0 + c
    m = abs(c1h) + abs(c2h)
    good = (abs(r) >= SUBQ_MARGIN * m) & (eh >= _SUBQ_MIN_E) & (abs(r) < math.inf)
    return q0, c, good


@njit(forceinline=True, error_model="numpy")
def sigmoid_subq(z: float, y: float) -> float:
    """``σ(z) − y`` in float64 within 0.75 ulp of the exact value, or NaN where that is not
    certain: cancelling by more than 8 bits, ``|z| > 620`` (``e^(−|z|)`` below 2⁻⁹⁰⁰), or a
    NaN (there the double-double :func:`symloss.ddouble.sigmoid_sub` answers). Branch-free
    (LLVM vectorizes it) and 4 to 5 times cheaper than the double-double form.

    With ``E = e^(−|z|)`` a pair within 2⁻⁶⁴ (:func:`exp_pair`: about 2⁻⁶⁶) and ``a = 1 − y`` an exact
    pair: ``σ(z) − y = T/(1 + E)``, ``T = a − yE`` for ``z ≥ 0``, ``aE − y`` for ``z < 0``;
    the products exact pairs (fused multiply-add) but for their low parts' products (2⁻¹⁰⁵),
    the difference of the high parts exact (TwoSum). ``T``'s error is then at most
    ``2⁻⁶⁴·M`` and a few ``2⁻¹⁰⁵·M`` (``M = |c₁| + |c₂|``, its two terms); the quotient by
    ``1 + E`` (a pair) is one division corrected by its exact remainder (another
    ``2⁻¹⁰⁴|r|``). Where ``|r| ≥ 2⁻⁸·M`` that is below a quarter of an ulp of ``r``
    (``≥ 2⁻⁵³|r|``), and the final rounding adds half an ulp."""
    q0, c, good = _sigmoid_subq_parts(z, y)
    r = q0 + c
    return r if good else math.nan


#: :func:`sigmoid_subq_s` certifies a scaled result from this magnitude up (2⁻⁹⁶⁰: the low
#: parts of its products stay normal numbers; below, the double-double form answers).
_SUBQ_MIN_SCALED = 2.0**-960


@njit(forceinline=True, error_model="numpy")
def sigmoid_subq_s(z: float, y: float, s: tuple[float, float]) -> float:
    """``S·(σ(z) − y)`` for a scale given as a pair ``s = (sh, sl)`` (``sh + sl`` within
    2⁻¹⁰⁴ of ``S``, :func:`symloss.primitives.dd_code`'s ``t_quot``, ``t_prod``: a weight over
    C), rounded once, within 0.75 ulp of the exact value; NaN where :func:`sigmoid_subq`
    declines, where the result is below 2⁻⁹⁶⁰ or not finite (there the double-double form
    answers). The first tier of ``accurate(S·(σ(z) − y))`` (:func:`symloss.algebra.
    scaled_difference`: :func:`symloss.layout.scaled_inside` moves a weight and ``1/C`` inside
    the one rounding), as cheap as :func:`sigmoid_subq` but for one pair product.

    ``q0 + c`` is within ``2⁻⁵⁵|q0 + c|`` of ``σ(z) − y`` where certified; its product with
    ``sh + sl`` is formed exactly but for ``c·sl`` and the roundings of ``q0·sl + c·sh`` and
    of the low part's sum (each about ``2⁻¹⁰⁵`` of the result), so before the last rounding
    (half an ulp) the error is below a quarter of an ulp (``≥ 2⁻⁵³`` of the result)."""
    q0, c, good = _sigmoid_subq_parts(z, y)
    sh, sl = s
    p = q0 * sh
    v = p + (_fma(q0, sh, -p) + (q0 * sl + c * sh))
    good = good & (abs(v) >= _SUBQ_MIN_SCALED) & (abs(v) < math.inf)
    return v if good else math.nan


# The flavours' names for the printers: one function (as cheap as the float form).
@njit(forceinline=True, error_model="numpy")
def sigmoid_subq_v(z: float, y: float) -> float:
    """float32 results: the float64 form ``r = σ(z) − y``, NaN where it cancels by more than
    14 bits (:data:`SUBQ32_MARGIN`), and for ``|z| > 620`` as :func:`sigmoid_subq`. σ is
    :func:`sigmoid_e_c` of :func:`exp_m`'s ``e^(−|z|)``: the quotient's rounding and the last
    subtraction's (2⁻⁵³ each) and ``e^(−|z|)``'s 0.52 ulp (at most 2⁻⁵²·⁹ of σ) leave it within
    ``2⁻⁵¹·⁴·σ``. With the subtraction's rounding (``2⁻⁵³|r|``) the error is below
    ``2⁻³⁷|r|`` where ``|r| ≥ 2⁻¹⁴(σ + |y|)``: 2⁻¹³ of a float32 ulp (``≥ 2⁻²⁴|r|``), so the
    float32 result is within 0.5001 ulp. (:func:`sigmoid_e_m`'s pair, within half an ulp,
    cost 17% more for digits the float32 result rounds away: 1e6 soft targets, 2.07 ->
    1.73 ms; 6 bits, :func:`fits_v`'s rule for the ``exp_v`` forms, sent 2.9% of soft targets
    to double-double.)"""
    s = sigmoid_e_c(z, exp_m(-abs(z)))
    r = s - y
    good = (abs(r) >= SUBQ32_MARGIN * (s + abs(y))) & (abs(z) <= 620.0)
    return r if good else math.nan


# float64 results, scalar (_m) and vectorized (_w): the first tiers themselves (aliases, which
# symloss.fast's helper list reads as the functions they name).
sigmoid_subq_m = sigmoid_subq_w = sigmoid_subq
sigmoid_subq_s_m = sigmoid_subq_s_w = sigmoid_subq_s


@njit(forceinline=True, error_model="numpy")
def fitsq_m(q: float) -> bool:
    """Whether a first tier (:func:`sigmoid_subq`, :func:`sigmoid_subq_v`,
    :func:`sigmoid_subq_s`) certified its value (not NaN), in every flavour but ``fitsqs_v``
    (the scaled form's test has a name of its own only for its float32 flavour, never)."""
    return q == q


fitsq_v = fitsq_w = fitsqs_m = fitsqs_w = fitsq_m


@njit(forceinline=True, error_model="numpy")
def fitsqs_v(q: float) -> bool:
    """float32 results: never (:mod:`symloss._statements` takes the other arm directly): the
    float64 form's own test (:func:`fitsk32`) decides, as cheap and keeping their digits."""
    return False


@njit(forceinline=True, error_model="numpy")
def fits_v(p: float, m: float) -> bool:
    """Whether a float64 form ``p`` whose terms' magnitudes sum to ``m`` keeps a float32
    result's digits: cancelling at most 6 bits, its rounding (≲ 2⁻⁴⁰·m) stays 2⁻¹⁰ of an ulp."""
    return abs(p) >= 0.015625 * m


@njit(forceinline=True, error_model="numpy")
def fits_m(p: float, m: float) -> bool:
    """float64 results: a form that may cancel is always evaluated in double-double."""
    return False


@njit(forceinline=True, error_model="numpy")
def fitsk_v(p: float, m: float, k: float) -> bool:
    """:func:`fits_v` for a form whose rounding bound is known (``k``, see :func:`fitsk32`):
    the float32 kernels' first pass, whose ``*_v`` helpers (exp_v: 6e-11) it does not bound."""
    return abs(p) >= 0.015625 * m


@njit(forceinline=True, error_model="numpy")
def fitsk_m(p: float, m: float, k: float) -> bool:
    """float64 results: :func:`fits_m`. With libm's helpers a form rounds by up to ``K·2⁻⁵³``
    of its terms' magnitude (:func:`symloss.algebra.rounding_bound`), ``K`` ≥ 14 + 3γ for a
    product of σ's, softplus and σ^γ as sigmoid_focal_loss's Hessian: 7 to 14 ulp and more
    even where nothing cancels, above the 4-ulp goal; so double-double, every element (in a
    vectorized pass over each label's elements, :func:`vector_dd`)."""
    return False


@njit(forceinline=True, error_model="numpy")
def fitsk32(p: float, m: float, k: float) -> bool:
    """Whether a float64 form ``p`` evaluated with libm's helpers, whose terms' magnitudes sum
    to ``m`` and whose rounding is at most ``K·2⁻⁵³·m`` (``k = K·2⁻¹⁹``,
    :func:`symloss.algebra.rounding_bound`), keeps a float32 result's digits: where
    ``|p| ≥ k·m`` its error is at most ``2⁻³⁴|p|``, 2⁻¹⁰ of a float32 ulp (≥ 2⁻²⁴|p|), so
    the rounded result is within 0.501 ulp. The float32 kernels' second pass and soft-label
    pass (libm's helpers) use it; only elements that cancel by more than ``2¹⁹/K`` take the
    double-double form."""
    return abs(p) >= k * m


@njit(forceinline=True, error_model="numpy")
def fitsz_m(ok: bool, p: float, m: float, k: float) -> bool:
    """A float-first test ``ok`` (another of these helpers) of a form whose rounding with
    libm's helpers is known, at most ``K·2⁻⁵³·m`` (``k = K·2⁻¹⁹``,
    :func:`symloss.algebra.rounding_bound`): ``ok`` itself, in every flavour and pass but
    the one :func:`fitszd32` is printed for (the bound serves only there)."""
    return ok


fitsz_v = fitsz_w = fitsz32 = fitsz_m


#: ``2⁻³⁴·1.001``: ``k·2⁻³⁴ = K·2⁻⁵³``, with a margin for the second-order terms the bound
#: leaves out and the rounding of ``m``.
_ZIV_K = 2.0 ** -34 * 1.001


@njit(forceinline=True, error_model="numpy")
def fitszd32(ok: bool, p: float, m: float, k: float, d: float) -> bool:
    """float32 results whose whole value is the float64 form ``p`` (libm's helpers, within
    ``K·2⁻⁵³·m`` of the exact value ``P``, ``k = K·2⁻¹⁹``) divided by ``d > 0``: ``ok`` (the
    form's own test, whose float form the kernel kept before), or else Ziv's rounding test --
    every float64 ``x`` within ``E`` of ``p`` gives the same float32 ``fl32(fl(x/d))``. ``E =
    k·2⁻³⁴·1.001·m + 2⁻⁵⁰|p| + 2⁻¹⁰⁰⁰`` holds ``P`` and the double-double arm's float64 value
    (within an ulp of ``P``; ``fl(p ± E)`` rounds inwards by at most ``2⁻⁵³|p ± E|``); ``x ↦
    fl32(fl(x/d))`` is monotone, so where the two ends agree the float form's result is the
    double-double arm's, bit for bit. Only where the float form cancels by ~29 bits or
    ``P/d`` is within ``E/d`` of a float32 rounding boundary does the test fail (NaN and
    infinite ``p`` or ``m`` too: the ends are NaN or differ)."""
    e = _ZIV_K * k * m + 8.881784197001252e-16 * abs(p) + 9.332636185032189e-302
    return ok or np.float32((p - e) / d) == np.float32((p + e) / d)


@njit(forceinline=True, error_model="numpy")
def fitsx_m(p: float, m: float) -> bool:
    """Never: a float64 form behind a first tier of pairs (``eᶻ − y``: :func:`exp_terms_q`)
    that declined goes to double-double, not to a float form within 3 ulp (the NumPy evaluator
    rounds once from double-double: the two would be 2 floats apart)."""
    return False


#: float32 results keep their float form's test; the vectorized pass's name.
fitsx_w = fitsx_m
fitsx_v = fits_v


@njit(forceinline=True, error_model="numpy")
def fits1_m(p: float, m: float) -> bool:
    """Whether ``p = fl(h − y)``, ``m = fl(|h| + |y|)`` -- a head ``h`` within 1 ulp of its
    exact value ``H`` (libm's log, :func:`exp_m`), an exact input ``y`` -- is within 3 ulp of
    ``D = H − y`` (:func:`symloss.kernels.fits1`, the NumPy evaluator's rule; proof there)."""
    return 3.0 * abs(p) >= FITS1_MARGIN * m


@njit(forceinline=True, error_model="numpy")
def certified(r: float, m: float, flag: np.ndarray) -> float:
    """``r``, or NaN where ``|r| < 2⁻³⁹·m`` (an exact 0 too, unless 2⁻³⁹·m is subnormal) or
    the terms are within 2⁵⁴ of the subnormals: a
    double-double result too cancelled, or with too few bits in its low parts, to trust
    (:func:`symloss.ddouble.certified`), with ``flag[0]`` set, so that the caller looks for
    the NaN elements :mod:`symloss.exact` recomputes only where there are some."""
    a = abs(r)
    bound = 1.8189894035458565e-12 * m
    if ((a < bound and (r != 0.0 or bound >= 2.2250738585072014e-308))
            or (m < 4.008336720017946e-292 and a >= 2.2250738585072014e-308)):
        flag[0] = 1
        return math.nan
    return r


@njit(forceinline=True, error_model="numpy")
def certified_b(r: float, m: float, flag: np.ndarray) -> float:
    """:func:`certified` without a branch or the store to ``flag`` (so that a loop of it
    vectorizes): the caller sets ``flag[0]`` where a result is NaN."""
    a = abs(r)
    bound = 1.8189894035458565e-12 * m
    bad = ((a < bound) & ((r != 0.0) | (bound >= 2.2250738585072014e-308))) | (
        (m < 4.008336720017946e-292) & (a >= 2.2250738585072014e-308))
    return math.nan if bad else r


@njit(forceinline=True, error_model="numpy")
def maximum(a: float, b: float) -> float:
    """``numpy.maximum``: a NaN in either argument is the result."""
    if a != a:
        return a
    return a if a >= b else b


@njit(forceinline=True, error_model="numpy")
def clamped_log(x: float) -> float:
    # torch's binary_cross_entropy clamps each log at −100 so that log(0) gives a finite loss.
    return maximum(math.log(x), -100.0)


#: Most rows handled together: one call of the max and sum helpers per block, not per row.
BLOCK = 16

#: float64 values of ``exp(z − m)`` a block holds: with the block's rows of ``z`` (and of the
#: hvp direction) it stays in L1 (on 200 classes: 5 rows, 30% faster than 16 rows).
BLOCK_VALUES = 1024


@njit(inline="always")  # one integer line: numba copies it cheaper than a compile of its own
def block_rows(n_classes: int, most: int = BLOCK) -> int:
    """Rows per block for rows of ``n_classes``: 1 to ``most`` (:data:`BLOCK`;
    :data:`TIER_BLOCK` where a block tier runs across the rows)."""
    return max(1, min(most, BLOCK_VALUES // max(n_classes, 1)))


#: Bytes in one vector of :func:`_vector_max` (AVX-512; narrower machines split it in two).
_VECTOR_BYTES = 64


@intrinsic
def _vector_max(typingctx, row, n):  # type: ignore[no-untyped-def]
    """``max(row[:n])`` for a C-contiguous 1-D float row, ``n`` a positive multiple of the lanes.

    Written as explicit vector IR (``64 // itemsize`` lanes of compare-and-select), because
    LLVM does not vectorize the scalar ``m = v if v > m else m`` reduction that numba emits
    (no fast-math flags reach its ``select``): scalar, the max pass cost as much as the exp.
    The lanes start at ``row[0]`` and keep it where ``v > m`` is false, so a NaN in ``row[0]``
    is the result and a NaN elsewhere is skipped, as in the scalar loop.
    """
    if not isinstance(row, types.Array) or row.ndim != 1 or row.dtype not in (
            types.float32, types.float64):
        return None
    sig = row.dtype(row, types.int64)
    lanes = _VECTOR_BYTES // row.dtype.bitwidth * 8

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        n = args[1]
        vec = ir.VectorType(data.type.pointee, lanes)
        i32 = ir.IntType(32)
        acc = cgutils.alloca_once(builder, vec)
        first = builder.load(data)
        init = ir.Constant(vec, ir.Undefined)
        for lane in range(lanes):
            init = builder.insert_element(init, first, ir.Constant(i32, lane))
        builder.store(init, acc)
        step = ir.Constant(n.type, lanes)
        with cgutils.for_range_slice(builder, ir.Constant(n.type, 0), n, step,
                                     intp=n.type) as (j, _):
            v = builder.load(builder.bitcast(builder.gep(data, [j]), vec.as_pointer()),
                             align=row.dtype.bitwidth // 8)
            a = builder.load(acc)
            builder.store(builder.select(builder.fcmp_ordered(">", v, a), v, a), acc)
        a = builder.load(acc)
        m = builder.extract_element(a, ir.Constant(i32, 0))
        for lane in range(1, lanes):
            x = builder.extract_element(a, ir.Constant(i32, lane))
            m = builder.select(builder.fcmp_ordered(">", x, m), x, m)
        return m

    return sig, codegen


@njit(error_model="numpy")
def block_max(z: np.ndarray, r0: int, r1: int, ms: np.ndarray) -> None:
    """``ms[r − r0] = max_j z[r, j]`` for rows ``r0 ≤ r < r1`` (C-contiguous ``z``).

    The max is taken in the array's dtype (float32 rows compare 16 to a vector). A NaN in a
    row that the max skips still reaches every output of the row through exp(z − m), which is
    computed without fast-math.
    """
    lanes = _VECTOR_BYTES // z.itemsize
    n = z.shape[1]
    bulk = n - n % lanes
    for r in range(r0, r1):
        zr = z[r]
        m = _vector_max(zr, bulk) if bulk > 0 else zr[0]
        for j in range(bulk, n):
            v = zr[j]
            m = v if v > m else m
        ms[r - r0] = np.float64(m)


@njit(error_model="numpy")
def label_rows(out: np.ndarray, t: np.ndarray, ignore: int, at: np.ndarray, off: np.ndarray,
               r0: int, r1: int) -> None:
    """Rows ``r0 ≤ r < r1`` of a class-index result that reads only whether class ``i`` is the
    row's label ``t[r]``: ``off[i]`` written over the rows, then ``at[t[r]]`` at each label (an
    ignored row 0), as torch's zeros and scatter: flat passes over the rows of a C-contiguous
    ``out``, counted from 0. (A loop over each row's classes that selects at or off per class
    is not vectorized, nor are these passes with the rows counted from ``r0``: 1e6 float32, 1
    thread, 0.41 and 0.56 ms, against 0.18 ms.)"""
    n = out.shape[1]
    flat = out[r0:r1].reshape(-1)  # (from 0: rows counted from r0 are not vectorized)
    labels = t[r0:r1]
    for r in range(r1 - r0):
        for i in range(n):
            flat[r * n + i] = off[i]
    for r in range(r1 - r0):
        tr = labels[r]
        if tr == ignore:
            for i in range(n):
                flat[r * n + i] = 0.0
        else:
            flat[r * n + tr] = at[tr]


@njit(fastmath={"reassoc", "nsz"}, error_model="numpy")
def block_sums(ebuf: np.ndarray, n: int, smalls: np.ndarray, ones: np.ndarray) -> None:
    """Per row of ``ebuf[:n]`` (``e_j = exp(z_j − m)``): ``Σ_{e_j < 1} e_j`` and ``#{e_j = 1}``.

    ``s = Σ_{j ≠ argmax} e_j`` is ``smalls + (ones − 1)``: the arg-max is where ``e`` is exactly
    ``exp(0) = 1``, each further tie adds 1. As in :mod:`symloss.kernels`, leaving the arg-max
    out of ``s`` keeps ``log1p(s)`` and ``1 − softmax`` accurate where the largest probability
    rounds to 1. reassoc lets LLVM vectorize the sums (a tree of partial sums, like numpy's
    pairwise sum); the caller adds ``ones − 1`` outside, so no reassociation can fold the −1
    into the small terms.
    """
    for r in range(n):
        b = ebuf[r]
        s = 0.0
        o = 0.0
        for j in range(b.shape[0]):
            e = b[j]
            s += e if e != 1.0 else 0.0
            o += 1.0 if e == 1.0 else 0.0
        smalls[r] = s
        ones[r] = o


@njit(fastmath={"reassoc", "nsz"}, error_model="numpy")
def block_sums_dot(ebuf: np.ndarray, n: int, smalls: np.ndarray, ones: np.ndarray,
                   x: np.ndarray, r0: int, dots: np.ndarray) -> None:
    """:func:`block_sums`, and ``dots[r] = Σ_j e_j·x[r0 + r, j]`` in the same pass.

    For a derived ``Σ_k softmax_k·x_k = Σ_k e_k·x_k / (1 + s)`` (``p·v`` in cross-entropy's
    Hessian-vector product): no pass of its own over the row. float32 kernels only: a plain
    float64 sum, as their lane sums.
    """
    for r in range(n):
        b = ebuf[r]
        xr = x[r0 + r]
        s = 0.0
        o = 0.0
        d = 0.0
        for j in range(b.shape[0]):
            e = b[j]
            s += e if e != 1.0 else 0.0
            o += 1.0 if e == 1.0 else 0.0
            d += e * np.float64(xr[j])
        smalls[r] = s
        ones[r] = o
        dots[r] = d


@njit(forceinline=True, error_model="numpy")
def fill_exp_v(zr: np.ndarray, m: float, b: np.ndarray, bl: np.ndarray) -> None:
    """``b[j] = exp(z_j − m)`` (float32 rows: z − m is exact in float64); ``bl`` unused (the
    float64 kernels' low parts, :func:`fill_exp_m`)."""
    for j in range(zr.shape[0]):
        b[j] = exp_v(np.float64(zr[j]) - m)


@njit(forceinline=True, error_model="numpy")
def exp_shifted_pair(a: float, m: float) -> tuple[float, float]:
    """``e^(a − m)`` as a normalized pair ``(h, l)``, branch-free: :func:`exp_pair_fine` of
    ``xh = fl(a − m)`` times ``e^xl = 1 + xl`` for its rounding error ``xl`` (TwoSum; ``|xl| <
    2⁻⁴³``, ``xl²`` below 2⁻⁸⁶), renormalized by Fast2Sum (exact). ``h + l`` is within 2⁻⁷² of
    ``e^(a − m)`` (relative) for ``a − m`` in [−600, 0], so ``h`` is ``e^(a − m)`` rounded once
    but within 2⁻⁷² of a midpoint (an ulp at most, as libm's, below 2⁻⁸⁶⁵); ``a = m`` gives
    exactly 1, NaN NaN, ``a − m = −inf`` 0 (its NaN ``xl`` counts as 0)."""
    xh = a - m
    bb = xh - a
    xl = (a - (xh - bb)) + (-m - bb)
    eh, el = exp_pair_fine(xh)
    lo = el + eh * (xl if abs(xl) < math.inf else 0.0)
    h = eh + lo  # |lo| ≤ 2⁻⁴²·eh: Fast2Sum
    return h, lo - (h - eh)


@njit(forceinline=True, error_model="numpy")
def fill_exp_m(zr: np.ndarray, m: float, b: np.ndarray, bl: np.ndarray) -> None:
    """``b[j] = exp(z_j − m)`` for float64 rows, as the pair ``(b[j], bl[j])`` of
    :func:`exp_shifted_pair`: ``b`` is the exponential rounded once (libm's exp of the rounded
    ``z − m``, corrected by ``1 + e``, was up to an ulp off, 7 ns an element against 5 for this
    vectorized loop), and the class-axis rows' first tier (:func:`softmax_sub_qb_m`, …) reads
    the pair, so that each ``e^(z − m)`` is computed once."""
    for j in range(zr.shape[0]):  # no calls, no branches: vectorized
        b[j], bl[j] = exp_shifted_pair(np.float64(zr[j]), m)


#: Classes up to which :func:`fill_exp_block_m` runs one loop over the block's elements.
_FLAT_EXP_CLASSES = 32


@njit(error_model="numpy")  # a call of its own, over flat arrays: vectorized
def _fill_exp_flat(zf: np.ndarray, mf: np.ndarray, b: np.ndarray, bl: np.ndarray) -> None:
    """``(b[f], bl[f])``: :func:`exp_shifted_pair` of ``zf[f]`` and ``mf[f]``."""
    for f in range(zf.shape[0]):  # no calls, no branches: vectorized
        b[f], bl[f] = exp_shifted_pair(np.float64(zf[f]), mf[f])


@njit(error_model="numpy")
def fill_exp_block_m(z: np.ndarray, r0: int, r1: int, ms: np.ndarray, ebuf: np.ndarray,
                     elo: np.ndarray, mrow: np.ndarray) -> None:
    """:func:`fill_exp_m` of the block's rows ``r0 ≤ r < r1`` (C-contiguous ``z``, row
    ``q = r − r0`` of ``ebuf`` and ``elo``): the same pairs. Up to :data:`_FLAT_EXP_CLASSES`
    classes, one loop over the block's elements (each row's max repeated in ``mrow``, at least
    ``nb·C`` long): row by row, a row of 10 classes left 2 of them to scalar code after a
    vector of 8 (1e6 elements, 1 thread: 5.9 -> 4.4 ms)."""
    n = z.shape[1]
    nr = r1 - r0
    if n > _FLAT_EXP_CLASSES:
        for q in range(nr):
            fill_exp_m(z[r0 + q], ms[q], ebuf[q], elo[q])
        return
    for q in range(nr):
        for j in range(n):
            mrow[q * n + j] = ms[q]
    _fill_exp_flat(z[r0:r1].reshape(nr * n), mrow[:nr * n],
                   ebuf.reshape(ebuf.shape[0] * n), elo.reshape(elo.shape[0] * n))


# The class-axis row functions' first tier (float64 results). symloss.ddouble's row functions
# compute every class of a row in double-double (its exp alone ~57 ns per element); here each
# class's value comes from the row's exponentials as pairs (buf, bl: :func:`fill_exp_m`, the
# kernel's exponential pass, within 2⁻⁷² of them) and fused multiply-adds, with a bound ``E``
# on its distance from the exact value, and is taken where every value within ``2E`` of the
# pair rounds to the same float (Ziv's test): that float is then the exact value rounded once,
# and so is the double-double row's (its error is far below ``E``) -- the same bits. A row
# with a class that fails (its value cancels, a term leaves the normal range, a NaN or an
# infinity) is left to the double-double row function.

#: ``E/size``: the first tier's values are within 2⁻⁶⁹ of the terms' magnitude ``size``
#: (exponentials within 2⁻⁷², pair products and quotients within 2⁻¹⁰⁰; a 4× margin).
_TIER_ERR = 2.0 ** -69
#: Smallest ``e^(z − max z)`` the first tier takes (2⁻⁸⁶⁰: ``z − max z ≥ −596``, inside
#: :func:`exp_pair_fine`'s range, where ``bl`` keeps its bits); a NaN fails too.
_TIER_MIN_E = 2.0 ** -860
#: The marker of a row the first tier leaves to the double-double row function.
_NOT_CERTAIN = math.nan


#: Rows per block of a kernel with a block tier (:func:`softmax_hvp_qb_m`), and the rows
#: from which that tier runs across them (:func:`block_rows`: up to 32 classes): each row's
#: serial sums over its classes run a vector of rows at a time. Below, each loop over the
#: rows is too short for its set-up (16 rows of 10 classes: 104 ns a row, 32 rows: 69; row
#: by row 126); above 32 classes the rows' own per-class loops vectorize.
TIER_BLOCK = 32
_TIER_ACROSS = TIER_BLOCK


@njit(error_model="numpy")
def tier_work(nb: int, n: int) -> np.ndarray:
    """The scratch of a block tier (:func:`softmax_hvp_qb_m`, :func:`softmax_sub_qb_m`),
    allocated once per chunk: rows ``j``, ``n + j``, … class ``j``'s ``e``, its low part, its
    ``v`` (or target weight pair) and value across the block's rows, then the rows' sums."""
    return np.empty((5 * n + 12, nb) if nb >= _TIER_ACROSS else (1, 1))


@njit(forceinline=True, error_model="numpy")
def block_top(zr: np.ndarray, m: float) -> int:
    """The first index of a row's maximum ``m`` (the kernel's max pass, :func:`block_max`),
    branch-free; 0 where no element equals ``m`` (a NaN first element), as ``argmax``'s scan."""
    top = zr.shape[0]
    for j in range(zr.shape[0] - 1, -1, -1):
        top = j if np.float64(zr[j]) == m else top
    return top if top < zr.shape[0] else 0


@njit(forceinline=True, error_model="numpy")
def _sub_step(dh: float, dl: float, th: float, tl: float, tabs: float, e: float, el: float,
              a: float, alo: float) -> tuple[float, float, float, float, float]:
    """One class ``j`` of the sub tier's row sums: ``D += e`` (``e = e + el``), ``T += a``
    (``a + alo``, the weight's pair) by TwoSum, ``tabs += |a|``."""
    s = dh + e
    bb = s - dh
    dl = dl + (((dh - (s - bb)) + (e - bb)) + el)
    t = th + a
    bb = t - th
    tl = tl + (((th - (t - bb)) + (a - bb)) + alo)
    return s, dl, t, tl, tabs + abs(a)


@njit(forceinline=True, error_model="numpy")
def _sub_value(eh: float, el: float, aih: float, ail: float, dh: float, dl: float, th: float,
               tl: float, tabs: float, inv: float) -> tuple[float, bool]:
    """One class's ``(eᵢT − aᵢD)/D`` (``inv = 1/dh``) rounded once, and whether
    :func:`symloss._bits.rounds_alone` vouches for it within ``2E``, ``E = 2⁻⁶⁹(pᵢΣ|aₖ| + |aᵢ|)``, or the
    row's weights are all 0 (``Σ|aₖ| = 0``: the value is exactly 0)."""
    p1 = eh * th
    p1e = _fma(eh, th, -p1) + (eh * tl + el * th)
    p2 = aih * dh
    p2e = _fma(aih, dh, -p2) + (aih * dl + ail * dh)
    nh = p1 - p2
    bb = nh - p1
    nl = ((p1 - (nh - bb)) + (-p2 - bb)) + (p1e - p2e)
    q = nh * inv  # within 2 ulp of nh/dh: the remainder nh − q·dh is exact to 2⁻¹⁰³
    q2 = ((_fma(-q, dh, nh) + nl) - q * dl) * inv
    e = (2.0 * _TIER_ERR) * ((eh * inv) * tabs + abs(aih))
    # a row whose target weights are all 0 (an ignored class index) is exactly 0: every
    # product and remainder above is 0 (rounds_alone does not vouch for 0)
    return q + q2, _rounds_alone(q, q2, e) | (tabs == 0.0)


@njit(error_model="numpy")  # a call of its own: inlined, LLVM left this loop scalar
def _tier_sub_values(buf: np.ndarray, bl: np.ndarray, lbuf: np.ndarray, ah: np.ndarray,
                     al: np.ndarray, lo: float, dh: float, dl: float, th: float, tl: float,
                     tabs: float) -> bool:
    """:func:`_tier_sub`'s per-class pass: each value into ``lbuf``, and whether every
    class passed."""
    bad = 0
    inv = 1.0 / dh
    for i in range(buf.shape[0]):  # no calls, no branches: vectorized
        lbuf[i], ok = _sub_value(buf[i], bl[i], np.float64(ah[i]), lo * np.float64(al[i]),
                                 dh, dl, th, tl, tabs, inv)
        bad += 0 if ok else 1
    return bad == 0


@njit(forceinline=True, error_model="numpy")
def _tier_sub(ah: np.ndarray, al: np.ndarray, lo: float, buf: np.ndarray, bl: np.ndarray,
              lbuf: np.ndarray) -> bool:
    """``softmax(z)ᵢ·T − aᵢ`` (``T = Σₖ aₖ``, ``aₖ = ahₖ + lo·alₖ``) for every class as
    ``(eᵢT − aᵢD)/D`` (``e = buf + bl``, ``D = Σ e``): the pairs ``D`` and ``T`` by TwoSum,
    the products by fused multiply-adds, the quotient corrected by its exact remainder; each
    class's value rounded once into ``lbuf`` where :func:`symloss._bits.rounds_alone` vouches for it within
    ``2E``, ``E = 2⁻⁶⁹(pᵢΣ|aₖ| + |aᵢ|)``. Whether every class passed."""
    bad = 0
    dh, dl, th, tl, tabs = 0.0, 0.0, 0.0, 0.0, 0.0
    for j in range(buf.shape[0]):
        e = buf[j]
        bad += 0 if e >= _TIER_MIN_E else 1
        dh, dl, th, tl, tabs = _sub_step(dh, dl, th, tl, tabs, e, bl[j], np.float64(ah[j]),
                                         lo * np.float64(al[j]))
    return bad == 0 and _tier_sub_values(buf, bl, lbuf, ah, al, lo, dh, dl, th, tl, tabs)


@njit(error_model="numpy")
def softmax_sub_qb_m(ah: np.ndarray, al: np.ndarray, lo: float, a0: int, nr: int,
                     ebuf: np.ndarray, elo: np.ndarray, lbuf: np.ndarray, qb: np.ndarray,
                     w: np.ndarray) -> None:
    """The first tier of :func:`symloss.ddouble.softmax_sub_row_m` (``pᵢΣa − aᵢ``, ``a = y``:
    ``lo = 0``) and of :func:`symloss.ddouble.softmax_suba_row_m` (the target weights as pairs
    ``ah + al``, ``lo = 1``) for the block's rows ``q < nr`` (``a``'s row ``a0 + q``, the
    exponentials' row ``q``, :func:`fill_exp_m`): :func:`_tier_sub`'s values in ``lbuf[q]``
    and ``qb[q, 0] = 0`` where it vouches for the row, else the marker. From
    :data:`_TIER_ACROSS` rows a block (``w``: :func:`tier_work`) runs across its rows, as
    :func:`softmax_hvp_qb_m`: the same bits."""
    n = ebuf.shape[1]
    if ebuf.shape[0] < _TIER_ACROSS:
        for q in range(nr):
            ok = _tier_sub(ah[a0 + q], al[a0 + q], lo, ebuf[q], elo[q], lbuf[q])
            qb[q, 0] = 0.0 if ok else _NOT_CERTAIN
        return
    lo_, ao, xo, oo, so = n, 2 * n, 3 * n, 4 * n, 5 * n  # w's row offsets
    for q in range(nr):  # the block transposed: a class's rows side by side
        for j in range(n):
            w[j, q] = ebuf[q, j]
            w[lo_ + j, q] = elo[q, j]
            w[ao + j, q] = np.float64(ah[a0 + q, j])
            w[xo + j, q] = lo * np.float64(al[a0 + q, j])
    for q in range(nr):  # D (dh, dl), T (th, tl), tabs, failures
        w[so, q], w[so + 1, q], w[so + 2, q], w[so + 3, q], w[so + 4, q] = 0.0, 0.0, 0.0, 0.0, 0.0
        w[so + 5, q] = 0.0
    for j in range(n):
        for q in range(nr):  # no calls, no branches: vectorized across rows
            e = w[j, q]
            w[so + 5, q] += 0.0 if e >= _TIER_MIN_E else 1.0
            w[so, q], w[so + 1, q], w[so + 2, q], w[so + 3, q], w[so + 4, q] = _sub_step(
                w[so, q], w[so + 1, q], w[so + 2, q], w[so + 3, q], w[so + 4, q], e,
                w[lo_ + j, q], w[ao + j, q], w[xo + j, q])
    for q in range(nr):
        w[so + 6, q] = 1.0 / w[so, q]
    for j in range(n):
        for q in range(nr):  # vectorized across rows
            w[oo + j, q], ok = _sub_value(w[j, q], w[lo_ + j, q], w[ao + j, q], w[xo + j, q],
                                          w[so, q], w[so + 1, q], w[so + 2, q], w[so + 3, q],
                                          w[so + 4, q], w[so + 6, q])
            w[so + 5, q] += 0.0 if ok else 1.0
    for q in range(nr):
        qb[q, 0] = 0.0 if w[so + 5, q] == 0.0 else _NOT_CERTAIN
        for j in range(n):
            lbuf[q, j] = w[oo + j, q]


@njit(forceinline=True, error_model="numpy")
def _hvp_step(dh: float, dl: float, wh: float, wl: float, wabs: float, e: float, el: float,
              vj: float, c: float) -> tuple[float, float, float, float, float]:
    """One class ``j`` of the hvp tier's row sums: ``D += e`` (``e = e + el``, ``D = dh + dl``)
    and ``W += e(c − vⱼ)`` (``W = wh + wl``) by TwoSum and a fused multiply-add, ``wabs +=
    e|c − vⱼ|``."""
    s = dh + e
    bb = s - dh
    dl = dl + (((dh - (s - bb)) + (e - bb)) + el)
    gh = c - vj
    bb = gh - c
    gl = (c - (gh - bb)) + (-vj - bb)  # c − vⱼ = gh + gl exactly
    ph = e * gh
    pe = _fma(e, gh, -ph) + (e * gl + el * gh)
    t = wh + ph
    bb = t - wh
    wl = wl + (((wh - (t - bb)) + (ph - bb)) + pe)
    return s, dl, t, wl, wabs + e * abs(gh)


@njit(forceinline=True, error_model="numpy")
def _hvp_consts(dh: float, dl: float, wh: float, wl: float,
                wabs: float) -> tuple[float, float, float, float]:
    """A row's ``1/dh``, the pair ``W/D`` and the terms' size ``Σₖ pₖ|c − vₖ|``."""
    inv = 1.0 / dh
    mh = wh * inv
    return inv, mh, ((_fma(-mh, dh, wh) + wl) - mh * dl) * inv, wabs * inv


@njit(forceinline=True, error_model="numpy")
def _hvp_value(eh: float, el: float, vi: float, c: float, dh: float, dl: float, inv: float,
               mh: float, ml: float, size: float) -> tuple[float, bool]:
    """One class's ``eᵢ((vᵢ − c) + W/D)/D`` rounded once, and whether :func:`symloss._bits.rounds_alone`
    vouches for it within ``2E``, ``E = 2⁻⁶⁹pᵢ(|vᵢ − c| + size)``."""
    bh = vi - c
    bb = bh - vi
    bx = (vi - (bh - bb)) + (-c - bb)  # vᵢ − c = bh + bx exactly
    sh = bh + mh
    bb = sh - bh
    sl = ((bh - (sh - bb)) + (mh - bb)) + (bx + ml)
    ph = eh * sh
    pe = _fma(eh, sh, -ph) + (eh * sl + el * sh)
    q = ph * inv
    q2 = ((_fma(-q, dh, ph) + pe) - q * dl) * inv
    e = (2.0 * _TIER_ERR) * (eh * inv) * (abs(bh) + size)
    return q + q2, _rounds_alone(q, q2, e)


@njit(error_model="numpy")  # a call of its own: inlined, LLVM left this loop scalar
def _tier_hvp_values(buf: np.ndarray, bl: np.ndarray, lbuf: np.ndarray, v: np.ndarray,
                     c: float, dh: float, dl: float, wh: float, wl: float,
                     wabs: float) -> bool:
    """:func:`_tier_hvp_row`'s per-class pass: each value into ``lbuf``, and whether every
    class passed."""
    bad = 0
    inv, mh, ml, size = _hvp_consts(dh, dl, wh, wl, wabs)
    for i in range(buf.shape[0]):  # no calls, no branches: vectorized
        lbuf[i], ok = _hvp_value(buf[i], bl[i], np.float64(v[i]), c, dh, dl, inv, mh, ml, size)
        bad += 0 if ok else 1
    return bad == 0


@njit(forceinline=True, error_model="numpy")
def _tier_hvp_row(v: np.ndarray, c: float, buf: np.ndarray, bl: np.ndarray,
                  lbuf: np.ndarray) -> bool:
    """The hvp tier of one row (classes vectorized in the per-class pass): whether every
    class passed."""
    bad = 0
    dh, dl, wh, wl, wabs = 0.0, 0.0, 0.0, 0.0, 0.0
    for j in range(buf.shape[0]):
        e = buf[j]
        bad += 0 if e >= _TIER_MIN_E else 1
        dh, dl, wh, wl, wabs = _hvp_step(dh, dl, wh, wl, wabs, e, bl[j], np.float64(v[j]), c)
    return bad == 0 and _tier_hvp_values(buf, bl, lbuf, v, c, dh, dl, wh, wl, wabs)


@njit(error_model="numpy")
def softmax_hvp_qb_m(z: np.ndarray, v: np.ndarray, r0: int, r1: int, ms: np.ndarray,
                     ebuf: np.ndarray, elo: np.ndarray, lbuf: np.ndarray, qb: np.ndarray,
                     w: np.ndarray) -> None:
    """The first tier of :func:`symloss.ddouble.softmax_hvp_row_m` for the block's rows
    ``r0 ≤ r < r1`` (row ``q = r − r0`` of ``ebuf + elo``, their exponentials,
    :func:`fill_exp_m`): ``pᵢ((vᵢ − c) + W/D)`` (``c`` the v of z's arg-max, ``W = Σₖ
    eₖ(c − vₖ)``, ``D = Σ e``) for every class, ``W``, ``D`` and ``W/D`` as pairs, the bracket
    and ``eᵢ·bracket/D`` by fused multiply-adds, rounded once into ``lbuf[q]`` where
    :func:`symloss._bits.rounds_alone` vouches for it within ``2E``, ``E = 2⁻⁶⁹pᵢ(|vᵢ − c| + Σₖ pₖ|c −
    vₖ|)``; ``qb[q] = (0, c)``, or the marker first where a class fails. From
    :data:`_TIER_ACROSS` rows a block (``w``: :func:`tier_work`) runs across its rows, the
    same arithmetic in the same order: the same bits."""
    nr = r1 - r0
    n = z.shape[1]
    for q in range(nr):
        qb[q, 1] = np.float64(v[r0 + q, block_top(z[r0 + q], ms[q])])
    if ebuf.shape[0] < _TIER_ACROSS:
        for q in range(nr):
            ok = _tier_hvp_row(v[r0 + q], qb[q, 1], ebuf[q], elo[q], lbuf[q])
            qb[q, 0] = 0.0 if ok else _NOT_CERTAIN
        return
    lo, vo, oo, so = n, 2 * n, 3 * n, 4 * n  # w's row offsets
    for q in range(nr):  # the block transposed: a class's rows side by side
        for j in range(n):
            w[j, q] = ebuf[q, j]
            w[lo + j, q] = elo[q, j]
            w[vo + j, q] = np.float64(v[r0 + q, j])
    for q in range(nr):  # D (dh, dl), W (wh, wl), wabs, failures, c
        w[so, q], w[so + 1, q], w[so + 2, q], w[so + 3, q], w[so + 4, q] = 0.0, 0.0, 0.0, 0.0, 0.0
        w[so + 5, q], w[so + 6, q] = 0.0, qb[q, 1]
    for j in range(n):
        for q in range(nr):  # no calls, no branches: vectorized across rows
            e = w[j, q]
            w[so + 5, q] += 0.0 if e >= _TIER_MIN_E else 1.0
            w[so, q], w[so + 1, q], w[so + 2, q], w[so + 3, q], w[so + 4, q] = _hvp_step(
                w[so, q], w[so + 1, q], w[so + 2, q], w[so + 3, q], w[so + 4, q], e, w[lo + j, q],
                w[vo + j, q], w[so + 6, q])
    for q in range(nr):  # 1/dh, W/D, size
        w[so + 7, q], w[so + 8, q], w[so + 9, q], w[so + 10, q] = _hvp_consts(
            w[so, q], w[so + 1, q], w[so + 2, q], w[so + 3, q], w[so + 4, q])
    for j in range(n):
        for q in range(nr):  # vectorized across rows
            w[oo + j, q], ok = _hvp_value(w[j, q], w[lo + j, q], w[vo + j, q], w[so + 6, q],
                                         w[so, q], w[so + 1, q], w[so + 7, q], w[so + 8, q],
                                         w[so + 9, q], w[so + 10, q])
            w[so + 5, q] += 0.0 if ok else 1.0
    for q in range(nr):
        qb[q, 0] = 0.0 if w[so + 5, q] == 0.0 else _NOT_CERTAIN
        for j in range(n):
            lbuf[q, j] = w[oo + j, q]


# ``vd_*``: the double-double pair functions of :mod:`symloss.ddouble` compiled for loops that
# LLVM vectorizes. Scalar, a chain of pair operations is latency-bound and each pair function
# is a call (the plain compiled twins, :func:`symloss.ddouble.jitted`: ``t_exp`` 107 ns per
# element); compiled ``forceinline`` (LLVM's alwaysinline: numba's own inlining compiles twice
# as slowly) and with a vectorizable seed for ``t_log1p`` (libm's log1p is an opaque call), a
# branch-free loop of them runs 8 elements to a vector (``t_exp`` 9 ns). The same arithmetic,
# operation for operation, except that seed: fdlibm's log1p (:func:`log1p_w`, within 1 ulp as
# libm's) where the compiled twins call libm; one Newton step follows either, so the pairs
# agree to about 2⁻¹⁰⁴. Only for arguments in [0, 1] (the ``e^(−|x|)`` of softplus and σ^γ):
# :func:`symloss.fast._vector_arms` uses these where every ``t_log1p`` reads a ``t_expna``.
# Their exact products are fused multiply-adds (:func:`_two_prod_w`: the same pairs wherever
# Dekker's split is exact; :func:`symloss.ddouble.bernoulli_curvature`'s by
# :func:`two_prod_fma`, as it scales its scale).
_VECTOR_DD: dict[str, object] = {}


def _t_log1p_w(a: tuple[float, float]) -> tuple[float, float]:
    """:func:`symloss.ddouble.t_log1p` for ``a`` in [0, 1], seeded by :func:`log1p_w`."""
    return t_log1p_from(a, log1p_w(a[0]))


def _t_log_far_w(a: tuple[float, float]) -> tuple[float, float]:
    """:func:`symloss.ddouble._t_log_far`, seeded by :func:`log_w` (libm's log is an opaque
    call): the same arithmetic after the seed."""
    x0 = log_w(a[0] if not a[0] < 0.0 else 0.0)
    big = x0 > 700.0
    small = x0 < -700.0
    m = _sel(big, 600.0, _sel(small, -600.0, 0.0))  # noqa: F821
    sc = _sel(big, TWO_M600, _sel(small, TWO_600, 1.0))  # noqa: F821
    ah = a[0] * sc
    al = a[1] * sc
    x = log_w(ah if not ah < 0.0 else 0.0)
    finite = np.abs(x) < 700.0
    xs = _sel(finite, x, 0.0)  # noqa: F821
    uh, ul, k = _exp_parts(-xs)  # noqa: F821
    vh, vl = fast_two_sum(1.0, uh)  # noqa: F821
    s1, s2 = _pow2(k)  # noqa: F821
    bh, bl = dd_mul(ah * s1 * s2, al * s1 * s2, vh, vl + ul)  # noqa: F821
    rh, rl = dd_add(bh, bl, -1.0, 0.0)  # noqa: F821
    nh, nl = dd_add(xs, 0.0 * xs, rh, rl)  # noqa: F821
    ch, cl = fast_two_sum(m * LN2_A, m * LN2_B)  # noqa: F821
    nh, nl = dd_add(nh, nl, ch, cl + m * LN2_C)  # noqa: F821
    return _sel(finite, nh, x0), _sel(finite, nl, 0.0 * x0)  # noqa: F821


def _t_log_w(a: tuple[float, float]) -> tuple[float, float]:
    """:func:`symloss.ddouble.t_log` branch-free (both arms computed, one selected, as on the
    NumPy path), each seeded by :func:`log_w`: near 1, ``log1p(a − 1)`` by a Newton step from
    ``log(hi) + lo/hi`` (within about 2⁻⁵² of it, as libm's log1p of ``hi − 1`` is)."""
    near = (a[0] > 0.5) & (a[0] < 2.0)
    nh = _sel(near, a[0], 1.0)  # noqa: F821
    nl = _sel(near, a[1], 0.0)  # noqa: F821
    v = dd_add(nh, nl, -1.0, 0.0)  # noqa: F821
    lh, ll = t_log1p_from(v, log_w(nh) + nl / nh)
    fh, fl = _t_log_far((_sel(near, 1.5, a[0]), _sel(near, 0.0, a[1])))  # noqa: F821
    return _sel(near, lh, fh), _sel(near, ll, fl)  # noqa: F821


def vector_dd() -> dict[str, object]:
    """:func:`symloss.ddouble.jitted`'s pair functions, compiled ``forceinline`` with
    :func:`_t_log1p_w` for ``t_log1p`` (see above), by name."""
    if not _VECTOR_DD:
        from . import ddouble

        namespace: dict[str, object] = {k: v for k, v in vars(ddouble).items() if k.isupper()}
        namespace.update(np=np, log1p_w=log1p_w, log_w=log_w, rounds_alone=_rounds_alone)
        # exact products by a fused multiply-add (2 operations, Dekker's split 17: 1e6
        # float64 elements, 1 thread: tweedie_loss's gradient 21.7 -> 19.4 ms, gamma_loss's
        # 12.4 -> 10.4, log_cosh_loss's hvp 20.9 -> 19.0)
        namespace.update(two_prod=_two_prod_w, _split_mul=_split_mul_w)
        sources = {name: getattr(ddouble, ddouble._SCALAR.get(name, name))
                   for name in ddouble._ORDER if name not in ("two_prod", "_split_mul")}
        sources["t_log1p"] = _t_log1p_w
        sources["t_log"] = _t_log_w  # (t_pow, t_xexp read it: vectorized too)
        sources["_t_log_far"] = _t_log_far_w
        # both of its arms computed, one selected: the NumPy form (the same bits)
        sources["inv_hypot1_cube"] = ddouble.inv_hypot1_cube
        for name, source in sources.items():
            fn = pytypes.FunctionType(source.__code__, namespace, name, source.__defaults__)
            namespace[name] = njit(fastmath=False, error_model="numpy", forceinline=True)(fn)
        # ddouble.bernoulli_curvature's exact products as fused multiply-adds (the same pairs:
        # it scales its scale where the split would overflow or the product underflow)
        fused = {**namespace, "two_prod": two_prod_fma}
        for name in ("bernoulli_curvature", "bernoulli_curvature_m"):
            fn = pytypes.FunctionType(sources[name].__code__, fused, name)
            namespace[name] = njit(fastmath=False, error_model="numpy", forceinline=True)(fn)
        _VECTOR_DD.update({name: namespace[name]
                           for name in (*sources, "two_prod", "_split_mul")})
    return _VECTOR_DD


# Kernel-only twins. numba gives every dispatcher it compiles a CPython wrapper (to be called
# from Python) and a C-callable one: two more LLVM functions optimized and compiled to machine
# code for each helper, useless for one that only compiled code calls, and 30-100 helpers go
# into a kernel. The generated kernel modules therefore take twins of their helpers compiled
# without either wrapper (as numba compiles its own ``@overload`` implementations), while the
# functions of this module, :func:`symloss.ddouble.jitted` and :func:`vector_dd` stay callable
# from Python (tests, :mod:`symloss._bounds`). A twin runs its original's code, re-bound to a
# copy of the original's globals in which every dispatcher is a twin too (as
# :func:`symloss.ddouble.jitted` re-binds), compiled with its original's options: the same
# arithmetic, the same bits. (Called from Python, a function without its CPython wrapper
# crashes the process: the twins are handed only to kernel modules.) Cold first grad_fn,
# n = 1000 float32, two alternating runs each (``benchmarks/speed.py --first-call-only 1 --only
# ...``, load 2.5-3 on 2 CPUs), without -> with twins: binary_cross_entropy_with_logits 2.45,
# 2.29 -> 1.78, 1.77 s; cross_entropy 4.38, 3.68 -> 2.97, 2.68; sigmoid_focal_loss 7.52, 7.66
# -> 6.00, 5.74; multilabel_soft_margin_loss 2.87, 2.59 -> 2.12, 2.19. Making the ~350 twins
# (not compiling them) costs ~30 ms once per process that imports a kernel module.
_KERNEL_ONLY = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}
#: Each dispatcher's twin, by the dispatcher's ``id`` (the dispatcher kept with it, so the
#: ``id`` is never reused); each original globals' re-bound copy, likewise.
_TWINS: dict[int, tuple[Any, Any]] = {}
_TWIN_GLOBALS: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
_TWIN_LOCK = threading.RLock()  # two kernel modules imported by two threads at once


def _twin(fn: Any) -> Any:
    """``fn``'s kernel-only twin (made once per process; see above)."""
    made = _TWINS.get(id(fn))
    if made is not None:
        return made[1]
    py = fn.py_func
    original = py.__globals__
    rebound = _TWIN_GLOBALS.get(id(original))
    fresh = rebound is None
    if rebound is None:
        rebound = dict(original)
        _TWIN_GLOBALS[id(original)] = (original, rebound)
    else:
        rebound = rebound[1]
    code = pytypes.FunctionType(py.__code__, rebound, py.__name__, py.__defaults__,
                                py.__closure__)
    options = {k: v for k, v in fn.targetoptions.items() if k != "nopython"}
    twin = njit(**options, **_KERNEL_ONLY)(code)
    _TWINS[id(fn)] = (fn, twin)
    if fresh:  # after this twin is known: the functions it reaches may call it back
        for name, value in original.items():
            if isinstance(value, Dispatcher):
                rebound[name] = _twin(value)
    return twin


def kernel_twins(helpers: dict[str, Any]) -> dict[str, Any]:
    """Kernel-only twins of the numba functions among ``helpers`` (a kernel module's globals),
    by name; the other values are left out. For the generated kernel modules only: a twin
    called from Python crashes the process."""
    with _TWIN_LOCK:
        return {name: _twin(value) for name, value in helpers.items()
                if isinstance(value, Dispatcher)}
