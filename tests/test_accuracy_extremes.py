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
