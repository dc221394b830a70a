"""Speed of the two engines, against the targets of the simulators issue.

Prints: the deterministic 432-recipe sweep wall time (target <= 10 s), kMC events per second on one
core (target >= 2e7), the projected wall time of the whole design with kMC on 2 cores (target <= 30 min),
and their ratio.  Run on an otherwise idle machine: `make bench`.
"""

from __future__ import annotations

import time

import numpy as np

from analysis.design import design
from analysis.engines import simulate
from analysis.kinetics import N_AVOGADRO, Recipe
from analysis.kmc import control_volume

CORES = 2


def ode_sweep() -> tuple[float, float, list]:
    recipes = design()
    simulate(recipes[0], "ode")  # warm-up
    start = time.perf_counter()
    runs = [simulate(r, "ode", with_mmd=False) for r in recipes]
    moments_only = time.perf_counter() - start
    start = time.perf_counter()
    for r in recipes:
        simulate(r, "ode")
    with_mmd = time.perf_counter() - start
    return moments_only, with_mmd, runs


def kmc_rate() -> float:
    simulate(Recipe(0.5, 0.02, 80.0), "kmc", seed=0)  # compile / load the numba cache
    events, seconds = 0, 0.0
    for recipe in (Recipe(1.0, 0.02, 70.0), Recipe(2.0, 0.005, 65.0), Recipe(3.0, 0.01, 75.0)):
        start = time.perf_counter()
        run = simulate(recipe, "kmc", seed=1)
        seconds += time.perf_counter() - start
        events += run.info["events"]
    return events / seconds


def projected_events(runs) -> np.ndarray:
    """Events of each recipe: about one per consumed monomer molecule in the control volume."""
    return np.array([run.recipe.cBA_0 * N_AVOGADRO * control_volume(run.recipe) * run.conversion[-1]
                     for run in runs])


def main() -> None:
    moments_only, with_mmd, runs = ode_sweep()
    print(f"deterministic sweep, 432 recipes, moments only : {moments_only:6.1f} s   "
          f"(target 10 s, ratio to target {moments_only / 10:.2f})")
    print(f"deterministic sweep, 432 recipes, with the MMD : {with_mmd:6.1f} s")
    rate = kmc_rate()
    print(f"kMC events per second on one core             : {rate:.3g}   "
          f"(target 2e7, ratio {rate / 2e7:.2f})")
    events = projected_events(runs)
    projected = events.sum() / (rate * CORES)
    print(f"kMC design: {events.sum():.3g} events, largest recipe {events.max():.3g}")
    print(f"kMC projected wall time, 432 recipes, {CORES} cores : {projected / 60:6.1f} min "
          f"(target 30 min, ratio {projected / 1800:.2f})")
    print(f"ratio kMC design / deterministic sweep         : {projected / moments_only:.0f}")


if __name__ == "__main__":
    main()
