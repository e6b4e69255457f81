"""NumPy kernels made from the symbolic results, with torch's semantics around them.

The per-element loss and the kernel form of the gradient are printed by SymPy's NumPy printer
(each primitive carries its own stable printing) and compiled with ``lambdify``. Everything
torch does *around* the per-element math -- shapes, broadcasting, class axis, ``ignore_index``,
and ``reduction`` -- is linear bookkeeping and lives here, once, for every loss.

Arithmetic is done in float64 and the result is returned in the input's dtype, so float32 in
gives float32 out, correctly rounded from a float64 value.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.special
import sympy as sp
from sympy.printing.numpy import SciPyPrinter

from . import kernels
from .algebra import reduce_sums
from .errors import SymlossTypeError, SymlossValueError

if TYPE_CHECKING:
    from .derive import Derivation

__all__ = ["Numeric", "build", "compile_expr"]

_NAMESPACE = {"numpy": np, "scipy": scipy, "kernels": kernels}


class _Printer(SciPyPrinter):
    """SciPy printer that also knows the class axis: ``z[k]`` is the array ``z`` (class axis
    last) and ``Σ_k`` is a sum over that axis, kept as a length-1 axis so it broadcasts."""

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        return self._print(expr.base.label)

    def _print_Sum(self, expr: sp.Sum) -> str:
        if len(expr.limits) != 1:
            raise NotImplementedError("only single sums over the class axis print")
        return f"kernels.class_sum({self._print(expr.function)})"  # compensated sum


def compile_expr(expr: sp.Expr, args: list[sp.Basic]) -> Callable[..., Any]:
    """Compile ``expr`` to a NumPy function of ``args`` (Symbols or IndexedBases, by name)."""
    expr = reduce_sums(expr)
    symbols = [sp.Symbol(str(a.label)) if isinstance(a, sp.IndexedBase) else a for a in args]
    renamed = expr.subs(
        {a: s for a, s in zip(args, symbols, strict=True) if not isinstance(a, sp.IndexedBase)}
    )
    return sp.lambdify(symbols, renamed, modules=[_NAMESPACE, "numpy"], printer=_Printer)  # type: ignore[no-any-return]


def _as_float(value: Any, what: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise SymlossTypeError(f"{what} must be a real array, got dtype {arr.dtype}")
    return arr


def _out_dtype(arr: np.ndarray) -> np.dtype:
    return arr.dtype if arr.dtype in (np.float32, np.float64, np.float16) else np.dtype(np.float64)


@dataclass
class Numeric:
    """The compiled ``loss`` and ``grad`` functions of one derivation."""

    loss: Callable[[Any, Any], Any]
    grad: Callable[[Any, Any], Any]


def build(derivation: Derivation) -> Numeric:
    """Compile the kernels for ``derivation`` and wrap them with torch's bookkeeping."""
    family = derivation.spec.family
    if family == "elementwise":
        adapter: _Adapter = _Elementwise(derivation)
    elif family == "class_axis":
        adapter = _ClassAxis(derivation)
    else:  # pragma: no cover - a catalogue entry with an unknown family is a bug here
        raise AssertionError(family)
    return Numeric(loss=adapter.loss, grad=adapter.grad)


class _Adapter:
    """Shared: compile the two kernels; reduce; return in the input's dtype."""

    def __init__(self, derivation: Derivation) -> None:
        d = derivation.declaration
        self.derivation = derivation
        self.options: Mapping[str, Any] = derivation.options
        self.reduction: str = derivation.options.get("reduction", "mean")
        self.names = list(d.symbols)
        args = [d.symbols[n] for n in self.names]
        subst = d.substitute_definitions
        self._loss = compile_expr(subst(d.loss), args)
        self._grad = compile_expr(subst(derivation.kernel_gradient), args)
        self._soft_grad: Callable[..., Any] | None = None  # compiled on first soft target
        self._fast: Any = None  # symloss.fast kernels, built on first call when enabled

    def _fast_kernels(self) -> Any:
        """The fused numba kernels (:mod:`symloss.fast`), or ``None``: take the NumPy path."""
        from . import fast

        if not fast.enabled():
            return None
        if self._fast is None:
            self._fast = fast.build(self.derivation) or False
        return self._fast or None

    def _call(self, kernel: Callable[..., Any], values: Mapping[str, Any]) -> np.ndarray:
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            return np.asarray(kernel(*(values[n] for n in self.names)), dtype=np.float64)

    def _reduce_loss(self, per_element: np.ndarray, denominator: float, dtype: np.dtype) -> Any:
        if self.reduction == "none":
            return per_element.astype(dtype)
        total = float(np.sum(per_element))
        if self.reduction == "sum":
            return dtype.type(total)
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return dtype.type(np.float64(total) / np.float64(denominator))

    def _reduce_grad(self, per_element: np.ndarray, denominator: float, dtype: np.dtype) -> np.ndarray:
        if self.reduction == "mean":
            with np.errstate(divide="ignore", invalid="ignore"):
                per_element = per_element / np.float64(denominator)
        return per_element.astype(dtype)

    def loss(self, input: Any, target: Any) -> Any:
        kernels = self._fast_kernels()
        done = kernels.loss(input, target) if kernels is not None else None
        if done is not None:
            return self._reduce_loss(*done)
        values, denominator, dtype, finish = self.prepare(input, target)
        per_element = finish(self._call(self._loss, values), loss=True)
        return self._reduce_loss(per_element, denominator, dtype)

    def grad(self, input: Any, target: Any) -> np.ndarray:
        kernels = self._fast_kernels()
        done = kernels.grad(input, target) if kernels is not None else None
        if done is not None:
            return done  # type: ignore[no-any-return]
        values, denominator, dtype, finish = self.prepare(input, target)
        per_element = self._call(self._grad, values)
        # Hard labels take the stable kernel form (nothing cancels); soft targets the derived
        # gradient, whose one cancellation where it is ≈ 0 loses no more than torch's p − y.
        if self._soft_grad is None and self.derivation.gradient == self.derivation.kernel_gradient:
            self._soft_grad = self._grad  # one form for every target: nothing to choose
        y = np.asarray(values["target"])
        soft = (y != 0) & (y != 1)
        if self.derivation.spec.family == "class_axis":
            soft = np.any(soft, axis=-1, keepdims=True)
        if self._soft_grad is not self._grad and np.any(soft):
            if self._soft_grad is None:
                d = self.derivation.declaration
                self._soft_grad = compile_expr(
                    d.substitute_definitions(self.derivation.gradient),
                    [d.symbols[n] for n in self.names],
                )
            per_element = np.where(soft, self._call(self._soft_grad, values), per_element)
        per_element = finish(per_element, loss=False)
        return self._reduce_grad(per_element, denominator, dtype)

    def prepare(
        self, input: Any, target: Any
    ) -> tuple[dict[str, Any], float, np.dtype, Callable[..., np.ndarray]]:
        raise NotImplementedError


def _broadcast(value: np.ndarray, shape: tuple[int, ...], what: str, loss: str) -> np.ndarray:
    try:
        return np.broadcast_to(value, shape)
    except ValueError:
        raise SymlossValueError(
            f"{loss}: {what} of shape {value.shape} does not broadcast to the input's shape {shape}"
        ) from None


class _Elementwise(_Adapter):
    """Losses with one prediction per element: input, target (and weights) of one shape."""

    def prepare(
        self, input: Any, target: Any
    ) -> tuple[dict[str, Any], float, np.dtype, Callable[..., np.ndarray]]:
        name = self.derivation.name
        x = _as_float(input, f"{name}: input")
        y = _as_float(target, f"{name}: target")
        if x.shape != y.shape:
            raise SymlossValueError(
                f"{name}: target shape {y.shape} must equal input shape {x.shape}"
            )
        dtype = _out_dtype(x)
        x64 = x.astype(np.float64)
        if self.derivation.spec.input_domain(self.options) == "probability":
            if np.any((x64 < 0) | (x64 > 1)) or np.any(np.isnan(x64)):
                raise SymlossValueError(
                    f"{name}: every input must be a probability in [0, 1] "
                    "(use link='sigmoid' or binary_cross_entropy_with_logits for logits)"
                )
        values: dict[str, Any] = {"input": x64, "target": y.astype(np.float64)}
        for option in ("weight", "pos_weight"):
            if option in self.names:
                values[option] = _broadcast(self.options[option], x.shape, option, name)

        def finish(per_element: np.ndarray, loss: bool) -> np.ndarray:
            return np.broadcast_to(per_element, x.shape)

        return values, float(x.size), dtype, finish


class _ClassAxis(_Adapter):
    """Losses over a class axis: input (C), (N, C) or (N, C, d1, …, dk), as in torch."""

    def prepare(
        self, input: Any, target: Any
    ) -> tuple[dict[str, Any], float, np.dtype, Callable[..., np.ndarray]]:
        name = self.derivation.name
        x = _as_float(input, f"{name}: input")
        if x.ndim == 0:
            raise SymlossValueError(
                f"{name}: input must have shape (C), (N, C) or (N, C, d1, ..., dk); got a scalar"
            )
        t = np.asarray(target.detach().cpu().numpy() if hasattr(target, "detach") else target)
        dtype = _out_dtype(x)
        class_dim = 0 if x.ndim == 1 else 1
        n_classes = x.shape[class_dim]
        z = np.moveaxis(x.astype(np.float64), class_dim, -1)
        weight = self.options.get("weight")
        if weight is not None and weight.shape != (n_classes,):
            raise SymlossValueError(
                f"{name}: weight must have shape ({n_classes},) for {n_classes} classes, "
                f"got {weight.shape}"
            )
        ignore_index = self.options.get("ignore_index", -100)
        if t.shape == x.shape:
            if t.dtype.kind != "f":
                raise SymlossTypeError(
                    f"{name}: a target of the input's shape holds class probabilities and must "
                    f"be floating point, got dtype {t.dtype}"
                )
            if ignore_index >= 0:
                raise SymlossValueError(
                    f"{name}: ignore_index is not supported for probability targets "
                    f"(got ignore_index={ignore_index})"
                )
            y = np.moveaxis(t.astype(np.float64), class_dim, -1)
            valid = np.ones(z.shape[:-1], dtype=bool)
            denominator = float(valid.size)
        else:
            expected = x.shape[:class_dim] + x.shape[class_dim + 1 :]
            if t.shape != expected:
                raise SymlossValueError(
                    f"{name}: target must have shape {expected} (class indices) or "
                    f"{x.shape} (class probabilities), got {t.shape}"
                )
            if t.dtype.kind not in "iu":
                raise SymlossTypeError(
                    f"{name}: class-index targets must be integers, got dtype {t.dtype}"
                )
            valid = t != ignore_index
            bad = valid & ((t < 0) | (t >= n_classes))
            if np.any(bad):
                raise SymlossValueError(
                    f"{name}: target {int(t[bad].flat[0])} is out of bounds; class indices are "
                    f"0..{n_classes - 1} (or ignore_index={ignore_index})"
                )
            safe = np.where(valid, t, 0)
            y = np.zeros(z.shape, dtype=np.float64)
            np.put_along_axis(y, safe[..., None], 1.0, axis=-1)
            y[~valid] = 0.0
            if weight is not None:
                denominator = float(np.sum(np.where(valid, weight[safe], 0.0)))
            else:
                denominator = float(np.count_nonzero(valid))
        values: dict[str, Any] = {"input": z, "target": y, "num_classes": n_classes}
        if "weight" in self.names:
            values["weight"] = weight
        if "label_smoothing" in self.names:
            values["label_smoothing"] = self.options["label_smoothing"]

        def finish(per_element: np.ndarray, loss: bool) -> np.ndarray:
            if loss:
                out = np.where(valid, np.broadcast_to(per_element, z.shape[:-1] + (1,))[..., 0], 0.0)
                return out
            out = np.where(valid[..., None], np.broadcast_to(per_element, z.shape), 0.0)
            return np.moveaxis(out, -1, class_dim)

        return values, denominator, dtype, finish
