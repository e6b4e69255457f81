"""Check implementations against symloss's exact reference.

:func:`battery` builds inputs that fit a loss and its options (shapes, targets, typical and
extreme values, both dtypes) as data, in the style of PyTorch's module tests; :func:`compare`
runs one implementation over it and returns one :class:`Row` per case; :func:`torch_function`
is torch's own twin of a loss. torch is imported only here, and only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .derive import Derivation

__all__ = ["Case", "Row", "battery", "compare", "torch_function", "ulp_error"]

DTYPES = ("float32", "float64")
#: A correct float32/float64 implementation stays within this many ulps of the reference,
#: measured against the scale of the values it combines (see :func:`ulp_error`).
TOLERANCE_ULPS = 64.0


@dataclass(frozen=True)
class Case:
    """One input of the battery: a description, the input, the target, its dtype."""

    description: str
    input: np.ndarray
    target: np.ndarray
    dtype: str
    extreme: bool = False


@dataclass
class Row:
    """The comparison of one case: worst loss and gradient error in ulps, and where."""

    case: Case
    loss_ulps: float
    grad_ulps: float
    worst_index: tuple[int, ...] | None = None
    worst: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.loss_ulps <= TOLERANCE_ULPS
            and self.grad_ulps <= TOLERANCE_ULPS
        )


def ulp_error(
    got: np.ndarray, expected: np.ndarray, dtype: np.dtype, scale: float = 0.0
) -> np.ndarray:
    """Elementwise ``|got - expected|`` in units of the dtype's spacing at the array's scale.

    The unit is ``spacing(max(max|expected|, scale))``: the rounding error a correct
    implementation makes when it combines terms of that size. ``scale`` is the size of the
    terms combined (see :func:`term_scale`). Infinite where one is NaN and the other is not.
    """
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(expected)
    largest = float(np.max(np.abs(expected[finite]))) if np.any(finite) else 1.0
    scale = max(largest, scale)
    tiny = float(np.finfo(dtype).smallest_normal)
    unit = float(np.spacing(np.asarray(max(scale, tiny), dtype=dtype)))
    with np.errstate(invalid="ignore"):
        err = np.abs(got - expected) / unit
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    return np.where(same, 0.0, np.where(np.isnan(err), np.inf, err))


def term_scale(derivation: Derivation, case: Case) -> tuple[float, float]:
    """The size of the terms an implementation combines, for the loss and the gradient.

    Taken as the reference's loss and gradient at the *same target* and a neutral input (0 for a
    logit, 1/2 for a probability): there predictions and targets are O(1), so this is the size
    of ``prediction`` and ``target`` after weights and reduction. Subtracting two such terms,
    a correct implementation errs by a few ulps of it even where the exact result is tiny.
    """
    neutral = 0.5 if derivation.spec.input_domain(derivation.options) == "probability" else 0.0
    x0 = np.full_like(case.input, neutral)
    loss = np.abs(np.asarray(derivation.loss_fn(x0, case.target), dtype=np.float64))
    grad = np.abs(np.asarray(derivation.grad_fn(x0, case.target), dtype=np.float64))
    return (float(np.max(loss)) if loss.size else 0.0, float(np.max(grad)) if grad.size else 0.0)


def torch_function(derivation: Derivation) -> Callable[[Any, Any], Any]:
    """torch.nn.functional's twin of ``derivation`` as ``fn(input, target)`` on tensors."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    spec = derivation.spec
    options = derivation.options
    twin = spec.torch_twin(options)
    if twin is not None:  # torchvision's focal loss, nll_loss of log_softmax
        return twin
    fn = getattr(F, spec.name)
    link = spec.torch_link(options)
    kwargs: dict[str, Any] = {}
    for opt in spec.options:
        if opt.name == "link":
            continue
        value = options.get(opt.name, opt.default)
        if opt.kind == "array":
            if value is None:
                continue
            kwargs[opt.name] = value  # made a tensor of the input's dtype at call time
        else:
            kwargs[opt.name] = value

    def call(input: Any, target: Any) -> Any:
        args = {
            k: torch.as_tensor(np.asarray(v), dtype=input.dtype) if hasattr(v, "shape") else v
            for k, v in kwargs.items()
        }
        x = getattr(torch, link)(input) if link else input
        return fn(x, target, **args)

    return call


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _elementwise_cases(derivation: Derivation, rng: np.random.Generator) -> Iterator[Case]:
    spec = derivation.spec
    domain = spec.input_domain(derivation.options)
    shapes = [(7,), (3, 4), (2, 3, 4)]
    weight = derivation.options.get("weight")
    pos_weight = derivation.options.get("pos_weight")
    for extra in (weight, pos_weight):
        if extra is not None and extra.ndim:
            shapes = [s for s in shapes if _broadcasts(extra.shape, s)] or [extra.shape]
    for dtype in DTYPES:
        for shape in shapes:
            hard = rng.integers(0, 2, size=shape).astype(dtype)
            soft = rng.uniform(0, 1, size=shape).astype(dtype)
            if domain == "probability":
                x = rng.uniform(0.01, 0.99, size=shape).astype(dtype)
            else:
                x = (3 * rng.standard_normal(size=shape)).astype(dtype)
            yield Case(f"{shape} hard labels", x, hard, dtype)
            yield Case(f"{shape} soft labels", x, soft, dtype)
        shape = shapes[0]
        n = int(np.prod(shape))
        if domain == "probability":
            values = np.array([0.0, 1e-12, 1e-6, 0.5, 1 - 1e-6, 1.0])
        else:
            values = np.array([-1e4, -100.0, -40.0, -17.0, -5.0, 0.0, 5.0, 17.0, 40.0, 100.0, 1e4])
        x = np.resize(values, n).reshape(shape).astype(dtype)
        for label in (0.0, 1.0):
            y = np.full(shape, label, dtype=dtype)
            yield Case(f"{shape} extreme inputs, y={label:g}", x, y, dtype, extreme=True)


def _broadcasts(small: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(small, shape)
    except ValueError:
        return False
    return np.broadcast_shapes(small, shape) == shape


def _class_axis_cases(derivation: Derivation, rng: np.random.Generator) -> Iterator[Case]:
    weight = derivation.options.get("weight")
    c = int(weight.shape[0]) if weight is not None else 5
    ignore = derivation.options.get("ignore_index", -100)
    layouts = [((c,), ()), ((4, c), (4,)), ((2, c, 3, 2), (2, 3, 2))]
    for dtype in DTYPES:
        for shape, tshape in layouts:
            x = (3 * rng.standard_normal(size=shape)).astype(dtype)
            t = rng.integers(0, c, size=tshape)
            if t.ndim:
                t.flat[0] = ignore  # exercise ignore_index
            elif t == ignore:  # torch cannot ignore a no-batch target with label smoothing
                t = (t + 1) % c
            yield Case(f"{shape} class indices", x, np.asarray(t, dtype=np.int64), dtype)
            if ignore < 0 and not derivation.spec.index_targets_only:  # nll_loss: indices only
                probs = rng.dirichlet(np.ones(c), size=tshape or None)
                probs = np.moveaxis(np.asarray(probs), -1, 1 if len(shape) > 1 else 0)
                yield Case(f"{shape} class probabilities", x, probs.astype(dtype), dtype)
        shape, tshape = layouts[1]
        x = (1e4 * rng.standard_normal(size=shape)).astype(dtype)
        t = np.argmax(x, axis=1)
        yield Case(f"{shape} extreme logits, target = arg-max", x, t.astype(np.int64), dtype, True)
        t = np.argmin(x, axis=1)
        yield Case(f"{shape} extreme logits, target = arg-min", x, t.astype(np.int64), dtype, True)
        x = np.zeros(shape, dtype=dtype)
        x[:, 0] = 40.0
        yield Case(f"{shape} one logit 40 above the rest", x, np.zeros(tshape, np.int64), dtype, True)


def battery(derivation: Derivation, seed: int = 0) -> list[Case]:
    """The cases :func:`compare` runs: fitted to the loss's family and options, seeded."""
    rng = _rng(seed)
    if derivation.spec.family == "class_axis":
        return list(_class_axis_cases(derivation, rng))
    return list(_elementwise_cases(derivation, rng))


def _autograd(fn: Callable[[Any, Any], Any], case: Case) -> tuple[np.ndarray, np.ndarray]:
    import torch

    x = torch.tensor(case.input, requires_grad=True)
    target = torch.from_numpy(np.array(case.target))
    out = fn(x, target)
    (out.sum() if out.ndim else out).backward()
    assert x.grad is not None
    return out.detach().numpy(), x.grad.numpy()


def compare(
    derivation: Derivation,
    fn: Callable[[Any, Any], Any] | None = None,
    cases: Sequence[Case] | None = None,
) -> list[Row]:
    """Compare ``fn`` (torch's twin by default) with the exact reference on every case."""
    fn = fn or torch_function(derivation)
    rows = []
    for case in cases if cases is not None else battery(derivation):
        dtype = np.dtype(case.dtype)
        try:
            got_loss, got_grad = _autograd(fn, case)
        except Exception as exc:  # the implementation under test failed: report it
            rows.append(Row(case, np.inf, np.inf, error=f"{type(exc).__name__}: {exc}"))
            continue
        ref_loss = derivation.loss_fn(case.input, case.target)
        ref_grad = derivation.grad_fn(case.input, case.target)
        loss_scale, grad_scale = term_scale(derivation, case)
        loss_err = ulp_error(got_loss, ref_loss, dtype, loss_scale)
        grad_err = ulp_error(got_grad, ref_grad, dtype, grad_scale)
        worst = int(np.argmax(grad_err)) if grad_err.size else 0
        index = np.unravel_index(worst, grad_err.shape) if grad_err.ndim else ()
        rows.append(
            Row(
                case,
                float(np.max(loss_err)) if loss_err.size else 0.0,
                float(np.max(grad_err)) if grad_err.size else 0.0,
                worst_index=tuple(int(i) for i in index),
                worst={
                    "input": float(np.asarray(case.input)[index]),
                    "got": float(np.asarray(got_grad)[index]),
                    "expected": float(np.asarray(ref_grad)[index]),
                },
            )
        )
    return rows
