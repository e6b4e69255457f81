"""Gradient-boosting objectives and the boosting losses.

* Training: for every loss XGBoost or LightGBM has built in, 5 rounds with symloss's objective
  and 5 with the built-in (600 rows, one thread, fixed seeds), with and without sample
  weights: the raw margins agree within 1e-5. The cases, with the safeguard parameters spelled
  out (Poisson's max_delta_step), are the table in benchmarks/boosting.py, which prints the
  differences.
* scikit-learn's ``sklearn._loss`` gradients and Hessians agree within 1e-12 relative (of the
  terms' size, where the gradient is a difference of terms).
* The new declarations: derived, proved, finite at every finite margin, their kinks stated.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

import symloss
from symloss.boosting import BUILTINS, builtin_params

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_boosting", ROOT / "benchmarks" / "boosting.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


BENCH = _bench()
NEW = ("tweedie_loss", "gamma_loss", "pseudo_huber_loss", "quantile_loss", "log_cosh_loss")


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", BENCH.CASES, ids=lambda c: c.id)
def test_training_reproduces_the_builtin(case, weighted):
    pytest.importorskip(case.library)
    diff = BENCH.margin_difference(case, weighted)
    assert diff <= 1e-5, f"{case.id}: max |margin difference| {diff:.3g}"


def test_done_when_coverage():
    covered = {(c.library, c.loss) for c in BENCH.CASES}
    xgb = {"binary_cross_entropy_with_logits", "cross_entropy", "poisson_nll_loss", "mse_loss",
           "pseudo_huber_loss", "tweedie_loss", "gamma_loss"}
    lgb = {"binary_cross_entropy_with_logits", "cross_entropy", "poisson_nll_loss", "mse_loss",
           "tweedie_loss", "gamma_loss"}
    assert {("xgboost", n) for n in xgb} | {("lightgbm", n) for n in lgb} <= covered
    # Every reproducible built-in of the table is trained.
    for library, table in BUILTINS.items():
        for name, entry in table.items():
            assert (library, name) in covered or not entry.reproducible


@pytest.mark.parametrize("case", BENCH.CASES, ids=lambda c: c.id)
def test_builtin_params_name_the_builtin(case):
    params = builtin_params(case.loss, case.library, **case.options)
    safeguards = {"poisson_max_delta_step"}
    assert params == {k: v for k, v in case.builtin.items() if k not in safeguards}


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_without_the_multiclass_factor_training_differs(library, monkeypatch):
    # The comparison can fail: the multiclass Hessian without the library's factor (the
    # issue's 1.34 and 1.83) gives other margins.
    pytest.importorskip(library)
    import symloss.boosting as boosting

    case = next(c for c in BENCH.CASES if c.library == library and c.loss == "cross_entropy")
    entry = boosting.BUILTINS[library]["cross_entropy"]
    monkeypatch.setitem(
        boosting.BUILTINS[library], "cross_entropy",
        type(entry)(**{**entry.__dict__, "multiclass_factor": lambda k: 1.0}),
    )
    assert BENCH.margin_difference(case, weighted=False) > 0.1


@pytest.mark.parametrize("case", [c for c in BENCH.CASES if c.loss == "mse_loss"], ids=lambda c: c.id)
def test_the_old_readme_wrapper_differs_with_weights(case):
    # fn(p, d.get_label()) with the exact derivatives ignores the sample weights.
    pytest.importorskip(case.library)
    assert BENCH.margin_difference(case, weighted=True, ours="before") > 0.1


def test_weights_are_applied():
    xgb = pytest.importorskip("xgboost")
    fn = symloss.objective("mse_loss", library="xgboost")
    d = xgb.DMatrix(np.zeros((3, 1)), label=[1.0, 2.0, 3.0], weight=[1.0, 2.0, 0.5])
    grad, hess = fn(np.zeros(3, dtype=np.float32), d)
    np.testing.assert_array_equal(grad, [-1.0, -4.0, -1.5])  # ½ · 2(z − y) · w
    np.testing.assert_array_equal(hess, [1.0, 2.0, 0.5])


def test_lightgbm_multiclass_layout_and_factor():
    lgb = pytest.importorskip("lightgbm")
    fn = symloss.objective("cross_entropy", library="lightgbm")
    data = lgb.Dataset(np.zeros((2, 1)), label=[0.0, 3.0], weight=[1.0, 2.0])
    z = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, -1.0, 0.5]])
    grad, hess = fn(z, data)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    w = np.array([[1.0], [2.0]])
    np.testing.assert_allclose(grad, (p - np.eye(4)[[0, 3]]) * w, rtol=1e-15)
    np.testing.assert_allclose(hess, 4 / 3 * p * (1 - p) * w, rtol=1e-15)
    # A flat, class-major array (LightGBM < 4) gets the same numbers in its own layout.
    flat_grad, flat_hess = fn(z.T.ravel(), data)
    np.testing.assert_array_equal(flat_grad, grad.T.ravel())
    np.testing.assert_array_equal(flat_hess, hess.T.ravel())


def test_xgboost_hessian_floor():
    xgb = pytest.importorskip("xgboost")
    fn = symloss.objective("bce_with_logits", library="xgboost")
    d = xgb.DMatrix(np.zeros((2, 1)), label=[1.0, 0.0])
    _, hess = fn(np.array([80.0, 0.0], dtype=np.float32), d)
    assert hess.tolist() == [1e-16, 0.25]  # regression_loss.h: max(p(1 − p), 1e-16)
    _, exact = symloss.objective("bce_with_logits")(np.array([80.0]), np.array([1.0]))
    assert 0 < exact[0] < 1e-34  # the exact σ(z)σ(−z)


def test_quantile_uses_the_libraries_constant_hessian():
    xgb = pytest.importorskip("xgboost")
    fn = symloss.objective("quantile_loss", library="xgboost", quantile=0.3)
    d = xgb.DMatrix(np.zeros((3, 1)), label=[0.0, 0.0, 0.0], weight=[1.0, 2.0, 3.0])
    grad, hess = fn(np.array([-1.0, 0.0, 1.0]), d)
    np.testing.assert_allclose(grad, [-0.3, 1.4, 2.1], rtol=1e-15)  # at z = y: 1 − τ
    assert hess.tolist() == [1.0, 2.0, 3.0]
    assert symloss.objective("quantile_loss", quantile=0.3)(
        np.array([-1.0]), np.array([0.0]))[1].tolist() == [0.0]


@pytest.mark.parametrize(
    ("call", "exc", "message"),
    [
        (lambda: symloss.objective("mse_loss", library="catboost"), ValueError, "'xgboost'"),
        (lambda: symloss.objective("mse_loss", reduction="sum"), ValueError, "unreduced"),
        (lambda: symloss.objective("mse_loss", library="xgboost", max_delta_step=0.7),
         ValueError, "has none"),
        (lambda: symloss.objective("poisson_nll_loss", max_delta_step=0.7), TypeError,
         "library="),
        (lambda: symloss.objective("poisson_nll_loss", library="lightgbm", max_delta_step=-1),
         ValueError, "≥ 0"),
        (lambda: symloss.objective("mse_loss", library="xgboost")(np.zeros(2), np.zeros(2)),
         TypeError, "xgboost.DMatrix"),
        (lambda: builtin_params("l1_loss", "lightgbm"), ValueError, "no built-in"),
        (lambda: symloss.derive("tweedie_loss", power=2.0), ValueError, "(1, 2)"),
        (lambda: symloss.derive("quantile_loss", quantile=1.0), ValueError, "(0, 1)"),
        (lambda: symloss.derive("pseudo_huber_loss", delta=0.0), ValueError, "> 0"),
    ],
)
def test_bad_input_raises_a_clear_error(call, exc, message):
    with pytest.raises(exc) as info:
        call()
    assert isinstance(info.value, symloss.SymlossError)
    assert message in str(info.value)


# --------------------------------------------------------------------------- scikit-learn
def _sk():
    return pytest.importorskip("sklearn._loss.loss")


RNG = np.random.default_rng(0)
Z = RNG.uniform(-3, 3, 300)
Y_POS = RNG.gamma(2.0, 1.0, 300)
Y_TWEEDIE = np.where(RNG.uniform(size=300) < 0.3, 0.0, Y_POS)
Y_REAL = RNG.standard_normal(300) * 2


def _tweedie_terms(z, y, p):
    return np.exp((2 - p) * z) + y * np.exp((1 - p) * z)


SKLEARN = [
    # (loss, options, sklearn class name, its kwargs, labels, the gradient's term scale, what
    #  sklearn's Hessian is: "exact", or "constant 1" (PinballLoss))
    ("tweedie_loss", {"power": 1.3}, "HalfTweedieLoss", {"power": 1.3}, Y_TWEEDIE,
     lambda z, y: _tweedie_terms(z, y, 1.3), "exact"),
    ("tweedie_loss", {"power": 1.8}, "HalfTweedieLoss", {"power": 1.8}, Y_TWEEDIE,
     lambda z, y: _tweedie_terms(z, y, 1.8), "exact"),
    ("gamma_loss", {}, "HalfGammaLoss", {}, Y_POS, lambda z, y: 1 + y * np.exp(-z), "exact"),
    ("quantile_loss", {"quantile": 0.3}, "PinballLoss", {"quantile": 0.3}, Y_REAL,
     lambda z, y: np.ones_like(z), "constant 1"),
    ("poisson_nll_loss", {}, "HalfPoissonLoss", {}, np.round(Y_POS),
     lambda z, y: np.exp(z) + y, "exact"),
    ("bce_with_logits", {}, "HalfBinomialLoss", {}, (Y_REAL > 0).astype(float),
     lambda z, y: np.ones_like(z), "exact"),
]


@pytest.mark.parametrize(
    ("name", "options", "cls", "kwargs", "y", "scale", "hessian"), SKLEARN,
    ids=[f"{r[0]}{r[1] or ''}" for r in SKLEARN],
)
def test_against_sklearn(name, options, cls, kwargs, y, scale, hessian):
    loss = getattr(_sk(), cls)(**kwargs)
    d = symloss.derive(name, reduction="none", **options)
    grad, hess = loss.gradient_hessian(y_true=y, raw_prediction=Z)
    tol = 1e-12 * scale(Z, y)
    np.testing.assert_array_less(np.abs(d.grad_fn(Z, y) - grad), tol + 1e-300)
    if hessian == "exact":
        np.testing.assert_allclose(d.hess_diag_fn(Z, y), hess, rtol=1e-12, atol=0)
    else:  # PinballLoss takes the constant 1, as XGBoost and LightGBM; the exact one is 0
        assert np.all(hess == 1) and np.all(d.hess_diag_fn(Z, y) == 0)
    if name not in NEW:  # torch's poisson_nll_loss has no y log y − y term
        return
    # The values: sklearn drops the terms free of the margin from loss(); with them
    # (constant_to_optimal_zero) it is the half deviance declared here.
    value = loss.loss(y_true=y, raw_prediction=Z) + loss.constant_to_optimal_zero(y_true=y)
    np.testing.assert_allclose(d.loss_fn(Z, y), value, rtol=1e-12, atol=1e-12 * np.max(value))


def test_sklearn_half_squared_error_and_multinomial():
    sk = _sk()
    g, h = sk.HalfSquaredError().gradient_hessian(y_true=Y_REAL, raw_prediction=Z)
    d = symloss.derive("mse_loss", reduction="none")
    np.testing.assert_allclose(d.grad_fn(Z, Y_REAL) / 2, g, rtol=1e-15)  # ½ r²: half of mse
    np.testing.assert_allclose(d.hess_diag_fn(Z, Y_REAL) / 2, h, rtol=1e-15)
    z = RNG.standard_normal((50, 4))
    t = RNG.integers(0, 4, 50)
    g, h = sk.HalfMultinomialLoss(n_classes=4).gradient_hessian(
        y_true=t.astype(float), raw_prediction=z)
    grad, hess = symloss.objective("cross_entropy")(z, t)
    np.testing.assert_allclose(grad, g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, h, rtol=1e-12, atol=1e-15)


def test_log_cosh_and_pseudo_huber_against_mpmath():
    mpmath.mp.dps = 50
    r = np.array([-1e300, -800.0, -30.0, -1.0, -1e-8, 0.0, 1e-8, 0.5, 3.0, 40.0, 1e6, 1e300])
    y = np.zeros_like(r)
    cases = [
        ("log_cosh_loss", {}, lambda v: mpmath.log(mpmath.cosh(v)), mpmath.tanh,
         lambda v: mpmath.sech(v) ** 2),
        ("pseudo_huber_loss", {"delta": 2.0},
         lambda v: 4 * (mpmath.sqrt(1 + (v / 2) ** 2) - 1),
         lambda v: v / mpmath.sqrt(1 + (v / 2) ** 2),
         lambda v: (1 + (v / 2) ** 2) ** mpmath.mpf(-1.5)),
    ]
    for name, options, f, g, h in cases:
        d = symloss.derive(name, reduction="none", **options)
        got = (d.loss_fn(r, y), d.grad_fn(r, y), d.hess_diag_fn(r, y))
        for fn, values in zip((f, g, h), got, strict=True):
            exact = np.array([float(fn(mpmath.mpf(v))) for v in r])
            assert np.all(np.isfinite(values)), name
            # the loss's log 2 constant may leave 1e-16 absolute near 0
            np.testing.assert_allclose(values, exact, rtol=4e-16, atol=1e-16, err_msg=name)


# --------------------------------------------------------------------------- declarations
@pytest.mark.parametrize("name", NEW)
def test_new_losses_are_derived_and_proved(name):
    d = symloss.derive(name)
    assert d.proved and d.kernel_proved
    assert d.hessian_proved and d.kernel_hessian_proved
    assert all(step.checked is not False for step in d.steps + d.hessian_steps)
    assert not d.spec.has_torch_twin


@pytest.mark.parametrize(
    ("name", "options", "y"),
    [("tweedie_loss", {"power": 1.5}, [0.0, 2.0]), ("tweedie_loss", {"power": 1.05}, [0.0, 2.0]),
     ("gamma_loss", {}, [1e-300, 2.0]), ("pseudo_huber_loss", {"delta": 0.1}, [0.0, -3.0]),
     ("quantile_loss", {"quantile": 0.9}, [0.0, 5.0]), ("log_cosh_loss", {}, [0.0, 1e300])],
)
def test_finite_wherever_the_exact_value_is(name, options, y):
    # Margins over the whole float64 range; the derivatives are finite wherever the exact
    # value is (Tweedie's and Gamma's grow like e^(cz): there, finite below the overflow).
    d = symloss.derive(name, reduction="none", **options)
    big = np.array([-1e308, -1e30, -700.0, -100.0, 0.0, 100.0, 700.0, 1e30, 1e308])
    for label in y:
        t = np.full_like(big, label)
        grad, hess = d.grad_fn(big, t), d.hess_diag_fn(big, t)
        assert not np.any(np.isnan(grad)) and not np.any(np.isnan(hess)), (label, grad, hess)
        if name in ("pseudo_huber_loss", "quantile_loss", "log_cosh_loss"):
            assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))
        elif label == 0.0:  # Tweedie, y = 0: e^((2−ρ)z), 0 (not nan) where e^((1−ρ)z) overflows
            assert grad[0] == 0.0 and hess[0] == 0.0
        else:  # moderate margins stay finite
            assert np.all(np.isfinite(grad[2:-2])) and np.all(np.isfinite(hess[2:-2]))


def test_tweedie_small_target_where_only_the_exponential_overflows():
    # y e^((1−ρ)z) with e^((1−ρ)z) = e^750 beyond float64 but y e^750 = 1e-200 e^750 finite.
    d = symloss.derive("tweedie_loss", reduction="none", power=1.5)
    grad = d.grad_fn(np.array([-1500.0]), np.array([1e-200]))
    exact = -1e-200 * mpmath.exp(750)
    assert np.isfinite(grad[0])
    assert abs(grad[0] - float(exact)) <= 1e-12 * abs(float(exact))


def test_quantile_kink_side_of_each_library():
    # symloss, XGBoost and LightGBM take the right-hand 1 − τ at z = y (their sources: d ≥ 0);
    # scikit-learn's PinballLoss the left-hand −τ. Both are in the subdifferential [−τ, 1 − τ].
    d = symloss.derive("quantile_loss", reduction="none", quantile=0.3)
    (kink,) = d.declaration.kinks
    assert kink.convention == "right"
    assert d.grad_fn(np.array([0.0]), np.array([0.0])).tolist() == [0.7]
    sk = _sk().PinballLoss(quantile=0.3).gradient(y_true=np.array([0.0]),
                                                   raw_prediction=np.array([0.0]))
    assert sk.tolist() == [-0.3]


def test_quantile_kink_states_both_sides():
    d = symloss.derive("quantile_loss", quantile=0.25)
    (kink,) = d.declaration.kinks
    assert "−τ (from the left)" in kink.why and "1 − τ (from the" in kink.why
    z = np.array([0.0, -1e-300, 1e-300])
    assert d.grad_fn(z, np.zeros(3)).tolist() == [0.75 / 3, -0.25 / 3, 0.75 / 3]


@pytest.mark.parametrize("name", NEW)
def test_no_torch_twin_is_a_clear_error(name):
    from symloss.testing import check

    with pytest.raises(symloss.SymlossValueError, match="no torch twin"):
        check(symloss.derive(name))


def _torch_implementations():
    """Straightforward torch versions of the boosting losses, for the checker."""
    import torch

    def tweedie(z, y, rho=1.5):
        return (y ** (2 - rho) / ((1 - rho) * (2 - rho)) - y * torch.exp((1 - rho) * z) / (1 - rho)
                + torch.exp((2 - rho) * z) / (2 - rho)).mean()

    def gamma(z, y):
        return (z - torch.log(y) + y * torch.exp(-z) - 1).mean()

    def pseudo_huber(z, y):  # delta = 1, √(1 + r²) − 1 as r²/(1 + √(1 + r²))
        r = z - y
        return (r * r / (1 + torch.sqrt(1 + r * r))).mean()

    def quantile(z, y, tau=0.5):
        return torch.where(z >= y, (1 - tau) * (z - y), tau * (y - z)).mean()

    def log_cosh(z, y):
        r = z - y
        return (r + torch.nn.functional.softplus(-2 * r, threshold=1e9)
                - torch.log(torch.tensor(2.0, dtype=z.dtype))).mean()

    return {"tweedie_loss": tweedie, "gamma_loss": gamma, "pseudo_huber_loss": pseudo_huber,
            "quantile_loss": quantile, "log_cosh_loss": log_cosh}


@pytest.mark.parametrize("name", NEW)
def test_check_with_an_implementation(name):
    # The checker's battery reads the declarations: AMOUNTS (zeros included) for Tweedie,
    # POSITIVE for Gamma, elements on the pinball kink (either one-sided derivative accepted).
    pytest.importorskip("torch")
    from symloss.testing import assert_grad_matches

    fn = _torch_implementations()[name]
    assert assert_grad_matches(name, fn, domain=(-20.0, 20.0)).ok


def test_check_catches_a_wrong_implementation():
    torch = pytest.importorskip("torch")
    from symloss.testing import assert_grad_matches

    def gamma_without_half(z, y):  # the full deviance: twice the loss
        return 2 * (z - torch.log(y) + y * torch.exp(-z) - 1).mean()

    with pytest.raises(AssertionError, match="disagrees"):
        assert_grad_matches("gamma_loss", gamma_without_half, domain=(-20.0, 20.0))


# --------------------------------------------------------------------------- command line
def test_cli_check_without_a_twin_is_a_usage_error(capsys):
    pytest.importorskip("torch")
    from symloss.cli import main

    assert main(["check", "tweedie_loss"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no torch twin" in err and "--impl" in err


def test_cli_check_with_an_implementation(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from symloss.cli import main

    (tmp_path / "my_losses.py").write_text(
        "import torch\n\n\n"
        "def log_cosh(z, y):\n"
        "    r = z - y\n"
        "    return (r + torch.nn.functional.softplus(-2 * r, threshold=1e9)"
        " - torch.log(torch.tensor(2.0, dtype=z.dtype))).mean()\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["check", "log_cosh", "--impl", "my_losses:log_cosh", "--domain", "-20", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "agrees" in out


@pytest.mark.parametrize(
    ("argv", "shown"),
    [(["derive", "tweedie", "--power", "1.2", "--format", "text"], "power=1.2"),
     (["derive", "quantile_loss", "--quantile", "0.9", "--format", "text"], "Kink"),
     (["derive", "pseudo_huber_loss", "--delta", "2", "--order", "2", "--format", "text"],
      "proved")],
)
def test_cli_derive_takes_the_new_options(argv, shown, capsys):
    from symloss.cli import main

    assert main(argv) == 0
    assert shown in capsys.readouterr().out


@pytest.mark.parametrize(("power", "z", "y"), [(1.001, 708.3960000000005, 0.0),
                                                 (1.999, -708.3960000000005, 0.5),
                                                 (1.1, 786.0, 0.0), (1.3, 1000.0, 3.0),
                                                 (1.7, -1000.0, 3.0), (1.5, 1400.0, 2.0)])
@pytest.mark.parametrize("size", [1, 4096])
def test_tweedie_hessian_is_exact_where_its_terms_pass_2_to_the_996(power, z, y, size):
    """The Hessian (2 − ρ)e^((2−ρ)z) + (ρ − 1)y e^((1−ρ)z) in double-double multiplies a pair
    above 2⁹⁹⁶ (e^700 ≈ 1e304), whose Dekker split overflowed: the plain form answered, its
    exponent (2 − ρ)z rounded (379 ulp at ρ = 1.001, z = 708.396, found by the variant
    search next to the ends of ρ's interval). ddouble.t_prod scales such an operand: within
    1 ulp, the gradient too, on both evaluators and both sides of the compiled kernels'
    size switch."""
    import contextlib

    from symloss import fast

    mpmath.mp.dps = 60
    r, zz, yy = mpmath.mpf(power), mpmath.mpf(z), mpmath.mpf(y)
    grad = mpmath.exp((2 - r) * zz) - yy * mpmath.exp((1 - r) * zz)
    hess = (2 - r) * mpmath.exp((2 - r) * zz) - (1 - r) * yy * mpmath.exp((1 - r) * zz)
    d = symloss.derive("tweedie_loss", reduction="sum", power=power)
    x, t = np.full(size, z), np.full(size, y)
    for path in ("fast", "numpy"):
        with (fast.disabled() if path == "numpy" else contextlib.nullcontext()):
            got_g = d.grad_fn(x, t)
            got_h = d.hvp_fn(x, t, np.ones(size))
        for got, want in ((got_g, grad), (got_h, hess)):
            assert np.all(got == got[0]), path
            ulps = abs(mpmath.mpf(float(got[0])) - want) / np.spacing(float(want))
            assert ulps <= 1, (path, power, z, float(got[0]), float(want), float(ulps))
