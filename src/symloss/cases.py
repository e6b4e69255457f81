"""One input of the checker's battery: :class:`Case` (the arrays, the dtype, the kink mask).

A leaf of the testing layer: the batteries (:mod:`symloss.rows_battery`, the element-wise and
class-axis ones in :mod:`symloss.testing`) make cases, :mod:`symloss.testing` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SymlossValueError
from .spec import LossSpec

__all__ = ["Case"]


@dataclass(frozen=True)
class Case:
    """One input of the battery: a description, the arrays, the dtype.

    Attributes:
        description: what the case tries (``"(7,) target ±1"``, ``"on the kink z = margin"``).
        input: the input (``input1`` of ``margin_ranking_loss``).
        target: the target.
        dtype: ``"float32"`` or ``"float64"`` (class indices stay int64).
        extreme: the inputs span the dtype's range.
        others: the further positional arrays by torch's name (``var``, ``input2``).
        on_kink: a mask of the elements that sit exactly on a declared kink, where any value
            in the subdifferential is accepted; ``None`` when none does.
        kink: which of the declaration's kinks (1, 2, …; 0: none).
    """

    description: str
    input: np.ndarray
    target: np.ndarray
    dtype: str
    extreme: bool = False
    others: tuple[tuple[str, np.ndarray], ...] = ()
    on_kink: np.ndarray | None = None
    kink: int = 0

    def arrays(self, spec: LossSpec) -> list[np.ndarray]:
        """The positional arrays in torch's order for ``spec``."""
        others = dict(self.others)
        out = []
        for arg in spec.arguments_for():
            key = arg.symbol_key
            if key == "input":
                out.append(self.input)
            elif key == "target":
                out.append(self.target)
            elif arg.name in others:
                out.append(others[arg.name])
            else:
                raise SymlossValueError(f"case {self.description!r} has no array {arg.name!r}")
        return out
