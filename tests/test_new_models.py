"""Beyond the study: physics features, the new models, evaluation on unseen recipes."""

import numpy as np
import pandas as pd
import pytest

from analysis.design import EXTRA_FEATURES, TARGETS, recipe_groups
from analysis.evaluation import (
    BEST,
    MODELS,
    against_bound,
    evaluate,
    out_of_fold,
    recipe_fold_indices,
    unseen_predictions,
)
from analysis.features import MMD_ONLY_PHYSICS, PHYSICS_FEATURES, QUANTILES, mmd_shape, physics_features
from analysis.metrics import interval_coverage, metrics
from analysis.mmd import DLOGM, EDGES, LOGM, MMD_COLUMNS, averages
from analysis.new_models import BoostedModel, NeighbourModel, new_model

QUANTILE_NAMES = [f"logM_q{round(100 * q):02d}" for q in QUANTILES]
FAST_HGB = {t: {"max_iter": 50} for t in TARGETS}


@pytest.fixture(scope="module")
def subset(data):
    """The rows of 80 recipes of the design, and a train/test split of 60/20 recipes."""
    groups = recipe_groups(data)
    chosen = np.random.default_rng(0).choice(groups.max() + 1, 80, replace=False)
    rows = data[np.isin(groups, chosen)]
    train, test = recipe_fold_indices(rows, n_splits=4)[0]
    return rows.iloc[train], rows.iloc[test]


@pytest.fixture(scope="module")
def boosted(subset):
    train, _ = subset
    return BoostedModel(params=FAST_HGB, intervals=True).fit(train)


from conftest import toy_workbook as _toy  # noqa: E402


def _gaussian(mean=4.5, sd=0.3):
    w = np.exp(-0.5 * ((LOGM - mean) / sd) ** 2)
    return w / (w.sum() * DLOGM)


# --- features -------------------------------------------------------------------------------------

def test_gaussian_in_log_m_has_its_moments_and_normal_quantiles():
    # a normal in log M: mean, sd, skew 0, kurtosis 3, normal quantiles to within one grid cell
    f = {k: v[0] for k, v in mmd_shape(_gaussian()).items()}
    assert f["logM_mean"] == pytest.approx(4.5, abs=1e-6)
    assert f["logM_sd"] == pytest.approx(0.3, abs=1e-6)
    assert f["logM_skew"] == pytest.approx(0.0, abs=1e-4)
    assert f["logM_kurtosis"] == pytest.approx(3.0, abs=1e-3)
    assert f["logM_peak"] == LOGM[np.argmin(np.abs(LOGM - 4.5))]
    assert f["logM_q50"] == pytest.approx(4.5, abs=DLOGM)
    assert f["logM_q05"] == pytest.approx(4.5 - 1.645 * 0.3, abs=DLOGM)
    assert f["logM_q95"] == pytest.approx(4.5 + 1.645 * 0.3, abs=DLOGM)
    assert f["logM_q25"] == pytest.approx(4.5 - 0.6745 * 0.3, abs=DLOGM)


def test_two_adjacent_cells_give_hand_computed_shape():
    # equal mass in cells 40 and 41: two-point distribution, sd = DLOGM/2, skew 0, kurtosis 1
    w = np.zeros(100)
    w[[40, 41]] = 1.0
    f = {k: v[0] for k, v in mmd_shape(w).items()}
    assert f["logM_mean"] == pytest.approx(EDGES[41])
    assert f["logM_sd"] == pytest.approx(DLOGM / 2)
    assert f["logM_skew"] == pytest.approx(0.0, abs=1e-9)
    assert f["logM_kurtosis"] == pytest.approx(1.0)
    assert f["logM_peak"] == LOGM[40]  # first of the tied maxima
    # each cell's mass spread uniformly over its width: q25 mid-cell 40, q50 the shared edge
    assert f["logM_q25"] == pytest.approx(LOGM[40])
    assert f["logM_q50"] == pytest.approx(EDGES[41])
    assert f["logM_q90"] == pytest.approx(EDGES[41] + 0.8 * DLOGM)


def test_shape_is_scale_invariant_and_row_wise():
    # w x 7 gives the same features; a stack of rows gives each row's own features
    w = np.vstack([_gaussian(), _gaussian(3.5, 0.5)])
    one, scaled = mmd_shape(w), mmd_shape(7.0 * w)
    second = mmd_shape(w[1])
    for name in one:
        np.testing.assert_allclose(scaled[name], one[name], rtol=1e-12, atol=1e-12)
        assert one[name][1] == pytest.approx(second[name][0], rel=1e-12, abs=1e-12)


def test_physics_features_schema_and_identities():
    # exact columns, log PDI = log Mw - log Mn, the ratio feature, and MMD-only mode needs no extras
    frame = _toy(n_recipes=3)
    out = physics_features(frame)
    assert list(out.columns) == PHYSICS_FEATURES and out.index.equals(frame.index)
    np.testing.assert_allclose(out.log_PDI, out.log_Mw - out.log_Mn, atol=1e-12)
    np.testing.assert_allclose(out.log_Mn, np.log10(frame.Mn))
    np.testing.assert_allclose(out.log_cBA_time_over_Mn, np.log10(frame.cBA_time / frame.Mn))
    mmd_only = physics_features(frame[MMD_COLUMNS], with_extras=False)
    assert list(mmd_only.columns) == MMD_ONLY_PHYSICS
    pd.testing.assert_frame_equal(mmd_only, out[MMD_ONLY_PHYSICS])


def test_real_mmds_quantiles_ordered_and_mean_log_m_between_log_mn_and_log_mw(data):
    # quantiles non-decreasing; Jensen: log10 Mn <= E_w[log10 M] <= log10 Mw on the same grid
    out = physics_features(data)
    q = out[QUANTILE_NAMES].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    assert (q[:, 0] >= EDGES[0]).all() and (q[:, -1] <= EDGES[-1]).all()
    mn, mw = averages(data[MMD_COLUMNS].to_numpy(float))
    assert (np.log10(mn) <= out.logM_mean + 1e-12).all()
    assert (out.logM_mean <= np.log10(mw) + 1e-12).all()


# --- recipe models --------------------------------------------------------------------------------

def test_one_neighbour_memorises_its_training_rows(subset):
    # k=1 on real rows: every training row is its own nearest neighbour
    train, _ = subset
    model = NeighbourModel(k=1).fit(train)
    pred = model.predict(train)
    assert list(pred.columns) == TARGETS and pred.index.equals(train.index)
    np.testing.assert_allclose(pred.to_numpy(), train[TARGETS].to_numpy(), rtol=1e-12)


def test_two_neighbours_at_equal_distance_average_their_recipes():
    # midpoint of two training samples: the arithmetic mean of every target, cAIBN_0 included
    frame = _toy(n_recipes=2, times=1)
    frame.loc[1, "cAIBN_0"] = 0.02
    model = NeighbourModel("mmd", k=2).fit(frame)
    middle = frame[MMD_COLUMNS].mean().to_frame().T
    pred = model.predict(middle).iloc[0]
    assert pred.cBA_0 == pytest.approx(frame.cBA_0.mean())
    assert pred.cAIBN_0 == pytest.approx((frame.cAIBN_0.iloc[0] + 0.02) / 2)
    assert pred.temp == pytest.approx(frame.temp.mean())


def test_boosted_model_parameters_and_interval_guard():
    model = BoostedModel(params={"temp": {"max_iter": 7}}, intervals=False)
    assert model.params["temp"]["max_iter"] == 7 and model.params["time"]["max_iter"] == 500
    assert model.params["temp"]["learning_rate"] == 0.05
    with pytest.raises(ValueError, match="without intervals"):
        model.predict_interval(_toy(n_recipes=1))


def test_boosted_predictions_and_intervals_on_unseen_recipes(boosted, subset):
    # schema, positive initiator, intervals centred on the prediction unless clipped at 0, coverage
    _, test = subset
    pred = boosted.predict(test)
    low, high = boosted.predict_interval(test)
    for f in (pred, low, high):
        assert list(f.columns) == TARGETS and f.index.equals(test.index)
    assert (pred.cAIBN_0 > 0).all() and (low.cAIBN_0 >= 0).all()
    assert ((low <= pred) & (pred <= high)).all().all()
    for t in TARGETS:
        centred = low[t] > 0
        np.testing.assert_allclose(((low[t] + high[t]) / 2)[centred], pred[t][centred], rtol=1e-9)
    cov = interval_coverage(test, low, high)
    assert all(c >= 0.6 for c in cov.values()), cov
    assert metrics(test[TARGETS].to_numpy(), pred.to_numpy())["r2"][0] > 0.8  # cBA_0 is well recovered


def test_boosted_mmd_model_needs_no_extras(subset):
    train, test = subset
    model = BoostedModel("mmd", params=FAST_HGB, intervals=False).fit(train.drop(columns=EXTRA_FEATURES))
    pred = model.predict(test.drop(columns=EXTRA_FEATURES))
    assert model.stage1 is None
    assert list(pred.columns) == TARGETS and pred.index.equals(test.index)
    assert np.isfinite(pred.to_numpy()).all() and (pred.cAIBN_0 > 0).all()


# --- evaluation -----------------------------------------------------------------------------------

def test_recipe_folds_partition_the_recipes():
    frame = _toy(n_recipes=23, times=3)
    groups = recipe_groups(frame)
    folds = recipe_fold_indices(frame, n_splits=4)
    assert len(folds) == 4
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(len(frame)))
    for train, test in folds:
        assert sorted(np.concatenate([train, test])) == list(range(len(frame)))
        assert not set(groups[train]) & set(groups[test])


def test_unseen_predictions_in_parallel_equal_the_serial_ones(toy):
    frame = toy(n_recipes=20, times=3)
    specs = {"knn": dict(model="knn", n_splits=4), "hgb mmd": dict(model="hgb", features="mmd", n_splits=4,
                                                                  fold_params=[FAST_HGB] * 4, folds=[1])}
    parallel = unseen_predictions(frame, specs, jobs=2)
    assert list(parallel) == list(specs)
    for name, spec in specs.items():
        serial = out_of_fold(frame, **{"features": "composite", **spec})
        pd.testing.assert_frame_equal(parallel[name]["prediction"], serial["prediction"])
    assert parallel["hgb mmd"]["prediction"].notna().all(axis=1).sum() == 15  # one fold of 5 recipes


def test_against_bound_goal_rule():
    table = against_bound({"cBA_0": 0.999, "cAIBN_0": 0.5}, {"cBA_0": 0.96, "cAIBN_0": 0.47})
    assert table.goal.tolist() == [0.95, pytest.approx(0.48)]
    assert table.met.tolist() == [True, False]


def test_new_model_names():
    assert isinstance(new_model("hgb", "mmd", params=FAST_HGB), BoostedModel)
    assert isinstance(new_model("knn", "composite"), NeighbourModel)
    with pytest.raises(ValueError, match="unknown model 'rf'"):
        new_model("rf", "composite")


def test_evaluate_knn_on_unseen_recipes_pools_the_out_of_fold_predictions():
    frame = _toy(n_recipes=20, times=3)
    result = evaluate(frame, "knn", "composite", "recipes", n_splits=4)
    assert set(result) == {"model", "features", "split", "r2", "rel_mae", "global_r2", "global_mse",
                           "fold_global_r2"}
    assert list(result["r2"]) == TARGETS and list(result["rel_mae"]) == TARGETS
    assert len(result["fold_global_r2"]) == 4
    expected = metrics(frame[TARGETS].to_numpy(), out_of_fold(frame, "knn", "composite", n_splits=4)
                       ["prediction"].to_numpy())
    assert list(result["r2"].values()) == pytest.approx(list(expected["r2"]))
    assert result["global_r2"] == pytest.approx(np.mean(list(result["r2"].values())))


def test_evaluate_best_delegates_to_the_best_model():
    frame = _toy(n_recipes=20, times=4)
    best = evaluate(frame, "best", "mmd", "rows")
    assert set(best) == {"model", "features", "split", "r2", "rel_mae", "global_r2", "global_mse",
                         "fold_global_r2", "best"}
    assert best["model"] == "best" and best["best"] == BEST and best["split"] == "rows"
    direct = evaluate(frame, BEST, "mmd", "rows")
    assert best["r2"] == direct["r2"] and best["global_mse"] == direct["global_mse"]


@pytest.mark.parametrize("kwargs, word", [({"model": "nope"}, "model"), ({"features": "nope"}, "feature"),
                                          ({"split": "nope"}, "split")])
def test_evaluate_rejects_unknown_choices_naming_them(kwargs, word):
    with pytest.raises(ValueError, match=f"unknown {word}.*'nope'") as err:
        evaluate(_toy(n_recipes=2), **kwargs)
    if word == "model":
        assert all(m in str(err.value) for m in MODELS)


