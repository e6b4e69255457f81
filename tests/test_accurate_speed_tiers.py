"""The float64 kernels of element-wise ``accurate(...)`` forms: their double-double loop runs
:func:`symloss._fastmath.vector_dd`'s pairs (vectorized, no calls), ``y·eᵃ`` is a pair product
(:func:`symloss.ddouble.t_xexp`, no double-double log), and an uncertified element still
reaches :mod:`symloss.exact`: the numba kernels agree with the NumPy evaluator within 1 ulp at
the forms' roots and at the ends of the float64 range."""

from __future__ import annotations

import re

import numpy as np
import pytest

import symloss
from symloss import fast
from symloss.testing import ulps_from_exact

pytest.importorskip("numba")


def _roots(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``z`` a few ulps from ``log y`` (where eᶻ = y: tweedie's and gamma's gradients cancel),
    ``y`` over many binades."""
    rng = np.random.default_rng(17)
    y = np.ldexp(rng.uniform(0.5, 1.0, n), rng.integers(-60, 60, n))
    z = np.log(y) + rng.integers(-4, 5, n) * np.spacing(np.log(y))
    return z, y


#: (loss, options, order, z, y): points where the pair is uncertified (symloss.exact answers)
#: or at the range ends (the worst points benchmarks/accuracy.py found), and random ones.
_EXTREMES = ([-708.3964185322646, -708.396, 343.4273342888053, 709.7, -745.0, 0.3, 1e-300],
             [2.2250738585072014e-308, 0.0, 0.001, 1e-300, 1e300, 1.0, 5e-324])
CASES = [
    ("tweedie_loss", {"power": 1.5}, "grad"),
    ("tweedie_loss", {"power": 1.5}, "hvp"),
    ("tweedie_loss", {"power": 1.5}, "loss"),
    ("tweedie_loss", {"power": 1.001}, "hvp"),
    ("gamma_loss", {}, "grad"),
    ("gamma_loss", {}, "loss"),
    ("log_cosh_loss", {}, "hvp"),
    ("poisson_nll_loss", {}, "loss"),
    ("pseudo_huber_loss", {}, "hvp"),
]


def _evaluate(d, order: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if order == "loss":
            return np.asarray(d.loss_fn(z, y))
        if order == "grad":
            return np.asarray(d.grad_fn(z, y))
        return np.asarray(d.hvp_fn(z, y, np.ones_like(z)))


@pytest.mark.parametrize("name, options, order", CASES)
def test_fast_agrees_with_numpy_within_one_ulp(name, options, order):
    d = symloss.derive(name, reduction="none", **options) if order == "loss" else symloss.derive(
        name, **options)
    z, y = _roots(400)
    rng = np.random.default_rng(3)
    z = np.concatenate([z, rng.standard_normal(200) * 5.0, _EXTREMES[0]])
    y = np.concatenate([y, np.abs(rng.standard_normal(200)), _EXTREMES[1]])
    got = _evaluate(d, order, z, y)
    with fast.disabled():
        want = _evaluate(d, order, z, y)
    assert not np.any(np.isnan(got) & ~np.isnan(want))  # an uncertified NaN reached exact
    both = np.isfinite(want)
    np.testing.assert_array_equal(got[~both], want[~both])  # inf, or NaN on both
    gap = np.abs(got[both] - want[both]) / np.spacing(np.maximum(np.abs(want[both]), 2.0**-1022))
    assert gap.max() <= 1.0, (z[both][gap.argmax()], y[both][gap.argmax()], gap.max())


@pytest.mark.parametrize("name, options, order", [
    ("tweedie_loss", {"power": 1.5}, "grad"), ("gamma_loss", {}, "grad"),
    ("log_cosh_loss", {}, "hvp"), ("pseudo_huber_loss", {}, "hvp")])
def test_double_double_loop_is_vectorizable(name, options, order):
    """The float64 kernel's loop over every element calls no compiled pair function (``dd_``: a
    call per operation, scalar: 1e6 tweedie gradients 233 ms, then ~20 vectorized) and no
    double-double log for ``y·eᵃ``: a first tier of pairs (``*_q_m``: tweedie's and gamma's
    exponentials, log_cosh's σσ; tweedie's gradient ~5 ms) or the vectorized pairs (``vd_``,
    inlined).
    The double-double form answers only what the tier declines, after it; uncertified elements
    are counted, so that the kernel's flag sends them to exact."""
    d = symloss.derive(name, **options)
    if order == "grad":
        source = fast._generate(d)["source"]
    else:
        source = fast.build(d)._hvp_source()
    kernel = source.split(f"def {order}_m(", 1)[1].split("\n\n\n", 1)[0]
    assert "t_log(" not in kernel
    if "if n_bad == 0:" in kernel:  # a first tier, then the declined elements
        every, declined = kernel.split("if n_bad == 0:", 1)
        assert re.search(r"\b\w+_q_m\(", every) and not re.search(r"\bdd_\w+\(", every)
        assert "n_nan > 0" in declined
    else:
        assert not re.search(r"\bdd_\w+\(", kernel)
        assert "n_dd > 0" in kernel


def _ulps(got: np.ndarray, exact: list) -> np.ndarray:
    """|got − exact| in ulps of the exact value (mpmath values), float64."""
    return ulps_from_exact(got, exact, np.float64)


def test_soft_modulated_curvature_tier_within_its_bound():
    """_fastmath.soft_modulated_curvature_q, S·d²/dz²[Q^γ·C] at a soft label y (Q = yσ(−z) +
    (1 − y)σ(z), C = y·softplus(−z) + (1 − y)·softplus(z)) rounded once from pairs, against
    mpmath (120 bits): random z (also |z| to 700, and next to 0, where Q″ = Q′·(σ(−z) − σ(z))
    vanishes) and y (labels next to 0, 1 and ½), γ = 0, ½, 1, 2, 3, 8, 9, scales of α. Where it
    answers it is the exact value rounded (Ziv's test); it answers all but a few of the
    elements whose four terms keep an eighth of their magnitude (|z| ≤ 30), and declines (NaN)
    at y outside (0, 1), γ > 8, a scale whose pair cancelled and a NaN."""
    import mpmath
    from numba import njit

    from symloss._fastmath import soft_modulated_curvature_q

    @njit
    def curvature(z, y, g, sh, sl, size):
        out = np.empty_like(z)
        for i in range(z.size):
            out[i] = soft_modulated_curvature_q(z[i], y[i], g, (sh, sl), size)
        return out

    mpmath.mp.prec = 120
    rng = np.random.default_rng(11)
    y = np.concatenate([rng.uniform(size=200), [1e-9, 1 - 2.0**-30, 0.5, 0.25, 2.0**-60],
                        rng.uniform(size=40), [0.0, 1.0, -0.5, 1.5, 0.3]])
    z = np.concatenate([rng.standard_normal(200) * 4, [3.0, -3.0, 0.1, 20.0, 30.0],
                        rng.standard_normal(40) * 1e-6, [1.0, 1.0, 1.0, 1.0, np.nan]])
    z[:20] = rng.uniform(-700, 700, 20)
    sig = lambda x: 1 / (1 + mpmath.exp(-x))  # noqa: E731
    sp_ = lambda x: mpmath.log1p(mpmath.exp(x))  # noqa: E731
    body = slice(0, z.size - 5)
    parts = []
    for zi, yi in zip(z[body], y[body], strict=True):
        zm, ym = mpmath.mpf(zi), mpmath.mpf(yi)
        a, b = sig(zm), sig(-zm)
        q = ym * b + (1 - ym) * a
        c = ym * sp_(-zm) + (1 - ym) * sp_(zm)
        parts.append((a, b, q, c, (1 - 2 * ym) * a * b, ym))
    visited = False
    for g in (0.0, 0.5, 1.0, 2.0, 3.0, 8.0, 9.0):
        for scale in (1.0, -0.25, 0.75):
            got = curvature(z, y, g, scale, 0.0, abs(scale))
            assert np.isnan(got[-5:]).all()
            answered = ~np.isnan(got[body])
            if g > 8.0:
                assert not answered.any()
                continue
            exact, share = [], []
            for a, b, q, c, d, ym in parts:
                terms = (g * (g - 1) * d**2 * c, g * q * d * (b - a) * c, 2 * g * q * d * (a - ym),
                         q**2 * a * b)
                weight = (abs(terms[0]) + g * q * abs(d) * c + 2 * g * q * abs(d) * (a + ym)
                          + terms[3])
                exact.append(scale * q ** (g - 2) * sum(terms))
                share.append(abs(sum(terms)) / weight)
            share = np.array([float(x) for x in share])
            assert _ulps(got[body][answered], [e for e, a in zip(exact, answered, strict=True)
                                               if a]).max() <= 0.5
            must = (np.abs(z[body]) <= 30.0) & (share >= 1 / 8)
            assert answered[must].mean() >= 0.97, (z[body][must & ~answered],
                                                   y[body][must & ~answered])
            visited |= bool((share < 1 / 32).any())
    assert visited  # a root of the four terms' sum was visited
    assert np.isnan(curvature(z[:5], y[:5], 2.0, 2.0**-35, 0.0, 1.0)).all()  # a cancelled scale


@pytest.mark.parametrize("options", [{}, {"gamma": 0.5}, {"alpha": -1.0}, {"gamma": 3.0}])
def test_focal_float64_soft_hessian_carries_the_soft_curvature_tier(options):
    """The soft labels' float64 hvp takes the certified first tier
    _fastmath.soft_modulated_curvature_q (found by algebra.soft_modulated_slope at order 2 from
    the derived form's shape), the double-double form only where it declines -- on main every
    soft label took the double-double form (1e6 elements, 1 thread: ~120 ms, torch ~50) -- and
    agrees with the NumPy evaluator within 1 ulp at random soft labels, next to 0, ½ and 1,
    and at |z| up to 700."""
    d = symloss.derive("sigmoid_focal_loss", **options)
    kernels = {k.split("(")[0]: k for k in fast.build(d)._hvp_source().split("\ndef ")}
    assert "soft_modulated_curvature_q_w(" in kernels["hvp_m"]
    rng = np.random.default_rng(23)
    z = np.concatenate([rng.standard_normal(600) * 4, rng.uniform(-700, 700, 60),
                        rng.standard_normal(40) * 1e-5])
    y = np.concatenate([rng.uniform(size=600), rng.uniform(size=60), rng.uniform(size=40)])
    y[:30], y[30:60], y[60:90] = 2.0**-40, 1 - 2.0**-40, 0.5
    v = rng.standard_normal(z.size)
    with np.errstate(all="ignore"):
        got = np.asarray(d.hvp_fn(z, y, v))
        with fast.disabled():
            want = np.asarray(d.hvp_fn(z, y, v))
    both = np.isfinite(want)
    np.testing.assert_array_equal(got[~both], want[~both])
    gap = np.abs(got[both] - want[both]) / np.spacing(np.maximum(np.abs(want[both]), 2.0**-1022))
    assert gap.max() <= 1.0, (z[both][gap.argmax()], y[both][gap.argmax()], gap.max())
