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


@pytest.mark.parametrize(("name", "options"), [*ALL, ("sigmoid_focal_loss", {})])
def test_notebook_markdown_uses_only_dollar_math(name, options):
    """Jupyter, nbconvert (MathJax 3) and GitHub all render $…$ / $$…$$; GitHub's own $`…`$
    shows stray quote marks elsewhere, so notebook display never uses it."""
    d = symloss.derive(name, **options)
    for shown in (d._repr_markdown_(), d._repr_latex_()):
        assert "$`" not in shown and "`$" not in shown
        assert shown.count("$$") % 2 == 0
    md = d._repr_markdown_()
    assert "**Result (proved by SymPy):**\n\n$$\n\\begin{aligned}" in md
    assert md.count("$$") == 2 * (len(d.steps) + 1)
    # derivations/*.md keep GitHub's inline syntax for a one-row headline
    if name == "bce":
        assert "$`\\frac{\\partial \\ell}{\\partial z} = \\sigma\\left(z\\right) - y`$" in d.markdown()


def test_markdown_math_choice_is_checked():
    with pytest.raises(symloss.SymlossValueError, match="portable"):
        symloss.derive("bce").markdown(math="mathjax")  # type: ignore[call-arg]


@pytest.mark.parametrize(("name", "options"), [("bce", {}), ("ce", {})])
def test_chain_rule_step_does_not_repeat_its_title(name, options):
    d = symloss.derive(name, **options)
    (step,) = [s for s in d.steps if s.title == "Chain rule"]
    assert not step.why.lower().startswith("chain rule")
    for shown in (d.text(), d.markdown(), d.latex()):
        assert "Chain rule: Chain rule" not in shown and "Chain rule. Chain rule" not in shown


# (options, what the title shows)
ARRAYS = [
    ({"weight": [1.0, 2.0, 3.0]}, "weight=[1.0, 2.0, 3.0]"),
    ({"weight": [0.5, 2.0], "label_smoothing": 0.1}, "weight=[0.5, 2.0]"),
    ({"weight": [float(i) for i in range(100)]},
     "weight=[0.0, 1.0, 2.0, …, 98.0, 99.0] (100 values)"),
]


@pytest.mark.parametrize(("options", "shown"), ARRAYS)
def test_array_options_print_their_values(options, shown):
    d = symloss.derive("ce", **options)
    assert shown in d.text(width=200).splitlines()[0]
    assert shown in d.markdown().splitlines()[0]
    assert shown in repr(d)
    assert "array(" not in d.text() + d.markdown() + repr(d)
    tex = d.latex(document=True)
    tex.encode("ascii")
    assert ("\\ldots" in tex) == ("…" in shown)


def test_bce_with_logits_pos_weight_prints_its_values():
    d = symloss.derive("bce_with_logits", pos_weight=[2.0])
    assert "pos_weight=[2.0]" in d.text()


def test_focal_loss_names_its_sub_expressions_and_sympy_checks_them():
    """q, α_t and ℓ_BCE are named as the notebook would; every abbreviated equation, with the
    names substituted back, is the derivation's own equation."""
    from symloss.algebra import equal
    from symloss.render import _names

    d = symloss.derive("sigmoid_focal_loss")
    text = d.text(width=120)
    assert "where αₜ = (1 - α)⋅(1 - y) + α⋅y" in text
    assert "q = (1 - y)⋅σ(z) + y⋅σ(-z)" in text
    names = _names(d)
    shortened = 0
    for step in d.steps + d.hessian_steps:
        for rhs in step.rhs:
            short, used = names.abbreviate(rhs)
            if used:
                shortened += 1
                back = short
                for name in used:
                    back = name.expand(back)
                assert equal(back, rhs)
    assert shortened >= 5
    # the headline names (1 − p_t) q, as the notebook writes the focal factor
    assert "q = 1 − p_t" in text
    # the derivatives read as the product rule, with the derivatives named (sympy.diff's)
    assert "αₜ⋅ℓ_BCE'⋅q" in text
    hessian = d.text(order=2, width=120)
    assert "αₜ⋅ℓ_BCE''⋅q" in hessian and "2⋅αₜ⋅γ⋅q'⋅ℓ_BCE'⋅q" in hessian
    assert "q'' = " in hessian
    # σ(z) − y is short: it keeps its own symbols (the canonical-link gradient stays visible)
    assert "αₜ⋅(σ(z) - y)" in symloss.derive("sigmoid_focal_loss", gamma=0.0).text(width=120)


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


def test_an_abbreviation_sympy_cannot_check_is_not_shown(monkeypatch):
    """A name whose replacement does not stand for what it replaces (here σ(z) read as q) is
    refused: the expression is shown in full."""
    import sympy as sp

    from symloss.primitives import sigmoid
    from symloss.render import _Name, _names

    d = symloss.derive("sigmoid_focal_loss")
    z = d.input
    names = _names(d)
    q = next(n for n in names.names if str(n.symbol) == "q")
    expr = d.canonical
    assert names.abbreviate(expr)[1]  # the true names are used
    monkeypatch.setattr(_Name, "forms", property(lambda self: {sigmoid(z): self.symbol}))
    shown, used = names.abbreviate(expr)
    assert (shown, used) == (expr, [])
    assert q.symbol not in shown.free_symbols and isinstance(shown, sp.Expr)
