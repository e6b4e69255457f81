"""The ``symloss`` command: list, derive and check losses.

Exit codes: 0 success (and, for ``check``, agreement), 1 disagreement, 2 usage error -- one
readable line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .catalog import ALIASES, CATALOG, REDUCTIONS
from .errors import SymlossError

__all__ = ["main"]

FORMATS = ("text", "latex", "markdown")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class UsageError(SymlossError):
    """A command-line usage error (exit code 2)."""


def _add_loss_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loss options (torch.nn.functional keyword arguments)")
    group.add_argument("--reduction", choices=(*REDUCTIONS, "batchmean"),
                       help="none, mean (default) or sum; kl_div also batchmean")
    group.add_argument("--link", help="binary_cross_entropy: 'sigmoid' takes logits")
    group.add_argument("--weight", type=float, nargs="+", metavar="W", help="weight values")
    group.add_argument("--pos-weight", type=float, nargs="+", metavar="W", help="pos_weight values")
    group.add_argument("--ignore-index", type=int, metavar="N", help="ignored class index")
    group.add_argument("--label-smoothing", type=float, metavar="EPS", help="in [0, 1]")
    group.add_argument("--beta", type=float, help="smooth_l1_loss: quadratic zone, ≥ 0")
    group.add_argument("--delta", type=float, help="huber_loss: threshold, > 0")
    group.add_argument("--margin", type=float, help="hinge/ranking/multi-margin losses")
    group.add_argument("--eps", type=float, help="poisson_nll_loss, gaussian_nll_loss")
    group.add_argument("--p", type=int, choices=(1, 2), help="multi_margin_loss exponent")
    group.add_argument("--alpha", type=float, help="sigmoid_focal_loss (negative: off)")
    group.add_argument("--gamma", type=float, help="sigmoid_focal_loss, ≥ 0")
    for flag, help in (("full", "poisson/gaussian NLL: add the constant terms"),
                       ("log-input", "poisson_nll_loss: input is log λ"),
                       ("log-target", "kl_div: target is a log-probability")):
        group.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, help=help)


_OPTION_NAMES = (
    "reduction", "link", "weight", "pos_weight", "ignore_index", "label_smoothing", "beta",
    "delta", "margin", "eps", "p", "alpha", "gamma", "full", "log_input", "log_target",
)


def _loss_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in _OPTION_NAMES:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = None if (name == "link" and value == "none") else value
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="symloss",
        description="The exact reference for loss-function gradients: derive, print, check.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="the losses and their aliases")

    derive = sub.add_parser("derive", help="print the derivation of a loss's gradient")
    derive.add_argument("name", nargs="?", help="loss name or alias (see `symloss list`)")
    derive.add_argument("--format", choices=FORMATS, default="text")
    derive.add_argument("--order", type=int, choices=(1, 2), default=1,
                        help="1: the gradient (default); 2: the second derivative (Hessian)")
    derive.add_argument("--document", action="store_true", help="a complete LaTeX document")
    derive.add_argument("--all", action="store_true", help="every loss, written to --out")
    derive.add_argument("--out", type=Path, help="folder for --all (Markdown and .tex files)")
    _add_loss_options(derive)

    check = sub.add_parser("check", help="compare torch autograd with the exact reference")
    check.add_argument("name", help="loss name or alias")
    check.add_argument("--dtype", choices=("float32", "float64"), help="only this dtype")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    _add_loss_options(check)
    return parser


def _cmd_list() -> int:
    width = max(len(n) for n in [*CATALOG, *ALIASES])
    print("losses:")
    for name in sorted(CATALOG):
        print(f"  {name:<{width}}  {CATALOG[name].summary}")
    print("aliases:")
    for alias, (target, preset) in sorted(ALIASES.items()):
        extra = "".join(f", {k}={v!r}" for k, v in preset.items())
        print(f"  {alias:<{width}}  {target}{extra}")
    return 0


def _render(derivation: Any, fmt: str, document: bool, order: int = 1) -> str:
    if fmt == "latex":
        return str(derivation.latex(document=document, order=order))
    if document:
        raise UsageError("--document goes with --format latex")
    if fmt == "markdown":
        return str(derivation.markdown(order=order))
    return str(derivation.text(order=order))


def _cmd_derive(args: argparse.Namespace) -> int:
    from . import derive

    if args.all:
        if args.out is None:
            raise UsageError("--all needs --out DIR")
        if args.name:
            raise UsageError("give a loss name or --all, not both")
        from .documents import write_all

        for path in write_all(args.out):
            print(path)
        return 0
    if not args.name:
        raise UsageError("give a loss name (see `symloss list`) or --all --out DIR")
    derivation = derive(args.name, **_loss_options(args))
    text = _render(derivation, args.format, args.document, args.order)
    sys.stdout.write(text.rstrip("\n") + "\n")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from . import derive
    from .testing import TOLERANCE_ULPS, battery, compare

    derivation = derive(args.name, **_loss_options(args))
    if derivation.spec.arguments != ("input", "target"):
        raise UsageError(
            f"symloss check drives losses of (input, target); {derivation.name} takes "
            f"({', '.join(derivation.spec.arguments)}): use the Python API (grad_fn, wrt=)"
        )
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("symloss check needs torch: pip install 'symloss[torch]'") from None
    cases = [c for c in battery(derivation) if args.dtype in (None, c.dtype)]
    rows = compare(derivation, cases=cases)
    failed = [r for r in rows if not r.ok]
    if args.json:
        print(
            json.dumps(
                {
                    "loss": derivation.name,
                    "options": {k: str(v) for k, v in derivation.display_options.items()},
                    "tolerance_ulps": TOLERANCE_ULPS,
                    "agree": not failed,
                    "cases": [
                        {
                            "case": r.case.description,
                            "dtype": r.case.dtype,
                            "loss_ulps": r.loss_ulps,
                            "grad_ulps": r.grad_ulps,
                            "ok": r.ok,
                            "worst": r.worst,
                            "error": r.error,
                        }
                        for r in rows
                    ],
                },
                indent=2,
            )
        )
        return 1 if failed else 0
    print(f"torch.nn.functional.{derivation.name} against symloss "
          f"({', '.join(f'{k}={v!r}' for k, v in derivation.display_options.items())})")
    print(f"tolerance: {TOLERANCE_ULPS:g} ulps of the terms combined")
    header = f"{'case':<46} {'dtype':<8} {'loss ulps':>10} {'grad ulps':>12}  result"
    print(header)
    print("-" * len(header))
    for r in rows:
        verdict = "ok" if r.ok else "FAIL"
        print(f"{r.case.description:<46} {r.case.dtype:<8} {r.loss_ulps:>10.3g} "
              f"{r.grad_ulps:>12.3g}  {verdict}")
    if failed:
        print(f"\n{len(failed)} of {len(rows)} cases disagree:")
        for r in failed:
            if r.error:
                print(f"  {r.case.description} [{r.case.dtype}]: torch raised {r.error}")
            else:
                w = r.worst
                print(f"  {r.case.description} [{r.case.dtype}]: at index {r.worst_index}, "
                      f"input {w['input']:.6g}: torch {w['got']:.9g}, exact {w['expected']:.9g}")
        return 1
    print(f"\nall {len(rows)} cases agree")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "derive":
            return _cmd_derive(args)
        return _cmd_check(args)
    except SymlossError as exc:
        print(f"symloss: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `symloss derive ce | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
