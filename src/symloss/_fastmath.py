"""Scalar float64 building blocks for the numba kernels of :mod:`symloss.fast`.

Imported only by the kernels that :mod:`symloss.fast` generates (so only when numba is
installed and a kernel is first built). Two flavours of each primitive:

* ``*_v``: ``exp`` is :func:`exp_v`, a branch-free float64 exponential that LLVM vectorizes
  (libm's ``exp`` is an opaque call it cannot). Its relative error is below 3e-10, under
  0.005 of a float32 ulp (6e-8), so float32 results computed with it and rounded once stay
  within 0.505 ulp: this flavour is used for float32 arrays.
* ``*_m``: ``exp`` is libm's (``math.exp``, < 1 float64 ulp): used for float64 arrays, whose
  results need every bit.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k·ln2_hi is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634


@intrinsic
def _bits_to_float64(typingctx, bits):  # type: ignore[no-untyped-def]
    """Reinterpret an int64 as the float64 with those bits (a no-op LLVM bitcast)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _float64_to_bits(typingctx, x):  # type: ignore[no-untyped-def]
    """Reinterpret a float64 as the int64 with its bits."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@njit(inline="always", error_model="numpy")
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


@njit(inline="always", error_model="numpy")
def log1p_v(x: float) -> float:
    """``log1p(x)`` for ``x`` in [0, 1], vectorizable (libm's log1p is an opaque call)."""
    u = 1.0 + x
    # Goldberg: log(u)·x/(u − 1) cancels the rounding of 1 + x; u == 1 means log1p(x) = x.
    return x if u == 1.0 else _log_v(u) * (x / (u - 1.0))


@njit(inline="always", error_model="numpy")
def exp_v(x: float) -> float:
    """``exp(x)`` in float64, vectorizable: Cody–Waite reduction, degree-8 Taylor polynomial.

    Relative error below 3e-10 (truncation at |r| = ln2/2: r⁹/9! ≈ 2e-10), i.e. under 0.005 of
    a float32 ulp, the only precision it serves (float64 arrays use libm's exp): float32
    results stay within 0.505 ulp. Degree 8 rather than 13 is 10–15% faster on the CE kernel.
    """
    # Clamp so that 2^k stays representable; a NaN passes both tests untouched.
    x = -746.0 if x < -746.0 else x
    x = 710.0 if x > 710.0 else x
    kf = math.floor(x * _LOG2E + 0.5)
    r = (x - kf * _LN2_HI) - kf * _LN2_LO  # |r| <= ln2/2: the series converges fast
    p = 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    k = np.int64(kf)
    # 2^k as two normal powers of two, so that results in the subnormal range and 2^1024·p<1
    # still come out right (a single 2^k would leave the exponent range).
    k1 = k >> 1
    k2 = k - k1
    return p * _bits_to_float64((k1 + 1023) << 52) * _bits_to_float64((k2 + 1023) << 52)


@njit(inline="always", error_model="numpy")
def exp_m(x: float) -> float:
    return math.exp(x)


@njit(inline="always", error_model="numpy")
def sigmoid_v(x: float) -> float:
    # exp(−|x|) never overflows; σ(x) = 1/(1+t) for x ≥ 0 and t/(1+t) for x < 0: no cancellation.
    t = exp_v(-abs(x))
    return (1.0 if x >= 0.0 else t) / (1.0 + t)


@njit(inline="always", error_model="numpy")
def sigmoid_m(x: float) -> float:
    t = math.exp(-abs(x))
    u = 1.0 + t
    lo = t - (u - 1.0)  # exact rounding error of 1 + t (Fast2Sum: 1 ≥ t)
    q = (1.0 if x >= 0.0 else t) / u
    # num/(u + lo) = q·(1 − lo/u) to first order: the rounding of 1 + t no longer counts.
    return q - q * (lo / u)


@njit(inline="always", error_model="numpy")
def softplus_v(x: float) -> float:
    # log(1 + e^x) = max(x, 0) + log1p(e^−|x|): no overflow, full accuracy for x ≪ 0.
    return (x if x > 0.0 else 0.0) + log1p_v(exp_v(-abs(x)))


@njit(inline="always", error_model="numpy")
def softplus_m(x: float) -> float:
    return (x if x > 0.0 else 0.0) + math.log1p(math.exp(-abs(x)))


@njit(inline="always", error_model="numpy")
def maximum(a: float, b: float) -> float:
    """``numpy.maximum``: a NaN in either argument is the result."""
    if a != a:
        return a
    return a if a >= b else b


@njit(inline="always", error_model="numpy")
def clamped_log(x: float) -> float:
    # torch's binary_cross_entropy clamps each log at −100 so that log(0) gives a finite loss.
    return maximum(math.log(x), -100.0)


#: Rows handled together: one call of the max and sum helpers per block, not per row.
BLOCK = 16


@njit(fastmath={"nnan", "nsz"}, error_model="numpy")
def block_max(z: np.ndarray, r0: int, r1: int, ms: np.ndarray) -> None:
    """``ms[r − r0] = max_j z[r, j]`` for rows ``r0 ≤ r < r1``.

    nnan lets LLVM vectorize the reduction; a NaN in a row still reaches every output of the
    row through exp(z − m), which is computed without fast-math.
    """
    for r in range(r0, r1):
        zr = z[r]
        m = zr[0]  # in the array's dtype: float32 rows compare 16 to a vector
        for j in range(1, zr.shape[0]):
            v = zr[j]
            m = v if v > m else m
        ms[r - r0] = np.float64(m)


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


@njit(inline="always", error_model="numpy")
def fill_exp_v(zr: np.ndarray, m: float, b: np.ndarray) -> None:
    """``b[j] = exp(z_j − m)`` (float32 rows: z − m is exact in float64)."""
    for j in range(zr.shape[0]):
        b[j] = exp_v(np.float64(zr[j]) - m)


@njit(inline="always", error_model="numpy")
def fill_exp_m(zr: np.ndarray, m: float, b: np.ndarray) -> None:
    """``b[j] = exp(z_j − m)`` for float64 rows."""
    for j in range(zr.shape[0]):
        # z − m rounds by up to half an ulp of |z − m|, which exp turns into a relative error
        # of |z − m|·2⁻⁵³ (8 ulp at z − m = −13): recover the rounding error e (TwoSum) and
        # use exp(d + e) = exp(d)·(1 + e).
        a = np.float64(zr[j])
        d = a - m
        a1 = d + m
        b1 = d - a1
        e = (a - a1) - (m + b1)
        # Where z − m overflows to −inf, exp is 0 and e is NaN: nothing to correct.
        b[j] = math.exp(d) * (1.0 + e) if math.isfinite(e) else math.exp(d)
