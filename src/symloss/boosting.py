"""Custom objectives for gradient-boosting libraries: per-sample gradient and Hessian.

:func:`objective` builds, from a derivation, the function XGBoost (``xgboost.train(obj=...)``)
or LightGBM (``params["objective"]``) calls each round; both derivatives come from
``sympy.diff`` of the declared loss, through the public :class:`~symloss.Derivation`
(``grad_fn`` and ``hess_diag_fn``). With ``library=`` the function also follows that library's
conventions, so that training with it reproduces the library's built-in objective:

* the signature ``(preds, data) -> (grad, hess)``, labels and sample weights read from the
  ``DMatrix`` / ``Dataset`` and the weights applied (a custom objective must do it itself);
* the scale of each loss: XGBoost's ``reg:squarederror`` and LightGBM's ``regression`` are
  ½(z − y)², half of ``mse_loss``;
* the multiclass Hessian: XGBoost's ``multi:softprob`` uses 2p(1 − p) and LightGBM's
  ``multiclass`` K/(K − 1)·p(1 − p) where the exact diagonal is p(1 − p);
* the layout of multiclass arrays in the installed versions (xgboost 3.2, lightgbm 4.7): both
  pass the margins as an ``(n, K)`` array and take ``(n, K)`` gradients and Hessians (older
  layouts, a flat row-major array for XGBoost or class-major for LightGBM, are accepted too);
* their safeguards: XGBoost's lower bound 1e-16 on the logistic and softmax Hessians, and the
  Poisson ``max_delta_step`` (the Hessian times e^max_delta_step).

The conventions are read from the libraries' sources (cited at each entry of
:data:`BUILTINS`) and checked by training: tests/test_boosting.py and benchmarks/boosting.py
train 5 rounds with this objective and with the built-in and compare the raw margins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import SymlossTypeError, SymlossValueError, choice_error

__all__ = ["BUILTINS", "LIBRARIES", "BuiltIn", "builtin_params", "objective"]

#: The libraries :func:`objective` knows the conventions of.
LIBRARIES = ("xgboost", "lightgbm")


@dataclass(frozen=True)
class BuiltIn:
    """A library's built-in objective that is the same loss as a catalogue entry.

    Attributes:
        objective: the library's objective name (``"binary:logistic"``).
        params: the loss's options as the library's parameters (``{"huber_slope": δ}``).
        scale: the library's loss over symloss's (½ for squared error): gradient and Hessian
            are multiplied by it.
        multiclass_factor: the factor on the softmax Hessian's diagonal, from the number of
            classes K (XGBoost 2, LightGBM K/(K − 1)); ``None`` for an element-wise loss.
        hessian_floor: the library's lower bound on the Hessian (XGBoost: 1e-16).
        floor_after_weight: the bound applies to the weighted Hessian (XGBoost's softmax) rather
            than before the weight multiplies it (XGBoost's logistic).
        constant_hessian: the library takes the Hessian to be 1 (the pinball loss, whose exact
            second derivative is 0).
        max_delta_step: the Poisson safeguard's default (the Hessian times e^max_delta_step),
            ``None`` where the objective has none.
        reproducible: False where the built-in refits the leaf values after growing the tree
            (quantile), which no custom objective can do; the gradients still agree.
        source: where the convention is written in the library's source.
        note: what a user must know to train the same model.
        supports: which option values the built-in covers (``log_input=True`` for Poisson).
    """

    objective: str
    source: str
    params: Callable[[Mapping[str, Any]], dict[str, Any]] = field(default=lambda o: {})
    scale: float = 1.0
    multiclass_factor: Callable[[int], float] | None = None
    hessian_floor: float = 0.0
    floor_after_weight: bool = False
    constant_hessian: bool = False
    max_delta_step: float | None = None
    reproducible: bool = True
    note: str = ""
    supports: Callable[[Mapping[str, Any]], bool] = field(default=lambda o: True)


_XGB = "xgboost 3.2, src/objective/"
_LGB = "LightGBM 4.7, src/objective/"
_POISSON_NOTE = (
    "the Hessian is e^(z + max_delta_step) (default 0.7: a safeguard that damps the Newton "
    "step); max_delta_step=0 gives the exact Hessian e^z."
)

#: ``BUILTINS[library][loss name]``: the built-in objective that is that loss, and how it
#: differs from the exact per-sample derivatives.
BUILTINS: dict[str, dict[str, BuiltIn]] = {
    "xgboost": {
        # regression_loss.h LogisticClassification: grad p − y, hess max(p(1 − p), 1e-16), each
        # times the weight (regression_obj.cu).
        "binary_cross_entropy_with_logits": BuiltIn(
            "binary:logistic", _XGB + "regression_loss.h (LogisticClassification)",
            hessian_floor=1e-16,
            supports=lambda o: o.get("weight") is None and o.get("pos_weight") is None,
        ),
        # multiclass_obj.cu: h = max(2 p (1 − p) w, 1e-16), g = (p − [k = t]) w.
        "cross_entropy": BuiltIn(
            "multi:softprob", _XGB + "multiclass_obj.cu (SoftmaxMultiClassObj::GetGradient)",
            multiclass_factor=lambda k: 2.0, hessian_floor=1e-16, floor_after_weight=True,
            supports=lambda o: o.get("weight") is None and not o.get("label_smoothing"),
            note="K classes need params['num_class'] = K.",
        ),
        # regression_obj.cu PoissonRegression: grad (e^z − y) w, hess e^(z + max_delta_step) w;
        # count:poisson also clips each leaf at max_delta_step (both measured with 3.2.0).
        # XGBoost's development branch (poisson_obj.h, 2026) replaces the Hessian with the
        # pseudo-Hessian (e^z + y)/2 w (a Halley step): a later version needs a new entry.
        "poisson_nll_loss": BuiltIn(
            "count:poisson", _XGB + "regression_obj.cu (PoissonRegression)",
            max_delta_step=0.7,
            supports=lambda o: bool(o.get("log_input", True)),
            note="count:poisson " + _POISSON_NOTE + " It also clips every leaf value at "
            "max_delta_step (a tree parameter it sets to 0.7): train this objective with "
            "params['max_delta_step'] equal to the objective's to grow the same trees.",
        ),
        # regression_loss.h LinearSquareLoss: grad z − y, hess 1: the loss is ½(z − y)².
        "mse_loss": BuiltIn(
            "reg:squarederror", _XGB + "regression_loss.h (LinearSquareLoss)", scale=0.5,
        ),
        # pseudohuber_obj.h: grad r/√(1 + r²/δ²), hess δ²/((δ² + r²)√(1 + r²/δ²)).
        "pseudo_huber_loss": BuiltIn(
            "reg:pseudohubererror", _XGB + "pseudohuber_obj.h (PseudoHuberGradient)",
            params=lambda o: {"huber_slope": o["delta"]},
        ),
        # tweedie_obj.h: grad −y e^((1−ρ)z) + e^((2−ρ)z), hess −y(1−ρ)e^((1−ρ)z) + (2−ρ)e^((2−ρ)z).
        "tweedie_loss": BuiltIn(
            "reg:tweedie", _XGB + "tweedie_obj.h (TweedieGradient)",
            params=lambda o: {"tweedie_variance_power": o["power"]},
        ),
        # gamma_obj.h: grad 1 − y/e^z, hess y/e^z.
        "gamma_loss": BuiltIn("reg:gamma", _XGB + "gamma_obj.h (GammaDeviance)"),
        # quantile_obj.cu: d = predt − label; grad (1 − α) w if d ≥ 0 else −α w; hess w; then
        # the leaf values are refit to the weighted quantile of the residuals.
        "quantile_loss": BuiltIn(
            "reg:quantileerror", _XGB + "quantile_obj.cu (QuantileRegression)",
            params=lambda o: {"quantile_alpha": o["quantile"]}, constant_hessian=True,
            reproducible=False,
            note="reg:quantileerror refits each leaf value to a quantile of the residuals "
            "after the tree is grown; a custom objective cannot, so the margins differ.",
        ),
    },
    "lightgbm": {
        # binary_objective.hpp: grad −y' σ/(1 + e^(y' σ z)) (y' = ±1), hess |r|(σ − |r|), × w.
        "binary_cross_entropy_with_logits": BuiltIn(
            "binary", _LGB + "binary_objective.hpp (BinaryLogloss::GetGradients)",
            supports=lambda o: o.get("weight") is None and o.get("pos_weight") is None,
        ),
        # multiclass_objective.hpp: factor_ = K/(K − 1); hess factor_ p (1 − p), × w.
        "cross_entropy": BuiltIn(
            "multiclass", _LGB + "multiclass_objective.hpp (MulticlassSoftmax)",
            multiclass_factor=lambda k: k / (k - 1.0),
            supports=lambda o: o.get("weight") is None and not o.get("label_smoothing"),
            note="K classes need params['num_class'] = K.",
        ),
        # regression_objective.hpp RegressionPoissonLoss: grad e^z − y,
        # hess e^(z + poisson_max_delta_step), × w.
        "poisson_nll_loss": BuiltIn(
            "poisson", _LGB + "regression_objective.hpp (RegressionPoissonLoss)",
            max_delta_step=0.7,
            supports=lambda o: bool(o.get("log_input", True)),
            note="poisson " + _POISSON_NOTE + " LightGBM requires poisson_max_delta_step > 0.",
        ),
        # regression_objective.hpp RegressionL2loss: grad z − y, hess 1: ½(z − y)².
        "mse_loss": BuiltIn(
            "regression", _LGB + "regression_objective.hpp (RegressionL2loss)", scale=0.5,
        ),
        # regression_objective.hpp RegressionTweedieLoss: the same pair as XGBoost's.
        "tweedie_loss": BuiltIn(
            "tweedie", _LGB + "regression_objective.hpp (RegressionTweedieLoss)",
            params=lambda o: {"tweedie_variance_power": o["power"]},
        ),
        # regression_objective.hpp RegressionGammaLoss: grad 1 − y e^(−z), hess y e^(−z), × w.
        "gamma_loss": BuiltIn(
            "gamma", _LGB + "regression_objective.hpp (RegressionGammaLoss)",
        ),
        # regression_objective.hpp RegressionQuantileloss: grad 1 − α if z − y ≥ 0 else −α,
        # hess 1; IsRenewTreeOutput: leaf values are refit to a percentile of the residuals.
        "quantile_loss": BuiltIn(
            "quantile", _LGB + "regression_objective.hpp (RegressionQuantileloss)",
            params=lambda o: {"alpha": o["quantile"]}, constant_hessian=True,
            reproducible=False,
            note="LightGBM's quantile renews each leaf value to a percentile of the residuals "
            "after the tree is grown; a custom objective cannot, so the margins differ.",
        ),
    },
}


# The same losses under their other names: BCELoss∘Sigmoid ("bce") is BCE-with-logits,
# nll_loss of log_softmax is cross_entropy.
for _table in BUILTINS.values():
    _bce, _ce = _table["binary_cross_entropy_with_logits"], _table["cross_entropy"]
    _table["binary_cross_entropy"] = BuiltIn(**{
        **_bce.__dict__,
        "supports": lambda o: o.get("link") == "sigmoid" and o.get("weight") is None,
    })
    _table["nll_loss"] = BuiltIn(**{
        **_ce.__dict__,
        "supports": lambda o: o.get("link") == "log_softmax" and o.get("weight") is None,
    })


def _check_library(library: Any) -> str:
    if library not in LIBRARIES:
        raise choice_error("library", library, LIBRARIES)
    return str(library)


def _builtin(name: str, library: str, options: Mapping[str, Any]) -> BuiltIn | None:
    from . import derive

    d = derive(name, **options)
    entry = BUILTINS[library].get(d.name)
    if entry is None or not entry.supports(d.options):
        return None
    return entry


def builtin_params(name: str, library: str, **options: Any) -> dict[str, Any]:
    """The library's parameters for its built-in objective that is the loss ``name``.

    Args:
        name: a loss name or alias with a built-in twin (see :data:`BUILTINS`).
        library: ``"xgboost"`` or ``"lightgbm"``.
        **options: the loss's options.

    Returns:
        ``{"objective": ..., <the options as the library's parameters>}``.

    Raises:
        SymlossValueError: the library has no built-in objective for this loss and options.

    >>> builtin_params("pseudo_huber_loss", "xgboost", delta=2.0)
    {'objective': 'reg:pseudohubererror', 'huber_slope': 2.0}
    """
    from . import derive

    library = _check_library(library)
    entry = _builtin(name, library, options)
    if entry is None:
        known = ", ".join(sorted(BUILTINS[library]))
        raise SymlossValueError(
            f"{library} has no built-in objective for {name} with these options; it has one "
            f"for: {known}"
        )
    return {"objective": entry.objective, **entry.params(derive(name, **options).options)}


def _library_options(library: str | None, extra: dict[str, Any]) -> float | None:
    """Validate ``max_delta_step`` (the one library-side option) and return it."""
    if "max_delta_step" not in extra:
        return None
    value = extra["max_delta_step"]
    if library is None:
        raise SymlossTypeError(
            "max_delta_step is a boosting library's Poisson safeguard: pass library='xgboost' "
            "or library='lightgbm' with it"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SymlossTypeError(f"max_delta_step must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise SymlossValueError(f"max_delta_step must be finite and ≥ 0, got {value!r}")
    return float(value)


def objective(
    name: str, library: str | None = None, **options: Any
) -> Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]:
    r"""A custom objective: per-sample ∂ℓ/∂z and ∂²ℓ/∂z² of the unreduced loss.

    Without ``library``: ``fn(predictions, labels) -> (grad, hess)``, the exact derivatives.
    For an element-wise loss both have the predictions' shape. For a class-axis loss
    (``cross_entropy``) the predictions are ``(N, C)`` logits and the labels ``(N,)`` class
    indices (integers, or floats holding integers); ``grad`` is ``(N, C)`` and ``hess`` the
    Hessian's diagonal, :math:`(\sum_k a_k)\, p_i (1 - p_i)`.

    With ``library="xgboost"``: ``fn(preds, dtrain) -> (grad, hess)`` for
    ``xgboost.train(params, dtrain, obj=fn)``; with ``library="lightgbm"``:
    ``fn(preds, dataset) -> (grad, hess)`` for ``params["objective"] = fn``. The labels and
    sample weights are read from the data object, the weights multiply both derivatives, and
    the library's conventions for the losses it has built in (:data:`BUILTINS`) are followed,
    so that training reproduces the built-in objective:

    * ``mse_loss``: the libraries' squared error is ½(z − y)²: both derivatives are halved;
    * ``cross_entropy``: the Hessian's diagonal times 2 (XGBoost ``multi:softprob``) or
      K/(K − 1) (LightGBM ``multiclass``); set ``params["num_class"]``;
    * ``binary_cross_entropy_with_logits`` and ``cross_entropy`` with XGBoost: its lower bound
      1e-16 on the Hessian;
    * ``poisson_nll_loss``: the Hessian times e^max_delta_step, ``max_delta_step`` (default 0.7,
      both libraries' default) a safeguard that damps the step; XGBoost's ``count:poisson``
      also clips each leaf at ``max_delta_step``: put the same value in ``params`` (or 0 in
      both, for the exact Hessian). LightGBM requires ``poisson_max_delta_step > 0``;
    * ``quantile_loss``: the Hessian is the libraries' constant 1 (the exact one is 0). Their
      built-ins also refit the leaf values after each tree, which a custom objective cannot:
      the gradients agree, the trained margins do not.

    Every other loss gets its exact derivatives, weighted, in the library's signature.
    Margins: set a zero ``base_margin`` (XGBoost) / ``boost_from_average=False`` or an
    ``init_score`` (LightGBM) on both sides to compare with a built-in, which otherwise starts
    from an estimated intercept.

    Args:
        name: a loss name or alias (see :func:`symloss.losses`).
        library: ``None``, ``"xgboost"`` or ``"lightgbm"``.
        **options: the loss's options (``reduction`` is not allowed: the result is unreduced),
            and with a library and ``poisson_nll_loss``, ``max_delta_step``.

    Returns:
        The objective function; its arrays are float64 (float32 without a library when the
        predictions are float32).

    Raises:
        SymlossValueError, SymlossTypeError: an unknown library, a bad option.

    >>> import numpy as np, symloss
    >>> fn = symloss.objective("binary_cross_entropy_with_logits")
    >>> grad, hess = fn(np.array([0.0, 2.0]), np.array([1.0, 0.0]))
    >>> grad.round(4).tolist(), hess.round(4).tolist()
    ([-0.5, 0.8808], [0.25, 0.105])

    With XGBoost (``xgboost.train({"num_class": 3}, dtrain, 5, obj=fn)``):

    >>> import xgboost as xgb
    >>> fn = symloss.objective("cross_entropy", library="xgboost")
    >>> dtrain = xgb.DMatrix(np.zeros((2, 1)), label=[0, 2], weight=[1.0, 3.0])
    >>> grad, hess = fn(np.zeros((2, 3), dtype=np.float32), dtrain)
    >>> grad.round(4).tolist(), hess.round(4).tolist()
    ([[-0.6667, 0.3333, 0.3333], [1.0, 1.0, -2.0]], [[0.4444, 0.4444, 0.4444], [1.3333, 1.3333, 1.3333]])
    """
    from . import derive

    if "reduction" in options:
        raise SymlossValueError(
            "objective() returns unreduced per-sample derivatives; do not pass reduction "
            f"(got reduction={options['reduction']!r})"
        )
    extra = {k: options.pop(k) for k in ("max_delta_step",) if k in options}
    if library is not None:
        library = _check_library(library)
    mds = _library_options(library, extra)
    d = derive(name, reduction="none", **options)
    class_axis = d.spec.family == "class_axis"
    entry = _builtin(name, library, options) if library is not None else None
    if mds is not None and (entry is None or entry.max_delta_step is None):
        raise SymlossValueError(
            f"max_delta_step is the Poisson objective's safeguard; {d.name} has none"
        )

    def exact(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if class_axis and y.shape != x.shape and y.dtype.kind == "f":
            if np.any(y != np.round(y)):
                raise SymlossValueError(
                    f"{d.name}: labels of shape {y.shape} must be class indices (whole numbers)"
                )
            y = y.astype(np.int64)
        return d.grad_fn(x, y), d.hess_diag_fn(x, y)

    if library is None:

        def fn(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
            return exact(np.asarray(predictions), np.asarray(labels))

        return fn

    step = (entry.max_delta_step if mds is None else mds) if entry is not None else None

    def boost(preds: Any, data: Any) -> tuple[np.ndarray, np.ndarray]:
        labels, weights = _label_and_weight(data, library)
        x = np.asarray(preds, dtype=np.float64)
        shape = x.shape
        n = labels.shape[0] if labels.ndim else 1
        if class_axis:
            x = _as_rows(x, n, library)
        elif x.shape != labels.shape and x.size == labels.size:
            x = x.reshape(labels.shape)
        grad, hess = exact(x, labels)
        grad = np.asarray(grad, dtype=np.float64)
        hess = np.asarray(hess, dtype=np.float64)
        if entry is not None:
            if entry.constant_hessian:
                hess = np.ones_like(hess)
            if entry.multiclass_factor is not None:
                hess = hess * entry.multiclass_factor(x.shape[-1])
            if entry.scale != 1.0:
                grad, hess = grad * entry.scale, hess * entry.scale
            if step:
                hess = hess * math.exp(step)
            if entry.hessian_floor and not entry.floor_after_weight:
                hess = np.maximum(hess, entry.hessian_floor)
        if weights is not None:
            w = weights.reshape((-1,) + (1,) * (grad.ndim - 1)) if grad.ndim else weights
            grad, hess = grad * w, hess * w
        if entry is not None and entry.hessian_floor and entry.floor_after_weight:
            hess = np.maximum(hess, entry.hessian_floor)
        if class_axis and grad.shape != shape:  # the layout the library passed
            grad, hess = _from_rows(grad, shape, library), _from_rows(hess, shape, library)
        return grad, hess

    boost.__doc__ = (
        f"{library} custom objective for {d.name}: (preds, data) -> (grad, hess)"
        + (f" ({entry.note})" if entry is not None and entry.note else "")
    )
    return boost


def _label_and_weight(data: Any, library: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels and sample weights of an ``xgboost.DMatrix`` or a ``lightgbm.Dataset``."""
    try:
        labels = data.get_label()
        weights = data.get_weight()
    except AttributeError:
        kind = "xgboost.DMatrix" if library == "xgboost" else "lightgbm.Dataset"
        raise SymlossTypeError(
            f"a {library} objective is called as fn(preds, data) with a {kind}; got "
            f"{type(data).__name__} (for (predictions, labels), use library=None)"
        ) from None
    labels = np.asarray(labels, dtype=np.float64)
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.size == 0:  # XGBoost: an empty array when no weights were given
            weights = None
        elif weights.shape[0] != labels.shape[0]:
            raise SymlossValueError(
                f"{weights.shape[0]} sample weights for {labels.shape[0]} labels"
            )
    return labels, weights


def _as_rows(x: np.ndarray, n: int, library: str) -> np.ndarray:
    """Margins as ``(n, K)``: XGBoost ≥ 2 and LightGBM ≥ 4 pass them so; a flat array is
    row-major (older XGBoost) or class-major (older LightGBM)."""
    if x.ndim == 2 and x.shape[0] == n:
        return x
    if x.ndim == 1 and n and x.size % n == 0:
        k = x.size // n
        return x.reshape(n, k) if library == "xgboost" else x.reshape(k, n).T
    raise SymlossValueError(f"{x.shape} margins do not fit {n} labels")


def _from_rows(arr: np.ndarray, shape: tuple[int, ...], library: str) -> np.ndarray:
    if library == "xgboost":
        return arr.reshape(shape)
    return np.ascontiguousarray(arr.T).reshape(shape)
