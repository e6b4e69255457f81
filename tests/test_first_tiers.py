"""First tiers that take benign inputs (symloss._fastmath.fitszd32, _terms_q's Ziv test).

On random, benign inputs (speed.py's: z ~ 3·N(0, 1), targets from the declared domain) the
quick twins of the element-wise exponential losses (poisson_nll_loss, gamma_loss,
tweedie_loss) must complete: a float32 result whose float64 form cancels by a few bits is
still certain (Ziv's test on its rounding bound), and so is a float64 sum of exponential pairs
that cancels by more than 2⁴. Where the inputs truly cancel (targets at the model's own mean)
the twin must still say incomplete, and the staged call's results are the exact values
rounded once (mpmath).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import symloss
from symloss import fast

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba not installed")

N = 1000
LOSSES = ["poisson_nll_loss", "gamma_loss", "tweedie_loss"]


def _inputs(name, dtype, seed):
    """speed.py's inputs: z ~ 3·N(0, 1); Poisson(2) counts, or reals 0.1 … 3 above 0."""
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal(N) * 3).astype(dtype)
    if name == "poisson_nll_loss":
        return z, rng.poisson(2.0, N).astype(dtype)
    return z, rng.uniform(0.1, 3.0, N).astype(dtype)


@pytest.fixture
def twins(monkeypatch):
    """Every staged call runs the quick twin alone on a copy of its arguments, then the full
    kernel (the answer); the records: (the twin's flag, the twin's out, the full kernel's)."""
    records: list[tuple[bool, np.ndarray, np.ndarray]] = []

    def call(self, *args):
        assert self.flag_at is None  # element-wise kernels return their flag
        q = np.full_like(args[0], 12345.0)
        flag = bool(self.quick(q, *args[1:]))
        full = self.full(*args)
        records.append((flag, q, args[0].copy()))
        return full

    monkeypatch.setattr(fast._Staged, "__call__", call)
    return records


@pytest.mark.parametrize("name", LOSSES)
def test_float32_twins_complete_on_benign_inputs(twins, name):
    d = symloss.derive(name, reduction="mean")
    for seed in range(3):
        z, y = _inputs(name, np.float32, seed)
        v = np.random.default_rng(seed).standard_normal(N).astype(np.float32)
        twins.clear()
        d.grad_fn(z, y)
        d.hvp_fn(z, y, v)
        if name != "tweedie_loss":  # its value's y^(2−ρ) has no rounding bound: 6 bits
            d.loss_fn(z, y)
        assert twins, name
        for flag, q, full in twins:
            assert not flag, (name, seed, int(np.isnan(q).sum()))
            assert q.tobytes() == full.tobytes()


@pytest.mark.parametrize("name", LOSSES)
def test_float64_first_tier_declines_few_benign_elements(twins, name):
    d = symloss.derive(name, reduction="sum")
    left = 0
    for seed in range(3):
        twins.clear()
        d.grad_fn(*_inputs(name, np.float64, seed))
        ((_, q, full),) = twins
        left += int(np.count_nonzero(np.isnan(q) & ~np.isnan(full)))
        assert np.array_equal(q[~np.isnan(q)], full[~np.isnan(q)])
    # 2.7-3% of them before Ziv's test (cancelling by over 2⁴), 0.07-0.13% with it
    assert left <= 0.005 * 3 * N, (name, left)


def _exact_grad(name, z, y):
    """The gradient at each element (reduction sum), exactly, rounded to y's dtype."""
    with mpmath.workprec(300):
        out = []
        for zi, yi in zip(z.astype(np.float64), y.astype(np.float64), strict=True):
            zm, ym = mpmath.mpf(float(zi)), mpmath.mpf(float(yi))
            if name == "poisson_nll_loss":
                g = mpmath.exp(zm) - ym
            elif name == "gamma_loss":
                g = 1 - ym * mpmath.exp(-zm)
            else:  # tweedie, ρ = 1.5
                g = mpmath.exp(zm / 2) - ym * mpmath.exp(-zm / 2)
            out.append(float(g))  # mpmath rounds to nearest at the float64 boundary
    return np.array(out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LOSSES)
def test_cancelling_inputs_still_reach_the_rescue_and_round_exactly(twins, name, dtype):
    d = symloss.derive(name, reduction="sum")
    rng = np.random.default_rng(5)
    z = (rng.standard_normal(400) * 2).astype(dtype)
    # targets at the model's mean e^(z) (and its neighbours): the gradient cancels by ~all of
    # the target's bits
    mean = np.exp(z.astype(np.float64))
    y = (mean * (1 + rng.standard_normal(400) * 10.0 ** rng.uniform(-15, -3, 400))).astype(dtype)
    if name == "tweedie_loss":  # its options' default ρ = 1.5: the mean is e^z too
        assert math.isclose(symloss.derive(name).options["power"], 1.5)
    twins.clear()
    got = d.grad_fn(z, y)
    assert any(flag for flag, _, _ in twins), name  # a later tier was needed
    exact = _exact_grad(name, z, y)
    if dtype == np.float32:  # rounded once to float32 (from float64's rounding: 2 roundings
        # only where the float64 value is a float32 midpoint, not for these draws)
        exact = exact.astype(np.float32)
    good = ~np.isnan(got)  # NaN: symloss.exact's own tier (not the kernels') answered
    assert good.mean() > 0.9
    assert got[good].tobytes() == exact[good].tobytes(), name


def test_float32_ziv_test_declines_a_rounding_boundary_inside_the_bound():
    from symloss._fastmath import fitszd32

    k = 3 / 2**19  # K = 3: E = 3·2⁻⁵³·m
    one = 1.0 + 2.0**-23  # a float32
    mid = 1.0 + 2.0**-24  # the midpoint between 1 and the next float32
    assert fitszd32(False, one, 2.0, k, 1.0)
    assert not fitszd32(False, mid + 2.0**-52, 2.0, k, 1.0)  # within E of the midpoint
    assert fitszd32(True, mid, 2.0, k, 1.0)  # the form's own test passed: kept
    assert not fitszd32(False, math.nan, 2.0, k, 1.0)
    assert not fitszd32(False, 1.0, math.inf, k, 1.0)
    # cancelled by 2²⁰: E = 3·2⁻⁵³·2²⁰ ≈ 2⁻³¹·⁴, under a float32 ulp (2⁻²³) but wider than
    # the distance of p = 1 + 2⁻²⁴ + 2⁻³³ to the midpoint: declined; 2⁻³⁰ away: taken
    assert not fitszd32(False, mid + 2.0**-33, 2.0**20, k, 1.0)
    assert fitszd32(False, mid + 2.0**-30, 2.0**20, k, 1.0)
    assert fitszd32(False, mid - 2.0**-30, 2.0**20, k, 3.0)  # p/3: far from a boundary


def test_computed_rounding_bounds_bound_the_printed_float_forms():
    """algebra.rounding_bound(computed=True): eᵃ and xexp(y, a) of a computed a, log of an
    input -- the float64 forms the numba printer writes with libm's helpers (tweedie's and
    gamma's gradients and gamma's value) are within K·2⁻⁵³·M of their values at 60 digits,
    K evaluated at each point (M = algebra.magnitude), at seeded random points."""
    import sympy as sp

    from symloss import _fastmath
    from symloss.algebra import magnitude, rounding_bound
    from symloss.catalog_boosting import xexp

    z, y, r = sp.Symbol("z", real=True), sp.Symbol("y", positive=True), sp.Symbol("r", real=True)
    forms = [sp.exp(z * (2 - r)) - xexp(y, z * (1 - r)), 1 - xexp(y, -z),
             z - sp.log(y) + xexp(y, -z) - 1, sp.exp(z * r) - y]
    rng = np.random.default_rng(17)
    for expr in forms:
        k = rounding_bound(expr, computed=True)
        assert k is not None and rounding_bound(expr) is None, expr
        printer = fast._Printer({z: "x0", y: "x1", r: "c0"}, {})
        plain = printer.doprint(expr).replace("_F(", "_m(")
        size = printer.doprint(magnitude(expr)).replace("_F(", "_m(")
        namespace = {**vars(_fastmath), "math": math, "np": np}
        for _ in range(80):
            values = {"x0": float(rng.standard_normal() * 20), "x1": float(rng.uniform(0.01, 5)),
                      "c0": float(rng.uniform(1.0, 2.0))}
            got = eval(plain, namespace, values)
            m = eval(size, namespace, values)
            at = {z: sp.Float(values["x0"], 60), y: sp.Float(values["x1"], 60),
                  r: sp.Float(values["c0"], 60)}
            exact = expr.replace(lambda e: isinstance(e, xexp),
                                 lambda e: e.args[0] * sp.exp(e.args[1])).subs(at).evalf(60)
            allowed = float(k.subs(at)) * 2.0**-53 * m * (1 + 1e-9)
            assert abs(sp.Float(got, 60) - exact) <= allowed, (expr, values)
