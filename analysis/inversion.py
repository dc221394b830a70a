"""Physics-based inversion: the recipe whose simulated polymer matches an observed one.

The forward model is the deterministic engine, sampled at the reaction time (or at the 90 % stop if
that comes first).  The misfit is a weighted least-squares sum over the MMD points and, when given,
cBA_time, Mn and Mw; its weights are the noise levels below, so a misfit of about one per observed
value is "as good as the data".  SciPy's bounded trust-region least squares searches the design's
domain in scaled coordinates (log cAIBN_0, as initiator enters the rates through its square root),
from the given starts.  Near the optimum the residuals are linear in the recipe, so the recipes whose
misfit is within the noise form an ellipsoid; its projections give an interval per target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.stats import chi2

from .dataset import TARGETS
from .kinetics import Recipe
from .mmd import DLOGM, N_POINTS, l1_distance
from .models import TARGET_RANGES
from .ode import run_ode

# the design's domain; time from the first sample (300 s) on
BOUNDS = {**TARGET_RANGES, "time": (300.0, TARGET_RANGES["time"][1])}
# Noise levels: w(log M) per grid point (kMC against deterministic MMDs of the dataset's control
# volumes differ by about this much), and relative noise of cBA_time, Mn, Mw.
NOISE = {"mmd": 0.01, "cBA_time": 0.005, "Mn": 0.01, "Mw": 0.01}


@dataclass
class Observation:
    """What is measured on one sample: the MMD on the model grid, and optionally the other outputs."""

    mmd: np.ndarray
    cBA_time: float | None = None
    Mn: float | None = None
    Mw: float | None = None

    def __post_init__(self) -> None:
        self.mmd = np.asarray(self.mmd, dtype=float)
        if self.mmd.shape != (N_POINTS,):
            raise ValueError(f"the MMD must have {N_POINTS} points on the model grid, got {self.mmd.shape}")
        if not np.isfinite(self.mmd).all() or (self.mmd < 0).any():
            raise ValueError("the MMD has negative or non-finite values")
        self.mmd = self.mmd / (self.mmd.sum() * DLOGM)


@dataclass
class Inversion:
    recipe: dict  # best recipe, by target
    interval: dict  # 90 % interval of each target (low, high), clipped to the domain
    misfit: float  # chi-square per observed value at the optimum
    mmd_l1: float  # L1 distance between the observed and the re-simulated MMD
    simulated: dict  # the forward model's outputs at the optimum
    evaluations: int


def _to_recipe(u: np.ndarray) -> dict:
    """Scaled coordinates in [0, 1]^4 -> recipe (cAIBN_0 on a log scale)."""
    out = {}
    for j, name in enumerate(TARGETS):
        lo, hi = BOUNDS[name]
        if name == "cAIBN_0":
            out[name] = float(np.exp(np.log(lo) + u[j] * (np.log(hi) - np.log(lo))))
        else:
            out[name] = float(lo + u[j] * (hi - lo))
    return out


def _to_unit(recipe: dict) -> np.ndarray:
    u = []
    for name in TARGETS:
        lo, hi = BOUNDS[name]
        v = float(np.clip(recipe[name], lo, hi))
        u.append((np.log(v) - np.log(lo)) / (np.log(hi) - np.log(lo)) if name == "cAIBN_0"
                 else (v - lo) / (hi - lo))
    return np.array(u)


def forward(recipe: dict) -> dict:
    """Deterministic engine at the recipe's time (or at its 90 % stop): mmd, cBA_time, Mn, Mw."""
    run = run_ode(Recipe(recipe["cBA_0"], recipe["cAIBN_0"], recipe["temp"]), rtol=1e-6,
                  sample_times=np.array([recipe["time"]]))
    return {"mmd": run.mmd[-1], "cBA_time": float(run.cBA[-1]), "Mn": float(run.Mn[-1]),
            "Mw": float(run.Mw[-1]), "time": float(run.time[-1]), "stopped": run.stopped}


def residuals(recipe: dict, obs: Observation, noise: dict = NOISE) -> np.ndarray:
    sim = forward(recipe)
    r = [(sim["mmd"] - obs.mmd) / noise["mmd"]]
    for name in ("cBA_time", "Mn", "Mw"):
        value = getattr(obs, name)
        if value is not None:
            r.append(np.array([np.log(sim[name] / value) / noise[name]]))
    return np.concatenate(r)


def invert(obs: Observation, starts: list[dict] | None = None, noise: dict = NOISE,
           level: float = 0.90) -> Inversion:
    """Best recipe from each start; the overall best with its `level` intervals."""
    if starts is None:
        starts = [_to_recipe(np.full(4, 0.5))]
    best, evaluations = None, 0
    for start in starts:
        fit = least_squares(lambda u: residuals(_to_recipe(u), obs, noise), _to_unit(start),
                            bounds=(0.0, 1.0), diff_step=1e-3, x_scale=1.0, max_nfev=60)
        evaluations += fit.nfev * 5  # each Jacobian costs 4 more forward runs
        if best is None or fit.cost < best.cost:
            best = fit
    recipe = _to_recipe(best.x)
    n_obs = len(best.fun)
    # linearised confidence region: delta chi2 <= chi2.ppf(level, 4) around the optimum
    jac = best.jac
    cov = np.linalg.pinv(jac.T @ jac)
    half = np.sqrt(np.maximum(np.diag(cov), 0.0) * chi2.ppf(level, len(TARGETS)))
    interval = {}
    for j, name in enumerate(TARGETS):
        lo_u, hi_u = max(best.x[j] - half[j], 0.0), min(best.x[j] + half[j], 1.0)
        lo = _to_recipe(np.where(np.arange(4) == j, lo_u, best.x))[name]
        hi = _to_recipe(np.where(np.arange(4) == j, hi_u, best.x))[name]
        interval[name] = (lo, hi)
    sim = forward(recipe)
    return Inversion(recipe=recipe, interval=interval, misfit=float(2 * best.cost / n_obs),
                     mmd_l1=float(l1_distance(sim["mmd"], obs.mmd)), simulated=sim,
                     evaluations=evaluations)


def profile(obs: Observation, target: str, values: np.ndarray, start: dict,
            noise: dict = NOISE) -> pd.DataFrame:
    """Profile of the misfit: for each fixed value of `target`, the best recipe over the other three
    (warm-started along the profile).  Columns: the four targets, chi2 (sum of squared residuals)."""
    j = TARGETS.index(target)
    free = [k for k in range(len(TARGETS)) if k != j]
    u = _to_unit(start)
    rows = []
    for value in values:
        fixed = _to_unit({**_to_recipe(u), target: value})[j]

        def res(v, fixed=fixed):
            full = np.empty(len(TARGETS))
            full[free], full[j] = v, fixed
            return residuals(_to_recipe(full), obs, noise)

        fit = least_squares(res, u[free], bounds=(0.0, 1.0), diff_step=1e-3, max_nfev=60)
        u = np.empty(len(TARGETS))
        u[free], u[j] = fit.x, fixed
        rows.append({**_to_recipe(u), "chi2": float(2 * fit.cost)})
    return pd.DataFrame(rows)


def profile_interval(table: pd.DataFrame, target: str, level: float = 0.90) -> tuple[float, float]:
    """Range of `target` over the profile points within chi2.ppf(level, 1) of the profile's minimum."""
    inside = table[table.chi2 <= table.chi2.min() + chi2.ppf(level, 1)]
    return float(inside[target].min()), float(inside[target].max())
