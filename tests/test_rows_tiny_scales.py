"""The row kernels at either end of the float range: products that underflow or overflow.

A row scaled to 10⁻³⁰⁰ has squares and dot products of 10⁻⁶⁰⁰, 0 in float64. The compiled
(numba) tiers counted a product below the smallest normal number as exactly split, so
cosine_embedding_loss's ``Σ a·b`` came out an exact 0 and, at y = −1, ``max(0, c)`` took the
flat side: a gradient of 0 where the exact one is −1.29·10⁻²⁸⁸, a normal number. The tiers now
count each product's (and quotient's, root's) loss to the subnormals
(:mod:`symloss.rows_compiled`, "Underflow"), so such a row is handed on to the tier that can
decide it. One table of (loss, options) × scales, one comparison: the compiled evaluator
against the NumPy one (within 1 ulp, as tests/test_row_losses.py's evaluator test at ordinary
scales), plus the reported case against its exact value.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: the helper modules
import symloss
from _torch_ref import seed
from test_row_losses import _cosine_exact, _ulps_apart, _ulps_of, evaluated_both_ways

pytest.importorskip("numba")

COSINE, TRIPLET, MULTILABEL = "cosine_embedding_loss", "triplet_margin_loss", "multilabel_margin_loss"

#: Row scales per dtype: subnormal elements, squares that underflow (10⁻³⁰⁰, 10⁻¹⁶⁰ in
#: float64), squares or products of norms that overflow (10¹⁵⁰, 10³⁰⁰).
SCALES = {
    "float64": (2e-311, 1e-300, 1e-160, 1e150, 1e300),
    "float32": (1e-41, 1e-30, 1e-20, 1e15, 1e30),
}

#: One case per kind of row kernel (as tests/test_row_losses.py's EVALUATOR_CASES), and
#: triplet_margin_loss without its ε (a distance of tiny differences alone).
CASES = [
    (COSINE, {}),
    (COSINE, {"margin": -0.4}),
    (TRIPLET, {}),
    (TRIPLET, {"eps": 0.0}),
    (TRIPLET, {"p": 1.0, "swap": True}),
    (MULTILABEL, {}),
]


def _points(name: str, dtype: str, scale: float) -> list[list[Any]]:
    """Random rows at ``scale``, and nearly parallel / antiparallel ones (the cosine's sign,
    the triplet's two distances nearly equal), each label of a ±1 target on every kind."""
    rng = np.random.default_rng(seed((name, dtype, scale)))
    shape = (8, 5)
    n_vectors = {COSINE: 2, TRIPLET: 3, MULTILABEL: 1}[name]
    base = [rng.standard_normal(shape) for _ in range(n_vectors)]
    if name == COSINE:
        rest: list[Any] = [np.where(np.arange(shape[0]) % 2 == 0, 1.0, -1.0).astype(dtype)]
    elif name == MULTILABEL:
        rest = [rng.integers(-1, shape[1], size=shape)]
    else:
        rest = []
    kinds = [base]
    if name != MULTILABEL:
        for sign in (1.0, -1.0):
            kinds.append([base[0]] + [sign * base[0] + 1e-6 * v for v in base[1:]])
    with np.errstate(over="ignore"):
        return [[(v * scale).astype(dtype) for v in vs] + rest for vs in kinds]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("name", "options"), CASES)
def test_compiled_and_numpy_evaluators_agree_at_tiny_and_huge_scales(name, options, dtype,
                                                                     monkeypatch):
    from symloss import rows

    monkeypatch.setattr(rows, "COMPILED_MIN_SIZE", 0)  # the compiled kernels on these few rows
    d = symloss.derive(name, **options)
    per_row = d.with_options(reduction="none")
    failures = []
    for scale in SCALES[dtype]:
        for arrays in _points(name, dtype, scale):
            for label, compiled, plain in evaluated_both_ways(name, d, arrays, dtype, per_row):
                apart = _ulps_apart(compiled, plain, np.dtype(dtype))
                if apart > 1:
                    failures.append((scale, label, apart))
    assert not failures, failures


@pytest.mark.parametrize("scale", [1e-300, 2e-311])
def test_cosine_dissimilar_gradient_of_underflowing_rows_is_exact(scale, monkeypatch):
    """The reported case: both rows at 10⁻³⁰⁰, y = −1, c > 0 by a dot product of 10⁻⁶⁰⁰. The
    gradient b/√(s_a s_b) − c·a/s_a is normal (s = Σx² + ε = ε: 10⁻²⁸⁸); main's compiled
    evaluator gave 0."""
    from symloss import rows

    monkeypatch.setattr(rows, "COMPILED_MIN_SIZE", 0)
    a = np.array([0.6, -0.3, 1.1, 0.2]) * scale
    b = np.array([0.9, 0.4, 0.8, -0.5]) * scale
    assert float(a @ b) == 0.0 and float(np.sum(a / scale * b / scale)) > 0  # c > 0, underflowed
    d = symloss.derive(COSINE, reduction="sum")
    _, exact = _cosine_exact(a, b, -1.0)
    for rows_a, rows_b in ((a[None], b[None]), (np.tile(a, (3, 1)), np.tile(b, (3, 1)))):
        got = d.grad_fn(rows_a, rows_b, -np.ones(len(rows_a)), wrt="input1")
        for row in np.atleast_2d(got):
            errors = [_ulps_of(g, e, "float64") for g, e in zip(row, exact, strict=True)]
            assert max(errors) <= 4.0, (row, [float(e) for e in exact])
