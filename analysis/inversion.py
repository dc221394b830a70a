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
design's box in original units: it cuts each piece at the box and does not narrow it.  The posterior is
the mixture of these pieces, weighted by exp(-chi²/2) x their volume inside the box x the prior
density.  If even the best point misfits by more than the noise (chi² per value above 1), the noise is
scaled up by that ratio (Birge ratio) before weighting, so that a poor fit gives wide intervals, not
false precision.  With an SEC instrument (`measurement_noise`) the
calibration's shift of log M is a fifth fitted parameter with its prior, marginalised in the same Laplace
step.  The misfit then has many minima in the shift, a fraction of a decade apart (the whitened trace is
sharp in its fine structure), each with its own recipe: the free fit first fits the recipe with the
shift held at a ladder of values (`held_shifts`) and starts from the best.  A shift traded against the
chains' length can also fit a trace in two ways (more initiator and a
shorter time, or less and a longer one), so the walk looks for other minima (`other_minima`) and walks a
branch from each, the posterior mixing all branches.  Reported: the posterior mean and median and a
highest-density credible interval per target (`calibration` scales it to its level on measured data),
and the recipe on the valley at the posterior median temperature (the other three fitted there), which
is the recipe to run: a point of the valley makes the polymer again, the mean of a curved valley need
not.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import log_ndtr, ndtr

from .design import (
    BOX,
    CENTRE,
    TARGETS,
    as_dict,
    from_unit,
    target_from_unit,
    target_span,
    target_to_unit,
    to_unit,
    unit_span,
)
from .kinetics import Recipe
from .measurement import (
    PROFILES,
    Profile,
    measured_trace,
    reported,
    trace_covariance,
    trace_operator,
    whitening,
)
from .mmd import DLOGM, N_POINTS, l1_distance
from .ode import run_ode

# Noise levels: w(log M) per grid point (kMC against deterministic MMDs of the dataset's control volumes
# differ by about this much), and relative noise of cBA_time, Mn, Mw; residual initiator and branching with
# the `typical` precision of their analyses; a known time and temperature to the `ideal` profile's sds
# (1 s, 0.1 °C: without an instrument the inversion holds them as the bound of chapter 9c does).
NOISE = {"mmd": 0.01, "cBA_time": 0.005, "Mn": 0.01, "Mw": 0.01,
         "cAIBN_time": PROFILES["typical"].cAIBN_time, "branching": PROFILES["typical"].branching,
         "time": PROFILES["ideal"].known_time, "temp": PROFILES["ideal"].known_temp}
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
VALLEY_TOL = 1e-3  # the free fit's: it only has to reach the valley, where the conditional fits polish
JAC_STEP = 1e-3  # difference step of the Laplace Jacobian, unit-box coordinates
# the inversion's model-error floor, a fraction of the detector's baseline noise (`measurement_noise`):
# under `poor` (1e-4 of the peak) it lifts the posterior means' R² of cBA_0 and time by 0.06 and 0.11
# (paired, 100 calibration rows; `benchmarks/model_floor.py`) and the monomer's raw coverage over the
# calibrated sets from 71-84 to 79-86 % (`make calibrate`, 160 rows per set); under `typical` (2e-5) it is
# neutral: at 2.5e-5 the paired R² changed by -0.006 +- 0.003.  A larger floor under `poor` alone does not
# close the monomer's gap: on 160 calibration rows, 1e-4 / 2.5e-4 / 5e-4 of the peak hold it 84 / 86 / 86 %
# (composite) and 79 / 85 / 86 % (+ cAIBN_time) with median widths 24 / 25 / 27 and 19 / 24 / 26 % of the
# range and no better R²: a widening, which the conformal factors do anyway
MODEL_FLOOR = 0.01
HPD_POINTS = 4001  # grid of a marginal for its highest-density interval
PRIOR_FLOOR = 0.01  # precision per unit coordinate that keeps a flat piece finite (the box cuts it)
SAME_MINIMUM = 0.01  # unit-box distance under which two fits at one temperature are the same minimum
# initiator and time (unit box) the search for other minima starts from: more initiator and a shorter time
# against less and a longer one, their chains' length traded against the calibration's shift
MODE_STARTS = ((0.15, 0.15), (0.15, 0.85), (0.85, 0.15), (0.85, 0.85))
MODE_WINDOW = 20.0  # chi² above the branch's best within which another minimum gets a branch of its own
MAX_BRANCHES = 3
MODE_MARGIN = 5.0  # chi² by which a search fit (VALLEY_TOL) may exceed MODE_WINDOW and still be refitted
MAX_EVALUATIONS = 6000  # forward runs of one inversion (about 1000 are usual)
MAX_SECONDS = 300.0
# how the intervals are built: change it with their construction (the stored calibration names it, and
# `calibration.interval_factors` warns when it differs)
INTERVAL_METHOD = "Laplace mixture along the temperature valley; temperature density linear between points"


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
    branching, the sample's time and temperature, and their exact time derivatives there ("rates": d mmd
    / dt, d ln / dt of the scalars; zero once the run has stopped)."""
    run = run_ode(Recipe(recipe["cBA_0"], recipe["cAIBN_0"], recipe["temp"]),
                  sample_times=np.array([recipe["time"]]), with_rates=True)
    # the engine's rates after the grid are those of ln cBA, ln Mn, ln Mw, ln cAIBN, ln branching: MEASURED
    rates = np.zeros(N_POINTS + len(MEASURED)) if run.stopped else run.info["rates"][-1]
    return {"mmd": run.mmd[-1], "cBA_time": float(run.cBA[-1]), "Mn": float(run.Mn[-1]),
            "Mw": float(run.Mw[-1]), "cAIBN_time": float(run.cAIBN[-1]),
            "branching": float(run.branching[-1]),
            "time": float(run.time[-1]), "temp": float(recipe["temp"]), "stopped": run.stopped,
            "rates": {"mmd": rates[:N_POINTS], **dict(zip(MEASURED, rates[N_POINTS:])),
                      "time": 0.0 if run.stopped else 1.0}}


def later(sim: dict, dt: float) -> dict:
    """The forward model's outputs `dt` seconds after `sim`'s sample, to first order in dt from its exact
    rates (a Jacobian's time column without another run)."""
    r = sim["rates"]
    return {**sim, "mmd": sim["mmd"] + dt * r["mmd"], "time": sim["time"] + dt * r["time"],
            **{name: sim[name] * np.exp(dt * r[name]) for name in MEASURED}}


def known_sds(profile: Profile) -> dict[str, float]:
    """The sd of a known time (s) and temperature (°C) in the inversion under `profile`: the profile's
    (`ideal` 1 s and 0.1 °C, `typical` 5 s and 0.5 °C, `poor` 30 s and 2 °C), as `measurement_noise`
    takes them and as the bound of chapter 9c does."""
    return {"time": profile.known_time, "temp": profile.known_temp}


def measurement_noise(obs: Observation, profile: Profile, floor: float | None = None) -> dict:
    """The noise of an observation measured with `profile`: without an instrument, `NOISE`.  With one, the
    simulated trace is passed through the instrument (broadening, cut-off, renormalisation) and compared
    with the observed one over the points kept that report a signal (`measurement.reported`: a zero is
    censored and left out), whitened by their covariance: `NOISE`'s per-point noise through the operator
    and the detector's correlated noise, linearised at the observed trace.  The
    calibration's shift is not linearised: it is a nuisance parameter of the fit (`shift_sd`, in decades;
    the fit's variable is the shift over that sd, with a standard normal prior), marginalised with the
    others.  Mn and Mw, computed from the trace, are not compared again; the other scalars combine the
    simulator's scatter with the analysis' precision, and known values take the profile's.

    `floor` adds white noise of sd `floor` x the observed trace's peak to every point: a model error that
    caps the weight of the trace's finest structure (default: MODEL_FLOOR x the profile's detector
    baseline; 0: none).  A smooth, correlated noise leaves directions with almost no variance (on a `poor`
    trace, half of them below 2e-5 of the peak), whose whitened misfit swings with the calibration's shift
    at the grid's scale: the misfit gets many minima in the shift, each with its own monomer
    (`benchmarks/model_floor.py` measures the effect)."""
    floor = MODEL_FLOOR * profile.detector_baseline if floor is None else floor
    if floor < 0:
        raise ValueError(f"the model-error floor is a fraction of the trace's peak, >= 0; got {floor}")
    if not profile.instrument:
        return {**NOISE, **known_sds(profile)}
    op = trace_operator(obs.mmd, profile)
    cov = trace_covariance(op, NOISE["mmd"])
    noise = {name: float(np.hypot(SIMULATOR_SCATTER[name], getattr(profile, name))) for name in MEASURED
             if name not in ("Mn", "Mw")}
    observed = obs.mmd[op.kept] / (obs.mmd[op.kept].sum() * DLOGM)
    if floor > 0:
        cov = cov + (floor * observed.max()) ** 2 * np.eye(len(cov))
    shift = {"shift_sd": profile.calibration_sd} if profile.calibration_sd > 0 else {}
    return {**NOISE, **noise, **known_sds(profile), "profile": profile,
            "whiten": whitening(cov, reported(observed)), "observed_trace": observed, **shift}


def nuisances(noise: dict) -> int:
    """The number of nuisance parameters the fit carries besides the recipe (the calibration's shift)."""
    return int("shift_sd" in noise)


FORWARD_CACHE_SIZE = 256  # runs (about 2 kB each): an inversion repeats 2-3 % of its runs
_forward_cache: dict[tuple, dict] = {}


def _cached_forward(recipe: dict, budget: Budget | None = None) -> dict:
    """`forward`, remembering the last runs: a step of the calibration's shift alone runs no engine.  The
    budget counts the engine's runs."""
    key = tuple(float(recipe[t]) for t in TARGETS)
    sim = _forward_cache.get(key)
    if sim is None:
        if budget is not None:
            budget.spend()
        sim = forward(recipe)
        if len(_forward_cache) >= FORWARD_CACHE_SIZE:
            _forward_cache.pop(next(iter(_forward_cache)))
        _forward_cache[key] = sim
    return sim


def residuals(recipe: dict, obs: Observation, noise: dict = NOISE, shift: float = 0.0,
              sim: dict | None = None) -> np.ndarray:
    """Noise-scaled differences between the simulated (`sim`, default: run here) and the observed polymer
    (through the instrument of `measurement_noise` when `noise` has one, its calibration moved by `shift`
    standard deviations, which then adds its own prior residual)."""
    sim = forward(recipe) if sim is None else sim
    if "whiten" in noise:
        moved = shift * noise.get("shift_sd", 0.0)
        trace = measured_trace(sim["mmd"], noise["profile"], moved)
        r = [noise["whiten"] @ (trace - noise["observed_trace"])]
        if nuisances(noise):
            r.append(np.array([shift]))
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
    sim = _cached_forward(recipe)  # the fit's last run, usually
    out = []
    for name in [n for n in obs.extras + obs.known if n in names]:
        value = getattr(obs, name)
        z = (np.log(sim[name] / value) if name in MEASURED else sim[name] - value) / noise[name]
        if abs(z) > limit:
            out.append(f"the given {name} = {value:.4g} disagrees with the rest of the data: the recipe that "
                       f"fits everything best has {name} = {sim[name]:.4g}, {abs(z):.0f} standard "
                       f"deviations away; check the value and its unit")
    return out


def _unit_residuals(u: np.ndarray, obs: Observation, noise: dict, budget: Budget | None = None,
                    dt: float = 0.0) -> np.ndarray:
    """Residuals at unit-box coordinates u (TARGETS order), followed by the nuisances' values if any;
    with `dt`, of the sample that much later (`later`: no other run)."""
    recipe = as_dict(from_unit(u[: len(TARGETS)]))
    shift = float(u[len(TARGETS)]) if nuisances(noise) else 0.0
    sim = _cached_forward(recipe, budget)
    return residuals(recipe, obs, noise, shift, later(sim, dt) if dt else sim)


TIME = TARGETS.index("time")
TIME_SPAN = BOX["time"][1] - BOX["time"][0]  # s per unit coordinate (the time is on a linear scale)


def _fit_problem(obs: Observation, noise: dict, u: np.ndarray, free: list[int], upper: np.ndarray,
                 budget: Budget | None = None, held: np.ndarray | None = None):
    """The residuals and their Jacobian as functions of a fit's variables v (the unit coordinates `free`
    of u, the others held, then the nuisances; with `held`, the nuisances are held at those values and
    are not variables).  The Jacobian is differenced one-sided towards the inside
    of the box (least_squares' own would zero the columns of variables held at a bound, which the
    Laplace step needs); its time column comes from the run's exact rates, and a nuisance's column from
    the same run, so a Jacobian costs one run per other free target."""
    def full(v: np.ndarray) -> np.ndarray:
        w = u.copy()
        w[free] = v[: len(free)]
        return np.r_[w, v[len(free):] if held is None else held]

    def res(v: np.ndarray) -> np.ndarray:
        return _unit_residuals(full(v), obs, noise, budget)

    def jac(v: np.ndarray) -> np.ndarray:
        f0 = res(v)
        out = np.empty((len(f0), len(v)))
        for c in range(len(v)):
            h = JAC_STEP if v[c] + JAC_STEP <= upper[c] else -JAC_STEP
            if c < len(free) and free[c] == TIME:
                out[:, c] = (_unit_residuals(full(v), obs, noise, budget, dt=h * TIME_SPAN) - f0) / h
            else:
                w = v.copy()
                w[c] += h
                out[:, c] = (res(w) - f0) / h
        return out

    return res, jac


SHIFT_BOUND = 6.0  # the calibration's shift is searched within this many standard deviations
SHIFT_SCAN = np.linspace(-4.0, 4.0, 17)  # shifts tried at a fit's start recipe (no engine run)
SHIFT_RESTART = 1.0  # a scanned shift this far from the start's (in sd) gets a fit of its own


def _shift_starts(u: np.ndarray, obs: Observation, noise: dict, budget: Budget | None = None) -> list:
    """The nuisances' starting values for a fit from unit coordinates u (recipe, then nuisances): the
    start's own, and, if it differs from it by more than SHIFT_RESTART, the calibration shift of
    `SHIFT_SCAN` that fits best at the start recipe.  A shift trades against the monomer and the time, so
    a fit from one start can stop in the wrong minimum; the better of the two fits is kept."""
    own = u[len(TARGETS):]
    if not nuisances(noise):
        return [own]
    chi2 = [np.sum(_unit_residuals(np.r_[u[: len(TARGETS)], z], obs, noise, budget) ** 2) for z in SHIFT_SCAN]
    best = SHIFT_SCAN[[int(np.argmin(chi2))]]
    return [own, best] if abs(best[0] - own[0]) > SHIFT_RESTART else [own]


def _best_fit(res, jac, u: np.ndarray, lower: np.ndarray, upper: np.ndarray, shifts: list,
              tol: float = XTOL):
    """SciPy's bounded least squares of `res` (Jacobian `jac`) from the recipe's coordinates u with each
    of the nuisances' starting values in `shifts`: the fit of lowest cost."""
    return min((least_squares(res, np.clip(np.r_[u, z], lower, upper), jac=jac, bounds=(lower, upper),
                              max_nfev=60, xtol=tol, ftol=tol) for z in shifts), key=lambda f: f.cost)


@dataclass
class ProfilePoint:
    """The best recipe at one fixed temperature, and the local shape of the misfit around it."""

    u: np.ndarray  # unit-box coordinates of the recipe (TARGETS order)
    chi2: float
    jac: np.ndarray  # d residuals / d free unit coordinates, then the nuisances (observables x (3 + n))
    nuisance: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the fitted nuisances (shift / sd)

    @property
    def recipe(self) -> dict:
        return as_dict(from_unit(self.u))


def _bounds(n_free: int, noise: dict) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the fit's variables: the unit box, then the nuisances' range."""
    n = nuisances(noise)
    return np.r_[np.zeros(n_free), np.full(n, -SHIFT_BOUND)], np.r_[np.ones(n_free), np.full(n, SHIFT_BOUND)]


def conditional_fit(obs: Observation, value: float, start: dict | np.ndarray, noise: dict = NOISE,
                    target: str = PROFILE_TARGET, budget: Budget | None = None,
                    nuisance: np.ndarray | None = None, scan: bool = True, tol: float = XTOL,
                    laplace: bool = True) -> ProfilePoint:
    """Best recipe with `target` fixed at `value` (the other three free inside the box) and the nuisances
    of `noise` (if any), from `start` (a recipe, or unit-box coordinates) and `nuisance` (default 0); with
    `scan`, also from the calibration shift that fits best at the start (`_shift_starts`).  The fit stops
    at `tol`; without `laplace` the point carries no Jacobian (a search's fit, not a posterior's piece)."""
    j = TARGETS.index(target)
    free = [k for k in range(len(TARGETS)) if k != j]
    u = to_unit(start) if isinstance(start, dict) else np.array(start, float)
    u[j] = to_unit({**as_dict(from_unit(u)), target: value})[j]
    u[free] = np.clip(u[free], 0.0, 1.0)  # a start extrapolated along the valley may leave the box
    n = nuisances(noise)
    extra = np.zeros(n) if nuisance is None or len(nuisance) != n else np.asarray(nuisance, float)
    lower, upper = _bounds(len(free), noise)
    res, jac = _fit_problem(obs, noise, u, free, upper, budget)
    shifts = _shift_starts(np.r_[u, extra], obs, noise, budget) if scan else [extra]
    fit = _best_fit(res, jac, u[free], lower, upper, shifts, tol)
    shape = jac(fit.x) if laplace else np.zeros((0, len(fit.x)))  # the Laplace approximation's shape
    u[free] = fit.x[: len(free)]
    return ProfilePoint(u, float(2.0 * fit.cost), shape, fit.x[len(free):].copy())


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
                  else conditional_fit(obs, values[first], start.u, noise, target, budget, start.nuisance)}
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
            points[k] = conditional_fit(obs, values[k], guess, noise, target, budget, path[-1].nuisance)
            path.append(points[k])
    return [points[k] for k in range(len(values))]


def profile_table(points: list[ProfilePoint]) -> pd.DataFrame:
    """One row per profile point: the recipe, chi² and chi² per observed value."""
    n_obs = points[0].jac.shape[0]
    return pd.DataFrame([{**p.recipe, "chi2": p.chi2, "chi2 per observable": p.chi2 / n_obs} for p in points])


@dataclass
class Posterior:
    """The posterior over the recipe along the valley, and its summaries (original units).  Each profile
    point's piece is Gaussian in the unit-box coordinates of the other targets (log scale for the
    initiator, so log-normal in mol/L), cut at the box.  Along the temperature the marginal density is
    interpolated linearly between the profile's temperatures (flat beyond the first and the last to the
    cells' ends): its trapezoid mass about each temperature is the points' weight there, and an interval's
    end moves continuously instead of jumping from one cell's edge to the next."""

    temps: np.ndarray  # the temperature of each profile point (°C; the grid, once per branch)
    weights: np.ndarray  # posterior mass of each profile point (sums to 1)
    centres: np.ndarray  # (points, 4) the profile recipes
    sds: np.ndarray  # (points, 4) conditional standard deviations, linearised to original units
    cells: np.ndarray  # (points, 2) the temperature cell each point stands for
    inflation: float  # noise scale-up (Birge ratio) applied to the likelihood, >= 1
    n_observed: int
    chi2_min: float
    mean: dict = field(default_factory=dict)
    median: dict = field(default_factory=dict)
    branch: np.ndarray | None = None  # the branch (minimum of the misfit) each point belongs to
    unit_centres: np.ndarray | None = None  # (points, 4) the profile recipes' unit-box coordinates
    unit_sds: np.ndarray | None = None  # (points, 4) the pieces' standard deviations there
    # (points, 3 + n, 3 + n) each piece's Laplace covariance of the fit's variables (the free targets' unit
    # coordinates in FREE order, then the n nuisances) and (points, n) its fitted nuisances: a proposal
    # for a sampler of the exact posterior (`benchmarks/posterior_means.py`)
    unit_covs: np.ndarray | None = None
    nuisances: np.ndarray | None = None

    def _piece(self, target: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per value and piece: the standardised unit coordinate, and each piece's CDF at the box's low end
        and its mass inside the box (along this target)."""
        j = TARGETS.index(target)
        c, s = self.unit_centres[:, j], np.maximum(self.unit_sds[:, j], 1e-300)
        low = ndtr(-c / s)
        inside = np.maximum(ndtr((1.0 - c) / s) - low, 1e-300)
        return (target_to_unit(target, x)[:, None] - c) / s, low, inside

    @cached_property
    def _temp_marginal(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The temperature marginal's knots (the cells' ends and the profile's temperatures), its density
        there (a temperature's weight, its branches' summed, over its cell's width; normalised to integrate
        to 1) and its CDF there (the trapezoid masses, cumulated)."""
        grid, at = np.unique(self.temps, return_inverse=True)
        width = np.zeros(len(grid))
        width[at] = self.cells[:, 1] - self.cells[:, 0]  # the branches at one temperature share its cell
        dens = np.bincount(at, self.weights, len(grid)) / width  # cells have width: Profile.known_temp > 0
        lo, hi = float(self.cells.min()), float(self.cells.max())
        if lo < grid[0]:
            grid, dens = np.r_[lo, grid], np.r_[dens[0], dens]
        if hi > grid[-1]:
            grid, dens = np.r_[grid, hi], np.r_[dens, dens[-1]]
        mass = np.r_[0.0, np.cumsum(0.5 * (dens[:-1] + dens[1:]) * np.diff(grid))]
        return grid, dens / mass[-1], mass / mass[-1]

    def cdf(self, target: str, x: np.ndarray) -> np.ndarray:
        """Marginal posterior CDF of one target at the values x."""
        x = np.atleast_1d(np.asarray(x, float))
        if target == PROFILE_TARGET:
            knots, dens, total = self._temp_marginal
            h = np.diff(knots)
            i = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, len(h) - 1)
            t = np.clip(x - knots[i], 0.0, h[i])
            return np.clip(total[i] + dens[i] * t + 0.5 * (dens[i + 1] - dens[i]) * t**2 / h[i], 0.0, 1.0)
        z, low, inside = self._piece(target, np.clip(x, *BOX[target]))
        part = np.clip((ndtr(z) - low) / inside, 0.0, 1.0)
        return np.clip(part @ self.weights, 0.0, 1.0)  # weights summing to 1 + 1e-16 must not exceed 1

    def quantile(self, target: str, q: float) -> float:
        """Marginal posterior quantile of one target, by bisection on its CDF."""
        lo, hi = self._support(target)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.cdf(target, mid)[0] < q else (lo, mid)
        return 0.5 * (lo + hi)

    def density(self, target: str, x: np.ndarray) -> np.ndarray:
        """Marginal posterior density of one target at the values x (in the box)."""
        x = np.atleast_1d(np.asarray(x, float))
        if target == PROFILE_TARGET:
            knots, dens, _ = self._temp_marginal
            return np.interp(x, knots, dens, left=0.0, right=0.0)
        j = TARGETS.index(target)
        z, _, mass = self._piece(target, x)
        pdf = np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * np.maximum(self.unit_sds[:, j], 1e-300) * mass)
        slope = 1.0 / np.maximum(target_span(target, x), 1e-300)
        return (pdf @ self.weights) * slope

    def _support(self, target: str) -> tuple[float, float]:
        """The part of the box where a target's marginal has mass (the pieces' centres +- 8 sd)."""
        lo_box, hi_box = BOX[target]
        if target == PROFILE_TARGET:
            return float(self.cells.min()), float(self.cells.max())
        j = TARGETS.index(target)
        c, s = self.unit_centres[:, j], self.unit_sds[:, j]
        u = np.clip([np.min(c - 8 * s), np.max(c + 8 * s)], 0.0, 1.0)
        lo, hi = target_from_unit(target, u)
        # a bound is the bound itself, not its round trip through the log coordinate (0.02 -> 0.0199...)
        lo = lo_box if u[0] <= 0.0 else max(lo_box, float(lo))
        return lo, hi_box if u[1] >= 1.0 else min(hi_box, float(hi))

    def marginal_mean(self, target: str) -> float:
        """Posterior mean of one target (its pieces cut at the box)."""
        lo, hi = self._support(target)
        if hi <= lo:
            return lo
        x = np.linspace(lo, hi, HPD_POINTS)
        d = self.density(target, x)
        return float(np.trapezoid(x * d, x) / np.trapezoid(d, x)) if d.sum() > 0 else 0.5 * (lo + hi)

    def interval(self, level: float = 0.90) -> dict[str, tuple[float, float]]:
        """Highest-posterior-density credible interval of each target, in the box: the smallest set of
        values holding `level` of the posterior mass inside the box (reported as its hull).  Unlike a
        central interval it reaches a bound where the posterior piles up against it."""
        out = {}
        for t in TARGETS:
            lo, hi = BOX[t] if t == PROFILE_TARGET else self._support(t)
            x = np.linspace(lo, hi, HPD_POINTS) if hi > lo else np.array([lo])
            mass = self.density(t, x)
            if mass.sum() <= 0 or len(x) == 1:
                out[t] = (lo, hi)
                continue
            order = np.argsort(-mass, kind="stable")
            keep = order[: int(np.searchsorted(np.cumsum(mass[order]) / mass.sum(), level)) + 1]
            out[t] = (float(x[keep].min()), float(x[keep].max()))
        return out

    def nearest(self, temp: float) -> int:
        """The point at the grid temperature nearest `temp`; of several branches there, the heaviest."""
        at = np.flatnonzero(self.temps == self.temps[np.argmin(np.abs(self.temps - temp))])
        return int(at[np.argmax(self.weights[at])])

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
    ((3 + n) x (3 + n): the free targets' unit coordinates, then the n nuisances).  Laplace: exp(-chi²/2)
    x sqrt(det C) x prior density; the prior is uniform in original units, i.e. a density
    prod(unit_span) in unit coordinates.  It cuts the pieces at the box (`posterior_from_profile` weighs
    each by its mass inside) and does not narrow them: only a precision of PRIOR_FLOOR per unit
    coordinate keeps a flat direction's piece finite.  A nuisance's standard normal prior is already a
    residual of chi²."""
    logw, covs = [], []
    for p in points:
        n = p.jac.shape[1] - len(FREE)
        precision = p.jac.T @ p.jac / inflation + np.diag(np.r_[np.full(len(FREE), PRIOR_FLOOR), np.zeros(n)])
        cov = np.linalg.inv(precision)
        _, logdet = np.linalg.slogdet(cov)
        prior = np.log(unit_span(from_unit(p.u))[FREE]).sum()
        logw.append(-0.5 * p.chi2 / inflation + 0.5 * logdet + prior)
        covs.append(cov)
    return np.array(logw), np.array(covs)


def _log_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) for a <= b, without cancellation in either tail."""
    flip = a > 0  # both in the upper tail: the same mass, mirrored
    a, b = np.where(flip, -b, a), np.where(flip, -a, b)
    lb, la = log_ndtr(b), log_ndtr(a)
    return lb + np.log1p(-np.exp(np.minimum(la - lb, -1e-300)))


def _same_minimum(a: ProfilePoint, b: ProfilePoint) -> bool:
    """Whether two fits at one temperature found the same minimum (within 1 % of each range)."""
    return bool(np.abs(a.u - b.u).max() < SAME_MINIMUM)


def posterior_from_profile(temps: np.ndarray, points: list[ProfilePoint] | list[list[ProfilePoint]],
                           bounds: tuple[float, float] | None = None) -> Posterior:
    """The mixture posterior of a profile over the temperature grid `temps` (sorted), whose cells span
    `bounds` (default: the design's box).  `points` is one branch (a fit per temperature) or several
    (one per minimum of the misfit); where a branch's fit is the same minimum as an earlier branch's, it
    is counted once."""
    branches = points if isinstance(points[0], list) else [points]
    lo_box, hi_box = BOX[PROFILE_TARGET] if bounds is None else bounds
    edges = np.concatenate([[lo_box], 0.5 * (temps[1:] + temps[:-1]), [hi_box]])
    grid_cells = np.column_stack([edges[:-1], edges[1:]])
    kept, at, branch = [], [], []
    for b, line in enumerate(branches):
        for k, p in enumerate(line):
            if not any(_same_minimum(p, other[k]) for other in branches[:b]):
                kept.append(p), at.append(k), branch.append(b)
    cells = grid_cells[at]
    n_obs = kept[0].jac.shape[0]
    chi2 = np.array([p.chi2 for p in kept])
    inflation = max(1.0, float(chi2.min()) / n_obs)
    logw, covs = _log_weights(kept, inflation)
    units = np.array([p.u[: len(TARGETS)] for p in kept])
    unit_sds = np.zeros_like(units)
    unit_sds[:, FREE] = np.sqrt(np.einsum("kii->ki", covs)[:, : len(FREE)])  # the nuisances marginalised
    lo_t, hi_t = BOX[PROFILE_TARGET]
    unit_sds[:, J_PROFILE] = (cells[:, 1] - cells[:, 0]) / np.sqrt(12.0) / (hi_t - lo_t)
    # each piece's mass inside the box: a fit against a bound has about half of its Gaussian outside
    c, s = units[:, FREE], np.maximum(unit_sds[:, FREE], 1e-300)
    logw = logw + _log_mass(-c / s, (1.0 - c) / s).sum(axis=1)
    mass = np.exp(logw - logw.max()) * (cells[:, 1] - cells[:, 0])  # density x cell width
    weights = mass / mass.sum()
    centres = from_unit(units)
    sds = unit_sds * unit_span(centres)
    post = Posterior(temps[at], weights, centres, sds, cells, inflation, n_obs, float(chi2.min()),
                     branch=np.array(branch), unit_centres=units, unit_sds=unit_sds, unit_covs=covs,
                     nuisances=np.array([p.nuisance for p in kept]))
    post.mean = {t: post.marginal_mean(t) for t in TARGETS}
    post.median = {t: post.quantile(t, 0.5) for t in TARGETS}
    return post


def other_minima(obs: Observation, line: list[ProfilePoint], noise: dict,
                 budget: Budget | None = None) -> list[ProfilePoint]:
    """Other minima of the misfit at the temperature where the branch `line` fits best, from starts at
    other initiator concentrations and times (`MODE_STARTS`; the monomer where the branch has it): those
    within MODE_WINDOW of the branch's chi² there and not the branch's own minimum, at most
    MAX_BRANCHES - 1.  Only with an instrument: a calibration shift traded against the chains' length
    can then fit a trace in two ways, and a walk along one of them would never see the other.  These
    fits start the shift at its prior's mode (0), without the scan of `_shift_starts`: at a start this
    far from the data the best shift makes up for the wrong recipe (on 24 measured rows, a start from
    the scan fitted better in 5 of 96 corner fits, from 0 in 30, and cost as many runs again).  They
    search at the free fit's tolerance, VALLEY_TOL; the few that may be another minimum are then fitted
    at XTOL from where they stopped, with the Laplace shape a branch's first point needs."""
    if not nuisances(noise):
        return []
    home = min(line, key=lambda p: p.chi2)
    temp = home.recipe[PROFILE_TARGET]
    found: list[ProfilePoint] = []
    for initiator, duration in MODE_STARTS:
        u = home.u.copy()
        u[TARGETS.index("cAIBN_0")], u[TARGETS.index("time")] = initiator, duration
        fit = conditional_fit(obs, temp, u, noise, budget=budget, scan=False, tol=VALLEY_TOL, laplace=False)
        if fit.chi2 > home.chi2 + MODE_WINDOW + MODE_MARGIN or _same_minimum(fit, home):
            continue
        fit = conditional_fit(obs, temp, fit.u, noise, budget=budget, nuisance=fit.nuisance, scan=False)
        if fit.chi2 < home.chi2 + MODE_WINDOW and not any(_same_minimum(fit, p) for p in [home] + found):
            found.append(fit)
    return sorted(found, key=lambda p: p.chi2)[: MAX_BRANCHES - 1]


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


# the calibration shifts at which the free fit first fits the recipe with the shift held: within
# SHIFT_REACH sd of zero, SHIFT_STEP decades apart (at most 1 sd)
SHIFT_REACH = 3.0
SHIFT_STEP = 0.04


def held_shifts(shift_sd: float) -> np.ndarray:
    """The held shifts (in sd) of `_held_shift_start`, in the order fitted: 0, the positive ones upwards,
    then the negative ones downwards (each fit starts from the last; the negative side from the fit at 0)."""
    n = int(np.ceil(SHIFT_REACH / min(1.0, SHIFT_STEP / shift_sd) - 1e-9))
    side = np.linspace(0.0, SHIFT_REACH, n + 1)
    return np.r_[side, -side[1:]]


def _held_shift_start(obs: Observation, u: np.ndarray, noise: dict,
                      budget: Budget | None = None) -> np.ndarray:
    """Unit coordinates and shift (u's layout) of the best of the fits of the recipe with the calibration
    shift held at each of `held_shifts` (chi² with the shift's prior).  Under an instrument the misfit
    has several minima in the shift, about two sd apart, each with its own recipe: a fit of recipe and
    shift together from one start stays in the minimum it starts in (on 40 measured rows with the shift
    drawn from its prior, in 5 the free fit stopped at chi² 100-215 where the true recipe and shift give
    50-90).  Each fit starts where the last two point (on 80 measured rows, 7 % fewer runs, the same chi²)."""
    n = len(TARGETS)
    lower, upper = np.zeros(n), np.ones(n)
    best, path, last = None, [], 0.0  # path: (shift, fitted recipe) on this side of the ladder
    for z in held_shifts(noise["shift_sd"]):
        if z < 0 <= last:  # the negative side starts again from the fit at 0
            path = path[:1]
        last = z
        start = u[:n] if not path else path[-1][1]
        if len(path) > 1:  # predictor: continue the last step, as `profile` does along the valley
            (za, a), (zb, b) = path[-2], path[-1]
            start = b + (b - a) * (z - zb) / (zb - za)
        res, jac = _fit_problem(obs, noise, u[:n], list(range(n)), upper, budget, held=np.array([z]))
        fit = least_squares(res, np.clip(start, lower, upper), jac=jac, bounds=(lower, upper), max_nfev=60,
                            xtol=VALLEY_TOL, ftol=VALLEY_TOL)
        path.append((z, fit.x))
        if best is None or fit.cost < best[0]:
            best = (fit.cost, np.r_[fit.x, z])
    return best[1]


def free_fit(obs: Observation, start: dict, noise: dict = NOISE,
             budget: Budget | None = None) -> tuple[dict, float]:
    """The best-fit recipe of all four targets from one start, and its chi².  On the valley this point
    is arbitrary within the noise (it depends on the start and on the arithmetic's last digits): the
    inversion uses it only to find the valley.  With a calibration shift, the fit starts from the best of
    the fits with the shift held (`_held_shift_start`) instead of the start itself: on 80 measured rows
    (`typical`, composite and + time, from the centre) a fit from the start also was better by more than
    1 in chi² once and worse 35 times, for 88 more runs (a seventh of an inversion)."""
    lower, upper = _bounds(len(TARGETS), noise)
    u = np.r_[to_unit(start), np.zeros(nuisances(noise))]
    res, jac = _fit_problem(obs, noise, u[: len(TARGETS)], list(range(len(TARGETS))), upper, budget)
    if nuisances(noise):
        u = _held_shift_start(obs, u, noise, budget)
    fit = _best_fit(res, jac, u[: len(TARGETS)], lower, upper, [u[len(TARGETS):]], VALLEY_TOL)
    return as_dict(from_unit(fit.x[: len(TARGETS)])), float(2.0 * fit.cost)


def invert(obs: Observation, starts: list[dict] | None = None, noise: dict = NOISE,
           level: float = 0.90, budget: Budget | None = None) -> Inversion:
    """The posterior of the recipe along the temperature valley, its summaries and the recipe to run.

    `starts` are first guesses (e.g. a model's prediction); the profile starts at the guess whose
    conditional fit is best, and walks over a 2 °C grid spanning the box, refined to MIN_STEP where the
    posterior changes fast; with an instrument, other minima of the misfit get branches of their own
    (`other_minima`).  Past its budget of forward runs or time it stops with InversionBudgetError."""
    budget = Budget() if budget is None else budget
    starts = [CENTRE] if not starts else starts
    lo, hi = BOX[PROFILE_TARGET]
    temps = np.linspace(lo, hi, int(round((hi - lo) / GRID_STEP)) + 1)
    bounds = (lo, hi)
    if obs.temp is not None:  # a known temperature: the posterior lives within 3 sd of it, nowhere else
        steps = noise["temp"] * np.array([-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0])
        centre = obs.temp
        if not ((centre + steps >= lo) & (centre + steps <= hi)).any():
            # a reading more than 3 sd outside the box (a measured run at a bound, a 1-in-700 draw): the
            # posterior piles up against the bound, so the points are set about the bound
            centre = min(max(obs.temp, lo), hi)
        near = centre + steps
        temps = np.unique(np.round(near[(near >= lo) & (near <= hi)], 6))
        bounds = (max(lo, centre - 3.25 * noise["temp"]), min(hi, centre + 3.25 * noise["temp"]))
    # find the valley first: a free fit of all four targets from each start; the best one lies on it
    best = min((free_fit(obs, s, noise, budget) for s in starts), key=lambda fit: fit[1])
    branches = [profile(obs, temps, best[0], noise, budget=budget)]
    branches += [profile(obs, temps, p, noise, budget=budget)
                 for p in other_minima(obs, branches[0], noise, budget)]
    while True:
        post = posterior_from_profile(temps, branches, bounds)
        new = _refine(temps, np.bincount(np.searchsorted(temps, post.temps), post.weights, len(temps)))
        if not len(new):
            break
        for t in new:
            k = int(np.searchsorted(temps, t))
            for line in branches:
                neighbour = line[k - 1] if line[k - 1].chi2 <= line[k].chi2 else line[k]
                line.insert(k, conditional_fit(obs, float(t), neighbour.u, noise, budget=budget,
                                               nuisance=neighbour.nuisance))
            temps = np.insert(temps, k, t)
    near = post.nearest(post.median[PROFILE_TARGET])
    line = branches[int(post.branch[near])]
    k = int(np.searchsorted(temps, post.temps[near]))
    chosen = conditional_fit(obs, post.median[PROFILE_TARGET], line[k].u, noise, budget=budget,
                             nuisance=line[k].nuisance)
    recipe = chosen.recipe
    sim = _cached_forward(recipe)  # the chosen fit's own run
    return Inversion(recipe=recipe, mean=post.mean, median=post.median, interval=post.interval(level),
                     level=level, correlation=post.correlation(), misfit=chosen.chi2 / post.n_observed,
                     inflation=post.inflation, mmd_l1=float(l1_distance(sim["mmd"], obs.mmd)), simulated=sim,
                     evaluations=budget.used, posterior=post)


def settings() -> dict:
    """What the inversion's posterior depends on besides the workbook: INTERVAL_METHOD, the tolerances,
    grids and floors, the kMC noise and the measurement profiles (without their sources; a known value's
    sd is the profile's, `known_sds`), as JSON types.  Stored with the interval calibration
    (`what_to_measure.write_calibration`)."""
    names = ("GRID_STEP", "MIN_STEP", "XTOL", "VALLEY_TOL", "JAC_STEP", "MODEL_FLOOR", "HPD_POINTS",
             "PRIOR_FLOOR", "SAME_MINIMUM", "MODE_STARTS", "MODE_WINDOW", "MAX_BRANCHES", "MODE_MARGIN",
             "SHIFT_BOUND", "SHIFT_SCAN", "SHIFT_RESTART", "SHIFT_REACH", "SHIFT_STEP")
    values = {name: np.asarray(globals()[name]).tolist() for name in names}
    profiles = {name: {k: v for k, v in asdict(p).items() if k != "sources"} for name, p in PROFILES.items()}
    noise = {k: v for k, v in NOISE.items() if k not in KNOWN}
    return json.loads(json.dumps({"method": INTERVAL_METHOD, **values, "noise": noise, "profiles": profiles}))
