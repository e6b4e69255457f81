"""symloss._statements.lower: printed kernel expressions as statements (issue 8: compile time
and the two-pass float-first kernels). The statements must compute the same numbers as the
expression, each call once, and keep a lazy arm lazy."""

import math

import numpy as np
import pytest

from symloss._statements import lower


def _run(code: str, assignments, env, plain=False):
    lines, tested = lower(assignments, "    ", plain=plain)
    src = "def _f(" + ", ".join(env) + "):\n    ok = True\n" + "\n".join(lines) + \
        f"\n    return {assignments[-1][0]}, ok\n"
    scope = {"math": math}
    scope.update(CALLS)
    exec(src, scope)
    return scope["_f"](*env.values()), lines, tested


LOG: list[str] = []


def _logged(name, fn):
    def call(*args):
        LOG.append(name)
        return fn(*args)
    return call


CALLS = {
    "sigmoid_m": _logged("sigmoid_m", lambda x: 1 / (1 + math.exp(-x))),
    "softplus_m": _logged("softplus_m", lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0)),
    "dd_exact": _logged("dd_exact", lambda x, y: x - y),
    "fits_v": _logged("fits_v", lambda p, m: abs(p) >= 0.015625 * m),
    "fits_m": _logged("fits_m", lambda p, m: False),
}

EXPRESSIONS = [
    "sigmoid_m(-x) * sigmoid_m(x) + 2 * sigmoid_m(-x) * softplus_m(x)",
    "(x) * (softplus_m(-x) if x != 0.0 else 0.0) + (1 - x) * (softplus_m(x) if 1 - x != 0.0 else 0.0)",
    "math.nan if math.isnan(y) else ((0) if (y == 0) or (y == 1) else (sigmoid_m(x) - y) / 3)",
    "((sigmoid_m(x) - y) if fits_v(sigmoid_m(x) - y, sigmoid_m(x) + abs(y)) else dd_exact(sigmoid_m(x), y))",
    "-x ** 2 / 7 + (y - x) * 1e-300 - 2 ** -3",
]


@pytest.mark.parametrize("code", EXPRESSIONS)
def test_statements_compute_the_expression_bit_for_bit(code):
    rng = np.random.default_rng(3)
    for x, y in zip(rng.normal(size=50) * 20, np.r_[rng.uniform(size=46), 0.0, 1.0, 0.5, np.nan],
                    strict=True):
        env = {"x": float(x), "y": float(y)}
        want = eval(code, {"math": math, **CALLS}, dict(env))
        (got, _), _, _ = _run(code, [("res", code)], env)
        assert got == want or (math.isnan(got) and math.isnan(want)), (code, x, y)


def test_each_call_is_computed_once():
    code = EXPRESSIONS[0]
    lines, _ = lower([("res", code)], "")
    text = "\n".join(lines)
    assert text.count("sigmoid_m(-x)") == 1 and text.count("sigmoid_m(x)") == 1
    LOG.clear()
    _run(code, [("res", code)], {"x": 0.3, "y": 0.0})
    assert LOG.count("sigmoid_m") == 2 and LOG.count("softplus_m") == 1


def test_calls_are_shared_across_assignments_but_not_out_of_a_branch():
    steps = [("h0", "sigmoid_m(x) if y == 0.0 else softplus_m(x)"),
             ("h1", "sigmoid_m(x) + softplus_m(x)"), ("res", "h0 + h1")]
    lines, _ = lower(steps, "")
    text = "\n".join(lines)
    # each computed once inside its arm, and again after the branch (an arm's value is not
    # defined where the other arm was taken)
    assert text.count("sigmoid_m(x)") == 2 and text.count("softplus_m(x)") == 2
    (got, _), _, _ = _run("", steps, {"x": 0.5, "y": 0.0})
    s = 1 / (1 + math.exp(-0.5))
    assert got == s + (s + math.log1p(math.exp(-0.5)) + 0.5)


def test_an_arm_is_evaluated_only_where_taken():
    code = EXPRESSIONS[3]
    LOG.clear()
    (got, _), _, _ = _run(code, [("res", code)], {"x": 0.1, "y": 0.9})
    assert "dd_exact" not in LOG  # the float form fits: no double-double
    LOG.clear()
    s = 1 / (1 + math.exp(-0.1))
    (got, _), _, _ = _run(code, [("res", code)], {"x": 0.1, "y": s})
    assert LOG.count("dd_exact") == 1 and got == 0.0


def test_plain_mode_takes_the_float_form_and_records_the_test():
    code = EXPRESSIONS[3]
    s = 1 / (1 + math.exp(-0.1))
    LOG.clear()
    (got, ok), _, tested = _run(code, [("res", code)], {"x": 0.1, "y": s}, plain=True)
    assert tested and not ok and got == 0.0 and "dd_exact" not in LOG
    (got, ok), _, _ = _run(code, [("res", code)], {"x": 0.1, "y": 0.9}, plain=True)
    assert ok and got == s - 0.9


def test_a_test_that_never_passes_takes_its_exact_arm():
    code = "(sigmoid_m(x) - y) if fits_m(sigmoid_m(x) - y, sigmoid_m(x) + abs(y)) else dd_exact(x, y)"
    lines, tested = lower([("res", code)], "", plain=True)
    text = "\n".join(lines)
    assert not tested and "fits_m" not in text and "dd_exact(x, y)" in text


def test_exact_mode_takes_every_accurate_arm_without_a_branch():
    """The second pass of a float64 two-pass kernel: each float-first test taken as failed, its
    accurate arm computed unconditionally (no ``if``, so the loop vectorizes)."""
    code = "(exp_m(x) - y) if fits1_m(exp_m(x) - y, exp_m(x) + abs(y)) else dd_exact(x, y)"
    lines, tested = lower([("res", code)], "", exact=True)
    text = "\n".join(lines)
    assert not tested and "fits1_m" not in text and "if " not in text
    assert "dd_exact(x, y)" in text and lines[-1].startswith("res = ")
