"""Bit-level float64 helpers for compiled code (numba only): the reinterpreting casts and
Ziv's rounding test.

A leaf below both :mod:`symloss.ddouble` (whose compiled twins read :func:`rounds_alone`,
:func:`symloss.ddouble.jitted`) and :mod:`symloss._fastmath`: the test is written once, with
the float's bits (branch-free, so a kernel's loop that calls it still vectorizes).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["bits_to_float64", "float64_to_bits", "rounds_alone"]


@intrinsic
def bits_to_float64(typingctx, bits):  # type: ignore[no-untyped-def]
    """Reinterpret an int64 as the float64 with those bits (a no-op LLVM bitcast)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def float64_to_bits(typingctx, x):  # type: ignore[no-untyped-def]
    """Reinterpret a float64 as the int64 with its bits."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@njit(forceinline=True, error_model="numpy")
def rounds_alone(qh: float, ql: float, e: float) -> bool:
    """Whether every value within ``e`` of ``qh + ql`` rounds to ``fl(qh + ql)``, a normal
    float above 2⁻⁹⁵³ (Ziv's rounding test): ``d = qh + ql − fl(qh + ql)`` (``qh − fl`` exact,
    Sterbenz) and ``|d| + e`` under half the spacing on ``d``'s side (a quarter of the ulp below
    a power of 2, towards 0). NaN and infinities fail."""
    r = qh + ql
    d = (qh - r) + ql
    bits = float64_to_bits(r) & 0x7FFFFFFFFFFFFFFF
    ex = bits >> 52
    half = bits_to_float64((max(ex, 54) - 53) << 52)  # ulp(r)/2 for ex ≥ 54
    below = ((bits & 0xFFFFFFFFFFFFF) == 0) & (d * r <= 0.0)
    h = 0.5 * half if below else half
    return (abs(d) + e < h) & (ex >= 70) & (ex < 2047)
