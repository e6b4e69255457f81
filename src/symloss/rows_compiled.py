"""The row family's compiled evaluator: each row kernel printed as a numba loop over rows.

:mod:`symloss.rows` evaluates a row kernel with NumPy: every index symbol of the expression
gets an axis, so a pairwise sum over classes materialises ``rows × C × C`` numbers, and every
result is certified by running the kernel again on tracked numbers (value plus a bound on its
error), in long double and then in double-double. This module prints the *same* expression
(:attr:`symloss.rows.RowKernel.expr`, the one the NumPy kernel evaluates) as a loop over rows
whose body evaluates it on scalars, and evaluates it once, in double-double with a running
error bound -- the rules of :class:`symloss.rows._Tracked` on :class:`symloss.rows._DD` values,
compiled (but a sum over an index, which is compensated):

* each sum over an index is a loop, placed at the outermost loop where every index its terms
  depend on is bound (``Σ_k a_k²`` once per row, not once per ``i``); nothing is materialised
  but the result. The loop is a compensated sum, branch-free (Ogita, Rump, Oishi, "Accurate
  sum and dot product", SIAM J. Sci. Comput. 26 (2005): Sum2, and Dot2 where every term is a
  product ``x_k·y_k`` of exact doubles -- an argument's elements, ``Σ a_k²``, ``Σ a_k b_k``);
  its bound, proved here: each term is a pair ``p_k + q_k`` (a tracked term's ``(hi, lo)``,
  within its own ``e_k`` of the exact term; or ``x_k·y_k`` split exactly by one fused
  multiply-add). With ``s_0 = c_0 = 0``, TwoSum gives ``s_k + σ_k = s_{k-1} + p_k`` exactly
  and ``c_k = fl(c_{k-1} + fl(q_k + σ_k))``, so ``Σ_k (p_k + q_k) = s_n + Σ_k (q_k + σ_k)``
  exactly, and ``c_n`` is that last sum of ``n`` terms computed with ``n`` roundings at most
  on each path: ``|c_n − Σ (q_k + σ_k)| ≤ γ_n·S``, ``S = Σ (|q_k| + |σ_k|)``, ``γ_n = nu/(1 −
  nu)``, ``u = 2⁻⁵³`` (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.,
  (4.4) and Lemma 3.3). The loop also sums ``m = fl(Σ (|q_k| + |σ_k|))`` (non-negative terms,
  ``2n`` roundings at most: ``S ≤ m/(1 − 2nu)``), so for ``nu ≤ 1/8`` ``γ_n·S ≤ nu·m/((1 −
  nu)(1 − 2nu)) ≤ 1.53·nu·m``, and the one rounding of ``(2nu)·m`` (``2nu`` is exact) keeps
  it above: the sum's pair ``(hi, lo) = TwoSum(s_n, c_n)`` (exactly ``s_n + c_n``) is within
  ``Σ e_k + 2nu·m`` of the exact sum (``∞`` where ``nu > 1/8``). The loop sums the ``e_k``
  too, ``E = fl(Σ e_k)`` (non-negative terms from 0: ``n − 1`` roundings, ``Σ e_k ≤
  (1 + γ_{n−1})·E``), and the bound reported is ``fl(E·(1 + 4nu)) + fl(2nu·m)``, rounded
  once more by that addition (and once more in float64 alone, below): ``(1 + 4nu)(1 −
  u)³ ≥ 1 + γ_{n−1}`` and ``2(1 − u)³ ≥ 1.53``, so it stays above. In float64 alone the pair
  is rounded once more, ``hi = fl(s_n + c_n)``, and its error ``|lo|`` is added (doubled:
  the bound's own addition rounds). Where every term and partial sum is exact, ``m = 0`` and
  the sum is exact, as an exact tracked operation's. A dot product's terms' loss to the
  subnormals is counted once at its end (below, "Underflow"). Sums over the same index whose
  loops read nothing of each other's, in one block, run as one loop (:func:`_fuse_sums`: each
  sum's steps and their order unchanged, so the same values; their chains of dependent
  additions overlap: triplet_margin_loss's kernels 13–14 % faster, ``benchmarks/rows_ab.py``);
* each value is a triple ``(hi, lo, e)``: the double-double value and a bound on its distance to
  the exact value of its subexpression at the given floats; each rounding adds ``2⁻¹⁰⁰·|hi|``
  (none where both operands are exact doubles: a double-double sum or product of two doubles
  is exact); comparisons carry whether their outcome is sure;
* only what a result needs is computed: of ``A if c else B`` the piece ``c`` picks (both
  where ``c`` is unsure), and of a product one of whose factors is cheap (a step, a ±1 label's
  ``(1 ± y)/2``, computed in an outer loop or without a sum) the rest only where that factor
  is not exactly 0 -- a row on the inactive side of its hinge costs its hinge. The values are
  the same bits as computing everything (subexpressions shared with the rest of the kernel
  are computed before the guard, once);
* a result whose bound is not under ``2⁻ᵖ⁻¹`` of it (``p`` the mantissa bits of the output
  dtype, at most 1 ulp) marks its row: the caller evaluates that row again on the NumPy path
  (double-double, then exactly). Elsewhere the result is rounded once to the output dtype.

The first tier. A float32 (or float16) result is first evaluated by the same printed kernel
compiled against cheaper operations (``_HELPERS_FIRST``): float64 alone, each operation inlined
(and branch-free, but an addition's test for exact operands), a value ``v`` with a bound ``e``
on its distance to the exact value of its subexpression. With ``u = 2⁻⁵³``, ``a = â + α``,
``b = b̂ + β``, ``|α| ≤ e_a``, ``|β| ≤ e_b``:

* ``a + b``: ``v = fl(â + b̂)``, ``e = e_a + e_b + u·|v|`` (``|fl(x) − x| ≤ u·|fl(x)|``); where
  both operands are exact (``e_a = e_b = 0``), the rounding's error itself, by TwoSum, so a
  sum of exact numbers that is exact (``1/2 − y/2``) has ``e = 0`` and a gate at 0 still skips;
* ``a·b``: ``ab − âb̂ = âβ + b̂α + αβ``, so ``e = |â|e_b + |b̂|e_a + e_a·e_b + |fl(âb̂) − âb̂|``,
  the last term exactly by one fused multiply-add;
* ``a/b``: ``a/b − â/b̂ = (α − (â/b̂)β)/b``, so ``e = (e_a + |q|·e_b)/(|b̂| − 2e_b) + r``,
  ``q = fl(â/b̂)``, ``r = u·|q|`` (0 where the remainder ``fma(−q, b̂, â)`` is 0: exact), and
  ``∞`` where ``|b̂| ≤ 2e_b``;
* ``√a``: ``|√a − √â| = |α|/(√a + √â) ≤ e_a/√â``: ``e = e_a/v + u·v`` (``√e_a`` at ``v = 0``);
* a sum over an index: the plain recursive sum ``s_k = fl(s_{k−1} + t_k)``, whose error is
  exactly ``Σ_k (fl(s_{k−1} + t_k) − (s_{k−1} + t_k))``, each term by TwoSum (so a sum of
  exact terms that is exact, a count of steps, stays exact): ``e = Σ e_k + Σ |err_k|``; for a
  dot product of exact doubles, ``s_k = fl(x_k·y_k + s_{k−1})`` by one fused multiply-add,
  within ``u·|s_k|`` of its exact sum: ``e = u·Σ|s_k|`` (Higham, 2nd ed., §3.1's running
  error bound). Both accumulate ``m`` in units of ``u`` (``|err_k|·2⁵³``, exact), so that one
  ``dot2_end`` returns ``Σ e_k + u·m``;
* a comparison its operands' bounds cannot decide makes the bound NaN, and so every bound it
  reaches: NaN fails the final check, and the row goes to the tracked kernel, which decides.

Each bound is computed in round-to-nearest from non-negative numbers by additions,
multiplications and divisions whose formulas grow with their operands' bounds (``|b̂| − 2e_b``
shrinks), so the computed one is at least ``(1 − u)^K`` times the one exact arithmetic would
give from the same values, ``K`` the most roundings on a path (``1/(1 + u) ≥ 1 − u`` for a
denominator rounded up; a product of two bounds adds their counts, a sum of ``n`` terms adds
``n``): ``K`` is at most the expression's size as a tree plus the width once per nested sum,
far below ``2⁵¹``, so ``(1 − u)^K ≥ 1/2``. Hence the check against ``tol/2``, and ``2e_b`` in
a divisor (at least the exact ``e_b``): a first-tier result is certified within ``tol`` of the
exact value, as the tracked kernel's. The tracked float64 kernel then evaluates the rows the
first tier leaves (:meth:`Compiled.run`); at speed.py's random rows it leaves none. A
product's error below the smallest normal number is counted as below ("Underflow").

The row-level tier. A float32 (or float16) result is first evaluated by a third text printed
from the same expression (:class:`_RowPrinter`, ``_HELPERS_ROW``; :meth:`Compiled.run`'s
``"row"``), whose statements are the first tier's where a value is computed once per row (the
row's norms, dot products, their quotients: the first tier's running bounds, on the bounds this
tier gives them), and where a value is computed per element (a sum's terms, a gradient's
elements), its *value* alone, by the first tier's float64 operations in the same order -- so the
same bits -- with a magnitude bound ``M`` and an error bound ``E`` computed once per row, before
the loop: an argument's element has ``M = max_k |x_k|`` over its row (one pass per row) and
``E = 0``, and each operation's ``(M, E)`` comes from its operands' by the first tier's own rule
with each ``|operand|`` replaced by its ``M`` (``r_add``, ``r_mul``, ``r_div`` by a row's value,
``r_sum`` for a sum computed per element, ``width`` times its terms' ``E`` for one computed per
row). Claim: at every element, ``M ≥ |value|`` and ``E ≥`` the first tier's bound ``e``. For
``M``: rounding is monotone, so ``|fl(a ∘ b)| = fl(|a| ∘ |b|) ≤ fl(M_a ∘ M_b)`` for ``+, ×``
(``÷`` by a row's exact double), and a recursive sum of ``n < 2³⁷`` terms is at most
``n·M_t·(1 + u)ⁿ ≤ n·M_t·(1 + 2⁻¹⁵)``. For ``E``: the first tier's rules are sums and products
of non-negative numbers, increasing in their operands' magnitudes and bounds (``|b̂| − 2e_b``
decreasing), and its rounding-error terms are at most ``u`` times the result's magnitude
(``|fl(ab) − ab| ≤ u|fl(ab)|``, a TwoSum error likewise) but below the normal range, where each
is within ``2⁻¹⁰⁷⁴`` and ``TINY``; so the exact value of this tier's formula at ``(M, E)`` is at
least the exact value of the first tier's at each element, and the factor ``SL = 1 + 2⁻⁴⁰``
(``1 + 2⁻¹⁴`` for a sum's ``n`` terms) covers the roundings of both computations (a handful of
operations per rule: ``((1 + u)/(1 − u))⁸ < SL``), the absolute ``ROW_D = 2⁻¹⁰⁰⁰`` every loss
below the normal numbers (``TINY``, a subnormal product's split) -- so the computed ``E`` is at
least the computed ``e``. A comparison per element is decided where ``|difference| > E`` (then
``> e``, the first tier decides it the same way), else the row is marked.

Exactness, which the first tier tracks per element (a bound of exactly 0: a gate at 0 skips, an
exact 0 result is certified), is kept where it is known per row: a step is exact where it is
sure (``E = 0``), a product by a step (``{0, 1}``) has ``E = E_a`` (exact: ``ab ∈ {0, a}``; a
nonzero product below ``TINY_LIM``, where the first tier adds ``TINY``, marks the row); sums and
products of integers (steps, counts, an argument whose row a pass finds all integers: the flag
``_G``) have ``E = 0`` while their operands' are and ``M ≤ 2⁵²``; and a product of such an exact
per-element value by a row's value ``b`` has also the relative bound ``|p|·(e_b/|b| + u)·(1 +
2⁻¹⁴)`` (the first tier's ``|a|·e_b + |fl(ab) − ab|`` with ``|a| ≤ |p|(1 + u)/|b|``; ``p`` zero
or below ``TINY_LIM`` with ``a ≠ 0`` marks the row), carried through negations and gates to the
final check, which accepts either bound: an exact 0 gradient element stays certified. A gate
whose value is 0 where this tier's bound is not (the first tier's may be 0, and skip) marks the
row; a choice the comparison cannot decide marks it.

So where this tier certifies a row (every element within ``tol/2``, the first tier's check), the
first tier certifies it too, with the same values: the results are the first tier's bits; every
row it marks (its results discarded) goes on to the first tier and then the tracked kernel,
unchanged. A per-element division by a per-element value, or a per-element root, has no such
rule: :class:`Unsupported`, no row-level text, and the first tier runs first as before. Nothing
here names a loss: the rules are the first tier's operations, matched in its printed statements.
``tests/test_rows_rowlevel.py`` compares the bits with and without this tier at random and
adversarial rows (nearly (anti)parallel and equidistant rows, near-ties, zeros, rows scaled to
10⁻⁴⁴ and 10³⁰, subnormal elements); at speed.py's rows it hands on 0–5 rows of 10⁵ and takes
0.38–0.73 of the first tier's time (``benchmarks/rows_ab.py --old main --dtypes float32``).

The float64 first tier. A float64 result is first evaluated by the same printed kernel compiled
against ``_HELPERS_FIRST64``: float64 alone, each operation inlined, a value an *unevaluated
pair* ``(h, l)`` with a bound ``e`` on the distance from ``h + l`` to the exact value. Where the
double-double operations renormalise their result (a fast TwoSum, and the branches for exact
operands), each operation here computes its pair to first order in the low parts: the high
part and its rounding error exactly (TwoSum, one fused multiply-add: ``ab − fl(ab)``, ``a −
fl(a/b)·b``, ``a − fl(√a)²``), the low parts' contribution in float64, and it counts in ``e`` the
term it drops (``a_l·b_l`` of a product; ``N·b_l/(b_h·B)`` of a quotient ``q + N/B``; ``2l²/h``
of a root) and the roundings of the low part's own arithmetic (``|fl(x + y) − (x + y)| ≤
min(u|fl(x + y)|, |x|, |y|)``, so a sum of exact operands stays exact). ``l`` is not
renormalised (it may exceed half an ulp of ``h``): the result is ``fl(h + l)``, its sign the
sign of a comparison, ``h = l = e = 0`` an exact 0 (a gate). The sums over an index are the
double-double tier's compensated ones (Sum2 on each term's pair, Dot2), with its bound. The
operations' formulas are commented beside them. Where the printed text shows an operand of a
sum or product to be an exact double at every row (an argument's element, a finite constant,
a negation or copy of one: its ``l`` and ``e`` are the literal 0; :func:`_exact_operands`),
this tier's text calls ``t_add_xx``, ``t_add_xp``, ``t_mul_xx``, ``t_mul_xp``: the same rules
at ``a_l = a_e = 0`` (and ``b_l = b_e = 0`` for ``_xx``) with the terms that are then 0 left
out (``0·b_h``, ``|0|``, ``a_e·b_e``, ...; the compiler cannot drop them itself, since ``b_h``
may be infinite) -- the same pair and the same bound at finite operands (up to the sign of a
zero), so the same certificate, 5–10 % less kernel time (``benchmarks/rows_ab.py --old main
--dtypes float64``). ``tests/test_rows_exact_operands.py`` checks the same values and the same
rows handed on at random and adversarial rows (infinite elements included).

Its certificate is the double-double tier's: ``e ≤ tol·|fl(h + l)|`` before the final rounding,
``fl(h + l)`` the result -- so its accepted results have the same guarantee (within 1 ulp
before their final rounding), and they are the double-double tier's bits wherever both round
the same value within ``2⁻¹⁰⁰`` to the same float (at 10⁵ of speed.py's random rows per loss,
every result; ``benchmarks/rows_ab.py``). Its bound is computed in float64 by the rules of the
first tier above, so the computed one is at least ``(1 − u)^K`` of the exact one; ``K`` is at
most the kernel's tree size (below ``2²⁰``) plus its widths (below ``2³⁷``: a row of 2³⁷
float64 numbers is a TiB) per nested sum (three at most), below ``2⁴⁰``, so ``(1 − u)^K ≥ 1 −
2⁻¹³`` and the check is against ``tol·(1 − 2⁻¹²)``. The double-double kernel evaluates the
rows it leaves (:meth:`Compiled.run`): a cancellation the dropped terms or the unrenormalised
pairs blur, which double-double may still certify (the NumPy path takes the rows neither
does). At speed.py's random rows it leaves none, and the kernels take 29–46 % less time than
double-double's (``benchmarks/rows_ab.py --old main --dtypes float64``, at 10⁴ and 10⁶).

Underflow. Every rule above takes each operation's error relative to its result, and its
error-free splits (``ab − fl(ab)`` by one fused multiply-add, a quotient's and a root's
remainder) as exact. Below the smallest normal number, ``2⁻¹⁰²²``, neither holds: a rounding
may lose up to ``2⁻¹⁰⁷⁵`` whatever its result, and a product of ``10⁻³⁰⁰`` and ``10⁻³⁰⁰`` is 0
with a 0 split (counted as exact until session 21: cosine_embedding_loss's ``Σ a·b`` at rows of
``10⁻³⁰⁰`` was an exact 0, and at y = −1 ``max(0, c)`` took its flat side, a gradient of 0
where the exact one is ``−1.29·10⁻²⁸⁸``). An addition stays exact there (TwoSum is exact for
every finite pair; a subnormal sum is exact), so every tier counts, absolutely, the products,
quotients and roots whose magnitude is below ``TINY_LIM = 2⁻⁸⁰⁰`` (so that a pair's low part,
``2⁻¹⁰⁶`` of it, and the bound's own terms, ``2⁻⁵³`` of it, are still normal above it):
``TINY = 2⁻¹⁰⁶⁶`` (256 times ``2⁻¹⁰⁷⁴``: the operation's own roundings and its bound's
underflows) more per product or quotient (an exact 0 from a zero operand stays exact: a gate
still skips), ``TINY/√a`` more for a double-double root of ``a`` (its remainder's loss,
divided by ``2√a``; the float64 first tier hands such a root on, ``∞``: a test, where a
division on every root cost 17–28 % of cosine_embedding_loss's kernels), and ``n·2⁻¹⁰⁷⁴``
more for a dot product of ``n`` products of exact doubles, once at its end (``dotx_end``;
not for a plain sum ``Σ x_k``, whose steps are additions; an exactly orthogonal pair of rows
is then no longer an exact 0, and its hinge goes on to the NumPy path). Such a result is
certified only where it exceeds about ``2⁻¹⁰¹⁰`` (``TINY`` under ``2⁻⁵⁴`` of it); elsewhere,
and where the underflow leaves a comparison unsure, the row goes on to the next tier and on
to the NumPy path (long double, whose exponent reaches ``10⁻⁴⁹³¹``, then exact values). Above
``2⁸⁰⁰`` nothing changes: a product that overflows is not finite, and neither is its bound.
At ordinary scales the allowance costs three comparisons per product and quotient: 9–26 % of
the row kernels' time at 10⁶ (``benchmarks/rows_ab.py --old 793d7af --sizes 10000 1000000``;
the dot products' and roots' parts measured nothing). ``tests/test_rows_tiny_scales.py``
checks rows from ``10⁻³¹¹`` to ``10³⁰⁰``.

Both evaluators certify every result within 1 ulp before its final rounding, so they agree
within 1 ulp everywhere (``tests/test_row_losses.py`` checks it). An expression with an
operation this printer does not know (a power ``1/p``, ``sign``) gets no compiled kernel:
:func:`build` returns ``None`` and the NumPy path answers.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy as sp

from . import cache

__all__ = ["Unsupported", "build", "build_planned", "source"]


class Unsupported(Exception):
    """The expression has an operation the compiled evaluator has no tracked form for."""


# A comparison and a choice between two tracked values, one text for both helper modules: the
# low part of the chosen pair ({a_low}, {b_low}: the operands' in double-double, 0.0 in float64)
# and, in float64, the rounding of the difference itself ({extra}) are the parameters.
_T_CMP_WHERE = '''@njit(**_J)
def t_cmp(ah, al, ae, bh, bl, be):
    """(sign of a - b, unsure): the difference decides where it exceeds its error."""
    dh, dl, de = t_add(ah, al, ae, -bh, -bl, be)
    unsure = not (abs(dh) > de or (de == 0.0 and dh == 0.0))
    return dh, unsure


@njit(inline="always", **_J)
def t_cmp0(xh, xl, xe):
    """t_cmp(x, 0) without the addition: x's value is its own difference from 0 (exact
    where x is: no error bound, no rounding)."""
    dh = xh + xl
    de = 0.0 if xe == 0.0 and xl == 0.0 else xe + U * abs(dh)
    unsure = not (abs(dh) > de or (de == 0.0 and dh == 0.0))
    return dh, unsure


@njit(**_J)
def t_where(c, cu, ah, al, ae, bh, bl, be):
    if c:
        h, l, e = ah, {a_low}, ae
    else:
        h, l, e = bh, {b_low}, be
    if cu:  # either side may be the exact one
        dh, dl, de = t_add(ah, al, ae, -bh, -bl, be)
        e = max(ae, be) + abs(dh) + ae + be{extra}
    return h, l, e
'''

# The start of both helper modules (double-double and float64 alone): imports, the unit
# roundoff ``U`` each tracked operation counts, and TwoSum.
_PREAMBLE = '''
import math

import numpy as np
from numba import njit, prange

U = {u}
_J = dict(cache=True, nogil=True, error_model="numpy")

# Underflow (the module docstring, "Underflow"): a product, quotient or root's remainder whose
# magnitude is below TINY_LIM may have lost bits to the subnormals (its error-free split, its
# pair's low part, its relative bound); each such operation counts TINY = 256·2^-1074 more,
# absolute: its own loss (half of 2^-1074 per rounding) and its bound's own underflows.
TINY_LIM = 2.0 ** -800
TINY = 2.0 ** -1066

# the error-free transformations (symloss.ddouble's), inlined; a product's error by one fused
# multiply-add (the same exact error as Dekker's split, in 2 operations instead of 17)
from symloss._fastmath import _fma


@njit(inline="always", **_J)
def two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(inline="always", **_J)
def sum2_step(s, c, m, p, q):
    """One term p + q of a compensated sum (Ogita, Rump, Oishi 2005, Sum2): the running sum
    s + p split exactly (TwoSum: t + sig), the low parts q + sig accumulated in c, their
    magnitudes in m. Branch-free."""
    t = s + p
    z = t - s
    sig = (s - (t - z)) + (p - z)
    return t, c + (q + sig), m + (abs(q) + abs(sig))


@njit(inline="always", **_J)
def tiny(v, a, b):
    """TINY where v, a product or quotient of a and b (nonzero), is below TINY_LIM; else 0
    (an exact 0 from a zero operand stays exact). Non-short-circuit: selects, no branches."""
    return TINY if (abs(v) < TINY_LIM) & (a != 0.0) & (b != 0.0) else 0.0


@njit(inline="always", **_J)
def dot2_step(s, c, m, x, y):
    """One term x*y of a compensated dot product (Dot2): the product split exactly
    (p + q = x*y, one fused multiply-add; below 2^-969 within 2^-1075: dotx_end), then a
    term of Sum2."""
    p = x * y
    return sum2_step(s, c, m, p, _fma(x, y, -p))


@njit(inline="always", **_J)
def dotx_end(s, c, m, e, n):
    """dot2_end of a dot product whose terms are products (not Σ x·1): each term's split (a
    step's rounding, in the float32 tier) may have lost up to 2^-1075 to the subnormals,
    n·2^-1074 more in all -- once per sum, not a test per term (the module docstring,
    "Underflow")."""
    h, l, b = dot2_end(s, c, m, e, n)
    return h, l, b + n * 2.0 ** -1074


@njit(inline="always", **_J)
def dot2_bound(m, n):
    """2·n·u·m (u = 2^-53) >= γ_n·Σ(|q| + |sig|) while n·u <= 1/8; beyond, no bound."""
    g = n * 2.0 ** -52
    return g * m if g <= 0.25 else math.inf
'''

# The helpers: the double-double operations of symloss.rows._DD and the error rules of
# symloss.rows._Tracked, on scalars. Every tracked value is (hi, lo, e).
_HELPERS = _PREAMBLE.format(u="2.0 ** -100") + '''

@njit(inline="always", **_J)
def fast(a, b):  # |a| >= |b|
    s = a + b
    return s, b - (s - a)


@njit(inline="always", **_J)
def two_prod(a, b):
    p = a * b
    return p, _fma(a, b, -p)


@njit(**_J)
def dd_add(ah, al, bh, bl):
    if bl == 0.0:  # a pair and a double (DWPlusFP: error <= 2*2^-106), or two doubles
        s, e = two_sum(ah, bh)
        return fast(s, e + al) if al != 0.0 else (s, e)
    if al == 0.0:
        s, e = two_sum(bh, ah)
        return fast(s, e + bl)
    s, e = two_sum(ah, bh)
    t, f = two_sum(al, bl)
    s, e = two_sum(s, e + t)
    return fast(s, e + f)


@njit(**_J)
def dd_mul(ah, al, bh, bl):
    if al == 0.0 and bl == 0.0:  # two doubles
        return two_prod(ah, bh)
    p, e = two_prod(ah, bh)
    return fast(p, e + (ah * bl + al * bh))


@njit(**_J)
def dd_div(ah, al, bh, bl):
    """(ah + al)/(bh + bl), relative error <= 15*2^-106 (Joldes, Muller, Popescu 2017:
    DWDivFP3 by a double, 3*2^-106; DWDivDW2 by a pair), under the 2^-100 t_div counts."""
    th = ah / bh
    if bl == 0.0:  # DWDivFP3: the remainder ah - th*bh exactly, by one fused multiply-add
        ph, pl = two_prod(th, bh)
        d = ((ah - ph) - pl) + al
    else:  # DWDivDW2
        rh, rl = two_prod(bh, th)
        rh, rl = fast(rh, rl + bl * th)
        d = (ah - rh) + (al - rl)
    return fast(th, d / bh)


@njit(**_J)
def dd_sqrt(ah, al):
    s = math.sqrt(ah) if ah >= 0.0 else math.nan
    if not s > 0.0:
        return s, 0.0
    p, e = two_prod(s, s)
    rh, rl = dd_add(ah, al, -p, -e)
    return fast(s, rh / (2.0 * s))


@njit(**_J)
def t_add(ah, al, ae, bh, bl, be):
    h, l = dd_add(ah, al, bh, bl)
    if ae == 0.0 and be == 0.0 and al == 0.0 and bl == 0.0:
        return h, l, 0.0  # two doubles: the double-double sum is exact
    return h, l, ae + be + U * abs(h)


@njit(**_J)
def t_mul(ah, al, ae, bh, bl, be):
    h, l = dd_mul(ah, al, bh, bl)
    e = abs(ah) * be + abs(bh) * ae + ae * be + tiny(h, ah, bh)
    if ae == 0.0 and be == 0.0 and al == 0.0 and bl == 0.0:
        return h, l, e  # two doubles: the double-double product is exact (but underflow)
    return h, l, e + U * abs(h)


@njit(**_J)
def t_div(ah, al, ae, bh, bl, be):
    h, l = dd_div(ah, al, bh, bl)
    low = abs(bh) - be  # |b| can be no smaller than this
    if low > 0.0:
        e = (ae + abs(h) * be) / low
    else:
        e = math.inf
    return h, l, e + U * abs(h) + tiny(h, ah, bh)


@njit(**_J)
def t_sqrt(ah, al, ae):
    h, l = dd_sqrt(ah, al)
    m = abs(h)
    if m > 0.0:
        e = ae / m  # |sqrt(x + d) - sqrt(x)| <= |d|/sqrt(x)
        if ah < TINY_LIM:  # the remainder ah - h² may have underflowed: TINY of it, over h
            e += TINY / m
    else:
        e = math.sqrt(ae)
    return h, l, e + U * m


{t_cmp_where}

@njit(**_J)
def t_heaviside(xh, xl, xe, h0):
    dh, unsure = t_cmp0(xh, xl, xe)
    v = 1.0 if xh > 0.0 else (0.0 if xh < 0.0 else h0)
    return v, 0.0, (1.0 if unsure else 0.0)


@njit(**_J)
def t_maximum(ah, al, ae, bh, bl, be):
    dh, unsure = t_cmp(ah, al, ae, bh, bl, be)
    first = dh >= 0.0
    if unsure:
        e = max(ae, be)
    else:
        e = ae if first else be
    if first:
        return ah, al, e
    return bh, bl, e


@njit(**_J)
def t_minimum(ah, al, ae, bh, bl, be):
    h, l, e = t_maximum(-ah, -al, ae, -bh, -bl, be)
    return -h, -l, e


@njit(**_J)
def t_sign(xh, xl, xe):
    dh, unsure = t_cmp0(xh, xl, xe)
    v = 1.0 if xh > 0.0 else (-1.0 if xh < 0.0 else 0.0)
    return v, 0.0, (2.0 if unsure else 0.0)


@njit(**_J)
def t_abs(ah, al, ae):
    if ah >= 0.0:
        return ah, al, ae
    return -ah, -al, ae


@njit(**_J)
def t_rational(p, q):
    h, l = dd_div(p, 0.0, q, 0.0)
    return h, l, abs(p / q) * 2.0 ** -100


@njit(**_J)
def dot2_end(s, c, m, e, n):
    """The compensated dot product's pair (s + c exactly, by TwoSum) and its bound: the
    terms' bounds' running total e widened by 4·n·u for its own roundings, plus 2·n·u·m
    (u = 2^-53; see the module docstring)."""
    h, l = two_sum(s, c)
    return h, l, e * (1.0 + n * 2.0 ** -51) + dot2_bound(m, n)
'''.replace(
    "{t_cmp_where}", _T_CMP_WHERE.format(a_low="al", b_low="bl", extra=""))

# The same operations in float64 alone (a float32 input's working precision, as on the NumPy
# path): a value is (v, 0.0, e); U is float64's epsilon (one rounding, with slack); where both
# operands are exact, the rounding error of a sum or product is computed exactly (TwoSum,
# Dekker), as rows._Tracked does for exact operands.
_HELPERS_F64 = _PREAMBLE.format(u="2.0 ** -52") + '''

@njit(inline="always", **_J)
def two_prod(a, b):
    p = a * b
    return p, _fma(a, b, -p)


@njit(**_J)
def t_add(ah, al, ae, bh, bl, be):
    if ae == 0.0 and be == 0.0:
        s, err = two_sum(ah, bh)
        if math.isfinite(err):
            return s, 0.0, abs(err)
        return s, 0.0, U * abs(s)
    s = ah + bh
    return s, 0.0, ae + be + U * abs(s)


@njit(**_J)
def t_mul(ah, al, ae, bh, bl, be):
    p = ah * bh
    if ae == 0.0 and be == 0.0:
        p, err = two_prod(ah, bh)  # Dekker's product error
        if math.isfinite(err):  # past the splitter's range: one rounding
            return p, 0.0, abs(err) + tiny(p, ah, bh)
        return p, 0.0, U * abs(p)
    return p, 0.0, abs(ah) * be + abs(bh) * ae + ae * be + U * abs(p) + tiny(p, ah, bh)


@njit(**_J)
def t_div(ah, al, ae, bh, bl, be):
    q = ah / bh
    low = abs(bh) - be
    if low > 0.0:
        e = (ae + abs(q) * be) / low
    else:
        e = math.inf
    return q, 0.0, e + U * abs(q) + tiny(q, ah, bh)


@njit(**_J)
def t_sqrt(ah, al, ae):
    h = math.sqrt(ah) if ah >= 0.0 else math.nan
    m = abs(h)
    if m > 0.0:
        e = ae / m
    else:
        e = math.sqrt(ae)
    return h, 0.0, e + U * m


{t_cmp_where}

@njit(**_J)
def t_heaviside(xh, xl, xe, h0):
    dh, unsure = t_cmp0(xh, xl, xe)
    v = 1.0 if xh > 0.0 else (0.0 if xh < 0.0 else h0)
    return v, 0.0, (1.0 if unsure else 0.0)


@njit(**_J)
def t_maximum(ah, al, ae, bh, bl, be):
    dh, unsure = t_cmp(ah, al, ae, bh, bl, be)
    first = ah >= bh
    if unsure:
        e = max(ae, be)
    else:
        e = ae if first else be
    if first:
        return ah, 0.0, e
    return bh, 0.0, e


@njit(**_J)
def t_minimum(ah, al, ae, bh, bl, be):
    h, l, e = t_maximum(-ah, 0.0, ae, -bh, 0.0, be)
    return -h, 0.0, e


@njit(**_J)
def t_sign(xh, xl, xe):
    dh, unsure = t_cmp0(xh, xl, xe)
    v = 1.0 if xh > 0.0 else (-1.0 if xh < 0.0 else 0.0)
    return v, 0.0, (2.0 if unsure else 0.0)


@njit(**_J)
def t_abs(ah, al, ae):
    return abs(ah), 0.0, ae


@njit(**_J)
def t_rational(p, q):
    v = p / q
    return v, 0.0, abs(v) * 2.0 ** -53


@njit(**_J)
def dot2_end(s, c, m, e, n):
    """The compensated dot product rounded once, s + c = v + err exactly (TwoSum): v, and
    |err| (doubled: the bound's own addition rounds) plus the terms' bounds' running total e
    widened by 4·n·u plus the bound 2·n·u·m."""
    v, err = two_sum(s, c)
    return v, 0.0, 2.0 * abs(err) + e * (1.0 + n * 2.0 ** -51) + dot2_bound(m, n)
'''.replace(
    "{t_cmp_where}", _T_CMP_WHERE.format(a_low="0.0", b_low="0.0", extra=" + de"))

# The first tier of a float32 (or float16) result: float64 alone, every operation inlined and
# branch-free but the addition's test for exact operands, each rounding's error computed
# exactly where one fused multiply-add or TwoSum gives it (so an exact operation, -y/2 of a
# label, a count of steps, stays exact and a gate at 0 still skips), a dot product's steps
# bounded by u times its partial sums; a comparison the bounds cannot decide poisons the bound
# with NaN, so the row goes to the tracked evaluation (the module docstring, "The first tier").
_HELPERS_FIRST = _PREAMBLE.format(u="2.0 ** -53") + """

@njit(inline="always", **_J)
def t_add(ah, al, ae, bh, bl, be):
    if ae == 0.0 and be == 0.0:  # exact operands: the rounding's error exactly (TwoSum)
        s, err = two_sum(ah, bh)
        return s, 0.0, abs(err)
    s = ah + bh
    return s, 0.0, (ae + be) + U * abs(s)


@njit(inline="always", **_J)
def t_mul(ah, al, ae, bh, bl, be):
    p = ah * bh
    return p, 0.0, (abs(ah) * be + abs(bh) * ae + ae * be) + abs(_fma(ah, bh, -p)) + tiny(
        p, ah, bh)


@njit(inline="always", **_J)
def t_div(ah, al, ae, bh, bl, be):
    q = ah / bh
    low = abs(bh) - 2.0 * be  # below |b| - be: the bound's own roundings (docstring)
    e = (ae + abs(q) * be) / low if low > 0.0 else math.inf
    return q, 0.0, e + (U * abs(q) if _fma(-q, bh, ah) != 0.0 else 0.0) + tiny(q, ah, bh)


@njit(inline="always", **_J)
def t_sqrt(ah, al, ae):
    h = math.sqrt(ah) if ah >= 0.0 else math.nan
    e = ae / h if h > 0.0 else math.sqrt(ae)
    return h, 0.0, e + U * h


@njit(inline="always", **_J)
def t_cmp(ah, al, ae, bh, bl, be):
    dh, dl, de = t_add(ah, al, ae, -bh, -bl, be)
    return dh, not (abs(dh) > de or (de == 0.0 and dh == 0.0))


@njit(inline="always", **_J)
def t_cmp0(xh, xl, xe):
    return xh, not (abs(xh) > xe or (xe == 0.0 and xh == 0.0))


@njit(inline="always", **_J)
def t_where(c, cu, ah, al, ae, bh, bl, be):
    if c:
        h, e = ah, ae
    else:
        h, e = bh, be
    return h, 0.0, math.nan if cu else e


@njit(inline="always", **_J)
def t_heaviside(xh, xl, xe, h0):
    dh, unsure = t_cmp0(xh, xl, xe)
    v = 1.0 if xh > 0.0 else (0.0 if xh < 0.0 else h0)
    return v, 0.0, math.nan if unsure else 0.0


@njit(inline="always", **_J)
def t_maximum(ah, al, ae, bh, bl, be):
    dh, unsure = t_cmp(ah, al, ae, bh, bl, be)
    if ah >= bh:
        h, e = ah, ae
    else:
        h, e = bh, be
    return h, 0.0, math.nan if unsure else e


@njit(inline="always", **_J)
def t_minimum(ah, al, ae, bh, bl, be):
    h, l, e = t_maximum(-ah, 0.0, ae, -bh, 0.0, be)
    return -h, 0.0, e


@njit(inline="always", **_J)
def t_sign(xh, xl, xe):
    dh, unsure = t_cmp0(xh, xl, xe)
    v = 1.0 if xh > 0.0 else (-1.0 if xh < 0.0 else 0.0)
    return v, 0.0, math.nan if unsure else 0.0


@njit(inline="always", **_J)
def t_abs(ah, al, ae):
    return abs(ah), 0.0, ae


@njit(inline="always", **_J)
def t_rational(p, q):
    v = p / q
    return v, 0.0, U * abs(v)


@njit(inline="always", **_J)
def dot2_step(s, c, m, x, y):
    s = _fma(x, y, s)  # one rounding, within u|s| (and 2^-1075 where s is subnormal:
    return s, c, m + abs(s)  # dotx_end)


@njit(inline="always", **_J)
def sum2_step(s, c, m, p, q):
    t, err = two_sum(s, p)  # the rounding's error exactly: a sum of exact terms stays exact
    return t, c, m + abs(err) * (1.0 / U)  # (q: 0 in this tier)


@njit(inline="always", **_J)
def dot2_end(s, c, m, e, n):
    return s, 0.0, e + U * m
"""

# The first tier of a float64 result: float64 alone, inlined and branch-free (but a quotient's
# and a root's test of their divisor), each value an unrenormalised pair h + l computed to first
# order in the low parts, its bound the distance from h + l to the exact value: the bound before
# the final rounding, as a double-double result's (the module docstring, "The float64 first
# tier"). The sums are _PREAMBLE's compensated ones, on each term's pair.
_HELPERS_FIRST64 = _PREAMBLE.format(u="2.0 ** -53") + """
# A value (h, l, e) is the unevaluated pair h + l (l not renormalised: |l| may exceed half an
# ulp of h), within e of the exact value. Each operation computes its result's pair to first
# order in the low parts and counts, in e, the terms it drops and the roundings of the low
# part's own arithmetic (|fl(a + b) - (a + b)| <= min(u|fl(a + b)|, |a|, |b|)).

@njit(inline="always", **_J)
def t_add(ah, al, ae, bh, bl, be):
    s, err = two_sum(ah, bh)  # s + err = ah + bh exactly
    t = al + bl
    l = err + t
    return s, l, (ae + be) + (U * abs(t) + min(U * abs(l), abs(t)))


@njit(inline="always", **_J)
def t_mul(ah, al, ae, bh, bl, be):
    # (ah + al)(bh + bl) = p + err + (ah·bl + al·bh) + al·bl: the last term dropped
    p = ah * bh
    err = _fma(ah, bh, -p)
    q = al * bh
    c = _fma(ah, bl, q)
    l = err + c
    ma, mb = abs(ah) + abs(al), abs(bh) + abs(bl)
    e = (ma * be + mb * ae + ae * be) + abs(al * bl) + U * (abs(q) + abs(c)) + min(
        U * abs(l), abs(c)) + tiny(ma * mb, ma, mb)
    return p, l, e


@njit(inline="always", **_J)
def t_div(ah, al, ae, bh, bl, be):
    # (ah + al)/(bh + bl) = q + N/(bh + bl), N = rem + al - q·bl, rem = ah - q·bh exactly;
    # l = N/bh: |N/B - N/bh| <= |N|·|bl|/(|bh|·|B|), |B| >= |bh| - |bl|
    q = ah / bh
    rem = _fma(-q, bh, ah)
    t = _fma(-q, bl, al)
    n = rem + t
    l = n / bh
    low = abs(bh) - abs(bl) - 2.0 * be
    if low > 0.0:
        e = (ae + (abs(q) + 2.0 * abs(l)) * be + U * abs(t) + min(U * abs(n), abs(t))
             + 2.0 * abs(l) * abs(bl)) / low + U * abs(l) + tiny(abs(q) + abs(l),
                                                                 abs(ah) + abs(al), bh)
    else:
        e = math.inf
    return q, l, e


@njit(inline="always", **_J)
def t_sqrt(ah, al, ae):
    h = math.sqrt(ah) if ah >= 0.0 else math.nan
    if h > 0.0:
        # sqrt(A) - h = N/(sqrt(A) + h), N = rem + al, rem = ah - h² exactly; l = N/(2h):
        # |N/(sqrt(A) + h) - N/(2h)| <= |N/(2h)|·|sqrt(A) - h|/h <= 4l²/h
        n = _fma(-h, h, ah) + al
        l = n / (2.0 * h)
        low = h - 3.0 * abs(l)  # below sqrt(A)
        if low > 0.0:
            return h, l, ae / low + min(U * abs(n), abs(al)) / (2.0 * h) + U * abs(l) + (
                4.0 * l * l / h) + (math.inf if ah < TINY_LIM else 0.0)  # rem's underflow:
            # the double-double tier's (a test, no division on every root)
        return h, l, math.inf
    return h, 0.0, math.sqrt(ae + abs(al))


@njit(inline="always", **_J)
def t_cmp0(xh, xl, xe):
    v = xh + xl  # the pair's sign
    de = xe + min(U * abs(v), abs(xl))
    return v, not (abs(v) > de or (de == 0.0 and v == 0.0))


@njit(inline="always", **_J)
def t_cmp(ah, al, ae, bh, bl, be):
    dh, dl, de = t_add(ah, al, ae, -bh, -bl, be)
    return t_cmp0(dh, dl, de)


@njit(inline="always", **_J)
def t_where(c, cu, ah, al, ae, bh, bl, be):
    if c:
        h, l, e = ah, al, ae
    else:
        h, l, e = bh, bl, be
    return h, l, math.nan if cu else e


@njit(inline="always", **_J)
def t_heaviside(xh, xl, xe, h0):
    v, unsure = t_cmp0(xh, xl, xe)
    s = 1.0 if v > 0.0 else (0.0 if v < 0.0 else h0)
    return s, 0.0, math.nan if unsure else 0.0


@njit(inline="always", **_J)
def t_maximum(ah, al, ae, bh, bl, be):
    d, unsure = t_cmp(ah, al, ae, bh, bl, be)
    if d >= 0.0:
        h, l, e = ah, al, ae
    else:
        h, l, e = bh, bl, be
    return h, l, math.nan if unsure else e


@njit(inline="always", **_J)
def t_minimum(ah, al, ae, bh, bl, be):
    h, l, e = t_maximum(-ah, -al, ae, -bh, -bl, be)
    return -h, -l, e


@njit(inline="always", **_J)
def t_sign(xh, xl, xe):
    v, unsure = t_cmp0(xh, xl, xe)
    s = 1.0 if v > 0.0 else (-1.0 if v < 0.0 else 0.0)
    return s, 0.0, math.nan if unsure else 0.0


@njit(inline="always", **_J)
def t_abs(ah, al, ae):
    return (ah, al, ae) if ah + al >= 0.0 else (-ah, -al, ae)


@njit(inline="always", **_J)
def t_rational(p, q):
    v = p / q
    l = _fma(-v, q, p) / q
    return v, l, U * abs(l)


@njit(inline="always", **_J)
def dot2_end(s, c, m, e, n):  # the double-double tier's: the pair s + c, its a priori bound
    h, l = two_sum(s, c)
    return h, l, e * (1.0 + n * 2.0 ** -51) + dot2_bound(m, n)


# t_add and t_mul where the printed text shows an operand to be an exact double (an argument's
# element, a dyadic constant, their negations: l = e = 0 at every row; _exact_operands): the
# rules above with a_l = a_e = 0, their terms that are then 0 left out -- the same values,
# fewer operations (0·x and |0| are not folded by the compiler: x may be infinite).

@njit(inline="always", **_J)
def t_add_xx(a, b):  # t_add(a, 0, 0, b, 0, 0): the rounding's error exactly, no bound
    s, err = two_sum(a, b)
    return s, err, 0.0


@njit(inline="always", **_J)
def t_add_xp(a, bh, bl, be):  # t_add(a, 0, 0, bh, bl, be)
    s, err = two_sum(a, bh)
    l = err + bl
    return s, l, be + (U * abs(bl) + min(U * abs(l), abs(bl)))


@njit(inline="always", **_J)
def t_mul_xx(a, b):  # t_mul(a, 0, 0, b, 0, 0): exact but underflow
    p = a * b
    ma, mb = abs(a), abs(b)
    return p, _fma(a, b, -p), tiny(ma * mb, ma, mb)


@njit(inline="always", **_J)
def t_mul_xp(a, bh, bl, be):  # t_mul(a, 0, 0, bh, bl, be)
    p = a * bh
    err = _fma(a, bh, -p)
    c = a * bl
    l = err + c
    ma, mb = abs(a), abs(bh) + abs(bl)
    return p, l, ma * be + U * abs(c) + min(U * abs(l), abs(c)) + tiny(ma * mb, ma, mb)
"""

# A first-tier statement that assigns a tracked value (the printer's ``name_h, name_l, name_e
# = ...``), and a call of t_add or t_mul on two triples.
_ASSIGN = re.compile(r"^(\s*)(t\d+)_h, \2_l, \2_e = (.*)$")
_BINARY = re.compile(r"\bt_(add|mul)\(([^,()]+), ([^,()]+), ([^,()]+), ([^,()]+), ([^,()]+), "
                     r"([^,()]+)\)")
_EXACT_RHS = re.compile(r"^(np\.float64\([^()]*\)|-?[0-9][0-9.e+-]*), 0\.0, 0\.0$")
_COPY_RHS = re.compile(r"^(-?)(t\d+)_h, \1\2_l, \2_e$")


def _exact_operands(text: str) -> str:
    """``text`` (a kernel's printed statements) with each ``t_add``/``t_mul`` of an operand that
    is an exact double at every row (``l = e = 0``: an argument's element, a finite constant,
    ``0.0``, a negation or copy of one; every assignment of the name such) called as
    ``t_add_xx``/``t_add_xp``/``t_mul_xx``/``t_mul_xp`` (``_HELPERS_FIRST64``: the same rule
    with those terms left out; an exact operand first, the other's pair after it -- addition
    and these products are symmetric in their operands). Only the float64 first tier's text."""
    rhs: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = _ASSIGN.match(line)
        if m:
            rhs.setdefault(m.group(2), []).append(m.group(3).strip())
    exact: dict[str, bool] = {}

    def is_exact(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name not in exact:
            ok = name in rhs and name not in seen
            for r in rhs.get(name, []) if ok else []:
                c = _COPY_RHS.match(r)
                if not (_EXACT_RHS.match(r) or (c and is_exact(c.group(2), seen | {name}))):
                    ok = False
                    break
            exact[name] = ok
        return exact[name]

    def operand(h: str, lo: str, e: str) -> str | None:
        """The exact double's text, or None."""
        if lo == "0.0" and e == "0.0" and re.fullmatch(r"-?[0-9][0-9.e+-]*", h):
            return h
        m = re.fullmatch(r"(-?)(t\d+)_h", h)
        if m and lo == f"{m.group(1)}{m.group(2)}_l" and e == f"{m.group(2)}_e" and is_exact(
                m.group(2)):
            return h
        return None

    def call(m: re.Match[str]) -> str:
        op, a, b = m.group(1), m.groups()[1:4], m.groups()[4:7]
        xa, xb = operand(*a), operand(*b)
        if xa is not None and xb is not None:
            return f"t_{op}_xx({xa}, {xb})"
        if xa is not None:
            return f"t_{op}_xp({xa}, {', '.join(b)})"
        if xb is not None:
            return f"t_{op}_xp({xb}, {', '.join(a)})"
        return m.group(0)

    return "\n".join(_BINARY.sub(call, line) for line in text.splitlines())

# The row-level tier of a float32 result (the module docstring, "The row-level tier"): the first
# tier's operations at the row level, and these bounds, computed once per row, for the values
# computed per element: each takes its operands' magnitude bounds m (at least |value| at every
# element of the row) and error bounds e (at least the first tier's bound at every element)
# and returns the result's (m, e), at least the first tier's at every element: its own terms
# from the magnitudes, times SL (the roundings of the two bound computations, and those of
# the first tier's own bound), plus ROW_D (every absolute loss below the normal numbers:
# TINY, a subnormal product's split).
_HELPERS_ROW = _HELPERS_FIRST + """
SL = 1.0 + 2.0 ** -40
SL_SUM = 1.0 + 2.0 ** -14
ROW_D = 2.0 ** -1000


@njit(inline="always", **_J)
def r_add(am, ae, bm, be):
    m = am + bm
    return m, ((ae + be) + U * m) * SL + ROW_D


@njit(inline="always", **_J)
def r_mul(am, ae, bm, be):
    m = am * bm
    return m, ((am * be + bm * ae + ae * be) + U * m) * SL + ROW_D


@njit(inline="always", **_J)
def r_div(am, ae, bh, be):  # by a value computed per row
    b = abs(bh)
    m = am / b
    low = b - 2.0 * be
    if low > 0.0:
        return m, ((ae + m * be) / low + U * m) * SL + ROW_D
    return m, math.inf


@njit(inline="always", **_J)
def r_cmp(am, ae, bm, be):
    \"\"\"The bound on a per-element difference a - b that decides a comparison: 0 where both
    operands are exact (the first tier's difference is then within u of its exact value, so
    every nonzero one is sure, and so is an exact 0).\"\"\"
    if ae == 0.0 and be == 0.0:
        return 0.0
    return ((ae + be) + U * (am + bm)) * SL + ROW_D


@njit(inline="always", **_J)
def r_sum(n, tm, te):
    \"\"\"(m, e) of a sum over an index of n terms, computed per element: each term within te of
    its exact value and at most tm in magnitude; its steps' roundings within u of each partial
    sum, at most n·tm·(1 + 2^-15) each (n < 2^37).\"\"\"
    m = n * tm * SL_SUM
    return m, (n * te + U * n * m) * SL_SUM + ROW_D
"""

_OPERATORS = {sp.StrictGreaterThan: ">", sp.GreaterThan: ">=", sp.StrictLessThan: "<",
              sp.LessThan: "<="}


class _Block:
    """A loop level of the generated code: the index slots bound there, its lines, and the
    values already computed there."""

    def __init__(self, bound: frozenset[int], indent: int) -> None:
        self.bound, self.indent = bound, indent
        self.lines: list[str] = []
        self.memo: dict[sp.Basic, str] = {}
        #: a sum's loop: the uses of each subexpression in that sum (a value computed in the
        #: loop is forgotten after it, so only they can share it); None elsewhere
        self.uses: dict[sp.Basic, int] | None = None


class _Printer:
    """Prints one row kernel's expression as tracked double-double statements."""

    def __init__(self, args: Sequence[sp.Symbol], views: Sequence[tuple[str, int | None]],
                 arrays: dict[str, str], nslots: int) -> None:
        self.nslots = nslots
        self.access: dict[sp.Basic, tuple[str, int | None]] = {}
        for arg, (name, slot) in zip(args, views, strict=True):
            self.access[arg] = (arrays[name], slot)
        self.count = 0
        self._deps: dict[sp.Basic, frozenset[int]] = {}
        self._ungated: set[sp.Basic] = set()
        self._active: set[str] = set()  # the gates in force where the code is being emitted
        #: how often each subexpression occurs in the kernel's expression (set by source())
        self.total: dict[sp.Basic, int] = {}

    def fresh(self) -> str:
        self.count += 1
        return f"t{self.count}"

    # ---------------------------------------------------------------- dependence
    def deps(self, e: sp.Basic) -> frozenset[int]:
        """The index slots ``e``'s value depends on (its free indices)."""
        if e in self._deps:
            return self._deps[e]
        from .rows import _AxisDot, _AxisSum

        if e in self.access:
            slot = self.access[e][1]
            out = frozenset() if slot is None else frozenset({slot})
        elif isinstance(e, _AxisSum):
            out = self.deps(e.args[0]) - {int(e.args[1]) + self.nslots}
        elif isinstance(e, _AxisDot):
            out = (self.deps(e.args[0]) | self.deps(e.args[1])) - {int(e.args[2]) + self.nslots}
        else:
            out = frozenset().union(*(self.deps(a) for a in e.args)) if e.args else frozenset()
        self._deps[e] = out
        return out

    # ---------------------------------------------------------------- emission
    def emit(self, e: sp.Basic, stack: list[_Block]) -> str:
        """The name ``t`` of ``e``'s tracked value (``t_h, t_l, t_e``; a comparison: ``t_v,
        t_u``), computed in the outermost block of ``stack`` where its indices are bound."""
        need = self.deps(e)
        level = next(n for n, b in enumerate(stack) if need <= b.bound)
        for block in stack[: level + 1]:
            if e in block.memo:
                return block.memo[e]
        outer = stack[: level + 1]
        name = self._value(e, outer)
        outer[-1].memo[e] = name
        return name

    def _line(self, stack: list[_Block], text: str) -> None:
        block = stack[-1]
        block.lines.append("    " * block.indent + text)

    def _triple(self, stack: list[_Block], name: str, call: str) -> str:
        self._line(stack, f"{name}_h, {name}_l, {name}_e = {call}")
        return name

    @staticmethod
    def _t(name: str) -> str:
        return f"{name}_h, {name}_l, {name}_e"

    def _const(self, stack: list[_Block], value: float) -> str:
        name = self.fresh()
        text = "math.nan" if value != value else repr(float(value))
        return self._triple(stack, name, f"{text}, 0.0, 0.0")

    def _value(self, e: sp.Basic, stack: list[_Block]) -> str:
        from .hinges import hinge, step
        from .rows import _AxisDot, _AxisSum, _Group

        t = self._t
        if e in self.access:
            array, slot = self.access[e]
            if e == _DIVISOR:  # the kernel's own parameter
                ref = array
            elif slot is None:  # one number per row (a scalar option: broadcast)
                ref = f"{array}[r]"
            else:
                ref = f"{array}[r, i{slot}]"
            name = self.fresh()
            return self._triple(stack, name, f"np.float64({ref}), 0.0, 0.0")
        if isinstance(e, _Group):
            return self.emit(e.args[0], stack)
        if e.is_Rational:
            p, q = int(e.p), int(e.q)
            if q & (q - 1) == 0:  # dyadic: the float is exact
                return self._const(stack, p / q)
            name = self.fresh()
            return self._triple(stack, name, f"t_rational({float(p)!r}, {float(q)!r})")
        if e.is_Float:
            return self._const(stack, float(e))
        if e is sp.nan:
            return self._const(stack, float("nan"))
        if isinstance(e, sp.Add):
            return self._fold("t_add", e.args, stack)
        if isinstance(e, sp.Mul) and e.args[0] == -1:  # −x: exact, no product
            x = self.emit(sp.Mul(*e.args[1:]), stack)
            name = self.fresh()
            return self._triple(stack, name, f"-{x}_h, -{x}_l, {x}_e")
        if isinstance(e, sp.Mul) and e not in self._ungated:
            gates = self._gates(e)
            if gates:
                return self._gated_mul(e, gates, stack)
        if isinstance(e, sp.Mul):
            # the factors computed in an outer loop (a row's norms, a quotient of them)
            # multiplied together there, once: one product per element, not one per factor
            level = self._level(e, stack)
            outer = [a for a in e.args if self._level(a, stack) < level]
            if any(not a.is_number for a in outer) and len(outer) < len(e.args):
                rest = [a for a in e.args if a not in outer]
                o = self.emit(sp.Mul(*outer), stack)
                i = self.emit(sp.Mul(*rest), stack)
                return self._triple(stack, self.fresh(), f"t_mul({t(i)}, {t(o)})")
            # as NumPy's printer writes it: the factors with a negative integer power divide
            # (x/y, one rounding) rather than multiply by a reciprocal
            over = [a for a in e.args if isinstance(a, sp.Pow) and a.exp.is_Integer
                    and a.exp < 0]
            if not over:
                return self._fold("t_mul", e.args, stack)
            above = [a for a in e.args if a not in over]
            below = [a.base if a.exp == -1 else a.base ** -a.exp for a in over]
            num = self._fold("t_mul", above, stack) if above else self._const(stack, 1.0)
            den = self._fold("t_mul", below, stack)
            return self._triple(stack, self.fresh(), f"t_div({t(num)}, {t(den)})")
        if isinstance(e, sp.Pow):
            return self._pow(e.args[0], e.args[1], stack)
        if isinstance(e, (_AxisSum, _AxisDot)):
            return self._sum(e, stack)
        if isinstance(e, (hinge, sp.Max, sp.Min)):
            args = [*e.args, sp.S.Zero] if isinstance(e, hinge) else list(e.args)
            func = "t_minimum" if isinstance(e, sp.Min) else "t_maximum"
            out = self.emit(args[0], stack)
            for arg in args[1:]:
                b = self.emit(arg, stack)
                out = self._triple(stack, self.fresh(), f"{func}({t(out)}, {t(b)})")
            return out
        if isinstance(e, (step, sp.Heaviside)):
            x = self.emit(e.args[0], stack)
            if isinstance(e, step):
                h0 = 0.0
            else:
                h0 = float(e.args[1]) if len(e.args) > 1 else 0.5
            return self._triple(stack, self.fresh(), f"t_heaviside({t(x)}, {h0!r})")
        if isinstance(e, sp.sign):
            x = self.emit(e.args[0], stack)
            return self._triple(stack, self.fresh(), f"t_sign({t(x)})")
        if isinstance(e, sp.Abs):
            x = self.emit(e.args[0], stack)
            return self._triple(stack, self.fresh(), f"t_abs({t(x)})")
        if isinstance(e, sp.Piecewise):
            return self._piecewise(e, stack)
        if isinstance(e, sp.core.relational.Relational) and type(e) in _OPERATORS:
            a = self.emit(e.args[0], stack)
            name = self.fresh()
            if e.args[1] == 0:  # the sign of a: no subtraction
                self._line(stack, f"{name}_d, {name}_u = t_cmp0({t(a)})")
            else:
                b = self.emit(e.args[1], stack)
                self._line(stack, f"{name}_d, {name}_u = t_cmp({t(a)}, {t(b)})")
            self._line(stack, f"{name}_v = {name}_d {_OPERATORS[type(e)]} 0.0")
            return name
        if isinstance(e, (sp.And, sp.Or)):
            parts = [self.emit(a, stack) for a in e.args]
            name = self.fresh()
            join = " and " if isinstance(e, sp.And) else " or "
            self._line(stack, f"{name}_v = " + join.join(f"{p}_v" for p in parts))
            self._line(stack, f"{name}_u = " + " or ".join(f"{p}_u" for p in parts))
            return name
        raise Unsupported(type(e).__name__)

    def _level(self, e: sp.Basic, stack: list[_Block]) -> int:
        """The index in ``stack`` of the block where ``e``'s value is computed."""
        need = self.deps(e)
        return next(n for n, b in enumerate(stack) if need <= b.bound)

    def _guarded(self, guard: str, level: int, stack: list[_Block], body: Any,
                 root: sp.Basic) -> str:
        """``body()`` (which computes ``root``) with its statements run only where ``guard`` (a
        condition computed in ``stack[level]``) holds: those in that block and deeper ones are
        wrapped in ``if guard:`` (those hoisted further out run always), and the values
        computed there are forgotten afterwards. The subexpressions of ``root`` that occur
        elsewhere in the kernel too are computed first, unguarded: never twice."""
        self._shared_first(root, stack)
        starts = [len(b.lines) for b in stack]
        known = [set(b.memo) for b in stack]
        name = body()
        for n in range(level, len(stack)):
            block = stack[n]
            window = block.lines[starts[n]:]
            if window:
                block.lines[starts[n]:] = ["    " * block.indent + f"if {guard}:",
                                           *("    " + line for line in window)]
            for key in set(block.memo) - known[n]:
                del block.memo[key]
        return name

    def _shared_first(self, root: sp.Basic, stack: list[_Block]) -> None:
        inside: dict[sp.Basic, int] = {}
        _count(root, inside)
        bound = stack[-1].bound
        todo = list(root.args)
        while todo:
            node = todo.pop()
            if not node.args or node.is_number:
                continue
            if not self.deps(node) <= bound:
                todo.extend(node.args)
                continue
            uses = self.total
            if stack[-1].uses is not None and self._level(node, stack) == len(stack) - 1:
                uses = stack[-1].uses  # computed in a sum's loop: shared within that sum only
            if uses.get(node, 0) > inside[node]:
                self.emit(node, stack)
            else:
                todo.extend(node.args)

    def _gates(self, e: sp.Mul) -> list[sp.Basic]:
        """The factors of ``e`` worth testing for an exact 0 before the others are computed
        (a step, a ±1 label's ``(1 + y)/2``): those computed in an outer loop than the product,
        or without a sum where another factor has one."""
        from .rows import _AxisDot, _AxisSum

        whole = self.deps(e)
        heavy = [a.has(_AxisSum, _AxisDot) for a in e.args]
        gates = [a for a, h in zip(e.args, heavy, strict=True) if not a.is_number and (
            self.deps(a) < whole or (not h and any(heavy)))]
        return gates if len(gates) < len(e.args) else []

    def _gated_mul(self, e: sp.Mul, gates: list[sp.Basic], stack: list[_Block]) -> str:
        """``e`` computed only where none of ``gates`` is exactly 0 (a value without error):
        there the product is 0 (the other factors need not be computed). A tier adds to the
        test (:meth:`_gate_opened`) and writes the product (:meth:`_gate_closed`) its own way."""
        named = [(self.emit(g, stack), g) for g in gates]
        named = [(n, g) for n, g in named if n not in self._active]  # tested further out
        self._ungated.add(e)
        if not named:
            try:
                return self.emit(e, stack)
            finally:
                self._ungated.discard(e)
        names = [n for n, _ in named]
        level = max(self._level(g, stack) for _, g in named)
        zero = self.fresh()
        self._line(stack[: level + 1], f"{zero}_z = " + " or ".join(
            f"({n}_h == 0.0 and {n}_l == 0.0 and {n}_e == 0.0)" for n in names))
        self._gate_opened(stack[: level + 1], names)
        self._active.update(names)
        try:
            inner = self._guarded(f"not {zero}_z", level, stack, lambda: self.emit(e, stack), e)
        finally:
            self._ungated.discard(e)
            self._active.difference_update(names)
        return self._gate_closed(zero, inner, level, stack)

    def _gate_opened(self, outer: list[_Block], names: list[str]) -> None:
        """After the test ``{zero}_z`` whether a gate in ``names`` is exactly 0, in the blocks
        ``outer`` that compute them: nothing here."""

    def _gate_closed(self, zero: str, inner: str, level: int, stack: list[_Block]) -> str:
        """The gated product's value: 0 where ``{zero}_z``, else ``inner``'s (computed only
        there, in a block guarded at ``level``)."""
        name = self.fresh()
        self._line(stack, f"if {zero}_z:")
        self._line(stack, f"    {name}_h, {name}_l, {name}_e = 0.0, 0.0, 0.0")
        self._line(stack, "else:")
        self._line(stack, f"    {name}_h, {name}_l, {name}_e = {self._t(inner)}")
        return name

    def _fold(self, func: str, args: Sequence[sp.Basic], stack: list[_Block]) -> str:
        # the order of the NumPy printer's: sympy's argument order, left to right
        out = self.emit(args[0], stack)
        for arg in args[1:]:
            b = self.emit(arg, stack)
            out = self._triple(stack, self.fresh(), f"{func}({self._t(out)}, {self._t(b)})")
        return out

    def _pow(self, base: sp.Basic, exponent: sp.Basic, stack: list[_Block]) -> str:
        t = self._t
        from .rows import binary_powered

        if not exponent.is_Rational or not binary_powered(float(exponent)):
            raise Unsupported(f"power {exponent}")
        x = self.emit(base, stack)
        n = abs(exponent)
        whole = int(n)
        out: str | None = None
        power, k = x, whole
        while k:  # binary powering, as rows._Tracked.__pow__
            if k & 1:
                out = power if out is None else self._triple(
                    stack, self.fresh(), f"t_mul({t(out)}, {t(power)})")
            k >>= 1
            if k:
                power = self._triple(stack, self.fresh(), f"t_mul({t(power)}, {t(power)})")
        if n != whole:  # the root shared with every other power of the same base
            root = self._triple(stack, self.fresh(), f"t_sqrt({t(x)})") if exponent == sp.S.Half else \
                self.emit(sp.sqrt(base), stack)
            out = root if out is None else self._triple(
                stack, self.fresh(), f"t_mul({t(out)}, {t(root)})")
        if out is None:
            return self._const(stack, 1.0)
        if exponent < 0:
            return self._triple(stack, self.fresh(), f"t_div(1.0, 0.0, 0.0, {t(out)})")
        return out

    def _piecewise(self, e: sp.Piecewise, stack: list[_Block]) -> str:
        t = self._t
        if len(e.args) == 2 and e.args[1][1] == sp.true and e.args[0][1] != sp.true:
            # (A if c else B): only the chosen piece, both where c is unsure
            (first, cond), (other, _) = e.args
            c = self.emit(cond, stack)
            level = self._level(cond, stack)
            a = self._guarded(f"({c}_v or {c}_u)", level, stack, lambda: self.emit(first, stack),
                              first)
            b = self._guarded(f"(not {c}_v or {c}_u)", level, stack,
                              lambda: self.emit(other, stack), other)
            name = self.fresh()
            self._line(stack, f"if {c}_u:")
            self._line(stack, f"    {name}_h, {name}_l, {name}_e = t_where({c}_v, {c}_u, {t(a)}, "
                              f"{t(b)})")
            self._line(stack, f"elif {c}_v:")
            self._line(stack, f"    {name}_h, {name}_l, {name}_e = {t(a)}")
            self._line(stack, "else:")
            self._line(stack, f"    {name}_h, {name}_l, {name}_e = {t(b)}")
            return name
        out = self._const(stack, float("nan"))
        for value, cond in reversed(e.args):
            v = self.emit(value, stack)
            if cond == sp.true:
                out = v
                continue
            c = self.emit(cond, stack)
            out = self._triple(stack, self.fresh(),
                               f"t_where({c}_v, {c}_u, {t(v)}, {t(out)})")
        return out

    def _exact(self, e: sp.Basic) -> bool:
        """Whether ``e``'s value is an exact double wherever it is computed: an argument's
        element (or a row's number) or a dyadic constant."""
        if e in self.access:
            return True
        return bool(e.is_Rational and e.q & (e.q - 1) == 0)

    def _exact_factors(self, e: sp.Basic) -> tuple[sp.Basic, sp.Basic] | None:
        """The two exact-double factors of each term of the sum ``e`` (``Σ x_k·y_k``, ``Σ x_k²``,
        ``Σ x_k``), or ``None`` where its terms are not such a product."""
        from .rows import _AxisDot

        if isinstance(e, _AxisDot):
            x, y = e.args[0], e.args[1]
        else:
            term = e.args[0]
            if isinstance(term, sp.Pow) and term.exp == 2:
                x = y = term.base
            elif isinstance(term, sp.Mul) and len(term.args) == 2:
                x, y = term.args
            else:
                x, y = term, sp.S.One
        return (x, y) if self._exact(x) and self._exact(y) else None

    def _sum(self, e: sp.Basic, stack: list[_Block]) -> str:
        """A sum over an index as a loop of compensated steps (Sum2; Dot2 where each term is
        a product of exact doubles): the pair and bound of the module docstring."""
        from .rows import _AxisDot

        slot = int(e.args[-1]) + self.nslots
        outer = stack[-1]
        name = self.fresh()
        ind = "    " * outer.indent
        inner = _Block(outer.bound | {slot}, outer.indent + 1)
        body_stack = [*stack, inner]
        inner.uses = {}
        _count(e, inner.uses)
        pair = self._exact_factors(e)
        state = f"{name}_s, {name}_c, {name}_m"
        end = "dot2_end"
        if pair is not None:  # Σ x_k·y_k of exact doubles: each product split exactly
            x, y = (self.emit(f, body_stack) for f in pair)
            self._line(body_stack, f"{state} = dot2_step({state}, {x}_h, {y}_h)")
            if sp.S.One not in pair:  # products, which may underflow ("Underflow")
                end = "dotx_end"
        else:
            if isinstance(e, _AxisDot):
                x, y = self.emit(e.args[0], body_stack), self.emit(e.args[1], body_stack)
                term = self._triple(body_stack, self.fresh(),
                                    f"t_mul({self._t(x)}, {self._t(y)})")
            else:
                term = self.emit(e.args[0], body_stack)
            self._line(body_stack, f"{state} = sum2_step({state}, {term}_h, {term}_l)")
            self._line(body_stack, f"{name}_e += {term}_e")
        # terms that depend on no index of the loop went to outer blocks meanwhile: the loop
        # comes after them
        outer.lines += [f"{ind}{state}, {name}_e = 0.0, 0.0, 0.0, 0.0",
                        f"{ind}for i{slot} in range(width):", *inner.lines,
                        f"{ind}{name}_h, {name}_l, {name}_e = {end}({state}, {name}_e, "
                        "width)"]
        return name


class _RowPrinter(_Printer):
    """Prints the row-level tier of a float32 result (the module docstring, "The row-level
    tier"): the first tier's statements where a value is computed once per row; where it is
    computed per element (in a loop over an index), its value alone there, and its magnitude
    bound ``_M`` and error bound ``_e`` (and a zero ``_l``) once per row, by ``_HELPERS_ROW``'s
    rules, from its operands' (an argument's elements: ``max |x|`` over the row). What such a
    bound cannot vouch for marks the row (``bad``): the first tier evaluates it again."""

    _ASSIGN = re.compile(r"(t\d+)_h, \1_l, \1_e = (.*)$")
    _LOAD = re.compile(r"np\.float64\((a_\d+)\[r, i\d+\]\), 0\.0, 0\.0$")
    _NEG = re.compile(r"-(t\d+)_h, -\1_l, \1_e$")
    _CALL = re.compile(r"(t_\w+)\((.*)\)$")
    _NAME = re.compile(r"(t\d+)_h")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.elem: set[str] = set()  # values computed per element (their _M, _l, _e per row)
        self.boolean: set[str] = set()  # values in {0, 1} by construction (steps, products)
        self.grid: set[str] = set()  # integers by construction (exact where their bound is 0)
        self.wide: list[str] = []  # the arrays read per element (each row's max |x| first)
        self.loads: dict[str, str] = {}  # an argument's element: its array
        #: arrays whose rows are tested for integers (``gr_a``: every element an integer)
        self.gridded: list[str] = []
        #: values that are integers where a runtime flag ``_G`` (per row) says so
        self.maybe: set[str] = set()
        #: values with a relative bound too: within ``_E0 + _R·|value|`` at each element
        self.rel: set[str] = set()

    # ---------------------------------------------------------------- helpers
    def _row(self, stack: list[_Block], text: str) -> None:
        _Printer._line(self, stack[:1], text)

    def _raw(self, stack: list[_Block], text: str) -> None:
        _Printer._line(self, stack, text)

    def _flag(self, stack: list[_Block], cond: str) -> None:
        self._raw(stack, f"if {cond}:")
        self._raw(stack, "    bad[r] = True")
        self._raw(stack, "    left = True")

    def _gexpr(self, name: str | None) -> str | None:
        """Whether ``name`` is an integer at every element of the row (where its bound is 0), as
        a condition computed per row; ``None`` where it is not known."""
        if name is None:
            return None
        if name in self.grid:
            return "True"
        if name in self.maybe:
            return f"{name}_G"
        if name in self.loads:
            array = self.loads[name]
            if array not in self.gridded:
                self.gridded.append(array)
            return f"gr_{array}"
        if name not in self.elem:
            return f"({name}_e == 0.0 and {name}_h == math.floor({name}_h))"
        return None

    def _mag(self, name: str) -> str:
        return f"{name}_M" if name in self.elem else f"abs({name}_h)"

    def _operand(self, h: str, e: str) -> tuple[str, str, str, str | None]:
        """(value, magnitude bound, error bound, name) of an operand's tokens."""
        m = self._NAME.fullmatch(h)
        if m:
            return h, self._mag(m.group(1)), e, m.group(1)
        return h, f"abs({h})", e, None

    def _classify(self, name: str, rhs: str) -> None:
        call = self._CALL.match(rhs)
        if call is None:
            neg = self._NEG.match(rhs)
            if neg and neg.group(1) in self.grid:
                self.grid.add(name)
            lit = rhs.split(", ")[0]
            try:
                value = float(lit)
            except ValueError:
                return
            if value == int(value) and abs(value) <= 2.0 ** 52:
                self.grid.add(name)
                if value in (0.0, 1.0):
                    self.boolean.add(name)
            return
        func, args = call.group(1), call.group(2).split(", ")
        ops = [self._NAME.fullmatch(args[k]) for k in (0, 3) if k < len(args)]
        names = [o.group(1) if o else None for o in ops]
        if func == "t_heaviside" and args[3] in ("0.0", "1.0"):
            self.boolean.add(name)
            self.grid.add(name)
        elif func == "t_sign":
            self.grid.add(name)
        elif func in ("t_mul", "t_add", "t_maximum", "t_minimum") and len(names) == 2:
            if all(n in self.grid for n in names):
                self.grid.add(name)
            if func == "t_mul" and all(n in self.boolean for n in names):
                self.boolean.add(name)
        elif func == "t_abs" and names[0] in self.grid:
            self.grid.add(name)

    # ---------------------------------------------------------------- statements
    def _line(self, stack: list[_Block], text: str) -> None:
        assign = self._ASSIGN.match(text)
        if assign is not None:
            self._classify(assign.group(1), assign.group(2))
        if len(stack) == 1 or assign is None:  # a row's value, a comparison, a sum's step
            _Printer._line(self, stack, text)
            return
        self._element(stack, assign.group(1), assign.group(2))

    def _element(self, stack: list[_Block], x: str, rhs: str) -> None:
        """The statement ``x = rhs`` of the first tier, computed per element: its value there,
        its bounds once per row."""
        self.elem.add(x)
        load = self._LOAD.match(rhs)
        if load:
            array = load.group(1)
            if array not in self.wide:
                self.wide.append(array)
            self.loads[x] = array
            self._raw(stack, f"{x}_h = {rhs[:-len(', 0.0, 0.0')]}")
            self._row(stack, f"{x}_M, {x}_l, {x}_e = mx_{array}, 0.0, 0.0")
            return
        neg = self._NEG.match(rhs)
        if neg:
            y = neg.group(1)
            self._raw(stack, f"{x}_h = -{y}_h")
            self._row(stack, f"{x}_M, {x}_l, {x}_e = {self._mag(y)}, 0.0, {y}_e")
            if y in self.maybe:
                self.maybe.add(x)
                self._row(stack, f"{x}_G = {y}_G")
            if y in self.rel:
                self.rel.add(x)
                self._row(stack, f"{x}_E0, {x}_R = {y}_E0, {y}_R")
            return
        call = self._CALL.match(rhs)
        if call is None:
            raise Unsupported(f"per element: {rhs}")
        func, args = call.group(1), call.group(2).split(", ")
        if func == "t_where":
            c, cu = args[0], args[1]
            a, b = self._operand(args[2], args[4]), self._operand(args[5], args[7])
            self._raw(stack, f"{x}_h = {a[0]} if {c} else {b[0]}")
            self._flag(stack, cu)
            self._row(stack, f"{x}_M, {x}_l, {x}_e = {a[1]} + {b[1]}, 0.0, {a[2]} + {b[2]}")
            return
        a = self._operand(args[0], args[2])
        if func in ("t_heaviside", "t_sign"):
            if func == "t_heaviside":
                h0 = args[3]
                value = f"1.0 if {a[0]} > 0.0 else (0.0 if {a[0]} < 0.0 else {h0})"
                mag = repr(max(1.0, abs(float(h0))))
            else:
                value = f"1.0 if {a[0]} > 0.0 else (-1.0 if {a[0]} < 0.0 else 0.0)"
                mag = "1.0"
            self._raw(stack, f"{x}_h = {value}")
            self._flag(stack, f"not (abs({a[0]}) > {a[2]} or ({a[2]} == 0.0 and {a[0]} == 0.0))")
            self._row(stack, f"{x}_M, {x}_l, {x}_e = {mag}, 0.0, 0.0")
            return
        if func == "t_abs":
            self._raw(stack, f"{x}_h = abs({a[0]})")
            self._row(stack, f"{x}_M, {x}_l, {x}_e = {a[1]}, 0.0, {a[2]}")
            return
        if func not in ("t_add", "t_mul", "t_div", "t_maximum", "t_minimum"):
            raise Unsupported(f"per element: {func}")
        b = self._operand(args[3], args[5])
        if func in ("t_maximum", "t_minimum"):
            op = ">=" if func == "t_maximum" else "<="
            self._raw(stack, f"{x}_h = {a[0]} if {a[0]} {op} {b[0]} else {b[0]}")
            self._row(stack, f"{x}_c = r_cmp({a[1]}, {a[2]}, {b[1]}, {b[2]})")
            self._flag(stack, f"not (abs({a[0]} - {b[0]}) > {x}_c or ({x}_c == 0.0 and "
                              f"{a[0]} == {b[0]}))")
            self._row(stack, f"{x}_M, {x}_l, {x}_e = {a[1]} + {b[1]}, 0.0, {a[2]} + {b[2]}")
            return
        if func == "t_div":
            if b[3] in self.elem:
                raise Unsupported("per element: a divisor computed per element")
            self._raw(stack, f"{x}_h = {a[0]} / {b[0]}")
            self._row(stack, f"{x}_M, {x}_e = r_div({a[1]}, {a[2]}, {b[0]}, {b[2]})")
            self._row(stack, f"{x}_l = 0.0")
            return
        sym = "+" if func == "t_add" else "*"
        self._raw(stack, f"{x}_h = {a[0]} {sym} {b[0]}")
        rule = "r_add" if func == "t_add" else "r_mul"
        self._row(stack, f"{x}_M, {x}_e = {rule}({a[1]}, {a[2]}, {b[1]}, {b[2]})")
        self._row(stack, f"{x}_l = 0.0")
        counted = a[3] in self.grid | self.maybe or b[3] in self.grid | self.maybe
        ga, gb = (self._gexpr(a[3]), self._gexpr(b[3])) if counted else (None, None)
        if x in self.grid:  # integers: exact while their operands are and they stay below 2^52
            self._row(stack, f"if {a[2]} == 0.0 and {b[2]} == 0.0 and {x}_M <= 2.0 ** 52:")
            self._row(stack, f"    {x}_e = 0.0")
        elif ga is not None and gb is not None:
            # integers where the row's flags say so: a count times a label, a sum of counts
            self.maybe.add(x)
            self._row(stack, f"{x}_G = {ga} and {gb}")
            self._row(stack, f"if {x}_G and {a[2]} == 0.0 and {b[2]} == 0.0 and "
                             f"{x}_M <= 2.0 ** 52:")
            self._row(stack, f"    {x}_e = 0.0")
        if func == "t_mul" and x not in self.grid and (
                a[3] in self.boolean or b[3] in self.boolean):
            # a product by a step (0 or 1): exact, within the other factor's bound (its
            # loss below TINY_LIM, which the first tier counts, marks the row)
            if b[3] not in self.boolean:
                a, b = b, a
            self._row(stack, f"if {b[2]} == 0.0:")
            self._row(stack, f"    {x}_e = {a[2]} * {b[1]}")
            self._flag(stack, f"{x}_h != 0.0 and abs({x}_h) < TINY_LIM")
        if func == "t_mul" and (a[3] in self.elem) != (b[3] in self.elem):
            if a[3] not in self.elem:
                a, b = b, a
            if a[3] in self.grid | self.maybe:
                # a per-element value exact where its bound is 0, times a row's value b:
                # within |a|·e_b + u|ab| (the first tier's rule at e_a = 0), relative to the
                # product: an exact 0 stays certified (its loss below TINY_LIM marks the row)
                self.rel.add(x)
                self._row(stack, f"if {a[2]} == 0.0 and {b[0]} != 0.0:")
                self._row(stack, f"    {x}_E0, {x}_R = 0.0, ({b[2]} / abs({b[0]}) + U) * SL_SUM")
                self._row(stack, "else:")
                self._row(stack, f"    {x}_E0, {x}_R = {x}_e, 0.0")
                self._flag(stack, f"abs({x}_h) < TINY_LIM and {a[0]} != 0.0")

    # ---------------------------------------------------------------- structure
    def _gate_opened(self, outer: list[_Block], names: list[str]) -> None:
        for n in names:  # a bound above the first tier's cannot tell whether it skips
            self._flag(outer, f"{n}_h == 0.0 and {n}_l == 0.0 and {n}_e != 0.0")

    def _gate_closed(self, zero: str, inner: str, level: int, stack: list[_Block]) -> str:
        """As the first tier's where the product is a row's value; per element its value alone,
        its bounds once per row (those of a row's gate: 0 where it skips)."""
        if len(stack) == 1:
            name = super()._gate_closed(zero, inner, level, stack)
        else:
            name = self.fresh()
        if inner in self.grid:
            self.grid.add(name)
        if inner in self.boolean:
            self.boolean.add(name)
        if len(stack) == 1:
            return name
        self.elem.add(name)
        self._raw(stack, f"{name}_h = 0.0 if {zero}_z else {inner}_h")
        bounds = [f"{name}_M, {name}_l, {name}_e = {self._mag(inner)}, 0.0, {inner}_e"]
        zeros = [f"{name}_M, {name}_l, {name}_e = 0.0, 0.0, 0.0"]
        gi = self._gexpr(inner)
        if gi is not None and inner not in self.grid and inner in self.elem:
            self.maybe.add(name)
            bounds.append(f"{name}_G = {gi}")
            zeros.append(f"{name}_G = True")
        if inner in self.rel:
            self.rel.add(name)
            bounds.append(f"{name}_E0, {name}_R = {inner}_E0, {inner}_R")
            zeros.append(f"{name}_E0, {name}_R = 0.0, 0.0")
        if level == 0:  # a row's gate: its bounds where it does not skip
            self._row(stack, f"if {zero}_z:")
            for line in zeros:
                self._row(stack, "    " + line)
            self._row(stack, "else:")
            for line in bounds:
                self._row(stack, "    " + line)
        else:
            for line in bounds:
                self._row(stack, line)
        return name

    def _piecewise(self, e: sp.Piecewise, stack: list[_Block]) -> str:
        if len(stack) == 1 or not (len(e.args) == 2 and e.args[1][1] == sp.true
                                   and e.args[0][1] != sp.true):
            return super()._piecewise(e, stack)
        (first, cond), (other, _) = e.args
        c = self.emit(cond, stack)
        level = self._level(cond, stack)
        a = self._guarded(f"({c}_v or {c}_u)", level, stack, lambda: self.emit(first, stack),
                          first)
        b = self._guarded(f"(not {c}_v or {c}_u)", level, stack,
                          lambda: self.emit(other, stack), other)
        name = self.fresh()
        self.elem.add(name)
        self._raw(stack, f"if {c}_u:")
        self._raw(stack, "    bad[r] = True")
        self._raw(stack, "    left = True")
        self._raw(stack, f"    {name}_h = {a}_h if {c}_v else {b}_h")
        self._raw(stack, f"elif {c}_v:")
        self._raw(stack, f"    {name}_h = {a}_h")
        self._raw(stack, "else:")
        self._raw(stack, f"    {name}_h = {b}_h")
        ma, mb = self._mag(a), self._mag(b)
        if level == 0:  # a row's choice: the bounds of the piece it takes
            self._row(stack, f"if {c}_u:")
            self._row(stack, f"    {name}_M, {name}_l, {name}_e = {ma} + {mb}, 0.0, math.nan")
            self._row(stack, f"elif {c}_v:")
            self._row(stack, f"    {name}_M, {name}_l, {name}_e = {ma}, 0.0, {a}_e")
            self._row(stack, "else:")
            self._row(stack, f"    {name}_M, {name}_l, {name}_e = {mb}, 0.0, {b}_e")
        else:
            self._row(stack, f"{name}_M, {name}_l, {name}_e = {ma} + {mb}, 0.0, {a}_e + {b}_e")
        return name

    def _sum(self, e: sp.Basic, stack: list[_Block]) -> str:
        """:meth:`_Printer._sum`'s loop, its steps the first tier's; the terms' bounds per row:
        a sum computed once per row keeps its steps' running bound ``m`` and counts ``width``
        times its terms' bound; one computed per element, ``r_sum``'s."""
        from .rows import _AxisDot

        slot = int(e.args[-1]) + self.nslots
        outer = stack[-1]
        name = self.fresh()
        ind = "    " * outer.indent
        inner = _Block(outer.bound | {slot}, outer.indent + 1)
        body_stack = [*stack, inner]
        inner.uses = {}
        _count(e, inner.uses)
        pair = self._exact_factors(e)
        state = f"{name}_s, {name}_c, {name}_m"
        nested = len(stack) > 1
        if pair is not None:
            x, y = (self.emit(f, body_stack) for f in pair)
            self._raw(body_stack, f"{state} = dot2_step({state}, {x}_h, {y}_h)")
            end = "dotx_end" if sp.S.One not in pair else "dot2_end"
            term_m, term_e, term = f"{self._mag(x)} * {self._mag(y)}", "0.0", None
        else:
            if isinstance(e, _AxisDot):
                x, y = self.emit(e.args[0], body_stack), self.emit(e.args[1], body_stack)
                term = self._triple(body_stack, self.fresh(),
                                    f"t_mul({self._t(x)}, {self._t(y)})")
            else:
                term = self.emit(e.args[0], body_stack)
            self._raw(body_stack, f"{state} = sum2_step({state}, {term}_h, {term}_l)")
            end = "dot2_end"
            term_m, term_e = self._mag(term), f"{term}_e"
        loop = [f"{ind}{state}, {name}_e = 0.0, 0.0, 0.0, 0.0",
                f"{ind}for i{slot} in range(width):", *inner.lines]
        if not nested:
            if pair is None:
                loop.append(f"{ind}{name}_e = width * {term_e} * SL_SUM")
            outer.lines += [*loop, f"{ind}{name}_h, {name}_l, {name}_e = {end}({state}, "
                                   f"{name}_e, width)"]
            return name
        self.elem.add(name)
        outer.lines += [*loop, f"{ind}{name}_h = {name}_s"]
        self._row(stack, f"{name}_M, {name}_e = r_sum(width, {term_m}, {term_e})")
        self._row(stack, f"{name}_l = 0.0")
        if term is not None and term in self.grid:  # a count: exact below 2^52
            self.grid.add(name)
            self._row(stack, f"if {term_e} == 0.0 and {name}_M <= 2.0 ** 52:")
            self._row(stack, f"    {name}_e = 0.0")
        elif term is not None and term in self.maybe:
            self.maybe.add(name)
            self._row(stack, f"{name}_G = {term}_G")
            self._row(stack, f"if {name}_G and {term_e} == 0.0 and {name}_M <= 2.0 ** 52:")
            self._row(stack, f"    {name}_e = 0.0")
        return name


#: The reduction's denominator (the kernel's ``divisor``: the number of rows, or 1).
_DIVISOR = sp.Symbol("_divisor", positive=True)


def source(expr: sp.Expr, args: Sequence[sp.Symbol], views: Sequence[tuple[str, int | None]],
           nslots: int, free: int | None, rowlevel: bool = False) -> tuple[str, list[str]]:
    """The generated module's text and the names of the kernel's arrays, its parameters after
    ``out, bad, tol, width, divisor``: each ``(rows, width)``, or ``(rows,)`` for one number per
    row or a scalar option (broadcast), in the order of ``views``. ``rowlevel``: the row-level
    tier's text (:class:`_RowPrinter`; :class:`Unsupported` where it has no form)."""
    arrays: dict[str, str] = {}
    params: list[str] = []
    for name, _ in views:
        if name in arrays:
            continue
        arrays[name] = f"a_{len(arrays)}"
        params.append(name)
    printer = (_RowPrinter if rowlevel else _Printer)(args, views, arrays, nslots)
    printer.access[_DIVISOR] = ("divisor", None)
    # the division by the reduction's denominator in the expression: a factor computed per
    # row (a row's scale, its step) is divided there, once, not each element
    expr = expr / _DIVISOR
    _count(expr, printer.total)
    row = _Block(frozenset(), 2)
    stack = [row]
    if free is not None:
        element = _Block(frozenset({free}), 3)
        stack.append(element)
    value = printer.emit(expr, stack)
    last = stack[-1]
    t = printer._t
    q = printer.fresh()
    check = f"{q}_e <= tol * abs({q}_h)"
    if isinstance(printer, _RowPrinter) and value in printer.rel:  # or its relative bound
        check = f"({check} or {value}_E0 + {value}_R * abs({q}_h) <= tol * abs({q}_h))"
    finish = [
        f"{q}_h, {q}_l, {q}_e = {t(value)}",
        f"{q}_h = {q}_h + {q}_l",  # a pair's value (the other tiers' l: 0, or within h's ulp/2)
        f"if not (math.isfinite({q}_h) and {check}):",
        "    bad[r] = True",
        "    left = True",
    ]
    target = f"out[r, i{free}]" if free is not None else "out[r]"
    finish.append(f"{target} = {q}_h")
    last.lines += ["    " * last.indent + line for line in finish]
    body = list(row.lines)
    if isinstance(printer, _RowPrinter) and printer.wide:  # each argument's max |x| in the row
        wide, gridded = printer.wide, printer.gridded  # (and whether its elements are integers)
        body = [*(f"        mx_{a} = 0.0" for a in wide),
                *(f"        gr_{a} = True" for a in gridded),
                "        for ix in range(width):",
                *(f"            mx_{a} = max(mx_{a}, abs(np.float64({a}[r, ix])))" for a in wide),
                *(f"            gr_{a} = gr_{a} & (np.float64({a}[r, ix]) == "
                  f"math.floor(np.float64({a}[r, ix])))" for a in gridded),
                *body]
    if free is not None:
        body += [f"        for i{free} in range(width):", *stack[1].lines]
    if not isinstance(printer, _RowPrinter):
        body = _fuse_sums(body)
    header = ", ".join(["out", "bad", "tol", "width", "divisor", *(arrays[n] for n in params)])
    # returns whether it left a row (marked in ``bad``): the caller needs no pass over ``bad``
    text = ("\n\n@njit(**_J)\ndef kernel(" + header + "):\n    left = False\n"
            "    for r in range(out.shape[0]):\n" + "\n".join(body) + "\n    return left\n")
    return text, params


_SUM_INIT = re.compile(r"^( *)(t\d+)_s, \2_c, \2_m, \2_e = 0\.0, 0\.0, 0\.0, 0\.0$")


def _fuse_sums(lines: list[str]) -> list[str]:
    """``lines`` with the sum loops over one index in one block fused into one loop.
    :meth:`_Printer._sum` prints a sum as its state's initialisation, ``for i in
    range(width):``, the loop's lines, and its end (``name_h, name_l, name_e =
    dot2_end(...)``). A later sum at the same indentation in the same block (no line between
    them less indented: under the same guards, run at the same rows), over the same index,
    whose loop reads no value assigned between them nor any of the earlier sums', is moved up
    into the first one's loop: the initialisations, one ``for``, each sum's lines in turn,
    the ends. Each sum's operations and their order are unchanged, and so are the values it
    reads -- the same values everywhere -- but the independent running sums (each a chain of
    dependent additions) overlap, and the row's elements are read once."""
    lines = list(lines)

    def sum_at(k: int) -> tuple[str, str, int] | None:
        """(indentation, name, index of its end line) of a sum starting at line k."""
        m = _SUM_INIT.match(lines[k])
        if m is None or k + 1 >= len(lines) or not lines[k + 1].startswith(m.group(1) + "for i"):
            return None
        ind, name = m.group(1), m.group(2)
        j = k + 2
        while j < len(lines) and lines[j].startswith(ind + " "):
            j += 1
        if j < len(lines) and lines[j].startswith(f"{ind}{name}_h, {name}_l, {name}_e = "):
            return ind, name, j
        return None

    def assigned(line: str) -> set[str]:
        left = line.split(" = ", 1)[0] if " = " in line else line.split(" += ", 1)[0]
        return set(re.findall(r"\b(t\d+)_", left)) if ("=" in line) else set()

    out: list[str] = []
    k = 0
    while k < len(lines):
        first = sum_at(k)
        if first is None:
            out.append(lines[k])
            k += 1
            continue
        ind, name, end = first
        loop = lines[k + 1]
        inits, bodies, ends = [lines[k]], [lines[k + 2: end]], [lines[end]]
        names = {name}
        between: list[str] = []  # the lines left in place after the fused loop
        written: set[str] = set()
        j = end + 1
        while j < len(lines) and (lines[j].startswith(ind) or not lines[j].strip()):
            nxt = sum_at(j) if lines[j].startswith(ind + "t") else None
            if nxt is not None and nxt[0] == ind and lines[j + 1] == loop:
                body = lines[j + 2: nxt[2]]
                text = "\n".join(body)
                if not any(re.search(rf"\b{n}_", text) for n in written | names):
                    inits.append(lines[j])
                    bodies.append(body)
                    ends.append(lines[nxt[2]])
                    names.add(nxt[1])
                    j = nxt[2] + 1
                    continue
            between.append(lines[j])
            written |= assigned(lines[j])
            j += 1
        out += inits
        out.append(loop)
        for body in bodies:
            out += _fuse_sums(body)  # sums in the loop (a sum of sums), likewise
        out += ends
        out += _fuse_sums(between)  # and in the blocks between
        k = j
    return out


def _count(e: sp.Basic, counts: dict[sp.Basic, int]) -> None:
    """Add to ``counts`` the uses of each subexpression of ``e`` (``e`` once): its occurrences
    in the arguments of the *distinct* subexpressions of ``e``. A subexpression used only by
    one that occurs twice counts once -- the printer computes that one once (a value's memo),
    so what it uses is not shared, and a guard around it can skip it."""
    counts[e] = counts.get(e, 0) + 1
    seen = {e}
    todo = [e]
    while todo:
        for arg in todo.pop().args:
            counts[arg] = counts.get(arg, 0) + 1
            if arg not in seen:
                seen.add(arg)
                todo.append(arg)


_lock = threading.RLock()


class Compiled:
    """A row kernel's compiled forms: :meth:`get` loads the one for a working precision
    (``"dd"``: double-double, for float64 results; ``"f64"``: float64, for float32 ones;
    ``"first"``: float32 results' first tier; ``"first64"``: float64 results' first tier), a
    numba function ``kernel(out, bad, tol, width, divisor, *arrays)`` (arrays named by
    :attr:`params`; it returns whether it marked a row in ``bad``), all four printed from one
    text; :meth:`run` runs a result's tiers;
    :attr:`free`: whether it has a result per element (else per row); :attr:`first64`:
    whether a float64 result runs the first tier (a kernel without a square root: the module
    docstring, "The float64 first tier")."""

    def __init__(self, text: str, params: list[str], free: bool = False,
                 row_text: str | None = None) -> None:
        self.text, self.params, self.free = text, params, free
        #: the row-level tier's text (``"row"``), or ``None`` where it has no form
        self.row_text = row_text
        self._loaded: dict[str, Any] = {}

    def get(self, mode: str) -> Any:
        """The kernel for ``mode``: called through its saved native entry where there is one
        (:mod:`symloss.native`: a warm first call imports no numba), else numba's, which
        saves the entry for the next process; numba's alone with ``SYMLOSS_NATIVE=0``."""
        fn = self._loaded.get(mode)
        if fn is None:
            from . import native

            with _lock:
                helpers = _helpers_module(mode)[0]
                module_text = (
                    "import math\n\nimport numpy as np\nfrom numba import njit\n\n"
                    f"from {helpers} import *  # noqa: F403\n\n"
                    '_J = dict(cache=True, nogil=True, error_model="numpy")\n'
                    + ((self.row_text or "") if mode == "row" else
                       _exact_operands(self.text) if mode == "first64" else self.text))
                name = f"symloss_rows_{cache.digest(module_text.encode())}"

                def dispatcher() -> Any:  # imports numba (the helpers' module first)
                    _helpers(mode)
                    return cache.load_module(module_text, name).kernel

                # the module's name covers its text and the helpers' (named by their digest),
                # not symloss._fastmath, which the helpers import: symloss's code digest does
                fn = self._loaded[mode] = (
                    native.Kernel(f"{name}@{cache.code_digest()}", "kernel", dispatcher)
                    if native.enabled() else dispatcher())
        return fn

    def run(self, mode: str, out: Any, bad: Any, tol: float, width: int, divisor: float,
            *arrays: Any) -> bool:
        """The kernel for ``mode`` at every row, each result certified (``bad`` marks the rows
        it could not; returned: whether there is one): for ``"f64"``, the first tier at every
        row (checked against ``tol/2``: the module docstring, "The first tier"), then the
        tracked float64 kernel at the rows it leaves; for ``"dd"`` where :attr:`first64`, the
        float64 first tier (checked against ``tol·(1 − 2⁻¹²)``: "The float64 first tier"),
        then the double-double kernel at the rows it leaves."""
        if mode == "f64":  # the row-level tier first, where there is one
            tiers = [("row", tol / 2.0)] if self.row_text is not None else []
            tiers += [("first", tol / 2.0), (mode, tol)]
        elif mode == "dd":
            tiers = [("first64", tol * (1.0 - 2.0 ** -12)), (mode, tol)]
        else:
            return bool(self.get(mode)(out, bad, tol, width, divisor, *arrays))
        if not self.get(tiers[0][0])(out, bad, tiers[0][1], width, divisor, *arrays):
            return False
        picked = np.flatnonzero(bad)
        for tier, tier_tol in tiers[1:]:
            again = np.empty((picked.size, *out.shape[1:]), dtype=out.dtype)
            still = np.zeros(picked.size, dtype=np.bool_)
            left = bool(self.get(tier)(again, still, tier_tol, width, divisor,
                                       *(a[picked] for a in arrays)))
            out[picked] = again
            bad[picked] = still
            if not left:
                return False
            picked = picked[still]
        return True


def _helpers_module(mode: str) -> tuple[str, str]:
    """The name and text of the module of the tracked operations for ``mode``."""
    text = {"dd": _HELPERS, "f64": _HELPERS_F64, "first": _HELPERS_FIRST,
            "first64": _HELPERS_FIRST64, "row": _HELPERS_ROW}[mode]
    return f"symloss_rows_ops_{mode}_{cache.digest(text.encode())}", text


def _helpers(mode: str) -> str:
    """The module of the tracked operations for ``mode``, loaded once (every kernel imports it,
    so numba compiles and caches the operations once, not once per kernel)."""
    name, text = _helpers_module(mode)
    cache.load_module(text, name)
    return name


def build(kernel: Any) -> Compiled | None:
    """The compiled forms of a :class:`symloss.rows.RowKernel`, or ``None`` where numba is
    missing or the expression has an operation without a tracked form."""
    from . import fast

    if not fast.available() or kernel.expr is None:
        return None
    try:
        text, params = source(kernel.expr, kernel.args, kernel.views, kernel.slots, kernel.free)
    except Unsupported:
        return None
    try:
        row_text: str | None = source(kernel.expr, kernel.args, kernel.views, kernel.slots,
                                      kernel.free, rowlevel=True)[0]
    except Unsupported:
        row_text = None
    return Compiled(text, params, kernel.free is not None, row_text)


def build_planned(derivation: Any, key: str, kernel: Any) -> Compiled | None:
    """:func:`build` of ``kernel()`` (a :class:`symloss.rows.RowKernel`), its printed source
    saved on disk for a catalogue derivation (:func:`symloss.fast._plan_key`, like the
    element-wise kernels' plans): a later process loads it without the SymPy work of
    building the kernel (seconds, most of a warm first call)."""
    from . import fast

    plan_key = fast._plan_key(derivation, f"rows {key}")
    plan = cache.read_plan(plan_key) if plan_key is not None else None
    if plan is not None and plan.get("kind") == "rows":
        if not plan["source"]:  # no compiled form (an operation without a tracked one)
            return None
        return Compiled(plan["source"], [str(n) for n in plan["params"]], bool(plan["free"]),
                        plan.get("row_source") or None)
    built = build(kernel())
    if plan_key is not None and fast.available():
        cache.write_plan(plan_key, {
            "kind": "rows", "source": built.text if built else "",
            "row_source": (built.row_text or "") if built else "",
            "params": built.params if built else [], "free": bool(built and built.free)})
    return built
