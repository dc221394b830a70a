"""Hyperparameter searches: the study's random-forest search over rows, and nested searches tuned only
inside the training recipes of each outer grouped fold.

The study's search (`run_study_search`, `data/hyperparameters.json`) is RandomizedSearchCV(n_iter=20,
cv=3) on the study's split.  In the nested searches the outer loop is the grouped 5-fold split of
`evaluation.recipe_fold_indices`; inside each training fold an inner GroupKFold(3) over its recipes
scores the candidates, so no test recipe ever influences a choice.  Results (the winner and the inner
scores of every candidate, per outer fold) are stored in `data/nested_tuning.json`; chapter 9 refits
each outer fold with its own winner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import GroupKFold, ParameterSampler, RandomizedSearchCV, cross_val_score
from tqdm import tqdm

from .dataset import load_dataset
from .design import FEATURE_SETS, TARGETS, recipe_groups
from .evaluation import recipe_fold_indices
from .hyperparameters import NESTED_SEARCH, STUDY_SEARCH, stamp, write_stored
from .new_models import HGB_SPACE, BoostedModel
from .study_models import RF_SEARCH_SPACE, scaled_split, study_split, tune_rf
from .workers import n_jobs


def run_study_search(data: Path | str | None = None, out: Path | str = STUDY_SEARCH,
                     verbose: int = 0) -> dict:
    """The study's RF search for both feature sets; stores the winners with date and checksum."""
    frame = load_dataset(data)
    stored = {**stamp(data), "search_space": RF_SEARCH_SPACE}
    for features in FEATURE_SETS:
        search = tune_rf(study_split(frame, features), verbose=verbose)
        stored[f"rf_{features}"] = {
            "params": search.best_params_, "cv_r2": float(search.best_score_),
            "candidates": [{**p, "cv_r2": float(s)} for p, s in
                           zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])],
        }
    write_stored(stored, out)
    return stored


def nested_rf(frame: pd.DataFrame, features: str = "composite", n_candidates: int = 6,
              seed: int = 42) -> list[dict]:
    """The study's random-forest search space, searched inside each outer training fold."""
    out = []
    for train, test in tqdm(recipe_fold_indices(frame), desc=f"nested rf {features}"):
        split = scaled_split(frame, features, train, test)
        search = RandomizedSearchCV(RandomForestRegressor(random_state=seed), RF_SEARCH_SPACE,
                                    n_iter=n_candidates, cv=GroupKFold(3), random_state=seed, n_jobs=n_jobs())
        search.fit(split.X_train, split.Y_train, groups=recipe_groups(frame.iloc[train]))
        out.append({"params": search.best_params_, "inner_r2": float(search.best_score_),
                    "candidates": [{**p, "inner_r2": float(s)} for p, s in
                                   zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])]})
    return out


def nested_hgb(frame: pd.DataFrame, features: str = "composite", n_candidates: int = 8,
               seed: int = 42) -> list[dict]:
    """HistGradientBoosting per target, candidates from HGB_SPACE scored by inner grouped R²."""
    candidates = list(ParameterSampler(HGB_SPACE, n_candidates, random_state=seed))
    out = []
    for train, _ in tqdm(recipe_fold_indices(frame), desc=f"nested hgb {features}"):
        x, y, groups = BoostedModel(features).training_matrix(frame.iloc[train])
        fold = {"params": {}, "inner_r2": {}, "candidates": {}}
        for j, t in enumerate(TARGETS):
            # one process: each HistGradientBoosting fit already uses every core (OpenMP)
            scores = [float(np.mean(cross_val_score(HistGradientBoostingRegressor(random_state=0, **c), x,
                                                    y[:, j], groups=groups, cv=GroupKFold(3))))
                      for c in candidates]
            best = int(np.argmax(scores))
            fold["params"][t], fold["inner_r2"][t] = candidates[best], scores[best]
            fold["candidates"][t] = scores
        out.append(fold)
    return out


def run_nested(data: Path | str | None = None, out: Path | str = NESTED_SEARCH) -> dict:
    """Both nested searches, composite features, stored with date and the workbook's checksum."""
    frame = load_dataset(data)
    stored = {**stamp(data), "outer": "GroupKFold(5) over recipes",
              "inner": "GroupKFold(3) over the training recipes",
              "hgb_space": HGB_SPACE, "rf_space": RF_SEARCH_SPACE,
              "hgb_composite": nested_hgb(frame, "composite"), "rf_composite": nested_rf(frame, "composite")}
    write_stored(stored, out)
    return stored
