"""``within(a, lo, hi)``: whether every element of a flat array lies in ``[lo, hi]`` (NaN does not).

The one value check :mod:`symloss.layout` makes on every call (probabilities in [0, 1], a
variance ≥ 0, class indices in ``0..C−1``). On a small array NumPy's reductions cost more than
the kernels' work (``min`` and ``max`` of 100 elements: ~3 µs; the gradient: ~0.5 µs), so where
numba is installed the check is one compiled pass (~0.4 µs), compiled on first use and cached on
disk; elsewhere it is NumPy's two reductions. Both give the same answer on every input.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["any_below", "within", "within_both"]


def _numpy_within(a: np.ndarray, lo: Any, hi: Any) -> bool:
    # NaN fails both comparisons (min and max keep it)
    return bool(np.minimum.reduce(a) >= lo and np.maximum.reduce(a) <= hi)


#: Elements per block of a compiled pass: within a block the test is a branch-free count
#: (LLVM vectorizes it: 1e6 float64 elements 1.5 -> 0.4 ms), and a miss ends the pass at the
#: block's end instead of at the element (an early return per element kept the loop scalar).
_BLOCK = 2048


def _loop_within(a: np.ndarray, lo: Any, hi: Any) -> bool:
    """The compiled pass (numba compiles this function; it returns after the first block
    with a miss)."""
    for b in range((a.size + _BLOCK - 1) // _BLOCK):
        start = b * _BLOCK
        miss = 0
        for i in range(min(_BLOCK, a.size - start)):  # (from 0: vectorized)
            v = a[start + i]
            miss += (v < lo) | (v > hi) | (v != v)
        if miss:
            return False
    return True


def _numpy_within_both(a: np.ndarray, lo: Any, hi: Any, b: np.ndarray, lo_b: Any,
                       hi_b: Any) -> bool:
    return ((not a.size or _numpy_within(a, lo, hi))
            and (not b.size or _numpy_within(b, lo_b, hi_b)))


def _loop_within_both(a: np.ndarray, lo: Any, hi: Any, b: np.ndarray, lo_b: Any,
                      hi_b: Any) -> bool:
    """Two compiled passes in one call (a call from Python costs more than a pass over 100
    elements): numba compiles this with :func:`_loop_within`'s compiled dispatcher
    (:data:`_within_compiled`) called inside, a native call."""
    return _within_compiled(a, lo, hi) and _within_compiled(b, lo_b, hi_b)


#: :func:`_loop_within` compiled (set before :func:`_loop_within_both` is compiled, which
#: calls it: numba reads a global when it compiles)
_within_compiled: Any = None


def _numpy_any_below(a: np.ndarray, bound: float, zero: bool, infinite: bool) -> bool:
    size = np.abs(a)
    return bool(np.any(((size < bound) & ((size != 0.0) | zero))
                       | ((size == np.inf) & infinite)))


def _loop_any_below(a: np.ndarray, bound: float, zero: bool, infinite: bool) -> bool:
    """The compiled pass: it returns after the first block with a ``|v| < bound`` (NaN is
    not) or, with ``infinite``, an infinite ``v``."""
    for b in range((a.size + _BLOCK - 1) // _BLOCK):
        start = b * _BLOCK
        hit = 0
        for i in range(min(_BLOCK, a.size - start)):
            size = abs(a[start + i])
            hit += ((size < bound) & (zero | (size != 0.0))) | (infinite & (size == np.inf))
        if hit:
            return True
    return False


def _compiled(loop: Callable[..., bool], before: Callable[[], None] | None = None
              ) -> Callable[..., bool] | None:
    """``loop`` compiled by numba -- called through its saved native entry where there is one
    (:mod:`symloss.native`: a warm first call imports no numba); ``before()`` runs before
    numba compiles it."""
    if os.environ.get("SYMLOSS_FAST", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if importlib.util.find_spec("numba") is None:
        return None
    from . import native
    from .cache import code_digest

    def dispatcher() -> Any:
        import numba

        if before is not None:
            before()
        return numba.njit(cache=True, nogil=True)(loop)

    if not native.enabled():
        return dispatcher()  # type: ignore[no-any-return]
    return native.Kernel(f"symloss._bounds@{code_digest()}", loop.__name__, dispatcher)


_impl: list[Callable[[np.ndarray, Any, Any], bool]] = []
_impl_both: list[Callable[..., bool]] = []
_impl_below: list[Callable[[np.ndarray, float, bool, bool], bool]] = []


def within(a: np.ndarray, lo: Any, hi: Any) -> bool:
    """Whether every element of the 1-D array ``a`` is in ``[lo, hi]`` (an empty one: True).

    >>> import numpy as np
    >>> within(np.array([0.0, 0.5, 1.0]), 0.0, 1.0), within(np.array([0.5, np.nan]), 0.0, 1.0)
    (True, False)
    """
    if not a.size:
        return True
    return _within_impl()(a, lo, hi)


def _within_impl() -> Callable[[np.ndarray, Any, Any], bool]:
    """:func:`_loop_within` compiled (or NumPy's pass), made once for :func:`within` and
    :func:`within_both` alike (two dispatchers would compile it twice)."""
    if not _impl:
        _impl.append(_compiled(_loop_within) or _numpy_within)
    return _impl[0]


def within_both(a: np.ndarray, lo: Any, hi: Any, b: np.ndarray, lo_b: Any, hi_b: Any) -> bool:
    """``within(a, lo, hi) and within(b, lo_b, hi_b)``, in one compiled call where numba is.

    >>> import numpy as np
    >>> p = np.array([0.25, 1.0])
    >>> within_both(p, 0.0, 1.0, p, 0.0, 1.0), within_both(p, 0.0, 1.0, -p, 0.0, 1.0)
    (True, False)
    """
    if not _impl_both:
        one = _within_impl()
        if one is _numpy_within:
            _impl_both.append(_numpy_within_both)
        else:
            def inner() -> None:  # numba's dispatcher, not a native entry's wrapper
                global _within_compiled
                _within_compiled = getattr(one, "dispatcher", lambda: one)()

            _impl_both.append(_compiled(_loop_within_both, inner) or _numpy_within_both)
    return _impl_both[0](a, lo, hi, b, lo_b, hi_b)


def any_below(a: np.ndarray, bound: float, zero: bool = True, infinite: bool = False) -> bool:
    """Whether some element of the flat array ``a`` has ``|a[i]| < bound`` (NaN has not; an
    exact 0 only with ``zero``), or, with ``infinite``, is ±inf:
    :func:`symloss.layout.scaled_from_underflow`'s test on every result of a derivation with
    a large weight (NumPy's abs, compare and any: three passes and two arrays, ~8 ms at 1e6).

    >>> import numpy as np
    >>> any_below(np.array([1.0, -1e-300, np.nan]), 1e-299), any_below(np.array([1.0]), 0.5)
    (True, False)
    >>> any_below(np.array([0.0, 1.0]), 0.5), any_below(np.array([0.0, 1.0]), 0.5, zero=False)
    (True, False)
    >>> any_below(np.array([np.inf]), 0.5), any_below(np.array([-np.inf]), 0.5, infinite=True)
    (False, True)
    """
    if not a.size:
        return False
    if not _impl_below:
        _impl_below.append(_compiled(_loop_any_below) or _numpy_any_below)
    return _impl_below[0](a, bound, zero, infinite)
