"""Hostile formulas for ``custom_loss`` / ``symloss check --expr``: a table, each row with its
expected outcome. Every refusal is one SymlossError line naming the problem, found on the
syntax tree before SymPy builds anything; every accepted formula derives within the budget
(simplification and proofs in a worker process, stopped at ``FormulaLimits.time_limit``).
``benchmarks/formula_budget.py`` measures the time and memory of every row.
"""

from __future__ import annotations

import numpy as np
import pytest

from symloss.custom import FormulaLimits, custom_loss, parse_loss
from symloss.errors import SymlossError

# (formula, expected): ("error", fragment of the message) or ("ok", None)
FORMULAS: list[tuple[str, tuple[str, str | None]]] = [
    # the formulas that hung, crashed or ran out of memory
    ("sigmoid(" * 20 + "z" + ")" * 20, ("error", "nested more than 4")),
    ("(z+y+1)**64*(z-y+2)**64", ("error", "exponent 64")),
    ("((((9**64)**64)**64)**64)**64*z", ("error", "exponent 64")),
    ("((z+y+1)**64)**64", ("error", "exponent 64")),
    ("z/0", ("error", "not finite")),
    ("log(0)*z", ("error", "not finite")),
    ("(9**64)**64", ("error", "exponent 64")),
    ("sqrt(-1)*z", ("error", "not a real number")),
    # more of the same kinds
    ("9**9**9", ("error", "too large")),
    ("9**16**16", ("error", "too large")),
    ("(9**16)**13*z", ("error", "digits")),
    ("z**-17", ("error", "too large")),
    ("z**(1/0)", ("error", "not finite")),
    ("0**-1*z", ("error", "not finite")),
    ("log(-1)*z", ("error", "not a real number")),
    ("(-8)**(1/3)*z", ("error", "not a real number")),
    ("1e999*z", ("error", "overflows")),
    ("1e308*1e308*z", ("error", "overflows")),
    ("1j*z", ("error", "not allowed")),
    ("12345678901234567890*z", ("error", "digits")),
    ("(z+y)**9*(z-y)**8", ("error", "degree 17")),
    ("(z*y)**16*z", ("error", "degree 32")),
    ("exp(exp(exp(exp(exp(z)))))", ("error", "nested more than 4")),
    ("z" * 600, ("error", "at most 500 characters")),
    ("-(" * 50 + "z" + ")" * 50, ("error", "nested deeper")),
    ("-" * 60 + "z", ("error", "nested deeper")),
    ("sigmoid(" * 50 + "z" + ")" * 50, ("error", "nested")),
    ("z+" * 150 + "z", ("error", "more than the limit 200")),
    # not the grammar
    ("", ("error", "empty")),
    ("   ", ("error", "empty")),
    ("z\x00", ("error", "not a formula")),
    ("z\u202e", ("error", "not a formula")),
    ("__import__('os').system('echo pwned')", ("error", "not a function")),
    ("z.__class__", ("error", "not allowed")),
    ("lambda: 1", ("error", "not allowed")),
    ("[z]", ("error", "not allowed")),
    ("y[0]", ("error", "not allowed")),
    ("z if y else 1", ("error", "not allowed")),
    ("'text'", ("error", "not allowed")),
    ("True*z", ("error", "not allowed")),
    ("None", ("error", "not allowed")),
    ("z @ y", ("error", "not allowed")),
    ("z // y", ("error", "not allowed")),
    ("z % y", ("error", "not allowed")),
    ("~z", ("error", "not allowed")),
    ("not z", ("error", "not allowed")),
    ("z < y", ("error", "not allowed")),
    ("z and y", ("error", "not allowed")),
    ("sigmoid(z, y)", ("error", "exactly one argument")),
    ("sigmoid(x=z)", ("error", "exactly one argument")),
    ("sigmoid()", ("error", "exactly one argument")),
    ("σ(z)", ("error", "not a function")),
    ("x + 1", ("error", "unknown name")),
    ("p*z", ("error", "not both")),
    ("z +", ("error", "not a formula")),
    # accepted: within every limit
    ("y*softplus(-z) + (1-y)*softplus(z)", ("ok", None)),
    ("(z+y+1)**16", ("ok", None)),
    ("(z+y)**8*(z-y)**8", ("ok", None)),
    ("(z*y+z+y+1)**8", ("ok", None)),
    ("exp(exp(exp(exp(z))))", ("ok", None)),
    ("sigmoid(sigmoid(sigmoid(sigmoid(z))))", ("ok", None)),
    ("z**z**z**z", ("ok", None)),
    ("(9**16)**11*z", ("ok", None)),
    ("0.1**16*z", ("ok", None)),
    ("2**0.5*(z-y)**2", ("ok", None)),
    ("abs(z-y) + tanh(z)*y + sqrt(1 + z**2)", ("ok", None)),
    ("clamped_log(p)*y + log(1 - p)*(1 - y)", ("ok", None)),
    ("1_000*z + 0x10*y", ("ok", None)),
    ("ｚ*y", ("ok", None)),  # Python reads the full-width letter as z (NFKC)
    ("(" * 150 + "z" + ")" * 150, ("ok", None)),  # parentheses alone add no depth
]


@pytest.mark.parametrize(("formula", "expected"), FORMULAS,
                         ids=[f"{i}:{f[:30]!r}" for i, (f, _) in enumerate(FORMULAS)])
def test_hostile_formula(formula, expected):
    kind, fragment = expected
    if kind == "ok":
        d = custom_loss(formula)
        assert d.gradient is not None  # derived (simplified within the budget, or raw)
        x = np.linspace(0.05, 0.95, 7) if "p" in formula else np.linspace(-3.0, 3.0, 7)
        d.grad_fn(x, np.full(7, 0.5))
        return
    with pytest.raises(SymlossError) as info:
        custom_loss(formula)
    message = str(info.value)
    assert message and "\n" not in message, message
    assert fragment.lower() in message.lower(), message


def test_the_table_is_large_enough_to_mean_something():
    assert len(FORMULAS) >= 60


def test_limits_are_options_of_custom_loss():
    tight = FormulaLimits(max_exponent=2)
    with pytest.raises(SymlossError, match="at most 2"):
        custom_loss("(z - y)**3", limits=tight)
    loose = FormulaLimits(max_exponent=64, max_degree=64)
    parse_loss("(z - y)**64", limits=loose)  # built, not derived: only the parse is asked
    with pytest.raises(SymlossError, match="FormulaLimits"):
        custom_loss("z", limits="tight")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{"max_depth": 0}, {"time_limit": float("nan")},
                                 {"time_limit": -1.0}, {"max_exponent": float("inf")},
                                 {"max_nodes": 2.5}, {"max_length": True}])
def test_limits_are_validated(bad):
    with pytest.raises(SymlossError, match=next(iter(bad))):
        FormulaLimits(**bad)


def test_a_proof_past_the_time_limit_is_stated_as_such():
    d = custom_loss("sigmoid(sigmoid(sigmoid(sigmoid(z*y))))*(z+y+1)**8",
                    canonical="z", limits=FormulaLimits(time_limit=0.3))
    assert d.proved is False
    assert d.proof_note.startswith("not proved within 0.3 s")
    # the gradient is sympy.diff's, unsimplified where simplification ran out of time
    assert d.gradient.has(d.input) and d.text()


def test_a_proof_within_the_time_limit_is_a_proof():
    d = custom_loss("softplus(z) - y*z", canonical="sigmoid(z) - y")
    assert d.proved and d.proof_note == "proved"


def test_sympy_expressions_are_checked_too():
    import sympy as sp

    from symloss.custom import Z

    with pytest.raises(SymlossError, match="not finite"):
        custom_loss(Z * sp.zoo)
    with pytest.raises(SymlossError, match="not a real"):
        custom_loss(Z * sp.I)
    with pytest.raises(SymlossError, match="nodes"):
        custom_loss(sp.Add(*(Z**k for k in range(1, 900))))
