"""symloss's objectives against XGBoost's and LightGBM's built-ins: 5 rounds of training each.

For every loss a library has built in, train 5 rounds with ``symloss.objective(name,
library=...)`` and 5 with the built-in objective, on the same 600 rows (4 features, fixed
seeds, one thread), with and without sample weights, and print the largest difference of the
raw margins. Both runs start from a zero margin (XGBoost: a zero ``base_margin``; LightGBM:
``boost_from_average=False``), so that the built-in's estimated intercept does not enter.

    python benchmarks/boosting.py

tests/test_boosting.py runs the same cases and requires every difference ≤ 1e-5.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import symloss

N_ROWS, N_FEATURES, ROUNDS, CLASSES = 600, 4, 5, 3
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Case:
    """One comparison: a loss, its options, the built-in's parameters, the labels' kind.

    ``builtin`` is what the built-in run gets (objective and safeguards, spelled out);
    ``shared`` is what both runs get (tree parameters: ``num_class``, XGBoost's leaf clip
    ``max_delta_step``); ``objective`` the extra keywords of ``symloss.objective``.
    """

    library: str
    loss: str
    options: dict[str, Any]
    builtin: dict[str, Any]
    labels: str
    shared: dict[str, Any] = field(default_factory=dict)
    objective: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        shown = ",".join(f"{k}={v}" for k, v in {**self.options, **self.objective}.items())
        return f"{self.library}-{self.loss}" + (f"({shown})" if shown else "")


CASES = [
    Case("xgboost", "binary_cross_entropy_with_logits", {}, {"objective": "binary:logistic"},
         "binary"),
    Case("xgboost", "cross_entropy", {}, {"objective": "multi:softprob"}, "classes",
         shared={"num_class": CLASSES}),
    Case("xgboost", "binary_cross_entropy", {"link": "sigmoid"}, {"objective": "binary:logistic"},
         "binary"),
    Case("xgboost", "nll_loss", {"link": "log_softmax"}, {"objective": "multi:softprob"},
         "classes", shared={"num_class": CLASSES}),
    # count:poisson's safeguard: the Hessian times e^max_delta_step and every leaf clipped at
    # max_delta_step (0.7 by default). Off (0) for the exact Hessian; then at its default.
    Case("xgboost", "poisson_nll_loss", {}, {"objective": "count:poisson"}, "counts",
         shared={"max_delta_step": 0.0}, objective={"max_delta_step": 0.0}),
    Case("xgboost", "poisson_nll_loss", {}, {"objective": "count:poisson"}, "counts",
         shared={"max_delta_step": 0.7}, objective={"max_delta_step": 0.7}),
    Case("xgboost", "mse_loss", {}, {"objective": "reg:squarederror"}, "real"),
    Case("xgboost", "pseudo_huber_loss", {"delta": 1.5},
         {"objective": "reg:pseudohubererror", "huber_slope": 1.5}, "real"),
    Case("xgboost", "tweedie_loss", {"power": 1.3},
         {"objective": "reg:tweedie", "tweedie_variance_power": 1.3}, "tweedie"),
    Case("xgboost", "gamma_loss", {}, {"objective": "reg:gamma"}, "positive"),
    Case("lightgbm", "binary_cross_entropy_with_logits", {}, {"objective": "binary"}, "binary"),
    Case("lightgbm", "cross_entropy", {}, {"objective": "multiclass"}, "classes",
         shared={"num_class": CLASSES}),
    Case("lightgbm", "nll_loss", {"link": "log_softmax"}, {"objective": "multiclass"}, "classes",
         shared={"num_class": CLASSES}),
    Case("lightgbm", "binary_cross_entropy", {"link": "sigmoid"}, {"objective": "binary"},
         "binary"),
    # LightGBM's poisson requires poisson_max_delta_step > 0 (default 0.7): the Hessian is
    # e^(z + 0.7); symloss's objective takes the same max_delta_step.
    Case("lightgbm", "poisson_nll_loss", {},
         {"objective": "poisson", "poisson_max_delta_step": 0.7}, "counts",
         objective={"max_delta_step": 0.7}),
    Case("lightgbm", "mse_loss", {}, {"objective": "regression"}, "real"),
    Case("lightgbm", "tweedie_loss", {"power": 1.3},
         {"objective": "tweedie", "tweedie_variance_power": 1.3}, "tweedie"),
    Case("lightgbm", "gamma_loss", {}, {"objective": "gamma"}, "positive"),
]


def data(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, labels, weights)`` for a kind of labels, from fixed seeds."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N_ROWS, N_FEATURES))
    signal = x @ np.array([0.8, -0.5, 0.3, 0.0])
    weights = rng.uniform(0.2, 2.0, N_ROWS)
    if kind == "binary":
        y = (rng.uniform(size=N_ROWS) < 1 / (1 + np.exp(-signal))).astype(np.float64)
    elif kind == "classes":
        scores = np.stack([signal, -signal, 0.5 * x[:, 1]], axis=1) + rng.gumbel(
            size=(N_ROWS, CLASSES))
        y = np.argmax(scores, axis=1).astype(np.float64)
    elif kind == "counts":
        y = rng.poisson(np.exp(signal)).astype(np.float64)
    elif kind == "real":
        y = signal + rng.standard_normal(N_ROWS)
    elif kind == "positive":
        y = rng.gamma(2.0, np.exp(signal) / 2.0)
    elif kind == "tweedie":  # compound Poisson–Gamma: zeros and positive amounts
        y = rng.poisson(np.exp(signal)) * rng.gamma(2.0, 0.5, N_ROWS)
    else:  # pragma: no cover - a case with an unknown kind is a bug in this table
        raise AssertionError(kind)
    return x, y, weights


def _before(case: Case) -> Any:
    """The objective as the README showed it before ``library=``: the exact derivatives of
    ``symloss.objective(name)`` on the labels, no weights, no library conventions."""
    fn = symloss.objective(case.loss, **case.options)
    return lambda preds, data: fn(preds, data.get_label())


def train_xgboost(case: Case, weighted: bool, custom: bool | str) -> np.ndarray:
    import xgboost as xgb

    x, y, w = data(case.labels)
    dtrain = xgb.DMatrix(x, label=y, weight=w if weighted else None, nthread=1)
    k = case.shared.get("num_class", 1)
    dtrain.set_base_margin(np.zeros((N_ROWS, k)) if k > 1 else np.zeros(N_ROWS))
    params = {"nthread": 1, "seed": 0, "max_depth": 3, "eta": 0.3, **case.shared}
    if custom == "before":
        booster = xgb.train(params, dtrain, ROUNDS, obj=_before(case))
    elif custom:
        fn = symloss.objective(case.loss, library="xgboost", **case.options, **case.objective)
        booster = xgb.train(params, dtrain, ROUNDS, obj=fn)
    else:
        booster = xgb.train({**params, **case.builtin}, dtrain, ROUNDS)
    return np.asarray(booster.predict(dtrain, output_margin=True), dtype=np.float64)


def train_lightgbm(case: Case, weighted: bool, custom: bool | str) -> np.ndarray:
    import lightgbm as lgb

    x, y, w = data(case.labels)
    dataset = lgb.Dataset(x, label=y, weight=w if weighted else None, params={"verbose": -1})
    params = {"verbose": -1, "num_threads": 1, "deterministic": True, "seed": 0,
              "num_leaves": 7, "learning_rate": 0.3, "boost_from_average": False,
              **case.shared}
    if custom == "before":
        params["objective"] = _before(case)
    elif custom:
        params["objective"] = symloss.objective(case.loss, library="lightgbm", **case.options,
                                                **case.objective)
    else:
        params.update(case.builtin)
    booster = lgb.train(params, dataset, ROUNDS)
    return np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)


def margin_difference(case: Case, weighted: bool, ours: bool | str = True) -> float:
    """max |raw margin with symloss's objective − raw margin with the built-in|
    (``ours="before"``: with the exact derivatives and no library conventions)."""
    train = train_xgboost if case.library == "xgboost" else train_lightgbm
    ours, theirs = train(case, weighted, ours), train(case, weighted, False)
    return float(np.max(np.abs(ours - theirs)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    import lightgbm
    import xgboost

    print(f"xgboost {xgboost.__version__}, lightgbm {lightgbm.__version__}; {N_ROWS} rows, "
          f"{N_FEATURES} features, {ROUNDS} rounds, one thread\n")
    print("max |raw margin, symloss's objective − raw margin, built-in| after 5 rounds; in "
          "parentheses, the same with the exact derivatives and no library conventions "
          "(objective(name) on the labels, as the README showed before library=)\n")
    print("| library | loss | built-in | unweighted | weighted |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for case in CASES:
        diffs = [margin_difference(case, weighted) for weighted in (False, True)]
        before = [margin_difference(case, weighted, "before") for weighted in (False, True)]
        worst = max(worst, *diffs)
        builtin = ", ".join(f"{k}={v}" for k, v in case.builtin.items())
        shared = ", ".join(f"{k}={v}" for k, v in case.shared.items() if k != "num_class")
        print(f"| {case.library} | {case.id.split('-', 1)[1]} | {builtin}"
              + (f" ({shared} in both)" if shared else "")
              + f" | {diffs[0]:.2e} ({before[0]:.2g}) | {diffs[1]:.2e} ({before[1]:.2g}) |")
    print(f"\nlargest difference: {worst:.2e} (tolerance {TOLERANCE:g})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
