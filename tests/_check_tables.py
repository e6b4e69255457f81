"""Case tables for the checker tests, generated from the catalogue's declarations.

Every loss, its default options and each non-default option value its declaration lists
(``Option.tried()``: examples, other choices; an array option gets a few numbers in the
declared layout). Nothing here names a loss's options by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from symloss.catalog import CATALOG

#: Arrays for array options, by ``Option.shape``: per class (C = 3) or along the last axis.
ARRAYS = {"class": [0.2, 1.0, 3.0], "last": [1.0, 2.0, 0.5, 3.0]}

def torch_domain(name: str, options: dict[str, Any]) -> tuple[float, float] | None:
    """Where torch itself is not exact over the whole finite range, the domain its check
    uses (the full-range failure, and its diagnosis, is a test of its own); else ``None``."""
    if name == "soft_margin_loss":
        # torch evaluates log(1 + exp(−y z)) as written: exp overflows beyond |z| ≈ 88 (float32)
        return (-80.0, 80.0)
    if name == "binary_cross_entropy" and options.get("link") == "sigmoid":
        # BCELoss of sigmoid(z): σ(z) rounds to 1 beyond z ≈ 16.6 (float32), the gradient to 0
        return (-10.0, 10.0)
    if name == "sigmoid_focal_loss" and 0 < options.get("gamma", 2.0) < 1:
        # torchvision computes 1 − p_t by cancellation: exactly 0 for |z| > 37 (float64), and
        # 0^(γ−1) is infinite for γ < 1 where the exact value is finite
        return (-30.0, 30.0)
    return None


def option_sets(name: str) -> Iterator[dict[str, Any]]:
    """The default options, then one non-default option at a time."""
    spec = CATALOG[name]
    yield {}
    for opt in spec.options:
        if opt.kind == "array":
            yield {opt.name: np.array(ARRAYS[opt.shape or "last"])}
            continue
        for value in opt.tried():
            yield {opt.name: value}


def every_loss_and_option() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in sorted(CATALOG):
        for options in option_sets(name):
            yield name, options
