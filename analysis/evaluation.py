"""Evaluation of an inverse model on the study's row split or on unseen recipes (grouped folds).

`rows`: the study's protocol (scalers on all rows, one 80/20 split over rows, random_state 42).
`recipes`: GroupKFold over recipes (all rows of a recipe in one fold), scalers fitted inside each
training fold; metrics pooled over the out-of-fold predictions, with the fold-to-fold spread.
Hyperparameters are the stored ones (`make tune`), so an evaluation takes minutes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import GroupKFold

from .design import FEATURE_SETS, TARGETS, recipe_groups
from .hyperparameters import NESTED_SEARCH, STUDY_SEARCH, load_stored
from .metrics import metrics
from .new_models import NEW_MODELS, new_model
from .study_models import fit_predict, scaled_split, study_split
from .workers import n_jobs

STUDY_MODELS = ("rf", "nn")
MODELS = STUDY_MODELS + tuple(NEW_MODELS) + ("best",)
BEST = "hgb"  # the model with the highest global R² on unseen recipes (chapter 9)
SPLITS = ("rows", "recipes")


def row_split_indices(frame: pd.DataFrame, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The study's 80/20 split over rows."""
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(frame)), test_size=0.2, random_state=seed)


def recipe_fold_indices(frame: pd.DataFrame, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold over recipes: every recipe's rows in exactly one test fold."""
    return list(GroupKFold(n_splits=n_splits).split(frame, groups=recipe_groups(frame)))


def out_of_fold(frame: pd.DataFrame, model: str, features: str, seed: int = 42, n_splits: int = 5,
                fold_params: list[dict] | None = None, intervals: bool = False,
                folds: list[int] | None = None, data: str | None = None) -> dict:
    """Predictions on unseen recipes: each grouped fold's test rows predicted by a model fitted on the
    other folds (only the folds in `folds`, if given; other rows stay NaN).  Study models ('rf', 'nn')
    use the stored hyperparameters and in-fold scalers; 'hgb' can take per-fold parameters (nested
    search) and return its intervals.  `data` names the workbook the frame came from (for the check of
    the stored hyperparameters)."""
    pred = pd.DataFrame(np.nan, index=frame.index, columns=TARGETS)
    low, high = pred.copy(), pred.copy()
    scores = []
    tuned = load_stored(STUDY_SEARCH, data) if model in STUDY_MODELS else None
    for f, (train, test) in enumerate(recipe_fold_indices(frame, n_splits)):
        if folds is not None and f not in folds:
            continue
        rows = frame.iloc[test]
        if model in STUDY_MODELS:
            if model == "rf" and fold_params:
                tuned = {f"rf_{features}": {"params": fold_params[f]}}
            split = scaled_split(frame, features, train, test)
            pred.iloc[test] = fit_predict(model, split, tuned, features, seed)
        else:
            m = new_model(model, features, seed, fold_params[f] if fold_params else None, intervals)
            m.fit(frame.iloc[train])
            pred.iloc[test] = m.predict(rows).to_numpy()
            if intervals:
                lo, hi = m.predict_interval(rows)
                low.iloc[test], high.iloc[test] = lo.to_numpy(), hi.to_numpy()
        scores.append(metrics(rows[TARGETS].to_numpy(float), pred.iloc[test].to_numpy())["global_r2"])
    out = {"prediction": pred, "fold_global_r2": scores}
    if intervals:
        out["low"], out["high"] = low, high
    return out


def row_split_prediction(frame: pd.DataFrame, model: str, features: str, seed: int = 42,
                         data: str | None = None) -> pd.DataFrame:
    """Predictions on the study's test rows (row split, seed `seed`); other rows NaN.  Study models use
    the study's protocol exactly (scalers on all rows)."""
    pred = pd.DataFrame(np.nan, index=frame.index, columns=TARGETS)
    if model in STUDY_MODELS:
        s = study_split(frame, features, random_state=seed)
        pred.iloc[s.test_index] = fit_predict(model, s, load_stored(STUDY_SEARCH, data), features, seed)
    else:
        train, test = row_split_indices(frame, seed)
        m = new_model(model, features, seed)
        pred.iloc[test] = m.fit(frame.iloc[train]).predict(frame.iloc[test]).to_numpy()
    return pred


def evaluate(frame: pd.DataFrame, model: str = "rf", features: str = "composite", split: str = "rows",
             n_splits: int = 5, seed: int = 42, data: str | None = None) -> dict:
    """Metrics of one configuration: per-target r2 and rel_mae (dicts by target), global_r2, and for
    grouped folds the per-fold global R².  'best' is the best model of chapter 9 (`BEST`).  `data` is
    the workbook the frame was read from: stored hyperparameters are checked against it."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {MODELS}")
    if features not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {features!r}; choose one of {list(FEATURE_SETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if model == "best":
        return {**evaluate(frame, BEST, features, split, n_splits, seed, data), "model": "best", "best": BEST}
    if split == "rows":
        pred = row_split_prediction(frame, model, features, seed, data)
        tested = pred.notna().all(axis=1).to_numpy()
        m = metrics(frame.loc[tested, TARGETS].to_numpy(float), pred[tested].to_numpy())
        folds = [m["global_r2"]]
    else:
        params = nested_params(model, features, data) if n_splits == 5 else None
        oof = out_of_fold(frame, model, features, seed, n_splits, fold_params=params, data=data)
        m = metrics(frame[TARGETS].to_numpy(float), oof["prediction"].to_numpy())
        folds = oof["fold_global_r2"]
    return _result(model, features, split, m, folds)


def nested_params(model: str, features: str, data: str | None = None) -> list[dict] | None:
    """Per-fold hyperparameters of the nested search (5 outer folds), if it covers this configuration;
    None otherwise (stored or default hyperparameters are used)."""
    if not NESTED_SEARCH.exists():
        return None
    stored = load_stored(NESTED_SEARCH, data)
    key = f"{model}_{features}"
    return [fold["params"] for fold in stored[key]] if key in stored else None


def _result(model: str, features: str, split: str, m: dict, folds: list[float]) -> dict:
    return {"model": model, "features": features, "split": split,
            "r2": dict(zip(TARGETS, m["r2"])), "rel_mae": dict(zip(TARGETS, m["rel_mae"])),
            "global_r2": m["global_r2"], "global_mse": m["global_mse"], "fold_global_r2": folds}


def learning_curve(frame: pd.DataFrame, model: str = "hgb", features: str = "composite",
                   fractions: tuple[float, ...] = (0.25, 0.5, 1.0), n_splits: int = 5,
                   folds: tuple[int, ...] | None = None, seed: int = 42) -> pd.DataFrame:
    """R² on unseen recipes against the number of training recipes: in each grouped fold (those in
    `folds`, default all), the model is fitted on a random subset (by recipe) of the training recipes.
    One row per fold and fraction."""
    rng = np.random.default_rng(seed)
    groups = recipe_groups(frame)
    rows = []
    for f, (train, test) in enumerate(recipe_fold_indices(frame, n_splits)):
        if folds is not None and f not in folds:
            continue
        recipes = np.unique(groups[train])
        order = rng.permutation(recipes)
        for fraction in fractions:
            keep_recipes = max(2, round(fraction * len(recipes)))
            keep = np.isin(groups[train], order[:keep_recipes])
            m = new_model(model, features, seed)
            pred = m.fit(frame.iloc[train[keep]]).predict(frame.iloc[test]).to_numpy()
            r2 = metrics(frame.iloc[test][TARGETS].to_numpy(float), pred)["r2"]
            rows.append({"fold": f, "fraction": fraction, "training recipes": int(keep_recipes),
                         **dict(zip(TARGETS, r2)), "global": float(np.mean(r2))})
    return pd.DataFrame(rows)


def _out_of_fold_task(frame: pd.DataFrame, spec: dict) -> dict:
    return out_of_fold(frame, **{"features": "composite", **spec})


def unseen_predictions(frame: pd.DataFrame, specs: dict[str, dict],
                       jobs: int | None = None) -> dict[str, dict]:
    """`out_of_fold` for each named configuration (its keyword arguments; features default to
    'composite'), in parallel worker processes, one core each (the results do not depend on it: every
    model is seeded and single-threaded there)."""
    names = list(specs)
    # the networks take longest: start them first
    order = sorted(names, key=lambda n: specs[n]["model"] not in ("nn", "nn+"))
    results = Parallel(n_jobs=jobs or n_jobs(), backend="loky")(
        delayed(_out_of_fold_task)(frame, specs[name]) for name in order)
    by_name = dict(zip(order, results))
    return {name: by_name[name] for name in names}


def is_network(name: str) -> bool:
    """A chapter's model name for a Keras network ('NN, ...', 'nn+, ...'): trained for hundreds of
    epochs, it amplifies the last bits of the processor's sums, so its digits differ between CPUs and the
    chapters check it within bands, not to the digit."""
    return name.startswith(("NN", "nn"))


def split_networks(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """The chapter's model names (any iterable, e.g. a table's index) as (the other models, the networks),
    each in the given order: the others are checked to the digit, the networks within bands."""
    names = list(names)
    return [n for n in names if not is_network(n)], [n for n in names if is_network(n)]


def unseen_lines(table: pd.DataFrame, unseen: dict[str, dict], names: list[str]) -> str:
    """Per named model: R² per target and global, pooled over its held-out folds, then each fold's."""
    lines = []
    for name in names:
        row = table.loc[name]
        r2 = [round(float(row[f"R² {t}"]), 3) for t in TARGETS]
        folds = [round(float(v), 3) for v in unseen[name]["fold_global_r2"]]
        lines += [f"{name:30s} R² {r2} global {row['global R²']:.3f}", f"{'':30s} folds {folds}"]
    return "\n".join(lines)


def against_bound(bound: dict[str, float], achieved: dict[str, float], goal: float = 0.95,
                  slack: float = 0.02) -> pd.DataFrame:
    """A model's R² per target against the best reachable one: the goal is R² >= `goal`, or within
    `slack` of the bound where the bound is lower."""
    table = pd.DataFrame({"bound": bound, "achieved": achieved})
    table["goal"] = [min(goal, b - slack) for b in table.bound]
    table["met"] = table.achieved >= table.goal
    return table
