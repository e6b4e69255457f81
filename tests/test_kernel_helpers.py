"""The generated kernel modules call kernel-only twins of their helpers (compiled without numba's
CPython and C-callable wrappers: cheaper to compile), while the helpers of symloss._fastmath,
symloss.ddouble.jitted() and symloss._fastmath.vector_dd() stay callable from Python; a twin
computes its original's bits."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

import symloss
from symloss import fast

pytestmark = pytest.mark.skipif(not fast.available(), reason="numba not installed")

RNG_SEED = 23


def _reachable(fns: Iterable[Any]) -> list[Any]:
    """``fns`` and every numba function their code reaches through its globals."""
    from numba.core.dispatcher import Dispatcher

    seen: dict[int, Any] = {}
    stack = list(fns)
    while stack:
        fn = stack.pop()
        if id(fn) not in seen:
            seen[id(fn)] = fn
            stack.extend(v for v in fn.py_func.__globals__.values() if isinstance(v, Dispatcher))
    return list(seen.values())


def _kernel_only(fn: Any) -> bool:
    return bool(fn.targetoptions.get("no_cpython_wrapper")
                and fn.targetoptions.get("no_cfunc_wrapper"))


def test_kernel_modules_call_wrapper_free_twins() -> None:
    """Every helper a generated kernel module holds (the float helpers, the ``dd_`` and ``vd_``
    pairs, ``ftz``), and every helper their code calls in turn, is compiled without wrappers;
    each runs its Python-callable original's code (one definition), which keeps its wrappers."""
    from numba.core.dispatcher import Dispatcher

    from symloss import _fastmath, ddouble

    kernels = fast.build(symloss.derive("binary_cross_entropy_with_logits"))
    assert kernels is not None
    module = kernels.module
    loaded = module.load() if hasattr(module, "load") else module  # (imported lazily)
    namespace = vars(getattr(loaded, "_module", loaded))  # (parallel kernels gated)
    helpers = [v for v in namespace.values() if isinstance(v, Dispatcher)
               and v.py_func.__globals__ is not namespace]  # (not the module's own kernels)
    for name in ("exp_v", "sigmoid_subq_v", "certified_b", "block_max", "dd_exp_sub",
                 "dd_t_log", "vd_t_log"):
        assert any(namespace[name] is h for h in helpers), name
    assert _kernel_only(namespace["ftz"])  # the module's own helper
    reached = _reachable(helpers)
    assert len(reached) > 200  # the float helpers, three sets of pair functions, _bits'
    assert [f.py_func.__name__ for f in reached if not _kernel_only(f)] == []
    originals: dict[int, list[Any]] = {}
    for f in _reachable([f for f in (*vars(_fastmath).values(), *ddouble.jitted().values(),
                                     *ddouble.jitted(inline=True).values(),
                                     *_fastmath.vector_dd().values())
                         if isinstance(f, Dispatcher)]):
        originals.setdefault(id(f.py_func.__code__), []).append(f)
    for twin in reached:
        options = {k: v for k, v in twin.targetoptions.items() if not k.startswith("no_c")}
        # the same code object, re-bound; the same options, less the wrappers
        assert any(o.targetoptions == options and not _kernel_only(o)
                   for o in originals[id(twin.py_func.__code__)]), twin.py_func.__name__
    assert namespace["exp_v"] is not _fastmath.exp_v and _fastmath.exp_v(0.0) == 1.0


def _arity(n: int) -> Callable[..., Any]:
    """A compiled loop calling ``f`` on the rows of ``a`` (``n`` floats, or one pair ``(a0,
    a1)`` where ``n`` is 0), the results (a float, a bool or a pair) as float64 rows."""
    from numba import njit

    if n == 0:
        def run(f: Any, a: np.ndarray) -> np.ndarray:
            out = np.empty((a.shape[0], 2))
            for i in range(a.shape[0]):
                out[i, 0], out[i, 1] = f((a[i, 0], a[i, 1]))
            return out
    elif n == 1:
        def run(f: Any, a: np.ndarray) -> np.ndarray:
            out = np.empty((a.shape[0], 1))
            for i in range(a.shape[0]):
                out[i, 0] = f(a[i, 0])
            return out
    elif n == 2:
        def run(f: Any, a: np.ndarray) -> np.ndarray:
            out = np.empty((a.shape[0], 1))
            for i in range(a.shape[0]):
                out[i, 0] = f(a[i, 0], a[i, 1])
            return out
    else:
        def run(f: Any, a: np.ndarray) -> np.ndarray:
            out = np.empty((a.shape[0], 1))
            for i in range(a.shape[0]):
                out[i, 0] = f(a[i, 0], a[i, 1], a[i, 2])
            return out
    return njit(error_model="numpy")(run)


def _helper(where: str, name: str) -> Any:
    from symloss import _fastmath, ddouble

    if where == "fm":
        return getattr(_fastmath, name)
    if where == "vd":
        return _fastmath.vector_dd()[name]
    return ddouble.jitted(inline=where == "dd_inline")[name]


#: (where, helper, arity: floats, or 0 for one double-double pair): float helpers of each
#: flavour, those made from one body (_flavoured), the generated exact comparison, the pair
#: functions of ddouble.jitted (plain and inlined) and of vector_dd (their log seeded by fdlibm's).
TWINNED = [
    ("fm", "exp_v", 1), ("fm", "exp_m", 1), ("fm", "log1p_w", 1), ("fm", "tanh_m", 1),
    ("fm", "fitsq_m", 1), ("fm", "sigmoid_subq", 2), ("fm", "sigmoid_pow_m", 2),
    ("fm", "sigmoid_pow_l_w", 3), ("fm", "sigmoid_pow_lb_m", 3), ("fm", "cmp_sum", 3),
    ("dd", "t_exp", 0), ("dd", "t_log", 0), ("dd", "sigmoid_sub", 2),
    ("dd_inline", "exp_sub", 2), ("vd", "t_log", 0), ("vd", "t_log1p", 0),
]


@pytest.mark.parametrize(("where", "name", "arity"), TWINNED)
def test_twins_compute_their_originals_bits(where: str, name: str, arity: int) -> None:
    """Called from compiled code, a twin gives its original's bits (seeded values over many
    scales, zeros, ±inf, NaN); its compiled code defines no wrapper,
    its original's the wrappers too, and the original is still callable from Python."""
    from symloss._fastmath import kernel_twins

    original = _helper(where, name)
    twin = kernel_twins({name: original})[name]
    assert twin is not original and kernel_twins({"again": original})["again"] is twin
    rng = np.random.default_rng(RNG_SEED)
    width = max(arity, 2)
    a = rng.standard_normal((4000, width)) * np.exp(rng.uniform(-8.0, 8.0, (4000, width)))
    if name in ("t_log", "t_log1p"):
        a = np.abs(a)
    if where == "vd" and name == "t_log1p":
        a = np.minimum(a, 1.0)  # vector_dd's t_log1p: for arguments in [0, 1]
    if arity == 0:
        a[:, 1] = a[:, 0] * 2.0**-60 * rng.uniform(-1.0, 1.0, 4000)  # a normalized low part
    a[:4, :] = [[0.0] * width, [np.inf] * width, [-np.inf] * width, [np.nan] * width]
    run = _arity(arity)
    got, want = run(twin, a), run(original, a)
    assert np.array_equal(got.view(np.int64), want.view(np.int64))
    (library,) = [r.library for r in twin.overloads.values()]
    defined = re.findall(r"^define [^@]*@\"?([\w.]+)", library.get_llvm_str(), re.MULTILINE)
    assert defined and not [d for d in defined if re.search(r"cpython|cfunc", d)], defined
    wrappers = re.findall(r"^define [^@]*@\"?([\w.]*(?:cpython|cfunc)[\w.]*)",
                          next(iter(original.overloads.values())).library.get_llvm_str(),
                          re.MULTILINE)
    assert len(wrappers) >= 2
    row = a[5]
    first = (original((row[0], row[1])) if arity == 0 else original(*row[:arity]))
    assert np.array_equal(np.array(first, dtype=np.float64).ravel().view(np.int64),
                          want[5].view(np.int64))


def test_twins_made_once_from_many_threads() -> None:
    """Kernel modules imported by several threads at once get the same twin of each helper."""
    from symloss import _fastmath

    out: list[dict[str, Any]] = []
    start = threading.Barrier(4)

    def make() -> None:
        start.wait()
        out.append(_fastmath.kernel_twins(vars(_fastmath)))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 4 and len(out[0]) > 90
    assert all(o.keys() == out[0].keys() and all(o[k] is out[0][k] for k in o) for o in out)
    assert out[0]["sigmoid_v"].py_func.__globals__["exp_v"] is out[0]["exp_v"]
