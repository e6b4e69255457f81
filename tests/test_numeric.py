"""loss_fn and grad_fn against torch autograd: a table of cases, one comparison routine."""

from __future__ import annotations

import math
import zlib

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symloss
from symloss.testing import ulps_from_exact

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG_SEED = int(__import__("os").environ.get("SYMLOSS_TEST_SEED", "20261127"))
DTYPES = [np.float32, np.float64]


def _tol(dtype, want, terms) -> dict[str, float]:
    """A correct implementation errs by a few ulps of the largest term it combines: torch
    computes σ(z) − 1 and softmax(z)_y − 1 with cancellation, so the absolute tolerance scales
    with the size of those terms -- the gradient at a neutral input, same target."""
    eps = float(np.finfo(dtype).eps)
    scale = max(float(np.max(np.abs(want))) if np.size(want) else 1.0, float(np.max(np.abs(terms))))
    return {"rtol": 16 * eps, "atol": 16 * eps * max(scale, 1e-30)}


def _rng(*key: object) -> np.random.Generator:
    # crc32, not hash(): str hashes change from run to run.
    return np.random.default_rng([RNG_SEED, *(zlib.crc32(str(k).encode()) for k in key)])


def _autograd(fn, x: np.ndarray, target, **kwargs):
    t = torch.tensor(x, requires_grad=True)
    out = fn(t, target, **kwargs)
    (out.sum() if out.ndim else out).backward()
    return out.detach().numpy(), t.grad.numpy()


def _tensor(value, dtype):
    return None if value is None else torch.tensor(np.asarray(value, dtype=dtype))


def _check(d, x, target_np, target_torch, fn, dtype, **torch_kwargs):
    want_loss, want_grad = _autograd(fn, x, target_torch, **torch_kwargs)
    got_loss = d.loss_fn(x, target_np)
    got_grad = d.grad_fn(x, target_np)
    assert got_grad.shape == x.shape
    assert got_grad.dtype == x.dtype
    assert np.asarray(got_loss).dtype == x.dtype
    neutral = np.full_like(x, 0.5 if d.spec.input_domain(d.options) == "probability" else 0.0)
    np.testing.assert_allclose(got_loss, want_loss, **_tol(dtype, want_loss, d.loss_fn(neutral, target_np)))
    np.testing.assert_allclose(got_grad, want_grad, **_tol(dtype, want_grad, d.grad_fn(neutral, target_np)))


# ------------------------------------------------------------------ BCE with logits
BCE_LOGITS_CASES = [
    # (description, input shape, options, pos_weight shape, weight shape)
    ("1-D", (7,), {}, None, None),
    ("2-D sum", (4, 3), {"reduction": "sum"}, None, None),
    ("3-D none", (2, 3, 4), {"reduction": "none"}, None, None),
    ("pos_weight along last axis", (5, 3), {}, (3,), None),
    ("pos_weight scalar-like", (5, 3), {"reduction": "sum"}, (1,), None),
    ("weight broadcast rows", (5, 3), {}, None, (5, 1)),
    ("weight and pos_weight", (2, 5, 3), {"reduction": "none"}, (3,), (3,)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("labels", ["hard", "soft"])
@pytest.mark.parametrize(("desc", "shape", "options", "pw_shape", "w_shape"), BCE_LOGITS_CASES)
def test_bce_with_logits_matches_torch(desc, shape, options, pw_shape, w_shape, labels, dtype):
    rng = _rng(desc, labels, dtype)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    y = (rng.integers(0, 2, shape) if labels == "hard" else rng.uniform(size=shape)).astype(dtype)
    pos_weight = None if pw_shape is None else rng.uniform(0.5, 3, pw_shape)
    weight = None if w_shape is None else rng.uniform(0.5, 3, w_shape)
    d = symloss.derive("bce_with_logits", pos_weight=pos_weight, weight=weight, **options)
    _check(d, x, y, torch.tensor(y), F.binary_cross_entropy_with_logits, dtype,
           pos_weight=_tensor(pos_weight, dtype), weight=_tensor(weight, dtype), **options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_of_probabilities_matches_torch(reduction, weighted, dtype):
    rng = _rng("bce-prob", reduction, weighted, dtype)
    p = rng.uniform(0.02, 0.98, (4, 5)).astype(dtype)
    p[0, :3] = [0.0, 1.0, 0.5]  # torch's clamps at the boundary
    y = rng.uniform(size=(4, 5)).astype(dtype)
    y[0, :2] = [0.0, 0.0]
    weight = rng.uniform(0.5, 2, (5,)) if weighted else None
    d = symloss.derive("binary_cross_entropy", weight=weight, reduction=reduction)
    _check(d, p, y, torch.tensor(y), F.binary_cross_entropy, dtype,
           weight=_tensor(weight, dtype), reduction=reduction)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_link_sigmoid_matches_bce_of_sigmoid_where_torch_is_accurate(reduction, dtype):
    rng = _rng("bce-sigmoid", reduction, dtype)
    z = rng.uniform(-8, 8, (6, 4)).astype(dtype)
    y = rng.integers(0, 2, (6, 4)).astype(dtype)
    d = symloss.derive("bce", reduction=reduction)

    def composed(t, target, **kw):
        return F.binary_cross_entropy(torch.sigmoid(t), target, **kw)

    want_loss, want_grad = _autograd(composed, z, torch.tensor(y), reduction=reduction)
    # torch's log(1 − σ(z)) cancels in float32 (relative error ~ eps / σ(−z)): loose there.
    np.testing.assert_allclose(d.loss_fn(z, y), want_loss, rtol=5e-4 if dtype == np.float32 else 1e-11)
    np.testing.assert_allclose(d.grad_fn(z, y), want_grad, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-7 if dtype == np.float32 else 1e-15)


# ------------------------------------------------------------------ cross-entropy
CE_LAYOUTS = [
    ("(C)", (5,), ()),
    ("(N, C)", (6, 5), (6,)),
    ("(N, C, d1, d2)", (2, 5, 3, 2), (2, 3, 2)),
]
CE_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"weight": "w"},
    {"weight": "w", "reduction": "none"},
    {"ignore_index": 1},
    {"label_smoothing": 0.15},
    {"label_smoothing": 0.15, "weight": "w"},
    {"label_smoothing": 0.15, "weight": "w", "ignore_index": 2, "reduction": "sum"},
]


def _ce_options(options, rng, c):
    out = dict(options)
    if out.get("weight") == "w":
        out["weight"] = rng.uniform(0.5, 3, c)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", CE_OPTIONS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize(("desc", "shape", "tshape"), CE_LAYOUTS)
def test_cross_entropy_class_indices_match_torch(desc, shape, tshape, options, dtype):
    rng = _rng("ce-index", desc, options, dtype)
    c = shape[0] if len(shape) == 1 else shape[1]
    opts = _ce_options(options, rng, c)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    t = rng.integers(0, c, tshape)
    if t.ndim:
        t.flat[0] = opts.get("ignore_index", -100)  # one ignored target where batched
    elif t == opts.get("ignore_index"):
        t = np.int64((t + 1) % c)
    d = symloss.derive("cross_entropy", **opts)
    torch_opts = {**opts, "weight": _tensor(opts.get("weight"), dtype)}
    _check(d, x, t, torch.tensor(t), F.cross_entropy, dtype, **torch_opts)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "options", [o for o in CE_OPTIONS if "ignore_index" not in o], ids=lambda o: ",".join(o) or "default"
)
@pytest.mark.parametrize(("desc", "shape", "tshape"), CE_LAYOUTS)
def test_cross_entropy_probability_targets_match_torch(desc, shape, tshape, options, dtype):
    rng = _rng("ce-prob", desc, options, dtype)
    c = shape[0] if len(shape) == 1 else shape[1]
    opts = _ce_options(options, rng, c)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    class_dim = 0 if len(shape) == 1 else 1
    probs = np.moveaxis(rng.dirichlet(np.ones(c), size=tshape or None), -1, class_dim).astype(dtype)
    d = symloss.derive("cross_entropy", **opts)
    torch_opts = {**opts, "weight": _tensor(opts.get("weight"), dtype)}
    _check(d, x, probs, torch.tensor(probs), F.cross_entropy, dtype, **torch_opts)


def test_cross_entropy_all_ignored_mean_is_nan_like_torch():
    d = symloss.derive("ce")
    x = np.zeros((2, 3))
    t = np.array([-100, -100])
    assert math.isnan(float(d.loss_fn(x, t)))
    want = F.cross_entropy(torch.tensor(x), torch.tensor(t))
    assert math.isnan(float(want))


# ------------------------------------------------------------------ the seed notebook
def test_seed_notebook_is_reproduced():
    z = np.array([-1.7723, -1.5965, 0.8863], dtype=np.float32)
    y = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    for name in ("bce", "bce_with_logits"):
        d = symloss.derive(name)
        assert round(float(d.loss_fn(z, y)), 4) == 1.0565
        assert [round(float(g), 4) for g in d.grad_fn(z, y)] == [0.0484, -0.2772, 0.2360]


# ------------------------------------------------------------------ exactness at the extremes
def _exact_bce_grad(z: float, y: float) -> float:
    # σ(z) − 1 ≈ −e^(−z) needs |z|/ln 10 more digits than the 60 kept: brute force, no identity.
    with mpmath.workdps(60 + int(abs(z) / 2.3)):
        zz = mpmath.mpf(z)
        return float(1 / (1 + mpmath.exp(-zz)) - y)


def _ulps(got: float, exact: float, dtype) -> float:
    return float(ulps_from_exact([got], [exact], dtype)[0])


EXTREME_Z = [-1e4, -745.0, -100.0, -40.0, -17.0, -1e-8, 0.0, 1e-8, 17.0, 40.0, 88.0, 100.0, 700.0, 1e4]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_hard_label_gradient_is_within_4_ulp_of_exact_everywhere(y, dtype):
    d = symloss.derive("bce_with_logits", reduction="none")
    z = np.array(EXTREME_Z, dtype=dtype)
    with np.errstate(all="raise"):
        got = d.grad_fn(z, np.full_like(z, y))
    assert np.all(np.isfinite(got))
    worst = max(_ulps(float(g), _exact_bce_grad(float(v), y), dtype) for g, v in zip(got, z, strict=True))
    assert worst <= 4


def test_torch_rounds_to_zero_where_symloss_stays_exact():
    d = symloss.derive("bce_with_logits", reduction="none")
    exact = _exact_bce_grad(40.0, 1.0)
    assert exact == pytest.approx(-4.248354255291589e-18, rel=1e-15)
    assert float(d.grad_fn(np.array([40.0]), np.array([1.0]))[0]) == pytest.approx(exact, rel=1e-15)
    _, torch_grad = _autograd(F.binary_cross_entropy_with_logits, np.array([40.0]),
                              torch.tensor([1.0], dtype=torch.float64), reduction="none")
    assert torch_grad[0] == 0.0


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    z=st.floats(-1e4, 1e4, allow_nan=False, width=64),
    y=st.sampled_from([0.0, 1.0]),
)
def test_property_hard_label_gradient_is_exact(z, y):
    d = symloss.derive("bce_with_logits", reduction="none")
    got = float(d.grad_fn(np.array([z]), np.array([y]))[0])
    assert _ulps(got, _exact_bce_grad(z, y), np.float64) <= 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_hard_label_gradient_is_exact_where_softmax_rounds_to_one(dtype):
    d = symloss.derive("ce", reduction="none")
    x = np.array([[40.0, 0.0, -3.0], [1e4, -1e4, 0.0], [17.0, 0.0, 0.0]], dtype=dtype)
    t = np.array([0, 0, 0])
    got = d.grad_fn(x, t)
    with mpmath.workdps(60 + int(np.max(np.abs(x)) / 2.3)):
        for row, target, g in zip(x, t, got, strict=True):
            e = [mpmath.exp(mpmath.mpf(float(v))) for v in row]
            s = sum(e)
            exact = [float(ei / s - (1 if j == target else 0)) for j, ei in enumerate(e)]
            assert max(_ulps(float(a), b, dtype) for a, b in zip(g, exact, strict=True)) <= 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_overflow_nan_or_warning_for_any_finite_input(dtype):
    big = np.finfo(dtype).max
    z = np.array([-big, -1e4, 0.0, 1e4, big], dtype=dtype)
    with np.errstate(all="raise"):
        for y in (0.0, 0.3, 1.0):
            d = symloss.derive("bce_with_logits", reduction="sum")
            assert np.isfinite(d.loss_fn(z, np.full_like(z, y))) or y != y
            assert np.all(np.isfinite(d.grad_fn(z, np.full_like(z, y))))
        ce = symloss.derive("ce")
        for target in range(z.size):
            assert np.all(np.isfinite(ce.grad_fn(z[None, :], np.array([target]))))
            loss = ce.loss_fn(z[None, :], np.array([target]))
            # log-sum-exp − z_t is representable except at z_t = −max, where it is 2·max: inf.
            assert np.isfinite(loss) if target else loss == np.inf


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("name", "options", "x", "t", "message"),
    [
        ("bce_with_logits", {}, np.zeros(3), np.zeros(4), "must equal input shape"),
        ("binary_cross_entropy", {}, np.array([0.5, 1.5]), np.zeros(2), "probability in [0, 1]"),
        ("bce_with_logits", {"pos_weight": [1.0, 2.0]}, np.zeros(3), np.zeros(3), "does not broadcast"),
        ("ce", {}, np.zeros((2, 3)), np.array([0, 3]), "out of bounds"),
        ("ce", {}, np.zeros((2, 3)), np.array([0.0, 1.0]), "must be integers"),
        ("ce", {}, np.zeros((2, 3)), np.zeros((2, 4)), "target must have shape"),
        ("ce", {"weight": [1.0, 2.0]}, np.zeros((2, 3)), np.array([0, 1]), "weight must have shape (3,)"),
        ("ce", {"ignore_index": 0}, np.zeros((2, 3)), np.full((2, 3), 1 / 3), "not supported for probability"),
        ("ce", {}, np.float64(1.0), np.array(0), "input must have shape"),
    ],
)
def test_bad_arrays_raise_clear_errors(name, options, x, t, message):
    d = symloss.derive(name, **options)
    with pytest.raises(symloss.SymlossError) as info:
        d.grad_fn(x, t)
    assert message in str(info.value)
