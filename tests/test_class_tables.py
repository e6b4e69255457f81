"""Per-class tables of scale pairs in the flattened class-axis kernels (symloss.fast).

A class-axis gradient that reads only its own class (multilabel_soft_margin_loss's
``wᵢ(σ(xᵢ) − yᵢ)/C``) runs as element-wise kernels over the flattened ``rows × C`` elements
(``grad_flat``); the pair of its scale ``wᵢ/C`` is computed once per class into a table
(``_Printer._scale_pair``, ``_by_class``), not in every element. These tests check that those
kernels give the class-axis kernels' bits (which computed the same pair once per class too),
on hard, soft and mixed targets, with class weights that include 0, and that the gradient
the library answers with is the same for every row layout."""

from __future__ import annotations

import re

import numpy as np
import pytest

import symloss
from symloss import fast

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba is not installed")

LOSS = "multilabel_soft_margin_loss"


def _inputs(rng: np.random.Generator, rows: int, classes: int, dtype: str,
            kind: str) -> tuple[np.ndarray, np.ndarray]:
    z = (rng.standard_normal((rows, classes)) * 3).astype(dtype)
    hard = (rng.random((rows, classes)) < 0.3).astype(dtype)
    soft = rng.random((rows, classes)).astype(dtype)
    if kind == "hard":
        return z, hard
    if kind == "soft":
        return z, soft
    return z, np.where(rng.random((rows, classes)) < 0.5, hard, soft).astype(dtype)


def _weight(rng: np.random.Generator, classes: int, dtype: str) -> np.ndarray:
    w = rng.uniform(0.5, 2.0, classes)
    w[::3] = 0.0  # zero weights: a zero scale pair, the double-double tier answers there
    w[1] = 3.0e-5
    return w.astype(dtype)


@pytest.mark.parametrize("dtype", ["float64"])  # float32's class-axis kernel: other forms
@pytest.mark.parametrize("kind", ["hard", "soft", "mixed"])
@pytest.mark.parametrize("shape", [(1, 7), (37, 10), (900, 10), (5000, 3)])
def test_flat_kernels_give_the_class_axis_bits(dtype: str, kind: str,
                                               shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(hash((dtype, kind, shape)) % 2**32)
    rows, classes = shape
    z, y = _inputs(rng, rows, classes, dtype, kind)
    w = _weight(rng, classes, dtype)
    module = fast.build(symloss.derive(LOSS, weight=w)).module.load()
    flavour = "m"
    for divisor in (1.0, float(rows)):
        axis = np.empty_like(z)
        flag = np.zeros(1, np.uint8)
        getattr(module, f"grad_soft_{flavour}_s")(axis, divisor, flag, 1, z, fast._NO_LABELS, y,
                                                    w, -100)
        flat = np.empty(z.size, z.dtype)
        flat_flag = getattr(module, f"grad_flat_{flavour}_s")(flat, divisor, z.reshape(-1),
                                                              y.reshape(-1), w, float(classes))
        flat = flat.reshape(z.shape)
        # the same bits, NaN (left for symloss.exact) at the same elements, the same flag
        nan = np.isnan(axis)
        assert np.array_equal(nan, np.isnan(flat))
        bits = f"u{z.itemsize}"
        assert np.array_equal(axis[~nan].view(bits), flat[~nan].view(bits))
        assert bool(flag[0]) == bool(flat_flag)


def _kernel(source: str, name: str) -> str:
    at = source.index(f"\ndef {name}(")
    end = source.find("\n@njit", at + 1)
    return source[at:end if end >= 0 else len(source)]


def test_the_scale_pair_is_a_table_in_float64_only() -> None:
    """The float64 flat kernel reads ``w/C``'s pair from its per-class table (no double-double
    quotient in its float form's loops); the float32 one takes no pair, so gathers no table."""
    w = np.linspace(0.5, 2.0, 10)
    source = fast.build(symloss.derive(LOSS, weight=w)).module.source
    m = _kernel(source, "grad_flat_m")
    assert "k3[ik], k4[ik] = vd_t_quot(" in m
    first = m[m.index("sigmoid_subq_s_w(") - 200:m.index("sigmoid_subq_s_w(") + 60]
    assert "sigmoid_subq_s_w(x0, x1, (x3, x4))" in first and "vd_t_quot" not in first
    v = _kernel(source, "grad_flat_v")
    assert not re.search(r"\b[kx]3\b", v)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_grad_fn_with_a_class_weight_is_exact_where_certified(dtype: str) -> None:
    """grad_fn (the flat kernels, float64 too) against the NumPy evaluator: at most one float
    apart, the same where both are exact (0 weights: exactly 0)."""
    rng = np.random.default_rng(11)
    z, y = _inputs(rng, 300, 10, dtype, "mixed")
    w = _weight(rng, 10, dtype)
    d = symloss.derive(LOSS, weight=w)
    got = d.grad_fn(z, y)
    with fast.disabled():
        want = symloss.derive(LOSS, weight=w).grad_fn(z, y)
    assert got.dtype == want.dtype == np.dtype(dtype)
    assert np.all(got[:, ::3] == 0.0)
    assert not np.isnan(got).any()
    gap = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert np.all(gap <= np.spacing(np.maximum(np.abs(got), np.abs(want))))
