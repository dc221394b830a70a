"""What a simulation returns, the sampling and stopping rules shared by both engines."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .kinetics import DEFAULT_PARAMETERS, KineticParameters, Recipe
from .mmd import LOGM

SAMPLE_EVERY = 300.0  # s
T_END = 3600.0  # s
SAMPLE_TIMES = np.arange(SAMPLE_EVERY, T_END + 1.0, SAMPLE_EVERY)  # 300, 600, ..., 3600
X_STOP = 0.90  # a run stops when monomer conversion reaches 90 %
ENGINES = ("ode", "kmc")


@dataclass
class Simulation:
    """Samples of one batch run: one entry per sampling time (and at the stop, if it came first)."""

    recipe: Recipe
    engine: str
    time: np.ndarray  # s
    conversion: np.ndarray  # 1 - cBA/cBA_0
    cBA: np.ndarray  # mol/L, remaining monomer
    Mn: np.ndarray  # g/mol, dead polymer
    Mw: np.ndarray  # g/mol
    mmd: np.ndarray  # (samples, 100): w(log M) on mmd.LOGM, unit area
    stopped: bool  # True if 90 % conversion was reached before T_END
    info: dict = field(default_factory=dict)

    @property
    def t_stop(self) -> float:
        return float(self.time[-1])

    def to_dict(self) -> dict:
        """JSON-ready form (the `simulate --json` schema)."""
        r = self.recipe
        return {
            "recipe": {"cBA_0": r.cBA_0, "cAIBN_0": r.cAIBN_0, "temp": r.temp},
            "engine": self.engine,
            "stopped_at_90pct": self.stopped,
            "logM": [round(float(x), 6) for x in LOGM],
            "samples": [
                {"time": float(t), "conversion": float(x), "cBA_time": float(c), "Mn": float(mn),
                 "Mw": float(mw), "mmd": [float(v) for v in w]}
                for t, x, c, mn, mw, w in zip(self.time, self.conversion, self.cBA, self.Mn,
                                              self.Mw, self.mmd)
            ],
        }


def simulate(recipe: Recipe, engine: str = "ode", params: KineticParameters = DEFAULT_PARAMETERS,
             **options) -> Simulation:
    """Run one recipe with the deterministic ('ode') or the kinetic Monte Carlo ('kmc') engine."""
    if engine == "ode":
        from .ode import run_ode
        return run_ode(recipe, params, **options)
    if engine == "kmc":
        from .kmc import run_kmc
        return run_kmc(recipe, params, **options)
    raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")


def compare_runs(a: Simulation, b: Simulation) -> dict:
    """Largest differences between two runs of one recipe, over the samples both have.

    Samples on the 300 s grid are matched by time; if both runs stopped at 90 % conversion, their stop
    samples are matched too (same conversion, slightly different times).
    """
    from .mmd import l1_distance

    pairs = [(i, j) for i, ta in enumerate(a.time) for j, tb in enumerate(b.time)
             if ta == tb and ta in SAMPLE_TIMES]
    if a.stopped and b.stopped:
        pairs.append((len(a.time) - 1, len(b.time) - 1))
    ia, ib = np.array([p[0] for p in pairs], dtype=int), np.array([p[1] for p in pairs], dtype=int)
    return {
        "samples": len(pairs),
        "conversion": float(np.max(np.abs(a.conversion[ia] - b.conversion[ib]))),
        "Mn_rel": float(np.max(np.abs(a.Mn[ia] / b.Mn[ib] - 1.0))),
        "Mw_rel": float(np.max(np.abs(a.Mw[ia] / b.Mw[ib] - 1.0))),
        "mmd_l1": float(np.max(l1_distance(a.mmd[ia], b.mmd[ib]))),
        "stopped": (a.stopped, b.stopped),
        "t_stop": (a.t_stop, b.t_stop),
    }


# The study's design: 6 x 8 x 9 = 432 recipes.
CBA0_LEVELS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)  # mol/L
CAIBN0_LEVELS = tuple(round(0.0025 * i, 4) for i in range(1, 9))  # mol/L
TEMP_LEVELS = (60.0, 63.0, 65.0, 68.0, 70.0, 73.0, 75.0, 78.0, 80.0)  # °C


def design() -> list[Recipe]:
    """The 432 recipes in a fixed order (cBA_0, then cAIBN_0, then temp); the index is the recipe id."""
    return [Recipe(c, i, t) for c in CBA0_LEVELS for i in CAIBN0_LEVELS for t in TEMP_LEVELS]


AGREEMENT_RECIPES = ((0.5, 0.0025, 60.0), (3.0, 0.0025, 80.0), (0.5, 0.02, 80.0), (3.0, 0.02, 60.0),
                     (1.5, 0.01, 70.0))  # the four (cBA_0, temp) corners at both initiator ends, centre


def agreement_table(recipes=AGREEMENT_RECIPES, seed: int = 11) -> tuple[list, list]:
    """kMC against deterministic runs of each recipe: largest differences over the samples."""
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
