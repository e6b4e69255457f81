"""Speed, memory and first-call time of every loss's ``grad_fn`` and ``hvp_fn`` against torch.

For every catalogue loss × n elements ∈ {1e2 … 1e7} × {float32, float64} (class-axis and row
losses: ``(n/10) × 10``, class-index targets where the loss takes them). Every array after the
input is drawn from its declared domain (``spec.arguments_for``; no per-loss list): labels ±1,
Poisson counts, N(0, 1) reals, and for a bounded interval of reals (probabilities in [0, 1])
its ends, hard 0/1 labels. A loss that also takes soft targets is timed again with them, as
``<loss>:soft``: class probabilities for a class-axis loss, targets uniform inside the interval
for a loss whose declared target domain is a bounded interval (binary_cross_entropy(_with_logits),
sigmoid_focal_loss, kl_div, multilabel_soft_margin_loss). A class-axis loss is timed again at
each option that takes another kernel path (read from its declared options,
:func:`option_entries`), as ``<loss>:<option>``: a per-class array (``cross_entropy:weight``,
weights uniform in [0.5, 2]), an option the derivation reads only by being nonzero
(``cross_entropy:label_smoothing``, at its first declared example), ``ignore_index`` (10% of
the labels ignored); each with soft targets too where the loss takes them
(``cross_entropy:weight:soft``). For each entry:

* ``grad_fn`` / torch forward+backward (``loss.backward()`` on a leaf), 1 thread, and with every
  CPU (torch's and numba's default thread count);
* ``hvp_fn`` / torch's double backward (``torch.autograd.grad`` of the gradient's dot with v),
  1 thread;
* peak extra memory of ``grad_fn`` (tracemalloc: NumPy's allocations, the result included) /
  the input's bytes, from 1e5 elements up (below, a few kB of fixed overhead is all there is);
* per-call time at n = 100 (symloss ``grad_fn`` and torch fwd+bwd, µs): interleaved, one call
  of each per round (the goal's figure: each call finds its caches partly evicted by the
  other's, about 2x its time in a loop), and back to back, 10 calls per round (as timeit
  and JAX's dispatch figures measure it);
* first ``grad_fn`` call in a fresh process: empty caches (cold) and warm caches;
* ``derive`` time per loss, cold (fresh process) and warm (cached), and ``symloss derive bce``
  against ``python -c "import sympy"`` (without ``--only``).

Contenders run on the same arrays, interleaved (one call of each per round); times are medians
over rounds. The 1-thread columns (grad, hvp) read the process's CPU seconds
(``time.process_time``: every thread's user and system time, page faults included), which on an
idle machine equal the elapsed seconds, and on one shared with other jobs leave out the time a
call waits for a CPU (preempted for a scheduler slice, a call of a few ms reads several times
its time); so do the per-call figures (1 thread too: a 10 µs call preempted once reads a
scheduler slice on the elapsed clock); the every-CPU ratio reads elapsed seconds. The summary
prints each loss's worst ratio over every size and dtype against the issue's goals (grad ≤ 1.0× torch
at 1 thread, hvp ≤ 0.5×, per call ≤ 15 µs, memory ≤ 2×, first call ≤ 1 s cold and ≤ 0.2 s warm);
a goal not met says so.

    python benchmarks/speed.py           # every loss, 1e2 .. 1e7 (tens of minutes)
    python benchmarks/speed.py --quick   # 3 losses, 1e2 and 1e4, few rounds (a smoke run)
    python benchmarks/speed.py --only mse_loss --first-call-only 5   # first calls alone
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

import symloss
from symloss import fast
from symloss.declaration import Domain

CLASSES = 10
SIZES = [100, 1000, 10_000, 100_000, 1_000_000, 10_000_000]
QUICK_SIZES = [100, 10_000]
QUICK_LOSSES = ["binary_cross_entropy_with_logits", "cross_entropy", "mse_loss"]
MEMORY_MIN = 100_000
#: Calls per round of the back-to-back per-call time (the loop timeit and JAX's dispatch
#: figures time: the caches warm), besides the interleaved one (one call of each contender per
#: round: each call after the other's, its caches partly evicted -- about 2x the warm time).
#: Few: a round of torch's calls stays well under a scheduler time slice (100 of them, 5 ms,
#: measured 4-8x torch's interleaved time per call on a loaded machine: waits for the CPU).
CALLS = 10
GOALS = {"grad": 1.0, "hvp": 0.5, "call_us": 15.0, "memory": 2.0, "cold": 1.0, "warm": 0.2}


def _torch() -> Any:
    import torch

    return torch


def set_threads(n: int) -> None:
    """The same number of threads for torch and for symloss's numba kernels."""
    torch = _torch()
    torch.set_num_threads(n)
    if fast.available():
        import numba

        fast.build(symloss.derive("mse_loss"))  # sets numba's threading layer first
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


#: A loss whose targets may be soft is timed with soft targets too, as ``<loss>:soft``: a
#: class-axis loss that takes class probabilities (cross_entropy's soft targets take another
#: kernel than its class indices), and a loss whose declared target domain is a bounded interval
#: of reals, not a set of labels (probabilities in [0, 1]: its plain entry times hard 0/1 labels,
#: the interval's ends; soft labels inside it can take another kernel path).
SOFT = ":soft"


def _loss(name: str) -> str:
    """The catalogue name of a timed entry (``cross_entropy:weight:soft`` → ``cross_entropy``)."""
    return name.split(":", 1)[0]


def _tags(name: str) -> list[str]:
    """The options of a timed entry (``cross_entropy:weight:soft`` → ``["weight"]``)."""
    return [t for t in name.split(":")[1:] if t != SOFT[1:]]


def option_entries(name: str) -> list[str]:
    """The options of a class-axis loss that take another kernel path, each timed as its own
    entry (read from the declared options): a per-class array (``weight``), an option the
    derivation reads only by being nonzero (``label_smoothing``), ``ignore_index``."""
    spec = symloss.derive(name).spec
    if spec.family != "class_axis":
        return []
    return [o.name for o in spec.options
            if (o.kind == "array" and o.shape == "class") or o.symbolic == "nonzero"
            or o.name == "ignore_index"]


def entry_options(name: str, dtype: str) -> dict[str, Any]:
    """The options of a timed entry: a per-class array uniform in [0.5, 2] (seeded), an
    option read only by being nonzero at its first declared example; ``ignore_index`` at its
    default (:func:`inputs` ignores 10% of the labels)."""
    tags = _tags(name)
    if not tags:
        return {}
    spec = symloss.derive(_loss(name)).spec
    out: dict[str, Any] = {}
    for opt in spec.options:
        if opt.name not in tags or opt.name == "ignore_index":
            continue
        if opt.kind == "array":
            out[opt.name] = np.random.default_rng(2).uniform(0.5, 2.0, CLASSES).astype(dtype)
        else:
            out[opt.name] = opt.examples[0]
    return out


def _interval(domain: Domain) -> bool:
    """An element-wise domain of every real in a bounded ``[lo, hi]`` (not labels, not counts)."""
    return (domain.layout == "elementwise" and domain.values is None and not domain.integer
            and -math.inf < domain.lo < domain.hi < math.inf)


def has_soft(name: str) -> bool:
    """Whether ``name`` takes soft targets its plain entry does not time (read from its
    declared target domains): class probabilities, or reals inside a bounded interval."""
    spec = symloss.derive(name).spec
    domains = spec.target_domains()
    if spec.family == "class_axis" and not spec.index_targets_only and not spec.multi_hot_targets:
        return True
    return len(domains) == 1 and _interval(domains[0])


def entries(names: list[str]) -> list[str]:
    """``names``, each loss that takes soft targets followed by its ``:soft`` entry, then its
    option entries (:func:`option_entries`; ``:<option>:soft`` too, except ``ignore_index``,
    which probability targets do not take); a name with ``:`` is timed as given."""
    out = []
    for name in names:
        out.append(name)
        if ":" in name:
            continue
        soft = has_soft(name)
        if soft:
            out.append(name + SOFT)
        for tag in option_entries(name):
            out.append(f"{name}:{tag}")
            if soft and tag != "ignore_index":
                out.append(f"{name}:{tag}{SOFT}")
    return list(dict.fromkeys(out))


def entry_error(name: str) -> str | None:
    """Why ``name`` is not an entry this script can time (``None`` if it is): its loss must be in
    the catalogue, each tag one of that loss's own entries' (:func:`entries`: ``soft`` where it
    takes soft targets, the options :func:`option_entries` reads) -- an element-wise weight, for
    one, has no entry here (:func:`entry_options` draws per-class arrays)."""
    loss = _loss(name)
    if loss not in symloss.losses():
        return f"unknown loss {loss!r} in {name!r}; valid: {', '.join(symloss.losses())}"
    valid = [e for e in entries([loss]) if ":" in e]
    if ":" in name and name not in valid:
        choices = ", ".join(valid) if valid else f"none: {loss} is timed as plain {loss!r} only"
        return f"{name!r} is not an entry of {loss}; its entries: {choices}"
    return None


def draw(domain: Domain, shape: tuple[int, ...], dtype: str, rng: np.random.Generator,
         soft: bool = False) -> np.ndarray:
    """Values of an element-wise ``domain``: its labels (±1) when it lists them; counts
    ~ Poisson(2); reals ~ N(0, 1); a half-line, 0.1 … 3 inside its end (``var``); a bounded
    interval, its ends with probability ½ each (hard 0/1 labels), or with ``soft`` uniformly
    inside it."""
    lo, hi = domain.lo, domain.hi
    if domain.values is not None:
        return rng.choice(np.asarray(domain.values), shape).astype(dtype)
    if domain.integer:
        return (lo + rng.poisson(2.0, shape)).astype(dtype)
    if lo == -math.inf and hi == math.inf:
        return rng.standard_normal(shape).astype(dtype)
    if hi == math.inf:
        return (lo + rng.uniform(0.1, 3.0, shape)).astype(dtype)
    if lo == -math.inf:
        return (hi - rng.uniform(0.1, 3.0, shape)).astype(dtype)
    if soft:
        return rng.uniform(lo, hi, shape).astype(dtype)
    return np.where(rng.random(shape) < 0.5, hi, lo).astype(dtype)


def inputs(name: str, n: int, dtype: str, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Valid arrays of about ``n`` input elements for ``name``, every array after the input
    drawn from its declared domain (:func:`draw`); soft targets for a ``:soft`` entry."""
    rng = np.random.default_rng(seed)
    d = symloss.derive(_loss(name))
    soft = name.endswith(SOFT)
    if d.spec.family == "class_axis":
        rows = max(1, n // CLASSES)
        z = (rng.standard_normal((rows, CLASSES)) * 3).astype(dtype)
        if d.spec.multi_hot_targets:  # 30% of the labels 1 (multilabel_soft_margin_loss)
            (domain,) = d.spec.target_domains()
            if soft:
                return z, draw(domain, (rows, CLASSES), dtype, rng, soft=True)
            return z, (rng.random((rows, CLASSES)) < 0.3).astype(dtype)
        if soft:
            e = rng.random((rows, CLASSES))
            return z, (e / e.sum(axis=1, keepdims=True)).astype(dtype)
        labels = rng.integers(0, CLASSES, rows)
        if "ignore_index" in _tags(name):  # 10% of the rows ignored, at the option's default
            (ignore,) = (o.default for o in d.spec.options if o.name == "ignore_index")
            labels[rng.random(rows) < 0.1] = ignore
        return z, labels
    if d.spec.family == "rows":  # (n/10) rows of 10: the row losses' own arguments
        rows = max(1, n // CLASSES)
        a, b, c = ((rng.standard_normal((rows, CLASSES)) * 3).astype(dtype) for _ in range(3))
        if name == "multilabel_margin_loss":  # 3 distinct labels per row, then −1 (torch's end)
            labels = np.argsort(rng.random((rows, CLASSES)), axis=1)
            return a, np.where(np.arange(CLASSES) < 3, labels, -1)
        if name == "cosine_embedding_loss":
            return a, b, rng.choice([-1.0, 1.0], rows).astype(dtype)
        return a, b, c  # triplet_margin_loss: anchor, positive, negative
    x = (rng.standard_normal(n) * 3).astype(dtype)
    if d.spec.input_domain(d.options) == "probability":
        x = rng.uniform(0.01, 0.99, n).astype(dtype)
    rest = [draw(a.domains[0], (n,), dtype, rng, soft=soft and a.name == "target")
            for a in d.spec.arguments_for(d.options)[1:]]
    return (x, *rest)


def declared_in_torch(d: symloss.Derivation) -> Callable[..., Any]:
    """The declared per-element loss written in torch operations, reduced as ``d`` reduces:
    the baseline of a loss torch does not have (``spec.has_torch_twin`` False: the boosting
    losses), as a user would write it for autograd. SymPy prints it (``lambdify`` with torch):
    symloss's primitives and ``accurate(...)`` rewritten to elementary functions, the options
    substituted and every number a float (``log(2)``, not a torch call on an int).

    >>> import numpy as np, torch
    >>> d = symloss.derive("gamma_loss", reduction="sum")
    >>> z, y = torch.tensor([0.5], dtype=torch.float64, requires_grad=True), torch.tensor([2.0])
    >>> declared_in_torch(d)(z, y).backward()
    >>> bool(np.isclose(z.grad.item(), d.grad_fn(np.array([0.5]), np.array([2.0]))[0]))
    True
    """
    import sympy as sp

    from symloss.primitives import accurate

    declaration = d.declaration
    if declaration.class_axis:
        raise ValueError(f"{d.name}: no torch baseline for a class-axis loss without a torch twin")
    expr = declaration.substitute_definitions(declaration.loss).replace(
        lambda e: isinstance(e, accurate), lambda e: e.args[0])
    symbols = declaration.symbols
    expr = expr.rewrite(sp.exp).subs(
        {symbols[k]: v for k, v in d.options.items() if k in symbols}).evalf()
    names = [a.name for a in d.spec.arguments_for(d.options)]
    per_element = sp.lambdify([symbols[n] for n in names], expr, modules="torch")
    reduce = {"mean": lambda t: t.mean(), "sum": lambda t: t.sum(), "none": lambda t: t}
    return lambda *tensors: reduce[d.options["reduction"]](per_element(*tensors))


def torch_loss(d: symloss.Derivation) -> Callable[..., Any]:
    """torch's loss of the same arrays (tensors, torch's argument order); for a loss torch
    does not have, the declared formula in torch (:func:`declared_in_torch`)."""
    import torch.nn.functional as F

    from symloss.testing import torch_function

    if not d.spec.has_torch_twin:
        return declared_in_torch(d)
    if d.spec.arguments == ("input", "target"):
        return torch_function(d)
    kwargs = {k: v for k, v in d.options.items() if k != "link"}
    return lambda *arrays: getattr(F, d.name)(*arrays, **kwargs)


#: The clocks a measurement can read: elapsed seconds, or the CPU seconds of the whole process
#: (all its threads, user and system: page faults count, waits for a CPU do not).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _measure(fns: dict[str, Callable[[], Any]], rounds: int,
             clock: str = "wall") -> dict[str, float]:
    now = CLOCKS[clock]
    for fn in fns.values():  # warm up: JIT, caches, first-touch page faults
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            t = now()
            fn()
            times[key].append(now() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _repeated(fn: Callable[[], Any], repeat: int) -> Callable[[], Any]:
    def run() -> Any:
        for _ in range(repeat):
            fn()

    return run


def _rounds(n: int, quick: bool) -> int:
    if quick:
        return 3
    return 3 if n >= 10_000_000 else 5 if n >= 1_000_000 else 11 if n >= 100_000 else 31


def peak_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes NumPy allocates during ``fn()`` (the result included)."""
    fn()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def time_one(name: str, n: int, dtype: str, threads: int, quick: bool,
             with_hvp: bool, repeat: int = 1, clock: str = "wall") -> dict[str, float]:
    """Median seconds of grad_fn, torch fwd+bwd (and hvp_fn, torch double backward); with
    ``repeat``, per call of ``repeat`` calls back to back (each round, each contender);
    ``clock``: a key of :data:`CLOCKS`."""
    torch = _torch()
    set_threads(threads)
    # a scalar loss for torch's backward()
    d = symloss.derive(_loss(name), reduction="mean", **entry_options(name, dtype))
    arrays = inputs(name, n, dtype)
    x = arrays[0]
    v = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    tensors = [torch.from_numpy(a) for a in arrays]
    fn = torch_loss(d)

    def torch_fb() -> Any:
        leaf = tensors[0].detach().requires_grad_()
        fn(leaf, *tensors[1:]).backward()
        return leaf.grad

    vt = torch.from_numpy(v)

    def torch_hvp() -> Any:
        leaf = tensors[0].detach().requires_grad_()
        (g,) = torch.autograd.grad(fn(leaf, *tensors[1:]), leaf, create_graph=True)
        if not g.requires_grad:  # a piecewise-linear loss: the Hessian is 0 (as hvp(strict=False))
            return torch.zeros_like(leaf)
        return torch.autograd.grad(g, leaf, vt)[0]

    fns: dict[str, Callable[[], Any]] = {"grad": lambda: d.grad_fn(*arrays), "torch": torch_fb}
    torch_has_hvp = True
    if with_hvp:
        fns["hvp"] = lambda: d.hvp_fn(*arrays, v)
        try:
            torch_hvp()
            fns["torch_hvp"] = torch_hvp
        except RuntimeError:  # multi_margin_loss: "derivative ... is not implemented"
            torch_has_hvp = False
    if repeat > 1:
        fns = {k: _repeated(fn, repeat) for k, fn in fns.items()}
    out = _measure(fns, _rounds(n, quick), clock)
    if repeat > 1:
        out = {k: t / repeat for k, t in out.items()}
    if with_hvp and not torch_has_hvp:
        out["torch_hvp"] = float("nan")
    if with_hvp:  # below 1e5 elements the fixed overhead (a few kB) is all there is
        out["memory"] = (peak_memory(lambda: d.grad_fn(*arrays)) / x.nbytes
                         if n >= MEMORY_MIN else float("nan"))
    return out


FIRST_CALL = """
import sys, time
sys.path.insert(0, {bench!r})
from speed import entry_options, inputs
import symloss
d = symloss.derive({loss!r}, **entry_options({name!r}, "float32"))
arrays = inputs({name!r}, 1000, "float32")
t = time.perf_counter()
d.grad_fn(*arrays)
print(time.perf_counter() - t, "numba" in sys.modules)
"""


def first_call(name: str, evaluator: str = "numba", runs: int = 1) -> tuple[float, float, bool]:
    """Seconds of the first ``grad_fn`` in a fresh process: empty caches, then warm ones
    (imports and ``derive`` not counted; the median of ``runs`` fresh processes), and whether
    the last warm one imported numba; ``evaluator="numpy"``: with ``SYMLOSS_FAST=0``."""
    bench = os.path.dirname(os.path.abspath(__file__))
    code = FIRST_CALL.format(bench=bench, name=name, loss=_loss(name))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SYMLOSS_CACHE_DIR": cache, "NUMBA_CACHE_DIR": cache,
               "SYMLOSS_FAST": "0" if evaluator == "numpy" else os.environ.get("SYMLOSS_FAST", "1")}
        out = []
        for _ in range(1 + runs):
            run = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                 capture_output=True, text=True)
            seconds, numba = run.stdout.split()[-2:]
            out.append(float(seconds))
    return out[0], statistics.median(out[1:]), numba == "True"


WARMED = """
import sys, time
sys.path.insert(0, {bench!r})
from speed import entry_options
import symloss
from symloss.warm import warm
t = time.perf_counter()
warm(symloss.derive({loss!r}, **entry_options({name!r}, "float32")))
print(time.perf_counter() - t)
"""


def warmed_call(name: str) -> tuple[float, float, bool]:
    """Seconds ``symloss.warm.warm`` takes for entry ``name`` in a fresh process with empty
    caches (both dtypes, serial and parallel kernels), then the first ``grad_fn`` of a later
    fresh process (n = 1000, float32, as :func:`first_call`) and whether it imported numba."""
    bench = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SYMLOSS_CACHE_DIR": cache, "NUMBA_CACHE_DIR": cache}
        code = WARMED.format(bench=bench, name=name, loss=_loss(name))
        run = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True)
        warming = float(run.stdout.split()[-1])
        code = FIRST_CALL.format(bench=bench, name=name, loss=_loss(name))
        run = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True)
        seconds, numba = run.stdout.split()[-2:]
    return warming, float(seconds), numba == "True"


FLOOR = """
import sys, time
import numpy as np
a = np.ones(1000, np.float32)
t = time.perf_counter()
import numba

@numba.njit(cache=False, error_model="numpy")
def kernel(out, a):
    for j in range(a.size):
        out[j] = np.float64(a[j]) * 0.5
    return False

kernel(np.empty(a.size, np.float32), a)
print(time.perf_counter() - t)
"""


def numba_floor(runs: int) -> float:
    """Seconds, in a fresh process, to import numba and compile one trivial element-wise
    kernel (no symloss): what any first call that compiles with numba pays before its own
    kernels, the median of ``runs`` processes."""
    times = [float(subprocess.run([sys.executable, "-c", FLOOR], check=True, capture_output=True,
                                  text=True).stdout) for _ in range(runs)]
    return statistics.median(times)


def derive_times() -> list[tuple[str, float, float]]:
    """``(loss, cold s, warm s)``: cold in a fresh process (imports excluded), warm cached."""
    out = []
    code = ("import time, symloss; t = time.perf_counter(); d = symloss.derive({!r}); "
            "d.gradient; d.proved; print(time.perf_counter() - t)")
    for name in symloss.losses():
        cold = float(subprocess.run([sys.executable, "-c", code.format(name)], check=True,
                                    capture_output=True, text=True).stdout)
        assert symloss.derive(name).proved  # derive once: later calls hit the cache
        t = time.perf_counter()
        for _ in range(100):
            symloss.derive(name)
        out.append((name, cold, (time.perf_counter() - t) / 100))
    return out


def cli_ratio(repeats: int) -> tuple[float, float]:
    """Median wall time of ``symloss derive bce`` and of ``python -c "import sympy"``."""
    def wall(cmd: list[str]) -> float:
        ts = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    cli = [sys.executable, "-m", "symloss.cli", "derive", "bce"]
    return wall(cli), wall([sys.executable, "-c", "import sympy"])


def print_derive_times(repeats: int) -> None:
    print("\n### derive\n")
    print("| loss | cold (s) | warm (ms) |\n|---|---|---|")
    total_warm = 0.0
    for name, cold, warm in derive_times():
        total_warm += warm
        print(f"| {name} | {cold:.2f} | {warm * 1e3:.3f} |")
    print(f"\nwhole catalogue warm: {total_warm * 1e3:.2f} ms (goal < 200 ms)")
    cli, sympy_import = cli_ratio(repeats)
    print(f"`symloss derive bce`: {cli:.2f} s; `python -c \"import sympy\"`: {sympy_import:.2f} s;"
          f" ratio {cli / sympy_import:.2f} (goal ≤ 4)")


def _nanmax(a: float, b: float) -> float:
    """The larger, ignoring NaN (nothing measured); NaN when both are."""
    return b if a != a else a if b != b else max(a, b)


def _flag(value: float, goal: float) -> str:
    if value != value:  # NaN: nothing to compare (torch has no double backward of the loss)
        return "–"
    return f"{value:.2f}" if value <= goal else f"**{value:.2f}** (goal ≤ {goal:g})"


def print_first_calls(names: list[str], runs: int, argv: list[str] | None,
                      warmed: bool = False) -> int:
    """The first-call table alone (``--first-call-only RUNS``): n = 1000, float32; with
    ``warmed``, also the time ``symloss warm`` takes and the first call after it."""
    print(f"First grad_fn in a fresh process, n = 1000, float32: cold once, warm the median of "
          f"{runs} fresh processes (load average at the start: {os.getloadavg()[0]:.1f}).\n")
    extra = (" `symloss warm` s | first call after it s | imports numba |" if warmed else "")
    print("| entry | cold s | warm s | warm imports numba |" + extra)
    print("|---|---|---|---|" + ("---|---|---|" if warmed else ""))
    for name in names:
        cold, warm, numba = first_call(name, runs=runs)
        row = (f"| {name} | {_flag(cold, GOALS['cold'])} | {_flag(warm, GOALS['warm'])} | "
               f"{'yes' if numba else 'no'} |")
        if warmed:
            warming, after, after_numba = warmed_call(name)
            row += (f" {warming:.1f} | {_flag(after, GOALS['warm'])} | "
                    f"{'yes' if after_numba else 'no'} |")
        print(row, flush=True)
    print(f"\nnumba's own floor (a fresh process: `import numba` and one trivial element-wise "
          f"kernel compiled, no symloss; the median of {runs}): {numba_floor(runs):.2f} s")
    print(f"\ncommand: python benchmarks/speed.py {' '.join(argv or sys.argv[1:])}".rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 losses, 2 sizes, few rounds")
    parser.add_argument("--only", nargs="*", help="these losses only")
    parser.add_argument("--sizes", nargs="*", type=int, help="these sizes only")
    parser.add_argument("--no-first-call", action="store_true",
                        help="skip the first-call times (fresh processes, cold compiles)")
    parser.add_argument("--first-call-only", type=int, metavar="RUNS",
                        help="only the first-call times: cold once, warm the median of RUNS "
                             "fresh processes")
    parser.add_argument("--warmed", action="store_true",
                        help="with --first-call-only: also time `symloss warm` in a fresh "
                             "process with empty caches, and the first call after it")
    args = parser.parse_args(argv)
    if args.warmed and not args.first_call_only:
        parser.error("--warmed goes with --first-call-only RUNS")
    losses = args.only or (QUICK_LOSSES if args.quick else symloss.losses())
    for name in losses:
        error = entry_error(name)
        if error:
            parser.error(error)
    if args.first_call_only:
        return print_first_calls(entries(losses), args.first_call_only, argv, args.warmed)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    cpus = os.cpu_count() or 1
    torch = _torch()
    print(f"machine: {platform.machine()}, {cpus} CPUs, {platform.platform()}; numpy "
          f"{np.__version__}, torch {torch.__version__}; symloss evaluator: "
          f"{'numba' if fast.available() and fast.enabled() else 'NumPy'}")
    print("Ratios are symloss / torch (median over interleaved rounds; < 1: symloss faster). "
          f"Class-axis losses: (n/{CLASSES})×{CLASSES}. The 1-thread columns and the per-call "
          f"times are CPU seconds of the process, the others elapsed seconds (load average at the start: "
          f"{os.getloadavg()[0]:.1f}).\n")
    summary = []
    for name in entries(losses):
        print(f"### {name}\n")
        if not symloss.derive(_loss(name)).spec.has_torch_twin:
            print("torch has no such loss: \"torch\" is autograd of the declared formula in "
                  "torch operations (declared_in_torch).\n")
        print("| dtype | n | grad_fn ms | torch fwd+bwd ms | ratio 1 thread | ratio "
              f"{cpus} threads | hvp_fn ms | torch double bwd ms | hvp ratio | peak mem / input |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        nan = float("nan")  # nanmax keeps NaN only where nothing was measured (no torch hvp)
        worst = {"grad": 0.0, "grad_all": 0.0, "hvp": nan, "memory": nan}
        for dtype in ("float32", "float64"):
            for n in sizes:
                one = time_one(name, n, dtype, 1, args.quick, with_hvp=True, clock="cpu")
                every = time_one(name, n, dtype, cpus, args.quick, with_hvp=False)
                r1, rall = one["grad"] / one["torch"], every["grad"] / every["torch"]
                rh = one["hvp"] / one["torch_hvp"]
                worst = {"grad": max(worst["grad"], r1), "grad_all": max(worst["grad_all"], rall),
                         "hvp": _nanmax(worst["hvp"], rh),
                         "memory": _nanmax(worst["memory"], one["memory"])}
                print(f"| {dtype} | {n:.0e} | {one['grad'] * 1e3:.3g} | {one['torch'] * 1e3:.3g}"
                      f" | {r1:.2f} | {rall:.2f} | {one['hvp'] * 1e3:.3g} | "
                      f"{one['torch_hvp'] * 1e3:.3g} | {rh:.2f} | {one['memory']:.2f} |"
                      .replace("nan", "–"),
                      flush=True)
        call = time_one(name, 100, "float64", 1, args.quick, with_hvp=False, clock="cpu")
        loop = time_one(name, 100, "float64", 1, args.quick, with_hvp=False, repeat=CALLS,
                        clock="cpu")
        nan2 = (float("nan"), float("nan"))
        cold, warm = nan2 if args.no_first_call else first_call(name)[:2]
        # the evaluator without compilation
        np_cold, np_warm = nan2 if args.no_first_call else first_call(name, "numpy")[:2]
        summary.append((name, worst, call["grad"] * 1e6, call["torch"] * 1e6, cold, warm,
                        loop["grad"] * 1e6, loop["torch"] * 1e6))
        print(f"\nworst: grad {worst['grad']:.2f}× (1 thread), {worst['grad_all']:.2f}× ({cpus} "
              f"threads); hvp "
              + ("– (torch has none)" if worst["hvp"] != worst["hvp"] else f"{worst['hvp']:.2f}×")
              + "; "
              f"{call['grad'] * 1e6:.0f} µs per call at n = 100 "
              f"(torch {call['torch'] * 1e6:.0f}; back to back {loop['grad'] * 1e6:.1f}, torch "
              f"{loop['torch'] * 1e6:.0f}); peak memory {worst['memory']:.2f}× the input; "
              + ("first call not timed (--no-first-call)" if args.no_first_call else
                 f"first call {cold:.2f} s cold, {warm:.2f} s warm (NumPy evaluator, "
                 f"SYMLOSS_FAST=0: {np_cold:.2f} s cold, {np_warm:.2f} s warm)") + "\n",
              flush=True)
    print("### Summary: worst over every size and dtype\n")
    print(f"| loss | grad / torch, 1 thread | grad / torch, {cpus} threads | hvp / torch | "
          "µs per call, n = 100 (torch) | back to back (torch) | peak mem / input | "
          "first call cold s | warm s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, worst, us, torch_us, cold, warm, loop_us, loop_torch in summary:
        print(f"| {name} | {_flag(worst['grad'], GOALS['grad'])} | {worst['grad_all']:.2f} | "
              f"{_flag(worst['hvp'], GOALS['hvp'])} | {_flag(us, GOALS['call_us'])} "
              f"({torch_us:.0f}) | {loop_us:.1f} ({loop_torch:.0f}) | "
              f"{_flag(worst['memory'], GOALS['memory'])} | "
              f"{_flag(cold, GOALS['cold'])} | {_flag(warm, GOALS['warm'])} |")
    if not args.only:
        print_derive_times(3 if args.quick else 7)
    print(f"\ncommand: python benchmarks/speed.py {' '.join(argv or sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
