"""Is the inversion's posterior mean the posterior's mean?  On the open sets the inversion falls short of
the linearised bound (`benchmarks/inversion_gap.py`: 0.06-0.10 of R² on the initiator and the temperature,
about 3 standard errors on 392 rows).  Either the inversion's mean (Laplace pieces along the temperature
profile) is a poor approximation of the posterior's, or no posterior mean reaches that bound, which takes
the valley as the straight line of the weakest direction at the true recipe.

Per row of the gap benchmark (rows of the check recipes, seed 11, measured with a profile and inverted as
there, without the interval calibration: `roundtrip.invert_row`; the bound from `what_to_measure.bound_at`),
the exact posterior's mean (the same misfit, prior and noise inflation as the inversion, no Laplace step)
by self-normalised importance sampling: the proposal is the inversion's own mixture, each piece's
temperature cell drawn uniformly, the other targets and the calibration shift from a Student-t (DF degrees
of freedom, covariance widened SCALE times in sd) about the valley's line (the branch's profile points
interpolated at the drawn temperature), a share DEFENSIVE of the draws spread evenly over the pieces.
Printed per target: R² (on the design's variance, as the gap benchmark) of the bound, of the inversion's
mean and of the sampler's mean, the sampler's gain over the inversion (paired, with its standard error),
its Monte Carlo error as a share of the target's variance (the self-normalised estimator's delta-method
variance, averaged over rows), and the effective sample sizes; the posterior's own variance (what it
claims, as R²) and how far it lies below the bound's per row; per temperature level of the truths, the
sampler's shortfall below the bound and its own variance's, and the shortfall with its standard error for
the truths within FACE of the temperature range's ends and for the rest.  With `source` = gauss the same
rows' polymer is drawn from the bound's own model (`gaussian_rows`) before the same instrument; with
`save` a path, the per-row results go to an .npz file.

Measured (`typical`, composite, 1000 draws per row, about 13 minutes on two cores): on the 392 rows the
sampler's means gain 0.002 / 0.019 / 0.011 / 0.013 of R² over the inversion's (cBA_0, cAIBN_0, temp, time;
standard errors 0.001 / 0.014 / 0.013 / 0.011; Monte Carlo error below 0.006; effective sample size median
174, under 50 in 59 rows) and still fall short of the linearised bound by 0.083 +- 0.037 (cAIBN_0) and
0.087 +- 0.027 (temp): the finder's mean is the exact posterior's within about a standard error, and the
shortfall is between the exact posterior and the bound.  With the residual initiator
(composite,cAIBN_time; effective sample size median 338) the sampler's temperature is worse than the
inversion's by 0.013 +- 0.004 and short of the bound by 0.088 +- 0.029; the other three targets lie
within 0.015 of both.
Where is the shortfall?  At the ends of the temperature range.  For the 167 truths within 3 °C of 60 or
80 °C (composite) the sampler falls short of the bound by 0.233 +- 0.071 (cAIBN_0) and 0.211 +- 0.054
(temp); for the other 225 by -0.028 +- 0.035 and -0.006 +- 0.023, i.e. it reaches the bound.  Not in the
simulator's scatter: with `source` = gauss the shortfall is the same (0.104 +- 0.039, 0.091 +- 0.027;
composite,cAIBN_time: temp 0.065 +- 0.027).  Nor in what the finder's misfit leaves out
(`benchmarks/bound_noise.py`).  The posterior's own variance is smaller than the bound's on average
(composite: R² 0.515 / 0.614 on cAIBN_0 / temp against the bound's 0.408 / 0.487), smallest at the faces,
where the posterior is cut by the box while its mean still misses the truth.
With the residual initiator (composite,cAIBN_time) the temperature's shortfall grows towards the hot end
(75, 78, 80 °C: 0.19, 0.40, 0.10): 0.139 +- 0.061 within 3 °C of the ends, 0.050 +- 0.023 elsewhere.
For truths anywhere in the box, with observations from the finder's own likelihood, where the sampler's
mean is the Bayes estimate, see `benchmarks/bayes_risk.py`.
On the 62 rows of `rows` = 64 the sampler's R² (0.996 / 0.421 / 0.506 / 0.874) agrees with one Metropolis
chain of 20 000 steps per row (0.995 / 0.419 / 0.524 / 0.880) at a twentieth of its runs.

With `steps` > 0 also two adaptive Metropolis chains per row (`reference_posterior`), started on the
valley at the 10 % and the 90 % quantile of the inversion's temperature, as an independent check of the
sampler (their mean and their gain; their difference is their Monte Carlo error).  Chains must be long:
one chain of 5000 steps per row gave means *worse* than the inversion's on the 392 rows (cAIBN_0 R² 0.21
against 0.31) while its batch-means error claimed 0.006; on 62 rows one chain of 20 000 steps gained
0.04 ± 0.03 (cAIBN_0), 0.02 ± 0.02 (temp), 0.04 ± 0.03 (time) over the inversion (about 2.5 ms a step).
`python benchmarks/posterior_means.py [rows] [profile] [observe] [samples] [steps] [kmc|gauss] [save.npz]`.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
from reference_posterior import log_posterior, metropolis_chain
from scipy.stats import multivariate_t

from analysis.dataset import load_dataset
from analysis.design import BOX, EXTRA_FEATURES, TARGETS, from_unit, target_to_unit
from analysis.identifiability import EXTENDED, design_jacobians, noise_model
from analysis.inversion import FREE, J_PROFILE, PROFILE_TARGET, Posterior, measurement_noise, nuisances
from analysis.measurement import PROFILES
from analysis.mmd import MMD_COLUMNS
from analysis.roundtrip import invert_row, observation_of
from analysis.what_to_measure import bound_at, measured_frame, measured_sample
from analysis.workers import parallel_map

STARTS = (0.1, 0.9)  # temperature quantiles of the inversion's posterior where the two chains start
DF = 5.0  # the proposal's Student-t degrees of freedom
SCALE = 1.5  # the proposal's widening of each piece's Laplace covariance (in sd)
DEFENSIVE = 0.2  # share of the draws spread evenly over the pieces, whatever their weight
FACE = 3.0  # °C: truths this close to the temperature range's ends are summed apart


def near_face(temps: np.ndarray) -> np.ndarray:
    """Whether each temperature lies within FACE of the temperature range's ends."""
    lo, hi = BOX["temp"]
    return np.minimum(temps - lo, hi - temps) <= FACE


def prior_variance() -> np.ndarray:
    """Each target's variance under the prior, uniform in the box (original units): the scale of R²."""
    return np.array([(b - a) ** 2 / 12 for a, b in (BOX[t] for t in TARGETS)])


def shortfall_line(label: str, short: np.ndarray, at: np.ndarray) -> str:
    """The mean and standard error per target of the per-row shortfall `short` over the rows `at`."""
    se = short[at].std(axis=0, ddof=1) / np.sqrt(at.sum())
    return (f"{label} ({at.sum()}): "
            + "  ".join(f"{t} {m:.3f} ± {e:.3f}" for t, m, e in zip(TARGETS, short[at].mean(axis=0), se)))


def _line(post: Posterior, branch: int, temp: np.ndarray) -> np.ndarray:
    """The branch's valley at the temperatures `temp`: its points' free unit coordinates and nuisances,
    interpolated linearly (constant beyond its first and last point)."""
    at = np.flatnonzero(post.branch == branch)
    at = at[np.argsort(post.temps[at])]
    values = np.c_[post.unit_centres[at][:, FREE], post.nuisances[at]]
    return np.column_stack([np.interp(temp, post.temps[at], v) for v in values.T])


def importance_sample(post: Posterior, obs, noise: dict, inflation: float, samples: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws of (unit coordinates in TARGETS order, nuisances) from the proposal, and their normalised
    importance weights for the exact posterior."""
    pieces = len(post.weights)
    share = (1 - DEFENSIVE) * post.weights + DEFENSIVE / pieces
    share = share / share.sum()
    cells = post.cells
    piece = rng.choice(pieces, samples, p=share)
    temp = rng.uniform(cells[piece, 0], cells[piece, 1])
    steps = [multivariate_t(np.zeros(len(c)), SCALE**2 * c, df=DF) for c in post.unit_covs]  # per piece
    lines = {b: _line(post, b, temp) for b in np.unique(post.branch)}  # each branch's valley at every draw
    y = np.empty((samples, post.unit_covs.shape[1]))
    for k in np.unique(piece):
        mine = piece == k
        step = steps[k].rvs(int(mine.sum()), random_state=rng)
        y[mine] = lines[post.branch[k]][mine] + step.reshape(int(mine.sum()), -1)
    log_q = np.full(samples, -np.inf)
    width = target_to_unit(PROFILE_TARGET, cells[:, 1]) - target_to_unit(PROFILE_TARGET, cells[:, 0])
    for k in range(pieces):  # the proposal's density: every piece whose cell holds the draw's temperature
        inside = (temp >= cells[k, 0]) & (temp <= cells[k, 1])
        if inside.any():
            log_piece = steps[k].logpdf(y[inside] - lines[post.branch[k]][inside])
            log_q[inside] = np.logaddexp(log_q[inside], np.log(share[k] / width[k]) + log_piece)
    u = np.empty((samples, len(TARGETS)))
    u[:, FREE] = y[:, : len(FREE)]
    u[:, J_PROFILE] = target_to_unit(PROFILE_TARGET, temp)
    x = np.c_[u, y[:, len(FREE):]]
    log_p = np.array([log_posterior(xi, obs, noise, inflation) for xi in x])
    log_w = log_p - log_q
    w = np.exp(log_w - log_w[np.isfinite(log_w)].max()) if np.isfinite(log_w).any() else np.zeros(samples)
    w[~np.isfinite(log_w)] = 0.0
    return x, w / w.sum()


def _row(job: tuple) -> dict:
    idx, measured, noise_name, samples, steps = job
    result = invert_row(measured, noise_name)
    obs = observation_of(measured)
    noise = measurement_noise(obs, PROFILES[noise_name])
    post = result.posterior
    rng = np.random.default_rng(idx)
    x, w = importance_sample(post, obs, noise, result.inflation, samples, rng)
    values = from_unit(x[:, : len(TARGETS)])
    mean = w @ values
    out = {"index": idx, "inversion": np.array([result.mean[t] for t in TARGETS]), "sampler": mean,
           "is_var": (w**2) @ (values - mean) ** 2, "post_var": w @ (values - mean) ** 2,
           "ess": 1.0 / (w**2).sum(), "inflation": result.inflation}
    if steps:
        k = int(np.argmax(post.weights))
        n = nuisances(noise)
        first = np.r_[post.unit_sds[k] ** 2, np.full(n, 0.09)]  # the heaviest piece's, the shift's 0.3²
        cov = 2.38**2 / len(first) * np.diag(first) + 1e-10 * np.eye(len(first))
        means = []
        for c, q in enumerate(STARTS):  # two chains, from the valley at both ends of the temperature
            start = np.r_[post.unit_centres[post.nearest(post.quantile("temp", q))], np.zeros(n)]
            draws = metropolis_chain(start, obs, noise, steps, np.random.default_rng([idx, c]), cov=cov,
                                     inflation=result.inflation)
            means.append(from_unit(draws[:, : len(TARGETS)]).mean(axis=0))
        out |= {"chain": np.mean(means, axis=0), "mc_var": (means[0] - means[1]) ** 2 / 4}
    return out


def gaussian_rows(data: pd.DataFrame, jacobians, sigma: np.ndarray, rows: pd.DataFrame, seed: int = 12
                  ) -> pd.DataFrame:
    """The rows with their simulated observables replaced by the bound's model of them: the deterministic
    engine's values plus independent Gaussian noise of the kMC scatter's sd (`noise_model`; the MMD
    clipped at zero, as a trace is; the scalars log-normal).  Rows without deterministic values (at the
    90 % stop, no bound there) keep the kMC's."""
    rng = np.random.default_rng(seed)
    n = len(MMD_COLUMNS)
    at = data.index.get_indexer(rows.index)
    det, sd = jacobians.observed[at], sigma[at]
    ok = np.isfinite(det[:, : n + len(EXTRA_FEATURES)]).all(axis=1) & np.isfinite(sd[:, :n]).all(axis=1)
    out = rows.copy()
    drawn = np.maximum(det[:, :n] + sd[:, :n] * rng.standard_normal((len(at), n)), 0.0)
    out.loc[ok, MMD_COLUMNS] = drawn[ok]
    for j, name in enumerate((EXTRA_FEATURES + EXTENDED)[: det.shape[1] - n]):
        if name in out:
            value = np.exp(det[:, n + j] + np.nan_to_num(sd[:, n + j]) * rng.standard_normal(len(at)))
            out.loc[ok & np.isfinite(value), name] = value[ok & np.isfinite(value)]
    return out


def main(n: int = 64, noise: str = "typical", observe: str = "composite", samples: int = 2000,
         steps: int = 0, source: str = "kmc", save: str | None = None) -> None:
    tic = time.perf_counter()
    data = load_dataset(observables=True)
    jacobians = design_jacobians(data, extended=True)
    sigma = noise_model(data, jacobians)
    rows, measured = measured_sample(data, noise, n, 11, observe, "check")
    if source == "gauss":  # the same rows and measurement, the polymer drawn from the bound's model
        measured = measured_frame(gaussian_rows(data, jacobians, sigma, rows), noise, observe, 11)
    elif source != "kmc":
        raise ValueError(f"source is kmc or gauss, got {source}")
    chosen, bound, variance = bound_at(data, jacobians, sigma, noise, observe, rows.index)
    jobs = [(idx, measured.loc[idx], noise, samples, steps) for idx in chosen]
    out = {r["index"]: r for r in parallel_map(_row, jobs, None)}
    truth = rows.loc[chosen, TARGETS].to_numpy(float)
    inv = np.array([out[i]["inversion"] for i in chosen])
    e_inv = (inv - truth) ** 2
    ess = np.array([out[i]["ess"] for i in chosen])
    print(f"{noise}, {observe}, polymer from {source}: {len(chosen)} rows, {samples} importance draws per row"
          f"{f', two chains of {steps} steps' if steps else ''} (inflation > 1 in "
          f"{np.mean([out[i]['inflation'] > 1 for i in chosen]):.0%} of the rows); effective sample size "
          f"median {np.median(ess):.0f}, 10 % quantile {np.quantile(ess, 0.1):.0f}, below 50 in "
          f"{np.sum(ess < 50)} rows")
    print(f"{'':22s}" + "".join(f"{t:>9s}" for t in TARGETS))
    lines = [("bound", 1 - bound.mean(axis=0) / variance),
             ("inversion's mean", 1 - e_inv.mean(axis=0) / variance)]
    methods = (("sampler", "sampler", "is_var"), ("chains", "chain", "mc_var"))[: 2 if steps else 1]
    means = {key: np.array([out[i][key] for i in chosen]) for _, key, _ in methods}
    shorts = {key: ((est - truth) ** 2 - bound) / variance for key, est in means.items()}  # per row: below it
    for name, key, error in methods:
        est = means[key]
        e = (est - truth) ** 2
        gain = (e_inv - e) / variance  # per row: the R² gain over the inversion's
        short = shorts[key]
        lines += [(f"{name}: mean", 1 - e.mean(axis=0) / variance), (f"{name}: gain", gain.mean(axis=0)),
                  ("  its se", gain.std(axis=0, ddof=1) / np.sqrt(len(gain))),
                  (f"{name}: below bound", short.mean(axis=0)),
                  ("  its se", short.std(axis=0, ddof=1) / np.sqrt(len(short))),
                  (f"{name}: MC error", np.array([out[i][error] for i in chosen]).mean(axis=0) / variance),
                  (f"{name}: |- inv| rms/sd", np.sqrt(((est - inv) ** 2).mean(axis=0) / variance))]
    own = np.array([out[i]["post_var"] for i in chosen])  # the posterior's own variance per row
    wider = (own - bound) / variance  # per row: own variance less the bound's (< 0: the posterior narrower)
    lines += [("sampler: own variance", 1 - own.mean(axis=0) / variance),
              ("own below bound", wider.mean(axis=0)),
              ("  its se", wider.std(axis=0, ddof=1) / np.sqrt(len(wider)))]
    for label, values in lines:
        print(f"{label:22s}" + "".join(f"{v:9.3f}" for v in values))
    sampler, short = means["sampler"], shorts["sampler"]
    temps = truth[:, 2]
    print("per temperature of the truth, the sampler's mean below the bound | its own variance below it")
    for level in np.unique(temps):  # where along the temperature the posterior falls short of the bound
        at = temps == level
        print(f"{level:4.1f} °C ({at.sum():3d} rows): "
              + " ".join(f"{v:7.3f}" for v in short[at].mean(axis=0)) + " | "
              + " ".join(f"{v:7.3f}" for v in wider[at].mean(axis=0)))
    near = near_face(temps)  # truths near the temperature range's faces
    lo, hi = BOX["temp"]
    for label, at in ((f"within {FACE:g} °C of {lo:g} or {hi:g} °C", near), ("the rest", ~near)):
        print(shortfall_line(f"below the bound, {label}, rows", short, at))
    if save:
        np.savez(save, index=np.asarray(chosen), truth=truth, bound=bound, variance=variance, inversion=inv,
                 sampler=sampler, own=own, ess=ess)
    print(f"total {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 64, args[1] if len(args) > 1 else "typical",
         args[2] if len(args) > 2 else "composite", int(args[3]) if len(args) > 3 else 2000,
         int(args[4]) if len(args) > 4 else 0, args[5] if len(args) > 5 else "kmc",
         args[6] if len(args) > 6 else None)
