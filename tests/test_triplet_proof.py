"""triplet_margin_loss's p-norm distances: the hand-written HVP proved by SymPy at every p, and
wrong HVPs not.

At p ∉ {1, 2} the evaluated HVP (``row_losses._distance_hvp``) equals the one formed from the
Hessian only through the norm's definition, Σₖ|uₖ|ᵖ = dᵖ; the proof names d by it and takes
|uₖ| and sign(uₖ) as variables (``derive._norm_coordinates``), so it holds where no entry
uₖ = aₖ − pₖ + ε is 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import sympy as sp

import symloss
from symloss.derive import Derivation
from symloss.primitives import SUM_INDEX

TRIPLET = "triplet_margin_loss"
_V = sp.IndexedBase("v")
_DP = sp.Symbol("d_+", positive=True)

# (p, swap): the norm degrees the declaration writes with a general p-norm, and both negatives
GENERAL_P = [(3.0, False), (3.0, True), (1000.0, False), (1000.0, True), (2.5, False),
             (1.5, False), (1.5, True), (0.5, False)]


@pytest.mark.parametrize(("p", "swap"), GENERAL_P)
def test_general_p_hvp_and_gradient_are_proved(p, swap):
    d = symloss.derive(TRIPLET, p=p, swap=swap)
    assert d.declaration.stable_hvp is not None  # the hand-written form, not the formed one
    assert d.kernel_hvp_proved is True
    if p != 1000.0:  # (the gradient's tidy() multiplies uₖ^999 out there, minutes, on main too)
        assert d.proved is True  # its closed form sign(uᵢ)|uᵢ|^(p−1)/d^(p−1), too


@pytest.mark.parametrize(("p", "swap"), [(1.0, False), (1.0, True), (2.0, False), (2.0, True)])
def test_p_1_and_2_stay_proved(p, swap):
    d = symloss.derive(TRIPLET, p=p, swap=swap)
    assert d.kernel_hvp_proved is True
    assert d.proved is True


def _flip_vk(h: sp.Expr, p: sp.Expr) -> sp.Expr:
    return h.xreplace({_V[SUM_INDEX]: -_V[SUM_INDEX]})  # uᵢvₖ's sign flipped


def _p_for_p_minus_1(h: sp.Expr, p: sp.Expr) -> sp.Expr:
    return h * p / (p - 1)  # p|uᵢ|^(p−2)… in place of (p − 1)|uᵢ|^(p−2)…


def _no_sign(h: sp.Expr, p: sp.Expr) -> sp.Expr:
    # |uₖ|^(p−1) for sign(uₖ)|uₖ|^(p−1): equal where every uₖ > 0, not where one is < 0
    return h.replace(lambda e: isinstance(e, sp.sign), lambda e: sp.S.One)


def _d_power(h: sp.Expr, p: sp.Expr) -> sp.Expr:
    return h.subs(_DP ** (1 - 2 * p), _DP ** (2 - 2 * p))  # d_+^(2p−2) for d_+^(2p−1)


def _positive_only(h: sp.Expr, p: sp.Expr) -> sp.Expr:
    return h.subs(_DP, _DP * 2)  # the positive's distance doubled, the negative's as written


WRONG = [_flip_vk, _p_for_p_minus_1, _no_sign, _d_power, _positive_only]


def _with_hvp(p: float, wrong: Callable[[sp.Expr, sp.Expr], sp.Expr]) -> Derivation:
    d = symloss.derive(TRIPLET, p=p)
    right = d.declaration.stable_hvp
    bad_hvp = wrong(right, sp.nsimplify(p))
    assert bad_hvp != right
    return Derivation(d.spec, d.options, dataclasses.replace(d.declaration, stable_hvp=bad_hvp))


@pytest.mark.parametrize("wrong", WRONG)
@pytest.mark.parametrize("p", [3.0, 2.5])
def test_the_norms_proof_does_not_prove_a_wrong_hvp(wrong, p):
    """The norm's proof (the one that proves the right HVP above) does not prove a wrong one.

    ``_prove_with(…, radicals=True)`` is the path :attr:`kernel_hvp_proved` proves the right
    form by; past it, ``kernel_hvp_proved`` tries ``is_zero`` on the definitions written out:
    ~24 s at p = 3 (False for the first four forms here), minutes at p = 10³ (it multiplies
    uₖ^998 out, as main did for every HVP there), under 1 s at p = 2.5 (the test below)."""
    bad = _with_hvp(p, wrong)
    assert bad._prove_with(bad.hvp_expr, bad._hessian_times_v, True) is False
    d = symloss.derive(TRIPLET, p=p)
    assert d._prove_with(d.hvp_expr, d._hessian_times_v, True) is True


@pytest.mark.parametrize("wrong", WRONG)
def test_a_wrong_hvp_is_not_proved(wrong):
    assert _with_hvp(2.5, wrong).kernel_hvp_proved is False
