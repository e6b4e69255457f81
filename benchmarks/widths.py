"""How wide the derivations print: the widest text line at COLUMNS (default 120) and the largest
overfull box pdflatex reports, for every document of derivations/ (each loss, its gradient and
its Hessian).

    PYTHONPATH=src python benchmarks/widths.py [--columns 120] [--no-latex]

Prints a Markdown table; exit 1 when a text line is wider than COLUMNS or a box overfull by more
than 20 pt. Works on older checkouts too (it only uses Derivation.text() and .latex()), so the
same command measures a before and an after.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MAX_OVERFULL_PT = 20.0


def overfull_pt(pdflatex: str, tex: str) -> float:
    """The largest overfull \\hbox of one document, in pt (0 when none)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "d.tex").write_text(tex, encoding="utf-8")
        subprocess.run([pdflatex, "-interaction=nonstopmode", "d.tex"], cwd=tmp,
                       capture_output=True, timeout=300)
        log = (Path(tmp) / "d.log").read_text(errors="replace")
    return max((float(x) for x in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)),
               default=0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=120)
    parser.add_argument("--no-latex", action="store_true", help="text widths only")
    args = parser.parse_args(argv)
    os.environ["COLUMNS"] = str(args.columns)

    import symloss
    from symloss.documents import documents

    pdflatex = None if args.no_latex else shutil.which("pdflatex")
    print(f"| document | text order 1 | text order 2 | overfull gradient .tex | "
          f"overfull Hessian .tex |  (COLUMNS={args.columns})")
    print("|---|---|---|---|---|")
    bad = 0
    for stem, name, options in documents():
        d = symloss.derive(name, **options)
        widths = [max(len(line) for line in d.text(order=o).splitlines()) for o in (1, 2)]
        boxes = ["–", "–"]
        if pdflatex is not None:
            pts = [overfull_pt(pdflatex, d.latex(document=True, order=o)) for o in (1, 2)]
            boxes = [f"{pt:.1f} pt" for pt in pts]
            bad += sum(pt > MAX_OVERFULL_PT for pt in pts)
        bad += sum(w > args.columns for w in widths)
        print(f"| {stem} | {widths[0]} | {widths[1]} | {boxes[0]} | {boxes[1]} |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
