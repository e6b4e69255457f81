"""Custom objectives for gradient-boosting libraries: per-sample gradient and Hessian.

XGBoost (``obj=``), LightGBM (``objective=``) and CatBoost take a function of the raw
predictions and the labels that returns the first and second derivative of the loss with
respect to each prediction, unreduced. :func:`objective` builds that function from a
derivation, so both derivatives come from ``sympy.diff`` of the declared loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import SymlossValueError

__all__ = ["objective"]


def objective(name: str, **options: Any) -> Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]:
    """``(predictions, labels) -> (grad, hess)``: per-sample ∂ℓ/∂z and ∂²ℓ/∂z², unreduced.

    For an element-wise loss both have the predictions' shape. For a class-axis loss
    (``cross_entropy``) the predictions are ``(N, C)`` logits and the labels ``(N,)`` class
    indices (integers, or floats holding integers as XGBoost passes them); ``grad`` is
    ``(N, C)`` and ``hess`` is the Hessian's diagonal ``(Σₖ aₖ) pᵢ (1 − pᵢ)``, the form those
    libraries take.

    Args:
        name: a loss name or alias (see :func:`symloss.losses`).
        **options: the loss's options; ``reduction`` is not allowed (the result is unreduced).

    Returns:
        A function ``fn(predictions, labels) -> (grad, hess)`` of NumPy arrays (float64 unless
        the predictions are float32).

    Example (XGBoost: ``xgboost.train(params, dtrain, obj=lambda p, d: fn(p, d.get_label()))``):

    >>> import numpy as np, symloss
    >>> fn = symloss.objective("binary_cross_entropy_with_logits")
    >>> grad, hess = fn(np.array([0.0, 2.0]), np.array([1.0, 0.0]))
    >>> grad.round(4).tolist(), hess.round(4).tolist()
    ([-0.5, 0.8808], [0.25, 0.105])
    """
    from . import derive

    if "reduction" in options:
        raise SymlossValueError(
            "objective() returns unreduced per-sample derivatives; do not pass reduction "
            f"(got reduction={options['reduction']!r})"
        )
    d = derive(name, reduction="none", **options)
    class_axis = d.spec.family == "class_axis"

    def fn(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(predictions)
        y = np.asarray(labels)
        if class_axis and y.shape != x.shape and y.dtype.kind == "f":
            if np.any(y != np.round(y)):
                raise SymlossValueError(
                    f"{d.name}: labels of shape {y.shape} must be class indices (whole numbers)"
                )
            y = y.astype(np.int64)
        return d.grad_fn(x, y), d._numeric.hess_diag(x, y)

    return fn
