"""Compile a loss's kernels ahead of its first call: :func:`warm` and ``symloss warm``.

A fresh process whose caches are empty pays for numba compiling every kernel its first call
reaches: 1-13 s a loss on a 2-core machine (benchmarks/README.md), and at least numba's own
floor (importing numba and compiling one trivial kernel, about 1 s there: ``speed.py
--first-call-only``). Once compiled, the kernels live in the cache folder
(:func:`symloss.cache.cache_dir`, numba's cache beside them) and a later process's first call
takes 0.04-0.13 s: a serial kernel is linked from its saved object without importing numba
(:mod:`symloss.native`), a parallel one loaded from numba's cache.

:func:`warm` moves that cost to a moment the user chooses -- a container image's build, a CI
cache's set-up step, an install script -- by running the loss's own checker battery
(:func:`symloss.testing.battery`: typical and extreme inputs, every declared target domain, the
kinks) through ``loss_fn``, ``grad_fn`` (every differentiable array), ``hvp_fn`` and
``hess_diag_fn``, which compiles the kernels those inputs reach, the later tiers that
near-cancelling inputs take included; with ``large=True`` also each dtype's first case repeated
to :data:`symloss.fast.PARALLEL_MIN` elements, for the parallel kernels. It computes nothing
that is kept: it only fills the caches, so it changes no result.

The caches are keyed on the machine (numba's and symloss's kernels on the CPU's name and
features, the saved objects on the versions of numba, llvmlite, numpy and Python): a cache
warmed on one machine serves the same machine, or an identical one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import SymlossValueError

if TYPE_CHECKING:
    from .cases import Case
    from .derive import Derivation

__all__ = ["Warmed", "warm"]


@dataclass(frozen=True)
class Warmed:
    """What :func:`warm` did for one derivation.

    Attributes:
        loss: the loss's catalogue name.
        dtypes: the dtypes warmed.
        calls: how many calls it made (each case × each function).
        seconds: the wall time it took.
        cache: the folder the kernels were saved in; ``None`` where nothing compiles (numba is
            not installed, or ``SYMLOSS_FAST=0``).
    """

    loss: str
    dtypes: tuple[str, ...]
    calls: int
    seconds: float
    cache: Path | None

    def __str__(self) -> str:
        where = (f"cache {self.cache}" if self.cache is not None
                 else "nothing compiled: the NumPy evaluator needs no warming")
        return (f"{self.loss}: {self.calls} calls ({', '.join(self.dtypes)}) in "
                f"{self.seconds:.1f} s; {where}")


def _repeated(case: Case, arrays: list[np.ndarray], size: int) -> list[np.ndarray]:
    """``arrays`` with every array that runs along the input's first axis repeated along it,
    so that the input holds at least ``size`` elements (the others -- options, broadcast
    scalars -- unchanged)."""
    first = np.asarray(case.input)
    if first.ndim == 0 or first.size == 0:
        return arrays
    times = -(-size // first.size)
    rows = first.shape[0]
    return [np.concatenate([a] * times, axis=0)
            if np.ndim(a) >= 1 and np.shape(a)[0] == rows else a for a in arrays]


def warm(
    derivation: Derivation,
    *,
    dtypes: Sequence[str] = ("float32", "float64"),
    large: bool = True,
    seed: int = 0,
) -> Warmed:
    """Compile and save every kernel ``derivation``'s checker battery reaches.

    Args:
        derivation: the loss, with the options it will be called with (a class weight, a
            label smoothing: each takes kernels of its own).
        dtypes: ``"float32"``, ``"float64"`` or both.
        large: also call on inputs of :data:`symloss.fast.PARALLEL_MIN` elements, which take
            the parallel kernels (a few seconds more, and about 100 MB).
        seed: the battery's seed.

    Returns:
        A :class:`Warmed` record.

    Raises:
        SymlossValueError: a dtype other than float32 or float64.

    >>> import symloss
    >>> from symloss.warm import warm
    >>> print(warm(symloss.derive("mse_loss"), dtypes=["float64"], large=False))  # doctest: +ELLIPSIS
    mse_loss: ... calls (float64) in ... s; ...
    """
    from . import fast
    from .cache import cache_dir
    from .testing import battery

    dtypes = tuple(dtypes)
    if not dtypes:
        raise SymlossValueError("dtypes must name float32, float64 or both; got none")
    spec = derivation.spec
    wrt = [arg.name for arg in spec.arguments_for(derivation.options) if arg.differentiable]
    start = time.perf_counter()
    cases = battery(derivation, seed, dtypes=dtypes)
    runs: list[list[np.ndarray]] = [case.arrays(spec) for case in cases]
    if large:
        for dtype in dtypes:
            first = next((c for c in cases if c.dtype == dtype and not c.extreme), None)
            if first is not None:
                runs.append(_repeated(first, first.arrays(spec), fast.PARALLEL_MIN))
    calls = 0
    for arrays in runs:
        derivation.loss_fn(*arrays)
        for name in wrt:
            derivation.grad_fn(*arrays, wrt=name)
        derivation.hvp_fn(*arrays, np.ones_like(arrays[0]))
        derivation.hess_diag_fn(*arrays)
        calls += 3 + len(wrt)
    compiled = fast.available() and fast.enabled()
    return Warmed(loss=spec.name, dtypes=dtypes, calls=calls,
                  seconds=time.perf_counter() - start, cache=cache_dir() if compiled else None)
