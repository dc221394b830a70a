"""Running independent pieces of work in parallel processes, one core each.

The processes are joblib's loky workers: fresh interpreters, started once and reused.  Plain `fork`
is not used: a process that already runs threads (joblib, BLAS, tqdm) can deadlock its forked children.
With a Dask scheduler's address the same work goes to that cluster's workers instead (dask.distributed).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable

from joblib import Parallel, delayed

SCHEDULER_TIMEOUT = 20.0  # s to wait for a Dask scheduler to answer
# loky replaces a worker whose memory grew by more than 300 MB (the inversion's caches do) between two
# tasks, and says so as "... can be caused by ... a memory leak": expected here, and no task is lost
WORKER_RESTART = "A worker stopped while some jobs were given to the executor"


def n_jobs() -> int:
    """Worker processes to use: $POLYINVERSE_JOBS, else every core."""
    return int(os.environ.get("POLYINVERSE_JOBS", os.cpu_count() or 1))


def parallel_map(fn: Callable, items: Iterable, jobs: int | None = None, progress: str | None = None,
                 ordered: bool = True, scheduler: str | None = None) -> list:
    """`[fn(x) for x in items]` over `jobs` processes (default `n_jobs()`); with `progress`, a tqdm bar
    of that title.  With `ordered=False` results come back as they finish (the caller sorts them).
    With `scheduler` (a Dask scheduler's address, e.g. tcp://host:8786), on that cluster's workers."""
    from tqdm import tqdm

    items = list(items)
    if scheduler is not None:
        return _cluster_map(fn, items, scheduler, progress, ordered)
    jobs = min(jobs or n_jobs(), max(len(items), 1))
    bar = tqdm(total=len(items), desc=progress, disable=progress is None)
    out = []
    if jobs == 1:
        for item in items:
            out.append(fn(item))
            bar.update()
    else:
        # one core per worker: their BLAS/OpenMP threads are limited to one (loky's default here)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=WORKER_RESTART, category=UserWarning)
            results = Parallel(n_jobs=jobs, backend="loky", batch_size=1,
                               return_as="generator" if ordered else "generator_unordered")(
                delayed(fn)(item) for item in items)
            for result in results:
                out.append(result)
                bar.update()
    bar.close()
    return out


def _cluster_map(fn: Callable, items: list, scheduler: str, progress: str | None, ordered: bool) -> list:
    from distributed import Client, as_completed
    from tqdm import tqdm

    try:
        client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
    except OSError as err:
        raise ConnectionError(f"no Dask scheduler answers at {scheduler}: {err}") from err
    with client:
        futures = client.map(fn, items, pure=False)
        out = []
        with tqdm(total=len(items), desc=progress, disable=progress is None) as bar:
            for future in as_completed(futures):
                out.append(future.result())
                bar.update()
        return [f.result() for f in futures] if ordered else out
