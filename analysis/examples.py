"""The example SEC exports of `data/examples/`: kinetic Monte Carlo runs of recipes off the design's
levels, written as SEC programs write them, with their truth (`make examples`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .engines import simulate
from .kinetics import Recipe
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
    return truth
