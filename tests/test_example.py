"""Worked examples: every step with its numbers, the seed notebook's numbers for bce."""

from __future__ import annotations

import numpy as np
import pytest

import symloss
from symloss.cli import main
from symloss.documents import documents
from symloss.errors import SymlossTypeError, SymlossValueError

Z = [-1.7723, -1.5965, 0.8863]  # the seed notebook's inputs
Y = [0.0, 1.0, 0.0]


def test_bce_notebook_numbers():
    ex = symloss.derive("bce").example(Z, Y)
    assert ex.value("Link") == "[0.1453, 0.1685, 0.7081]"  # σ(z)
    assert ex.value("Per-element loss") == "[0.1570, 1.7810, 1.2314]"  # ℓ
    assert ex.value("Reduction") == "1.0565"  # the mean
    assert ex.value("Product") == "[0.1453, -0.8315, 0.7081]"  # unreduced gradient σ(z) − y
    assert ex.value("Canonical form") == "[0.1453, -0.8315, 0.7081]"
    assert ex.value("Reduced gradient") == "[0.0484, -0.2772, 0.2360]"  # /3


def test_product_step_shows_the_cancellation():
    """−(y/p − (1−y)/(1−p))·p(1−p) = −(y(1−p) − (1−y)p) = p − y, as the notebook writes."""
    import sympy as sp

    d = symloss.derive("bce")
    product = next(s for s in d.steps if s.title == "Product")
    p, y = sp.Symbol("p", positive=True), sp.Symbol("y", real=True)
    assert product.checked
    assert p * (1 - y) - y * (1 - p) in product.rhs  # the cancelled line
    assert p - y in product.rhs


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex"])
def test_every_format_prints_the_numbers(fmt):
    ex = symloss.derive("bce").example(Z, Y)
    out = ex.latex(document=True) if fmt == "latex" else getattr(ex, fmt)()
    for number in ("0.1453", "1.7810", "1.0565", "-0.8315", "0.2360"):
        assert number in out
    if fmt == "latex":
        out.encode("ascii")


def _draw(domain, rng, n):
    """n values inside ``domain`` (read from the declaration), away from its ends."""
    if domain.values is not None:
        return np.resize(np.array(domain.values), n)
    lo, hi = max(domain.lo, -2.0), min(domain.hi, 2.0)
    if domain.integer:
        return rng.integers(int(lo), int(hi) + 1, size=n).astype(np.float64)
    return rng.uniform(lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo), size=n)


def _arrays(d, rng):
    name = d.name
    if d.spec.family == "rows":  # rows of 3 features (class scores for multilabel_margin_loss)
        if name == "multilabel_margin_loss":
            return [rng.normal(size=(2, 3)), np.array([[2, -1, 0], [0, 1, 1]])]
        vectors = [rng.normal(size=(2, 3)) for a in d.spec.arguments if a != "target"]
        return vectors + ([np.array([1.0, -1.0])] if "target" in d.spec.arguments else [])
    if d.spec.family != "elementwise":
        z = rng.normal(size=(2, 3))
        if d.name == "multilabel_soft_margin_loss":
            return [z, np.array([[0.0, 1, 1], [1, 0, 0]])]
        return [z, np.array([2, 0])]
    return [_draw(a.domains[0], rng, 3) for a in d.spec.arguments_for(d.options)]


CASES = [(stem, name, options) for stem, name, options in documents()]


@pytest.mark.parametrize(("stem", "name", "options"), CASES, ids=[c[0] for c in CASES])
def test_every_catalogue_loss_has_a_worked_example(stem, name, options):
    d = symloss.derive(name, **options)
    ex = d.example(*_arrays(d, np.random.default_rng(7)))
    for out in (ex.text(), ex.markdown(), ex.latex(document=True)):
        assert out.count("[") >= 3
    per_element = ex.values("Per-element loss")
    assert per_element is not None
    # The per-element numbers (SymPy, step by step) reduce to loss_fn (the NumPy path).
    reduction = d.options.get("reduction", "mean")
    if reduction == "none":
        np.testing.assert_allclose(per_element, ex.loss, rtol=1e-9)
    elif reduction == "sum":
        assert np.isclose(per_element.sum(), ex.loss, rtol=1e-9)
    else:
        assert np.isclose(per_element.mean(), ex.loss, rtol=1e-9)
    # The canonical form's numbers, reduced, are grad_fn's.
    canonical = ex.values("Canonical form")
    assert canonical is not None
    if reduction == "mean" and name not in ("kl_div", "multilabel_soft_margin_loss"):
        count = per_element.size
        np.testing.assert_allclose(canonical / count, ex.grad, rtol=1e-8, atol=1e-12)


def test_example_errors_are_clear():
    d = symloss.derive("bce")
    with pytest.raises(SymlossTypeError, match="takes 2 arrays"):
        d.example(Z)
    with pytest.raises(SymlossValueError, match="at most 64"):
        d.example(np.zeros(100), np.zeros(100))


def test_cli_worked_example(capsys):
    assert main(["derive", "bce", "--input", *map(str, Z), "--target", "0", "1", "0"]) == 0
    out = capsys.readouterr().out
    assert "[0.0484, -0.2772, 0.2360]" in out and "1.0565" in out
    assert main(["derive", "ce", "--input", "1", "2", "0.5", "0.1", "0.2", "-1", "--classes", "3",
                 "--target", "2", "0", "--format", "latex"]) == 0
    assert capsys.readouterr().out.count(r"\left[") >= 3
    assert main(["derive", "bce", "--input", "1"]) == 2
    assert "needs both --input and --target" in capsys.readouterr().err


def test_example_document_compiles_with_pdflatex(tmp_path):
    import os
    import shutil
    import subprocess

    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pdflatex is missing on CI")
        pytest.skip("pdflatex not installed")
    ex = symloss.derive("bce").example(Z, Y)
    (tmp_path / "e.tex").write_text(ex.latex(document=True))
    run = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "e.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]


def test_a_long_array_wraps_in_rows():
    ex = symloss.derive("bce").example(np.linspace(-2, 2, 14), np.ones(14))
    numbers = [line for line in ex.text().splitlines() if "0.0629" in line or "0.0085" in line]
    assert len(numbers) == 2 and all(len(line) < 80 for line in numbers)
    assert r"\begin{array}{rrrrrr}" in ex.latex()
