"""``symloss plot``: ℓ, ∂ℓ/∂z and ∂²ℓ/∂z² against z for y = 0 and y = 1, computed from the
derivation alone (matplotlib, the ``[plot]`` extra). An implementation's gradient -- torch's own
twin, or a function of yours -- is drawn over the exact one only when asked for, and only that
overlay needs torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .derive import Derivation
from .errors import SymlossValueError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Curves", "curves", "figure", "plot"]

#: ``fn="torch"``: overlay torch's own implementation of the loss.
TORCH = "torch"


@dataclass(frozen=True)
class Curves:
    """The exact curves of one target value: ``z`` and ℓ, ∂ℓ/∂z, ∂²ℓ/∂z² there (per element)."""

    target: float
    z: np.ndarray
    loss: np.ndarray
    gradient: np.ndarray
    second: np.ndarray


def _elementwise(derivation: Derivation) -> Derivation:
    if derivation.spec.family != "elementwise":
        raise SymlossValueError(
            f"symloss plot draws element-wise losses; {derivation.name} is {derivation.spec.family}"
        )
    from .testing import _variant

    return _variant(derivation, reduction="none")


def curves(
    derivation: Derivation,
    *,
    span: tuple[float, float] = (-40.0, 40.0),
    points: int = 801,
    targets: tuple[float, ...] = (0.0, 1.0),
) -> list[Curves]:
    """ℓ, ∂ℓ/∂z and ∂²ℓ/∂z² on a grid of z, one :class:`Curves` per target value.

    The values are the derivation's own float64 kernels with ``reduction="none"``:
    ``loss_fn``, ``grad_fn`` and ``hvp_fn`` with the direction v = 1 (the Hessian of an
    element-wise loss is diagonal, so that is ∂²ℓ/∂z² element by element). No torch.

    Args:
        derivation: an element-wise loss.
        span: the range of z (clipped to (0, 1) for a loss of probabilities).
        points: grid points.
        targets: the target values, one curve set each.

    Returns:
        One :class:`Curves` per target.

    >>> import symloss
    >>> from symloss.plot import curves
    >>> c = curves(symloss.derive("bce_with_logits"), span=(-1.0, 1.0), points=3)
    >>> [float(v) for v in c[1].gradient]  # σ(z) − 1 at z = −1, 0, 1
    [-0.7310585786300049, -0.5, -0.2689414213699951]
    """
    each = _elementwise(derivation)
    lo, hi = span
    if derivation.spec.input_domain(derivation.options) == "probability":
        lo, hi = max(lo, 1e-6), min(hi, 1 - 1e-6)
    z = np.linspace(lo, hi, points)
    out = []
    for label in targets:
        y = np.full_like(z, label)
        with np.errstate(all="ignore"):
            out.append(
                Curves(
                    float(label),
                    z,
                    np.asarray(each.loss_fn(z, y), dtype=float),
                    np.asarray(each.grad_fn(z, y), dtype=float),
                    np.asarray(each.hvp_fn(z, y, np.ones_like(z)), dtype=float),
                )
            )
    return out


def figure(
    derivation: Derivation,
    fn: Callable[[Any, Any], Any] | str | None = None,
    *,
    dtype: str = "float32",
    span: tuple[float, float] = (-40.0, 40.0),
    points: int = 801,
) -> Figure:
    """The matplotlib figure :func:`plot` saves: 3 rows (ℓ, ∂ℓ/∂z, ∂²ℓ/∂z²) × 2 targets.

    Args:
        derivation: an element-wise loss.
        fn: ``None`` (the exact curves only), ``"torch"`` (torch's own twin over the gradient)
            or an implementation ``fn(input, target)`` on tensors. Only an overlay needs torch.
        dtype: the dtype the overlaid implementation is run in.
        span: the range of z.
        points: grid points.

    Returns:
        The figure; each panel's first line is the exact curve.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SymlossValueError(
            "symloss plot needs matplotlib: pip install 'symloss[plot]'"
        ) from None
    exact = curves(derivation, span=span, points=points)
    impl: Callable[[Any, Any], Any] | None = None
    smap = None
    if fn is not None:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise SymlossValueError(
                "the implementation's overlay needs torch: pip install 'symloss[torch]' "
                "(or plot the exact curves alone, without --impl/--torch)"
            ) from None
        from .stability import stability_map
        from .testing import torch_function

        if isinstance(fn, str):
            if fn != TORCH:
                from .errors import choice_error

                raise choice_error("plot overlay", fn, (TORCH, "a function fn(input, target)"))
            impl = torch_function(_elementwise(derivation))
            smap = stability_map(derivation, None, dtype=dtype)
        else:
            impl = fn
            smap = stability_map(derivation, fn, dtype=dtype)
    fig, axes = plt.subplots(3, 2, figsize=(11, 9), sharex=True)
    titles = ["ℓ", "∂ℓ/∂z", "∂²ℓ/∂z²"]
    for col, c in enumerate(exact):
        for row, values in enumerate((c.loss, c.gradient, c.second)):
            ax = axes[row, col]
            ax.plot(c.z, values, color="black", lw=1.5, label="exact (symloss)")
            ax.set_ylabel(titles[row])
            if row == 0:
                ax.set_title(f"{derivation.name}, y = {c.target:g}")
        if impl is not None:
            _overlay(axes[1, col], impl, c, dtype, smap)
        axes[2, col].set_xlabel("z")
    fig.tight_layout()
    return fig


def _overlay(ax: Any, impl: Callable[[Any, Any], Any], c: Curves, dtype: str, smap: Any) -> None:
    """The implementation's gradient (run by torch autograd) and its breakdown, over ``ax``."""
    from .testing import Case, _autograd

    x = c.z.astype(dtype)
    _, got = _autograd(impl, Case("plot", x, np.full_like(x, c.target), dtype))
    ax.plot(x, got, color="tab:red", lw=1, ls="--", label=f"implementation ({dtype})")
    lo, hi = float(c.z[0]), float(c.z[-1])
    if smap is not None:
        for b in smap.boundaries:
            if b.target == f"y={c.target:g}" and lo <= b.first_disagreeing <= hi:
                ax.axvline(b.first_disagreeing, color="tab:red", lw=0.8, ls=":")
                ax.annotate(
                    f"breakdown z={b.first_disagreeing:.4g}",
                    (b.first_disagreeing, 0.5),
                    fontsize=8,
                    color="tab:red",
                )
    ax.legend(fontsize=8)


def plot(
    derivation: Derivation,
    out: str | Path,
    fn: Callable[[Any, Any], Any] | str | None = None,
    *,
    dtype: str = "float32",
    span: tuple[float, float] = (-40.0, 40.0),
    points: int = 801,
) -> Path:
    """Draw the loss, its gradient and its second derivative, from the derivation alone.

    Args:
        derivation: an element-wise loss (``reduction`` is set to ``"none"`` for the picture).
        out: the image file (any format matplotlib writes: .png, .pdf, .svg).
        fn: an implementation to draw over the exact gradient: ``"torch"`` for torch's own
            twin, a function ``fn(input, target)`` on tensors, or ``None`` (default) for the
            exact curves alone -- then torch is not needed.
        dtype: the dtype ``fn`` is run in.
        span: the range of z.
        points: grid points.

    Returns:
        The path written.
    """
    fig = figure(derivation, fn, dtype=dtype, span=span, points=points)
    import matplotlib.pyplot as plt

    path = Path(out)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
