"""``loss_fn`` / ``grad_fn`` / ``hvp_fn`` of a derivation: lay out, evaluate, finish.

The layers, arrows pointing down only::

    derive ──► evaluate ──► fast (numba evaluator)  ──► layout (the one bookkeeping)
                       ├──► numeric (NumPy evaluator) ─┤
                       └──► exact (mpmath, for what neither could certify)

Every call is laid out once by :func:`symloss.layout.lay_out` (validation, kernel layout,
mask, denominator), evaluated by one evaluator, and finished by the layout (reduction, shape,
dtype). The numba kernels answer at every size when numba is installed and enabled; the NumPy
evaluator answers otherwise -- and for a derivation whose expressions the numba printer does
not handle, at every size, so one derivation never gives two answers on the same path.

No tiered first call (the NumPy evaluator answering while a background thread compiles the
kernels), though it would meet the cold-start goal (a warm first ``grad_fn`` of the NumPy
evaluator: ~0.1 s; numba's: ``import numba`` and its target's first initialisation alone
are ~0.5 s, a cold compile 2-20 s). Measured with a prototype (issue 8; 2 loaded CPUs):
a ``fork()`` during the background compile hung the child in 3 of 5 tries (numba's locks
held by a thread the child does not have: every DataLoader worker would risk it); a busy
caller stretches the compile 6x (2.3 s of CPU took 13.7 s) with calls stalled up to 0.28 s;
and one process's results would change, by up to 2 ulp (focal, float64), when the kernels
arrive. ``SYMLOSS_FAST=0`` chooses the NumPy evaluator for a process that is short-lived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import fast
from .exact import rescue
from .layout import (
    SCALE_CHECKED,
    Layout,
    Numeric,
    Planner,
    cast,
    check_arity,
    check_wrt,
    largest_scale,
    restore_unrescued,
    scaled_from_underflow,
    unbroadcast,
)

if TYPE_CHECKING:
    from .derive import Derivation
    from .numeric import NumpyEvaluator

__all__ = ["Numeric", "build"]


def build(derivation: Derivation) -> Numeric:
    """The numeric functions of ``derivation`` (kernels are compiled on first use)."""
    if derivation.spec.family == "rows":  # row-wise losses (norms, dot products): symloss.rows
        from .rows import build as build_rows

        return build_rows(derivation)
    evaluator = _Evaluator(derivation)
    return Numeric(loss=evaluator.loss, grad=evaluator.grad, hvp=evaluator.hvp,
                   hess_diag=evaluator.hess_diag)


class _Evaluator:
    def __init__(self, derivation: Derivation) -> None:
        self.derivation = derivation
        self._numpy: NumpyEvaluator | None = None  # imported on first use
        self.lay_out = Planner(derivation).call
        #: a weight or pos_weight above 2 may lift an underflowed factor (scaled_from_underflow)
        self._largest = largest_scale(derivation)
        self._large_scales = self._largest > SCALE_CHECKED
        self._fast: Any = None  # fast.FastKernels, False where not available

    @property
    def numpy(self) -> NumpyEvaluator:
        """The NumPy evaluator: where numba is off or missing, and for ``wrt`` gradients."""
        if self._numpy is None:
            from .numeric import NumpyEvaluator

            self._numpy = NumpyEvaluator(self.derivation)
        return self._numpy

    def _fast_kernels(self, arrays: tuple[Any, ...]) -> Any:
        """The numba kernels for these arrays, or ``None``: the NumPy evaluator answers."""
        if not arrays or not fast.worth_it(self.derivation, arrays[0]):
            return None
        if self._fast is None:
            self._fast = fast.build(self.derivation) or False
        return self._fast or None

    def _rescued(self, layout: Layout, out: np.ndarray, flagged: bool | None, what: str,
                 v: np.ndarray | None = None) -> np.ndarray:
        """The per-element ``out`` with every uncertified element rescued (the layout's shape).

        ``flagged``: the numba kernel's flag (whether it left an element NaN for
        :mod:`symloss.exact`); ``None`` from the NumPy evaluator, whose NaN are searched for.
        Where a weight above 2 may have lifted an underflowed factor, the elements it may have
        (:func:`~symloss.layout.scaled_from_underflow`) are rescued too, and any the exact
        evaluation leaves NaN get their evaluated value back.
        """
        if not self._large_scales:  # the hot path: one test, rescue's own fast exit inlined
            return out if flagged is False else rescue(self.derivation, layout, out, what, v)
        marked = scaled_from_underflow(layout, out, what, self._largest)
        if marked or flagged is not False:
            out = rescue(self.derivation, layout, out, what, v)
        restore_unrescued(out, marked)
        return out

    def loss(self, *arrays: Any) -> Any:
        layout = self.lay_out(arrays)
        kernels = self._fast_kernels(arrays)
        result = kernels.loss(layout) if kernels is not None else None
        per_element, flagged = result if result is not None else (self.numpy.loss(layout), None)
        return layout.reduce_loss(self._rescued(layout, per_element, flagged, "loss"))

    def grad(self, *arrays: Any, wrt: str = "input") -> np.ndarray:
        if wrt != "input":
            check_wrt(self.derivation, wrt)
            return self._grad_wrt(self.lay_out(arrays), arrays, wrt)
        layout = self.lay_out(arrays)
        kernels = self._fast  # the hot path: the kernels built, one cheap test (MIN_SIZE)
        if not (kernels and fast.worth_it(self.derivation, arrays[0])):
            kernels = self._fast_kernels(arrays)
        result = kernels.grad(layout) if kernels is not None else None
        out, flagged = result if result is not None else (self.numpy.grad(layout), None)
        return layout.from_kernel(self._rescued(layout, out, flagged, "grad"))

    def _grad_wrt(self, layout: Layout, arrays: tuple[Any, ...], wrt: str) -> np.ndarray:
        """The gradient of a broadcast argument: summed over the axes it was broadcast along."""
        spec = self.derivation.spec
        per_element = layout.from_kernel(self.numpy.grad_wrt(layout, wrt), np.dtype(np.float64))
        arg = np.asarray(arrays[spec.arguments.index(wrt)])
        dtype = arg.dtype if arg.dtype in (np.float32, np.float64, np.float16) else np.float64
        return cast(unbroadcast(per_element, arg.shape), np.dtype(dtype))

    def hvp(self, *arrays: Any) -> np.ndarray:
        *given, v = arrays
        check_arity(self.derivation, tuple(given), "v")
        layout = self.lay_out(tuple(given))
        dv = layout.direction(v, self.derivation.name)
        kernels = self._fast_kernels(tuple(given))
        result = kernels.hvp(layout, dv) if kernels is not None else None
        out, flagged = result if result is not None else (self.numpy.hvp(layout, dv), None)
        return layout.from_kernel(self._rescued(layout, out, flagged, "hvp", dv))

    def hess_diag(self, *arrays: Any) -> np.ndarray:
        """The unreduced diagonal of the Hessian, per element (reduction ignored)."""
        layout = self.lay_out(arrays)
        kernels = self._fast_kernels(arrays)
        result = kernels.hess(layout) if kernels is not None else None
        out, flagged = result if result is not None else (self.numpy.hess(layout), None)
        return layout.from_kernel(self._rescued(layout, out, flagged, "hess"))
