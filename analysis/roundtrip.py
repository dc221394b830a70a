"""The round trip: re-simulate a predicted recipe and compare its polymer with the observed one; the
physics inversion of many observed rows; their summaries (chapter 9)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .calibration import interval_factors, set_name, widen
from .design import CENTRE, TARGETS, clip_to_box
from .inversion import Inversion, Observation, forward, invert, measurement_noise
from .inversion import settings as inversion_settings
from .measurement import PROFILES
from .mmd import MMD_COLUMNS, l1_distance
from .workers import parallel_map


def roundtrip(recipe: dict, w: np.ndarray, cBA_time: float | None = None, Mn: float | None = None,
              Mw: float | None = None) -> dict:
    """Re-simulate a recipe (clipped into the design's box; deterministic engine) and compare it with
    the observation: MMD L1 distance, relative errors of cBA_time, Mn, Mw (None where not observed)."""
    sim = forward(clip_to_box(recipe))
    out = {"mmd_l1": float(l1_distance(sim["mmd"], w))}
    for name, value in (("cBA_time", cBA_time), ("Mn", Mn), ("Mw", Mw)):
        out[f"{name}_rel"] = None if value is None else float(sim[name] / value - 1.0)
    return out


def roundtrip_table(rows: pd.DataFrame, predictions: pd.DataFrame, extras: bool = True) -> pd.DataFrame:
    """Round trip of predicted recipes for observed rows (same index): the MMD L1 distance and the
    relative errors of cBA_time, Mn, Mw of the re-simulated polymer."""
    out = []
    for idx, row in rows.iterrows():
        recipe = dict(zip(TARGETS, predictions.loc[idx, TARGETS].to_numpy(float)))
        given = (row.cBA_time, row.Mn, row.Mw) if extras else (None, None, None)
        out.append({"index": idx, **roundtrip(recipe, row[MMD_COLUMNS].to_numpy(float), *given)})
    return pd.DataFrame(out).set_index("index")


KNOWN_COLUMNS = {"temp": "known_temp", "time": "known_time"}  # a measured row's known values (columns)
# what a row may hold besides the composite observables, by the Observation field it fills
CONDITIONS = {"cAIBN_time": "cAIBN_time", "branching": "branching", **KNOWN_COLUMNS}


def observation_of(row: pd.Series) -> Observation:
    """The Observation of one (measured) row: the MMD, cBA_time, Mn, Mw, and those of `CONDITIONS`'
    columns that the row has."""
    given = {field: float(row[column]) for field, column in CONDITIONS.items()
             if column in row.index and pd.notna(row[column])}
    return Observation(row[MMD_COLUMNS].to_numpy(float), row.cBA_time, row.Mn, row.Mw, **given)


def invert_row(row: pd.Series, noise: str = "ideal", start: dict | None = None) -> Inversion:
    """The physics inversion of one (measured) row under the profile `noise`, from `start` (if given) and
    the domain's centre."""
    obs = observation_of(row)
    return invert(obs, starts=([start] if start else []) + [CENTRE],
                  noise=measurement_noise(obs, PROFILES[noise]))


def _invert_one(job: tuple) -> dict:
    idx, row, start, noise = job
    tic = time.perf_counter()
    obs = observation_of(row)
    result = invert_row(row, noise, start)
    seconds = time.perf_counter() - tic
    # a simulated row carries its recipe: the posterior's CDF there (its PIT, for a calibration check)
    truth = all(t in row.index and pd.notna(row[t]) for t in TARGETS)
    pit = {f"{t} pit": float(result.posterior.cdf(t, float(row[t]))[0]) for t in TARGETS} if truth else {}
    return {"index": idx, **result.recipe, **{f"{t} mean": result.mean[t] for t in TARGETS},
            **{f"{t} low": result.interval[t][0] for t in TARGETS},
            **{f"{t} high": result.interval[t][1] for t in TARGETS},
            "mmd_l1": result.mmd_l1, "seconds": seconds, "observed": set_name(obs.extras + obs.known), **pit}


def invert_rows(rows: pd.DataFrame, starts: pd.DataFrame | None = None, jobs: int | None = None,
                noise: str = "ideal", calibrated: bool = True) -> pd.DataFrame:
    """Physics inversion of observed rows (composite observables and any of `CONDITIONS`' columns, measured
    with the profile `noise`), started from the given recipes (e.g. a model's predictions) and the
    domain's centre, in parallel processes: the recipe on the valley at the posterior median temperature,
    the posterior means, the 90 % credible intervals (`calibrated` by the stored factors of the profile and
    observation set, `calibration.interval_factors`), the MMD L1 distance of the round trip, the seconds
    each row took and the observation set; for rows that carry their recipe (simulated ones), the
    posterior's CDF at it per target (`{target} pit`, uniform on [0, 1] for a calibrated posterior)."""
    jobs_ = [(idx, row, None if starts is None else clip_to_box(starts.loc[idx, TARGETS].to_dict()), noise)
             for idx, row in rows.iterrows()]
    out = pd.DataFrame(parallel_map(_invert_one, jobs_, jobs)).set_index("index")
    return calibrated_table(out, noise) if calibrated else out


def calibrated_table(inverted: pd.DataFrame, noise: str, factors: dict | None = None) -> pd.DataFrame:
    """`invert_rows`' table with each row's intervals widened by the given factors (per target), or else
    by the stored factors of the profile `noise` and the row's observation set
    (`calibration.interval_factors`)."""
    out = inverted.copy()
    if factors is None:  # each set's stored factors, looked up once
        now = inversion_settings()
        per_set = {name: interval_factors(noise, name, settings=now)[0] for name in out["observed"].unique()}
    for idx in out.index:
        row_factors = factors if factors is not None else per_set[out.at[idx, "observed"]]
        given = {t: (out.at[idx, f"{t} low"], out.at[idx, f"{t} high"]) for t in TARGETS}
        for t, (low, high) in widen(given, row_factors).items():
            out.at[idx, f"{t} low"], out.at[idx, f"{t} high"] = low, high
    return out


def roundtrip_summary(trips: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per named round-trip table: median and 90th percentile of the MMD L1 distance, median |Mn| and
    |cBA_time| errors in %."""
    return pd.DataFrame({name: {"median MMD L1": t.mmd_l1.median(), "90th pct MMD L1": t.mmd_l1.quantile(0.9),
                                "median |Mn error| %": 100 * t.Mn_rel.abs().median(),
                                "median |cBA_time error| %": 100 * t.cBA_time_rel.abs().median()}
                         for name, t in trips.items()}).T


def interval_hits(rows: pd.DataFrame, inverted: pd.DataFrame) -> pd.DataFrame:
    """Whether each row's true target lies inside the inversion's interval (rows x targets, booleans)."""
    return pd.DataFrame({t: (rows[t] >= inverted[f"{t} low"]) & (rows[t] <= inverted[f"{t} high"])
                         for t in TARGETS})
