"""Executing the book's chapters into Jupyter Book's execution cache, in parallel (`make book`).

Jupyter Book (`execute_notebooks: cache`) reuses a chapter's outputs while its code cells are unchanged,
but it does not see edits to the `analysis` package or to `data/`.  So the cache is keyed on them too:
`prepare` empties it when the hash of analysis/*.py, data/** and requirements.txt differs from the one
recorded in it.  `execute` then runs the stale chapters two at a time (longest first) and stores them
where Jupyter Book looks, so that `jupyter-book build` only renders.  An edit to a chapter's text
reruns nothing; an edit to its code reruns that chapter only.  `make test` does not use this cache.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
KEY_FILE = "polyinverse-key"


def source_key() -> str:
    """SHA-256 over the package, the data and the pinned requirements (names and contents); the finder's
    stored models are left out (fitted from the data, written by `invert` calls, checked when read)."""
    digest = hashlib.sha256()
    data = [p for p in (ROOT / "data").rglob("*") if p.is_file() and not p.name.startswith("finder_models")]
    files = sorted([*(ROOT / "analysis").glob("*.py"), *data, ROOT / "requirements.txt"])
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def prepare(cache: Path = CACHE) -> bool:
    """Empty the cache if the package, data or requirements changed since it was filled; True if kept."""
    key = source_key()
    stored = cache / KEY_FILE
    if stored.exists() and stored.read_text() == key:
        return True
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    stored.write_text(key)
    return False


def _read(path: Path):
    from myst_nb.core.read import myst_nb_reader_plugin

    return myst_nb_reader_plugin(str(path))


def _execute(path: Path) -> tuple[Path, object, float, str | None]:
    from jupyter_cache.executors.utils import single_nb_execution

    notebook = _read(path)
    result = single_nb_execution(notebook, cwd=str(path.parent), timeout=1800, allow_errors=False,
                                 meta_override=True)
    return path, notebook, result.time, result.exc_string if result.err else None


def execute(chapters: list[Path], cache: Path = CACHE, jobs: int = 2) -> list[str]:
    """Execute the chapters whose outputs are not in the cache, in the given order (the Makefile lists the
    slowest first, so that the two workers finish together); return the names of those that failed."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    db = get_cache(str(cache))
    stale = []
    for path in chapters:
        try:
            db.match_cache_notebook(_read(path))
        except KeyError:
            stale.append(path)
    print(f"chapters to execute: {len(stale)} of {len(chapters)}", file=sys.stderr)
    failed = []
    start = time.perf_counter()
    with ProcessPoolExecutor(jobs) as pool:
        for future in as_completed([pool.submit(_execute, p) for p in stale]):
            path, notebook, seconds, error = future.result()
            if error:
                failed.append(path.stem)
                print(f"  {path.stem}: FAILED\n{error}", file=sys.stderr)
                continue
            record = db.add_nb_to_project(str(path), read_data={"name": "myst_nb_md", "type": "plugin"})
            db.cache_notebook_bundle(CacheBundleIn(notebook, record.uri, data={"execution_seconds": seconds}),
                                     check_validity=False, overwrite=True)
            print(f"  {path.stem}: {seconds:.0f} s ({time.perf_counter() - start:.0f} s elapsed)",
                  file=sys.stderr)
    return failed


def main(argv: list[str] | None = None) -> int:
    chapters = [Path(p).resolve() for p in (argv if argv is not None else sys.argv[1:])]
    kept = prepare()
    print(f"execution cache {'kept' if kept else 'emptied: analysis/, data/ or requirements changed'}",
          file=sys.stderr)
    return 1 if execute(chapters) else 0


if __name__ == "__main__":
    sys.exit(main())
