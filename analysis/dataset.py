"""The study's database regenerated with our simulators, in the schema of the original workbook.

Workbook `BD_compuesta_MMD_BA_Mn_Mw.xlsx`, sheets `mmd_raw_data` (cBA_0, cAIBN_0, temp, time,
MMD1..MMD100) and `compuesta` (the same plus cBA_time, Mn, Mw), and an extra sheet `runs` (recipe_id,
conversion, stopped) that the study's code never reads.  `load_dataset` is the one entry point for
the book and the tools; it validates what it reads.
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd

from .mmd import DLOGM, MMD_COLUMNS, N_POINTS
from .simulation import design, simulate

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"
WORKBOOK = DATA_DIR / "BD_compuesta_MMD_BA_Mn_Mw.xlsx"
DATA_ENV = "POLYINVERSE_DATA"  # environment variable: another workbook to load instead of ours
DEFAULT_SEED = 2023

TARGETS = ["cBA_0", "cAIBN_0", "temp", "time"]
EXTRA_FEATURES = ["cBA_time", "Mn", "Mw"]
SHEETS = {
    "mmd_raw_data": TARGETS + MMD_COLUMNS,
    "compuesta": TARGETS + EXTRA_FEATURES + MMD_COLUMNS,
}
RUN_COLUMNS = ["recipe_id", "cBA_0", "cAIBN_0", "temp", "time", "conversion", "stopped"]


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
    })
    return pd.concat([frame, pd.DataFrame(run.mmd, columns=MMD_COLUMNS)], axis=1)


def generate(engine: str = "kmc", jobs: int | None = None, seed: int = DEFAULT_SEED,
             recipe_ids: list[int] | None = None, progress: bool = True) -> pd.DataFrame:
    """Simulate the design (or some of its recipes) in parallel; one row per recipe and sample."""
    from tqdm import tqdm

    recipes = design()
    ids = list(range(len(recipes))) if recipe_ids is None else list(recipe_ids)
    # costly recipes first (concentrated, slow) so that the workers finish together
    order = sorted(ids, key=lambda i: -recipes[i].cBA_0 / np.sqrt(recipes[i].cAIBN_0))
    work = [(i, recipes[i], engine, seed) for i in order]
    jobs = jobs or os.cpu_count() or 1
    bar = tqdm(total=len(work), desc=f"{engine} runs", disable=not progress)
    parts = []
    if jobs == 1:
        for job in work:
            parts.append(_rows(job))
            bar.update()
    else:
        with Pool(jobs) as pool:
            for part in pool.imap_unordered(_rows, work):
                parts.append(part)
                bar.update()
    bar.close()
    return pd.concat(parts).sort_values(["recipe_id", "time"]).reset_index(drop=True)


def write_workbook(frame: pd.DataFrame, path: Path | str = WORKBOOK) -> None:
    """Write the two sheets of the original plus `runs`; same frame -> byte-identical file."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for sheet, columns in SHEETS.items():
            frame[columns].to_excel(writer, sheet_name=sheet, index=False)
        frame[RUN_COLUMNS].to_excel(writer, sheet_name="runs", index=False)
    Path(path).write_bytes(_reproducible_zip(buffer.getvalue()))


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
                 area_tolerance: float = 0.02) -> pd.DataFrame:
    """Read one sheet of the workbook and validate it.

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
    frame = pd.read_excel(path, sheet_name=sheet)
    return validate_frame(frame, SHEETS[sheet], source=f"{path.name}:{sheet}",
                          area_tolerance=area_tolerance)


def validate_frame(frame: pd.DataFrame, columns: list[str], source: str = "data",
                   area_tolerance: float = 0.02) -> pd.DataFrame:
    """Check a table against the schema; return the columns in schema order as floats."""
    frame = frame.rename(columns=lambda c: str(c).strip())
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
    off = np.abs(area - 1.0) > area_tolerance
    if off.any():
        warnings.warn(f"{source}: {int(off.sum())} MMD rows had an area sum(w)*dlogM between "
                      f"{area[off].min():.3g} and {area[off].max():.3g}, not 1; renormalised to 1",
                      stacklevel=2)
        frame.loc[:, MMD_COLUMNS] = w / area[:, None]
    return frame.reset_index(drop=True)


def card_figures(path: Path | str | None = None) -> dict:
    """The figures the data card states, computed from the workbook: rows, recipes, stops, checksum.

    Uses only the study's sheet `compuesta`, so it works on the original workbook too: a recipe is
    one (cBA_0, cAIBN_0, temp) and it reached 90 % conversion if its last sample is before 3600 s.
    """
    import hashlib

    from .simulation import T_END

    path = dataset_path(path)
    frame = load_dataset(path)
    last = frame.groupby(["cBA_0", "cAIBN_0", "temp"]).time.max()
    return {"rows": len(frame), "recipes": len(last), "recipes_at_90": int((last < T_END - 1e-6).sum()),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
