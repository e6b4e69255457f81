"""benchmarks/accuracy.py runs, and finds symloss at least as accurate as torch (exit 0)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("mpmath")

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("flags", [["--quick", "--no-search"], ["--quick", "--numpy-path", "--no-search"]])
def test_accuracy_quick_run_passes(flags, capsys):
    accuracy = _load("accuracy")
    assert accuracy.main(flags) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "| cross_entropy | float32 | hard |" in out
    assert "LESS accurate" not in out


def test_accuracy_search_passes_where_the_goal_is_met(capsys):
    """The adversarial search: losses without a transcendental difference meet 4 ulp (exit 0)."""
    accuracy = _load("accuracy")
    assert accuracy.main(["--quick", "--only", "mse_loss", "huber_loss"]) == 0
    out = capsys.readouterr().out
    assert "| mse_loss | float64 | hvp | numpy |" in out and "ABOVE" not in out
    assert accuracy.main(["--quick", "--no-search"]) == 0
    capsys.readouterr()


def test_search_finds_the_cancellation_next_to_a_root():
    import mpmath
    import numpy as np

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    case = accuracy._Case("binary_cross_entropy_with_logits", {}, "float64")
    # torch's σ(z) − y in float64, evaluated the naive way, as a stand-in evaluator
    with np.errstate(over="ignore"):
        case.symloss = lambda order, e, x, y, v: 1 / (1 + np.exp(-x)) - y  # type: ignore[method-assign]
        worst = accuracy.search(case, 1, ["naive"], quick=True)
    assert worst["naive"][0] > 1e6, worst  # the search lands next to σ(z) = y


def test_exact_reference_is_not_fooled_by_cancellation():
    import mpmath
    import numpy as np

    import symloss

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    d = symloss.derive("bce_with_logits", reduction="sum")
    exact = accuracy.exact_gradient(d)(np.array([1e4, -1e4]), np.array([1.0, 0.0]))
    # σ(1e4) − 1 = −e^{−1e4}: far below float range, still exact in mpmath
    assert mpmath.almosteq(exact[0], -mpmath.exp(-10000), rel_eps=mpmath.mpf(10) ** -50)
    assert mpmath.almosteq(exact[1], mpmath.exp(-10000), rel_eps=mpmath.mpf(10) ** -50)


def test_exact_reference_sums_the_other_classes_target_weights():
    """pᵢΣa − aᵢ with aᵢ = 2.55e303 (a class weight near the largest float, label smoothing
    0.1) and the other classes' a summing to 0.147: Σa − aᵢ at 60 digits was 0, and the
    reference −3.9e-131 for 0.147 (z = [1000, 0, 0, 0], target 0). Summed over the other
    classes it keeps them."""
    import mpmath
    import numpy as np

    import symloss

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    w = np.array([2.7575050914502084e303, 1.843e-320, 2.096424397223309e-302,
                  5.8717398113748835])
    d = symloss.derive("cross_entropy", reduction="sum", weight=w, label_smoothing=0.1)
    exact = accuracy.exact_gradient(d)(np.array([[1000.0, 0.0, 0.0, 0.0]]), np.array([0]))
    with mpmath.workdps(1200):
        others = mpmath.fsum(mpmath.mpf(float(a)) for a in w[1:]) * mpmath.mpf(0.1) / 4
        p0 = 1 / (1 + 3 * mpmath.exp(-1000))
        a0 = mpmath.mpf(float(w[0])) * (mpmath.mpf(0.9) + mpmath.mpf(0.1) / 4)
        want = p0 * others - a0 * (1 - p0)
    assert mpmath.almosteq(exact[0, 0], want, rel_eps=mpmath.mpf(10) ** -40)


def test_search_covers_losses_of_further_arrays(capsys):
    """margin_ranking_loss (input1, input2, target): every order, both evaluators, no longer
    "not searched"; its hinge is exact to the last bit (exit 0)."""
    accuracy = _load("accuracy")
    assert accuracy.main(["--quick", "--only", "margin_ranking_loss"]) == 0
    out = capsys.readouterr().out
    for order in ("loss", "grad", "hvp"):
        assert f"| margin_ranking_loss | float64 | {order} | numpy |" in out
    assert "not searched" not in out and "ABOVE" not in out
    assert "| margin_ranking_loss | float32 | - | 0 |" in out  # the grid says it does not measure it
    assert "NOT MEASURED by the grid" in out


def test_search_covers_row_losses():
    """multilabel_margin_loss (the row family): the quick search measures value, gradient and
    HVP on the NumPy evaluator and finds them within the goal."""
    import mpmath

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    case = accuracy._Case("multilabel_margin_loss", {}, "float64")
    for order in accuracy.ORDERS:
        worst, where, points = accuracy.search_multi(case, order, ["numpy"], quick=True)["numpy"]
        assert points > 100 and "target=" in where
        assert worst <= accuracy.GOAL_ULP, (order, worst, where)


def test_exact_row_reference_is_not_fooled_by_cancellation():
    """1 − cos of equal rows is ε/(|a|² + ε) (aten's ε added to each squared norm): about
    10⁻⁷² for |a| ≈ 10³⁰, below 60 digits; the reference raises its precision until it
    settles."""
    import mpmath
    import numpy as np

    import symloss

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    d = symloss.derive("cosine_embedding_loss", reduction="none")
    a = np.array([[1.0, 2.0, 3.0], [1e30, 2e30, 3e30]])
    got = accuracy.exact(d, "loss")([a, a, np.array([1.0, 1.0])])
    eps = mpmath.mpf(float(np.float32(1e-12)))
    for row, value in zip(a, got, strict=True):
        s = mpmath.fsum(mpmath.mpf(float(t)) ** 2 for t in row)
        assert mpmath.almosteq(value, eps / (s + eps), rel_eps=mpmath.mpf(10) ** -30)


def test_speed_quick_run_prints_every_table(capsys):
    """benchmarks/speed.py in reduced form: one loss, both dtypes, and the summary row."""
    speed = _load("speed")
    assert speed.main(["--quick", "--only", "mse_loss", "--sizes", "100"]) == 0
    out = capsys.readouterr().out
    assert "| float32 | 1e+02 |" in out and "| float64 | 1e+02 |" in out
    assert "### Summary: worst over every size and dtype" in out
    assert "| mse_loss |" in out.split("### Summary")[1]


def test_speed_without_first_call_says_so(capsys):
    """--no-first-call starts no fresh process and prints that the first call was not timed."""
    speed = _load("speed")
    called = []
    real = speed.first_call
    speed.first_call = lambda *a, **k: called.append(a) or real(*a, **k)
    try:
        assert speed.main(["--quick", "--only", "mse_loss", "--sizes", "100",
                           "--no-first-call"]) == 0
    finally:
        speed.first_call = real
    out = capsys.readouterr().out
    assert not called
    assert "first call not timed (--no-first-call)" in out
    row = next(line for line in out.split("### Summary")[1].splitlines()
               if line.startswith("| mse_loss |"))
    assert row.endswith("| – | – |"), row


def test_speed_cpu_clock_leaves_out_waiting():
    """The 1-thread columns read the process's CPU seconds: a call that waits (here: sleeps,
    as a preempted one waits for a CPU) reads its work, not its wait; the wall clock reads both."""
    import time

    speed = _load("speed")
    fns = {"waits": lambda: time.sleep(0.02), "works": lambda: sum(range(200_000))}
    cpu = speed._measure(fns, 3, "cpu")
    wall = speed._measure(fns, 3, "wall")
    assert cpu["waits"] < 0.005 <= 0.02 <= wall["waits"]
    assert cpu["works"] > 0 and wall["works"] > 0


def test_speed_entries_time_class_probabilities_too():
    """A class-axis loss that takes class probabilities is timed with them as well."""
    speed = _load("speed")
    assert speed.entries(["cross_entropy", "nll_loss", "mse_loss"]) == [
        "cross_entropy", "cross_entropy:soft", "cross_entropy:weight", "cross_entropy:weight:soft",
        "cross_entropy:ignore_index", "cross_entropy:label_smoothing",
        "cross_entropy:label_smoothing:soft", "nll_loss", "nll_loss:weight",
        "nll_loss:ignore_index", "mse_loss"]
    # a name with its options is timed as given, once
    assert speed.entries(["cross_entropy:weight", "cross_entropy:weight"]) == [
        "cross_entropy:weight"]


@pytest.mark.parametrize(("name", "words"), [
    ("binary_cross_entropy_with_logits:weight",
     "'binary_cross_entropy_with_logits:weight' is not an entry of "
     "binary_cross_entropy_with_logits; its entries: binary_cross_entropy_with_logits:soft"),
    ("cross_entropy:wieght", "its entries: cross_entropy:soft, cross_entropy:weight,"),
    ("mse_loss:soft", "none: mse_loss is timed as plain 'mse_loss' only"),
    ("bce", "unknown loss 'bce' in 'bce'; valid: binary_cross_entropy,"),
])
def test_speed_rejects_an_entry_it_cannot_time_in_one_line(name, words, capsys):
    """An entry typed by hand that speed.py has no inputs for exits 2 with one line naming it
    and the valid entries (it was a traceback from deep in the bookkeeping: 'weight of shape
    (10,) does not broadcast to the input's shape (100,)')."""
    speed = _load("speed")
    with pytest.raises(SystemExit) as stop:
        speed.main(["--only", name, "--sizes", "100"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert speed.entry_error("cross_entropy:weight:soft") is None


@pytest.mark.parametrize("name", ["cross_entropy:weight", "cross_entropy:weight:soft",
                                  "cross_entropy:label_smoothing",
                                  "cross_entropy:label_smoothing:soft",
                                  "cross_entropy:ignore_index", "nll_loss:weight",
                                  "nll_loss:ignore_index", "multilabel_soft_margin_loss:weight"])
def test_speed_option_entries_time_their_options(name):
    """An option entry derives with its option (weights, ε) and its arrays (ignored labels),
    and torch's twin, given the same options, agrees on the loss."""
    import numpy as np
    import torch

    import symloss

    speed = _load("speed")
    opts = speed.entry_options(name, "float64")
    tag = name.split(":")[1]
    d = symloss.derive(name.split(":")[0], reduction="mean", **opts)
    arrays = speed.inputs(name, 1000, "float64")
    if tag == "ignore_index":
        assert opts == {} and 0.05 < np.mean(arrays[1] == -100) < 0.15
    else:
        assert set(opts) == {tag}
        assert np.ptp(opts["weight"]) > 0 if tag == "weight" else opts[tag] == 0.1
    ours = d.loss_fn(*arrays)
    theirs = speed.torch_loss(d)(*(torch.from_numpy(a) for a in arrays))
    np.testing.assert_allclose(ours, theirs.item(), rtol=1e-12)


@pytest.mark.parametrize("name", ["cross_entropy", "cross_entropy:soft", "gaussian_nll_loss",
                                  "margin_ranking_loss", "multilabel_soft_margin_loss",
                                  "binary_cross_entropy", "cosine_embedding_loss",
                                  "multilabel_margin_loss", "triplet_margin_loss"])
def test_speed_inputs_are_valid_for_symloss_and_torch(name):
    """The benchmark's arrays are valid for the loss, and torch's twin takes them."""
    import numpy as np
    import torch

    import symloss

    speed = _load("speed")
    d = symloss.derive(name.removesuffix(":soft"))
    arrays = speed.inputs(name, 100, "float64")
    ours = d.loss_fn(*arrays)
    theirs = speed.torch_loss(d)(*(torch.from_numpy(a) for a in arrays))
    np.testing.assert_allclose(ours, theirs.item(), rtol=1e-12)


@pytest.mark.parametrize("name", [n for n in __import__("symloss").losses()
                                  if not __import__("symloss").derive(n).spec.has_torch_twin])
def test_losses_torch_lacks_are_timed_against_their_declared_formula(name):
    """A loss torch does not have (the boosting losses) is timed against autograd of its
    declared formula in torch operations: that baseline computes the same loss and gradient."""
    import numpy as np
    import torch

    import symloss

    speed = _load("speed")
    d = symloss.derive(name, reduction="mean")
    arrays = speed.inputs(name, 100, "float64")
    leaf = torch.from_numpy(arrays[0]).requires_grad_()
    theirs = speed.torch_loss(d)(leaf, *(torch.from_numpy(a) for a in arrays[1:]))
    theirs.backward()
    np.testing.assert_allclose(d.loss_fn(*arrays), theirs.item(), rtol=1e-12)
    np.testing.assert_allclose(d.grad_fn(*arrays), leaf.grad.numpy(), rtol=1e-10, atol=1e-300)


def test_variant_search_resumes_at_a_slice_of_option_sets(capsys):
    """``--sets START:STOP`` picks a loss's option sets by their number in option_variants'
    order (a search cut short, resumed); anything else is a one-line usage error."""
    accuracy = _load("accuracy")
    assert accuracy.set_slice("30:") == slice(30, None)
    assert accuracy.set_slice("3") == slice(3, 4)
    every = accuracy.option_variants("sigmoid_focal_loss")
    assert every[accuracy.set_slice("38:")] == every[38:] and len(every[38:]) == 2
    with pytest.raises(SystemExit) as stop:
        accuracy.main(["--variants-only", "--sets", "thirty"])
    assert stop.value.code == 2
    assert "--sets takes START:STOP" in capsys.readouterr().err


def test_option_variants_are_read_from_the_declarations():
    """The variant search's option sets come from each loss's declared options: every choice,
    array options given or not, continuous ones at their default, declared examples and the
    stress values for their kind; all combinations when few (focal's alpha × gamma: the
    float64 gradient at gamma=5, alpha=0.75 the defaults-only search never visited)."""
    from symloss.catalog import CATALOG
    from symloss.spec import Option

    accuracy = _load("accuracy")
    focal = accuracy.option_variants("sigmoid_focal_loss")
    assert {"alpha": 0.75, "gamma": 5.0} in focal and {"alpha": -1.0, "gamma": 0.5} in focal
    assert {"reduction": "mean"} in focal
    ce = accuracy.option_variants("cross_entropy")
    for combo in ({"label_smoothing": 0.1}, {"label_smoothing": 0.9},
                  {"weight": accuracy.GIVEN, "ignore_index": 1},
                  {"reduction": "mean", "weight": accuracy.GIVEN}):
        assert combo in ce, combo
    assert {"log_target": True} in accuracy.option_variants("kl_div")
    assert {"reduction": "batchmean"} in accuracy.option_variants("kl_div")
    assert {"margin": 0.0} in accuracy.option_variants("hinge_embedding_loss")
    assert {"beta": 1e-6} in accuracy.option_variants("smooth_l1_loss")
    assert {"log_input": False, "full": True} in accuracy.option_variants("poisson_nll_loss")
    # more combinations than the cap: each option's values one at a time
    triplet = accuracy.option_variants("triplet_margin_loss")
    assert all(len(c) == 1 for c in triplet) and {"swap": True} in triplet
    # every value tried is the default, a choice, a declared example or a stress value
    for name, spec in CATALOG.items():
        for opt in spec.options:
            if opt.name == "reduction":
                continue
            allowed = [opt.default, *(opt.choices or ()), *opt.examples,
                       *accuracy.STRESS.get(opt.kind, ()), accuracy.GIVEN,
                       accuracy.GIVEN_EXTREME]
            values = accuracy.option_values(opt)
            if opt.interval is not None:  # inside the declared interval, and next to its ends
                lo, hi = opt.interval
                ends = [lo + accuracy.INTERVAL_END * (hi - lo), hi - accuracy.INTERVAL_END * (hi - lo)]
                assert all(lo < v < hi for v in values) and set(ends) <= set(values), (name, values)
                allowed += ends
            assert all(v in allowed for v in values), (name, opt.name)
            for v in values if opt.kind != "array" else ():  # the loss accepts each value
                spec.validate({opt.name: v})
    # tweedie's power is declared in (1, 2): 0, -1 and 1000 (kind "real"'s stress) are not
    # searched (the loss refuses them), 1.001 and 1.999 are
    power = [c["power"] for c in accuracy.option_variants("tweedie_loss") if "power" in c]
    assert power == [1.1, 1.9, 1.0 + accuracy.INTERVAL_END, 2.0 - accuracy.INTERVAL_END]
    # a new option is searched without any list to edit
    new = Option("tau", 0.5, "a new option", kind="positive", examples=(2.0,))
    assert accuracy.option_values(new) == [0.5, 2.0, *accuracy.STRESS["positive"]]


def test_variant_search_draws_extreme_weights_mixed_within_an_array():
    """Every array option is also searched with weights from the ends of the dtype's range
    (near its largest finite number, just above its smallest normal one, subnormal, and
    moderate) mixed within the array: one per class (4 classes, one of each), or one per
    element of each call's input for a weight broadcast along the last axis, which the exact
    value and both evaluators read (binary_cross_entropy's weighted gradient at such a weight:
    the search had drawn weights only from [0.1, 3])."""
    import mpmath
    import numpy as np

    import symloss
    from symloss.catalog import resolve

    accuracy = _load("accuracy")
    mpmath.mp.dps = 60
    assert accuracy.option_values(resolve("cross_entropy")[0].option("weight")) == [
        None, accuracy.GIVEN, accuracy.GIVEN_EXTREME]
    for dtype in ("float32", "float64"):
        fi = np.finfo(dtype)
        ce = accuracy._Case("cross_entropy", {"weight": accuracy.GIVEN_EXTREME}, dtype)
        w = ce.d.options["weight"]
        assert ce.classes == 4 and w.shape == (4,)
        assert w.max() > fi.max / 2.0**65 and fi.tiny <= np.sort(w)[1] < fi.tiny * 2.0**65
        assert 0 < w.min() < fi.tiny and np.all(w.astype(dtype) == w)
        bce = accuracy._Case("binary_cross_entropy", {"weight": accuracy.GIVEN_EXTREME}, dtype)
        assert bce.laid == ["weight"]
        x = np.linspace(0.01, 0.99, 40).astype(dtype)
        y = np.full(40, 0.25, dtype)
        laid = bce.given_for(x)["weight"]
        assert laid.shape == x.shape and len(np.unique(np.log2(laid) // 64)) >= 4
        # the exact gradient reads the laid-out weights: w·(p − y)/(p(1 − p))
        grad = bce.truth[1](x, y, **bce.given_for(x))
        want = [mpmath.mpf(float(c)) * (mpmath.mpf(float(p)) - mpmath.mpf(float(t)))
                / (mpmath.mpf(float(p)) * (1 - mpmath.mpf(float(p))))
                for c, p, t in zip(laid, x, y, strict=True)]
        assert all(abs(g - e) <= abs(e) * mpmath.mpf(2) ** -150 for g, e in zip(grad, want,
                                                                              strict=True))
        direct = symloss.derive("binary_cross_entropy", reduction="sum", weight=laid)
        np.testing.assert_array_equal(bce.symloss(1, "numba", x, y, None), direct.grad_fn(x, y))


def test_mean_denominator_is_torchs():
    """reduction='mean': the exact gradient is over torch's denominator (the weights of the
    labels not ignored for class indices, the samples for probabilities, n element-wise)."""
    import numpy as np
    import torch

    accuracy = _load("accuracy")
    case = accuracy._Case("cross_entropy", {"reduction": "mean", "weight": accuracy.GIVEN,
                                            "ignore_index": 1}, "float64")
    w = case.d.options["weight"]
    x = np.zeros((4, 3))
    labels = np.array([0, 1, 2, 2])
    assert accuracy._mean_denominator(case, [x, labels]) == w[0] + 2 * w[2]
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.cross_entropy(xt, torch.tensor(labels), weight=torch.tensor(w),
                                      ignore_index=1, reduction="sum").backward()
    per_sum = xt.grad.numpy().copy()
    xt.grad = None
    torch.nn.functional.cross_entropy(xt, torch.tensor(labels), weight=torch.tensor(w),
                                      ignore_index=1, reduction="mean").backward()
    np.testing.assert_allclose(per_sum / accuracy._mean_denominator(case, [x, labels]),
                               xt.grad.numpy(), rtol=1e-14)
    assert accuracy._mean_denominator(case, [x, np.full((4, 3), 1 / 3)]) == 4.0
    mse = accuracy._Case("mse_loss", {"reduction": "mean"}, "float32")
    assert accuracy._mean_denominator(mse, [np.zeros(7), np.zeros(7)]) == 7.0


def test_variant_search_reports_each_option_set(capsys):
    """--variants-only: a row per option set with its options, the worst over them per loss
    in a table whose header tables.py does not take for the defaults' summary; exit 0 where
    every variant meets the goal."""
    accuracy = _load("accuracy")
    assert accuracy.main(["--variants-only", "--only", "huber_loss"]) == 0
    out = capsys.readouterr().out
    for opts in ("delta=1e-06", "delta=1000", "delta=0.5", "reduction=mean"):
        assert f"| huber_loss | {opts} | float64 | grad | numba |" in out, opts
    assert "| loss | option sets | float32 loss |" in out
    assert "| loss | float32 loss |" not in out and "ABOVE" not in out
    assert "| huber_loss | reduction=mean | float64 | loss |" not in out  # loss: reduction='none'


def test_variant_search_finds_an_error_only_a_variant_shows():
    """An evaluator wrong only away from the default option (here: off by 1e-12 relative
    where delta ≠ 1) is caught by the variant's search and not by the defaults'."""
    import mpmath
    import numpy as np

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    for opts, caught in (({}, False), ({"delta": 1e-6}, True)):
        case = accuracy._Case("huber_loss", opts, "float64")
        honest = case.symloss

        def skewed(order, e, x, y, v, honest=honest, case=case):
            out = honest(order, e, x, y, v)
            return out * (1 + 1e-12) if case.d.options["delta"] != 1.0 else out

        case.symloss = skewed  # type: ignore[method-assign]
        worst = accuracy.search(case, 1, ["numpy"], quick=True)["numpy"][0]
        assert (worst > accuracy.GOAL_ULP) == caught, (opts, worst)
        assert np.isfinite(worst)


def test_value_search_visits_the_loss_minimum():
    """For the loss value the search also bisects the gradient's roots: the minimum, where a
    loss that is 0 there (tweedie's y^(2−ρ)/((1−ρ)(2−ρ)) + e^((2−ρ)z)/(2−ρ) − y e^((1−ρ)z)/(1−ρ)
    at z = log y) is a difference of nearly equal terms; and |z| down to 10⁻³⁰⁰."""
    import math

    import mpmath
    import numpy as np

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    case = accuracy._Case("tweedie_loss", {}, "float64")
    x, y = accuracy._elementwise_points(case, 0, True, np.random.default_rng(0))
    assert np.any((x == math.log(0.5)) & (y == 0.5))
    assert np.any(x == 1e-300) and np.any(x == -1e-300)


def test_exact_reference_keeps_tiny_inputs():
    """At z = 10⁻³⁰⁰ the reference raises its digits: huber's |y − z| < δ for y = δ = 1 (at 60
    digits 1 − 10⁻³⁰⁰ is 1, and the Hessian came out 0), tweedie's value z²/2 at its minimum."""
    import mpmath
    import numpy as np

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    huber = accuracy._Case("huber_loss", {}, "float64")
    assert huber.truth[2](np.array([1e-300]), np.array([1.0]), np.ones(1))[0] == 1
    tweedie = accuracy._Case("tweedie_loss", {}, "float64")
    got = tweedie.truth[0](np.array([1e-100]), np.array([1.0]))[0]
    assert mpmath.almosteq(got, mpmath.mpf(1e-100) ** 2 / 2, rel_eps=mpmath.mpf(10) ** -30)


def test_time_limit_is_reported_and_fails_the_run(capsys):
    """An option set cut short by --set-limit is printed as such, with what it found so far
    (streamed as the set finishes), and the run exits 1: never dropped, never a pass."""
    accuracy = _load("accuracy")
    # 1 ms: far less than one order's search takes, even with every cache warm (at 0.05 s a
    # warm mse_loss finished its first order, and the test depended on the caches)
    assert accuracy.main(["--variants-only", "--only", "huber_loss", "--max-variants", "0",
                          "--set-limit", "0.001"]) == 1
    out = capsys.readouterr().out
    assert "TIME LIMIT (0.001 CPU s) reached" in out
    assert "not finished" in out  # the summary table says it, not a number that passes
    rows = accuracy.run_search(True, ["mse_loss"], limit=0.001)
    cut = [r for r in rows if r.get("time_limit")]
    assert cut and all(accuracy._not_met(r) for r in cut)
    # the defaults' table names the time limit, not a failed exact value, for the orders cut
    table = accuracy.search_table(rows)
    assert "TIME LIMIT (0.001 CPU s) reached" in table
    assert "the exact value failed" not in table


def test_time_limit_is_not_lost_when_a_finaliser_swallows_its_raise():
    """The timer's exception is raised at whatever bytecode runs next, which may be a weakref
    finaliser's (its exception only printed: a CI run once finished a 1 ms search that way).
    The deadline raises again while the block runs, and at its exit if every raise was lost."""
    import time

    accuracy = _load("accuracy")

    def burn(seconds, swallow, lost):
        """CPU work for ``seconds`` that loses the first ``swallow`` raises (counted in
        ``lost[0]``); True where it ran to its end. A raise that lands outside the ``try``
        (the clock test, the handler) leaves it early, as a raise nobody swallowed."""
        start = time.process_time()
        while True:
            try:
                if time.process_time() - start >= seconds:
                    return True
                sum(range(2000))
            except accuracy.TimeLimitReached:  # what a finaliser does with it
                if lost[0] == swallow:
                    raise
                lost[0] += 1

    # the first raise lost: the next one still cuts the block short, long before it ends
    start = time.process_time()
    with pytest.raises(accuracy.TimeLimitReached):
        with accuracy._Deadline(0.001):
            burn(5.0, 1, [0])
    assert time.process_time() - start < 1.0
    # every raise lost: the block's exit raises it. The timer's raise can land on any bytecode,
    # so a try may see one escape the block's work early (the case above): tried until one
    # block swallowed every raise and ran to its end.
    for _ in range(20):
        lost, ended = [0], []
        with pytest.raises(accuracy.TimeLimitReached):
            with accuracy._Deadline(0.001):
                ended.append(burn(0.05, 10**9, lost))
        if ended:
            break
    assert ended, "no block swallowed every raise in 20 tries"
    assert lost[0] >= 2  # it kept firing
    # and the timer is off afterwards
    import signal

    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_search_draws_targets_inside_the_declared_domain():
    """The targets the search draws (grid, domain ends, roots in y) stay in the target's
    declared domain: kl_div's log-probabilities ≤ 0 with log_target=True, Poisson's counts,
    ±1 labels; and it bisects the target side (y = σ(z) for BCE-with-logits' gradient)."""
    import mpmath
    import numpy as np

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    for name, opts in (("kl_div", {"log_target": True}), ("kl_div", {}),
                       ("poisson_nll_loss", {}), ("soft_margin_loss", {}),
                       ("binary_cross_entropy_with_logits", {})):
        case = accuracy._Case(name, opts, "float64")
        dom = case.d.spec.target_domains(case.d.options)[0]
        _, y = accuracy._elementwise_points(case, 1, True, np.random.default_rng(0))
        assert y.size and all(dom.contains(float(t)) for t in y), (name, opts)
    case = accuracy._Case("kl_div", {"log_target": True}, "float64")
    assert max(accuracy._target_values(case, np.random.default_rng(0), True)) <= 0
    case = accuracy._Case("binary_cross_entropy_with_logits", {}, "float64")
    x, y = accuracy._elementwise_points(case, 1, True, np.random.default_rng(0))
    drawn = accuracy._target_values(case, np.random.default_rng(0), True)
    bisected = ~np.isin(y, drawn)  # targets not drawn: the roots in y at a few inputs
    with np.errstate(over="ignore"):
        sig = 1 / (1 + np.exp(-x[bisected]))  # σ(z) − y = 0 there, ± a few ulps
    assert bisected.sum() >= 10
    assert np.all(np.abs(sig - y[bisected]) <= 4 * np.spacing(y[bisected]) + 1e-300)


@pytest.mark.parametrize("name", ["sigmoid_focal_loss", "binary_cross_entropy_with_logits"])
def test_speed_times_soft_labels_inside_the_declared_domain(name):
    """An element-wise loss whose declared target domain is an interval of reals gets a
    ``:soft`` entry; its targets lie inside the domain and are not all 0/1 labels."""
    import numpy as np

    import symloss

    speed = _load("speed")
    assert speed.entries([name, "mse_loss", "soft_margin_loss"]) == [
        name, name + ":soft", "mse_loss", "soft_margin_loss"]
    (domain,) = symloss.derive(name).spec.target_domains()
    _, hard = speed.inputs(name, 1000, "float64")
    _, soft = speed.inputs(name + ":soft", 1000, "float64")
    assert set(np.unique(hard)) == {0.0, 1.0}
    assert all(domain.contains(float(y)) for y in soft)
    assert np.mean((soft > 0) & (soft < 1)) > 0.99


def test_ulps_counts_a_flush_of_an_exact_value_just_below_the_smallest_normal():
    """float() of an mpf rounds twice (53 bits, then the subnormal grid): the exact
    −2.2250738585072011e-308 came out as −tiny, and a flush to −0 was scored 4.5e15 ulps."""
    import mpmath
    import numpy as np

    accuracy = _load("accuracy")
    f64 = np.dtype(np.float64)
    below = mpmath.mpf(-np.finfo(np.float64).tiny) + mpmath.mpf(2) ** -1075
    assert abs(below) < np.finfo(np.float64).tiny
    assert accuracy.ulps(np.array([-0.0]), np.array([below], dtype=object), f64)[0] == 0.0
    normal = mpmath.mpf(-np.finfo(np.float64).tiny)  # a normal exact value may not flush
    assert accuracy.ulps(np.array([-0.0]), np.array([normal], dtype=object), f64)[0] > 1e15


def test_row_reference_evaluates_each_rows_sums_once(monkeypatch):
    """The row family's exact gradient (and HVP) is one mpmath function of a row's entries
    giving every column, its shared parts (the distances, the hinge's step) computed once per
    row: the work per row does not grow with the width (the search's width-16 rows cost 16
    evaluations of the whole row per precision before: 16 times the square roots), and the
    values are the per-column ones (to 40 digits; a row where a shared part divides by 0 goes
    column by column)."""
    import mpmath
    import numpy as np

    import symloss

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    calls = []

    def counted(u):
        calls.append(1)
        return mpmath.sqrt(u)

    monkeypatch.setitem(accuracy._NAMESPACE, "sqrt", counted)
    d = symloss.derive("triplet_margin_loss", reduction="sum")
    rng = np.random.default_rng(7)
    counts = {}
    values = {}
    for width in (2, 16):
        a, p, n = (rng.standard_normal((3, width)) for _ in range(3))
        p[1] = n[1] = a[1]  # a = p = n: the distances' difference is 0
        n[2] = a[2] + (p[2] - a[2])[::-1]  # d(a, p) = d(a, n): the hinge's kink
        calls.clear()
        values[width] = accuracy.exact(d, "grad")([a, p, n])
        counts[width] = len(calls)
        monkeypatch.setattr(accuracy, "_whole_row", lambda *args: None, raising=False)  # by column
        slow = accuracy.exact(d, "grad")([a, p, n])
        monkeypatch.undo()
        monkeypatch.setitem(accuracy._NAMESPACE, "sqrt", counted)
        for got, want in zip(values[width].ravel(), slow.ravel(), strict=True):
            assert abs(got - want) <= mpmath.mpf(10) ** -40 * abs(want), (width, got, want)
    assert counts[16] == counts[2] > 0, counts


def test_agreement_counts_floats_apart(capsys):
    """benchmarks/agreement.py: floats_apart counts the floats between two results (across 0,
    NaN with NaN and two subnormals equal); a run over losses whose evaluators round once
    from pairs exits 0, a bad entry exits 2 with the valid names."""
    import numpy as np

    agreement = _load("agreement")
    a = np.array([1.0, 1.0, -0.0, np.nan, 1e-310, 2.0**-1074, -2.0**-1074])
    b = np.array([1.0, np.nextafter(np.nextafter(1.0, 2.0), 2.0), 0.0, np.nan, 2e-310, 0.0,
                  2.0**-1074])
    assert agreement.floats_apart(a, b).tolist() == [0, 2, 0, 0, 0, 0, 0]
    assert agreement.floats_apart(np.float32([1.5]), np.float32([-1.5])).tolist() == [
        2 * int(np.float32(1.5).view(np.int32))]
    assert agreement.main(["--only", "log_cosh_loss", "binary_cross_entropy_with_logits",
                           "--n", "500", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| log_cosh_loss | float64 | 0 |" in out
    with pytest.raises(SystemExit) as stop:
        agreement.main(["--only", "no_such_loss"])
    assert stop.value.code == 2
    assert "Valid names" in capsys.readouterr().err


def test_search_measures_how_far_apart_the_evaluators_are():
    """accuracy.py's search measures, at its own adversarial points, how many floats lie
    between the two evaluators' results (goal ≤ 1): an evaluator that is 2 floats from the
    other at one point fails the goal there, though both are within 4 ulp of the exact value."""
    import mpmath
    import numpy as np

    accuracy = _load("accuracy")
    mpmath.mp.dps = accuracy.DPS
    case = accuracy._Case("mse_loss", {}, "float64")
    honest = case.symloss

    def shifted(order, e, x, y, v):
        r = np.array(honest(order, "numpy", x, y, v), dtype=np.float64)
        if e == "numba":  # two floats up at the largest input
            j = int(np.argmax(x))
            r[j] = np.nextafter(np.nextafter(r[j], np.inf), np.inf)
        return r

    case.symloss = shifted  # type: ignore[method-assign]
    worst = accuracy.search(case, 1, ["numpy", "numba"], quick=True)
    assert worst[accuracy.APART][0] == 2.0, worst
    assert worst["numba"][0] <= 2.5 and worst["numpy"][0] <= 0.5, worst
    row = {"evaluator": accuracy.APART, "worst": 2.0, "n": 10, "order": "grad"}
    assert accuracy._not_met(row) and not accuracy._not_met({**row, "evaluator": "numba"})
    case.symloss = honest  # type: ignore[method-assign]
    assert accuracy.search(case, 1, ["numpy", "numba"], quick=True)[accuracy.APART][0] == 0.0


def test_first_call_table_prints_numba_floor(capsys, monkeypatch):
    """--first-call-only prints numba's own floor beside the entries: a fresh process that
    imports numba and compiles one trivial kernel (measured, not assumed)."""
    speed = _load("speed")
    monkeypatch.setattr(speed, "first_call", lambda name, runs=1: (0.5, 0.05, False))
    assert speed.main(["--first-call-only", "1", "--only", "mse_loss"]) == 0
    out = capsys.readouterr().out
    assert "| mse_loss | 0.50 | 0.05 | no |" in out
    line = next(x for x in out.splitlines() if x.startswith("numba's own floor"))
    seconds = float(line.rsplit(": ", 1)[1].removesuffix(" s"))
    assert 0.0 < seconds < 60.0


def test_first_call_table_with_warmed_adds_the_warm_command_and_the_call_after_it(
        capsys, monkeypatch):
    """--warmed adds `symloss warm`'s time and the first call of a fresh process after it."""
    speed = _load("speed")
    monkeypatch.setattr(speed, "first_call", lambda name, runs=1: (0.5, 0.05, False))
    monkeypatch.setattr(speed, "numba_floor", lambda runs: 1.0)
    monkeypatch.setattr(speed, "warmed_call", lambda name: (12.34, 0.07, False))
    assert speed.main(["--first-call-only", "1", "--warmed", "--only", "mse_loss"]) == 0
    assert "| mse_loss | 0.50 | 0.05 | no | 12.3 | 0.07 | no |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        speed.main(["--warmed", "--only", "mse_loss"])
    assert "--warmed goes with --first-call-only" in capsys.readouterr().err



def test_time_limit_raised_in_a_finaliser_stays_out_of_the_unraisable_hook(monkeypatch):
    """A raise that a ``__del__`` swallows reaches ``sys.unraisablehook``: the deadline's own
    hook drops it (the block still ends in TimeLimitReached) and passes every other
    unraisable exception on; the previous hook is back after the block."""
    import sys
    import time

    accuracy = _load("accuracy")
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(type(u.exc_value)))

    class Slow:
        def __del__(self):
            start = time.process_time()
            while time.process_time() - start < 0.002:
                sum(range(500))

    class Broken:
        def __del__(self):
            raise ValueError("a finaliser's own error")

    with pytest.raises(accuracy.TimeLimitReached):
        with accuracy._Deadline(0.001):
            Broken()
            start = time.process_time()
            while time.process_time() - start < 0.5:
                Slow()  # most of the time is spent in __del__
    assert ValueError in seen and accuracy.TimeLimitReached not in seen
    assert sys.unraisablehook is not None and sys.unraisablehook(  # the recording hook
        type("U", (), {"exc_value": KeyError()})()) is None and seen[-1] is KeyError
