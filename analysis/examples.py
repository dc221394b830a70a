"""The example SEC exports of `data/examples/`: kinetic Monte Carlo runs of recipes off the design's
levels, written as SEC programs write them, with their truth (`make examples`); and one sample as a
laboratory would report it (`MEASURED`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .engines import simulate
from .kinetics import Recipe
from .measurement import PROFILES, measure_mmd, measure_scalar
from .mmd import LOGM
from .outputs import atomic_write
from .sec_file import write_sec_file

EXAMPLES = {  # file: (recipe, time s, how it is written)
    "between_levels.csv": ((1.7, 0.0066, 71.3), 1650.0, {"signal": "w", "as_molar_mass": False,
                                                         "sep": ",", "header": True}),
    "sec_export_dn.txt": ((2.4, 0.012, 64.0), 2400.0, {"signal": "dn", "as_molar_mass": True,
                                                       "sep": ";", "header": False}),
    "outside_domain.csv": ((0.25, 0.04, 85.0), 1200.0, {"signal": "w", "as_molar_mass": False,
                                                       "sep": ",", "header": True}),
}
FINE_GRID = np.linspace(2.3, 6.4, 250)  # another grid than the model's, as a SEC program's
# a sample as a laboratory reports it: the kMC trace through the `typical` measurement model, Mn and Mw
# computed from the measured trace, the remaining monomer by GC, the residual initiator by HPLC and the
# branching density by NMR (truth and measured values in measured.json)
MEASURED = ("measured_typical.csv", (1.2, 0.009, 67.5), 2100.0, "typical")


def make_examples(directory: Path | str, seed: int = 7) -> dict:
    """Write the example exports and `truth.json` (each file's recipe, the simulation's cBA_time, Mn, Mw
    and the signal kind) into `directory`; return the truth."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    truth = {}
    for name, (levels, time, fmt) in EXAMPLES.items():
        run = simulate(Recipe(*levels), "kmc", seed=seed, sample_times=np.array([time]))
        w = np.interp(FINE_GRID, LOGM, run.mmd[-1])
        signal = w / 10.0 ** FINE_GRID if fmt["signal"] == "dn" else w
        signal = 1000.0 * signal / signal.max()
        write_sec_file(directory / name, FINE_GRID, signal, fmt["as_molar_mass"], fmt["sep"], fmt["header"])
        truth[name] = {"cBA_0": levels[0], "cAIBN_0": levels[1], "temp": levels[2],
                       "time": float(run.time[-1]), "cBA_time": float(run.cBA[-1]),
                       "Mn": float(run.Mn[-1]), "Mw": float(run.Mw[-1]), "signal": fmt["signal"]}
    atomic_write(directory / "truth.json", json.dumps(truth, indent=1))
    _measured_example(directory, seed)
    return truth


def _measured_example(directory: Path, seed: int) -> dict:
    """Write MEASURED's export and `measured.json` (its recipe; the measured cBA_time by GC, Mn and Mw
    from the trace, the residual initiator by HPLC and the branching by NMR; the measurement profile)."""
    name, levels, time, noise = MEASURED
    run = simulate(Recipe(*levels), "kmc", seed=seed, sample_times=np.array([time]))
    rng = np.random.default_rng(seed)
    measured, mn, mw = measure_mmd(run.mmd[-1], PROFILES[noise], rng)
    cba = measure_scalar(np.array([run.cBA[-1]]), PROFILES[noise].cBA_time, rng)
    # drawn after the others, so that adding them left the trace and cBA_time as they were
    caibn = measure_scalar(np.array([run.cAIBN[-1]]), PROFILES[noise].cAIBN_time, rng)
    branching = measure_scalar(np.array([run.branching[-1]]), PROFILES[noise].branching, rng)
    kept = (FINE_GRID >= PROFILES[noise].cutoff_logm) if PROFILES[noise].cutoff_logm else FINE_GRID > 0
    signal = np.interp(FINE_GRID, LOGM, measured[0])[kept]
    write_sec_file(directory / name, FINE_GRID[kept], 1000.0 * signal / signal.max(), False, ",", True)
    truth = {name: {"cBA_0": levels[0], "cAIBN_0": levels[1], "temp": levels[2], "time": float(run.time[-1]),
                    "cBA_time": float(cba[0]), "Mn": float(mn[0]), "Mw": float(mw[0]),
                    "cAIBN_time": float(caibn[0]), "branching": float(branching[0]), "signal": "w",
                    "noise": noise}}
    atomic_write(directory / "measured.json", json.dumps(truth, indent=1))
    return truth
