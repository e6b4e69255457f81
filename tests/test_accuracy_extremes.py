"""Hard-label gradients stay within 4 ulp of exact (mpmath) for every |z| up to 1e4."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import symloss
from symloss import fast


@pytest.fixture(autouse=True)
def _fast_at_every_size(monkeypatch):
    """These tests compare the two paths on small arrays: lift the fast path's size floor."""
    monkeypatch.setattr(fast, "MIN_SIZE", 0)


GRID = np.concatenate([-np.logspace(-8, 4, 241), [0.0], np.logspace(-8, 4, 241)])
PATHS = ["fast", "numpy"]


def _ulps(got: np.ndarray, exact: list, dtype: type) -> np.ndarray:
    tiny = np.finfo(dtype).tiny
    out = []
    for g, e in zip(got.ravel(), exact, strict=True):
        ef = abs(float(e))
        if ef < tiny and g == 0:  # flushing a subnormal result to 0 is allowed
            out.append(0.0)
            continue
        out.append(float(abs(mpmath.mpf(float(g)) - e)) / float(np.spacing(dtype(ef))))
    return np.array(out)


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
