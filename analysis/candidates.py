"""The direct peer of the finder, as a baseline: a search of the simulated recipe grid for the recipes whose
polymer best matches the target (Fiosina, Sievers, Kanagaraj, Drache, Beuermann, Polymers 16, 945 (2024):
kMC over a recipe grid, a search by mean squared error to the target's MMD, conversion and time, several
candidate recipes returned).

On our workbook the objectives are the MMD, the remaining monomer (log cBA_time, the composite database's
monomer observable) and the reaction time, known, as in that work.  Their weights are not stated in the
stored abstract: each objective's squared error is divided by its variance over the grid, so that the
three count alike (an assumption).  A held-out case's own recipe is left out of the grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .design import CENTRE, RECIPE_KEY, STUDY_RANGES, TARGETS
from .inversion import Observation, invert, measurement_noise
from .measurement import PROFILES
from .mmd import MMD_COLUMNS
from .workers import parallel_map

N_CANDIDATES = 5


def _objectives(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack([frame[MMD_COLUMNS].to_numpy(float), np.log(frame["cBA_time"].to_numpy(float)),
                            frame["time"].to_numpy(float)])


def candidate_search(grid: pd.DataFrame, target: pd.Series, k: int = N_CANDIDATES) -> pd.DataFrame:
    """The k rows of `grid` (not of the target's own recipe) nearest to the target by the summed,
    variance-normalised squared errors of MMD, log cBA_time and time; their recipes and scores."""
    own = (grid[RECIPE_KEY] == target[RECIPE_KEY].to_numpy(float)).all(axis=1).to_numpy()
    rows = grid[~own]
    x, y = _objectives(rows), _objectives(target.to_frame().T)[0]
    spread = _objectives(grid).var(axis=0)
    mmd = ((x[:, :-2] - y[:-2]) ** 2).mean(axis=1) / spread[:-2].mean()
    score = mmd + (x[:, -2] - y[-2]) ** 2 / spread[-2] + (x[:, -1] - y[-1]) ** 2 / spread[-1]
    best = np.argsort(score, kind="stable")[:k]
    return rows.iloc[best][TARGETS].assign(score=score[best])


def _invert_known_time(job: tuple) -> dict:
    idx, row, noise = job
    obs = Observation(row[MMD_COLUMNS].to_numpy(float), row.cBA_time, row.Mn, row.Mw, time=row.time)
    result = invert(obs, starts=[{**CENTRE, "time": float(row.time)}],
                    noise=measurement_noise(obs, PROFILES[noise]))
    return {"index": idx, **{f"{t} mean": result.mean[t] for t in TARGETS},
            **{f"{t} low": result.interval[t][0] for t in TARGETS},
            **{f"{t} high": result.interval[t][1] for t in TARGETS}}


def compare(frame: pd.DataFrame, measured: pd.DataFrame, noise: str, jobs: int | None = None) -> pd.DataFrame:
    """On the held-out cases `measured` (rows of `frame` as measured; same index), the candidate list
    against the posterior of the inversion with the time known: per method and target, the median
    |error| of its estimate (best candidate; posterior mean) and the width of what it offers (the
    candidates' range; the 90 % interval), in % of the study's range, and how often the truth lies in it."""
    truth = frame.loc[measured.index, TARGETS]
    found = pd.DataFrame(parallel_map(_invert_known_time, [(i, r, noise) for i, r in measured.iterrows()],
                                      jobs)).set_index("index")
    width = np.array([np.diff(STUDY_RANGES[t])[0] for t in TARGETS])
    out = {}
    lists = {i: candidate_search(frame, r) for i, r in measured.iterrows()}
    best = pd.DataFrame({i: c.iloc[0][TARGETS] for i, c in lists.items()}).T
    low = pd.DataFrame({i: c[TARGETS].min() for i, c in lists.items()}).T
    high = pd.DataFrame({i: c[TARGETS].max() for i, c in lists.items()}).T
    for name, estimate, lo, hi in (
            (f"{N_CANDIDATES} candidates", best, low, high),
            ("posterior, time known", found[[f"{t} mean" for t in TARGETS]].set_axis(TARGETS, axis=1),
             found[[f"{t} low" for t in TARGETS]].set_axis(TARGETS, axis=1),
             found[[f"{t} high" for t in TARGETS]].set_axis(TARGETS, axis=1))):
        error = 100 * (estimate - truth).abs() / width
        inside = (truth >= lo - 1e-9) & (truth <= hi + 1e-9)
        for t in TARGETS:
            out[(name, t)] = {"median |error| %": error[t].median(),
                              "median width %": (100 * (hi[t] - lo[t]) / width[TARGETS.index(t)]).median(),
                              "truth inside %": 100 * inside[t].mean()}
    return pd.DataFrame(out).T.rename_axis(["method", "target"])

