"""Inverse models beyond the study (chapter 9): physics features, boosted trees with intervals, neighbours, a
better network, all fitted on data frames and evaluated on unseen recipes.

Every model maps a frame of samples (the workbook's columns) to a frame of the four targets in
original units, and learns them in original units too: where the data leave cAIBN_0 uncertain, the
estimate that minimises its squared error is the posterior mean of cAIBN_0, not the exponential of the
mean of its logarithm (a log target was tried and scores lower on unseen recipes; chapter 9).

- `BoostedModel` ('hgb'): scikit-learn's HistGradientBoosting, one model per target, on the physics
  features.  With the composite features it is two-stage: the monomer conversion is not observed, but
  cBA_0 is recovered almost exactly, so a first model predicts cBA_0 (out-of-fold inside the training
  rows, grouped by recipe, so the second stage sees honest estimates) and ln(cBA_0 / cBA_time) = -ln(1-X)
  becomes a feature.  Intervals are locally adaptive split-conformal (Lei et al. 2018): out-of-fold
  predictions of the training recipes (grouped folds) give absolute errors; a second boosted model
  learns their size sigma(x); the interval is prediction ± q·sigma(x), with q the empirical 90 %
  quantile of |error| / sigma over the training recipes.  (Quantile losses were tried first: on the
  design's discrete target levels HistGradientBoosting's quantile updates stall at the data quantiles.)
- `NeighbourModel` ('knn'): the mean recipe of the k nearest training samples in standardised MMD
  (+ log cBA_time, Mn, Mw) space, distance-weighted.  The baseline that memorises the database.
- `PhysicsNetwork` ('nn+'): the study's architecture on the physics features (standardised), early
  stopping on *held-out recipes* instead of the last 20 % of rows, batches of 128.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, cross_val_predict
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler

from .design import EXTRA_FEATURES, TARGETS, recipe_groups
from .features import physics_features
from .mmd import MMD_COLUMNS

HGB_DEFAULTS = {"learning_rate": 0.05, "max_iter": 500, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                "l2_regularization": 0.0}
HGB_SPACE = {"learning_rate": [0.03, 0.05, 0.1], "max_iter": [300, 500, 1000],
             "max_leaf_nodes": [15, 31, 63], "min_samples_leaf": [10, 20, 40],
             "l2_regularization": [0.0, 1.0]}
LEVEL = 0.90  # nominal coverage of the intervals
SCALE_FLOOR = 0.01  # smallest error scale, as a fraction of the target's standard deviation


def _frame(y: np.ndarray, index) -> pd.DataFrame:
    return pd.DataFrame(y, columns=TARGETS, index=index)


def _conversion_features(features: pd.DataFrame, cBA_0: np.ndarray) -> pd.DataFrame:
    """ln(cBA_0 / cBA_time) = -ln(1 - X) on a log scale, and log cBA_0, from an estimated cBA_0."""
    out = features.copy()
    depth = np.log(cBA_0) - np.log(10.0) * features["log_cBA_time"].to_numpy()
    out["log_conversion_depth"] = np.log(np.clip(depth, 1e-4, None))
    out["log_cBA_0_estimate"] = np.log(cBA_0)
    return out


class BoostedModel:
    """HistGradientBoosting per target on physics features, with quantile intervals."""

    name = "hgb"

    def __init__(self, features: str = "composite", params: dict[str, dict] | None = None,
                 intervals: bool = True, level: float = LEVEL, seed: int = 0):
        self.features, self.intervals, self.level, self.seed = features, intervals, level, seed
        self.params = {t: {**HGB_DEFAULTS, **((params or {}).get(t, {}))} for t in TARGETS}

    def _regressor(self, target: str) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(random_state=self.seed, **self.params[target])

    def _scale_model(self) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(random_state=self.seed, max_iter=200, learning_rate=0.05,
                                             min_samples_leaf=40)

    def _inputs(self, frame: pd.DataFrame, cBA_0: np.ndarray | None = None) -> pd.DataFrame:
        x = physics_features(frame, with_extras=self.features == "composite")
        return x if cBA_0 is None else _conversion_features(x, cBA_0)

    def training_matrix(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        """Inputs, targets and recipe groups of the training rows; fits the first stage
        and adds the conversion features from honest (out-of-fold) cBA_0 estimates."""
        y = frame[TARGETS].to_numpy(float)
        x = self._inputs(frame)
        groups = recipe_groups(frame)
        self.stage1 = None
        if self.features == "composite":
            self.stage1 = self._regressor("cBA_0").fit(x, y[:, 0])
            honest = cross_val_predict(self._regressor("cBA_0"), x, y[:, 0], groups=groups, cv=GroupKFold(3))
            x = _conversion_features(x, np.clip(honest, 1e-3, None))
        return x, y, groups

    def fit(self, frame: pd.DataFrame) -> BoostedModel:
        x, y, groups = self.training_matrix(frame)
        self.models, self.scales, self.q, self.floor = {}, {}, {}, {}
        for j, t in enumerate(TARGETS):
            self.models[t] = self._regressor(t).fit(x, y[:, j])
            if self.intervals:
                honest = cross_val_predict(self._regressor(t), x, y[:, j], groups=groups, cv=GroupKFold(3))
                error = np.abs(y[:, j] - honest)
                scale = cross_val_predict(self._scale_model(), x, error, groups=groups, cv=GroupKFold(3))
                self.scales[t] = self._scale_model().fit(x, error)
                self.floor[t] = SCALE_FLOOR * float(np.std(y[:, j]))
                score = error / np.maximum(scale, self.floor[t])
                n = len(score)
                self.q[t] = float(np.quantile(score, min(1.0, np.ceil((n + 1) * self.level) / n)))
        return self

    def _model_inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = self._inputs(frame)
        if self.stage1 is not None:
            x = _conversion_features(x, np.clip(self.stage1.predict(x), 1e-3, None))
        return x

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = self._model_inputs(frame)
        return _frame(np.column_stack([self.models[t].predict(x) for t in TARGETS]), frame.index)

    def predict_interval(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Lower and upper ends of the `level` interval of each target (concentrations and time >= 0)."""
        if not self.intervals:
            raise ValueError("this model was fitted without intervals")
        x = self._model_inputs(frame)
        centre = self.predict(frame).to_numpy()
        half = np.column_stack([self.q[t] * np.maximum(self.scales[t].predict(x), self.floor[t])
                                for t in TARGETS])
        low = np.where(np.array(TARGETS) == "temp", centre - half, np.maximum(centre - half, 0.0))
        return _frame(low, frame.index), _frame(centre + half, frame.index)


def _raw_inputs(frame: pd.DataFrame, features: str) -> np.ndarray:
    x = frame[MMD_COLUMNS].to_numpy(float)
    if features == "composite":
        x = np.hstack([np.log(frame[EXTRA_FEATURES].to_numpy(float)), x])
    return x


class NeighbourModel:
    """k nearest training samples in standardised MMD (+ log extras) space, distance-weighted."""

    name = "knn"

    def __init__(self, features: str = "composite", k: int = 5):
        self.features, self.k = features, k

    def fit(self, frame: pd.DataFrame) -> NeighbourModel:
        x = _raw_inputs(frame, self.features)
        self.scaler = StandardScaler().fit(x)
        self.model = KNeighborsRegressor(self.k, weights="distance").fit(
            self.scaler.transform(x), frame[TARGETS].to_numpy(float))
        return self

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = self.scaler.transform(_raw_inputs(frame, self.features))
        return _frame(self.model.predict(x), frame.index)


class PhysicsNetwork:
    """The study's network on physics features and log targets, early-stopped on held-out recipes."""

    name = "nn+"

    def __init__(self, features: str = "composite", seed: int = 42, validation: float = 0.2):
        self.features, self.seed, self.validation = features, seed, validation

    def fit(self, frame: pd.DataFrame) -> PhysicsNetwork:
        from .nn import fit_network  # TensorFlow only when a network is fitted

        x = physics_features(frame, with_extras=self.features == "composite").to_numpy(float)
        y = frame[TARGETS].to_numpy(float)
        train, val = next(GroupShuffleSplit(1, test_size=self.validation, random_state=self.seed)
                          .split(x, groups=recipe_groups(frame)))
        self.x_scaler, self.y_scaler = StandardScaler().fit(x[train]), StandardScaler().fit(y[train])
        xs, ys = self.x_scaler.transform(x), self.y_scaler.transform(y)
        self.model, self.history = fit_network(xs[train], ys[train], seed=self.seed,
                                               validation_data=(xs[val], ys[val]), batch_size=128)
        return self

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        from .nn import predict

        x = physics_features(frame, with_extras=self.features == "composite").to_numpy(float)
        y = self.y_scaler.inverse_transform(predict(self.model, self.x_scaler.transform(x)))
        return _frame(y, frame.index)


NEW_MODELS = {"hgb": BoostedModel, "knn": NeighbourModel, "nn+": PhysicsNetwork}


def new_model(model: str, features: str, seed: int = 42, params: dict | None = None,
              intervals: bool = False):
    """An unfitted model by its command-line name ('hgb', 'knn', 'nn+'); `params` and `intervals`
    apply to the boosted trees."""
    if model == "hgb":
        return BoostedModel(features, params=params, seed=seed, intervals=intervals)
    if model == "nn+":
        return PhysicsNetwork(features, seed=seed)
    if model == "knn":
        return NeighbourModel(features)
    raise ValueError(f"unknown model {model!r}; choose one of {list(NEW_MODELS)}")
