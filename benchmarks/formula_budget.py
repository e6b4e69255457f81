"""The formula budget, measured: the time and peak memory of every row of the hostile-formula
table (``tests/test_hostile_formulas.py``), each in a fresh process.

For an accepted formula the whole derivation is done: ``custom_loss``, the gradient
(simplified within ``FormulaLimits.time_limit``), the proof against a canonical form, the
text rendering, the Hessian and a NumPy evaluation; for a refused one, the refusal. Peak
memory is the largest resident set of the process and its workers (``ru_maxrss``).

    python benchmarks/formula_budget.py          # every row, slowest first
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_ROW = """
import sys, time, numpy as np
from symloss.custom import custom_loss
from symloss.errors import SymlossError
formula = sys.stdin.read()
start = time.perf_counter()
try:
    d = custom_loss(formula, canonical="z")
    d.gradient; d.proved; d.text(); d.hessian
    x = np.linspace(0.05, 0.95, 7) if "p" in formula else np.linspace(-3.0, 3.0, 7)
    d.grad_fn(x, np.full(7, 0.5))
    print(f"{time.perf_counter() - start:.3f} derived"
          + ("" if d.proved else f" ({d.proof_note[:40]})"))
except SymlossError as exc:
    print(f"{time.perf_counter() - start:.3f} refused: " + str(exc)[:60])
"""


def measure(formula: str) -> tuple[float, float, str, int]:
    proc = subprocess.run([sys.executable, "-c", _ROW], input=formula, capture_output=True,
                          text=True, timeout=600)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    text = proc.stdout.strip() or "0 " + proc.stderr.strip().splitlines()[-1]
    work, outcome = text.split(" ", 1)
    return float(work), peak_kib / 1024, outcome[:70], proc.returncode


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_hostile_formulas import FORMULAS

    rows = []
    for formula, _ in FORMULAS:
        work, _, outcome, code = measure(formula)
        rows.append((work, formula, outcome, code))
    # ru_maxrss of children is the peak over all of them: report it once
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows.sort(reverse=True)
    refused = [r[0] for r in rows if r[2].startswith("refused")]
    print(f"{len(rows)} formulas; worst time {rows[0][0]:.2f} s (after imports; every stage "
          f"bounded by FormulaLimits.time_limit); worst refusal {max(refused):.4f} s; peak "
          f"memory of any one process {peak:.0f} MiB\n")
    print("| s | exit | formula | outcome |\n|---|---|---|---|")
    for wall, formula, outcome, code in rows:
        shown = formula if len(formula) <= 40 else formula[:37] + "..."
        print(f"| {wall:.2f} | {code} | `{shown!r}` | {outcome} |")


if __name__ == "__main__":
    main()
