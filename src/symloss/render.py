"""LaTeX, Markdown and Unicode text from a derivation's steps, with SymPy's printers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.pretty.pretty import PrettyPrinter
from sympy.printing.pretty.stringpict import prettyForm

from .words import say, word

if TYPE_CHECKING:
    from .derive import Derivation, Step

__all__ = ["expr_latex", "expr_text", "latex", "markdown", "text"]

_SYMBOL_NAMES = {"ℓ": r"\ell", "w_+": r"w_{+}"}

# Unicode in the words of a step, as pdflatex wants it. Anything else non-ASCII is a bug here,
# and a test keeps the LaTeX output ASCII.
_TEX = {
    "σ": r"\sigma", "Σ": r"\Sigma", "ε": r"\varepsilon", "ℓ": r"\ell", "−": "-", "→": r"\to",
    "≤": r"\le", "≥": r"\ge", "≠": r"\ne", "∂": r"\partial", "δ": r"\delta", "·": r"\cdot",
    "×": r"\times", "∘": r"\circ", "′": "'", "…": r"\ldots", "₊": "_{+}", "ᵢ": "_{i}",
    "ₖ": "_{k}", "ₘ": "_{m}", "ₙ": "_{n}", "ₜ": "_{t}", "ⱼ": "_{j}", "⁻": "^{-}", "¹": "^{1}",
    "²": "^{2}", "⁰": "^{0}", "μ": r"\mu", "λ": r"\lambda", "β": r"\beta", "α": r"\alpha",
    "γ": r"\gamma", "Δ": r"\Delta", "√": r"\surd", "≈": r"\approx", "∈": r"\in",
    "ᵀ": "^{T}", "₁": "_{1}", "₂": "_{2}", "³": "^{3}", "±": r"\pm", "π": r"\pi",
    "ζ": r"\zeta", "‖": r"\|",
    "ρ": r"\rho", "τ": r"\tau",  # the boosting losses' power and quantile
}
_TEX_ESCAPE = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
               "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
               "\\": r"\textbackslash{}", "|": r"\ensuremath{|}", "<": r"\ensuremath{<}",
               ">": r"\ensuremath{>}"}


def words_tex(words: str, lang: str = "en") -> str:
    """Plain words (with a little Unicode math) as LaTeX text that pdflatex compiles.

    With ``lang="zh"`` the Chinese characters pass through (xelatex with ctex typesets them).

    >>> words_tex("σ(z) − yᵢ for label_smoothing")
    '\\\\ensuremath{\\\\sigma}(z) - y\\\\ensuremath{_{i}} for label\\\\_smoothing'
    """
    out = []
    for ch in words:
        if ch in _TEX_ESCAPE:
            out.append(_TEX_ESCAPE[ch])
        elif ch in _TEX:
            tex = _TEX[ch]
            out.append(tex if ch == "−" or ch == "′" else rf"\ensuremath{{{tex}}}")
        elif ord(ch) < 128 or (lang != "en" and not _is_math_unicode(ch)):
            out.append(ch)
        else:
            raise ValueError(f"no LaTeX for character {ch!r} in {words!r}")
    return "".join(out)


def _is_math_unicode(ch: str) -> bool:
    """A letter or symbol of the mathematical blocks (Greek, arrows, operators, sub/superscripts),
    which must be mapped for LaTeX in every language."""
    return "\u0370" <= ch <= "\u03ff" or "\u2070" <= ch <= "\u22ff"


class _Latex(LatexPrinter):
    def __init__(self) -> None:
        super().__init__({"order": "rev-lex", "symbol_names": {}})

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exp = expr.args
        # SymPy passes ``exp=`` to a function's own _latex; the primitives take no such keyword.
        if isinstance(base, sp.Function) and hasattr(base, "_latex") and exp.is_positive:
            if exp == sp.S.Half:
                return rf"\sqrt{{{self._print(base)}}}"
            return rf"\left({self._print(base)}\right)^{{{self._print(exp)}}}"
        return super()._print_Pow(expr)

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        name = _SYMBOL_NAMES.get(expr.name)
        return name if name is not None else super()._print_Symbol(expr, style=style)


class _Pretty(PrettyPrinter):
    def __init__(self) -> None:
        super().__init__({"use_unicode": True, "order": "rev-lex", "wrap_line": False})

    def _print_Indexed(self, expr: sp.Indexed) -> prettyForm:
        subscript = "".join(str(i) for i in expr.indices)
        base = expr.base.label
        if isinstance(base, sp.Symbol) and "_" not in base.name and subscript.isalnum():
            return self._print(sp.Symbol(f"{base.name}_{subscript}"))
        return prettyForm(sp.sstr(expr))

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> prettyForm:
        return self._print(sp.Symbol("δ_" + "".join(str(a) for a in expr.args)))


def expr_latex(expr: sp.Basic) -> str:
    """``expr`` in LaTeX (σ(z) − y order, ℓ as ``\\ell``)."""
    return _Latex().doprint(expr)


def expr_text(expr: sp.Basic) -> str:
    """``expr`` as Unicode 2-D text, with indices as subscripts."""
    return _Pretty().doprint(expr)


def _status(step: Step, lang: str = "en") -> str:
    if step.checked is None:
        return word("status.definition", lang)
    return word("status.checked" if step.checked else "status.not_proved", lang)


def _title(d: Derivation) -> str:
    opts = ", ".join(f"{k}={v!r}" for k, v in d.display_options.items())
    return f"{d.name}({opts})"


def _summary(d: Derivation, order: int = 1, lang: str = "en") -> tuple[str, str]:
    if order == 2:
        if d.canonical_hessian is None:
            return word("verdict.no_closed_form", lang), "hessian"
        return word("verdict.proved" if d.hessian_proved else "verdict.not_proved", lang), "hessian"
    verdict = word("verdict.proved" if d.proved else "verdict.not_proved", lang)
    return verdict, f"∂ℓ/∂{d.input}"


def _result(d: Derivation, order: int) -> tuple[sp.Expr, sp.Expr]:
    """The headline equation: ``∂ℓ/∂z = canonical`` or ``∂²ℓ/∂z² = Hessian``."""
    if order == 1:
        return _partial(d), d.canonical
    from .declaration import Partial
    from .derive import _ELL, _Mixed

    z, z2 = d.input, d.second_input
    lhs = Partial(_ELL, z, 2) if z == z2 else _Mixed(_ELL, z, z2)
    rhs = d.canonical_hessian if d.canonical_hessian is not None else d.hessian
    return lhs, rhs


_LONG = 400  # characters of LaTeX after which a sum is broken across lines


def _rhs_latex(rhs: sp.Basic) -> list[str]:
    """``rhs`` in LaTeX, a long sum split into one line per term (TeX cannot break a line
    inside an align row, and a very long one overflows its dimensions)."""
    text = expr_latex(rhs)
    if len(text) <= _LONG or not isinstance(rhs, sp.Add):
        return [text]
    terms = [expr_latex(t) for t in sp.Add.make_args(rhs)]
    lines = [terms[0]]
    for term in terms[1:]:
        lines.append(("" if term.startswith("-") else "+ ") + term)
    return lines


def _chain_latex(step: Step, newline: str = r"\\") -> list[str]:
    lhs = expr_latex(step.lhs)
    lines = []
    for j, rhs in enumerate(step.rhs):
        parts = _rhs_latex(rhs)
        lines.append((lhs if j == 0 else "") + " &= " + parts[0])
        lines += [r" &\quad " + part for part in parts[1:]]
    return [line + " " + newline for line in lines]


def latex(
    d: Derivation, document: bool = False, environment: bool = False, order: int = 1,
    lang: str = "en",
) -> str:
    """The derivation as LaTeX: an ``align*`` body, or a full document (``document=True``).

    ``environment=True`` gives the ``align*`` environment with the words in ``\\text{}``, the
    form notebooks (MathJax) display.
    """
    body: list[str] = []
    for n, step in enumerate(d.steps_for(order), 1):
        title, why, status = say(step.title, lang), say(step.why, lang), _status(step, lang)
        head = f"{n}.~\\textbf{{{words_tex(title, lang)}.}} "
        if environment:
            body.append(rf"&\text{{{n}. {title}. {why} ({status})}} \\")
        else:
            body.append(rf"\intertext{{{head}{words_tex(why, lang)} \emph{{({status})}}}}")
        body += _chain_latex(step)
    if body and body[-1].endswith(r"\\"):
        body[-1] = body[-1][:-2].rstrip()
    align = "\n".join(body)
    if environment:
        return "\\begin{align*}\n" + align + "\n\\end{align*}"
    if not document:
        return align
    verdict, _ = _summary(d, order, lang)
    title = words_tex(_title(d))
    lhs, rhs = _result(d, order)
    what = word("gradient" if order == 1 else "second_derivative", lang)
    sentence = words_tex(word("document.result", lang, what=what, verdict="\0"), lang)
    return "\n".join(
        [
            *document_preamble(lang),
            r"\begin{document}",
            rf"\section*{{\texttt{{{title}}}}}",
            words_tex(say(d.spec.summary, lang), lang) + r"\par",
            sentence.replace("\0", rf"\emph{{{words_tex(verdict, lang)}}}"),
            r"\[",
            rf"{expr_latex(lhs)} = {expr_latex(rhs)}",
            r"\]",
            r"\begin{align*}",
            align,
            r"\end{align*}",
            r"\end{document}",
            "",
        ]
    )


def document_preamble(lang: str = "en") -> list[str]:
    """The lines before ``\\begin{document}``: pdflatex's article, or xelatex's ctexart for zh."""
    head = [r"\documentclass[11pt]{ctexart}"] if lang == "zh" else [r"\documentclass[11pt]{article}"]
    return [*head, r"\usepackage[margin=2cm]{geometry}", r"\usepackage{amsmath,amssymb}",
            r"\allowdisplaybreaks"]


def _partial(d: Derivation) -> sp.Expr:
    from .declaration import Partial
    from .derive import _ELL

    return Partial(_ELL, d.input)


def markdown(d: Derivation, order: int = 1, heading: str = "#", lang: str = "en") -> str:
    """The derivation as GitHub Markdown: words as text, each chain in a ``$$`` block."""
    verdict, _ = _summary(d, order, lang)
    lhs, rhs = _result(d, order)
    title = f"`{_title(d)}`"
    if order != 1:
        title = word("heading.second_derivative", lang, title=title)
    result = word("result", lang, verdict=verdict)
    out = [
        f"{heading} {title}",
        "",
        say(d.spec.summary, lang),
        "",
        f"**{result}** $`{expr_latex(lhs)} = {expr_latex(rhs)}`$",
        "",
    ]
    for n, step in enumerate(d.steps_for(order), 1):
        out += [f"{heading}## {n}. {say(step.title, lang)}", "",
                f"{say(step.why, lang)} *({_status(step, lang)})*", "", "$$",
                r"\begin{aligned}"]
        out += _chain_latex(step)
        out[-1] = out[-1][:-2].rstrip()
        out += [r"\end{aligned}", "$$", ""]
    return "\n".join(out)


def _chain_text(printer: _Pretty, lhs: sp.Basic, rhs: tuple[sp.Basic, ...]) -> list[str]:
    """``lhs = r0`` then ``= r1`` … on rows below, the ``=`` signs aligned."""
    left = printer._print(lhs)
    lines: list[str] = []
    for j, r in enumerate(rhs):
        head = left if j == 0 else prettyForm(" " * left.width())
        row = prettyForm(*head.right(" = ", printer._print(r)))
        lines += [line.rstrip() for line in row.render(wrap_line=False).splitlines()]
    return lines


def text(d: Derivation, order: int = 1, lang: str = "en") -> str:
    """The derivation as Unicode text for a terminal."""
    verdict, _ = _summary(d, order, lang)
    printer = _Pretty()
    title = _title(d)
    if order != 1:
        title = word("heading.second_derivative", lang, title=title)
    out = [title, say(d.spec.summary, lang), ""]
    colon = word("colon", lang)
    for n, step in enumerate(d.steps_for(order), 1):
        out.append(f"{n}. {say(step.title, lang)}{colon}{say(step.why, lang)} "
                   f"[{_status(step, lang)}]")
        out += ["    " + line for line in _chain_text(printer, step.lhs, step.rhs)]
        out.append("")
    out.append(word("result", lang, verdict=verdict))
    lhs, rhs = _result(d, order)
    out += ["    " + line for line in _chain_text(printer, lhs, (rhs,))]
    return "\n".join(out) + "\n"
