"""Speed of symloss's ``grad_fn``/``loss_fn`` (and ``hvp_fn``) against torch, in one process.

Every contender runs on the same arrays, interleaved (one call of each per round), and the
table gives the median over rounds with the spread (min–max) as the noise. Contenders:

* ``symloss grad_fn`` / ``symloss loss_fn`` (the numba fast path when installed; see
  ``symloss.fast``), and ``grad_fn`` on the NumPy fallback path;
* torch CPU forward+backward (``loss.backward()`` on a leaf tensor);
* the plain NumPy a person would write by hand;
* the memory floor: one ``np.subtract`` over the same input arrays.

Then ``hvp_fn`` against ``torch.autograd.functional.hvp`` (when ``Derivation`` has ``hvp_fn``),
and ``derive`` time per loss, cold (fresh process) and warm (cached).

    python benchmarks/speed.py           # sizes 1e3 .. 1e7, float32 and float64
    python benchmarks/speed.py --quick   # small sizes, few rounds (a smoke run)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special

import symloss
from symloss import fast

THREADS = os.cpu_count() or 1


def _measure(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    for fn in fns.values():  # warm up: JIT, caches, first-touch page faults
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def _cell(ts: list[float]) -> str:
    med = statistics.median(ts) * 1e3
    return f"{med:.3g} ({min(ts) * 1e3:.3g}–{max(ts) * 1e3:.3g})"


def _torch() -> Any:
    import torch

    torch.set_num_threads(THREADS)
    return torch


def _set_threads(n: int) -> None:
    """The same number of threads for torch and for symloss's numba kernels."""
    global THREADS
    THREADS = n
    _torch()
    if fast.available():
        import numba

        fast.build(symloss.derive("bce_with_logits"))  # sets numba's threading layer first
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def bce_contenders(n: int, dtype: str) -> dict[str, Callable[[], Any]]:
    torch = _torch()
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(n) * 3).astype(dtype)
    y = (rng.random(n) < 0.5).astype(dtype)
    zt, yt = torch.from_numpy(z), torch.from_numpy(y)
    d = symloss.derive("binary_cross_entropy_with_logits")

    def torch_fb() -> Any:
        leaf = zt.detach().requires_grad_()
        torch.nn.functional.binary_cross_entropy_with_logits(leaf, yt).backward()
        return leaf.grad

    def numpy_path() -> Any:
        with fast.disabled():
            return d.grad_fn(z, y)

    return {
        "symloss grad_fn": lambda: d.grad_fn(z, y),
        "symloss loss_fn": lambda: d.loss_fn(z, y),
        "torch fwd+bwd": torch_fb,
        "hand NumPy": lambda: (scipy.special.expit(z) - y) / np.asarray(n, dtype),
        "grad_fn, NumPy path": numpy_path,
        "floor (np.subtract)": lambda: np.subtract(z, y),
    }


def ce_contenders(n: int, dtype: str, classes: int = 200) -> dict[str, Callable[[], Any]]:
    torch = _torch()
    rng = np.random.default_rng(0)
    rows = max(1, n // classes)
    z = (rng.standard_normal((rows, classes)) * 3).astype(dtype)
    t = rng.integers(0, classes, rows)
    zt, tt = torch.from_numpy(z), torch.from_numpy(t)
    d = symloss.derive("cross_entropy")

    def torch_fb() -> Any:
        leaf = zt.detach().requires_grad_()
        torch.nn.functional.cross_entropy(leaf, tt).backward()
        return leaf.grad

    def hand() -> Any:
        p = scipy.special.softmax(z, axis=1)
        p[np.arange(rows), t] -= 1
        return p / rows

    def numpy_path() -> Any:
        with fast.disabled():
            return d.grad_fn(z, t)

    return {
        "symloss grad_fn": lambda: d.grad_fn(z, t),
        "symloss loss_fn": lambda: d.loss_fn(z, t),
        "torch fwd+bwd": torch_fb,
        "hand NumPy": hand,
        "grad_fn, NumPy path": numpy_path,
        "floor (np.subtract)": lambda: np.subtract(z, z),
    }


def hvp_rows(n: int, dtype: str, rounds: int, classes: int = 200) -> str:
    """``hvp_fn`` against ``torch.autograd.functional.hvp`` for cross-entropy (a hook)."""
    d = symloss.derive("cross_entropy")
    if not hasattr(d, "hvp_fn"):
        return "skipped: Derivation has no hvp_fn yet (issue 3 adds it)"
    torch = _torch()
    rng = np.random.default_rng(0)
    rows = max(1, n // classes)
    z = (rng.standard_normal((rows, classes)) * 3).astype(dtype)
    v = rng.standard_normal((rows, classes)).astype(dtype)
    t = rng.integers(0, classes, rows)
    zt, vt, tt = torch.from_numpy(z), torch.from_numpy(v), torch.from_numpy(t)
    # hvp_fn(input, target, v): the Hessian-vector product of the loss at input, as torch's hvp.
    times = _measure({
        "symloss hvp_fn": lambda: d.hvp_fn(z, t, v),
        "torch hvp": lambda: torch.autograd.functional.hvp(
            lambda x: torch.nn.functional.cross_entropy(x, tt), zt, vt),
    }, rounds)
    ratio = statistics.median(times["symloss hvp_fn"]) / statistics.median(times["torch hvp"])
    return (f"cross_entropy {rows}×{classes} {dtype}: symloss hvp_fn "
            f"{_cell(times['symloss hvp_fn'])} ms, torch hvp {_cell(times['torch hvp'])} ms, "
            f"ratio {ratio:.2f} (goal ≤ 0.2)")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for torch and for symloss's kernels (default: all CPUs)")
    parser.add_argument("--only", choices=("bce", "ce"), help="time one loss only")
    args = parser.parse_args(argv)
    _set_threads(args.threads)
    sizes = [1000, 100_000] if args.quick else [1000, 100_000, 1_000_000, 4_000_000, 10_000_000]
    rounds = 3 if args.quick else 15
    torch = _torch()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{platform.platform()}; numpy {np.__version__}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()} (torch and numba); fast path: "
          f"{'numba' if fast.available() and fast.enabled() else 'off (NumPy)'}")
    print("Times in ms: median over rounds (min–max); all contenders interleaved.\n")
    for key, title, make in (
        ("bce", "binary_cross_entropy_with_logits, n elements", bce_contenders),
        ("ce", "cross_entropy, (n/200)×200, class-index targets", ce_contenders),
    ):
        if args.only not in (None, key):
            continue
        for dtype in ("float32", "float64"):
            print(f"### {title}, {dtype}\n")
            names: list[str] | None = None
            lines = []
            for n in sizes:
                times = _measure(make(n, dtype), rounds)
                if names is None:
                    names = list(times)
                    lines.append("| n | " + " | ".join(names) + " | grad_fn / torch |")
                    lines.append("|---" * (len(names) + 2) + "|")
                ratio = (statistics.median(times["symloss grad_fn"])
                         / statistics.median(times["torch fwd+bwd"]))
                lines.append(f"| {n:.0e} | " + " | ".join(_cell(times[k]) for k in names)
                             + f" | {ratio:.2f} |")
            print("\n".join(lines) + "\n")
    print("### hvp_fn\n")
    print(hvp_rows(20_000 if args.quick else 4_000_000, "float32", rounds) + "\n")
    print("### derive\n")
    print("| loss | cold (s) | warm (ms) |\n|---|---|---|")
    total_warm = 0.0
    for name, cold, warm in derive_times():
        total_warm += warm
        print(f"| {name} | {cold:.2f} | {warm * 1e3:.3f} |")
    print(f"\nwhole catalogue warm: {total_warm * 1e3:.2f} ms (goal < 200 ms)")
    cli, sympy_import = cli_ratio(3 if args.quick else 7)
    print(f"`symloss derive bce`: {cli:.2f} s; `python -c \"import sympy\"`: {sympy_import:.2f} s;"
          f" ratio {cli / sympy_import:.2f} (goal ≤ 4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
