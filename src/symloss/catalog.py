"""The catalogue: one short declaration per loss.

Each entry (a :class:`~symloss.spec.LossSpec`) names its torch.nn.functional twin and options and
builds a :class:`~symloss.declaration.Declaration` for one option set. The entries say *what* a loss is;
:mod:`symloss.derive` and :mod:`symloss.layout` (with its evaluators) do the rest, the same way for every loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import sympy as sp
from sympy import IndexedBase, Symbol, log

from . import catalog_boosting, row_losses
from .declaration import (
    CLASS_INDICES,
    CLASS_PROBABILITIES,
    COUNTS,
    LOG_PROBABILITIES,
    NONNEGATIVE,
    PROBABILITIES,
    REALS,
    SIGNS,
    Argument,
    Assumption,
    Declaration,
    Definition,
    Kink,
    Link,
)
from .errors import SymlossTypeError, SymlossValueError, UnknownLossError
from .primitives import (
    CLASS_INDEX,
    NUM_CLASSES,
    SUM_INDEX,
    accurate,
    bernoulli_curvature,
    clamp_min,
    clamped_log,
    class_sum,
    exp_sub,
    fsum,
    log_softmax,
    log_sub,
    off_target,
    sigmoid,
    sigmoid_pow,
    sigmoid_pow_large,
    sigmoid_sub,
    softmax,
    softmax_complement,
    softmax_hvp,
    softmax_sub,
    softplus,
)
from .spec import (
    REDUCTIONS,
    LossSpec,
    Option,
    fixed_signature,
    ignore_index_option,
    reduction_option,
    weight_option,
)

#: The second class index of a Hessian (the same symbol as derive.HESSIAN_INDEX).
_HJ = Symbol("j", integer=True, positive=True)

__all__ = ["ALIASES", "CATALOG", "LossSpec", "losses", "resolve"]


#: Symbol names shared by the element-wise losses.
_Z = Symbol("z", real=True)
_P = Symbol("p", positive=True)
_Y = Symbol("y", real=True)
_W = Symbol("w", real=True)
_WPOS = Symbol("w_+", positive=True)
_EPS = Symbol("epsilon", nonnegative=True)
_N = Symbol("n", integer=True, positive=True)

_BERNOULLI_WHY = (
    "Bernoulli negative log-likelihood with its canonical (logit) link: the gradient with "
    "respect to the natural parameter z is mean minus target, σ(z) − y."
)
_CATEGORICAL_WHY = (
    "Categorical negative log-likelihood with its canonical (softmax) link: the gradient with "
    "respect to the natural parameters z is mean minus target, softmax(z)ᵢ − yᵢ."
)


_INPUT = Argument("input", (REALS,), differentiable=True, why="the prediction (logits, scores)")
_REAL_TARGET = Argument("target", (REALS,), why="the regression target")


def _mean_why_elementwise() -> str:
    return "reduction='mean' averages the per-element losses over all n elements."


# --------------------------------------------------------------------------- binary cross-entropy
def _bernoulli_terms(opts: Mapping[str, Any], pos_weight: bool) -> tuple[sp.Expr, sp.Expr, dict[str, sp.Basic]]:
    """The weighted Bernoulli loss, in the prediction p and in the logit z (stable form)."""
    symbols: dict[str, sp.Basic] = {"input": _Z, "target": _Y}
    w = _W if opts.get("weight") is not None else sp.S.One
    if opts.get("weight") is not None:
        symbols["weight"] = _W
    r = _WPOS if pos_weight else sp.S.One
    if pos_weight:
        symbols["pos_weight"] = _WPOS
    in_p = -w * (r * _Y * log(_P) + (1 - _Y) * log(1 - _P))
    # log σ(z) = −softplus(−z) and log(1 − σ(z)) = −softplus(z): no exp overflow, no log(0).
    in_z = w * (r * _Y * softplus(-_Z) + (1 - _Y) * softplus(_Z))
    return in_p, in_z, symbols


def _sigmoid_link() -> Link:
    return Link(
        name="sigmoid",
        var=_P,
        expr=sigmoid(_Z),
        definition=1 / (1 + sp.exp(-_Z)),
        why="The sigmoid maps the logit z to the probability p = P(y = 1 | x).",
    )


#: torch's guard of BCE's Bernoulli variance: max(p(1 − p), 1e-12 as float32), whatever the dtype.
_BCE_EPS = sp.Float(9.999999960041972e-13, 17)
_BCE_GUARD = clamp_min(_P * (1 - _P), _BCE_EPS)


def _declare_bce(opts: Mapping[str, Any]) -> Declaration:
    if opts["link"] == "sigmoid":
        return _declare_bce_logits(opts, pos_weight=False)
    symbols: dict[str, sp.Basic] = {"input": _P, "target": _Y}
    w = sp.S.One
    if opts.get("weight") is not None:
        symbols["weight"] = _W
        w = _W
    # torch clamps each log at −100 so that p = 0 or 1 gives a finite loss.
    loss = -w * (_Y * clamped_log(_P) + (1 - _Y) * clamped_log(1 - _P))
    return Declaration(
        input=_P,
        target=_Y,
        loss=loss,
        canonical=w * (_P - _Y) / (_P * (1 - _P)),
        stable_gradient=w * (_P - _Y) / _BCE_GUARD,
        stable_why=(
            "Evaluated as torch does, w (p − y) / max(p(1 − p), 10⁻¹²), finite at p = 0 and 1."
        ),
        canonical_why=(
            "In the probability p the gradient is prediction minus target over the Bernoulli "
            "variance p(1 − p); with link='sigmoid' that variance cancels."
        ),
        loss_why="Binary cross-entropy of a probability p (torch clamps each log at −100).",
        canonical_hessian=w * (_Y / _P**2 + (1 - _Y) / (1 - _P) ** 2),
        hessian_why="Each log term contributes the square of its reciprocal.",
        # w ((p − y)² + y(1 − y))/c² from pairs, w inside the one rounding (bernoulli_curvature):
        # its float64 form rounds seven times, 4.2 ulp with a weight at p = 0.99981
        stable_hessian=w * bernoulli_curvature(_P, _Y, _BCE_EPS),
        stable_hessian_why=(
            "Evaluated over one denominator guarded like the gradient's, "
            "w ((p − y)² + y(1 − y)) / max(p(1 − p), 10⁻¹²)², finite at p = 0 and 1; the "
            "numerator p² − 2py + y written as a sum of two terms ≥ 0, which cannot cancel, "
            "each over the square (((p − y)/c)² stays normal where (p − y)² alone underflows)."
        ),
        mean_denominator=_N,
        mean_why=_mean_why_elementwise(),
        symbols=symbols,
    )


def _declare_bce_logits(opts: Mapping[str, Any], pos_weight: bool) -> Declaration:
    in_p, in_z, symbols = _bernoulli_terms(opts, pos_weight)
    w = _W if "weight" in symbols else sp.S.One
    r = _WPOS if pos_weight else sp.S.One
    return Declaration(
        input=_Z,
        target=_Y,
        loss=in_z,
        canonical=w * ((1 + (r - 1) * _Y) * sigmoid(_Z) - r * _Y),
        canonical_why=_BERNOULLI_WHY
        + (" With pos_weight w₊ the positive term is scaled by w₊." if pos_weight else ""),
        loss_why=(
            "Per-element binary cross-entropy of p = σ(z); log σ(z) = −softplus(−z) is the "
            "form evaluated."
        ),
        link=_sigmoid_link(),
        loss_in_link=in_p,
        soft_targets_take_gradient=True,
        stable_why=_BCE_STABLE,
        canonical_hessian=w * (1 + (r - 1) * _Y) * sigmoid(_Z) * (1 - sigmoid(_Z)),
        hessian_why=(
            "The derivative of the mean σ(z) is the Bernoulli variance σ(z)(1 − σ(z)), free of "
            "the target" + (" except through the pos_weight factor." if pos_weight else ".")
        ),
        # with pos_weight w₊ the factor w₊y + (1 − y), two terms ≥ 0: 1 + (w₊ − 1)y cancels
        # where w₊ is tiny and y = 1 (0 for w₊ = 6.1e-33 in float32)
        # rounded once from pairs (the numba kernels' first tier, _fastmath.sigmoid_curvature_q:
        # the float product of two rounded σ was up to 2.5 ulp off, and the two evaluators
        # 4 ulp apart)
        stable_hessian=accurate(w * sigmoid(_Z) * sigmoid(-_Z) if not pos_weight else
                                w * (r * _Y * sigmoid(_Z) * sigmoid(-_Z)
                                     + (1 - _Y) * sigmoid(_Z) * sigmoid(-_Z))),
        stable_hessian_why=_BERNOULLI_VARIANCE_STABLE,
        # σ(z) − y next to its root: one rounding of a double-double value; with pos_weight
        # the root moves to σ(z) = w₊y/(1 + (w₊ − 1)y), and both terms are kept in double-double
        stable_soft_gradient=(w * accurate((1 - _Y) * sigmoid(_Z) - r * _Y * sigmoid(-_Z))
                              if pos_weight else w * sigmoid_sub(_Z, _Y)),
        mean_denominator=_N,
        mean_why=_mean_why_elementwise(),
        symbols=symbols,
    )


_BERNOULLI_VARIANCE_STABLE = (
    "Evaluated as σ(z) σ(−z), rounded once from a double-double value: both factors keep "
    "their relative accuracy, so the variance does not round to 0 (or lose digits) where "
    "σ(z) → 1, as σ(z)(1 − σ(z)) does."
)

_BCE_STABLE = (
    "Evaluated as the derivative of the softplus form: for a hard label one term vanishes, "
    "so σ(z) − 1 is computed as −σ(−z), with no cancellation."
)


# --------------------------------------------------------------------------- cross-entropy
def _declare_ce(opts: Mapping[str, Any]) -> Declaration:
    z, y, p = IndexedBase("z"), IndexedBase("y"), IndexedBase("p")
    i, k, c = CLASS_INDEX, SUM_INDEX, NUM_CLASSES
    symbols: dict[str, sp.Basic] = {"input": z, "target": y, "num_classes": c}
    definitions: list[Definition] = []
    target = y
    if opts["label_smoothing"]:
        q = IndexedBase("q")
        definitions.append(
            Definition(
                q[k],
                (1 - _EPS) * y[k] + _EPS / c,
                "label_smoothing ε mixes the target with the uniform distribution over C classes.",
            )
        )
        symbols["label_smoothing"] = _EPS
        target = q
    weighted = opts.get("weight") is not None
    w = IndexedBase("w")
    if weighted:
        symbols["weight"] = w

    def a(idx: sp.Expr) -> sp.Expr:
        return (w[idx] if weighted else sp.S.One) * target[idx]

    link = Link(
        name="softmax",
        var=p,
        expr=softmax(z, k, c),
        definition=softmax(z, k, c).rewrite(sp.exp),
        why="The softmax maps the C logits z to class probabilities pₖ.",
    )
    loss_in_link = -class_sum(a(k) * log(p[k]))
    loss = -class_sum(a(k) * log_softmax(z, k, c))
    total = class_sum(a(k))
    p_i = softmax(z, i, c)
    if weighted:
        canonical = p_i * total - a(i)
        canonical_why = (
            _CATEGORICAL_WHY + " With class weights the target side is weighted: "
            "(Σₖ wₖ yₖ) pᵢ − wᵢ yᵢ, which is wₜ (pᵢ − yᵢ) for a hard label t."
        )
        assumptions: tuple[Assumption, ...] = ()
    else:
        canonical = p_i - target[i]
        canonical_why = _CATEGORICAL_WHY
        assumptions = (
            Assumption(class_sum(y[k]), sp.S.One, "the target is a distribution, Σₖ yₖ = 1"),
        )
    if weighted:
        denominator: sp.Expr = sp.Sum(w[IndexedBase("t")[Symbol("m")]], (Symbol("m"), 1, _N))
        mean_why = (
            "reduction='mean' with class-index targets divides by the total weight Σₘ w(tₘ) "
            "of the non-ignored samples (tₘ is sample m's class); with probability targets, "
            "by the number of samples."
        )
    else:
        denominator = _N
        mean_why = (
            "reduction='mean' divides by n, the number of samples (non-ignored ones, for "
            "class-index targets)."
        )
    # pᵢ Σa − aᵢ in double-double (softmax_sub), the target weights aₖ as exact pairs: it
    # cancels where pᵢ ≈ aᵢ/Σa, for a distribution y and, with label smoothing, for a class
    # index too (every aₖ > 0). For a class index the weights are written out (a(k), not the
    # array y), so that the kernels substitute the one-hot target.
    soft_sub = softmax_sub(z, y, i, c) if a(k) == y[k] else softmax_sub(z, a(k), i, c)
    stable = softmax_sub(z, a(k), i, c)
    stable_loss: sp.Expr | None = None
    if opts["label_smoothing"]:
        # (1 − ε) kept one factor: for a class index the δ-reduced sum expands (1 − ε) wₜ log pₜ
        # into ε wₜ log pₜ − wₜ log pₜ, which cancels by ~log₂(1/(1 − ε)) bits
        wk = w[k] if weighted else sp.S.One
        stable_loss = (-(1 - _EPS) * class_sum(wk * y[k] * log_softmax(z, k, c))
                       - _EPS / c * class_sum(wk * log_softmax(z, k, c)))
    return Declaration(
        input=z[i],
        target=y[i],
        loss=loss,
        canonical=canonical,
        canonical_why=canonical_why,
        loss_why=(
            "Cross-entropy of the target distribution y against p = softmax(z); for a class "
            "index t, y is one-hot at t. log softmax is the form evaluated."
        ),
        link=link,
        loss_in_link=loss_in_link,
        stable_gradient=stable,
        soft_targets_take_gradient=True,
        # a target distribution: pᵢ Σy − yᵢ in double-double (softmax_sub)
        stable_soft_gradient=soft_sub,
        stable_loss=stable_loss,
        stable_loss_why=("Evaluated as −(1 − ε) Σₖ wₖyₖ log pₖ − (ε/C) Σₖ wₖ log pₖ: the factor "
                         "1 − ε is not distributed over a class index's term."
                         if stable_loss is not None else ""),
        stable_why=_CE_STABLE,
        canonical_hessian=total * p_i * (sp.KroneckerDelta(i, _HJ) - softmax(z, _HJ, c)),
        # pᵢ(δᵢⱼ − pⱼ) with δᵢⱼ written as δᵢⱼ((1 − pᵢ) + pᵢ): on the diagonal (j = i) SymPy
        # cancels pᵢ − pⱼ symbolically, leaving pᵢ(1 − pᵢ) with 1 − pᵢ summed over the others.
        stable_hessian=total * p_i * (
            sp.KroneckerDelta(i, _HJ) * (softmax_complement(z, i, c) + p_i) - softmax(z, _HJ, c)
        ),
        # pᵢ(vᵢ − Σₖ pₖvₖ) with its bracket in double-double for float64 results (softmax_hvp):
        # it cancels wherever vᵢ is near the p-weighted mean of v.
        # The total weight Σa inside: the rounded pair scaled before the flush below the normal
        # range, as pᵢ(vᵢ − v̄) alone may be subnormal where the product is not.
        stable_hvp=softmax_hvp(z, IndexedBase("v"), i, c, total),
        stable_hessian_why=(
            "Evaluated as (Σₖ aₖ) pᵢ (δᵢⱼ ((1 − pᵢ) + pᵢ) − pⱼ), which is pᵢ(1 − pᵢ) on the "
            "diagonal with 1 − pᵢ summed over the other classes: it keeps its digits where "
            "pᵢ → 1."
        ),
        hessian_why=(
            "The C × C block (Σₖ aₖ)(diag(p) − p pᵀ): the softmax's Jacobian, the covariance of "
            "the categorical distribution, scaled by the total target weight."
        ),
        definitions=tuple(definitions),
        assumptions=assumptions,
        mean_denominator=denominator,
        mean_why=mean_why,
        symbols=symbols,
    )


_CE_STABLE = (
    "Evaluated as pᵢ Σₖ aₖ − aᵢ (aₖ the weighted target) rounded once from pairs: "
    "(eᵢ Σₖ aₖ − aᵢ Σₖ eₖ)/Σₖ eₖ with eₖ = exp(zₖ − max z), for a hard label and a "
    "distribution alike; nothing is lost where pᵢ → 1 or pᵢ ≈ aᵢ/Σₖ aₖ."
)


# --------------------------------------------------------------------------- the catalogue
_BCE = LossSpec(
    name="binary_cross_entropy",
    summary="Binary cross-entropy of probabilities; link='sigmoid' takes logits (BCELoss∘Sigmoid).",
    options=(
        weight_option("per-element rescaling weight, broadcast to the input", "last"),
        reduction_option(),
        Option("link", None, "None: input is a probability; 'sigmoid': input is a logit",
               (None, "sigmoid")),
    ),
    declare=_declare_bce,
    family="elementwise",
    signature=lambda o: (
        _INPUT if o.get("link") == "sigmoid"
        else Argument("input", (PROBABILITIES,), True, why="the predicted probability"),
        Argument("target", (PROBABILITIES,), why="hard 0/1 or soft labels"),
    ),
    module="BCELoss",
    torch_link=lambda o: o.get("link"),
)

_BCE_LOGITS = LossSpec(
    name="binary_cross_entropy_with_logits",
    summary="Binary cross-entropy of logits, sigmoid fused in (BCEWithLogitsLoss).",
    options=(
        weight_option("per-element rescaling weight, broadcast to the input", "last"),
        Option("pos_weight", None, "weight of positive examples, broadcast along the last axis",
               kind="array", shape="last", symbolic="presence"),
        reduction_option(),
        Option("link", "sigmoid", "the sigmoid is part of this loss", ("sigmoid",)),
    ),
    declare=lambda o: _declare_bce_logits(o, pos_weight=o.get("pos_weight") is not None),
    family="elementwise",
    signature=fixed_signature(_INPUT, Argument("target", (PROBABILITIES,), why="hard 0/1 or soft labels")),
    module="BCEWithLogitsLoss",
)

_CE = LossSpec(
    name="cross_entropy",
    summary="Softmax cross-entropy with class-index or probability targets (CrossEntropyLoss).",
    options=(
        weight_option("per-class rescaling weight, shape (C,)"),
        ignore_index_option(),
        reduction_option(),
        Option("label_smoothing", 0.0, "ε in [0, 1]: target becomes (1 − ε) y + ε/C",
               kind="unit_interval", examples=(0.1,), symbolic="nonzero"),
        Option("link", "softmax", "the softmax is part of this loss", ("softmax",)),
    ),
    declare=_declare_ce,
    family="class_axis",
    signature=fixed_signature(
        _INPUT,
        Argument("target", (CLASS_INDICES, CLASS_PROBABILITIES),
                 why="class indices, or class probabilities along the class axis"),
    ),
    module="CrossEntropyLoss",
    short=("ce",),
)

#: Every loss by its torch.nn.functional name.
CATALOG: dict[str, LossSpec] = {spec.name: spec for spec in (_BCE, _BCE_LOGITS, _CE)}

#: Short names for the command line: alias -> (name, preset options). Every other form of a
#: name (torch.nn's class name ``BCEWithLogitsLoss``, ``nn.CrossEntropyLoss``, any case, the
#: ``short`` forms of an entry) resolves through :func:`resolve` too.
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "bce": ("binary_cross_entropy", {"link": "sigmoid"}),
    "bce_with_logits": ("binary_cross_entropy_with_logits", {}),
    "ce": ("cross_entropy", {}),
}


def losses() -> list[str]:
    """The names of every loss in the catalogue (torch names), sorted.

    >>> losses()[:4]
    ['binary_cross_entropy', 'binary_cross_entropy_with_logits', 'cosine_embedding_loss', 'cross_entropy']
    >>> len(losses())
    25
    """
    return sorted(CATALOG)


_PREFIXES = ("torch.nn.functional.", "torch.nn.modules.loss.", "torch.nn.", "nn.functional.",
             "functional.", "torchvision.ops.", "nn.", "f.", "torch.")


def _normal(name: str) -> str:
    """A name as :func:`resolve` compares it: lower case, no module prefix, no underscores."""
    key = name.strip().lower()
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    return key.replace("_", "").replace("-", "").replace(" ", "")


def names() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every name a loss resolves from, in :func:`resolve`'s normal form -> (loss, preset).

    The torch.nn.functional name, torch.nn's class name (with and without its ``Loss``), the
    aliases and each entry's ``short`` forms; ``"BCELoss"`` is ``binary_cross_entropy`` of
    probabilities, ``"bce"`` the alias with ``link='sigmoid'``.

    >>> names()["bceloss"], names()["mse"]
    (('binary_cross_entropy', {}), ('mse_loss', {}))
    """
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for spec in CATALOG.values():
        forms = [spec.name, *spec.short]
        if spec.name.endswith("_loss"):
            forms.append(spec.name[: -len("_loss")])
        else:
            forms.append(spec.name + "_loss")
        if spec.module:
            forms += [spec.module, spec.module[: -len("Loss")]]
        for form in forms:
            out.setdefault(_normal(form), (spec.name, {}))
    for alias, (target, preset) in ALIASES.items():
        out[_normal(alias)] = (target, dict(preset))
    for spec in CATALOG.values():  # the torch name itself always wins
        out[_normal(spec.name)] = (spec.name, {})
    return out


def resolve(name: str) -> tuple[LossSpec, dict[str, Any]]:
    """The catalogue entry and preset options for a name, alias or torch class name.

    Names resolve from the torch.nn.functional name, an alias, torch.nn's class name
    (``"BCELoss"``, ``"nn.CrossEntropyLoss"``, ``"torch.nn.BCEWithLogitsLoss"``), in any case,
    and short forms (``"CE"``, ``"nll"``, ``"mse"``, ``"l1"``, ``"huber"``, ``"kl"``).

    >>> resolve("nn.CrossEntropyLoss")[0].name, resolve("BCELoss")[0].name
    ('cross_entropy', 'binary_cross_entropy')
    >>> resolve("BCE")
    (LossSpec(name='binary_cross_entropy', ...), {'link': 'sigmoid'})

    Raises:
        UnknownLossError: the message lists the names and suggests the closest form.
    """
    if not isinstance(name, str):
        raise SymlossTypeError(f"a loss name must be a string, got {name!r}")
    if name in CATALOG:
        return CATALOG[name], {}
    if name in ALIASES:
        target, preset = ALIASES[name]
        return CATALOG[target], dict(preset)
    table = names()
    key = _normal(name)
    if key in table:
        target, preset = table[key]
        return CATALOG[target], dict(preset)
    import difflib

    close = difflib.get_close_matches(key, list(table), n=1, cutoff=0.6)
    suggestion = None
    if close:
        target, preset = table[close[0]]
        # the torch name, or the alias that carries a preset (bce: link='sigmoid')
        suggestion = target if not preset else next(
            (a for a, v in ALIASES.items() if v == (target, preset)), target
        )
    raise UnknownLossError(name, [*CATALOG, *ALIASES], suggestion=suggestion)


# =========================================================================== regression & margins
_BETA = Symbol("beta", positive=True)
_DELTA = Symbol("delta", positive=True)
_MARGIN = Symbol("margin", real=True)
_EPS_LOG = Symbol("epsilon", positive=True)
_BATCH = Symbol("N", integer=True, positive=True)


def _real_option(
    name: str, default: float, help: str, kind: str = "real", examples: tuple[float, ...] = ()
) -> Option:
    return Option(name, default, help, kind=kind, examples=examples)


def _bool_option(name: str, default: bool, help: str) -> Option:
    return Option(name, default, help, (False, True))


def _elementwise(
    loss: sp.Expr,
    canonical: sp.Expr,
    canonical_why: str,
    loss_why: str,
    symbols: dict[str, sp.Basic],
    **more: Any,
) -> Declaration:
    """A declaration of an element-wise loss in z (input) and y (target), mean over n."""
    return Declaration(
        input=_Z,
        target=_Y,
        loss=loss,
        canonical=canonical,
        canonical_why=canonical_why,
        loss_why=loss_why,
        mean_denominator=more.pop("mean_denominator", _N),
        mean_why=more.pop("mean_why", _mean_why_elementwise()),
        symbols={"input": _Z, "target": _Y, **symbols},
        **more,
    )


def _declare_mse(opts: Mapping[str, Any]) -> Declaration:
    return _elementwise(
        (_Z - _Y) ** 2,
        2 * (_Z - _Y),
        "The Gaussian negative log-likelihood with unit variance (up to the factor 2) in its "
        "canonical (identity) link: twice the residual.",
        "Squared error of the prediction z against the target y.",
        {},
        canonical_hessian=sp.Integer(2),
        hessian_why="A quadratic has a constant second derivative.",
    )


_D = _Z - _Y
_ABS_KINK = "At z = y, |z − y| has no derivative; torch's backward takes sign(0) = 0, and so does sympy's sign."


def _declare_l1(opts: Mapping[str, Any]) -> Declaration:
    return _elementwise(
        sp.Abs(_D),
        sp.sign(_D),
        "The derivative of |d| is sign(d) away from the kink.",
        "Absolute error of the prediction z against the target y.",
        {},
        canonical_hessian=sp.S.Zero,
        hessian_why="Piecewise linear: the second derivative is 0 away from the kink.",
        kinks=(Kink(((_Z, _Y),), sp.S.Zero, _ABS_KINK + " The second derivative there is 0 too.",
                    sp.S.Zero, left=sp.S.NegativeOne, right=sp.S.One),),
    )


def _declare_smooth_l1(opts: Mapping[str, Any]) -> Declaration:
    if opts["beta"] == 0:
        return dataclasses.replace(
            _declare_l1(opts),
            loss_why="With beta = 0, torch computes smooth_l1_loss as l1_loss: |z − y|.",
        )
    b = _BETA
    inside = sp.Abs(_D) < b
    return _elementwise(
        sp.Piecewise((_D**2 / (2 * b), inside), (sp.Abs(_D) - b / 2, True)),
        sp.Piecewise((_D / b, inside), (sp.sign(_D), True)),
        "Quadratic within β of the target, linear outside: the residual over β, clipped to ±1.",
        "Smooth L1: (z − y)²/(2β) where |z − y| < β, else |z − y| − β/2.",
        {"beta": b},
        canonical_hessian=sp.Piecewise((1 / b, inside), (0, True)),
        hessian_why="1/β on the quadratic piece, 0 on the linear pieces.",
        kinks=(
            Kink(((_Z, _Y + b),), sp.S.One,
                 "At |z − y| = β the first derivative is continuous (±1 from both sides); torch "
                 "takes the linear side for the second derivative, 0, as the strict |d| < β does.",
                 sp.S.Zero, left=sp.S.One, right=sp.S.One),
        ),
    )


def _declare_huber(opts: Mapping[str, Any]) -> Declaration:
    dl = _DELTA
    inside = sp.Abs(_D) < dl
    return _elementwise(
        sp.Piecewise((_D**2 / 2, inside), (dl * (sp.Abs(_D) - dl / 2), True)),
        sp.Piecewise((_D, inside), (dl * sp.sign(_D), True)),
        "Quadratic within δ of the target, linear outside: the residual clipped to ±δ.",
        "Huber: (z − y)²/2 where |z − y| < δ, else δ(|z − y| − δ/2).",
        {"delta": dl},
        canonical_hessian=sp.Piecewise((1, inside), (0, True)),
        hessian_why="1 on the quadratic piece, 0 on the linear pieces.",
        kinks=(
            Kink(((_Z, _Y + dl),), dl,
                 "At |z − y| = δ the first derivative is continuous (±δ); torch takes the linear "
                 "side for the second derivative, 0, as the strict |d| < δ does.",
                 sp.S.Zero, left=dl, right=dl),
        ),
    )


def _declare_soft_margin(opts: Mapping[str, Any]) -> Declaration:
    return _elementwise(
        softplus(-_Y * _Z),
        -_Y * sigmoid(-_Y * _Z),
        "The logistic loss of the margin y z: −y σ(−y z), the Bernoulli mean-minus-target "
        "written for labels ±1.",
        "Soft margin (logistic) loss log(1 + exp(−y z)) for labels y = ±1, as softplus(−y z).",
        {},
        stable_gradient=-_Y * sigmoid(-_Y * _Z),
        stable_why="Evaluated as −y σ(−y z): no 1 − σ cancellation where y z is large.",
        canonical_hessian=_Y**2 * sigmoid(_Y * _Z) * sigmoid(-_Y * _Z),
        hessian_why="y² σ(y z) σ(−y z); for labels ±1 this is the Bernoulli variance.",
        stable_hessian=accurate(_Y**2 * sigmoid(_Y * _Z) * sigmoid(-_Y * _Z)),
        stable_hessian_why=_BERNOULLI_VARIANCE_STABLE,
    )


def _declare_poisson(opts: Mapping[str, Any]) -> Declaration:
    stirling = sp.Piecewise(
        (_Y * log(_Y) - _Y + log(2 * sp.pi * _Y) / 2, _Y > 1), (0, True)
    )
    extra = stirling if opts["full"] else sp.S.Zero
    symbols: dict[str, sp.Basic] = {}
    stirling_why = (
        " With full=True torch adds Stirling's approximation of log(y!), "
        "y log y − y + log(2πy)/2, only where y > 1; it does not depend on the input."
        if opts["full"] else ""
    )
    if opts["log_input"]:
        return _elementwise(
            # eᶻ − y z (+ Stirling's term) cancels next to its minimum: in double-double
            accurate(sp.exp(_Z) - _Y * _Z + extra),
            sp.exp(_Z) - _Y,
            "Poisson negative log-likelihood with its canonical (log) link: the gradient with "
            "respect to the natural parameter z = log λ is mean minus target, exp(z) − y.",
            "Poisson negative log-likelihood of the rate λ = exp(z)." + stirling_why,
            symbols,
            canonical_hessian=sp.exp(_Z),
            hessian_why="The variance of the Poisson distribution, its mean exp(z).",
            # rounded once from a pair in both evaluators (their float exponentials differ:
            # eᶻ·v was 2 floats apart at 0.5% of random elements)
            stable_hessian=accurate(sp.exp(_Z)),
            stable_hessian_why="Evaluated as exp(z) rounded once from a double-double value.",
            stable_gradient=exp_sub(_Z, _Y),
            stable_why=(
                "Evaluated as exp(z) − y rounded once from a double-double value: it keeps its "
                "digits next to exp(z) = y, where a float64 difference cancels."
            ),
        )
    symbols["eps"] = _EPS_LOG
    return _elementwise(
        # z − y log(z + ε) (+ Stirling's term) cancels next to its minimum: in double-double
        accurate(_Z - _Y * log(_Z + _EPS_LOG) + extra),
        1 - _Y / (_Z + _EPS_LOG),
        "In the rate z itself (no canonical link) the gradient is 1 − y/(z + ε).",
        "Poisson negative log-likelihood of the rate z; torch adds ε inside the log."
        + stirling_why,
        symbols,
        canonical_hessian=_Y / (_Z + _EPS_LOG) ** 2,
        hessian_why="The derivative of −y/(z + ε).",
        stable_gradient=accurate(1 - _Y / (_Z + _EPS_LOG)),
        stable_why=(
            "Evaluated as 1 − y/(z + ε) rounded once from a double-double value: it keeps its "
            "digits next to z + ε = y, where a float64 difference cancels."
        ),
    )


def _declare_kl_div(opts: Mapping[str, Any]) -> Declaration:
    batchmean = dict(
        mean_denominator=_BATCH,
        mean_why="reduction='batchmean' divides the sum by N, the size of the first dimension.",
    ) if opts["reduction"] == "batchmean" else {}
    if opts["log_target"]:
        return _elementwise(
            sp.exp(_Y) * (_Y - _Z),
            -sp.exp(_Y),
            "Linear in the log-probability z: the gradient is minus the target probability.",
            "KL divergence term of the target log-probability y against the log-probability z: "
            "exp(y)(y − z).",
            {},
            canonical_hessian=sp.S.Zero,
            hessian_why="Linear in z.",
            **batchmean,
        )
    # torch evaluates y log y as xlogy(y, y): 0 where y = 0.
    ylogy = sp.Piecewise((0, sp.Eq(_Y, 0)), (_Y * log(_Y), True))
    return _elementwise(
        # y log y − y z cancels where z ≈ log y: in double-double (accurate)
        accurate(ylogy - _Y * _Z),
        -_Y,
        "Linear in the log-probability z: the gradient is minus the target probability.",
        "KL divergence term of the target probability y against the log-probability z: "
        "y log y − y z (0 where y = 0).",
        {},
        # where z is the float nearest log y, log y − z is 2⁻⁶⁰ of the terms: a double-double
        # log y (2⁻¹⁰⁶ of it) left 5 ulp; log_sub keeps 2⁻¹¹⁵ of them where it cancels
        # (−y·z at y = 0: NaN for an infinite z, as torch's 0·∞)
        stable_loss=sp.Piecewise((-_Y * _Z, sp.Eq(_Y, 0)), (_Y * log_sub(_Y, _Z), True)),
        stable_loss_why=(
            "Evaluated as y (log y − z); where log y − z cancels, from a value good to 115 bits "
            "of the terms (a table of log r in three parts and log1p(m·r − 1) in "
            "double-double): it keeps its digits where z is the float nearest log y."
        ),
        canonical_hessian=sp.S.Zero,
        hessian_why="Linear in z.",
        **batchmean,
    )


def _declare_hinge_embedding(opts: Mapping[str, Any]) -> Declaration:
    m = _MARGIN
    hinge = sp.Piecewise((m - _Z, _Z <= m), (0, True))
    # z + max(0, m − z) of a target other than ±1 is m where the hinge is active: a float
    # z + (m − z) keeps m − z's rounding (32 ulp at z = −63); in double-double (accurate).
    loss = accurate(sp.Piecewise((_Z, sp.Eq(_Y, 1)), (hinge, sp.Eq(_Y, -1)),
                                 (_Z + hinge, True)))
    dhinge = sp.Piecewise((-1, _Z <= m), (0, True))
    return _elementwise(
        loss,
        sp.Piecewise((1, sp.Eq(_Y, 1)), (dhinge, sp.Eq(_Y, -1)), (1 + dhinge, True)),
        "1 for a similar pair (y = 1); for a dissimilar pair (y = −1), −1 inside the margin and "
        "0 outside.",
        "Hinge embedding loss: z for y = 1, max(0, margin − z) for y = −1 (torch adds both "
        "terms for any other target value).",
        {"margin": m},
        canonical_hessian=sp.S.Zero,
        hessian_why="Piecewise linear: 0 away from the kink.",
        kinks=(
            Kink(((_Z, m), (_Y, -1)), sp.S.NegativeOne,
                 "At z = margin (y = −1) the derivative jumps from −1 (inside the margin) to 0: "
                 "every value in [−1, 0] is a subgradient. symloss counts the hinge as active "
                 "(z ≤ margin), −1, the left side, as torch 2.13 does; torch 2.14 returns 0, "
                 "the right side.", sp.S.Zero, left=sp.S.NegativeOne, right=sp.S.Zero),
        ),
    )


def _reduction_option_kl() -> Option:
    return Option("reduction", "mean", "how per-element losses are combined",
                  ("none", "mean", "sum", "batchmean"))


_ELEMENTWISE_NEW = (
    LossSpec(
        name="mse_loss",
        summary="Mean squared error (MSELoss).",
        options=(reduction_option(),),
        declare=_declare_mse,
        family="elementwise",
        signature=fixed_signature(_INPUT, _REAL_TARGET),
        module="MSELoss",
    ),
    LossSpec(
        name="l1_loss",
        summary="Mean absolute error (L1Loss); sign(0) = 0 at the kink, as torch.",
        options=(reduction_option(),),
        declare=_declare_l1,
        family="elementwise",
        signature=fixed_signature(_INPUT, _REAL_TARGET),
        module="L1Loss",
    ),
    LossSpec(
        name="smooth_l1_loss",
        summary="Smooth L1 (SmoothL1Loss): quadratic within beta, linear outside; beta=0 is L1.",
        options=(reduction_option(),
                 _real_option("beta", 1.0, "width of the quadratic zone, ≥ 0", "nonnegative",
                              examples=(0.5, 0.0, 3.0))),
        declare=_declare_smooth_l1,
        family="elementwise",
        signature=fixed_signature(_INPUT, _REAL_TARGET),
        module="SmoothL1Loss",
    ),
    LossSpec(
        name="huber_loss",
        summary="Huber loss (HuberLoss): quadratic within delta, delta-scaled linear outside.",
        options=(reduction_option(),
                 _real_option("delta", 1.0, "threshold of the quadratic zone, > 0", "positive",
                              examples=(0.5, 4.0))),
        declare=_declare_huber,
        family="elementwise",
        signature=fixed_signature(_INPUT, _REAL_TARGET),
        module="HuberLoss",
    ),
    LossSpec(
        name="soft_margin_loss",
        summary="Logistic loss of the margin y·z for labels ±1 (SoftMarginLoss).",
        options=(reduction_option(),),
        declare=_declare_soft_margin,
        family="elementwise",
        signature=fixed_signature(_INPUT, Argument("target", (SIGNS,), why="labels ±1")),
        module="SoftMarginLoss",
    ),
    LossSpec(
        name="poisson_nll_loss",
        summary="Poisson negative log-likelihood (PoissonNLLLoss), log or rate input.",
        options=(
            _bool_option("log_input", True, "True: input is log λ; False: input is λ"),
            _bool_option("full", False, "add the Stirling term for y > 1"),
            _real_option("eps", 1e-8, "added inside log when log_input=False, > 0", "positive",
                         examples=(1e-3,)),
            reduction_option(),
        ),
        declare=_declare_poisson,
        family="elementwise",
        signature=lambda o: (
            _INPUT if o["log_input"]
            else Argument("input", (NONNEGATIVE,), True, why="the Poisson rate λ ≥ 0"),
            Argument("target", (COUNTS,), why="observed counts"),
        ),
        module="PoissonNLLLoss",
        short=("poisson",),
    ),
    LossSpec(
        name="kl_div",
        summary="KL divergence with log-probability input (KLDivLoss); reduction='batchmean'.",
        options=(
            _reduction_option_kl(),
            _bool_option("log_target", False, "True: the target is a log-probability"),
        ),
        declare=_declare_kl_div,
        family="elementwise",
        signature=lambda o: (
            Argument("input", (REALS,), True,
                     why="log-probabilities (the loss is linear in them: any real is accepted)"),
            Argument("target", (LOG_PROBABILITIES if o["log_target"] else PROBABILITIES,),
                     why="the target distribution's probabilities (log_target: their logs)"),
        ),
        module="KLDivLoss",
        short=("kl", "kld"),
    ),
    LossSpec(
        name="hinge_embedding_loss",
        summary="Hinge embedding loss (HingeEmbeddingLoss) for targets ±1.",
        options=(_real_option("margin", 1.0, "the margin for y = −1", examples=(0.5, -1.0)),
                 reduction_option()),
        declare=_declare_hinge_embedding,
        family="elementwise",
        signature=fixed_signature(
            Argument("input", (REALS,), True, why="distances (or any scores)"),
            Argument("target", (SIGNS,), why="1 for a similar pair, −1 for a dissimilar one"),
        ),
        module="HingeEmbeddingLoss",
        short=("hinge_embedding",),
    ),
)
for _spec in _ELEMENTWISE_NEW:
    CATALOG[_spec.name] = _spec


# =========================================================================== nll_loss
def _declare_nll(opts: Mapping[str, Any]) -> Declaration:
    if opts["link"] == "log_softmax":
        ce = _declare_ce({**opts, "label_smoothing": 0.0})
        return dataclasses.replace(
            ce,
            loss_why="nll_loss of log_softmax(z) is cross_entropy: the negative "
            "log-likelihood of the target class under p = softmax(z). " + ce.loss_why,
        )
    x, y = IndexedBase("x"), IndexedBase("y")
    i, k, c = CLASS_INDEX, SUM_INDEX, NUM_CLASSES
    symbols: dict[str, sp.Basic] = {"input": x, "target": y, "num_classes": c}
    weighted = opts.get("weight") is not None
    w = IndexedBase("w")
    if weighted:
        symbols["weight"] = w

    def a(idx: sp.Expr) -> sp.Expr:
        return (w[idx] if weighted else sp.S.One) * y[idx]

    ce = _declare_ce({**opts, "label_smoothing": 0.0})
    return Declaration(
        input=x[i],
        target=y[i],
        loss=-class_sum(a(k) * x[k]),
        canonical=-a(i),
        canonical_why=(
            "Linear in the log-probabilities: minus the (weighted) one-hot target, "
            "−w_t δᵢₜ for a class index t."
        ),
        loss_why=(
            "Negative log-likelihood of the target class t given log-probabilities x: "
            "−w_t x_t, written as a sum against the one-hot y."
        ),
        mean_denominator=ce.mean_denominator,
        mean_why=ce.mean_why,
        symbols=symbols,
        canonical_hessian=sp.S.Zero,
        hessian_why="Linear in x: the Hessian is 0 (curvature enters only through a link).",
    )


CATALOG["nll_loss"] = LossSpec(
    name="nll_loss",
    summary="Negative log-likelihood of log-probabilities (NLLLoss); link='log_softmax' is "
    "cross_entropy.",
    options=(
        weight_option("per-class rescaling weight, shape (C,)"),
        ignore_index_option(),
        reduction_option(),
        Option("link", None, "None: input is log-probabilities; 'log_softmax': input is logits",
               (None, "log_softmax")),
    ),
    declare=_declare_nll,
    family="class_axis",
    signature=lambda o: (
        _INPUT if o.get("link") == "log_softmax"
        else Argument("input", (REALS,), True,
                      why="log-probabilities (the loss is linear in them: any real is accepted)"),
        Argument("target", (CLASS_INDICES,), why="class indices"),
    ),
    module="NLLLoss",
    short=("nll",),
    torch_twin="nll_loss",
)


# =========================================================================== sigmoid focal loss
_ALPHA = Symbol("alpha", real=True)
_GAMMA = Symbol("gamma", nonnegative=True)


def _declare_focal(opts: Mapping[str, Any]) -> Declaration:
    from .hinges import power

    symbols: dict[str, sp.Basic] = {}
    ce = _Y * softplus(-_Z) + (1 - _Y) * softplus(_Z)
    # 1 − p_t with p_t = p y + (1 − p)(1 − y), p = σ(z): written without 1 − σ cancellation.
    q = _Y * sigmoid(-_Z) + (1 - _Y) * sigmoid(_Z)
    if opts["gamma"] == 0:
        modulating: sp.Expr = sp.S.One
        dmod: sp.Expr = sp.S.Zero
    else:
        # power(q, γ) is q^γ differentiated as γ q^(γ−1): finite where q underflows to 0.
        modulating = power(q, _GAMMA)
        symbols["gamma"] = _GAMMA
        dmod = _GAMMA * power(q, _GAMMA - 1) * (1 - 2 * _Y) * sigmoid(_Z) * sigmoid(-_Z)
    if opts["alpha"] >= 0:
        alpha_t = _ALPHA * _Y + (1 - _ALPHA) * (1 - _Y)
        symbols["alpha"] = _ALPHA
    else:
        alpha_t = sp.S.One
    # a product of rounded factors (up to 7 ulp): in double-double (accurate)
    loss = accurate(alpha_t * ce * modulating)
    canonical = alpha_t * ((sigmoid(_Z) - _Y) * modulating + ce * dmod)
    # γ > 2: σ^γ with log1p(e^(−|x|)) to ~2⁻⁶⁶ (its rounding costs about γ/2 ulp: 464 at
    # γ = 1000), two more exponentials per element; γ ≤ 2 (the default) keeps the plain one
    pow_class = sigmoid_pow_large if opts["gamma"] > 2 else sigmoid_pow
    stable_gradient, stable_hessian, stable_names = _focal_stable(loss, alpha_t, ce, modulating,
                                                                  pow_class)
    # The names the printed derivation uses, as the notebook writes them (display only).
    # The derivatives are sympy.diff's, in the form they take inside the derived gradient.
    names = [Definition(Symbol("ℓ_BCE"), ce, "the binary cross-entropy of σ(z)"),
             Definition(Symbol("ℓ_BCE'"), sp.diff(ce, _Z), "∂ℓ_BCE/∂z, by sympy.diff"),
             Definition(Symbol("ℓ_BCE''"), sp.diff(ce, _Z, 2), "∂²ℓ_BCE/∂z², by sympy.diff"),
             Definition(Symbol("q"), q, "q = 1 − p_t, the probability given to the wrong label"),
             Definition(Symbol("q'"), sp.diff(q, _Z), "∂q/∂z, by sympy.diff"),
             Definition(Symbol("q''"), sp.diff(q, _Z, 2), "∂²q/∂z², by sympy.diff")]
    if opts["alpha"] >= 0:
        names.insert(0, Definition(Symbol("alpha_t"), alpha_t, "the weight of y's class"))
    return _elementwise(
        loss,
        canonical,
        "Product rule: the binary cross-entropy's gradient σ(z) − y scaled by the modulating "
        "factor (1 − p_t)^γ, plus the cross-entropy times the factor's derivative, "
        "γ(1 − p_t)^(γ−1)(1 − 2y)σ(z)σ(−z); all times α_t.",
        "torchvision's sigmoid_focal_loss: α_t (1 − p_t)^γ times the binary cross-entropy of "
        "p = σ(z), with p_t = p y + (1 − p)(1 − y) and α_t = α y + (1 − α)(1 − y) (no α_t "
        "when α < 0); 1 − p_t is evaluated as y σ(−z) + (1 − y) σ(z).",
        symbols,
        stable_gradient=stable_gradient,
        stable_why=_FOCAL_STABLE,
        stable_hessian=stable_hessian,
        stable_hessian_why=_FOCAL_STABLE,
        names=(*names, *stable_names),
    )


_FOCAL_STABLE = (
    "Evaluated per label: for y = 0 (y = 1) 1 − p_t is σ(s) with s = z (s = −z), and its "
    "power σ(s)^γ is differentiated as γ σ(s)^γ σ(−s) (sigmoid_pow, evaluated as "
    "e^(−γ softplus(−s))): no σ(s)^(γ−1) that overflows while σ(s)σ(−s) underflows, whose "
    "product is NaN; each 1 − σ(x) is σ(−x). A soft label takes the derived form with each "
    "q^(γ−k) (q = 1 − p_t) written q^γ times ratios of q's derivatives to q (finite where q is "
    "subnormal and q^(γ−k) overflows), 1 − 2y kept as a factor and σ(z) − y in double-double."
)


def _sigmoid_complements(expr: sp.Expr) -> sp.Expr:
    """``expr`` with every ``1 − σ(x)`` written ``σ(−x)``, which does not cancel as σ(x) → 1."""

    def is_complement(e: sp.Basic) -> bool:
        return (isinstance(e, sp.Add) and len(e.args) == 2
                and ((sp.S.One in e.args and isinstance(-(e - 1), sigmoid))
                     or (sp.S.NegativeOne in e.args and isinstance(e + 1, sigmoid))))

    def complement(e: sp.Expr) -> sp.Expr:
        if sp.S.One in e.args:  # 1 − σ(x) = σ(−x)
            return sigmoid(-(-(e - 1)).args[0])
        return -sigmoid(-(e + 1).args[0])  # σ(x) − 1 = −σ(−x)

    return expr.replace(is_complement, complement)


def _focal_stable(loss: sp.Expr, alpha_t: sp.Expr, ce: sp.Expr, modulating: sp.Expr,
                  pow_class: type[sigmoid_pow] = sigmoid_pow
                  ) -> tuple[sp.Expr, sp.Expr, tuple[Definition, ...]]:
    """The focal loss's evaluated gradient and Hessian, by ``sympy.diff`` of its form at each
    hard label (``(1 − p_t)^γ`` as :class:`~symloss.primitives.sigmoid_pow`) and of the
    general form for a soft label, each in double-double (accurate)."""
    from .hinges import power

    def at_label(label: int) -> sp.Expr:
        hard = loss.subs(_Y, label)
        return hard.replace(lambda e: isinstance(e, power) and isinstance(e.args[0], sigmoid),
                            lambda e: pow_class(e.args[0].args[0], e.args[1]))

    # A soft label: 1 − p_t = q differentiated as an opaque Q(z), then Q' and Q'' by
    # sympy.diff, factored, so that their (1 − 2y) stays one factor (0 at y = ½, not a
    # difference of two rounded terms) and σ(−z) − σ(z) is −tanh(z/2) (no cancellation at 0).
    q = _Y * sigmoid(-_Z) + (1 - _Y) * sigmoid(_Z)
    opaque = sp.Function("Q")(_Z)
    soft = loss.replace(lambda e: isinstance(e, power) and e.args[0] == q,
                        lambda e: power(opaque, e.args[1]))

    first = sp.factor(_sigmoid_complements(sp.diff(q, _Z)))  # (1 − 2y) σ(z) σ(−z)
    second = sp.factor(_sigmoid_complements(sp.diff(first, _Z))).replace(
        lambda e: isinstance(e, sp.Add) and sp.expand(e - (sigmoid(-_Z) - sigmoid(_Z))) == 0,
        lambda e: -sp.tanh(_Z / 2))  # σ(−z) − σ(z) = −tanh(z/2)

    from .algebra import normalize

    mean_minus_target = sigmoid(_Z) - _Y

    def as_difference(e: sp.Expr) -> sp.Expr:
        # ±(σ(z) − y), however written, as sigmoid_sub (double-double next to σ(z) = y)
        if sp.expand(normalize(e - mean_minus_target)) == 0:
            return sigmoid_sub(_Z, _Y)
        if sp.expand(normalize(e + mean_minus_target)) == 0:
            return -sigmoid_sub(_Z, _Y)
        return e

    # Q^(γ−k)·Q′ⁱ·Q″ʲ (i + j = k) as Q^γ·(Q′/Q)ⁱ·(Q″/Q)ʲ, in the gradient and the Hessian: no
    # factor of the product leaves the float64 range where the result does not (y = 2⁻¹⁰²²,
    # z = −359.38, γ = ½: (σ(z)σ(−z))² ≈ 10⁻³¹² is subnormal, the Hessian 10⁻²³⁴ came out 11%
    # off; z = −10⁴: Q^(γ−2) = 2²⁰⁴⁴ is inf beside Q′² = 0, NaN; y = 2.8e-317, z = −724.74,
    # γ = 10⁻⁶: Q ≈ 1.3e-315 is subnormal, Q^(γ−1) inf, the gradient inf for 1.3e-315), each
    # ratio ≤ 1/min(y, 1 − y) in size.
    r1, r2 = sp.Dummy("r1"), sp.Dummy("r2")

    def as_ratios(expr: sp.Expr) -> sp.Expr:
        def lowered(e: sp.Basic) -> sp.Expr:
            k = sp.simplify(_GAMMA - e.args[1])
            return power(e.args[0], _GAMMA) * e.args[0] ** (-k)

        d = expr.replace(lambda e: isinstance(e, power) and e.args[0] == opaque
                         and sp.simplify(_GAMMA - e.args[1]).is_Integer
                         and sp.simplify(_GAMMA - e.args[1]) > 0, lowered)
        d = d.subs(sp.Derivative(opaque, (_Z, 2)), r2 * opaque)
        d = d.subs(sp.Derivative(opaque, _Z), r1 * opaque)
        assert not d.has(sp.Derivative), d
        # each ratio one factor, not a product SymPy spreads over its numerator and
        # denominator (σ(−z)²σ(z)²/Q², whose numerator underflows); its sign outside (the
        # printers show a factor −a/q as a subtraction, "b q^γ − a/q")
        def ratio(e: sp.Expr) -> sp.Expr:
            e = e / q
            return -sp.UnevaluatedExpr(-e) if e.could_extract_minus_sign() else sp.UnevaluatedExpr(e)

        return d.subs({r1: ratio(first), r2: ratio(second)})

    def soft_term(expr: sp.Expr) -> sp.Expr:
        d = _sigmoid_complements(as_ratios(expr).subs(opaque, q))
        return d.replace(lambda e: isinstance(e, sp.Add) and e.has(sigmoid), as_difference)

    forms = [(at_label(0), sp.Eq(_Y, 0)), (at_label(1), sp.Eq(_Y, 1))]
    # A soft label's gradient crosses 0 where its two product-rule terms cancel (σ(z) ≈ y is
    # only one of its roots): evaluated in double-double (accurate).
    # A hard label's gradient, ±α_t σ(s)^γ (σ(s) + γ softplus(s) σ(−s)), cancels nowhere,
    # but as a float64 form of libm-grade primitives it is only within ~3 ulp, and the two
    # evaluators' primitives differ (numba: exp_m, log1p_w, fused products; NumPy: its exp,
    # log1p and cse order): up to 6 ulp apart on ~5% of elements, not the ≤ 1 ulp the
    # evaluators must agree by. In double-double (accurate) both round once: ≤ 0.5 ulp. With
    # α > 1 that also lifts α_t·σ(∓z) where σ(∓z) = e^(−|z|) alone is subnormal (α = 1000,
    # |z| = 714: the float form was 36.5 ulp off; ddouble.TINY_TERMS sends such a normal
    # result to the exact rescue).
    def hard_arm(form: sp.Expr) -> sp.Expr:
        return accurate(_sigmoid_complements(sp.diff(form, _Z)))

    gradient = sp.Piecewise(
        *((hard_arm(form), cond) for form, cond in forms),
        (accurate(soft_term(sp.diff(soft, _Z))), True),
    )

    # The Hessian as α_t (ℓ_BCE″ M + 2 ℓ_BCE′ M′ + ℓ_BCE M″), M = (1 − p_t)^γ, each product-rule
    # term by label: a sum of three short cases rather than one case of three long sums.
    def modulating_at(label: int) -> sp.Expr:
        return modulating.subs(_Y, label).replace(
            lambda e: isinstance(e, power) and isinstance(e.args[0], sigmoid),
            lambda e: pow_class(e.args[0].args[0], e.args[1]))

    soft_m = modulating.replace(lambda e: isinstance(e, power) and e.args[0] == q,
                                lambda e: power(opaque, e.args[1]))
    pairs = [(ce.subs(_Y, 0), modulating_at(0)), (ce.subs(_Y, 1), modulating_at(1))]
    terms = []
    for a, b, factor in ((2, 0, 1), (1, 1, 2), (0, 2, 1)):
        hard = [(_sigmoid_complements(factor * sp.diff(c, _Z, a) * sp.diff(m, _Z, b)), cond)
                for (c, m), (_, cond) in zip(pairs, forms, strict=True)]
        # M″ = γ(γ−1) q^(γ−2) q′² + γ q^(γ−1) q″: one case each (the hard labels' in the first)
        parts = (sp.Add.make_args(sp.expand_mul(sp.diff(soft_m, _Z, b))) if b == 2
                 else (sp.diff(soft_m, _Z, b),))
        for n, part in enumerate(parts):
            general = soft_term(factor * sp.diff(ce, _Z, a) * part)
            terms.append(sp.Piecewise(*(hard if n == 0 else [(0, cond) for _, cond in hard]),
                                      (general, True)))
    # The Hessian crosses 0 for hard labels too (y = 0, γ = ½: near z = 4, where
    # σ(z)(1 + 2γ) = γ softplus(z)(σ(z) − γσ(−z))): its terms in double-double (accurate),
    # α_t with them: αy + (1 − α)(1 − y) cancels for α outside [0, 1] (α = 1000 next to
    # y = 999/1999: the float64 factor was 1.3e15 ulp off).
    derivatives = [gradient, accurate(alpha_t * sp.Add(*terms))]
    shown = (  # the evaluated forms' own q′ and q″, named in the printed derivation
        Definition(Symbol("q_1"), first, "q′ as evaluated: (1 − 2y) σ(z) σ(−z), one factor 1 − 2y"),
        Definition(Symbol("q_2"), second, "q″ as evaluated, with σ(−z) − σ(z) as −tanh(z/2)"),
    )
    return derivatives[0], derivatives[1], shown


CATALOG["sigmoid_focal_loss"] = LossSpec(
    name="sigmoid_focal_loss",
    summary="torchvision.ops.sigmoid_focal_loss: focal loss of logits (alpha, gamma).",
    options=(
        _real_option("alpha", 0.25, "weight of positives in [0, 1]; negative: no weighting",
                     examples=(0.75, -1.0)),
        _real_option("gamma", 2.0, "focusing exponent, ≥ 0", "nonnegative",
                     examples=(0.5, 0.0, 3.0)),
        Option("reduction", "none", "how per-element losses are combined (torchvision: none)",
               REDUCTIONS),
    ),
    declare=_declare_focal,
    family="elementwise",
    signature=fixed_signature(_INPUT, Argument("target", (PROBABILITIES,), why="hard 0/1 or soft labels")),
    short=("focal", "focal_loss"),
    torch_twin="sigmoid_focal_loss",
)


# =========================================================================== multilabel soft margin
def _declare_multilabel_soft_margin(opts: Mapping[str, Any]) -> Declaration:
    x, y, w = IndexedBase("x"), IndexedBase("y"), IndexedBase("w")
    i, k, c = CLASS_INDEX, SUM_INDEX, NUM_CLASSES
    symbols: dict[str, sp.Basic] = {"input": x, "target": y, "num_classes": c}
    weighted = opts.get("weight") is not None
    if weighted:
        symbols["weight"] = w

    def wt(idx: sp.Expr) -> sp.Expr:
        return w[idx] if weighted else sp.S.One

    term = wt(k) * (y[k] * softplus(-x[k]) + (1 - y[k]) * softplus(x[k]))
    return Declaration(
        input=x[i],
        target=y[i],
        loss=class_sum(term) / c,
        canonical=wt(i) * (sigmoid(x[i]) - y[i]) / c,
        canonical_why=(
            "An average of C independent Bernoulli losses with the logit link: each class's "
            "gradient is its own σ(xᵢ) − yᵢ, weighted and divided by C."
        ),
        loss_why=(
            "Per sample, the mean over the C classes of the (weighted) binary cross-entropy of "
            "p = σ(x) against the multi-hot target y; log σ = −softplus(−x) is evaluated."
        ),
        mean_denominator=_N,
        mean_why="reduction='mean' averages the per-sample losses over the n samples.",
        symbols=symbols,
        canonical_hessian=sp.KroneckerDelta(i, _HJ) * wt(i) * sigmoid(x[i]) * (1 - sigmoid(x[i]))
        / c,
        hessian_why=(
            "Diagonal: class i's loss depends on xᵢ alone; each entry is the Bernoulli variance "
            "σ(xᵢ)(1 − σ(xᵢ)), weighted and divided by C."
        ),
        stable_hessian=sp.KroneckerDelta(i, _HJ) * wt(i) * sigmoid(x[i]) * sigmoid(-x[i]) / c,
        stable_hessian_why=_BERNOULLI_VARIANCE_STABLE,
        # a hard label: σ(x) − 1 as −σ(−x), nothing cancels; written per class (the weight
        # outside the sum, which the derived Σₖ δᵢₖ wₖ(…) form keeps)
        stable_gradient=wt(i) * ((1 - y[i]) * sigmoid(x[i]) - y[i] * sigmoid(-x[i])) / c,
        soft_targets_take_gradient=True,
        stable_soft_gradient=wt(i) * sigmoid_sub(x[i], y[i]) / c,
    )


CATALOG["multilabel_soft_margin_loss"] = LossSpec(
    name="multilabel_soft_margin_loss",
    summary="Multi-label one-versus-all logistic loss, averaged over classes "
    "(MultiLabelSoftMarginLoss).",
    options=(weight_option("per-class rescaling weight, shape (C,)"), reduction_option()),
    declare=_declare_multilabel_soft_margin,
    family="class_axis",
    signature=fixed_signature(
        _INPUT,
        Argument("target", (PROBABILITIES,),
                 why="one label per class, the input's shape: multi-hot 0/1 or soft"),
    ),
    module="MultiLabelSoftMarginLoss",
    spatial=False,
)


# =========================================================================== gaussian NLL, ranking
_VAR = Symbol("sigma^2", positive=True)
_VAR_EPS = Symbol("epsilon", positive=True)
_Z1 = Symbol("z_1", real=True)
_Z2 = Symbol("z_2", real=True)


def _check_unit_target(loss: str, target: Any) -> None:
    import numpy as np

    # torch raises "all elements of target should be between 0 and 1" (NaN included)
    if not np.all((target >= 0) & (target <= 1)):
        raise SymlossValueError(
            f"{loss}: all elements of target should be between 0 and 1 (torch raises too)")


#: The interval the check admits (NaN excluded): symloss.layout proves a pass with two
#: reductions and calls the check, for its message, only where that proof fails.
_check_unit_target.bounds = (0.0, 1.0)  # type: ignore[attr-defined]


#: Checks of the target's values where torch makes one (by loss name).
TARGET_CHECKS: dict[str, Callable[[str, Any], None]] = {
    "binary_cross_entropy": _check_unit_target,
}


class square_over(sp.Function):
    """``square_over(r, v, c)`` is :math:`r^2/(c v)`, evaluated as :math:`r (r/v)/c`: finite
    wherever the quotient is (``(z − y)²`` overflows for |z − y| > 10¹⁵⁴ while
    ``(z − y)²/σ²`` need not).

    Symbolically the quotient: its derivatives are ``2r/(c v)`` and ``−r²/(c v²)`` (the latter
    as ``−square_over(r, v, c)/v``), it prints as ``r²/(c v)`` and rewrites to it.

    >>> from sympy import Symbol, diff
    >>> r, v = Symbol("r"), Symbol("v", positive=True)
    >>> diff(square_over(r, v, 2), r), diff(square_over(r, v, 2), v)
    (r/v, -r**2/(2*v)/v)
    """

    nargs = 3

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        r, v, c = self.args
        if argindex == 1:
            return 2 * r / (c * v)
        if argindex == 2:
            return -square_over(r, v, c) / v
        return -square_over(r, v, c) / c

    def _quotient(self) -> sp.Expr:
        r, v, c = self.args
        return r**2 / (c * v)

    def _eval_rewrite_as_Pow(self, r: sp.Expr, v: sp.Expr, c: sp.Expr, **kw: object) -> sp.Expr:
        return r**2 / (c * v)

    _eval_rewrite_as_exp = _eval_rewrite_as_Pow  # what is_zero's last resort rewrites to

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self._quotient()._eval_evalf(prec)  # type: ignore[no-any-return]

    def _eval_is_real(self) -> bool | None:
        return all(a.is_real for a in self.args)  # type: ignore[no-any-return]

    def _latex(self, printer: Any) -> str:
        return printer._print(self._quotient())  # type: ignore[no-any-return]

    def _pretty(self, printer: Any) -> Any:
        return printer._print(self._quotient())

    def _sympystr(self, printer: Any) -> str:
        return printer._print(self._quotient())  # type: ignore[no-any-return]

    def _code(self, printer: Any) -> str:
        r, v, c = (printer._print(a) for a in self.args)
        return f"((({r}) * (({r}) / ({v}))) / ({c}))"

    _numpycode = _scipycode = _pythoncode = _mpmathcode = _code


class gaussian_half_nll(sp.Function):
    """``gaussian_half_nll(z, y, v)`` is :math:`\\log(v)/2 + (z - y)^2/(2v)`, the Gaussian NLL
    without its constant, evaluated in double-double (:mod:`symloss.ddouble`, ``z − y`` by an
    exact TwoSum) where the two terms cancel (the loss crosses 0 at log v = −(z − y)²/v), and
    as ``log(v)/2 + (z − y)·((z − y)/v)/2`` (:class:`square_over`) where the pair is not finite.

    Symbolically the expression: it prints as it and its derivatives are its derivatives
    (``∂/∂v`` with :class:`square_over`, finite where ``(z − y)²`` overflows).

    >>> from sympy import Symbol, diff
    >>> z, y, v = Symbol("z"), Symbol("y"), Symbol("v", positive=True)
    >>> diff(gaussian_half_nll(z, y, v), z)
    (-y + z)/v
    """

    nargs = 3

    def _value(self) -> sp.Expr:
        z, y, v = self.args
        return log(v) / 2 + square_over(z - y, v, 2)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        z, y, v = self.args
        if argindex == 1:
            return (z - y) / v
        if argindex == 2:
            return -(z - y) / v
        return (1 - square_over(z - y, v, 1)) / (2 * v)

    def _eval_rewrite_as_Pow(self, z: sp.Expr, y: sp.Expr, v: sp.Expr, **kw: object) -> sp.Expr:
        return log(v) / 2 + (z - y) ** 2 / (2 * v)

    _eval_rewrite_as_exp = _eval_rewrite_as_Pow  # what is_zero's last resort rewrites to

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.rewrite(sp.Pow)._eval_evalf(prec)  # type: ignore[no-any-return]

    def _eval_is_real(self) -> bool | None:
        return all(a.is_real for a in self.args)  # type: ignore[no-any-return]

    @property
    def precedence(self) -> int:
        """A sum's: a printer parenthesizes it as it would the sum."""
        from sympy.printing.precedence import PRECEDENCE

        return PRECEDENCE["Add"]  # type: ignore[no-any-return]

    def _latex(self, printer: Any) -> str:
        return printer._print(self.rewrite(sp.Pow))  # type: ignore[no-any-return]

    def _pretty(self, printer: Any) -> Any:
        return printer._print(self.rewrite(sp.Pow))

    def _sympystr(self, printer: Any) -> str:
        return printer._print(self.rewrite(sp.Pow))  # type: ignore[no-any-return]

    def _pair(self, printer: Any, prefix: str) -> str:
        z, y, v = (printer._print(a) for a in self.args)
        r = f"{prefix}two_sum({z}, -({y}))"
        w = f"{prefix}t_lift({v})"
        total = (f"{prefix}t_add({prefix}t_log({w}), "
                 f"{prefix}t_mul({r}, {prefix}t_div({r}, {w})))")
        plain = printer._print(self._value())
        return f"{prefix}t_final({prefix}t_mul((0.5, 0.0), {total}), {plain})"

    def _numpycode(self, printer: Any) -> str:
        return self._pair(printer, "ddouble.")

    _scipycode = _numpycode

    def _pythoncode(self, printer: Any) -> str:  # the fast path's (numba) printer
        return self._pair(printer, "dd_")

    def _mpmathcode(self, printer: Any) -> str:
        return printer._print(self._value())  # type: ignore[no-any-return]


def _declare_gaussian_nll(opts: Mapping[str, Any]) -> Declaration:
    from .declaration import AlsoWrt

    v = clamp_min(_VAR, _VAR_EPS)
    const = log(2 * sp.pi) / 2 if opts["full"] else sp.S.Zero
    return _elementwise(
        # log σ²/2 + (z − y)²/(2σ²) in double-double, no overflow of the square
        gaussian_half_nll(_Z, _Y, v) + const,
        (_Z - _Y) / _VAR,
        "The Gaussian negative log-likelihood in its mean: the residual over the variance.",
        "Gaussian negative log-likelihood of the target y with mean z and variance σ², "
        "(log σ² + (z − y)²/σ²)/2"
        + (" + log(2π)/2 (full=True)" if opts["full"] else "")
        + "; torch clamps σ² at ε without gradient (a clamp under no_grad), so the "
        "derivatives are taken at max(σ², ε) as if unclamped.",
        {"var": _VAR, "eps": _VAR_EPS},
        canonical_hessian=1 / _VAR,
        hessian_why="The precision 1/σ², free of the input.",
        also_wrt=(
            AlsoWrt(
                "var",
                (1 - (_Z - _Y) ** 2 / _VAR) / (2 * _VAR),
                "Half the precision times one minus the squared standardised residual.",
            ),
        ),
    )


def _declare_margin_ranking(opts: Mapping[str, Any]) -> Declaration:
    from .declaration import AlsoWrt

    m = _MARGIN
    inner = -_Y * (_Z1 - _Z2) + m
    active = inner >= 0
    return Declaration(
        input=_Z1,
        target=_Y,
        # margin − y·(z₁ − z₂) cancels next to the kink: in double-double (accurate)
        loss=accurate(sp.Piecewise((inner, active), (0, True))),
        canonical=sp.Piecewise((-_Y, active), (0, True)),
        canonical_why="−y while the pair violates the margin, 0 once it is satisfied.",
        loss_why=(
            "Margin ranking loss max(0, −y(z₁ − z₂) + margin) for y = ±1 (y = 1: z₁ should "
            "rank higher)."
        ),
        mean_denominator=_N,
        mean_why=_mean_why_elementwise(),
        symbols={"input": _Z1, "input2": _Z2, "target": _Y, "margin": m},
        canonical_hessian=sp.S.Zero,
        hessian_why="Piecewise linear: 0 away from the kink.",
        also_wrt=(
            AlsoWrt("input2", sp.Piecewise((_Y, active), (0, True)),
                    "The mirror image: +y while the margin is violated."),
        ),
        kinks=(
            Kink(((_Z1, _Z2 + m), (_Y, 1)), sp.S.NegativeOne,
                 "At −y(z₁ − z₂) + margin = 0 (y = 1) the derivative jumps from −1 to 0: every "
                 "value in [−1, 0] is a subgradient. symloss counts the hinge as active (≥ 0), "
                 "−y = −1, as torch 2.13 does; torch 2.14 returns 0.", sp.S.Zero,
                 left=sp.S.NegativeOne, right=sp.S.Zero),
            Kink(((_Z1, _Z2 - m), (_Y, -1)), sp.S.One,
                 "At −y(z₁ − z₂) + margin = 0 (y = −1) the derivative jumps from 0 to 1: every "
                 "value in [0, 1] is a subgradient. symloss counts the hinge as active, −y = 1, "
                 "as torch 2.13 does; torch 2.14 returns 0.", sp.S.Zero,
                 left=sp.S.Zero, right=sp.S.One),
        ),
    )


CATALOG["gaussian_nll_loss"] = LossSpec(
    name="gaussian_nll_loss",
    summary="Gaussian negative log-likelihood with a predicted variance (GaussianNLLLoss).",
    options=(
        _bool_option("full", False, "add the constant log(2π)/2"),
        _real_option("eps", 1e-6, "the variance is clamped at eps (no gradient), > 0",
                     "positive", examples=(0.5,)),
        reduction_option(),
    ),
    declare=_declare_gaussian_nll,
    family="elementwise",
    signature=fixed_signature(
        Argument("input", (REALS,), True, why="the predicted mean"),
        _REAL_TARGET,
        Argument("var", (NONNEGATIVE,), True,
                 why="the predicted variance, the input's shape or one fewer trailing dimension"),
    ),
    module="GaussianNLLLoss",
    short=("gaussian_nll",),
)

CATALOG["margin_ranking_loss"] = LossSpec(
    name="margin_ranking_loss",
    summary="Margin ranking loss of a pair of scores (MarginRankingLoss); gradients for both.",
    options=(_real_option("margin", 0.0, "the margin", examples=(0.5, -1.0)),
             reduction_option()),
    declare=_declare_margin_ranking,
    family="elementwise",
    signature=fixed_signature(
        Argument("input1", (REALS,), True, key="input", why="the first score of each pair"),
        Argument("input2", (REALS,), True, why="the second score of each pair"),
        Argument("target", (SIGNS,), why="1: input1 should rank higher; −1: input2"),
    ),
    module="MarginRankingLoss",
    short=("margin_ranking", "ranking"),
)


# =========================================================================== multi_margin_loss
def _declare_multi_margin(opts: Mapping[str, Any]) -> Declaration:
    from .hinges import at_target, hinge, split_sum, step

    x, y, w = IndexedBase("x"), IndexedBase("y"), IndexedBase("w")
    i, k, c = CLASS_INDEX, SUM_INDEX, NUM_CLASSES
    symbols: dict[str, sp.Basic] = {"input": x, "target": y, "num_classes": c, "margin": _MARGIN}
    weighted = opts.get("weight") is not None
    if weighted:
        symbols["weight"] = w
    p = int(opts["p"])
    # The target's score x_t and weight w_t, written against the one-hot target y.
    x_t = at_target(x, y)
    w_t = at_target(w, y) if weighted else sp.S.One

    def u(idx: sp.Expr) -> sp.Expr:
        return _MARGIN - x_t + x[idx]

    loss = w_t * class_sum((1 - y[k]) * hinge(u(k)) ** p) / c
    # margin − x_t + x_k cancels next to the kink (5 ulp of the loss): each margin rounded once
    # from its exact value (fsum), and the target's own term dropped as a 0 of its own
    # (off_target), not subtracted from the sum; the derivatives keep the declared form
    stable_loss = w_t * class_sum(off_target(y[k], hinge(fsum(_MARGIN, -x_t, x[k])) ** p)) / c

    def d(idx: sp.Expr) -> sp.Expr:
        return p * hinge(u(idx)) ** (p - 1) * step(u(idx))

    canonical = w_t * ((1 - y[i]) * d(i) - y[i] * class_sum((1 - y[k]) * d(k))) / c
    stable_hvp: sp.Expr | None = None
    if p == 1:
        canonical_hessian: sp.Expr = sp.S.Zero
        hessian_why = "Piecewise linear (p = 1): 0 away from the kinks."
    else:
        # Σ_j H_ij v_j as the rank-one terms' sum, factored: each active margin's v_k − v_t,
        # the margin decided on its exact value (fsum), the target's own term 0 by itself (the
        # expanded form's terms cancel to an ulp, not 0, where no margin is active); the
        # target's entry −Σ_k 1[u_k > 0](v_k − v_t) cancels where v_t is about the active v_k's
        # mean: v_k and −v_t are separate terms of one compensated sum (split_sum), not their
        # rounded differences
        v = IndexedBase("v")
        v_t = sp.Sum(y[_HJ] * v[_HJ], (_HJ, 1, c))

        def active(idx: sp.Expr) -> sp.Expr:
            return step(fsum(_MARGIN, -x_t, x[idx]))

        stable_hvp = 2 * w_t * (off_target(y[i], active(i) * (v[i] - v_t)) - split_sum(
            y[i], off_target(y[k], active(k) * v[k]), -off_target(y[k], active(k) * v_t), c)) / c
        canonical_hessian = 2 * w_t * class_sum(
            (1 - y[k]) * step(u(k))
            * (sp.KroneckerDelta(i, k) - y[i]) * (sp.KroneckerDelta(_HJ, k) - y[_HJ])
        ) / c
        hessian_why = (
            "A sum of rank-one terms, one per violated margin: 2 (w_t / C) Σ_(k≠t) 1[u_k > 0] "
            "(e_k − e_t)(e_k − e_t)ᵀ, written with the one-hot y as δ_ik − y_i. torch has no "
            "double backward for multi_margin_loss; the HVP is checked against finite "
            "differences of torch's gradient."
        )
    return Declaration(
        input=x[i],
        target=y[i],
        loss=loss,
        canonical=canonical,
        canonical_why=(
            "Each violated margin u_k = margin − x_t + x_k > 0 (k ≠ t) pushes x_k up and x_t "
            "down by p·max(0, u_k)^(p−1), weighted by w_t and divided by C. At a kink "
            "(u_k = 0) torch's backward counts the term as inactive, 0, and so does the "
            "step 1[u > 0] here (tested at the kink)."
        ),
        loss_why=(
            f"Multi-class margin loss with p = {p}: (w_t / C) Σ_(k≠t) max(0, margin − x_t + "
            "x_k)^p, with x_t = Σ_m y_m x_m the target's score and w_t its weight (y one-hot; "
            "the factor 1 − y_k drops k = t)."
        ),
        stable_loss=stable_loss,
        stable_loss_why=(
            "The same sum, each margin u_k = margin − x_t + x_k rounded once from its exact "
            "value (next to a kink it cancels) and the target's own term 0 by itself, not "
            "subtracted from the sum of all classes."
        ),
        mean_denominator=_N,
        mean_why="reduction='mean' averages the per-sample losses over the n samples.",
        symbols=symbols,
        canonical_hessian=canonical_hessian,
        hessian_why=hessian_why,
        stable_hvp=stable_hvp,
        names=(Definition(IndexedBase("u")[k], u(k), "the margin of class k"),),
    )


CATALOG["multi_margin_loss"] = LossSpec(
    name="multi_margin_loss",
    summary="Multi-class hinge loss (MultiMarginLoss), p = 1 or 2, margin, weight.",
    options=(
        Option("p", 1, "the exponent, 1 or 2", (1, 2)),
        _real_option("margin", 1.0, "the margin", examples=(0.5, 2.0, -0.5)),
        weight_option("per-class rescaling weight, shape (C,)"),
        reduction_option(),
    ),
    declare=_declare_multi_margin,
    family="class_axis",
    signature=fixed_signature(_INPUT, Argument("target", (CLASS_INDICES,), why="class indices")),
    module="MultiMarginLoss",
    short=("multi_margin",),
    spatial=False,
)


# ================================================================ boosting and row-wise losses
# tweedie, gamma, pseudo-Huber, quantile, log-cosh (symloss.catalog_boosting) and cosine_embedding,
# triplet_margin, multilabel_margin (symloss.row_losses) are declared in their own modules.
CATALOG.update((spec.name, spec) for spec in (*catalog_boosting.SPECS, *row_losses.SPECS))
