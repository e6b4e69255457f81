"""kl_div's float64 value y(log y − z) through its first tier (:func:`symloss._fastmath.log_sub_q`):
float64 with an error bound and Ziv's rounding test, the double-double pair only where the test
declines. An accepted value is the exact value rounded once, and the pair's rounding too, so the
numba kernels keep the NumPy evaluator's bits (tests/test_values_rounded_once.py); the tier
takes nearly every random element and declines where log y − z cancels."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import symloss
from symloss import fast

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba is not installed")


def _exact_rounded(s: float, x: float, z: float) -> float:
    """s·(log x − z) at 300 digits, rounded once to float64 (mpmath rounds to nearest)."""
    with mpmath.workdps(300):
        v = mpmath.mpf(s) * (mpmath.log(mpmath.mpf(x)) - mpmath.mpf(z))
    with mpmath.workprec(53):
        return float(+v)


def _points(n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Soft targets from 10⁻³⁰⁰ to 1 against random inputs, and the hard points: z the float
    nearest log y and its neighbours (log y − z cancels: the tier declines), y = 0 and 1,
    subnormal y, infinite and NaN z."""
    rng = np.random.default_rng(8)
    y = np.concatenate([rng.random(n), 10.0 ** rng.uniform(-300, 0, n)])
    z = rng.standard_normal(2 * n) * 10.0 ** rng.uniform(-3, 3, 2 * n)
    near = rng.random(200)
    logs = np.log(near)
    y = np.concatenate([y, near, near, near, [0.0, 0.0, 1.0, 1.0, 5e-324, 2e-310, 0.5, 0.5, 0.5]])
    z = np.concatenate([z, logs, np.nextafter(logs, np.inf), np.nextafter(logs, -np.inf),
                        [1.5, -np.inf, 0.0, 1e-300, -3.0, 2.0, np.inf, -np.inf, np.nan]])
    return z, y


def test_the_tier_is_the_exact_value_rounded_once_where_it_answers():
    from symloss._fastmath import log_sub_q

    z, y = _points()
    q = np.array([log_sub_q(b, b, a) for a, b in zip(z, y, strict=True)])
    answered = ~np.isnan(q)
    # the cheap path, nearly always: every random element whose value is above 2⁻⁸⁹⁰
    with np.errstate(all="ignore"):
        size = np.abs(y[:8000] * (np.log(y[:8000]) - z[:8000]))
    big = size > 2.0**-890
    assert big.mean() > 0.9 and answered[:8000][big].mean() > 0.999, answered[:8000][big].mean()
    # where log y − z cancels to 2⁻⁵² of the terms, Ziv's test declines (the pair answers)
    assert not answered[8000:8600].any()
    assert not answered[-9:].any()  # 0, log 0, below 2⁻⁹⁰⁰, beyond the pair's range, inf, NaN
    for i in np.flatnonzero(answered)[::7]:
        assert q[i] == _exact_rounded(y[i], y[i], z[i]), (y[i], z[i], q[i])


def test_numba_kernels_keep_the_numpy_evaluators_bits():
    z, y = _points()
    d = symloss.derive("kl_div", reduction="none")
    kernels = np.asarray(d.loss_fn(z, y), dtype=np.float64)
    with fast.disabled():
        numpy = np.asarray(d.loss_fn(z, y), dtype=np.float64)
    same = (kernels.view(np.int64) == numpy.view(np.int64)) | (np.isnan(kernels) & np.isnan(numpy))
    assert same.all(), np.flatnonzero(~same)[:10]
    for kw in ({"reduction": "mean"}, {"reduction": "batchmean"}, {"reduction": "sum"}):
        dk = symloss.derive("kl_div", **kw)
        finite = np.isfinite(z)
        a = float(dk.loss_fn(z[finite], y[finite]))
        with fast.disabled():
            b = float(dk.loss_fn(z[finite], y[finite]))
        assert a == b, (kw, a, b)
