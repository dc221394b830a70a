"""Speed of the physics-based inversion (the posterior along the valley), against the target of the
recipe-finder issue (<= 2 s per MMD), and of one `invert` command end to end (target <= 5 s; with the
stored finder models of `make finder` or of an earlier call of the profile; else the call fits and
stores them).

Inverts 30 rows of the workbook drawn at random (seed 0), with the composite observables and with the
MMD alone, from the domain's centre and one other start (a recipe of another row, so that the start is
not the answer), and prints the median and the 90th percentile of the seconds per MMD, their ratio to
the target, and the median round-trip MMD L1.  Then the same rows measured with the `typical` profile
(the `invert` command's default) and inverted through its instrument from the centre, with the
forward runs per MMD.  Run on an otherwise idle machine: `make bench`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from analysis.dataset import load_dataset
from analysis.design import CENTRE, TARGETS, clip_to_box
from analysis.inversion import Observation, invert, measurement_noise
from analysis.measurement import PROFILES
from analysis.mmd import MMD_COLUMNS
from analysis.roundtrip import observation_of
from analysis.what_to_measure import measured_frame

TARGET_SECONDS = 2.0
TARGET_COMMAND = 5.0
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


def command() -> None:
    from analysis.finder import is_stored

    name, truth = next(iter(json.loads((EXAMPLES / "measured.json").read_text()).items()))
    args = [sys.executable, "-m", "analysis", "invert", "--mmd", str(EXAMPLES / name),  # default: typical
            "--cba-time", str(truth["cBA_time"]), "--mn", str(truth["Mn"]), "--mw", str(truth["Mw"]),
            "--json"]
    # without a store: the call that fits and stores the models, then the next one
    for _ in range(1 if is_stored(noise="typical") else 2):
        stored = is_stored(noise="typical")
        tic = time.perf_counter()
        out = subprocess.run(args, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - tic
        doc = json.loads(out.stdout)
        print(f"invert command end to end: {seconds:.1f} s (target {TARGET_COMMAND} s, ratio "
              f"{seconds / TARGET_COMMAND:.2f}); stored finder models before the call: "
              f"{'yes' if stored else 'no'}; {doc['fit']['evaluations']} forward runs")


def main(n: int = 30) -> None:
    data = load_dataset()
    rng = np.random.default_rng(0)
    rows = data.iloc[rng.choice(len(data), n, replace=False)]
    other = data.iloc[rng.choice(len(data), n, replace=False)]
    for label, extras in (("composite", True), ("MMD only", False)):
        seconds, l1 = [], []
        for (_, row), (_, start) in zip(rows.iterrows(), other.iterrows()):
            given = (row.cBA_time, row.Mn, row.Mw) if extras else ()
            obs = Observation(row[MMD_COLUMNS].to_numpy(float), *given)
            tic = time.perf_counter()
            result = invert(obs, starts=[clip_to_box(start[TARGETS].to_dict()), CENTRE])
            seconds.append(time.perf_counter() - tic)
            l1.append(result.mmd_l1)
        med, p90 = np.median(seconds), np.quantile(seconds, 0.9)
        print(f"inversion, {label:9s}: {med:.2f} s per MMD (median), {p90:.2f} s (90th pct); "
              f"target {TARGET_SECONDS} s, ratio {med / TARGET_SECONDS:.2f}; "
              f"median round-trip L1 {np.median(l1):.4f}")
    seconds, runs = [], []
    for _, row in measured_frame(rows, "typical", (), seed=0).iterrows():
        obs = observation_of(row)
        tic = time.perf_counter()
        result = invert(obs, starts=[CENTRE], noise=measurement_noise(obs, PROFILES["typical"]))
        seconds.append(time.perf_counter() - tic)
        runs.append(result.evaluations)
    print(f"inversion, composite measured with `typical` (the command's default): {np.median(seconds):.2f} s "
          f"per MMD (median), {np.quantile(seconds, 0.9):.2f} s (90th pct); target {TARGET_SECONDS} s, ratio "
          f"{np.median(seconds) / TARGET_SECONDS:.2f}; {np.median(runs):.0f} forward runs per MMD (median)")


if __name__ == "__main__":
    command()
    main()
