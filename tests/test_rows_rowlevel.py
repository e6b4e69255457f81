"""The row losses' row-level tier (rows_compiled, "The row-level tier"): the same bits as the
tiers after it, at random and adversarial float32 rows."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

import symloss
from symloss import fast, rows, rows_compiled

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba missing")

ROW_LOSSES = ("cosine_embedding_loss", "triplet_margin_loss", "multilabel_margin_loss")


def _adversarial(name: str, arrays: tuple[np.ndarray, ...], rng: np.random.Generator
                 ) -> tuple[np.ndarray, ...]:
    """speed.py's rows, a third of them made hard: nearly (anti)parallel or equidistant rows,
    near-ties, exact zeros, scales from 10⁻⁴⁴ (subnormal) to 10³⁶."""
    out = [np.array(a, copy=True) for a in arrays]
    x = out[0]
    rows_ = x.shape[0]
    kinds = rng.integers(0, 9, size=rows_)
    for r in range(rows_):
        k = int(kinds[r])
        noise = rng.standard_normal(x.shape[1:]).astype(x.dtype)
        if name == "cosine_embedding_loss":
            b = out[1]
            if k == 0:
                b[r] = x[r] * np.float32(rng.uniform(0.5, 2)) + noise * np.float32(1e-6)
            elif k == 1:
                b[r] = -x[r] + noise * np.float32(1e-7)
            elif k == 2:
                b[r] = x[r]
        elif name == "triplet_margin_loss":
            p, n_ = out[1], out[2]
            if k == 0:
                n_[r] = p[r] + noise * np.float32(1e-6)
            elif k == 1:
                d = np.float32(rng.uniform(0.5, 2))
                p[r], n_[r] = x[r] + d * noise, x[r] - d * noise
            elif k == 2:
                p[r] = x[r]
        else:  # multilabel: near-ties of 1 + x_j - x_i
            if k in (0, 1):
                j = int(rng.integers(0, x.shape[1]))
                x[r] = x[r, j] - 1.0 + noise * np.float32(1e-7)
            elif k == 2:
                x[r, : x.shape[1] // 2] = 0.0
        if k == 3:
            x[r] = 0.0
        elif k in (4, 5, 6):
            scale = np.float32((1e-44, 1e-30, 1e30)[k - 4])
            for a in out[: 3 if name == "triplet_margin_loss" else
                         (2 if name == "cosine_embedding_loss" else 1)]:
                a[r] = a[r] * scale
        elif k == 7:
            x[r, 0] = np.float32(1e-40)  # a subnormal element
    return tuple(out)


def _compare(name: str, rows_: int) -> tuple[int, int]:
    import speed
    from rows_ab import kernel_args

    rng = np.random.default_rng(7)
    d = symloss.derive(speed._loss(name), reduction="sum",
                       **speed.entry_options(name, "float32"))
    adapter = rows.RowAdapter(d)
    arrays = speed.inputs(name, rows_ * 10, "float32")
    arrays = _adversarial(name, arrays, rng)
    v = rng.standard_normal(arrays[0].shape).astype(np.float32)
    p = adapter.prepare(*arrays)
    raw = {**p.raw, "v": v}
    count = math.prod(p.rows)
    keys = [f"grad:{adapter.differentiable[0]}"] + (
        ["hvp"] if name != "multilabel_margin_loss" else [])
    handed = total = 0
    for key in keys:
        kernel = adapter._kernel(key)
        built = rows_compiled.build(kernel)
        assert built is not None and built.row_text is not None
        plain = rows_compiled.Compiled(built.text, built.params, built.free)
        args = kernel_args(built.params, raw, p.rows, p.width)
        shape = (count, p.width) if built.free else (count,)
        tol = 2.0 ** -24
        results = []
        for compiled in (plain, built):
            out = np.full(shape, np.nan, dtype=np.float32)
            bad = np.zeros(count, dtype=np.bool_)
            compiled.run("f64", out, bad, tol, p.width, 1.0, *args)
            results.append((out, bad))
        (a, abad), (b, bbad) = results
        np.testing.assert_array_equal(abad, bbad)
        ok = ~abad
        # the same bits (NaN where both are)
        np.testing.assert_array_equal(a[ok].view(np.uint32), b[ok].view(np.uint32))
        row_out = np.full(shape, np.nan, dtype=np.float32)
        row_bad = np.zeros(count, dtype=np.bool_)
        built.get("row")(row_out, row_bad, tol / 2.0, p.width, 1.0, *args)
        handed += int(row_bad.sum())
        total += count
        # the row tier vouches for most rows (a third of them are adversarial)
        assert row_bad.sum() < 0.6 * count, (key, int(row_bad.sum()), count)
    return handed, total


@pytest.mark.parametrize("name", ROW_LOSSES)
def test_row_tier_same_bits(name: str) -> None:
    _compare(name, 600)


def test_row_tier_texts() -> None:
    """Every row loss's kernels have a row-level form, and it names no loss: it is printed from
    the expression (an unsupported operation per element gives none, not an error)."""
    import speed

    for name in ROW_LOSSES:
        d = symloss.derive(speed._loss(name), reduction="mean",
                           **speed.entry_options(name, "float32"))
        adapter = rows.RowAdapter(d)
        kernel = adapter._kernel(f"grad:{adapter.differentiable[0]}")
        text, _ = rows_compiled.source(kernel.expr, kernel.args, kernel.views, kernel.slots,
                                       kernel.free, rowlevel=True)
        assert "r_add" in text or "r_mul" in text or "r_sum" in text
        assert name not in text
