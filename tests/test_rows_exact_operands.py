"""The float64 first tier's operations on exact operands (rows_compiled, "The float64 first
tier": ``_exact_operands``): the same values and the same rows handed on as the general
operations, at random and adversarial float64 rows."""

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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba missing")

ROW_LOSSES = ("cosine_embedding_loss", "triplet_margin_loss", "multilabel_margin_loss")


def _float64_rows(name: str, rows_: int) -> tuple[rows.RowAdapter, tuple[np.ndarray, ...],
                                                  np.ndarray]:
    """speed.py's float64 rows, a third of them test_rows_rowlevel's adversarial ones, and a
    tenth of them scaled to 10⁻³⁰⁰, 10⁻¹⁶⁰ (products below the normal range) or 10³⁰⁰, and a
    few with a NaN or infinite element."""
    import speed

    from test_rows_rowlevel import _adversarial

    rng = np.random.default_rng(11)
    d = symloss.derive(speed._loss(name), reduction="sum",
                       **speed.entry_options(name, "float64"))
    arrays = _adversarial(name, speed.inputs(name, rows_ * 10, "float64"), rng)
    scaled = 3 if name == "triplet_margin_loss" else (2 if name == "cosine_embedding_loss"
                                                      else 1)
    for r in rng.choice(rows_, size=rows_ // 10, replace=False):
        scale = (1e-300, 1e-160, 1e300)[int(rng.integers(0, 3))]
        with np.errstate(over="ignore"):  # rows at 10³⁰ times 10³⁰⁰: infinite elements
            for a in arrays[:scaled]:
                a[r] = a[r] * scale
    x = arrays[0]
    for r in rng.choice(rows_, size=rows_ // 50, replace=False):  # a NaN or infinite element
        x[r, int(rng.integers(0, x.shape[1]))] = (math.nan, math.inf, -math.inf)[r % 3]
    v = rng.standard_normal(arrays[0].shape)
    return rows.RowAdapter(d), arrays, v


@pytest.mark.parametrize("name", ROW_LOSSES)
def test_exact_operand_operations_same_bits(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rows_ab import kernel_args

    adapter, arrays, v = _float64_rows(name, 600)
    p = adapter.prepare(*arrays)
    raw = {**p.raw, "v": v}
    count = math.prod(p.rows)
    keys = ["loss", f"grad:{adapter.differentiable[0]}"] + (
        ["hvp"] if name != "multilabel_margin_loss" else [])
    for key in keys:
        built = rows_compiled.build(adapter._kernel(key))
        assert built is not None
        rewritten = rows_compiled._exact_operands(built.text)
        # the rewrite finds exact operands (an argument's elements, constants) in every kernel
        assert "_xx(" in rewritten or "_xp(" in rewritten, key
        assert "def kernel(" in rewritten and len(rewritten.splitlines()) == len(
            built.text.splitlines())
        args = kernel_args(built.params, raw, p.rows, p.width)
        shape = (count, p.width) if built.free else (count,)
        tol = 2.0 ** -53 * (1 - 2.0 ** -12)
        results = []
        for general in (True, False):
            compiled = rows_compiled.Compiled(built.text, built.params, built.free)
            if general:
                monkeypatch.setattr(rows_compiled, "_exact_operands", lambda text: text)
            out = np.full(shape, np.nan)
            bad = np.zeros(count, dtype=np.bool_)
            compiled.get("first64")(out, bad, tol, p.width, 1.0, *args)
            monkeypatch.undo()
            results.append((out, bad))
        (a, abad), (b, bbad) = results
        np.testing.assert_array_equal(abad, bbad)
        assert 0 < abad.sum() < count, key  # adversarial rows reach the later tiers
        ok = ~abad
        np.testing.assert_array_equal(a[ok], b[ok])  # the same values (NaN where both are)


def _fused_and_not(kernel: rows.RowKernel, monkeypatch: pytest.MonkeyPatch
                   ) -> tuple[rows_compiled.Compiled, rows_compiled.Compiled]:
    fused = rows_compiled.build(kernel)
    monkeypatch.setattr(rows_compiled, "_fuse_sums", lambda lines: lines)
    plain = rows_compiled.build(kernel)
    monkeypatch.undo()
    assert fused is not None and plain is not None
    return fused, plain


@pytest.mark.parametrize("name", ROW_LOSSES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_sums_same_bits(name: str, dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """rows_compiled._fuse_sums: a row's independent sums in one loop -- every tier's values
    and rows handed on as with a loop per sum."""
    import speed
    from rows_ab import kernel_args

    from test_rows_rowlevel import _adversarial

    if dtype == "float64":
        adapter, arrays, v = _float64_rows(name, 400)
    else:
        rng = np.random.default_rng(5)
        d = symloss.derive(speed._loss(name), reduction="sum",
                           **speed.entry_options(name, "float32"))
        adapter = rows.RowAdapter(d)
        arrays = _adversarial(name, speed.inputs(name, 4000, "float32"), rng)
        v = rng.standard_normal(arrays[0].shape).astype(np.float32)
    p = adapter.prepare(*arrays)
    raw = {**p.raw, "v": v}
    count = math.prod(p.rows)
    keys = ["loss", f"grad:{adapter.differentiable[0]}"] + (
        ["hvp"] if name != "multilabel_margin_loss" else [])
    loops = 0
    for key in keys:
        fused, plain = _fused_and_not(adapter._kernel(key), monkeypatch)
        assert fused.row_text == plain.row_text  # the row-level tier's text is its own
        loops += plain.text.count(" in range(width):") - fused.text.count(" in range(width):")
        args = kernel_args(fused.params, raw, p.rows, p.width)
        shape = (count, p.width) if fused.free else (count,)
        nmant = np.finfo(dtype).nmant
        modes = [("first64", 2.0 ** -53 * (1 - 2.0 ** -12)), ("dd", 2.0 ** -53)] if (
            dtype == "float64") else [("first", 2.0 ** -25), ("f64", 2.0 ** -(nmant + 1))]
        for mode, tol in modes:
            results = []
            for compiled in (fused, plain):
                out = np.full(shape, np.nan, dtype=dtype)
                bad = np.zeros(count, dtype=np.bool_)
                compiled.get(mode)(out, bad, tol, p.width, 1.0, *args)
                results.append((out, bad))
            (a, abad), (b, bbad) = results
            np.testing.assert_array_equal(abad, bbad)
            np.testing.assert_array_equal(a[~abad], b[~bbad])
    # some sums fused (a loop fewer per row); multilabel_margin_loss's sit under guards of
    # their own (each class's hinge), which no fusion crosses
    assert (loops > 0) == (name != "multilabel_margin_loss")
