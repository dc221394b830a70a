"""Physics-based inversion: the posterior over the recipes whose simulated polymer matches an observed one.

The forward model is the deterministic engine, sampled at the reaction time (or at the 90 % stop if that
comes first).  The misfit chi² is a noise-weighted sum of squares over the MMD points and, when given,
the log-ratios of cBA_time, Mn and Mw (noise levels `NOISE`, close to the kinetic Monte Carlo noise of
the database), so chi² of about one per observed value is "as good as the data".  What else the chemist
measured or knows enters the same way: the residual initiator and the branching density (log-ratios, with
the `typical` precision of `measurement`), a known reaction time or temperature (differences in s or °C).

From these observables temperature, initiator and time trade along a valley that the data cannot see
through (chapter 8): the best-fit point on it is arbitrary within the noise, and moves with the last
digits of the arithmetic.  So the inversion reports the posterior instead.  It profiles the misfit along
the temperature: at each temperature of a grid over the design's box, SciPy's bounded trust-region least
squares finds the best cBA_0, cAIBN_0 and time (in the unit box of `design`, log scale for the
initiator); around each such point the posterior is Gaussian (Laplace), with the prior uniform in the
design's box in original units.  The posterior is the mixture of these pieces, weighted by
exp(-chi²/2) x their volume x the prior density.  If even the best point misfits by more than the noise
(chi² per value above 1), the noise is scaled up by that ratio (Birge ratio) before weighting, so that a
poor fit gives wide intervals, not false precision.  Reported: the posterior mean and median and a
central credible interval per target, and the recipe on the valley at the posterior median temperature
(the other three fitted there), which is the recipe to run: a point of the valley makes the polymer
again, the mean of a curved valley need not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import ndtr

from .design import BOX, CENTRE, TARGETS, as_dict, from_unit, to_unit, unit_span
from .kinetics import Recipe
from .measurement import PROFILES, Profile, measured_trace, trace_operator, whitening
from .mmd import DLOGM, N_POINTS, l1_distance
from .ode import run_ode

# Noise levels: w(log M) per grid point (kMC against deterministic MMDs of the dataset's control volumes
# differ by about this much), and relative noise of cBA_time, Mn, Mw; residual initiator and branching with
# the `typical` precision of their analyses; a known time to 5 s (sampling and quench) and a known
# temperature to 0.5 °C (a controlled reactor).
NOISE = {"mmd": 0.01, "cBA_time": 0.005, "Mn": 0.01, "Mw": 0.01,
         "cAIBN_time": PROFILES["typical"].cAIBN_time, "branching": PROFILES["typical"].branching,
         "time": 5.0, "temp": 0.5}
# The simulator's own scatter of the scalars (kMC against the deterministic engine, 40 random rows of the
# workbook: cBA_time 0.32 %, cAIBN_time 0.05 %, branching 0.13 %, rounded up), to which a measurement
# profile adds its analysis' precision (`measurement_noise`).
SIMULATOR_SCATTER = {"cBA_time": NOISE["cBA_time"], "cAIBN_time": 0.001, "branching": 0.002}
MEASURED = ("cBA_time", "Mn", "Mw", "cAIBN_time", "branching")  # compared as log-ratios
KNOWN = ("time", "temp")  # compared as differences
PROFILE_TARGET = "temp"  # the valley's main axis (chapter 8)
GRID_STEP = 2.0  # °C between the first profile points; refined where the posterior changes fast
MIN_STEP = 1.0  # °C: the finest refinement (summaries move by < 0.1 °C with a finer one)
XTOL = 1e-5  # optimiser tolerance in unit-box coordinates (1e-5 of each range)
JAC_STEP = 1e-3  # difference step of the Laplace Jacobian, unit-box coordinates
HPD_POINTS = 4001  # grid of a marginal for its highest-density interval
MAX_EVALUATIONS = 6000  # forward runs of one inversion (about 1000 are usual)
MAX_SECONDS = 300.0


class InversionBudgetError(RuntimeError):
    """An inversion that exceeded its budget of forward runs or of time."""


class Budget:
    """Counts the forward runs of one inversion and stops it, with a named error, past its limits."""

    def __init__(self, evaluations: int = MAX_EVALUATIONS, seconds: float = MAX_SECONDS):
        self.limit, self.seconds, self.used = evaluations, seconds, 0
        self.deadline = time.monotonic() + seconds

    def spend(self) -> None:
        self.used += 1
        if self.used > self.limit or time.monotonic() > self.deadline:
            raise InversionBudgetError(
                f"the fit did not converge within {self.limit} model evaluations or {self.seconds:g} s "
                f"({self.used} used): is this a polymer of this chemistry (BA with AIBN in toluene)?")
FREE = [j for j, t in enumerate(TARGETS) if t != PROFILE_TARGET]
J_PROFILE = TARGETS.index(PROFILE_TARGET)


@dataclass
class Observation:
    """What is measured on one sample: the MMD on the model grid, and optionally the other outputs, the
    residual initiator (mol/L), the branching density (mol %), and a known time (s) or temperature (°C)."""

    mmd: np.ndarray
    cBA_time: float | None = None
    Mn: float | None = None
    Mw: float | None = None
    cAIBN_time: float | None = None
    branching: float | None = None
    time: float | None = None
    temp: float | None = None

    def __post_init__(self) -> None:
        self.mmd = np.asarray(self.mmd, dtype=float)
        if self.mmd.shape != (N_POINTS,):
            raise ValueError(f"the MMD must have {N_POINTS} points on the model grid, got {self.mmd.shape}")
        if not np.isfinite(self.mmd).all() or (self.mmd < 0).any():
            raise ValueError("the MMD has negative or non-finite values")
        self.mmd = self.mmd / (self.mmd.sum() * DLOGM)

    @property
    def extras(self) -> list[str]:
        """The measured quantities besides the MMD."""
        return [n for n in MEASURED if getattr(self, n) is not None]

    @property
    def known(self) -> list[str]:
        """The targets given as known."""
        return [n for n in KNOWN if getattr(self, n) is not None]


def forward(recipe: dict) -> dict:
    """Deterministic engine at the recipe's time (or at its 90 % stop): mmd, cBA_time, Mn, Mw, cAIBN_time,
    branching, the sample's time and temperature."""
    run = run_ode(Recipe(recipe["cBA_0"], recipe["cAIBN_0"], recipe["temp"]),
                  sample_times=np.array([recipe["time"]]))
    return {"mmd": run.mmd[-1], "cBA_time": float(run.cBA[-1]), "Mn": float(run.Mn[-1]),
            "Mw": float(run.Mw[-1]), "cAIBN_time": float(run.cAIBN[-1]),
            "branching": float(run.branching[-1]),
            "time": float(run.time[-1]), "temp": float(recipe["temp"]), "stopped": run.stopped}


def measurement_noise(obs: Observation, profile: Profile) -> dict:
    """The noise of an observation measured with `profile`: without an instrument, `NOISE`.  With one, the
    simulated trace is passed through the instrument (broadening, cut-off, renormalisation) and compared
    with the observed one over the points kept, whitened by their covariance: `NOISE`'s per-point noise
    through the operator, the calibration's shift (rank one) and the detector's correlated noise, all
    linearised at the observed trace; Mn and Mw, computed from that trace, are not compared again;
    the other scalars combine the simulator's scatter with the analysis' precision, and known values
    take the profile's."""
    if not profile.instrument:
        return NOISE
    op = trace_operator(obs.mmd, profile)
    cov = ((op.d_trace * NOISE["mmd"] ** 2) @ op.d_trace.T + op.detector
           + profile.calibration_sd**2 * np.outer(op.d_shift, op.d_shift))
    noise = {name: float(np.hypot(SIMULATOR_SCATTER[name], getattr(profile, name))) for name in MEASURED
             if name not in ("Mn", "Mw")}
    observed = obs.mmd[op.kept] / (obs.mmd[op.kept].sum() * DLOGM)
    return {**NOISE, **noise, "time": profile.known_time, "temp": profile.known_temp, "profile": profile,
            "whiten": whitening(cov), "observed_trace": observed}


def residuals(recipe: dict, obs: Observation, noise: dict = NOISE) -> np.ndarray:
    """Noise-scaled differences between the simulated and the observed polymer (through the instrument
    of `measurement_noise` when `noise` has one)."""
    sim = forward(recipe)
    if "whiten" in noise:
        r = [noise["whiten"] @ (measured_trace(sim["mmd"], noise["profile"]) - noise["observed_trace"])]
    else:
        r = [(sim["mmd"] - obs.mmd) / noise["mmd"]]
    for name in obs.extras:
        if name in ("Mn", "Mw") and "whiten" in noise:
            continue
        r.append(np.array([np.log(sim[name] / getattr(obs, name)) / noise[name]]))
    for name in obs.known:
        r.append(np.array([(sim[name] - getattr(obs, name)) / noise[name]]))
    return np.concatenate(r)


def disagreements(recipe: dict, obs: Observation, noise: dict = NOISE, limit: float = 3.0,
                  names: tuple[str, ...] = ("cAIBN_time", "branching", "time", "temp")) -> list[str]:
    """The given values among `names` (default: what conditions the inversion beyond the study's outputs,
    whose misfit the fit's own verdict already covers) that the recipe misses by more than `limit`
    standard deviations."""
    sim = forward(recipe)
    out = []
    for name in [n for n in obs.extras + obs.known if n in names]:
        value = getattr(obs, name)
        z = (np.log(sim[name] / value) if name in MEASURED else sim[name] - value) / noise[name]
        if abs(z) > limit:
            out.append(f"the given {name} = {value:.4g} disagrees with the rest of the data: the recipe that "
                       f"fits everything best has {name} = {sim[name]:.4g}, {abs(z):.0f} standard "
                       f"deviations away; check the value and its unit")
    return out


def _unit_residuals(u: np.ndarray, obs: Observation, noise: dict, budget: Budget | None = None) -> np.ndarray:
    if budget is not None:
        budget.spend()
    return residuals(as_dict(from_unit(u)), obs, noise)


@dataclass
class ProfilePoint:
    """The best recipe at one fixed temperature, and the local shape of the misfit around it."""

    u: np.ndarray  # unit-box coordinates of the recipe (TARGETS order)
    chi2: float
    jac: np.ndarray  # d residuals / d free unit coordinates (observables x 3)
    evaluations: int

    @property
    def recipe(self) -> dict:
        return as_dict(from_unit(self.u))


def conditional_fit(obs: Observation, value: float, start: dict | np.ndarray, noise: dict = NOISE,
                    target: str = PROFILE_TARGET, budget: Budget | None = None) -> ProfilePoint:
    """Best recipe with `target` fixed at `value` (the other three free inside the box), from `start`
    (a recipe, or unit-box coordinates)."""
    j = TARGETS.index(target)
    free = [k for k in range(len(TARGETS)) if k != j]
    u = to_unit(start) if isinstance(start, dict) else np.array(start, float)
    u[j] = to_unit({**as_dict(from_unit(u)), target: value})[j]

    def res(v: np.ndarray) -> np.ndarray:
        full = u.copy()
        full[free] = v
        return _unit_residuals(full, obs, noise, budget)

    fit = least_squares(res, np.clip(u[free], 0.0, 1.0), bounds=(0.0, 1.0), diff_step=1e-3, max_nfev=60,
                        xtol=XTOL, ftol=XTOL)
    u[free] = fit.x
    # the local shape for the Laplace approximation: least_squares zeroes the columns of variables held
    # at a bound, so the Jacobian is differenced here, one-sided towards the inside of the box
    jac = np.empty((len(fit.fun), len(free)))
    for c in range(len(free)):
        h = JAC_STEP if fit.x[c] + JAC_STEP <= 1.0 else -JAC_STEP
        v = fit.x.copy()
        v[c] += h
        jac[:, c] = (res(v) - fit.fun) / h
    return ProfilePoint(u, float(2.0 * fit.cost), jac, int(fit.nfev * (1 + len(free)) + len(free)))


def profile(obs: Observation, values: np.ndarray, start: dict | ProfilePoint, noise: dict = NOISE,
            target: str = PROFILE_TARGET, budget: Budget | None = None) -> list[ProfilePoint]:
    """Conditional fits at each of `values` of `target` (sorted), walking outward from the value nearest
    the start's; each fit starts where the last two optima point (linear extrapolation along the
    valley).  Returned in `values` order."""
    values = np.asarray(values, float)
    j = TARGETS.index(target)
    if isinstance(start, ProfilePoint):
        first = int(np.argmin(np.abs(values - start.recipe[target])))
        points = {first: start if np.isclose(start.recipe[target], values[first])
                  else conditional_fit(obs, values[first], start.u, noise, target, budget)}
    else:
        first = int(np.argmin(np.abs(values - start[target])))
        points = {first: conditional_fit(obs, values[first], start, noise, target, budget)}
    for order in (range(first + 1, len(values)), range(first - 1, -1, -1)):
        path = [points[first]]
        for k in order:
            guess = path[-1].u.copy()
            if len(path) > 1:  # predictor: continue the valley's last step
                a, b = path[-2].u, path[-1].u
                step = to_unit({**path[-1].recipe, target: values[k]})[j] - b[j]
                guess = b + (b - a) * step / (b[j] - a[j])
            points[k] = conditional_fit(obs, values[k], guess, noise, target, budget)
            path.append(points[k])
    return [points[k] for k in range(len(values))]


def profile_table(points: list[ProfilePoint]) -> pd.DataFrame:
    """One row per profile point: the recipe, chi² and chi² per observed value."""
    n_obs = points[0].jac.shape[0]
    return pd.DataFrame([{**p.recipe, "chi2": p.chi2, "chi2 per observable": p.chi2 / n_obs} for p in points])


@dataclass
class Posterior:
    """The posterior over the recipe along the valley, and its summaries (original units)."""

    temps: np.ndarray  # profile grid (°C)
    weights: np.ndarray  # posterior mass of each profile point (sums to 1)
    centres: np.ndarray  # (points, 4) the profile recipes
    sds: np.ndarray  # (points, 4) conditional standard deviations (temp: half the cell, uniform)
    cells: np.ndarray  # (points, 2) the temperature cell each point stands for
    inflation: float  # noise scale-up (Birge ratio) applied to the likelihood, >= 1
    n_observed: int
    chi2_min: float
    mean: dict = field(default_factory=dict)
    median: dict = field(default_factory=dict)

    def cdf(self, target: str, x: np.ndarray) -> np.ndarray:
        """Marginal posterior CDF of one target at the values x."""
        x = np.atleast_1d(np.asarray(x, float))[:, None]
        if target == PROFILE_TARGET:
            lo, hi = self.cells[:, 0], self.cells[:, 1]
            part = np.clip((x - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)
        else:
            j = TARGETS.index(target)
            part = ndtr((x - self.centres[:, j]) / np.maximum(self.sds[:, j], 1e-300))
        return part @ self.weights

    def quantile(self, target: str, q: float) -> float:
        """Marginal posterior quantile of one target, by bisection on its CDF."""
        j = TARGETS.index(target)
        lo = float(np.min(self.centres[:, j] - 8 * self.sds[:, j]))
        hi = float(np.max(self.centres[:, j] + 8 * self.sds[:, j]))
        if target == PROFILE_TARGET:
            lo, hi = float(self.cells.min()), float(self.cells.max())
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.cdf(target, mid)[0] < q else (lo, mid)
        return 0.5 * (lo + hi)

    def density(self, target: str, x: np.ndarray) -> np.ndarray:
        """Marginal posterior density of one target at the values x (not renormalised to the box)."""
        x = np.atleast_1d(np.asarray(x, float))[:, None]
        if target == PROFILE_TARGET:
            lo, hi = self.cells[:, 0], self.cells[:, 1]
            inside = (x >= lo) & (x <= hi)
            return (inside / np.maximum(hi - lo, 1e-12)) @ self.weights
        j = TARGETS.index(target)
        sd = np.maximum(self.sds[:, j], 1e-300)
        return np.exp(-0.5 * ((x - self.centres[:, j]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)) @ self.weights

    def interval(self, level: float = 0.90) -> dict[str, tuple[float, float]]:
        """Highest-posterior-density credible interval of each target, in the box: the smallest set of
        values holding `level` of the posterior mass inside the box (reported as its hull).  Unlike a
        central interval it reaches a bound where the posterior piles up against it."""
        out = {}
        for j, t in enumerate(TARGETS):
            lo_box, hi_box = BOX[t]
            if t == PROFILE_TARGET:
                lo, hi = lo_box, hi_box
            else:
                lo = max(lo_box, float(np.min(self.centres[:, j] - 8 * self.sds[:, j])))
                hi = min(hi_box, float(np.max(self.centres[:, j] + 8 * self.sds[:, j])))
            x = np.linspace(lo, hi, HPD_POINTS) if hi > lo else np.array([lo])
            mass = self.density(t, x)
            if mass.sum() <= 0 or len(x) == 1:
                out[t] = (lo, hi)
                continue
            order = np.argsort(-mass, kind="stable")
            keep = order[: int(np.searchsorted(np.cumsum(mass[order]) / mass.sum(), level)) + 1]
            out[t] = (float(x[keep].min()), float(x[keep].max()))
        return out

    def correlation(self, a: str = "temp", b: str = "cAIBN_0") -> float:
        """Posterior correlation of two targets over the profile points (the valley's trade-off)."""
        ja, jb = TARGETS.index(a), TARGETS.index(b)
        xa, xb = self.centres[:, ja], self.centres[:, jb]
        ma, mb = self.weights @ xa, self.weights @ xb
        cov = self.weights @ ((xa - ma) * (xb - mb))
        va = self.weights @ (xa - ma) ** 2 + self.weights @ self.sds[:, ja] ** 2
        vb = self.weights @ (xb - mb) ** 2 + self.weights @ self.sds[:, jb] ** 2
        return float(cov / np.sqrt(va * vb)) if va > 0 and vb > 0 else 0.0


def _log_weights(points: list[ProfilePoint], inflation: float) -> tuple[np.ndarray, np.ndarray]:
    """Log posterior mass of each profile point per unit temperature, and its conditional covariance
    (3 x 3, unit coordinates).  Laplace: exp(-chi²/2) x sqrt(det C) x prior density; the prior is
    uniform in original units, i.e. a density prod(unit_span) in unit coordinates, and contributes a
    precision of 12 per unit coordinate (the variance of a uniform box) so that flat directions stay
    bounded."""
    logw, covs = [], []
    for p in points:
        precision = p.jac.T @ p.jac / inflation + 12.0 * np.eye(len(FREE))
        cov = np.linalg.inv(precision)
        _, logdet = np.linalg.slogdet(cov)
        prior = np.log(unit_span(from_unit(p.u))[FREE]).sum()
        logw.append(-0.5 * p.chi2 / inflation + 0.5 * logdet + prior)
        covs.append(cov)
    return np.array(logw), np.array(covs)


def posterior_from_profile(temps: np.ndarray, points: list[ProfilePoint],
                           bounds: tuple[float, float] | None = None) -> Posterior:
    """The mixture posterior of a profile over the temperature grid `temps` (sorted), whose cells span
    `bounds` (default: the design's box)."""
    n_obs = points[0].jac.shape[0]
    chi2 = np.array([p.chi2 for p in points])
    inflation = max(1.0, float(chi2.min()) / n_obs)
    logw, covs = _log_weights(points, inflation)
    lo_box, hi_box = BOX[PROFILE_TARGET] if bounds is None else bounds
    edges = np.concatenate([[lo_box], 0.5 * (temps[1:] + temps[:-1]), [hi_box]])
    cells = np.column_stack([edges[:-1], edges[1:]])
    mass = np.exp(logw - logw.max()) * (cells[:, 1] - cells[:, 0])  # density x cell width
    weights = mass / mass.sum()
    centres = np.array([from_unit(p.u) for p in points])
    span = unit_span(centres)
    sds = np.zeros_like(centres)
    sds[:, FREE] = np.sqrt(np.einsum("kii->ki", covs)) * span[:, FREE]
    sds[:, J_PROFILE] = (cells[:, 1] - cells[:, 0]) / np.sqrt(12.0)
    post = Posterior(temps, weights, centres, sds, cells, inflation, n_obs, float(chi2.min()))
    post.mean = {t: float(weights @ centres[:, j]) for j, t in enumerate(TARGETS)}
    post.mean[PROFILE_TARGET] = float(weights @ cells.mean(axis=1))
    post.median = {t: post.quantile(t, 0.5) for t in TARGETS}
    return post


def _refine(temps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Midpoints of the grid cells around which the posterior mass changes by more than a factor 2,
    or that hold more than a fifth of it (not finer than MIN_STEP)."""
    new = []
    for k in range(len(temps) - 1):
        a, b = weights[k], weights[k + 1]
        changes = max(a, b) > 2.0 * min(a, b) and max(a, b) > 1e-3
        if (changes or max(a, b) > 0.2) and temps[k + 1] - temps[k] > 2 * MIN_STEP - 1e-9:
            new.append(0.5 * (temps[k] + temps[k + 1]))
    return np.array(new)


@dataclass
class Inversion:
    recipe: dict  # the valley's recipe at the posterior median temperature
    mean: dict  # posterior mean of each target
    median: dict  # posterior median of each target
    interval: dict  # central credible interval of each target (low, high)
    level: float
    correlation: float  # posterior correlation of temperature and initiator
    misfit: float  # chi² per observed value at the reported recipe
    inflation: float  # noise scale-up applied (1 = the fit is as good as the noise)
    mmd_l1: float  # L1 distance between the observed and the re-simulated MMD at `recipe`
    simulated: dict  # the forward model's outputs at `recipe`
    evaluations: int
    posterior: Posterior


def free_fit(obs: Observation, start: dict, noise: dict = NOISE,
             budget: Budget | None = None) -> tuple[dict, float]:
    """The best-fit recipe of all four targets from one start, and its chi².  On the valley this point
    is arbitrary within the noise (it depends on the start and on the arithmetic's last digits): the
    inversion uses it only to find the valley."""
    fit = least_squares(_unit_residuals, to_unit(start), bounds=(0.0, 1.0), diff_step=1e-3, max_nfev=60,
                        xtol=XTOL, ftol=XTOL, args=(obs, noise, budget))
    return as_dict(from_unit(fit.x)), float(2.0 * fit.cost)


def invert(obs: Observation, starts: list[dict] | None = None, noise: dict = NOISE,
           level: float = 0.90, budget: Budget | None = None) -> Inversion:
    """The posterior of the recipe along the temperature valley, its summaries and the recipe to run.

    `starts` are first guesses (e.g. a model's prediction); the profile starts at the guess whose
    conditional fit is best, and walks over a 2 °C grid spanning the box, refined to MIN_STEP where the
    posterior changes fast.  Past its budget of forward runs or time it stops with InversionBudgetError."""
    budget = Budget() if budget is None else budget
    starts = [CENTRE] if not starts else starts
    lo, hi = BOX[PROFILE_TARGET]
    temps = np.linspace(lo, hi, int(round((hi - lo) / GRID_STEP)) + 1)
    bounds = (lo, hi)
    if obs.temp is not None:  # a known temperature: the posterior lives within 3 sd of it, nowhere else
        near = obs.temp + noise["temp"] * np.array([-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0])
        temps = np.unique(np.round(near[(near >= lo) & (near <= hi)], 6))
        bounds = (max(lo, obs.temp - 3.25 * noise["temp"]), min(hi, obs.temp + 3.25 * noise["temp"]))
    # find the valley first: a free fit of all four targets from each start; the best one lies on it
    best = min((free_fit(obs, s, noise, budget) for s in starts), key=lambda fit: fit[1])
    points = profile(obs, temps, best[0], noise, budget=budget)
    while True:
        post = posterior_from_profile(temps, points, bounds)
        new = _refine(temps, post.weights)
        if not len(new):
            break
        for t in new:
            k = int(np.searchsorted(temps, t))
            neighbour = points[k - 1] if points[k - 1].chi2 <= points[k].chi2 else points[k]
            points.insert(k, conditional_fit(obs, float(t), neighbour.u, noise, budget=budget))
            temps = np.insert(temps, k, t)
    near = int(np.argmin(np.abs(temps - post.median[PROFILE_TARGET])))
    chosen = conditional_fit(obs, post.median[PROFILE_TARGET], points[near].u, noise, budget=budget)
    recipe = chosen.recipe
    sim = forward(recipe)
    return Inversion(recipe=recipe, mean=post.mean, median=post.median, interval=post.interval(level),
                     level=level, correlation=post.correlation(), misfit=chosen.chi2 / post.n_observed,
                     inflation=post.inflation, mmd_l1=float(l1_distance(sim["mmd"], obs.mmd)), simulated=sim,
                     evaluations=budget.used, posterior=post)
