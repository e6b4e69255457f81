"""Interleaved A/B of the row losses' compiled kernels: a git revision's printer against this tree's.

Prints each row kernel (``symloss.rows_compiled.source``) with ``src/symloss/rows_compiled.py``
as it is at ``--old`` (A) and as it is now (B), compiles both, and calls them by turns on the
same prepared arrays (speed.py's inputs), one thread. Times are the calling thread's CPU time
(``time.thread_time``), the minimum over the rounds: on a shared machine the wall time of the
same call varies by 2x, its CPU time by a few percent. Also prints whether A and B give the
same numbers (ulp apart) and the rows each hands back to the NumPy path. A printer whose
``Compiled`` has ``run`` (a result's first tier -- float32's since s19, float64's since s20 --
then the tracked kernel at the rows it leaves) is timed through it: all its tiers, as
``symloss.rows`` calls them.

    PYTHONPATH=src python benchmarks/rows_ab.py --old main --sizes 100000
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed

import symloss
from symloss import rows, rows_compiled

ROW_LOSSES = ("cosine_embedding_loss", "triplet_margin_loss", "multilabel_margin_loss")


def old_printer(rev: str) -> Any:
    """``symloss.rows_compiled`` as it is at git revision ``rev`` (a module of its own)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = subprocess.run(["git", "show", f"{rev}:src/symloss/rows_compiled.py"], cwd=root,
                          check=True, capture_output=True, text=True).stdout
    path = os.path.join(tempfile.mkdtemp(), "rows_compiled_old.py")
    with open(path, "w") as f:
        f.write(text)
    spec = importlib.util.spec_from_file_location("symloss._rows_compiled_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kernel_args(params: list[str], raw: dict[str, Any], rows: tuple[int, ...],
                width: int) -> list[np.ndarray]:
    """A row kernel's arrays, in its parameters' order, as ``symloss.rows`` passes them: a
    scalar option repeated on every row, a per-row array flat, a per-element one as (rows,
    width)."""
    count = math.prod(rows)
    args = []
    for param in params:
        value = np.asarray(raw[param])
        if value.ndim == 0:
            args.append(np.broadcast_to(np.float64(value), (count,)))
        elif value.ndim == len(rows):
            args.append(value.reshape(count))
        else:
            args.append(value.reshape(count, width))
    return args


def kernel_setup(name: str, n: int, dtype: str) -> tuple[Any, Any, dict[str, Any], int, list[str]]:
    """speed.py's inputs of entry ``name`` prepared for the row kernels: the adapter, the
    prepared arrays, their raw values with a seeded ``v``, the row count and the kernels'
    keys (each gradient's and, but for multilabel_margin_loss, the HVP's)."""
    d = symloss.derive(speed._loss(name), reduction="mean", **speed.entry_options(name, dtype))
    adapter = rows.RowAdapter(d)
    arrays = speed.inputs(name, n, dtype)
    v = np.random.default_rng(1).standard_normal(arrays[0].shape).astype(dtype)
    p = adapter.prepare(*arrays)
    raw = {**p.raw, "v": v}
    keys = [f"grad:{adapter.differentiable[0]}"] + (["hvp"] if name != "multilabel_margin_loss"
                                                    else [])
    return adapter, p, raw, math.prod(p.rows), keys


def compare(old: Any, name: str, n: int, dtype: str, rounds: int) -> None:
    adapter, p, raw, count, keys = kernel_setup(name, n, dtype)
    for key in keys:
        kernel = adapter._kernel(key)
        calls, results = [], []
        row_left: int | str = "-"
        for module in (old, rows_compiled):
            compiled = module.build(kernel)  # with every tier the printer has
            params = compiled.params
            mode = "f64" if dtype == "float32" else "dd"
            # a printer with tiers runs them all (Compiled.run); an older one, its one kernel
            run = getattr(compiled, "run", None)
            fn = compiled.get(mode) if run is None else partial(run, mode)
            args = kernel_args(params, raw, p.rows, p.width)
            out = np.empty((count, p.width) if compiled.free else (count,), dtype=dtype)
            bad = np.zeros(count, dtype=np.bool_)
            tol = 2.0 ** -(np.finfo(dtype).nmant + 1)

            def call(fn: Any = fn, out: np.ndarray = out, bad: np.ndarray = bad,
                     tol: float = tol, args: list[np.ndarray] = args) -> None:
                fn(out, bad, tol, p.width, float(count), *args)

            call()
            calls.append(call)
            results.append((out, bad))
            if getattr(compiled, "row_text", None) is not None and mode == "f64":
                row_bad = np.zeros(count, dtype=np.bool_)
                compiled.get("row")(np.empty_like(out), row_bad, tol / 2.0, p.width,
                                    float(count), *args)
                row_left = int(row_bad.sum())
        times: list[list[float]] = [[], []]
        for _ in range(rounds):
            for j, call in enumerate(calls):
                t = time.thread_time()
                call()
                times[j].append(time.thread_time() - t)
        a, b = (np.asarray(r[0], dtype=np.float64) for r in results)
        spacing = np.spacing(np.abs(results[0][0])).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            ulps = float(np.nanmax(np.where(a == b, 0.0, np.abs(a - b) / spacing)))
        ta, tb = min(times[0]), min(times[1])
        print(f"| {name} | {dtype} | {key.split(':')[0]} | {n:.0e} | {ta * 1e3:.3f} | "
              f"{tb * 1e3:.3f} | {tb / ta:.2f} | {ulps:g} | "
              f"{int(results[0][1].sum())}/{int(results[1][1].sum())} | {row_left} |",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="main", help="git revision of the A printer")
    parser.add_argument("--only", nargs="*", default=list(ROW_LOSSES))
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e5])
    parser.add_argument("--dtypes", nargs="*", default=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    speed.set_threads(1)
    old = old_printer(args.old)
    print(f"A: rows_compiled.py at {args.old}; B: this tree. CPU ms per call (thread_time, min "
          f"of {args.rounds} interleaved rounds), 1 thread\n")
    print("| loss | dtype | kernel | n | A ms | B ms | B/A | ulp apart | rows handed back A/B "
          "| rows B's row-level tier hands on |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.only:
        for n in args.sizes:
            for dtype in args.dtypes:
                compare(old, name, int(n), dtype, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
