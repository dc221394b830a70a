"""The study's database regenerated with our simulators, in the schema of the original workbook.

Workbook `BD_compuesta_MMD_BA_Mn_Mw.xlsx`, sheets `mmd_raw_data` (cBA_0, cAIBN_0, temp, time,
MMD1..MMD100) and `compuesta` (the same plus cBA_time, Mn, Mw), and two extra sheets that the study's
code never reads: `runs` (recipe_id, conversion, stopped) and `observables` (per row: residual initiator
`cAIBN_time`, branching density `branching` in mol %, mid-chain radical fraction `midchain_fraction`).
`load_dataset` is the one entry point for the book and the tools; it validates what it reads, and joins
the observables when asked (the study's original workbook has none).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from .design import EXTRA_FEATURES, TARGETS, design
from .engines import simulate
from .kinetics import Recipe
from .memo import cached
from .mmd import DLOGM, MMD_COLUMNS, N_POINTS
from .outputs import atomic_write
from .workers import n_jobs, parallel_map

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
WORKBOOK = DATA_DIR / "BD_compuesta_MMD_BA_Mn_Mw.xlsx"
DATA_ENV = "POLYINVERSE_DATA"  # environment variable: another workbook to load instead of ours
DEFAULT_SEED = 2023

SHEETS = {
    "mmd_raw_data": TARGETS + MMD_COLUMNS,
    "compuesta": TARGETS + EXTRA_FEATURES + MMD_COLUMNS,
}
RUN_COLUMNS = ["recipe_id", "cBA_0", "cAIBN_0", "temp", "time", "conversion", "stopped"]
OBSERVABLES = ["cAIBN_time", "branching", "midchain_fraction"]  # measurable beyond the study's outputs
OBSERVABLE_COLUMNS = ["recipe_id", "cBA_0", "cAIBN_0", "temp", "time"] + OBSERVABLES
ROW_KEY = ["cBA_0", "cAIBN_0", "temp", "time"]  # one row of the study's sheets: a recipe at one time


class DatasetError(ValueError):
    """A workbook that cannot be used, with the problem named."""


def recipe_seed(seed: int, recipe_id: int) -> int:
    """Seed of one recipe's kMC run, derived from the dataset seed."""
    return (seed * 1_000_003 + recipe_id) % 2**32


def _rows(job: tuple[int, object, str, int]) -> pd.DataFrame:
    recipe_id, recipe, engine, seed = job
    opts = {"seed": recipe_seed(seed, recipe_id)} if engine == "kmc" else {}
    run = simulate(recipe, engine, **opts)
    frame = pd.DataFrame({
        "recipe_id": recipe_id, "cBA_0": recipe.cBA_0, "cAIBN_0": recipe.cAIBN_0, "temp": recipe.temp,
        "time": np.round(run.time, 1), "cBA_time": run.cBA, "Mn": run.Mn, "Mw": run.Mw,
        "conversion": run.conversion, "stopped": run.stopped,
        "cAIBN_time": run.cAIBN, "branching": run.branching, "midchain_fraction": run.midchain_fraction,
    })
    return pd.concat([frame, pd.DataFrame(run.mmd, columns=MMD_COLUMNS)], axis=1)


def generate(engine: str = "kmc", jobs: int | None = None, seed: int = DEFAULT_SEED,
             recipe_ids: list[int] | None = None, progress: bool = True,
             recipes: list[Recipe] | None = None, scheduler: str | None = None) -> pd.DataFrame:
    """Simulate the design (or some of its recipes) in parallel; one row per recipe and sample.

    `recipes` replaces the study's 432 (e.g. `design.latin_hypercube`); a recipe's id is its index.
    `scheduler` is the address of a Dask scheduler: the same runs go to its workers instead of local
    processes, with the same seeds, so the rows are the same."""
    recipes = design() if recipes is None else list(recipes)
    ids = list(range(len(recipes))) if recipe_ids is None else list(recipe_ids)
    # costly recipes first (concentrated, slow) so that the workers finish together
    order = sorted(ids, key=lambda i: -recipes[i].cBA_0 / np.sqrt(recipes[i].cAIBN_0))
    work = [(i, recipes[i], engine, seed) for i in order]
    parts = parallel_map(_rows, work, jobs or n_jobs(), progress=f"{engine} runs" if progress else None,
                         ordered=False, scheduler=scheduler)
    return pd.concat(parts).sort_values(["recipe_id", "time"]).reset_index(drop=True)


def write_workbook(frame: pd.DataFrame, path: Path | str = WORKBOOK) -> None:
    """Write the two sheets of the original, then `runs` and (when the frame has them) `observables`;
    same frame -> byte-identical file, and the study's two sheets do not depend on the extra ones."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for sheet, columns in SHEETS.items():
            frame[columns].to_excel(writer, sheet_name=sheet, index=False)
        frame[RUN_COLUMNS].to_excel(writer, sheet_name="runs", index=False)
        if set(OBSERVABLES) <= set(frame.columns):
            frame[OBSERVABLE_COLUMNS].to_excel(writer, sheet_name="observables", index=False)
    atomic_write(path, _reproducible_zip(buffer.getvalue()))


def _reproducible_zip(data: bytes) -> bytes:
    """Fix the timestamps that openpyxl and zipfile put in an xlsx, so equal content -> equal bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, \
            zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            content = zin.read(item.filename)
            if item.filename == "docProps/core.xml":
                content = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2023-01-01T00:00:00Z", content)
            info = zipfile.ZipInfo(item.filename, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(info, content)
    return out.getvalue()


def dataset_path(path: Path | str | None = None) -> Path:
    """The workbook to use: the argument, else $POLYINVERSE_DATA, else the committed one."""
    return Path(path or os.environ.get(DATA_ENV) or WORKBOOK)


def load_dataset(path: Path | str | None = None, sheet: str = "compuesta",
                 area_tolerance: float = 0.02, observables: bool = False) -> pd.DataFrame:
    """Read one sheet of the workbook and validate it; with `observables`, join the `observables` sheet
    row by row (refused, naming the problem, when the workbook has none or a row has no match).

    Refuses (DatasetError naming the problem): a missing file, sheet or column, an MMD on another
    number of points, non-numeric or empty cells, negative concentrations, times or MMD values, a
    cAIBN_0 that looks like mmol/L.  An MMD row whose area sum(w) * DLOGM differs from 1 by more than
    `area_tolerance` is renormalised to unit area with one warning that counts such rows (the original
    workbook's normalisation is not published; the shape is what the models use).
    """
    path = dataset_path(path)
    if not path.exists():
        raise DatasetError(f"no workbook at {path}; run `make data` or set {DATA_ENV}")
    if sheet not in SHEETS:
        raise DatasetError(f"unknown sheet {sheet!r}; the study's sheets are {list(SHEETS)}")
    try:
        with pd.ExcelFile(path) as book:
            sheets = book.sheet_names
    except Exception as err:  # noqa: BLE001 - openpyxl/zipfile raise many kinds
        raise DatasetError(f"{path} is not a readable .xlsx workbook: {err}") from err
    if sheet not in sheets:
        raise DatasetError(f"{path.name} has no sheet {sheet!r} (it has {sheets})")
    if observables and "observables" not in sheets:
        raise DatasetError(f"{path.name} has no sheet 'observables' (residual initiator, branching): the "
                           "study's original workbook has none; regenerate ours with `make data`")
    frame = read_sheet(path, sheet)
    frame = validate_frame(frame, SHEETS[sheet], source=f"{path.name}:{sheet}",
                           area_tolerance=area_tolerance)
    if observables:
        extra = validate_observables(read_sheet(path, "observables"),
                                     source=f"{path.name}:observables")
        frame = join_observables(frame, extra, source=path.name)
    return frame


def has_observables(path: Path | str | None = None) -> bool:
    """Whether the workbook carries the `observables` sheet."""
    with pd.ExcelFile(dataset_path(path)) as book:
        return "observables" in book.sheet_names


def validate_observables(frame: pd.DataFrame, source: str = "observables") -> pd.DataFrame:
    """Check the `observables` sheet: its columns, numbers, and physics (residual initiator between 0 and
    cAIBN_0, branching between 0 and 100 mol %, a fraction between 0 and 1)."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    missing = [c for c in ROW_KEY + OBSERVABLES if c not in frame.columns]
    if missing:
        raise DatasetError(f"{source}: missing column(s) {missing}")
    frame = frame[ROW_KEY + OBSERVABLES]
    values = frame.apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any() or not np.isfinite(values.to_numpy()).all():
        col = values.columns[values.isna().any() | ~np.isfinite(values).all()][0]
        raise DatasetError(f"{source}: column {col} has empty, non-numeric or infinite cells")
    checks = [("cAIBN_time", (values.cAIBN_time < 0) | (values.cAIBN_time > values.cAIBN_0 * (1 + 1e-9)),
               "outside [0, cAIBN_0]"),
              ("branching", (values.branching < 0) | (values.branching > 100), "outside [0, 100] mol %"),
              ("midchain_fraction", (values.midchain_fraction < 0) | (values.midchain_fraction > 1),
               "outside [0, 1]")]
    for col, bad, what in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{source}: {col} {values[col].iloc[row]:g} is {what} (sheet row {row + 2})")
    return values.astype(float)


def join_observables(frame: pd.DataFrame, extra: pd.DataFrame, source: str = "data") -> pd.DataFrame:
    """The study's rows with their observables, matched on recipe and time; every row must match once."""
    if extra.duplicated(ROW_KEY).any():
        raise DatasetError(f"{source}: the observables sheet has several rows for one recipe and time")
    joined = frame.merge(extra, on=ROW_KEY, how="left", validate="many_to_one")
    unmatched = joined[OBSERVABLES[0]].isna()
    if unmatched.any():
        row = int(np.flatnonzero(unmatched)[0])
        raise DatasetError(f"{source}: {int(unmatched.sum())} rows have no observables (first: "
                           f"{frame[ROW_KEY].iloc[row].to_dict()})")
    return joined


def validate_frame(frame: pd.DataFrame, columns: list[str], source: str = "data",
                   area_tolerance: float = 0.02) -> pd.DataFrame:
    """Check a table against the schema and the physics; return the columns in schema order as floats.

    Refuses (DatasetError): an empty sheet, missing columns, an MMD on another number of points,
    non-numeric, empty or infinite cells, negative values, non-positive concentrations or averages,
    temperatures that look like kelvin, cAIBN_0 that looks like mmol/L, cBA_0 above bulk BA, Mw < Mn,
    more monomer left than at the start, negative or zero-area MMDs.  Warns about duplicated rows and
    renormalises MMD rows whose area is not 1."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    if len(frame) == 0:
        raise DatasetError(f"{source}: the sheet has no data rows")
    mmd_cols = [c for c in frame.columns if re.fullmatch(r"MMD\d+", c)]
    if mmd_cols and len(mmd_cols) != N_POINTS:
        raise DatasetError(f"{source}: the MMD has {len(mmd_cols)} points (MMD columns), the model "
                           f"grid has {N_POINTS}: resample it onto the grid first")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DatasetError(f"{source}: missing column(s) {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    frame = frame[columns]
    for col in columns:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & frame[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{source}: column {col} holds non-numeric value "
                               f"{frame[col].iloc[row]!r} (row {row + 2} of the sheet)")
        if values.isna().any():
            rows = (np.flatnonzero(values.isna())[:5] + 2).tolist()
            raise DatasetError(f"{source}: column {col} has empty/NaN cells (sheet rows {rows})")
        if not np.isfinite(values).all():
            raise DatasetError(f"{source}: column {col} has infinite values")
    frame = frame.apply(pd.to_numeric).astype(float)
    for col in [c for c in ["cBA_0", "cAIBN_0", "cBA_time", "time", "Mn", "Mw"] if c in columns]:
        if (frame[col] < 0).any():
            raise DatasetError(f"{source}: negative values in {col} (first at sheet row "
                               f"{int(np.flatnonzero(frame[col] < 0)[0]) + 2})")
    for col in [c for c in ["cBA_0", "cAIBN_0", "Mn", "Mw"] if c in columns]:
        if (frame[col] <= 0).any():
            raise DatasetError(f"{source}: {col} must be positive; it is {frame[col].min():g} at sheet row "
                               f"{int(np.flatnonzero(frame[col] <= 0)[0]) + 2}")
    if (frame["temp"] > 150).any():
        raise DatasetError(f"{source}: temp up to {frame['temp'].max():g}: this looks like kelvin; "
                           "the schema is °C")
    if {"Mn", "Mw"} <= set(columns) and (frame.Mw < frame.Mn * (1 - 1e-9)).any():
        row = int(np.flatnonzero(frame.Mw < frame.Mn * (1 - 1e-9))[0])
        raise DatasetError(f"{source}: Mw < Mn at sheet row {row + 2} (Mn {frame.Mn.iloc[row]:g}, Mw "
                           f"{frame.Mw.iloc[row]:g}): swapped columns?")
    if "cBA_time" in columns and (frame.cBA_time > frame.cBA_0 * (1 + 1e-9)).any():
        row = int(np.flatnonzero(frame.cBA_time > frame.cBA_0 * (1 + 1e-9))[0])
        raise DatasetError(f"{source}: more monomer left than there was at the start (cBA_time "
                           f"{frame.cBA_time.iloc[row]:g} > cBA_0 {frame.cBA_0.iloc[row]:g}) at sheet row "
                           f"{row + 2}")
    if (frame["cAIBN_0"] > 0.2).any():
        raise DatasetError(f"{source}: cAIBN_0 up to {frame['cAIBN_0'].max():g}: this looks like "
                           "mmol/L; the schema is mol/L")
    if (frame["cBA_0"] > 7.0).any():
        raise DatasetError(f"{source}: cBA_0 up to {frame['cBA_0'].max():g} mol/L exceeds bulk BA")
    w = frame[MMD_COLUMNS].to_numpy()
    if (w < 0).any():
        raise DatasetError(f"{source}: negative MMD values (first at sheet row "
                           f"{int(np.flatnonzero((w < 0).any(axis=1))[0]) + 2})")
    area = w.sum(axis=1) * DLOGM
    if (area <= 0).any():
        raise DatasetError(f"{source}: MMD rows with zero area (sheet rows "
                           f"{(np.flatnonzero(area <= 0)[:5] + 2).tolist()})")
    duplicated = frame.duplicated()
    if duplicated.any():
        warnings.warn(f"{source}: {int(duplicated.sum())} duplicated rows (the same recipe, time and "
                      "values as an earlier row); they weigh twice in any fit", stacklevel=2)
    off = np.abs(area - 1.0) > area_tolerance
    if off.any():
        warnings.warn(f"{source}: {int(off.sum())} MMD rows had an area sum(w)*dlogM between "
                      f"{area[off].min():.3g} and {area[off].max():.3g}, not 1; renormalised to 1",
                      stacklevel=2)
        frame.loc[:, MMD_COLUMNS] = w / area[:, None]
    return frame.reset_index(drop=True)


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_sheet(path: Path | str, sheet: str) -> pd.DataFrame:
    """One sheet of a workbook as pandas reads it, unvalidated.  Parsed once per run when a cache is set
    (`memo.cached`, keyed on the file's bytes and the sheet): the chapters and the commands of a `make test`
    run would otherwise parse the same 10 MB workbook dozens of times, about 6 s each."""
    return cached("sheet", f"{file_sha256(path)}:{sheet}".encode(),
                  lambda: pd.read_excel(path, sheet_name=sheet))


def study_sha256(path: Path | str) -> str:
    """SHA-256 of what the study's models see: the numbers of the two study sheets as read (column names
    and float64 values), not the file's bytes, so that an extra sheet or another writer does not change it.
    Stored results (hyperparameters) are tied to this."""
    digest = hashlib.sha256()
    for sheet in SHEETS:
        frame = read_sheet(path, sheet)
        frame = frame.rename(columns=lambda c: str(c).strip())
        digest.update(sheet.encode())
        digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(np.ascontiguousarray(frame.apply(pd.to_numeric, errors="coerce").to_numpy(float)))
    return digest.hexdigest()
