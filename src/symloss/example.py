"""Worked examples: a derivation's steps with the numbers of given arrays beside the symbols.

The seed notebook prints, beside each formula, its value for the inputs at hand: σ(z), then ℓ,
then the mean, then the gradient. :meth:`Derivation.example` does the same for any catalogue loss:

* a step whose chain is per element (the link, the loss, the factors, the product, the canonical
  form) is evaluated by SymPy at each element (each row and class, on a class axis), from the
  step's own last expression, with the prediction and the readability symbols replaced by what
  they stand for;
* the reduction is ``loss_fn`` and the reduced gradient ``grad_fn`` -- symloss's NumPy path, with
  torch's semantics (weights, ignored targets, the mean's denominator);
* a rule (the chain rule) or a kink has no numbers.

>>> import symloss
>>> ex = symloss.derive("bce").example([-1.7723, -1.5965, 0.8863], [0, 1, 0])
>>> ex.value("Link"), ex.value("Per-element loss")
('[0.1453, 0.1685, 0.7081]', '[0.1570, 1.7810, 1.2314]')
>>> ex.value("Product"), ex.value("Reduced gradient")
('[0.1453, -0.8315, 0.7081]', '[0.0484, -0.2772, 0.2360]')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp

from .errors import SymlossTypeError, SymlossValueError
from .primitives import CLASS_INDEX, SUM_INDEX, log_softmax, softmax, softmax_complement
from .words import Phrase, check_lang

if TYPE_CHECKING:
    from .derive import Derivation, Step

__all__ = ["Example", "Numbers", "Shown", "notebook_markdown"]

#: The most numbers an example evaluates (it prints every one of them).
MAX_NUMBERS = 64

_NO_NUMBERS = {"title.chain_rule", "title.kink"}


class Numbers(sp.Expr):
    """An array of numbers shown in an equation chain (display only; SymPy does not compute)."""

    def __new__(cls, text: str, tex: str) -> Numbers:
        obj = sp.Expr.__new__(cls)
        obj._text, obj._tex = text, tex
        return obj

    def _hashable_content(self) -> tuple[str, ...]:
        return (self._text,)

    def _latex(self, printer: object) -> str:
        return self._tex

    def _sympystr(self, printer: object) -> str:
        return self._text

    def _pretty(self, printer: object) -> Any:
        from sympy.printing.pretty.stringpict import prettyForm

        lines = self._text.split("\n")
        width = max(len(line) for line in lines)  # left-aligned rows (prettyForm centres them)
        return prettyForm("\n".join(line.ljust(width) for line in lines))


#: Numbers per printed row: a long array wraps rather than running off the page.
ROW = 6


def _format(value: Any, digits: int) -> Numbers:
    """The numbers as text (rows of :data:`ROW`) and as LaTeX (an ``array`` past :data:`ROW`)."""
    arr = np.asarray(value)
    integers = arr.dtype.kind in "iu"
    arr = arr.astype(np.float64)

    def one(x: float) -> str:
        return "nan" if np.isnan(x) else f"{x:.0f}" if integers else f"{x:.{digits}f}"

    if arr.ndim == 0:
        return Numbers(one(float(arr)), one(float(arr)))
    rows = arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)
    if arr.ndim == 1 and arr.size > ROW:
        rows = [arr[i:i + ROW] for i in range(0, arr.size, ROW)]  # type: ignore[assignment]
    cells = [[one(float(x)) for x in row] for row in rows]
    inner = [", ".join(row) for row in cells]
    if arr.ndim == 1:
        text = "[" + ",\n ".join(inner) + "]"
    else:
        text = "[" + ",\n ".join(f"[{row}]" for row in inner) + "]"
    if arr.ndim == 1 and arr.size <= ROW:
        tex = r"\left[" + r",\ ".join(cells[0]) + r"\right]"
    else:
        width = max(len(row) for row in cells)
        body = r" \\ ".join(" & ".join(row) for row in cells)
        tex = r"\left[\begin{array}{" + "r" * width + "}" + body + r"\end{array}\right]"
    return Numbers(text, tex)


def notebook_markdown(markdown: str) -> str:
    """Markdown whose inline math is ``$…$``, which Jupyter, nbconvert and GitHub all render
    (GitHub's own ``$`…`$`` shows stray quote marks under MathJax)."""
    return markdown.replace("$`", "$").replace("`$", "$")


class Shown:
    """Markdown a notebook displays (``_repr_markdown_``)."""

    def __init__(self, markdown: str) -> None:
        self.text = notebook_markdown(markdown)

    def _repr_markdown_(self) -> str:
        return self.text


class _Shown:
    """The derivation, with the example's steps in place of its own (what the renderers read)."""

    def __init__(self, derivation: Derivation, steps: list[Step]) -> None:
        self._derivation = derivation
        self._steps = steps

    def steps_for(self, order: int) -> list[Step]:
        return self._steps

    def __getattr__(self, name: str) -> Any:
        return getattr(self._derivation, name)


class Example:
    """A derivation's steps with the numbers of the given arrays beside its symbols."""

    def __init__(self, derivation: Derivation, arrays: Sequence[Any], digits: int = 4) -> None:
        spec = derivation.spec
        if len(arrays) != len(spec.arguments):
            raise SymlossTypeError(
                f"{derivation.name}.example takes {len(spec.arguments)} arrays "
                f"({', '.join(spec.arguments)}), got {len(arrays)}"
            )
        if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 15:
            raise SymlossValueError(f"digits must be an integer in 0..15, got {digits!r}")
        values = []
        for name, value in zip(spec.arguments, arrays, strict=True):
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            try:
                arr = np.asarray(value)
                if arr.dtype.kind not in "iu":  # class indices stay integers, as torch wants
                    arr = arr.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise SymlossTypeError(f"{name} must be an array of numbers, got {value!r}") from exc
            if arr.size > MAX_NUMBERS:
                raise SymlossValueError(
                    f"an example prints every number: {name} has {arr.size}, at most "
                    f"{MAX_NUMBERS}"
                )
            values.append(arr)
        self.derivation = derivation
        self.arrays = tuple(values)
        self.digits = digits
        self.loss = np.asarray(derivation.loss_fn(*self.arrays))  # validates shapes and targets
        self.grad = np.asarray(derivation.grad_fn(*self.arrays))
        self._env = _Environment(derivation, self.arrays)
        self.rows: list[tuple[Step, np.ndarray | None]] = [
            (step, self._values(step)) for step in derivation.steps
        ]

    # ------------------------------------------------------------------ numbers
    def _values(self, step: Step) -> np.ndarray | None:
        key = getattr(step.title, "key", "")
        if key in _NO_NUMBERS:
            return None
        if key == "title.reduction":
            return self.loss
        if key in ("title.reduced_gradient", "title.gradient"):
            return self.grad
        return self._env.evaluate(step.rhs[-1])

    def values(self, title: str) -> np.ndarray | None:
        """The numbers of the first step titled ``title`` (English), unrounded."""
        for step, values in self.rows:
            if step.title == title:
                return values
        titles = ", ".join(dict.fromkeys(str(s.title) for s, _ in self.rows))
        raise SymlossValueError(f"no step titled {title!r}; the steps: {titles}")

    def value(self, title: str) -> str:
        """The numbers of the step titled ``title`` as printed (``digits`` decimals)."""
        values = self.values(title)
        return "" if values is None else str(_format(values, self.digits))

    # ------------------------------------------------------------------ rendering
    def _shown(self) -> _Shown:
        d = self.derivation
        names = [d.declaration.symbols.get(a, sp.Symbol(a)) for a in d.spec.arguments]
        lhs = sp.Tuple(*names) if len(names) > 1 else names[0]
        shown = [_format(a, self.digits) for a in self.arrays]
        inputs = dataclasses.replace(
            d.steps[0], title=Phrase("example.inputs"), why=Phrase("example.inputs_why"),
            lhs=lhs, rhs=(sp.Tuple(*shown) if len(shown) > 1 else shown[0],), checked=None,
        )
        steps = [inputs]
        for step, values in self.rows:
            if values is not None:
                step = dataclasses.replace(step, rhs=(*step.rhs, _format(values, self.digits)))
            steps.append(step)
        return _Shown(d, steps)

    def text(self, order: int = 1, lang: str = "en") -> str:
        """The example as Unicode text for a terminal."""
        from .render import text

        return text(self._shown(), lang=check_lang(lang))  # type: ignore[arg-type]

    def markdown(self, order: int = 1, heading: str = "#", lang: str = "en") -> str:
        """The example as Markdown with ``$$`` math."""
        from .render import markdown

        return markdown(self._shown(), heading=heading, lang=check_lang(lang))  # type: ignore[arg-type]

    def latex(self, document: bool = False, lang: str = "en") -> str:
        """The example as an ``align*`` body or a complete document."""
        from .render import latex

        return latex(self._shown(), document=document, lang=check_lang(lang))  # type: ignore[arg-type]

    def _repr_latex_(self) -> str:
        from .render import latex

        return "$$" + latex(self._shown(), environment=True) + "$$"  # type: ignore[arg-type]

    def _repr_markdown_(self) -> str:
        return notebook_markdown(self.markdown())

    def show(self, lang: str = "en") -> Shown:
        """For a notebook: the example displayed in ``lang`` (``ex.show("zh")``)."""
        return Shown(self.markdown(lang=lang))

    def __repr__(self) -> str:
        return f"<Example {self.derivation.name}: loss {float(np.sum(self.loss)):.{self.digits}f}>"


class _Environment:
    """Evaluates a step's expression at each element of the example's arrays, with SymPy."""

    def __init__(self, derivation: Derivation, arrays: tuple[np.ndarray, ...]) -> None:
        self.d = derivation
        self.arrays = arrays
        decl = derivation.declaration
        self.rows = derivation.spec.family == "rows"  # per-row sums: evaluated by symloss.rows
        self.class_axis = decl.class_axis and not self.rows
        self.symbols = decl.symbols
        self.values: dict[str, np.ndarray] = dict(zip(derivation.spec.arguments, arrays, strict=True))
        for opt in derivation.spec.options:
            value = derivation.options.get(opt.name)
            if opt.name in decl.symbols and value is not None and not isinstance(value, str):
                self.values[opt.name] = np.asarray(value, dtype=np.float64)
        z = self.values["input"]
        if self.class_axis:
            self.z = z.reshape(1, -1) if z.ndim == 1 else z.reshape(z.shape[0], z.shape[1], -1)[..., 0]
            y = self.values["target"]
            if y.shape == z.shape:
                self.y = y.reshape(self.z.shape)
            else:  # class indices: one-hot rows (an ignored index gives a row of zeros)
                labels = y.reshape(-1).astype(int)
                self.y = np.zeros(self.z.shape)
                for row, label in enumerate(labels):
                    if 0 <= label < self.z.shape[1]:
                        self.y[row, label] = 1.0

    def _prepare(self, expr: sp.Expr) -> sp.Expr:
        from .derive import drop_distributions

        decl = self.d.declaration
        if decl.link is not None:
            expr = decl.link.from_var(expr)
        return _numeric_forms(drop_distributions(decl.substitute_definitions(expr)))

    def evaluate(self, expr: sp.Expr) -> np.ndarray | None:
        try:
            expr = self._prepare(expr)
            if self.rows:
                from .rows import evaluate

                return evaluate(self.d, expr, self.arrays)
            return self._class_axis(expr) if self.class_axis else self._elementwise(expr)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError):
            return None

    def _scalars(self, m: Any, shape: tuple[int, ...]) -> dict[sp.Basic, float]:
        env: dict[sp.Basic, float] = {}
        for name, symbol in self.symbols.items():
            if name in self.values and isinstance(symbol, sp.Symbol):
                value = np.broadcast_to(self.values[name], shape)
                env[symbol] = float(value[m])
        return env

    def _elementwise(self, expr: sp.Expr) -> np.ndarray | None:
        shape = np.broadcast_shapes(*(self.values[a].shape for a in self.d.spec.arguments))
        out = np.empty(shape)
        for m in np.ndindex(shape):
            out[m] = _number(expr.subs(self._scalars(m, shape)))
        return out

    def _class_axis(self, expr: sp.Expr) -> np.ndarray | None:
        n, c = self.z.shape
        classes = self.symbols.get("num_classes")
        free = [s for s in (CLASS_INDEX, SUM_INDEX) if s in expr.free_symbols]
        if len(free) > 1:
            return None
        expr = expr.subs(classes, c) if classes is not None else expr
        zbase, ybase = self.symbols["input"], self.symbols["target"]
        weight = self.values.get("weight")
        scalars = {s: float(self.values[k]) for k, s in self.symbols.items()
                   if k in self.values and k not in ("input", "target", "weight")
                   and isinstance(s, sp.Symbol) and self.values[k].ndim == 0}
        rows: list[Any] = []
        for row in range(n):
            def number_at(e: sp.Indexed, row: int = row) -> sp.Expr:
                j = int(e.indices[0]) - 1
                if e.base == zbase:
                    return sp.Float(self.z[row, j])
                if e.base == ybase:
                    return sp.Float(self.y[row, j])
                if weight is not None and str(e.base.label) == str(self.symbols.get("weight")):
                    return sp.Float(weight[j])
                raise KeyError(e)

            def at(e: sp.Expr) -> float:
                e = e.replace(lambda a: isinstance(a, (softmax_complement,)),
                              lambda a: 1 - softmax(*a.args))
                e = e.replace(lambda a: isinstance(a, (softmax, log_softmax)),
                              lambda a: a.rewrite(sp.exp))
                e = e.subs(scalars).doit()
                e = e.replace(lambda a: isinstance(a, sp.Indexed), number_at)
                return _number(e)

            if free:
                rows.append([at(expr.subs(free[0], i)) for i in range(1, c + 1)])
            else:
                rows.append(at(expr))
        out = np.array(rows, dtype=np.float64)
        return out[0] if self.values["input"].ndim == 1 else out


def _number(expr: sp.Expr) -> float:
    value = sp.N(expr, 30)
    if not value.is_number:
        raise ValueError(f"not a number: {value}")
    return float(value)


def _numeric_forms(expr: sp.Expr) -> sp.Expr:
    """Each guard and hinge as the number torch computes (``max``, the clamp at −100), so that
    SymPy can evaluate it; the symbolic primitives stay what they are elsewhere."""
    from .hinges import at_target, hinge, power, step
    from .primitives import NUM_CLASSES, clamp_min, clamped_log

    m = sp.Dummy("m", integer=True, positive=True)
    rules = [
        (clamped_log, lambda x: sp.Max(sp.log(x), -100)),
        (clamp_min, lambda x, lo: sp.Max(x, lo)),
        (hinge, lambda u: sp.Max(0, u)),
        (step, lambda u: sp.Piecewise((1, u > 0), (0, True))),
        (power, lambda q, g: q**g),
        (at_target, lambda x, y: sp.Sum(x[m] * y[m], (m, 1, NUM_CLASSES))),
    ]
    for func, value in rules:
        expr = expr.replace(lambda e, f=func: isinstance(e, f), lambda e, v=value: v(*e.args))
    return expr
