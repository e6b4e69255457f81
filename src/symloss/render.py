"""LaTeX, Markdown and Unicode text from a derivation's steps, with SymPy's printers."""

from __future__ import annotations

import re
import shutil
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pretty.pretty import PrettyPrinter
from sympy.printing.pretty.pretty_symbology import pretty_use_unicode
from sympy.printing.pretty.stringpict import prettyForm, stringPict

from .primitives import accurate, bernoulli_curvature, clamp_min
from .words import say, word

if TYPE_CHECKING:
    from .declaration import Definition
    from .derive import Derivation, Step

__all__ = ["expr_latex", "expr_text", "latex", "markdown", "terminal_width", "text"]

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
        if name is None and expr.name.startswith("ℓ_"):  # a named loss such as ℓ_BCE, ℓ_BCE'
            label = expr.name[2:].rstrip("'")
            return r"\ell_{\mathrm{" + label + "}}" + "'" * (len(expr.name) - 2 - len(label))
        return name if name is not None else super()._print_Symbol(expr, style=style)


class _Pretty(PrettyPrinter):
    def __init__(self, use_unicode: bool = True) -> None:
        super().__init__({"use_unicode": use_unicode, "order": "rev-lex", "wrap_line": False})

    def _print_Indexed(self, expr: sp.Indexed) -> prettyForm:
        subscript = "".join(str(i) for i in expr.indices)
        base = expr.base.label
        if isinstance(base, sp.Symbol) and "_" not in base.name and subscript.isalnum():
            return self._print(sp.Symbol(f"{base.name}_{subscript}"))
        return prettyForm(sp.sstr(expr))

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta) -> prettyForm:
        return self._print(sp.Symbol("δ_" + "".join(str(a) for a in expr.args)))


def _shown(expr: sp.Basic) -> sp.Basic:
    """``expr`` as a reader sees it: :class:`~symloss.primitives.accurate` and
    :class:`~symloss.primitives.bernoulli_curvature` (how a form is evaluated, not what it is)
    unwrapped, so sums break and parenthesize as sums."""
    expr = expr.replace(lambda e: isinstance(e, bernoulli_curvature),
                        lambda e: e.rewrite(clamp_min))
    return expr.replace(lambda e: isinstance(e, accurate), lambda e: e.args[0])


def _shown_chain(rhs: Sequence[sp.Expr]) -> list[sp.Expr]:
    """The right-hand sides as shown, a repeat of the previous one (a form that differs only
    in how it is evaluated) dropped."""
    out: list[sp.Expr] = []
    for r in rhs:
        shown = _shown(r)
        if not out or shown != out[-1]:
            out.append(shown)  # type: ignore[arg-type]
    return out


def expr_latex(expr: sp.Basic) -> str:
    """``expr`` in LaTeX (σ(z) − y order, ℓ as ``\\ell``)."""
    return _Latex().doprint(_shown(expr))


def expr_text(expr: sp.Basic) -> str:
    """``expr`` as Unicode 2-D text, with indices as subscripts."""
    return _Pretty().doprint(_shown(expr))


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


# ------------------------------------------------------------------ names
#: The width of a text derivation when neither ``COLUMNS`` nor a terminal says.
DEFAULT_COLUMNS = 100
#: The narrowest text layout (a terminal narrower than this still gets this width).
MIN_COLUMNS = 60
#: The width of a LaTeX row in columns of the 2-D text printer: with 11pt type and 2cm margins
#: (a 483pt text width) a column is about 5pt of mathematics.
LATEX_COLUMNS = 80
#: Characters of words per ``\text{}`` row in notebook display (MathJax cannot break them).
LATEX_WORDS = 90


def terminal_width() -> int:
    """The width text output wraps to: ``COLUMNS``, else the terminal's, else 100."""
    columns = shutil.get_terminal_size((DEFAULT_COLUMNS, 24)).columns
    return max(MIN_COLUMNS, columns)


#: Sub-expressions of at most this many operations (σ(z) − y) are never replaced by a name.
_SHORT = 3


@dataclass(frozen=True)
class _Name:
    """A sub-expression the printed derivation names (``q``, ``α_t``, ``u_k``).

    ``index`` is set when the name is a template over a class index (``u[k]`` for
    ``margin − x_t + x[k]``): it then names that expression at every index.
    """

    symbol: sp.Expr
    expr: sp.Expr
    why: str
    index: sp.Expr | None

    def at(self, index: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
        assert self.index is not None
        return self.symbol.xreplace({self.index: index}), self.expr.xreplace({self.index: index})

    @property
    def forms(self) -> dict[sp.Expr, sp.Expr]:
        """The expression as declared, and as tidy() writes it inside a simplified result."""
        from .algebra import tidy

        cache: dict[sp.Expr, sp.Expr] | None = self.__dict__.get("_forms")
        if cache is None:
            tidied = tidy(self.expr)
            # A form as short as σ(z) − y is kept as it is: it says more than a name.
            cache = {f: self.symbol for f in (self.expr, tidied, sp.expand(tidied))
                     if sp.count_ops(f) > _SHORT}
            object.__setattr__(self, "_forms", cache)
        return cache

    def abbreviate(self, expr: sp.Expr) -> sp.Expr:
        if self.index is None:
            expr = expr.xreplace(self.forms)
            # A sum written another way (SymPy distributes −1 over (1 − σ) in one place and not
            # in another): a sum whose expansion is the name's expansion.
            same = [a for a in expr.atoms(sp.Add) if self._same(a)]
            if same and "_shown" not in self.__dict__:  # define it as the derivation wrote it
                object.__setattr__(self, "_shown", min(same, key=sp.default_sort_key))
            return expr.xreplace({a: self.symbol for a in same})

        def named(e: sp.Expr) -> sp.Expr | None:
            for atom in e.atoms(sp.Indexed):
                for j in atom.indices:
                    symbol, value = self.at(j)
                    if value == e:
                        return symbol
            return None

        return expr.replace(lambda e: isinstance(e, sp.Add) and named(e) is not None, named)

    @property
    def shown(self) -> sp.Expr:
        """What the ``where`` line shows: the sum as the derivation wrote it, if it was found
        written another way, else the declared expression."""
        return self.__dict__.get("_shown", self.expr)  # type: ignore[no-any-return]

    def _same(self, candidate: sp.Expr) -> bool:
        if candidate.free_symbols != self.expr.free_symbols or sp.count_ops(candidate) <= _SHORT:
            return False
        expanded = self.__dict__.get("_expanded")
        if expanded is None:
            expanded = sp.expand(self.expr)
            object.__setattr__(self, "_expanded", expanded)
        return bool(sp.expand(candidate) == expanded)

    def occurs(self, expr: sp.Expr) -> bool:
        if self.index is None:
            return self.symbol in expr.free_symbols
        base = self.symbol.base  # type: ignore[attr-defined]
        return any(a.base == base for a in expr.atoms(sp.Indexed))

    def expand(self, expr: sp.Expr) -> sp.Expr:
        if self.index is None:
            return expr.xreplace({self.symbol: self.expr})
        base = self.symbol.base  # type: ignore[attr-defined]
        return expr.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base == base,
            lambda e: self.at(e.indices[0])[1],
        )


class _Names:
    """The names a derivation's printed form uses, and which of them were already defined.

    An expression is shown with its named sub-expressions replaced only when SymPy proves the
    abbreviated form, with the names substituted back, equal to the expression; otherwise it is
    shown in full.
    """

    def __init__(self, definitions: Sequence[Definition], lang: str = "en") -> None:
        self.lang = lang
        self.names: list[_Name] = []
        for d in definitions:
            index = d.symbol.indices[0] if isinstance(d.symbol, sp.Indexed) else None
            self.names.append(_Name(d.symbol, d.expr, d.why, index))
        self.defined: set[sp.Expr] = set()

    def abbreviate(self, expr: sp.Expr) -> tuple[sp.Expr, list[_Name]]:
        """``expr`` in the names, and the names it uses."""
        if not self.names or not isinstance(expr, sp.Basic):
            return expr, []
        short = expr
        for name in self.names:
            short = name.abbreviate(short)
        used = [n for n in self.names if n.occurs(short)]
        if not used:
            return expr, []
        back = short
        for name in reversed(used):
            back = name.expand(back)
        if back != expr:
            from .algebra import equal

            if not equal(back, expr):  # never show an abbreviation SymPy did not check
                return expr, []
        return short, used

    def new(self, used: Sequence[_Name]) -> list[_Name]:
        """The names in ``used`` not defined yet (and now marked defined)."""
        fresh = [n for n in used if n.symbol not in self.defined]
        self.defined.update(n.symbol for n in fresh)
        return fresh


def _names(d: Derivation, lang: str = "en") -> _Names:
    return _Names(getattr(d.declaration, "names", ()), lang)


# ------------------------------------------------------------------ layout
# A long right-hand side is laid out as rows; each row is a list of pieces:
# ("e", expr) an expression, ("f", expr) a factor of a product (parenthesized when it is a
# sum), ("op", "+" | "-" | "⋅" | "(" | ")"), ("pow", exponent) after a ")", ("pad", n) columns
# of indentation (text only). Widths are measured with the 2-D text printer for both outputs.
Piece = tuple[str, object]
Row = list[Piece]


def _needs_parens(factor: sp.Expr) -> bool:
    from sympy.printing.precedence import precedence_traditional

    return bool(precedence_traditional(factor) < PRECEDENCE["Mul"])


#: 2-D forms of sub-expressions, by printer setting, shared by every rendering in the process
#: (the renderers of a loss's twins, the folder's documents): SymPy's 2-D printer is the slow
#: part, and an expression and its form never change. Bounded: cleared when it grows past this.
_FORMS: dict[bool, dict[sp.Basic, prettyForm]] = {True: {}, False: {}}
_FORMS_MAX = 50_000


class _Layout:
    """Breaks expressions into rows, each sub-expression pretty-printed once per process."""

    def __init__(self, use_unicode: bool = True) -> None:
        self.printer = _Pretty(use_unicode)
        self._forms = _FORMS[bool(use_unicode)]
        if len(self._forms) > _FORMS_MAX:
            self._forms.clear()

    def form(self, expr: sp.Basic) -> prettyForm:
        if expr not in self._forms:
            # SymPy's symbol tables follow a global flag (set from stdout's encoding at import),
            # not the printer's setting: set it for this printer, as sympy.pretty() does.
            before = pretty_use_unicode(self.printer._use_unicode)
            try:
                self._forms[expr] = self.printer._print(expr)
            finally:
                pretty_use_unicode(before)
        return self._forms[expr]

    def width(self, expr: sp.Basic) -> int:
        return int(self.form(expr).width())

    def rows(self, expr: sp.Expr, avail: int) -> list[Row]:
        """``expr`` broken into rows of at most ``avail`` columns where it can be: a sum
        between its terms, a product between its factors, a power of a sum inside its
        parentheses. Anything else stays whole."""
        if self.width(expr) <= avail or avail < 12:
            return [[("e", expr)]]
        if isinstance(expr, sp.Add):
            return self._sum(expr, avail)
        if isinstance(expr, sp.Mul):
            return self._product(expr, avail)
        if isinstance(expr, sp.Sum) and isinstance(expr.function, sp.Add):
            # Σₖ (a + b) written Σₖ a + Σₖ b, so that it breaks between the sums.
            terms = [sp.Sum(t, *expr.limits) for t in sp.Add.make_args(expr.function)]
            return self._sum(sp.Add(*terms), avail)  # type: ignore[arg-type]
        if isinstance(expr, sp.Pow) and isinstance(expr.base, sp.Add) and expr.exp != -1:
            return self._parenthesized(expr.base, avail, expr.exp)
        if hasattr(expr, "args") and len(expr.args) == 2 and isinstance(expr.args[0], sp.Add) \
                and type(expr).__name__ == "power":  # symloss's power(q, γ): a power as printed
            return self._parenthesized(expr.args[0], avail, expr.args[1])
        return [[("e", expr)]]

    def _parenthesized(self, inner: sp.Expr, avail: int, exp: sp.Expr | None = None) -> list[Row]:
        tail = 1 + (self.width(exp) if exp is not None else 0)
        rows = self.rows(inner, avail - 1 - tail)
        rows[0] = [("op", "("), *rows[0]]
        rows[1:] = [[("pad", 1), *r] for r in rows[1:]]
        rows[-1] = [*rows[-1], ("op", ")")] + ([("pow", exp)] if exp is not None else [])
        return rows

    def _sum(self, expr: sp.Add, avail: int) -> list[Row]:
        terms = self.printer._as_ordered_terms(expr, order=None)
        rows: list[Row] = []
        current: Row = []
        used = 0
        for i, term in enumerate(terms):
            negative = term.could_extract_minus_sign()
            body = -term if negative else term
            op: Row = [("op", "-" if negative else "+")] if (i or negative) else []
            width = 2 * len(op) + self.width(body)
            if current and used + 1 + width <= avail:
                current += [*op, ("e", body)]
                used += 1 + width
                continue
            if current:
                rows.append(current)
                current, used = [], 0
            if width <= avail:
                current, used = [*op, ("e", body)], width
                continue
            sub = self.rows(body, avail - 2 * len(op))
            rows.append(op + sub[0])
            rows += [[("pad", 2 * len(op)), *r] for r in sub[1:]]
        if current:
            rows.append(current)
        return rows

    def _product(self, expr: sp.Mul, avail: int) -> list[Row]:
        sign: Row = []
        if expr.could_extract_minus_sign():
            sign, expr = [("op", "-")], -expr  # type: ignore[assignment]
        num, den = sp.fraction(expr, exact=True)
        parts = num.as_ordered_factors() if isinstance(num, sp.Mul) else [num]
        numbers = [f for f in parts if f.is_Number and f != 1]
        factors = numbers + ([] if den == 1 else [1 / den])
        factors += [f for f in parts if not f.is_Number]
        if len(factors) == 1 and den == 1:
            return self._one_factor(factors[0], avail, sign)
        rows: list[Row] = []
        current: Row = list(sign)
        used = 2 * len(sign)
        has_factor = False  # whether the current row holds a factor yet
        for factor in factors:
            width = self.width(factor) + (2 if _needs_parens(factor) else 0)
            joint = 1 if has_factor else 0
            if used + joint + width <= avail:
                current += ([("op", "⋅")] if has_factor else []) + [("f", factor)]
                used, has_factor = used + joint + width, True
                continue
            breakable = isinstance(factor, (sp.Add, sp.Pow, sp.Sum))
            if has_factor and breakable and avail - used - 1 >= max(24, avail // 2):
                current.append(("op", "⋅"))  # open the long factor on this row
                used += 1
            elif has_factor:
                rows.append(current)
                current, used, has_factor = [("op", "⋅")], 2, False
                if used + width <= avail:
                    current.append(("f", factor))
                    used, has_factor = used + width, True
                    continue
            sub = self._one_factor(factor, avail - used, [])
            rows.append(current + sub[0])
            pad: Row = [("pad", used)] if used else []
            rows += [pad + r for r in sub[1:]]
            current, used, has_factor = [("op", "⋅")], 2, False
        if has_factor:
            rows.append(current)
        return rows

    def _one_factor(self, factor: sp.Expr, avail: int, sign: Row) -> list[Row]:
        # A sum, or a Σ that is broken into sums, stays one factor: in parentheses.
        if isinstance(factor, sp.Add) or (
            isinstance(factor, sp.Sum) and isinstance(factor.function, sp.Add)
        ):
            rows = self._parenthesized(factor, avail - len(sign) * 2)
        else:
            rows = self.rows(factor, avail - len(sign) * 2)
        if sign:
            rows[0] = sign + rows[0]
            rows[1:] = [[("pad", 2), *r] for r in rows[1:]]
        return rows


def _row_text(row: Row, layout: _Layout) -> prettyForm:
    out = prettyForm("")
    last: object = None
    for kind, value in row:
        first, last = out.width() == 0 or last == "(" or last == "pad", (
            value if kind == "op" else kind
        )
        if kind == "pad":
            piece = prettyForm(" " * int(value))  # type: ignore[call-overload]
        elif kind == "op":
            if value in ("(", ")"):
                piece = prettyForm(str(value))
            elif value == "⋅":
                piece = prettyForm("⋅ " if first else "⋅")
            else:
                piece = prettyForm(f"{value} " if first else f" {value} ")
        elif kind == "pow":
            out = prettyForm(*out.right(""))
            out = out ** layout.form(value)  # type: ignore[arg-type]
            continue
        else:
            piece = layout.form(value)  # type: ignore[arg-type]
            if kind == "f" and _needs_parens(value):  # type: ignore[arg-type]
                piece = prettyForm(*piece.parens())
        out = prettyForm(*out.right(piece))
    return out


def _row_latex(row: Row, printer: _Latex) -> str:
    out = ""
    for kind, value in row:
        if kind == "pad":  # a row inside parentheses: indented once more
            out += r"\quad " if not out and value else ""
            continue
        if kind == "op":
            first = out.strip() in ("", r"\quad") or out.endswith(r"\Bigl(")
            out += {"(": r"\Bigl(", ")": r"\Bigr)"}.get(
                str(value), (r"\cdot " if first else " ") if value == "⋅"
                else f"{value} " if first else f" {value} "
            )
        elif kind == "pow":
            out += "^{" + printer._print(value) + "}"
        elif kind == "f":
            out += printer.parenthesize(value, PRECEDENCE["Mul"])
        else:
            out += printer._print(value)
    return out


def _hard_wrap(form: prettyForm, width: int) -> list[str]:
    """The 2-D picture's lines, cut into chunks of ``width`` columns if it is wider (SymPy's
    own line wrapping, the last resort for an expression with no sum or product to break)."""
    lines = [line.rstrip() for line in form.render(wrap_line=False).splitlines()]
    if max((len(line) for line in lines), default=0) <= width:
        return lines
    wrapped = stringPict.render(form, wrap_line=True, num_columns=width, use_unicode=True)
    return [line.rstrip() for line in wrapped.splitlines()]


# ------------------------------------------------------------------ chains of equations
def _chain_latex(
    step: Step,
    newline: str = r"\\",
    names: _Names | None = None,
    columns: int = LATEX_COLUMNS,
    layout: _Layout | None = None,
) -> list[str]:
    """The rows of ``lhs = rhs₀ = rhs₁ …`` for an ``align*`` (or ``aligned``) body, each
    right-hand side broken to ``columns`` and followed by the names it introduces."""
    return _equations_latex(step.lhs, step.rhs, newline, names, columns, layout)


def _equations_latex(
    lhs: sp.Expr,
    rhs: Sequence[sp.Expr],
    newline: str = r"\\",
    names: _Names | None = None,
    columns: int = LATEX_COLUMNS,
    layout: _Layout | None = None,
) -> list[str]:
    printer, layout = _Latex(), layout or _Layout()
    left = printer._print(lhs)
    avail = columns - layout.width(lhs) - 3
    lines: list[str] = []
    introduced: list[_Name] = []
    for j, r in enumerate(_shown_chain(rhs)):
        if names is not None:
            r, used = names.abbreviate(r)
            introduced += names.new(used)
        for i, row in enumerate(layout.rows(r, avail)):
            head = (left if j == 0 else "") + " &= " if i == 0 else r" &\quad "
            lines.append(head + _row_latex(row, printer))
    lang = names.lang if names is not None else "en"
    for n, name in enumerate(introduced):
        where = r"\text{" + word("where", lang) + r"}\quad " if n == 0 else ""
        name_avail = columns - layout.width(name.symbol) - 10
        for i, row in enumerate(layout.rows(name.shown, name_avail)):
            head = where + printer._print(name.symbol) + " &= " if i == 0 else r" &\quad "
            lines.append(head + _row_latex(row, printer))
    return [line + " " + newline for line in lines]


def _equations_text(
    lhs: sp.Expr,
    rhs: Sequence[sp.Expr],
    width: int,
    names: _Names | None = None,
    layout: _Layout | None = None,
) -> list[str]:
    """``lhs = r0`` then ``= r1`` … on rows below, the ``=`` signs aligned, each right-hand
    side broken to ``width`` columns; then ``where`` and the names it introduces."""
    layout = layout or _Layout()
    left = layout.form(lhs)
    lines: list[str] = []
    introduced: list[_Name] = []
    for j, r in enumerate(_shown_chain(rhs)):
        if names is not None:
            r, used = names.abbreviate(r)
            introduced += names.new(used)
        lines += _rows_text(left if j == 0 else None, left.width(), r, width, layout)
    for n, name in enumerate(introduced):
        symbol = layout.form(name.symbol)
        lang = names.lang if names is not None else "en"
        label = word("where", lang) + " "
        where = prettyForm(*symbol.left(label if n == 0 else " " * _display_width(label)))
        rows = _rows_text(where, where.width(), name.shown, width, layout)
        why = f"  ({say(name.why, lang)})" if name.why else ""
        if len(rows) == 1 and _display_width(rows[0] + why) <= width:
            rows[0] += why
        elif why:
            rows += _words(" " * 6 + why.strip(), width, " " * 7)
        lines += rows
    return lines


def _rows_text(
    left: prettyForm | None,
    left_width: int,
    rhs: sp.Expr,
    width: int,
    layout: _Layout,
) -> list[str]:
    lines: list[str] = []
    for i, row in enumerate(layout.rows(rhs, width - left_width - 3)):
        head = left if (left is not None and i == 0) else prettyForm(" " * left_width)
        form = prettyForm(*head.right(" = " if i == 0 else "   ", _row_text(row, layout)))
        lines += _hard_wrap(form, width)
    return lines


def _display_width(text_: str) -> int:
    """Terminal columns of ``text_``: a CJK character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text_)


_CHUNKS = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]|[^\s\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]+|\s+")


def _words(text_: str, width: int, indent: str = "") -> list[str]:
    """Words wrapped to ``width`` columns, continuation lines indented by ``indent``; Chinese
    breaks between any two characters and counts two columns a character."""
    if _display_width(text_) == len(text_):
        return textwrap.wrap(text_, width, subsequent_indent=indent,
                             break_on_hyphens=False) or [""]
    lines: list[str] = []
    current = ""
    for chunk in _CHUNKS.findall(text_):
        if current.strip() and _display_width(current + chunk.rstrip()) > width:
            lines.append(current.rstrip())
            current = indent + chunk.lstrip()
        else:
            current += chunk
    return [*lines, current.rstrip()] if current.strip() else lines or [""]


def latex(
    d: Derivation, document: bool = False, environment: bool = False, order: int = 1,
    lang: str = "en",
) -> str:
    """The derivation as LaTeX: an ``align*`` body, or a full document (``document=True``).

    ``environment=True`` gives the ``align*`` environment with the words in ``\\text{}``, the
    form notebooks (MathJax) display. Long right-hand sides are broken across rows and long
    sub-expressions named (``where q = …``), so no row is wider than the page.
    """
    names, layout = _names(d, lang), _Layout()
    lhs, rhs = _result(d, order)
    # A document opens with the result: the names are defined there first.
    headline = _equations_latex(lhs, (rhs,), names=names, layout=layout) if document else []
    body: list[str] = []
    for n, step in enumerate(d.steps_for(order), 1):
        title, why, status = say(step.title, lang), say(step.why, lang), _status(step, lang)
        head = f"{n}.~\\textbf{{{words_tex(title, lang)}.}} "
        if environment:  # MathJax cannot break inside \text{}: one row per line of words
            words = f"{n}. {title}. {why} ({status})"
            body += [rf"&\text{{{line}}} \\" for line in _words(words, LATEX_WORDS)]
        else:
            body.append(rf"\intertext{{{head}{words_tex(why, lang)} \emph{{({status})}}}}")
        body += _chain_latex(step, names=names, layout=layout)
    if body and body[-1].endswith(r"\\"):
        body[-1] = body[-1][:-2].rstrip()
    align = "\n".join(body)
    if environment:
        return "\\begin{align*}\n" + align + "\n\\end{align*}"
    if not document:
        return align
    verdict, _ = _summary(d, order, lang)
    title = words_tex(_title(d))
    what = word("gradient" if order == 1 else "second_derivative", lang)
    sentence = words_tex(word("document.result", lang, what=what, verdict="\0"), lang)
    headline[-1] = headline[-1][:-2].rstrip()
    return "\n".join(
        [
            *document_preamble(lang),
            r"\begin{document}",
            # A typewriter title has no stretchable space: set it ragged so it can break.
            rf"\section*{{\raggedright\texttt{{{_breakable(title)}}}}}",
            words_tex(say(d.spec.summary, lang), lang) + r"\par",
            sentence.replace("\0", rf"\emph{{{words_tex(verdict, lang)}}}"),
            r"\begin{align*}",
            *headline,
            r"\end{align*}",
            r"\begin{align*}",
            align,
            r"\end{align*}",
            r"\end{document}",
            "",
        ]
    )


def _breakable(tex: str) -> str:
    """A line may break after each ``, `` of a title."""
    return tex.replace(", ", r", \allowbreak{}")


def document_preamble(lang: str = "en") -> list[str]:
    """The lines before ``\\begin{document}``: pdflatex's article, or xelatex's ctexart for zh."""
    head = [r"\documentclass[11pt]{ctexart}"] if lang == "zh" else [r"\documentclass[11pt]{article}"]
    return [*head, r"\usepackage[margin=2cm]{geometry}", r"\usepackage{amsmath,amssymb}",
            r"\allowdisplaybreaks"]


def _partial(d: Derivation) -> sp.Expr:
    from .declaration import Partial
    from .derive import _ELL

    return Partial(_ELL, d.input)


def markdown(
    d: Derivation, order: int = 1, heading: str = "#", lang: str = "en", math: str = "github"
) -> str:
    """The derivation as Markdown: words as text, each chain in a ``$$`` block.

    ``math="github"`` writes a one-line headline result in GitHub's inline ``$`…`$`` (the
    files in derivations/); ``math="portable"`` uses only ``$$…$$``, which Jupyter, nbconvert
    (MathJax) and GitHub all render (notebook display).
    """
    if math not in ("github", "portable"):
        from .errors import choice_error

        raise choice_error("Markdown math", math, ("github", "portable"))
    names, layout = _names(d, lang), _Layout()
    verdict, _ = _summary(d, order, lang)
    lhs, rhs = _result(d, order)
    title = f"`{_title(d)}`"
    if order != 1:
        title = word("heading.second_derivative", lang, title=title)
    result = word("result", lang, verdict=verdict)
    headline = _equations_latex(lhs, (rhs,), names=names, layout=layout)
    out = [f"{heading} {title}", "", say(d.spec.summary, lang), ""]
    if math == "github" and len(headline) == 1:
        one = headline[0][:-2].rstrip().replace(" &= ", " = ", 1)
        out += [f"**{result}** $`{one}`$", ""]
    else:
        headline[-1] = headline[-1][:-2].rstrip()
        out += [f"**{result}**", "", "$$", r"\begin{aligned}", *headline, r"\end{aligned}", "$$",
                ""]
    for n, step in enumerate(d.steps_for(order), 1):
        out += [f"{heading}## {n}. {say(step.title, lang)}", "",
                f"{say(step.why, lang)} *({_status(step, lang)})*", "", "$$",
                r"\begin{aligned}"]
        out += _chain_latex(step, names=names, layout=layout)
        out[-1] = out[-1][:-2].rstrip()
        out += [r"\end{aligned}", "$$", ""]
    return "\n".join(out)


def _chain_text(
    printer: _Pretty, lhs: sp.Basic, rhs: tuple[sp.Basic, ...], width: int | None = None
) -> list[str]:
    """``lhs = r0`` then ``= r1`` … on rows below, the ``=`` signs aligned, broken to ``width``
    columns (default: the terminal's, less the 4 columns of indentation text() adds)."""
    return _equations_text(lhs, rhs, (width or terminal_width()) - 4)  # type: ignore[arg-type]


def text(d: Derivation, order: int = 1, lang: str = "en", width: int | None = None,
         use_unicode: bool = True) -> str:
    """The derivation as Unicode text for a terminal, no line wider than ``width`` columns
    (default: :func:`terminal_width`, i.e. ``COLUMNS`` or the terminal's width);
    ``use_unicode=False``: SymPy's ASCII pretty printer, for a terminal that cannot show
    Unicode (the words are left to the caller)."""
    width = max(MIN_COLUMNS, width) if width is not None else terminal_width()
    verdict, _ = _summary(d, order, lang)
    names, layout = _names(d, lang), _Layout(use_unicode)
    title = _title(d)
    if order != 1:
        title = word("heading.second_derivative", lang, title=title)
    out = [*_words(title, width, "    "), *_words(say(d.spec.summary, lang), width), ""]
    colon = word("colon", lang)
    for n, step in enumerate(d.steps_for(order), 1):
        out += _words(f"{n}. {say(step.title, lang)}{colon}{say(step.why, lang)} "
                      f"[{_status(step, lang)}]", width, "   ")
        out += ["    " + line
                for line in _equations_text(step.lhs, step.rhs, width - 4, names, layout)]
        out.append("")
    out.append(word("result", lang, verdict=verdict))
    lhs, rhs = _result(d, order)
    out += ["    " + line for line in _equations_text(lhs, (rhs,), width - 4, names, layout)]
    return "\n".join(line.rstrip() for line in out) + "\n"
