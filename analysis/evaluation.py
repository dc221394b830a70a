"""Evaluation of an inverse model on the study's row split or on unseen recipes (grouped folds).

`rows`: the study's protocol (scalers on all rows, one 80/20 split over rows, random_state 42).
`recipes`: GroupKFold over recipes (all rows of a recipe in one fold), scalers fitted inside each
training fold; metrics pooled over the out-of-fold predictions, with the fold-to-fold spread.
Hyperparameters are the stored ones (`make tune`), so an evaluation takes minutes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from .dataset import TARGETS
from .models import (
    FEATURE_SETS,
    Split,
    fit_predict,
    metrics,
    recipe_groups,
    scaled_split,
    stored_hyperparameters,
    study_split,
)

MODELS = ("rf", "nn")
SPLITS = ("rows", "recipes")


def grouped_folds(frame: pd.DataFrame, features: str, n_splits: int = 5) -> list[Split]:
    """GroupKFold splits with scalers fitted on each training fold only."""
    folds = GroupKFold(n_splits=n_splits).split(frame, groups=recipe_groups(frame))
    return [scaled_split(frame, features, train, test) for train, test in folds]


def evaluate(frame: pd.DataFrame, model: str = "rf", features: str = "composite", split: str = "rows",
             n_splits: int = 5, seed: int = 42) -> dict:
    """Metrics of one configuration: per-target r2 and rel_mae (dicts by target), global_r2, and for
    grouped folds the per-fold global R²."""
    if features not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {features!r}; choose one of {list(FEATURE_SETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    tuned = stored_hyperparameters()
    if split == "rows":
        s = study_split(frame, features, random_state=seed)
        m = metrics(s.original(s.Y_test), fit_predict(model, s, tuned, features, seed))
        folds = [m["global_r2"]]
    else:
        y_true = frame[TARGETS].to_numpy(float)
        y_pred = np.empty_like(y_true)
        folds = []
        for s in grouped_folds(frame, features, n_splits):
            y_pred[s.test_index] = fit_predict(model, s, tuned, features, seed)
            folds.append(metrics(y_true[s.test_index], y_pred[s.test_index])["global_r2"])
        m = metrics(y_true, y_pred)
    return {"model": model, "features": features, "split": split,
            "r2": dict(zip(TARGETS, m["r2"])), "rel_mae": dict(zip(TARGETS, m["rel_mae"])),
            "global_r2": m["global_r2"], "global_mse": m["global_mse"], "fold_global_r2": folds}
