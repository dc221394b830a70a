"""The inversion's model-error floor (`inversion.measurement_noise(..., floor=)`): how a white noise of
sd `floor` x the trace's peak, added to the covariance that whitens a measured trace, changes the
posterior.  Under an instrument the trace's noise is smooth and correlated along log M, so its covariance
has directions with almost no variance; whitened, the misfit's finest structure then swings with the
calibration's shift, at the grid's scale, and the fit lands in one of many minima of the shift, each with
its own monomer.  The floor caps those weights.  The inversion's default is MODEL_FLOOR (a hundredth) of
the profile's detector baseline: 2e-5 of the peak under `typical`, 1e-4 under `poor`.

For each floor: random rows of the calibration half of the recipes (`calibration.recipe_half`; the check
half stays unseen), measured with a profile and an observation set and inverted from the centre.  Printed
per target: the raw coverage of the posterior's 90 % intervals (as the posterior gives them, before the
conformal factors) with its binomial standard error, the R² of the posterior means on these rows, the
median interval width in % of the study's range; and the median seconds and forward runs per MMD.
`python benchmarks/model_floor.py [rows] [profile] [set] [floor,floor,...]`, e.g.
`python benchmarks/model_floor.py 60 poor composite,cAIBN_time 0,0.0001,0.0005,0.002`.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from analysis.dataset import load_dataset
from analysis.design import CENTRE, STUDY_RANGES, TARGETS
from analysis.inversion import Budget, invert, measurement_noise
from analysis.measurement import PROFILES
from analysis.metrics import metrics
from analysis.roundtrip import observation_of
from analysis.what_to_measure import measured_sample
from analysis.workers import parallel_map


def _invert(job: tuple) -> dict:
    row, profile, floor = job
    tic = time.perf_counter()
    obs = observation_of(row)
    budget = Budget()
    noise = measurement_noise(obs, PROFILES[profile], floor)
    result = invert(obs, starts=[CENTRE], noise=noise, budget=budget)
    return {**{f"{t} mean": result.mean[t] for t in TARGETS},
            **{f"{t} low": result.interval[t][0] for t in TARGETS},
            **{f"{t} high": result.interval[t][1] for t in TARGETS},
            "seconds": time.perf_counter() - tic, "runs": budget.used}


def main(n: int = 60, profile: str = "poor", observe: str = "composite,cAIBN_time",
         floors: tuple[float, ...] = (0.0, 1e-4, 5e-4, 2e-3)) -> None:
    frame = load_dataset(observables=True)
    rows, measured = measured_sample(frame, profile, n, 0, observe, "calibration")
    truth = rows[TARGETS].to_numpy(float)
    print(f"{n} rows of the calibration recipes, {profile}, {observe}; coverage of the raw 90 % intervals "
          f"(binomial se {100 * np.sqrt(0.09 / n):.1f} points), R² of the posterior means, median width "
          f"(% of range)", flush=True)
    for floor in floors:
        out = pd.DataFrame(parallel_map(_invert, [(r, profile, floor) for _, r in measured.iterrows()]))
        low = out[[f"{t} low" for t in TARGETS]].to_numpy(float)
        high = out[[f"{t} high" for t in TARGETS]].to_numpy(float)
        covered = 100 * ((truth >= low) & (truth <= high)).mean(axis=0)
        r2 = metrics(truth, out[[f"{t} mean" for t in TARGETS]].to_numpy(float))["r2"]
        span = np.array([STUDY_RANGES[t][1] - STUDY_RANGES[t][0] for t in TARGETS])
        width = 100 * np.median(high - low, axis=0) / span
        print(f"floor {floor:g}: " + "  ".join(f"{t} {c:3.0f} % R² {r:.3f} width {w:4.1f}"
                                               for t, c, r, w in zip(TARGETS, covered, r2, width))
              + f"  | {out.seconds.median():.2f} s, {out.runs.median():.0f} runs per MMD", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 60, args[1] if len(args) > 1 else "poor",
         args[2] if len(args) > 2 else "composite,cAIBN_time",
         tuple(float(x) for x in args[3].split(",")) if len(args) > 3 else (0.0, 1e-4, 5e-4, 2e-3))
