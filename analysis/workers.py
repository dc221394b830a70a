"""Running independent pieces of work in parallel processes, one core each."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from multiprocessing import get_context


def n_jobs() -> int:
    """Worker processes to use: $POLYINVERSE_JOBS, else every core."""
    return int(os.environ.get("POLYINVERSE_JOBS", os.cpu_count() or 1))


def parallel_map(fn: Callable, items: Iterable, jobs: int | None = None, progress: str | None = None,
                 ordered: bool = True) -> list:
    """`[fn(x) for x in items]` over `jobs` processes (default `n_jobs()`); with `progress`, a tqdm bar
    of that title.  With `ordered=False` results come back as they finish (the caller sorts them)."""
    from tqdm import tqdm

    items = list(items)
    jobs = min(jobs or n_jobs(), max(len(items), 1))
    bar = tqdm(total=len(items), desc=progress, disable=progress is None)
    out = []
    if jobs == 1:
        for item in items:
            out.append(fn(item))
            bar.update()
    else:
        with get_context("fork").Pool(jobs) as pool:
            mapper = pool.imap if ordered else pool.imap_unordered
            for result in mapper(fn, items, chunksize=1):
                out.append(result)
                bar.update()
    bar.close()
    return out
