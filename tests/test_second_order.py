"""Second order: Hessians derived and proved, hvp_fn against torch, objective(), --order 2."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from torch.autograd.functional import hvp as torch_hvp

import symloss
from symloss.cli import main
from symloss.derive import HESSIAN_INDEX
from symloss.primitives import CLASS_INDEX, NUM_CLASSES, SUM_INDEX, sigmoid, softmax
from symloss.testing import torch_function

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: the helper module
from _torch_ref import assert_close, torch_value_grad_hvp
from _torch_ref import seed as _seed

# (name, options, input kind) -- every option of the three losses, every reduction.
CASES = [
    ("bce", {}),
    ("bce", {"weight": "w"}),
    ("binary_cross_entropy", {"link": None}),
    ("binary_cross_entropy", {"link": None, "weight": "w"}),
    ("binary_cross_entropy_with_logits", {}),
    ("binary_cross_entropy_with_logits", {"pos_weight": "w"}),
    ("binary_cross_entropy_with_logits", {"weight": "w", "pos_weight": "w"}),
    ("ce", {}),
    ("ce", {"weight": "w"}),
    ("ce", {"label_smoothing": 0.2}),
    ("ce", {"weight": "w", "label_smoothing": 0.1, "ignore_index": 1}),
]
REDUCTIONS = ("mean", "sum", "none")


def _inputs(name: str, options: dict, dtype: str, rng: np.random.Generator, extreme: bool):
    spec, _ = symloss.catalog.resolve(name)
    if spec.family == "class_axis":
        shape = (4, 5)
        scale = 30.0 if extreme else 3.0
        x = (scale * rng.standard_normal(shape)).astype(dtype)
        t = rng.integers(0, 5, size=4)
        opts = {k: (rng.uniform(0.5, 2.0, 5) if v == "w" else v) for k, v in options.items()}
    else:
        shape = (3, 4)
        if options.get("link", "sigmoid" if name != "binary_cross_entropy" else None) is None:
            x = rng.uniform(1e-3 if extreme else 0.05, 1 - (1e-3 if extreme else 0.05), shape)
        else:
            # torch's composite BCE(sigmoid(z)) clamps p(1 - p) at 1e-12 (|z| > 27); the exact
            # reference does not, so the composite is compared where it is exact.
            # Its double backward is guarded with ε = 1e-12 and is 5% off at |z| = 12 with the
            # wrong-side label (measured, torch 2.13), so the composite is held to |z| ≤ 6.
            composite = name != "binary_cross_entropy_with_logits"
            x = (8.0 if composite else 25.0 if extreme else 3.0) * rng.standard_normal(shape)
            if composite:
                x = np.clip(x, -6.0, 6.0) if extreme else x / 8.0 * 3.0
        x = x.astype(dtype)
        t = rng.integers(0, 2, size=shape).astype(dtype)
        opts = {k: (rng.uniform(0.5, 2.0, 4) if v == "w" else v) for k, v in options.items()}
    v = rng.standard_normal(shape).astype(dtype)
    return x, t, v, opts


@pytest.mark.parametrize("extreme", [False, True], ids=["typical", "extreme"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("name", "options"), CASES, ids=lambda c: str(c))
def test_hvp_matches_torch(name, options, reduction, dtype, extreme):
    rng = np.random.default_rng(_seed((name, str(options), reduction, dtype, extreme)))
    x, t, v, opts = _inputs(name, options, dtype, rng, extreme)
    d = symloss.derive(name, reduction=reduction, **opts)
    fn = torch_function(d)
    # The truth is torch's autograd in float64; float32 results are held to float32 rounding.
    t64 = torch.from_numpy(t.astype(np.float64) if t.dtype.kind == "f" else t)
    loss, grad, hv = torch_value_grad_hvp(
        lambda a: fn(a, t64), x.astype(np.float64), v.astype(np.float64)
    )
    assert_close(d.loss_fn(x, t), loss, dtype, "loss")
    assert_close(d.grad_fn(x, t), grad, dtype, "grad")
    ours = d.hvp_fn(x, t, v)
    assert ours.shape == x.shape and ours.dtype == x.dtype
    # torch's double backward of binary_cross_entropy evaluates (p² − 2py + y) over
    # (p + ε)²(1 − p + ε)², ε = 1e-12: a relative perturbation ε/p that the exact HVP lacks.
    perturbed = name in ("bce", "binary_cross_entropy")
    tol = 1e-6 if perturbed else None
    assert_close(ours, hv, dtype, "hvp", rtol=tol, atol=tol)


def test_hvp_equals_torch_functional_hvp():
    rng = np.random.default_rng(1)
    x, v = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    t = rng.integers(0, 6, 3)
    d = symloss.derive("ce", reduction="mean")
    _, ref = torch_hvp(lambda a: F.cross_entropy(a, torch.from_numpy(t)), torch.tensor(x),
                       torch.tensor(v))
    np.testing.assert_allclose(d.hvp_fn(x, t, v), ref.numpy(), rtol=1e-12, atol=1e-15)


def test_bce_hessian_is_bernoulli_variance():
    d = symloss.derive("bce")
    z = d.input
    assert d.hessian_proved
    assert sp.simplify((d.hessian - sigmoid(z) * (1 - sigmoid(z))).rewrite(sp.exp)) == 0


def test_ce_hessian_is_diag_p_minus_ppt_for_symbolic_c():
    d = symloss.derive("ce")
    assert d.hessian_proved
    assert d.second_input == sp.IndexedBase("z")[HESSIAN_INDEX]
    z, y = sp.IndexedBase("z"), sp.IndexedBase("y")
    i, j, k, c = CLASS_INDEX, HESSIAN_INDEX, SUM_INDEX, NUM_CLASSES
    block = softmax(z, i, c) * sp.KroneckerDelta(i, j) - softmax(z, i, c) * softmax(z, j, c)
    expected = sp.Sum(y[k], (k, 1, c)) * block
    assert sp.expand(d.hessian - expected) == 0
    # The same block, numerically, for C = 4 against torch's Jacobian of the softmax.
    zz = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64)
    p = torch.softmax(zz, 0)
    ref = torch.autograd.functional.hessian(lambda a: F.cross_entropy(a, torch.tensor(2)), zz)
    np.testing.assert_allclose(ref.numpy(), (torch.diag(p) - torch.outer(p, p)).numpy(),
                               atol=1e-15)


def test_not_proved_when_wrong_closed_form_is_declared():
    # The proof is not a formality: a wrong closed form is reported as not proved.
    d = symloss.derive("bce")
    z = d.input
    assert not d._prove(d.hessian, sigmoid(z) ** 2)


@pytest.mark.parametrize("name", ["bce", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                                  "ce"])
def test_hessian_steps_are_checked(name):
    steps = symloss.derive(name).hessian_steps
    titles = [s.title for s in steps]
    assert titles[:3] == ["Gradient", "Second derivative", "Closed form"]
    assert titles[-1] == "Hessian-vector product"
    assert all(s.checked is not False for s in steps), [(s.title, s.checked) for s in steps]


@pytest.mark.parametrize(
    ("name", "preds", "labels"),
    [
        ("binary_cross_entropy_with_logits", np.array([-3.0, 0.0, 4.0]), np.array([0.0, 1.0, 1.0])),
        ("ce", np.array([[1.0, 2.0, -1.0], [0.0, 0.0, 5.0]]), np.array([2.0, 0.0])),
        ("ce", np.array([[1.0, 2.0, -1.0], [0.0, 0.0, 5.0]]), np.array([2, 1])),
    ],
)
def test_objective_gives_per_sample_grad_and_diagonal_hessian(name, preds, labels):
    grad, hess = symloss.objective(name)(preds, labels)
    x = torch.tensor(preds, requires_grad=True)
    if name == "ce":
        t = torch.tensor(labels.astype(np.int64))
        per_sample = F.cross_entropy(x, t, reduction="none")
        p = torch.softmax(x, 1).detach().numpy()
        ref_hess = p * (1 - p)
    else:
        per_sample = F.binary_cross_entropy_with_logits(x, torch.tensor(labels), reduction="none")
        s = torch.sigmoid(x).detach().numpy()
        ref_hess = s * (1 - s)
    (ref_grad,) = torch.autograd.grad(per_sample.sum(), x)
    np.testing.assert_allclose(grad, ref_grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, ref_hess, rtol=1e-12, atol=1e-15)
    assert grad.shape == hess.shape == preds.shape


def test_objective_rejects_reduction_and_fractional_labels():
    with pytest.raises(symloss.SymlossValueError, match="unreduced"):
        symloss.objective("ce", reduction="mean")
    with pytest.raises(symloss.SymlossValueError, match="class indices"):
        symloss.objective("ce")(np.zeros((2, 3)), np.array([0.5, 1.0]))


def test_hvp_rejects_direction_of_wrong_shape():
    d = symloss.derive("bce")
    with pytest.raises(symloss.SymlossValueError, match="input's shape"):
        d.hvp_fn(np.zeros(3), np.zeros(3), np.zeros(2))


def test_cli_order_two(capsys):
    assert main(["derive", "bce", "--order", "2"]) == 0
    out = capsys.readouterr().out
    assert "second derivative" in out and "Hessian-vector product" in out
    assert "NOT PROVED" not in out
    assert main(["derive", "ce", "--order", "2", "--format", "latex", "--document"]) == 0
    assert r"\partial^{2}" in capsys.readouterr().out


def test_cli_order_rejects_three(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["derive", "bce", "--order", "3"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_steps_for_rejects_other_orders():
    with pytest.raises(symloss.SymlossValueError, match="valid values: 1, 2"):
        symloss.derive("bce").steps_for(3)


def test_import_and_second_order_never_import_torch():
    import subprocess

    code = (
        "import sys, numpy as np, symloss\n"
        "symloss.derive('multi_margin_loss', p=2).hvp_fn(np.ones((2, 3)), np.array([0, 1]),"
        " np.ones((2, 3)))\n"
        "symloss.objective('ce')(np.zeros((2, 3)), np.array([0.0, 2.0]))\n"
        "symloss.derive('gaussian_nll_loss').grad_fn(np.ones(2), np.zeros(2), np.ones(2),"
        " wrt='var')\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# Second derivatives that do not cancel (issue 8): against mpmath at 60 digits, both evaluators.
def _mp_sig(x):
    import mpmath

    return 1 / (1 + mpmath.exp(-x))


def _second_ulps(got, exact, dtype):
    import mpmath

    got = np.asarray(got, dtype=np.float64).ravel()
    out = []
    for g, e in zip(got, exact, strict=True):
        if abs(float(e)) < np.finfo(dtype).tiny and abs(g) < np.finfo(dtype).tiny:
            out.append(0.0)  # a subnormal result may flush
            continue
        out.append(float(abs(mpmath.mpf(float(g)) - e)) / float(np.spacing(dtype(abs(float(e))))))
    return np.array(out)


@pytest.fixture(params=["numpy", "numba"])
def evaluator(request, monkeypatch):
    from symloss import fast

    if request.param == "numpy":
        monkeypatch.setattr(fast, "_ENABLED", False)
    else:
        if not fast.available():
            pytest.skip("numba not installed")
        monkeypatch.setattr(fast, "MIN_SIZE", 0)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_hvp_centred_direction(dtype, evaluator):
    """pᵢ(vᵢ − Σ pₖvₖ) where v₁ is the p-weighted mean of the other entries: the bracket
    cancels (the argmax-centred float form was 1.3e6 ulp off in float32, 7e305 in float64).
    Also index and probability targets, a tied arg-max and logits whose e^(z − m) underflow."""
    import mpmath

    mpmath.mp.dps = 80
    rng = np.random.default_rng(7)
    z = np.concatenate([rng.standard_normal((6, 4)) * 3, [[2.0, 2.0, -1.0, 0.5]],
                        [[-745.0, 0.0, 0.0, 0.0]], [[1e-6, 0.0, 0.0, 0.0]]]).astype(dtype)
    v = rng.standard_normal(z.shape)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    v[:, 1] = ((p * v).sum(axis=1) - p[:, 1] * v[:, 1]) / (1 - p[:, 1])
    v = v.astype(dtype)
    d = symloss.derive("cross_entropy", reduction="sum")
    for target in (np.arange(len(z)) % 4, np.eye(4, dtype=dtype)[np.arange(len(z)) % 4]):
        got = d.hvp_fn(z, target, v)
        exact = []
        for row, vr in zip(z, v, strict=True):
            ez = [mpmath.exp(mpmath.mpf(float(a))) for a in row]
            total = mpmath.fsum(ez)
            exact += [ez[i] * mpmath.fsum(ez[k] * (mpmath.mpf(float(vr[i])) - mpmath.mpf(float(vr[k])))
                                          for k in range(4)) / total**2 for i in range(4)]
        assert _second_ulps(got, exact, dtype).max() <= 4


SIGMA_VARIANCE = [  # (loss, target): the Hessian is σ(yz)σ(−yz)·y², whatever a 0/1/soft y is
    ("binary_cross_entropy_with_logits", 0.0),
    ("binary_cross_entropy_with_logits", 1.0),
    ("binary_cross_entropy_with_logits", 0.5),
    ("soft_margin_loss", 1.0),
    ("soft_margin_loss", -1.0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "label"), SIGMA_VARIANCE)
def test_bernoulli_variance_does_not_cancel(name, label, dtype, evaluator):
    import mpmath

    mpmath.mp.dps = 60
    z = np.array([40.0, 100.0, -40.0, 700.0, -30.0, 1e-9, 2.5], dtype)
    y = np.full(z.shape, label, dtype)
    d = symloss.derive(name, reduction="sum")
    s = label if name == "soft_margin_loss" else 1.0  # BCE: σ(z)σ(−z), free of y
    exact = [s**2 * _mp_sig(s * mpmath.mpf(float(a))) * _mp_sig(-s * mpmath.mpf(float(a)))
             for a in z]
    assert _second_ulps(d.hvp_fn(z, y, np.ones_like(z)), exact, dtype).max() <= 4
    if name == "binary_cross_entropy_with_logits":
        _, hess = symloss.objective(name)(z, y)
        assert _second_ulps(hess, exact, dtype).max() <= 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_diagonal_does_not_cancel(dtype, evaluator):
    import mpmath

    mpmath.mp.dps = 60
    z = np.array([[40.0, 0.0, 0.0], [100.0, -3.0, 1.0], [17.0, 0.5, -2.0]], dtype)
    labels = np.array([0, 1, 2])
    _, hess = symloss.objective("cross_entropy")(z, labels)
    exact = []
    for row in z:
        e = [mpmath.exp(mpmath.mpf(float(a))) for a in row]
        total = mpmath.fsum(e)
        exact += [e[i] / total * mpmath.fsum(e[:i] + e[i + 1:]) / total for i in range(3)]
    assert _second_ulps(hess, exact, dtype).max() <= 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label", [0.0, 1.0, 0.25])
def test_focal_gamma_below_one_is_finite_and_exact(label, dtype):
    """alpha=-1, gamma=0.5: σ(−|z|) underflows beyond |z| ≈ 745; the derivatives stay finite
    and match mpmath (a result below the smallest normal may flush to 0)."""
    import mpmath

    # The reference is the naive sympy.diff of the textbook form: at |z| = 800 its terms
    # cancel to e^(−800) ≈ 10^(−348), so it needs that many digits (|z| = 12000: finite only).
    mpmath.mp.dps = 420
    z = np.array([-800.0, 800.0, -746.0, 746.0, -12000.0, 12000.0, 3.0, -0.5], dtype)
    y = np.full(z.shape, label, dtype)
    d = symloss.derive("sigmoid_focal_loss", alpha=-1, gamma=0.5, reduction="sum")
    zz, yy = sp.symbols("zz yy")
    q = yy * (1 / (1 + sp.exp(zz))) + (1 - yy) * (1 / (1 + sp.exp(-zz)))
    ce = yy * sp.log(1 + sp.exp(-zz)) + (1 - yy) * sp.log(1 + sp.exp(zz))
    loss = ce * q ** sp.Rational(1, 2)
    d1 = sp.lambdify([zz, yy], sp.diff(loss, zz), "mpmath")
    d2 = sp.lambdify([zz, yy], sp.diff(loss, zz, 2), "mpmath")
    grad = d.grad_fn(z, y)
    hvp = d.hvp_fn(z, y, np.ones_like(z))
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hvp))
    near = np.abs(z) < 1000
    for got, fn in ((grad, d1), (hvp, d2)):
        exact = [fn(mpmath.mpf(float(a)), mpmath.mpf(float(label))) for a in z[near]]
        assert _second_ulps(got[near], exact, dtype).max() <= 4


FOCAL_HARD = [  # (gamma, alpha): the default, γ < 1, a large γ (one declaration: one compile)
    (2.0, 0.25), (0.5, 0.25), (5.0, 0.75)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("gamma", "alpha"), FOCAL_HARD)
def test_focal_hessian_at_hard_points(gamma, alpha, dtype, evaluator):
    """hvp_fn and objective's Hessian of hard labels within 4 ulp of mpmath's second derivative
    where the float forms fail: next to the Hessian's root (its product-rule terms cancel),
    where σ^γ underflows or p_t → 1 (z → −∞ at y = 0, +∞ at y = 1), where σ(−|z|) is tiny; a
    block of them (the float64 kernels gather each label's elements and vectorize)."""
    import mpmath

    # mpmath.diff differences values of f: at z = 300 the second derivative is e^(−300) of them
    mpmath.mp.dps = 250

    def f(u, y):  # α_t (1 − p_t)^γ BCE, textbook form
        s, t = 1 / (1 + mpmath.exp(-u)), 1 / (1 + mpmath.exp(u))
        a = 1 if alpha < 0 else alpha * y + (1 - alpha) * (1 - y)
        ce = y * mpmath.log1p(mpmath.exp(-u)) + (1 - y) * mpmath.log1p(mpmath.exp(u))
        return a * ce * (y * t + (1 - y) * s) ** gamma

    root = float(mpmath.findroot(lambda u: mpmath.diff(lambda w: f(w, 0), u, 2),
                                 2.0 + 1.0 / gamma))
    near = (np.array([root], dtype).view(np.int32 if dtype == np.float32 else np.int64)
            + np.arange(-3, 4)).view(dtype)
    far = np.array([-700.0, -300.0, -40.0, -8.0, -1e-3, 0.0, 1e-3, 8.0, 40.0, 300.0], dtype)
    z0 = np.concatenate([near, far])
    z = np.concatenate([z0, -z0])  # y = 1 mirrors y = 0
    y = np.concatenate([np.zeros_like(z0), np.ones_like(z0)])
    exact = [mpmath.diff(lambda w, b=b: f(w, int(b)), mpmath.mpf(float(a)), 2)
             for a, b in zip(z, y, strict=True)]
    d = symloss.derive("sigmoid_focal_loss", alpha=alpha, gamma=gamma, reduction="sum")
    n = z.size
    z, y = np.tile(z, 300), np.tile(y, 300)  # 10200 elements: several blocks of each label
    got = d.hvp_fn(z, y, np.ones_like(z))
    assert got.dtype == dtype
    assert _second_ulps(got[:n], exact, dtype).max() <= 4
    np.testing.assert_array_equal(got, np.tile(got[:n], 300))
    _, hess = symloss.objective("sigmoid_focal_loss", alpha=alpha, gamma=gamma)(z, y)
    assert _second_ulps(hess[:n], exact, dtype).max() <= 4


def test_stable_second_derivatives_are_proved():
    for name, options in [("binary_cross_entropy_with_logits", {}), ("soft_margin_loss", {}),
                          ("multilabel_soft_margin_loss", {}), ("cross_entropy", {}),
                          ("sigmoid_focal_loss", {"alpha": -1, "gamma": 0.5})]:
        d = symloss.derive(name, **options)
        assert d.declaration.stable_hessian is not None
        assert d.kernel_hessian_proved, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_hvp_does_not_cancel(dtype, evaluator):
    """hvp with v = e₀ is column 0 of the Hessian, p₀(1 − p₀) on the diagonal as p₀ → 1."""
    import mpmath

    mpmath.mp.dps = 60
    z = np.array([[40.0, 0.0, 0.0], [700.0, 1.0, -2.0], [3.0, 2.5, -1.0]], dtype)
    v = np.zeros_like(z)
    v[:, 0] = 1
    d = symloss.derive("cross_entropy", reduction="sum")
    if evaluator == "numba":  # the fused kernels print this hvp (no fallback to NumPy)
        from symloss import fast

        assert fast.build(d)._hvp_kernels() is not None, fast.last_reason
    got = d.hvp_fn(z, np.array([0, 1, 2]), v)
    exact = []
    for row in z:
        e = [mpmath.exp(mpmath.mpf(float(a))) for a in row]
        p = [x / mpmath.fsum(e) for x in e]
        exact += [p[i] * ((1 if i == 0 else 0) - p[0]) if i else p[0] * mpmath.fsum(p[1:])
                  for i in range(3)]
    assert _second_ulps(got, exact, dtype).max() <= 4


@pytest.mark.parametrize(("name", "z", "y", "v"), [
    # speed.py's draw (seed 1, element 12236): on main the evaluators' Hessians y·e^(−z) rounded
    # to neighbouring floats and v·h rounded apart again, 2 floats apart
    ("gamma_loss", 3.9272048100872223, 0.5109883248117185, 2.502480235671437),
    ("binary_cross_entropy_with_logits", 0.75, 1.0, 1.0 / 3.0),
])
def test_hvp_rounds_v_times_hessian_once(name, z, y, v):
    """An ``accurate()`` Hessian's hvp is ``accurate(h·v)``: v inside the one rounding, so each
    evaluator's result is within half an ulp (and a hair) of the exact ``v·h`` and the two are at
    most one float apart -- a float product of two once-rounded Hessians was not."""
    import mpmath

    from symloss import fast

    d = symloss.derive(name, reduction="sum")
    zs, ys, vs = (np.array([t]) for t in (z, y, v))
    got = d.hvp_fn(zs, ys, vs)[0]
    with fast.disabled():
        want = d.hvp_fn(zs, ys, vs)[0]
    with mpmath.workdps(60):
        mz, my, mv = (mpmath.mpf(float(t)) for t in (z, y, v))
        exact = mv * (my * mpmath.exp(-mz) if name == "gamma_loss"
                      else 1 / (mpmath.exp(mz) + 2 + mpmath.exp(-mz)))
        for r in (got, want):
            assert abs(mpmath.mpf(float(r)) - exact) <= 0.51 * np.spacing(abs(float(exact))), r
    assert abs(np.int64(np.float64(got).view(np.int64)) - np.float64(want).view(np.int64)) <= 1
