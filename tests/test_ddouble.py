"""symloss.ddouble's exponential: within 2⁻¹⁰⁴ of exact (mpmath, 60 digits) over the whole
clamped range [−800, 709.78], and the compiled twins bit for bit the NumPy form."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from symloss import ddouble as dd

LN2_N = math.log(2) / 256  # the reduction's step


def _arguments() -> np.ndarray:
    """Seeded arguments: uniform over the range, near 0 (expm1's relative accuracy), next to
    multiples of ln 2/256 and of ln 2/512 (where the reduction cancels, or where its table index
    changes), subnormal, and the ends of the range."""
    rng = np.random.default_rng(2026)
    n = 400
    steps = rng.integers(-295_000, 262_000, n)
    return np.concatenate([
        rng.uniform(-800.0, 709.78, n),
        rng.uniform(-1.0, 1.0, n),
        rng.uniform(-3 * LN2_N, 3 * LN2_N, n),  # the table's j = 0, ±1, ±2: u cancels most
        np.ldexp(rng.uniform(-1.0, 1.0, n), rng.integers(-1074, -1, n)),
        steps * LN2_N * (1.0 + rng.uniform(-4e-16, 4e-16, n)),
        (steps + 0.5) * LN2_N * (1.0 + rng.uniform(-4e-16, 4e-16, n)),
        [0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 709.782712893384, 709.78, 709.5,
         -800.0, -745.2, -708.4, LN2_N / 2, -LN2_N / 2, math.log(2) / 2, -math.log(2) / 2],
    ])


def _worst_relative(hi: np.ndarray, lo: np.ndarray, x: np.ndarray, exact) -> float:
    worst = mpmath.mpf(0)
    for h, g, v in zip(hi, lo, x, strict=True):
        want = exact(mpmath.mpf(float(v)))
        if abs(want) < mpmath.mpf(2) ** -960:  # the low part is subnormal: fewer bits
            continue
        worst = max(worst, abs((mpmath.mpf(float(h)) + mpmath.mpf(float(g)) - want) / want))
    return float(worst)


@pytest.mark.parametrize("name, exact", [("dd_exp", mpmath.exp), ("dd_expm1", mpmath.expm1)])
def test_exp_within_2_to_the_minus_104(name, exact):
    mpmath.mp.dps = 60
    x = _arguments()
    hi, lo = getattr(dd, name)(x)
    assert np.all(np.isfinite(hi)) and np.all(np.isfinite(lo))  # also e^709.78 − 1
    assert _worst_relative(hi, lo, x, exact) <= 2.0**-104


@pytest.mark.parametrize("name", ["dd_exp", "dd_expm1"])
def test_exp_compiled_bit_for_bit(name):
    pytest.importorskip("numba")
    x = np.concatenate([_arguments(), [np.nan, np.inf, -np.inf, 1e300, -1e300]])
    with np.errstate(all="ignore"):
        hi, lo = getattr(dd, name)(x)
    one = np.array([dd.jitted()[name](v) for v in x])
    np.testing.assert_array_equal(one[:, 0], hi)
    np.testing.assert_array_equal(one[:, 1], lo)


def test_exp_clamps_and_propagates_nan():
    with np.errstate(all="ignore"):
        hi, lo = dd.dd_exp(np.array([-np.inf, -1e4, np.inf, 1e4, np.nan]))
        big = float(dd.exp_sub(np.float64(710.0), np.float64(1.0)))
    assert list(hi[:2]) == [0.0, 0.0]  # e^−800 and below: 0
    assert hi[2] == hi[3] and 1.79e308 < hi[2] < np.inf  # clamped to log(float64 max)
    assert np.isnan(hi[4]) and np.isnan(lo[4])
    assert big == np.inf


@pytest.mark.parametrize("pair, f", [
    ("sigmoid_sub_pair", lambda z: 1 / (1 + mpmath.exp(-z))),
    ("exp_sub_pair", mpmath.exp)])
def test_differences_at_their_cancellation(pair, f):
    """``f(z) − y`` where ``y`` is ``f(z)`` rounded (the difference is below an ulp of y):
    the pair's error stays below 2⁻¹⁰³ f(z), on NumPy and bit for bit compiled."""
    mpmath.mp.dps = 60
    rng = np.random.default_rng(7)
    z = np.concatenate([rng.uniform(-30.0, 30.0, 300), rng.uniform(-1e-3, 1e-3, 100)])
    exact = [f(mpmath.mpf(float(v))) for v in z]
    y = np.array([float(e) for e in exact])
    hi, lo = getattr(dd, pair)(z, y)
    for h, g, e, b in zip(hi, lo, exact, y, strict=True):
        err = abs(mpmath.mpf(float(h)) + mpmath.mpf(float(g)) - (e - mpmath.mpf(float(b))))
        assert err <= 2.0**-103 * e
    pytest.importorskip("numba")
    one = np.array([dd.jitted()[pair](a, b) for a, b in zip(z, y, strict=True)])
    np.testing.assert_array_equal(one[:, 0], hi)
    np.testing.assert_array_equal(one[:, 1], lo)


@pytest.mark.parametrize("name", ["t_exp", "t_expm1", "t_sigmoid", "t_tanh"])
def test_pair_functions_compiled_bit_for_bit(name):
    """The pair functions built on the exponential (those without a libm call, whose NumPy
    and C versions may differ in the last bit), on pairs with a low part."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    hi = np.concatenate([rng.uniform(-700.0, 700.0, 200), rng.uniform(-1.0, 1.0, 200)])
    lo = hi * rng.uniform(-1.0, 1.0, hi.size) * 2.0**-54
    with np.errstate(all="ignore"):
        want = getattr(dd, name)((hi, lo))
    one = np.array([dd.jitted()[name]((a, b)) for a, b in zip(hi, lo, strict=True)])
    np.testing.assert_array_equal(one[:, 0], want[0])
    np.testing.assert_array_equal(one[:, 1], want[1])


def _xexp_arguments() -> tuple[np.ndarray, np.ndarray]:
    """``(y, a)`` for ``y·eᵃ``: ordinary sizes, and the ends where the pair product hands over
    to its scalings -- ``y`` subnormal, tiny, next to 2^±400 and huge; ``a`` past the
    float64 range of ``eᵃ`` (709.78, −745), next to ±1400 (the shift by ∓1024 ln 2) and
    beyond, with the result near 2¹⁰²⁴ and near 2⁻¹⁰²²."""
    rng = np.random.default_rng(17)
    n = 300
    y = np.concatenate([
        np.abs(rng.standard_normal(n)),
        np.ldexp(rng.uniform(0.5, 1.0, n), rng.integers(-1074, 1024, n)),
        np.ldexp(rng.uniform(0.5, 1.0, n), rng.integers(-1074, -1000, n)),
        np.ldexp(rng.uniform(0.5, 1.0, n), rng.integers(990, 1024, n)),
        np.ldexp(rng.uniform(0.5, 1.0, n), rng.integers(398, 403, n) * rng.choice([-1, 1], n)),
    ])
    a = np.concatenate([
        rng.standard_normal(n),
        # y·eᵃ spread over 2^±1100 whatever y is
        (rng.uniform(-1100.0, 1100.0, n) - np.log2(y[n:2 * n])) * math.log(2),
        rng.uniform(1390.0, 1460.0, n),
        rng.uniform(-1460.0, -1390.0, n),
        rng.uniform(-800.0, 800.0, n),
    ])
    # the result next to the largest float and to the smallest normal one
    near = np.concatenate([np.full(40, 1024.0), np.full(40, -1022.0)]) + rng.uniform(-1, 1, 80)
    yy = np.ldexp(rng.uniform(0.5, 1.0, 80), rng.integers(-1074, 1024, 80))
    return (np.concatenate([y, yy, [5e-324, 5e-324, 1.7976931348623157e308, 1.0, 2.0]]),
            np.concatenate([a, (near - np.log2(yy)) * math.log(2),
                            [1454.0, 1455.0, -1454.0, 709.782712893384, -745.2]]))


def test_xexp_within_2_to_the_minus_103():
    """``y·eᵃ`` as a pair product (no double-double log): within 2⁻¹⁰³ of exact wherever the
    result's low part is a normal number, inf past float64's largest and 0 below its
    subnormals; on NumPy, and bit for bit compiled (the scalar twins and the vectorized ones)."""
    mpmath.mp.dps = 60
    y, a = _xexp_arguments()
    lo_a = a * np.random.default_rng(5).uniform(-1.0, 1.0, a.size) * 2.0**-54
    with np.errstate(all="ignore"):
        hi, lo = dd.t_xexp((y, 0.0 * y), (a, lo_a))
    biggest = mpmath.mpf(1.7976931348623157e308) * (1 + mpmath.mpf(2) ** -54)
    for h, g, yv, av, al in zip(hi, lo, y, a, lo_a, strict=True):
        want = mpmath.mpf(float(yv)) * mpmath.exp(mpmath.mpf(float(av)) + mpmath.mpf(float(al)))
        if want >= biggest:
            assert h == np.inf, (yv, av)
        elif want < mpmath.mpf(2) ** -1076:
            assert h == 0.0, (yv, av)
        elif want >= mpmath.mpf(2) ** -960:
            got = mpmath.mpf(float(h)) + mpmath.mpf(float(g))
            assert abs(got - want) <= 2.0**-103 * want, (yv, av, float(abs(got / want - 1)))
    with np.errstate(all="ignore"):
        at = dd.t_xexp((np.array([0.0, 0.0, -1.0]), np.zeros(3)),
                       (np.array([800.0, 11343.7, 1.0]), np.zeros(3)))
    # 0 at y = 0, also past eᵃ's range (the pair (0, 0): a NaN low part sent tweedie's
    # gradient at power 1.999, z = −11355.1, y = 0 to its plain form, 2.78 ulp), NaN below
    assert list(at[0][:2]) == [0.0, 0.0] and list(at[1][:2]) == [0.0, 0.0]
    assert np.isnan(at[0][2])
    pytest.importorskip("numba")
    from symloss._fastmath import vector_dd

    for fn in (dd.jitted()["t_xexp"], vector_dd()["t_xexp"]):
        one = np.array([fn((b, 0.0), (c, d)) for b, c, d in zip(y, a, lo_a, strict=True)])
        np.testing.assert_array_equal(one[:, 0], hi)
        np.testing.assert_array_equal(one[:, 1], lo)
