"""The catalogue's element-wise losses against torch.nn.functional: value, gradient, HVP.

A table of cases in the style of PyTorch's module tests: every option, every reduction, the
shapes torch accepts, float32 and float64, typical and extreme inputs, and exactly at the kinks.
The truth is torch's autograd in float64 (double backward for the HVP); float32 results must be
that value correctly rounded to float32 tolerance, and torch itself is also run in float32 to
check that it accepts the same inputs and returns the same dtype.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import symloss
from symloss.testing import draw, torch_function

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: the helper module
from _torch_ref import assert_close, torch_value_grad_hvp
from _torch_ref import seed as _seed

SHAPES = [(7,), (2, 3, 4)]  # 1-D and N-D; (3, 4) added nothing the two do not cover
DTYPES = ["float32", "float64"]


def _normal(rng, shape, scale=2.0):
    return scale * rng.standard_normal(shape)


def _signs(rng, shape):
    return rng.choice([-1.0, 1.0], size=shape)


def _log_probs(rng, shape, scale=1.0):
    x = scale * rng.standard_normal(shape)
    return x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))


def _positive(rng, shape):
    return rng.uniform(0.05, 5.0, size=shape)


# name -> (option sets, input(rng, shape, extreme)); the target is drawn from the declared
# target domain (symloss.testing.draw: labels ±1, counts 0, 1 and > 1, probabilities, reals).
LOSSES = {
    "mse_loss": ([{}], lambda r, s, e: _normal(r, s, 1e4 if e else 2.0)),
    "l1_loss": ([{}], lambda r, s, e: _normal(r, s, 1e4 if e else 2.0)),
    "smooth_l1_loss": (
        [{}, {"beta": 0.5}, {"beta": 0.0}, {"beta": 3.0}],
        lambda r, s, e: _normal(r, s, 1e4 if e else 2.0),
    ),
    "huber_loss": (
        [{}, {"delta": 0.5}, {"delta": 4.0}],
        lambda r, s, e: _normal(r, s, 1e4 if e else 2.0),
    ),
    "soft_margin_loss": ([{}], lambda r, s, e: _normal(r, s, 40.0 if e else 2.0)),
    "poisson_nll_loss": (
        [{}, {"full": True}, {"eps": 1e-3}],
        lambda r, s, e: _normal(r, s, 8.0 if e else 1.0),
    ),
    "poisson_nll_loss-rate": (
        [{"log_input": False}, {"log_input": False, "full": True},
         {"log_input": False, "eps": 0.1}],
        lambda r, s, e: _positive(r, s) * (1e3 if e else 1.0),
    ),
    "kl_div": (
        [{}, {"reduction": "batchmean"}],
        lambda r, s, e: _log_probs(r, s, 30.0 if e else 1.0),
    ),
    "kl_div-log_target": (
        [{"log_target": True}, {"log_target": True, "reduction": "batchmean"}],
        lambda r, s, e: _log_probs(r, s, 30.0 if e else 1.0),
    ),
    "hinge_embedding_loss": (
        [{}, {"margin": 0.5}, {"margin": -1.0}],
        lambda r, s, e: _normal(r, s, 1e3 if e else 2.0),
    ),
}
REDUCTIONS = ("mean", "sum", "none")


def _cases():
    for key, (option_sets, _) in LOSSES.items():
        for options in option_sets:
            reductions = [options["reduction"]] if "reduction" in options else REDUCTIONS
            for reduction in reductions:
                opts = {**options, "reduction": reduction}
                yield pytest.param(key, opts, id=f"{key}-{opts}")


def _run(key, options, x, t, v, dtype):
    name = key.split("-")[0]
    d = symloss.derive(name, **options)
    fn = torch_function(d)
    t64 = torch.tensor(t, dtype=torch.float64)
    loss, grad, hv = torch_value_grad_hvp(lambda a: fn(a, t64), x.astype(np.float64),
                                          v.astype(np.float64))
    xd, td, vd = x.astype(dtype), t.astype(dtype), v.astype(dtype)
    ours_loss, ours_grad, ours_hvp = d.loss_fn(xd, td), d.grad_fn(xd, td), d.hvp_fn(xd, td, vd)
    # torch in the same dtype accepts the inputs and gives the same dtype and shape.
    torch_loss = fn(torch.tensor(xd), torch.tensor(td))
    assert np.asarray(ours_loss).dtype == torch_loss.detach().numpy().dtype
    assert np.shape(ours_loss) == tuple(torch_loss.shape)
    assert ours_grad.shape == x.shape and ours_grad.dtype == np.dtype(dtype)
    return d, (loss, grad, hv), (ours_loss, ours_grad, ours_hvp)


@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("key", "options"), list(_cases()))
def test_against_torch(key, options, shape, dtype, extreme):
    rng = np.random.default_rng(_seed((key, str(options), shape, dtype, extreme)))
    _, make_x = LOSSES[key]
    x = make_x(rng, shape, extreme).astype(dtype).astype(np.float64)  # representable in dtype
    (domain,) = symloss.derive(key.split("-")[0], **options).spec.target_domains(options)
    t = draw(domain, rng, shape).astype(dtype).astype(np.float64)
    v = rng.standard_normal(shape)
    _, ref, ours = _run(key, options, x, t, v, dtype)
    for what, r, o in zip(("loss", "grad", "hvp"), ref, ours, strict=True):
        assert_close(o, r, dtype, f"{key} {options} {what}")


# ------------------------------------------------------------------ kinks, exactly
# (name, options, input, target): the input sits exactly on the kink.
KINKS = [
    ("l1_loss", {}, [0.0, 1.5, -2.0], [0.0, 1.5, -2.0]),
    ("smooth_l1_loss", {"beta": 1.0}, [1.0, -1.0, 3.0, 1.0], [0.0, 0.0, 2.0, 2.0]),
    ("smooth_l1_loss", {"beta": 0.0}, [0.0, 2.0], [0.0, 2.0]),
    ("smooth_l1_loss", {"beta": 0.5}, [0.5, -0.5], [0.0, 0.0]),
    ("huber_loss", {"delta": 1.0}, [1.0, -1.0, 3.0], [0.0, 0.0, 2.0]),
    ("huber_loss", {"delta": 2.5}, [2.5, -2.5], [0.0, 0.0]),
    ("hinge_embedding_loss", {"margin": 1.0}, [1.0, 1.0, 0.0], [-1.0, 1.0, -1.0]),
    ("hinge_embedding_loss", {"margin": 0.5}, [0.5], [-1.0]),
]


def _subdifferential(d, x, t, reduction_scale):
    """The one-sided derivatives at each element, from the declaration's kinks (Kink.left and
    Kink.right where the element is on that kink; the derivative itself elsewhere)."""
    import sympy as sp

    symbols = d.declaration.symbols
    scalars = {sym: d.options[k] for k, sym in symbols.items()
               if k in d.options and isinstance(d.options[k], float)}
    lo, hi = d.grad_fn(x, t).astype(float), d.grad_fn(x, t).astype(float)
    for i, (xi, ti) in enumerate(zip(x, t, strict=True)):
        for kink in d.declaration.kinks:
            at = {sym: sp.sympify(e).subs(scalars).subs(symbols["target"], ti) for sym, e in kink.at}
            if float(at[symbols["input"]]) == xi and float(at.get(symbols["target"], ti)) == ti:
                sides = [float(sp.sympify(v).subs(scalars)) * reduction_scale
                         for v in (kink.left, kink.right)]
                lo[i], hi[i] = min(sides), max(sides)
    return lo, hi


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("name", "options", "x", "t"), KINKS)
def test_at_kinks_torch_is_in_the_subdifferential_and_symloss_is_its_stated_choice(
    name, options, x, t, reduction
):
    # torch's choice at a kink changed between 2.13 and 2.14 (hinge_embedding_loss): any value
    # between the one-sided derivatives is correct; symloss returns the value it declares.
    x, t = np.array(x), np.array(t)
    v = np.linspace(-1.0, 2.0, x.size)
    d = symloss.derive(name, reduction=reduction, **options)
    fn = torch_function(d)
    loss, grad, hv = torch_value_grad_hvp(lambda a: fn(a, torch.tensor(t)), x, v)
    scale = 1.0 / x.size if reduction == "mean" else 1.0
    lo, hi = _subdifferential(d, x, t, scale)
    assert np.all((lo <= grad) & (grad <= hi)), (grad, lo, hi)
    ours = d.grad_fn(x, t)
    assert np.all((lo <= ours) & (ours <= hi))
    for kink in d.declaration.kinks:
        assert kink.convention in ("left", "right", "both", "between")
    np.testing.assert_array_equal(d.hvp_fn(x, t, v), hv)
    np.testing.assert_allclose(d.loss_fn(x, t), loss, rtol=1e-15)


@pytest.mark.parametrize(
    ("name", "options"),
    [("l1_loss", {}), ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.0}),
     ("huber_loss", {}), ("hinge_embedding_loss", {})],
)
def test_kink_is_stated_and_checked(name, options):
    d = symloss.derive(name, **options)
    kinks = [s for s in d.steps if s.title == "Kink"]
    assert kinks and all(s.checked for s in kinks)
    assert all(s.checked for s in d.hessian_steps if s.title == "Kink")
    assert "Kink" in d.text() and "Kink" in d.markdown()


def _kink_cases():
    from symloss.catalog import CATALOG

    for name, spec in sorted(CATALOG.items()):
        if spec.family == "rows":  # a kink through sums over a row: tests/test_row_losses.py
            continue
        for opt in [None, *spec.options]:
            for value in opt.tried() if opt is not None and opt.kind != "array" else [None]:
                options = {} if opt is None else {opt.name: value}
                try:
                    d = symloss.derive(name, **options)
                except symloss.SymlossError:
                    continue
                for number in range(len(d.declaration.kinks)):
                    yield pytest.param(name, options, number, id=f"{name}-{options}-{number}")


@pytest.mark.parametrize(("name", "options", "number"), list(_kink_cases()))
def test_declared_one_sided_derivatives_are_the_derived_gradient_beside_the_kink(
    name, options, number
):
    # Kink.left / Kink.right are stated facts: sympy.diff's gradient, evaluated (exactly, in
    # rationals) a hair to either side of the kink, must approach them.
    import sympy as sp

    d = symloss.derive(name, **options)
    kink = d.declaration.kinks[number]
    symbols = d.declaration.symbols
    scalars = {sym: sp.nsimplify(d.options[k]) for k, sym in symbols.items()
               if k in d.options and isinstance(d.options[k], float)}
    at = {sym: sp.sympify(e).subs(scalars) for sym, e in kink.at}
    z = kink.at[0][0]
    free = {f: sp.Rational(3, 7) for e in at.values() for f in sp.sympify(e).free_symbols}
    h = sp.Rational(1, 10**30)
    for side, stated in ((-1, kink.left), (1, kink.right)):
        point = {**{k: sp.sympify(v).subs(free) for k, v in at.items()}, **free}
        point[z] = point[z] + side * h
        value = sp.piecewise_fold(d.gradient.subs(scalars).subs(point))
        expected = sp.sympify(stated).subs(scalars)
        assert abs(float(sp.N(value - expected, 50))) < 1e-20, (side, value, expected)


def test_torch_kink_values_are_in_the_declared_subdifferential():
    # torch's backward at each kink: 2.13 and 2.14 differ at the hinges, both are subgradients.
    def g(fn, x):
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        (gx,) = torch.autograd.grad(fn(xt), xt, create_graph=True)
        h = torch.autograd.grad(gx, xt)[0] if gx.requires_grad else torch.tensor(0.0)
        return float(gx.detach()), float(h)

    zero = torch.tensor(0.0, dtype=torch.float64)
    assert g(lambda a: F.l1_loss(a, zero), 0.0) == (0.0, 0.0)
    assert g(lambda a: F.smooth_l1_loss(a, zero, beta=1.0), 1.0) == (1.0, 0.0)
    assert g(lambda a: F.smooth_l1_loss(a, zero, beta=0.0), 0.0) == (0.0, 0.0)
    assert g(lambda a: F.huber_loss(a, zero, delta=2.0), -2.0) == (-2.0, 0.0)
    minus = torch.tensor(-1.0, dtype=torch.float64)
    hinge, _ = g(lambda a: F.hinge_embedding_loss(a, minus, margin=1.0), 1.0)
    assert hinge in (-1.0, 0.0)  # −1 on torch 2.13 (left), 0 on 2.14 (right)
    kink = symloss.derive("hinge_embedding_loss").declaration.kinks[0]
    assert (kink.left, kink.right, kink.value, kink.convention) == (-1, 0, -1, "left")


# ------------------------------------------------------------------ proofs and listing
PROVED = [
    ("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.0}),
    ("huber_loss", {}), ("soft_margin_loss", {}), ("poisson_nll_loss", {}),
    ("poisson_nll_loss", {"log_input": False, "full": True}), ("kl_div", {}),
    ("kl_div", {"log_target": True, "reduction": "batchmean"}), ("hinge_embedding_loss", {}),
]


@pytest.mark.parametrize(("name", "options"), PROVED)
def test_gradient_and_hessian_proved(name, options):
    d = symloss.derive(name, **options)
    assert d.proved and d.hessian_proved and d.kernel_proved
    assert all(s.checked is not False for s in d.steps + d.hessian_steps)


def test_poisson_log_input_canonical_is_exp_minus_target():
    import sympy as sp

    d = symloss.derive("poisson_nll_loss", log_input=True)
    z, y = d.input, d.declaration.target
    assert sp.simplify(d.gradient - (sp.exp(z) - y)) == 0


def test_list_shows_new_losses(capsys):
    from symloss.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "soft_margin_loss",
                 "poisson_nll_loss", "kl_div", "hinge_embedding_loss"):
        assert name in out


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("smooth_l1_loss", {"beta": -1.0}, "beta must be finite and ≥ 0"),
        ("huber_loss", {"delta": 0.0}, "delta must be finite and > 0"),
        ("poisson_nll_loss", {"eps": "x"}, "eps must be a number"),
        ("poisson_nll_loss", {"log_input": "yes"}, "valid values: False, True"),
        ("kl_div", {"reduction": "avg"}, "'batchmean'"),
        ("mse_loss", {"reduction": "batchmean"}, "valid values: 'none', 'mean', 'sum'"),
        ("hinge_embedding_loss", {"margin": float("inf")}, "margin must be finite"),
        ("mse_loss", {"beta": 1.0}, "valid options: reduction"),
    ],
)
def test_bad_options_name_the_valid_choices(name, options, match):
    with pytest.raises(symloss.SymlossError, match=match):
        symloss.derive(name, **options)


# ------------------------------------------------------------------ nll_loss (class axis)
NLL_LAYOUTS = [((5,), ()), ((4, 5), (4,)), ((2, 5, 3, 2), (2, 3, 2))]
NLL_OPTIONS = [{}, {"weight": "w"}, {"ignore_index": 2}, {"weight": "w", "ignore_index": 0},
               {"link": "log_softmax"}, {"link": "log_softmax", "weight": "w"}]


@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", NLL_LAYOUTS, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", NLL_OPTIONS, ids=str)
def test_nll_loss_against_torch(options, reduction, layout, dtype, extreme):
    rng = np.random.default_rng(_seed((str(options), reduction, layout, dtype, extreme)))
    shape, tshape = layout
    class_dim = 0 if len(shape) == 1 else 1
    logits = (30.0 if extreme else 2.0) * rng.standard_normal(shape)
    link = options.get("link")
    x = logits if link else torch.log_softmax(torch.tensor(logits), class_dim).numpy()
    x = x.astype(dtype).astype(np.float64)
    t = rng.integers(0, 5, size=tshape)
    if t.ndim and "ignore_index" in options:
        t.flat[0] = options["ignore_index"]
    opts = {k: (rng.uniform(0.5, 2.0, 5) if v == "w" else v) for k, v in options.items()}
    d = symloss.derive("nll_loss", reduction=reduction, **opts)
    torch_opts = {k: v for k, v in opts.items() if k != "link"}
    if "weight" in torch_opts:
        torch_opts["weight"] = torch.tensor(torch_opts["weight"])

    def fn(a):
        inp = torch.log_softmax(a, class_dim) if link else a
        return F.nll_loss(inp, torch.tensor(t), reduction=reduction, **torch_opts)

    v = rng.standard_normal(shape)
    ref = torch_value_grad_hvp(fn, x, v)
    xd, vd = x.astype(dtype), v.astype(dtype)
    ours = (d.loss_fn(xd, t), d.grad_fn(xd, t), d.hvp_fn(xd, t, vd))
    assert ours[1].dtype == np.dtype(dtype)
    for what, r, o in zip(("loss", "grad", "hvp"), ref, ours, strict=True):
        assert_close(o, r, dtype, f"nll_loss {options} {what}")


def test_nll_with_log_softmax_is_cross_entropy():
    nll = symloss.derive("nll_loss", link="log_softmax")
    ce = symloss.derive("cross_entropy")
    assert "cross_entropy" in nll.declaration.loss_why and "cross_entropy" in nll.text()
    assert nll.gradient == ce.gradient and nll.hessian == ce.hessian
    assert nll.proved and nll.hessian_proved
    plain = symloss.derive("nll_loss")
    assert plain.proved and plain.hessian == 0


def test_nll_rejects_probability_targets():
    d = symloss.derive("nll_loss")
    with pytest.raises(symloss.SymlossValueError, match="class indices"):
        d.loss_fn(np.zeros((2, 3)), np.full((2, 3), 1 / 3))


# ------------------------------------------------------------------ sigmoid_focal_loss
def _torchvision_focal(inputs, targets, alpha, gamma, reduction):
    """torchvision.ops.sigmoid_focal_loss, written with the same torch operations."""
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


FOCAL = [{}, {"alpha": -1.0}, {"alpha": 0.75, "gamma": 0.5}, {"gamma": 0.0},
         {"gamma": 3.0, "alpha": 0.5}]


@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", FOCAL, ids=str)
def test_sigmoid_focal_loss_against_torchvision_formula(options, reduction, shape, dtype,
                                                        extreme, soft):
    rng = np.random.default_rng(_seed((str(options), reduction, shape, dtype, extreme, soft)))
    # torchvision computes 1 − p_t by cancellation: it is exactly 0 for |z| > 37 in float64,
    # and 0^(γ−1) is infinite for γ < 1 where the exact value is finite; so |z| ≤ 30.
    x = np.clip((12.0 if extreme else 2.0) * rng.standard_normal(shape), -30.0, 30.0)
    x = x.astype(dtype).astype(float)
    t = rng.uniform(0, 1, shape) if soft else rng.integers(0, 2, shape).astype(float)
    t = t.astype(dtype).astype(float)
    v = rng.standard_normal(shape)
    d = symloss.derive("sigmoid_focal_loss", reduction=reduction, **options)
    alpha, gamma = d.options["alpha"], d.options["gamma"]
    ref = torch_value_grad_hvp(
        lambda a: _torchvision_focal(a, torch.tensor(t), alpha, gamma, reduction), x, v
    )
    xd, td, vd = x.astype(dtype), t.astype(dtype), v.astype(dtype)
    ours = (d.loss_fn(xd, td), d.grad_fn(xd, td), d.hvp_fn(xd, td, vd))
    for what, r, o in zip(("loss", "grad", "hvp"), ref, ours, strict=True):
        assert_close(o, r, dtype, f"focal {options} {what}")


def test_sigmoid_focal_gradient_proved_hessian_reported_not_proved():
    d = symloss.derive("sigmoid_focal_loss")
    assert d.proved
    assert d.hessian_proved is False  # no closed form declared: said so, not claimed
    closed = next(s for s in d.hessian_steps if s.title == "Closed form")
    assert closed.checked is None and "No closed form" in closed.why
    assert "NOT PROVED" in d.text(order=2)


# ------------------------------------------------------------------ multilabel_soft_margin_loss
@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (4, 5)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weight"])
@pytest.mark.parametrize("soft", [False, True], ids=["multi-hot", "soft"])
def test_multilabel_soft_margin_against_torch(soft, weighted, reduction, shape, dtype, extreme):
    rng = np.random.default_rng(_seed("mlsm", soft, weighted, reduction, shape, dtype, extreme))
    x = ((40.0 if extreme else 2.0) * rng.standard_normal(shape)).astype(dtype).astype(float)
    t = rng.uniform(0, 1, shape) if soft else rng.integers(0, 2, shape).astype(float)
    t = t.astype(dtype).astype(float)
    v = rng.standard_normal(shape)
    opts = {"weight": rng.uniform(0.5, 2.0, shape[-1])} if weighted else {}
    d = symloss.derive("multilabel_soft_margin_loss", reduction=reduction, **opts)
    fn = torch_function(d)
    ref = torch_value_grad_hvp(lambda a: fn(a, torch.tensor(t)), x, v)
    xd, td, vd = x.astype(dtype), t.astype(dtype), v.astype(dtype)
    ours = (d.loss_fn(xd, td), d.grad_fn(xd, td), d.hvp_fn(xd, td, vd))
    for what, r, o in zip(("loss", "grad", "hvp"), ref, ours, strict=True):
        assert_close(o, r, dtype, f"multilabel {opts} {what}")


def test_multilabel_soft_margin_rejects_index_targets():
    d = symloss.derive("multilabel_soft_margin_loss")
    with pytest.raises(symloss.SymlossValueError, match="one label per class"):
        d.loss_fn(np.zeros((2, 3)), np.array([0, 1]))


# ------------------------------------------------------------------ gaussian_nll_loss (var too)
def _torch_grads(fn, arrays, wrt, v):
    """Value, gradients for the arguments in ``wrt`` and the input HVP, by torch autograd."""
    tensors = [torch.tensor(a, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    total = out.sum() if out.ndim else out
    grads = torch.autograd.grad(total, [tensors[i] for i in wrt], create_graph=True)
    g0 = grads[0]
    if g0.requires_grad:
        (h,) = torch.autograd.grad(g0, tensors[wrt[0]], grad_outputs=torch.tensor(v),
                                   allow_unused=True)
        h = np.zeros_like(arrays[0]) if h is None or h._is_zerotensor() else h.detach().numpy()
    else:
        h = np.zeros_like(arrays[0])
    return out.detach().numpy(), [g.detach().numpy() for g in grads], h


VAR_SHAPES = ["same", "no last dim", "last dim 1"]


@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("var_shape", VAR_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"full": True}, {"eps": 0.5}], ids=str)
def test_gaussian_nll_against_torch(options, reduction, var_shape, dtype, extreme):
    rng = np.random.default_rng(_seed("gnll", options, reduction, var_shape, dtype, extreme))
    shape = (4, 3)
    x = ((1e3 if extreme else 2.0) * rng.standard_normal(shape)).astype(dtype).astype(float)
    y = rng.standard_normal(shape).astype(dtype).astype(float)
    vshape = {"same": shape, "no last dim": (4,), "last dim 1": (4, 1)}[var_shape]
    var = rng.uniform(0.0, 3.0, vshape)
    var.flat[0] = 1e-9  # below eps: clamped without gradient
    var = var.astype(dtype).astype(float)
    v = rng.standard_normal(shape)
    d = symloss.derive("gaussian_nll_loss", reduction=reduction, **options)
    o = d.options

    def fn(a, b, c):
        return F.gaussian_nll_loss(a, b, c, full=o["full"], eps=o["eps"], reduction=reduction)

    loss, (gx, gvar), hv = _torch_grads(fn, [x, y, var], [0, 2], v)
    xd, yd, vard = x.astype(dtype), y.astype(dtype), var.astype(dtype)
    assert_close(d.loss_fn(xd, yd, vard), loss, dtype, "loss")
    assert_close(d.grad_fn(xd, yd, vard), gx, dtype, "grad input")
    ours_var = d.grad_fn(xd, yd, vard, wrt="var")
    assert ours_var.shape == vshape
    assert_close(ours_var, gvar, dtype, "grad var")
    assert_close(d.hvp_fn(xd, yd, vard, v.astype(dtype)), hv, dtype, "hvp")


def test_gaussian_nll_rejects_negative_var_and_unknown_wrt():
    d = symloss.derive("gaussian_nll_loss")
    with pytest.raises(symloss.SymlossValueError, match="negative"):
        d.loss_fn(np.zeros(3), np.zeros(3), np.array([1.0, -1.0, 1.0]))
    with pytest.raises(symloss.SymlossValueError, match="'input', 'var'"):
        d.grad_fn(np.zeros(3), np.zeros(3), np.ones(3), wrt="target")
    with pytest.raises(symloss.SymlossTypeError, match=r"takes \(input, target, var\)"):
        d.loss_fn(np.zeros(3), np.zeros(3))


# ------------------------------------------------------------------ margin_ranking_loss
@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 4)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5, -1.0])
def test_margin_ranking_against_torch(margin, reduction, shape, dtype, extreme):
    rng = np.random.default_rng(_seed("mr", margin, reduction, shape, dtype, extreme))
    scale = 1e3 if extreme else 2.0
    x1 = (scale * rng.standard_normal(shape)).astype(dtype).astype(float)
    x2 = (scale * rng.standard_normal(shape)).astype(dtype).astype(float)
    y = _signs(rng, shape)
    v = rng.standard_normal(shape)
    d = symloss.derive("margin_ranking_loss", margin=margin, reduction=reduction)

    def fn(a, b, t):
        return F.margin_ranking_loss(a, b, t, margin=margin, reduction=reduction)

    loss, (g1, g2), hv = _torch_grads(fn, [x1, x2, y], [0, 1], v)
    args = (x1.astype(dtype), x2.astype(dtype), y.astype(dtype))
    assert_close(d.loss_fn(*args), loss, dtype, "loss")
    assert_close(d.grad_fn(*args), g1, dtype, "grad input1")
    assert_close(d.grad_fn(*args, wrt="input2"), g2, dtype, "grad input2")
    assert_close(d.hvp_fn(*args, v.astype(dtype)), hv, dtype, "hvp")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 1.0, 0.25])
def test_margin_ranking_at_the_kink_torch_is_a_subgradient(margin, reduction):
    # −y(x1 − x2) + margin = 0 exactly, for y = 1 and y = −1. torch 2.13 counts the hinge as
    # active (−y), torch 2.14 as inactive (0): both lie between the one-sided derivatives.
    x2 = np.array([0.0, 1.0, -2.0, 0.5])
    y = np.array([1.0, 1.0, -1.0, -1.0])
    x1 = x2 + margin / y
    d = symloss.derive("margin_ranking_loss", margin=margin, reduction=reduction)
    _, (g1, g2), _ = _torch_grads(
        lambda a, b, t: F.margin_ranking_loss(a, b, t, margin=margin, reduction=reduction),
        [x1, x2, y], [0, 1], np.ones(4),
    )
    scale = 0.25 if reduction == "mean" else 1.0
    active = -y * scale  # the derivative while the margin is violated; 0 once it is satisfied
    lo, hi = np.minimum(active, 0.0), np.maximum(active, 0.0)
    assert np.all((lo <= g1) & (g1 <= hi)) and np.all((-hi <= g2) & (g2 <= -lo))
    np.testing.assert_array_equal(d.grad_fn(x1, x2, y), active)  # symloss: the hinge active
    np.testing.assert_array_equal(d.grad_fn(x1, x2, y, wrt="input2"), -active)
    assert [s.checked for s in d.steps if s.title == "Kink"] == [True, True]  # y = 1 and y = −1


# ------------------------------------------------------------------ multi_margin_loss
MM_OPTIONS = [{"p": 1}, {"p": 2}, {"p": 1, "margin": 0.5, "weight": "w"},
              {"p": 2, "margin": 2.0, "weight": "w"}, {"p": 2, "margin": -0.5}]


@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", [((5,), ()), ((4, 5), (4,))], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", MM_OPTIONS, ids=str)
def test_multi_margin_against_torch(options, reduction, layout, dtype, extreme):
    rng = np.random.default_rng(_seed("mm", options, reduction, layout, dtype, extreme))
    shape, tshape = layout
    x = ((1e3 if extreme else 1.0) * rng.standard_normal(shape)).astype(dtype).astype(float)
    t = rng.integers(0, 5, size=tshape)
    opts = {k: (rng.uniform(0.5, 2.0, 5) if v == "w" else v) for k, v in options.items()}
    d = symloss.derive("multi_margin_loss", reduction=reduction, **opts)
    kw = {k: (torch.tensor(v) if k == "weight" else v) for k, v in opts.items()}

    def fn(a):
        return F.multi_margin_loss(a, torch.tensor(t), reduction=reduction, **kw)

    loss, grad, _ = torch_value_grad_hvp(fn, x, None)
    xd = x.astype(dtype)
    assert_close(d.loss_fn(xd, t), loss, dtype, "loss")
    assert_close(d.grad_fn(xd, t), grad, dtype, "grad")
    # torch has no double backward for multi_margin_loss: the HVP is checked against central
    # differences of torch's gradient (exact up to rounding for a piecewise quadratic loss,
    # with a step far smaller than the distance to any kink).
    v = rng.standard_normal(shape)
    h = 1e-7 * (1e3 if extreme else 1.0)

    def g(a):
        return torch_value_grad_hvp(fn, a, None)[1]

    fd = (g(x + h * v) - g(x - h * v)) / (2 * h)
    ours = d.hvp_fn(x, t, v)
    np.testing.assert_allclose(ours, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.max(np.abs(fd))))
    if options["p"] == 1:
        assert np.all(ours == 0)


@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_at_the_kink_equals_torch_exactly(p):
    # margin − x_t + x_k = 0 exactly for k = 0: torch counts it inactive, and so do we.
    x = np.array([[0.0, 1.0, 0.5], [2.0, 1.0, 3.0]])
    t = np.array([1, 2])
    d = symloss.derive("multi_margin_loss", p=p, margin=1.0)
    _, grad, _ = torch_value_grad_hvp(
        lambda a: F.multi_margin_loss(a, torch.tensor(t), p=p, margin=1.0), x, None
    )
    np.testing.assert_array_equal(d.grad_fn(x, t), grad)
    assert grad[0, 0] == 0.0 and grad[1, 0] == 0.0  # both on the kink
    assert "inactive" in d.declaration.canonical_why


def test_multi_margin_proved_both_orders():
    for p in (1, 2):
        d = symloss.derive("multi_margin_loss", p=p, weight=np.ones(3))
        assert d.proved and d.hessian_proved
        assert all(s.checked is not False for s in d.steps + d.hessian_steps)


@pytest.mark.parametrize(
    "argv",
    [["sigmoid_focal_loss"], ["sigmoid_focal_loss", "--gamma", "3", "--reduction", "mean"],
     ["nll_loss", "--link", "log_softmax"], ["nll_loss", "--weight", "1", "2", "3", "4", "5"],
     ["smooth_l1_loss", "--beta", "0"], ["poisson_nll_loss", "--no-log-input", "--full"]],
    ids=" ".join,
)
def test_cli_check_agrees_for_new_losses(argv, capsys):
    from symloss.cli import main

    assert main(["check", *argv]) == 0, capsys.readouterr().out
    assert "agrees: all" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["gaussian_nll_loss", "margin_ranking_loss"])
def test_cli_checks_losses_with_three_arrays(name, capsys):
    from symloss.cli import main

    assert main(["check", name, "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "agrees: all" in out and ("input2" in out or "var" in out)  # every array
