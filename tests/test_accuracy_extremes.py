"""Hard-label gradients stay within 4 ulp of exact (mpmath) for every |z| up to 1e4."""

from __future__ import annotations

import contextlib

import mpmath
import numpy as np
import pytest
import sympy as sp

import symloss
from symloss import fast
from symloss.testing import ulps_from_exact


@pytest.fixture(autouse=True)
def _fast_at_every_size(monkeypatch):
    """These tests compare the two paths on small arrays: lift the fast path's size floor."""
    monkeypatch.setattr(fast, "MIN_SIZE", 0)


GRID = np.concatenate([-np.logspace(-8, 4, 241), [0.0], np.logspace(-8, 4, 241)])
PATHS = ["fast", "numpy"]


def _ulps(got: np.ndarray, exact: list, dtype: type) -> np.ndarray:
    return ulps_from_exact(np.ravel(got), exact, dtype)


def _grad(d, x, y, path):
    if path == "numpy":
        with fast.disabled():
            return d.grad_fn(x, y)
    return d.grad_fn(x, y)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label", [0.0, 1.0])
@pytest.mark.parametrize("name", ["bce_with_logits", "bce"])
def test_bernoulli_hard_label(name, label, dtype, path):
    mpmath.mp.dps = 60
    z = GRID.astype(dtype)
    d = symloss.derive(name, reduction="sum")
    got = _grad(d, z, np.full(z.shape, label, dtype), path)
    # exact: σ(z) − y, written as σ(z) for y = 0 and −σ(−z) for y = 1 (mpmath: no cancellation)
    exact = [1 / (1 + mpmath.exp(-mpmath.mpf(float(v)))) if label == 0.0
             else -1 / (1 + mpmath.exp(mpmath.mpf(float(v)))) for v in z]
    assert _ulps(got, exact, dtype).max() <= 4.0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", [0, 1])
def test_cross_entropy_hard_label(target, dtype, path):
    mpmath.mp.dps = 60
    rng = np.random.default_rng(7)
    c = 4
    x = np.zeros((GRID.size, c), dtype=dtype)
    x[:, 0] = GRID
    x[:, 2] = rng.standard_normal(GRID.size) * 3  # a typical competitor
    d = symloss.derive("ce", reduction="sum")
    got = _grad(d, x, np.full(GRID.size, target, np.int64), path)
    exact = []
    for row in x:
        e = [mpmath.exp(mpmath.mpf(float(v))) for v in row]
        total = mpmath.fsum(e)
        for i in range(c):
            if i == target:  # p_t − 1 = −Σ_{j≠t} e_j / Σ e_j, exact in mpmath
                exact.append(-mpmath.fsum(e[:i] + e[i + 1:]) / total)
            else:
                exact.append(e[i] / total)
    assert _ulps(got, exact, dtype).max() <= 4.0


# ---------------------------------------------------------------------------------------------
# Differences next to their roots (issue 8): double-double σ(z) − y and eᶻ − y, both paths.
CANCELLING = [  # (loss, input, target): points where the exact gradient is a near-cancellation
    ("bce_with_logits", 1e-9, 0.5),  # σ(z) − ½ ≈ z/4; float64 difference: 4.5e5 ulp before
    ("bce_with_logits", 6.9, 0.999),
    ("bce_with_logits", 6.906754778648553, 0.999),  # the float next to σ(z) = 0.999
    ("bce_with_logits", 0.5622011350067172, 0.6369616873214543),
    ("bce_with_logits", -700.0, 0.25),
    ("poisson_nll_loss", 1e-9, 1.0),  # eᶻ − 1 ≈ z: 2.4e5 ulp before
    ("poisson_nll_loss", -0.6931471805599453, 0.5),
    ("poisson_nll_loss", 709.7, 3.0),
]


def _exact_gradient(name: str, z: float, y: float):
    z, y = mpmath.mpf(z), mpmath.mpf(y)
    if name == "poisson_nll_loss":
        return mpmath.exp(z) - y
    return 1 / (1 + mpmath.exp(-z)) - y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "z", "y"), CANCELLING)
def test_differences_next_to_a_root_are_exact_on_both_paths(name, z, y, dtype):
    mpmath.mp.dps = 80
    d = symloss.derive(name, reduction="sum")
    x, t = np.array([z], dtype), np.array([y], dtype)
    exact = [_exact_gradient(name, float(x[0]), float(t[0]))]
    got = {path: _grad(d, x, t, path) for path in PATHS}
    if abs(exact[0]) > np.finfo(dtype).max:  # e^709.7 overflows float32: inf is the rounding
        assert all(np.isposinf(g[0]) for g in got.values())
        return
    for path in PATHS:
        assert _ulps(got[path], exact, dtype).max() <= 4, (path, got[path])
    # the two evaluators agree to 1 ulp
    assert abs(float(got["fast"][0]) - float(got["numpy"][0])) <= np.spacing(
        abs(dtype(got["numpy"][0])))


def test_ddouble_error_free_transforms_and_exp():
    from symloss import ddouble

    mpmath.mp.dps = 60
    rng = np.random.default_rng(8)
    a = rng.standard_normal(500) * 10.0 ** rng.uniform(-20, 20, 500)
    b = rng.standard_normal(500) * 10.0 ** rng.uniform(-20, 20, 500)
    s, e = ddouble.two_sum(a, b)
    p, f = ddouble.two_prod(a, b)
    for i in range(0, 500, 25):
        assert mpmath.mpf(a[i]) + mpmath.mpf(b[i]) == mpmath.mpf(s[i]) + mpmath.mpf(e[i])
        assert mpmath.mpf(a[i]) * mpmath.mpf(b[i]) == mpmath.mpf(p[i]) + mpmath.mpf(f[i])
    x = rng.uniform(-650, 700, 300)  # below e^−670 the low part is subnormal: fewer bits
    hi, lo = ddouble.dd_exp(x)
    worst = max(abs((mpmath.mpf(h) + mpmath.mpf(g)) / mpmath.exp(mpmath.mpf(v)) - 1)
                for h, g, v in zip(hi, lo, x, strict=True))
    assert worst < 2.0**-100  # double-double: about 106 bits


def test_ddouble_log_sub_next_to_its_root():
    """log x − z for z within 2 ulp of log x (a cancellation of 2⁻⁵⁰…2⁻⁶⁰⁺): within 1 ulp, at
    every binade, on arrays and compiled (bit for bit)."""
    pytest.importorskip("numba")
    from symloss import ddouble

    mpmath.mp.dps = 80
    rng = np.random.default_rng(13)
    x = np.concatenate([10.0 ** rng.uniform(-307, 307, 120), rng.uniform(0.5, 2.0, 120),
                        1 + rng.standard_normal(40) * 1e-6, [0.9127555772777217, 2.0, 1.0]])
    x = np.repeat(x, 5)
    z = np.log(x) + np.tile(np.arange(-2, 3), len(x) // 5) * np.spacing(np.abs(np.log(x)))
    got = ddouble.np_log_sub(x, z)
    for g, a, b in zip(got, x, z, strict=True):
        exact = mpmath.log(mpmath.mpf(a)) - mpmath.mpf(b)
        assert abs(mpmath.mpf(g) - exact) <= np.spacing(abs(float(exact))), (a, b, g, exact)
    compiled = ddouble.jitted()["log_sub"]
    np.testing.assert_array_equal(np.array([compiled(a, b) for a, b in zip(x, z, strict=True)]),
                                  got)
    edge = ddouble.np_log_sub(np.array([0.0, -1.0, np.inf, 1e-310, 1.0]),
                              np.array([1.0, 1.0, 1.0, 1.0, np.inf]))
    np.testing.assert_array_equal(edge, [-np.inf, np.nan, np.inf, np.log(1e-310) - 1.0, -np.inf])


def test_ddouble_inv_hypot1_cube_is_half_an_ulp():
    """(1 + ((a + b)/δ)²)^(−3/2), pseudo-Huber's Hessian: a + b taken exactly, within 1 ulp for
    |u| from 10⁻²⁰ to past 2³⁴¹ (0 there), on arrays and compiled (bit for bit)."""
    pytest.importorskip("numba")
    from symloss import ddouble

    mpmath.mp.dps = 80
    rng = np.random.default_rng(14)
    a = np.concatenate([rng.standard_normal(300) * 10.0 ** rng.uniform(-20, 110, 300),
                        [2154.434690031876, 1e300, np.inf, -np.inf]])
    b = np.concatenate([rng.standard_normal(300) * 10.0 ** rng.uniform(-20, 5, 300),
                        [-0.9127555772777217, 1.0, 1.0, 1.0]])
    compiled = ddouble.jitted()["inv_hypot1_cube"]
    for d in (1.0, 0.25, 3.0):
        with np.errstate(all="ignore"):
            got = ddouble.inv_hypot1_cube(a, b, d)
        one = np.array([compiled(x, y, d) for x, y in zip(a, b, strict=True)])
        np.testing.assert_array_equal(one, got)
        for x, y, g in zip(a, b, got, strict=True):
            u = (mpmath.mpf(float(x)) + mpmath.mpf(float(y))) / d if np.isfinite(x) else mpmath.inf
            exact = (1 + u * u) ** mpmath.mpf(-1.5)
            if exact < np.finfo(np.float64).tiny:
                assert g == 0 or abs(g) < np.finfo(np.float64).tiny
                continue
            assert abs(mpmath.mpf(float(g)) - exact) <= np.spacing(float(exact)), (x, y, d, g)


def test_ddouble_compiled_is_the_same_algorithm():
    pytest.importorskip("numba")
    from symloss import ddouble

    rng = np.random.default_rng(9)
    z = rng.uniform(-50, 50, 200)
    y = rng.random(200)
    compiled = ddouble.jitted()
    for name, arrays in (("sigmoid_sub", ddouble.sigmoid_sub), ("exp_sub", ddouble.exp_sub)):
        with np.errstate(all="ignore"):
            vec = arrays(z, y)
        one = np.array([compiled[name](a, b) for a, b in zip(z, y, strict=True)])
        np.testing.assert_array_equal(one, vec)  # bit for bit


# ---------------------------------------------------------------------------------------------
# Whole forms in double-double (primitives.accurate, softmax_sub; issue 8): points where the
# exact value crosses 0 and the float64 form was 10⁵–10²³ ulp off (benchmarks/accuracy.py's
# search, 2026-11-28), each within 4 ulp on both paths, on one element and on 4096 of them.
def _focal_d1(z, y, alpha=0.25, gamma=2.0):
    s, t = 1 / (1 + mpmath.exp(-z)), 1 / (1 + mpmath.exp(z))
    q, ce = y * t + (1 - y) * s, y * mpmath.log1p(mpmath.exp(-z)) + (1 - y) * mpmath.log1p(
        mpmath.exp(z))
    a = alpha * y + (1 - alpha) * (1 - y)
    return a, q, ce, s, t


def _exact_focal(order: int, alpha: float = 0.25, gamma: float = 2.0):
    def value(z, y):
        def f(u):
            a, q, ce, _, _ = _focal_d1(u, y, alpha, gamma)
            return (a if alpha >= 0 else 1) * ce * q**gamma
        return mpmath.diff(f, z, order)
    return value


def _exact_log_cosh(z, y):
    # log1p(2 sinh²(r/2)): mpmath's log(cosh r) rounds cosh r ≈ 1 + r²/2 at the working precision
    return mpmath.log1p(2 * mpmath.sinh((z - y) / 2) ** 2)


def _exact_pseudo_huber_h(delta: float = 1.0):
    return lambda z, y: (1 + ((z - y) / delta) ** 2) ** mpmath.mpf(-1.5)


ACCURATE = [  # (loss, options, order, input, target, exact(z, y) with mpmath numbers)
    ("kl_div", {}, 0, -1.310123581180606, 0.2697867137638703,  # 1.55e14 ulp before
     lambda z, y: y * (mpmath.log(y) - z)),
    # z the float nearest log y: log y − z is 2⁻⁶⁰ of it (5.15 ulp with a double-double log)
    ("kl_div", {}, 0, -0.09128714805397004, 0.9127555772777217,
     lambda z, y: y * (mpmath.log(y) - z)),
    ("kl_div", {}, 0, -69.07755278982137, 1e-30, lambda z, y: y * (mpmath.log(y) - z)),
    ("kl_div", {}, 0, 69.07755278982137, 1e30, lambda z, y: y * (mpmath.log(y) - z)),
    ("poisson_nll_loss", {}, 0, 0.8837950233937827, 2.738266731833165,  # 3.77e13
     lambda z, y: mpmath.exp(z) - y * z),
    ("sigmoid_focal_loss", {}, 1, 1.3339358121441816, 0.6369616873214543,  # 2.12e13
     _exact_focal(1)),
    ("sigmoid_focal_loss", {}, 0, 1.0000000000000006e-05, 0.2697867137638703, _exact_focal(0)),
    ("sigmoid_focal_loss", {}, 1, -32.24590545296398, 0.0, _exact_focal(1)),  # σ(−32)²: 38 ulp
    ("sigmoid_focal_loss", {"alpha": -1.0, "gamma": 0.5}, 2, 4.0, 0.0,  # next to the Hessian's
     _exact_focal(2, -1.0, 0.5)),                                        # root at z ≈ 4.02
    ("gamma_loss", {}, 0, -708.3959999999997, 0.5,  # 495 ulp (e^(a + log y))
     lambda z, y: z - mpmath.log(y) + y * mpmath.exp(-z) - 1),
    ("gamma_loss", {}, 2, -708.3959999999997, 0.5, lambda z, y: y * mpmath.exp(-z)),
    ("tweedie_loss", {}, 1, -0.00100050033358353, 0.999,  # 1.16e3
     lambda z, y: mpmath.exp(z / 2) - y * mpmath.exp(-z / 2)),
    ("sigmoid_focal_loss", {}, 2, 709.7820000000002, 0.01652763552852909,  # 4.06: terms within
     _exact_focal(2)),                                            # 2⁵⁴ of the subnormals
    # the soft gradient's σ(z) − y cancels by 2²² inside its pair, the sum of the gradient's
    # terms by 2³⁴ more: judged against |σ(z) − y| the pair passed, 5.49 ulp off
    ("sigmoid_focal_loss", {}, 1, 9.999999999999993e-07, 0.500000104764946, _exact_focal(1)),
    ("log_cosh_loss", {}, 2, 189.26072813699014, 0.01652763552852909,  # 183 (σ(−2r), r rounded)
     lambda z, y: 1 / mpmath.cosh(z - y) ** 2),
    # log cosh r ≈ r²/2 below terms ≈ |r| (264 ulp before): log1p(2 sinh²(r/2)) for |r| < 1
    ("log_cosh_loss", {}, 0, 1.7802454831873043e-10, 0.0, _exact_log_cosh),
    ("log_cosh_loss", {}, 0, 1e-20, -3e-21, _exact_log_cosh),
    ("log_cosh_loss", {}, 0, 0.3000000001, 0.3, _exact_log_cosh),  # r = 1e-10, z − y rounded
    ("log_cosh_loss", {}, 0, 0.9999999999999999, 0.0, _exact_log_cosh),  # either side of the
    ("log_cosh_loss", {}, 0, 1.0000000000000002, 0.0, _exact_log_cosh),  # switch at |r| = 1
    ("log_cosh_loss", {}, 0, -700.0, 20.5, _exact_log_cosh),
    # (1 + u²)^(−3/2) ≈ |u|⁻³ triples the rounding of r = z − y, u and hypot (5.55 ulp before)
    ("pseudo_huber_loss", {}, 2, 2154.434690031876, 0.9127555772777217, _exact_pseudo_huber_h()),
    ("pseudo_huber_loss", {}, 2, 2154.4346900318774, 0.9127555772777217, _exact_pseudo_huber_h()),
    ("pseudo_huber_loss", {"delta": 0.25}, 2, -3.7e7, 0.3, _exact_pseudo_huber_h(0.25)),
    ("pseudo_huber_loss", {"delta": 3.0}, 2, 3e19, -2.5, _exact_pseudo_huber_h(3.0)),  # |u| > 2⁶⁰
]


@pytest.mark.parametrize("size", [1, 4096])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "options", "order", "z", "y", "exact"), ACCURATE)
def test_double_double_forms_are_exact_next_to_roots(name, options, order, z, y, exact, dtype,
                                                     size):
    mpmath.mp.dps = 400  # mpmath.diff next to e^(−709) needs it (80 digits give 0)
    d = symloss.derive(name, reduction="none" if order == 0 else "sum", **options)
    x, t = np.full(size, z, dtype), np.full(size, y, dtype)
    v = np.ones(size, dtype)
    want = exact(mpmath.mpf(float(x[0])), mpmath.mpf(float(t[0])))
    calls = {0: lambda: d.loss_fn(x, t), 1: lambda: d.grad_fn(x, t), 2: lambda: d.hvp_fn(x, t, v)}
    got = {}
    for path in PATHS:
        if path == "numpy":
            with fast.disabled():
                got[path] = np.asarray(calls[order]())
        else:
            got[path] = np.asarray(calls[order]())
        if abs(want) > np.finfo(dtype).max:  # y e^708 overflows float32: inf is its rounding
            assert np.all(np.isposinf(got[path]))
            continue
        assert _ulps(got[path], [want] * size, dtype).max() <= 4, (path, got[path][:1], want)
    np.testing.assert_array_equal(got["fast"], got["numpy"])


@pytest.mark.parametrize("rows", [1, 2048])
@pytest.mark.parametrize("path", PATHS)
def test_cross_entropy_soft_target_equal_to_the_rounded_prediction(path, rows):
    """pᵢ Σy − yᵢ with y the float32 rounding of p (1.64e7 ulp before): softmax_sub."""
    mpmath.mp.dps = 80
    z = np.tile(np.array([[-18.321796, -5.8696485, 18.274763]], np.float32), (rows, 1))
    y = np.tile(np.array([[1.2773683e-16, 3.2674977e-11, 1.0]], np.float32), (rows, 1))
    d = symloss.derive("ce", reduction="sum")
    got = _grad(d, z, y, path)
    e = [mpmath.exp(mpmath.mpf(float(v))) for v in z[0]]
    total, mass = mpmath.fsum(e), mpmath.fsum(mpmath.mpf(float(v)) for v in y[0])
    exact = [e[i] / total * mass - mpmath.mpf(float(y[0, i])) for i in range(3)]
    assert _ulps(got, exact * rows, np.float32).max() <= 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_soft_targets_keep_the_double_double_digits(dtype):
    """Random rows whose soft target is the rounded softmax: float32 within 4 ulp; float64
    at double-double's floor (≈2⁻¹⁰⁴ of the terms), far from float64's 10²³ ulp."""
    mpmath.mp.dps = 80
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((12, 5)) * 10.0 ** rng.uniform(-2, 1.5, (12, 1))).astype(dtype)
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    y = (e / e.sum(axis=1, keepdims=True)).astype(dtype)
    d = symloss.derive("ce", reduction="sum")
    exact = []
    for zr, yr in zip(x, y, strict=True):
        ez = [mpmath.exp(mpmath.mpf(float(v))) for v in zr]
        total, mass = mpmath.fsum(ez), mpmath.fsum(mpmath.mpf(float(v)) for v in yr)
        exact += [ez[i] / total * mass - mpmath.mpf(float(yr[i])) for i in range(5)]
    got = {path: _grad(d, x, y, path) for path in PATHS}
    np.testing.assert_array_equal(got["fast"], got["numpy"])
    errors = _ulps(got["numpy"], exact, dtype)
    if dtype == np.float32:
        assert errors.max() <= 4
    else:
        terms = np.abs(y.astype(np.float64)).ravel()
        absolute = errors * np.array([np.spacing(abs(float(v))) for v in exact])
        assert np.all(absolute <= 2.0**-100 * np.maximum(terms, 1e-300))


def test_ddouble_pair_functions_match_mpmath():
    from symloss import ddouble as dd

    mpmath.mp.dps = 60
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.standard_normal(40) * 5, 10.0 ** rng.uniform(-20, 2, 40)
                        * rng.choice([-1.0, 1.0], 40)])
    ax = np.abs(x)
    m, ma = [mpmath.mpf(float(v)) for v in x], [mpmath.mpf(float(v)) for v in ax]
    cases = [(dd.t_exp, x, [mpmath.exp(v) for v in m]),
             (dd.t_expm1, x, [mpmath.expm1(v) for v in m]),
             (dd.t_sigmoid, x, [1 / (1 + mpmath.exp(-v)) for v in m]),
             (dd.t_softplus, x, [mpmath.log1p(mpmath.exp(v)) for v in m]),
             (dd.t_tanh, x, [mpmath.tanh(v) for v in m]),
             (dd.t_sinh, x, [mpmath.sinh(v) for v in m]),
             (dd.t_sqrt, ax, [mpmath.sqrt(v) for v in ma]),
             (dd.t_hypot1, x, [mpmath.sqrt(1 + v**2) for v in m]),
             (dd.t_log, ax, [mpmath.log(v) for v in ma]),
             (dd.t_log1p, ax, [mpmath.log1p(v) for v in ma])]
    with np.errstate(all="ignore"):
        for fn, arg, want in cases:
            hi, lo = fn(dd.t_lift(arg))
            for h, g, w in zip(hi, lo, want, strict=True):
                assert abs(mpmath.mpf(float(h)) + mpmath.mpf(float(g)) - w) <= 2.0**-100 * abs(w), fn


# ---------------------------------------------------------------------------------------------
# Float first, double-double where it cancels; kinks on the exact inputs' side; f(y·z) with the
# product's rounding corrected; xⁿ/cⁿ as (x/c)ⁿ.
def _both(call):
    with fast.disabled():
        slow = np.asarray(call())
    return {"fast": np.asarray(call()), "numpy": slow}


@pytest.mark.parametrize("size", [1, 4096])
def test_poisson_gradient_float_first_stays_exact_on_both_sides_of_the_switch(size):
    """eᶻ − y in float64 where kernels.fits1 vouches for it (within 3 ulp), in double-double
    elsewhere: within 3 ulp on either side of the switch (y from e^z/4 to 4e^z, and y at
    e^z/2 and 2e^z, the switch, ± a few parts in 2²⁰), on both evaluators."""
    mpmath.mp.dps = 60
    rng = np.random.default_rng(21)
    z = rng.uniform(-5, 5, 400)
    y = np.exp(z) * 2.0 ** rng.uniform(-2, 2, 400)
    edge = 2.0 ** rng.choice([-1.0, 1.0], 200) * (1.0 + rng.integers(-8, 9, 200) * 2.0 ** -22)
    y[:200] = np.exp(z[:200]) * edge
    d = symloss.derive("poisson_nll_loss", reduction="sum")
    reps = max(1, size // 400)
    zz, yy = np.tile(z, reps), np.tile(y, reps)
    exact = [mpmath.exp(mpmath.mpf(float(a))) - mpmath.mpf(float(b)) for a, b in zip(zz, yy,
                                                                                     strict=True)]
    for path, got in _both(lambda: d.grad_fn(zz, yy)).items():
        assert _ulps(got, exact, np.float64).max() <= 3.0, path


def test_float32_two_pass_kernel_recomputes_only_what_cancels():
    """A float32 kernel writes the float form branch-free and recomputes, with the tests, the
    elements whose float form cancels: scattered among others, over several blocks and a
    ragged last one, each is within 0.5 ulp (and a float32 rounding tie of the evaluators'
    exponentials apart, 1 ulp from the NumPy evaluator's)."""
    mpmath.mp.dps = 60
    rng = np.random.default_rng(23)
    n = 3 * fast.SOFT_BLOCK + 17
    z = rng.uniform(-5, 5, n).astype(np.float32)
    y = (np.exp(z.astype(np.float64)) * 2.0 ** rng.uniform(-3, 3, n)).astype(np.float32)
    near = rng.choice(n, 40, replace=False)  # e^z − y cancels by ~20 bits there
    y[near] = np.exp(z[near].astype(np.float64)).astype(np.float32)
    d = symloss.derive("poisson_nll_loss", reduction="sum")
    exact = [mpmath.exp(mpmath.mpf(float(a))) - mpmath.mpf(float(b)) for a, b in zip(z, y,
                                                                                     strict=True)]
    got = _both(lambda: d.grad_fn(z, y))
    for path in PATHS:
        assert _ulps(got[path], exact, np.float32).max() <= 0.51, path
    apart = np.abs(got["fast"].view(np.int32) - got["numpy"].view(np.int32))
    assert apart.max() <= 1 and np.all(apart[near] == 0)


def test_float64_two_pass_kernel_recomputes_only_what_cancels(rescued):
    """A float64 kernel with one float-first test (eᶻ − y) writes the float form branch-free,
    lists the elements it leaves NaN and recomputes them in double-double (gathered, without
    a branch), scattered back: scattered among others over several blocks and a ragged last
    one, each is within 3 ulp (fits1) and the cancelling ones (20 to 55 bits) within 0.5 ulp
    and bit for bit the NumPy evaluator's (those beyond 39 bits are recomputed exactly by
    symloss.exact); a NaN input stays NaN."""
    mpmath.mp.dps = 80
    rng = np.random.default_rng(29)
    n = 3 * fast.SOFT_BLOCK + 17
    z = rng.uniform(-5, 5, n)
    y = np.exp(z) * 2.0 ** rng.uniform(-3, 3, n)
    near = rng.choice(n, 60, replace=False)
    y[near] = np.exp(z[near]) * (1.0 + rng.uniform(-1, 1, 60) * 2.0 ** -rng.integers(20, 50, 60))
    z[near[0]], y[near[0]] = 0.6931471805599453, 2.0  # 55 bits cancel: symloss.exact
    z[near[1]] = np.nan
    d = symloss.derive("poisson_nll_loss", reduction="sum")
    exact = [mpmath.exp(mpmath.mpf(float(a))) - mpmath.mpf(float(b)) if a == a else mpmath.nan
             for a, b in zip(z, y, strict=True)]
    got = _both(lambda: d.grad_fn(z, y))
    finite = np.isfinite(z)
    for path in PATHS:
        assert np.isnan(got[path][near[1]]), path
        ulps = _ulps(got[path][finite], [e for e, f in zip(exact, finite, strict=True) if f],
                     np.float64)
        assert ulps.max() <= 3.0, path
        assert _ulps(got[path][near[2:]], [exact[j] for j in near[2:]], np.float64).max() <= 0.5
        assert float(got[path][near[0]]) == float(exact[near[0]]), path
    np.testing.assert_array_equal(got["fast"][near], got["numpy"][near])
    # the NaN input and the uncertified elements (beyond 39 bits), the same on each path
    assert len(rescued) == 2 and rescued[0] == rescued[1] >= 2


@pytest.mark.parametrize(("name", "beta"), [("huber_loss", "delta"), ("smooth_l1_loss", "beta")])
def test_kink_is_decided_on_the_exact_inputs(name, beta):
    """|z − y| = 0.99999999999999999913… < 1 for z = −0.001, y = 0.999, though z − y rounds to
    −1: the Hessian is 1/β there (it was 0), and 0 just past the kink."""
    d = symloss.derive(name, reduction="sum", **{beta: 1.0})
    z = np.array([-0.001, 0.001, 1.0 + 2.0**-52, -3.0])
    y = np.array([0.999, -0.999, 0.0, -1.5])
    v = np.array([1.0, 2.0, 3.0, 4.0])
    for path, got in _both(lambda: d.hvp_fn(z, y, v)).items():
        np.testing.assert_array_equal(got, [1.0, 2.0, 0.0, 0.0], err_msg=path)


def test_exact_comparison_signs_match_mpmath():
    from symloss import kernels

    pytest.importorskip("numba")
    from symloss._fastmath import cmp_abs_sum, cmp_sum

    mpmath.mp.dps = 60
    rng = np.random.default_rng(22)
    a = rng.standard_normal(300) * 10.0 ** rng.integers(-3, 3, 300)
    s = rng.standard_normal(300)
    b = s - a  # a + b rounds to s or next to it: the ties are the cases that matter
    for fn, scalar, absolute in ((kernels.cmp_sum, cmp_sum, False),
                                 (kernels.cmp_abs_sum, cmp_abs_sum, True)):
        t = np.abs(s) if absolute else s
        got = fn(a, b, t)
        for i in range(300):
            x = mpmath.mpf(float(a[i])) + mpmath.mpf(float(b[i]))
            x = abs(x) if absolute else x
            want = float(mpmath.sign(x - mpmath.mpf(float(t[i]))))
            assert got[i] == want == scalar(a[i], b[i], t[i]), (fn, i)


def test_function_of_a_product_is_corrected_by_its_rounding():
    """softplus(−y·z) at y·z ≈ 576: the rounding of y·z was 438 ulp of the loss."""
    mpmath.mp.dps = 60
    z, y = np.array([708.3959999999997]), np.array([0.8132702392002724])
    d = symloss.derive("soft_margin_loss", reduction="none")
    g = symloss.derive("soft_margin_loss", reduction="sum")
    u = -mpmath.mpf(float(y[0])) * mpmath.mpf(float(z[0]))
    loss = mpmath.log1p(mpmath.exp(u))
    grad = -mpmath.mpf(float(y[0])) / (1 + mpmath.exp(-u))
    for path, got in _both(lambda: d.loss_fn(z, y)).items():
        assert _ulps(got, [loss], np.float64).max() <= 1, path
    for path, got in _both(lambda: g.grad_fn(z, y)).items():
        assert _ulps(got, [grad], np.float64).max() <= 2, path


def test_bce_hessian_stays_normal_where_its_numerator_underflows():
    """((p − y)/c)² for p = 8.1e-165: 6.58e-305, where (p − y)² alone is subnormal (it was 0)."""
    mpmath.mp.dps = 60
    p, y = np.array([8.111308307896826e-165]), np.array([0.0])
    d = symloss.derive("binary_cross_entropy", reduction="sum")
    c = mpmath.mpf(float(np.float32(1e-12)))
    want = (mpmath.mpf(float(p[0])) / c) ** 2
    for path, got in _both(lambda: d.hvp_fn(p, y, np.ones(1))).items():
        assert _ulps(got, [want], np.float64).max() <= 2, path


def _exact_bce_hessian(p: float, y: float, w: float) -> mpmath.mpf:
    """w ((p − y)² + y(1 − y))/max(p(1 − p), ε)², ε torch's float32 1e-12."""
    p_, y_ = mpmath.mpf(p), mpmath.mpf(y)
    c = max(p_ * (1 - p_), mpmath.mpf(float(np.float32(1e-12))))
    return mpmath.mpf(w) * ((p_ - y_) ** 2 + y_ * (1 - y_)) / c**2


def _bce_hessian_points() -> tuple[np.ndarray, np.ndarray]:
    """Seeded probabilities near 0, near 1 and in between, hard and soft targets, and the
    search's worst point of the float64 form (p = 0.99981, y = 1 − 2⁻⁵³)."""
    rng = np.random.default_rng(21)
    p = np.concatenate([rng.uniform(0, 1, 60), 1 - 10 ** rng.uniform(-16, -1, 60),
                        10 ** rng.uniform(-160, -1, 60), [0.9998126182577138, 0.0, 1.0]])
    y = np.concatenate([rng.uniform(0, 1, 90), (rng.uniform(size=90) < 0.5).astype(float),
                        [0.9999999999999999, 0.3, 0.3]])
    return p, y


def test_ddouble_bernoulli_curvature_is_half_an_ulp():
    """w((p − y)² + y(1 − y))/max(p(1 − p), ε)² from pairs, the weight inside the one rounding:
    within 0.6 ulp (the float64 form: 4.2 ulp with w = 1.91 at p = 0.99981), on arrays and
    compiled (bit for bit)."""
    pytest.importorskip("numba")
    from symloss import ddouble

    mpmath.mp.dps = 60
    p, y = _bce_hessian_points()
    eps = float(np.float32(1e-12))
    compiled = ddouble.jitted()["bernoulli_curvature"]
    for w in (1.0, 1.9127768278121948, 0.1):
        got = ddouble.bernoulli_curvature(p, y, eps, w)
        one = np.array([compiled(a, b, eps, w) for a, b in zip(p, y, strict=True)])
        np.testing.assert_array_equal(one, got)
        exact = [_exact_bce_hessian(a, b, w) for a, b in zip(p, y, strict=True)]
        assert _ulps(got, exact, np.float64).max() <= 0.6, w


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_bce_weighted_hessian_within_goal_on_both_evaluators(reduction):
    """binary_cross_entropy's hvp with a weight (the search's 1.91): was 4.21 ulp at
    p = 0.99981, y = 1 − 2⁻⁵³ (seven roundings of the float64 form, then the weight's); the
    pair form with the weight inside its rounding is within 1 ulp (2 with the mean's division),
    and the two evaluators agree bit for bit."""
    mpmath.mp.dps = 60
    p, y = _bce_hessian_points()
    w = 1.9127768278121948
    d = symloss.derive("binary_cross_entropy", reduction=reduction, weight=np.array([w]))
    n = mpmath.mpf(p.size if reduction == "mean" else 1)
    exact = [_exact_bce_hessian(a, b, w) / n for a, b in zip(p, y, strict=True)]
    got = _both(lambda: d.hvp_fn(p, y, np.ones_like(p)))
    for path, values in got.items():
        assert _ulps(values, exact, np.float64).max() <= (1.0 if reduction == "sum" else 2.0), path
    np.testing.assert_array_equal(got["fast"], got["numpy"])


@pytest.mark.parametrize("scale", ["huge", "tiny"])
def test_bce_hessian_at_extreme_weights_on_both_evaluators(scale):
    """binary_cross_entropy's weighted Hessian with |w| > 2⁹⁹⁶ (Dekker's split of w overflows:
    the pair's product was dropped for fl(w·hi), up to 1 ulp) or w·hi < 2⁻⁹⁶⁰ (the product's
    error not a normal number, not exact): ddouble.bernoulli_curvature scales w into range and
    back, so both evaluators -- the compiled one's exact products fused multiply-adds, the
    NumPy one's Dekker's -- round the exact product: within half an ulp and a few 2⁻¹⁰⁵ of
    mpmath (a result below the smallest normal number may flush to 0), bit for bit the same."""
    mpmath.mp.dps = 60
    rng = np.random.default_rng(23)
    p, y = _bce_hessian_points()
    p, y = np.tile(p, 4), np.tile(y, 4)
    sign = np.where(rng.random(p.size) < 0.5, -1.0, 1.0)
    if scale == "huge":  # the value finite (w·h below 2¹⁰²⁴) or not
        w = sign * 2.0 ** rng.uniform(996.01, 1023.99, p.size)
    else:  # the value normal or not, the product's error subnormal
        w = sign * 2.0 ** -rng.uniform(960.0, 1074.0, p.size)
    d = symloss.derive("binary_cross_entropy", reduction="sum", weight=w)
    got = _both(lambda: d.hvp_fn(p, y, np.ones_like(p)))
    np.testing.assert_array_equal(got["fast"], got["numpy"])
    exact = [_exact_bce_hessian(a, b, c) for a, b, c in zip(p, y, w, strict=True)]
    finite = np.array([abs(e) < np.finfo(np.float64).max for e in exact])
    assert finite.sum() > 100 and (scale == "tiny" or not finite.all())
    assert (np.isinf(got["fast"]) == ~finite).all()
    held = [e for e, f in zip(exact, finite, strict=True) if f]
    assert _ulps(got["fast"][finite], held, np.float64).max() <= 0.5 + 2.0**-20


def test_bce_hessian_where_its_value_is_tiny_on_both_evaluators():
    """binary_cross_entropy's Hessian where y/c² and ((p − y)/c)² are tiny: y = p below 2⁻¹⁰⁰⁰
    (y/c subnormal, its product's error lost: 1469 ulp at y = p = 10⁻³²³), with weights from
    the float range's ends that make such a value normal (1.7e3 ulp; 0 for 1.6e-270 at y = 0,
    where ((p − y)/c)² underflowed), and p = y ∈ {0, 1} with w in (2⁹⁶⁰, 2⁹⁹⁶] (w·2⁶⁴
    overflowed: inf·0 was NaN on the compiled evaluator). ddouble.bernoulli_curvature scales
    the tiny value up and back: within half an ulp and a few 2⁻¹⁰⁵ of mpmath (a result below
    the smallest normal number may flush to 0), bit for bit the same on both evaluators and
    its compiled twin."""
    pytest.importorskip("numba")
    from symloss import ddouble

    mpmath.mp.dps = 60
    rng = np.random.default_rng(29)
    n = 60
    y = np.concatenate([2.0 ** -rng.uniform(1000, 1074, n), 2.0 ** -rng.uniform(990, 1074, n),
                        np.zeros(n), [0.0, 1.0, 0.0, 1.0]])
    p = np.concatenate([y[:n], 2.0 ** -rng.uniform(400, 1074, n),
                        2.0 ** -rng.uniform(140, 1074, n), [0.0, 1.0, 0.0, 1.0]])
    w = np.concatenate([np.ones(n), 2.0 ** rng.uniform(-60, 1023, 2 * n),
                        [2.0**990, 2.0**970, 1e300, 2.0**961]])
    d = symloss.derive("binary_cross_entropy", reduction="sum", weight=w)
    got = _both(lambda: d.hvp_fn(p, y, np.ones_like(p)))
    np.testing.assert_array_equal(got["fast"], got["numpy"])
    eps = float(np.float32(1e-12))
    compiled = ddouble.jitted()["bernoulli_curvature"]
    one = np.array([compiled(a, b, eps, c) for a, b, c in zip(p, y, w, strict=True)])
    exact = [_exact_bce_hessian(a, b, c) for a, b, c in zip(p, y, w, strict=True)]
    normal = np.array([abs(e) >= np.finfo(np.float64).tiny for e in exact])
    assert normal.sum() > 2 * n
    np.testing.assert_array_equal(one[normal], got["fast"][normal])  # (hvp_fn flushes the rest)
    assert _ulps(got["fast"], exact, np.float64).max() <= 0.5 + 2.0**-20


def test_hessian_of_a_product_argument_is_corrected_on_both_evaluators():
    """y²σ(−yz)σ(yz) at yz ≈ 646: the NumPy evaluator's common-subexpression pass took y·z out
    of both σ's and lost the correction (473 ulp)."""
    mpmath.mp.dps = 60
    z, y = np.array([708.3959999999996]), np.array([0.9127555772777217])
    d = symloss.derive("soft_margin_loss", reduction="sum")
    u = mpmath.mpf(float(y[0])) * mpmath.mpf(float(z[0]))
    want = mpmath.mpf(float(y[0])) ** 2 / ((1 + mpmath.exp(u)) * (1 + mpmath.exp(-u)))
    for path, got in _both(lambda: d.hvp_fn(z, y, np.ones(1))).items():
        assert _ulps(got, [want], np.float64).max() <= 2, path


#: gaussian_nll_loss's value where (z − y)² overflows though (z − y)²/σ² does not, and where
#: log σ²/2 and (z − y)²/(2σ²) cancel (the value crosses 0).
GAUSSIAN_POINTS = [
    (-1e200, -2.0, 1e200),
    (1e300, -1e300, 1e300),
    (-0.22599744073860456, 0.3771906632801799, 0.3147003514591191),
    (0.5, 0.5 + 0.6 ** 0.5 * 0.3, 0.3),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("z", "y", "var"), GAUSSIAN_POINTS)
def test_gaussian_nll_value_is_finite_and_accurate(z, y, var, path):
    mpmath.mp.dps = 60
    d = symloss.derive("gaussian_nll_loss", reduction="none")
    arrays = [np.array([t]) for t in (z, y, var)]
    if path == "numpy":
        with fast.disabled():
            got = d.loss_fn(*arrays)
            wrt_var = d.grad_fn(*arrays, wrt="var")
    else:
        got, wrt_var = d.loss_fn(*arrays), d.grad_fn(*arrays, wrt="var")
    zm, ym, vm = (mpmath.mpf(t) for t in (z, y, var))
    exact = mpmath.log(vm) / 2 + (zm - ym) ** 2 / (2 * vm)
    assert _ulps(got, [exact], np.float64).max() <= 4.0, (got, exact)
    # ∂/∂σ²: finite where the square overflows (it is a float64 difference, not exact at the
    # value's root, where it cancels by a few bits: not part of this check)
    assert np.all(np.isfinite(wrt_var))
    if abs(z - y) > 1e150:
        exact_var = 1 / (2 * vm) - (zm - ym) ** 2 / (2 * vm**2)
        assert _ulps(wrt_var, [exact_var], np.float64).max() <= 4.0, (wrt_var, exact_var)


# ---------------------------------------------------------------------------------------------
# What double-double cannot certify (more than 39 bits cancelled) is NaN from both evaluators,
# then exact: symloss.exact recomputes it with mpmath.
@pytest.fixture
def rescued(monkeypatch):
    """The number of elements each call handed to symloss.exact.rescue as NaN."""
    from symloss import evaluate, exact

    counts: list[int] = []

    def counting(derivation, layout, out, what, v=None):
        counts.append(int(np.isnan(out).sum()))
        return exact.rescue(derivation, layout, out, what, v)

    monkeypatch.setattr(evaluate, "rescue", counting)
    return counts


@pytest.mark.parametrize("size", [1, 4096])
@pytest.mark.parametrize(("name", "z", "y", "exact"), [
    ("gamma_loss", -0.00100050033358353, 0.999,  # 57 bits cancel: 1.64e3 ulp in double-double
     lambda z, y: 1 - y * mpmath.exp(-z)),
    ("poisson_nll_loss", 0.6931471805599453, 2.0,  # e^z next to y = 2: 55 bits cancel
     lambda z, y: mpmath.exp(z) - y),
    ("binary_cross_entropy_with_logits", 2.0, float(1 / (1 + np.exp(-2.0))),  # y = fl(σ(z))
     lambda z, y: 1 / (1 + mpmath.exp(-z)) - y),
])
def test_uncertified_elements_are_recomputed_exactly(rescued, name, z, y, exact, size):
    mpmath.mp.dps = 80
    d = symloss.derive(name, reduction="sum")
    x, t = np.full(size, z), np.full(size, y)
    want = exact(mpmath.mpf(z), mpmath.mpf(y))
    got = _both(lambda: d.grad_fn(x, t))
    assert rescued and all(c == size for c in rescued)  # every element, on both paths
    for path in PATHS:
        assert float(got[path][0]) == float(want), (path, got[path][0], want)
    np.testing.assert_array_equal(got["fast"], got["numpy"])


def test_random_inputs_need_no_rescue(rescued):
    rng = np.random.default_rng(24)
    z = rng.normal(size=5000) * 4
    for name, y in [("binary_cross_entropy_with_logits", rng.uniform(size=5000)),
                    ("poisson_nll_loss", rng.poisson(2.0, 5000).astype(np.float64)),
                    ("gamma_loss", rng.gamma(2.0, size=5000)),
                    ("sigmoid_focal_loss", rng.uniform(size=5000)),
                    ("sigmoid_focal_loss", (z > 0).astype(np.float64)),  # confident, right
                    ("sigmoid_focal_loss", (z < 0).astype(np.float64))]:  # confident, wrong
        d = symloss.derive(name)
        _both(lambda d=d, y=y: np.hstack([d.loss_fn(z * 5, y), d.grad_fn(z * 5, y)]))
        d = symloss.derive(name)
        _both(lambda d=d, y=y: np.hstack([d.grad_fn(z, y), d.hvp_fn(z, y, np.ones_like(z))]))
    assert rescued and not any(rescued)


def test_rescue_keeps_nan_inputs_nan(rescued):
    d = symloss.derive("gamma_loss", reduction="sum")
    for path, got in _both(lambda: d.grad_fn(np.array([np.nan, 0.0]), np.array([1.0, np.nan]))
                           ).items():
        assert np.isnan(got).all(), path


def test_certification_is_the_same_rule_on_both_evaluators():
    pytest.importorskip("numba")
    from symloss import ddouble
    from symloss._fastmath import certified

    m = np.array([1.0, 1.0, 1.0, 1.0, 0.0, np.inf, np.nan, 1e300, 1e-295, 1e-295, 1e-290])
    r = np.array([2.0**-39, 2.0**-40, 0.0, -(2.0**-45), 0.0, 1.0, 1.0, 1e260, 1e-300, 1e-310,
                  1e-300])
    vec = ddouble.certified(r, m)
    flags = [np.zeros(1, np.uint8) for _ in r]
    one = np.array([certified(a, b, f) for a, b, f in zip(r, m, flags, strict=True)])
    np.testing.assert_array_equal(vec, one)
    np.testing.assert_array_equal([f[0] for f in flags], np.isnan(one))  # NaN, flagged
    # an exact 0 of terms of size 1 is not certified (the pair cannot tell a root from a value
    # below its precision); of terms of size 0 it is
    np.testing.assert_array_equal(np.isnan(vec), [False, True, True, True, False, True, False,
                                                  True, True, True, False])


# multi_margin_loss's value next to a kink: margin − x_t + x_k cancels, and a class-index
# target's kernel summed every class and subtracted the target's own term (5 ulp at the
# search's worst point, 10¹⁵ ulp nearer the kink); each margin rounded once, the target's term 0.
def _exact_multi_margin(x, t, margin, p, weight):
    xs = [mpmath.mpf(float(v)) for v in x]
    w = mpmath.mpf(float(weight[t])) if weight is not None else 1
    return w * mpmath.fsum(max(0, margin - xs[t] + xs[k]) ** p
                           for k in range(len(xs)) if k != t) / len(xs)


@pytest.mark.parametrize("rows", [1, 2048])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{}, {"p": 2}, {"margin": 0.5},
                                     {"weight": np.array([0.3, 1.7, 2.1])}])
def test_multi_margin_value_next_to_a_kink(options, dtype, rows):
    mpmath.mp.dps = 60
    margin = options.get("margin", 1.0)
    rng = np.random.default_rng(31)
    points = [np.array([0.5055022658357778, -2.115615101571454, 1.3974144173607477])]
    for _ in range(12):  # x_0 − x_2 within 10⁻¹⁶ … 10⁻² of −margin: u_0 next to its kink
        x = rng.standard_normal(3)
        x[0] = x[2] - margin + rng.standard_normal() * 10.0 ** rng.uniform(-16, -2)
        points.append(x)
    weight = options.get("weight")
    d = symloss.derive("multi_margin_loss", reduction="none", **options)
    for x in points:
        xs, t = np.tile(x.astype(dtype), (rows, 1)), np.full(rows, 2)
        want = _exact_multi_margin(xs[0], 2, margin, options.get("p", 1),
                                   None if weight is None else weight.astype(dtype))
        got = _both(lambda: d.loss_fn(xs, t))  # noqa: B023
        for path in PATHS:
            assert _ulps(got[path][:1], [want], dtype).max() <= 4, (path, x, got[path][0], want)


def _certified_sites(expr):
    from symloss.primitives import accurate, exp_sub, log_sub, sigmoid_sub, softmax_sub

    return sp.sympify(expr).has(accurate, sigmoid_sub, exp_sub, log_sub, softmax_sub)


@pytest.mark.parametrize("name", [n for n in symloss.losses()
                                  if symloss.derive(n).spec.family != "rows"])
def test_every_certified_form_can_be_rescued(name):
    """Wherever an evaluator may leave NaN for symloss.exact (a double-double site), exact can
    evaluate that form: else the NaN would reach the user."""
    from symloss import exact
    from symloss.layout import forms

    d = symloss.derive(name)
    subst = d.declaration.substitute_definitions
    f = forms(d)
    cases = [("loss", True, f.loss), ("grad", True, f.grad_hard), ("grad", False, f.grad_soft),
             ("hvp", True, subst(d.hvp_expr)), ("hess", True, subst(d.hessian_diagonal))]
    symbols = d.declaration.symbols
    for what, hard, expr in cases:
        if not _certified_sites(expr):
            continue
        if d.spec.family == "class_axis":
            for c in range(3):
                e = exact.row_expression(d, what, hard, c, 3)
                assert e is not None, (name, what, hard, c)
                values = {s: 0.25 + 0.125 * n for n, s in enumerate(sorted(
                    e.atoms(sp.Indexed, sp.Symbol), key=str))}
                assert exact._evaluate(e, values) is not None, (name, what, hard, c)
        else:
            values = {s: 0.25 + 0.125 * n for n, s in enumerate(symbols.values())
                      if isinstance(s, sp.Symbol)}
            values[sp.Symbol("v", real=True)] = 1.0
            assert exact._evaluate(sp.sympify(expr), values) is not None, (name, what, hard)


@pytest.mark.parametrize(("head", "low", "high"), [(mpmath.exp, -30.0, 30.0),
                                                    (mpmath.log, 1e-6, 1e6)], ids=["exp", "log"])
def test_fits1_vouches_only_for_3_ulp_with_a_head_1_ulp_off(head, low, high):
    """kernels.fits1's proof, checked for eᶻ − y and log x − y: heads ``h`` up to 1 ulp from
    the exact ``H`` (the floats below and above H, not only the nearest: libm is not assumed
    within 0.5 ulp), targets ``y`` around the switch (``H/y`` near ½ and 2) and far from it;
    wherever the test passes, ``fl(h − y)`` is within 3 ulp of ``H − y``, and it passes for
    H/y outside [½·(1 − 2⁻¹⁸), 2·(1 + 2⁻¹⁸)]."""
    import math

    from symloss.kernels import fits1

    mpmath.mp.dps = 60
    rng = np.random.default_rng(31)
    z = rng.uniform(low, high, 3000)
    ratio = np.concatenate([2.0 ** rng.choice([-1.0, 1.0], 2000)
                            * (1.0 + rng.integers(-64, 65, 2000) * 2.0 ** -24),
                            2.0 ** rng.uniform(-3, 3, 1000)])
    passed = 0
    for zi, ri in zip(z.tolist(), ratio.tolist(), strict=True):
        exact_h = head(mpmath.mpf(zi))
        y = float(exact_h / ri)
        below = float(exact_h)
        below = below if mpmath.mpf(below) <= exact_h else float(np.nextafter(below, -np.inf))
        for h in (below, float(np.nextafter(below, np.inf))):  # both within 1 ulp of H
            p = np.float64(h) - np.float64(y)
            ok = bool(fits1(np.array([p]), np.array([abs(h) + abs(y)]))[0])
            exact = exact_h - mpmath.mpf(y)
            if ok:
                passed += 1
                assert abs(mpmath.mpf(float(p)) - exact) <= 3 * math.ulp(float(exact)), (zi, y, h)
            h_over_y = float(exact_h / mpmath.mpf(y))
            if not 0.5 * (1 - 2.0 ** -18) <= h_over_y <= 2.0 * (1 + 2.0 ** -18):
                assert ok, (zi, y, h)
    assert passed > 2500  # of 6000: the switch is tried from both sides


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_pos_weight_soft_target_at_the_root(dtype, path):
    """With pos_weight w₊ the soft-label gradient (1 − y)σ(z) − w₊yσ(−z) is 0 at
    σ(z) = w₊y/(1 + (w₊ − 1)y): the floats next to that root keep their digits (the float form
    of the two terms was ~1e15 ulp off there)."""
    mpmath.mp.dps = 60
    r = 3.0
    ys = np.array([0.1, 0.25, 0.5, 0.7, 0.9], dtype)
    roots = np.log(r * ys.astype(np.float64) / (1 - ys.astype(np.float64))).astype(dtype)
    steps = np.arange(-4, 5)
    z = np.concatenate([_walk(c, steps) for c in roots]).astype(dtype)
    y = np.repeat(ys, len(steps))
    d = symloss.derive("bce_with_logits", pos_weight=np.array([r], dtype), reduction="sum")
    got = _grad(d, z, y, path)
    exact = []
    for zv, yv in zip(z, y, strict=True):
        s = 1 / (1 + mpmath.exp(-mpmath.mpf(float(zv))))
        yv = mpmath.mpf(float(yv))
        exact.append((1 - yv) * s - r * yv * (1 - s))
    assert _ulps(got, exact, dtype).max() <= 4.0


def _walk(c, steps):
    """``c`` moved by each of ``steps`` floats (negative: down)."""
    out = []
    for k in steps:
        v = c
        for _ in range(abs(int(k))):
            v = np.nextafter(v, np.inf if k > 0 else -np.inf)
        out.append(v)
    return out


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_rate_input_gradient_at_the_root(dtype, path):
    """log_input=False: the gradient 1 − y/(z + ε) is 0 at z + ε = y; the floats next to it keep
    their digits (the float form was ~1e16 ulp off there)."""
    mpmath.mp.dps = 60
    eps = 1e-8
    ys = np.array([0.3, 1.0, 2.5, 7.0, 1e3], dtype)
    steps = np.arange(-4, 5)
    z = np.concatenate([_walk(dtype(float(c) - eps), steps) for c in ys]).astype(dtype)
    y = np.repeat(ys, len(steps))
    d = symloss.derive("poisson_nll_loss", log_input=False, reduction="sum")
    got = _grad(d, z, y, path)
    exact = [1 - mpmath.mpf(float(yv)) / (mpmath.mpf(float(zv)) + mpmath.mpf(eps))
             for zv, yv in zip(z, y, strict=True)]
    assert _ulps(got, exact, dtype).max() <= 4.0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("size", [1, 5000])
def test_tweedie_deviance_next_to_its_minimum_is_not_rounded_to_zero(size, path):
    """At μ = e^z = y the deviance's terms (about 1) cancel below double-double's precision:
    the pair is exactly 0, the exact value 1.9e-34 (z = log 0.5) or 5e-41 (z = 1e-20, y = 1),
    both normal float64 numbers that the exact path gives."""
    mpmath.mp.dps = 400
    z = np.resize(np.array([-0.6931471805599453, 1e-20, 1e-100]), size)
    y = np.resize(np.array([0.5, 1.0, 1.0]), size)
    d = symloss.derive("tweedie_loss", reduction="none")
    if path == "numpy":
        with fast.disabled():
            got = d.loss_fn(z, y)
    else:
        got = d.loss_fn(z, y)
    r = mpmath.mpf(1.5)
    exact = [mpmath.mpf(float(b)) ** (2 - r) / ((1 - r) * (2 - r))
             - mpmath.mpf(float(b)) * mpmath.exp((1 - r) * mpmath.mpf(float(a))) / (1 - r)
             + mpmath.exp((2 - r) * mpmath.mpf(float(a))) / (2 - r) for a, b in zip(z[:3], y[:3], strict=True)]
    assert _ulps(got[:3], exact, np.float64).max() <= 4.0


# ----------------------------------------------- class-axis losses at non-default options
_CE_W = np.array([0.3, 2.5, 1.7])


def _exact_ce_grad(z, target, weight, eps):
    """(Σₖ aₖ) pᵢ − aᵢ per row, aₖ = wₖ((1 − ε) yₖ + ε/C), exactly (mpmath, 80 digits): the
    gradient as pᵢ Σ_{k≠i} aₖ − aᵢ Σ_{j≠i} pⱼ, which does not cancel in 80 digits."""
    mpmath.mp.dps = 80
    out = []
    for r, zr in enumerate(z):
        c = len(zr)
        e = [mpmath.exp(mpmath.mpf(float(v))) for v in zr]
        d = mpmath.fsum(e)
        y = ([mpmath.mpf(int(k == target[r])) for k in range(c)] if np.ndim(target) == 1
             else [mpmath.mpf(float(v)) for v in target[r]])
        eps_ = mpmath.mpf(eps)
        w = [mpmath.mpf(1) if weight is None else mpmath.mpf(float(x)) for x in weight
             ] if weight is not None else [mpmath.mpf(1)] * c
        a = [w[k] * ((1 - eps_) * y[k] + eps_ / c) for k in range(c)]
        for i in range(c):
            rest_a = mpmath.fsum(a[:i] + a[i + 1:])
            rest_e = mpmath.fsum(e[:i] + e[i + 1:])
            out.append((e[i] * rest_a - a[i] * rest_e) / d)
    return out


_POINT_Z = [0.00387684008591394, 0.00521803515696733, 0.00427993672178043,
            -0.00880164623987077, 0.00457211414077412, 0.00126377636322075,
            0.00157691598297722, 0.00138139221635931, 0.00142429609638765,
            0.00118858763272867]
_POINT_Y = [0.10022742722179608, 0.10036194193824384, 0.1002678367044468,
            0.09896471669972436, 0.10029713698241455, 0.09996586845140021,
            0.09999717662709498, 0.09997762671376834, 0.09998191623388825,
            0.09995835242722251]
_MIXED = [-1.1010709888270147, 2.0631124574244604, 1.0542097772633436, 1.2250087186195784,
          1.691256717467241, 1.143493053401546, 1.2255110997919707, 0.10975376012963226,
          -2.0715215672575527, -0.19607090295709467]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("options", "z", "target", "dtype"), [
    # the variant search's worst points (5.3e7, 5.4e5, 5.8e3, 3.6e4 ulp before)
    ({"label_smoothing": 0.001}, [_POINT_Z], [_POINT_Y], np.float64),
    ({"label_smoothing": 0.1}, [_POINT_Z], [_POINT_Y], np.float64),
    ({"label_smoothing": 0.9}, [_POINT_Z], [_POINT_Y], np.float64),
    ({"label_smoothing": 0.999}, [_POINT_Z], [_POINT_Y], np.float64),
    ({"label_smoothing": 0.001}, [_MIXED],
     [[0.011662803, 0.27605167, 0.10065364, 0.119400606, 0.19032484, 0.11005372, 0.1194606,
       0.0391433, 0.004419179, 0.028829657]], np.float32),  # 49 ulp before (numba)
    # a class index with label smoothing: every aₖ > 0, and pₜ ≈ aₜ/Σa cancels (2.7e3 before)
    ({"label_smoothing": 0.999}, [[-2.8666715373610078e-04, 1.7555215011420885e-03,
                                   1.4638217888801731e-03, 7.0216810281903007e-04,
                                   -2.4429272046519426e-03, 5.7682063405276073e-05,
                                   7.5797054942304673e-04, 1.1130447235981169e-03,
                                   -6.8504432075398630e-04, 2.0199778388801759e-03]], [4],
     np.float64),
    ({"label_smoothing": 0.9}, [_MIXED], [4], np.float64),
    ({"label_smoothing": 0.001}, [[10.0, 0.0, 0.0]], [0], np.float64),
    # class weights (2.8e5 before), and with smoothing (82, 1.2e3, 5.9e3, 184 before)
    ({"weight": _CE_W}, [[14.424794851929759, 1.5009992983717377, -11.870700729585044]],
     [[9.999975606926556e-01, 2.439303542344688e-06, 3.801984225676113e-12]], np.float64),
    ({"weight": _CE_W, "label_smoothing": 0.1},
     [[-0.01822880139414807, -0.01354858828781839, -0.00787386286491807]],
     [[0.33166396700468426, 0.3332198631726964, 0.33511616982261927]], np.float64),
    ({"weight": _CE_W, "label_smoothing": 0.001},
     [[14.424794851929759, 1.5009992983717377, -11.870700729585044]],
     [[9.999975606926556e-01, 2.439303542344688e-06, 3.801984225676113e-12]], np.float64),
    ({"weight": _CE_W, "label_smoothing": 0.9}, [[0.01, 0.0, 0.0]], [0], np.float64),
    ({"weight": _CE_W, "label_smoothing": 0.999},
     [[0.15756144925858342, -0.16554996510205217, 0.8025590034309497]], [2], np.float64),
])
def test_cross_entropy_weighted_or_smoothed_gradient_next_to_its_root(options, z, target,
                                                                       dtype, path):
    """(Σₖ aₖ) pᵢ − aᵢ with class weights or label smoothing, at the points where it cancels:
    softmax_sub of the target weights aₖ (exact pairs), within 4 ulp on both evaluators."""
    z = np.array(z, dtype)
    target = np.array(target, np.int64) if np.ndim(target) == 1 else np.array(target, dtype)
    d = symloss.derive("cross_entropy", reduction="sum", **options)
    got = _grad(d, z, target, path)
    exact = _exact_ce_grad(z, target, options.get("weight"), options.get("label_smoothing", 0.0))
    assert _ulps(np.asarray(got), exact, dtype).max() <= 4


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_weighted_cross_entropy_hvp_scales_before_the_flush(name, path):
    """w·p₀(v₀ − v̄) at z₀ = −708.396: p₀(v₀ − v̄) is below the normal range but the product
    with the class weight is not (0 returned before: 6.2e15 ulp); the scale enters the pair
    before its one rounding."""
    mpmath.mp.dps = 80
    options = {"link": "log_softmax"} if name == "nll_loss" else {}
    d = symloss.derive(name, reduction="sum", weight=_CE_W, **options)
    z = np.array([[-708.396, 0.0, 0.0]])
    t = np.array([1])  # weight 2.5
    v = np.ones_like(z)
    v[0, 0] = 2.0
    e = [mpmath.exp(mpmath.mpf(float(x))) for x in z[0]]
    total = mpmath.fsum(e)
    p = [x / total for x in e]
    vbar = mpmath.fsum(pk * mpmath.mpf(float(vk)) for pk, vk in zip(p, v[0], strict=True))
    exact = [mpmath.mpf(float(_CE_W[1])) * p[i] * (mpmath.mpf(float(v[0, i])) - vbar)
             for i in range(3)]
    assert abs(float(exact[0])) > np.finfo(np.float64).tiny
    if path == "numpy":
        with fast.disabled():
            got = d.hvp_fn(z, t, v)
    else:
        got = d.hvp_fn(z, t, v)
    assert _ulps(np.asarray(got), exact, np.float64).max() <= 4


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_weighted_multilabel_soft_margin_hard_label_keeps_sigmoid_of_minus_x(reduction, path):
    """wᵢ(σ(xᵢ) − 1)/C at a hard label 1 is −wᵢσ(−xᵢ)/C: the weighted hard form is written per
    class (it was Σₖ δᵢₖ wₖ(…), evaluated as σ(x) − 1 = 0: 8.2e15 ulp before)."""
    mpmath.mp.dps = 80
    d = symloss.derive("multilabel_soft_margin_loss", reduction=reduction, weight=_CE_W)
    x = np.array([[103.972, 0.0, 0.0], [708.396, -3.0, 40.0]])
    y = np.ones_like(x)
    got = _grad(d, x, y, path)
    n = x.shape[0] if reduction == "mean" else 1
    exact = [-mpmath.mpf(float(_CE_W[k])) / (1 + mpmath.exp(mpmath.mpf(float(x[r, k])))) / 3 / n
             for r in range(2) for k in range(3)]
    assert _ulps(np.asarray(got), exact, np.float64).max() <= 4


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("weight", [None, _CE_W, [1.91277683, 2.70192003, 2.3494885]])
def test_label_smoothed_cross_entropy_value_keeps_one_minus_eps_a_factor(weight, path):
    """−(1 − ε) wₜ log pₜ − (ε/C) Σ wₖ log pₖ at ε = 0.999 and log p₀ ≈ −709: distributing
    1 − ε over a class index's term (ε wₜ log pₜ − wₜ log pₜ) cost 4.24 ulp before."""
    mpmath.mp.dps = 60
    options = {} if weight is None else {"weight": np.array(weight)}
    d = symloss.derive("cross_entropy", reduction="none", label_smoothing=0.999, **options)
    x = np.array([[-708.396, 0.0, 0.0], [-40.0, 3.0, 0.0]])
    t = np.array([0, 0])
    w = [mpmath.mpf(1)] * 3 if weight is None else [mpmath.mpf(float(v)) for v in weight]
    eps = mpmath.mpf(0.999)
    exact = []
    for r in range(2):
        e = [mpmath.exp(mpmath.mpf(float(v))) for v in x[r]]
        logp = [mpmath.log(v / mpmath.fsum(e)) for v in e]
        exact.append(-mpmath.fsum(w[k] * ((1 - eps) * (k == t[r]) + eps / 3) * logp[k]
                                  for k in range(3)))
    if path == "numpy":
        with fast.disabled():
            got = d.loss_fn(x, t)
    else:
        got = d.loss_fn(x, t)
    assert _ulps(np.asarray(got), exact, np.float64).max() <= 4


def test_exact_sign_of_a_sum_of_products_matches_fractions():
    """cmp_products (NumPy and numba): the sign of Σ aᵢ·bᵢ exactly, next to ties the float64
    sum rounds to 0 or to the wrong side, with products that do and do not round."""
    from fractions import Fraction

    from symloss import kernels

    pytest.importorskip("numba")
    from symloss._fastmath import cmp_products

    rng = np.random.default_rng(23)
    n = 400
    a = rng.standard_normal((n, 4)) * 10.0 ** rng.integers(-3, 4, (n, 4))
    b = rng.standard_normal((n, 4))
    b[: n // 2, 0] = 1.0  # a plain input as a product with 1
    a[:, 3] = -(a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2])  # a near-tie
    b[:, 3] = 1.0
    a[::7, 3] = np.nextafter(a[::7, 3], np.inf)
    args = [x for i in range(4) for x in (a[:, i], b[:, i])]
    got = kernels.cmp_products(*args)
    for i in range(n):
        exact = sum(Fraction(float(a[i, k])) * Fraction(float(b[i, k])) for k in range(4))
        want = float((exact > 0) - (exact < 0))
        assert got[i] == want == cmp_products(*(float(x[i]) for x in args)), i


def _exact_margin_ranking(z1, z2, y, margin):
    inner = mpmath.mpf(margin) - mpmath.mpf(float(y)) * (mpmath.mpf(float(z1)) - mpmath.mpf(float(z2)))
    return (inner if inner >= 0 else mpmath.mpf(0)), (-mpmath.mpf(float(y)) if inner >= 0 else 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("margin", [0.5, -1.0, 1000.0])
def test_margin_ranking_kink_is_decided_on_the_exact_inputs(margin, dtype):
    """max(0, margin − y(z₁ − z₂)) next to its kink: margin − y·(z₁ − z₂) rounds to 0 (or to
    the other side) where the exact value is ±1e-17; the gradient is −y or 0 as the exact
    inputs say (it was −y at every such point: 1.8e308 ulp), the value keeps its digits
    (4.5e15 ulp) on both evaluators (the search's points, and a seeded walk over the kink)."""
    mpmath.mp.dps = 60
    rng = np.random.default_rng(24)
    z2 = np.concatenate([[0.001, -1e-30, 0.001, 0.001], rng.standard_normal(40)]).astype(dtype)
    y = np.concatenate([[1.0, 1.0, -1.0, 1.0], rng.choice([-1.0, 1.0], 40)]).astype(dtype)
    z1 = (z2.astype(np.float64) + margin / y.astype(np.float64)).astype(dtype)
    z1[:4] = [margin + 0.001, margin, 0.001 - margin, margin - 0.999]
    steps = rng.integers(-3, 4, z1.size)
    steps[:4] = 0
    z1 = np.array([_walk(v, [k])[0] for v, k in zip(z1, steps, strict=True)], dtype)
    d = symloss.derive("margin_ranking_loss", margin=margin, reduction="none")
    exact = [_exact_margin_ranking(a, b, t, margin) for a, b, t in zip(z1, z2, y, strict=True)]
    values = _both(lambda: d.loss_fn(z1, z2, y))
    grads = _both(lambda: d.grad_fn(z1, z2, y))
    for path in PATHS:
        assert _ulps(values[path], [e[0] for e in exact], dtype).max() <= 4.0, path
        np.testing.assert_array_equal(grads[path], np.array([float(e[1]) for e in exact], dtype),
                                      err_msg=path)


def _exact_multi_margin_hvp(x, t, v, margin, weight):
    """2 w_t / C Σ_{k≠t} 1[u_k > 0] (e_k − e_t)(v_k − v_t), u_k = margin − x_t + x_k exactly."""
    xs = [mpmath.mpf(float(a)) for a in x]
    vs = [mpmath.mpf(float(a)) for a in v]
    w = mpmath.mpf(float(weight[t])) if weight is not None else 1
    out = [mpmath.mpf(0)] * len(xs)
    for k in range(len(xs)):
        if k != t and mpmath.mpf(margin) - xs[t] + xs[k] > 0:
            out[k] += vs[k] - vs[t]
            out[t] -= vs[k] - vs[t]
    return [2 * w * o / len(xs) for o in out]


@pytest.mark.parametrize("rows", [1, 2048])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", [{"p": 2}, {"p": 2, "margin": 0.5},
                                     {"p": 2, "weight": np.array([0.3, 1.7, 2.1])}])
def test_multi_margin_hvp_is_zero_without_an_active_margin_and_steps_at_the_exact_kink(
        options, dtype, rows):
    """p = 2: the HVP is exactly 0 where no margin is active (the expanded form's terms left
    2⁻⁵² there: 1.8e308 ulp), and a margin u_k = margin − x_t + x_k that rounds to 0 but is
    exactly positive (negative) is active (inactive), on both evaluators."""
    mpmath.mp.dps = 60
    margin = options.get("margin", 1.0)
    weight = options.get("weight")
    points = [(np.array([87.3365, 0.0, 0.0]), 0, np.array([1.0, 0.0, 0.0])),
              (np.array([103.972, 0.0, 0.0]), 0, np.array([0.3, -1.2, 0.7])),
              (np.array([-1000.0, 0.0, 0.0]), 1, np.array([1.0, 2.0, -0.5]))]
    for sign in (1.0, -1.0):  # x_2 − x_0 rounds to −margin; exactly it is −margin ± 1e-17…
        x = np.array([0.001 + margin, 0.3, 0.001 + sign * 2.0**-60], dtype=np.float64)
        points.append((x, 0, np.array([0.25, 1.0, 2.0])))
    d = symloss.derive("multi_margin_loss", reduction="sum", **options)
    for x, t, v in points:
        xs = np.tile(x.astype(dtype), (rows, 1))
        vs = np.tile(v.astype(dtype), (rows, 1))
        ts = np.full(rows, t)
        want = _exact_multi_margin_hvp(xs[0], t, vs[0], margin,
                                       None if weight is None else weight.astype(dtype))
        got = _both(lambda: d.hvp_fn(xs, ts, vs))  # noqa: B023
        for path in PATHS:
            assert _ulps(got[path][0], want, dtype).max() <= 4, (path, x, got[path][0], want)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("power", [1.1, 1.5, 1.9])
def test_tweedie_hessian_where_the_exponents_are_large(power, path):
    """(2 − ρ)e^((2−ρ)z) − (1 − ρ)y·e^((1−ρ)z): the float64 product (1 − ρ)·z rounds by up to
    |z|·2⁻⁵³, which the exponential turns into hundreds of ulps (463 at z = −708.396,
    y = 0.637, ρ = 1.9); in double-double it is within 4 ulp, hvp_fn and the objective's
    Hessian, on both evaluators."""
    mpmath.mp.dps = 80
    z = np.array([-708.396, -700.0, -300.0, -30.0, 5.0, 300.0, 650.0])
    y = np.array([0.637, 2.0, 1e-3, 0.5, 7.0, 0.5, 3.0])
    d = symloss.derive("tweedie_loss", power=power, reduction="sum")
    r = mpmath.mpf(power)
    exact = [(2 - r) * mpmath.exp((2 - r) * mpmath.mpf(a))
             - (1 - r) * mpmath.mpf(b) * mpmath.exp((1 - r) * mpmath.mpf(a))
             for a, b in zip(z, y, strict=True)]
    if path == "numpy":
        with fast.disabled():
            got = d.hvp_fn(z, y, np.ones_like(z))
    else:
        got = d.hvp_fn(z, y, np.ones_like(z))
    assert _ulps(got, exact, np.float64).max() <= 4.0


def _focal_mp(z, y, alpha, gamma):
    """torchvision's focal loss at one element, in mpmath: α_t (1 − p_t)^γ · BCE(σ(z), y),
    with 1 − p and log(1 − p) written σ(−z) and −log1p(eᶻ) (no 1 − (1 − 10⁻²⁰²) at 80 digits)."""
    p, q = 1 / (1 + mpmath.exp(-z)), 1 / (1 + mpmath.exp(z))  # σ(z), σ(−z) = 1 − σ(z)
    ce = y * mpmath.log1p(mpmath.exp(-z)) + (1 - y) * mpmath.log1p(mpmath.exp(z))
    a_t = alpha * y + (1 - alpha) * (1 - y) if alpha >= 0 else 1
    return a_t * (q * y + p * (1 - y)) ** gamma * ce


def _focal_hvp_at(path, z, y, gamma):
    """sigmoid_focal_loss's (α = 0.25, reduction='sum') Hessian-vector product at one point
    in direction 1 on ``path``, and its exact value (mpmath's second derivative, 80 digits)."""
    mpmath.mp.dps = 80
    d = symloss.derive("sigmoid_focal_loss", gamma=gamma, reduction="sum")
    got = _on(path, lambda: d.hvp_fn(np.array([z]), np.array([y]), np.array([1.0])))
    exact = [mpmath.diff(lambda s: _focal_mp(s, mpmath.mpf(y), mpmath.mpf(0.25), mpmath.mpf(gamma)),
                         mpmath.mpf(z), 2)]
    return got, exact


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("z, y", [(464.15888336127705, 1.0), (-464.15888336127705, 0.0),
                                  (300.0, 1.0), (600.0, 1.0)])
def test_sigmoid_focal_hvp_where_softplus_is_below_the_rescue_precision(z, y, path):
    """γ = 0.5, y = 1, z = 464: the Hessian's terms (about 1e-303) sit below double-double's
    trusted range, so the element is rescued exactly; the rescue's softplus(−464) = e^(−464)
    was 0 at 40 and 120 digits (log(1 + e^(−464)) rounds 1 + e^(−464) to 1), and the two
    agreeing evaluations returned the Hessian without its γ²·σ^γ·softplus term (8.2e14 ulp)."""
    got, exact = _focal_hvp_at(path, z, y, 0.5)
    assert _ulps(got, exact, np.float64).max() <= 4.0


@pytest.mark.parametrize("which", ["numpy", "numba_m", "numba_w"])
def test_sigmoid_pow_keeps_its_exponent_correction_up_to_underflow(which):
    """σ(x)^γ = e^(−s)(1 − lo), lo the rounding of the exponent s = γ·softplus(−x): the
    correction was skipped past s = 700, where e^(−s) is still normal (s = 702.5: 1e-305),
    leaving up to |s|·2⁻⁵³ of it, about 200 ulp (focal's γ = 1000 variant: 464 ulp)."""
    mpmath.mp.dps = 60
    x = -np.array([140.3, 140.5, 140.9, 141.1, 141.3, 140.71, 141.13])
    g = 5.0
    if which == "numpy":
        from symloss import kernels

        got = kernels.sigmoid_pow(x, np.float64(g))
    else:
        from symloss import _fastmath

        fn = _fastmath.sigmoid_pow_m if which == "numba_m" else _fastmath.sigmoid_pow_l_w
        got = np.array([fn(v, g) if which == "numba_m" else fn(v, g, np.log1p(np.exp(-abs(v))))
                        for v in x])
    exact = [(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) ** g for v in x]
    assert min(got) > 2.2250738585072014e-308  # normal results
    assert _ulps(got, exact, np.float64).max() <= 2.0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_sigmoid_focal_hessian_with_alpha_outside_0_1_next_to_its_alpha_t_root(gamma, path):
    """α = 1000: α_t = αy + (1 − α)(1 − y) is 0 at y = 999/1999, a difference of two terms
    about 500; the Hessian's factor α_t was a float64 product (1.3e15 ulp off next to the
    root), now inside its double-double form. The gradient (double-double already) too."""
    mpmath.mp.dps = 80
    root = 999 / 1999
    ys = np.array(_walk(root, np.arange(-2, 3)))
    zs = np.array([0.3, 4.0])
    z, y = np.repeat(zs, ys.size), np.tile(ys, zs.size)
    d = symloss.derive("sigmoid_focal_loss", alpha=1000.0, gamma=gamma, reduction="sum")
    v = np.ones_like(z)
    if path == "numpy":
        with fast.disabled():
            hvp, grad = d.hvp_fn(z, y, v), d.grad_fn(z, y)
    else:
        hvp, grad = d.hvp_fn(z, y, v), d.grad_fn(z, y)
    a, g = mpmath.mpf(1000), mpmath.mpf(gamma)
    for order, got in ((2, hvp), (1, grad)):
        exact = [mpmath.diff(lambda s, t=float(t): _focal_mp(s, mpmath.mpf(t), a, g),
                             mpmath.mpf(float(s)), order) for s, t in zip(z, y, strict=True)]
        assert _ulps(got, exact, np.float64).max() <= 4.0, order


_YMIN = 2.2250738585072014e-308  # the smallest normal float64


def _assert_loss_grad_hess_within_4_ulp(d, z, y, want, path):
    """``d``'s loss, gradient and Hessian (hvp with v = 1) at ``(z, y)`` on ``path``, each
    within 4 ulp of ``want[kind]`` (mpmath values)."""

    def run():
        return {"loss": d.loss_fn(z, y), "grad": d.grad_fn(z, y),
                "hess": d.hvp_fn(z, y, np.ones_like(z))}

    if path == "numpy":
        with fast.disabled():
            got = run()
    else:
        got = run()
    for kind, exact in want.items():
        assert _ulps(got[kind], exact, np.float64).max() <= 4.0, (kind, got[kind])


@pytest.mark.parametrize("path", PATHS)
def test_gamma_at_targets_next_to_the_ends_of_the_float64_range(path):
    """z − log y + y e^(−z) − 1 and 1 − y e^(−z) next to z = log y where |log y| > 700: the
    double-double log was float64's there (|log y|·2⁻⁵³ off: 8.7e5 ulp for the loss at
    z = −708.396, y = 2⁻¹⁰²²), and the pair product y·e^(−z) overflowed Dekker's split for
    e^(−z) near 2¹⁰²⁴, leaving the float64 form (2.1e3 ulp, 7.2e10 at z = log y rounded);
    within 4 ulp, loss, gradient and Hessian, on both evaluators."""
    mpmath.mp.dps = 80
    z = np.array([-708.3960000000001, -708.3960000000004, -708.39641853226, -709.782,
                  -745.0, -720.0, 700.0, 709.0])
    y = np.array([_YMIN, _YMIN, _YMIN, 1e-300, 5e-324, 1e-310, 1e304, 1.5e308])
    d = symloss.derive("gamma_loss", reduction="none")
    pts = [(mpmath.mpf(a), mpmath.mpf(b)) for a, b in zip(z, y, strict=True)]
    want = {"loss": [a - mpmath.log(b) + b * mpmath.exp(-a) - 1 for a, b in pts],
            "grad": [1 - b * mpmath.exp(-a) for a, b in pts],
            "hess": [b * mpmath.exp(-a) for a, b in pts]}

    _assert_loss_grad_hess_within_4_ulp(d, z, y, want, path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("power", [1.1, 1.5, 1.9])
def test_tweedie_at_targets_next_to_the_ends_of_the_float64_range(power, path):
    """Tweedie's deviance next to its minimum z = log y with y = 2⁻¹⁰²² (y^(2−ρ) from the
    double-double log, which was float64's for |log y| > 700: 4.2e9 ulp at ρ = 1.5, 2.4e10 at
    1.1) and y·e^((1−ρ)z) where e^((1−ρ)z) alone overflows (ρ = 1.1, z = −11400: 741 ulp
    gradient, 816 Hessian); within 4 ulp on both evaluators."""
    mpmath.mp.dps = 80
    z = np.array([-708.3959999999996, -708.3960000000005, -709.782, -2154.434690031879,
                  -11400.00000000001, -11355.099999999993, 0.0])
    y = np.array([_YMIN, _YMIN, 1e-300, 1e-300, _YMIN, _YMIN, 1.0])
    keep = (1 - power) * z < 700.0  # where the exact values are finite
    z, y = z[keep], y[keep]
    d = symloss.derive("tweedie_loss", power=power, reduction="none")
    r = mpmath.mpf(power)
    pts = [(mpmath.mpf(a), mpmath.mpf(b)) for a, b in zip(z, y, strict=True)]
    want = {
        # one fraction: at z = 0, y = 1 its numerator is exactly 0 in binary
        "loss": [(b ** (2 - r) - (2 - r) * b * mpmath.exp((1 - r) * a)
                  + (1 - r) * mpmath.exp((2 - r) * a)) / ((1 - r) * (2 - r)) for a, b in pts],
        "grad": [mpmath.exp((2 - r) * a) - b * mpmath.exp((1 - r) * a) for a, b in pts],
        "hess": [(2 - r) * mpmath.exp((2 - r) * a) - (1 - r) * b * mpmath.exp((1 - r) * a)
                 for a, b in pts]}

    _assert_loss_grad_hess_within_4_ulp(d, z, y, want, path)


def test_double_double_log_next_to_the_ends_of_the_float64_range():
    """ddouble.t_log within 2⁻¹⁰⁰ (relative) also where |log a| > 700, subnormals included
    (it was float64's log there, 2⁻⁵³ off), NumPy and compiled twins alike."""
    from symloss import ddouble
    mpmath.mp.dps = 60
    a = np.array([5e-324, 1e-320, 1e-310, _YMIN, 1e-305, 1e-300, 3.0, 1e300, 1e305,
                  1.7976931348623157e308])
    want = [mpmath.log(mpmath.mpf(v)) for v in a]
    funcs = [ddouble.t_log]
    if fast.available():
        jt = ddouble.jitted()["t_log"]

        def compiled(p):
            pairs = [jt((h, lo)) for h, lo in zip(*p, strict=True)]
            return np.array([q[0] for q in pairs]), np.array([q[1] for q in pairs])

        funcs.append(compiled)
    for f in funcs:
        hi, lo = f((a, 0.0 * a))
        for h, lw, w in zip(hi, lo, want, strict=True):
            assert abs(mpmath.mpf(h) + mpmath.mpf(lw) - w) <= mpmath.mpf(2) ** -100 * abs(w), (h, w)


# ---------------------------------------------------------------------------------------------
# multi_margin_loss p = 2: the target's hvp entry −(2w_t/C) Σ_k 1[u_k > 0](v_k − v_t) cancels
# where v_t is about the active v_k's mean; v_k and −v_t are terms of one compensated sum.
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("rows", [1, 512])
def test_multi_margin_hvp_target_entry_where_the_directions_cancel(rows, weighted):
    mpmath.mp.dps = 60
    rng = np.random.default_rng(8)
    c = 7
    x = rng.normal(size=(rows, c)) * 0.3
    t = rng.integers(0, c, rows)
    v = rng.normal(size=(rows, c))
    active = (1.0 - x[np.arange(rows), t][:, None] + x > 0) & (np.arange(c) != t[:, None])
    # v_t the (rounded) mean of the active v_k, and a copy 1 ulp off it: 0 or a few ulps exactly
    mean = np.where(active, v, 0.0).sum(axis=1) / np.maximum(active.sum(axis=1), 1)
    v[np.arange(rows), t] = np.where(np.arange(rows) % 2, mean, np.nextafter(mean, np.inf))
    w = rng.uniform(0.5, 2.0, c) if weighted else None
    d = symloss.derive("multi_margin_loss", p=2, reduction="sum",
                       **({"weight": w} if weighted else {}))
    got = _both(lambda: d.hvp_fn(x, t, v))
    for r in range(rows):
        vt = mpmath.mpf(float(v[r, t[r]]))
        s = sum(mpmath.mpf(float(v[r, k])) - vt for k in range(c) if active[r, k])
        wt = mpmath.mpf(float(w[t[r]])) if weighted else 1
        want = -2 * wt * s / c
        for path in PATHS:
            assert _ulps(got[path][r, t[r]:t[r] + 1], [want], np.float64).max() <= 4.0, (path, r)
    np.testing.assert_array_equal(got["fast"], got["numpy"])


# --------------------------------------------------------------------------- scales
_W = 1.9127768278121948  # accuracy.py's seeded weight (rounded to float32)


def _on(path, call):
    if path == "numpy":
        with fast.disabled():
            return np.asarray(call())
    return np.asarray(call())


def _sig(x):
    return 1 / (1 + mpmath.exp(-x))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("options", [
    {"weight": np.array([_W]), "pos_weight": np.array([_W])},
    {"weight": np.array([4.0]), "pos_weight": np.array([3.0])},
    {"weight": np.array([1000.0])},
])
def test_bce_with_logits_weight_enters_the_one_rounding(options, path):
    """w·((1 − y)σ(z) − w₊yσ(−z)) where the bracket is below the smallest normal number and the
    product is not (z = −708.396, y = 2⁻¹⁰²²: the bracket was rounded and flushed to 0 before
    the weight multiplied it, 7.9e15 ulp): the weight is inside the double-double pair's one
    rounding (layout.scaled_inside); within 4 ulp on both evaluators."""
    mpmath.mp.dps = 80
    w = mpmath.mpf(float(options["weight"][0]))
    r = mpmath.mpf(float(options["pos_weight"][0])) if "pos_weight" in options else 1
    z = np.array([-708.3960000000005, -708.396, -709.0, -712.0, -700.0, -745.0])
    y = np.full(z.shape, _YMIN)
    if "pos_weight" not in options:  # a soft target whose σ(z) − y is subnormal
        y = np.array([1e-309, 2e-308, 3e-310, 1e-310, 9e-305, 1e-320])
    d = symloss.derive("binary_cross_entropy_with_logits", reduction="sum", **options)
    got = _on(path, lambda: d.grad_fn(z, y))
    exact = [w * ((1 - mpmath.mpf(b)) * _sig(mpmath.mpf(a)) - r * mpmath.mpf(b)
                  * _sig(-mpmath.mpf(a))) for a, b in zip(z, y, strict=True)]
    assert any(abs(e) >= _YMIN for e in exact)  # normal results, not only flushes
    assert _ulps(got, exact, np.float64).max() <= 4.0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("options", [{"pos_weight": np.array([_W])},
                                     {"weight": np.array([_W]), "pos_weight": np.array([_W])}])
def test_a_value_below_the_normal_range_is_flushed_not_misrounded(options, path):
    """w₊·y·softplus(−z) at y = 10⁻³²³, z = −10⁴: w₊·y is rounded to the subnormal grid, then
    multiplied by 10⁴ (1.7e3 subnormal ulp off). A result below the smallest normal number is
    flushed to 0 (layout.finish, both evaluators); normal values next to it are unchanged."""
    mpmath.mp.dps = 80
    d = symloss.derive("binary_cross_entropy_with_logits", reduction="none", **options)
    w = mpmath.mpf(float(options.get("weight", [1.0])[0]))
    r = mpmath.mpf(float(options["pos_weight"][0]))
    z = np.array([-10000.0, -10000.0, -700.0, 3.0])
    y = np.array([1e-323, 1e-300, 1e-300, 0.25])

    def exact(a, b):
        a, b = mpmath.mpf(a), mpmath.mpf(b)
        return w * (r * b * mpmath.log1p(mpmath.exp(-a)) + (1 - b) * mpmath.log1p(mpmath.exp(a)))

    got = _on(path, lambda: d.loss_fn(z, y))
    assert got[0] == 0.0 and got[1] != 0.0
    assert _ulps(got, [exact(a, b) for a, b in zip(z, y, strict=True)], np.float64).max() <= 4.0


@pytest.mark.parametrize("path", PATHS)
def test_gamma_mean_of_values_beyond_the_float64_range_is_finite(path):
    """reduction='mean' of gamma_loss at z = −709.782, y = 4: each 1 − y e^(−z) overflows
    float64 but the mean over 8 elements is −9.0e307 (gradient and hvp were ±inf, 1.8e308 ulp
    on the search's scale); an overflowed element whose divisor brings it back is recomputed
    exactly (layout.finish, symloss.exact). Where the exact mean overflows too (z = −720) the
    result is -inf / inf, the correct rounding."""
    mpmath.mp.dps = 80
    d = symloss.derive("gamma_loss", reduction="mean")
    n = 8
    for zv, finite in ((-709.7820000000002, True), (-720.0, False)):
        z, y = np.full(n, zv), np.full(n, 4.0)
        e = 4 * mpmath.exp(-mpmath.mpf(zv))
        grad = _on(path, lambda z=z, y=y: d.grad_fn(z, y))
        hvp = _on(path, lambda z=z, y=y: d.hvp_fn(z, y, np.ones(n)))
        if finite:
            assert _ulps(grad, [(1 - e) / n] * n, np.float64).max() <= 4.0
            assert _ulps(hvp, [e / n] * n, np.float64).max() <= 4.0
        else:
            assert np.all(grad == -np.inf) and np.all(hvp == np.inf)


@pytest.mark.parametrize("path", PATHS)
def test_mean_of_a_difference_beyond_the_float64_range_is_finite(path):
    """The same rule for any element-wise loss: mse_loss's 2(z − y)/n where z − y overflows
    (z = 1.5e308, y = −1.5e308) is 1.5e308 for n = 4; within 4 ulp on both evaluators."""
    mpmath.mp.dps = 60
    d = symloss.derive("mse_loss", reduction="mean")
    z, y = np.full(4, 1.5e308), np.full(4, -1.5e308)
    got = _on(path, lambda: d.grad_fn(z, y))
    exact = [2 * (mpmath.mpf(1.5e308) + mpmath.mpf(1.5e308)) / 4] * 4
    assert _ulps(got, exact, np.float64).max() <= 4.0


@pytest.mark.parametrize("which", ["numpy", "numba_m", "numba_w"])
def test_sigmoid_pow_large_gamma_keeps_log1p_to_its_last_bits(which):
    """σ(x)^γ = e^(−γ(a + b)), b = log1p(e^(−|x|)): b rounded to float64 (and the e^(−|x|) it
    came from) is multiplied by γ in the exponent, 597 ulp at γ = 1000 next to x = 0.3; with
    b's error in the low part (sigmoid_pow_large's evaluators) within 2 ulp at every γ."""
    mpmath.mp.dps = 60
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.standard_normal(60) * 3, [0.0, 0.3, -0.3, 1e-9, -20.0, 40.0]])
    for g in (3.0, 5.0, 1000.0):
        if which == "numpy":
            from symloss import kernels

            got = kernels.sigmoid_pow(x, np.float64(g), exact_b=True)
        else:
            from symloss import _fastmath

            fn = _fastmath.sigmoid_pow_lb_m if which == "numba_m" else _fastmath.sigmoid_pow_lb_w
            got = np.array([fn(v, g, float(np.log1p(np.exp(-abs(v))))) for v in x])
        exact = [(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) ** g for v in x]
        assert _ulps(got, exact, np.float64).max() <= 2.0, g


@pytest.mark.parametrize(("name", "bound", "lowest"), [
    ("exp_pair", 2.0**-64, -660.0), ("exp_pair_fine", 2.0**-72, -600.0)])
def test_exp_pair_is_exp_to_66_bits(name, bound, lowest):
    """_fastmath.exp_pair: hi + lo within 2⁻⁶⁴ of eˣ (relative) where the result is above 2⁻⁹⁶⁰
    (below it lo loses bits); hi within 1 ulp. exp_pair_fine (the class-axis rows' first
    tier): within 2⁻⁷² from x = −600 up, and hi = fl(hi + lo)."""
    from numba import njit

    from symloss import _fastmath

    fn = getattr(_fastmath, name)

    @njit
    def pairs(x):
        out = np.empty((x.size, 2))
        for i in range(x.size):
            out[i, 0], out[i, 1] = fn(x[i])
        return out

    mpmath.mp.dps = 50
    rng = np.random.default_rng(12)
    x = np.concatenate([rng.uniform(lowest, 700, 400), rng.standard_normal(200),
                        rng.uniform(-0.011, 0.011, 200), [0.0, 1e-300, lowest, 709.7]])
    got = pairs(x)
    for v, (hi, lo) in zip(x, got, strict=True):
        e = mpmath.exp(mpmath.mpf(float(v)))
        assert abs((mpmath.mpf(hi) + mpmath.mpf(lo)) / e - 1) < bound, v
    if name == "exp_pair_fine":
        assert np.all(got[:, 0] + got[:, 1] == got[:, 0])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("z, gamma", [(-359.38, 0.5), (-1e4, 1e-6)])
def test_sigmoid_focal_soft_hessian_at_the_smallest_normal_target(z, gamma, path):
    """y = 2⁻¹⁰²²: Q = yσ(−z) + (1 − y)σ(z) ≈ σ(z), and Q^(γ−2)·Q′² took (σ(z)σ(−z))², 10⁻³¹²
    at z = −359.38, subnormal: the Hessian 10⁻²³⁴ came out 11% off (5.1e14 ulp). At z = −10⁴,
    γ = 10⁻⁶: Q = y, Q^(γ−2) = 2²⁰⁴⁴ overflowed beside Q′² = 0, NaN on the numba path. The
    evaluated form is Q^γ·(Q′/Q)², whose factors stay in range where the result does."""
    got, exact = _focal_hvp_at(path, z, 2.0**-1022, gamma)
    assert np.isfinite(got).all()
    assert _ulps(got, exact, np.float64).max() <= 4.0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("options", [{"gamma": 0.5}, {"gamma": 1e-6}, {"alpha": 0.75, "gamma": 0.5},
                                     {"alpha": -1.0, "gamma": 0.5}, {"alpha": 0.75, "gamma": 1e-6}])
def test_sigmoid_focal_soft_gradient_at_the_smallest_normal_target(options, path):
    """y = 2⁻¹⁰²², z = −359.38 (the option search's worst points): the bracket of the soft
    gradient S·Q^(γ−1)·(γ(1 − 2y)·C·σ(z)σ(−z) + Q·(σ(z) − y)) has both terms near 10⁻³¹²,
    subnormal, while Q^(γ−1) (γ < 1) brings the result back to 10⁻²³⁴ (γ = 0.5) or 10⁻¹⁵⁷:
    the numba path's first tier (_fastmath.soft_modulated_slope_q) certified it and was 1.1e4
    ulp off (γ = 0.5; 2.4e3 at γ = 10⁻⁶, 1.4e4 at α = 0.75 or −1), the NumPy path within 0.35
    ulp. The tier now declines below 2⁻⁹⁰⁰ of its terms' magnitude; mpmath's derivative of
    the definition, 80 digits, and the two evaluators give the same bits."""
    mpmath.mp.dps = 80
    z = np.array([-359.3813663804628, -359.38136638046234, -368.4878742815113, -300.0, -420.0])
    y = np.full(z.shape, 2.0**-1022)
    d = symloss.derive("sigmoid_focal_loss", reduction="sum", **options)
    got = _on(path, lambda: d.grad_fn(z, y))
    alpha = mpmath.mpf(options.get("alpha", 0.25))
    exact = [mpmath.diff(lambda s: _focal_mp(s, mpmath.mpf(2.0**-1022), alpha,
                                             mpmath.mpf(options["gamma"])), mpmath.mpf(float(s)))
             for s in z]
    assert _ulps(got, exact, np.float64).max() <= 4.0
    if path == "fast":
        with fast.disabled():
            assert np.array_equal(got, d.grad_fn(z, y))


def _focal_soft_exact(z, y, alpha, gamma):
    """sigmoid_focal_loss's gradient and Hessian at one soft label, in mpmath (80 digits) from
    the product rule of α_t·M·C, M = Q^γ, Q = yσ(−z) + (1 − y)σ(z), C the cross-entropy: no
    cancellation mpmath cannot hold, and no exponent range to leave (mpmath.diff next to
    e^(−745) needs hundreds of digits)."""
    mpmath.mp.dps = 80
    z, y, a, g = (mpmath.mpf(float(v)) for v in (z, y, alpha, gamma))
    s, t = _sig(z), _sig(-z)
    a_t = a * y + (1 - a) * (1 - y) if alpha >= 0 else 1
    q = y * t + (1 - y) * s
    ce = y * mpmath.log1p(mpmath.exp(-z)) + (1 - y) * mpmath.log1p(mpmath.exp(z))
    q1 = (1 - 2 * y) * s * t
    q2 = q1 * (t - s)
    m1 = g * q ** (g - 1) * q1
    m2 = g * (g - 1) * q ** (g - 2) * q1**2 + g * q ** (g - 1) * q2
    return a_t * (m1 * ce + q**g * (s - y)), a_t * (s * t * q**g + 2 * (s - y) * m1 + ce * m2)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha, gamma", [(0.25, 1e-6), (-1.0, 1e-6), (0.75, 0.5)])
def test_sigmoid_focal_soft_gradient_where_q_is_subnormal(alpha, gamma, dtype, path):
    """A soft label below the smallest normal number and z ≪ 0: Q = yσ(−z) + (1 − y)σ(z) is
    subnormal (y = 2.8e-317, z = −724.74: Q ≈ 1.3e-315, the option search's worst point), and
    the gradient's Q^(γ−1)·Q′ took Q^(γ−1) = inf for γ < 1: an infinite gradient on both
    evaluators where the exact one is 1.3e-315 (γ = 10⁻⁶, any α). It is Q^γ·(Q′/Q), as the
    Hessian's powers are. Gradient and Hessian finite and within 4 ulp (a subnormal result may
    flush to 0), y next to the smallest normal, z from −700 to −745 (float32: to −110 as well);
    the two evaluators give the same bits."""
    tiny = float(np.finfo(dtype).tiny)
    below, above = (float(np.nextafter(dtype(tiny), dtype(0))),
                    float(np.nextafter(dtype(tiny), dtype(1))))
    labels = [2.8e-317, 5e-324, below, tiny, above, 2 * tiny] if dtype == np.float64 else \
        [1e-45, 1e-40, below, tiny, above, 2 * tiny]
    zs = [-724.74, -700.0, -708.5, -716.0, -730.0, -740.0, -745.0]
    if dtype == np.float32:
        zs += [-88.0, -95.0, -103.3, -110.0]
    z = np.repeat(np.array(zs, dtype), len(labels))
    y = np.tile(np.array(labels, dtype), len(zs))
    d = symloss.derive("sigmoid_focal_loss", alpha=alpha, gamma=gamma, reduction="none")
    grad = _on(path, lambda: d.grad_fn(z, y))
    hess = _on(path, lambda: d.hvp_fn(z, y, np.ones_like(z)))
    exact = [_focal_soft_exact(a, b, alpha, gamma) for a, b in zip(z, y, strict=True)]
    for got, want in ((grad, [e[0] for e in exact]), (hess, [e[1] for e in exact])):
        assert np.isfinite(got).all()
        assert _ulps(got, want, dtype).max() <= 4.0
    if path == "fast":
        with fast.disabled():
            assert np.array_equal(grad, d.grad_fn(z, y))
            assert np.array_equal(hess, d.hvp_fn(z, y, np.ones_like(z)))


@pytest.mark.parametrize("path", PATHS)
def test_sigmoid_focal_gamma_1000_gradient_and_hessian_within_4_ulp(path):
    """γ = 1000 (the option search's stress value): σ^γ's exponent carried b = log1p(e^(−|z|))
    rounded, 464 ulp in the float64 gradient; sigmoid_pow_large keeps it (hard labels)."""
    mpmath.mp.dps = 80
    z = np.array([0.3, -0.01, 0.7, -0.5, 2.0, -0.3])  # normal results (0.05, y = 1: subnormal)
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    d = symloss.derive("sigmoid_focal_loss", gamma=1000.0, reduction="sum")
    with fast.disabled() if path == "numpy" else contextlib.nullcontext():
        grad, hvp = d.grad_fn(z, y), d.hvp_fn(z, y, np.ones_like(z))

    def f(s, yy):
        return _focal_mp(s, mpmath.mpf(yy), mpmath.mpf(0.25), mpmath.mpf(1000))

    for got, order in ((grad, 1), (hvp, 2)):
        exact = [mpmath.diff(lambda s, yy=yy: f(s, yy), mpmath.mpf(float(zz)), order)
                 for zz, yy in zip(z, y, strict=True)]
        assert _ulps(got, exact, np.float64).max() <= 4.0, order


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("gamma", [0.0, 1e-6, 0.5])
def test_sigmoid_focal_alpha_above_one_where_sigmoid_is_subnormal(gamma, path):
    """α = 1000, hard labels, |z| past 708.4: σ(∓z) = e^(−|z|) is rounded onto the subnormal
    grid, and α_t·σ(∓z) (|α_t| up to 1000) is normal: the float64 gradient was 29-37 ulp off at
    |z| = 712 and 714 (both evaluators); its hard arms are double-double where α > 1, a normal
    result of such terms rescued exactly. Loss, gradient and Hessian within 4 ulp of mpmath's
    derivatives of the definition (a result below the normal range may flush to 0)."""
    mpmath.mp.dps = 400  # mpmath.diff next to e^(−714) needs it
    zs = np.array([710.0, 712.0, 714.0, 716.0, 745.13])
    z = np.concatenate([zs, -zs, zs, -zs])
    y = np.repeat([1.0, 0.0, 0.0, 1.0], zs.size)
    d = symloss.derive("sigmoid_focal_loss", alpha=1000.0, gamma=gamma, reduction="none")
    a, g = mpmath.mpf(1000), mpmath.mpf(gamma)

    def at(s, t, order):
        f = lambda u: _focal_mp(u, mpmath.mpf(t), a, g)  # noqa: E731
        return mpmath.diff(f, mpmath.mpf(s), order) if order else f(mpmath.mpf(s))

    pts = list(zip(z.tolist(), y.tolist(), strict=True))
    want = {kind: [at(s, t, order) for s, t in pts]
            for kind, order in (("loss", 0), ("grad", 1), ("hess", 2))}
    _assert_loss_grad_hess_within_4_ulp(d, z, y, want, path)


def test_soft_cross_entropy_hvp_is_the_same_on_both_evaluators():
    """cross_entropy's float64 hvp with probability targets, mean reduction: the NumPy
    evaluator rounded (Σy)·pᵢ(vᵢ − v̄) from the scaled pair, the compiled kernels scale the
    rounded pair (all they keep): 2 ulp apart (z = (−1.7e-4, −9.5e-4) below). Now both scale
    the rounded pair: the same bits, each within 4 ulp of mpmath."""
    mpmath.mp.dps = 60
    rng = np.random.default_rng(31)
    n, c = 64, 5
    z = rng.normal(0, 3, (n, c))
    z[: n // 4, 0] += 30.0  # near one-hot rows
    z[n // 4: n // 2] = rng.normal(0, 1e-3, (n // 4, c))
    y = rng.dirichlet(np.ones(c), n)
    v = rng.normal(0, 1, (n, c))
    v[n // 2: 3 * n // 4] = 1.0 + rng.normal(0, 1e-8, (n // 4, c))
    rows = [(np.array([[-0.00017186734595143173, -0.0009518157648768793]]),
             np.array([[0.006541055739863401, 0.9934589442601365]]),
             np.array([[-0.3215069181828997, -0.6014496268993043]])), (z, y, v)]
    for zr, yr, vr in rows:
        d = symloss.derive("cross_entropy", reduction="mean")
        got = _both(lambda: d.hvp_fn(zr, yr, vr))  # noqa: B023
        np.testing.assert_array_equal(got["fast"], got["numpy"])
        exact = []
        for zz, yy, vv in zip(zr, yr, vr, strict=True):
            e = [mpmath.exp(mpmath.mpf(float(a))) for a in zz]
            p = [a / mpmath.fsum(e) for a in e]
            tot = mpmath.fsum(mpmath.mpf(float(a)) for a in yy)
            for i in range(zz.size):
                br = mpmath.fsum(pk * (mpmath.mpf(float(vv[i])) - mpmath.mpf(float(vk)))
                                 for pk, vk in zip(p, vv, strict=True))
                exact.append(tot * p[i] * br / zr.shape[0])
        assert _ulps(got["fast"], exact, np.float64).max() <= 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_logits_hessian_with_a_tiny_pos_weight_on_both_evaluators(dtype):
    """binary_cross_entropy_with_logits' Hessian w₊y + (1 − y) times σ(z)σ(−z): written
    1 + (w₊ − 1)y it cancelled to 0 at y = 1 for a tiny w₊ (the search's extreme weights:
    w₊ = 6.06e-33, z = 4.6e-4 in float32, 1.65e7 ulp); two terms ≥ 0 now, within 4 ulp."""
    mpmath.mp.dps = 60
    pw = np.array([6.060896259955732e-33], dtype)
    z = np.array([0.00046049847, 3.0, -2.0, 30.0], dtype)
    y = np.array([1.0, 1.0, 0.3, 0.0], dtype)
    d = symloss.derive("binary_cross_entropy_with_logits", reduction="sum", pos_weight=pw)
    r = mpmath.mpf(float(pw[0]))
    exact = [(r * mpmath.mpf(float(b)) + (1 - mpmath.mpf(float(b))))
             / ((1 + mpmath.exp(mpmath.mpf(float(a)))) * (1 + mpmath.exp(-mpmath.mpf(float(a)))))
             for a, b in zip(z, y, strict=True)]
    for path, got in _both(lambda: d.hvp_fn(z, y, np.ones_like(z))).items():
        assert _ulps(got, exact, dtype).max() <= 4, path
    if dtype is np.float64:  # w = w₊ = 1.69e304, y = 1e-300: w(1 + (w₊ − 1)y) overflowed (inf)
        w, z, y = np.array([1.6936906829535891e304]), np.array([0.04641588833612773]), \
            np.array([1e-300])
        d = symloss.derive("binary_cross_entropy_with_logits", reduction="sum", weight=w,
                           pos_weight=w)
        wm, ym, zm = (mpmath.mpf(float(t[0])) for t in (w, y, z))
        exact = [wm * (wm * ym + 1 - ym) / ((1 + mpmath.exp(zm)) * (1 + mpmath.exp(-zm)))]
        for path, got in _both(lambda: d.hvp_fn(z, y, np.ones(1))).items():
            assert _ulps(got, exact, dtype).max() <= 4, path


def _exact_bce_grad(p: float, y: float, w: float) -> mpmath.mpf:
    """w (p − y)/max(p(1 − p), ε), ε torch's float32 1e-12."""
    p_, y_ = mpmath.mpf(p), mpmath.mpf(y)
    c = max(p_ * (1 - p_), mpmath.mpf(float(np.float32(1e-12))))
    return mpmath.mpf(w) * (p_ - y_) / c


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_bce_gradient_with_a_tiny_weight_multiplies_it_last(reduction):
    """binary_cross_entropy's gradient w(p − y)/c with a weight near or below the smallest
    normal number: ``w·(p − y)`` was rounded to a subnormal number before the division by
    c = max(p(1 − p), ε) (1.63e11 ulp at p = 0.9999999999999977, y = 0.00273850017014809,
    w = 5.8947e-320; 6.07e8 with the mean at p = 4.328761281083235e-56, w = 4.359219873e-315:
    the accuracy search's extreme weights). layout.weight_last evaluates w·((p − y)/c): within
    2 ulp (3 with the mean's division) on both evaluators, bit for bit the same."""
    mpmath.mp.dps = 60
    rng = np.random.default_rng(31)
    p, y = _bce_hessian_points()
    p = np.concatenate([[0.9999999999999977, 4.328761281083235e-56], p])
    y = np.concatenate([[0.00273850017014809, 0.00273850017014809], y])
    sign = np.where(rng.random(p.size) < 0.5, -1.0, 1.0)
    w = sign * 2.0 ** -rng.uniform(960.0, 1074.0, p.size)
    w[:2] = [5.8947e-320, 4.359219873e-315]
    d = symloss.derive("binary_cross_entropy", reduction=reduction, weight=w)
    got = _both(lambda: d.grad_fn(p, y))
    np.testing.assert_array_equal(got["fast"], got["numpy"])
    n = mpmath.mpf(p.size if reduction == "mean" else 1)
    exact = [_exact_bce_grad(a, b, c) / n for a, b, c in zip(p, y, w, strict=True)]
    normal = np.array([abs(e) >= np.finfo(np.float64).tiny for e in exact])
    assert normal[1] and normal.sum() > 20  # (the first point over n is subnormal)
    assert _ulps(got["fast"], exact, np.float64).max() <= (2.0 if reduction == "sum" else 3.0)


#: The accuracy search's per-class extreme weights: near the largest float, subnormal, just
#: above the smallest normal and moderate (benchmarks/accuracy.py, GIVEN_EXTREME).
_EXTREME_W = np.array([2.7575050914502084e303, 1.843e-320, 2.096424397223309e-302,
                       5.8717398113748835])


def _mp_sigmoid(x):
    return 1 / (1 + mpmath.exp(-mpmath.mpf(x)))


@pytest.mark.parametrize("z", [745.1329999999996, 700.0, 760.0, 1000.0])
def test_bce_with_logits_huge_pos_weight_times_an_underflowed_sigmoid(z):
    """w₊·y·σ(−z) with pos_weight 1.55e293 where σ(−z) is subnormal or 0: the rounded factor
    was scaled up (8.7e15 ulp at z = 745.133 on the loss, gradient and hvp: 7.6e-31, exactly
    3.8e-31); layout.scaled_from_underflow sends such elements to the exact value: within
    4 ulp on both evaluators (a subnormal result may flush to 0)."""
    mpmath.mp.dps = 60
    w = 1.5478246797733156e293
    d = symloss.derive("binary_cross_entropy_with_logits", reduction="sum",
                       pos_weight=np.array([w]))
    x, y = np.array([z]), np.array([1.0])
    s = _mp_sigmoid(-z)
    exact = {"loss": w * mpmath.log1p(mpmath.exp(-mpmath.mpf(z))), "grad": -w * s,
             "hvp": w * s * _mp_sigmoid(z)}
    calls = {"loss": lambda: np.atleast_1d(d.loss_fn(x, y)), "grad": lambda: d.grad_fn(x, y),
             "hvp": lambda: d.hvp_fn(x, y, np.ones(1))}
    for what, call in calls.items():
        for path, got in _both(call).items():
            assert _ulps(got, [exact[what]], np.float64).max() <= 4, (what, path)


def _exact_ce(z, t, w, v, eps=0.0):
    """cross_entropy's (loss, gradient, hvp in the direction v) of one row, exact; with label
    smoothing ``eps`` the target weights are aₖ = wₖ((1 − ε)δₖₜ + ε/C)."""
    z = [mpmath.mpf(float(a)) for a in z]
    c = len(z)
    m = max(z)
    e = [mpmath.exp(a - m) for a in z]
    s = mpmath.fsum(e)
    p = [a / s for a in e]
    eps = mpmath.mpf(eps)
    a = [mpmath.mpf(float(w[k])) * ((1 - eps) * (k == t) + eps / c) for k in range(c)]
    total = mpmath.fsum(a)
    # −log pₖ = log1p(Σ_{j≠k} e^(z_j − z_k)): its digits where pₖ → 1
    loss = mpmath.fsum(a[k] * mpmath.log1p(mpmath.fsum(
        mpmath.exp(z[j] - z[k]) for j in range(c) if j != k)) for k in range(c))
    grad = [p[k] * total - a[k] for k in range(c)]
    pv = mpmath.fsum(p[k] * float(v[k]) for k in range(c))
    hvp = [total * p[k] * (float(v[k]) - pv) for k in range(c)]
    return loss, grad, hvp


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("z0", [1000.0, 745.133, 700.0])
@pytest.mark.parametrize("t", range(4))
def test_cross_entropy_huge_class_weight_times_an_underflowed_probability(t, z0, reduction):
    """A class weight 2.76e303 times softmax probabilities e^(−1000) (0 in float64) or
    e^(−745.133) (subnormal): 0 for 1.4e-131 (8.39e15 ulp), 1.36e-20 for 6.8e-21 (1.11e16 on
    the hvp); the exact value where layout.scaled_from_underflow says a weight lifted such a
    factor: within 4 ulp on both evaluators, for every target (the mean divides by the
    target's weight, 1.843e-320 for target 1: layout._balanced scales the weights and their
    total by one power of two first; the loss at z₀ = 745.133 was 745.13297587 for 745.133)."""
    mpmath.mp.dps = 1200  # 1 − p at z = 1000 needs ~440 digits
    d = symloss.derive("cross_entropy", reduction=reduction, weight=_EXTREME_W)
    v = np.array([[1.0, 0.0, 0.0, 0.0]])
    z, target = np.array([[z0, 0.0, 0.0, 0.0]]), np.array([t])
    loss, grad, hvp = _exact_ce(z[0], t, _EXTREME_W, v[0])
    n = mpmath.mpf(float(_EXTREME_W[t])) if reduction == "mean" else 1
    got = {"grad": _both(lambda: d.grad_fn(z, target)),
           "hvp": _both(lambda: d.hvp_fn(z, target, v)),
           "loss": _both(lambda: np.atleast_1d(d.loss_fn(z, target)))}
    for what, exact in (("grad", grad), ("hvp", hvp), ("loss", [loss])):
        for path, values in got[what].items():
            err = _ulps(values, [e / n for e in exact], np.float64).max()
            assert err <= 4, (what, path, err)


@pytest.mark.parametrize("eps", [0.1, 0.999])
@pytest.mark.parametrize("z0", [700.0, 708.396, 709.782])
@pytest.mark.parametrize("t", [0, 1])
def test_label_smoothed_cross_entropy_value_keeps_a_huge_weight_times_log_p_near_0(t, z0, eps):
    """With label smoothing every class's weight enters the value: (1 − ε + ε/C)·w₀·(−log p₀)
    with w₀ = 2.76e303 and −log p₀ = log1p(3e^(−z₀)) ≈ 3e-304 … 2e-308 is 0.75 … 1.7e-4 next
    to the other classes' ε/C·wₖ·zₖ ≈ 103. The weight marks the row for symloss.exact
    (layout.scaled_from_underflow), which wrote log p₀ as z₀ − log Σ e^z: 0 at 40 and at 120
    digits alike, so the two agreed without the term (102.755 for 103.510 at z₀ = 700: 5.3e13
    ulp; 1.2e10 at 708.396). As −log1p(Σ_{j≠k} e^(z_j − z_k)): within 4 ulp on both
    evaluators."""
    mpmath.mp.dps = 1200
    d = symloss.derive("cross_entropy", reduction="none", weight=_EXTREME_W, label_smoothing=eps)
    z, target = np.array([[z0, 0.0, 0.0, 0.0]]), np.array([t])
    loss = _exact_ce(z[0], t, _EXTREME_W, np.zeros(4), eps)[0]
    for path, got in _both(lambda: np.atleast_1d(d.loss_fn(z, target))).items():
        assert _ulps(got, [loss], np.float64).max() <= 4, path


@pytest.mark.parametrize("eps", [0.001, 0.1, 0.9])
@pytest.mark.parametrize("z0", [-1000.0, -745.133, 745.133, 1000.0])
@pytest.mark.parametrize("t", [0, 1])
def test_label_smoothed_cross_entropy_huge_weight_times_an_underflowed_probability(t, z0, eps):
    """The smoothed target's total weight Σₖ wₖ((1 − ε)δₖₜ + ε/C) holds ε/C·w₀ = 6.9e301 for
    every target: the gradient pᵢΣa − aᵢ and the hvp Σa·pᵢ(vᵢ − Σpv) lift a softmax probability
    that underflowed (e^(−745.133) rounded to 4.9e-324: 3.4e-22 for 1.7e-22; e^(−1000) = 0: 0
    for 1.0e-132, 9e15 ulp). layout.scaled_from_underflow read the target's weight alone (the
    tiny w₁ for t = 1) and did not send those to the exact value: within 4 ulp on both
    evaluators."""
    mpmath.mp.dps = 1200
    d = symloss.derive("cross_entropy", reduction="sum", weight=_EXTREME_W, label_smoothing=eps)
    v = np.array([[1.0, 0.0, 0.0, 0.0]])
    z, target = np.array([[z0, 0.0, 0.0, 0.0]]), np.array([t])
    _, grad, hvp = _exact_ce(z[0], t, _EXTREME_W, v[0], eps)
    for what, call, exact in (("grad", lambda: d.grad_fn(z, target), grad),
                              ("hvp", lambda: d.hvp_fn(z, target, v), hvp)):
        for path, got in _both(call).items():
            err = _ulps(got, exact, np.float64).max()
            assert err <= 4, (what, path, err)


@pytest.mark.parametrize("ignore", [None, 2])
@pytest.mark.parametrize("eps", [0.1, 0.999])
@pytest.mark.parametrize("z0", [10.0, 21.5])
@pytest.mark.parametrize("t", [0, 1])
def test_label_smoothed_cross_entropy_gradient_with_a_total_weight_above_the_split(t, z0, eps,
                                                                                   ignore):
    """pᵢΣa − aᵢ with Σa = 6.9e301 (the smoothed class weight 2.76e303): the double-double
    products (Σa − aᵢ)·eᵢ, aᵢ·(D − eᵢ) and their difference times 1/D split an operand above
    2⁹⁹⁶, whose Dekker split overflowed; the pair was NaN and the float form, which cancels,
    answered (4.5e8 ulp at z₀ = 21.5, ε = 0.999; 4.05e3 at z₀ = 10, t = 1; the accuracy
    search's worst 5.03e3). ddouble.t_prod splits such an operand times 2⁻⁶⁴: within 4 ulp
    of exact and the same bits on both evaluators, with an ignored row (ignore_index) beside
    it too."""
    mpmath.mp.dps = 60
    options = {} if ignore is None else {"ignore_index": ignore}
    d = symloss.derive("cross_entropy", reduction="sum", weight=_EXTREME_W, label_smoothing=eps,
                       **options)
    z = np.array([[z0, 0.0, 0.0, 0.0], [z0, 0.0, 0.0, 0.0]])
    target = np.array([t, t if ignore is None else ignore])
    _, grad, _ = _exact_ce(z[0], t, _EXTREME_W, np.zeros(4), eps)
    exact = grad * 2 if ignore is None else grad + [mpmath.mpf(0)] * 4
    got = _both(lambda: d.grad_fn(z, target))
    for path, values in got.items():
        err = _ulps(values, exact, np.float64).max()
        assert err <= 4, (path, err)
    np.testing.assert_array_equal(got["fast"], got["numpy"])


@pytest.mark.parametrize("x0", [-1000.0, -745.133, -700.0])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_multilabel_soft_margin_huge_class_weight_times_an_underflowed_sigmoid(x0, label):
    """wᵢσ(xᵢ)/C and wᵢσ(xᵢ)σ(−xᵢ)/C with the class weight 2.76e303 where σ(xᵢ) is 0 or
    subnormal (5.59e15 / 1.28e16 ulp on the gradient / hvp): the exact value, within 4 ulp
    on both evaluators."""
    mpmath.mp.dps = 60
    d = symloss.derive("multilabel_soft_margin_loss", reduction="sum", weight=_EXTREME_W)
    x, y = np.array([[x0, 0.0, 0.0, 0.0]]), np.array([[label, 0.0, 0.0, 0.0]])
    w = [mpmath.mpf(float(a)) for a in _EXTREME_W]
    grad = [w[k] * (_mp_sigmoid(x[0, k]) - y[0, k]) / 4 for k in range(4)]
    hvp = [w[k] * _mp_sigmoid(x[0, k]) * _mp_sigmoid(-x[0, k]) / 4 for k in range(4)]
    for what, call, exact in (("grad", lambda: d.grad_fn(x, y), grad),
                              ("hvp", lambda: d.hvp_fn(x, y, np.ones((1, 4))), hvp)):
        for path, got in _both(call).items():
            assert _ulps(got, exact, np.float64).max() <= 4, (what, path)


@pytest.mark.parametrize("path", PATHS)
def test_a_marked_element_the_exact_value_cannot_answer_keeps_its_value(path):
    """layout.scaled_from_underflow marks a huge pos_weight's tiny results for the exact
    value; where symloss.exact cannot give one (an infinite input: σ(−∞)·w₊ = 0) the element
    keeps its evaluated value, never NaN."""
    d = symloss.derive("binary_cross_entropy_with_logits", reduction="none",
                       pos_weight=np.array([1e300]))
    z, y = np.array([np.inf, 745.1329999999996]), np.array([1.0, 1.0])
    got = _both(lambda: d.grad_fn(z, y))[path]
    assert got[0] == 0.0 and np.isfinite(got[1]) and got[1] < 0


def _mp_softplus(x):
    x = mpmath.mpf(x)
    return max(x, 0) + mpmath.log1p(mpmath.exp(-abs(x)))


#: The accuracy search's worst point of σ(z) − y under a weight near the largest float
#: (benchmarks/accuracy.py, GIVEN_EXTREME laid out per element): σ(z) − y cancels by 27 bits.
_Z_HALF, _W_TOP = 2.7825594022071253e-08, 7.162150148222506e+307


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("name, options", [
    ("binary_cross_entropy_with_logits", {}),
    ("binary_cross_entropy", {"link": "sigmoid"})])
def test_huge_weight_times_a_cancelling_sigmoid_difference(name, options, reduction):
    """w·(σ(z) − y) with w = 7.2e307 at z = 2.8e-8, y = 0.5: the pair product's Dekker split
    of w overflowed, the pair was NaN and the plain float form, which cancels by 27 bits,
    answered (4.65e7 ulp, 6.2e7 with the mean); ddouble.t_scale splits w·2⁻⁶⁴: within 1 ulp
    on both evaluators."""
    mpmath.mp.dps = 60
    z, y = np.array([_Z_HALF, 0.1]), np.array([0.5, 0.5])
    w = np.array([_W_TOP, 3.0])
    d = symloss.derive(name, reduction=reduction, weight=w, **options)
    n = 2 if reduction == "mean" else 1
    exact = [mpmath.mpf(float(a)) * (_mp_sigmoid(b) - mpmath.mpf(0.5)) / n
             for a, b in zip(w, z, strict=True)]
    for path, got in _both(lambda: d.grad_fn(z, y)).items():
        assert _ulps(got, exact, np.float64).max() <= 1, path


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_multilabel_huge_class_weight_times_a_cancelling_sigmoid_difference(reduction):
    """wᵢ(σ(xᵢ) − yᵢ)/C with the class weight 2.76e303 at x = −1e-9, y = 0.5 (4.0e8 ulp,
    5.7e8 with the mean, before ddouble.t_scale): within 1 ulp on both evaluators."""
    mpmath.mp.dps = 60
    d = symloss.derive("multilabel_soft_margin_loss", reduction=reduction, weight=_EXTREME_W)
    x, y = np.array([[-1e-9, 0.0, 0.0, 0.0]]), np.full((1, 4), 0.5)
    exact = [mpmath.mpf(float(_EXTREME_W[k])) * (_mp_sigmoid(x[0, k]) - mpmath.mpf(0.5)) / 4
             for k in range(4)]
    for path, got in _both(lambda: d.grad_fn(x, y)).items():
        assert _ulps(got, exact, np.float64).max() <= 1, path


def test_multilabel_row_loss_keeps_a_weighted_softplus_at_the_normal_edge():
    """Σₖ wₖ softplus(xₖ)/C at x₁ = −708.396 (softplus ≈ 2.2e-308) under the class weight
    2.76e303: the row is sent to the exact value (layout.scaled_from_underflow), whose written-
    out row rewrote softplus as log(1 + eˣ), 0 at 40 and 120 digits (6.9e10 ulp off);
    symloss.exact keeps softplus whole: within 1 ulp on both evaluators."""
    mpmath.mp.dps = 60
    d = symloss.derive("multilabel_soft_margin_loss", reduction="none", weight=_EXTREME_W)
    x, y = np.array([[-708.396, 0.0, 0.0, 0.0]]), np.zeros((1, 4))
    exact = mpmath.fsum(mpmath.mpf(float(_EXTREME_W[k])) * _mp_softplus(x[0, k])
                        for k in range(4)) / 4
    for path, got in _both(lambda: np.atleast_1d(d.loss_fn(x, y))).items():
        assert _ulps(got, [exact], np.float64).max() <= 1, path


def test_bce_weighted_loss_keeps_log1p_of_a_tiny_probability_in_the_exact_value():
    """−w(y·max(log p, −100) + (1 − y)·log1p(−p)) at p ≈ y = 1e-300, w = 13.93: the element
    is sent to the exact value (its result below w·2⁻⁹⁶⁸), whose clamped_log(1 − p) turned
    into log(1) once the floats were substituted (1 − 10⁻³⁰⁰ is 1 to 120 digits): 8.2e13 ulp;
    symloss.exact evaluates it as log1p(−p): within 1 ulp on both evaluators."""
    mpmath.mp.dps = 60
    p, y = np.array([9.999999999999994e-301]), np.array([1e-300])
    w = np.array([13.934972991823525])
    d = symloss.derive("binary_cross_entropy", reduction="none", weight=w)
    p_, y_ = mpmath.mpf(float(p[0])), mpmath.mpf(float(y[0]))
    exact = mpmath.mpf(float(w[0])) * (100 * y_ - (1 - y_) * mpmath.log1p(-p_))
    for path, got in _both(lambda: np.atleast_1d(d.loss_fn(p, y))).items():
        assert _ulps(got, [exact], np.float64).max() <= 1, path


#: binary_cross_entropy_with_logits' loss points of the accuracy search's extreme weights:
#: (z, y, weight, pos_weight); the second's weight is its moderate GIVEN one.
_BCEL_EXTREME_LOSS = [
    (-11400.0, 0.2697867137638703, None, 9.556779765401e-311),
    (-11399.999999999998, 0.2697867137638703, 1.9127768278121948, 5.31003210546e-312),
    (-709.7819999999999, 0.9999999999999999, 5.4772997e-317, 5.403971067253436e+306),
]


@pytest.mark.parametrize("z, y, w, pw", _BCEL_EXTREME_LOSS)
def test_bce_with_logits_loss_with_a_subnormal_or_overflowing_weighted_term(z, y, w, pw):
    """w(w₊·y·softplus(−z) + (1 − y)softplus(z)): with a subnormal pos_weight, w₊·y was
    rounded first, a subnormal number (316 and 4.3e3 ulp); layout.weight_last multiplies the
    weights last, w₊·(y·softplus(−z)). With a subnormal weight and pos_weight 5.4e306 the
    inner sum overflowed (inf, exactly 2.1e-7); layout.scaled_from_underflow sends an
    infinite result under a scale below 1 to the exact value. Within 1 ulp on both
    evaluators."""
    mpmath.mp.dps = 60
    options = {"pos_weight": np.array([pw])}
    if w is not None:
        options["weight"] = np.array([w])
    d = symloss.derive("binary_cross_entropy_with_logits", reduction="none", **options)
    y_ = mpmath.mpf(y)
    exact = mpmath.mpf(1.0 if w is None else w) * (
        mpmath.mpf(pw) * y_ * _mp_softplus(-z) + (1 - y_) * _mp_softplus(z))
    assert abs(exact) >= np.finfo(np.float64).tiny
    for path, got in _both(lambda: np.atleast_1d(d.loss_fn(np.array([z]), np.array([y])))
                           ).items():
        assert _ulps(got, [exact], np.float64).max() <= 1, path


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_multilabel_huge_class_weight_over_c_where_the_quotient_passes_2_to_the_996(reduction):
    """wᵢ(σ(xᵢ) − yᵢ)/C with the class weight 2.76e303 at x = 0.01, y = 0.5: the quotient
    1.7e300 is above 2⁹⁹⁶, where the pair division's Dekker split of it overflowed (the float
    form answered: 132 ulp, 188 with the mean; the evaluators 7 ulp apart); ddouble.t_quot
    scales it: within 1 ulp on both evaluators."""
    mpmath.mp.dps = 60
    d = symloss.derive("multilabel_soft_margin_loss", reduction=reduction, weight=_EXTREME_W)
    x, y = np.array([[0.01, 0.0, 0.0, 0.0]]), np.full((1, 4), 0.5)
    exact = [mpmath.mpf(float(_EXTREME_W[k])) * (_mp_sigmoid(x[0, k]) - mpmath.mpf(0.5)) / 4
             for k in range(4)]
    for path, got in _both(lambda: d.grad_fn(x, y)).items():
        assert _ulps(got, exact, np.float64).max() <= 1, path


@pytest.mark.parametrize("path", PATHS)
def test_per_class_rescue_writes_one_row_expression_for_every_class(path, monkeypatch):
    """multilabel_soft_margin_loss's gradient wᵢ(σ(zᵢ) − yᵢ)/C reads its row only at class i:
    the exact rescue writes it out once and reads each class's own entries, where it wrote out
    (and printed) one expression per class: 4099 classes, 1183 to rescue, > 120 s. The values
    are the per-class route's, bit for bit, and within 4 ulp of mpmath's at 60 digits."""
    from symloss import exact

    rng = np.random.default_rng(21)
    c = 300
    x = rng.standard_normal((4, c)) * 4
    sig = 1.0 / (1.0 + np.exp(-x))
    y = np.clip(sig * (1 + rng.standard_normal(sig.shape) * 1e-17), 0.0, 1.0)
    weight = rng.uniform(0.5, 2.0, c)
    weight[::3] = 0.0  # a weight 0: the kernels certify no 0, the rescue answers it
    d = symloss.derive("multilabel_soft_margin_loss", reduction="none", weight=weight)
    written = []
    row_expression = exact.row_expression

    def counted(*args):
        written.append(args[1:])
        return row_expression(*args)

    monkeypatch.setattr(exact, "row_expression", counted)
    monkeypatch.setattr(exact, "_CLASS_ROWS", {})
    got = _grad(d, x, y, path)
    assert 1 <= len(written) <= 2, written[:5]  # once (per target kind), not once per class
    monkeypatch.setattr(exact, "_own_class_only", lambda template: False)
    per_class = _grad(d, x, y, path)
    assert len(written) > c // 3
    np.testing.assert_array_equal(got, per_class)
    with mpmath.workdps(60):
        want = [weight[j] * (1 / (1 + mpmath.exp(-mpmath.mpf(x[r, j]))) - mpmath.mpf(y[r, j])) / c
                for r in range(4) for j in range(c)]
    assert _ulps(got, want, np.float64).max() <= 4
