"""What a catalogue entry is: :class:`LossSpec` and its :class:`Option` s.

The data types every loss declaration is made of, and the checks of an option's value. The
catalogue (:mod:`symloss.catalog`, :mod:`symloss.catalog_boosting`, :mod:`symloss.row_losses`)
builds its entries from them; the evaluators, the checker and the CLI read them. This module
sits below all of those: it imports only the declaration types and the errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from .declaration import CLASS_INDICES, PROBABILITIES, REALS, Argument, Declaration, Domain
from .errors import SymlossTypeError, SymlossValueError, choice_error

__all__ = ["IGNORE_INDEX", "REDUCTIONS", "LossSpec", "Option", "RowLossSpec", "check_option", "fixed_signature",
           "ignore_index_option", "reduction_option", "weight_option"]

#: The reductions of the element-wise and class-axis losses, torch's names.
REDUCTIONS = ("none", "mean", "sum")


@dataclass(frozen=True)
class Option:
    """One keyword option: its default, what it accepts, and one line for ``--help``.

    Attributes:
        name: torch's keyword (``pos_weight``); the CLI flag is ``--pos-weight``.
        default: torch's default.
        help: one line for ``--help`` and ``symloss list``.
        choices: the finite set of valid values (``kind="choice"``).
        kind: ``choice`` | ``array`` | ``int`` | ``unit_interval`` | ``real`` |
            ``nonnegative`` | ``positive``: the range :meth:`LossSpec.validate` enforces.
        examples: non-default values the tests and the checker's battery try (the option's
            range, sampled); arrays take ``shape`` instead.
        shape: for an array option, how it is laid out: ``"class"`` (one number per class,
            shape (C,)), ``"last"`` (broadcast along the input's last axis).
        symbolic: what the symbolic derivation depends on (the derivation cache's key):
            ``"value"``, ``"presence"`` (an array: only whether it is given) or ``"nonzero"``
            (``label_smoothing``: only whether it is 0).
        interval: for a number, the open interval ``(lo, hi)`` it must lie strictly inside,
            besides its ``kind``'s range (``tweedie_loss``'s power: (1, 2);
            ``quantile_loss``'s τ: (0, 1)); :func:`check_option` enforces it and the
            accuracy benchmark's option search tries values next to both ends.
        why: what the interval's ends mean, said when a value outside it is refused.
    """

    name: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    kind: str = "choice"  # choice | array | int | unit_interval | real | nonnegative | positive
    examples: tuple[Any, ...] = ()
    shape: str = ""
    symbolic: str = "value"
    interval: tuple[float, float] | None = None
    why: str = ""

    @property
    def flag(self) -> str:
        """The command-line flag, ``--pos-weight`` for ``pos_weight``."""
        return "--" + self.name.replace("_", "-")

    def tried(self) -> tuple[Any, ...]:
        """The non-default values worth trying: ``examples``, else the other ``choices``."""
        if self.examples:
            return self.examples
        return tuple(c for c in (self.choices or ()) if c != self.default)


def fixed_signature(*arguments: Argument) -> Callable[[Mapping[str, Any]], tuple[Argument, ...]]:
    """A signature that does not depend on the options."""
    return lambda options: arguments


@dataclass(frozen=True)
class LossSpec:
    """A catalogue entry: the single source of what a loss accepts.

    The checker's battery, the CLI's flags, the derivation cache and the tests' case tables
    read these fields; nothing else names a loss's options, arrays or target domains.

    Attributes:
        name: the torch.nn.functional name.
        summary: one line for ``symloss list``.
        options: the keyword options, torch's names and ranges, plus ``link``.
        declare: builds the declaration (formula, kinks with their one-sided derivatives)
            for validated options.
        family: how numbers are laid out: ``"elementwise"`` or ``"class_axis"``.
        signature: ``signature(options)``: the positional arrays in torch's order
            (:class:`~symloss.declaration.Argument`: torch's name, domains, differentiable),
            e.g. ``gaussian_nll_loss(input, target, var)``,
            ``margin_ranking_loss(input1, input2, target)``. Options may change a domain
            (``kl_div``'s target with ``log_target``).
        module: torch.nn's class name (``"BCELoss"``); names resolve from it, any case.
        short: other names it is known by (``"mse"``), resolved like aliases.
        torch_link: the torch function applied to the input before torch's twin is called
            (``"sigmoid"`` for ``binary_cross_entropy`` with ``link="sigmoid"``).
        spatial: a class-axis loss that also takes (N, C, d1, …, dk) inputs, as cross_entropy.
        torch_twin: the name of a function in :mod:`symloss.torch_twins` that gives the torch
            twin for options where it is not simply ``torch.nn.functional.<name>``
            (torchvision's focal loss, nll_loss∘log_softmax); ``""`` otherwise.
        input_domain: ``"probability"`` or ``"real"`` from the input's declared domain (a
            :class:`LossSpec` made without a signature may give it instead).
        has_torch_twin: False for a loss torch does not have (the boosting losses of
            :mod:`symloss.catalog_boosting`): checking it needs an implementation.
    """

    name: str
    summary: str
    options: tuple[Option, ...]
    declare: Callable[[Mapping[str, Any]], Declaration]
    family: str
    signature: Callable[[Mapping[str, Any]], tuple[Argument, ...]] | None = None
    module: str = ""
    short: tuple[str, ...] = ()
    torch_link: Callable[[Mapping[str, Any]], str | None] = field(default=lambda o: None)
    spatial: bool = True
    torch_twin: str = ""
    has_torch_twin: bool = True
    input_domain: Callable[[Mapping[str, Any]], str] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.signature is None:  # a custom loss: input and target, from input_domain
            given = self.input_domain
            legacy = given if given is not None else (lambda o: "real")
            object.__setattr__(
                self,
                "signature",
                lambda o: (
                    Argument("input", (PROBABILITIES if legacy(o) == "probability" else REALS,),
                             differentiable=True),
                    Argument("target", (PROBABILITIES,)),
                ),
            )
        if self.input_domain is None:
            object.__setattr__(self, "input_domain", self._input_domain)

    # ------------------------------------------------------------------ read from the signature
    def _input_domain(self, options: Mapping[str, Any]) -> str:
        first = self.arguments_for(options)[0].domains[0]
        return "probability" if first is PROBABILITIES else "real"

    def arguments_for(self, options: Mapping[str, Any] | None = None) -> tuple[Argument, ...]:
        """The positional arrays for these options (the defaults when ``None``)."""
        assert self.signature is not None
        return self.signature({**self.defaults(), **(options or {})})

    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}

    @property
    def arguments(self) -> tuple[str, ...]:
        """The positional arrays' keys, in torch's order (``("input", "target", "var")``)."""
        return tuple(a.symbol_key for a in self.arguments_for())

    @property
    def torch_arguments(self) -> tuple[str, ...]:
        """torch's parameter names, in order (``("input1", "input2", "target")``)."""
        return tuple(a.name for a in self.arguments_for())

    def differentiable(self) -> tuple[str, ...]:
        """torch's names of the arrays symloss differentiates with respect to."""
        return tuple(a.name for a in self.arguments_for() if a.differentiable)

    def argument(self, name: str) -> Argument:
        """An array by torch's name or its kernel key; a clear error names the valid ones."""
        for a in self.arguments_for():
            if name in (a.name, a.symbol_key):
                return a
        raise choice_error(f"array of {self.name}", name, self.torch_arguments)

    def target_domains(self, options: Mapping[str, Any] | None = None) -> tuple[Domain, ...]:
        """The domains of the ``target`` array; ``()`` for a loss without one (triplet)."""
        return next((a.domains for a in self.arguments_for(options) if a.name == "target"), ())

    @property
    def index_targets_only(self) -> bool:
        """A class-axis loss whose targets are class indices only (``nll_loss``)."""
        return self.target_domains() == (CLASS_INDICES,)

    @property
    def multi_hot_targets(self) -> bool:
        """A class-axis loss whose target has the input's shape, one number per class."""
        return self.family == "class_axis" and all(
            d.layout == "elementwise" for d in self.target_domains()
        )

    @property
    def argument_check(self) -> dict[str, Callable[[str, Any], None]]:
        """Validation of an extra array's values by its key (``var`` ≥ 0), from its domain."""
        out: dict[str, Callable[[str, Any], None]] = {}
        for a in self.arguments_for():
            if a.name in ("input", "target") or a.symbol_key == "input":
                continue
            lo = min(d.lo for d in a.domains)
            if lo > -float("inf"):
                out[a.symbol_key] = _lower_bound_check(a.name, lo, a.domains[0].description)
        return out

    def twin(self, options: Mapping[str, Any]) -> Callable[..., Any] | None:
        """The torch twin for options where it is not ``torch.nn.functional.<name>``."""
        if not self.torch_twin:
            return None
        from . import torch_twins

        return getattr(torch_twins, self.torch_twin)(options)  # type: ignore[no-any-return]

    def option(self, name: str) -> Option:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise KeyError(name)

    def validate(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults and check every option; raise a clear error naming the valid choices."""
        names = [o.name for o in self.options]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise SymlossTypeError(
                f"{self.name} got unknown option(s) {', '.join(map(repr, unknown))}; "
                f"valid options: {', '.join(names)}"
            )
        out: dict[str, Any] = {}
        for opt in self.options:
            value = given.get(opt.name, opt.default)
            out[opt.name] = check_option(self.name, opt, value)
        return out


def _lower_bound_check(name: str, lo: float, what: str) -> Callable[[str, Any], None]:
    def check(loss: str, values: Any) -> None:
        import numpy as np

        if np.any(np.asarray(values) < lo):
            below = "negative entries" if lo == 0 else f"entries below {lo:g}"
            raise SymlossValueError(f"{loss}: {name} has {below}; it must be {what}")

    check.bounds = (lo, float("inf"))  # type: ignore[attr-defined]  # layout's cheap proof
    return check


def as_option_array(loss: str, name: str, value: Any) -> Any:
    import numpy as np

    if value is None:
        return None
    if hasattr(value, "detach"):  # a torch tensor; torch itself is never imported here
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SymlossTypeError(
            f"{loss}: {name} must be None or an array of real numbers, got {value!r}"
        ) from exc
    if not np.all(np.isfinite(arr)):
        raise SymlossValueError(f"{loss}: {name} must be finite, got {value!r}")
    return arr


def check_option(loss: str, opt: Option, value: Any) -> Any:
    if opt.kind == "array":
        return as_option_array(loss, opt.name, value)
    if opt.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | sp.Integer):
            try:
                import numpy as np

                if isinstance(value, np.integer):
                    return int(value)
            except ImportError:  # pragma: no cover
                pass
            raise SymlossTypeError(f"{loss}: {opt.name} must be an integer, got {value!r}")
        if not -(2**63) <= int(value) < 2**63:  # torch takes a 64-bit integer
            raise SymlossValueError(
                f"{loss}: {opt.name} must fit in 64 bits ([-2**63, 2**63 - 1]), got {value!r}")
        return int(value)
    if opt.kind in ("real", "nonnegative", "positive"):
        if isinstance(value, bool):
            raise SymlossTypeError(f"{loss}: {opt.name} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise SymlossTypeError(f"{loss}: {opt.name} must be a number, got {value!r}") from exc
        bad = (
            not math.isfinite(number)
            or (opt.kind == "nonnegative" and number < 0)
            or (opt.kind == "positive" and number <= 0)
        )
        if bad:
            need = {"real": "finite", "nonnegative": "finite and ≥ 0", "positive": "finite and > 0"}
            raise SymlossValueError(
                f"{loss}: {opt.name} must be {need[opt.kind]}, got {value!r}"
            )
        return _inside(loss, opt, number, value)
    if opt.kind == "unit_interval":
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise SymlossTypeError(
                f"{loss}: {opt.name} must be a number in [0, 1], got {value!r}"
            ) from exc
        if not 0.0 <= number <= 1.0:
            raise SymlossValueError(f"{loss}: {opt.name} must be in [0, 1], got {value!r}")
        return _inside(loss, opt, number, value)
    assert opt.choices is not None
    if value not in opt.choices:
        raise choice_error(f"{opt.name} for {loss}", value, opt.choices)
    return value


def _inside(loss: str, opt: Option, number: float, value: Any) -> float:
    """``number`` when it lies strictly inside ``opt.interval`` (or there is none)."""
    if opt.interval is not None:
        lo, hi = opt.interval
        if not lo < number < hi:
            why = f" ({opt.why})" if opt.why else ""
            raise SymlossValueError(
                f"{loss}: {opt.name} must be in the open interval ({lo:g}, {hi:g}){why}, "
                f"got {value!r}")
    return number


def reduction_option() -> Option:
    return Option("reduction", "mean", "how per-element losses are combined", REDUCTIONS)


def weight_option(help: str, shape: str = "class") -> Option:
    return Option("weight", None, help, kind="array", shape=shape, symbolic="presence")


#: torch's default ``ignore_index`` for its class-index losses (written here only).
IGNORE_INDEX = -100


def ignore_index_option() -> Option:
    return Option("ignore_index", IGNORE_INDEX, "class-index target value that is ignored", kind="int",
                  examples=(1,))


@dataclass(frozen=True)
class RowLossSpec(LossSpec):
    """A catalogue entry of the row family (``family="rows"``).

    Its arrays and their domains are the :class:`LossSpec`'s signature; the target's domain
    says how it is read (:data:`symloss.rows.TARGET_DOMAINS`).

    Attributes:
        row_dims: how many leading (row) axes the arrays may have, as torch allows
            (``(0, 1)``: ``(D)`` or ``(N, D)``; ``-1`` also takes a 0-d input as one row of
            one class, as ``multilabel_margin_loss`` does); ``None``: any number (at least 1-D).
    """

    row_dims: tuple[int, ...] | None = (0, 1)
