"""Scores of predicted recipes: the study's metrics, per model tables, and the coverage of intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from .design import STUDY_RANGES, TARGETS


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Per-target MAE, relative MAE (% of the study's range), MSE and R²; global MSE and R² (means)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    out = {"targets": TARGETS, "mae": [], "rel_mae": [], "mse": [], "r2": []}
    for j, name in enumerate(TARGETS):
        lo, hi = STUDY_RANGES[name]
        mae = mean_absolute_error(y_true[:, j], y_pred[:, j])
        out["mae"].append(float(mae))
        out["rel_mae"].append(float(100.0 * mae / (hi - lo)))
        out["mse"].append(float(mean_squared_error(y_true[:, j], y_pred[:, j])))
        out["r2"].append(float(r2_score(y_true[:, j], y_pred[:, j])))
    out["global_mse"] = float(np.mean(out["mse"]))
    out["global_r2"] = float(np.mean(out["r2"]))
    return out


def metrics_table(results: dict[str, dict]) -> pd.DataFrame:
    """One row per model: relative MAE and R² per target, global MSE and R²."""
    rows = {}
    for name, m in results.items():
        row = {}
        for j, t in enumerate(TARGETS):
            row[(t, "relMAE %")] = m["rel_mae"][j]
            row[(t, "R²")] = m["r2"][j]
        row[("global", "MSE")] = m["global_mse"]
        row[("global", "R²")] = m["global_r2"]
        rows[name] = row
    table = pd.DataFrame(rows).T
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def scores(frame: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """R² and relative MAE per target and the global R² of each named prediction (its non-NaN rows)."""
    rows = {}
    for name, pred in predictions.items():
        tested = pred.notna().all(axis=1)
        m = metrics(frame.loc[tested, TARGETS].to_numpy(float), pred[tested].to_numpy())
        rows[name] = {**{f"R² {t}": v for t, v in zip(TARGETS, m["r2"])}, "global R²": m["global_r2"],
                      **{f"relMAE % {t}": v for t, v in zip(TARGETS, m["rel_mae"])},
                      "rows": int(tested.sum())}
    return pd.DataFrame(rows).T


def interval_coverage(truth: pd.DataFrame, low: pd.DataFrame, high: pd.DataFrame,
                      groups: np.ndarray | None = None) -> dict[str, float]:
    """Fraction of rows whose true target lies inside [low, high], per target (rows with an interval);
    with `groups`, the mean over groups (recipes) of each group's fraction."""
    tested = low[TARGETS].notna().all(axis=1).to_numpy()
    inside = ((truth[TARGETS] >= low[TARGETS]) & (truth[TARGETS] <= high[TARGETS]))[tested]
    if groups is not None:
        inside = inside.groupby(np.asarray(groups)[tested]).mean()
    return {t: float(inside[t].mean()) for t in TARGETS}


def interval_width(low: pd.DataFrame, high: pd.DataFrame) -> dict[str, float]:
    """Median width of the intervals per target, as a fraction of the study's range."""
    return {t: float((high[t] - low[t]).median() / np.diff(STUDY_RANGES[t])[0]) for t in TARGETS}
