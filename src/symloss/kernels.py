"""Stable NumPy evaluation of the class-axis primitives (the class axis is the last one).

The element-wise primitives print straight to ``scipy.special.expit`` and ``numpy.logaddexp``.
The class-axis ones need one idea SciPy's ``logsumexp`` and ``softmax`` do not use: with
``m = max_j z_j`` and ``s`` the sum of ``exp(z_j - m)`` over every class *but the arg-max*,

* ``log softmax(z)_k = (z_k - m) - log1p(s)``   (both terms ≤ 0: nothing cancels),
* ``1 - softmax(z)_k`` is ``s / (1 + s)`` at the arg-max, summed from the small terms, and
  ``(1 + s - e_k) / (1 + s)`` elsewhere, where ``e_k ≤ (1 + s) / 2``.

So a log-probability or a complement near 0 keeps its full relative accuracy instead of
rounding to 0, which is what ``log(sum(exp(z - m)))`` does once ``s`` < machine epsilon.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import ddouble

__all__ = ["FITS1_MARGIN", "class_sum", "cmp_abs_sum", "cmp_products", "cmp_sum", "exp_sub", "fits1", "log_softmax",
           "log_sub", "prod_err", "sigmoid", "sigmoid_pow", "softmax", "softmax_complement", "xlog"]

Array = npt.NDArray[np.floating]


def sigmoid(x: Array) -> Array:
    """``σ(x)`` element-wise, rounded once from double-double (:func:`symloss.ddouble.t_sigmoid`):
    within half an ulp and a few 2⁻¹⁰⁶, as the numba kernels' ``sigmoid_e_m`` (within
    ``0.5 + 2⁻¹²``), so the two evaluators agree within one float. ``e^{−|x|}`` never
    overflows and ``σ(x) = 1/(1+t)`` or ``t/(1+t)`` never cancels.

    >>> import numpy as np
    >>> sigmoid(np.array([0.0, 800.0, -800.0, np.inf, -np.inf])).tolist()
    [0.5, 1.0, 0.0, 1.0, 0.0]
    """
    x = np.asarray(x, dtype=np.result_type(x, np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        h, lo = ddouble.t_sigmoid((x, np.zeros_like(x)))
        # σ(±∞) = 1, 0 (the pair's e^(−∞) arithmetic gives NaN there)
        return np.where(np.isinf(x), (x > 0).astype(x.dtype), h + lo)


def class_sum(x: Array) -> Array:
    """Σ over the last axis (kept, length 1), compensated (Neumaier): about 1 rounding in all.

    A plain sum of class probabilities can land 1 ulp off 1, and the soft-target gradient
    ``p·Σy − y`` turns that into hundreds of ulps where it nearly cancels.

    >>> import numpy as np
    >>> x = np.array([1.0, 1e-16, 1e-16])
    >>> float(class_sum(x)[0]), float(np.sum(x))
    (1.0000000000000002, 1.0)
    """
    x = np.asarray(x)
    total = np.zeros(x.shape[:-1], dtype=np.result_type(x.dtype, np.float64))
    carry = np.zeros_like(total)
    for j in range(x.shape[-1]):
        v = x[..., j]
        t = total + v
        carry += np.where(np.abs(total) >= np.abs(v), (total - t) + v, (v - t) + total)
        total = t
    # An infinite term leaves the carry NaN (inf − inf): then the plain sum is the answer.
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(total), total + carry, total)[..., None]


def _parts(z: Array) -> tuple[Array, Array, Array, Array]:
    """``(z - m, e = exp(z - m), s, is_argmax)`` along the last axis."""
    m = np.max(z, axis=-1, keepdims=True)
    shifted = z - m
    e = np.exp(shifted)
    if z.dtype == np.float64:
        # z − m rounds by up to half an ulp of |z − m|, which exp amplifies to a relative
        # error of |z − m|·2⁻⁵³; TwoSum recovers that rounding error r, exp(d + r) = e·(1 + r).
        # Where z − m overflows to −inf, e is 0 and there is nothing to correct.
        with np.errstate(invalid="ignore", over="ignore"):
            back = shifted + m
            r = (z - back) - (m + (shifted - back))
        e = np.where(np.isfinite(r), e * (1.0 + r), e)
    # One arg-max per row (the first), so that ties are still counted in s.
    first = np.argmax(z, axis=-1)[..., None]
    is_argmax = np.zeros(z.shape, dtype=bool)
    np.put_along_axis(is_argmax, first, True, axis=-1)
    s = np.sum(np.where(is_argmax, 0.0, e), axis=-1, keepdims=True)
    return shifted, e, s, is_argmax


def log_softmax(z: Array) -> Array:
    """``log softmax(z)`` along the last axis, accurate also where it is close to 0.

    >>> import numpy as np
    >>> float(log_softmax(np.array([40.0, 0.0]))[0])  # exact: -log1p(exp(-40))
    -4.248354255291589e-18
    """
    shifted, _, s, _ = _parts(z)
    return shifted - np.log1p(s)


def softmax(z: Array) -> Array:
    """``softmax(z)`` along the last axis."""
    _, e, s, _ = _parts(z)
    return e / (1.0 + s)


def softmax_complement(z: Array) -> Array:
    """``1 - softmax(z)`` along the last axis, without cancellation where softmax → 1.

    >>> import numpy as np
    >>> float(softmax_complement(np.array([40.0, 0.0]))[0])
    4.248354255291589e-18
    """
    _, e, s, is_argmax = _parts(z)
    total = 1.0 + s
    return np.where(is_argmax, s, total - e) / total


def xlog(weight: Array, log_p: Array) -> Array:
    """``weight · log_p`` with ``0 · log_p = 0`` even where ``log_p = −inf`` (0 log 0 = 0).

    >>> import numpy as np
    >>> xlog(np.array([0.0, 1.0]), np.array([-np.inf, -2.0])).tolist()
    [0.0, -2.0]
    """
    with np.errstate(invalid="ignore"):
        return np.where(weight == 0, 0.0, weight * log_p)


def sigmoid_pow(x: Array, g: Array, exact_b: bool = False) -> Array:
    """``σ(x)^γ = e^(−γ softplus(−x))`` with the exponent as an exact pair (the arithmetic of
    the float64 kernels' ``symloss._fastmath.sigmoid_pow_m``): ``softplus(−x) = a + b`` with
    ``a = max(−x, 0)`` exact and ``b = log1p(e^(−|x|)) ≤ ln 2``, ``γa + γb`` by Dekker's product
    and TwoSum, then ``e^(−hi)(1 − lo)``: about 1 + γ/2 ulp where ``e^u`` would amplify the
    rounding of a large exponent ``u`` ``|u|``-fold.

    With ``exact_b`` (:class:`symloss.primitives.sigmoid_pow_large`) ``b``'s own rounding, and
    that of ``e^(−|x|)``, joins the low part: ``T = e^(−|x|)`` and ``E = e^(−b)`` in
    double-double, ``log1p(T) − b = log((1 + T)·E)`` to about 2⁻¹⁰⁰ (within 2 ulp at every γ;
    without it γ = 1000 was 464 ulp off).

    >>> import numpy as np
    >>> float(sigmoid_pow(np.float64(-700.0), np.float64(0.5)))  # e^(−350 − ½ log1p(e^−700))
    9.92959039626498e-153
    """
    from .ddouble import dd_add, dd_exp, dd_mul, t_expna, two_prod, two_sum

    x = np.asarray(x, dtype=np.result_type(x, np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        a = np.where(x < 0.0, -x, 0.0)
        b = np.log1p(np.exp(-np.abs(x)))
        p, pe = two_prod(g, a)
        q, qe = two_prod(g, b)
        if exact_b:
            th, tl = t_expna((x, 0.0 * x))
            eh, el = dd_exp(-b)
            sh, sl = dd_add(1.0, 0.0, th, tl)
            dh, dl = dd_mul(sh, sl, eh, el)  # (1 + T)·e^(−b) = 1 + δ
            qe = qe + g * ((dh - 1.0) + dl)  # dh − 1 exact (dh in [½, 2])
        s, se = two_sum(p, q)
        lo = se + (pe + qe)
        e = np.exp(-s)
        # the correction wherever e^(−s) is not 0 (to 746): e^(−703) was left 53 ulp off
        return np.where(np.abs(s) <= 746.0, e * (1.0 - lo), e)


#: ``1 + 2⁻²⁰``: the margin of :func:`fits1`'s test over the roundings it is computed with.
FITS1_MARGIN = 1.0000009536743164


def fits1(p: Array, m: Array) -> npt.NDArray[np.bool_]:
    """Whether the float64 difference ``p = fl(h − y)`` is within 3 ulp of the exact ``D = H − y``,
    given ``m = fl(|h| + |y|)``, a head ``h`` within 1 ulp of its exact value ``H`` (eᶻ, log x;
    not assuming libm's 0.5) and an exact input ``y``: the test is ``3|p| ≥ (1 + 2⁻²⁰)·m``.

    Proof. Where ``h`` and ``y`` differ in sign nothing cancels (``|p| = m``). Else
    ``max(|h|, |y|) = (m + |p|)/2`` up to roundings (each 2⁻⁵³ relative), so the test gives
    ``max(|h|, |y|) ≤ 2|p|·(1 − 2⁻²¹)`` and, ``h`` and ``p`` being within 2⁻⁵¹ of ``H`` and
    ``D`` (relative to ``|H|``, ``|H| ≤ 2|p|``): ``|H| < 2|D|``. With ``2^e ≤ |D| < 2^(e+1)``
    that puts ``|H|`` below ``2^(e+2)``, so ``ulp(H) ≤ 2 ulp(D)``, and ``|h − y| ≤ |D| + ulp(H)``
    below ``2^(e+1) + 2 ulp(D)``, so ``fl(h − y)`` rounds by at most ``½ ulp(h − y) ≤ ulp(D)``:
    ``|p − D| ≤ ulp(H) + ulp(D) ≤ 3 ulp(D)`` (subnormal ``D`` too: there ulps are equal).
    The accuracy goal is 4 ulp. ``H/y`` in [½, 2] fails the test (``eᶻ − y``: double-double
    there); the earlier rule, ``|p| ≥ m/2`` (``H/y`` in [⅓, 3]), sent 24% of Poisson(2)
    targets at z ~ 3·N(0, 1) to double-double, this one 15%. inf passes (``inf − y``), NaN fails.

    >>> fits1(np.array([1.0, 1.0, -1.0]), np.array([2.99, 3.0, 1.0])).tolist()
    [True, False, True]
    """
    return 3.0 * np.abs(p) >= FITS1_MARGIN * m


def exp_sub(z: Array, y: Array) -> Array:
    """``eᶻ − y`` rounded once from double-double (:func:`symloss.ddouble.np_exp_sub`), within
    half an ulp and a few 2⁻¹⁰⁶ of the terms: the float64 kernels round once from pairs too
    (their first tier, ``_fastmath.exp_terms_q``, within 0.5 + 2⁻⁹ ulp), so the two agree
    within one float (the float64 difference, within 3 ulp where :func:`fits1` vouched for it,
    put them 2 floats apart).

    >>> import numpy as np
    >>> exp_sub(np.array([0.0, 1e-9]), np.array([0.0, 1.0])).tolist()  # 1, then no cancellation
    [1.0, 1.0000000005000001e-09]
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return ddouble.np_exp_sub(z, y)


def log_sub(x: Array, z: Array) -> Array:
    """``log x − z``: the float64 difference where :func:`fits1` vouches for it (within 3 ulp),
    else :func:`symloss.ddouble.log_sub` (2⁻¹¹⁵ of the terms), the rule of the float64
    kernels.

    >>> import numpy as np
    >>> log_sub(np.array([1.0, 0.9127555772777217]), np.array([2.0, -0.09128714805397004])).tolist()
    [-2.0, -4.363033798632528e-19]
    """
    from .ddouble import np_log_sub

    x = np.asarray(x, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lx = np.log(x)
        d = lx - z
        fits = fits1(d, np.abs(lx) + np.abs(z))
    if np.all(fits):
        return d
    return np.where(fits, d, np_log_sub(x, z))


def cmp_sum(a: Array, b: Array, s: Array) -> Array:
    """The sign of the exact ``(a + b) − s``: ``fl(a + b)`` compares with the float ``s`` as
    ``a + b`` does (rounding is monotonic) unless they are equal; there the sign of TwoSum's
    error decides. So a kink ``|z − y| < δ`` is on the side the exact inputs put it.

    >>> import numpy as np
    >>> # −0.001 − 0.999 rounds to −1.0; exactly it is −0.99999999999999999913…
    >>> cmp_sum(np.array([-0.001]), np.array([-0.999]), np.array([-1.0])).tolist()
    [1.0]
    """
    from .ddouble import two_sum

    with np.errstate(invalid="ignore"):
        d, e = two_sum(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
        return np.where(d != s, np.sign(d - s), np.sign(e))


def cmp_abs_sum(a: Array, b: Array, s: Array) -> Array:
    """The sign of the exact ``|a + b| − s`` (:func:`cmp_sum` of the absolute value).

    >>> import numpy as np
    >>> cmp_abs_sum(np.array([-0.001]), np.array([-0.999]), np.array([1.0])).tolist()
    [-1.0]
    """
    from .ddouble import two_sum

    with np.errstate(invalid="ignore"):
        d, e = two_sum(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
        e = np.where(d < 0, -e, e)
        d = np.abs(d)
        return np.where(d != s, np.sign(d - s), np.sign(e))


def cmp_products(*factors: Array) -> Array:
    """The sign of the exact ``a0·b0 + a1·b1 + …`` (the factors in pairs; −1.0, 0.0 or 1.0,
    NaN for a NaN): the float64 sum decides where it exceeds its rounding error's bound, the
    few other elements are summed exactly (as fractions). So a kink of three or more terms,
    ``margin − y·(z₁ − z₂) ≥ 0``, is on the side the exact inputs put it.

    >>> import numpy as np
    >>> # 0.5 − (0.501 − 0.001) rounds to 0.0; exactly it is −1.1e-17…
    >>> cmp_products(np.array([0.5]), 1.0, np.array([-0.501]), 1.0, np.array([0.001]), 1.0).tolist()
    [-1.0]
    """
    from fractions import Fraction

    arrays = np.broadcast_arrays(*(np.asarray(f, dtype=np.float64) for f in factors))
    shape = arrays[0].shape
    flat = [a.reshape(-1) for a in arrays]
    pairs = list(zip(flat[0::2], flat[1::2], strict=True))
    with np.errstate(invalid="ignore", over="ignore"):
        total = np.zeros(flat[0].shape)
        size = np.zeros(flat[0].shape)
        for a, b in pairs:
            total = total + a * b
            size = size + np.abs(a * b)
        out = np.sign(total)
        # the float64 sum's rounding (n products, n − 1 sums) is under 2⁻⁵⁰ of Σ|aᵢ·bᵢ| for
        # n ≤ 4; underflowing products add at most n·2⁻¹⁰⁷⁵ (2⁻¹⁰²⁰: as the compiled one's)
        unsure = ~(np.abs(total) > 2.0**-50 * len(pairs) / 4 * size + 2.0**-1020) & np.isfinite(size)
    for i in np.flatnonzero(unsure):
        exact = sum((Fraction(float(a[i])) * Fraction(float(b[i])) for a, b in pairs),
                    Fraction(0))
        out[i] = float((exact > 0) - (exact < 0))
    return out.reshape(shape)


def prod_err(a: Array, b: Array) -> Array:
    """``a·b − fl(a·b)`` exactly (Dekker), 0 where it is not finite: a function of a product
    of two inputs, ``f(a·b)``, is corrected to first order, ``f(p) + f′(p)·err``, where ``f``
    amplifies the product's rounding (``softplus(−y·z)`` with ``y·z`` ≈ 700: 450 ulp).

    >>> import numpy as np
    >>> float(prod_err(np.float64(0.1), np.float64(3.0)))  # 0.1·3 = 0.3000000000000000166…
    -2.7755575615628914e-17
    """
    from .ddouble import two_prod

    with np.errstate(invalid="ignore", over="ignore"):
        e = two_prod(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))[1]
        return np.where(np.abs(e) < np.inf, e, 0.0)
