"""The symbolic core: every derivation proved, every step checked, wrong claims not proved."""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

import symloss
from symloss import algebra
from symloss.declaration import Partial
from symloss.derive import Derivation
from symloss.primitives import (
    CLASS_INDEX,
    NUM_CLASSES,
    SUM_INDEX,
    log_softmax,
    sigmoid,
    softmax,
    softplus,
)

# (name, options) for every shape of declaration the three losses have.
VARIANTS = [
    ("bce", {}),
    ("bce", {"reduction": "sum", "weight": [1.0, 2.0]}),
    ("binary_cross_entropy", {}),
    ("binary_cross_entropy", {"weight": [0.5], "reduction": "none"}),
    ("bce_with_logits", {}),
    ("bce_with_logits", {"pos_weight": [3.0]}),
    ("bce_with_logits", {"pos_weight": [3.0], "weight": [2.0], "reduction": "sum"}),
    ("ce", {}),
    ("ce", {"reduction": "none"}),
    ("ce", {"weight": [1.0, 2.0, 3.0]}),
    ("ce", {"label_smoothing": 0.1}),
    ("ce", {"label_smoothing": 0.1, "weight": [1.0, 2.0, 3.0], "reduction": "sum"}),
]


@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_every_derivation_is_proved_and_every_step_checked(name, options):
    d = symloss.derive(name, **options)
    assert d.proved is True
    assert d.kernel_proved is True
    unchecked = [s.title for s in d.steps if s.checked is False]
    assert unchecked == []
    # Definitions are the only steps without a proof, and they state something.
    for step in d.steps:
        assert step.rhs, step.title
        assert step.why.strip(), step.title


@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_gradient_is_sympy_diff_of_the_loss(name, options):
    d = symloss.derive(name, **options)
    assert algebra.is_zero(sp.diff(d.loss, d.input) - d.gradient)


def test_bce_follows_the_seed_notebook_order_and_ends_in_sigma_minus_y():
    d = symloss.derive("bce")
    titles = [s.title for s in d.steps]
    assert titles == [
        "Link",
        "Per-element loss",
        "Reduction",
        "Chain rule",
        "Outer factor",
        "Inner factor",
        "Product",
        "Canonical form",
        "Evaluated as",
        "Reduced gradient",
    ]
    z, y = sp.Symbol("z", real=True), sp.Symbol("y", real=True)
    assert d.canonical == sigmoid(z) - y
    assert d.gradient == sigmoid(z) - y
    inner = next(s for s in d.steps if s.title == "Inner factor")
    assert inner.rhs[0] == sigmoid(z) * (1 - sigmoid(z))
    reduced = d.steps[-1]
    n = sp.Symbol("n", integer=True, positive=True)
    m = sp.Symbol("m", integer=True, positive=True)
    z_m, y_m = sp.IndexedBase(z)[m], sp.IndexedBase(y)[m]
    assert algebra.is_zero(reduced.rhs[-1] - (sigmoid(z_m) - y_m) / n)


def test_cross_entropy_is_derived_for_symbolic_number_of_classes():
    d = symloss.derive("ce")
    z, y = sp.IndexedBase("z"), sp.IndexedBase("y")
    i, k, c = CLASS_INDEX, SUM_INDEX, NUM_CLASSES
    # Before the assumption: p_i Σ_k y_k − y_i, a sum over C symbolic classes.
    assert algebra.is_zero(d.gradient - (softmax(z, i, c) * sp.Sum(y[k], (k, 1, c)) - y[i]))
    assert d.gradient.has(sp.Sum) and d.gradient.has(c)
    # After it: p_i − y_i.
    assert d.canonical == softmax(z, i, c) - y[i]
    assert [a.lhs for a in d.declaration.assumptions] == [sp.Sum(y[k], (k, 1, c))]


def test_weighted_smoothed_ce_keeps_the_weights_in_the_canonical_form():
    d = symloss.derive("ce", weight=[1.0, 2.0], label_smoothing=0.2)
    w, q = sp.IndexedBase("w"), sp.IndexedBase("q")
    assert d.canonical.has(w[CLASS_INDEX]) and d.canonical.has(q[CLASS_INDEX])
    assert d.proved


def _with_canonical(d: Derivation, canonical: sp.Expr) -> Derivation:
    declaration = dataclasses.replace(d.declaration, canonical=canonical)
    return Derivation(d.spec, d.options, declaration)


@pytest.mark.parametrize(
    ("name", "wrong"),
    [
        ("bce", lambda z, y: sigmoid(z) + y),
        ("bce", lambda z, y: sigmoid(z) * (1 - sigmoid(z))),  # σ′ in place of σ − y
        ("bce_with_logits", lambda z, y: y - sigmoid(z)),  # sign flipped
        ("bce_with_logits", lambda z, y: (sigmoid(z) - y) / 2),
    ],
)
def test_a_wrong_canonical_form_is_not_proved(name, wrong):
    d = symloss.derive(name)
    bad = _with_canonical(d, wrong(d.input, d.declaration.target))
    assert bad.proved is False
    assert next(s for s in bad.steps if s.title == "Canonical form").checked is False


def test_a_wrong_ce_canonical_form_is_not_proved():
    d = symloss.derive("ce")
    z, y = sp.IndexedBase("z"), sp.IndexedBase("y")
    i, c = CLASS_INDEX, NUM_CLASSES
    bad = _with_canonical(d, softmax(z, i, c) - 2 * y[i])
    assert bad.proved is False


def test_primitives_carry_their_derivatives_and_definitions():
    x = sp.Symbol("x", real=True)
    assert sp.diff(sigmoid(x), x) == sigmoid(x) * (1 - sigmoid(x))
    assert sp.diff(softplus(x), x) == sigmoid(x)
    assert sp.simplify(sigmoid(x).rewrite(sp.exp) - 1 / (1 + sp.exp(-x))) == 0
    assert sp.N(sigmoid(sp.Integer(40)), 30) == sp.N(1 / (1 + sp.exp(-40)), 30)
    assert algebra.is_zero(sp.log(sigmoid(x)) + softplus(-x))
    z = sp.IndexedBase("z")
    i, k, c = CLASS_INDEX, SUM_INDEX, NUM_CLASSES
    assert sp.diff(log_softmax(z, k, c), z[i]) == sp.KroneckerDelta(i, k) - softmax(z, i, c)
    assert algebra.is_zero(softmax(z, i, c) - softmax(z, i, c).rewrite(sp.exp))


def test_reduce_sums_handles_kronecker_sums_that_sympy_simplify_cannot():
    y = sp.IndexedBase("y")
    i, k, c = CLASS_INDEX, SUM_INDEX, NUM_CLASSES
    expr = sp.Sum(y[k] * (sp.KroneckerDelta(i, k) - 3), (k, 1, c))
    assert algebra.reduce_sums(expr) == y[i] - 3 * sp.Sum(y[k], (k, 1, c))
    assert algebra.reduce_sums(sp.Sum(2, (k, 1, c))) == 2 * c


def test_steps_render_partial_derivatives():
    d = symloss.derive("bce")
    chain = next(s for s in d.steps if s.title == "Chain rule")
    assert isinstance(chain.lhs, Partial)
    from symloss.render import expr_latex, expr_text

    assert expr_latex(chain.lhs) == r"\frac{\partial \ell}{\partial z}"
    assert expr_text(chain.lhs).split() == ["∂ℓ", "──", "∂z"]


def test_derive_is_cached_and_arrays_do_not_change_the_symbolic_result():
    a = symloss.derive("ce", weight=[1.0, 2.0, 3.0])
    b = symloss.derive("ce", weight=[3.0, 2.0, 1.0, 5.0])
    assert a.gradient is b.gradient
    assert list(a.options["weight"]) == [1.0, 2.0, 3.0]
    assert list(b.options["weight"]) == [3.0, 2.0, 1.0, 5.0]


def test_losses_lists_the_torch_names():
    names = symloss.losses()
    assert names == sorted(names)
    import torch.nn.functional as F

    from symloss.catalog import CATALOG

    # torchvision's formula, and the boosting losses, which torch does not have
    beyond_torch = {"sigmoid_focal_loss"} | {n for n in names if not CATALOG[n].has_torch_twin}
    assert [n for n in names if n not in beyond_torch and not hasattr(F, n)] == []
    assert {"binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy"} <= set(names)


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: symloss.derive("bcee"), symloss.UnknownLossError, "Did you mean 'bce'?"),
        (lambda: symloss.derive("nope"), symloss.UnknownLossError, "Valid names: bce,"),
        (lambda: symloss.derive("ce", reduction="avg"), ValueError, "'none', 'mean', 'sum'"),
        (lambda: symloss.derive("ce", label_smoothing=1.5), ValueError, "in [0, 1]"),
        (lambda: symloss.derive("ce", label_smoothing="x"), TypeError, "number in [0, 1]"),
        (lambda: symloss.derive("ce", ignore_index=1.5), TypeError, "must be an integer"),
        (lambda: symloss.derive("ce", pos_weight=[1.0]), TypeError, "valid options: weight"),
        (lambda: symloss.derive("bce", link=None), ValueError, "use 'binary_cross_entropy'"),
        (lambda: symloss.derive("binary_cross_entropy", link="tanh"), ValueError, "None, 'sigmoid'"),
        (lambda: symloss.derive("ce", weight=["a"]), TypeError, "array of real numbers"),
        (lambda: symloss.derive("ce", weight=[float("nan")]), ValueError, "must be finite"),
        (lambda: symloss.derive(3), TypeError, "must be a string"),
    ],
)
def test_bad_input_raises_a_clear_error(call, exc, message):
    with pytest.raises(exc, match=None) as info:
        call()
    assert isinstance(info.value, symloss.SymlossError)
    assert message in str(info.value)
