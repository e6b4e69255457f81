"""cross_entropy's Hessian-vector product with class weights and label smoothing: the scale
``S = Σₖ((1 − ε)yₖ + ε/C)wₖ`` multiplies the rounded pair ``pᵢ(vᵢ − v̄)``, and both evaluators
now compute it as the declaration writes it (the kernels no longer reduce it for a class index
or split it for a distribution: ``symloss.fast._scales_as_written``). On main the float64 hvp
of the two evaluators was 2-4 floats apart wherever weights and label smoothing were both
given (benchmarks/accuracy.py --variants-only --only cross_entropy nll_loss, exit 1)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import symloss
from symloss import fast

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba is not installed")


def _floats_apart(a: np.ndarray, b: np.ndarray) -> int:
    """The largest distance in floats between ``a`` and ``b`` (same dtype, finite)."""
    bits = {np.dtype(np.float64): np.int64, np.dtype(np.float32): np.int32}[a.dtype]
    ia, ib = a.view(bits).astype(np.int64), b.view(bits).astype(np.int64)
    # (ordered as integers on each side of 0)
    ia = np.where(ia < 0, np.iinfo(bits).min - ia, ia)
    ib = np.where(ib < 0, np.iinfo(bits).min - ib, ib)
    return int(np.max(np.abs(ia - ib)))


def _inputs(seed: int, rows: int, classes: int, soft: bool,
            dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = (rng.normal(0.0, 3.0, (rows, classes))).astype(dtype)
    v = rng.normal(0.0, 1.0, (rows, classes)).astype(dtype)
    t = (rng.dirichlet(np.ones(classes), rows).astype(dtype) if soft
         else rng.integers(0, classes, rows))
    return z, t, v


#: (seed, classes, label_smoothing, weights: "none" | "uniform" (0.1 … 3) | "spread" (10^±3))
CASES = [
    (0, 10, 0.1, "uniform"),
    (1, 10, 0.999, "uniform"),
    (2, 10, 1e-7, "spread"),
    (3, 3, 0.3, "spread"),
    (4, 37, 0.1, "spread"),
    (5, 7, 0.3, "none"),
    (6, 1000, 0.05, "uniform"),
]


def _options(seed: int, classes: int, eps: float, weights: str) -> dict[str, object]:
    rng = np.random.default_rng(100 + seed)
    options: dict[str, object] = {"label_smoothing": eps}
    if weights == "uniform":
        options["weight"] = rng.uniform(0.1, 3.0, classes)
    elif weights == "spread":
        options["weight"] = 10.0 ** rng.uniform(-3.0, 3.0, classes)
    return options


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
@pytest.mark.parametrize(("seed", "classes", "eps", "weights"), CASES,
                         ids=[f"C{c}-eps{e}-{w}" for _, c, e, w in CASES])
def test_hvp_evaluators_agree(seed, classes, eps, weights, soft, reduction, dtype):
    rows = 64 if classes >= 1000 else 400
    z, t, v = _inputs(seed, rows, classes, soft, dtype)
    d = symloss.derive("cross_entropy", reduction=reduction,
                       **_options(seed, classes, eps, weights))
    kernels = np.asarray(d.hvp_fn(z, t, v))
    with fast.disabled():
        numpy = np.asarray(d.hvp_fn(z, t, v))
    assert kernels.dtype == numpy.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(kernels)) and np.all(np.isfinite(numpy))
    assert _floats_apart(kernels, numpy) <= 1, _floats_apart(kernels, numpy)


def _exact_hvp(z: np.ndarray, t: np.ndarray, v: np.ndarray, eps: float,
               w: np.ndarray) -> list[list[mpmath.mpf]]:
    """``S·pᵢ(vᵢ − Σₖ pₖvₖ)`` per row at 60 digits (reduction='sum': no divisor)."""
    out = []
    c = z.shape[1]
    for row in range(z.shape[0]):
        zs = [mpmath.mpf(float(x)) for x in z[row]]
        e = [mpmath.exp(x - max(zs)) for x in zs]
        p = [x / mpmath.fsum(e) for x in e]
        y = ([mpmath.mpf(float(x)) for x in t[row]] if t.ndim == 2
             else [mpmath.mpf(1 if k == t[row] else 0) for k in range(c)])
        s = mpmath.fsum(((1 - mpmath.mpf(eps)) * y[k] + mpmath.mpf(eps) / c)
                        * mpmath.mpf(float(w[k])) for k in range(c))
        vs = [mpmath.mpf(float(x)) for x in v[row]]
        mean = mpmath.fsum(p[k] * vs[k] for k in range(c))
        out.append([s * p[i] * (vs[i] - mean) for i in range(c)])
    return out


@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
def test_hvp_within_the_goal_of_the_exact_value(soft):
    z, t, v = _inputs(7, 40, 10, soft, "float64")
    options = _options(7, 10, 0.999, "spread")
    d = symloss.derive("cross_entropy", reduction="sum", **options)
    results = [np.asarray(d.hvp_fn(z, t, v))]
    with fast.disabled():
        results.append(np.asarray(d.hvp_fn(z, t, v)))
    with mpmath.workdps(60):
        exact = _exact_hvp(z, t, v, 0.999, options["weight"])  # type: ignore[arg-type]
        for got in results:
            for row, values in enumerate(exact):
                for i, want in enumerate(values):
                    ulp = np.spacing(abs(float(want)))
                    err = float(abs(mpmath.mpf(float(got[row, i])) - want)) / ulp
                    assert err <= 4.0, (row, i, got[row, i], want, err)
