"""The numba fast path (symloss.fast) gives the NumPy path's answers and fails the same way."""

from __future__ import annotations

import numpy as np
import pytest

import symloss
from symloss import fast
from symloss.errors import SymlossError


@pytest.fixture(autouse=True)
def _fast_at_every_size(monkeypatch):
    """These tests compare the two paths on small arrays: lift the fast path's size floor."""
    monkeypatch.setattr(fast, "MIN_SIZE", 0)


pytestmark = pytest.mark.skipif(not fast.available(), reason="numba not installed")

RNG_SEED = 5
CASES = [
    ("bce_with_logits", {}),
    ("bce_with_logits", {"pos_weight": np.array([0.5, 2.0, 3.0])}),
    ("bce_with_logits", {"weight": np.array([1.0, 0.0, 2.0]), "reduction": "sum"}),
    ("bce", {"reduction": "none"}),
    ("ce", {}),
    ("ce", {"label_smoothing": 0.2}),
    ("ce", {"weight": np.array([1.0, 2.0, 0.5]), "ignore_index": 1}),
    ("ce", {"reduction": "sum"}),
]
TOL = {np.float32: 2e-7, np.float64: 2e-15}


def _inputs(d: symloss.Derivation, dtype: type, soft: bool, n: int = 8):
    rng = np.random.default_rng(RNG_SEED)
    x = (rng.standard_normal((n, 3)) * 6).astype(dtype)
    x[0] = [50.0, -50.0, 0.0]
    if d.spec.family == "elementwise":
        y = rng.random((n, 3)) if soft else (rng.random((n, 3)) < 0.5)
        return x, y.astype(dtype)
    if soft:
        p = rng.random((n, 3))
        return x, (p / p.sum(axis=1, keepdims=True)).astype(dtype)
    return x, rng.integers(0, 3, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("name", "options", "soft"),
    # ignore_index applies to class indices only
    [(n, o, s) for n, o in CASES for s in (False, True) if not (s and "ignore_index" in o)],
)
def test_fast_equals_numpy(name, options, soft, dtype):
    d = symloss.derive(name, **options)
    x, y = _inputs(d, dtype, soft)
    assert d._numeric.grad.__self__._fast_kernels((x, y)) is not None, fast.last_reason
    g, loss = d.grad_fn(x, y), d.loss_fn(x, y)
    with fast.disabled():
        g0, loss0 = d.grad_fn(x, y), d.loss_fn(x, y)
    assert g.dtype == g0.dtype == dtype and g.shape == g0.shape
    scale = np.max(np.abs(g0)) + np.finfo(dtype).tiny
    np.testing.assert_allclose(g, g0, rtol=TOL[dtype], atol=TOL[dtype] * scale)
    np.testing.assert_allclose(loss, loss0, rtol=TOL[dtype], atol=TOL[dtype])
    assert type(loss) is type(loss0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_kernels_and_nd_layout(dtype, monkeypatch):
    monkeypatch.setattr(fast, "PARALLEL_MIN", 1000)  # the parallel kernels, on small arrays
    rng = np.random.default_rng(RNG_SEED)
    d = symloss.derive("ce")
    x = rng.standard_normal((6, 5, 10, 10)).astype(dtype)
    t = rng.integers(0, 5, (6, 10, 10))
    t[0, 0, 0] = -100
    g = d.grad_fn(x, t)
    with fast.disabled():
        g0 = d.grad_fn(x, t)
    np.testing.assert_allclose(g, g0, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(g0).max())
    e = symloss.derive("bce_with_logits")
    z = rng.standard_normal(5003).astype(dtype)
    y = (rng.random(z.size) < 0.5).astype(dtype)
    g, g0 = e.grad_fn(z, y), None
    with fast.disabled():
        g0 = e.grad_fn(z, y)
    np.testing.assert_allclose(g, g0, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(g0).max())


@pytest.mark.parametrize(
    ("name", "x", "y"),
    [
        ("ce", np.zeros((2, 3)), np.array([0, 3])),  # class out of bounds
        ("ce", np.zeros((2, 3)), np.array([0.0, 1.0])),  # float class indices
        ("ce", np.zeros((2, 3)), np.array([0, 1, 2])),  # wrong shape
        ("bce_with_logits", np.zeros(3), np.zeros(4)),  # shape mismatch
        ("binary_cross_entropy", np.array([0.5, 1.5]), np.zeros(2)),  # not a probability
    ],
)
def test_same_errors_on_both_paths(name, x, y):
    d = symloss.derive(name)
    with pytest.raises(SymlossError) as fast_err:
        d.grad_fn(x, y)
    with fast.disabled(), pytest.raises(SymlossError) as numpy_err:
        d.grad_fn(x, y)
    assert str(fast_err.value) == str(numpy_err.value)


def test_import_symloss_does_not_import_numba():
    import subprocess
    import sys

    code = "import sys, symloss; print('numba' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


HVP_CASES = [
    ("ce", {}, False),
    ("ce", {}, True),
    ("ce", {"weight": np.array([1.0, 2.0, 0.5])}, True),
    ("ce", {"label_smoothing": 0.2}, False),
    ("ce", {"ignore_index": 1}, False),
    ("ce", {"weight": np.array([1.0, 2.0, 0.5]), "ignore_index": 1, "label_smoothing": 0.1}, False),
    ("bce_with_logits", {}, False),
    ("bce_with_logits", {"pos_weight": np.array([0.5, 2.0, 3.0])}, False),
    ("bce_with_logits", {"pos_weight": np.array([0.5, 2.0, 3.0]),
                         "weight": np.array([1.0, 0.0, 2.0])}, True),
    ("binary_cross_entropy", {"link": "sigmoid"}, False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("name", "options", "soft"), HVP_CASES)
def test_fast_hvp_equals_numpy(name, options, soft, reduction, dtype):
    """The hvp kernels printed from hvp_expr give the NumPy path's Hessian-vector product."""
    d = symloss.derive(name, reduction=reduction, **options)
    x, y = _inputs(d, dtype, soft, n=40)
    v = np.random.default_rng(RNG_SEED + 1).standard_normal(x.shape).astype(dtype)
    kernels = d._numeric.hvp.__self__._fast_kernels((x, y))
    assert kernels is not None and kernels.hvp(x, y, v) is not None, fast.last_reason
    h = d.hvp_fn(x, y, v)
    with fast.disabled():
        h0 = d.hvp_fn(x, y, v)
    assert h.dtype == h0.dtype == dtype and h.shape == h0.shape == x.shape
    scale = np.max(np.abs(h0)) + np.finfo(dtype).tiny
    np.testing.assert_allclose(h, h0, rtol=TOL[dtype], atol=TOL[dtype] * scale)
    if "ignore_index" in options:
        ignored = y == options["ignore_index"]
        assert ignored.any() and np.all(h[ignored] == 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_hvp_parallel_nd_layout_and_float64_direction(dtype, monkeypatch):
    """The parallel kernels, a (N, C, d1, d2) input and a direction of another dtype."""
    monkeypatch.setattr(fast, "PARALLEL_MIN", 1000)
    rng = np.random.default_rng(RNG_SEED)
    d = symloss.derive("ce")
    x = rng.standard_normal((6, 5, 10, 10)).astype(dtype)
    t = rng.integers(0, 5, (6, 10, 10))
    t[0, 0, 0] = -100
    v = rng.standard_normal(x.shape)  # float64 whatever the input's dtype
    h = d.hvp_fn(x, t, v)
    with fast.disabled():
        h0 = d.hvp_fn(x, t, v)
    np.testing.assert_allclose(h, h0, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(h0).max())
    e = symloss.derive("bce_with_logits")
    z = rng.standard_normal(5003).astype(dtype)
    y = (rng.random(z.size) < 0.5).astype(dtype)
    w = rng.standard_normal(z.size).astype(dtype)
    h = e.hvp_fn(z, y, w)
    with fast.disabled():
        h0 = e.hvp_fn(z, y, w)
    np.testing.assert_allclose(h, h0, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(h0).max())


def test_fast_hvp_leaves_odd_directions_to_the_numpy_path():
    """An integer direction or one of the wrong shape: the NumPy path converts or raises."""
    d = symloss.derive("ce")
    x = np.random.default_rng(RNG_SEED).standard_normal((4, 3))
    t = np.array([0, 1, 2, 0])
    kernels = d._numeric.hvp.__self__._fast_kernels((x, t))
    v = np.ones((4, 3), dtype=np.int64)
    assert kernels.hvp(x, t, v) is None
    with fast.disabled():
        expected = d.hvp_fn(x, t, v)
    np.testing.assert_allclose(d.hvp_fn(x, t, v), expected, rtol=1e-15)
    assert kernels.hvp(x, t, np.ones((4, 2))) is None
    with pytest.raises(SymlossError) as fast_err:
        d.hvp_fn(x, t, np.ones((4, 2)))
    with fast.disabled(), pytest.raises(SymlossError) as numpy_err:
        d.hvp_fn(x, t, np.ones((4, 2)))
    assert str(fast_err.value) == str(numpy_err.value)


def test_fast_hvp_unsupported_expression_falls_back(monkeypatch):
    """Where the generator cannot print hvp_expr, hvp returns None and the NumPy path answers."""
    d = symloss.derive("bce_with_logits")
    x, y = _inputs(d, np.float64, soft=False)
    kernels = d._numeric.hvp.__self__._fast_kernels((x, y))

    def unsupported() -> str:
        raise fast._Unsupported("test")

    monkeypatch.setattr(kernels, "hvp_module", None)
    monkeypatch.setattr(kernels, "_hvp_source", unsupported)
    assert kernels.hvp(x, y, x) is None
    assert "test" in (fast.last_reason or "")
    with fast.disabled():
        expected = d.hvp_fn(x, y, x)
    np.testing.assert_allclose(d.hvp_fn(x, y, x), expected, rtol=1e-15)


def test_vectorized_helpers():
    """exp_v (float32 kernels' exponential) and the vector row max of block_max."""
    from symloss._fastmath import block_max, exp_v

    x = np.concatenate([np.linspace(-708.0, 709.7, 200_001), np.linspace(-0.5, 0.5, 100_001)])
    got = np.array([exp_v(v) for v in x[::7]])
    ref = np.exp(x[::7].astype(np.longdouble))
    assert np.max(np.abs((got - ref) / ref)) < 1e-10
    assert exp_v(0.0) == 1.0  # the arg-max test of the class-axis kernels relies on it
    assert exp_v(-709.0) == exp_v(-np.inf) == 0.0 and exp_v(710.0) == exp_v(np.inf) == np.inf
    assert np.isnan(exp_v(np.nan))
    rng = np.random.default_rng(RNG_SEED)
    for dtype in (np.float32, np.float64):
        for n in (1, 7, 8, 16, 17, 37, 200):
            z = rng.standard_normal((11, n)).astype(dtype)
            ms = np.empty(16)
            block_max(z, 2, 11, ms)
            np.testing.assert_array_equal(ms[:9], z[2:].max(axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [16, 37, 300])
def test_fast_ce_wide_rows(n_classes, dtype):
    """Rows of 16+ classes: the vector max, several rows per block or one, p·v in the sum pass."""
    rng = np.random.default_rng(RNG_SEED)
    x = (rng.standard_normal((29, n_classes)) * 6).astype(dtype)
    x[0, 3] = 80.0
    v = rng.standard_normal(x.shape).astype(dtype)
    p = rng.random(x.shape)
    for y in (rng.integers(0, n_classes, 29), (p / p.sum(axis=1, keepdims=True)).astype(dtype)):
        d = symloss.derive("ce", reduction="sum")
        assert d._numeric.grad.__self__._fast_kernels((x, y)) is not None, fast.last_reason
        g, h = d.grad_fn(x, y), d.hvp_fn(x, y, v)
        with fast.disabled():
            g0, h0 = d.grad_fn(x, y), d.hvp_fn(x, y, v)
        for a, a0 in ((g, g0), (h, h0)):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, a0, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(a0).max())
