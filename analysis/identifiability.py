"""How well can each target be recovered at all?  A Fisher-information (Cramér-Rao) analysis.

For every row of the design, the deterministic engine gives the Jacobian J of the observables
(MMD on the grid, log cBA_time, log Mn, log Mw) with respect to the recipe (cBA_0, cAIBN_0, temp, time),
by central finite differences.  With a noise model of the observables (diagonal covariance S), the
Fisher information is F = J' S^-1 J and no unbiased estimator has a smaller variance than diag(F^-1)
(the Cramér-Rao bound).  A model that also knows the design's range of each target can do a little
better; the linearised posterior (F + P)^-1, with P = 1 / (variance of the target over the design),
accounts for that.  Averaged over the rows and divided by the variance of the target, both give the
best R² any estimator can reach from these observables at that noise level.

The noise model is the dataset's own: kinetic Monte Carlo MMDs scatter around the deterministic ones
with a variance proportional to w (per row, c_r * w, c_r fitted on each row), and Mn, Mw, cBA_time
with the relative standard deviations measured over the whole workbook.  Rows that stopped at 90 %
conversion carry no independent time: there the time is the stop time, a function of the other three.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import Pool

import numpy as np
import pandas as pd

from .dataset import TARGETS
from .kinetics import Recipe
from .mmd import MMD_COLUMNS
from .models import TARGET_RANGES, n_jobs
from .ode import run_ode

EXTRA = ["cBA_time", "Mn", "Mw"]
REL_STEP = {"cBA_0": 1e-3, "cAIBN_0": 1e-3}  # relative finite-difference steps
ABS_STEP = {"temp": 0.02, "time": 2.0}  # °C, s
TARGET_RANGES_LOG = tuple(zip(*(TARGET_RANGES[t] for t in TARGETS)))  # (lows, highs)
MAX_TIME_MISMATCH = 60.0  # s: a data row is matched to the simulated sample nearest in time
MMD_FLOOR = 5e-4  # noise floor of a grid point where w is ~0 (the kMC scatter there, see `noise_model`)


@dataclass
class RowJacobians:
    """Observables and their derivatives for every row of the design (rows in the frame's order)."""

    observed: np.ndarray  # (rows, 103): deterministic MMD, log cBA_time, log Mn, log Mw
    jac: np.ndarray  # (rows, 103, 4): d observable / d target, targets in original units
    stopped: np.ndarray  # (rows,) True where the sample is the 90 % stop: time = t_stop(recipe)
    stop_gradient: np.ndarray  # (rows, 3): d t_stop / d (cBA_0, cAIBN_0, temp) on stopped rows


def _observables(run, k: int) -> np.ndarray:
    return np.concatenate([run.mmd[k], np.log([run.cBA[k], run.Mn[k], run.Mw[k]])])


def _same_sample(runs, k: int, stop: bool) -> bool:
    """Sample k exists in every run and is of the same kind (a 300 s sample, or the stop)."""
    if stop:
        return all(r.stopped for r in runs)
    return all(k < len(r.time) - (1 if r.stopped else 0) for r in runs)


def recipe_jacobians(recipe: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    """Observables (samples x 103), Jacobians (samples x 103 x 4), stop flags and stop-time gradients
    of one recipe.  Derivatives whose perturbed runs cross a stop are NaN (those rows are skipped)."""
    c, i, t = recipe
    base = run_ode(Recipe(c, i, t))
    n = len(base.time)
    stopped = np.zeros(n, bool)
    stopped[-1] = base.stopped
    obs = np.array([_observables(base, k) for k in range(n)])
    jac = np.full((n, obs.shape[1], 4), np.nan)
    grad = np.full((n, 3), np.nan)
    steps = (c * REL_STEP["cBA_0"], i * REL_STEP["cAIBN_0"], ABS_STEP["temp"])
    for j, h in enumerate(steps):
        runs = []
        for sign in (1.0, -1.0):
            r = np.array([c, i, t])
            r[j] += sign * h
            runs.append(run_ode(Recipe(*r)))
        plus, minus = runs
        for k in range(n):
            if _same_sample(runs, k, stopped[k]):
                kk = -1 if stopped[k] else k
                jac[k, :, j] = (_observables(plus, kk) - _observables(minus, kk)) / (2 * h)
                if stopped[k]:
                    grad[k, j] = (plus.t_stop - minus.t_stop) / (2 * h)
    jac[stopped, :, 3] = 0.0  # the stop's observables do not depend on the time
    dt = ABS_STEP["time"]
    times = base.time[~stopped]
    if len(times):
        runs = [run_ode(Recipe(c, i, t), sample_times=times + dt),
                run_ode(Recipe(c, i, t), sample_times=times - dt)]
        for k in range(len(times)):
            if _same_sample(runs, k, False):
                jac[k, :, 3] = (_observables(runs[0], k) - _observables(runs[1], k)) / (2 * dt)
    return obs, jac, stopped, grad, base.time


def design_jacobians(frame: pd.DataFrame, jobs: int | None = None) -> RowJacobians:
    """Jacobians at every row of `frame`, each row matched to the simulated sample nearest in time
    (a kMC stop and the deterministic stop differ by up to half a minute); unmatched rows stay NaN."""
    recipes = frame.groupby(["cBA_0", "cAIBN_0", "temp"], sort=True).size().index.tolist()
    with Pool(jobs or n_jobs()) as pool:
        results = pool.map(recipe_jacobians, recipes, chunksize=4)
    n_obs = len(MMD_COLUMNS) + len(EXTRA)
    observed = np.full((len(frame), n_obs), np.nan)
    jac = np.full((len(frame), n_obs, 4), np.nan)
    stopped = np.zeros(len(frame), bool)
    grad = np.full((len(frame), 3), np.nan)
    position = {idx: p for p, idx in enumerate(frame.index)}
    for recipe, (o, J, s, g, times) in zip(recipes, results):
        rows = frame[(frame.cBA_0 == recipe[0]) & (frame.cAIBN_0 == recipe[1]) & (frame.temp == recipe[2])]
        for idx, row_time in rows.time.items():
            k = int(np.argmin(np.abs(times - row_time)))
            if abs(times[k] - row_time) <= MAX_TIME_MISMATCH:
                p = position[idx]
                observed[p], jac[p], stopped[p], grad[p] = o[k], J[k], s[k], g[k]
    return RowJacobians(observed, jac, stopped, grad)


def noise_model(frame: pd.DataFrame, rj: RowJacobians) -> np.ndarray:
    """Standard deviation of every observable on every row (rows x 103), from the data's scatter
    around the deterministic engine: MMD point variance c_r * w + floor² with c_r fitted per row;
    log cBA_time, log Mn, log Mw with their workbook-wide standard deviations."""
    w_det = rj.observed[:, : len(MMD_COLUMNS)]
    diff = frame[MMD_COLUMNS].to_numpy(float) - w_det
    c = np.nansum(diff**2, axis=1) / np.nansum(w_det, axis=1)
    sigma = np.empty_like(rj.observed)
    sigma[:, : len(MMD_COLUMNS)] = np.sqrt(c[:, None] * w_det + MMD_FLOOR**2)
    for j, name in enumerate(EXTRA):
        rel = np.log(frame[name].to_numpy(float)) - rj.observed[:, len(MMD_COLUMNS) + j]
        sigma[:, len(MMD_COLUMNS) + j] = np.nanstd(rel)
    return sigma


def covariances(rj: RowJacobians, sigma: np.ndarray, observables: str = "composite",
                prior_var: np.ndarray | None = None) -> np.ndarray:
    """Per-row 4 x 4 covariance of the best estimate of the recipe: the Cramér-Rao bound F^-1, or with
    `prior_var` the linearised posterior (F + diag(1/prior_var))^-1.  `observables` is 'composite'
    (MMD, cBA_time, Mn, Mw) or 'mmd'.  NaN for rows without a Jacobian."""
    keep = slice(None) if observables == "composite" else slice(0, len(MMD_COLUMNS))
    J = rj.jac[:, keep, :] / sigma[:, keep, None]
    out = np.full((len(J), 4, 4), np.nan)
    prior = np.zeros((4, 4)) if prior_var is None else np.diag(1.0 / np.asarray(prior_var, float))
    for r in range(len(J)):
        if np.isnan(J[r]).any() or (rj.stopped[r] and np.isnan(rj.stop_gradient[r]).any()):
            continue
        if rj.stopped[r]:
            c3 = np.linalg.inv(J[r, :, :3].T @ J[r, :, :3] + prior[:3, :3])
            g = rj.stop_gradient[r]
            out[r, :3, :3] = c3
            out[r, :3, 3] = out[r, 3, :3] = c3 @ g
            out[r, 3, 3] = g @ c3 @ g
        else:
            out[r] = np.linalg.inv(J[r].T @ J[r] + prior)
    return out


def bound_table(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray,
                scales: tuple[float, ...] = (1e-4, 0.01, 0.1, 1.0, 3.0, 10.0),
                observables: str = "composite") -> pd.DataFrame:
    """Best reachable R² per target (`valley_bound`) at noise levels `scales` x the dataset's kMC noise."""
    table = {scale: valley_bound(frame, rj, sigma, scale, observables) for scale in scales}
    return pd.DataFrame(table).T.rename_axis("noise × kMC")


def _range_units(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's recipe as fractions of the design ranges (cAIBN_0 on a log scale), and the factors
    that turn d/d(target) into d/d(fraction) per row."""
    lows, highs = (np.array(v, float) for v in TARGET_RANGES_LOG)
    span = highs - lows
    span[1] = np.log(highs[1] / lows[1])
    y = frame[TARGETS].to_numpy(float)
    u = np.column_stack([(y[:, 0] - lows[0]) / span[0], np.log(y[:, 1] / lows[1]) / span[1],
                         (y[:, 2] - lows[2]) / span[2], (y[:, 3] - lows[3]) / span[3]])
    factor = span[None, :] * np.column_stack([np.ones(len(y)), y[:, 1], np.ones(len(y)), np.ones(len(y))])
    return u, factor


def weakest_direction(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray,
                      observables: str = "composite") -> pd.DataFrame:
    """Per row that did not stop: singular values of the noise-scaled Jacobian with every target in
    units of its design range (cAIBN_0 on a log scale), the weakest direction's components, and the
    change of ln cAIBN_0 per kelvin along it (the initiator-temperature trade-off)."""
    keep = slice(None) if observables == "composite" else slice(0, len(MMD_COLUMNS))
    _, factor = _range_units(frame)
    span = factor[0] / np.array([1.0, frame.cAIBN_0.iloc[0], 1.0, 1.0])
    rows = []
    for r in np.flatnonzero(~rj.stopped & ~np.isnan(rj.jac).any(axis=(1, 2))):
        _, s, vt = np.linalg.svd(rj.jac[r, keep, :] / sigma[r, keep, None] * factor[r], full_matrices=False)
        v = vt[-1] * (np.sign(vt[-1][2]) or 1.0)
        rows.append({"row": r, "s1": s[0], "s2": s[1], "s3": s[2], "s4": s[3],
                     **{f"v_{t}": x for t, x in zip(TARGETS, v)},
                     "dlnI_dT": v[1] * span[1] / (v[2] * span[2])})
    return pd.DataFrame(rows).set_index("row")


def _from_range_units(u: np.ndarray) -> np.ndarray:
    """Fractions of the design ranges (cAIBN_0 on a log scale) -> targets in original units."""
    lows, highs = (np.array(v, float) for v in TARGET_RANGES_LOG)
    out = lows + u * (highs - lows)
    out[..., 1] = lows[1] * np.exp(u[..., 1] * np.log(highs[1] / lows[1]))
    return out


def valley_bound(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, scale: float = 1.0,
                 observables: str = "composite", nodes: int = 24) -> dict:
    """Best R² per target when the design's box is what locates a recipe along its weakest direction.

    In range units the posterior of a row is, to first order, Gaussian across the three strong
    directions of the noise-scaled Jacobian (variance 1/(s_k² + 12): the data, and a prior as wide as
    the range) and, along the weakest one, the likelihood N(a_hat, (scale/s_4)²) restricted to the
    segment of that line inside the box (uniform prior on it).  The Bayes estimate of each target is its
    posterior mean along the segment (in original units, so cAIBN_0's log scale is handled exactly); the
    squared error is averaged over the noise of a_hat by Gauss-Hermite quadrature.  Rows that stopped
    (time set by the stop) are left out; R² is over the remaining rows."""
    keep = slice(None) if observables == "composite" else slice(0, len(MMD_COLUMNS))
    u, factor = _range_units(frame)
    ok = ~rj.stopped & ~np.isnan(rj.jac).any(axis=(1, 2))
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    mse = np.zeros((len(frame), 4))
    for r in np.flatnonzero(ok):
        _, s, vt = np.linalg.svd(rj.jac[r, keep, :] / (scale * sigma[r, keep, None]) * factor[r],
                                 full_matrices=False)
        strong = (vt[:3] ** 2 * (1.0 / (s[:3] ** 2 + 12.0))[:, None]).sum(axis=0)
        v = vt[3]
        moving = np.abs(v) > 1e-12
        ends = np.stack([(0.0 - u[r, moving]) / v[moving], (1.0 - u[r, moving]) / v[moving]])
        lo, hi = np.max(np.min(ends, axis=0)), np.min(np.max(ends, axis=0))
        tau = 1.0 / max(s[3], 1e-12)
        line = np.linspace(lo, hi, 201)
        along = _from_range_units(u[r] + line[:, None] * v)  # recipes on the valley, original units
        truth = _from_range_units(u[r])
        err = []
        for a_hat in tau * x:
            if tau > 1e3 * (hi - lo):  # no information along the valley: uniform over the segment
                dens = np.ones_like(line)
            else:
                dens = np.exp(-0.5 * ((line - a_hat) / tau) ** 2)
            if tau > (hi - lo) / 100 and dens.sum() > 0:
                estimate = dens @ along / dens.sum()  # posterior mean along the valley
            else:  # posterior narrower than the grid: at the likelihood's centre
                estimate = _from_range_units(u[r] + np.clip(a_hat, lo, hi) * v)
            err.append(estimate - truth)
        mse[r] = strong * factor[r] ** 2 + w @ np.array(err) ** 2
    y = frame[TARGETS].to_numpy(float)[ok]
    return {t: float(1.0 - mse[ok, j].mean() / y[:, j].var()) for j, t in enumerate(TARGETS)}
