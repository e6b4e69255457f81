"""The stability map: the interval of inputs over which an implementation's gradient is exact.

For an implementation and a dtype, :func:`stability_map` moves the input along one number ``t``
(a logit, a probability, the first of C logits -- the family's ``ray``), scans a grid outwards
from the neutral input on both sides, and bisects between the last agreeing and the first
disagreeing grid point down to adjacent floating-point numbers of the dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .derive import Derivation
from .testing import (
    TOLERANCE_ULPS,
    Case,
    _as_derivation,
    _autograd,
    _check_domain,
    _effective_domain,
    _family,
    _neutral,
    torch_function,
)

__all__ = ["Boundary", "StabilityMap", "stability_map"]


@dataclass(frozen=True)
class Boundary:
    """Where agreement ends on one side, for one target.

    ``last_agreeing`` and ``first_disagreeing`` are neighbouring numbers of the dtype (after
    bisection); ``got`` and ``expected`` are the gradient there.
    """

    target: str
    side: str  # "lower" | "upper"
    last_agreeing: float
    first_disagreeing: float
    got: float
    expected: float


@dataclass
class StabilityMap:
    """The interval ``[lower, upper]`` (inputs) where the gradient agrees, for one dtype.

    ``scanned`` is the range looked at; ``whole_range`` is True when nothing disagreed there.
    """

    loss: str
    dtype: str
    scanned: tuple[float, float]
    lower: float
    upper: float
    boundaries: list[Boundary] = field(default_factory=list)

    @property
    def whole_range(self) -> bool:
        return not self.boundaries

    def __str__(self) -> str:
        lo, hi = self.scanned
        if self.whole_range:
            return (
                f"{self.loss} [{self.dtype}]: the gradient agrees over the whole scanned range "
                f"[{lo:.7g}, {hi:.7g}]"
            )
        lines = [
            f"{self.loss} [{self.dtype}]: the gradient agrees for inputs in "
            f"[{self.lower:.9g}, {self.upper:.9g}] (scanned [{lo:.7g}, {hi:.7g}])"
        ]
        digits = 9 if self.dtype == "float32" else 17
        for b in self.boundaries:
            lines.append(
                f"  {b.side} boundary, {b.target}: agrees at {b.last_agreeing:.{digits}g}, not at "
                f"{b.first_disagreeing:.{digits}g} (gradient {b.got:.{digits}g}, "
                f"exact {b.expected:.{digits}g})"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "dtype": self.dtype,
            "scanned": list(self.scanned),
            "agrees_on": [self.lower, self.upper],
            "whole_range": self.whole_range,
            "boundaries": [b.__dict__ for b in self.boundaries],
        }


def _row_agreement(
    derivation: Derivation, fn: Callable[[Any, Any], Any], x: np.ndarray, y: np.ndarray, dtype: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per batch row: agrees?, and the worst got/expected of the row."""
    case = Case("ray", x, y, dtype)
    try:
        _, got = _autograd(fn, case)
    except Exception:  # the implementation failed on these inputs: no agreement
        got = np.full(x.shape, np.nan)
    with np.errstate(all="ignore"):
        ref = np.asarray(derivation.grad_fn(x, y), dtype=np.float64)
        neutral = np.abs(
            np.asarray(
                derivation.grad_fn(np.full_like(x, _neutral(derivation)), y), dtype=np.float64
            )
        )
    m = x.shape[0]
    ref2, got2 = ref.reshape(m, -1), np.asarray(got, dtype=np.float64).reshape(m, -1)
    scale = np.maximum(
        np.nanmax(np.abs(np.where(np.isfinite(ref2), ref2, 0)), axis=1),
        np.nanmax(neutral.reshape(m, -1), axis=1),
    )
    tiny = float(np.finfo(dtype).smallest_normal)
    unit = np.spacing(np.maximum(scale, tiny).astype(dtype)).astype(np.float64)
    with np.errstate(all="ignore"):
        err = np.abs(got2 - ref2) / unit[:, None]
    same = (got2 == ref2) | (np.isnan(got2) & np.isnan(ref2))
    err = np.where(same, 0.0, np.where(np.isnan(err), np.inf, err))
    worst = np.argmax(err, axis=1)
    rows = np.arange(m)
    return np.all(err <= TOLERANCE_ULPS, axis=1), got2[rows, worst], ref2[rows, worst]


def _grid(center: float, end: float, bounded: bool, points: int, dtype: str) -> np.ndarray:
    """Points from ``center`` (excluded) to ``end`` (included), dense near both ends."""
    span = abs(end - center)
    sign = 1.0 if end > center else -1.0
    with np.errstate(all="ignore"):
        dist = [np.geomspace(min(1e-3, span / 2), span, points)]
    if bounded:
        tiny = float(np.finfo(dtype).eps) * max(abs(end), 1e-300)
        tiny = max(tiny, float(np.finfo(dtype).smallest_normal))
        with np.errstate(all="ignore"):
            dist.append(span - np.geomspace(tiny, span / 2, points))
    t = center + sign * np.concatenate(dist)
    t = np.unique(t.astype(dtype).astype(np.float64))
    t = t[(t != center) & (np.sign(t - center) == sign)]
    return t[np.argsort(np.abs(t - center))]


def _bisect(
    agree: Callable[[float], tuple[bool, float, float]], good: float, bad: float, dtype: str
) -> tuple[float, float, float, float]:
    """Narrow ``good`` (agrees) / ``bad`` (does not) to neighbouring numbers of ``dtype``."""
    np_dtype = np.dtype(dtype).type
    _, got, expected = agree(bad)
    for _ in range(200):
        if np.nextafter(np_dtype(good), np_dtype(bad)) == np_dtype(bad):
            break
        if good * bad > 0 and max(abs(good), abs(bad)) > 4 * min(abs(good), abs(bad)) > 0:
            mid = float(np.sign(good) * np.sqrt(abs(good)) * np.sqrt(abs(bad)))
        else:
            mid = good + (bad - good) / 2
        mid = float(np_dtype(mid))
        if mid in (good, bad):
            break
        ok, g, e = agree(mid)
        if ok:
            good = mid
        else:
            bad, got, expected = mid, g, e
    return good, bad, got, expected


def stability_map(
    name: str | Derivation,
    fn: Callable[[Any, Any], Any] | None = None,
    *,
    dtype: str = "float32",
    domain: tuple[float, float] | None = None,
    points: int = 160,
    **options: Any,
) -> StabilityMap:
    """The interval of inputs around the neutral one where ``fn``'s gradient is exact.

    Args:
        name: a loss name or alias, or a :class:`Derivation`.
        fn: the implementation ``fn(input, target)`` on tensors; torch's own twin by default.
        dtype: ``"float32"`` or ``"float64"``.
        domain: ``(lo, hi)`` to scan; by default the loss's whole finite range.
        points: grid points per side before bisection.
        **options: the loss's options.

    Returns:
        A :class:`StabilityMap`: ``lower``, ``upper``, and the boundaries with the gradient
        there.

    Example::

        >>> m = stability_map("bce", dtype="float32")  # torch's BCELoss∘sigmoid
        >>> m.upper  # doctest: +SKIP
        16.63553...
    """
    derivation = _as_derivation(name, options)
    fn = fn or torch_function(derivation)
    if dtype not in ("float32", "float64"):
        from .errors import SymlossValueError

        raise SymlossValueError(f"dtype must be float32 or float64, got {dtype!r}")
    lo, hi = _effective_domain(derivation, dtype, _check_domain(domain))
    big = float(np.finfo(dtype).max)
    center = min(max(_neutral(derivation), lo), hi)
    ray = _family(derivation).ray
    labels = [label for label, _, _ in ray(derivation, np.array([center]), dtype)]
    lower, upper = lo, hi
    boundaries: list[Boundary] = []
    for which, label in enumerate(labels):

        def agree_at(
            t: np.ndarray, which: int = which
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            _, x, y = ray(derivation, t, dtype)[which]
            return _row_agreement(derivation, fn, x, y, dtype)

        def agree_one(t: float, agree_at: Any = agree_at) -> tuple[bool, float, float]:
            ok, got, ref = agree_at(np.array([t]))
            return bool(ok[0]), float(got[0]), float(ref[0])

        for side, end in (("lower", lo), ("upper", hi)):
            if end == center:
                continue
            bounded = abs(end) < big
            t = _grid(center, end, bounded, points, dtype)
            ok, _, _ = agree_at(t)
            if np.all(ok):
                continue
            first = int(np.argmin(ok))
            good = center if first == 0 else float(t[first - 1])
            last, bad, got, expected = _bisect(agree_one, good, float(t[first]), dtype)
            boundaries.append(Boundary(label, side, last, bad, got, expected))
            if side == "lower":
                lower = max(lower, last)
            else:
                upper = min(upper, last)
    return StabilityMap(derivation.name, dtype, (lo, hi), lower, upper, boundaries)
