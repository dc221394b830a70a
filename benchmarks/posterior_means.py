"""Is the inversion's posterior mean the posterior's mean?  On the open sets the inversion falls short of
the linearised bound (`benchmarks/inversion_gap.py`: 0.06-0.10 of R² on the initiator and the temperature,
about 3 standard errors on 392 rows).  Either the inversion's mean (Laplace pieces along the temperature
profile) is a poor approximation of the posterior's, or no posterior mean reaches that bound, which takes
the valley as the straight line of the weakest direction at the true recipe.

Per row of the gap benchmark (rows of the check recipes, seed 11, measured with a profile and inverted as
there, without the interval calibration): two adaptive random-walk Metropolis chains (`reference_posterior`)
on the same misfit, prior and noise inflation as the inversion, started on the valley at the 10 % and the
90 % quantile of the inversion's temperature, with its heaviest piece's variances as the first proposal;
the mean of both is the reference posterior mean, their difference its Monte Carlo error.  Printed per
target: R² (on the design's variance, as the gap benchmark) of the bound, of the inversion's mean and of
the chains' mean, the chains' gain over the inversion (paired, with its standard error), the chains' Monte
Carlo error as a share of the target's variance, and the rms distance of their mean from the inversion's.

Chains must be long: on the 392 rows of the gap benchmark (composite, `typical`), one chain of 5000 steps
per row gave means *worse* than the inversion's (cAIBN_0 R² 0.21 against 0.31) while its batch-means
error claimed 0.006: not mixed along the valley.  On 62 rows, one chain of 20 000 steps gained 0.04 ± 0.03
(cAIBN_0), 0.02 ± 0.02 (temp), 0.04 ± 0.03 (time) over the inversion and lay above the linearised bound
on all four targets; two chains per row say whether such a length has mixed (about 2.5 ms a step).
`python benchmarks/posterior_means.py [rows] [profile] [observe] [steps]`.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from reference_posterior import _chain

from analysis.dataset import load_dataset
from analysis.design import CENTRE, TARGETS, from_unit
from analysis.identifiability import design_jacobians, noise_model, valley_mse
from analysis.inversion import invert, measurement_noise, nuisances
from analysis.measurement import PROFILES
from analysis.roundtrip import observation_of
from analysis.what_to_measure import _bound_rows, measured_sample
from analysis.workers import parallel_map

STARTS = (0.1, 0.9)  # temperature quantiles of the inversion's posterior where the two chains start


def _start_covariance(post, n_nuisance: int) -> np.ndarray:
    """The heaviest piece's variances in unit coordinates (the temperature's: its cell's) and 0.3² for
    the shift, scaled as the adaptive proposal: a first proposal as narrow as the valley is across."""
    k = int(np.argmax(post.weights))
    var = np.r_[post.unit_sds[k] ** 2, np.full(n_nuisance, 0.09)]
    return 2.38**2 / len(var) * np.diag(var) + 1e-10 * np.eye(len(var))


def _row(job: tuple) -> dict:
    idx, measured, noise_name, steps = job
    obs = observation_of(measured)
    noise = measurement_noise(obs, PROFILES[noise_name])
    result = invert(obs, starts=[CENTRE], noise=noise)
    post = result.posterior
    cov = _start_covariance(post, nuisances(noise))
    means = []
    for k, q in enumerate(STARTS):  # two chains, from the valley at two ends of the temperature's posterior
        start = np.r_[post.unit_centres[post.nearest(post.quantile("temp", q))], np.zeros(nuisances(noise))]
        chain = _chain(start, obs, noise, steps, np.random.default_rng([idx, k]), cov=cov,
                       inflation=result.inflation)
        means.append(from_unit(chain[:, : len(TARGETS)]).mean(axis=0))
    return {"index": idx, "inversion": np.array([result.mean[t] for t in TARGETS]),
            "chain": np.mean(means, axis=0), "mc_var": (means[0] - means[1]) ** 2 / 4,
            "inflation": result.inflation}


def main(n: int = 64, noise: str = "typical", observe: str = "composite", steps: int = 20000) -> None:
    tic = time.perf_counter()
    data = load_dataset(observables=True)
    jacobians = design_jacobians(data, extended=True)
    sigma = noise_model(data, jacobians)
    rows, measured = measured_sample(data, noise, n, 11, observe, "check")
    ok, jacobian = _bound_rows(data, jacobians, sigma, noise, observe)
    at = data.index.get_indexer(rows.index)
    keep = at[ok[at]]  # rows at the 90 % stop have no bound, as in the gap benchmark
    only = np.zeros(len(data), bool)
    only[keep] = True
    bound = valley_mse(data, only, jacobian)[keep]
    chosen = data.index[keep]
    variance = data.loc[ok, TARGETS].to_numpy(float).var(axis=0)
    jobs = [(idx, measured.loc[idx], noise, steps) for idx in chosen]
    out = {r["index"]: r for r in parallel_map(_row, jobs, None)}
    truth = rows.loc[chosen, TARGETS].to_numpy(float)
    inv = np.array([out[i]["inversion"] for i in chosen])
    chn = np.array([out[i]["chain"] for i in chosen])
    mc = np.array([out[i]["mc_var"] for i in chosen])
    e_inv, e_chn = (inv - truth) ** 2, (chn - truth) ** 2
    gain = (e_inv - e_chn) / variance  # per row: the chains' R² gain over the inversion's
    print(f"{noise}, {observe}: {len(chosen)} rows, two chains of {steps} steps per row "
          f"(inflation > 1 in {np.mean([out[i]['inflation'] > 1 for i in chosen]):.0%} of the rows)")
    print(f"{'':22s}" + "".join(f"{t:>9s}" for t in TARGETS))
    for label, values in (("bound", 1 - bound.mean(axis=0) / variance),
                          ("inversion's mean", 1 - e_inv.mean(axis=0) / variance),
                          ("chains' mean", 1 - e_chn.mean(axis=0) / variance),
                          ("chains' gain", gain.mean(axis=0)),
                          ("  its se", gain.std(axis=0, ddof=1) / np.sqrt(len(gain))),
                          ("chains' MC error", mc.mean(axis=0) / variance),
                          ("|chain - inv| rms/sd", np.sqrt(((chn - inv) ** 2).mean(axis=0) / variance))):
        print(f"{label:22s}" + "".join(f"{v:9.3f}" for v in values))
    print(f"total {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 64, args[1] if len(args) > 1 else "typical",
         args[2] if len(args) > 2 else "composite", int(args[3]) if len(args) > 3 else 20000)
