"""Calibration of the physics-based inversion on measured data: random rows of the recipes the interval
calibration did not use (`calibration.recipe_half`), passed through a measurement profile (`typical` by
default) and inverted with it, for each observation set whose intervals are calibrated (the study's
composite observables, plus a known temperature, a known time, the residual initiator, the branching
density, and the pairs of chapter 9c); the fraction of rows whose truth lies inside the 90 % interval, per
target, with its binomial standard error: as the posterior gives it (raw) and with the stored conformal
factors (calibrated, what the finder reports).  The issue's target is 85-95 % for every target and set.
Beside it, the R² of the posterior means on the same rows (the inversion as a model, to hold against the
bound and the sound ceiling of chapter 9c; on n rows, so within a few hundredths), and the simulation-based
calibration of the posterior itself (`calibration.pit_check`: its CDF at the truth, uniform if
calibrated).  Larger than the book's check (chapter 10): `python benchmarks/coverage.py 120`.

With a directory as third argument, each set's rows and raw inversions are kept there (pickled with the
inversion's settings and the workbook's checksum) and read back on the next run with the same rows,
profile, settings and workbook: a recalibration's effect on these rows (`make calibrate`) is then
computed without inverting again.
`python benchmarks/coverage.py [rows] [profile] [directory]`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.calibration import pit_check, share_in_band
from analysis.dataset import dataset_path, file_sha256, load_dataset
from analysis.design import TARGETS
from analysis.inversion import settings
from analysis.metrics import metrics
from analysis.roundtrip import calibrated_table, interval_hits
from analysis.what_to_measure import CALIBRATED_SETS, measured_inversions


def _cells(rates, n: int) -> str:
    return "  ".join(f"{t} {100 * r:5.1f} ± {100 * np.sqrt(r * (1 - r) / n):.1f}" for t, r in rates.items())


def inverted(frame: pd.DataFrame, noise: str, n: int, observe: str, store: str | None, now: dict) -> tuple:
    """The rows and their raw inversions: from `store` if they were kept there with the same inversion
    settings and workbook (`now`), else computed (and kept, with a store)."""
    path = None if store is None else Path(store) / f"{noise}_{observe}_{n}rows_seed11.pkl"
    if path is not None and path.exists():
        kept = pd.read_pickle(path)
        if kept["settings"] == now:
            print(f"{observe}: inversions read from {path}", flush=True)
            return kept["rows"], kept["raw"]
        print(f"{observe}: {path} was inverted with other settings or data: inverting again", flush=True)
    rows, raw = measured_inversions(frame, noise, n, 11, None, observe, "check", calibrated=False)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.to_pickle({"rows": rows, "raw": raw, "settings": now}, path)
    return rows, raw


def main(n: int = 80, noise: str = "typical", store: str | None = None) -> None:
    frame = load_dataset(observables=True)
    cells = len(CALIBRATED_SETS) * len(TARGETS)
    print(f"{n} rows per set: exactly calibrated 90 % intervals give a share in 85-95 % with probability "
          f"{share_in_band(n):.3f}, i.e. {cells * share_in_band(n):.1f} of the {cells} cells expected inside "
          f"(fewer if the rows' misses are correlated across sets)", flush=True)
    now = {"inversion": settings(), "data": file_sha256(dataset_path(None))} if store else {}
    for observe in CALIBRATED_SETS:
        tic = time.perf_counter()
        rows, raw = inverted(frame, noise, n, observe, store, now)
        calibrated = calibrated_table(raw, noise)
        means = raw[[f"{t} mean" for t in TARGETS]].to_numpy(float)
        r2 = metrics(rows[TARGETS].to_numpy(float), means)["r2"]
        seconds = time.perf_counter() - tic
        print(f"{observe:34s} calibrated  {_cells(interval_hits(rows, calibrated).mean(), n)}  "
              f"({n} rows, {noise}, {seconds:.0f} s; target 85-95 %)", flush=True)
        print(f"{'':34s} raw         {_cells(interval_hits(rows, raw).mean(), n)}", flush=True)
        print(f"{'':34s} R² of the posterior means: "
              + "  ".join(f"{t} {v:.3f}" for t, v in zip(TARGETS, r2)), flush=True)
        pit = pit_check(rows, raw)
        print(f"{'':34s} PIT (truths inside the box): "
              + "  ".join(f"{t} KS p {r.p:.2f}, <0.05 {r['below 0.05 %']:.0f} %, "
                          f">0.95 {r['above 0.95 %']:.0f} %" for t, r in pit.iterrows()), flush=True)


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
