"""Stored results of the hyperparameter searches, tied to the workbook they were run on.

Two files in `data/`: the study's random-forest search (`hyperparameters.json`) and the nested searches
inside grouped folds (`nested_tuning.json`).  Each records the SHA-256 of the workbook file it was tuned
on and of the numbers of its two study sheets (`dataset.study_sha256`); reading one for a workbook whose
study sheets differ warns, naming both.  Extra sheets (runs, observables) do not count.
"""

from __future__ import annotations

import json
import warnings
from datetime import date
from pathlib import Path

from .dataset import DATA_DIR, dataset_path, file_sha256, study_sha256
from .outputs import atomic_write

STUDY_SEARCH = DATA_DIR / "hyperparameters.json"
NESTED_SEARCH = DATA_DIR / "nested_tuning.json"


class StaleHyperparameters(UserWarning):
    """Stored hyperparameters that were tuned on another workbook than the one in use."""


def stamp(data: Path | str | None = None) -> dict:
    """What a stored search records about its workbook: date, file name, checksums."""
    path = dataset_path(data)
    return {"date": date.today().isoformat(), "data": path.name, "data_sha256": file_sha256(path),
            "study_sha256": study_sha256(path)}


def write_stored(content: dict, file: Path | str) -> None:
    atomic_write(file, json.dumps(content, indent=1, default=str) + "\n")


def load_stored(file: Path | str, data: Path | str | None = None) -> dict:
    """Stored search results; warns (StaleHyperparameters) if they were tuned on another workbook than
    `data` (default: the workbook in use, $POLYINVERSE_DATA or ours)."""
    file = Path(file)
    if not file.exists():
        raise FileNotFoundError(f"no stored hyperparameters at {file}; run `make tune`")
    stored = json.loads(file.read_text())
    path = dataset_path(data)
    same_file = stored["data_sha256"] == file_sha256(path)
    if not same_file and stored.get("study_sha256") != study_sha256(path):
        warnings.warn(f"{file.name} was tuned on another workbook ({stored['data']}, {stored['date']}) "
                      f"than {path.name}; run `make tune` to redo the search for it",
                      StaleHyperparameters, stacklevel=2)
    return stored
