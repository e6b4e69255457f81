"""symloss.testing: correct implementations pass, each listed mistake is caught and named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import symloss
from symloss.stability import stability_map
from symloss.testing import assert_grad_matches, battery


def _as(value, like):
    return torch.as_tensor(np.asarray(value), dtype=like.dtype)


# ---------------------------------------------------------------- correct implementations pass
class GoodBCE(torch.autograd.Function):
    """A hand-written BCE-with-logits: softplus forward, σ(z) − y backward (correct)."""

    @staticmethod
    def forward(ctx, z, y):
        ctx.save_for_backward(z, y)
        return (F.softplus(z) - y * z).mean()

    @staticmethod
    def backward(ctx, g):
        z, y = ctx.saved_tensors
        return g * (torch.sigmoid(z) - y) / z.numel(), None


POS_WEIGHT = [1.0, 2.0, 0.5, 3.0]
WEIGHT3 = [0.2, 1.0, 3.0]

PASSING = [
    ("bce_with_logits", F.binary_cross_entropy_with_logits, {}),
    (
        "bce_with_logits",
        lambda z, y: F.binary_cross_entropy_with_logits(
            z, y, pos_weight=_as(POS_WEIGHT, z), weight=_as(POS_WEIGHT[::-1], z)
        ),
        {"pos_weight": POS_WEIGHT, "weight": POS_WEIGHT[::-1]},
    ),
    (
        "bce_with_logits",
        lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="sum"),
        {"reduction": "sum"},
    ),
    ("ce", F.cross_entropy, {}),
    (
        "ce",
        lambda z, t: F.cross_entropy(
            z, t, weight=_as(WEIGHT3, z), ignore_index=1, label_smoothing=0.1
        ),
        {"weight": WEIGHT3, "ignore_index": 1, "label_smoothing": 0.1},
    ),
    ("ce", lambda z, t: F.cross_entropy(z, t, reduction="none"), {"reduction": "none"}),
    ("bce_with_logits", GoodBCE.apply, {}),
]


@pytest.mark.parametrize(
    ("name", "fn", "options"), PASSING, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(PASSING)]
)
def test_correct_implementations_pass_in_both_dtypes(name, fn, options):
    result = assert_grad_matches(name, fn, **options)
    assert {r.case.dtype for r in result.rows} == {"float32", "float64"}


# ---------------------------------------------------------------- each mistake is caught
def _bce_function(backward_rule):
    """A BCE-with-logits Function with a correct forward and the given backward rule."""

    class Impl(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, y):
            ctx.save_for_backward(z, y)
            return F.binary_cross_entropy_with_logits(z, y)

        @staticmethod
        def backward(ctx, g):
            z, y = ctx.saved_tensors
            return g * backward_rule(z, y), None

    return Impl.apply


def _sat(z, y):
    p = torch.sigmoid(z)
    v = p * (1 - p)
    return (p - y) * v / v.clamp_min(1e-30) / z.numel()


def _pos_weight_dropped(z, y):
    return F.binary_cross_entropy_with_logits(z, y)


def _ce_without(**keep):
    return lambda z, t: F.cross_entropy(
        z, t, **{k: (_as(v, z) if isinstance(v, list) else v) for k, v in keep.items()}
    )


MISTAKES = [
    (
        "sign",
        "bce_with_logits",
        _bce_function(lambda z, y: (y - torch.sigmoid(z)) / z.numel()),
        {},
        "sign flipped",
    ),
    (
        "missing 1/n",
        "bce_with_logits",
        _bce_function(lambda z, y: torch.sigmoid(z) - y),
        {},
        "missing 1/n",
    ),
    (
        "extra factor",
        "bce_with_logits",
        _bce_function(lambda z, y: 2 * (torch.sigmoid(z) - y) / z.numel()),
        {},
        "factor 2",
    ),
    (
        "sigma prime",
        "bce_with_logits",
        _bce_function(lambda z, y: torch.sigmoid(z) * (1 - torch.sigmoid(z)) / z.numel()),
        {},
        "derivative of the sigmoid",
    ),
    ("saturation", "bce_with_logits", _bce_function(_sat), {}, "goes to 0 beyond"),
    (
        "pos_weight",
        "bce_with_logits",
        _pos_weight_dropped,
        {"pos_weight": POS_WEIGHT},
        "pos_weight not applied",
    ),
    ("weight", "ce", _ce_without(), {"weight": WEIGHT3}, "weight not applied"),
    (
        "label_smoothing",
        "ce",
        _ce_without(),
        {"label_smoothing": 0.2},
        "label_smoothing not applied",
    ),
    ("ignore_index", "ce", _ce_without(), {"ignore_index": 2}, "ignore_index not applied"),
]


@pytest.mark.parametrize(
    ("label", "name", "fn", "options", "diagnosis"), MISTAKES, ids=[m[0] for m in MISTAKES]
)
def test_each_mistake_is_caught_and_named(label, name, fn, options, diagnosis):
    with pytest.raises(AssertionError) as info:
        assert_grad_matches(name, fn, **options)
    report = str(info.value)
    assert diagnosis in report
    for part in ("gradient", "worst", "got", "expected", "ulps", "where: inputs in"):
        assert part in report


def test_relative_error_of_a_thousandth_in_float64_is_caught():
    def fn(z, y):
        return F.binary_cross_entropy_with_logits(z, y) * 1.001

    with pytest.raises(AssertionError, match="relative error"):
        assert_grad_matches("bce_with_logits", fn, dtypes=["float64"])


def test_forward_that_drops_a_term_is_caught():
    class Impl(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z, y):
            ctx.save_for_backward(z, y)
            return (-y * F.logsigmoid(z)).mean()  # the (1 − y) term is dropped

        @staticmethod
        def backward(ctx, g):
            z, y = ctx.saved_tensors
            return g * (torch.sigmoid(z) - y) / z.numel(), None

    with pytest.raises(AssertionError) as info:
        assert_grad_matches("bce_with_logits", Impl.apply)
    assert "loss value" in str(info.value) and "gradient: agrees" in str(info.value)


def test_bce_of_sigmoid_fails_on_the_full_range_and_passes_on_minus_ten_to_ten():
    def fn(z, y):
        return F.binary_cross_entropy(torch.sigmoid(z), y)

    with pytest.raises(AssertionError) as info:
        assert_grad_matches("bce", fn)
    assert "input 17" in str(info.value) or "goes to 0" in str(info.value)
    assert_grad_matches("bce", fn, domain=(-10, 10))


# ---------------------------------------------------------------- battery and stability map
def test_battery_fits_options():
    d = symloss.derive("bce_with_logits", pos_weight=POS_WEIGHT)
    assert all(c.input.shape[-1] == 4 for c in battery(d))
    d = symloss.derive("ce", ignore_index=2, weight=WEIGHT3)
    cases = battery(d, dtypes=["float32"], domain=(-5, 5))
    assert all(np.all(np.abs(c.input) <= 5) for c in cases)
    assert any(np.any(c.target == 2) for c in cases)
    assert all(c.input.dtype == np.float32 for c in cases)


@pytest.mark.parametrize("bad", [(1, 0), (0, np.inf), "ab", (1, 2, 3)])
def test_bad_domain_is_a_clear_error(bad):
    with pytest.raises(symloss.SymlossError, match="domain"):
        battery(symloss.derive("bce"), domain=bad)


def test_stability_map_bce_of_sigmoid():
    m32 = stability_map("bce", dtype="float32")
    assert 16.6 < m32.upper < 16.7 and -27.7 < m32.lower < -27.6
    up = next(b for b in m32.boundaries if b.side == "upper")
    assert up.got == 0.0 and up.expected > 0.99
    assert np.nextafter(np.float32(up.last_agreeing), np.float32(np.inf)) == np.float32(
        up.first_disagreeing
    )
    m64 = stability_map("bce", dtype="float64")
    assert 27.6 < m64.upper < 27.7 and -27.7 < m64.lower < -27.6


@pytest.mark.parametrize("name", ["bce_with_logits", "ce"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stability_map_fused_losses_agree_everywhere(name, dtype):
    assert stability_map(name, dtype=dtype).whole_range


def test_ulps_from_exact_measures_each_result_against_its_own_exact_value():
    """The distance of each result from its own exact value, in ulps of that value: exact at
    subnormal results (fractions of the smallest subnormal, not whole units), a flush of a
    subnormal exact value to 0 allowed but not of a normal one, an overflow to inf of the
    right sign correct, NaN only against NaN; the shapes must match."""
    import mpmath

    from symloss.errors import SymlossValueError
    from symloss.testing import ulps_from_exact

    tiny = float(np.finfo(np.float64).tiny)
    sub = float(np.finfo(np.float64).smallest_subnormal)
    e = mpmath.exp(-mpmath.mpf(745.133))  # 0.5002 of the smallest subnormal
    got = ulps_from_exact([sub, 9 * sub, 0.0, 0.0, 1.0 + 2**-51],
                          [e, 9 * e, mpmath.mpf(tiny) - mpmath.mpf(2) ** -1075,
                           mpmath.mpf(tiny), mpmath.mpf(1)], np.float64)
    assert 0.49 < got[0] < 0.5 and 4.49 < got[1] < 4.5  # not 0 and 4: not rounded first
    assert got[2] == 0.0 and got[3] == 2.0**52 and got[4] == 2.0
    big = mpmath.mpf(2) ** 1100
    inf = ulps_from_exact(np.array([np.inf, -np.inf, np.inf, np.nan, np.nan], np.float32),
                          [big, big, mpmath.mpf(1), mpmath.mpf(1), mpmath.nan], "float32")
    assert inf.tolist() == [0.0, np.inf, np.inf, np.inf, 0.0]
    f32 = ulps_from_exact(np.array([1.0], np.float32), [mpmath.mpf(1) + mpmath.mpf(2) ** -23],
                          np.float32)
    assert f32.tolist() == [1.0]
    with mpmath.workdps(60):  # exact values finer than mpmath's working precision
        third = mpmath.mpf(1) / 3
    with mpmath.workprec(53):  # mpmath's default (another test may have raised it)
        assert 0.3 < ulps_from_exact([1 / 3], [third], np.float64)[0] < 0.4
    with pytest.raises(SymlossValueError, match="one exact value per result"):
        ulps_from_exact([1.0, 2.0], [mpmath.mpf(1)], np.float64)
