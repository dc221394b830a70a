"""The committed workbook: schema, design, physics, agreement with the ODE engine, reproducibility,
the data card's figures, and the loader's refusals."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.dataset import (
    DEFAULT_SEED,
    SHEETS,
    WORKBOOK,
    DatasetError,
    generate,
    load_dataset,
    write_workbook,
)
from analysis.dataset_summary import card_figures
from analysis.design import (
    CAIBN0_LEVELS,
    CBA0_LEVELS,
    EXTRA_FEATURES,
    SAMPLE_TIMES,
    TARGETS,
    TEMP_LEVELS,
    design,
)
from analysis.engines import simulate
from analysis.mmd import DLOGM, MMD_COLUMNS, l1_distance

pytestmark = pytest.mark.skipif(not WORKBOOK.exists(), reason="no committed workbook")
CARD = WORKBOOK.parent / "README.md"


@pytest.fixture(scope="module")
def sheets():
    return pd.read_excel(WORKBOOK, sheet_name=None)


@pytest.fixture(scope="module")
def runs(sheets):
    return sheets["runs"]


def test_workbook_has_the_original_sheets_and_exact_columns(sheets):
    assert list(sheets)[:2] == ["mmd_raw_data", "compuesta"]
    for name, columns in SHEETS.items():
        assert list(sheets[name].columns) == columns
    assert SHEETS["compuesta"][:7] == TARGETS + EXTRA_FEATURES
    a, b = sheets["mmd_raw_data"], sheets["compuesta"]
    assert len(a) == len(b) == len(sheets["runs"])
    pd.testing.assert_frame_equal(a, b[SHEETS["mmd_raw_data"]])


def test_targets_lie_on_the_design_levels(data, runs):
    assert set(data.cBA_0) == set(CBA0_LEVELS)
    assert set(data.cAIBN_0) == set(CAIBN0_LEVELS)
    assert set(data.temp) == set(TEMP_LEVELS)
    assert runs.recipe_id.nunique() == 432
    recipes = design()
    for rid, rows in runs.groupby("recipe_id"):
        r = recipes[rid]
        assert (rows.cBA_0 == r.cBA_0).all() and (rows.cAIBN_0 == r.cAIBN_0).all()
        times = rows.time.to_numpy()
        stopped = bool(rows.stopped.iloc[-1])
        grid = times[:-1] if stopped else times
        np.testing.assert_array_equal(grid, SAMPLE_TIMES[: len(grid)])
        if stopped:
            last_grid = grid[-1] if len(grid) else 0.0
            assert last_grid < times[-1] < last_grid + 300
        else:
            assert len(times) == 12


def test_physics_of_every_row(data, runs):
    assert (data.Mw >= data.Mn).all()
    np.testing.assert_allclose(data[MMD_COLUMNS].sum(axis=1) * DLOGM, 1.0, atol=1e-9)
    assert (data[MMD_COLUMNS] >= 0).all().all()
    conversion = 1 - data.cBA_time / data.cBA_0
    np.testing.assert_allclose(conversion, runs.conversion, atol=1e-12)
    assert (runs.groupby("recipe_id").conversion.diff().dropna() > 0).all(), "conversion rises"
    assert (runs.conversion <= 0.9 + 1e-6).all()  # the stop event may overshoot by a molecule
    stop = runs[runs.stopped.astype(bool)].groupby("recipe_id").conversion.last()
    np.testing.assert_allclose(stop, 0.9, atol=1e-6)


@pytest.mark.slow
def test_a_sample_of_rows_agrees_with_the_deterministic_engine(runs, data):
    rng = np.random.default_rng(0)
    ids = rng.choice(432, size=12, replace=False)
    recipes = design()
    for rid in ids:
        rows = runs[runs.recipe_id == rid]
        kmc = data.loc[rows.index]
        ode = simulate(recipes[rid], "ode")
        assert bool(rows.stopped.iloc[-1]) == ode.stopped, rid
        n = min(len(rows), len(ode.time))
        assert np.abs(rows.conversion.to_numpy()[:n] - ode.conversion[:n]).max() < 0.01, rid
        np.testing.assert_allclose(kmc.Mn.to_numpy()[:n], ode.Mn[:n], rtol=0.05)
        np.testing.assert_allclose(kmc.Mw.to_numpy()[:n], ode.Mw[:n], rtol=0.05)
        assert l1_distance(kmc[MMD_COLUMNS].to_numpy()[:n], ode.mmd[:n]).max() < 0.05, rid


@pytest.mark.slow
def test_two_recipes_regenerated_with_the_committed_seed_are_identical(sheets, tmp_path):
    """Regenerated and written like the committed file (the xlsx stores 16 significant digits)."""
    wanted = {(0.5, 0.02, 80.0), (2.0, 0.01, 73.0)}  # one that stops at 90 %, one that does not
    ids = [i for i, r in enumerate(design()) if (r.cBA_0, r.cAIBN_0, r.temp) in wanted]
    write_workbook(generate("kmc", jobs=1, seed=DEFAULT_SEED, recipe_ids=ids, progress=False),
                   tmp_path / "fresh.xlsx")
    fresh = pd.read_excel(tmp_path / "fresh.xlsx", sheet_name=None)
    keep = sheets["runs"].recipe_id.isin(ids).to_numpy()
    assert len(fresh["runs"]) == keep.sum() > 12
    for name in ("compuesta", "runs"):
        pd.testing.assert_frame_equal(fresh[name], sheets[name][keep].reset_index(drop=True),
                                      check_exact=True, check_dtype=False)


def test_writing_is_byte_reproducible(tmp_path, sheets):
    frame = pd.concat([sheets["runs"], sheets["compuesta"][EXTRA_FEATURES + MMD_COLUMNS]], axis=1).head(30)
    write_workbook(frame, tmp_path / "a.xlsx")
    write_workbook(frame, tmp_path / "b.xlsx")
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()


def test_data_card_figures_are_the_data(runs):
    card = CARD.read_text()
    figures = card_figures(WORKBOOK)
    assert f"`{figures['sha256']}`" in card
    assert re.search(rf"\*\*{figures['rows']}\*\* rows", card)
    assert re.search(rf"\*\*{figures['recipes_at_90']}\*\* of the 432 recipes", card)
    assert figures["rows"] == len(runs)
    assert figures["recipes_at_90"] == int(runs.groupby("recipe_id").stopped.any().sum())


# --- the loader refuses broken workbooks ----------------------------------------------------------

def _broken(tmp_path, change, sheet="compuesta"):
    frame = pd.read_excel(WORKBOOK, sheet_name=sheet, nrows=24)
    frame = change(frame)
    path = tmp_path / "broken.xlsx"
    frame.to_excel(path, sheet_name=sheet, index=False)
    return path


def _drop(col):
    return lambda f: f.drop(columns=[col])


def _set(col, value, row=3):
    def change(f):
        f = f.astype({col: object}) if isinstance(value, str) else f
        f.loc[row, col] = value
        return f
    return change


@pytest.mark.parametrize("change, words", [
    (_drop("Mn"), "missing column(s) ['Mn']"),
    (_drop("MMD100"), "99 points"),
    (_set("temp", "seventy"), "non-numeric value 'seventy'"),
    (_set("Mw", np.nan), "empty/NaN cells (sheet rows [5])"),
    (_set("cBA_0", -1.0), "negative values in cBA_0"),
    (lambda f: f.assign(cAIBN_0=f.cAIBN_0 * 1000), "looks like mmol/L"),
    (_set("MMD50", -0.2), "negative MMD values"),
    (lambda f: f.assign(**{c: 0.0 for c in MMD_COLUMNS}), "zero area"),
])
def test_loader_names_the_problem(tmp_path, change, words):
    path = _broken(tmp_path, change)
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    assert words in str(err.value)


def test_loader_refuses_missing_sheet_and_file(tmp_path):
    path = _broken(tmp_path, lambda f: f, sheet="mmd_raw_data")
    with pytest.raises(DatasetError, match="no sheet 'compuesta'"):
        load_dataset(path)
    assert len(load_dataset(path, sheet="mmd_raw_data")) == 24
    with pytest.raises(DatasetError, match="no workbook"):
        load_dataset(tmp_path / "absent.xlsx")


def test_loader_renormalises_a_row_with_another_area(tmp_path, monkeypatch):
    path = _broken(tmp_path, lambda f: f.assign(**{c: f[c] * 100 for c in MMD_COLUMNS}))
    with pytest.warns(UserWarning, match="24 MMD rows .* renormalised"):
        frame = load_dataset(path)
    np.testing.assert_allclose(frame[MMD_COLUMNS].sum(axis=1) * DLOGM, 1.0)
    monkeypatch.setenv("POLYINVERSE_DATA", str(path))
    with warnings.catch_warnings(record=True):
        assert len(load_dataset()) == 24  # the environment variable points elsewhere
