"""What to measure: the best R² each observation set can reach under a measurement profile, and what a
model trained on measured rows reaches.

An observation set is the study's composite observables plus any of: a known temperature, a known
reaction time, the residual initiator (`cAIBN_time`), the branching density, and a second sample of the
same run 600 s later (earlier when the run ends first).  Under a profile of `measurement`, the SEC trace
is the simulated one spread (band broadening), cut below the low-mass limit and renormalised; its noise
is the kinetic Monte Carlo scatter passed through that operator, the calibration shift (one random shift
of log M per run: a rank-one covariance along d trace / d shift) and the detector noise (correlated along
log M).  Mn and Mw are then computed from the measured trace, so they carry nothing beyond it and are
left out; without an instrument (`ideal`) they are the workbook's own, with their kMC scatter
(chapter 8).  Scalars are log-normal: their kMC scatter and the analysis combined.

`measured_bound` whitens each row's Jacobian with that covariance and takes chapter 8's valley bound
(`identifiability.bound_of_rows`); `check_bound` follows the curved valley instead.  `design_ceiling` is
the sound one: the exact Bayes estimate when the recipe is one of a lattice's rows (the design's, or a
finer one) and the noise is Gaussian with the same covariance.  `measured_frame` applies the measurement
model to the workbook's rows, and `achieved` trains and tests the boosted trees of chapter 9 on such rows
(grouped folds), with the added observables as inputs.  `inversion_against_bound` holds the physics
inversion's posterior means to the bound on the same measured rows; `check_inversions` gives the rows
on which the inversion's intervals and its posterior are checked (chapter 10).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from .calibration import (
    CALIBRATION,
    CALIBRATION_ROWS,
    SPLIT_SEED,
    conformal_factor,
    recipe_half,
    same_settings,
    scores,
    set_name,
)
from .calibration import COMPOSITE as COMPOSITE_OBSERVABLES
from .dataset import OBSERVABLES, load_dataset
from .design import (
    BOX,
    CAIBN0_LEVELS,
    CBA0_LEVELS,
    RECIPE_KEY,
    SAMPLE_EVERY,
    T_END,
    TARGETS,
    TEMP_LEVELS,
    from_unit,
    to_unit,
    unit_span,
)
from .evaluation import recipe_fold_indices
from .features import physics_features
from .hyperparameters import stamp, write_stored
from .identifiability import (
    COMPOSITE,
    EXTENDED,
    MMD_FLOOR,
    RowJacobians,
    _observables,
    _range_units,
    bound_of_rows,
    valley_mse,
)
from .inversion import settings as inversion_settings
from .kinetics import Recipe
from .measurement import (
    PROFILES,
    ObservationError,
    Profile,
    measure_scalar,
    measured_rows,
    measured_trace,
    trace_covariance,
    trace_operator,
    whitening,
)
from .metrics import metrics
from .mmd import MMD_COLUMNS
from .new_models import BoostedModel
from .ode import run_ode
from .roundtrip import KNOWN_COLUMNS, interval_hits, invert_rows
from .workers import n_jobs, parallel_map

N = len(MMD_COLUMNS)
EXTRAS = ["temp", "time", "cAIBN_time", "branching", "sample2"]  # what can be added to the composite set
SECOND_SAMPLE = 600.0  # s between the two samples of `sample2`
# the observation sets of the table: the study's, each single addition, and the pairs worth having
SETS = {"composite": (), "+ temp": ("temp",), "+ time": ("time",), "+ cAIBN_time": ("cAIBN_time",),
        "+ branching": ("branching",), "+ sample2": ("sample2",), "+ temp, time": ("temp", "time"),
        "+ temp, cAIBN_time": ("temp", "cAIBN_time"), "+ time, cAIBN_time": ("time", "cAIBN_time"),
        "+ cAIBN_time, branching": ("cAIBN_time", "branching")}


def parse_observe(text: str) -> tuple[str, ...]:
    """'composite[,temp][,time][,cAIBN_time][,branching][,sample2]' -> the added observables, in order."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts or parts[0] != "composite":
        raise ObservationError(f"--observe starts with 'composite' (the study's observables), got {text!r}")
    extra = parts[1:]
    unknown = [p for p in extra if p not in EXTRAS]
    if unknown:
        raise ObservationError(f"unknown observable(s) {unknown}; choose from {EXTRAS}")
    if len(set(extra)) != len(extra):
        raise ObservationError(f"an observable is named twice in {text!r}")
    return tuple(sorted(extra, key=EXTRAS.index))


def profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ObservationError(f"unknown noise profile {name!r}; choose from {list(PROFILES)}")
    return PROFILES[name]


def _whiten(cov: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """Jacobian in units of the noise (`measurement.whitening`), padded with zero rows to its length."""
    w = whitening(cov)
    out = np.zeros_like(jac)
    out[: len(w)] = w @ jac
    return out


def _sample_block(rj: RowJacobians, sigma: np.ndarray, r: int, p: Profile, extra: tuple[str, ...],
                  trace: bool = True) -> tuple[np.ndarray, ...]:
    """One sample's part of the observation: Jacobian of the trace, its noise covariance without the
    calibration shift, d trace / d shift, and the scalars (log cBA_time [, log Mn, log Mw], the extras'
    logs): their Jacobian and noise sd."""
    jac, s = rj.jac[r], sigma[r]
    if p.instrument and not trace:
        j_trace = cov = d_shift = None
        scalars = [(N, p.cBA_time)]
    elif p.instrument:
        op = trace_operator(rj.observed[r, :N], p)
        j_trace = op.d_trace @ jac[:N]
        cov = trace_covariance(op, s[:N])
        d_shift = op.d_shift
        scalars = [(N, p.cBA_time)]
    else:
        j_trace, cov, d_shift = jac[:N], np.diag(s[:N] ** 2), np.zeros(N)
        scalars = [(N, 0.0), (N + 1, 0.0), (N + 2, 0.0)]
    for name in ("cAIBN_time", "branching"):
        if name in extra:
            scalars.append((COMPOSITE + EXTENDED.index(name), getattr(p, name)))
    index = [j for j, _ in scalars]
    sd = np.array([np.hypot(np.nan_to_num(s[j]), analysis) for j, analysis in scalars])
    return j_trace, cov, d_shift, jac[index], sd


def partner_rows(frame: pd.DataFrame, rj: RowJacobians) -> np.ndarray:
    """Per row, the row of the same run SECOND_SAMPLE later (or earlier when the later one is missing or
    the stop), not stopped and with its Jacobian; -1 where there is none."""
    index = {key: p for p, key in enumerate(frame[RECIPE_KEY + ["time"]].itertuples(index=False, name=None))}
    good = ~rj.stopped & np.isfinite(rj.jac).all(axis=(1, 2))
    out = np.full(len(frame), -1)
    for p, (*recipe, t) in enumerate(frame[RECIPE_KEY + ["time"]].itertuples(index=False, name=None)):
        for other in (t + SECOND_SAMPLE, t - SECOND_SAMPLE):
            q = index.get((*recipe, other))
            if q is not None and good[q]:
                out[p] = q
                break
    return out


def whitened_jacobian(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, p: Profile,
                      extra: tuple[str, ...], r: int, partner: int = -1, traces: dict | None = None
                      ) -> np.ndarray:
    """Row r's observation Jacobian (observations x 4, original units) in units of its noise.  `traces`
    caches the whitened trace block of single samples by row (it depends on the profile only)."""
    if "sample2" not in extra and traces is not None:
        if r not in traces:
            j_trace, cov, d_shift, _, _ = _sample_block(rj, sigma, r, p, ())
            traces[r] = _whiten(cov + p.calibration_sd**2 * np.outer(d_shift, d_shift), j_trace)
        _, _, _, scalars, sd = _sample_block(rj, sigma, r, p, extra, trace=False)
        rows = [traces[r], scalars / sd[:, None]]
        rows += [np.eye(4)[j][None, :] / s for name, (j, s) in
                 {"temp": (2, p.known_temp), "time": (3, p.known_time)}.items() if name in extra]
        return np.vstack(rows)
    blocks = [_sample_block(rj, sigma, r, p, extra)]
    if "sample2" in extra:
        blocks.append(_sample_block(rj, sigma, partner, p, ()) if partner >= 0 else None)
    traces = [b for b in blocks if b is not None]
    j_trace = np.vstack([b[0] for b in traces])
    cov = np.zeros((len(j_trace), len(j_trace)))
    at = 0
    for b in traces:  # samples' noises independent, except the calibration shift: one per laboratory
        cov[at: at + len(b[0]), at: at + len(b[0])] = b[1]
        at += len(b[0])
    d_shift = np.concatenate([b[2] for b in traces])
    cov += p.calibration_sd**2 * np.outer(d_shift, d_shift)
    rows = [_whiten(cov, j_trace)] + [b[3] / b[4][:, None] for b in traces]
    known = {"temp": (2, p.known_temp), "time": (3, p.known_time)}
    for name, (j, sd) in known.items():
        if name in extra:
            rows.append(np.eye(4)[j][None, :] / sd)
    if len(blocks) == 2 and blocks[1] is None:  # no second sample in this run: as many rows, no information
        rows.append(np.zeros((N + len(blocks[0][3]), 4)))
    return np.vstack(rows)


def _bound_rows(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, noise: str,
                observe: str | tuple[str, ...], traces: dict | None = None) -> tuple[np.ndarray, object]:
    """The rows that have a bound under `noise` and `observe`, and each row's whitened Jacobian in unit
    coordinates (a function of the row's position)."""
    p = profile(noise)
    extra = parse_observe(observe) if isinstance(observe, str) else tuple(observe)
    if {"cAIBN_time", "branching"} & set(extra) and rj.jac.shape[1] <= COMPOSITE:
        raise ObservationError("cAIBN_time and branching need the extended Jacobians (extended=True)")
    _, factor = _range_units(frame)
    ok = ~rj.stopped & np.isfinite(rj.jac[:, : COMPOSITE]).all(axis=(1, 2))
    if rj.jac.shape[1] > COMPOSITE:
        ok &= np.isfinite(rj.jac).all(axis=(1, 2))
    partner = partner_rows(frame, rj) if "sample2" in extra else np.full(len(frame), -1)
    traces = {} if traces is None else traces
    return ok, lambda r: whitened_jacobian(frame, rj, sigma, p, extra, r, partner[r], traces) * factor[r]


def measured_bound(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, noise: str = "typical",
                   observe: str | tuple[str, ...] = "composite", prior: str = "design",
                   traces: dict | None = None) -> dict:
    """Best reachable R² per target (chapter 8's valley bound) for the observation set `observe` under the
    measurement profile `noise`; `rj` from `design_jacobians(..., extended=True)` when the set includes
    cAIBN_time or branching, `sigma` from `noise_model` on a frame with the observables."""
    ok, jacobian = _bound_rows(frame, rj, sigma, noise, observe, traces)
    return bound_of_rows(frame, ok, jacobian, prior=prior)


def bound_table(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, noises: tuple[str, ...],
                sets: dict[str, tuple[str, ...]] = SETS) -> pd.DataFrame:
    """Bound per target for every profile and observation set (rows: profile, set)."""
    out = {}
    for n in noises:
        traces: dict = {}  # the whitened traces of one profile, shared by its sets
        for label, extra in sets.items():
            out[(n, label)] = measured_bound(frame, rj, sigma, n, extra, traces=traces)
    table = pd.DataFrame(out).T
    table.index.names = ["noise", "observed"]
    table["lowest"] = table[TARGETS].min(axis=1)
    return table


# --- check of the linearised bound: the posterior along the curved valley ----------------------------

CHECK_TEMPS = np.linspace(BOX["temp"][0], BOX["temp"][1], 21)  # the profile's grid, 1 °C (2 °C is too
# coarse where a measurement narrows the temperature to a few degrees)
CHECK_RTOL = 1e-7  # solver tolerance of the check's runs (their differences enter its Jacobians)
CHI2_WALK = 100.0  # the profile stops where the noise-free misfit exceeds this (weights below e^-50)
FREE_COORDS = [0, 1, 3]  # cBA_0, cAIBN_0, time: optimised at each temperature of the profile


def _forward(recipe: np.ndarray, p: Profile, extra: tuple[str, ...]) -> np.ndarray:
    """Deterministic observations of a recipe sampled at its time (or at its stop): measured trace
    (points above the cut-off), then log cBA_time [, log Mn, log Mw], then the extras' logs."""
    run = run_ode(Recipe(*recipe[:3]), rtol=CHECK_RTOL, sample_times=np.array([recipe[3]]))
    k = len(run.time) - 1
    trace = trace_operator(run.mmd[k], p).trace if p.instrument else run.mmd[k]
    logs = [run.cBA[k]] + ([] if p.instrument else [run.Mn[k], run.Mw[k]])
    logs += [getattr(run, "cAIBN" if name == "cAIBN_time" else name)[k]
             for name in ("cAIBN_time", "branching") if name in extra]
    return np.concatenate([trace, np.log(logs)])


def _observation_cov(rj: RowJacobians, sigma: np.ndarray, r: int, p: Profile, extra: tuple[str, ...]
                     ) -> np.ndarray:
    """Noise covariance of `_forward`'s vector at row r."""
    j_trace, cov_trace, d_shift, _, sd = _sample_block(rj, sigma, r, p, extra)
    n = len(j_trace)
    cov = np.zeros((n + len(sd), n + len(sd)))
    cov[:n, :n] = cov_trace + p.calibration_sd**2 * np.outer(d_shift, d_shift)
    cov[n:, n:] = np.diag(sd**2)
    return cov


def _valley_profile(truth: np.ndarray, whiten: np.ndarray, p: Profile, extra: tuple[str, ...]) -> list:
    """The noise-free misfit profiled along the temperature: at each temperature of CHECK_TEMPS (1 °C
    apart), walking out from the truth's, the best cBA_0, cAIBN_0 and time (unit-box coordinates,
    bounded least squares), with the whitened residual and its Jacobian there."""
    from scipy.optimize import least_squares

    f0 = _forward(truth, p, extra)
    known = [(j, getattr(p, f"known_{name}")) for j, name in ((2, "temp"), (3, "time")) if name in extra]
    u_truth = to_unit(truth[None, :])[0]

    def residual(free: np.ndarray, temp_u: float) -> np.ndarray:
        u = np.insert(free, 2, temp_u)
        recipe = from_unit(u[None, :])[0]
        return np.concatenate([whiten @ (_forward(recipe, p, extra) - f0),
                               [(recipe[j] - truth[j]) / sd for j, sd in known]])

    temps_u = to_unit(np.column_stack([np.full((len(CHECK_TEMPS), 2), truth[:2]), CHECK_TEMPS,
                                       np.full(len(CHECK_TEMPS), truth[3])]))[:, 2]
    start = int(np.argmin(np.abs(CHECK_TEMPS - truth[2])))
    points = []
    for direction in (range(start, len(CHECK_TEMPS)), range(start - 1, -1, -1)):
        free = u_truth[FREE_COORDS]
        for k in direction:
            fit = least_squares(residual, free, args=(temps_u[k],), bounds=(0.0, 1.0), diff_step=1e-4,
                                x_scale=0.01, xtol=1e-6, max_nfev=200)
            free = fit.x
            points.append((k, np.insert(free, 2, temps_u[k]), fit.fun, fit.jac))
            if fit.fun @ fit.fun > CHI2_WALK:
                break
    return sorted(points, key=lambda point: point[0])


def _check_row(task: tuple) -> np.ndarray:
    """Squared errors of the posterior mean along the valley for one row, per noise draw (draws x 4).

    Per temperature of the profile the posterior of the other three is Gaussian (Gauss-Newton from the
    noise-free optimum, Laplace volume det(J'J)^-1/2), weighted by exp(-chi²/2) and the prior (uniform in
    original units); the temperature is integrated on the profile's grid.  The measurement's noise is
    drawn in the whitened space."""
    truth, cov, p, extra, n_draws, seed = task
    whiten = whitening(cov)
    points = _valley_profile(truth, whiten, p, extra)
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(n_draws):
        z = rng.standard_normal(len(points[0][2]))
        log_w, means = [], []
        for _, u, r, jac in points:
            step, *_ = np.linalg.lstsq(jac, z - r, rcond=None)
            misfit = r + jac @ step - z
            u_post = u.copy()
            u_post[FREE_COORDS] = np.clip(u[FREE_COORDS] + step, 0.0, 1.0)
            recipe = from_unit(u_post[None, :])[0]
            _, logdet = np.linalg.slogdet(jac.T @ jac + 12.0 * np.eye(3))
            log_w.append(-0.5 * misfit @ misfit - 0.5 * logdet + np.log(np.prod(unit_span(recipe[None, :]))))
            means.append(recipe)
        w = np.exp(np.array(log_w) - max(log_w))
        errors.append(w @ np.array(means) / w.sum() - truth)
    return np.array(errors)


def check_bound(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, noise: str = "typical",
                observe: str | tuple[str, ...] = "composite", n_rows: int = 40, n_draws: int = 16,
                seed: int = 0, jobs: int | None = None) -> pd.DataFrame:
    """The bound on `n_rows` random rows that did not stop, from the posterior along the curved valley
    (`_check_row`: exact along the temperature, Gaussian across it) beside the linearised one on the
    same rows.  Columns: targets; rows: 'along the valley', 'linearised'."""
    p = profile(noise)
    extra = parse_observe(observe) if isinstance(observe, str) else tuple(observe)
    if "sample2" in extra:
        raise ObservationError("the check covers single samples (not sample2)")
    good = ~rj.stopped & np.isfinite(rj.jac).all(axis=(1, 2))
    rows = np.sort(np.random.default_rng(seed).choice(np.flatnonzero(good), n_rows, replace=False))
    truth = frame[TARGETS].to_numpy(float)
    tasks = [(truth[r], _observation_cov(rj, sigma, r, p, extra), p, extra, n_draws, seed * 100_003 + k)
             for k, r in enumerate(rows)]
    errors = np.concatenate(parallel_map(_check_row, tasks, jobs))
    sub = frame.iloc[rows].reset_index(drop=True)
    sub_rj = RowJacobians(rj.observed[rows], rj.jac[rows], rj.stopped[rows], rj.stop_gradient[rows])
    linear = measured_bound(sub, sub_rj, sigma[rows], noise, extra)
    along = dict(zip(TARGETS, 1.0 - (errors**2).mean(axis=0) / truth[rows].var(axis=0)))
    return pd.DataFrame({"along the valley": along, "linearised": linear}).T


# --- a sound ceiling: the exact Bayes estimate when the recipe is one of a lattice's -----------------

CANDIDATES = 100  # per truth, the lattice rows nearest in noise-free misfit: its posterior's support
# (50 and all 4775 rows of the design gave the same R² to 3 decimals on 200 truths, `typical`)
SCALAR_CUT = 10.0  # noise sd: a row whose scalars miss a truth's by more weighs < e^-15 of the truth's own
NOISE_CACHE = 6000  # rows whose trace whitening is kept in memory (float32, 30 KB each under `typical`)


@dataclass
class Lattice:
    """Recipes sampled in time, each row equally likely a priori: targets, deterministic observables
    (as `RowJacobians.observed`, extended) and their kinetic Monte Carlo noise (as `noise_model`)."""

    targets: np.ndarray  # (rows, 4)
    observed: np.ndarray  # (rows, 105)
    sigma: np.ndarray  # (rows, 105)
    _noise: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)

    def trace_noise(self, p: Profile, i: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Row i's trace noise under profile p (the bound's covariance, `_sample_block`): its whitening
        (float32, zero rows where there is no noise), the sd of its noise directions, its log-determinant.
        The last NOISE_CACHE rows asked for are kept, of one profile."""
        key = (p.name, int(i))
        if key in self._noise:
            self._noise.move_to_end(key)
            return self._noise[key]
        if self._noise and next(iter(self._noise))[0] != p.name:
            self._noise.clear()
        w, s = self.observed[i, :N], self.sigma[i, :N]
        if p.instrument:
            op = trace_operator(w, p)
            cov = trace_covariance(op, s) + p.calibration_sd**2 * np.outer(op.d_shift, op.d_shift)
        else:
            cov = np.diag(s**2)
        vals, vecs = np.linalg.eigh(cov)
        good = vals > vals.max() * 1e-12  # the renormalised trace's area carries no noise
        scale = np.sqrt(vals[good])
        whiten = np.zeros(cov.shape, np.float32)
        whiten[: good.sum()] = (vecs[:, good] / scale).T
        self._noise[key] = (whiten, scale, float(2 * np.log(scale).sum()))
        if len(self._noise) > NOISE_CACHE:
            self._noise.popitem(last=False)
        return self._noise[key]


def design_lattice(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray) -> Lattice:
    """The workbook's rows whose observables and composite noise are finite (stopped rows too).  Without
    the observables sheet the residual initiator's and branching's kMC noise is unknown (NaN): their
    analysis' precision is then their whole noise, as in the bound."""
    ok = np.isfinite(rj.observed).all(axis=1) & np.isfinite(sigma[:, :COMPOSITE]).all(axis=1)
    return Lattice(frame[TARGETS].to_numpy(float)[ok], rj.observed[ok], sigma[ok])


def refined_lattice(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, factor: int = 2,
                    jobs: int | None = None) -> Lattice:
    """The design's lattice with `factor` - 1 levels inserted between neighbouring levels of cBA_0,
    cAIBN_0 and temp and samples every 300 / `factor` s (and the stop), run with the deterministic
    engine: a prior that tends to the continuous one within the box as `factor` grows.  Each row takes
    the kMC noise of the nearest design row (unit-box distance)."""
    from scipy.spatial import cKDTree

    def finer(levels: tuple[float, ...]) -> np.ndarray:
        return np.unique(np.concatenate([np.linspace(a, b, factor + 1) for a, b in zip(levels, levels[1:])]))

    times = np.arange(SAMPLE_EVERY / factor, T_END + 1.0, SAMPLE_EVERY / factor)
    recipes = [Recipe(c, i, t) for c in finer(CBA0_LEVELS) for i in finer(CAIBN0_LEVELS)
               for t in finer(TEMP_LEVELS)]
    runs = parallel_map(partial(_lattice_rows, times=times), recipes, jobs)
    targets = np.vstack([r[0] for r in runs])
    observed = np.vstack([r[1] for r in runs])
    design = design_lattice(frame, rj, sigma)
    _, nearest = cKDTree(to_unit(design.targets)).query(to_unit(targets))
    kmc = design.sigma[nearest]
    w_design = design.observed[nearest, :N]
    c = (kmc[:, :N] ** 2 - MMD_FLOOR**2).sum(axis=1) / w_design.sum(axis=1)  # the row's kMC c_r
    kmc[:, :N] = np.sqrt(c[:, None] * observed[:, :N] + MMD_FLOOR**2)
    return Lattice(targets, observed, kmc)


def _lattice_rows(recipe: Recipe, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One recipe's rows of a lattice: targets and extended observables at its samples."""
    run = run_ode(recipe, sample_times=times)
    targets = np.array([[recipe.cBA_0, recipe.cAIBN_0, recipe.temp, t] for t in run.time])
    return targets, np.array([_observables(run, k, extended=True) for k in range(len(run.time))])


def _scalars(lattice: Lattice, p: Profile, extra: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Every row's scalar observations (logs of cBA_time [, Mn, Mw] and the measured extras; the known
    temperature and time) and their noise sd, as `_sample_block` has them."""
    index = [(N, p.cBA_time)] if p.instrument else [(N, 0.0), (N + 1, 0.0), (N + 2, 0.0)]
    index += [(COMPOSITE + EXTENDED.index(name), getattr(p, name)) for name in EXTENDED if name in extra]
    values = [lattice.observed[:, j] for j, _ in index]
    sds = [np.hypot(np.nan_to_num(lattice.sigma[:, j]), analysis) for j, analysis in index]
    for j, name in ((2, "temp"), (3, "time")):
        if name in extra:
            values.append(lattice.targets[:, j])
            sds.append(np.full(len(lattice.targets), getattr(p, f"known_{name}")))
    return np.column_stack(values), np.column_stack(sds)


def posterior_means(lattice: Lattice, p: Profile, observations: tuple[np.ndarray, ...], rows: np.ndarray,
                    trace: np.ndarray, scalar: np.ndarray) -> np.ndarray:
    """Posterior mean of the targets (draws x 4) over the lattice's `rows`, equally likely a priori, for
    observed traces (draws x kept) and scalars (draws x s); `observations` = every row's noise-free
    (traces, scalars, scalar sd)."""
    traces, scalars, sds = observations
    noises = [lattice.trace_noise(p, int(i)) for i in rows]
    resid = np.stack([q[0] for q in noises]) @ (trace[None] - traces[rows][:, None]).transpose(0, 2, 1)
    chi2 = (resid**2).sum(axis=1) + (((scalar[None] - scalars[rows][:, None]) / sds[rows][:, None]) ** 2
                                     ).sum(axis=2)  # (rows, draws)
    log_det = np.array([q[2] for q in noises]) + 2 * np.log(sds[rows]).sum(axis=1)
    log_w = -0.5 * (chi2 + log_det[:, None])
    weight = np.exp(log_w - log_w.max(axis=0))
    return (weight.T @ lattice.targets[rows]) / weight.sum(axis=0)[:, None]


def design_ceiling(lattice: Lattice, noise: str = "typical", observe: str | tuple[str, ...] = "composite",
                   draws: int = 2, truths: int | None = None, seed: int = 0,
                   candidates: int = CANDIDATES) -> pd.DataFrame:
    """A sound ceiling on the R² of any model scored on the lattice's rows: the Bayes estimate when the
    recipe is one of the rows, all equally likely, and the observation is the row's deterministic one
    plus Gaussian noise of the bound's covariance (`_sample_block`).  Per truth (every row, or `truths`
    random ones) and noise draw, the posterior over the `candidates` rows nearest the truth is exact; no
    estimator has a smaller mean squared error, so no model's R² on these rows exceeds it, up to the
    Monte Carlo error.  Rows: 'R²' and its Monte Carlo standard error 'se'; columns: targets."""
    p = profile(noise)
    extra = parse_observe(observe) if isinstance(observe, str) else tuple(observe)
    if "sample2" in extra:
        raise ObservationError("the ceiling covers single samples (not sample2)")
    w = lattice.observed[:, :N]
    traces = np.array([measured_trace(x, p) for x in w]) if p.instrument else w
    scalars, sds = _scalars(lattice, p, extra)
    noise_of = partial(lattice.trace_noise, p)
    rng = np.random.default_rng(seed)
    chosen = (np.arange(len(traces)) if truths is None or truths >= len(traces)
              else np.sort(rng.choice(len(traces), truths, replace=False)))
    y = lattice.targets
    k_near = min(candidates, len(traces))
    errors = np.empty((len(chosen), draws, 4))
    for n, k in enumerate(chosen):
        whiten, scale, _ = noise_of(k)
        root = whiten[: len(scale)].T * scale**2  # a square root of the covariance
        misfit = (((scalars - scalars[k]) / sds) ** 2).sum(axis=1)
        near = np.flatnonzero(misfit < SCALAR_CUT**2)  # the trace's misfit only where the scalars fit
        if len(near) < k_near:
            near = np.argpartition(misfit, k_near - 1)[:k_near]
        misfit = misfit[near] + ((whiten @ (traces[near] - traces[k]).T.astype(np.float32)) ** 2).sum(axis=0)
        c = near[np.argpartition(misfit, k_near - 1)[:k_near]]
        trace = traces[k] + rng.standard_normal((draws, root.shape[1])) @ root.T  # (draws, kept)
        scalar = scalars[k] + rng.standard_normal((draws, scalars.shape[1])) * sds[k]
        errors[n] = posterior_means(lattice, p, (traces, scalars, sds), c, trace, scalar) - y[k]
    squared = (errors**2).mean(axis=1)  # per truth
    var = y[chosen].var(axis=0)
    r2 = 1.0 - squared.mean(axis=0) / var
    se = squared.std(axis=0, ddof=1) / np.sqrt(len(squared)) / var
    return pd.DataFrame([r2, se], index=["R²", "se"], columns=TARGETS)


def ceiling_table(lattice: Lattice, noise: str = "typical", sets: dict[str, tuple[str, ...]] = SETS,
                  truths: int | None = None, seed: int = 0) -> pd.DataFrame:
    """`design_ceiling`'s R² per observation set of one profile (rows; sample2 left out), with the largest
    Monte Carlo standard error of the four in 'se'."""
    out = {}
    for label, extra in sets.items():
        if "sample2" not in extra:
            result = design_ceiling(lattice, noise, extra, truths=truths, seed=seed)
            out[label] = {**result.loc["R²"].to_dict(), "se": float(result.loc["se"].max())}
    return pd.DataFrame(out).T.rename_axis("observed")


# --- models trained and tested on measured rows ------------------------------------------------------

def measured_frame(frame: pd.DataFrame, noise: str, observe: str | tuple[str, ...], seed: int = 0
                   ) -> pd.DataFrame:
    """The workbook's rows as the instruments of profile `noise` would report them: measured MMD, Mn and
    Mw from it (with an instrument), cBA_time by GC; the extras of `observe` (cAIBN_time, branching:
    measured; temp, time: known, as columns `known_temp`, `known_time`; sample2: the partner sample's
    measured MMD as `MMD2_1..`, its cBA_time as `cBA_time2`, and the time between them as `dt2`).  The
    frame's other observables (the simulation's true values) are dropped."""
    p = profile(noise)
    extra = parse_observe(observe) if isinstance(observe, str) else tuple(observe)
    rng = np.random.default_rng(seed)
    # what is not measured is not reported: the simulation's true observables leave the frame
    out = measured_rows(frame.drop(columns=[c for c in OBSERVABLES if c in frame and c not in extra]), p, rng)
    added: dict[str, np.ndarray] = {}
    for name in ("cAIBN_time", "branching"):
        if name in extra:
            if name not in frame:
                raise ObservationError(f"{name} needs the workbook's observables sheet")
            out[name] = measure_scalar(frame[name].to_numpy(float), getattr(p, name), rng)
    for name, column in KNOWN_COLUMNS.items():
        if name in extra:
            sd = getattr(p, f"known_{name}")
            added[column] = frame[name].to_numpy(float) + sd * rng.standard_normal(len(frame))
    out = pd.concat([out, pd.DataFrame(added, index=frame.index)], axis=1)
    if "sample2" in extra:
        out = _with_second_sample(out)
    return out


def _with_second_sample(frame: pd.DataFrame) -> pd.DataFrame:
    """Each row with the measured MMD and cBA_time of its run's sample SECOND_SAMPLE later (earlier when
    there is none); rows of runs with a single sample keep their own (dt2 = 0)."""
    keys = list(frame[RECIPE_KEY + ["time"]].itertuples(index=False, name=None))
    index = {key: p for p, key in enumerate(keys)}
    partner = np.arange(len(frame))
    for p, (*recipe, t) in enumerate(keys):
        for other in (t + SECOND_SAMPLE, t - SECOND_SAMPLE):
            if (*recipe, other) in index:
                partner[p] = index[(*recipe, other)]
                break
    second = frame.iloc[partner]
    extra = pd.DataFrame(second[MMD_COLUMNS].to_numpy(), index=frame.index,
                         columns=[f"MMD2_{k + 1}" for k in range(N)])
    extra["cBA_time2"] = second["cBA_time"].to_numpy()
    extra["dt2"] = second["time"].to_numpy() - frame["time"].to_numpy()
    return pd.concat([frame, extra], axis=1)


class MeasuredModel(BoostedModel):
    """Chapter 9's boosted trees, with the added observables of `measured_frame` as inputs (logs of
    cAIBN_time and branching, the known temperature and time, and the second sample's physics features
    with the time between the samples)."""

    def __init__(self, extra: tuple[str, ...], params: dict[str, dict] | None = None, seed: int = 0):
        super().__init__("composite", params, intervals=False, seed=seed)
        self.extra = extra

    def _inputs(self, frame: pd.DataFrame, cBA_0: np.ndarray | None = None) -> pd.DataFrame:
        x = super()._inputs(frame, cBA_0)
        for name in ("cAIBN_time", "branching"):
            if name in self.extra:
                x[f"log_{name}"] = np.log10(frame[name].to_numpy(float))
        for column in KNOWN_COLUMNS.values():
            if column in frame:
                x[column] = frame[column].to_numpy(float)
        if "dt2" in frame:
            second = frame[[f"MMD2_{k + 1}" for k in range(N)]].set_axis(MMD_COLUMNS, axis=1)
            shape = physics_features(second.assign(cBA_time=frame["cBA_time2"], Mn=np.nan, Mw=np.nan),
                                     with_extras=False)
            x[[f"{c}_2" for c in shape.columns]] = shape.to_numpy()
            x["log_cBA_time_2"] = np.log10(frame["cBA_time2"].to_numpy(float))
            x["dt2"] = frame["dt2"].to_numpy(float)
        return x


FAST = {t: {"learning_rate": 0.1, "max_iter": 200} for t in TARGETS}  # the measured sets' trees


def achieved(frame: pd.DataFrame, noise: str, observe: str | tuple[str, ...], seed: int = 0,
             params: list[dict] | None = None, jobs: int | None = None) -> dict:
    """Metrics (as `evaluation.evaluate`) of `MeasuredModel` on unseen recipes (GroupKFold(5) over
    recipes), trained and tested on rows passed through the measurement model (one draw, seed `seed`);
    per-fold parameters `params` (the nested search's, chapter 9) or `FAST` (learning rate 0.1, 200
    trees).  A known target is predicted by the model too (it is one of its inputs)."""
    extra = parse_observe(observe) if isinstance(observe, str) else tuple(observe)
    rows = measured_frame(frame, noise, extra, seed)
    folds = recipe_fold_indices(rows)

    def fold(k: int) -> tuple[np.ndarray, np.ndarray]:
        train, test = folds[k]
        model = MeasuredModel(extra, params[k] if params else FAST, seed=seed)
        model.fit(rows.iloc[train])
        return test, model.predict(rows.iloc[test]).to_numpy()

    pred = np.full((len(rows), 4), np.nan)
    y = frame[TARGETS].to_numpy(float)
    scores = []
    for test, p in Parallel(n_jobs=min(jobs or n_jobs(), len(folds)))(delayed(fold)(k) for k in range(5)):
        pred[test] = p
        scores.append(metrics(y[test], p)["global_r2"])
    m = metrics(y, pred)
    return {"model": "hgb", "features": "composite", "split": "recipes", "noise": noise,
            "observe": ["composite", *extra], "r2": dict(zip(TARGETS, m["r2"])),
            "rel_mae": dict(zip(TARGETS, m["rel_mae"])), "global_r2": m["global_r2"],
            "global_mse": m["global_mse"], "fold_global_r2": scores}


def transfer(frame: pd.DataFrame, noise: str, seed: int = 0, jobs: int | None = None) -> dict:
    """R² per target on unseen recipes of the composite model trained on the simulator's rows and
    tested on the same test rows measured with profile `noise` (what the finder's models face with a
    real trace), beside the model trained on measured rows too (`achieved`)."""
    rows = measured_frame(frame, noise, (), seed)
    folds = recipe_fold_indices(frame)

    def fold(k: int) -> tuple[np.ndarray, np.ndarray]:
        train, test = folds[k]
        model = MeasuredModel((), FAST, seed=seed).fit(frame.iloc[train])
        return test, model.predict(rows.iloc[test]).to_numpy()

    pred = np.full((len(rows), 4), np.nan)
    for test, p in Parallel(n_jobs=min(jobs or n_jobs(), len(folds)))(delayed(fold)(k) for k in range(5)):
        pred[test] = p
    y = frame[TARGETS].to_numpy(float)
    return {"trained on the simulator": dict(zip(TARGETS, metrics(y, pred)["r2"])),
            "trained on measured rows": achieved(frame, noise, (), seed, jobs=jobs)["r2"]}


COST = {"temp": 0, "time": 0, "cAIBN_time": 1, "branching": 2, "sample2": 1}  # 0: known; 1: one analysis;
# 2: hours of quantitative 13C NMR.  Used to order sets of equal reach.


def goal(table: pd.DataFrame, noise: str = "typical", level: float = 0.95) -> dict:
    """From a bound table (`bound_table`): the best single added measurement under `noise` (highest lowest
    R²), whether it reaches `level` for all four targets, and the sets of two that do, cheapest first."""
    rows = table.loc[noise]
    singles = rows[[label.count(",") == 0 and label != "composite" for label in rows.index]]
    best = singles["lowest"].idxmax()
    pairs = rows[[label.count(",") == 1 for label in rows.index]]
    reaching = pairs[pairs["lowest"] >= level]
    order = sorted(reaching.index,
                   key=lambda label: (sum(COST[e] for e in SETS[label]), -reaching.loc[label, "lowest"]))
    return {"best single": best, "its lowest R²": float(singles.loc[best, "lowest"]),
            "a single one reaches": bool(singles["lowest"].max() >= level), "pairs that reach": order}


def achieved_table(frame: pd.DataFrame, noise: str = "typical", sets: dict[str, tuple[str, ...]] = SETS,
                   seed: int = 0) -> pd.DataFrame:
    """`achieved` R² per target for every observation set (rows); a set that needs the observables sheet
    when the workbook has none is left empty (NaN)."""
    out = {}
    for label, extra in sets.items():
        missing = [name for name in ("cAIBN_time", "branching") if name in extra and name not in frame]
        out[label] = (dict.fromkeys(TARGETS, np.nan) if missing
                      else achieved(frame, noise, extra, seed)["r2"])
    table = pd.DataFrame(out).T.rename_axis("observed")
    table["lowest"] = table[TARGETS].min(axis=1)
    return table


def measured_sample(frame: pd.DataFrame, noise: str, n_rows: int, seed: int, observe: str = "composite",
                    recipes: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n_rows` random rows of the workbook (seed `seed`; of one half of its recipes if `recipes` names it,
    `calibration.recipe_half`) and the same rows measured with profile `noise` and observation set
    `observe` (`measured_frame`, same seed)."""
    pool = frame if recipes is None else frame[recipe_half(frame, recipes)]
    rng = np.random.default_rng(seed)
    rows = pool.iloc[np.sort(rng.choice(len(pool), n_rows, replace=False))]
    return rows, measured_frame(rows, noise, observe, seed)


def measured_inversions(frame: pd.DataFrame, noise: str = "typical", n_rows: int = 30, seed: int = 0,
                        jobs: int | None = None, observe: str = "composite", recipes: str | None = None,
                        calibrated: bool = True) -> tuple[pd.DataFrame, ...]:
    """`n_rows` random rows of the workbook (seed `seed`, of the half `recipes` if given), measured with
    profile `noise` and observation set `observe` (the frame needs the observables sheet for cAIBN_time
    and branching) and inverted with what they observe: the rows, and the inversion's table
    (`roundtrip.invert_rows`; intervals `calibrated` or as the posterior gives them)."""
    if "sample2" in parse_observe(observe):
        raise ObservationError("the inversion takes one sample: sample2 has no coverage check")
    rows, measured = measured_sample(frame, noise, n_rows, seed, observe, recipes)
    return rows, invert_rows(measured, jobs=jobs, noise=noise, calibrated=calibrated)


def check_inversions(frame: pd.DataFrame, sets: tuple[str, ...], noise: str = "typical", n_rows: int = 20,
                     seed: int = 0, jobs: int | None = None, calibrated: bool = True) -> dict:
    """Per observation set: `measured_inversions` of the same `n_rows` rows of the check recipes (those the
    interval calibration did not use): {set: (rows, inversion table)}."""
    return {observe: measured_inversions(frame, noise, n_rows, seed, jobs, observe, "check", calibrated)
            for observe in sets}


def coverage_table(checked: dict) -> pd.DataFrame:
    """Per observation set of `check_inversions` (rows) and target: the % of rows whose truth lies inside
    the inversion's 90 % interval."""
    return pd.DataFrame({observe: 100 * interval_hits(rows, inverted).mean()
                         for observe, (rows, inverted) in checked.items()}).T


def bound_at(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, noise: str, observe: str,
             rows: pd.Index) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """The linearised bound on chosen rows of `frame`: those of `rows` that have one (not at the 90 %
    stop), each one's Bayes squared error per target (`identifiability.valley_mse`) and the targets'
    variance over the design's rows with a bound (the scale of R²)."""
    ok, jacobian = _bound_rows(frame, rj, sigma, noise, observe)
    at = frame.index.get_indexer(rows)
    keep = at[ok[at]]
    only = np.zeros(len(frame), bool)
    only[keep] = True
    variance = frame.loc[ok, TARGETS].to_numpy(float).var(axis=0)
    return frame.index[keep], valley_mse(frame, only, jacobian)[keep], variance


def inversion_against_bound(frame: pd.DataFrame, rj: RowJacobians, sigma: np.ndarray, noise: str = "typical",
                            sets: dict[str, tuple[str, ...]] = SETS, n_rows: int = 40, seed: int = 0,
                            jobs: int | None = None) -> pd.DataFrame:
    """The physics inversion's posterior means against the linearised bound on the same measured rows:
    `n_rows` rows of the check recipes (`measured_inversions`, the same rows for every set), less those at
    the 90 % stop (no bound there).  Per set of `sets` (as `SETS`, without sample2: the inversion takes
    one sample) and target: R² = 1 - mean squared error / the target's variance over the design's rows
    with a bound, for the `bound` (each row's Bayes error, `identifiability.valley_mse`) and the
    `inversion`, the `gap` between them, and the share of the inversion's squared error that its worst
    tenth of rows carries; `se` is the gap's standard error from the rows' spread (largest over the
    targets), `rows` how many rows entered."""
    parts = {}
    for label, extra in sets.items():
        observe = ",".join(("composite",) + tuple(extra))
        rows, inverted = measured_inversions(frame, noise, n_rows, seed, jobs, observe, "check",
                                             calibrated=False)
        chosen, bound, variance = bound_at(frame, rj, sigma, noise, observe, rows.index)
        error = (inverted.loc[chosen, [f"{t} mean" for t in TARGETS]].to_numpy(float)
                 - rows.loc[chosen, TARGETS].to_numpy(float)) ** 2
        gap = (error - bound) / variance  # bound less inversion, per row
        worst = np.sort(error, axis=0)[-max(1, len(chosen) // 10):]  # the inversion's worst tenth of rows
        part = pd.DataFrame({"bound": 1.0 - bound.mean(axis=0) / variance,
                             "inversion": 1.0 - error.mean(axis=0) / variance, "gap": gap.mean(axis=0),
                             "worst tenth": worst.sum(axis=0) / np.maximum(error.sum(axis=0), 1e-300)},
                            index=TARGETS).T
        part["se"] = float((gap.std(axis=0, ddof=1) / np.sqrt(len(chosen))).max())
        part["rows"] = len(chosen)
        parts[label] = part
    return pd.concat(parts, names=["observed", ""])


# the sets whose intervals are calibrated: the table's, less the second sample (the inversion takes one)
CALIBRATED_SETS = ("composite", "composite,temp", "composite,time", "composite,cAIBN_time",
                   "composite,branching", "composite,temp,time", "composite,temp,cAIBN_time",
                   "composite,time,cAIBN_time", "composite,cAIBN_time,branching")


def calibration_summary(rows: pd.DataFrame, inverted: pd.DataFrame, level: float = 0.90
                        ) -> tuple[dict, dict]:
    """The split-conformal factor of each target (`calibration`) from measured rows and their inversion
    (uncalibrated intervals), and the coverage (%) of those intervals on these rows."""
    low = inverted[[f"{t} low" for t in TARGETS]].set_axis(TARGETS, axis=1)
    high = inverted[[f"{t} high" for t in TARGETS]].set_axis(TARGETS, axis=1)
    score = scores(rows[TARGETS], low, high)
    return ({t: conformal_factor(score[t], level) for t in TARGETS},
            (100 * interval_hits(rows, inverted).mean()).round(1).to_dict())


def calibrate_intervals(frame: pd.DataFrame, noise: str = "typical", sets: tuple[str, ...] = CALIBRATED_SETS,
                        n_rows: int | None = None, seed: int = 0, level: float = 0.90,
                        jobs: int | None = None) -> dict:
    """Split-conformal factors of the inversion's intervals per observation set: `n_rows` rows of the
    calibration recipes (default: the profile's CALIBRATION_ROWS), measured with `noise` and inverted
    (`calibration_summary`); with each set's coverage before calibration on these rows."""
    n_rows = CALIBRATION_ROWS[noise] if n_rows is None else n_rows
    factors, before = {}, {}
    for observe in sets:
        rows, inverted = measured_inversions(frame, noise, n_rows, seed, jobs, observe, "calibration",
                                             calibrated=False)
        name = set_name(COMPOSITE_OBSERVABLES + parse_observe(observe))
        factors[name], before[name] = calibration_summary(rows, inverted, level)
    return {"factors": factors, "coverage_before": before}


def write_calibration(data: str | None = None, noises: tuple[str, ...] | None = None,
                      out: str | Path = CALIBRATION, level: float = 0.90) -> dict:
    """Calibrate the intervals of each profile of `noises` (default: every profile of CALIBRATION_ROWS) on
    the workbook and store the factors (`data/` file of `calibration`) with its checksums.  The other
    profiles of a file already at `out` are kept if it was calibrated on the same workbook, with the same
    inversion settings and level."""
    noises = tuple(CALIBRATION_ROWS) if noises is None else noises
    unknown = set(noises) - set(CALIBRATION_ROWS)
    if unknown:
        raise ObservationError(f"profiles without a calibration: {sorted(unknown)}; calibrated are "
                               f"{list(CALIBRATION_ROWS)}")
    frame = load_dataset(data, observables=True)
    stored = {**stamp(data), "level": level, "rows": {}, "split_seed": SPLIT_SEED,
              "method": "split conformal, half-widths in unit coordinates, ends on a bound kept",
              "inversion": inversion_settings(), "factors": {}, "coverage_before": {}}
    previous = json.loads(Path(out).read_text()) if Path(out).exists() else {}
    same = all(same_settings(previous.get(key), stored[key])
               for key in ("data_sha256", "level", "split_seed", "method", "inversion"))
    for noise in PROFILES:  # in the profiles' order, calibrated or kept
        if noise in noises:
            result = calibrate_intervals(frame, noise, level=level)
            rows, factors, before = CALIBRATION_ROWS[noise], result["factors"], result["coverage_before"]
        elif same and noise in previous["factors"]:
            rows = previous["rows"][noise] if isinstance(previous["rows"], dict) else previous["rows"]
            factors, before = previous["factors"][noise], previous["coverage_before"][noise]
        else:
            continue
        for key, value in (("rows", rows), ("factors", factors), ("coverage_before", before)):
            stored[key][noise] = value
    write_stored(stored, out)
    return stored
