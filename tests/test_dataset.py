"""The committed workbook: schema, design, physics, agreement with the ODE engine, reproducibility,
the data card's figures, and the loader's refusals."""

import re
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.dataset import (
    DEFAULT_SEED,
    OBSERVABLE_COLUMNS,
    OBSERVABLES,
    ROW_KEY,
    SHEETS,
    WORKBOOK,
    DatasetError,
    file_sha256,
    generate,
    has_observables,
    join_observables,
    load_dataset,
    study_sha256,
    validate_observables,
    write_workbook,
)
from analysis.dataset_summary import card_figures
from analysis.design import (
    CAIBN0_LEVELS,
    CBA0_LEVELS,
    EXTRA_FEATURES,
    RECIPE_KEY,
    SAMPLE_TIMES,
    TARGETS,
    TEMP_LEVELS,
    design,
    latin_hypercube,
)
from analysis.engines import simulate
from analysis.kinetics import DEFAULT_PARAMETERS, Recipe
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
    for name in ("compuesta", "runs", "observables"):
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
    assert f"`{figures['sha256']}`" in card and f"`{study_sha256(WORKBOOK)}`" in card
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


def test_a_sheet_is_parsed_once_per_cache_and_validated_at_every_load(tmp_path, monkeypatch):
    # with a cache set, a second load parses nothing (pandas' reader fails if called) and gives the same
    # frame with the same warning (the validation runs again); another file's bytes are another entry
    monkeypatch.setenv("POLYINVERSE_CACHE", str(tmp_path / "cache"))
    path = _broken(tmp_path, lambda f: f.assign(**{c: f[c] * 100 for c in MMD_COLUMNS}))
    with pytest.warns(UserWarning, match="24 MMD rows .* renormalised"):
        first = load_dataset(path)
    with pytest.warns(UserWarning, match="24 MMD rows .* renormalised"):
        monkeypatch.setattr(pd, "read_excel", lambda *a, **k: pytest.fail("the sheet was parsed again"))
        again = load_dataset(path)
    pd.testing.assert_frame_equal(first, again)
    monkeypatch.undo()
    monkeypatch.setenv("POLYINVERSE_CACHE", str(tmp_path / "cache"))
    same_path = _broken(tmp_path, lambda f: f.assign(Mn=f["Mn"] * 1.01))  # the same file, other numbers
    np.testing.assert_allclose(load_dataset(same_path)["Mn"], first["Mn"] * 1.01, rtol=1e-12)


# --- the observables sheet, the checksum of the study's sheets, other designs, a Dask cluster -------

def test_observables_sheet_covers_every_row_with_physical_values(sheets, data):
    obs = sheets["observables"]
    assert list(obs.columns) == OBSERVABLE_COLUMNS
    assert len(obs) == len(data)
    joined = load_dataset(observables=True)
    assert len(joined) == len(data) and not joined[OBSERVABLES].isna().any().any()
    pd.testing.assert_frame_equal(joined[data.columns], data)
    # residual initiator: first-order decay, kMC scatter of a few per mille at most
    kd = DEFAULT_PARAMETERS.kd
    expected = joined.cAIBN_0 * np.exp(-np.array([kd(t) for t in joined.temp]) * joined.time)
    assert np.abs(joined.cAIBN_time / expected - 1).median() < 0.005
    # branching rises with conversion in (nearly) every recipe, and matches the deterministic engine
    ends = joined.groupby(RECIPE_KEY).tail(1)
    for row in ends.sample(3, random_state=0).itertuples():
        ode = simulate(Recipe(row.cBA_0, row.cAIBN_0, row.temp), "ode")
        assert abs(row.branching / ode.branching[-1] - 1) < 0.03
        assert abs(row.midchain_fraction / ode.midchain_fraction[-1] - 1) < 0.03


def test_loader_asked_for_observables_refuses_a_workbook_without_them(small_workbook):
    assert not has_observables(small_workbook)
    assert len(load_dataset(small_workbook)) > 0  # the study's original has none and still loads
    with pytest.raises(DatasetError, match="no sheet 'observables'"):
        load_dataset(small_workbook, observables=True)


def test_observables_that_do_not_match_the_rows_are_refused(data):
    extra = data[ROW_KEY].head(10).assign(cAIBN_time=0.001, branching=1.0, midchain_fraction=0.9)
    with pytest.raises(DatasetError, match="rows have no observables"):
        join_observables(data.head(12), extra)
    with pytest.raises(DatasetError, match="branching 150 is outside"):
        validate_observables(extra.assign(branching=150.0))
    with pytest.raises(DatasetError, match="cAIBN_time .* is outside"):
        validate_observables(extra.assign(cAIBN_time=extra.cAIBN_0 * 2))


def test_study_checksum_ignores_extra_sheets_but_not_a_changed_number(tmp_path, sheets):
    frame = pd.concat([sheets["runs"], sheets["compuesta"][EXTRA_FEATURES + MMD_COLUMNS]], axis=1).head(24)
    plain, extended = tmp_path / "plain.xlsx", tmp_path / "extended.xlsx"
    write_workbook(frame, plain)
    write_workbook(frame.assign(cAIBN_time=0.001, branching=1.0, midchain_fraction=0.9), extended)
    assert file_sha256(plain) != file_sha256(extended)
    assert study_sha256(plain) == study_sha256(extended)
    frame.loc[5, "MMD40"] *= 1 + 1e-12
    write_workbook(frame, plain)
    assert study_sha256(plain) != study_sha256(extended)


def test_latin_hypercube_fills_one_stratum_per_recipe_and_is_seeded():
    n = 25
    recipes = latin_hypercube(n, seed=3)
    values = np.array([[r.cBA_0, r.cAIBN_0, r.temp] for r in recipes])
    for j, levels in enumerate((CBA0_LEVELS, CAIBN0_LEVELS, TEMP_LEVELS)):
        lo, hi = min(levels), max(levels)
        strata = np.floor((values[:, j] - lo) / (hi - lo) * n * (1 - 1e-9)).astype(int)
        assert sorted(strata) == list(range(n))  # 4-digit rounding keeps each in its stratum
    assert latin_hypercube(n, seed=3) == recipes and latin_hypercube(n, seed=4) != recipes
    frame = generate("ode", jobs=1, recipes=recipes[:2], progress=False)
    assert set(frame.recipe_id) == {0, 1} and set(frame.columns) >= set(SHEETS["compuesta"] + OBSERVABLES)


@pytest.mark.slow
def test_a_dask_cluster_gives_the_same_rows_as_local_processes():
    distributed = pytest.importorskip("distributed")
    ids = [i for i, r in enumerate(design()) if (r.cBA_0, r.cAIBN_0) == (0.5, 0.02)][:3]
    local = generate("kmc", jobs=1, recipe_ids=ids, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = generate("kmc", recipe_ids=ids, progress=False, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)


def test_an_unreachable_scheduler_is_named(monkeypatch):
    monkeypatch.setattr("analysis.workers.SCHEDULER_TIMEOUT", 2.0)
    with pytest.raises(ConnectionError, match="no Dask scheduler answers at tcp://127.0.0.1:9"):
        generate("ode", recipe_ids=[0], progress=False, scheduler="tcp://127.0.0.1:9")


def _slow_square(x: int) -> int:
    time.sleep(0.5)
    return x * x


def test_parallel_map_keeps_loky_s_worker_restart_notice_quiet_and_other_warnings_loud():
    # loky's executor thread says "A worker stopped ... memory leak" when it replaces a worker that grew by
    # 300 MB between tasks (expected with the inversion's caches); emitted here from another thread while
    # the map runs, as loky does.  Another warning still shows.
    import threading

    from analysis.workers import WORKER_RESTART, parallel_map

    def emit():
        warnings.warn(f"{WORKER_RESTART}. This can be caused by a too short worker timeout or by a memory "
                      "leak.", UserWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        timer = threading.Timer(0.3, emit)
        timer.start()
        assert parallel_map(_slow_square, range(6), jobs=2) == [x * x for x in range(6)]
        timer.join()
    messages = [str(w.message) for w in caught]
    assert "something else" in messages and not any(WORKER_RESTART in m for m in messages)
