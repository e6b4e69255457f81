"""How far apart the two evaluators' results are, element by element, for every loss.

symloss answers with numba kernels, or with the NumPy evaluator where numba is missing
(``SYMLOSS_FAST=0``, :func:`symloss.fast.disabled`). Issue 8 asks that the two give the same
answer -- at most one float apart -- on every input. This script measures it: for every entry of
``speed.py`` (each loss, ``:soft`` targets, option entries) × {float32, float64} × {grad_fn,
hvp_fn}, at ``--n`` elements drawn as ``speed.py`` draws them (inputs, and every other array from
its declared domain), for ``--seeds`` seeds, the largest number of floats between the two
results (0: the same bits; results both below the smallest normal number count as equal: either
may flush to 0) and how many elements are more than one float apart. Exit 1 when any is.

    python benchmarks/agreement.py
    python benchmarks/agreement.py --only binary_cross_entropy_with_logits cross_entropy
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speed  # this folder's speed.py: its entries and input draws
from accuracy import floats_apart  # this folder's accuracy.py (its search measures it too)

import symloss
from symloss import fast


def measure(name: str, dtype: str, n: int, seeds: int) -> dict[str, tuple[int, int, int, str]]:
    """``{"grad" | "hvp": (most floats apart, elements > 1 apart, elements, worst inputs)}``."""
    d = symloss.derive(speed._loss(name), reduction="none", **speed.entry_options(name, dtype))
    out: dict[str, tuple[int, int, int, str]] = {}
    for seed in range(seeds):
        arrays = speed.inputs(name, n, dtype, seed=seed)
        v = np.random.default_rng(seed + 1).standard_normal(arrays[0].shape).astype(dtype)
        for order, extra in (("grad", ()), ("hvp", (v,))):
            call = d.grad_fn if order == "grad" else d.hvp_fn
            got = np.asarray(call(*arrays, *extra))
            with fast.disabled():
                want = np.asarray(call(*arrays, *extra))
            apart = floats_apart(got, want).reshape(got.shape)
            worst, over, count, where = out.get(order, (0, 0, 0, ""))
            flat = apart.reshape(apart.shape[0], -1).max(axis=1) if apart.ndim else apart
            j = int(np.argmax(flat))
            if int(flat[j]) > worst:
                worst = int(flat[j])
                where = ", ".join(f"{np.array2string(np.asarray(a[j]).ravel()[:4], precision=17, max_line_width=10**6)}"
                                  for a in arrays[:2])
            out[order] = (worst, over + int((apart > 1).sum()), count + apart.size, where)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="ENTRY",
                        help="these speed.py entries only (a loss name, LOSS:soft, LOSS:<option>)")
    parser.add_argument("--n", type=int, default=20000, help="elements per draw (default 20000)")
    parser.add_argument("--seeds", type=int, default=3, help="draws per entry (default 3)")
    args = parser.parse_args(argv)
    if args.n < 10 or args.seeds < 1:
        parser.error(f"--n must be at least 10 and --seeds at least 1 (got {args.n}, {args.seeds})")
    try:
        names = speed.entries(args.only or list(symloss.losses()))
        for name in names:
            speed._loss(name)
    except (KeyError, ValueError) as exc:
        parser.error(str(exc))
    start = time.process_time()
    print("| entry | dtype | grad: most floats apart | grad: elements > 1 apart | hvp: most "
          "floats apart | hvp: elements > 1 apart | worst grad inputs |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for name in names:
        for dtype in ("float32", "float64"):
            r = measure(name, dtype, args.n, args.seeds)
            g, h = r["grad"], r["hvp"]
            bad = g[0] > 1 or h[0] > 1
            failed += bad

            def cell(x: tuple[int, int, int, str]) -> str:
                return f"**{x[0]}**" if x[0] > 1 else str(x[0])

            print(f"| {name} | {dtype} | {cell(g)} | {g[1]} of {g[2]} | {cell(h)} | {h[1]} of "
                  f"{h[2]} | {g[3] if g[0] > 1 else ''} |", flush=True)
    print(f"\n{failed} entry × dtype rows more than one float apart (goal: 0); "
          f"{time.process_time() - start:.0f} CPU s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
