"""Relations between losses, each built from the two losses' declarations and proved by SymPy.

The seed notebook says in words that BCEWithLogitsLoss is sigmoid + BCELoss, that binary
cross-entropy is the cross-entropy H(p, q) = −Σ p log q of (y, 1 − y) against (p, 1 − p), and that
BCE and CrossEntropyLoss differ by sigmoid vs softmax. Here each such statement is an equation
between the per-element losses as the catalogue declares them (``symloss.derive(name).loss``, the
loss in its prediction ``declaration.loss_in_link``), with one side substituted (p = σ(z), C = 2,
x = log_softmax(z), ...). A step is *proved* only when :func:`symloss.algebra.is_zero` reduces the
difference to 0; a relation is proved when all of its steps are.

>>> import symloss
>>> r = symloss.relate("bce_with_logits", "binary_cross_entropy")
>>> r.proved
True
>>> [str(s.title) for s in r.steps]
['Declared', 'Declared', 'Substitute', 'Equal', 'Gradients']
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import sympy as sp

from .algebra import is_zero, normalize, reduce_sums
from .declaration import Partial
from .derive import Step, _chain
from .errors import SymlossValueError
from .primitives import CLASS_INDEX, SUM_INDEX, log_softmax, sigmoid, softmax
from .words import Phrase, check_lang, say, word

__all__ = ["Relation", "relate", "relations"]


def _decl(name: str, **options: Any) -> Any:
    from . import derive

    return derive(name, **options).declaration


def _grad(name: str, **options: Any) -> sp.Expr:
    from . import derive

    return derive(name, **options).gradient


def _fn(name: str, *args: sp.Basic) -> sp.Expr:
    """A display of a loss as a function of its arguments, ``BCE(p, y)``."""
    return sp.Function(name)(*args)  # type: ignore[no-any-return]


def _proved_step(
    title: Phrase, why: str, lhs: sp.Expr, chain: list[sp.Expr],
    assumptions: list[tuple[sp.Expr, sp.Expr]] | None = None,
) -> Step:
    """``lhs = chain[0] = chain[1] ...``; checked when every neighbouring difference reduces to 0."""
    items = _chain(chain)
    checked = all(
        is_zero(a - b, assumptions or []) for a, b in itertools.pairwise(items)
    )
    return Step(title, why, lhs, items, checked)


def _declared(name: str, lhs: sp.Expr, expr: sp.Expr, in_prediction: sp.Basic | None = None) -> Step:
    why = (Phrase("why.declared_in", name=name, var=str(in_prediction)) if in_prediction is not None
           else Phrase("why.declared", name=name))
    return Step(Phrase("title.declared"), why, lhs, (expr,), None)


# ---------------------------------------------------------------------------------- relations
def _bce_with_logits_bce() -> list[Step]:
    left, right = _decl("binary_cross_entropy_with_logits"), _decl("binary_cross_entropy")
    z, y, p = left.input, left.target, right.input
    composed = right.loss.subs(p, sigmoid(z))
    steps = [
        _declared("binary_cross_entropy_with_logits", _fn("BCEWithLogits", z, y), left.loss),
        _declared("binary_cross_entropy", _fn("BCE", p, y), right.loss),
        Step(Phrase("title.substitute"), Phrase("why.substitute_sigmoid"),
             _fn("BCE", sigmoid(z), y), (composed,), None),
        _proved_step(Phrase("title.equal"), Phrase("why.equal_clamp"),
                     _fn("BCEWithLogits", z, y), [left.loss, composed]),
    ]
    steps.append(_proved_step(
        Phrase("title.gradients"), Phrase("why.gradient_equal", var=str(z)),
        Partial(_fn("BCEWithLogits", z, y), z),
        [_grad("binary_cross_entropy_with_logits"), sp.diff(composed, z)],
    ))
    return steps


def _bce_ce() -> list[Step]:
    ce, bce, bwl = _decl("cross_entropy"), _decl("binary_cross_entropy"), _decl("bce_with_logits")
    zz, yy, pk = ce.symbols["input"], ce.symbols["target"], ce.link.var
    classes = ce.symbols["num_classes"]
    p, y = bce.input, bce.target
    z, yb = bwl.input, bwl.target
    two = [(yy[1], 1 - yy[2])]  # two classes: a distribution's y₁ = 1 − y₂
    # BCE = H((1 − y, y), (1 − p, p)): the cross-entropy in the prediction, C = 2.
    h = ce.loss_in_link
    h2 = h.subs(classes, 2).doit()
    h_bce = h2.subs({pk[1]: 1 - p, pk[2]: p, yy[1]: 1 - y, yy[2]: y}, simultaneous=True)
    q = sp.Tuple(1 - y, y)
    steps = [
        _declared("cross_entropy", _fn("H", yy, pk), h, in_prediction=pk),
        Step(Phrase("title.two_classes"), Phrase("why.two_classes"),
             _fn("H", q, sp.Tuple(1 - p, p)), (h2, h_bce), None),
        _declared("binary_cross_entropy", _fn("BCE", p, y), bce.loss),
        _proved_step(Phrase("title.equal"), Phrase("why.equal_clamp"), _fn("BCE", p, y),
                     [bce.loss, h_bce]),
    ]
    # The sigmoid is the two-class softmax.
    explicit: Callable[[sp.Expr], sp.Expr] = lambda e: e.rewrite(sp.exp).doit()  # noqa: E731
    soft = {softmax(zz, 1, 2): sigmoid(zz[1] - zz[2]), softmax(zz, 2, 2): sigmoid(zz[2] - zz[1])}
    for s, sig in soft.items():
        steps.append(Step(
            Phrase("title.softmax_is_sigmoid"), Phrase("why.softmax_is_sigmoid"), s,
            _chain([explicit(s), sig]), is_zero(explicit(s) - explicit(sig)),
        ))
    # CE with C = 2 is BCE-with-logits of z₂ − z₁ with target y₂.
    ce2 = ce.loss.subs(classes, 2).doit()
    in_sigmoid = ce2.replace(lambda e: isinstance(e, log_softmax),
                             lambda e: sp.log(softmax(*e.args))).subs(soft)
    bce_diff = bwl.loss.subs({z: zz[2] - zz[1], yb: yy[2]}, simultaneous=True)
    steps.append(_declared("cross_entropy", _fn("CE", zz, yy), ce.loss))
    # ce2 → in_sigmoid substitutes the equations just proved (log_softmax = log softmax);
    # in_sigmoid → bce_diff is reduced to 0 by SymPy.
    substituted = is_zero(normalize(ce2).subs(soft) - in_sigmoid)
    softmax_proved = all(s.checked for s in steps if s.title == Phrase("title.softmax_is_sigmoid"))
    steps.append(Step(
        Phrase("title.equal"), Phrase("why.ce_two_classes"), _fn("CE", sp.Tuple(zz[1], zz[2]), yy),
        _chain([ce2, in_sigmoid, bce_diff]),
        substituted and softmax_proved and is_zero((in_sigmoid - bce_diff).subs(two)),
    ))
    # Gradients: ∂CE/∂z₂ = σ(z₂ − z₁) − y₂ = BCE-with-logits' gradient at z₂ − z₁, ∂CE/∂z₁ = −that.
    g = _grad("bce_with_logits").subs({z: zz[2] - zz[1], yb: yy[2]}, simultaneous=True)
    for index, sign in ((2, 1), (1, -1)):
        derived = sp.diff(ce2, zz[index])
        steps.append(Step(
            Phrase("title.gradients"), Phrase("why.ce_two_gradients"),
            Partial(_fn("CE", sp.Tuple(zz[1], zz[2]), yy), zz[index]),
            _chain([derived, sign * g]),
            is_zero((explicit(derived) - explicit(sign * g)).subs(two)),
        ))
    return steps


def _ce_kl() -> list[Step]:
    ce, kl = _decl("cross_entropy"), _decl("kl_div")
    zz, yy, pk = ce.symbols["input"], ce.symbols["target"], ce.link.var
    classes = ce.symbols["num_classes"]
    k, i = SUM_INDEX, CLASS_INDEX
    entropy = ce.loss_in_link.subs(pk, yy)  # H(y) = H(y, y)
    per_class = kl.loss.subs({kl.input: log_softmax(zz, k, classes), kl.target: yy[k]},
                             simultaneous=True)
    # 0·log 0 = 0 on both sides: the y log y term (kl_div writes it as 0 where y = 0).
    per_class = per_class.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[-1][0])
    kl_sum = sp.Sum(per_class, (k, 1, classes))
    total = [(sp.Sum(yy[k], (k, 1, classes)), sp.S.One)]
    steps = [
        _declared("cross_entropy", _fn("CE", zz, yy), ce.loss),
        Step(Phrase("title.entropy"), Phrase("why.entropy"), _fn("H", yy), (entropy,), None),
        _declared("kl_div", _fn("kl_div", sp.Symbol("x"), sp.Symbol("y")), kl.loss),
        Step(Phrase("title.kl"), Phrase("why.kl"), _fn("KL", yy, pk), (kl_sum,), None),
        _proved_step(Phrase("title.equal"), Phrase("why.ce_entropy_kl"), _fn("CE", zz, yy),
                     [ce.loss, entropy + kl_sum]),
        _proved_step(Phrase("title.gradients"), Phrase("why.entropy_free"),
                     Partial(_fn("H", yy), zz[i]), [sp.diff(entropy, zz[i]), sp.S.Zero]),
        _proved_step(Phrase("title.gradients"), Phrase("why.kl_gradient"),
                     Partial(_fn("KL", yy, pk), zz[i]),
                     [reduce_sums(sp.diff(kl_sum, zz[i])), _grad("cross_entropy")], total),
    ]
    return steps


def _nll_ce() -> list[Step]:
    nll, ce = _decl("nll_loss"), _decl("cross_entropy")
    x, zz = nll.symbols["input"], ce.symbols["input"]
    classes = ce.symbols["num_classes"]
    composed = nll.loss.replace(lambda e: isinstance(e, sp.Indexed) and e.base == x,
                                lambda e: log_softmax(zz, e.indices[0], classes))
    return [
        _declared("nll_loss", _fn("NLL", x, nll.target.base), nll.loss),
        Step(Phrase("title.substitute"), Phrase("why.substitute_log_softmax"),
             _fn("NLL", sp.Function("log_softmax")(zz), nll.target.base), (composed,), None),
        _declared("cross_entropy", _fn("CE", zz, ce.target.base), ce.loss),
        _proved_step(Phrase("title.equal"), Phrase("why.equal"), _fn("CE", zz, ce.target.base),
                     [ce.loss, composed]),
        _proved_step(Phrase("title.gradients"), Phrase("why.gradient_equal", var=str(zz[CLASS_INDEX])),
                     Partial(_fn("CE", zz, ce.target.base), zz[CLASS_INDEX]),
                     [_grad("cross_entropy"),
                      reduce_sums(sp.diff(composed, zz[CLASS_INDEX]))],
                     [(sp.Sum(ce.target.base[SUM_INDEX], (SUM_INDEX, 1, classes)), sp.S.One)]),
    ]


def _soft_margin_bce() -> list[Step]:
    sm, bwl = _decl("soft_margin_loss"), _decl("bce_with_logits")
    z, y, zb, yb = sm.input, sm.target, bwl.input, bwl.target
    at_margin = bwl.loss.subs({zb: y * z, yb: 1}, simultaneous=True)
    label = (1 + y) / 2
    relabelled = bwl.loss.subs({zb: z, yb: label}, simultaneous=True)
    steps = [
        _declared("soft_margin_loss", _fn("SoftMargin", z, y), sm.loss),
        _declared("binary_cross_entropy_with_logits", _fn("BCEWithLogits", zb, yb), bwl.loss),
        _proved_step(Phrase("title.equal"), Phrase("why.soft_margin"), _fn("SoftMargin", z, y),
                     [sm.loss, at_margin]),
    ]
    for value in (1, -1):
        steps.append(_proved_step(
            Phrase("title.labels"), Phrase("why.soft_margin_labels", value=str(value)),
            _fn("SoftMargin", z, value),
            [sm.loss.subs(y, value), relabelled.subs(y, value)],
        ))
    steps.append(_proved_step(
        Phrase("title.gradients"), Phrase("why.soft_margin_gradient"),
        Partial(_fn("SoftMargin", z, y), z),
        [_grad("soft_margin_loss"), y * _grad("bce_with_logits").subs({zb: y * z, yb: 1},
                                                                    simultaneous=True)],
    ))
    return steps


def _focal_bce() -> list[Step]:
    focal, bw = _decl("sigmoid_focal_loss"), _decl("bce_with_logits", weight=[1.0])
    z, y = focal.input, focal.target
    gamma, alpha = focal.symbols["gamma"], focal.symbols["alpha"]
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    at_zero = focal.loss.subs(gamma, 0)
    weighted = bw.loss.subs(bw.symbols["weight"], alpha_t)
    return [
        _declared("sigmoid_focal_loss", _fn("Focal", z, y), focal.loss),
        _declared("binary_cross_entropy_with_logits (weight w)", _fn("BCEWithLogits", z, y),
                  bw.loss),
        _proved_step(Phrase("title.equal"), Phrase("why.focal"),
                     sp.Subs(_fn("Focal", z, y), gamma, 0), [at_zero, weighted]),
        _proved_step(Phrase("title.gradients"), Phrase("why.gradient_equal", var=str(z)),
                     sp.Subs(Partial(_fn("Focal", z, y), z), gamma, 0),
                     [sp.diff(at_zero, z), sp.diff(weighted, z)]),
    ]


def _multilabel_bce() -> list[Step]:
    ml, bwl = _decl("multilabel_soft_margin_loss"), _decl("bce_with_logits")
    x, y, classes = ml.symbols["input"], ml.symbols["target"], ml.symbols["num_classes"]
    k, i = SUM_INDEX, CLASS_INDEX
    z, yb = bwl.input, bwl.target
    mean = sp.Sum(bwl.loss.subs({z: x[k], yb: y[k]}, simultaneous=True), (k, 1, classes)) / classes
    return [
        _declared("multilabel_soft_margin_loss", _fn("MultiLabelSoftMargin", x, y), ml.loss),
        _declared("binary_cross_entropy_with_logits", _fn("BCEWithLogits", z, yb), bwl.loss),
        _proved_step(Phrase("title.equal"), Phrase("why.multilabel"),
                     _fn("MultiLabelSoftMargin", x, y), [ml.loss, mean]),
        _proved_step(Phrase("title.gradients"), Phrase("why.multilabel_gradient"),
                     Partial(_fn("MultiLabelSoftMargin", x, y), x[i]),
                     [reduce_sums(sp.diff(ml.loss, x[i])),
                      _grad("bce_with_logits").subs({z: x[i], yb: y[i]}, simultaneous=True)
                      / classes]),
    ]


@dataclass(frozen=True)
class _Entry:
    slug: str
    left: str
    right: str
    statement: str  # the words key of the one-line statement
    build: Callable[[], list[Step]]
    also: tuple[tuple[str, str], ...] = field(default=())


_ENTRIES = (
    _Entry("bce_with_logits-bce", "binary_cross_entropy_with_logits", "binary_cross_entropy",
           "relation.bce_with_logits-bce", _bce_with_logits_bce),
    _Entry("bce-ce", "binary_cross_entropy", "cross_entropy", "relation.bce-ce", _bce_ce,
           also=(("binary_cross_entropy_with_logits", "cross_entropy"),)),
    _Entry("ce-kl_div", "cross_entropy", "kl_div", "relation.ce-kl_div", _ce_kl),
    _Entry("nll_loss-ce", "nll_loss", "cross_entropy", "relation.nll_loss-ce", _nll_ce),
    _Entry("soft_margin-bce_with_logits", "soft_margin_loss", "binary_cross_entropy_with_logits",
           "relation.soft_margin-bce_with_logits", _soft_margin_bce),
    _Entry("focal-bce_with_logits", "sigmoid_focal_loss", "binary_cross_entropy_with_logits",
           "relation.focal-bce_with_logits", _focal_bce),
    _Entry("multilabel_soft_margin-bce_with_logits", "multilabel_soft_margin_loss",
           "binary_cross_entropy_with_logits", "relation.multilabel-bce_with_logits",
           _multilabel_bce),
)


class Relation:
    """Two losses related by an equation SymPy proves, step by step.

    Attributes:
        slug: the relation's name (``"bce-ce"``), also its file stem in ``derivations/relations``.
        left, right: the torch.nn.functional names of the two losses.
        statement: one line saying what the relation is (English; :meth:`text` takes ``lang``).
        steps: each equation SymPy produced, with one line of words and whether it is proved.
        proved: True only when SymPy reduced every difference in :attr:`steps` to 0.
    """

    def __init__(self, entry: _Entry) -> None:
        self.slug = entry.slug
        self.left = entry.left
        self.right = entry.right
        self.statement = Phrase(entry.statement)
        self.steps: list[Step] = entry.build()
        self.proved = all(s.checked is not False for s in self.steps) and any(
            s.checked for s in self.steps
        )

    def __repr__(self) -> str:
        return f"<Relation {self.slug}: {self.left} ~ {self.right} proved={self.proved}>"

    def _verdict(self, lang: str) -> str:
        return word("relation.proved" if self.proved else "relation.not_proved", lang)

    def _status(self, step: Step, lang: str) -> str:
        from .render import _status

        return _status(step, lang)

    def text(self, lang: str = "en") -> str:
        """The relation as Unicode text for a terminal."""
        from .render import _chain_text, _Pretty

        check_lang(lang)
        printer = _Pretty()
        colon = word("colon", lang)
        out = [word("relation.title", lang, left=self.left, right=self.right),
               say(self.statement, lang), ""]
        for n, step in enumerate(self.steps, 1):
            out.append(f"{n}. {say(step.title, lang)}{colon}{say(step.why, lang)} "
                       f"[{self._status(step, lang)}]")
            out += ["    " + line for line in _chain_text(printer, step.lhs, step.rhs)]
            out.append("")
        out.append(word("relation.verdict", lang, verdict=self._verdict(lang)))
        return "\n".join(out) + "\n"

    def markdown(self, heading: str = "#", lang: str = "en") -> str:
        """The relation as Markdown: words as text, each chain in a ``$$`` block."""
        from .render import _chain_latex

        check_lang(lang)
        out = [f"{heading} " + word("relation.title", lang, left=f"`{self.left}`",
                                     right=f"`{self.right}`"),
               "", say(self.statement, lang), "",
               "**" + word("relation.verdict", lang, verdict=self._verdict(lang)) + "**", ""]
        for n, step in enumerate(self.steps, 1):
            out += [f"{heading}## {n}. {say(step.title, lang)}", "",
                    f"{say(step.why, lang)} *({self._status(step, lang)})*", "", "$$",
                    r"\begin{aligned}"]
            out += _chain_latex(step)
            out[-1] = out[-1][:-2].rstrip()
            out += [r"\end{aligned}", "$$", ""]
        return "\n".join(out)

    def latex(self, document: bool = False, lang: str = "en", environment: bool = False) -> str:
        """The relation as an ``align*`` body, or a complete document (pdflatex for English,
        xelatex for ``lang="zh"``)."""
        from .render import _chain_latex, document_preamble, words_tex

        check_lang(lang)
        body: list[str] = []
        for n, step in enumerate(self.steps, 1):
            title, why = say(step.title, lang), say(step.why, lang)
            status = self._status(step, lang)
            if environment:
                body.append(rf"&\text{{{n}. {title}. {why} ({status})}} \\")
            else:
                body.append(rf"\intertext{{{n}.~\textbf{{{words_tex(title, lang)}.}} "
                            rf"{words_tex(why, lang)} \emph{{({words_tex(status, lang)})}}}}")
            body += _chain_latex(step)
        body[-1] = body[-1][:-2].rstrip()
        align = "\n".join(body)
        if environment:
            return "\\begin{align*}\n" + align + "\n\\end{align*}"
        if not document:
            return align
        title = words_tex(word("relation.title", lang, left=self.left, right=self.right), lang)
        return "\n".join([
            *document_preamble(lang),
            r"\begin{document}",
            rf"\section*{{{title}}}",
            words_tex(say(self.statement, lang), lang) + r"\par",
            r"\emph{" + words_tex(self._verdict(lang), lang) + r"}\par",
            r"\begin{align*}",
            align,
            r"\end{align*}",
            r"\end{document}",
            "",
        ])

    def _repr_latex_(self) -> str:
        return "$$" + self.latex(environment=True) + "$$"

    def _repr_markdown_(self) -> str:
        from .example import notebook_markdown

        return notebook_markdown(self.markdown())

    def show(self, lang: str = "en") -> Any:
        """For a notebook: the relation displayed in ``lang`` (``r.show("zh")``)."""
        from .example import Shown

        return Shown(self.markdown(lang=lang))


def relations() -> list[str]:
    """The relations symloss proves, by name (``symloss.relate(a, b)`` with their losses).

    >>> relations()[:2]
    ['bce_with_logits-bce', 'bce-ce']
    """
    return [e.slug for e in _ENTRIES]


def pairs() -> list[tuple[str, str, str]]:
    """``(name, left loss, right loss)`` for every relation, without proving anything."""
    return [(e.slug, e.left, e.right) for e in _ENTRIES]


@cache
def _relation(slug: str) -> Relation:
    return Relation(next(e for e in _ENTRIES if e.slug == slug))


def relate(a: str, b: str, **options: Any) -> Relation:
    """The proved relation between the losses ``a`` and ``b`` (names or aliases, either order).

    Args:
        a, b: torch.nn.functional names or aliases (``"bce"``, ``"ce"``), or a relation's name
            from :func:`relations` as ``a`` alone with ``b=""``.
        **options: none yet; every relation is between the losses' declarations with their
            default options (the ones it substitutes, such as γ = 0, are part of the relation).

    Returns:
        A :class:`Relation`: ``.proved``, ``.steps``, ``.text()``, ``.markdown()``, ``.latex()``.

    Raises:
        UnknownLossError: a name is not a loss.
        SymlossValueError: no relation between the two is known (the message lists them), or an
            option was given.

    >>> r = relate("ce", "kl_div")
    >>> r.proved, r.left, r.right
    (True, 'cross_entropy', 'kl_div')
    """
    from .catalog import resolve

    slugs = relations()
    if a in slugs and not b:
        entry = next(e for e in _ENTRIES if e.slug == a)
    else:
        names = {resolve(a)[0].name, resolve(b)[0].name}
        found = [e for e in _ENTRIES
                 if names in ({e.left, e.right}, *({x, y} for x, y in e.also))]
        if not found:
            known = "; ".join(f"{e.left} ~ {e.right}" for e in _ENTRIES)
            raise SymlossValueError(word("relation.unknown", "en", a=a, b=b, known=known))
        entry = found[0]
    if options:
        raise SymlossValueError(word("relation.options", "en", slug=entry.slug,
                                     given=", ".join(sorted(options))))
    return _relation(entry.slug)
