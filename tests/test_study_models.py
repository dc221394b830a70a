"""The study's protocol: metrics by hand, the published tables' own arithmetic, the split, the
database summaries, the domain helper, and stored hyperparameters tied to their workbook."""

import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.dataset_summary import recipe_table, stops_per_level, with_recipes
from analysis.design import EXTRA_FEATURES, STUDY_RANGES, TARGETS
from analysis.domain import Domain
from analysis.hyperparameters import NESTED_SEARCH, STUDY_SEARCH, StaleHyperparameters, load_stored
from analysis.metrics import interval_coverage, metrics
from analysis.mmd import MMD_COLUMNS
from analysis.study_models import STUDY_RESULTS, replicate, scaled_split, spread_table, study_fit, study_split


def test_metrics_against_hand_computed_values():
    y = np.array([[1.0, 0.005, 60.0, 300.0], [2.0, 0.010, 70.0, 600.0], [3.0, 0.015, 80.0, 900.0]])
    p = y + np.array([[0.5, 0.0, 1.0, 0.0], [-0.5, 0.0025, -1.0, 300.0], [0.0, 0.0, 1.0, 0.0]])
    m = metrics(y, p)
    # cBA_0: MAE 1/3, range 2.5 -> 13.33 %; SS_res 0.5, SS_tot 2 -> R² 0.75
    assert m["mae"][0] == pytest.approx(1 / 3)
    assert m["rel_mae"][0] == pytest.approx(100 / 3 / 2.5)
    assert m["r2"][0] == pytest.approx(0.75)
    # time: one error of 300 s: MSE 30000, R² = 1 - 90000 / 180000 = 0.5
    assert m["mse"][3] == pytest.approx(30000.0)
    assert m["r2"][3] == pytest.approx(0.5)
    assert m["global_mse"] == pytest.approx(np.mean(m["mse"]))
    assert m["global_r2"] == pytest.approx(np.mean(m["r2"]))
    assert metrics(y, y)["global_r2"] == 1.0


def test_the_published_tables_are_consistent_with_their_own_definitions():
    # transcription check against the study's arithmetic, not against a copy of its numbers: the
    # global R² is the mean of the per-target R², the global MSE is dominated by time's MSE, which a
    # relative MAE of m % of 3600 s bounds from below by (m/100 * 3600)² / 4 (MSE >= MAE²)
    for name, result in STUDY_RESULTS.items():
        assert np.mean(result["r2"]) == pytest.approx(result["global_r2"], abs=1e-4), name
        time_mae = result["rel_mae"][3] / 100 * np.diff(STUDY_RANGES["time"])[0]
        assert result["global_mse"] >= time_mae**2 / 4, name
        assert result["global_mse"] < 4 * time_mae**2, name


def test_interval_coverage_by_hand_and_per_recipe():
    frame = pd.DataFrame({t: [1.0, 2.0, 3.0, 4.0] for t in TARGETS})
    low = pd.DataFrame({t: [0.0, 2.0, 3.5, 5.0] for t in TARGETS})
    high = low + 1.0  # [0,1] in, [2,3] in (both ends inclusive), [3.5,4.5] out, [5,6] out
    low["time"] = 0.0  # every time inside
    assert interval_coverage(frame, low, high) == {"cBA_0": 0.5, "cAIBN_0": 0.5, "temp": 0.5, "time": 1.0}
    # two recipes of 1 and 3 rows: per recipe 1/1 and 1/3 inside -> mean 2/3 (by row it is 1/2)
    groups = np.array([0, 1, 1, 1])
    assert interval_coverage(frame, low, high, groups)["cBA_0"] == pytest.approx(2 / 3)
    # rows without an interval are not counted
    low.loc[3, :] = np.nan
    assert interval_coverage(frame, low, high)["cBA_0"] == pytest.approx(2 / 3)


def test_study_split_fits_scalers_on_all_rows_and_splits_rows_80_20(toy):
    frame = toy(n_recipes=30)
    split = study_split(frame, "composite")
    assert len(split.test_index) == round(0.2 * len(frame))
    np.testing.assert_allclose(split.x_scaler.mean_, frame[split.features].mean().to_numpy())
    np.testing.assert_allclose(split.original(split.Y_test), frame[TARGETS].to_numpy()[split.test_index])
    again = study_split(frame, "composite")
    np.testing.assert_array_equal(split.test_index, again.test_index)


def test_replicate_in_worker_processes_equals_each_fit_alone_and_seeds_differ(data):
    # chapter 7's table of seeds (run by `make book` only): the forests fitted in parallel workers give
    # the metrics of the same fit made here, one at a time; another seed is another split and another
    # forest; the spread table is the mean and sd of the rows, next to the study's published value
    small = {"n_estimators": 8, "max_depth": 6, "min_samples_split": 2, "min_samples_leaf": 1}
    tuned = {"rf_mmd": {"params": small}, "rf_composite": {"params": small}}
    seeds, models = (42, 1), ("RF, MMD only", "RF, composite")
    runs = replicate(data, tuned, seeds, with_network=False)
    assert list(zip(runs.seed, runs.model)) == [(s, m) for s in seeds for m in models]
    for _, row in runs.iterrows():
        alone = study_fit(data, "rf", "mmd" if "MMD" in row.model else "composite", tuned, row.seed).metrics
        # the same forests; a forest's prediction sums its trees in the order its threads finish: the
        # last bit may differ
        assert [row[f"r2 {t}"] for t in TARGETS] == pytest.approx(list(alone["r2"]), rel=1e-12)
    first, second = (study_split(data, "composite", random_state=s).test_index for s in seeds)
    assert len(np.intersect1d(first, second)) < 0.5 * len(first)
    assert runs.global_r2.nunique() == len(runs)
    table = spread_table(runs)
    composite = runs[runs.model == "RF, composite"]
    row = table.loc[("RF, composite", "global R²")]
    assert row["ours (mean)"] == pytest.approx(composite.global_r2.mean())
    assert row["ours (sd over seeds)"] == pytest.approx(composite.global_r2.std())
    assert table.loc[("RF, MMD only", "R² temp"), "study"] == STUDY_RESULTS["RF, MMD only"]["r2"][2]


def test_scaled_split_fits_its_scalers_on_the_training_rows_only(toy):
    frame = toy(n_recipes=10, times=3)
    train, test = np.arange(0, 20), np.arange(20, 30)
    split = scaled_split(frame, "mmd", train, test)
    np.testing.assert_allclose(split.x_scaler.mean_, frame[MMD_COLUMNS].iloc[train].mean().to_numpy())
    np.testing.assert_allclose(split.y_scaler.mean_, frame[TARGETS].iloc[train].mean().to_numpy())
    np.testing.assert_allclose(split.original(split.Y_test), frame[TARGETS].to_numpy()[test])


def test_recipes_and_stops_from_the_study_sheets(toy):
    frame = toy(n_recipes=30, times=12)
    frame = frame[~((frame.cBA_0 == 0.5) & (frame.time > 2400))]  # these recipes stopped early
    table = recipe_table(frame)
    assert len(table) == 30 and table.reached_90.sum() == 5
    assert with_recipes(frame).recipe_id.nunique() == 30
    per_level = stops_per_level(table, "cBA_0")
    assert per_level.loc[0.5, "reach_90"] == 5 and per_level.recipes.sum() == 30


def test_domain_accepts_training_rows_and_names_what_is_outside(toy):
    frame = toy(n_recipes=30)
    features = ["Mn", "Mw"] + MMD_COLUMNS
    domain = Domain(frame, features)
    assert all(v.in_domain for v in domain.check(frame.iloc[:20]))
    odd = frame.iloc[[0]].assign(Mn=1e6)
    verdict = domain.check(odd)[0]
    assert not verdict.in_domain and verdict.outside_range == ["Mn"]
    assert "Mn outside the training range" in verdict.reasons()
    with pytest.raises(KeyError, match="Mw"):
        domain.check(frame[["Mn"]])


def test_domain_flags_an_mn_that_disagrees_with_its_own_mmd():
    from analysis.engines import simulate
    from analysis.kinetics import Recipe

    rows = []
    for recipe in [Recipe(c, i, t) for c in (1.0, 2.0) for i in (0.005, 0.015) for t in (60.0, 75.0)]:
        run = simulate(recipe, "ode")
        for j in range(len(run.time)):
            rows.append([run.cBA[j], run.Mn[j], run.Mw[j], *run.mmd[j]])
    features = EXTRA_FEATURES + MMD_COLUMNS
    frame = pd.DataFrame(rows, columns=features)
    domain = Domain(frame, features)
    assert all(v.in_domain for v in domain.check(frame))
    wrong = frame.iloc[[5]].assign(Mn=frame.Mn.iloc[5] * 1.5)  # still inside the Mn range
    verdict = domain.check(wrong)[0]
    assert frame.Mn.min() < wrong.Mn.iloc[0] < frame.Mn.max()
    assert not verdict.in_domain and not verdict.outside_range
    assert any("Mn is 1.50 times the Mn of the MMD" in r for r in verdict.reasons())


def test_stored_hyperparameters_warn_for_another_workbook_than_the_one_in_use(small_workbook, monkeypatch):
    # the committed searches were run on the committed workbook: no warning for it, a warning naming
    # the other file when it is the one in use (as argument or through $POLYINVERSE_DATA)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for file in (STUDY_SEARCH, NESTED_SEARCH):
            assert load_stored(file)["data_sha256"]
    for file in (STUDY_SEARCH, NESTED_SEARCH):
        words = f"{file.name} was tuned on another workbook .* than small.xlsx"
        with pytest.warns(StaleHyperparameters, match=words):
            load_stored(file, small_workbook)
    monkeypatch.setenv("POLYINVERSE_DATA", str(small_workbook))
    with pytest.warns(StaleHyperparameters, match="small.xlsx"):
        load_stored(STUDY_SEARCH)


def test_evaluate_checks_the_stored_hyperparameters_against_its_own_workbook(small_workbook):
    from analysis.dataset import load_dataset
    from analysis.evaluation import nested_params

    with pytest.warns(StaleHyperparameters, match="small.xlsx"):
        nested_params("hgb", "composite", small_workbook)
    frame = load_dataset(small_workbook)
    assert len(frame) < 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(nested_params("hgb", "composite")) == 5
