"""The study's protocol: metrics by hand, the split, the search space, the domain helper."""

import numpy as np
import pandas as pd
import pytest

from analysis.dataset import TARGETS
from analysis.domain import Domain, coverage, recipe_table, with_recipes
from analysis.mmd import MMD_COLUMNS
from analysis.models import RF_SEARCH_SPACE, STUDY_RESULTS, TARGET_RANGES, metrics, study_split


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


def test_study_constants_are_the_published_ones():
    assert RF_SEARCH_SPACE["n_estimators"] == [100, 200, 500]
    assert TARGET_RANGES["cAIBN_0"] == (0.0025, 0.02)
    # the published global R² is the mean of the per-target R² (to rounding)
    for result in STUDY_RESULTS.values():
        assert np.mean(result["r2"]) == pytest.approx(result["global_r2"], abs=1e-4)


def _toy(n_recipes=30, times=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_recipes):
        base = [0.5 + 0.5 * (r % 6), 0.0025 * (1 + r % 8), 60.0 + r % 9]
        for t in range(1, times + 1):
            w = rng.random(100)
            rows.append(base + [300.0 * t, base[0] * (1 - 0.1 * t), 1e4 + r, 2e4 + r] + list(w))
    return pd.DataFrame(rows, columns=TARGETS + ["cBA_time", "Mn", "Mw"] + MMD_COLUMNS)


def test_study_split_fits_scalers_on_all_rows_and_splits_rows_80_20():
    frame = _toy()
    split = study_split(frame, "composite")
    assert len(split.test_index) == round(0.2 * len(frame))
    np.testing.assert_allclose(split.x_scaler.mean_, frame[split.features].mean().to_numpy())
    np.testing.assert_allclose(split.original(split.Y_test), frame[TARGETS].to_numpy()[split.test_index])
    again = study_split(frame, "composite")
    np.testing.assert_array_equal(split.test_index, again.test_index)


def test_recipes_and_coverage_from_the_study_sheets():
    frame = _toy(times=12)
    frame = frame[~((frame.cBA_0 == 0.5) & (frame.time > 2400))]  # these recipes stopped early
    table = recipe_table(frame)
    assert len(table) == 30 and table.reached_90.sum() == 5
    assert with_recipes(frame).recipe_id.nunique() == 30
    cov = coverage(table, "cBA_0")
    assert cov.loc[0.5, "reach_90"] == 5 and cov.recipes.sum() == 30


def test_domain_accepts_training_rows_and_names_what_is_outside():
    frame = _toy()
    features = ["Mn", "Mw"] + MMD_COLUMNS
    domain = Domain(frame, features)
    assert all(v.in_domain for v in domain.check(frame.iloc[:20]))
    odd = frame.iloc[[0]].assign(Mn=1e6)
    verdict = domain.check(odd)[0]
    assert not verdict.in_domain and verdict.outside_range == ["Mn"]
    assert "Mn outside the training range" in verdict.reasons()
    with pytest.raises(KeyError, match="Mw"):
        domain.check(frame[["Mn"]])


def test_recipe_split_keeps_every_recipe_on_one_side_and_scales_on_training_rows():
    from analysis.models import recipe_split

    frame = _toy(n_recipes=40, times=5)
    split = recipe_split(frame, "mmd")
    key = frame[["cBA_0", "cAIBN_0", "temp"]].apply(tuple, axis=1)
    test = set(key.iloc[split.test_index])
    train = set(key.drop(index=split.test_index))
    assert test and train and not test & train
    assert len(test) == 8  # 20 % of 40 recipes
    train_rows = frame.drop(index=split.test_index)
    np.testing.assert_allclose(split.x_scaler.mean_, train_rows[MMD_COLUMNS].mean().to_numpy())


def test_domain_flags_an_mn_that_disagrees_with_its_own_mmd():
    from analysis.kinetics import Recipe
    from analysis.simulation import simulate

    rows = []
    for recipe in [Recipe(c, i, t) for c in (1.0, 2.0) for i in (0.005, 0.015) for t in (60.0, 75.0)]:
        run = simulate(recipe, "ode")
        for j in range(len(run.time)):
            rows.append([run.cBA[j], run.Mn[j], run.Mw[j], *run.mmd[j]])
    features = ["cBA_time", "Mn", "Mw"] + MMD_COLUMNS
    frame = pd.DataFrame(rows, columns=features)
    domain = Domain(frame, features)
    assert all(v.in_domain for v in domain.check(frame))
    wrong = frame.iloc[[5]].assign(Mn=frame.Mn.iloc[5] * 1.5)  # still inside the Mn range
    verdict = domain.check(wrong)[0]
    assert frame.Mn.min() < wrong.Mn.iloc[0] < frame.Mn.max()
    assert not verdict.in_domain and not verdict.outside_range
    assert any("Mn is 1.50 times the Mn of the MMD" in r for r in verdict.reasons())


def test_grouped_folds_never_share_a_recipe_and_scale_inside_the_fold():
    from analysis.evaluation import grouped_folds, recipe_groups

    frame = _toy(n_recipes=40, times=5)
    groups = recipe_groups(frame)
    folds = grouped_folds(frame, "composite", n_splits=5)
    seen = np.concatenate([f.test_index for f in folds])
    assert sorted(seen) == list(range(len(frame)))  # every row is tested exactly once
    for fold in folds:
        test_groups = set(groups[fold.test_index])
        train_groups = set(np.delete(groups, fold.test_index))
        assert not test_groups & train_groups
        train_rows = frame.drop(index=fold.test_index)
        np.testing.assert_allclose(fold.x_scaler.mean_, train_rows[fold.features].mean().to_numpy())
        np.testing.assert_allclose(fold.original(fold.Y_test), frame[TARGETS].to_numpy()[fold.test_index])
