"""sigmoid_focal_loss's soft-label float64 tiers (:func:`symloss._fastmath.soft_modulated_slope_q`
and :func:`~symloss._fastmath.soft_modulated_curvature_q`) decide by Ziv's test from finer
parts: they answer nearly every soft label, also where the bracket cancels (main sent those to
the double-double form: 8.3 % of uniform soft labels for the gradient, ~170 ns each), and what
they answer is the exact value rounded -- the double-double pair's bits, the NumPy evaluator's.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import symloss
from symloss import fast

pytest.importorskip("numba")


def _tiers():
    from numba import njit

    from symloss._fastmath import soft_modulated_curvature_q, soft_modulated_slope_q

    @njit
    def run(order, z, y, g, sh, size):
        out = np.empty_like(z)
        for i in range(z.size):
            if order == 1:
                out[i] = soft_modulated_slope_q(z[i], y[i], g, (sh, 0.0), size)
            else:
                out[i] = soft_modulated_curvature_q(z[i], y[i], g, (sh, 0.0), size)
        return out

    return run


def _exact(z: float, y: float, g: float, order: int, scale: float) -> mpmath.mpf:
    """``S·dⁿ/dzⁿ[Q^γ·C]`` at 300 bits from the product rule (Q = yσ(−z) + (1 − y)σ(z), C the
    cross-entropy)."""
    with mpmath.workprec(300):
        z, y, g = mpmath.mpf(z), mpmath.mpf(y), mpmath.mpf(g)
        a, b = 1 / (1 + mpmath.exp(-z)), 1 / (1 + mpmath.exp(z))
        q = y * b + (1 - y) * a
        c = y * mpmath.log1p(mpmath.exp(-z)) + (1 - y) * mpmath.log1p(mpmath.exp(z))
        q1 = (1 - 2 * y) * a * b
        q2 = q1 * (b - a)
        if order == 1:
            v = g * q ** (g - 1) * q1 * c + q**g * (a - y)
        else:
            v = (g * (g - 1) * q ** (g - 2) * q1**2 * c + g * q ** (g - 1) * q2 * c
                 + 2 * g * q ** (g - 1) * q1 * (a - y) + q**g * a * b)
        return scale * v


def _cancelling(n: int, g: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft labels y and z where the gradient's bracket γ(1 − 2y)·C·σ(z)σ(−z) + Q·(σ(z) − y)
    keeps between 2⁻⁹ and 2⁻⁵ of its terms' magnitude (the first tier on main declined below
    2⁻⁴), found next to its roots; and that share."""
    rng = np.random.default_rng(seed)
    zs, ys, shares = [], [], []
    while len(zs) < n:
        y = float(rng.uniform(0.02, 0.98))
        with mpmath.workprec(200):
            root = float(mpmath.findroot(lambda t, y=y: _exact(t, y, g, 1, 1),
                                         np.log(y / (1 - y))))
        for step in 2.0 ** rng.uniform(-9, -5, 3) * rng.choice([-1, 1], 3):
            z = root + float(step)
            with mpmath.workprec(200):
                zm, ym = mpmath.mpf(z), mpmath.mpf(y)
                a, b = 1 / (1 + mpmath.exp(-zm)), 1 / (1 + mpmath.exp(zm))
                q = ym * b + (1 - ym) * a
                c = ym * mpmath.log1p(mpmath.exp(-zm)) + (1 - ym) * mpmath.log1p(mpmath.exp(zm))
                u = g * (1 - 2 * ym) * c * a * b
                share = abs(u + q * (a - ym)) / (abs(u) + q * (a + ym))
            if 2.0**-9 <= share <= 2.0**-5:
                zs.append(z)
                ys.append(y)
                shares.append(float(share))
    return np.array(zs[:n]), np.array(ys[:n]), np.array(shares[:n])


@pytest.mark.parametrize("g", [2.0, 0.5, 5.0])
def test_soft_slope_tier_answers_where_its_bracket_cancels_with_the_rounded_exact_value(g):
    """Where the bracket keeps 2⁻⁹ … 2⁻⁵ of its terms (next to its roots) the gradient's tier
    answers nearly every element (main: none, NaN below 2⁻⁴) and each answer is mpmath's value
    rounded to nearest."""
    z, y, _ = _cancelling(60, g, seed=int(g * 10))
    got = _tiers()(1, z, y, g, 0.25, 3.0)
    answered = ~np.isnan(got)
    assert answered.mean() >= 0.9, answered.mean()
    for zi, yi, gi in zip(z[answered], y[answered], got[answered], strict=True):
        assert gi == float(_exact(zi, yi, g, 1, 0.25)), (zi, yi)


@pytest.mark.parametrize("order", [1, 2])
def test_soft_tiers_answer_nearly_every_uniform_soft_label(order):
    """At the benchmark's inputs (z ~ N(0, 9), y uniform in (0, 1), γ = 2, α = 0.25) the tier
    leaves at most 0.5 % of the elements to the double-double form (main: 8.3 % of the
    gradient's, 6.0 % of the Hessian's), and a sample of its answers are mpmath's values rounded
    to nearest."""
    rng = np.random.default_rng(8)
    z = rng.standard_normal(200_000) * 3
    y = rng.uniform(0, 1, z.size)
    got = _tiers()(order, z, y, 2.0, 0.25, 3.0)
    declined = np.isnan(got).mean()
    assert declined <= 0.005, declined
    for i in rng.choice(np.flatnonzero(~np.isnan(got)), 40, replace=False):
        assert got[i] == float(_exact(z[i], y[i], 2.0, order, 0.25)), (z[i], y[i])


def test_log1p_pair_fine_within_its_bound():
    """_fastmath.log1p_pair_fine: log1p(E) for E = e^(−x) (exp_pair_fine's pair) within
    2⁻⁷¹ + 2⁻¹⁰⁰ of mpmath's (absolute), from x = 0 to 600; within 2⁻⁵² of it where E is tiny.
    (log1p_pair, the first tier's, is within 2⁻⁶⁰ relative: up to ~2⁻⁶¹ absolute.)"""
    from numba import njit

    from symloss._fastmath import exp_pair_fine, log1p_pair_fine

    @njit
    def pairs(x):
        out = np.empty((4, x.size))
        for i in range(x.size):
            eh, el = exp_pair_fine(-x[i])
            out[0, i], out[1, i] = eh, el
            out[2, i], out[3, i] = log1p_pair_fine(eh, el)
        return out

    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(0, 40, 300), rng.uniform(0, 600, 100), [0.0, 36.7, 37.5, 600.0],
                        rng.uniform(0, 1e-3, 50)])
    p = pairs(x)
    with mpmath.workprec(300):
        for i in range(x.size):
            e = mpmath.mpf(p[0, i]) + mpmath.mpf(p[1, i])
            want = mpmath.log1p(e)
            got = mpmath.mpf(p[2, i]) + mpmath.mpf(p[3, i])
            assert abs(got - want) <= 2.0**-71 + 2.0**-100 * want, x[i]
            assert abs(got - want) <= 2.0**-52 * want, x[i]


@pytest.mark.parametrize("options", [{}, {"gamma": 0.5}, {"alpha": -1.0}, {"gamma": 5.0,
                                                                           "alpha": 0.9}])
def test_focal_soft_float64_evaluators_give_the_same_bits(options):
    """Soft labels, float64, reduction='sum': the numba kernels' gradient and Hessian (their
    tiers answer with the rounded exact value; the rest double-double, rounded once) and the
    NumPy evaluator's (double-double, rounded once) are the same floats at random labels and
    next to the gradient's roots. On main the tier rounded a pair within 0.72 ulp: some
    elements were an ulp off the NumPy evaluator's."""
    d = symloss.derive("sigmoid_focal_loss", reduction="sum", **options)
    rng = np.random.default_rng(12)
    y = rng.uniform(0, 1, 20_000)
    z = np.concatenate([rng.standard_normal(10_000) * 3,
                        np.log(y[10_000:] / (1 - y[10_000:])) + rng.uniform(-1, 1, 10_000)])
    ones = np.ones_like(z)
    got = np.asarray(d.grad_fn(z, y)), np.asarray(d.hvp_fn(z, y, ones))
    assert fast.build(d) is not None
    with fast.disabled():
        want = np.asarray(d.grad_fn(z, y)), np.asarray(d.hvp_fn(z, y, ones))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_soft_pass_drops_the_zero_weight_guards_its_labels_rule_out():
    """The soft pass runs where the target is neither 0 nor 1, so a product's guard against
    0·softplus(±∞) on the weight y or 1 − y is never taken there: the float32 gradient's and
    Hessian's soft passes have no such branch (it kept LLVM from vectorizing them: float32
    soft gradient 16.9 -> 12.2 ns an element), and give the NumPy evaluator's values within
    an ulp, also at labels next to 0 and 1 and large |z| (where softplus(±z) is large)."""
    d = symloss.derive("sigmoid_focal_loss", reduction="sum")
    source = fast._generate(d)["source"]
    kernels = {k.split("(")[0]: k for k in source.split("\ndef ")}
    soft = kernels["grad_v"].split("nb += 1 if (x1 != 0.0) & (x1 != 1.0)", 1)[1]
    assert "if x1 != 0.0:" not in soft and "if 1 - x1 != 0.0:" not in soft
    assert "if x1 != 0.0:" in kernels["loss_v"]  # a hard label still takes the guard
    rng = np.random.default_rng(31)
    z = np.concatenate([rng.standard_normal(3000) * 3, rng.uniform(-100, 100, 200)])
    y = rng.uniform(0, 1, z.size)
    y[:50], y[50:100] = 2.0**-24, 1 - 2.0**-24
    for dtype in (np.float32, np.float64):
        zz, yy = z.astype(dtype), y.astype(dtype)
        _within_an_ulp_of_numpy(d, zz, yy)


def test_powi_is_pow_at_whole_exponents():
    """powi_w (the soft pass's x**c for a whole per-call c in 0 … 7) is C's pow on the special
    values and within 7·2⁻⁵³ of x**c elsewhere (mpmath); powi_ok takes exactly those c."""
    from numba import njit

    from symloss._fastmath import powi_ok, powi_w

    @njit
    def run(x, c):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = powi_w(x[i], c)
        return out

    @njit
    def ok(c):
        return powi_ok(c)

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(0, 1, 300), np.exp(rng.uniform(-80, 80, 300)),
                        -rng.uniform(0, 3, 100)])
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0])
    for c in range(8):
        got = run(x, float(c))
        with mpmath.workprec(200):
            want = np.array([float(mpmath.mpf(float(v)) ** c) for v in x])
        assert np.max(np.abs(got - want) / np.abs(want)) <= 7 * 2.0**-53, c
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(run(special, float(c)), np.power(special, float(c)))
    assert [ok(c) for c in (0.0, 1.0, 2.0, 7.0)] == [True] * 4
    assert [ok(c) for c in (-1.0, 0.5, 2.5, 8.0, np.inf, np.nan)] == [False] * 6


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 3.0, 7.0, 2.5])
def test_soft_pass_takes_whole_gammas_without_pow(gamma):
    """The float32 soft pass prints its loop twice: (1 − p_t)^γ by powi_w where the per-call γ
    is a whole number 0 … 7 (chosen once per block; pow_w's log and exp were half the loop's
    time at γ = 2), by pow_w else; both give the NumPy evaluator's values within an ulp. (At
    γ = 0 the derivation drops the factor: no power is left.)"""
    d = symloss.derive("sigmoid_focal_loss", reduction="sum", gamma=gamma)
    source = fast._generate(d)["source"] + fast.build(d)._hvp_source()
    kernels = {k.split("(")[0]: k for k in source.split("\ndef ")}
    for name in ("grad_v", "hvp_v"):
        soft = kernels[name].split("nb += 1 if (x1 != 0.0) & (x1 != 1.0)", 1)[1]
        powers = ("if powi_ok(c0):" in soft, "powi_w(" in soft, "pow_w(" in soft)
        assert powers == ((False,) * 3 if gamma == 0 else (True,) * 3), name
    rng = np.random.default_rng(32)
    z = np.concatenate([rng.standard_normal(6000) * 3, rng.uniform(-100, 100, 200)])
    y = rng.uniform(0, 1, z.size)
    zz, yy = z.astype(np.float32), y.astype(np.float32)
    _within_an_ulp_of_numpy(d, zz, yy)


def _within_an_ulp_of_numpy(d, z, y):
    """``d``'s gradient and hvp (direction 1) at ``(z, y)`` from the numba kernels within an ulp
    of the NumPy evaluator's."""
    got = np.asarray(d.grad_fn(z, y)), np.asarray(d.hvp_fn(z, y, np.ones_like(z)))
    with fast.disabled():
        want = np.asarray(d.grad_fn(z, y)), np.asarray(d.hvp_fn(z, y, np.ones_like(z)))
    for g, w in zip(got, want, strict=True):
        gap = np.abs(g.astype(np.float64) - w) / np.spacing(np.abs(w)).astype(np.float64)
        assert gap.max() <= 1.0, gap.max()
