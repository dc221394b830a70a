"""Dataset generation through a Dask cluster against local processes, on the same recipes.

Prints the wall time of `dataset.generate` with the kMC engine on N recipes of the design (every 18th:
a spread of costs) with local worker processes and through a local Dask cluster of the same size, their
ratio (the cluster path's overhead: scheduling, serialising the rows), and whether the rows are identical.
On one machine the cluster cannot be faster; its point is to add machines (`dask worker ADDRESS` on each).
Run on an otherwise idle machine: `make bench`.
"""

from __future__ import annotations

import os
import time

import pandas as pd
from distributed import LocalCluster

from analysis.dataset import generate

WORKERS = os.cpu_count() or 2
IDS = list(range(0, 432, 18))  # 24 recipes


def main() -> None:
    start = time.perf_counter()
    local = generate("kmc", jobs=WORKERS, recipe_ids=IDS, progress=False)
    t_local = time.perf_counter() - start
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        start = time.perf_counter()
        remote = generate("kmc", recipe_ids=IDS, progress=False, scheduler=c.scheduler_address)
        t_cluster = time.perf_counter() - start
    same = local.equals(remote)
    print(f"{len(IDS)} kMC recipes ({len(local)} rows) on {WORKERS} workers: local processes "
          f"{t_local:.1f} s, Dask cluster {t_cluster:.1f} s (ratio {t_cluster / t_local:.2f}); "
          f"identical rows: {same}")
    print(f"projected for the 432 recipes through the cluster: {t_cluster * 432 / len(IDS) / 60:.1f} min "
          "(a projection: the sample's cost mix is the design's)")
    pd.testing.assert_frame_equal(local, remote)


if __name__ == "__main__":
    main()
