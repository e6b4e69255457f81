"""``symloss plot``: ℓ, ∂ℓ/∂z and ∂²ℓ/∂z² against z for y = 0 and y = 1, with an
implementation's gradient over the exact one and its breakdown marked (matplotlib, the
``[plot]`` extra)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from .derive import Derivation
from .errors import SymlossValueError

__all__ = ["plot"]


def _second_derivative(derivation: Derivation) -> Derivation:
    """The derivation whose kernel is ∂²ℓ/∂z² (``Derivation.hessian`` if the core has it,
    else ``sympy.diff`` of the gradient)."""
    from .testing import _with_kernel

    d = derivation.declaration
    hessian = getattr(derivation, "hessian", None)
    if not isinstance(hessian, sp.Expr):
        hessian = sp.diff(derivation.raw_gradient, d.input)
    return _with_kernel(derivation, d.substitute_definitions(hessian))


def plot(
    derivation: Derivation,
    out: str | Path,
    fn: Callable[[Any, Any], Any] | None = None,
    *,
    dtype: str = "float32",
    span: tuple[float, float] = (-40.0, 40.0),
    points: int = 801,
) -> Path:
    """Draw the loss, its gradient and its second derivative, with ``fn``'s gradient over them.

    Args:
        derivation: an element-wise loss (``reduction`` is set to ``"none"`` for the picture).
        out: the image file (any format matplotlib writes: .png, .pdf, .svg).
        fn: the implementation; torch's own twin by default.
        dtype: the dtype ``fn`` is run in.
        span: the range of z.
        points: grid points.

    Returns:
        The path written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SymlossValueError(
            "symloss plot needs matplotlib: pip install 'symloss[plot]'"
        ) from None
    from .stability import stability_map
    from .testing import Case, _autograd, _variant, torch_function

    if derivation.spec.family != "elementwise":
        raise SymlossValueError(
            f"symloss plot draws element-wise losses; {derivation.name} is {derivation.spec.family}"
        )
    each = _variant(derivation, reduction="none")
    impl = fn or torch_function(each)
    second = _second_derivative(each)
    lo, hi = span
    if derivation.spec.input_domain(derivation.options) == "probability":
        lo, hi = max(lo, 1e-6), min(hi, 1 - 1e-6)
    z = np.linspace(lo, hi, points)
    fig, axes = plt.subplots(3, 2, figsize=(11, 9), sharex=True)
    smap = stability_map(derivation, fn, dtype=dtype)
    for col, label in enumerate((0.0, 1.0)):
        y = np.full_like(z, label)
        with np.errstate(all="ignore"):
            rows = [each.loss_fn(z, y), each.grad_fn(z, y), second.grad_fn(z, y)]
        x = z.astype(dtype)
        _, got = _autograd(impl, Case("plot", x, y.astype(dtype), dtype))
        titles = ["ℓ", "∂ℓ/∂z", "∂²ℓ/∂z²"]
        for row in range(3):
            ax = axes[row, col]
            ax.plot(z, rows[row], color="black", lw=1.5, label="exact (symloss)")
            if row == 1:
                ax.plot(x, got, color="tab:red", lw=1, ls="--", label=f"implementation ({dtype})")
                if smap is not None:
                    for b in smap.boundaries:
                        if b.target == f"y={label:g}" and lo <= b.first_disagreeing <= hi:
                            ax.axvline(b.first_disagreeing, color="tab:red", lw=0.8, ls=":")
                            ax.annotate(
                                f"breakdown z={b.first_disagreeing:.4g}",
                                (b.first_disagreeing, 0.5),
                                fontsize=8,
                                color="tab:red",
                            )
                ax.legend(fontsize=8)
            ax.set_ylabel(titles[row])
            if row == 0:
                ax.set_title(f"{derivation.name}, y = {label:g}")
        axes[2, col].set_xlabel("z")
    fig.tight_layout()
    path = Path(out)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
