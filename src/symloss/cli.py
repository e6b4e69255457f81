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

from .catalog import ALIASES, CATALOG
from .errors import SymlossError

__all__ = ["main"]

FORMATS = ("text", "latex", "markdown")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class UsageError(SymlossError):
    """A command-line usage error (exit code 2)."""


def _option_flags() -> dict[str, list[tuple[str, Any]]]:
    """Every option of every loss, by name: [(loss, Option), ...] (the flags' single source)."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for spec in CATALOG.values():
        for opt in spec.options:
            out.setdefault(opt.name, []).append((spec.name, opt))
    return out


def _add_loss_options(parser: argparse.ArgumentParser) -> None:
    """One flag per catalogue option (``--pos-weight`` for ``pos_weight``), generated from the
    declarations: its type from the option's kind, its help from the losses that take it."""
    group = parser.add_argument_group("loss options (torch.nn.functional keyword arguments)")
    for name, owners in sorted(_option_flags().items()):
        opt = owners[0][1]
        losses = sorted({loss for loss, _ in owners})
        where = "every loss" if len(losses) == len(CATALOG) else ", ".join(losses)
        helps = list(dict.fromkeys(o.help for _, o in owners))
        help = f"{where}: {helps[0]}" if len(helps) == 1 else f"{where} (see `symloss list`)"
        flag, dest = opt.flag, name
        if opt.kind == "array":
            group.add_argument(flag, dest=dest, type=float, nargs="+", metavar="W", help=help)
        elif opt.kind == "int":
            group.add_argument(flag, dest=dest, type=int, metavar="N", help=help)
        elif opt.kind in ("real", "nonnegative", "positive", "unit_interval"):
            group.add_argument(flag, dest=dest, type=float, metavar="X", help=help)
        elif all(set(o.choices or ()) <= {False, True} for _, o in owners):
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, help=help)
        else:
            choices = list(dict.fromkeys(c for _, o in owners for c in (o.choices or ())))
            if all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
                group.add_argument(flag, dest=dest, type=int, choices=choices, help=help)
            elif None in choices:  # `--link none`; the loss names its own valid values
                shown = ["none" if c is None else str(c) for c in choices]
                group.add_argument(flag, dest=dest, metavar="|".join(shown), help=help)
            else:
                group.add_argument(flag, dest=dest, choices=[str(c) for c in choices], help=help)


def _loss_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name in _option_flags():
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

    listing = sub.add_parser("list", help="the losses and their aliases")
    _add_lang(listing)

    derive = sub.add_parser("derive", help="print the derivation of a loss's gradient")
    derive.add_argument("name", nargs="?", help="loss name or alias (see `symloss list`)")
    derive.add_argument("--format", choices=FORMATS, default="text")
    derive.add_argument("--order", type=int, choices=(1, 2), default=1,
                        help="1: the gradient (default); 2: the second derivative (Hessian)")
    derive.add_argument("--document", action="store_true", help="a complete LaTeX document")
    derive.add_argument("--all", action="store_true", help="every loss, written to --out")
    derive.add_argument("--out", type=Path, help="folder for --all (Markdown and .tex files)")
    _add_example_arguments(derive)
    _add_lang(derive)
    _add_loss_options(derive)
    _add_relate_parser(sub)

    check = sub.add_parser("check", help="compare an implementation with the exact reference")
    _add_impl_arguments(check)
    check.add_argument("--dtype", choices=("float32", "float64"), help="only this dtype")
    check.add_argument("--domain", type=float, nargs=2, metavar=("LO", "HI"),
                       help="check inputs in [LO, HI] only (default: the whole finite range)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    _add_lang(check)
    _add_loss_options(check)

    plot = sub.add_parser("plot", help="draw the loss, gradient and 2nd derivative (matplotlib)")
    _add_impl_arguments(plot)
    plot.add_argument("--torch", action="store_true",
                      help="draw torch's own gradient over the exact one (needs torch)")
    plot.add_argument("-o", "--out", type=Path, required=True, help="image file (.png, .pdf)")
    plot.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    plot.add_argument("--range", type=float, nargs=2, metavar=("LO", "HI"), default=(-40.0, 40.0),
                      dest="span", help="the range of z (default -40 40)")
    _add_loss_options(plot)
    return parser


def _cmd_list(lang: str = "en") -> int:
    from .relations import pairs
    from .words import say, word

    width = max(len(n) for n in [*CATALOG, *ALIASES])
    print(word("list.losses", lang))
    for name in sorted(CATALOG):
        print(f"  {name:<{width}}  {say(CATALOG[name].summary, lang)}")
    print(word("list.aliases", lang))
    for alias, (target, preset) in sorted(ALIASES.items()):
        extra = "".join(f", {k}={v!r}" for k, v in preset.items())
        print(f"  {alias:<{width}}  {target}{extra}")
    print(word("list.relations", lang))
    for _, left, right in pairs():
        print(f"  {left} {right}")
    return 0


def _add_lang(parser: argparse.ArgumentParser) -> None:
    from .words import LANGS

    parser.add_argument("--lang", choices=LANGS, default="en",
                        help="the language of the words (the mathematics is the same)")


def _add_example_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=float, nargs="+", metavar="X",
                        help="a worked example: the input's numbers beside every step")
    parser.add_argument("--target", type=float, nargs="+", metavar="Y",
                        help="the worked example's target (class indices for a class axis)")
    parser.add_argument("--classes", type=int, metavar="C",
                        help="class-axis example: --input is C numbers per sample, row by row")


def _example(derivation: Any, args: argparse.Namespace) -> Any:
    """The worked example of ``symloss derive NAME --input … --target …``."""
    import numpy as np

    if args.input is None or args.target is None:
        raise UsageError("a worked example needs both --input and --target")
    if derivation.spec.arguments != ("input", "target"):
        raise UsageError(f"--input/--target examples take (input, target); {derivation.name} "
                         f"takes ({', '.join(derivation.spec.arguments)}): use Derivation.example")
    x = np.array(args.input)
    y = np.array(args.target)
    if derivation.declaration.class_axis:
        classes = args.classes or len(x)
        if classes < 1 or len(x) % classes:
            raise UsageError(f"--classes {classes} does not divide the {len(x)} input numbers")
        x = x.reshape(-1, classes)
        if x.shape[0] == 1:
            x = x[0]
        if len(y) != len(args.input) and np.all(y == np.round(y)):
            y = y.astype(np.int64)  # class indices
        elif len(y) == len(args.input):
            y = y.reshape(x.shape)
    return derivation.example(x, y)


def _add_relate_parser(sub: Any) -> None:
    relate = sub.add_parser("relate", help="the proved relation between two losses")
    relate.add_argument("a", help="a loss name or alias, or a relation's name")
    relate.add_argument("b", nargs="?", default="", help="the other loss")
    relate.add_argument("--format", choices=FORMATS, default="text")
    relate.add_argument("--document", action="store_true", help="a complete LaTeX document")
    _add_lang(relate)


def _in_language(command: Any, args: argparse.Namespace) -> int:
    """Run ``command``; with ``--lang zh`` its printed report is said in Chinese, line by line
    (JSON stays as it is: it is data)."""
    lang = getattr(args, "lang", "en")
    if lang == "en" or getattr(args, "json", False):
        return int(command(args))
    import contextlib
    import io

    from .words import translate_lines

    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            return int(command(args))
    finally:
        sys.stdout.write(translate_lines(buffer.getvalue(), lang))


def _cmd_relate(args: argparse.Namespace) -> int:
    """Print the relation; exit 0 when SymPy proved it, 1 when not."""
    from .relations import relate

    relation = relate(args.a, args.b)
    if args.document and args.format != "latex":
        raise UsageError("--document goes with --format latex")
    if args.format == "latex":
        out = relation.latex(document=args.document, lang=args.lang)
    elif args.format == "markdown":
        out = relation.markdown(lang=args.lang)
    else:
        out = relation.text(lang=args.lang)
    sys.stdout.write(out.rstrip("\n") + "\n")
    return 0 if relation.proved else 1


def _render(derivation: Any, fmt: str, document: bool, order: int = 1, lang: str = "en") -> str:
    if fmt == "latex":
        return str(derivation.latex(document=document, order=order, lang=lang))
    if document:
        raise UsageError("--document goes with --format latex")
    if fmt == "markdown":
        return str(derivation.markdown(order=order, lang=lang))
    return str(derivation.text(order=order, lang=lang))


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
    if args.input is not None or args.target is not None:
        if args.order != 1:
            raise UsageError("a worked example is of the gradient: drop --order 2")
        derivation = _example(derivation, args)
        if args.format == "latex":
            text = derivation.latex(document=args.document, lang=args.lang)
        else:
            text = _render(derivation, args.format, args.document, lang=args.lang)
        sys.stdout.write(text.rstrip("\n") + "\n")
        return 0
    text = _render(derivation, args.format, args.document, args.order, args.lang)
    sys.stdout.write(text.rstrip("\n") + "\n")
    return 0


def _add_impl_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="loss name or alias (see `symloss list`)")
    parser.add_argument("--impl", metavar="MODULE:FUNCTION",
                        help="the implementation fn(input, target) to check (default: torch's)")
    parser.add_argument("--expr", metavar="FORMULA",
                        help="a loss of your own, e.g. 'y*softplus(-z) + (1-y)*softplus(z)'")


def _load_impl(spec: str | None) -> Any:
    """``module:function`` -> the function; every failure is a usage error (one line)."""
    if spec is None:
        return None
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--impl must be MODULE:FUNCTION, got {spec!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UsageError(f"--impl: no module named {exc.name!r} (from {spec!r})") from None
    except Exception as exc:  # the user's module failed to import: say so in one line
        raise UsageError(
            f"--impl: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    fn: Any = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise UsageError(f"--impl: module {module_name!r} has no attribute {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise UsageError(f"--impl: {spec!r} is not callable")
    return fn


def _derivation_for(args: argparse.Namespace) -> Any:
    options = _loss_options(args)
    if args.expr is not None:
        from .custom import custom_loss

        extra = sorted(set(options) - {"reduction"})
        if extra:
            raise UsageError(f"a --expr loss takes only --reduction, not {', '.join(extra)}")
        return custom_loss(args.expr, name=args.name or "custom", **options)
    if not args.name:
        raise UsageError("give a loss name (see `symloss list`) or --expr FORMULA")
    from . import derive

    return derive(args.name, **options)


def _need_torch(impl: Any, derivation: Any) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("this command needs torch: pip install 'symloss[torch]'") from None
    if impl is None and args_is_custom(derivation):
        raise UsageError("a --expr loss has no torch twin: give --impl MODULE:FUNCTION")
    if impl is None and not getattr(derivation.spec, "has_torch_twin", True):
        raise UsageError(
            f"{derivation.name} has no torch twin (torch does not have this loss): give "
            "--impl MODULE:FUNCTION"
        )


def args_is_custom(derivation: Any) -> bool:
    from .custom import CustomDerivation

    return isinstance(derivation, CustomDerivation)


def _cmd_check(args: argparse.Namespace) -> int:
    from .stability import stability_map
    from .testing import DTYPES, TOLERANCE_ULPS, check

    derivation = _derivation_for(args)
    impl = _load_impl(args.impl)
    _need_torch(impl, derivation)
    dtypes = [args.dtype] if args.dtype else list(DTYPES)
    domain = tuple(args.domain) if args.domain else None
    result = check(derivation, impl, domain=domain, dtypes=dtypes)
    two_arrays = len(derivation.spec.arguments) == 2  # the stability map moves one input
    maps = [stability_map(derivation, impl, dtype=dt, domain=domain) for dt in dtypes
            if two_arrays]
    if args.impl:
        label = args.impl
    elif derivation.spec.twin(derivation.options) is not None:  # torchvision's focal loss
        label = f"torch's {derivation.name} (written with torch operations)"
    else:
        label = f"torch.nn.functional.{derivation.name}"
    if args.json:
        out = result.to_json()
        out["implementation"] = label
        out["stability"] = [m.to_json() for m in maps]
        print(json.dumps(out, indent=2, default=float))
        return 0 if result.ok else 1
    shown = ", ".join(f"{k}={v!r}" for k, v in derivation.display_options.items())
    print(f"{label} against symloss's exact {derivation.name}({shown})")
    arrays = derivation.spec.differentiable()
    if result.ok:
        print(f"agrees: all {len(result.rows)} cases, loss value and gradient, within "
              f"{TOLERANCE_ULPS:g} ulps")
        if len(arrays) > 1:
            print(f"gradients compared: {', '.join(arrays)}")
        for line in result.conventions():
            print(line)
    else:
        print(result.report(label))
    if maps:
        print("\nstability map (where the gradient is exact):")
        for m in maps:
            print(str(m))
    return 0 if result.ok else 1


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot

    derivation = _derivation_for(args)
    if args.impl and args.torch:
        raise UsageError("give --impl MODULE:FUNCTION or --torch, not both")
    impl = _load_impl(args.impl)
    if impl is not None or args.torch:  # only the overlay needs torch
        _need_torch(impl, derivation)
    lo, hi = args.span
    if not lo < hi:
        raise UsageError(f"--range needs LO < HI, got {lo:g} {hi:g}")
    overlay = "torch" if args.torch else impl
    print(plot(derivation, args.out, overlay, dtype=args.dtype, span=(lo, hi)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list(args.lang)
        if args.command == "relate":
            return _cmd_relate(args)
        if args.command == "derive":
            return _cmd_derive(args)
        if args.command == "plot":
            return _cmd_plot(args)
        return _in_language(_cmd_check, args)
    except SymlossError as exc:
        print(f"symloss: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `symloss derive ce | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
