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
