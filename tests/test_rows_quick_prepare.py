"""The row losses' quick layout (RowAdapter._prepare_same_shape) and small-target check give
what the general path gives: the same prepared values, the same bits, the same errors."""

from __future__ import annotations

import numpy as np
import pytest

import symloss
from symloss import rows
from symloss.errors import SymlossValueError


def _inputs(name: str, rng: np.random.Generator, shape: tuple[int, ...], dtype: str):
    a, b, c = ((rng.standard_normal(shape) * 3).astype(dtype) for _ in range(3))
    if name == "cosine_embedding_loss":
        return a, b, rng.choice([-1.0, 1.0], shape[:-1]).astype(dtype)
    if name == "multilabel_margin_loss":
        labels = np.argsort(rng.random(shape), axis=-1)
        return a, np.where(np.arange(shape[-1]) < 3, labels, -1)
    return a, b, c


@pytest.mark.parametrize("name", ["cosine_embedding_loss", "triplet_margin_loss",
                                  "multilabel_margin_loss"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_quick_layout_matches_general(name: str, dtype: str, monkeypatch) -> None:
    rng = np.random.default_rng(24)
    adapter = rows.RowAdapter(symloss.derive(name))
    for shape in [(7, 5), (1, 3), (300, 4)]:
        arrays = _inputs(name, rng, shape, dtype)
        quick = adapter._prepare_same_shape(arrays)
        assert quick is not None
        grad_quick = adapter.grad(*arrays)
        with monkeypatch.context() as m:  # the general path alone
            m.setattr(adapter, "_prepare_same_shape", lambda arrays: None)
            general = adapter.prepare(*arrays)
            grad_general = adapter.grad(*arrays)
        assert (quick.rows, quick.width, quick.dtype, quick.shapes, quick.dtypes) == (
            general.rows, general.width, general.dtype, general.shapes, general.dtypes)
        assert quick.raw.keys() == general.raw.keys()
        for key, value in general.raw.items():
            np.testing.assert_array_equal(quick.raw[key], value)
        assert grad_quick.dtype == grad_general.dtype
        assert np.array_equal(grad_quick.view(np.uint8), grad_general.view(np.uint8))


def test_quick_layout_declines_other_calls() -> None:
    adapter = rows.RowAdapter(symloss.derive("cosine_embedding_loss"))
    a = np.ones((4, 3))
    t = np.ones(4)
    assert adapter._prepare_same_shape((a, np.ones((1, 3)), t)) is None  # broadcast
    assert adapter._prepare_same_shape((a, a.astype(int), t)) is None  # integer input
    assert adapter._prepare_same_shape((a.tolist(), a, t)) is None  # not an ndarray
    assert adapter._prepare_same_shape((np.float64(1.0), np.float64(2.0), np.float64(1.0))) is None


@pytest.mark.parametrize("size", [5, 300])  # the Python check, then NumPy's
def test_sign_target_check(size: int) -> None:
    rng = np.random.default_rng(7)
    t = rng.choice([-1.0, 1.0], size)
    np.testing.assert_array_equal(rows._sign_target("x", t, (size,), 2), t)
    assert rows._sign_target("x", np.ones(size, dtype=bool), (size,), 2).dtype == np.float64
    for bad in [0.0, 2.0, np.nan, -0.5, 1.0 + 2.0 ** -52]:
        u = t.copy()
        u[size // 2] = bad
        with pytest.raises(SymlossValueError, match="1 or -1"):
            rows._sign_target("x", u, (size,), 2)
    with pytest.raises(SymlossValueError, match="1 or -1"):
        rows._sign_target("x", np.zeros(size, dtype=bool), (size,), 2)
