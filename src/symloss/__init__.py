"""symloss: the exact reference for loss-function gradients.

>>> import symloss
>>> d = symloss.derive("bce")
>>> d.canonical
-y + sigmoid(z)
>>> d.proved
True
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .boosting import objective
from .catalog import ALIASES, losses, resolve
from .derive import Derivation, Step
from .errors import SymlossError, SymlossTypeError, SymlossValueError, UnknownLossError
from .relations import Relation, relate, relations

__all__ = [
    "ALIASES",
    "Derivation",
    "Relation",
    "Step",
    "SymlossError",
    "SymlossTypeError",
    "SymlossValueError",
    "UnknownLossError",
    "derive",
    "losses",
    "objective",
    "relate",
    "relations",
]

__version__ = "0.1.0"


def _symbolic_key(options: dict[str, Any], spec: Any = None) -> tuple[tuple[str, Any], ...]:
    """What the symbolic derivation depends on, as each option declares it
    (``Option.symbolic``): an array only by its presence, label_smoothing only by being 0."""
    how = {o.name: o.symbolic for o in spec.options} if spec is not None else {}
    key = []
    for name, value in sorted(options.items()):
        if hasattr(value, "shape") or (how.get(name) == "presence" and value is not None):
            value = "<array>"
        elif how.get(name) == "nonzero":
            value = bool(value)
        key.append((name, value))
    return tuple(key)


@lru_cache(maxsize=256)
def _derive_symbolic(name: str, key: tuple[tuple[str, Any], ...]) -> Derivation:
    spec, _ = resolve(name)
    options = {k: (None if v == "<array>" else v) for k, v in key}
    for opt in spec.options:  # presence is what the declaration reads
        if dict(key).get(opt.name) == "<array>":
            options[opt.name] = True
    return Derivation(spec, options, spec.declare(options))


def derive(name: str, **options: Any) -> Derivation:
    """Derive ∂ℓ/∂input for the loss ``name`` with torch.nn.functional's keyword options.

    Args:
        name: a torch.nn.functional name (``"binary_cross_entropy_with_logits"``) or an alias
            (``"bce"``, ``"bce_with_logits"``, ``"ce"``); see :func:`losses`.
        **options: the loss's keyword arguments (``weight``, ``pos_weight``, ``reduction``,
            ``ignore_index``, ``label_smoothing``) and ``link``. Arrays (or tensors) are accepted
            for ``weight`` and ``pos_weight``.

    Returns:
        A :class:`Derivation`: ``.loss``, ``.gradient``, ``.canonical``, ``.proved``, ``.steps``,
        the renderers, and the NumPy functions ``.loss_fn`` and ``.grad_fn``. The symbolic work
        is cached, so deriving the same loss again is cheap.

    Raises:
        UnknownLossError: ``name`` is not a loss; the message lists the names.
        SymlossValueError, SymlossTypeError: an option is invalid; the message names the
            valid values.

    >>> d = derive("ce", label_smoothing=0.1)
    >>> d.canonical
    softmax(z)[i] - q[i]
    >>> d.proved
    True
    """
    spec, preset = resolve(name)
    for key, value in preset.items():
        if key in options and options[key] != value:
            raise SymlossValueError(
                f"{name} is {spec.name} with {key}={value!r}; use {spec.name!r} for another {key}"
            )
    merged = spec.validate({**preset, **options})
    symbolic = _derive_symbolic(spec.name, _symbolic_key(merged, spec))
    return symbolic._with_options(merged)
