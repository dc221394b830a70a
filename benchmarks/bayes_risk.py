"""The Bayes risk of a recipe anywhere in the box, against the linearised bound on the same truths.

Chapter 9c holds a model scored on recipes that are not the design's to the linearised bound, while the
exact posterior on the design's rows falls short of it near the ends of the temperature range
(`benchmarks/posterior_means.py`).  Which is the ceiling for a recipe anywhere in the box?  Here the
truths are drawn from the finder's own prior (uniform in the box, in the targets' units; the calibration
shift standard normal) and their observation from the finder's own likelihood: the deterministic engine's
polymer through the profile's instrument at the drawn shift, plus Gaussian noise of the covariance the
finder assumes (`inversion.measurement_noise`, here at the noise-free trace; points that the noise takes
below zero are reported as zero, which the finder leaves out as censored), and log-normal scalars of its
sds.  The finder's exact posterior mean (importance sampling with the inversion's mixture as proposal,
`posterior_means.importance_sample`, no noise inflation) is then the Bayes estimate, up to its Monte
Carlo error and the two approximations named (the covariance at the observed trace, the censored points),
so its mean squared error over the truths is the Bayes risk: no estimator does better on average over
the box.  The linearised bound of each truth is chapter 8's valley bound (`identifiability.valley_mse`)
with the finder's whitened residuals' Jacobian at the truth (central differences in the unit box, the
calibration shift marginalised as the Gaussian nuisance it is).

Printed per target, R² over the prior's variance (uniform in the box), for the truths before the run's
90 % stop (past it the time moves no data, and the bound has no meaning): the bound, the inversion's
mean, the sampler's mean and that less its Monte Carlo variance (the Bayes risk's estimate); for all
truths the last two; then the Bayes estimate's shortfall below the bound per truth with its standard
error, before the stop: for all, for those within FACE of the temperature range's ends, for the rest,
and for those with an effective sample size of at least 150.

Measured (`typical`, composite, 1000 draws per truth, two runs of 400 truths, seeds 5 and 6, about 10
minutes each on two cores; 717 truths before the stop): the Bayes estimate reaches R² 0.994 / 0.261 /
0.500 / 0.822 (cBA_0, cAIBN_0, temp, time) where the linearised bound says 0.995 / 0.294 / 0.492 / 0.823:
below it by 0.001 +- 0.001 / 0.033 +- 0.023 / -0.007 +- 0.015 / 0.002 +- 0.012.  Near the temperature
range's ends (191 truths within 3 °C) the temperature falls short by 0.102 +- 0.039 (the initiator
-0.023 +- 0.050); in the interior (526) the Bayes estimate beats the bound's temperature by
0.047 +- 0.015 and falls short on the initiator by 0.053 +- 0.026.  The shortfall is heavy-tailed: the
two seeds alone give 0.104 +- 0.034 and -0.038 +- 0.030 on the initiator.  Not the sampler's error:
4000 draws instead of 1000 on the 20 truths of seed 5 that fall shortest moved their sum by 6 %, and the
inversion's own mean (an independent approximation of the posterior) misses by as much.  The bound
computed here agrees with chapter 9c's (`what_to_measure.bound_at`, the finder's per-point noise) on 40
design rows within 0.005 of R² (per row within 4 %, 10-90 % quantiles).
With the residual initiator (composite,cAIBN_time; seeds 5 and 6, 717 truths before the stop) the Bayes
estimate reaches 0.993 / 0.990 / 0.776 / 0.844 where the bound says 0.996 / 0.987 / 0.827 / 0.826: the
temperature falls short by 0.052 +- 0.019 (near the ends 0.096 +- 0.054, elsewhere 0.035 +- 0.017; per
4 °C band from 60 °C: 0.05, 0.04, 0.07, 0.02, 0.09, each +- 0.02-0.07), the other targets within 0.02.
The inversion's own mean (its Laplace pieces, not sampled) falls short of the Bayes estimate by 0.001 /
0.002 / 0.000 / 0.019 (composite; standard errors below 0.008) and by 0.003 at most (+ cAIBN_time).
`python benchmarks/bayes_risk.py [truths] [profile] [observe] [samples] [save.npz] [seed]`.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from posterior_means import FACE, importance_sample, near_face, prior_variance, shortfall_line

from analysis.design import BOX, CENTRE, TARGETS, from_unit, to_unit
from analysis.identifiability import valley_mse
from analysis.inversion import (
    MODEL_FLOOR,
    NOISE,
    Observation,
    _unit_residuals,
    forward,
    invert,
    measurement_noise,
)
from analysis.measurement import PROFILES, measured_trace, trace_covariance, trace_operator
from analysis.mmd import DLOGM, averages
from analysis.what_to_measure import parse_observe
from analysis.workers import parallel_map

STEP = 1e-4  # central-difference step of the bound's Jacobian, unit-box coordinates and shift sd


def draw_truth(rng: np.random.Generator) -> dict:
    """A recipe from the finder's prior: uniform in the box, in the targets' own units."""
    return {t: float(rng.uniform(*BOX[t])) for t in TARGETS}


def finder_covariance(w: np.ndarray, profile) -> np.ndarray:
    """The trace covariance `measurement_noise` assumes for a measured trace w (100 points, model grid)."""
    op = trace_operator(w, profile)
    kept = w[op.kept] / (w[op.kept].sum() * DLOGM)
    floor = MODEL_FLOOR * profile.detector_baseline * kept.max()
    return trace_covariance(op, NOISE["mmd"]) + floor**2 * np.eye(len(kept))


def observe_truth(truth: dict, shift: float, noise_name: str, extra: tuple[str, ...],
                  rng: np.random.Generator) -> tuple[Observation, dict]:
    """The observation of a truth drawn from the finder's likelihood (see the module's text), and the
    truth's forward run."""
    p = PROFILES[noise_name]
    sim = forward(truth)
    trace = measured_trace(sim["mmd"], p, shift * p.calibration_sd)
    kept = trace_operator(sim["mmd"], p).kept
    w0 = np.zeros(len(sim["mmd"]))
    w0[kept] = trace
    vals, vecs = np.linalg.eigh(finder_covariance(w0, p))
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    w = np.zeros_like(w0)
    w[kept] = np.clip(trace + root @ rng.standard_normal(len(vals)), 0.0, None)
    scalar_sd = measurement_noise(Observation(w0), p)
    given = {}
    for name in ("cBA_time",) + tuple(n for n in ("cAIBN_time", "branching") if n in extra):
        given[name] = sim[name] * float(np.exp(scalar_sd[name] * rng.standard_normal()))
    for name in ("temp", "time"):
        if name in extra:
            given[name] = truth[name] + scalar_sd[name] * float(rng.standard_normal())
    mn, mw = averages(w)
    return Observation(w, Mn=float(mn), Mw=float(mw), **given), sim


def bound_mse(truth: dict, shift: float, obs: Observation, noise: dict) -> np.ndarray:
    """The valley bound's mean squared error per target at the truth: the Jacobian of the finder's
    residuals in the unit box and the shift, the shift then marginalised (its column projected out)."""
    x = np.r_[to_unit(truth), shift]

    def at(y: np.ndarray) -> np.ndarray:
        return _unit_residuals(y, obs, noise)

    jac = np.column_stack([(at(x + h) - at(x - h)) / (2 * STEP) for h in STEP * np.eye(len(x))])
    a = jac[:, -1]
    marginal = jac[:, :-1] - np.outer(a, a @ jac[:, :-1]) / (a @ a)
    frame = pd.DataFrame([truth])[TARGETS]
    return valley_mse(frame, np.array([True]), lambda r: marginal)[0]


def _truth(job: tuple) -> dict:
    idx, noise_name, extra, samples, seed = job
    rng = np.random.default_rng([seed, idx])
    truth, shift = draw_truth(rng), float(rng.standard_normal())
    obs, sim = observe_truth(truth, shift, noise_name, extra, rng)
    noise = measurement_noise(obs, PROFILES[noise_name])
    result = invert(obs, starts=[CENTRE], noise=noise)
    x, w = importance_sample(result.posterior, obs, noise, 1.0, samples, rng)
    values = from_unit(x[:, : len(TARGETS)])
    mean = w @ values
    return {"truth": np.array([truth[t] for t in TARGETS]), "sampler": mean,
            "inversion": np.array([result.mean[t] for t in TARGETS]),
            "is_var": (w**2) @ (values - mean) ** 2, "ess": 1.0 / (w**2).sum(), "stopped": sim["stopped"],
            "bound": bound_mse(truth, shift, obs, noise)}


def main(n: int = 64, noise: str = "typical", observe: str = "composite", samples: int = 1000,
         save: str | None = None, seed: int = 5) -> None:
    tic = time.perf_counter()
    extra = parse_observe(observe)
    if not PROFILES[noise].instrument:
        raise SystemExit("a profile with an instrument (typical, poor): without one the finder's per-point "
                         "noise would have to be drawn below zero")
    out = parallel_map(_truth, [(i, noise, extra, samples, seed) for i in range(n)], None)
    truth = np.array([r["truth"] for r in out])
    sampler = np.array([r["sampler"] for r in out])
    e = (sampler - truth) ** 2
    mc = np.array([r["is_var"] for r in out])
    bound = np.array([r["bound"] for r in out])
    ess = np.array([r["ess"] for r in out])
    stopped = np.array([r["stopped"] for r in out])
    variance = prior_variance()  # the prior's
    inversion = np.array([r["inversion"] for r in out])
    e_inv = (inversion - truth) ** 2
    print(f"{noise}, {observe}: {n} truths from the finder's prior (seed {seed}), {samples} importance draws "
          f"each; effective sample size median {np.median(ess):.0f}, below 50 in {np.sum(ess < 50)}; "
          f"{stopped.sum()} truths past the run's 90 % stop (no bound there: time moves no data)")
    before = ~stopped
    print(f"{'R² over the prior':34s}" + "".join(f"{t:>9s}" for t in TARGETS))
    lines = [("before the stop: bound", bound[before]), ("  inversion's mean", e_inv[before]),
             ("  sampler's mean", e[before]), ("  less its MC variance", (e - mc)[before]),
             ("all truths: inversion's mean", e_inv), ("  sampler's less its MC variance", e - mc)]
    for label, values in lines:
        print(f"{label:34s}" + "".join(f"{v:9.3f}" for v in 1 - values.mean(axis=0) / variance))
    short = (e - mc - bound) / variance  # per truth: the Bayes estimate's shortfall below the bound
    near = near_face(truth[:, TARGETS.index("temp")])
    lo, hi = BOX["temp"]
    print("the Bayes estimate below the bound, truths before the stop:")
    for label, at in (("all", before), (f"within {FACE:g} °C of {lo:g} or {hi:g} °C", before & near),
                      ("the rest", before & ~near), ("effective sample size >= 150", before & (ess >= 150))):
        print(shortfall_line(f"  {label}", short, at))
    if save:
        np.savez(save, truth=truth, sampler=sampler, inversion=inversion, e=e, mc=mc, bound=bound, ess=ess,
                 stopped=stopped)
    print(f"total {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 64, args[1] if len(args) > 1 else "typical",
         args[2] if len(args) > 2 else "composite", int(args[3]) if len(args) > 3 else 1000,
         args[4] if len(args) > 4 else None, int(args[5]) if len(args) > 5 else 5)
