"""A disk cache for expensive intermediate results shared by chapters (e.g. the design's Jacobians).

An entry is keyed on its inputs and on the source of the whole `analysis` package, so any edit to the
code invalidates it.  The directory is $POLYINVERSE_CACHE; without it nothing is cached.  `make book`
points it into `_build/`; `make test` points it to a fresh directory, so its checks trust nothing
computed before the run, while a result is still computed once per run.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CACHE_ENV = "POLYINVERSE_CACHE"
WAIT_SECONDS = 900.0  # longest wait for another process computing the same entry


def package_hash() -> str:
    """SHA-256 of the package's source files (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cached(name: str, key: bytes, compute: Callable[[], object]) -> object:
    """`compute()`, stored under `name` and the hash of `key` and the package source when a cache
    directory is set, and read back on the next call with the same key."""
    directory = os.environ.get(CACHE_ENV)
    if not directory:
        return compute()
    digest = hashlib.sha256(key + package_hash().encode()).hexdigest()[:24]
    path = Path(directory) / f"{name}-{digest}.pickle"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_suffix(".lock")
    deadline = time.monotonic() + WAIT_SECONDS
    while not path.exists():  # another process (a chapter running beside this one) may be computing it
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                break  # a stale lock: compute it here
            time.sleep(1.0)
    if path.exists():
        return pickle.loads(path.read_bytes())
    try:
        value = compute()
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(pickle.dumps(value))
        tmp.replace(path)
    finally:
        lock.unlink(missing_ok=True)
    return value
