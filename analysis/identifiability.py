"""How well can each target be recovered at all?  A Fisher-information (Cramér-Rao) analysis.

For every row of the design, the deterministic engine gives the Jacobian J of the observables
(MMD on the grid, log cBA_time, log Mn, log Mw) with respect to the recipe (cBA_0, cAIBN_0, temp, time),
by central finite differences.  The smallest singular value of J is some 1e-5 of the largest, so the
differences need runs far more accurate than a single simulation does: LSODA at rtol 1e-12 (error of a
derivative ~ rtol / step ~ 4e-9) and a step of 2.5e-4 of each target's scale, where the truncation
error (~ step²) is below 0.1 % of the weakest singular value (chapter 8 shows the convergence).  At the
engine's default rtol (1e-6) the weakest singular value came out ten times too large, and moved with the
BLAS kernels of the machine.  With a noise model of the observables (diagonal covariance S), the
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
from functools import partial

import numpy as np
import pandas as pd

from .design import BOX, EXTRA_FEATURES, RECIPE_KEY, SAMPLE_TIMES, TARGETS, from_unit, to_unit, unit_span
from .kinetics import DEFAULT_PARAMETERS, KineticParameters, Recipe
from .memo import cached
from .mmd import MMD_COLUMNS
from .ode import run_ode
from .workers import parallel_map

JACOBIAN_RTOL = 1e-12  # LSODA relative tolerance of the runs that are differenced
FD_STEP = 2.5e-4  # central-difference step: relative for cBA_0, cAIBN_0; fraction of the box for temp, time
VALLEY_CHUNK = 32  # rows integrated at once by `valley_mse` (arrays of about 5 MB)
SIMPSON = np.r_[1.0, np.tile([4.0, 2.0], 100)[:-1], 1.0]  # Simpson weights on 201 points of a segment
MAX_TIME_MISMATCH = 60.0  # s: a data row is matched to the simulated sample nearest in time
MMD_FLOOR = 5e-4  # noise floor of a grid point where w is ~0 (the kMC scatter there, see `noise_model`)


@dataclass
class RowJacobians:
    """Observables and their derivatives for every row of the design (rows in the frame's order)."""

    observed: np.ndarray  # (rows, 103): deterministic MMD, log cBA_time, log Mn, log Mw (+ `EXTENDED`)
    jac: np.ndarray  # (rows, 103, 4): d observable / d target, targets in original units (105 extended)
    stopped: np.ndarray  # (rows,) True where the sample is the 90 % stop: time = t_stop(recipe)
    stop_gradient: np.ndarray  # (rows, 3): d t_stop / d (cBA_0, cAIBN_0, temp) on stopped rows


COMPOSITE = len(MMD_COLUMNS) + len(EXTRA_FEATURES)  # the study's observables: MMD, cBA_time, Mn, Mw
EXTENDED = ["cAIBN_time", "branching"]  # observables beyond the composite ones (`extended=True`), as logs


def _observables(run, k: int, extended: bool = False) -> np.ndarray:
    logs = [run.cBA[k], run.Mn[k], run.Mw[k]] + ([run.cAIBN[k], run.branching[k]] if extended else [])
    return np.concatenate([run.mmd[k], np.log(logs)])


def _same_sample(runs, k: int, stop: bool) -> bool:
    """Sample k exists in every run and is of the same kind (a 300 s sample, or the stop)."""
    if stop:
        return all(r.stopped for r in runs)
    return all(k < len(r.time) - (1 if r.stopped else 0) for r in runs)


def recipe_jacobians(recipe: tuple[float, float, float], rtol: float = JACOBIAN_RTOL,
                     step: float = FD_STEP, params: KineticParameters = DEFAULT_PARAMETERS,
                     extended: bool = False) -> tuple[np.ndarray, ...]:
    """Observables (samples x 103), Jacobians (samples x 103 x 4), stop flags and stop-time gradients
    of one recipe (with the given kinetic parameters).  Derivatives whose perturbed runs cross a stop are
    NaN (those rows are skipped).  `extended` appends log cAIBN_time and log branching (105 observables;
    their time derivatives by central differences in the sampling time)."""
    c, i, t = recipe
    run = partial(run_ode, rtol=rtol, params=params)
    _observables_ = partial(_observables, extended=extended)
    base = run(Recipe(c, i, t), with_rates=True)
    n = len(base.time)
    stopped = np.zeros(n, bool)
    stopped[-1] = base.stopped
    obs = np.array([_observables_(base, k) for k in range(n)])
    jac = np.full((n, obs.shape[1], 4), np.nan)
    grad = np.full((n, 3), np.nan)
    steps = (c * step, i * step, step * np.diff(BOX["temp"])[0])
    for j, h in enumerate(steps):
        runs = []
        for sign in (1.0, -1.0):
            r = np.array([c, i, t])
            r[j] += sign * h
            runs.append(run(Recipe(*r)))
        plus, minus = runs
        for k in range(n):
            if _same_sample(runs, k, stopped[k]):
                kk = -1 if stopped[k] else k
                jac[k, :, j] = (_observables_(plus, kk) - _observables_(minus, kk)) / (2 * h)
                if stopped[k]:
                    grad[k, j] = (plus.t_stop - minus.t_stop) / (2 * h)
    rates = base.info["rates"][:, :COMPOSITE]
    jac[:, : rates.shape[1], 3] = np.where(stopped[:, None], 0.0, rates)  # exact; the stop has no time
    if extended:  # the two extra observables' time derivatives: samples moved by +-h
        h = step * np.diff(BOX["time"])[0]
        plus, minus = (run(Recipe(c, i, t), sample_times=SAMPLE_TIMES + sign * h) for sign in (1.0, -1.0))
        for k in range(n):
            same = k < min(len(plus.time), len(minus.time)) - (1 if plus.stopped or minus.stopped else 0)
            ok = not stopped[k] and same
            jac[k, rates.shape[1]:, 3] = ((_observables_(plus, k) - _observables_(minus, k))[rates.shape[1]:]
                                         / (2 * h) if ok else (0.0 if stopped[k] else np.nan))
    return obs, jac, stopped, grad, base.time


def design_jacobians(frame: pd.DataFrame, jobs: int | None = None, rtol: float = JACOBIAN_RTOL,
                     step: float = FD_STEP, extended: bool = False) -> RowJacobians:
    """Jacobians at every row of `frame`, each row matched to the simulated sample nearest in time
    (a kMC stop and the deterministic stop differ by up to half a minute); unmatched rows stay NaN.
    `extended` adds log cAIBN_time and log branching (`EXTENDED`) after the 103 composite observables.
    Cached on disk (`memo`) by the rows' recipes and times and the settings."""
    key = frame[RECIPE_KEY + ["time"]].to_numpy(float).tobytes() + repr((rtol, step)).encode()
    # computed once with the extended observables and shared (chapters 8 and 9c run the same rows)
    full = cached("design_jacobians", key, lambda: _design_jacobians(frame, jobs, rtol, step, True))
    if extended:
        return full
    return RowJacobians(full.observed[:, :COMPOSITE], full.jac[:, :COMPOSITE], full.stopped,
                        full.stop_gradient)


def design_observables(frame: pd.DataFrame, jobs: int | None = None) -> RowJacobians:
    """The deterministic observables at every row of `frame` (default tolerance, no derivatives: `jac`
    and `stop_gradient` stay NaN): what `noise_model` needs, at a fraction of the Jacobians' cost."""
    return _design_rows(frame, jobs, _recipe_observables)


def _recipe_observables(recipe: tuple[float, float, float]) -> tuple[np.ndarray, ...]:
    run = run_ode(Recipe(*recipe))
    obs = np.array([_observables(run, k) for k in range(len(run.time))])
    stopped = np.zeros(len(run.time), bool)
    stopped[-1] = run.stopped
    return (obs, np.full(obs.shape + (4,), np.nan), stopped, np.full((len(run.time), 3), np.nan), run.time)


def _design_jacobians(frame: pd.DataFrame, jobs: int | None, rtol: float, step: float,
                      extended: bool = False) -> RowJacobians:
    return _design_rows(frame, jobs, partial(recipe_jacobians, rtol=rtol, step=step, extended=extended))


def _design_rows(frame: pd.DataFrame, jobs: int | None, per_recipe) -> RowJacobians:
    recipes = frame.groupby(RECIPE_KEY, sort=True).size().index.tolist()
    results = parallel_map(per_recipe, recipes, jobs)
    n_obs = results[0][0].shape[1]
    observed = np.full((len(frame), n_obs), np.nan)
    jac = np.full((len(frame), n_obs, 4), np.nan)
    stopped = np.zeros(len(frame), bool)
    grad = np.full((len(frame), 3), np.nan)
    keys = frame[RECIPE_KEY].itertuples(index=False, name=None)
    rows_of: dict[tuple, list[int]] = {}
    for p, key in enumerate(keys):
        rows_of.setdefault(key, []).append(p)
    row_time = frame.time.to_numpy(float)
    for recipe, (o, J, s, g, times) in zip(recipes, results):
        for p in rows_of[recipe]:
            k = int(np.argmin(np.abs(times - row_time[p])))
            if abs(times[k] - row_time[p]) <= MAX_TIME_MISMATCH:
                observed[p], jac[p], stopped[p], grad[p] = o[k], J[k], s[k], g[k]
    return RowJacobians(observed, jac, stopped, grad)


def noise_model(frame: pd.DataFrame, rj: RowJacobians) -> np.ndarray:
    """Standard deviation of every observable on every row (rows x 103), from the data's scatter
    around the deterministic engine: MMD point variance c_r * w + floor² with c_r fitted per row;
    log cBA_time, log Mn, log Mw (and, extended, log cAIBN_time and log branching when the frame has
    them) with their workbook-wide standard deviations."""
    w_det = rj.observed[:, : len(MMD_COLUMNS)]
    diff = frame[MMD_COLUMNS].to_numpy(float) - w_det
    c = np.nansum(diff**2, axis=1) / np.nansum(w_det, axis=1)
    sigma = np.full_like(rj.observed, np.nan)
    sigma[:, : len(MMD_COLUMNS)] = np.sqrt(c[:, None] * w_det + MMD_FLOOR**2)
    names = (EXTRA_FEATURES + EXTENDED)[: rj.observed.shape[1] - len(MMD_COLUMNS)]
    for j, name in enumerate(names):
        if name not in frame:  # an extended observable without its column: no noise estimate
            continue
        rel = np.log(frame[name].to_numpy(float)) - rj.observed[:, len(MMD_COLUMNS) + j]
        sigma[:, len(MMD_COLUMNS) + j] = np.nanstd(rel)
    return sigma


def bound_table(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray,
                scales: tuple[float, ...] = (1e-4, 0.01, 0.1, 1.0, 3.0, 10.0),
                observables: str = "composite") -> pd.DataFrame:
    """Best reachable R² per target (`valley_bound`) at noise levels `scales` x the dataset's kMC noise."""
    table = {scale: valley_bound(frame, rj, sigma, scale, observables) for scale in scales}
    return pd.DataFrame(table).T.rename_axis("noise × kMC")


def _range_units(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's recipe in the unit box of `design` (cAIBN_0 on a log scale), and the factors that
    turn d/d(target) into d/d(unit coordinate) per row."""
    y = frame[TARGETS].to_numpy(float)
    return to_unit(y), unit_span(y)


def weakest_direction(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray,
                      observables: str = "composite") -> pd.DataFrame:
    """Per row that did not stop: singular values of the noise-scaled Jacobian with every target in
    units of its design range (cAIBN_0 on a log scale), the weakest direction's components, and the
    change of ln cAIBN_0 per kelvin along it (the initiator-temperature trade-off)."""
    keep = slice(0, COMPOSITE) if observables == "composite" else slice(0, len(MMD_COLUMNS))
    _, factor = _range_units(frame)
    rows = []
    for r in np.flatnonzero(~rj.stopped & ~np.isnan(rj.jac).any(axis=(1, 2))):
        _, s, vt = np.linalg.svd(rj.jac[r, keep, :] / sigma[r, keep, None] * factor[r], full_matrices=False)
        v = vt[-1] * (np.sign(vt[-1][2]) or 1.0)
        rows.append({"row": r, "s1": s[0], "s2": s[1], "s3": s[2], "s4": s[3],
                     **{f"v_{t}": x for t, x in zip(TARGETS, v)},
                     "dlnI_dT": v[1] * factor[r, 1] / frame.cAIBN_0.iloc[r] / (v[2] * factor[r, 2])})
    return pd.DataFrame(rows).set_index("row")


def valley_bound(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, scale: float = 1.0,
                 observables: str = "composite", nodes: int = 24, prior: str = "design") -> dict:
    """Best R² per target when the design's box is what locates a recipe along its weakest direction.

    In unit-box coordinates the posterior of a row is, to first order, Gaussian across the three strong
    directions of the noise-scaled Jacobian (variance 1/(s_k² + 12): the data, and a prior as wide as
    the box) and, along the weakest one, the likelihood N(a_hat, (scale/s_4)²) times the prior on the
    segment of that line inside the box: uniform in original units (`prior="design"`, as the design's
    levels are spread), i.e. a density proportional to cAIBN_0 along the line (the box is log-scaled in
    cAIBN_0), or uniform in the box's coordinates (`prior="log"`: log-uniform in cAIBN_0).  The Bayes
    estimate of each target is its posterior mean along the segment, in original units; the squared
    error is averaged over the noise of a_hat by Gauss-Hermite quadrature.  Rows that stopped (time set
    by the stop) are left out; R² is over the remaining rows."""
    keep = slice(0, COMPOSITE) if observables == "composite" else slice(0, len(MMD_COLUMNS))
    _, factor = _range_units(frame)
    ok = ~rj.stopped & ~np.isnan(rj.jac).any(axis=(1, 2))
    return bound_of_rows(frame, ok, lambda r: rj.jac[r, keep, :] / (scale * sigma[r, keep, None]) * factor[r],
                         nodes, prior)


def bound_of_rows(frame: pd.DataFrame, ok: np.ndarray, scaled_jacobian, nodes: int = 24,
                  prior: str = "design") -> dict:
    """The valley bound (see `valley_bound`) over the rows where `ok`, given each row's noise-whitened
    Jacobian in unit-box coordinates, `scaled_jacobian(r)` (observations x 4)."""
    mse = valley_mse(frame, ok, scaled_jacobian, nodes, prior)
    y = frame[TARGETS].to_numpy(float)[ok]
    return {t: float(1.0 - mse[ok, j].mean() / y[:, j].var()) for j, t in enumerate(TARGETS)}


def valley_mse(frame: pd.DataFrame, ok: np.ndarray, scaled_jacobian, nodes: int = 24,
               prior: str = "design") -> np.ndarray:
    """Each row's Bayes mean squared error per target (rows x 4, original units; NaN where not `ok`) under
    the valley bound's posterior: Gaussian across the valley, exact along its segment in the box.  Rows
    are integrated VALLEY_CHUNK at a time (arrays of chunk x nodes x 201 x 4)."""
    if prior not in ("design", "log"):
        raise ValueError(f"prior must be 'design' or 'log', got {prior!r}")
    u, factor = _range_units(frame)
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    t = np.linspace(0.0, 1.0, len(SIMPSON))
    mse = np.full((len(frame), 4), np.nan)
    rows = np.flatnonzero(ok)
    for begin in range(0, len(rows), VALLEY_CHUNK):
        r = rows[begin: begin + VALLEY_CHUNK]
        svd = [np.linalg.svd(scaled_jacobian(k), full_matrices=False)[1:] for k in r]
        s, vt = np.array([a for a, _ in svd]), np.array([b for _, b in svd])
        strong = (vt[:, :3] ** 2 * (1.0 / (s[:, :3] ** 2 + 12.0))[:, :, None]).sum(axis=1)
        v = vt[:, 3]  # the weakest direction: the valley
        moving = np.abs(v) > 1e-12  # the segment inside the box, limited by the targets that move along it
        along_v = np.where(moving, v, 1.0)
        ends = np.stack([(0.0 - u[r]) / along_v, (1.0 - u[r]) / along_v])
        lo = np.where(moving, ends.min(axis=0), -np.inf).max(axis=1)[:, None]
        hi = np.where(moving, ends.max(axis=0), np.inf).min(axis=1)[:, None]
        tau = 1.0 / np.maximum(s[:, 3:], 1e-300)
        truth = from_unit(u[r])
        # per noise node, the posterior's support: the segment, or its part within 8 sd of the likelihood
        a_hat = tau * x
        c = np.clip(a_hat, lo, hi)
        start, stop = np.maximum(lo, c - 8 * tau), np.minimum(hi, c + 8 * tau)
        line = start[..., None] + t * (stop - start)[..., None]  # (rows, nodes, 201)
        along = from_unit(u[r][:, None, None, :] + line[..., None] * v[:, None, None, :])  # original units
        log_dens = -0.5 * ((line - a_hat[..., None]) / tau[..., None]) ** 2
        if prior == "design":
            log_dens = log_dens + np.log(np.prod(unit_span(along), axis=-1))
        dens = np.exp(log_dens - log_dens.max(axis=-1, keepdims=True)) * SIMPSON
        err = np.einsum("rnp,rnpk->rnk", dens, along) / dens.sum(axis=-1)[..., None] - truth[:, None, :]
        mse[r] = strong * factor[r] ** 2 + w @ err**2  # posterior means' errors averaged over the noise
    return mse


def stability(frame: pd.DataFrame, settings: dict[str, tuple[float, float]], n_recipes: int = 30,
              seed: int = 0) -> pd.DataFrame:
    """How the identifiability numbers move with the numerical settings: on the rows of `n_recipes`
    random recipes, the median singular values, the median initiator-temperature trade-off and the
    composite bound at the data's noise, for each named (rtol, step) setting."""
    groups = frame.groupby(RECIPE_KEY, sort=True).ngroup().to_numpy()
    chosen = np.random.default_rng(seed).choice(groups.max() + 1, n_recipes, replace=False)
    rows = frame[np.isin(groups, chosen)].reset_index(drop=True)
    out = {}
    for name, (rtol, step) in settings.items():
        rj = design_jacobians(rows, rtol=rtol, step=step)
        sigma = noise_model(rows, rj)
        weak = weakest_direction(rows, rj, sigma)
        bound = valley_bound(rows, rj, sigma)
        out[name] = {**{c: weak[c].median() for c in ("s1", "s2", "s3", "s4", "dlnI_dT")},
                     **{f"bound {t}": bound[t] for t in TARGETS}}
    return pd.DataFrame(out).T
