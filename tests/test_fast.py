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
