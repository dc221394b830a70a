"""A reference posterior for rows whose 90 % intervals missed the truth: is the misfit's model wrong, or
the inversion's approximation of the posterior (Laplace pieces along the temperature profile)?

For rows of the workbook measured with a profile (`typical`; the 80 rows of seed 11, as in
`benchmarks/coverage.py`) and one observation set, per row:
- the inversion's posterior mean and 90 % interval, as the coverage check computes them;
- chi² at the true recipe (the calibration's shift fitted) minus chi² at the inversion's recipe: with a
  right noise model this is about a chi² variable of a few degrees of freedom, so a value of 2-6 says
  the data do not exclude the truth;
- an adaptive random-walk Metropolis chain (Haario et al. 2001) over the recipe's unit coordinates and the
  shift, on the same misfit and prior as the inversion (no Laplace step), started at the truth: its
  shortest 90 % interval per target (which reaches a bound where the mass piles up against it, as the
  inversion's highest-density interval does), and the correlation of ln cAIBN_0 with the time along the chain.
If the chain's interval holds the truth where the inversion's does not, the posterior approximation is
what misses.  A diagnostic, not a sampler for users: one chain, started at the truth, thousands of runs.
`python benchmarks/reference_posterior.py [observe] [steps] [row ...]`.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.optimize import minimize_scalar

from analysis.dataset import load_dataset
from analysis.design import CENTRE, TARGETS, as_dict, from_unit, to_unit, unit_span
from analysis.inversion import SHIFT_BOUND, forward, invert, measurement_noise, nuisances, residuals
from analysis.measurement import PROFILES
from analysis.roundtrip import observation_of
from analysis.what_to_measure import measured_sample
from analysis.workers import parallel_map

ROWS = (3725, 4405, 3906)  # missed the initiator with a known temperature (composite,temp, seed 11)
ADAPT_EVERY = 500  # steps between updates of the proposal's covariance (from the chain's second half)


def log_posterior(x: np.ndarray, obs, noise: dict, inflation: float = 1.0) -> float:
    """The inversion's log posterior at unit coordinates and shift x: -chi²/2 (over the noise's
    `inflation`, as the inversion's Birge ratio) + the uniform prior's log density in unit coordinates;
    minus infinity outside the box."""
    u, shift = x[: len(TARGETS)], (x[len(TARGETS)] if nuisances(noise) else 0.0)
    if (u < 0).any() or (u > 1).any() or abs(shift) > SHIFT_BOUND:
        return -np.inf
    recipe = as_dict(from_unit(u))
    r = residuals(recipe, obs, noise, shift, forward(recipe))
    return float(-0.5 * r @ r / inflation + np.log(unit_span(from_unit(u))).sum())


def _chi2(recipe: dict, obs, noise: dict) -> float:
    """chi² at a recipe, the calibration's shift fitted."""
    sim = forward(recipe)
    return float(minimize_scalar(lambda z: np.sum(residuals(recipe, obs, noise, z, sim) ** 2),
                                 bounds=(-SHIFT_BOUND, SHIFT_BOUND), method="bounded").fun)


def metropolis_chain(x: np.ndarray, obs, noise: dict, steps: int, rng: np.random.Generator,
                     cov: np.ndarray | None = None, inflation: float = 1.0) -> np.ndarray:
    """Adaptive random-walk Metropolis from x (first proposal `cov`): the chain after a quarter of burn-in."""
    if cov is None:
        cov = np.diag(np.r_[np.full(len(TARGETS), 1e-4), np.full(len(x) - len(TARGETS), 1e-2)])
    lp, chain = log_posterior(x, obs, noise, inflation), []
    for i in range(steps):
        if i >= 2 * ADAPT_EVERY and i % ADAPT_EVERY == 0:
            recent = np.array(chain[len(chain) // 2:])
            cov = 2.38**2 / len(x) * np.cov(recent.T) + 1e-10 * np.eye(len(x))
        y = rng.multivariate_normal(x, cov)
        ly = log_posterior(y, obs, noise, inflation)
        if np.log(rng.random()) < ly - lp:
            x, lp = y, ly
        chain.append(x.copy())
    return np.array(chain[steps // 4:])


def _shortest(values: np.ndarray, level: float = 0.90) -> tuple[float, float]:
    """The shortest interval holding `level` of the samples."""
    v = np.sort(values)
    k = int(np.ceil(level * len(v)))
    i = int(np.argmin(v[k - 1:] - v[: len(v) - k + 1]))
    return float(v[i]), float(v[i + k - 1])


def _row(job: tuple) -> str:
    idx, truth, measured, noise_name, steps = job
    obs = observation_of(measured)
    noise = measurement_noise(obs, PROFILES[noise_name])
    result = invert(obs, starts=[CENTRE], noise=noise)
    recipe = {t: float(truth[t]) for t in TARGETS}
    gap = _chi2(recipe, obs, noise) - _chi2(result.recipe, obs, noise)
    start = np.r_[to_unit(recipe), np.zeros(nuisances(noise))]
    chain = metropolis_chain(start, obs, noise, steps, np.random.default_rng(idx))
    values = from_unit(chain[:, : len(TARGETS)])
    lines = [f"row {idx}: chi²(truth) - chi²(inversion's recipe) = {gap:.1f}"]
    for j, t in enumerate(TARGETS):
        lo, hi = result.interval[t]
        c_lo, c_hi = _shortest(values[:, j])
        lines.append(f"  {t:8s} truth {recipe[t]:<8.4g} inversion {result.mean[t]:8.4g} [{lo:.4g}, {hi:.4g}]"
                     f" {'in ' if lo <= recipe[t] <= hi else 'OUT'}   chain {values[:, j].mean():8.4g} "
                     f"[{c_lo:.4g}, {c_hi:.4g}] {'in' if c_lo <= recipe[t] <= c_hi else 'OUT'}")
    corr = np.corrcoef(np.log(values[:, 1]), values[:, 3])[0, 1]
    lines.append(f"  chain: {len(chain)} kept of {steps} steps; corr(ln cAIBN_0, time) = {corr:.2f}")
    return "\n".join(lines)


def main(observe: str = "composite,temp", steps: int = 20000, *rows: int, noise: str = "typical") -> None:
    frame = load_dataset(observables=True)
    sample, measured = measured_sample(frame, noise, 80, 11, observe)
    chosen = [r for r in (rows or ROWS) if r in sample.index]
    jobs = [(idx, sample.loc[idx], measured.loc[idx], noise, steps) for idx in chosen]
    for text in parallel_map(_row, jobs, None):
        print(text, flush=True)


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
