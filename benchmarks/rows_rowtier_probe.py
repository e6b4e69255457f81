"""What a row-level error bound could save in the row losses' float32 first tier: a cost probe.

The float32 first tier (``rows_compiled._HELPERS_FIRST``) carries a running error bound on every
operation, the per-element ones included (the terms of each sum over an index, and each
gradient element). A row-level bound would keep the per-row scalars' running bounds (once per
row) and bound every per-element value by one number per row, computed from the row's
magnitudes (``max |x_k|`` of each argument) by the same monotone rules: per element only the
value and one comparison remain. This probe measures that design's floor without building it:

* ``first``: the tier as printed (main's);
* ``rowlevel``: the same text with every operation inside a loop over an index replaced by its
  value alone (its bound 0, the ``e += ...`` accumulation dropped; the sums' own compensation
  terms kept), plus a per-row pass taking ``max |x_k|`` of each argument -- the work a
  row-level bound needs per element; its results are *not* certified (a floor, not a tier);
* ``plain``: every operation's bound dropped (the row-level ones too): the kernel's values alone.

CPU ms per call (``time.thread_time``, minimum over interleaved rounds), 1 thread, on
speed.py's inputs. Prints the elements of ``rowlevel`` that differ from ``first`` (there should be
none: the values are the same operations; only the bounds differ).

    PYTHONPATH=src python benchmarks/rows_rowtier_probe.py --sizes 10000 1000000
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed
from rows_ab import kernel_args, kernel_setup

from symloss import rows_compiled

ROW_LOSSES = ("cosine_embedding_loss", "triplet_margin_loss", "multilabel_margin_loss")

# value-only twins of the first tier's operations (the same float64 operations, bound 0)
_VALUE_OPS = '''

@njit(inline="always", **_J)
def v_add(ah, al, ae, bh, bl, be):
    return ah + bh, 0.0, 0.0


@njit(inline="always", **_J)
def v_mul(ah, al, ae, bh, bl, be):
    return ah * bh, 0.0, 0.0


@njit(inline="always", **_J)
def v_div(ah, al, ae, bh, bl, be):
    return ah / bh, 0.0, 0.0


@njit(inline="always", **_J)
def v_sqrt(ah, al, ae):
    return (math.sqrt(ah) if ah >= 0.0 else math.nan), 0.0, 0.0
'''

_OPS = ("t_add(", "t_mul(", "t_div(", "t_sqrt(")


def variant(text: str, params: list[str], raw: dict[str, Any], how: str) -> str:
    """The kernel text with the bounds of the operations in loops (``rowlevel``) or of every
    operation (``plain``) dropped; ``rowlevel`` also takes each argument's ``max |x|`` per row."""
    out: list[str] = []
    depth: list[int] = []  # indents of the enclosing `for i` loops
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        while depth and indent <= depth[-1]:
            depth.pop()
        inside = bool(depth) or how == "plain"
        if line.strip().startswith("for i") and "range(width)" in line:
            depth.append(indent)
        elif inside:
            if re.match(r"\s*t\d+_e \+= t\d+_e$", line):
                continue
            for op in _OPS:
                line = line.replace(op, "v_" + op[2:])
        out.append(line)
        if how == "rowlevel" and line.strip().startswith("for r in range(out.shape[0]):"):
            pad = " " * (indent + 4)
            wide = [f"a_{j}" for j, p in enumerate(params) if np.ndim(raw[p]) > 1]
            out.append(pad + ", ".join(f"mx_{a}" for a in wide) + " = " +
                       ", ".join("0.0" for _ in wide))
            out.append(pad + "for ix in range(width):")
            for a in wide:
                out.append(pad + f"    mx_{a} = max(mx_{a}, abs(np.float64({a}[r, ix])))")
            out.append(pad + "if " + " + ".join(f"mx_{a}" for a in wide) + " < 0.0:")
            out.append(pad + "    bad[r] = True")  # keeps the pass (never true)
    return _VALUE_OPS + "\n".join(out) + "\n"


def probe(name: str, n: int, rounds: int) -> None:
    dtype = "float32"
    adapter, p, raw, count, keys = kernel_setup(name, n, dtype)
    for key in keys:
        kernel = adapter._kernel(key)
        text, params = rows_compiled.source(kernel.expr, kernel.args, kernel.views, kernel.slots,
                                            kernel.free)
        args = kernel_args(params, raw, p.rows, p.width)
        tol = 2.0 ** -(np.finfo(dtype).nmant + 1) / 2.0
        calls, results = [], []
        for how in ("first", "rowlevel", "plain"):
            body = text if how == "first" else variant(text, params, raw, how)
            fn = rows_compiled.Compiled(body, params, kernel.free is not None).get("first")
            shape = (count, p.width) if kernel.free is not None else (count,)
            out = np.empty(shape, dtype=dtype)
            bad = np.zeros(count, dtype=np.bool_)

            def call(fn: Any = fn, out: np.ndarray = out, bad: np.ndarray = bad,
                     args: list[Any] = args, tol: float = tol) -> None:
                fn(out, bad, tol, p.width, float(count), *args)

            call()
            calls.append(call)
            results.append(out)
        times: list[list[float]] = [[] for _ in calls]
        for _ in range(rounds):
            for j, call in enumerate(calls):
                t = time.thread_time()
                call()
                times[j].append(time.thread_time() - t)
        ms = [min(t) * 1e3 for t in times]
        differ = int(np.sum(results[0] != results[1]))
        print(f"| {name} | {key.split(':')[0]} | {n:.0e} | {p.width} | {ms[0]:.3f} | "
              f"{ms[1]:.3f} | {ms[2]:.3f} | {ms[1] / ms[0]:.2f} | {ms[2] / ms[0]:.2f} | "
              f"{differ} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(ROW_LOSSES))
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e4, 1e6])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    speed.set_threads(1)
    print(f"float32 first tier, CPU ms per call (thread_time, min of {args.rounds} interleaved "
          "rounds), 1 thread; load " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + "\n")
    print("| loss | kernel | n | width | first ms | rowlevel ms | plain ms | rowlevel/first "
          "| plain/first | elements differing |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.only:
        for n in args.sizes:
            probe(name, int(n), args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
