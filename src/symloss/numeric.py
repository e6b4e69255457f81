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

from . import ddouble, kernels
from .algebra import reduce_sums
from .errors import SymlossTypeError, SymlossValueError
from .primitives import clamp_min, clamped_log, log_softmax, softplus

if TYPE_CHECKING:
    from .derive import Derivation

__all__ = ["Numeric", "build", "compile_expr"]

#: Primitives that carry torch's numeric guards; ``tidy`` drops them, so a kernel form that
#: has one is the only faithful form to evaluate.
_GUARDS = (clamp_min, clamped_log)

_NAMESPACE = {"numpy": np, "scipy": scipy, "kernels": kernels, "ddouble": ddouble}


class _Printer(SciPyPrinter):
    """SciPy printer that also knows the class axis: ``z[k]`` is the array ``z`` (class axis
    last) and ``Σ_k`` is a sum over that axis, kept as a length-1 axis so it broadcasts."""

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        return self._print(expr.base.label)

    def _print_Mul(self, expr: sp.Mul) -> str:
        # 0 · log p = 0, the convention of entropy (torch's nll_loss only gathers the target
        # class): a class of zero target weight adds nothing, even where log p = −inf.
        # softplus(x) = −log σ(−x) is a log too: 0 · softplus(±inf) = 0 (BCE of a hard label
        # at an infinite logit is 0 for the class it does not take, as its limit).
        logs = [f for f in expr.args if isinstance(f, log_softmax | softplus)]
        if len(logs) == 1:
            weight = sp.Mul(*(f for f in expr.args if f is not logs[0]))
            return f"kernels.xlog({self._print(weight)}, {self._print(logs[0])})"
        return str(super()._print_Mul(expr))

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        # NaN in, NaN out: a comparison with NaN is False, so numpy.select would fall through
        # to the last branch (0 for a hinge). NaN in a condition's operands gives NaN, as
        # torch's clamp_min does for the value.
        text = str(super()._print_Piecewise(expr))
        operands: list[sp.Expr] = []
        for _, cond in expr.args:
            for rel in sorted(cond.atoms(sp.core.relational.Relational), key=sp.default_sort_key):
                operands += [side for side in (rel.lhs, rel.rhs)
                             if not side.is_number and side not in operands]
        if not operands:
            return text
        tests = " | ".join(f"numpy.isnan({self._print(side)})" for side in operands)
        return f"numpy.where({tests}, numpy.nan, {text})"

    def _print_Sum(self, expr: sp.Sum) -> str:
        if len(expr.limits) != 1:
            raise NotImplementedError("only single sums over the class axis print")
        return f"kernels.class_sum({self._print(expr.function)})"  # compensated sum


def compile_expr(expr: sp.Expr, args: list[sp.Basic]) -> Callable[..., Any]:
    """Compile ``expr`` to a NumPy function of ``args`` (Symbols or IndexedBases, by name)."""
    expr = reduce_sums(expr, expand=False)  # keep the stable forms as they are written
    symbols = [sp.Symbol(str(a.label)) if isinstance(a, sp.IndexedBase) else a for a in args]
    renamed = expr.subs(
        {a: s for a, s in zip(args, symbols, strict=True) if not isinstance(a, sp.IndexedBase)}
    )
    return sp.lambdify(symbols, renamed, modules=[_NAMESPACE, "numpy"], printer=_Printer, cse=True)  # type: ignore[no-any-return]


def _as_float(value: Any, what: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise SymlossTypeError(f"{what} must be a real array: {exc}") from None
    if arr.dtype.kind not in "fiub":
        raise SymlossTypeError(f"{what} must be a real array, got dtype {arr.dtype}")
    return arr


def _cast(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 -> the input's dtype: one rounding; a subnormal result may flush to 0, quietly."""
    with np.errstate(under="ignore", over="ignore"):
        return arr.astype(dtype)


def _out_dtype(arr: np.ndarray) -> np.dtype:
    return arr.dtype if arr.dtype in (np.float32, np.float64, np.float16) else np.dtype(np.float64)


@dataclass
class Numeric:
    """The compiled functions of one derivation, with torch's bookkeeping around them."""

    loss: Callable[..., Any]
    grad: Callable[..., Any]
    hvp: Callable[..., Any]
    hess_diag: Callable[..., Any]


def build(derivation: Derivation) -> Numeric:
    """Compile the kernels for ``derivation`` and wrap them with torch's bookkeeping."""
    family = derivation.spec.family
    if family == "elementwise":
        adapter: _Adapter = _Elementwise(derivation)
    elif family == "class_axis":
        adapter = _ClassAxis(derivation)
    elif family == "rows":  # row-wise losses (norms, dot products per row): symloss.rows
        from .rows import build as build_rows

        return build_rows(derivation)
    else:  # pragma: no cover - a catalogue entry with an unknown family is a bug here
        raise AssertionError(family)
    return Numeric(
        loss=adapter.loss, grad=adapter.grad, hvp=adapter.hvp, hess_diag=adapter.hess_diag
    )


class _Adapter:
    """Shared: compile the two kernels; reduce; return in the input's dtype."""

    def __init__(self, derivation: Derivation) -> None:
        d = derivation.declaration
        self.derivation = derivation
        self.options: Mapping[str, Any] = derivation.options
        self.reduction: str = derivation.options.get("reduction", "mean")
        self.names = list(d.symbols)
        args = [d.symbols[n] for n in self.names]
        self._args = args
        subst = d.substitute_definitions
        self._loss = compile_expr(subst(d.loss), args)
        self._grad = compile_expr(subst(derivation.kernel_gradient), args)
        self._second: dict[str, Callable[..., Any]] = {}
        self._soft_grad: Callable[..., Any] | None = None  # compiled on first soft target
        self._fast: Any = None  # symloss.fast kernels, built on first call when enabled

    def _second_kernel(self, which: str) -> Callable[..., Any]:
        """The Hessian kernels, compiled on first use (most callers never need them)."""
        if which not in self._second:
            d = self.derivation
            subst = d.declaration.substitute_definitions
            if which == "hvp":
                v = sp.IndexedBase("v") if d.declaration.class_axis else sp.Symbol("v", real=True)
                self._second[which] = compile_expr(subst(d.hvp_expr), [*self._args, v])
            else:
                self._second[which] = compile_expr(subst(d.hessian_diagonal), self._args)
        return self._second[which]

    def _fast_kernels(self, arrays: tuple[Any, ...]) -> Any:
        """The fused numba kernels (:mod:`symloss.fast`) for these arrays, or ``None``: take
        the NumPy path (small arrays, a loss without fast kernels, numba not installed)."""
        from . import fast

        if len(arrays) != 2 or not fast.worth_it(self.derivation, arrays[0]):
            return None
        if self._fast is None:
            self._fast = fast.build(self.derivation) or False
        return self._fast or None

    def _call(self, kernel: Callable[..., Any], values: Mapping[str, Any]) -> np.ndarray:
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            return np.asarray(kernel(*(values[n] for n in self.names)), dtype=np.float64)

    def _direction(self, v: Any, shape: tuple[int, ...]) -> np.ndarray:
        arr = _as_float(v, f"{self.derivation.name}: v")
        if arr.shape != shape:
            raise SymlossValueError(
                f"{self.derivation.name}: v must have the input's shape {shape}, got {arr.shape}"
            )
        return arr.astype(np.float64)

    def _arity(self, arrays: tuple[Any, ...], extra: str = "") -> None:
        names = self.derivation.spec.arguments
        if len(arrays) != len(names):
            shown = ", ".join([*names, *([extra] if extra else [])])
            raise SymlossTypeError(
                f"{self.derivation.name} takes ({shown}); got {len(arrays) + bool(extra)} arrays"
            )

    def hvp(self, *arrays: Any) -> np.ndarray:
        *arrays, v = arrays  # type: ignore[assignment]
        self._arity(tuple(arrays), "v")
        kernels = self._fast_kernels(tuple(arrays))
        done = kernels.hvp(*arrays, v) if kernels is not None else None
        if done is not None:
            return done  # type: ignore[no-any-return]
        values, denominator, dtype, finish = self.prepare(*arrays)
        input = arrays[0]
        shape = np.shape(input.detach().cpu().numpy() if hasattr(input, "detach") else input)
        values["v"] = self.to_kernel_layout(self._direction(v, shape))
        kernel = self._second_kernel("hvp")
        names = [*self.names, "v"]
        with np.errstate(divide="ignore", over="ignore", under="ignore", invalid="ignore"):
            raw = np.asarray(kernel(*(values[n] for n in names)), dtype=np.float64)
        reduced = self._reduce_grad(raw, denominator, np.dtype(np.float64))
        return _cast(finish(reduced, loss=False), dtype)

    def hess_diag(self, *arrays: Any) -> np.ndarray:
        """The unreduced diagonal of the Hessian, per element (reduction ignored)."""
        self._arity(arrays)
        values, _, dtype, finish = self.prepare(*arrays)
        raw = self._call(self._second_kernel("hess_diag"), values)
        return _cast(finish(raw, loss=False), dtype)

    def to_kernel_layout(self, arr: np.ndarray) -> np.ndarray:
        """An array of the input's shape in the layout the kernels take."""
        return arr

    def _reduce_loss(self, per_element: np.ndarray, denominator: float, dtype: np.dtype) -> Any:
        if self.reduction == "none":
            return _cast(per_element, dtype)
        total = float(np.sum(per_element))
        # A loss beyond the dtype's range rounds to inf, quietly, as any other rounding.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if self.reduction == "sum":
                return dtype.type(total)
            return dtype.type(np.float64(total) / np.float64(denominator))

    def _reduce_grad(self, per_element: np.ndarray, denominator: float, dtype: np.dtype) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", under="ignore", over="ignore"):
            if self.reduction in ("mean", "batchmean"):
                per_element = per_element / np.float64(denominator)
            return _cast(per_element, dtype)

    def loss(self, *arrays: Any) -> Any:
        self._arity(arrays)
        kernels = self._fast_kernels(arrays)
        done = kernels.loss(*arrays) if kernels is not None else None
        if done is not None:
            return self._reduce_loss(*done)
        values, denominator, dtype, finish = self.prepare(*arrays)
        per_element = finish(self._call(self._loss, values), loss=True)
        return self._reduce_loss(per_element, denominator, dtype)

    def grad(self, *arrays: Any, wrt: str = "input") -> np.ndarray:
        self._arity(arrays)
        spec = self.derivation.spec
        differentiable = ["input", *(w.name for w in self.derivation.declaration.also_wrt)]
        if wrt not in differentiable:
            from .errors import choice_error

            raise choice_error(f"wrt for {spec.name}", wrt, differentiable)
        if wrt == "input":
            kernels = self._fast_kernels(arrays)
            done = kernels.grad(*arrays) if kernels is not None else None
            if done is not None:
                return done  # type: ignore[no-any-return]
        values, denominator, dtype, finish = self.prepare(*arrays)
        if wrt == "input":
            per_element = self._input_gradient(values)
        else:
            per_element = self._call(self._wrt_kernel(wrt), values)
        # Reduce, then mask: an ignored element's gradient is 0 even when every element is
        # ignored (torch never writes it), not 0/0.
        reduced = self._reduce_grad(per_element, denominator, np.dtype(np.float64))
        out = finish(reduced, loss=False)
        if wrt != "input":  # the gradient of a broadcast argument sums over the broadcast axes
            arg = arrays[spec.arguments.index(wrt)]
            arg = _as_float(arg, f"{spec.name}: {wrt}")
            return _cast(_unbroadcast(out, arg.shape), _out_dtype(arg))
        return _cast(out, dtype)

    def _input_gradient(self, values: Mapping[str, Any]) -> np.ndarray:
        """∂ℓ/∂input per element, in the kernel layout.

        Where the declaration says so (``soft_targets_take_gradient``: the Bernoulli and
        categorical losses), hard labels take the kernel form, where nothing cancels, and soft
        targets the derived gradient, whose one cancellation where it is ≈ 0 loses no more than
        torch's p − y. A kernel form that carries torch's numeric guards (clamps) is used for
        every target: the simplified gradient does not keep them.
        """
        per_element = self._call(self._grad, values)
        d = self.derivation
        if self._soft_grad is None and (
            not d.declaration.soft_targets_take_gradient
            or d.soft_gradient == d.kernel_gradient
            or d.kernel_gradient.has(*_GUARDS)
        ):
            self._soft_grad = self._grad  # one form for every target: nothing to choose
        if self._soft_grad is self._grad or "target" not in values:
            return per_element
        y = np.asarray(values["target"])
        soft = (y != 0) & (y != 1)
        if d.spec.family == "class_axis":
            soft = np.any(soft, axis=-1, keepdims=True)
        if np.any(soft):
            if self._soft_grad is None:
                self._soft_grad = compile_expr(
                    d.declaration.substitute_definitions(d.soft_gradient), self._args
                )
            per_element = np.where(soft, self._call(self._soft_grad, values), per_element)
        return per_element

    def _wrt_kernel(self, wrt: str) -> Callable[..., Any]:
        key = f"wrt:{wrt}"
        if key not in self._second:
            d = self.derivation
            subst = d.declaration.substitute_definitions
            # The raw sympy.diff, like the input's kernel: tidy() drops the numeric guards
            # (clamp_min), which the evaluated form must keep.
            raw = sp.diff(d.declaration.loss, d.declaration.symbols[wrt])
            self._second[key] = compile_expr(subst(raw), self._args)
        return self._second[key]

    def prepare(
        self, *arrays: Any
    ) -> tuple[dict[str, Any], float, np.dtype, Callable[..., np.ndarray]]:
        raise NotImplementedError


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes an argument of ``shape`` was broadcast along."""
    if grad.shape == shape:
        return grad
    if len(shape) == grad.ndim - 1 and shape == grad.shape[:-1]:  # var of shape input[:-1]
        return grad.sum(axis=-1)
    lead = grad.ndim - len(shape)
    out = grad.sum(axis=tuple(range(lead))) if lead else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and out.shape[i] != 1)
    return out.sum(axis=axes, keepdims=True).reshape(shape)


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
        self, *arrays: Any
    ) -> tuple[dict[str, Any], float, np.dtype, Callable[..., np.ndarray]]:
        name = self.derivation.name
        spec = self.derivation.spec
        given = dict(zip(spec.arguments, arrays, strict=True))
        x = _as_float(given["input"], f"{name}: input")
        y = _as_float(given["target"], f"{name}: target")
        if x.shape != y.shape:
            raise SymlossValueError(
                f"{name}: target shape {y.shape} must equal input shape {x.shape}"
            )
        from .catalog import TARGET_CHECKS

        target_check = TARGET_CHECKS.get(spec.name)
        if target_check is not None:  # binary_cross_entropy: targets in [0, 1], as torch
            target_check(name, y)
        extra: dict[str, np.ndarray] = {}
        for arg in spec.arguments:
            if arg in ("input", "target"):
                continue
            arr = _as_float(given[arg], f"{name}: {arg}").astype(np.float64)
            if arr.ndim == x.ndim - 1 and arr.shape == x.shape[:-1] and arr.shape != x.shape:
                arr = arr[..., None]  # torch: a var without the last dimension is unsqueezed
            arr = np.asarray(_broadcast(arr, x.shape, arg, name))
            check = spec.argument_check.get(arg)
            if check is not None:
                check(name, arr)
            extra[arg] = arr
        dtype = _out_dtype(x)
        # float32 is computed in float64; float64 in the platform's extended precision where it
        # has one (x86: 64-bit mantissa), so that a cancellation inherent to the loss
        # (e^z ≈ y in Poisson's e^z − y) costs 2¹¹ times less. Either way one final rounding.
        work = np.longdouble if dtype == np.float64 else np.float64
        x64 = x.astype(work)
        if self.derivation.spec.input_domain(self.options) == "probability":
            if np.any((x64 < 0) | (x64 > 1)) or np.any(np.isnan(x64)):
                raise SymlossValueError(
                    f"{name}: every input must be a probability in [0, 1] "
                    "(use link='sigmoid' or binary_cross_entropy_with_logits for logits)"
                )
        values: dict[str, Any] = {"input": x64, "target": y.astype(work), **extra}
        for option in self.names:
            if option in values:
                continue
            value = self.options[option]
            if hasattr(value, "shape"):  # weight, pos_weight: broadcast like torch
                values[option] = _broadcast(value, x.shape, option, name)
            else:  # a scalar option (beta, delta, margin, eps)
                values[option] = np.float64(value)

        def finish(per_element: np.ndarray, loss: bool) -> np.ndarray:
            return np.broadcast_to(per_element, x.shape)

        if self.reduction == "batchmean":
            denominator = float(x.shape[0]) if x.ndim else 1.0
        else:
            denominator = float(x.size)
        return values, denominator, dtype, finish


def class_index_denominator(derivation: Derivation, labels: np.ndarray, valid: np.ndarray) -> float:
    """What ``reduction='mean'`` divides by for class-index targets (``valid``: not ignored).

    The declaration says which: the targets' total weight (cross_entropy, nll_loss) or the
    number of samples counted (multi_margin_loss). Shared by the NumPy and numba paths.
    """
    declared = derivation.declaration
    weight = derivation.options.get("weight")
    by_weight = "weight" in declared.symbols and declared.mean_denominator.has(
        declared.symbols["weight"]
    )
    if weight is not None and by_weight:
        return float(np.sum(weight[np.where(valid, labels, 0)][valid]))
    return float(np.count_nonzero(valid))


class _ClassAxis(_Adapter):
    """Losses over a class axis: input (C), (N, C) or (N, C, d1, …, dk), as in torch."""

    def to_kernel_layout(self, arr: np.ndarray) -> np.ndarray:
        return np.moveaxis(arr, 0 if arr.ndim == 1 else 1, -1)

    def prepare(
        self, *arrays: Any
    ) -> tuple[dict[str, Any], float, np.dtype, Callable[..., np.ndarray]]:
        name = self.derivation.name
        input, target = arrays
        x = _as_float(input, f"{name}: input")
        if x.ndim == 0:
            raise SymlossValueError(
                f"{name}: input must have shape (C), (N, C) or (N, C, d1, ..., dk); got a scalar"
            )
        t = np.asarray(target.detach().cpu().numpy() if hasattr(target, "detach") else target)
        dtype = _out_dtype(x)
        class_dim = 0 if x.ndim == 1 else 1
        n_classes = x.shape[class_dim]
        work = np.longdouble if dtype == np.float64 else np.float64  # as in _Elementwise
        z = np.moveaxis(x.astype(work), class_dim, -1)
        weight = self.options.get("weight")
        if weight is not None and weight.shape != (n_classes,):
            raise SymlossValueError(
                f"{name}: weight must have shape ({n_classes},) for {n_classes} classes, "
                f"got {weight.shape}"
            )
        # A loss without an ignore_index option (multi_margin_loss) ignores no target.
        ignore_index = self.options.get("ignore_index")
        spec = self.derivation.spec
        if x.ndim > 2 and not spec.spatial and spec.index_targets_only:
            raise SymlossValueError(  # torch's multi_margin_loss: (C) or (N, C) only
                f"{name}: input must have shape (C) or (N, C), got {x.shape} (torch: expected "
                "non-empty vector or matrix)")
        if t.shape == x.shape and self.derivation.spec.index_targets_only:
            raise SymlossValueError(
                f"{name}: targets are class indices of shape "
                f"{x.shape[:class_dim] + x.shape[class_dim + 1:]}, got the input's shape {t.shape}"
            )
        if self.derivation.spec.multi_hot_targets and t.shape != x.shape:
            raise SymlossValueError(
                f"{name}: the target must have the input's shape {x.shape} (one label per "
                f"class), got {t.shape}"
            )
        if t.shape == x.shape:
            if self.derivation.spec.multi_hot_targets and t.dtype.kind in "iub":
                t = t.astype(np.float64)
            if t.dtype.kind != "f":
                raise SymlossTypeError(
                    f"{name}: a target of the input's shape holds class probabilities and must "
                    f"be floating point, got dtype {t.dtype}"
                )
            if ignore_index is not None and ignore_index >= 0:
                raise SymlossValueError(
                    f"{name}: ignore_index is not supported for probability targets "
                    f"(got ignore_index={ignore_index})"
                )
            y = np.moveaxis(t.astype(work), class_dim, -1)
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
            valid = t != ignore_index if ignore_index is not None else np.ones(t.shape, bool)
            bad = valid & ((t < 0) | (t >= n_classes))
            if np.any(bad):
                also = f" (or ignore_index={ignore_index})" if ignore_index is not None else ""
                raise SymlossValueError(
                    f"{name}: target {int(t[bad].flat[0])} is out of bounds; class indices are "
                    f"0..{n_classes - 1}{also}"
                )
            safe = np.where(valid, t, 0)
            y = np.zeros(z.shape, dtype=work)
            np.put_along_axis(y, safe[..., None], 1.0, axis=-1)
            y[~valid] = 0.0
            denominator = class_index_denominator(self.derivation, t, valid)
        values: dict[str, Any] = {"input": z, "target": y, "num_classes": n_classes}
        if "weight" in self.names:
            values["weight"] = weight
        if "label_smoothing" in self.names:
            values["label_smoothing"] = self.options["label_smoothing"]
        for option in self.names:  # scalar options (margin)
            if option not in values:
                values[option] = np.float64(self.options[option])

        def finish(per_element: np.ndarray, loss: bool) -> np.ndarray:
            if loss:
                out = np.where(valid, np.broadcast_to(per_element, (*z.shape[:-1], 1))[..., 0], 0.0)
                return out
            out = np.where(valid[..., None], np.broadcast_to(per_element, z.shape), 0.0)
            return np.moveaxis(out, -1, class_dim)

        return values, denominator, dtype, finish
