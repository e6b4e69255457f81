"""Row-wise losses: cosine_embedding_loss, triplet_margin_loss, multilabel_margin_loss.

Each is one declaration of its per-row loss, written with arrays over a feature (or class) axis
of symbolic size and sums over it; :mod:`symloss.rows` evaluates them, :mod:`symloss.derive`
derives them like every other loss. The semantics are torch's (aten ``Loss.cpp``,
``LossMultiLabelMargin.cpp``): the constants, the clamps and which side of a kink counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp
from sympy import IndexedBase, KroneckerDelta, Symbol

from .declaration import CLASS_INDEX_SETS, REALS, SIGNS, AlsoWrt, Argument, Declaration, Definition, Kink
from .hinges import hinge, step
from .primitives import CLASS_INDEX, SUM_INDEX
from .spec import REDUCTIONS, Option, RowLossSpec

__all__ = ["SPECS"]

_I, _K = CLASS_INDEX, SUM_INDEX
#: The second index of a Hessian (derive.HESSIAN_INDEX) and a second summation index.
_J = Symbol("j", integer=True, positive=True)
_L = Symbol("l", integer=True, positive=True)
#: The number of features of a row (cosine, triplet) and of classes (multilabel margin).
_D = Symbol("D", integer=True, positive=True)
_C = Symbol("C", integer=True, positive=True)
#: The number of rows: reduction='mean' divides by it.
_ROWS = Symbol("N", integer=True, positive=True)
_MARGIN = Symbol("margin", real=True)
_MEAN_WHY = "reduction='mean' averages the per-row losses over the N rows."


def _reduction() -> Option:
    return Option("reduction", "mean", "how per-row losses are combined", REDUCTIONS)


def _sum(expr: sp.Expr, index: sp.Symbol = _K, size: sp.Expr = _D) -> sp.Expr:
    return sp.Sum(expr, (index, 1, size))


# =========================================================================== cosine embedding
_A, _B = IndexedBase("a", real=True), IndexedBase("b", real=True)
_Y = Symbol("y", real=True)
_COS = Symbol("c", real=True)
_SA, _SB = Symbol("s_a", positive=True), Symbol("s_b", positive=True)
_EPS_COS = Symbol("epsilon", positive=True)
#: aten's EPSILON, the float constant 1e-12 (9.99999996e-13 in double) added to each |x|².
_ATEN_EPSILON = sp.Float(9.999999960041972e-13, 17)


def _declare_cosine(opts: Mapping[str, Any]) -> Declaration:
    s_a = _sum(_A[_K] ** 2) + _EPS_COS
    s_b = _sum(_B[_K] ** 2) + _EPS_COS
    cos = _sum(_A[_K] * _B[_K]) / sp.sqrt(s_a * s_b)
    similar, dissimilar = (1 + _Y) / 2, (1 - _Y) / 2  # y = 1, y = −1
    loss = similar * (1 - cos) + dissimilar * hinge(cos - _MARGIN)
    # d cos/d aᵢ: the part of b orthogonal to a, over the norms.
    factor = -similar + dissimilar * step(_COS - _MARGIN)
    root = sp.sqrt(_SA * _SB)
    d_a = _B[_I] / root - _COS * _A[_I] / _SA
    d_b = _A[_I] / root - _COS * _B[_I] / _SB
    hess = (
        -(_A[_I] * _B[_J] + _A[_J] * _B[_I]) / (_SA * root)
        + 3 * _COS * _A[_I] * _A[_J] / _SA**2
        - _COS * KroneckerDelta(_I, _J) / _SA
    )
    # Evaluated forms. With â = a/√s_a, b̂ = b/√s_b: |â|² = 1 − ε/s_a, so
    # 1 ∓ c = |â ∓ b̂|²/2 + ε/(2s_a) + ε/(2s_b), a sum of terms ≥ 0: no cancellation of c ≈ ±1.
    # â ∓ b̂ without the rounding of two nearly equal unit vectors: b̂ = (b/√s_a)(1 + q) with
    # q = √s_a/√s_b − 1 = Σₗ(aₗ − bₗ)(aₗ + bₗ)/(√s_b(√s_a + √s_b)) (s_a − s_b: ε cancels).
    ra, rb = sp.sqrt(_SA), sp.sqrt(_SB)
    q = _sum((_A[_L] - _B[_L]) * (_A[_L] + _B[_L]), _L) / (rb * (ra + rb))

    def minus(i: sp.Symbol) -> sp.Expr:  # âᵢ − b̂ᵢ
        return (_A[i] - _B[i] - _B[i] * q) / ra

    def plus(i: sp.Symbol) -> sp.Expr:  # âᵢ + b̂ᵢ
        return (_A[i] + _B[i] + _B[i] * q) / ra

    tail = _EPS_COS / (2 * _SA) + _EPS_COS / (2 * _SB)
    one_minus = _sum(minus(_K) ** 2) / 2 + tail  # 1 − c
    one_plus = _sum(plus(_K) ** 2) / 2 + tail  # 1 + c
    # ∂c/∂aᵢ = (b̂ᵢ − c âᵢ)/√s_a = (âᵢ(1 − c) − (âᵢ − b̂ᵢ))/√s_a = ((âᵢ + b̂ᵢ) − âᵢ(1 + c))/√s_a
    unit = _A[_I] / ra
    stable_d_a = sp.Piecewise(((unit * one_minus - minus(_I)) / ra, _COS >= 0),
                              ((plus(_I) - unit * one_plus) / ra, True))
    v = IndexedBase("v")
    hvp = (
        -(_A[_I] * _sum(_B[_K] * v[_K]) + _B[_I] * _sum(_A[_K] * v[_K])) / (_SA * root)
        + 3 * _COS * _A[_I] * _sum(_A[_K] * v[_K]) / _SA**2
        - _COS * v[_I] / _SA
    )
    return Declaration(
        input=_A[_I],
        target=_Y,
        loss=loss,
        stable_loss=similar * one_minus + dissimilar * hinge(_COS - _MARGIN),
        stable_loss_why=(
            "1 − c = |A − B|²/2 + ε/(2s_a) + ε/(2s_b) with A = a/√s_a, B = b/√s_b (a sum of "
            "terms ≥ 0; ε/s is what is left of 1 − c for equal rows), Aᵢ − Bᵢ = (aᵢ − bᵢ − "
            "bᵢq)/√s_a, q = √s_a/√s_b − 1 = Σₖ(aₖ − bₖ)(aₖ + bₖ)/(√s_b(√s_a + √s_b))."
        ),
        stable_gradient=factor * stable_d_a,
        stable_why=(
            "∂c/∂aᵢ = (Bᵢ − c Aᵢ)/√s_a written as (Aᵢ(1 − c) − (Aᵢ − Bᵢ))/√s_a for c ≥ 0 and "
            "((Aᵢ + Bᵢ) − Aᵢ(1 + c))/√s_a for c < 0, with 1 − c, 1 + c, Aᵢ − Bᵢ and Aᵢ + Bᵢ "
            "as in the loss (1 + c = |A + B|²/2 + ε/(2s_a) + ε/(2s_b)): no cancellation of "
            "nearly parallel or antiparallel rows."
        ),
        stable_hvp=factor * hvp,
        canonical=factor * d_a,
        canonical_why=(
            "The derivative of the cosine, ∂c/∂aᵢ = bᵢ/√(s_a s_b) − c aᵢ/s_a (the part of b "
            "orthogonal to a, over the norms), times −1 for a similar pair (y = 1) and times "
            "1[c − margin > 0] for a dissimilar one (y = −1)."
        ),
        loss_why=(
            "Cosine embedding loss of a pair of rows a, b with y = ±1: 1 − c for y = 1 and "
            "max(0, c − margin) for y = −1, c = a·b / √((|a|² + ε)(|b|² + ε)) with aten's "
            "ε = 1e-12 (a float) added to each squared norm; written with (1 ± y)/2."
        ),
        definitions=(
            Definition(_EPS_COS, _ATEN_EPSILON, "aten's EPSILON, the float 1e-12, in double."),
            Definition(_SA, s_a, "The squared norm of a, plus ε."),
            Definition(_SB, s_b, "The squared norm of b, plus ε."),
            Definition(_COS, _sum(_A[_K] * _B[_K]) / sp.sqrt(_SA * _SB), "The cosine of a and b."),
        ),
        mean_denominator=_ROWS,
        mean_why=_MEAN_WHY,
        symbols={"input": _A, "input2": _B, "target": _Y, "margin": _MARGIN, "num_features": _D},
        kinks=(
            Kink(((_MARGIN, _COS), (_Y, -1)), sp.S.Zero,
                 "A dissimilar pair with c = margin: the derivative jumps from 0 (c < margin) to "
                 "∂c/∂aᵢ (c > margin); any value between is a subgradient. symloss counts the "
                 "hinge as inactive (1[u > 0]), 0, as torch 2.14's clamp_min does; torch 2.13 "
                 "passes the gradient (the other side).", sp.S.Zero,
                 left=sp.S.Zero, right=d_a),
        ),
        canonical_hessian=factor * hess,
        hessian_why=(
            "The Hessian of the cosine, −(aᵢbⱼ + aⱼbᵢ)/(s_a √(s_a s_b)) + 3c aᵢaⱼ/s_a² − "
            "c δᵢⱼ/s_a, times the same factor (the step's Dirac delta at the kink dropped)."
        ),
        also_wrt=(
            AlsoWrt(
                "input2", factor * d_b,
                "The mirror image: ∂c/∂bᵢ = aᵢ/√(s_a s_b) − c bᵢ/s_b, times the same factor.",
            ),
        ),
    )


_COSINE = RowLossSpec(
    name="cosine_embedding_loss",
    summary="Cosine embedding loss of row pairs with y = ±1 (CosineEmbeddingLoss); "
    "gradients for both inputs.",
    options=(Option("margin", 0.0, "the margin of dissimilar pairs", kind="real"), _reduction()),
    declare=_declare_cosine,
    family="rows",
    signature=lambda o: (
        Argument("input1", (REALS,), True, key="input", why="the first row of each pair, (N, D) or (D)"),
        Argument("input2", (REALS,), True, why="the second row of each pair"),
        Argument("target", (SIGNS,), why="1: the pair is similar; −1: dissimilar"),
    ),
    module="CosineEmbeddingLoss",
    short=("cosine_embedding", "cosine"),
    row_dims=(0, 1),
)


# =========================================================================== triplet margin
# anchor a, positive p, negative n: the names of torch's TripletMarginLoss documentation
_XA, _XP, _XN = (IndexedBase(s, real=True) for s in ("a", "p", "n"))
_EPS = Symbol("epsilon", real=True)
_DP, _DN, _DS = Symbol("d_+", positive=True), Symbol("d_-", positive=True), Symbol("d_s", positive=True)


def _distance(x: IndexedBase, y: IndexedBase, p: sp.Expr) -> sp.Expr:
    """torch's pairwise_distance: |x − y + ε|_p over the feature axis."""
    u = x[_K] - y[_K] + _EPS
    if p == 2:
        return sp.sqrt(_sum(u**2))
    if p == 1:
        return _sum(sp.Abs(u))
    return _sum(sp.Abs(u) ** p) ** (1 / p)


def _distance_gradient(x: IndexedBase, y: IndexedBase, d: sp.Symbol, p: sp.Expr) -> sp.Expr:
    """∂|x − y + ε|_p/∂xᵢ in its closed form, with d the distance."""
    u = x[_I] - y[_I] + _EPS
    if p == 2:
        return u / d
    if p == 1:
        return sp.sign(u)
    return sp.sign(u) * sp.Abs(u) ** (p - 1) / d ** (p - 1)


def _distance_hessian(x: IndexedBase, y: IndexedBase, d: sp.Symbol, p: sp.Expr) -> sp.Expr | None:
    """∂²|x − y + ε|_p/∂xᵢ∂xⱼ (p = 2: (δᵢⱼ − uᵢuⱼ/d²)/d; p = 1: 0 a.e.)."""
    if p == 2:
        return (KroneckerDelta(_I, _J) - (x[_I] - y[_I] + _EPS) * (x[_J] - y[_J] + _EPS) / d**2) / d
    if p == 1:
        return sp.S.Zero
    return None


def _distance_hvp(x: IndexedBase, y: IndexedBase, d: sp.Symbol, p: sp.Expr) -> sp.Expr:
    """``Σⱼ ∂²|u|_p/∂xᵢ∂xⱼ vⱼ`` for p ∉ {1, 2} (``u = x − y + ε``, ``d = |u|_p``):
    ``(p − 1)|uᵢ|^(p−2)/d^(2p−1) · Σₖ sign(uₖ)|uₖ|^(p−1) (uₖvᵢ − uᵢvₖ)``.

    It is ``(p − 1)/d · (rᵢ^(p−2) vᵢ − gᵢ Σₖ gₖvₖ)`` (``rₖ = |uₖ|/d``, ``gₖ = sign(uₖ) rₖ^(p−1)``,
    the gradient) with ``vᵢ`` written as ``vᵢ Σₖ rₖ^p`` (``Σₖ rₖ^p = 1``): the k = i term,
    ``uᵢvᵢ − uᵢvᵢ``, is 0, where the other form subtracts two terms that agree to all but
    ``1 − rᵢ^p = Σ_{k≠i} rₖ^p``. At p = 10³ with one |uᵢ| the largest that is 1e-161 (float64:
    6e15 ulp, and at 80 and 140 digits the difference is exactly 0, so the exact fallback
    took the next term, 9e-391, for settled); at p = 3 the HVP formed from the Hessian
    multiplied (aₖ − pₖ + ε)² out (0.5 MB of kernel) and gave -2.3e34 for an exact 0 at
    a = p = n ~ 10²¹, its exact fallback ~40 s an element. Here every uₖ is one grouped
    difference, and the two distances' products are equal term by term where the rows are.

    SymPy proves it equal to the HVP formed from the Hessian (``kernel_hvp_proved``) through
    the norm's definition ``Σₖ|uₖ|ᵖ = dᵖ``, with ``|uₖ|`` and ``sign(uₖ)`` as variables of
    their own (``derive._norm_coordinates``): an identity wherever no uₖ is 0."""
    v = IndexedBase("v")
    uk, ui = x[_K] - y[_K] + _EPS, x[_I] - y[_I] + _EPS
    return (p - 1) * sp.Abs(ui) ** (p - 2) / d ** (2 * p - 1) * _sum(
        sp.sign(uk) * sp.Abs(uk) ** (p - 1) * (uk * v[_I] - ui * v[_K]))


def _triplet_stable(p: sp.Expr) -> dict[str, Any]:
    """The evaluated forms of the triplet loss without swap (p = 1, 2): ``d_+ − d_-`` without
    the cancellation of two nearly equal distances (next to the kink, and where ε dominates
    both), and for p = 2 the gradient and the Hessian-vector product in those terms."""
    u = _XA[_K] - _XP[_K] + _EPS  # the anchor's difference to the positive, (a − p) + ε
    w = _XA[_K] - _XN[_K] + _EPS
    if p == 1:
        # |u| − |w| per feature: a difference of two nearly equal numbers is exact
        return {
            "stable_loss": hinge(_MARGIN + _sum(sp.Abs(u) - sp.Abs(w))),
            "stable_loss_why": (
                "d_+ − d_- summed per feature, Σₖ(|uₖ| − |wₖ|): no difference of two large "
                "nearly equal sums next to the kink."
            ),
        }
    if p != 2:
        return {}
    delta, difference = _triplet_p2()
    wi = w.subs(_K, _I)
    return {
        "stable_loss": hinge(_MARGIN + delta),
        "stable_loss_why": (
            "d_+ − d_- = (d_+² − d_-²)/(d_+ + d_-) with d_+² − d_-² = Σₖ (nₖ − pₖ)(uₖ + wₖ) "
            "(uₖ = aₖ − pₖ + ε, wₖ = aₖ − nₖ + ε): no difference of two nearly equal "
            "distances next to the kink or where ε dominates both; where d_+² − d_-² = 0 "
            "(both distances 0 at a = p = n, ε = 0) d_+ − d_- itself, 0."
        ),
        "stable_gradient": step(_MARGIN + delta)
        * ((_XN[_I] - _XP[_I]) / _DP - wi * delta / (_DP * _DN)),
        "stable_why": (
            "uᵢ/d_+ − wᵢ/d_- = (nᵢ − pᵢ)/d_+ − wᵢ (d_+ − d_-)/(d_+ d_-), with d_+ − d_- as in "
            "the loss (also in the step): the two unit vectors do not cancel where the rows are "
            "close to each other."
        ),
        "stable_hvp": step(_MARGIN + delta) * difference,
    }


def _triplet_p2() -> tuple[sp.Expr, sp.Expr]:
    """``(Δ, H_+v − H_-v)`` for p = 2: ``Δ = d_+ − d_-`` without the difference of two nearly
    equal distances, and the difference of the two distances' Hessian-vector products
    ``H v = (v − u (u·v)/d²)/d`` as differences that vanish with ``n − p`` and ``Δ``."""
    u = _XA[_K] - _XP[_K] + _EPS
    w = _XA[_K] - _XN[_K] + _EPS
    # d_+² − d_-² = Σₖ (uₖ − wₖ)(uₖ + wₖ), uₖ − wₖ = nₖ − pₖ: exact products, no cancellation
    # of the two squared sums (their ε-sized parts cancel exactly).
    squares = _sum((_XN[_K] - _XP[_K]) * (u + w))
    # d_+ − d_-; where d_+² − d_-² is 0 (a = p = n with ε = 0: both distances 0, and the
    # quotient 0/0) the difference itself, 0
    delta = sp.Piecewise((squares / (_DP + _DN), squares**2 > 0), (_DP - _DN, True))
    wi = w.subs(_K, _I)
    v = IndexedBase("v")
    uv, wv = _sum(u * v[_K]), _sum(w * v[_K])
    # 1/d_+ − 1/d_- = −Δ/(d_+ d_-), 1/d_+³ − 1/d_-³ = −Δ(d_+² + d_+d_- + d_-²)/(d_+d_-)³
    difference = (
        -v[_I] * delta / (_DP * _DN)
        - (_XN[_I] - _XP[_I]) * uv / _DP**3
        - wi * (_sum((_XN[_K] - _XP[_K]) * v[_K]) / _DP**3
                - wv * delta * (_DP**2 + _DP * _DN + _DN**2) / (_DP * _DN) ** 3)
    )
    return delta, difference


def _triplet_swap_hvp(active: sp.Expr, to_neg: sp.Expr) -> sp.Expr:
    """The Hessian-vector product with swap (p = 2), ``active·(H_+v − H(d_s − d_-) H_-v)``, as
    ``active·((1 − H) H_+v + H (H_+v − H_-v))`` with ``H_+v = (v − u (u·v)/d_+²)/d_+`` and the
    difference of :func:`_triplet_p2`: the distances' sums of squares kept whole (the formed
    product expands them into Σa², Σap, …, which cancel to NaN at a = p = n ≈ 10²¹), and no
    difference of the two products where the rows are close (H = 1 or 1/2 at a tie)."""
    u = _XA[_K] - _XP[_K] + _EPS
    v = IndexedBase("v")
    positive = v[_I] / _DP - u.subs(_K, _I) * _sum(u * v[_K]) / _DP**3
    return active * ((1 - to_neg) * positive + to_neg * _triplet_p2()[1])


def _declare_triplet(opts: Mapping[str, Any]) -> Declaration:
    p = sp.nsimplify(opts["p"])
    swap = bool(opts["swap"])
    d_pos, d_neg, d_swap = _distance(_XA, _XP, p), _distance(_XA, _XN, p), _distance(_XP, _XN, p)
    definitions = [
        Definition(_DP, d_pos, "The anchor's distance to the positive, torch's pairwise_distance."),
        Definition(_DN, d_neg, "The anchor's distance to the negative."),
    ]
    negative = sp.Min(d_neg, d_swap) if swap else d_neg
    shown_negative = sp.Min(_DN, _DS) if swap else _DN
    if swap:
        definitions.append(Definition(_DS, d_swap, "The positive's distance to the negative."))
    loss = hinge(_MARGIN + d_pos - negative)
    active = step(_MARGIN + _DP - shown_negative)
    g_pos = _distance_gradient(_XA, _XP, _DP, p)
    g_neg = _distance_gradient(_XA, _XN, _DN, p)
    g_swap = _distance_gradient(_XP, _XN, _DS, p)
    # ∂min(d_-, d_s): H(d_s − d_-) and H(d_- − d_s), H(0) = 1/2: torch's min splits a tie evenly.
    to_neg = sp.Heaviside(_DS - _DN) if swap else sp.S.One
    to_swap = sp.Heaviside(_DN - _DS) if swap else sp.S.Zero
    h_pos, h_neg = _distance_hessian(_XA, _XP, _DP, p), _distance_hessian(_XA, _XN, _DN, p)
    canonical_hessian = None
    if h_pos is not None and h_neg is not None:
        canonical_hessian = active * (h_pos - to_neg * h_neg)
    stable = {} if swap else _triplet_stable(p)
    if swap and p == 2:
        stable["stable_hvp"] = _triplet_swap_hvp(active, to_neg)
    if p not in (1, 2):  # d_s does not depend on the anchor
        stable["stable_hvp"] = active * (_distance_hvp(_XA, _XP, _DP, p)
                                         - to_neg * _distance_hvp(_XA, _XN, _DN, p))
    return Declaration(
        **stable,
        input=_XA[_I],
        target=sp.S.Zero,  # no target: the loss compares three arrays
        loss=loss,
        canonical=active * (g_pos - to_neg * g_neg),
        canonical_why=(
            "While the margin is violated, the gradient of the distance to the positive "
            "minus that to the negative; ∂|u|_p/∂uᵢ = sign(uᵢ)|uᵢ|^(p−1)/|u|_p^(p−1)"
            + ("; with swap the negative distance is the smaller of d_- and d_s, and its "
               "derivative, the Heaviside step H(d_s − d_-), picks the smaller one (H(0) = 1/2: "
               "torch's minimum splits a tie evenly)." if swap else ".")
        ),
        loss_why=(
            "Triplet margin loss max(0, margin + d(a, p) − d(a, n)) with the p-norm distance "
            "d(x, y) = |x − y + ε|_p of torch's pairwise_distance"
            + (" and, with swap, d(a, n) replaced by min(d(a, n), d(p, n))." if swap else ".")
        ),
        definitions=tuple(definitions),
        mean_denominator=_ROWS,
        mean_why=_MEAN_WHY,
        symbols={
            "input": _XA, "positive": _XP, "negative": _XN, "margin": _MARGIN, "eps": _EPS,
            "num_features": _D,
        },
        kinks=(
            Kink(((_MARGIN, shown_negative - _DP),), sp.S.Zero,
                 "At margin + d_+ − d_- = 0 the derivative jumps from 0 (the margin is met) to "
                 "the distance gradients (it is violated); any value between is a subgradient. "
                 "symloss counts the hinge as inactive (1[u > 0]), 0, as torch 2.14's clamp_min "
                 "does; torch 2.13 passes the gradient (the other side).", sp.S.Zero,
                 left=sp.S.Zero, right=g_pos - to_neg * g_neg),
        ),
        canonical_hessian=canonical_hessian,
        hessian_why=(
            "While the margin is violated, the Hessians of the distances, "
            + ("(δᵢⱼ − uᵢuⱼ/d²)/d for p = 2" if p == 2 else "0 almost everywhere for p = 1")
            + " (Dirac deltas at the kinks dropped)."
            if canonical_hessian is not None else ""
        ),
        also_wrt=(
            AlsoWrt("positive", active * (-g_pos - to_swap * g_swap),
                    "Minus the distance gradient to the positive"
                    + (", and the swap distance's where it is the smaller." if swap else ".")),
            AlsoWrt("negative", active * (to_neg * g_neg + to_swap * g_swap),
                    "The distance gradient to the negative, with a plus sign"
                    + (", and the swap distance's where it is the smaller." if swap else ".")),
        ),
    )


_TRIPLET = RowLossSpec(
    name="triplet_margin_loss",
    summary="Triplet margin loss of anchor, positive, negative rows (TripletMarginLoss): "
    "p-norm, eps, swap; gradients for all three.",
    options=(
        Option("margin", 1.0, "the margin, > 0", kind="positive"),
        Option("p", 2.0, "the norm degree of the distance, > 0", kind="positive",
               examples=(1.0, 1.5, 3.0)),
        Option("eps", 1e-6, "added to the difference before the norm", kind="real"),
        Option("swap", False, "use min(d(a, n), d(p, n)) as the negative distance", (False, True)),
        _reduction(),
    ),
    declare=_declare_triplet,
    family="rows",
    signature=lambda o: (
        Argument("anchor", (REALS,), True, key="input", why="the anchor rows, (N, D) or (D)"),
        Argument("positive", (REALS,), True, why="rows that should be close to the anchor"),
        Argument("negative", (REALS,), True, why="rows that should be far from it"),
    ),
    module="TripletMarginLoss",
    short=("triplet_margin", "triplet"),
    row_dims=None,
)


# =========================================================================== multilabel margin
_X, _T = IndexedBase("x", real=True), IndexedBase("y", real=True)


def _declare_multilabel_margin(opts: Mapping[str, Any]) -> Declaration:
    def other(idx: sp.Expr) -> sp.Expr:  # 1 for a class that is not a target
        return 1 - step(_T[idx])

    pair = _T[_L] * other(_K) * hinge(1 - _X[_L] + _X[_K])
    loss = _sum(_sum(pair, _K, _C), _L, _C) / _C
    canonical = (
        other(_I) * _sum(_T[_L] * step(1 - _X[_L] + _X[_I]), _L, _C)
        - _T[_I] * _sum(other(_K) * step(1 - _X[_I] + _X[_K]), _K, _C)
    ) / _C
    return Declaration(
        input=_X[_I],
        target=_T[_I],
        loss=loss,
        canonical=canonical,
        canonical_why=(
            "Each violated pair (target class l, other class k, 1 − x_l + x_k > 0) pushes x_k "
            "up and x_l down by 1/C: a class that is not a target gains the count of targets "
            "whose margin it violates, a target loses the number of classes violating it. At "
            "a kink (1 − x_l + x_k = 0) torch's kernel counts the pair as inactive (z > 0), as "
            "the step 1[u > 0] does."
        ),
        loss_why=(
            "Multi-label margin loss: (1/C) Σ over target classes l and non-target classes k "
            "of max(0, 1 − x_l + x_k). yₖ counts class k in the row's target list (the class "
            "indices before the first −1; one listed twice counts twice, as in torch's kernel), "
            "so 1 − 1[yₖ > 0] marks a class that is not a target."
        ),
        mean_denominator=_ROWS,
        mean_why=_MEAN_WHY,
        symbols={"input": _X, "target": _T, "num_classes": _C},
        canonical_hessian=sp.S.Zero,
        hessian_why=(
            "Piecewise linear: 0 away from the kinks. torch has no double backward for "
            "multilabel_margin_loss."
        ),
    )


_MULTILABEL_MARGIN = RowLossSpec(
    name="multilabel_margin_loss",
    summary="Multi-label hinge loss over target-class lists padded with -1 "
    "(MultiLabelMarginLoss).",
    options=(_reduction(),),
    declare=_declare_multilabel_margin,
    family="rows",
    signature=lambda o: (
        Argument("input", (REALS,), True, why="the class scores, (N, C), (C) or a 0-d score"),
        Argument("target", (CLASS_INDEX_SETS,), why="per row, target class indices, then −1"),
    ),
    module="MultiLabelMarginLoss",
    short=("multilabel_margin",),
    row_dims=(-1, 0, 1),
)

#: The row losses, in the catalogue's order (:mod:`symloss.catalog` adds them).
SPECS: tuple[RowLossSpec, ...] = (_COSINE, _TRIPLET, _MULTILABEL_MARGIN)
