"""Why the physics inversion's intervals under-cover on measured data: does its walk along the valley
miss a better fit at the true temperature?

For random rows of the workbook measured with a profile (`typical` by default; seed 11 as in
`benchmarks/coverage.py`) and one observation set, the inversion runs as the coverage check runs it (from
the domain's centre).  Then, at each row's true temperature, conditional fits of the other three targets:
from each of the walk's branches' points nearest that temperature (the best kept), and from the truth.
If the fit from the truth ends with a chi² lower by more than `MARGIN`, the walk missed the minimum that
holds the truth: the posterior, Laplace pieces around the minima it found, then leaves that mode out
(`inversion.other_minima` is there to find it).  Prints per row the two chi² and whether the row's 90 %
intervals covered the truth, and the coverage of rows with and without a missed mode.
`python benchmarks/second_modes.py [rows] [observe] [noise]`.
"""

from __future__ import annotations

import sys

import numpy as np

from analysis.dataset import load_dataset
from analysis.design import CENTRE, TARGETS
from analysis.inversion import conditional_fit, invert, measurement_noise
from analysis.measurement import PROFILES
from analysis.roundtrip import observation_of
from analysis.what_to_measure import measured_sample
from analysis.workers import parallel_map

MARGIN = 2.0  # chi² units: a lower minimum than this is a different mode, not the optimiser's tolerance


def _row(job: tuple) -> dict:
    truth, measured, noise_name = job
    obs = observation_of(measured)
    noise = measurement_noise(obs, PROFILES[noise_name])
    result = invert(obs, starts=[CENTRE], noise=noise)
    post = result.posterior
    recipe = {t: float(truth[t]) for t in TARGETS}
    nearest = np.flatnonzero(post.temps == post.temps[post.nearest(recipe["temp"])])
    walk = min((conditional_fit(obs, recipe["temp"], dict(zip(TARGETS, post.centres[k])), noise)
                for k in nearest), key=lambda fit: fit.chi2)  # the best of the branches there
    true = conditional_fit(obs, recipe["temp"], recipe, noise)
    covered = all(result.interval[t][0] <= recipe[t] <= result.interval[t][1] for t in TARGETS)
    return {**recipe, "chi2 walk": walk.chi2, "chi2 from truth": true.chi2, "covered": covered,
            "missed mode": walk.chi2 - true.chi2 > MARGIN}


def main(n: int = 40, observe: str = "composite", noise: str = "typical") -> None:
    frame = load_dataset(observables=True)
    rows, measured = measured_sample(frame, noise, n, 11, observe)
    out = parallel_map(_row, [(rows.loc[i], measured.loc[i], noise) for i in rows.index])
    for r in out:
        print(" ".join(f"{t} {r[t]:g}" for t in TARGETS),
              f"| chi2 at the true temperature: walk {r['chi2 walk']:.1f}, "
              f"from the truth {r['chi2 from truth']:.1f} | all four covered: {r['covered']}")
    missed = np.array([r["missed mode"] for r in out])
    covered = np.array([r["covered"] for r in out])
    share = covered[missed].mean() if missed.any() else np.nan
    print(f"{observe}, {noise}, {n} rows: the walk missed a lower minimum at the true temperature in "
          f"{missed.sum()} rows; all four targets covered in {share:.0%} of those and "
          f"{covered[~missed].mean():.0%} of the others")


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
