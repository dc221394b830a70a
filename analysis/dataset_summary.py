"""What the database holds: recipes, their final conversion and stops, the ranges of the columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .dataset import dataset_path, file_sha256, load_dataset
from .design import RECIPE_KEY, T_END, recipe_groups


def with_recipes(frame: pd.DataFrame) -> pd.DataFrame:
    """Add `recipe_id` (one per cBA_0, cAIBN_0, temp) and `conversion` (from cBA_time) to a sheet.

    Works on the study's own sheets, which have no recipe id: a recipe is its three initial levels.
    """
    out = frame.copy()
    out["recipe_id"] = recipe_groups(out)
    if "cBA_time" in out:
        out["conversion"] = 1.0 - out.cBA_time / out.cBA_0
    return out


def recipe_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per recipe: levels, last sampling time, final conversion, and whether the run stopped
    (at 90 % conversion) before the 3600 s cut."""
    rows = with_recipes(frame).sort_values("time").groupby("recipe_id").last()
    table = rows[["cBA_0", "cAIBN_0", "temp", "time"]].rename(columns={"time": "t_end"})
    if "conversion" in rows:
        table["conversion_end"] = rows.conversion
    table["reached_90"] = table.t_end < T_END - 1e-6
    return table


def stops_per_level(recipes: pd.DataFrame, factor: str) -> pd.DataFrame:
    """How many recipes of each level of `factor` reach 90 % conversion before the 3600 s cut."""
    table = recipes.groupby(factor).reached_90.agg(["sum", "count"])
    table.columns = ["reach_90", "recipes"]
    table["share"] = table.reach_90 / table.recipes
    return table


def ranges(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Min, max and number of distinct values of each column."""
    return pd.DataFrame({"min": frame[columns].min(), "max": frame[columns].max(),
                         "distinct": frame[columns].nunique()})


def card_figures(path: Path | str | None = None) -> dict:
    """The figures the data card states, computed from the workbook: rows, recipes, stops, checksum.

    Uses only the study's sheet `compuesta`, so it works on the original workbook too: a recipe is
    one (cBA_0, cAIBN_0, temp) and it reached 90 % conversion if its last sample is before 3600 s.
    """
    path = dataset_path(path)
    frame = load_dataset(path)
    last = frame.groupby(RECIPE_KEY).time.max()
    return {"rows": len(frame), "recipes": len(last), "recipes_at_90": int((last < T_END - 1e-6).sum()),
            "sha256": file_sha256(path)}
