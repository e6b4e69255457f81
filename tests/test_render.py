"""LaTeX, Markdown, text and notebook display of the derivations."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import symloss

ALL = [("bce", {}), ("binary_cross_entropy", {}), ("bce_with_logits", {"pos_weight": [2.0]}),
       ("ce", {}), ("ce", {"weight": [1.0, 2.0], "label_smoothing": 0.1})]


@pytest.mark.parametrize(("name", "options"), ALL)
def test_every_format_shows_every_step(name, options):
    d = symloss.derive(name, **options)
    latex, md, text = d.latex(), d.markdown(), d.text()
    for step in d.steps:
        assert step.title in latex and step.title in md and step.title in text
    assert latex.count(r"\intertext") == len(d.steps)
    assert md.count("$$") == 2 * len(d.steps)
    assert "NOT PROVED" not in latex + md + text


@pytest.mark.parametrize(("name", "options"), ALL)
def test_latex_is_ascii_so_pdflatex_takes_it(name, options):
    d = symloss.derive(name, **options)
    d.latex(document=True).encode("ascii")


def test_bce_text_ends_in_sigma_minus_y_proved():
    text = symloss.derive("bce").text()
    assert "Result (proved by SymPy):" in text
    assert text.rstrip().splitlines()[-2].endswith("σ(z) - y")


def test_notebook_display_hooks():
    d = symloss.derive("bce")
    shown = d._repr_latex_()
    assert shown.startswith("$$\\begin{align*}") and shown.endswith("\\end{align*}$$")
    assert "\\intertext" not in shown  # MathJax has no \intertext
    assert d._repr_markdown_() == d.markdown()


def _pdflatex() -> str | None:
    found = shutil.which("pdflatex")
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("pdflatex is missing on CI: install texlive-latex-base texlive-latex-recommended")
    return found


@pytest.mark.parametrize(("name", "options"), [ALL[0], ALL[-1]])
def test_latex_document_compiles_with_pdflatex(tmp_path, name, options):
    pdflatex = _pdflatex()
    if pdflatex is None:
        pytest.skip("pdflatex not installed")
    (tmp_path / "d.tex").write_text(symloss.derive(name, **options).latex(document=True))
    run = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "d.pdf").stat().st_size > 1000
