"""The study's facts, in one place: targets and their units, the design and its levels, the sampling and
stop rule, the features of the two databases, how rows are grouped into recipes, and the box in which
the optimisers and the priors live.

Every other module takes these from here; nothing below this module but the kinetics and the MMD grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .kinetics import Recipe
from .mmd import MMD_COLUMNS

# --- what is predicted ----------------------------------------------------------------------------
TARGETS = ["cBA_0", "cAIBN_0", "temp", "time"]
UNITS = {"cBA_0": "mol/L", "cAIBN_0": "mol/L", "temp": "°C", "time": "s"}
# The study's ranges, used for its relative MAE (MAE / range width); seed-study.md.
STUDY_RANGES = {"cBA_0": (0.5, 3.0), "cAIBN_0": (0.0025, 0.02), "temp": (60.0, 80.0), "time": (0.0, 3600.0)}

# --- what is observed -----------------------------------------------------------------------------
EXTRA_FEATURES = ["cBA_time", "Mn", "Mw"]  # the composite database's outputs besides the MMD
FEATURE_SETS = {"mmd": MMD_COLUMNS, "composite": EXTRA_FEATURES + MMD_COLUMNS}

# --- the design: 6 x 8 x 9 = 432 recipes ----------------------------------------------------------
CBA0_LEVELS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)  # mol/L
CAIBN0_LEVELS = tuple(round(0.0025 * i, 4) for i in range(1, 9))  # mol/L
TEMP_LEVELS = (60.0, 63.0, 65.0, 68.0, 70.0, 73.0, 75.0, 78.0, 80.0)  # °C

SAMPLE_EVERY = 300.0  # s
T_END = 3600.0  # s
SAMPLE_TIMES = np.arange(SAMPLE_EVERY, T_END + 1.0, SAMPLE_EVERY)  # 300, 600, ..., 3600
X_STOP = 0.90  # a run stops when monomer conversion reaches 90 %


def design() -> list[Recipe]:
    """The 432 recipes in a fixed order (cBA_0, then cAIBN_0, then temp); the index is the recipe id."""
    return [Recipe(c, i, t) for c in CBA0_LEVELS for i in CAIBN0_LEVELS for t in TEMP_LEVELS]


def latin_hypercube(n: int, seed: int = 0) -> list[Recipe]:
    """`n` recipes drawn inside the design's box by a seeded Latin hypercube (SciPy's qmc), uniform in
    cBA_0, cAIBN_0 (mol/L, as the grid's levels) and temp; rounded to 4 significant digits.  Each level
    range is cut into `n` strata with one recipe in each: a design beyond the 432 grid points for learning
    curves, run with the same sampling and stop rule."""
    from scipy.stats import qmc

    if n < 1:
        raise ValueError(f"a Latin hypercube needs at least one recipe, got n = {n}")
    unit = qmc.LatinHypercube(d=3, rng=np.random.default_rng(seed)).random(n)
    lows = [min(CBA0_LEVELS), min(CAIBN0_LEVELS), min(TEMP_LEVELS)]
    highs = [max(CBA0_LEVELS), max(CAIBN0_LEVELS), max(TEMP_LEVELS)]
    values = qmc.scale(unit, lows, highs)
    return [Recipe(*(float(f"{v:.4g}") for v in row)) for row in values]


# --- recipes in a table ---------------------------------------------------------------------------
RECIPE_KEY = ["cBA_0", "cAIBN_0", "temp"]  # a recipe is its three initial levels


def recipe_groups(frame: pd.DataFrame) -> np.ndarray:
    """One integer per recipe (sorted by RECIPE_KEY), for grouped splits and per-recipe summaries."""
    return frame.groupby(RECIPE_KEY, sort=True).ngroup().to_numpy()


# --- the box of the optimisers and of the priors ---------------------------------------------------
# The design's domain.  Time from the first sample on: no row of the database is earlier.
BOX = {"cBA_0": (0.5, 3.0), "cAIBN_0": (0.0025, 0.02), "temp": (60.0, 80.0), "time": (SAMPLE_EVERY, T_END)}
LOG_SCALED = ("cAIBN_0",)  # initiator enters the rates through its square root: searched on a log scale
CENTRE = {"cBA_0": 1.75, "cAIBN_0": 0.007, "temp": 70.0, "time": 1800.0}  # ~ the box's centre (log AIBN)


def target_to_unit(name: str, x: np.ndarray | float) -> np.ndarray:
    """Values of one target -> its unit-box coordinate (log scale for cAIBN_0); not clipped."""
    lo, hi = BOX[name]
    x = np.asarray(x, float)
    return np.log(x / lo) / np.log(hi / lo) if name in LOG_SCALED else (x - lo) / (hi - lo)


def target_from_unit(name: str, u: np.ndarray | float) -> np.ndarray:
    """Unit-box coordinates of one target -> its values (the inverse of `target_to_unit`)."""
    lo, hi = BOX[name]
    u = np.asarray(u, float)
    return lo * np.exp(u * np.log(hi / lo)) if name in LOG_SCALED else lo + u * (hi - lo)


def to_unit(values: np.ndarray | dict) -> np.ndarray:
    """Recipe(s) -> coordinates in [0, 1] per target (cAIBN_0 on a log scale); clipped into the box.

    Takes a dict by target or an array (..., 4) in TARGETS order."""
    if isinstance(values, dict):
        values = [values[t] for t in TARGETS]
    y = np.asarray(values, float)
    out = np.empty_like(y)
    for j, name in enumerate(TARGETS):
        out[..., j] = target_to_unit(name, np.clip(y[..., j], *BOX[name]))
    return out


def from_unit(u: np.ndarray) -> np.ndarray:
    """Coordinates in the unit box (..., 4) -> recipes in original units (..., 4), TARGETS order."""
    u = np.asarray(u, float)
    out = np.empty_like(u)
    for j, name in enumerate(TARGETS):
        out[..., j] = target_from_unit(name, u[..., j])
    return out


def target_span(name: str, x: np.ndarray) -> np.ndarray:
    """d(target)/d(unit coordinate) of one target at its values x: the box width, or x times the log-width."""
    lo, hi = BOX[name]
    x = np.asarray(x, float)
    return x * np.log(hi / lo) if name in LOG_SCALED else np.full_like(x, hi - lo)


def unit_span(values: np.ndarray) -> np.ndarray:
    """d(target)/d(unit coordinate) at recipe(s) (..., 4): the box width, or value x log-width."""
    y = np.asarray(values, float)
    out = np.empty_like(y)
    for j, name in enumerate(TARGETS):
        out[..., j] = target_span(name, y[..., j])
    return out


def as_dict(values: np.ndarray) -> dict[str, float]:
    """A recipe array (4,) in TARGETS order -> {target: value}."""
    return {t: float(v) for t, v in zip(TARGETS, values)}


def clip_to_box(recipe: dict) -> dict:
    """A recipe moved inside the design's box (e.g. a model's prediction), so that it can be simulated."""
    return {k: float(np.clip(v, *BOX[k])) if k in BOX else v for k, v in recipe.items()}
