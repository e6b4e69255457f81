"""float64 loss values rounded once from a double-double pair, in both evaluators
(:func:`symloss.layout.rounded_once`): the NumPy evaluator and the numba kernels return the same
bits, within about half an ulp of the exact value (mpmath), where the plain float64 forms took
log/exp/log1p from NumPy and from libm, whose last bits differ."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import symloss
from symloss import fast
from symloss.testing import ulps_from_exact

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba is not installed")


def _both(name: str, *arrays: np.ndarray, **options: object) -> tuple[np.ndarray, np.ndarray]:
    """The per-element float64 values of the numba kernels and of the NumPy evaluator."""
    d = symloss.derive(name, reduction="none", **options)
    kernels = np.asarray(d.loss_fn(*arrays), dtype=np.float64)
    with fast.disabled():
        numpy = np.asarray(d.loss_fn(*arrays), dtype=np.float64)
    return kernels, numpy


def _ulps(value: float, exact: mpmath.mpf) -> float:
    return float(ulps_from_exact([value], [exact], np.float64)[0])


def _bce(p: float, y: float) -> mpmath.mpf:
    p, y = mpmath.mpf(p), mpmath.mpf(y)
    return -y * mpmath.log(p) - (1 - y) * mpmath.log1p(-p)


def _kl(z: float, y: float) -> mpmath.mpf:
    return mpmath.mpf(y) * (mpmath.log(mpmath.mpf(y)) - mpmath.mpf(z))


def _ce(z: list[float], t: int) -> mpmath.mpf:
    zs = [mpmath.mpf(v) for v in z]
    return mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zs)) - zs[t]


#: The points where benchmarks/accuracy.py found the plain float64 values 2 floats apart.
POINTS = [
    ("binary_cross_entropy", np.array([0.9350724237877679]), np.array([0.9350724237877682]),
     lambda x, y: _bce(x[0], y[0])),
    ("cross_entropy",
     np.array([[-2.9667742388216234, -1.4612638251211676, 0.09688854956769957]]),
     np.array([2]), lambda x, y: _ce(list(x[0]), int(y[0]))),
    ("kl_div", np.array([-1e-30]), np.array([0.9999999999999998]),
     lambda x, y: _kl(x[0], y[0])),
]


@pytest.mark.parametrize(("name", "x", "y", "exact"), POINTS, ids=[p[0] for p in POINTS])
def test_values_at_the_searched_points_are_one_rounding(name, x, y, exact):
    kernels, numpy = _both(name, x, y)
    assert kernels.view(np.int64)[0] == numpy.view(np.int64)[0], (kernels, numpy)
    with mpmath.workdps(60):
        want = exact(x, y)
        assert _ulps(kernels[0], want) <= 0.5 + 2.0**-20, (kernels[0], want)


def _sweep(name: str, rng: np.random.Generator, n: int) -> tuple[tuple[np.ndarray, ...], dict]:
    if name == "binary_cross_entropy":
        p = rng.uniform(0.0, 1.0, n)
        return (p, np.clip(p + rng.normal(0.0, 0.1, n), 0.0, 1.0)), {}
    if name == "kl_div":
        y = rng.uniform(0.0, 1.0, n)
        return (np.log(y) + rng.normal(0.0, 0.5, n), y), {}
    if name == "cross_entropy":
        z = rng.normal(0.0, 3.0, (n // 4, 4))
        return (z, rng.integers(0, 4, n // 4)), {}
    if name == "cross_entropy:soft":
        z = rng.normal(0.0, 3.0, (n // 4, 4))
        return (z, rng.dirichlet(np.ones(4), n // 4)), {"label_smoothing": 0.1}
    z = rng.normal(0.0, 4.0, n)
    return (z, rng.uniform(0.0, 1.0, n)), {}


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits",
                                  "kl_div", "cross_entropy", "cross_entropy:soft",
                                  "soft_margin_loss"])
def test_values_agree_bit_for_bit_at_random_points(name):
    """A seeded sweep: every float64 value the same bits in both evaluators (the plain forms
    differed in the last bit at a few elements in a thousand: np.exp and np.log1p against
    libm's)."""
    rng = np.random.default_rng(20)
    loss = name.split(":")[0]
    arrays, options = _sweep(name, rng, 4000)
    if loss == "soft_margin_loss":
        arrays = (arrays[0], np.where(arrays[1] < 0.5, -1.0, 1.0))
    kernels, numpy = _both(loss, *arrays, **options)
    apart = kernels.view(np.int64) != numpy.view(np.int64)
    assert not apart.any(), (np.flatnonzero(apart)[:5], kernels[apart][:5], numpy[apart][:5])


def test_reduced_values_agree():
    """The mean and the sum over the rounded values (the layout's reduction, as before): the
    same bits from both evaluators, at the searched points' rows and at random rows."""
    rng = np.random.default_rng(7)
    name, x, y, _ = POINTS[1]
    cases = [(np.repeat(x, 3, axis=0), np.repeat(y, 3)),
             (rng.normal(0.0, 3.0, (500, 5)), rng.integers(0, 5, 500))]
    for z, t in cases:
        for reduction in ("mean", "sum"):
            d = symloss.derive(name, reduction=reduction)
            got = float(d.loss_fn(z, t))
            with fast.disabled():
                want = float(d.loss_fn(z, t))
            assert got == want, (reduction, got, want)


@pytest.mark.parametrize(("name", "soft", "options"), [
    ("cross_entropy", False, {}),
    ("cross_entropy", True, {}),
    ("cross_entropy", False, {"label_smoothing": 0.1}),
    ("cross_entropy", True, {"label_smoothing": 0.999}),
    ("nll_loss", False, {"link": "log_softmax"}),
], ids=["ce", "ce:soft", "ce:smoothed", "ce:soft:smoothed", "nll:log_softmax"])
def test_class_weighted_values_agree_bit_for_bit(name, soft, options):
    """With class weights, ``Σₖ wₖyₖ log softmax(z)ₖ`` is one pair too (``ddouble.t_lsm_dot2``,
    each product exact): the plain float64 form was 2–3 floats apart between the evaluators
    (a class index's wₜ·log pₜ against a one-hot row's sum), which the option-variant search
    found at weight=given."""
    rng = np.random.default_rng(11)
    w = rng.uniform(0.1, 3.0, 3)
    z = rng.normal(0.0, 1.0, (3000, 3)) * rng.choice([1e-4, 1.0, 10.0, 300.0], (3000, 1))
    y = rng.dirichlet(np.ones(3), 3000) if soft else rng.integers(0, 3, 3000)
    kernels, numpy = _both(name, z, y, weight=w, **options)
    apart = kernels.view(np.int64) != numpy.view(np.int64)
    assert not apart.any(), (np.flatnonzero(apart)[:5], kernels[apart][:5], numpy[apart][:5])
