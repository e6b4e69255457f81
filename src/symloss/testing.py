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

import dataclasses
import functools
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from . import rows_battery
from .cases import Case
from .declaration import CLASS_INDICES, CLASS_PROBABILITIES, Kink
from .declaration import Domain as DeclaredDomain
from .derive import Derivation
from .errors import SymlossTypeError, SymlossValueError
from .spec import IGNORE_INDEX, LossSpec

__all__ = [
    "Case",
    "CheckResult",
    "Family",
    "Row",
    "assert_grad_matches",
    "battery",
    "check",
    "compare",
    "coverage",
    "diagnose",
    "draw",
    "register_family",
    "term_scale",
    "torch_function",
    "ulp_error",
    "ulps_from_exact",
]

DTYPES = ("float32", "float64")
#: A correct float32/float64 implementation stays within this many ulps of the reference,
#: measured against the scale of the values it combines (see :func:`ulp_error`).
TOLERANCE_ULPS = 64.0

Domain = tuple[float, float]


@dataclass
class Row:
    """The comparison of one case: worst loss and gradient error in ulps, and where.

    ``arrays`` keeps what was compared (``got_loss``, ``ref_loss``, ``got_grad``, ``ref_grad``,
    ``loss_err``, ``grad_err``, and ``got_grad:<name>`` … for every further differentiable
    array) for the report and the diagnosis. ``grad_ulps_by`` is the worst gradient error per
    differentiable array (torch's names). ``error`` says how the implementation failed when it
    did: ``"raised TypeError: …"`` or ``"returned shape (3,), expected ()"``. ``sides`` counts,
    at kink elements, which one-sided derivative the implementation returned.
    """

    case: Case
    loss_ulps: float
    grad_ulps: float
    worst_index: tuple[int, ...] | None = None
    worst: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    grad_ulps_by: dict[str, float] = field(default_factory=dict)
    sides: dict[str, int] = field(default_factory=dict)

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


def ulps_from_exact(got: Any, exact: Any, dtype: Any) -> np.ndarray:
    """Elementwise ``|got − exact|`` in ulps of ``exact`` in ``dtype``: the distance of each
    result from its *own* exact value (e.g. mpmath values at the given floats), the measure of
    issue 8's accuracy goal (a correctly rounded result is within 0.5), where
    :func:`ulp_error` measures against the scale of the terms an implementation combines.

    * 0 where the exact value is below the smallest normal number and ``got`` flushed to 0
      (allowed), and where ``got`` is an infinity of the sign of an exact value beyond the
      dtype's largest (the correct rounding of an overflow); infinite where ``got`` is NaN or
      infinite otherwise (0 where both are NaN).
    * The comparison with the smallest normal number and the difference are made exactly
      (mpmath): ``float(exact)`` rounds twice below it (to 53 bits, then to the subnormal
      grid), and a difference rounded to a float first comes out in whole subnormal units
      (4.499 ulp as 4); the unit is the spacing of ``|exact|`` in ``dtype`` (the largest
      finite float's beyond it).
    """
    import mpmath

    dt = np.dtype(dtype)
    got = np.asarray(got)
    exact = np.asarray(exact, dtype=object)
    if exact.shape != got.shape:
        raise SymlossValueError(f"ulps_from_exact: got has shape {got.shape} but exact has "
                                f"{exact.shape}; give one exact value per result")
    tiny, big = mpmath.mpf(float(np.finfo(dt).tiny)), float(np.finfo(dt).max)
    out = np.empty(got.shape)
    # 256 bits whatever mpmath's global precision: at its default 53, mpf(exact) would round
    # the exact value to a float's precision and a correctly rounded result would score 0
    with mpmath.workprec(max(mpmath.mp.prec, 256)):
        for idx in np.ndindex(got.shape):
            e, g = mpmath.mpf(exact[idx]), float(got[idx])
            if mpmath.isnan(e) or not np.isfinite(g):
                overflow = abs(e) > big and mpmath.sign(e) == np.sign(g)
                out[idx] = (0.0 if (np.isnan(g) and mpmath.isnan(e))
                            or (np.isinf(g) and overflow) else np.inf)
                continue
            if abs(e) < tiny and g == 0.0:
                out[idx] = 0.0
                continue
            unit = float(np.spacing(dt.type(min(abs(float(e)), big))))
            out[idx] = float(abs(mpmath.mpf(g) - e) / unit)
    return out


def term_scale(
    derivation: Derivation, case: Case, wrt: Sequence[str] = ("input",)
) -> tuple[float, ...]:
    """The size of the terms an implementation combines: for the loss, then the gradient with
    respect to each array in ``wrt`` (torch's names).

    Taken as the reference's loss and gradient at the *same target* and a neutral input (0 for a
    logit, 1/2 for a probability): there predictions and targets are O(1), so this is the size
    of ``prediction`` and ``target`` after weights and reduction. Subtracting two such terms,
    a correct implementation errs by a few ulps of it even where the exact result is tiny.

    A reduced loss is also a sum of the per-element losses at the *actual* input, so its scale
    is at least their absolute values reduced the same way: the sum of ±10³⁰ terms is exactly 0
    but rounds, in any correct implementation, to some multiple of eps·10³⁰.
    """
    arrays = case.arrays(derivation.spec)
    neutral = [np.full_like(case.input, _neutral(derivation)), *arrays[1:]]
    if derivation.spec.arguments[0] != "input":  # pragma: no cover - the input is always first
        raise AssertionError(derivation.spec.arguments)
    reduction = derivation.options.get("reduction", "mean")
    with np.errstate(all="ignore"):
        loss = np.abs(np.asarray(derivation.loss_fn(*neutral), dtype=np.float64))
        grads = [
            np.abs(np.asarray(derivation.grad_fn(*neutral, wrt=w), dtype=np.float64)) for w in wrt
        ]
        if reduction != "none":
            per_element = derivation.with_options(reduction="none")
            terms = np.abs(np.asarray(per_element.loss_fn(*arrays), dtype=np.float64))
            terms = terms[np.isfinite(terms)]
            if terms.size:
                combined = np.sum(terms) if reduction == "sum" else np.mean(terms)
                loss = np.append(loss, combined)
    out = []
    for values in (loss, *grads):
        values = values[np.isfinite(values)]
        out.append(float(np.max(values)) if values.size else 0.0)
    return tuple(out)


def _neutral(derivation: Derivation) -> float:
    return 0.5 if derivation.spec.input_domain(derivation.options) == "probability" else 0.0


def natural_domain(derivation: Derivation, dtype: str) -> Domain:
    """The inputs a loss accepts in ``dtype``, from its declaration: ``[0, 1]`` for a
    probability, ``[0, max]`` for a rate, else every finite number."""
    declared = derivation.spec.arguments_for(derivation.options)[0].domains[0]
    big = float(np.finfo(dtype).max)
    return (max(declared.lo, -big), min(declared.hi, big))


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


def _check_dtypes(dtypes: Sequence[str]) -> list[str]:
    """A non-empty list of dtype names: a check of no dtype cannot fail, so it is an error."""
    if isinstance(dtypes, str):
        raise SymlossTypeError(f"dtypes must be a list such as [{dtypes!r}], not a string")
    try:
        listed = list(dtypes)
    except TypeError:
        raise SymlossTypeError(f"dtypes must be a list of {', '.join(DTYPES)}, "
                               f"got {dtypes!r}") from None
    if not listed:
        raise SymlossValueError(f"dtypes is empty: a check of nothing cannot fail; give some "
                                f"of {', '.join(DTYPES)}")
    return listed


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
    if not np.dtype(dtype).type(a) < np.dtype(dtype).type(b):  # (0, 1e-300) in float32
        raise SymlossValueError(
            f"domain ({domain[0]:g}, {domain[1]:g}) holds no two distinct {dtype} values; "
            "widen it or choose --dtype float64"
        )
    return (a, b)


# --------------------------------------------------------------------------- torch's twin
def torch_function(derivation: Derivation) -> Callable[..., Any]:
    """torch's twin of ``derivation`` as ``fn(*arrays)`` on tensors, in torch's positional order
    (``fn(input, target, var)``; ``fn(input1, input2, target)``)."""
    import torch
    import torch.nn.functional as F

    spec = derivation.spec
    options = derivation.options
    if not spec.has_torch_twin:
        raise SymlossValueError(
            f"{spec.name} has no torch twin (torch does not have this loss): pass the "
            "implementation to check (fn=..., or --impl MODULE:FUNCTION on the command line)"
        )
    twin = spec.twin(options)
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

    def call(input: Any, *arrays: Any) -> Any:
        args = {
            k: torch.as_tensor(np.asarray(v), dtype=input.dtype) if hasattr(v, "shape") else v
            for k, v in kwargs.items()
        }
        x = getattr(torch, link)(input) if link else input
        with warnings.catch_warnings():
            # kl_div(reduction='mean') warns about its own semantics on every call; symloss
            # follows those semantics, so the warning says nothing here.
            warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss")
            return fn(x, *arrays, **args)

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
    #: the one-sided derivatives at a case's kink elements, where the family computes them
    #: itself (the row family: the hinge's step forced to 0 and 1); ``None``: move the input
    sides: Callable[..., tuple[list[np.ndarray], list[np.ndarray]]] | None = None


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


def draw(domain: DeclaredDomain, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values drawn from an element-wise domain (float64), its ``points`` among them (where
    there is room): labels ±1 both, counts 0, 1 and above, probabilities 0 and 1.

    >>> import numpy as np
    >>> from symloss.declaration import COUNTS
    >>> y = draw(COUNTS, np.random.default_rng(0), (20,))
    >>> bool(np.all(y == np.round(y))), {0.0, 1.0, 40.0} <= set(y)
    (True, True)
    """
    size = int(np.prod(shape))
    if domain.values is not None:
        out = rng.choice(np.asarray(domain.values, dtype=np.float64), size=size)
    elif domain.integer:
        out = rng.poisson(3.0, size=size).astype(np.float64) + max(domain.lo, 0.0)
    elif np.isfinite(domain.lo) and np.isfinite(domain.hi):
        out = rng.uniform(domain.lo, domain.hi, size=size)
    elif np.isfinite(domain.lo):
        out = domain.lo + rng.exponential(2.0, size=size)
    elif np.isfinite(domain.hi):
        out = domain.hi - rng.exponential(2.0, size=size)
    else:
        out = 3.0 * rng.standard_normal(size=size)
    points = [p for p in domain.points if domain.contains(p)]
    if size > len(points):  # every point, at random places
        where = rng.choice(size, size=len(points), replace=False)
        out[where] = points
    return out.reshape(shape)


def _target_draws(
    domain: DeclaredDomain, rng: np.random.Generator, shape: tuple[int, ...]
) -> list[tuple[str, np.ndarray]]:
    """(label, target) pairs that cover an element-wise target domain.

    A domain with a continuous range and discrete points (probabilities: hard 0/1 labels and
    soft ones) gives two draws, one of the points only and one over the whole range.
    """
    if domain.values is None and not domain.integer and len(domain.points) >= 2 and np.isfinite(
        domain.hi - domain.lo
    ):
        hard = rng.choice(np.asarray(domain.points, dtype=np.float64), size=shape)
        return [(f"{domain.name}: {_points(domain)} only", hard),
                (f"{domain.name}: drawn from [{domain.lo:g}, {domain.hi:g}]",
                 draw(domain, rng, shape))]
    return [(f"target {domain.name}", draw(domain, rng, shape))]


def _points(domain: DeclaredDomain) -> str:
    return "/".join(f"{p:g}" for p in domain.points)


def _extra_arrays(
    derivation: Derivation, rng: np.random.Generator, shape: tuple[int, ...], dtype: str
) -> tuple[tuple[str, np.ndarray], ...]:
    """The positional arrays besides input and target (``var``, ``input2``), typical values."""
    out = []
    for arg in derivation.spec.arguments_for(derivation.options):
        if arg.symbol_key in ("input", "target"):
            continue
        out.append((arg.name, draw(arg.domains[0], rng, shape).astype(dtype)))
    return tuple(out)


def _elementwise_cases(
    derivation: Derivation, rng: np.random.Generator, dtype: str, domain: Domain
) -> Iterator[Case]:
    prob = derivation.spec.input_domain(derivation.options) == "probability"
    trailing = _option_shape(derivation)
    targets = derivation.spec.target_domains(derivation.options)
    shapes = list(dict.fromkeys(_fit(s, trailing) for s in [(7,), (3, 4), (2, 3, 4)]))
    for shape in shapes:
        x = _typical(rng, shape, domain, prob).astype(dtype)
        others = _extra_arrays(derivation, rng, shape, dtype)
        for target_domain in targets:
            for label, y in _target_draws(target_domain, rng, shape):
                yield Case(f"{shape} {label}", x, y.astype(dtype), dtype, others=others)
    # every extreme input against each of the target's points (y = ±1; counts 0, 1, 7, 40)
    values = _extremes(domain, prob, dtype)
    shape = _fit((values.size,), trailing)
    x = np.resize(values, int(np.prod(shape))).reshape(shape).astype(dtype)
    if trailing:  # every value in every column: the values run down the batch axis
        x = np.broadcast_to(values.reshape((-1,) + (1,) * len(trailing)), (values.size, *trailing))
        x = np.ascontiguousarray(x).astype(dtype)
    others = _extra_arrays(derivation, rng, x.shape, dtype)
    for target_domain in targets:
        for point in target_domain.points:
            y = np.full(x.shape, point, dtype=dtype)
            yield Case(f"{x.shape} extreme inputs, y={point:g}", x, y, dtype, extreme=True,
                       others=others)
    # each further differentiable array at its extremes (var, input2), typical input
    typical_x = _typical(rng, x.shape, domain, prob).astype(dtype)
    target = draw(targets[0], rng, x.shape).astype(dtype)
    for arg in derivation.spec.arguments_for(derivation.options):
        if arg.symbol_key in ("input", "target") or not arg.differentiable:
            continue
        own = arg.domains[0]
        big = float(np.finfo(dtype).max) / 2**16
        ext = _extremes((max(own.lo, -big), min(own.hi, big)), False, dtype)
        ext = np.resize(ext, x.size).reshape(x.shape).astype(dtype)
        changed = tuple((n, ext if n == arg.name else v) for n, v in others)
        yield Case(f"{x.shape} extreme {arg.name}", typical_x, target, dtype, extreme=True,
                   others=changed)
    yield from _kink_cases(derivation, rng, dtype)


def _kink_cases(derivation: Derivation, rng: np.random.Generator, dtype: str) -> Iterator[Case]:
    """Every element exactly on a declared kink, the free symbols at several values."""
    d = derivation.declaration
    by_symbol = {sym: key for key, sym in d.symbols.items()}
    spec = derivation.spec
    keys = {a.symbol_key: a for a in spec.arguments_for(derivation.options)}
    scalars = {
        sym: sp.Float(float(derivation.options[key]))
        for key, sym in d.symbols.items()
        if key in derivation.options and key not in keys
        and isinstance(derivation.options[key], int | float) and not isinstance(
            derivation.options[key], bool)
    }
    for number, kink in enumerate(d.kinks):
        at = [(sym, sp.sympify(expr).subs(scalars)) for sym, expr in kink.at]
        fixed = {sym for sym, _ in at}
        free = sorted(
            {f for _, e in at for f in e.free_symbols} - fixed, key=lambda f: str(f)
        )
        if any(by_symbol.get(f) not in keys for f in free) or any(
            by_symbol.get(sym) not in keys for sym in fixed
        ):
            continue  # a kink in symbols the battery does not lay out (class-axis indices)
        size = 6
        values: dict[str, np.ndarray] = {}
        for f in free:
            arg = keys[by_symbol[f]]
            grid = np.array([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0])
            values[by_symbol[f]] = np.array([v for v in grid if arg.domains[0].contains(v)][:size]
                                            or [0.0])
        n = max((v.size for v in values.values()), default=1)
        columns = {k: np.resize(v, n) for k, v in values.items()}
        for sym, expr in at:
            fn = sp.lambdify(free, expr, "numpy")
            out = np.asarray(fn(*(columns[by_symbol[f]] for f in free)), dtype=np.float64)
            columns[by_symbol[sym]] = np.broadcast_to(out, (n,)).copy()
        exact = all(np.all(c.astype(dtype).astype(np.float64) == c) for c in columns.values())
        if not exact or "input" not in columns:
            continue
        arrays = {}
        for key, arg in keys.items():
            if key in columns:
                arrays[key] = columns[key].astype(dtype)
            else:
                arrays[key] = draw(arg.domains[0], rng, (n,)).astype(dtype)
        where = ", ".join(f"{s} = {sp.sstr(e)}" for s, e in kink.at)
        others = tuple((keys[k].name, v) for k, v in arrays.items() if k not in ("input", "target"))
        yield Case(f"({n},) on kink {number + 1}: {where}", arrays["input"], arrays["target"],
                   dtype, others=others, on_kink=np.ones(n, dtype=bool), kink=number + 1)


def _elementwise_ray(
    derivation: Derivation, t: np.ndarray, dtype: str
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    trailing = _option_shape(derivation)
    x = np.broadcast_to(t.reshape((-1,) + (1,) * len(trailing)), t.shape + trailing)
    x = np.ascontiguousarray(x).astype(dtype)
    target = derivation.spec.target_domains(derivation.options)[0]
    labels = (0.0, 1.0) if target.contains(0.0) and target.contains(1.0) else target.points[:2]
    return [(f"y={label:g}", x, np.full(x.shape, label, dtype=dtype)) for label in labels]


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
    ignore = derivation.options.get("ignore_index", IGNORE_INDEX)
    layouts = [((c,), ()), ((4, c), (4,)), ((2, c, 3, 2), (2, 3, 2))]
    if not spec.spatial:  # (C) and (N, C) only, as torch's multi_margin_loss
        layouts = layouts[:2]
    targets = spec.target_domains(derivation.options)
    for shape, tshape in layouts:
        x = _typical(rng, shape, domain, prob=False).astype(dtype)
        if spec.multi_hot_targets:  # one label per class, the input's shape: 0/1 and soft
            yield Case(f"{shape} multi-hot labels", x, _multi_hot(rng, shape, dtype), dtype)
            soft = rng.uniform(0.0, 1.0, size=shape).astype(dtype)
            yield Case(f"{shape} soft labels per class", x, soft, dtype)
            continue
        if any(t.layout == "class_index_set" for t in targets):
            yield Case(f"{shape} sets of class indices", x, _index_sets(rng, shape), dtype)
            continue
        t = rng.integers(0, c, size=tshape)
        if t.ndim and has_ignore:
            t.flat[0] = ignore  # exercise ignore_index
            if ignore >= 0 and t.size > 1:
                t.flat[1] = (ignore + 1) % c  # and a class next to it that counts
        elif has_ignore and t == ignore:  # torch cannot ignore a no-batch target with smoothing
            t = (t + 1) % c
        yield Case(f"{shape} class indices", x, np.asarray(t, dtype=np.int64), dtype)
        if ignore < 0 and CLASS_PROBABILITIES in targets:  # nll_loss: indices only
            probs = rng.dirichlet(np.ones(c), size=tshape or None)
            probs = np.moveaxis(np.asarray(probs), -1, 1 if len(shape) > 1 else 0)
            yield Case(f"{shape} class probabilities", x, probs.astype(dtype), dtype)
    shape, tshape = layouts[1]
    lo, hi = domain
    x = np.clip(1e4 * rng.standard_normal(size=shape), lo, hi).astype(dtype)
    if spec.multi_hot_targets:
        yield Case(f"{shape} extreme logits, multi-hot labels", x, _multi_hot(rng, shape, dtype),
                   dtype, True)
    elif CLASS_INDICES not in targets:
        yield Case(f"{shape} extreme logits, sets of class indices", x, _index_sets(rng, shape),
                   dtype, True)
        return
    else:
        yield Case(f"{shape} extreme logits, target = arg-max", x, np.argmax(x, 1), dtype, True)
        yield Case(f"{shape} extreme logits, target = arg-min", x, np.argmin(x, 1), dtype, True)
    for big in _in_domain(np.array([40.0, 1e30, -1e30]), domain):
        x = np.zeros(shape, dtype=dtype)
        x[:, 0] = big
        t = np.arange(4) % c
        target = _one_hot(t, c, dtype) if spec.multi_hot_targets else t.astype(np.int64)
        yield Case(f"{shape} one logit at {big:g}", x, target, dtype, True)


def _index_sets(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Per row, a set of distinct class indices then −1 padding (an empty set included)."""
    c = shape[-1]
    rows = np.full((int(np.prod(shape[:-1])), c), -1, dtype=np.int64)
    for r in range(rows.shape[0]):
        k = 0 if r == 0 and rows.shape[0] > 1 else int(rng.integers(1, c))
        rows[r, :k] = rng.permutation(c)[:k]
    return rows.reshape(shape)


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


# the row family (cosine, triplet, multilabel margin): its battery is its own module
register_family("rows", Family(rows_battery.battery_cases, rows_battery.battery_ray,
                               rows_battery.battery_target_at, sides=rows_battery.battery_sides))


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
    dtypes = _check_dtypes(dtypes)
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise SymlossValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        cases += family.cases(derivation, rng, dtype, _effective_domain(derivation, dtype, domain))
    return cases


def coverage(derivation: Derivation, seed: int = 0) -> dict[str, str]:
    """What the battery for ``derivation`` covers, read off the cases it builds.

    Returns:
        ``{"arrays": …, "targets": …, "kinks": …, "extremes": …, "cases": …}``: the arrays whose
        gradients are compared, the target values tried (per declared domain), the declared
        kinks and how many elements sit on each, the range of the extreme values.

    >>> import symloss
    >>> coverage(symloss.derive("hinge_embedding_loss"))["targets"]
    '±1: -1, 1'
    """
    spec = derivation.spec
    cases = battery(derivation, seed, dtypes=["float64"])
    out: dict[str, str] = {}
    args = spec.arguments_for(derivation.options)
    out["arrays"] = ", ".join(
        f"{a.name}{' (gradient)' if a.differentiable else ''}" for a in args
    )
    targets = [np.asarray(c.target, dtype=np.float64) for c in cases]
    parts = []
    for domain in spec.target_domains(derivation.options):
        if domain.layout == "class_index":
            seen = np.unique(np.concatenate([t.ravel() for t in targets if t.dtype.kind in "iuf"
                                             and np.all(t == np.round(t))] or [np.zeros(0)]))
            ignored = [v for v in seen if v < 0]
            parts.append(f"{domain.name}: {', '.join(f'{v:g}' for v in seen if v >= 0)}"
                         + (f" and ignored {', '.join(f'{v:g}' for v in ignored)}" if ignored
                            else ""))
            continue
        if domain.layout == "class_distribution":
            n = sum(1 for c in cases if "class probabilities" in c.description)
            parts.append(f"{domain.name}: {n} cases")
            continue
        if domain.layout == "class_index_set":
            parts.append(f"{domain.name}: {sum('sets' in c.description for c in cases)} cases")
            continue
        values = np.unique(np.concatenate([t.ravel() for t in targets]))
        inside = [v for v in values if domain.contains(float(v))]
        discrete = domain.values is not None or domain.integer
        if discrete or len(inside) <= 8:
            parts.append(f"{domain.name}: {', '.join(f'{v:g}' for v in inside)}")
        else:
            points = [p for p in domain.points if p in inside]
            parts.append(
                f"{domain.name}: {len(inside)} values in [{min(inside):g}, {max(inside):g}]"
                + (f", including {', '.join(f'{p:g}' for p in points)}" if points else "")
            )
    out["targets"] = "; ".join(parts)
    kinks = []
    for number, kink in enumerate(derivation.declaration.kinks, start=1):
        where = ", ".join(f"{s} = {sp.sstr(e)}" for s, e in kink.at)
        on = sum(int(np.count_nonzero(np.asarray(c.on_kink))) for c in cases
                 if c.kink == number)
        sides = f"left {sp.sstr(kink.left)}, right {sp.sstr(kink.right)}"
        kinks.append(f"{where} ({sides}; {on} elements)" if on else f"{where} (not laid out)")
    out["kinks"] = "; ".join(kinks) or "none declared"
    extreme = [c for c in cases if c.extreme]
    ranges = []
    for arg in args:
        if arg.name == "target":
            continue
        vals = [np.asarray(c.arrays(spec)[list(args).index(arg)], dtype=np.float64)
                for c in extreme]
        if vals:
            v = np.concatenate([x.ravel() for x in vals])
            ranges.append(f"{arg.name} in [{v.min():.3g}, {v.max():.3g}]")
    out["extremes"] = "; ".join(ranges)
    out["cases"] = f"{len(cases)} per dtype"
    return out


# --------------------------------------------------------------------------- comparison
def _autograd(fn: Callable[..., Any], case: Case) -> tuple[np.ndarray, np.ndarray]:
    """``fn``'s loss and its gradient with respect to the input, for a two-array case."""
    loss, grads = _autograd_all(fn, [case.input, case.target], [True, False])
    return loss, grads[0]


def _autograd_all(
    fn: Callable[..., Any], arrays: Sequence[np.ndarray], differentiable: Sequence[bool]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``fn(*arrays)`` on tensors: its value and the gradient of its sum with respect to every
    differentiable array (0 where autograd does not reach it)."""
    import torch

    tensors = [
        torch.tensor(a, requires_grad=True) if d else torch.from_numpy(np.array(a))
        for a, d in zip(arrays, differentiable, strict=True)
    ]
    out = fn(*tensors)
    if not isinstance(out, torch.Tensor):
        raise _Failure(f"returned {type(out).__name__}, not a tensor")
    leaves = [t for t, d in zip(tensors, differentiable, strict=True) if d]
    total = out.sum() if out.ndim else out
    if total.requires_grad:
        total.backward()
    grads = [t.grad if t.grad is not None else torch.zeros_like(t) for t in leaves]
    return out.detach().numpy(), [g.numpy() for g in grads]


class _Failure(Exception):
    """The implementation returned something that is not a loss (reported, not compared)."""


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
    sensitivity = d.link.from_var(sp.diff(d.loss_in_link, d.link.var) * d.link.var)
    twin = _with_kernel(derivation, d.substitute_definitions(sensitivity))
    with np.errstate(all="ignore"):
        per = np.abs(np.asarray(twin.grad_fn(case.input, case.target), dtype=np.float64))
    per = per[np.isfinite(per)]
    if not per.size:
        return 0.0
    return float(np.max(per) if derivation.options.get("reduction") == "none" else np.sum(per))


def _differentiable(derivation: Derivation) -> list[tuple[str, str]]:
    """(torch's name, kernel key) of every array the checker compares a gradient for."""
    return [
        (a.name, a.symbol_key)
        for a in derivation.spec.arguments_for(derivation.options)
        if a.differentiable
    ]


def _grad_key(name: str, first: str) -> str:
    """The key of a gradient in ``Row.arrays``: ``grad`` for the input, ``grad:var`` else."""
    return "grad" if name == first else f"grad:{name}"


def _kink_sides(
    derivation: Derivation, case: Case, wrt: Sequence[tuple[str, str]]
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The reference gradients just below and just above the kink, for each array in ``wrt``.

    At elements on a kink (``case.on_kink``) the input is moved by a few units in its last
    place to either side, where the loss is differentiable; the gradients there are the
    one-sided derivatives of a piecewise-linear hinge, and their span is the
    subdifferential. ``None`` when the case has no kink or both sides agree.
    """
    on_kink = _kink_mask(derivation, case)
    if on_kink is None:
        return None
    if _family(derivation).sides is not None:
        return _family(derivation).sides(derivation, case, wrt)  # type: ignore[misc]
    arrays = [np.asarray(a, dtype=np.float64) for a in case.arrays(derivation.spec)]
    x = arrays[0]
    step = np.maximum(np.abs(x), 1.0) * 2.0**-20
    sides = []
    for sign in (-1.0, 1.0):
        moved = [np.where(on_kink, x + sign * step, x), *arrays[1:]]
        with np.errstate(all="ignore"):
            sides.append([
                np.asarray(derivation.grad_fn(*moved, wrt=key), dtype=np.float64)
                for _, key in wrt
            ])
    return sides[0], sides[1]


def _has_two_sided_kink(kinks: Sequence[Kink]) -> bool:
    return any(k.left is not None and k.right is not None and k.left != k.right for k in kinks)


def _kink_mask(derivation: Derivation, case: Case) -> np.ndarray | None:
    """The elements of ``case`` exactly on a kink whose one-sided derivatives differ: the
    battery's kink cases say so; in any other case (an extreme input that happens to equal the
    margin) each element is tested against every declared kink's equations."""
    d = derivation.declaration
    if not _has_two_sided_kink(d.kinks):
        return None
    if case.on_kink is not None:
        return case.on_kink
    if derivation.spec.family != "elementwise":
        return None
    tests = derivation.__dict__.get("_kink_tests")
    if tests is None:
        by_symbol = {sym: key for key, sym in d.symbols.items()}
        keys = [a.symbol_key for a in derivation.spec.arguments_for(derivation.options)]
        scalars = {
            sym: float(derivation.options[key]) for key, sym in d.symbols.items()
            if key in derivation.options and key not in keys
            and isinstance(derivation.options[key], int | float)
        }
        tests = []
        for kink in d.kinks:
            if kink.left is None or kink.right is None or kink.left == kink.right:
                continue
            equations = []
            for sym, expr in kink.at:
                expr = sp.sympify(expr).subs(scalars)
                free = sorted(expr.free_symbols, key=str)
                if by_symbol.get(sym) not in keys or any(by_symbol.get(f) not in keys for f in free):
                    break
                equations.append((keys.index(by_symbol[sym]),
                                  [keys.index(by_symbol[f]) for f in free],
                                  sp.lambdify(free, expr, "numpy")))
            else:
                tests.append(equations)
        derivation.__dict__["_kink_tests"] = tests
    arrays = [np.asarray(a, dtype=np.float64) for a in case.arrays(derivation.spec)]
    mask = np.zeros(np.shape(arrays[0]), dtype=bool)
    for equations in tests:
        on = np.ones_like(mask)
        for lhs, free, fn in equations:
            with np.errstate(all="ignore"):
                on &= arrays[lhs] == np.asarray(fn(*(arrays[i] for i in free)), dtype=np.float64)
        mask |= on
    return mask if np.any(mask) else None


def compare(
    derivation: Derivation,
    fn: Callable[..., Any] | None = None,
    cases: Sequence[Case] | None = None,
) -> list[Row]:
    """Compare ``fn`` (torch's twin by default) with the exact reference on every case.

    ``fn`` takes torch's positional arrays (``fn(input, target)``, ``fn(input, target, var)``,
    ``fn(input1, input2, target)``); its loss value and the autograd gradient with respect to
    every differentiable array are compared. At an element on a kink any value between the
    one-sided derivatives is correct. A call that raises, or returns something of the wrong
    shape, gives a row whose ``error`` says so.
    """
    fn = fn or torch_function(derivation)
    spec = derivation.spec
    wrt = _differentiable(derivation)
    first = wrt[0][0]
    flags = [a.differentiable for a in spec.arguments_for(derivation.options)]
    rows = []
    for case in cases if cases is not None else battery(derivation):
        dtype = np.dtype(case.dtype)
        arrays = case.arrays(spec)
        with np.errstate(all="ignore"):
            ref_loss = np.asarray(derivation.loss_fn(*arrays))
            refs = [np.asarray(derivation.grad_fn(*arrays, wrt=key)) for _, key in wrt]
        try:
            got_loss, got_grads = _autograd_all(fn, arrays, flags)
        except _Failure as exc:
            rows.append(Row(case, np.inf, np.inf, error=str(exc)))
            continue
        except Exception as exc:  # the implementation under test failed: report it
            rows.append(Row(case, np.inf, np.inf, error=f"raised {type(exc).__name__}: {exc}"))
            continue
        if np.shape(got_loss) != np.shape(ref_loss):
            rows.append(Row(
                case, np.inf, np.inf,
                error=f"returned a loss of shape {tuple(np.shape(got_loss))}, expected "
                f"{tuple(np.shape(ref_loss))} (reduction={derivation.options.get('reduction')!r})",
            ))
            continue
        bad_shape = [
            f"the gradient w.r.t. {name} has shape {tuple(np.shape(g))}, expected "
            f"{tuple(np.shape(r))}"
            for (name, _), g, r in zip(wrt, got_grads, refs, strict=True)
            if np.shape(g) != np.shape(r)
        ]
        if bad_shape:
            rows.append(Row(case, np.inf, np.inf, error="; ".join(bad_shape)))
            continue
        scales = term_scale(derivation, case, [key for _, key in wrt])
        loss_scale = max(scales[0], _link_rounding(derivation, case))
        loss_err = ulp_error(got_loss, ref_loss, dtype, loss_scale)
        sides = _kink_sides(derivation, case, wrt)
        row_arrays: dict[str, np.ndarray] = {
            "got_loss": np.asarray(got_loss), "ref_loss": ref_loss, "loss_err": loss_err,
        }
        by: dict[str, float] = {}
        counts: dict[str, int] = {}
        for i, ((name, _), got, ref) in enumerate(zip(wrt, got_grads, refs, strict=True)):
            got = np.asarray(got)
            expected = ref
            if sides is not None:
                lo, hi = np.minimum(sides[0][i], sides[1][i]), np.maximum(sides[0][i], sides[1][i])
                inside = np.clip(np.asarray(got, dtype=np.float64), lo, hi)
                expected = np.where(np.asarray(_kink_mask(derivation, case)), inside, ref)
            err = ulp_error(got, expected, dtype, scales[i + 1])
            if sides is not None and i == 0:
                mask = np.asarray(_kink_mask(derivation, case))
                for which in _which_side(got, sides[0][0], sides[1][0], mask, dtype, scales[1]):
                    counts[which] = counts.get(which, 0) + 1
            key = _grad_key(name, first)
            row_arrays[f"got_{key}"] = got
            row_arrays[f"ref_{key}"] = ref
            row_arrays[f"{key}_err"] = err
            by[name] = float(np.max(err)) if err.size else 0.0
        row_arrays["scales"] = np.array(scales[:1] + scales[1:2])
        row_arrays["scales_all"] = np.array([loss_scale, *scales[1:]])
        grad_err = row_arrays["grad_err"]
        worst = int(np.argmax(grad_err)) if grad_err.size else 0
        index = np.unravel_index(worst, grad_err.shape) if grad_err.ndim else ()
        rows.append(
            Row(
                case,
                float(np.max(loss_err)) if loss_err.size else 0.0,
                max(by.values()),
                worst_index=tuple(int(i) for i in index),
                worst={
                    "input": float(np.asarray(case.input)[index]),
                    "got": float(np.asarray(row_arrays["got_grad"])[index]),
                    "expected": float(np.asarray(refs[0])[index]),
                },
                arrays=row_arrays,
                grad_ulps_by=by,
                sides=counts,
            )
        )
    return rows


def _which_side(
    got: np.ndarray, left: np.ndarray, right: np.ndarray, on_kink: np.ndarray, dtype: np.dtype,
    scale: float,
) -> list[str]:
    """At each kink element: which one-sided derivative ``got`` is (``left``/``right``/…)."""
    out = []
    g = np.asarray(got, dtype=np.float64)[on_kink]
    a, b = left[on_kink], right[on_kink]
    on_a = ulp_error(g, a, dtype, scale) <= TOLERANCE_ULPS
    on_b = ulp_error(g, b, dtype, scale) <= TOLERANCE_ULPS
    for ga, gb, va, vb, gv in zip(on_a, on_b, a, b, g, strict=True):
        if va == vb:
            continue
        if ga:
            out.append("left")
        elif gb:
            out.append("right")
        elif min(va, vb) <= gv <= max(va, vb):
            out.append("between")
        else:
            out.append("outside")
    return out


# --------------------------------------------------------------------------- diagnosis
@dataclass(frozen=True)
class Hypothesis:
    """A wrong rule, as the reference it would produce: ``value(case)`` is the loss (or the
    gradient) an implementation with that mistake returns, from symloss's own derivation."""

    rule: str
    loss: Callable[[Case], np.ndarray] | None
    grad: Callable[[Case, str], Any] | None


def _variant(derivation: Derivation, **changes: Any) -> Derivation:
    """``derivation`` with some options changed (:meth:`Derivation.with_options`: declared
    afresh where needed, built once)."""
    return derivation.with_options(**changes)


def _with_kernel(derivation: Derivation, expr: sp.Expr) -> Derivation:
    """``derivation`` whose numbers evaluate ``expr`` as the per-element gradient, with the same
    shapes, weights and reduction around it (a declaration with that evaluated form; built
    once per expression)."""
    cache = derivation.__dict__.setdefault("_kernel_twins", {})
    if expr not in cache:
        declaration = dataclasses.replace(
            derivation.declaration, stable_gradient=expr, soft_targets_take_gradient=False,
            stable_soft_gradient=expr,  # the fast path's soft-target form too
        )
        cache[expr] = Derivation(derivation.spec, derivation.options, declaration)
    return cache[expr]  # type: ignore[no-any-return]


def _hypotheses(derivation: Derivation) -> list[Hypothesis]:
    cache = derivation.__dict__.get("_hypotheses")
    if cache is not None:
        return cache  # type: ignore[no-any-return]
    spec, options = derivation.spec, derivation.options
    out: list[Hypothesis] = []
    for opt in spec.options:
        value = options.get(opt.name)
        if opt.name in ("link", "reduction") or value is None or value is False:
            continue  # nothing to leave out
        if opt.kind == "array":
            change: Any = None
            said = f"without {opt.name}"
        elif opt.name == "ignore_index" and int(value) >= 0:
            change = IGNORE_INDEX  # the ignored class then counts as an ordinary class
            said = f"without {opt.name}"
        elif opt.kind == "unit_interval" and float(value) != 0.0:
            change = 0.0
            said = f"without {opt.name}"
        elif opt.choices == (False, True) and value is True:
            change = False  # full=True computed as full=False, say
            said = f"with {opt.name}=False"
        elif opt.kind in ("real", "nonnegative", "positive") and value != opt.default:
            change = opt.default  # a scalar option left at its default
            said = f"with {opt.name}={opt.default!r}, its default"
        else:
            continue
        try:
            other = _variant(derivation, **{opt.name: change})
        except Exception:  # an option the loss cannot do without: no such hypothesis
            continue
        out.append(
            Hypothesis(
                f"{opt.name} not applied (it matches symloss's result {said})",
                _quiet_loss(other),
                _quiet_grad(other),
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
            out.append(Hypothesis(rule, None, _input_only(_quiet_grad(twin))))
    derivation.__dict__["_hypotheses"] = out
    return out


def _input_only(grad: Callable[[Case, str], np.ndarray]) -> Callable[[Case, str], Any]:
    """A hypothesis about the input's gradient only (``None`` for any other array)."""

    def call(case: Case, key: str) -> Any:
        return grad(case, key) if key == "input" else None

    return call


def _quiet_loss(d: Derivation) -> Callable[[Case], np.ndarray]:
    def call(case: Case) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(d.loss_fn(*case.arrays(d.spec)), dtype=np.float64)

    return call


def _quiet_grad(d: Derivation) -> Callable[[Case, str], np.ndarray]:
    def call(case: Case, key: str) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(d.grad_fn(*case.arrays(d.spec), wrt=key), dtype=np.float64)

    return call


def _fits(got: np.ndarray, expected: Any, case: Case, scale: float) -> bool:
    if expected is None or np.shape(got) != np.shape(expected):
        return False
    return bool(np.all(ulp_error(got, expected, np.dtype(case.dtype), scale) <= TOLERANCE_ULPS))


def _scale_rule(ratio: float) -> str:
    if ratio == -1.0:
        return "sign flipped (it is exactly −1 times the exact value)"
    sign = "; and the sign is flipped" if ratio < 0 else ""
    return f"an extra constant factor {abs(ratio):.9g} (relative error {abs(ratio) - 1:+.3g}){sign}"


def _mean_counts(
    derivation: Derivation, cases: Sequence[Case], key: str = "input"
) -> list[float] | None:
    """The mean's denominator n of each case: the reference's sum over its mean."""
    if derivation.options.get("reduction", "mean") != "mean":
        return None
    total = _variant(derivation, reduction="sum")
    counts = []
    for case in cases:
        arrays = case.arrays(derivation.spec)
        with np.errstate(all="ignore"):
            g_sum = np.asarray(total.grad_fn(*arrays, wrt=key), dtype=np.float64)
            g_mean = np.asarray(derivation.grad_fn(*arrays, wrt=key), dtype=np.float64)
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


def _what_keys(derivation: Derivation, what: str) -> tuple[str, str, int]:
    """For ``what`` (``"loss"``, ``"grad"`` or ``"grad:var"``): the ``Row.arrays`` stem, the
    kernel key of the array, and the index of its scale in ``scales_all``."""
    if what == "loss":
        return "loss", "input", 0
    wrt = _differentiable(derivation)
    name = wrt[0][0] if what == "grad" else what.split(":", 1)[1]
    for i, (n, key) in enumerate(wrt):
        if n == name:
            return _grad_key(n, wrt[0][0]), key, i + 1
    raise SymlossValueError(f"{derivation.name} has no differentiable array {name!r}")


def diagnose(derivation: Derivation, rows: Sequence[Row], what: str = "grad") -> list[str]:
    """The wrong rules that explain every disagreeing row, each derived, not guessed.

    Each hypothesis is an exact value symloss computes for a specific mistake -- the same loss
    without an option (or with a scalar option at its default), the link's derivative in place
    of the gradient, a constant factor fitted to the data, a sign -- and it is named when it
    reproduces the implementation's numbers within the tolerance on every disagreeing case.
    A gradient wrong only at one target value (the y = −1 branch, say) is named as such; a
    gradient that is 0 where the exact one is not, beyond some |input| and nowhere inside it,
    as saturation.

    Args:
        derivation: the reference.
        rows: :func:`compare`'s rows (the disagreeing ones are used).
        what: ``"loss"``, ``"grad"`` (the input's gradient) or ``"grad:<name>"`` for another
            differentiable array (``"grad:var"``, ``"grad:input2"``).

    Returns:
        One line per rule that explains the evidence (empty when none does).
    """
    stem, key, scale_index = _what_keys(derivation, what)
    err_key = f"{stem}_err"

    def is_bad(r: Row) -> bool:
        if r.error is not None or err_key not in r.arrays:
            return False
        return bool(np.any(r.arrays[err_key] > TOLERANCE_ULPS))

    bad = [r for r in rows if is_bad(r)]
    if not bad:
        return []
    typical = [r for r in bad if not r.case.extreme] or bad
    got_key, ref_key = f"got_{stem}", f"ref_{stem}"
    found: list[str] = []

    def scale_of(r: Row) -> float:
        return float(r.arrays["scales_all"][scale_index])

    # a factor: constant (a sign, anything else) fitted to the data, or the mean's 1/n per case
    def fits_all(factors: Sequence[float]) -> bool:
        return all(
            _fits(r.arrays[got_key], f * r.arrays[ref_key], r.case, scale_of(r) * abs(f))
            for r, f in zip(typical, factors, strict=True)
        )

    eps = float(np.finfo(typical[0].case.dtype).eps) * TOLERANCE_ULPS
    ratios = [_fit_ratio(r.arrays[got_key], r.arrays[ref_key]) for r in typical]
    if all(q is not None for q in ratios):
        q = float(np.median([float(x) for x in ratios if x is not None]))
        candidate = -1.0 if np.isclose(q, -1.0, rtol=eps) else q
        if not np.isclose(q, 1.0, rtol=eps) and fits_all([candidate] * len(typical)):
            found.append(_scale_rule(candidate))
    counts = _mean_counts(derivation, [r.case for r in typical], key) if what != "loss" else None
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
        value: Callable[[Case], Any] | None
        if what == "loss":
            value = hyp.loss
        elif hyp.grad is not None:
            value = functools.partial(_at_key, hyp.grad, key)
        else:
            value = None
        if value is None:
            continue
        if all(_fits(r.arrays[got_key], value(r.case), r.case, scale_of(r)) for r in typical):
            found.append(hyp.rule)

    if what != "loss" and not found:
        found += _only_at_target(derivation, rows, stem)
    if what != "loss" and not found:
        found += _partial_factor(derivation, bad, stem)
    if what == "grad" and not found:
        found += _saturation(bad)
    return found


def _at_key(grad: Callable[[Case, str], Any], key: str, case: Case) -> Any:
    return grad(case, key)


def _only_at_target(derivation: Derivation, rows: Sequence[Row], stem: str) -> list[str]:
    """Wrong only at elements with one target value, right at every other value: the branch of
    the loss for that target (y = −1 of a ±1 label, say) is wrong."""
    if derivation.spec.family != "elementwise":
        return []
    bad_values: set[float] = set()
    good_values: set[float] = set()
    for r in rows:
        if r.error is not None or f"{stem}_err" not in r.arrays:
            continue
        err = r.arrays[f"{stem}_err"]
        y = np.broadcast_to(np.asarray(r.case.target, dtype=np.float64), err.shape)
        wrong = err > TOLERANCE_ULPS
        bad_values |= set(np.unique(y[wrong]).tolist())
        good_values |= set(np.unique(y[~wrong]).tolist())
    if len(bad_values) != 1:
        return []
    (value,) = bad_values
    others = sorted(good_values - bad_values)
    if not others:
        return []
    shown = ", ".join(f"{v:g}" for v in others[:4]) + (", …" if len(others) > 4 else "")
    return [
        f"wrong only where the target is {value:g}: the loss's branch for y = {value:g} (it "
        f"agrees wherever the target is another value: {shown})"
    ]


def _partial_factor(derivation: Derivation, rows: Sequence[Row], stem: str) -> list[str]:
    """On the disagreeing elements alone, a constant factor; named after an option when it is
    that option's value (or its reciprocal): the option's factor is missing or doubled there."""
    got_all: list[np.ndarray] = []
    ref_all: list[np.ndarray] = []
    for r in rows:
        wrong = r.arrays[f"{stem}_err"] > TOLERANCE_ULPS
        got_all.append(np.asarray(r.arrays[f"got_{stem}"], dtype=np.float64)[wrong])
        ref_all.append(np.asarray(r.arrays[f"ref_{stem}"], dtype=np.float64)[wrong])
    got, ref = np.concatenate(got_all), np.concatenate(ref_all)
    ok = np.isfinite(got) & np.isfinite(ref) & (ref != 0)
    if not np.any(ok):
        return []
    with np.errstate(all="ignore"):
        ratio = got[ok] / ref[ok]
    q = float(np.median(ratio))
    if not np.allclose(ratio, q, rtol=1e-5, atol=0.0) or np.isclose(q, 1.0):
        return []
    for opt in derivation.spec.options:
        value = derivation.options.get(opt.name)
        if opt.kind not in ("real", "nonnegative", "positive") or not value:
            continue
        if np.isclose(q, 1 / value, rtol=1e-5):
            return [f"the factor {opt.name} = {value:g} is missing where it applies (the "
                    f"disagreeing elements are exactly 1/{opt.name} = {q:.6g} times the exact "
                    "gradient)"]
        if np.isclose(q, value, rtol=1e-5):
            return [f"the factor {opt.name} = {value:g} is applied twice where it applies (the "
                    f"disagreeing elements are exactly {opt.name} = {q:.6g} times the exact "
                    "gradient)"]
    return [f"a constant factor {q:.9g} on the disagreeing elements only (the others agree)"]


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

    @property
    def raised(self) -> list[Row]:
        """The cases where the implementation raised or returned the wrong shape."""
        return [r for r in self.rows if r.error is not None]

    def kink_sides(self, kink: int = 0) -> dict[str, int]:
        """At the elements on kink number ``kink`` (1, 2, …; 0: every kink): how often the
        implementation took each one-sided derivative (``left``, ``right``, ``between``,
        ``outside``)."""
        out: dict[str, int] = {}
        for r in self.rows:
            if kink and r.case.kink != kink:
                continue
            for side, n in r.sides.items():
                out[side] = out.get(side, 0) + n
        return out

    def conventions(self) -> list[str]:
        """One line per declared kink: its one-sided derivatives, symloss's choice, and which
        side the implementation took there (any value between the sides is correct)."""
        lines = []
        for number, kink in enumerate(self.derivation.declaration.kinks, start=1):
            if kink.left is None or kink.right is None or kink.left == kink.right:
                continue
            where = ", ".join(f"{s} = {sp.sstr(e)}" for s, e in kink.at)
            sides = self.kink_sides(number)
            took = ", ".join(f"{k} ({v} elements)" for k, v in sorted(sides.items()))
            lines.append(
                f"kink {where}: one-sided derivatives {sp.sstr(kink.left)} (left) and "
                f"{sp.sstr(kink.right)} (right); symloss takes {sp.sstr(kink.value)} "
                f"({kink.convention}); the implementation: {took or 'not tried'}"
            )
        return lines


    def report(self, implementation: str = "the implementation", lang: str = "en") -> str:
        """The report; ``lang="zh"``: in Chinese (see :func:`symloss.words.translate_lines`)."""
        from .words import translate_lines

        return translate_lines(_report(self, implementation), lang)

    def to_json(self) -> dict[str, Any]:
        return {
            "loss": self.derivation.name,
            "options": {k: str(v) for k, v in self.derivation.display_options.items()},
            "domain": list(self.domain) if self.domain else None,
            "tolerance_ulps": TOLERANCE_ULPS,
            "agree": self.ok,
            "likely_causes": self.causes,
            "kink_sides": self.kink_sides(),
            "cases": [
                {
                    "case": r.case.description,
                    "dtype": r.case.dtype,
                    "loss_ulps": r.loss_ulps,
                    "grad_ulps": r.grad_ulps,
                    "grad_ulps_by": r.grad_ulps_by,
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
    fn: Callable[..., Any] | None = None,
    *,
    domain: Domain | None = None,
    dtypes: Sequence[str] = DTYPES,
    seed: int = 0,
    timeout: float | None = None,
) -> CheckResult:
    """Run ``fn`` (torch's twin by default) over the battery and diagnose what disagrees.

    ``timeout`` (seconds, default :data:`symloss.isolate.DEFAULT_TIMEOUT`): past it,
    :class:`symloss.isolate.ImplementationTimeout` is raised (``fn`` runs in a thread that is
    then abandoned; ``symloss check --impl`` runs it in a process it can stop).
    """
    from .isolate import DEFAULT_TIMEOUT, call_with_timeout

    domain = _check_domain(domain)
    dtypes = _check_dtypes(dtypes)
    cases = battery(derivation, seed, dtypes=dtypes, domain=domain)
    if not cases:
        raise SymlossValueError(f"the battery for {derivation.name} is empty: nothing to check")
    rows = call_with_timeout(compare, derivation, fn, cases,
                             timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
    causes: dict[str, list[str]] = {}
    wrt = _differentiable(derivation)
    whats = ["loss", "grad", *(f"grad:{name}" for name, _ in wrt[1:])]
    for dtype in dtypes:
        mine = [r for r in rows if r.case.dtype == dtype]
        for what in whats:
            found = diagnose(derivation, mine, what)
            if found:
                causes[f"{what} {dtype}"] = found
    return CheckResult(derivation, rows, causes, domain)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.9g}"
    return str(v)


def _region(
    rows: Sequence[Row], stem: str, spec: LossSpec | None = None, name: str = "input"
) -> tuple[int, int, str]:
    """How many elements disagree, of how many, and the range of the array ``name`` (the
    input, or the array differentiated) where they do."""
    key = f"{stem}_err"
    bad_x: list[float] = []
    total = 0
    for r in rows:
        if r.error is not None or key not in r.arrays:
            continue
        err = r.arrays[key]
        total += err.size
        if stem != "loss":
            source = r.case.input
            if spec is not None and name != "input":
                source = r.case.arrays(spec)[list(spec.torch_arguments).index(name)]
            x = np.broadcast_to(np.asarray(source, dtype=np.float64), err.shape)
            bad_x += list(x[err > TOLERANCE_ULPS])
        elif np.any(err > TOLERANCE_ULPS):
            bad_x += list(np.asarray(r.case.input, dtype=np.float64).ravel())
    if not bad_x:
        return 0, total, ""
    count = (
        len(bad_x)
        if stem != "loss"
        else sum(
            int(np.count_nonzero(r.arrays[key] > TOLERANCE_ULPS))
            for r in rows if r.error is None and key in r.arrays
        )
    )
    label = "inputs" if name in ("input", spec.torch_arguments[0] if spec else "input") else name
    return count, total, f"{label} in [{min(bad_x):.4g}, {max(bad_x):.4g}]"


def _report(result: CheckResult, implementation: str) -> str:
    d = result.derivation
    shown = ", ".join(f"{k}={v!r}" for k, v in d.display_options.items())
    raised = result.raised
    if raised and len(raised) == len([r for r in result.rows if not r.ok]):
        head = f"{implementation} failed on {len(raised)} of {len(result.rows)} cases"
        lines = [f"{head} of symloss's {d.name}({shown}): it {raised[0].error}"]
    else:
        lines = [f"{implementation} disagrees with symloss's exact {d.name}({shown})"]
    if result.domain:
        lines[0] += f" on the domain [{result.domain[0]:g}, {result.domain[1]:g}]"
    lines.append(f"tolerance: {TOLERANCE_ULPS:g} ulps of the terms combined, per dtype")
    wrt = _differentiable(d)
    whats = [("loss", "loss value"), ("grad", "gradient")]
    if len(wrt) > 1:
        whats = [("loss", "loss value"), ("grad", f"gradient w.r.t. {wrt[0][0]}")]
        whats += [(f"grad:{name}", f"gradient w.r.t. {name}") for name, _ in wrt[1:]]
    for dtype in dict.fromkeys(r.case.dtype for r in result.rows):
        rows = [r for r in result.rows if r.case.dtype == dtype]
        failed = [r for r in rows if not r.ok]
        if not failed:
            lines.append(f"\n[{dtype}] all {len(rows)} cases agree")
            continue
        verb = "fail" if all(r.error for r in failed) else "disagree"
        lines.append(f"\n[{dtype}] {len(failed)} of {len(rows)} cases {verb}")
        for r in failed:
            if r.error:
                lines.append(f"  case {r.case.description!r}: {implementation} {r.error}")
        compared = [r for r in rows if r.error is None]
        for what, label in whats:
            stem, _, _ = _what_keys(d, what)
            if not compared:
                lines.append(f"  {label}: not compared (no case ran)")
                continue
            bad = [
                r for r in compared
                if f"{stem}_err" in r.arrays and np.any(r.arrays[f"{stem}_err"] > TOLERANCE_ULPS)
            ]
            if not bad:
                lines.append(f"  {label}: agrees")
                continue
            worst = max(bad, key=lambda r: float(np.max(r.arrays[f"{stem}_err"])))
            err = worst.arrays[f"{stem}_err"]
            flat = int(np.argmax(err)) if err.size else 0
            index = tuple(int(i) for i in np.unravel_index(flat, err.shape)) if err.ndim else ()
            got = float(np.asarray(worst.arrays[f"got_{stem}"])[index])
            expected = float(np.asarray(worst.arrays[f"ref_{stem}"])[index])
            family = _family(d)
            array = what.split(":", 1)[1] if ":" in what else "input"
            count, total, region = _region(bad, stem, d.spec, array)
            lines.append(f"  {label}: {len(bad)} cases disagree, {count} of {total} elements")
            lines.append(f"    worst: case {worst.case.description!r}, index {index}")
            if what != "loss":
                x = np.broadcast_to(np.asarray(worst.case.input), err.shape)
                lines.append(
                    f"      input {_fmt(float(x[index]))}, target "
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
            grads_ok = all(
                not np.any(r.arrays[k] > TOLERANCE_ULPS)
                for r in bad for k in r.arrays if k.startswith("grad") and k.endswith("_err")
            )
            if what == "loss" and not causes and grads_ok:
                lines.append(
                    "    likely cause: the forward value is wrong while the gradient is right: the "
                    "forward computes another function (a dropped or changed term)"
                )
    conventions = result.conventions()
    if conventions:
        lines.append("")
        lines += conventions
    return "\n".join(lines)


def assert_grad_matches(
    name: str | Derivation,
    fn: Callable[..., Any],
    *,
    domain: tuple[float, float] | None = None,
    dtypes: Sequence[str] = DTYPES,
    seed: int = 0,
    timeout: float | None = None,
    **options: Any,
) -> CheckResult:
    """Assert that ``fn`` computes the loss ``name`` and its gradients, as exactly as its dtype
    allows.

    symloss builds a battery from the loss's declaration and ``options``: every target domain
    entirely (labels ±1, hard and soft labels, counts 0, 1 and > 1, class indices and ignored
    ones, class probabilities), typical and extreme values of every array over the whole finite
    range (or over ``domain``), every element exactly on each declared kink, shapes from
    ``weight`` and ``pos_weight``, in float64 and float32. It compares ``fn``'s loss value and
    its autograd gradient with respect to *every* differentiable array (``var`` of
    ``gaussian_nll_loss``, ``input1`` and ``input2`` of ``margin_ranking_loss``) with the exact
    reference. The tolerance is ``TOLERANCE_ULPS`` ulps of the size of the terms a correct
    implementation combines, so torch's own losses pass in both dtypes. At a kink any value
    between the one-sided derivatives is accepted (torch 2.13 and 2.14 choose differently),
    and the report says which side ``fn`` took.

    Args:
        name: a loss name or alias (as :func:`symloss.derive`), or a :class:`Derivation`
            (for instance one from :func:`symloss.custom.custom_loss`).
        fn: the implementation, on torch tensors, with torch's positional arrays:
            ``fn(input, target)``, ``fn(input, target, var)``, ``fn(input1, input2, target)``.
        domain: ``(lo, hi)``: only inputs in that interval; default the whole finite range.
        dtypes: the dtypes to check.
        seed: the battery's seed.
        timeout: seconds the whole check may take (default 300); past it, AssertionError.
        **options: the loss's options, as ``derive`` takes them (arrays or tensors).

    Returns:
        The :class:`CheckResult` (when everything agrees).

    Raises:
        AssertionError: with a report: loss value or gradient (per array), dtype, the worst
            element, how many disagree, where, and the likely wrong rule; or, when ``fn``
            raised or returned the wrong shape, that, with the exception.

    Example::

        import torch.nn.functional as F
        from symloss.testing import assert_grad_matches
        assert_grad_matches("bce_with_logits", F.binary_cross_entropy_with_logits)
        assert_grad_matches("gaussian_nll_loss", F.gaussian_nll_loss, full=True)
    """
    __tracebackhide__ = True
    from .isolate import ImplementationTimeout

    derivation = _as_derivation(name, options)
    try:
        result = check(derivation, fn, domain=domain, dtypes=dtypes, seed=seed, timeout=timeout)
    except ImplementationTimeout as exc:
        raise AssertionError(f"{derivation.name}: {exc}") from None
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
