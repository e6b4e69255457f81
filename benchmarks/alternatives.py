"""The evaluation strategies considered for the fast path, timed side by side.

One workload, the BCE-with-logits hard-label gradient ``(σ(z) − y)/n`` in its stable form
``(−y·σ(−z) + (1 − y)·σ(z))/n`` at 4M float32 elements, evaluated by:

* symloss's NumPy path (float64 upcast, lambdify, one temporary per operation; the fallback);
* NumPy by hand, ``(expit(z) − y)/n`` in float32 (no stable form);
* numexpr on the float64 stable form (threads = CPUs);
* numba ``vectorize(target="parallel")`` over the lambdified scalar kernel, libm ``exp``;
* symloss.fast: a numba ``prange`` loop, float64 compute, vectorizable ``exp`` (the choice);
* torch forward+backward, for reference.

    python benchmarks/alternatives.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np
import scipy.special

import symloss
from symloss import fast


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k elements, 3 rounds")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for every contender (default: all CPUs)")
    args = parser.parse_args(argv)
    threads = args.threads
    n = 100_000 if args.quick else 4_000_000
    rounds = 3 if args.quick else 15
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(n) * 3).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    d = symloss.derive("bce_with_logits")
    contenders = {}

    def numpy_path() -> object:
        with fast.disabled():
            return d.grad_fn(z, y)

    contenders["symloss NumPy path (the fallback)"] = numpy_path
    contenders["hand NumPy, float32"] = lambda: (scipy.special.expit(z) - y) / np.float32(n)
    try:
        import numexpr

        numexpr.set_num_threads(threads)
        expr = ("(where(z >= 0, -y * exp(-z) / (1 + exp(-z)) + (1 - y) / (1 + exp(-z)),"
                " -y / (1 + exp(z)) + (1 - y) * exp(z) / (1 + exp(z)))) * s")
        z64, y64 = z.astype(np.float64), y.astype(np.float64)

        def ne() -> object:
            return numexpr.evaluate(expr, local_dict={"z": z64, "y": y64, "s": 1.0 / n}).astype(
                np.float32)

        contenders["numexpr, float64"] = ne
    except ImportError:
        print("numexpr not installed: skipped", file=sys.stderr)
    if fast.available():
        from numba import float32, float64, vectorize

        @vectorize([float32(float32, float32, float64)], target="parallel")
        def numba_vectorize(zz, yy, s):  # type: ignore[no-untyped-def]
            zd = float64(zz)
            t = math.exp(-abs(zd))
            sp = (1.0 if zd >= 0 else t) / (1.0 + t)
            sm = (t if zd >= 0 else 1.0) / (1.0 + t)
            return (-float64(yy) * sm + (1.0 - float64(yy)) * sp) * s

        contenders["numba vectorize, libm exp"] = lambda: numba_vectorize(z, y, 1.0 / n)
        fast.build(d)  # sets numba's threading layer before the first parallel launch
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        contenders["symloss.fast (numba prange, own exp)"] = lambda: d.grad_fn(z, y)
    try:
        import torch

        torch.set_num_threads(threads)
        zt, yt = torch.from_numpy(z), torch.from_numpy(y)

        def torch_fb() -> object:
            leaf = zt.detach().requires_grad_()
            torch.nn.functional.binary_cross_entropy_with_logits(leaf, yt).backward()
            return leaf.grad

        contenders["torch fwd+bwd"] = torch_fb
    except ImportError:
        print("torch not installed: skipped", file=sys.stderr)
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for k, fn in contenders.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    print(f"BCE-with-logits gradient, {n} float32 elements, {threads} thread(s) each; ms, "
          f"median (min–max) of {rounds} interleaved rounds\n")
    print("| strategy | time (ms) |\n|---|---|")
    for k, ts in times.items():
        print(f"| {k} | {statistics.median(ts) * 1e3:.3g} ({min(ts) * 1e3:.3g}–"
              f"{max(ts) * 1e3:.3g}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
