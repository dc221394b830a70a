"""Calibrated 90 % intervals of the physics inversion: split-conformal factors per measurement profile and
observation set, stored with the workbook's checksum.

The inversion's intervals come from a Laplace mixture along the temperature valley.  Measured with the
`typical` profile they held the truth for 81-94 % of the rows instead of 90 %: away from the temperature
axis the posterior is a curved ridge that one Gaussian piece per temperature makes too narrow
(`benchmarks/reference_posterior.py`).  Split conformal prediction (Vovk, Gammerman & Shafer 2005;
Angelopoulos & Bates, "Conformal prediction: a gentle introduction", 2023) repairs the level without a
model of that shape.  On rows of one half of the design's recipes (`recipe_half`), measured and inverted as
a user's sample is, each target's score is the factor by which its interval must be scaled about its
centre to reach the truth; the stored factor is the ceil((n + 1) level)-th smallest score.  Scaling is done
in unit-box coordinates (log scale for the initiator) and an end that lies on a bound of the box stays
there: a posterior piled up against a bound keeps it.  Rows of the other half of the recipes check the
result (chapter 10).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binom, kstest

from .dataset import DATA_DIR, dataset_path
from .design import BOX, TARGETS, recipe_groups, target_from_unit, target_to_unit
from .hyperparameters import load_stored

CALIBRATION = DATA_DIR / "interval_calibration.json"
# rows of the calibration recipes per profile: at 160 rows a factor's own scatter (about 2.4 points of
# coverage) adds to the check's, and a factor below 1 fitted on them narrowed the initiator's intervals of
# the residual-initiator sets to 81 % on the check recipes (86 % before); each profile takes twice as many.
# Its keys are the profiles that have a calibration (`ideal`, the simulator's own noise, has none).
CALIBRATION_ROWS = {"typical": 320, "poor": 320}
SPLIT_SEED = 0  # the permutation of the recipes that halves them into calibration and check recipes
COMPOSITE = ("cBA_time", "Mn", "Mw")  # the study's observables besides the MMD
OBSERVED = ("temp", "time", "cAIBN_time", "branching")  # what a set adds to the composite, in this order
ON_BOUND = 1e-9  # unit coordinate within which an interval's end lies on a bound of the box
MIN_HALF_WIDTH = 1e-9  # unit coordinates: a point interval is scored as this narrow


def recipe_half(frame: pd.DataFrame, half: str) -> np.ndarray:
    """Mask of the rows whose recipe is in one half of the workbook's recipes: 'calibration' or 'check'
    (a fixed random permutation of the recipes, seed SPLIT_SEED; every row of a recipe on one side)."""
    if half not in ("calibration", "check"):
        raise ValueError(f"half is 'calibration' or 'check', not {half!r}")
    groups = recipe_groups(frame)
    order = np.random.default_rng(SPLIT_SEED).permutation(groups.max() + 1)
    first = np.isin(groups, order[: len(order) // 2])
    return first if half == "calibration" else ~first


def set_name(observed: Iterable[str]) -> str:
    """The observation set's name: 'composite' and what is added, in OBSERVED's order ('mmd' instead of
    'composite' when one of cBA_time, Mn, Mw is missing).  `observed`: what is measured or known besides
    the MMD."""
    observed = set(observed)
    unknown = observed - set(OBSERVED) - set(COMPOSITE)
    if unknown:
        raise ValueError(f"unknown observable(s) {sorted(unknown)}; choose from {list(COMPOSITE + OBSERVED)}")
    base = "composite" if set(COMPOSITE) <= observed else "mmd"
    return ",".join([base] + [name for name in OBSERVED if name in observed])


def _parts(target: str, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, ...]:
    """Centre and half-width in unit coordinates, and whether each end lies on its bound."""
    a, b = target_to_unit(target, low), target_to_unit(target, high)
    return 0.5 * (a + b), np.maximum(0.5 * (b - a), MIN_HALF_WIDTH), a <= ON_BOUND, b >= 1.0 - ON_BOUND


def scores(truth: pd.DataFrame, low: pd.DataFrame, high: pd.DataFrame) -> pd.DataFrame:
    """Per row and target: the smallest factor of `widen` whose interval holds the truth (0 when the truth
    lies between the centre and an end on a bound).  Same index and target columns in all three frames."""
    out = {}
    for t in TARGETS:
        c, h, low_fixed, high_fixed = _parts(t, low[t].to_numpy(float), high[t].to_numpy(float))
        y = np.clip(target_to_unit(t, truth[t].to_numpy(float)), 0.0, 1.0)
        above = np.where(high_fixed, 0.0, (y - c) / h)
        below = np.where(low_fixed, 0.0, (c - y) / h)
        out[t] = np.maximum(0.0, np.maximum(above, below))
    return pd.DataFrame(out, index=truth.index)


def conformal_factor(score: np.ndarray, level: float = 0.90) -> float:
    """The split-conformal quantile: the ceil((n + 1) level)-th smallest score (inf if n is too small)."""
    score = np.sort(np.asarray(score, float))
    k = math.ceil((len(score) + 1) * level)
    return float(score[k - 1]) if k <= len(score) else math.inf


def widen(interval: dict, factors: dict) -> dict:
    """Each target's interval (low, high) scaled by its factor about its centre in unit coordinates,
    cut at the box; an end on a bound of the box stays there.  Targets without a factor are kept."""
    out = {}
    for t, (low, high) in interval.items():
        if factors.get(t, 1.0) == 1.0:  # no factor, or one that keeps the interval: kept to the bit
            out[t] = (low, high)
            continue
        c, h, low_fixed, high_fixed = _parts(t, np.array([low]), np.array([high]))
        q = factors[t]
        a = 0.0 if low_fixed[0] else max(0.0, float(c[0] - q * h[0]))
        b = 1.0 if high_fixed[0] else min(1.0, float(c[0] + q * h[0]))
        lo, hi = (float(v) for v in np.clip(target_from_unit(t, np.array([a, b])), *BOX[t]))
        # an end on a bound is the bound itself, not its round trip through the unit coordinate
        out[t] = (BOX[t][0] if a <= 0.0 else lo, BOX[t][1] if b >= 1.0 else hi)
    return out


def share_in_band(n: int, level: float = 0.90, band: tuple[float, float] = (0.85, 0.95)) -> float:
    """The probability that intervals holding the truth exactly `level` of the time hold it for a share
    of n independent rows inside `band` (ends included): how often one set's check, on n rows, lands in
    the issue's 85-95 % by its scatter alone."""
    k = np.arange(n + 1)
    inside = (k >= band[0] * n - 1e-9) & (k <= band[1] * n + 1e-9)
    return float(binom.pmf(k[inside], n, level).sum())


def pit_values(truth: pd.DataFrame, inverted: pd.DataFrame, target: str) -> np.ndarray:
    """The posterior's CDF at the truth (`{target} pit` of `roundtrip.invert_rows`) on the rows whose truth
    lies strictly inside the box: on a bound the CDF is 0 or 1 by construction, which says nothing."""
    lo, hi = BOX[target]
    tol = ON_BOUND * (hi - lo)  # as an interval's end on a bound
    inside = ((truth[target] > lo + tol) & (truth[target] < hi - tol)).to_numpy()
    return inverted[f"{target} pit"].to_numpy(float)[inside]


def pit_check(truth: pd.DataFrame, inverted: pd.DataFrame) -> pd.DataFrame:
    """Simulation-based calibration by the probability integral transform (Talts et al. 2018, in its
    continuous form): per target, the `pit_values`, uniform on [0, 1] for a calibrated posterior: their
    Kolmogorov-Smirnov distance from the uniform with its p-value, and the % below 0.05 and above 0.95
    (5 each when calibrated; more in both: too narrow; fewer: too wide; more in one: biased)."""
    out = {}
    for t in TARGETS:
        u = pit_values(truth, inverted, t)
        test = kstest(u, "uniform")
        out[t] = {"rows": len(u), "ks": test.statistic, "p": test.pvalue,
                  "below 0.05 %": 100 * (u < 0.05).mean(), "above 0.95 %": 100 * (u > 0.95).mean()}
    return pd.DataFrame(out).T.astype({"rows": int})


class StaleCalibration(UserWarning):
    """Stored interval factors computed with other inversion settings than the code's."""


def same_settings(a: object, b: object, rel: float = 1e-9) -> bool:
    """Whether two settings (JSON values) agree, numbers to a relative `rel`: a value recomputed on another
    machine may differ in its last digit (a libm or SIMD path), which is not another setting."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_settings(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_settings(x, y, rel) for x, y in zip(a, b))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return math.isclose(a, b, rel_tol=rel) if numbers else a == b


@lru_cache(maxsize=8)
def _check_settings(file: str, mtime: int, stored: str, settings: str) -> None:
    """Warn (once per file version and settings in a process) if the factors were computed with other
    inversion settings, naming what differs."""
    old, new = json.loads(stored), json.loads(settings)
    if same_settings(old, new):
        return
    differ = sorted(k for k in old.keys() | new.keys() if not same_settings(old.get(k), new.get(k)))
    differ = differ if old else ["none stored"]
    warnings.warn(f"{Path(file).name} was calibrated with other inversion settings than the code's "
                  f"(differing: {', '.join(differ)}); its factors may no longer give 90 % intervals: run "
                  "`make calibrate`", StaleCalibration, stacklevel=3)


@lru_cache(maxsize=8)
def _stored(file: str, mtime: int, data: str) -> dict:
    """The stored calibration, read (and checked against the workbook, warning if stale) once per file
    version and workbook in a process."""
    return load_stored(file, data)


def interval_factors(noise: str, name: str, file: Path | str = CALIBRATION,
                     data: Path | str | None = None, settings: dict | None = None) -> tuple[dict, str]:
    """The stored factors for a profile and observation set (`set_name`), and how they were chosen:
    'calibrated' for a stored set, 'largest of the calibrated sets' (per target) for another set of a
    calibrated profile, 'uncalibrated' (all 1) for a profile without factors or without the file.  Warns
    (once per process) if the factors were computed on another workbook (`hyperparameters.load_stored`)
    or, given the inversion's `settings` (`inversion.settings()`), with other settings (StaleCalibration)."""
    ones = dict.fromkeys(TARGETS, 1.0)
    if not Path(file).exists():
        return ones, "uncalibrated"
    mtime = Path(file).stat().st_mtime_ns
    stored = _stored(str(file), mtime, str(dataset_path(data)))
    if settings is not None:
        _check_settings(str(file), mtime, json.dumps(stored.get("inversion", {}), sort_keys=True),
                        json.dumps(settings, sort_keys=True))
    sets = stored["factors"].get(noise)
    if not sets:
        return ones, "uncalibrated"
    if name in sets:
        return {t: float(sets[name][t]) for t in TARGETS}, "calibrated"
    return {t: max(float(f[t]) for f in sets.values()) for t in TARGETS}, "largest of the calibrated sets"
