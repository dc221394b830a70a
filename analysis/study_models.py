"""The study's inverse models and its evaluation protocol, reproduced exactly.

Protocol (seed-study.md): StandardScaler on X and on Y fitted on *all* rows before the split (a known
weakness, kept here to reproduce the study), `train_test_split(test_size=0.2, random_state=42)` over
rows, a native multi-output RandomForestRegressor tuned by RandomizedSearchCV(n_iter=20, cv=3,
random_state=42), and a Keras network (`nn`); metrics in original units on the test rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import RandomizedSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from .design import FEATURE_SETS, TARGETS
from .memo import cached
from .metrics import metrics
from .workers import n_jobs

RF_SEARCH_SPACE = {"n_estimators": [100, 200, 500], "max_depth": [None, 10, 20, 30],
                   "min_samples_split": [2, 5, 10], "min_samples_leaf": [1, 2, 4]}

# Published results of the study (seed-study.md): relative MAE in %, R² per target; global MSE and R².
STUDY_RESULTS = {
    "RF, MMD only": {"rel_mae": [5.39, 24.77, 16.10, 14.39], "r2": [0.9445, 0.1851, 0.5685, 0.5999],
                     "global_mse": 113545.56, "global_r2": 0.5745},
    "RF, composite": {"rel_mae": [2.25, 23.32, 7.52, 8.71], "r2": [0.9869, 0.2386, 0.8997, 0.8562],
                      "global_mse": 40822.83, "global_r2": 0.7454},
    "NN, composite": {"rel_mae": [1.77, 15.22, 3.93, 6.24], "r2": [0.9940, 0.5927, 0.9754, 0.9193],
                      "global_mse": 22916.60, "global_r2": 0.8703},
}


@dataclass
class Split:
    """Scaled train/test arrays of one feature set, and the scalers to go back to original units."""

    features: list[str]
    X_train: np.ndarray
    X_test: np.ndarray
    Y_train: np.ndarray
    Y_test: np.ndarray
    x_scaler: StandardScaler
    y_scaler: StandardScaler
    test_index: np.ndarray

    def original(self, y_scaled: np.ndarray) -> np.ndarray:
        return self.y_scaler.inverse_transform(y_scaled)


def scaled_split(frame: pd.DataFrame, features: str, train: np.ndarray, test: np.ndarray,
                 scale_on_all_rows: bool = False) -> Split:
    """Train/test arrays of one feature set, standardised with scalers fitted on the training rows
    (or, as the study did, on all rows)."""
    cols = FEATURE_SETS[features]
    X, Y = frame[cols].to_numpy(float), frame[TARGETS].to_numpy(float)
    fit_rows = slice(None) if scale_on_all_rows else train
    x_scaler, y_scaler = StandardScaler().fit(X[fit_rows]), StandardScaler().fit(Y[fit_rows])
    X, Y = x_scaler.transform(X), y_scaler.transform(Y)
    return Split(cols, X[train], X[test], Y[train], Y[test], x_scaler, y_scaler, test)


def study_split(frame: pd.DataFrame, features: str = "composite", random_state: int = 42) -> Split:
    """The study's split: scalers fitted on all rows, then 80/20 over rows."""
    train, test = train_test_split(np.arange(len(frame)), test_size=0.2, random_state=random_state)
    return scaled_split(frame, features, train, test, scale_on_all_rows=True)


# --- random forest -------------------------------------------------------------------------------

def tune_rf(split: Split, random_state: int = 42, verbose: int = 0) -> RandomizedSearchCV:
    """The study's search: 20 candidates x 3 folds over RF_SEARCH_SPACE."""
    search = RandomizedSearchCV(RandomForestRegressor(random_state=random_state), RF_SEARCH_SPACE,
                                n_iter=20, cv=3, random_state=random_state, n_jobs=n_jobs(),
                                verbose=verbose)
    return search.fit(split.X_train, split.Y_train)


def fit_rf(split: Split, params: dict, random_state: int = 42) -> RandomForestRegressor:
    model = RandomForestRegressor(random_state=random_state, n_jobs=n_jobs(), **params)
    return model.fit(split.X_train, split.Y_train)


def fit_predict(model: str, split: Split, tuned: dict, features: str, seed: int) -> np.ndarray:
    """Fit the study's 'rf' (stored hyperparameters) or 'nn' on the training rows; test predictions
    in original units."""
    if model == "rf":
        forest = fit_rf(split, tuned[f"rf_{features}"]["params"], random_state=seed)
        return split.original(forest.predict(split.X_test))
    if model == "nn":
        from .nn import fit_network, predict  # TensorFlow is imported only when a network is fitted

        net, _ = fit_network(split.X_train, split.Y_train, seed=seed)
        return split.original(predict(net, split.X_test))
    raise ValueError(f"unknown model {model!r}; choose 'rf' or 'nn'")


@dataclass
class StudyFit:
    """What the book uses of one fit of the study's protocol (split by `seed`): the test rows, their
    true and predicted targets (original units), and the forest's importances or the network's history."""

    model: str
    features: list[str]
    seed: int
    test_index: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    importances: pd.Series | None = None
    history: dict | None = None

    @property
    def metrics(self) -> dict:
        return metrics(self.y_true, self.y_pred)


def study_fit(frame: pd.DataFrame, model: str, features: str, tuned: dict | None = None,
              seed: int = 42) -> StudyFit:
    """The study's 'rf' (stored hyperparameters) or 'nn' on the study's split of `seed`.  Cached on disk
    (`memo`, keyed on the rows, the model, the features, the hyperparameters and the seed), so that the
    chapters that show the same fit (5, 6 and the seed 42 of 7) compute it once."""
    rows = np.ascontiguousarray(frame[TARGETS + FEATURE_SETS[features]].to_numpy(float)).tobytes()
    params = tuned[f"rf_{features}"]["params"] if model == "rf" and tuned else None
    if model == "rf" and params is None:
        raise ValueError("the study's forest needs its stored hyperparameters (`tuned`)")
    key = rows + repr((model, features, seed, sorted((params or {}).items()))).encode()
    return cached("study_fit", key, lambda: _study_fit(frame, model, features, params, seed))


def _study_fit(frame: pd.DataFrame, model: str, features: str, params: dict | None, seed: int) -> StudyFit:
    split = study_split(frame, features, random_state=seed)
    y_true = split.original(split.Y_test)
    if model == "rf":
        forest = fit_rf(split, params, random_state=seed)
        ranked = pd.Series(forest.feature_importances_, index=split.features).sort_values(ascending=False)
        return StudyFit(model, split.features, seed, split.test_index, y_true,
                        split.original(forest.predict(split.X_test)), importances=ranked)
    if model == "nn":
        from .nn import fit_network, predict  # TensorFlow is imported only when a network is fitted

        net, history = fit_network(split.X_train, split.Y_train, seed=seed)
        return StudyFit(model, split.features, seed, split.test_index, y_true,
                        split.original(predict(net, split.X_test)), history=history)
    raise ValueError(f"unknown model {model!r}; choose 'rf' or 'nn'")


# --- run-to-run spread -----------------------------------------------------------------------------

def _replicate_one(frame: pd.DataFrame, tuned: dict, seed: int, name: str, features: str) -> dict:
    """One model of `replicate`, fitted in a worker process on one core."""
    os.environ["POLYINVERSE_JOBS"] = "1"
    m = study_fit(frame, "rf" if name.startswith("RF") else "nn", features, tuned, seed).metrics
    row = {"seed": seed, "model": name, "global_r2": m["global_r2"], "global_mse": m["global_mse"]}
    row.update({f"r2 {t}": v for t, v in zip(TARGETS, m["r2"])})
    row.update({f"rel_mae {t}": v for t, v in zip(TARGETS, m["rel_mae"])})
    return row


def replicate(frame: pd.DataFrame, tuned: dict, seeds: tuple[int, ...] = (42, 1, 2),
              with_network: bool = True) -> pd.DataFrame:
    """The study's three models, refitted with the stored hyperparameters for several seeds.

    Each seed changes both the row split and the model's own randomness (bootstrap, weights), so the
    spread is what a rerun of the study with another seed would show.  One row per seed and model.
    The fits run in parallel worker processes, one core each (a forest's result does not depend on
    its number of jobs, and the network is single-threaded anyway).
    """
    from joblib import Parallel, delayed

    fits = [("RF, MMD only", "mmd"), ("RF, composite", "composite")]
    if with_network:
        fits.append(("NN, composite", "composite"))
    tasks = [(seed, name, features) for seed in seeds for name, features in fits]
    # the networks take longest: start them first
    order = sorted(range(len(tasks)), key=lambda k: not tasks[k][1].startswith("NN"))
    rows = Parallel(n_jobs=n_jobs(), backend="loky")(
        delayed(_replicate_one)(frame, tuned, *tasks[k]) for k in order)
    by_task = dict(zip(order, rows))
    return pd.DataFrame([by_task[k] for k in range(len(tasks))])


def spread_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each metric, next to the study's published value."""
    out = {}
    for name, group in runs.groupby("model", sort=False):
        study = STUDY_RESULTS[name]
        for j, t in enumerate(TARGETS):
            out[(name, f"R² {t}")] = (study["r2"][j], group[f"r2 {t}"].mean(), group[f"r2 {t}"].std())
        out[(name, "global R²")] = (study["global_r2"], group.global_r2.mean(), group.global_r2.std())
    table = pd.DataFrame(out, index=["study", "ours (mean)", "ours (sd over seeds)"]).T
    return table
