"""benchmarks/accuracy.py searches the Hessian diagonal (issue 8): ``hess_diag_fn``, the ``hess``
that ``symloss.objective`` returns, against the derived ``hessian_diagonal`` at 60 digits, on
both evaluators, with their agreement, as it searches the value, gradient and hvp."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import symloss

pytest.importorskip("mpmath")
import mpmath

ROOT = Path(__file__).resolve().parents[1]


def _accuracy():
    path = ROOT / "benchmarks" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("bench_accuracy_hess_diag", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mpmath.mp.dps = module.DPS
    return module


def _order(accuracy) -> int:
    """The search's order for the Hessian diagonal, by its name in the tables."""
    found = [o for o, name in accuracy.ORDERS.items() if name == "hess_diag"]
    assert found, f"accuracy.ORDERS has no Hessian diagonal: {accuracy.ORDERS}"
    return found[0]


def _sigmoid(z):
    return 1 / (1 + mpmath.exp(-z))


def test_exact_hessian_diagonal_is_the_derived_one_without_cancellation():
    """The reference is the derivation's ``hessian_diagonal`` at 60 digits: σ(z)σ(−z) for
    bce_with_logits (1.1e-4343 at z = 10⁴, far below the float range), pᵢΣ_{k≠i}pₖ for
    cross_entropy (≈ 2e^{−1000} at the arg-max of z = [1000, 0, 0]: no 1 − p cancellation)."""
    accuracy = _accuracy()
    d = symloss.derive("bce_with_logits", reduction="none")
    z = np.array([0.0, -50.0, 1e4])
    got = accuracy.exact(d, "hess_diag")(z, np.array([1.0, 0.0, 1.0]))
    for zi, gi in zip(z, got, strict=True):
        zm = mpmath.mpf(float(zi))
        assert mpmath.almosteq(gi, _sigmoid(zm) * _sigmoid(-zm), rel_eps=mpmath.mpf(10) ** -50)
    ce = symloss.derive("cross_entropy", reduction="none")
    x = np.array([[1000.0, 0.0, 0.0]])
    got = accuracy.exact(ce, "hess_diag")(x, np.array([1]))
    with mpmath.workdps(1200):
        e = [mpmath.exp(mpmath.mpf(v)) for v in x[0]]
        p = [t / mpmath.fsum(e) for t in e]
        want = [p[i] * (1 - p[i]) for i in range(3)]
    for g, w in zip(got[0], want, strict=True):
        assert mpmath.almosteq(g, w, rel_eps=mpmath.mpf(10) ** -40)
    assert 0 < got[0, 0] < mpmath.mpf(10) ** -430  # 2e^{-1000}: below the floats, kept


@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "cross_entropy",
                                  "multilabel_soft_margin_loss", "gaussian_nll_loss"])
def test_search_reports_the_hessian_diagonals_worst_point_per_evaluator(name):
    """One loss per kind of search (element-wise, class axis, further arrays): the Hessian
    diagonal's rows for both evaluators and their agreement, with points and a worst point,
    within the goal (float64, --quick's budget); cross_entropy's includes the rows next to the
    underflow, where its arg-max diagonal was 18.5 ulp from exact (subnormal exponentials
    summed: fixed by ddouble._sv_term)."""
    accuracy = _accuracy()
    order = _order(accuracy)
    rows: list[dict] = []
    todo = [("float64", order)]
    accuracy._search_one(name, {}, ["numpy", "numba"], True, rows, todo, {})
    assert not todo
    found = {r["evaluator"]: r for r in rows if r["order"] == "hess_diag"}
    assert set(found) == {"numpy", "numba", accuracy.APART}, rows
    for r in found.values():
        assert r["n"] > 50 and "input=" in r["where"], r
        assert not accuracy._not_met(r), r
    table = accuracy.search_table(rows)
    assert f"| {name} | float64 | hess_diag | numba |" in table
    assert "hess_diag" in accuracy.summary_table(rows).splitlines()[0]


def test_search_catches_a_hessian_diagonal_a_few_ulps_off():
    """An evaluator whose Hessian diagonal is 8 ulps off (its other orders honest) fails the
    goal, at a point the row names; the honest one passes."""
    accuracy = _accuracy()
    order = _order(accuracy)
    case = accuracy._Case("binary_cross_entropy_with_logits", {}, "float64")
    honest = case.symloss

    def skewed(o, e, x, y, v):
        out = np.asarray(honest(o, e, x, y, v))
        return out * (1 + 8 * np.finfo(np.float64).eps) if o == order and e == "numba" else out

    case.symloss = skewed  # type: ignore[method-assign]
    worst = accuracy.search(case, order, ["numpy", "numba"], quick=True)
    assert worst["numba"][0] > accuracy.GOAL_ULP and "input=" in worst["numba"][1], worst
    assert worst["numpy"][0] <= 0.5, worst
    assert worst[accuracy.APART][0] > accuracy.GOAL_APART, worst
    row = {"evaluator": "numba", "worst": worst["numba"][0], "n": worst["numba"][2],
           "order": "hess_diag"}
    assert accuracy._not_met(row)


def test_hessian_diagonal_is_searched_once_at_a_mean():
    """hess_diag_fn is unreduced whatever the reduction: a reduction='mean' variant does not
    search it again (as for the value), the sum's search covers it."""
    accuracy = _accuracy()
    order = _order(accuracy)
    rows: list[dict] = []
    todo = [("float64", order)]
    accuracy._search_one("mse_loss", {"reduction": "mean"}, ["numpy"], True, rows, todo, {})
    assert rows == [] and todo == []
    case = accuracy._Case("mse_loss", {"reduction": "mean"}, "float64")
    x = np.array([0.5, 2.0])
    got = case.symloss(order, "numpy", x, np.zeros(2), None)
    assert got.tolist() == [2.0, 2.0]  # ∂²(z − y)²/∂z² per element, not over the mean's 2


@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "cross_entropy",
                                  "poisson_nll_loss"])
def test_objectives_hess_is_the_searched_hessian_diagonal(name):
    """``symloss.objective``'s hess is ``hess_diag_fn``'s values, bit for bit, at the search's
    own Hessian-diagonal points (float64, both evaluators), so the search covers it."""
    from symloss import fast

    accuracy = _accuracy()
    order = _order(accuracy)
    case = accuracy._Case(name, {}, "float64")
    rng = np.random.default_rng(0)
    if case.family == "elementwise":
        points = [accuracy._elementwise_points(case, order, True, rng)]
    else:
        points = accuracy._class_points(case, True, rng)
    objective = symloss.objective(name)
    for x, y in points:
        for e in ("numpy", "numba"):
            want = case.symloss(order, e, x, y, None)
            if e == "numpy":
                with fast.disabled():
                    got = objective(x, y)[1]
            else:
                floor, fast.MIN_SIZE = fast.MIN_SIZE, 0
                try:
                    got = objective(x, y)[1]
                finally:
                    fast.MIN_SIZE = floor
            np.testing.assert_array_equal(got, want)


def test_ulps_keeps_the_fraction_of_an_error_at_a_subnormal_result():
    """The error at a subnormal result in fractions of its unit: cross_entropy's Hessian
    diagonal at z = [745.133, 0 × 9] (the arg-max class) is 9 units where the exact value is
    4.501 (4.499 ulp, read as 4 when the difference was rounded to a float before dividing),
    and e^{−745.133} rounded up to the smallest subnormal is 0.4998 ulp (read as 0)."""
    accuracy = _accuracy()
    f64 = np.dtype(np.float64)
    tiny_sub = float(np.finfo(np.float64).smallest_subnormal)
    e = mpmath.exp(-mpmath.mpf(745.133))
    got = accuracy.ulps(np.array([tiny_sub, 9 * tiny_sub]), np.array([e, 9 * e], dtype=object), f64)
    want = [abs(tiny_sub - e) / tiny_sub, abs(9 * tiny_sub - 9 * e) / tiny_sub]
    np.testing.assert_allclose(got, [float(w) for w in want], rtol=1e-12)
    assert 0.49 < got[0] < 0.5 and 4.49 < got[1] < 4.5
    # a normal result: the same as before (the difference divided by the unit)
    assert accuracy.ulps(np.array([1.0 + 2**-51]), np.array([mpmath.mpf(1)], dtype=object),
                         f64).tolist() == [2.0]


def test_class_search_sums_many_exponentials_next_to_the_underflow():
    """The class-axis search has rows of many classes with one logit ahead by z₀ from
    −log(tiny) − 1 to −log(smallest subnormal): the other classes' e^{−z₀} are rounded to the
    subnormal grid and summed where Σ_{k≠i} pₖ is (the arg-max's Hessian diagonal, its
    gradient); the Hessian diagonal's reference there is (C − 1)e^{−z₀}/(1 + (C − 1)e^{−z₀})²."""
    accuracy = _accuracy()
    order = _order(accuracy)
    case = accuracy._Case("cross_entropy", {}, "float64")
    rows = [(x, y) for x, y in accuracy._class_points(case, True, np.random.default_rng(0))
            if x.shape[1] == accuracy.UNDERFLOW_CLASSES >= 10]
    assert rows, "no rows of many classes"
    x, y = rows[0]
    lo = -np.log(np.finfo(np.float64).tiny)
    sub = -np.log(np.finfo(np.float64).smallest_subnormal)
    assert x[:, 0].min() <= lo and x[:, 0].max() >= sub - 1e-9
    assert np.all(x[:, 1:] == 0)
    exact = case.truth[order](x, y)
    c = x.shape[1]
    for z0, value in zip(x[:, 0], exact[:, 0], strict=True):
        e = mpmath.exp(-mpmath.mpf(float(z0)))
        want = (c - 1) * e / (1 + (c - 1) * e) ** 2
        assert mpmath.almosteq(value, want, rel_eps=mpmath.mpf(10) ** -40)


@pytest.mark.parametrize("evaluator", ["numpy", "compiled"])
def test_triplet_hessian_diagonal_is_certified_where_the_distances_are_equal(evaluator,
                                                                             monkeypatch):
    """Where p = n the two distances' terms of triplet_margin_loss's Hessian diagonal cancel
    exactly (exact value 0: the search's worst point, a = −p = −n). hess_diag_fn ran the plain
    row kernel, uncertified: −8.9e-16 (1.8e308 ulp of the exact 0) and 1.4e-20 at a = (1, 2),
    p = n = (0.5, 0.1); now certified and rescued as the loss, gradient and hvp are."""
    from symloss import fast, rows

    d = symloss.derive("triplet_margin_loss", reduction="none")
    cases = [(np.array([[1.615426052604764e-05, 7.027758290643990e-06]]), None),
             (np.array([[1.0, 2.0]]), np.array([[0.5, 0.1]]))]
    if evaluator == "compiled":
        monkeypatch.setattr(rows, "COMPILED_MIN_SIZE", 0)
    for a, p in cases:
        p = -a if p is None else p
        for dtype in (np.float32, np.float64):
            args = (a.astype(dtype), p.astype(dtype), p.astype(dtype))
            if evaluator == "numpy":
                with fast.disabled():
                    got = d.hess_diag_fn(*args)
            else:
                got = d.hess_diag_fn(*args)
            assert got.dtype == dtype and got.tolist() == [[0.0, 0.0]], (a, p, dtype, got)
