"""The checker on every loss: torch passes, each mutant fails with the right diagnosis, a function
that raises or returns the wrong shape is reported as such.

The tables are data (PyTorch's common_modules style): the loss/option table is generated from
the declarations (tests/_check_tables.py); the mutants and failures are one row each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import symloss
from symloss.catalog import CATALOG, resolve
from symloss.declaration import CLASS_INDICES, COUNTS, SIGNS
from symloss.testing import assert_grad_matches, battery, check, coverage, torch_function

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: the helper module
from _check_tables import every_loss_and_option, torch_domain


def _id(name, options):
    shown = {k: ("array" if hasattr(v, "shape") else v) for k, v in options.items()}
    return f"{name}-{shown}"


# ---------------------------------------------------------------- torch's own functions pass
# (the boosting losses have no torch twin: tests/test_boosting.py checks them with hand-written
# torch versions and against scikit-learn, XGBoost and LightGBM)
TORCH_CASES = [pytest.param(n, o, id=_id(n, o)) for n, o in every_loss_and_option()
               if CATALOG[n].has_torch_twin]


@pytest.mark.parametrize(("name", "options"), TORCH_CASES)
def test_torch_passes_with_default_and_non_default_options(name, options):
    d = symloss.derive(name, **options)
    # the defaults in both dtypes; each non-default option in float64 (keeps the suite fast)
    dtypes = ("float32", "float64") if not options else ("float64",)
    result = assert_grad_matches(d, torch_function(d), domain=torch_domain(name, options),
                                 dtypes=dtypes)
    compared = {k for r in result.rows for k in r.grad_ulps_by}
    assert compared == set(d.spec.differentiable())  # every differentiable array


OUTSIDE = [  # torch is not exact over the whole range here: reported, with where it fails
    ("soft_margin_loss", {}, "extreme inputs"),
    ("binary_cross_entropy", {"link": "sigmoid"}, "goes to 0 beyond"),
    ("sigmoid_focal_loss", {"gamma": 0.5}, "got nan"),
]


@pytest.mark.parametrize(("name", "options", "said"), OUTSIDE, ids=[o[0] for o in OUTSIDE])
def test_torch_outside_its_exact_range_is_reported(name, options, said):
    d = symloss.derive(name, **options)
    with pytest.raises(AssertionError) as info:
        assert_grad_matches(d, torch_function(d), dtypes=["float32"])
    assert said in str(info.value)


# ---------------------------------------------------------------- mutants
def _hinge_keeps_linear_term(x, y):
    # y = −1 should be max(0, margin − x); this keeps x as well (right for y = 1)
    return torch.where(y == 1, x, x + torch.clamp(1.0 - x, min=0)).mean()


def _soft_margin_ignores_label_sign(x, y):
    return F.soft_margin_loss(x, y.abs())  # right for y = 1 only


def _poisson_full_without_stirling(x, y):
    return F.poisson_nll_loss(x, y, full=False)  # claimed: full=True


def _double_gradient(t):
    """The value of ``t``, with twice its gradient."""
    return t + (t - t.detach())


def _negated_gradient(t):
    """The value of ``t``, with minus its gradient."""
    return 2 * t.detach() - t


def _gaussian_var_gradient_doubled(x, y, var):
    return F.gaussian_nll_loss(x, y, _double_gradient(var))


def _ranking_input2_sign_flipped(x1, x2, y):
    return F.margin_ranking_loss(x1, _negated_gradient(x2), y)


def _huber_without_delta_factor(x, y, delta=2.0):
    # the value is right; outside the quadratic zone the gradient lacks its factor delta
    d = x - y
    linear = (delta - 1) * d.abs().detach() + d.abs() - delta**2 / 2
    return torch.where(d.abs() < delta, 0.5 * d**2, linear).mean()


MUTANTS = [
    # (label, loss, options, implementation, section of the report, diagnosis)
    ("hinge y=-1 branch", "hinge_embedding_loss", {}, _hinge_keeps_linear_term,
     "gradient:", "wrong only where the target is -1"),
    ("soft_margin y=-1", "soft_margin_loss", {}, _soft_margin_ignores_label_sign,
     "gradient:", "wrong only where the target is -1"),
    ("poisson full", "poisson_nll_loss", {"full": True}, _poisson_full_without_stirling,
     "loss value:", "full not applied"),
    ("gaussian var grad", "gaussian_nll_loss", {}, _gaussian_var_gradient_doubled,
     "gradient w.r.t. var:", "factor 2"),
    ("ranking input2 sign", "margin_ranking_loss", {}, _ranking_input2_sign_flipped,
     "gradient w.r.t. input2:", "sign flipped"),
    ("huber delta factor", "huber_loss", {"delta": 2.0}, _huber_without_delta_factor,
     "gradient:", "the factor delta = 2 is missing"),
    ("huber delta ignored", "huber_loss", {"delta": 2.0}, lambda x, y: F.huber_loss(x, y),
     "gradient:", "delta not applied"),
    ("hinge margin ignored", "hinge_embedding_loss", {"margin": 0.5},
     lambda x, y: F.hinge_embedding_loss(x, y), "gradient:", "margin not applied"),
]


@pytest.mark.parametrize(("label", "name", "options", "fn", "section", "diagnosis"), MUTANTS,
                         ids=[m[0] for m in MUTANTS])
def test_each_mutant_fails_with_the_right_diagnosis(label, name, options, fn, section, diagnosis):
    d = symloss.derive(name, **options)
    with pytest.raises(AssertionError) as info:
        assert_grad_matches(d, fn, domain=torch_domain(name, options))
    report = str(info.value)
    assert "disagrees" in report.splitlines()[0]
    assert diagnosis in _section(report, section), report


def _section(report, header):
    """The part of the report under ``header`` (up to the next section or dtype)."""
    rest = report[report.index("\n  " + header) + 3 + len(header):]
    ends = [i for m in ("\n  loss value:", "\n  gradient", "\n[") if (i := rest.find(m)) >= 0]
    return rest[: min(ends)] if ends else rest


def test_a_mutant_wrong_only_in_var_leaves_the_other_sections_agreeing():
    with pytest.raises(AssertionError) as info:
        assert_grad_matches("gaussian_nll_loss", _gaussian_var_gradient_doubled)
    report = str(info.value)
    assert "loss value: agrees" in report and "gradient w.r.t. input: agrees" in report


# ---------------------------------------------------------------- failures, not disagreements
def _boom(x, y):
    raise RuntimeError("boom")


FAILURES = [
    # (label, loss, implementation, what the report says)
    ("raises", "mse_loss", _boom, "raised RuntimeError: boom"),
    ("two arrays for three", "gaussian_nll_loss", lambda x, y: F.gaussian_nll_loss(x, y),
     "raised TypeError"),
    ("per-element loss for mean", "mse_loss", lambda x, y: F.mse_loss(x, y, reduction="none"),
     "returned a loss of shape"),
    ("not a tensor", "mse_loss", lambda x, y: F.mse_loss(x, y).detach().item(),
     "returned float, not a tensor"),
]


@pytest.mark.parametrize(("label", "name", "fn", "said"), FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failing_function_is_reported_as_failing_not_as_disagreeing(label, name, fn, said):
    with pytest.raises(AssertionError) as info:
        assert_grad_matches(name, fn)
    report = str(info.value)
    first = report.splitlines()[0]
    assert said in first and "disagrees" not in first
    assert "agrees" not in report.replace("disagree", "")  # no "loss value: agrees"


# ---------------------------------------------------------------- the battery covers each domain
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_battery_covers_every_declared_target_domain_and_kink(name):
    d = symloss.derive(name)
    cases = battery(d, dtypes=["float64"])
    targets = np.concatenate([np.asarray(c.target, dtype=float).ravel() for c in cases])
    for domain in d.spec.target_domains():
        if domain is SIGNS:
            assert {-1.0, 1.0} <= set(targets)
        if domain is COUNTS:
            assert {0.0, 1.0} <= set(targets) and targets.max() > 1
        if domain is CLASS_INDICES and any(o.name == "ignore_index" for o in d.spec.options):
            assert -100 in targets  # an ignored class
    numbers = {c.kink for c in cases if c.on_kink is not None}
    assert numbers == set(range(1, len(d.declaration.kinks) + 1))
    assert any(c.extreme for c in cases)
    assert set(coverage(d)) == {"arrays", "targets", "kinks", "extremes", "cases"}


def test_battery_puts_each_kink_element_exactly_on_the_kink():
    d = symloss.derive("smooth_l1_loss", beta=0.5)
    (case,) = [c for c in battery(d, dtypes=["float32"]) if c.on_kink is not None]
    np.testing.assert_array_equal(case.input.astype(float), case.target.astype(float) + 0.5)


def test_kink_side_is_reported():
    d = symloss.derive("hinge_embedding_loss")
    result = check(d, torch_function(d), dtypes=["float64"])
    (line,) = result.conventions()
    side = "left" if torch.__version__.startswith("2.13") else "right"
    assert f"symloss takes -1 (left); the implementation: {side}" in line


# ---------------------------------------------------------------- kernels once, variants explicit
def test_battery_compiles_each_kernel_once(monkeypatch):
    import symloss.numeric as numeric

    calls = []
    original = numeric.compile_expr
    monkeypatch.setattr(numeric, "compile_expr", lambda *a: calls.append(1) or original(*a))
    d = symloss.derive("bce_with_logits", pos_weight=[2.0, 1.0, 3.0, 0.5])
    check(d, torch_function(d))
    assert len(calls) <= 6  # loss and gradient, of the derivation and its reduction='none' twin


def test_with_options_is_validated_and_built_once():
    d = symloss.derive("huber_loss")
    assert d.with_options(delta=2.0) is d.with_options(delta=2.0)
    assert d.with_options(delta=2.0).options["delta"] == 2.0 and d.options["delta"] == 1.0
    with pytest.raises(symloss.SymlossValueError, match="delta"):
        d.with_options(delta=-1.0)
    w = symloss.derive("ce").with_options(weight=[1.0, 2.0])
    assert w.declaration.symbols.get("weight") is not None


# ---------------------------------------------------------------- a torch user's first call
@pytest.mark.parametrize("requires_grad", [False, True])
def test_functions_take_torch_tensors_and_return_numpy(requires_grad):
    z = torch.tensor([0.5, -1.0], dtype=torch.float32, requires_grad=requires_grad)
    y = torch.tensor([1.0, 0.0])
    d = symloss.derive("bce")
    g = d.grad_fn(z, y)
    assert isinstance(g, np.ndarray) and g.dtype == np.float32
    np.testing.assert_array_equal(g, d.grad_fn(z.detach().numpy(), y.numpy()))
    assert isinstance(d.hvp_fn(z, y, torch.ones(2)), np.ndarray)
    assert np.ndim(d.loss_fn(z, y)) == 0
    d = symloss.derive("gaussian_nll_loss")
    var = torch.ones(2)
    assert d.grad_fn(z, y, var, wrt="var").shape == (2,)


def test_grad_fn_takes_torch_parameter_names():
    d = symloss.derive("margin_ranking_loss", reduction="sum")
    a = (np.array([0.0]), np.array([1.0]), np.array([1.0]))
    np.testing.assert_array_equal(d.grad_fn(*a, wrt="input1"), d.grad_fn(*a))
    np.testing.assert_array_equal(d.grad_fn(*a, wrt="input2"), -d.grad_fn(*a))
    with pytest.raises(symloss.SymlossValueError, match="input2"):
        d.grad_fn(*a, wrt="target")


NAMES = [
    ("BCELoss", "binary_cross_entropy", {}),
    ("nn.BCELoss", "binary_cross_entropy", {}),
    ("bce_loss", "binary_cross_entropy", {}),
    ("BCE", "binary_cross_entropy", {"link": "sigmoid"}),
    ("torch.nn.BCEWithLogitsLoss", "binary_cross_entropy_with_logits", {}),
    ("nn.CrossEntropyLoss", "cross_entropy", {}),
    ("CE", "cross_entropy", {}),
    ("F.cross_entropy", "cross_entropy", {}),
    ("nll", "nll_loss", {}),
    ("NLLLoss", "nll_loss", {}),
    ("mse", "mse_loss", {}),
    ("MSELoss", "mse_loss", {}),
    ("l1", "l1_loss", {}),
    ("huber", "huber_loss", {}),
    ("kl", "kl_div", {}),
    ("KLDivLoss", "kl_div", {}),
    ("GaussianNLLLoss", "gaussian_nll_loss", {}),
    ("MarginRankingLoss", "margin_ranking_loss", {}),
    ("smooth_l1", "smooth_l1_loss", {}),
]


@pytest.mark.parametrize(("given", "name", "preset"), NAMES, ids=[n[0] for n in NAMES])
def test_names_resolve_from_torch_class_names_and_short_forms(given, name, preset):
    spec, got = resolve(given)
    assert (spec.name, got) == (name, preset)
    assert symloss.derive(given).name == name


@pytest.mark.parametrize(
    ("given", "suggested"),
    [("bce_los", "binary_cross_entropy"), ("hubber", "huber_loss"), ("bcee", "bce"),
     ("CrossEntropyLos", "cross_entropy"), ("MSELos", "mse_loss")],
)
def test_suggestions_use_every_form_of_a_name(given, suggested):
    with pytest.raises(symloss.UnknownLossError) as info:
        resolve(given)
    assert info.value.suggestion == suggested


# ---------------------------------------------------------------- the plugin, three arrays
def test_plugin_checks_a_three_array_loss(symloss_check):
    symloss_check("gaussian_nll_loss", F.gaussian_nll_loss, dtypes=["float64"])
    symloss_check("MarginRankingLoss", F.margin_ranking_loss, dtypes=["float64"])
