"""The ``symloss`` command: list, derive and check losses.

Exit codes: 0 success (and, for ``check``, agreement), 1 disagreement or a runtime failure (a
file that cannot be written, a full disk, an implementation that hangs or crashes, Ctrl-C),
2 usage error -- one readable line on stderr, never a traceback. ``--out`` never overwrites a
file symloss did not write (``--force`` does); where stdout cannot encode Unicode, text comes
out as ASCII (SymPy's ASCII pretty printer, ASCII words).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .catalog import ALIASES, CATALOG
from .errors import SymlossError

__all__ = ["main"]

FORMATS = ("text", "latex", "markdown")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2, and reads ``-1e4``,
    ``-.5`` or ``-inf`` after an option as a number, not as an option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class UsageError(SymlossError):
    """A command-line usage error (exit code 2)."""


class CommandFailed(Exception):
    """A runtime failure of a command (exit code 1), with a one-line message."""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"a path may not contain a NUL character: {text!r}")
    return Path(text)


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
    derive.add_argument("--out", type=_path,
                        help="a file for one loss; the folder for --all (Markdown and .tex)")
    derive.add_argument("--force", action="store_true",
                        help="overwrite files --out did not write")
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
    check.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                       help="limit for an --impl, run in its own process (default 300)")
    _add_lang(check)
    _add_loss_options(check)

    warm = sub.add_parser("warm", help="compile a loss's kernels now, for fast first calls later")
    warm.add_argument("names", nargs="*", metavar="NAME",
                      help="loss names or aliases (see `symloss list`); the loss options below "
                           "apply to each")
    warm.add_argument("--all", action="store_true", help="every loss, at its default options")
    warm.add_argument("--dtype", choices=("float32", "float64"), help="only this dtype")
    warm.add_argument("--no-large", dest="large", action="store_false",
                      help="skip the parallel kernels (inputs of a million elements)")
    _add_loss_options(warm)

    plot = sub.add_parser("plot", help="draw the loss, gradient and 2nd derivative (matplotlib)")
    _add_impl_arguments(plot)
    plot.add_argument("--torch", action="store_true",
                      help="draw torch's own gradient over the exact one (needs torch)")
    plot.add_argument("-o", "--out", type=_path, required=True, help="image file (.png, .pdf)")
    plot.add_argument("--force", action="store_true", help="overwrite an existing file")
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


def _render(derivation: Any, fmt: str, document: bool, order: int = 1, lang: str = "en",
            use_unicode: bool = True) -> str:
    if fmt == "latex":
        return str(derivation.latex(document=document, order=order, lang=lang))
    if document:
        raise UsageError("--document goes with --format latex")
    if fmt == "markdown":
        return str(derivation.markdown(order=order, lang=lang))
    if not use_unicode:
        from .render import text

        return text(derivation, order=order, lang=lang, use_unicode=False)
    return str(derivation.text(order=order, lang=lang))


def _cmd_derive(args: argparse.Namespace) -> int:
    from . import derive

    if args.all:
        if args.out is None:
            raise UsageError("--all needs --out DIR")
        if args.name:
            raise UsageError("give a loss name or --all, not both")
        from .documents import render_all

        _check_folder(args.out)
        _make_folder(args.out)  # before the minutes of rendering: fail first
        for path in _write_files(args.out, render_all(), args.force):
            print(path)
        return 0
    if not args.name:
        raise UsageError("give a loss name (see `symloss list`) or --all --out DIR")
    if args.out is not None:
        _check_new_file(args.out, args.force)
    derivation = derive(args.name, **_loss_options(args))
    text: str | None = None
    if args.input is not None or args.target is not None:
        if args.order != 1:
            raise UsageError("a worked example is of the gradient: drop --order 2")
        derivation = _example(derivation, args)
        if args.format == "latex":
            text = derivation.latex(document=args.document, lang=args.lang)
        else:
            text = _render(derivation, args.format, args.document, lang=args.lang)
    if args.out is not None:
        if text is None:
            text = _render(derivation, args.format, args.document, args.order, args.lang)
        _write_atomic(args.out, text.rstrip("\n") + "\n")
        print(args.out)
        return 0
    ascii_only = _ascii_stdout()
    if text is None:
        text = _render(derivation, args.format, args.document, args.order, args.lang,
                       use_unicode=not ascii_only)
    if ascii_only and (args.format != "text" or args.lang != "en") and not _encodable(text):
        encoding = getattr(sys.stdout, "encoding", None) or "?"
        raise CommandFailed(
            f"stdout's encoding ({encoding}) cannot show this {args.format} (it has Unicode); "
            "write it to a file with --out FILE, or set PYTHONIOENCODING=utf-8")
    sys.stdout.write(text.rstrip("\n") + "\n")
    return 0


# --------------------------------------------------------------------------- files
def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file, not a folder")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandFailed(f"cannot create the folder {folder}: {_os_reason(exc)}") from None


def _check_new_file(path: Path, force: bool, flag: str = "--out") -> None:
    """A file about to be written: not a folder, in an existing folder, and new (or --force)."""
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: the folder {parent} does not exist")
    if (path.exists() or path.is_symlink()) and not force:
        raise UsageError(f"{flag} {path} exists; pass --force to overwrite it")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a unique temporary file beside ``path``, then rename it over."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CommandFailed(f"cannot write {path}: {_os_reason(exc)}") from None


_INDEX_HEAD = "# Derivations\n\nGenerated by `symloss derive --all"


def _written_by_symloss(folder: Path) -> bool:
    """A folder ``derive --all`` wrote: its README.md is symloss's index."""
    try:
        with open(folder / "README.md", encoding="utf-8") as f:
            return f.read(len(_INDEX_HEAD)) == _INDEX_HEAD
    except (OSError, UnicodeDecodeError):
        return False


def _write_files(folder: Path, files: dict[str, str], force: bool) -> list[Path]:
    """Write ``files`` into ``folder``; never over a file symloss did not write, unless
    ``force``: an existing file is overwritten only when identical, or when the folder is one
    ``derive --all`` wrote (its README.md is symloss's index)."""
    _make_folder(folder)
    ours = _written_by_symloss(folder)
    clashes = []
    for name, text in files.items():
        path = folder / name
        if path.is_dir():
            raise UsageError(f"--out {folder}: {name} is a folder there")
        if path.exists() or path.is_symlink():
            try:
                same = path.read_text(encoding="utf-8") == text
            except (OSError, UnicodeDecodeError):
                same = False
            if not same:
                clashes.append(name)
    if clashes and not (force or ours):
        shown = ", ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3
                                          else "")
        raise UsageError(f"--out {folder}: would overwrite {shown}, not written by symloss; "
                         "pass --force, or choose an empty folder")
    written = []
    for name, text in files.items():
        path = folder / name
        if path.parent != folder:  # relations/...
            _make_folder(path.parent)
        _write_atomic(path, text)
        written.append(path)
    return written


def _add_impl_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="loss name or alias (see `symloss list`)")
    parser.add_argument("--impl", metavar="MODULE:FUNCTION",
                        help="the implementation fn(input, target) to check (default: torch's)")
    parser.add_argument("--expr", metavar="FORMULA",
                        help="a loss of your own, e.g. 'y*softplus(-z) + (1-y)*softplus(z)'")


def _impl_spec(spec: str) -> tuple[str, str]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--impl must be MODULE:FUNCTION, got {spec!r}")
    return module_name, attr


def _load_impl(spec: str | None) -> Any:
    """``module:function`` -> the function; every failure is a usage error (one line)."""
    if spec is None:
        return None
    import importlib

    module_name, attr = _impl_spec(spec)
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


def _check_label(args: argparse.Namespace, derivation: Any) -> str:
    if args.impl:
        return str(args.impl)
    if derivation.spec.twin(derivation.options) is not None:  # torchvision's focal loss
        return f"torch's {derivation.name} (written with torch operations)"
    return f"torch.nn.functional.{derivation.name}"


def _json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: they are written as the strings "NaN", "Infinity"."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str | bool | int) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def _check_output(args: argparse.Namespace) -> tuple[int, str]:
    """The check's report and exit code (run in the implementation's own process)."""
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
    label = _check_label(args, derivation)
    code = 0 if result.ok else 1
    if args.json:
        out = result.to_json()
        out["implementation"] = label
        out["stability"] = [m.to_json() for m in maps]
        return code, json.dumps(_json_safe(out), indent=2, allow_nan=False) + "\n"
    lines = []
    shown = ", ".join(f"{k}={v!r}" for k, v in derivation.display_options.items())
    lines.append(f"{label} against symloss's exact {derivation.name}({shown})")
    arrays = derivation.spec.differentiable()
    if result.ok:
        lines.append(f"agrees: all {len(result.rows)} cases, loss value and gradient, within "
                     f"{TOLERANCE_ULPS:g} ulps")
        if len(arrays) > 1:
            lines.append(f"gradients compared: {', '.join(arrays)}")
        lines.extend(result.conventions())
    else:
        lines.append(result.report(label))
    if maps:
        lines.append("\nstability map (where the gradient is exact):")
        for m in maps:
            lines.append(str(m))
    return code, "\n".join(lines) + "\n"


def _cmd_check(args: argparse.Namespace) -> int:
    from .isolate import DEFAULT_TIMEOUT, ImplementationFailed, call_with_timeout, run_in_process

    if args.domain is not None:
        lo, hi = args.domain
        if not (abs(lo) < float("inf") and abs(hi) < float("inf") and lo < hi):
            raise UsageError(f"--domain needs finite LO < HI, got {lo:g} {hi:g}")
    derivation = _derivation_for(args)  # usage errors first, here
    timeout = args.timeout or DEFAULT_TIMEOUT
    try:
        if args.impl:
            # The implementation runs in its own process: a hang, sys.exit or a crash there
            # is a failed check, and what it prints never reaches this stdout.
            _impl_spec(args.impl)
            code, text = run_in_process(_check_output, args, timeout=timeout)
        else:
            with contextlib.redirect_stdout(sys.stderr):
                code, text = call_with_timeout(_check_output, args, timeout=timeout)
    except ImplementationFailed as exc:
        label = _check_label(args, derivation)
        if args.json:
            out = {"loss": derivation.name, "implementation": label, "agree": False,
                   "error": f"the implementation failed: {exc}"}
            text = json.dumps(out, indent=2) + "\n"
        else:
            text = (f"{label} against symloss's exact {derivation.name}\n"
                    f"FAILED: the implementation failed: {exc}\n")
        code = 1
    sys.stdout.write(text)
    return code


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot

    derivation = _derivation_for(args)
    if args.impl and args.torch:
        raise UsageError("give --impl MODULE:FUNCTION or --torch, not both")
    impl = _load_impl(args.impl)
    if impl is not None or args.torch:  # only the overlay needs torch
        _need_torch(impl, derivation)
    lo, hi = args.span
    if not (abs(lo) < float("inf") and abs(hi) < float("inf") and lo < hi):
        raise UsageError(f"--range needs finite LO < HI, got {lo:g} {hi:g}")
    overlay = "torch" if args.torch else impl
    out = args.out
    _check_new_file(out, args.force, "-o")
    _check_image_format(out)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp{out.suffix}")
    try:
        plot(derivation, tmp, overlay, dtype=args.dtype, span=(lo, hi))
        os.replace(tmp, out)
    except OSError as exc:
        raise CommandFailed(f"cannot write {out}: {_os_reason(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    print(out)
    return 0


def _check_image_format(path: Path) -> None:
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise UsageError("symloss plot needs matplotlib: pip install 'symloss[plot]'") from None
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        got = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise UsageError(f"-o {path}: {got}; matplotlib writes {', '.join(formats)}")


# --------------------------------------------------------------------------- output
_UNICODE_PROBE = "∂ℓσ−∘≥·"
#: Words and symbols of symloss's output, in ASCII (one character stays one where it is math).
_ASCII = {
    "−": "-", "–": "-", "—": "--", "∂": "d", "ℓ": "l", "σ": "sigma", "·": "*", "×": "x",
    "∘": " o ", "≥": ">=", "≤": "<=", "≠": "!=", "≈": "~", "→": "->", "←": "<-", "⇒": "=>",
    "∞": "inf", "±": "+/-", "√": "sqrt", "Σ": "sum", "∑": "sum", "δ": "delta", "ε": "eps",
    "λ": "lambda", "α": "alpha", "β": "beta", "γ": "gamma", "μ": "mu", "π": "pi", "∈": "in",
    "…": "...", "‘": "'", "’": "'", "“": '"', "”": '"', "²": "^2", "³": "^3", "⁻": "^-",
    "¹": "^1", "ⁿ": "^n", "₀": "0", "₁": "1", "₂": "2", "ᵢ": "_i", "ⱼ": "_j", "ₖ": "_k",
    "ₙ": "_n", "⊙": "*", "∇": "grad", "│": "|", "─": "-", "⎛": "(", "⎝": "(", "⎞": ")",
    "⎠": ")", "⎜": "|", "⎟": "|", "✓": "ok", "✗": "x", "°": " deg",
}


def asciify(text: str) -> str:
    """``text`` in ASCII: symloss's symbols by name, accents dropped, anything else as a
    backslash escape (``\\u2202``), so nothing is lost silently."""
    out = []
    for ch in text:
        if ord(ch) < 128:
            out.append(ch)
        elif ch in _ASCII:
            out.append(_ASCII[ch])
        else:
            plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(plain or ch.encode("ascii", "backslashreplace").decode())
    return "".join(out)


def _encodable(text: str, stream: Any = None) -> bool:
    encoding = getattr(stream or sys.stdout, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _ascii_stdout() -> bool:
    """Whether stdout cannot show symloss's Unicode (ascii, cp1252, a C locale)."""
    return not _encodable(_UNICODE_PROBE)


class _AsciiWriter:
    """A stdout that writes :func:`asciify`'d text (for an encoding without Unicode)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return int(self._stream.write(asciify(text)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _error(message: str) -> None:
    text = f"symloss: error: {message}".replace("\n", " ")
    stream = sys.stderr
    if not _encodable(text, stream):
        text = asciify(text)
    try:
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def _silence_stdout() -> None:
    """After stdout failed (a closed pipe, a full disk), send what is left to /dev/null, so
    the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


_STDOUT_ERRNOS = {errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EBADF, errno.EDQUOT,
                  errno.EFBIG}


def _cmd_warm(args: argparse.Namespace) -> int:
    from . import derive, losses
    from .warm import warm

    options = _loss_options(args)
    if args.all:
        if args.names:
            raise UsageError("give loss names or --all, not both")
        if options:
            raise UsageError("--all warms every loss at its default options; "
                             "give loss names to warm them with options")
        names = losses()
    elif not args.names:
        raise UsageError("give loss names (see `symloss list`) or --all")
    else:
        names = args.names
    derivations = [derive(name, **options) for name in names]  # every name checked first
    dtypes = [args.dtype] if args.dtype else ["float32", "float64"]
    for derivation in derivations:
        print(warm(derivation, dtypes=dtypes, large=args.large), flush=True)
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "list":
        return _cmd_list(args.lang)
    if args.command == "relate":
        return _cmd_relate(args)
    if args.command == "derive":
        return _cmd_derive(args)
    if args.command == "plot":
        return _cmd_plot(args)
    if args.command == "warm":
        return _cmd_warm(args)
    return _in_language(_cmd_check, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 disagreement or failure, 2 usage).

    Every failure is one line on stderr: symloss's errors (usage, 2), files that cannot be
    written, a full disk, an encoding that cannot show the output, Ctrl-C (1).
    """
    real_stdout = sys.stdout
    if _ascii_stdout():
        sys.stdout = _AsciiWriter(real_stdout)  # type: ignore[assignment]
    try:
        args = build_parser().parse_args(argv)
        code = _dispatch(args)
        sys.stdout.flush()
        return code
    except SymlossError as exc:
        _error(str(exc))
        return 2
    except CommandFailed as exc:
        _error(str(exc))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 1
    except BrokenPipeError:  # `symloss derive ce | head`
        _silence_stdout()
        return 0
    except OSError as exc:
        if exc.filename is None and exc.errno in _STDOUT_ERRNOS:
            _silence_stdout()
            _error(f"cannot write the output: {_os_reason(exc)}")
        else:
            where = f" {exc.filename}" if exc.filename else ""
            _error(f"cannot use{where}: {_os_reason(exc)}")
        return 1
    except UnicodeError as exc:
        _error(f"{type(exc).__name__}: {exc}; set PYTHONIOENCODING=utf-8 or write with --out")
        return 1
    except (RecursionError, MemoryError) as exc:
        _error(f"out of resources ({type(exc).__name__}); try a smaller input")
        return 1
    except Exception as exc:  # a bug in symloss: still one line, and a way to report it
        _error(f"internal error: {type(exc).__name__}: {exc} (please report this)")
        return 1
    finally:
        sys.stdout = real_stdout


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
