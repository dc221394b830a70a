"""Does the linearised bound depend on the per-point noise assumed for the simulator's MMD?  The bound
(`what_to_measure.bound_at`) takes each row's kinetic Monte Carlo scatter from the data (`noise_model`:
c_r w + floor² per point); the finder's inversion takes `inversion.NOISE['mmd']` on every point.  Both
pass through the same instrument, whose detector noise and calibration scatter add to them.  On the rows
of `benchmarks/inversion_gap.py` and `benchmarks/posterior_means.py` (check recipes, seed 11), printed
per target: R² of the bound with the data's scatter, with the finder's, and with the data's halved and
doubled; then with the finder's and its model-error floor (`inversion.MODEL_FLOOR` x the detector's
baseline x the trace's peak, white; also 10 and 100 times it), and with the data's and the points whose
noise-free trace lies below one or two baseline sds left out (those a measured trace often reports as
zero, which the finder leaves out as censored).

Measured (`typical`, composite, 392 rows with a bound; 10 s with the Jacobians in the cache), cBA_0 /
cAIBN_0 / temp / time: 0.996 / 0.408 / 0.487 / 0.839 (data's), 0.995 / 0.396 / 0.483 / 0.829 (finder's
0.01), 0.997 / 0.418 / 0.493 / 0.843 (halved), 0.994 / 0.380 / 0.474 / 0.826 (doubled).  Under `typical`
the instrument's noise dominates: the finder's noise model moves the bound by about 0.01, a tenth of the
exact posterior's shortfall below it (0.083 on cAIBN_0, 0.087 on temp; `benchmarks/posterior_means.py`):
that shortfall is not the noise the finder assumes.  Nor is it what the finder leaves out: its floor
moves the bound by less than 0.001 (10 times it by 0.002, 100 times it, the baseline noise itself on every
point, by 0.02), and leaving out the points below one or two baseline sds by 0.001.
`python benchmarks/bound_noise.py [rows] [profile] [observe]`.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import analysis.what_to_measure as wtm
from analysis.dataset import load_dataset
from analysis.design import TARGETS
from analysis.identifiability import design_jacobians, noise_model
from analysis.inversion import MODEL_FLOOR, NOISE
from analysis.measurement import PROFILES
from analysis.mmd import MMD_COLUMNS
from analysis.what_to_measure import bound_at, measured_sample


def main(n: int = 400, noise: str = "typical", observe: str = "composite") -> None:
    tic = time.perf_counter()
    data = load_dataset(observables=True)
    jacobians = design_jacobians(data, extended=True)
    sigma = noise_model(data, jacobians)
    rows, _ = measured_sample(data, noise, n, 11, observe, "check")
    mmd = np.arange(sigma.shape[1]) < len(MMD_COLUMNS)  # the MMD's columns of sigma; the scalars stay
    models = {"data's scatter": sigma, f"finder's {NOISE['mmd']:g}": np.where(mmd, NOISE["mmd"], sigma),
              "data's halved": np.where(mmd, 0.5 * sigma, sigma),
              "data's doubled": np.where(mmd, 2 * sigma, sigma)}
    print(f"{noise}, {observe}: linearised bound, R² per target, by the MMD's per-point noise")
    print(f"{'':26s}" + "".join(f"{t:>9s}" for t in TARGETS) + "     rows")
    plain = wtm.trace_covariance

    def row(label: str, s: np.ndarray, covariance=plain) -> None:
        """The bound with per-point noise `s` and the trace's covariance from `covariance`."""
        wtm.trace_covariance = covariance
        try:
            chosen, bound, variance = bound_at(data, jacobians, s, noise, observe, rows.index)
        finally:
            wtm.trace_covariance = plain
        r2 = 1 - bound.mean(axis=0) / variance
        print(f"{label:26s}" + "".join(f"{v:9.3f}" for v in r2) + f"{len(chosen):9d}")

    for label, s in models.items():
        row(label, s)
    baseline = PROFILES[noise].detector_baseline
    for factor in (1.0, 10.0, 100.0):  # the finder's model-error floor, and ten and a hundred times it
        floor = factor * MODEL_FLOOR * baseline

        def floored(op, s, floor=floor):  # as `inversion.measurement_noise` adds it, at the trace's peak
            return plain(op, s) + (floor * op.trace.max()) ** 2 * np.eye(len(op.trace))

        row(f"finder's + floor x {factor:g}", models[f"finder's {NOISE['mmd']:g}"], floored)
    for k in (1.0, 2.0):  # points whose noise-free trace lies below k baseline sds left out (as censored)

        def censored(op, s, k=k):
            low = op.trace < k * baseline * op.trace.max()
            return plain(op, s) + np.diag(np.where(low, 1e2, 0.0))  # sd 10: out

        row(f"data's, below {k:g} sd out", sigma, censored)
    print(f"total {time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 400, args[1] if len(args) > 1 else "typical",
         args[2] if len(args) > 2 else "composite")
