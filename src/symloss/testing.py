"""Check anyone's implementation of a loss against symloss's exact reference.

:func:`assert_grad_matches` is the one-call check: it builds a battery of inputs that fit the
loss and its options, runs the implementation under test with torch autograd in float64 and
float32, compares the loss value and the gradient with the exact reference, and raises
:class:`AssertionError` with a report that names the worst element and, when the evidence
singles one out, the rule that is wrong.

The pieces are public too: :func:`battery` (the cases, from a registry keyed by
``LossSpec.family`` -- see :func:`register_family`), :func:`compare` (one :class:`Row` per case),
:func:`diagnose` (which derived hypothesis explains a disagreement), and :func:`torch_function`
(torch's own twin of a loss). torch is imported only when a function here is called.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from .derive import Derivation
from .errors import SymlossTypeError, SymlossValueError

__all__ = [
    "Case",
    "CheckResult",
    "Family",
    "Row",
    "assert_grad_matches",
    "battery",
    "check",
    "compare",
    "diagnose",
    "register_family",
    "term_scale",
    "torch_function",
    "ulp_error",
]

DTYPES = ("float32", "float64")
#: A correct float32/float64 implementation stays within this many ulps of the reference,
#: measured against the scale of the values it combines (see :func:`ulp_error`).
TOLERANCE_ULPS = 64.0

Domain = tuple[float, float]


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
    """The comparison of one case: worst loss and gradient error in ulps, and where.

    ``arrays`` keeps what was compared (``got_loss``, ``ref_loss``, ``got_grad``, ``ref_grad``,
    ``loss_err``, ``grad_err``) for the report and the diagnosis.
    """

    case: Case
    loss_ulps: float
    grad_ulps: float
    worst_index: tuple[int, ...] | None = None
    worst: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def loss_ok(self) -> bool:
        return self.error is None and self.loss_ulps <= TOLERANCE_ULPS

    @property
    def grad_ok(self) -> bool:
        return self.error is None and self.grad_ulps <= TOLERANCE_ULPS

    @property
    def ok(self) -> bool:
        return self.loss_ok and self.grad_ok


# --------------------------------------------------------------------------- error metric
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
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got - expected) / unit
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    return np.where(same, 0.0, np.where(np.isnan(err), np.inf, err))


def term_scale(derivation: Derivation, case: Case) -> tuple[float, float]:
    """The size of the terms an implementation combines, for the loss and the gradient.

    Taken as the reference's loss and gradient at the *same target* and a neutral input (0 for a
    logit, 1/2 for a probability): there predictions and targets are O(1), so this is the size
    of ``prediction`` and ``target`` after weights and reduction. Subtracting two such terms,
    a correct implementation errs by a few ulps of it even where the exact result is tiny.

    A reduced loss is also a sum of the per-element losses at the *actual* input, so its scale
    is at least their absolute values reduced the same way: the sum of ±10³⁰ terms is exactly 0
    but rounds, in any correct implementation, to some multiple of eps·10³⁰.
    """
    x0 = np.full_like(case.input, _neutral(derivation))
    reduction = derivation.options.get("reduction", "mean")
    with np.errstate(all="ignore"):
        loss = np.abs(np.asarray(derivation.loss_fn(x0, case.target), dtype=np.float64))
        grad = np.abs(np.asarray(derivation.grad_fn(x0, case.target), dtype=np.float64))
        if reduction != "none":
            per_element = derivation._with_options({**derivation.options, "reduction": "none"})
            terms = np.abs(np.asarray(per_element.loss_fn(case.input, case.target), dtype=np.float64))
            terms = terms[np.isfinite(terms)]
            if terms.size:
                combined = np.sum(terms) if reduction == "sum" else np.mean(terms)
                loss = np.append(loss, combined)
    loss, grad = loss[np.isfinite(loss)], grad[np.isfinite(grad)]
    return (float(np.max(loss)) if loss.size else 0.0, float(np.max(grad)) if grad.size else 0.0)


def _neutral(derivation: Derivation) -> float:
    return 0.5 if derivation.spec.input_domain(derivation.options) == "probability" else 0.0


def natural_domain(derivation: Derivation, dtype: str) -> Domain:
    """The inputs a loss accepts in ``dtype``: ``[0, 1]`` for a probability, else every finite
    number."""
    if derivation.spec.input_domain(derivation.options) == "probability":
        return (0.0, 1.0)
    big = float(np.finfo(dtype).max)
    return (-big, big)


def _check_domain(domain: Any) -> Domain | None:
    if domain is None:
        return None
    try:
        lo, hi = (float(v) for v in domain)
    except (TypeError, ValueError):
        raise SymlossTypeError(
            f"domain must be a pair (lo, hi) of numbers, got {domain!r}"
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise SymlossValueError(f"domain must be finite with lo < hi, got ({lo!r}, {hi!r})")
    return (lo, hi)


def _effective_domain(derivation: Derivation, dtype: str, domain: Domain | None) -> Domain:
    lo, hi = natural_domain(derivation, dtype)
    if domain is None:
        return (lo, hi)
    a, b = max(lo, domain[0]), min(hi, domain[1])
    if a >= b:
        raise SymlossValueError(
            f"domain ({domain[0]:g}, {domain[1]:g}) does not meet the loss's inputs "
            f"[{lo:g}, {hi:g}]"
        )
    return (a, b)


# --------------------------------------------------------------------------- torch's twin
def torch_function(derivation: Derivation) -> Callable[[Any, Any], Any]:
    """torch.nn.functional's twin of ``derivation`` as ``fn(input, target)`` on tensors."""
    import torch
    import torch.nn.functional as F

    spec = derivation.spec
    options = derivation.options
    twin = spec.torch_twin(options)
    if twin is not None:  # torchvision's focal loss, nll_loss of log_softmax
        return twin
    fn = getattr(F, spec.name, None)
    if fn is None:
        raise SymlossValueError(
            f"{spec.name} has no torch.nn.functional twin; pass the implementation to check"
        )
    link = spec.torch_link(options)
    kwargs: dict[str, Any] = {}
    for opt in spec.options:
        if opt.name == "link":
            continue
        value = options.get(opt.name, opt.default)
        if opt.kind == "array" and value is None:
            continue
        kwargs[opt.name] = value  # an array becomes a tensor of the input's dtype at call time

    def call(input: Any, target: Any) -> Any:
        args = {
            k: torch.as_tensor(np.asarray(v), dtype=input.dtype) if hasattr(v, "shape") else v
            for k, v in kwargs.items()
        }
        x = getattr(torch, link)(input) if link else input
        with warnings.catch_warnings():
            # kl_div(reduction='mean') warns about its own semantics on every call; symloss
            # follows those semantics, so the warning says nothing here.
            warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss")
            return fn(x, target, **args)

    return call


# --------------------------------------------------------------------------- the battery
@dataclass(frozen=True)
class Family:
    """How to make inputs for one ``LossSpec.family``.

    Attributes:
        cases: ``cases(derivation, rng, dtype, domain)`` yields the battery's :class:`Case` s
            for one dtype, inputs inside ``domain`` (already fitted to the loss's inputs).
        ray: ``ray(derivation, t, dtype)`` gives ``[(label, input, target), ...]``: inputs that
            move along one number ``t`` (one batch row per value of ``t``), for the stability
            map; row ``r`` of every output depends only on ``t[r]``.
        target_at: the target of the element at an index of the input, for the report.
    """

    cases: Callable[[Derivation, np.random.Generator, str, Domain], Iterator[Case]]
    ray: Callable[[Derivation, np.ndarray, str], list[tuple[str, np.ndarray, np.ndarray]]]
    target_at: Callable[[Case, tuple[int, ...]], Any]


#: The battery's families, keyed by ``LossSpec.family``; add one with :func:`register_family`.
FAMILIES: dict[str, Family] = {}


def register_family(name: str, family: Family) -> None:
    """Register (or replace) the battery of a loss family (``LossSpec.family``)."""
    FAMILIES[name] = family


def _family(derivation: Derivation) -> Family:
    name = derivation.spec.family
    if name not in FAMILIES:
        raise SymlossValueError(
            f"no battery for the loss family {name!r} of {derivation.name}; registered families: "
            f"{', '.join(sorted(FAMILIES))} (see symloss.testing.register_family)"
        )
    return FAMILIES[name]


def _in_domain(values: np.ndarray, domain: Domain) -> np.ndarray:
    return values[(values >= domain[0]) & (values <= domain[1])]


def _typical(
    rng: np.random.Generator, shape: tuple[int, ...], domain: Domain, prob: bool
) -> np.ndarray:
    lo, hi = domain
    if prob:
        return rng.uniform(max(lo, 0.01), min(hi, 0.99), size=shape)
    if hi - lo < 20:
        return rng.uniform(lo, hi, size=shape)
    return np.clip(3 * rng.standard_normal(size=shape), lo, hi)


def _extremes(domain: Domain, prob: bool, dtype: str) -> np.ndarray:
    if prob:
        values = np.array([0.0, 1e-30, 1e-12, 1e-6, 0.5, 1 - 1e-6, 1 - 1e-12, 1.0])
    else:
        # the top of the finite range, with room for a sum over the batch to stay finite
        big = float(np.finfo(dtype).max) / 2**16
        mags = np.array([0.0, 1.0, 5.0, 10.0, 17.0, 30.0, 40.0, 100.0, 1e4, 1e30, big])
        values = np.concatenate([-mags[::-1], mags[1:]])
    ends = [e for e in domain if prob or abs(e) <= float(np.finfo(dtype).max) / 2**16]
    return np.unique(np.concatenate([_in_domain(values, domain), ends]))


def _option_shape(derivation: Derivation) -> tuple[int, ...]:
    """The trailing shape every array option broadcasts along (``pos_weight`` of shape (4,))."""
    shapes = [
        np.shape(v)
        for opt in derivation.spec.options
        if opt.kind == "array" and (v := derivation.options.get(opt.name)) is not None
    ]
    try:
        return tuple(np.broadcast_shapes(*shapes)) if shapes else ()
    except ValueError:
        raise SymlossValueError(
            f"{derivation.name}: the array options' shapes {shapes} do not broadcast together"
        ) from None


def _fit(shape: tuple[int, ...], trailing: tuple[int, ...]) -> tuple[int, ...]:
    if not trailing:
        return shape
    lead = shape[: max(len(shape) - len(trailing), 0)]
    return tuple(lead) + tuple(trailing)


def _elementwise_cases(
    derivation: Derivation, rng: np.random.Generator, dtype: str, domain: Domain
) -> Iterator[Case]:
    prob = derivation.spec.input_domain(derivation.options) == "probability"
    trailing = _option_shape(derivation)
    shapes = list(dict.fromkeys(_fit(s, trailing) for s in [(7,), (3, 4), (2, 3, 4)]))
    for shape in shapes:
        x = _typical(rng, shape, domain, prob).astype(dtype)
        hard = rng.integers(0, 2, size=shape).astype(dtype)
        soft = rng.uniform(0, 1, size=shape).astype(dtype)
        yield Case(f"{shape} hard labels", x, hard, dtype)
        yield Case(f"{shape} soft labels", x, soft, dtype)
    values = _extremes(domain, prob, dtype)
    shape = _fit((values.size,), trailing)
    x = np.resize(values, int(np.prod(shape))).reshape(shape).astype(dtype)
    if trailing:  # every value in every column: the values run down the batch axis
        x = np.broadcast_to(values.reshape((-1,) + (1,) * len(trailing)), (values.size, *trailing))
        x = np.ascontiguousarray(x).astype(dtype)
    for label in (0.0, 1.0):
        y = np.full(x.shape, label, dtype=dtype)
        yield Case(f"{x.shape} extreme inputs, y={label:g}", x, y, dtype, extreme=True)


def _elementwise_ray(
    derivation: Derivation, t: np.ndarray, dtype: str
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    trailing = _option_shape(derivation)
    x = np.broadcast_to(t.reshape((-1,) + (1,) * len(trailing)), t.shape + trailing)
    x = np.ascontiguousarray(x).astype(dtype)
    return [(f"y={label:g}", x, np.full(x.shape, label, dtype=dtype)) for label in (0.0, 1.0)]


def _elementwise_target(case: Case, index: tuple[int, ...]) -> Any:
    return float(np.asarray(case.target)[index])


def _class_count(derivation: Derivation) -> int:
    weight = derivation.options.get("weight")
    return int(np.shape(weight)[0]) if weight is not None else 5


def _class_axis_cases(
    derivation: Derivation, rng: np.random.Generator, dtype: str, domain: Domain
) -> Iterator[Case]:
    spec = derivation.spec
    c = _class_count(derivation)
    # torch's default ignore_index (-100) is exercised too, where the loss has the option.
    has_ignore = any(opt.name == "ignore_index" for opt in spec.options)
    ignore = derivation.options.get("ignore_index", -100)
    layouts = [((c,), ()), ((4, c), (4,)), ((2, c, 3, 2), (2, 3, 2))]
    if not spec.spatial:  # (C) and (N, C) only, as torch's multi_margin_loss
        layouts = layouts[:2]
    for shape, tshape in layouts:
        x = _typical(rng, shape, domain, prob=False).astype(dtype)
        if spec.multi_hot_targets:  # one 0/1 label per class, the input's shape
            yield Case(f"{shape} multi-hot labels", x, _multi_hot(rng, shape, dtype), dtype)
            continue
        t = rng.integers(0, c, size=tshape)
        if t.ndim and has_ignore:
            t.flat[0] = ignore  # exercise ignore_index
            if ignore >= 0 and t.size > 1:
                t.flat[1] = (ignore + 1) % c  # and a class next to it that counts
        elif has_ignore and t == ignore:  # torch cannot ignore a no-batch target with smoothing
            t = (t + 1) % c
        yield Case(f"{shape} class indices", x, np.asarray(t, dtype=np.int64), dtype)
        if ignore < 0 and not derivation.spec.index_targets_only:  # nll_loss: indices only
            probs = rng.dirichlet(np.ones(c), size=tshape or None)
            probs = np.moveaxis(np.asarray(probs), -1, 1 if len(shape) > 1 else 0)
            yield Case(f"{shape} class probabilities", x, probs.astype(dtype), dtype)
    shape, tshape = layouts[1]
    lo, hi = domain
    x = np.clip(1e4 * rng.standard_normal(size=shape), lo, hi).astype(dtype)
    if spec.multi_hot_targets:
        yield Case(f"{shape} extreme logits, multi-hot labels", x, _multi_hot(rng, shape, dtype),
                   dtype, True)
    else:
        yield Case(f"{shape} extreme logits, target = arg-max", x, np.argmax(x, 1), dtype, True)
        yield Case(f"{shape} extreme logits, target = arg-min", x, np.argmin(x, 1), dtype, True)
    for big in _in_domain(np.array([40.0, 1e30, -1e30]), domain):
        x = np.zeros(shape, dtype=dtype)
        x[:, 0] = big
        t = np.arange(4) % c
        target = _one_hot(t, c, dtype) if spec.multi_hot_targets else t.astype(np.int64)
        yield Case(f"{shape} one logit at {big:g}", x, target, dtype, True)


def _multi_hot(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return rng.integers(0, 2, size=shape).astype(dtype)


def _one_hot(t: np.ndarray, c: int, dtype: str) -> np.ndarray:
    return np.eye(c, dtype=dtype)[t]


def _class_axis_ray(
    derivation: Derivation, t: np.ndarray, dtype: str
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    c = _class_count(derivation)
    x = np.zeros((t.size, c), dtype=dtype)
    x[:, 0] = t
    out = []
    for cls in (0, 1):
        label = f"z = (t, 0, …), target {cls}"
        target = np.full(t.size, cls, dtype=np.int64)
        if derivation.spec.multi_hot_targets:
            target = _one_hot(target, c, dtype)
        out.append((label, x, target))
    return out


def _class_axis_target(case: Case, index: tuple[int, ...]) -> Any:
    target = np.asarray(case.target)
    if target.shape == case.input.shape:
        return float(target[index])
    class_dim = 0 if case.input.ndim == 1 else 1
    sample = index[:class_dim] + index[class_dim + 1 :]
    return int(target[sample])


register_family("elementwise", Family(_elementwise_cases, _elementwise_ray, _elementwise_target))
register_family("class_axis", Family(_class_axis_cases, _class_axis_ray, _class_axis_target))


def battery(
    derivation: Derivation,
    seed: int = 0,
    *,
    dtypes: Sequence[str] = DTYPES,
    domain: Domain | None = None,
) -> list[Case]:
    """The cases :func:`compare` runs: fitted to the loss's family and options, seeded.

    Args:
        derivation: what the cases are for (its family, options and input domain).
        seed: the seed of the random part.
        dtypes: ``"float32"``, ``"float64"`` or both.
        domain: ``(lo, hi)`` to keep every input inside; by default the whole finite range
            (``[0, 1]`` for a probability).

    Returns:
        A list of :class:`Case`.

    >>> import symloss
    >>> cases = battery(symloss.derive("ce", weight=[1.0, 2.0, 3.0]), dtypes=["float64"])
    >>> sorted({c.input.shape[-1] for c in cases if c.input.ndim == 2})
    [3]
    """
    family = _family(derivation)
    domain = _check_domain(domain)
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise SymlossValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        cases += family.cases(derivation, rng, dtype, _effective_domain(derivation, dtype, domain))
    return cases


# --------------------------------------------------------------------------- comparison
def _autograd(fn: Callable[[Any, Any], Any], case: Case) -> tuple[np.ndarray, np.ndarray]:
    import torch

    x = torch.tensor(case.input, requires_grad=True)
    target = torch.from_numpy(np.array(case.target))
    out = fn(x, target)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the implementation returned {type(out).__name__}, not a tensor")
    (out.sum() if out.ndim else out).backward()
    grad = x.grad if x.grad is not None else torch.zeros_like(x)
    return out.detach().numpy(), grad.numpy()


def _link_rounding(derivation: Derivation, case: Case) -> float:
    """The loss error a correct *composition* makes by rounding the link's output.

    When torch's twin applies the link itself (``binary_cross_entropy(sigmoid(z))``), the loss
    only sees ``p = link(z)`` rounded to the dtype, so it may be off by ``|∂ℓ/∂p · p|`` ulps
    per element (derived from the declaration); summed over the reduction. 0 otherwise.
    """
    d = derivation.declaration
    if derivation.spec.torch_link(derivation.options) is None or d.link is None:
        return 0.0
    if d.loss_in_link is None or d.link.class_axis:
        return 0.0
    twin = derivation.__dict__.get("_link_rounding_twin")
    if twin is None:
        sensitivity = d.link.from_var(sp.diff(d.loss_in_link, d.link.var) * d.link.var)
        twin = _with_kernel(derivation, d.substitute_definitions(sensitivity))
        derivation.__dict__["_link_rounding_twin"] = twin
    with np.errstate(all="ignore"):
        per = np.abs(np.asarray(twin.grad_fn(case.input, case.target), dtype=np.float64))
    per = per[np.isfinite(per)]
    if not per.size:
        return 0.0
    return float(np.max(per) if derivation.options.get("reduction") == "none" else np.sum(per))


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
            if np.shape(got_grad) != np.shape(case.input):
                raise ValueError(f"gradient shape {np.shape(got_grad)} != input shape")
        except Exception as exc:  # the implementation under test failed: report it
            rows.append(Row(case, np.inf, np.inf, error=f"{type(exc).__name__}: {exc}"))
            continue
        with np.errstate(all="ignore"):
            ref_loss = np.asarray(derivation.loss_fn(case.input, case.target))
            ref_grad = np.asarray(derivation.grad_fn(case.input, case.target))
        loss_scale, grad_scale = term_scale(derivation, case)
        loss_scale = max(loss_scale, _link_rounding(derivation, case))
        if np.shape(got_loss) != np.shape(ref_loss):
            loss_err = np.full(np.shape(ref_loss), np.inf)
        else:
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
                arrays={
                    "got_loss": np.asarray(got_loss),
                    "ref_loss": ref_loss,
                    "got_grad": np.asarray(got_grad),
                    "ref_grad": ref_grad,
                    "loss_err": loss_err,
                    "grad_err": grad_err,
                    "scales": np.array([loss_scale, grad_scale]),
                },
            )
        )
    return rows


# --------------------------------------------------------------------------- diagnosis
@dataclass(frozen=True)
class Hypothesis:
    """A wrong rule, as the reference it would produce: ``value(case)`` is the loss (or the
    gradient) an implementation with that mistake returns, from symloss's own derivation."""

    rule: str
    loss: Callable[[Case], np.ndarray] | None
    grad: Callable[[Case], np.ndarray] | None


def _variant(derivation: Derivation, **changes: Any) -> Derivation:
    """``derivation`` with some options changed, declared and derived afresh (never typed in)."""
    options = {**derivation.options, **changes}
    options = derivation.spec.validate(options)
    return type(derivation)(derivation.spec, options, derivation.spec.declare(options))


def _with_kernel(derivation: Derivation, expr: sp.Expr) -> Derivation:
    """``derivation`` whose numbers evaluate ``expr`` as the per-element gradient, with the same
    shapes, weights and reduction around it."""
    twin = copy.copy(derivation)
    twin.__dict__ = dict(derivation.__dict__)
    twin.__dict__.pop("_numeric", None)
    # Both forms the numbers may take (hard and soft targets) become the hypothesis.
    twin.__dict__["kernel_gradient"] = expr
    twin.__dict__["gradient"] = expr
    twin.__dict__["soft_gradient"] = expr
    return twin


def _hypotheses(derivation: Derivation) -> list[Hypothesis]:
    spec, options = derivation.spec, derivation.options
    out: list[Hypothesis] = []
    for opt in spec.options:
        value = options.get(opt.name)
        if opt.name in ("link", "reduction") or value is None or value is False:
            continue
        if opt.kind == "array":
            change: Any = None
        elif opt.name == "ignore_index" and int(value) >= 0:
            change = -100  # the ignored class then counts as an ordinary class
        elif opt.kind == "unit_interval" and float(value) != 0.0:
            change = 0.0
        else:
            continue
        try:
            other = _variant(derivation, **{opt.name: change})
        except Exception:  # an option the loss cannot do without: no such hypothesis
            continue
        out.append(
            Hypothesis(
                f"{opt.name} not applied (it matches symloss's result without {opt.name})",
                _quiet(other.loss_fn),
                _quiet(other.grad_fn),
            )
        )
    link = derivation.declaration.link
    if link is not None and not link.class_axis:
        z = derivation.declaration.input
        inner = sp.diff(link.expr, z)
        canonical = derivation.canonical
        for expr, rule in (
            (
                inner,
                f"the derivative of the {link.name}, {sp.sstr(inner)}, in place of "
                f"{sp.sstr(canonical)}",
            ),
            (
                canonical * inner,
                f"{sp.sstr(canonical)} multiplied again by the {link.name}'s "
                f"derivative {sp.sstr(inner)} (chain rule applied twice)",
            ),
        ):
            twin = _with_kernel(derivation, derivation.declaration.substitute_definitions(expr))
            out.append(Hypothesis(rule, None, _quiet(twin.grad_fn)))
    return out


def _quiet(f: Callable[[Any, Any], Any]) -> Callable[[Case], np.ndarray]:
    def call(case: Case) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(f(case.input, case.target), dtype=np.float64)

    return call


def _fits(got: np.ndarray, expected: np.ndarray, case: Case, scale: float) -> bool:
    if np.shape(got) != np.shape(expected):
        return False
    return bool(np.all(ulp_error(got, expected, np.dtype(case.dtype), scale) <= TOLERANCE_ULPS))


def _scale_rule(ratio: float) -> str:
    if ratio == -1.0:
        return "sign flipped (it is exactly −1 times the exact value)"
    sign = "; and the sign is flipped" if ratio < 0 else ""
    return f"an extra constant factor {abs(ratio):.9g} (relative error {abs(ratio) - 1:+.3g}){sign}"


def _mean_counts(derivation: Derivation, cases: Sequence[Case]) -> list[float] | None:
    """The mean's denominator n of each case: the reference's sum over its mean."""
    if derivation.options.get("reduction", "mean") != "mean":
        return None
    total = _variant(derivation, reduction="sum")
    counts = []
    for case in cases:
        with np.errstate(all="ignore"):
            g_sum = np.asarray(total.grad_fn(case.input, case.target), dtype=np.float64)
            g_mean = np.asarray(derivation.grad_fn(case.input, case.target), dtype=np.float64)
        ok = np.isfinite(g_sum) & np.isfinite(g_mean) & (g_mean != 0)
        if not np.any(ok):
            return None
        counts.append(float(np.median(g_sum[ok] / g_mean[ok])))
    return counts


def _fit_ratio(got: np.ndarray, ref: np.ndarray) -> float | None:
    ok = np.isfinite(got) & np.isfinite(ref)
    if np.count_nonzero(ref[ok]) == 0:
        return None
    g, r = got[ok].astype(np.float64), ref[ok].astype(np.float64)
    with np.errstate(all="ignore"):
        return float(np.dot(g, r) / np.dot(r, r))


def diagnose(derivation: Derivation, rows: Sequence[Row], what: str = "grad") -> list[str]:
    """The wrong rules that explain every disagreeing row, each derived, not guessed.

    Each hypothesis is an exact value symloss computes for a specific mistake -- the same loss
    without an option, the link's derivative in place of the gradient, a constant factor fitted
    to the data, a sign -- and it is named when it reproduces the implementation's numbers
    within the tolerance on every disagreeing case. A gradient that is 0 where the exact one is
    not, beyond some |input| and nowhere inside it, is named as saturation.

    Args:
        derivation: the reference.
        rows: :func:`compare`'s rows (the disagreeing ones are used).
        what: ``"grad"`` or ``"loss"``.

    Returns:
        One line per rule that explains the evidence (empty when none does).
    """
    bad = [r for r in rows if r.error is None and not (r.grad_ok if what == "grad" else r.loss_ok)]
    if not bad:
        return []
    typical = [r for r in bad if not r.case.extreme] or bad
    got_key, ref_key = f"got_{what}", f"ref_{what}"
    scale_index = 1 if what == "grad" else 0
    found: list[str] = []

    # a factor: constant (a sign, anything else) fitted to the data, or the mean's 1/n per case
    def fits_all(factors: Sequence[float]) -> bool:
        return all(
            _fits(
                r.arrays[got_key],
                f * r.arrays[ref_key],
                r.case,
                float(r.arrays["scales"][scale_index]) * abs(f),
            )
            for r, f in zip(typical, factors, strict=True)
        )

    eps = float(np.finfo(typical[0].case.dtype).eps) * TOLERANCE_ULPS
    ratios = [_fit_ratio(r.arrays[got_key], r.arrays[ref_key]) for r in typical]
    if all(q is not None for q in ratios):
        q = float(np.median([float(x) for x in ratios if x is not None]))
        candidate = -1.0 if np.isclose(q, -1.0, rtol=eps) else q
        if not np.isclose(q, 1.0, rtol=eps) and fits_all([candidate] * len(typical)):
            found.append(_scale_rule(candidate))
    counts = _mean_counts(derivation, [r.case for r in typical])
    if not found and counts and any(c != 1 for c in counts):
        shown = ", ".join(dict.fromkeys(f"{c:g}" for c in counts))
        if fits_all(counts):
            found.append(
                f"a missing 1/n: reduction='mean' is not divided by its denominator "
                f"n (n = {shown} in the disagreeing cases)"
            )
        elif fits_all([1 / c for c in counts]):
            found.append(f"divided by the mean's denominator n twice (n = {shown})")

    for hyp in _hypotheses(derivation):
        value = hyp.grad if what == "grad" else hyp.loss
        if value is None:
            continue
        if all(
            _fits(r.arrays[got_key], value(r.case), r.case, float(r.arrays["scales"][scale_index]))
            for r in typical
        ):
            found.append(hyp.rule)

    if what == "grad" and not found:
        found += _saturation(bad)
    return found


def _saturation(rows: Sequence[Row]) -> list[str]:
    """Wrong only beyond some |input|, and there (mostly) 0 where the exact gradient is not."""
    right: list[float] = []
    wrong: list[float] = []
    zeros = 0
    for r in rows:
        x = np.abs(np.asarray(r.case.input, dtype=np.float64))
        got, ref, err = r.arrays["got_grad"], r.arrays["ref_grad"], r.arrays["grad_err"]
        bad = err > TOLERANCE_ULPS
        zeros += int(np.count_nonzero(bad & (np.abs(got) <= 1e-6 * np.abs(ref))))
        wrong += list(x[bad])
        right += list(x[~bad])
    if not wrong:
        return []
    edge = min(wrong)
    if not [v for v in right if v < edge] or 2 * zeros < len(wrong):
        return []
    return [
        f"the gradient goes to 0 beyond |input| ≈ {edge:.4g}: it agrees for every |input| < "
        f"{edge:.4g}, and beyond it is 0 at {zeros} of the {len(wrong)} disagreeing elements "
        "where the exact gradient is not -- a saturated intermediate, such as σ(z) rounded to 1 "
        "before its log or its derivative is taken (compute from the logit instead)"
    ]


# --------------------------------------------------------------------------- the check
@dataclass
class CheckResult:
    """The outcome of :func:`check`: the rows, the report and the likely wrong rules."""

    derivation: Derivation
    rows: list[Row]
    causes: dict[str, list[str]]
    domain: Domain | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def report(self, implementation: str = "the implementation") -> str:
        return _report(self, implementation)

    def to_json(self) -> dict[str, Any]:
        return {
            "loss": self.derivation.name,
            "options": {k: str(v) for k, v in self.derivation.display_options.items()},
            "domain": list(self.domain) if self.domain else None,
            "tolerance_ulps": TOLERANCE_ULPS,
            "agree": self.ok,
            "likely_causes": self.causes,
            "cases": [
                {
                    "case": r.case.description,
                    "dtype": r.case.dtype,
                    "loss_ulps": r.loss_ulps,
                    "grad_ulps": r.grad_ulps,
                    "ok": r.ok,
                    "worst_index": list(r.worst_index) if r.worst_index is not None else None,
                    "worst": r.worst,
                    "error": r.error,
                }
                for r in self.rows
            ],
        }


def check(
    derivation: Derivation,
    fn: Callable[[Any, Any], Any] | None = None,
    *,
    domain: Domain | None = None,
    dtypes: Sequence[str] = DTYPES,
    seed: int = 0,
) -> CheckResult:
    """Run ``fn`` (torch's twin by default) over the battery and diagnose what disagrees."""
    domain = _check_domain(domain)
    rows = compare(derivation, fn, battery(derivation, seed, dtypes=dtypes, domain=domain))
    causes: dict[str, list[str]] = {}
    for dtype in dtypes:
        mine = [r for r in rows if r.case.dtype == dtype]
        for what in ("loss", "grad"):
            found = diagnose(derivation, mine, what)
            if found:
                causes[f"{what} {dtype}"] = found
    return CheckResult(derivation, rows, causes, domain)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.9g}"
    return str(v)


def _region(rows: Sequence[Row], what: str) -> tuple[int, int, str]:
    """How many elements disagree, of how many, and the input range where they do."""
    key = f"{what}_err"
    bad_x: list[float] = []
    total = 0
    for r in rows:
        if r.error is not None:
            continue
        err = r.arrays[key]
        total += err.size
        if what == "grad":
            bad_x += list(np.asarray(r.case.input, dtype=np.float64)[err > TOLERANCE_ULPS])
        elif np.any(err > TOLERANCE_ULPS):
            bad_x += list(np.asarray(r.case.input, dtype=np.float64).ravel())
    if not bad_x:
        return 0, total, ""
    count = (
        len(bad_x)
        if what == "grad"
        else sum(
            int(np.count_nonzero(r.arrays[key] > TOLERANCE_ULPS)) for r in rows if r.error is None
        )
    )
    return count, total, f"inputs in [{min(bad_x):.4g}, {max(bad_x):.4g}]"


def _report(result: CheckResult, implementation: str) -> str:
    d = result.derivation
    shown = ", ".join(f"{k}={v!r}" for k, v in d.display_options.items())
    lines = [f"{implementation} disagrees with symloss's exact {d.name}({shown})"]
    if result.domain:
        lines[0] += f" on the domain [{result.domain[0]:g}, {result.domain[1]:g}]"
    lines.append(f"tolerance: {TOLERANCE_ULPS:g} ulps of the terms combined, per dtype")
    for dtype in dict.fromkeys(r.case.dtype for r in result.rows):
        rows = [r for r in result.rows if r.case.dtype == dtype]
        failed = [r for r in rows if not r.ok]
        if not failed:
            lines.append(f"\n[{dtype}] all {len(rows)} cases agree")
            continue
        lines.append(f"\n[{dtype}] {len(failed)} of {len(rows)} cases disagree")
        for r in failed:
            if r.error:
                lines.append(f"  case {r.case.description!r}: {implementation} raised {r.error}")
        for what, label in (("loss", "loss value"), ("grad", "gradient")):
            bad = [
                r
                for r in rows
                if r.error is None and not (r.loss_ok if what == "loss" else r.grad_ok)
            ]
            if not bad:
                lines.append(f"  {label}: agrees")
                continue
            worst = max(bad, key=lambda r: r.loss_ulps if what == "loss" else r.grad_ulps)
            err = worst.arrays[f"{what}_err"]
            flat = int(np.argmax(err)) if err.size else 0
            index = tuple(int(i) for i in np.unravel_index(flat, err.shape)) if err.ndim else ()
            got = float(np.asarray(worst.arrays[f"got_{what}"])[index])
            expected = float(np.asarray(worst.arrays[f"ref_{what}"])[index])
            family = _family(d)
            count, total, region = _region(bad, what)
            lines.append(f"  {label}: {len(bad)} cases disagree, {count} of {total} elements")
            lines.append(f"    worst: case {worst.case.description!r}, index {index}")
            if what == "grad":
                lines.append(
                    f"      input {_fmt(float(np.asarray(worst.case.input)[index]))}, target "
                    f"{_fmt(family.target_at(worst.case, index))}"
                )
            lines.append(
                f"      got {_fmt(got)}, expected {_fmt(expected)}, "
                f"error {float(err.flat[flat]):.3g} ulps"
            )
            if region:
                lines.append(f"    where: {region}")
            causes = result.causes.get(f"{what} {dtype}", [])
            for cause in causes:
                lines.append(f"    likely cause: {cause}")
            if what == "loss" and not causes and all(r.grad_ok for r in bad):
                lines.append(
                    "    likely cause: the forward value is wrong while the gradient is right: the "
                    "forward computes another function (a dropped or changed term)"
                )
    return "\n".join(lines)


def assert_grad_matches(
    name: str | Derivation,
    fn: Callable[[Any, Any], Any],
    *,
    domain: tuple[float, float] | None = None,
    dtypes: Sequence[str] = DTYPES,
    seed: int = 0,
    **options: Any,
) -> CheckResult:
    """Assert that ``fn`` computes the loss ``name`` and its gradient, as exactly as its dtype
    allows.

    symloss builds a battery fitted to the loss and ``options`` (shapes from ``weight`` and
    ``pos_weight``, hard and soft labels, class indices and ignored ones, typical and extreme
    inputs over the whole finite range or over ``domain``), in float64 and float32, and compares
    ``fn``'s loss value and autograd gradient with the exact reference. The tolerance is
    ``TOLERANCE_ULPS`` ulps of the size of the terms a correct implementation combines, so
    torch's own losses pass in both dtypes.

    Args:
        name: a loss name or alias (as :func:`symloss.derive`), or a :class:`Derivation`
            (for instance one from :func:`symloss.custom.custom_loss`).
        fn: the implementation, ``fn(input, target) -> loss`` on torch tensors.
        domain: ``(lo, hi)``: only inputs in that interval; default the whole finite range.
        dtypes: the dtypes to check.
        seed: the battery's seed.
        **options: the loss's options, as ``derive`` takes them (arrays or tensors).

    Returns:
        The :class:`CheckResult` (when everything agrees).

    Raises:
        AssertionError: with a report: loss value or gradient, dtype, the worst element, how
            many disagree, where, and the likely wrong rule.

    Example::

        import torch.nn.functional as F
        from symloss.testing import assert_grad_matches
        assert_grad_matches("bce_with_logits", F.binary_cross_entropy_with_logits)
    """
    __tracebackhide__ = True
    derivation = _as_derivation(name, options)
    result = check(derivation, fn, domain=domain, dtypes=dtypes, seed=seed)
    if not result.ok:
        label = getattr(fn, "__qualname__", None) or type(fn).__name__
        raise AssertionError(result.report(label))
    return result


def _as_derivation(name: str | Derivation, options: Mapping[str, Any]) -> Derivation:
    if isinstance(name, Derivation):
        if options:
            return _variant(name, **options)
        return name
    from . import derive

    return derive(name, **options)
