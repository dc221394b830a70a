"""One entry point to both engines, and their agreement on recipes spread over the design."""

from __future__ import annotations

from .kinetics import DEFAULT_PARAMETERS, KineticParameters, Recipe
from .kmc import run_kmc
from .memo import cached
from .ode import run_ode
from .simulation import Simulation, compare_runs

ENGINES = ("ode", "kmc")


def simulate(recipe: Recipe, engine: str = "ode", params: KineticParameters = DEFAULT_PARAMETERS,
             **options) -> Simulation:
    """Run one recipe with the deterministic ('ode') or the kinetic Monte Carlo ('kmc') engine."""
    if engine == "ode":
        return run_ode(recipe, params, **options)
    if engine == "kmc":
        return run_kmc(recipe, params, **options)
    raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")


AGREEMENT_RECIPES = ((0.5, 0.0025, 60.0), (3.0, 0.0025, 80.0), (0.5, 0.02, 80.0), (3.0, 0.02, 60.0),
                     (1.5, 0.01, 70.0))  # the four (cBA_0, temp) corners at both initiator ends, centre


def agreement_table(recipes=AGREEMENT_RECIPES, seed: int = 11) -> tuple[list, list]:
    """kMC against deterministic runs of each recipe: largest differences over the samples, and the
    pairs of runs.  Cached on disk (`memo`): chapter 2 and the engines' tests share it."""
    return cached("agreement_table", repr((tuple(recipes), seed)).encode(), lambda: _agreement(recipes, seed))


def _agreement(recipes, seed: int) -> tuple[list, list]:
    rows, pairs = [], []
    for levels in recipes:
        recipe = Recipe(*levels)
        kmc, ode = simulate(recipe, "kmc", seed=seed), simulate(recipe, "ode")
        c = compare_runs(kmc, ode)
        rows.append({"cBA_0": recipe.cBA_0, "cAIBN_0": recipe.cAIBN_0, "temp": recipe.temp,
                     "samples": c["samples"], "stops at 90 %": ode.stopped,
                     "max |ΔX|": c["conversion"], "max ΔMn/Mn": c["Mn_rel"],
                     "max ΔMw/Mw": c["Mw_rel"], "max MMD L1": c["mmd_l1"]})
        pairs.append((kmc, ode))
    return rows, pairs
