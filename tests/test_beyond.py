"""Beyond the study: physics features, recipe models, evaluation on unseen recipes, identifiability."""

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from analysis.dataset import EXTRA_FEATURES, TARGETS, load_dataset
from analysis.evaluation import BEST, MODELS, coverage, evaluate, out_of_fold, recipe_fold_indices
from analysis.features import MMD_ONLY_PHYSICS, PHYSICS_FEATURES, QUANTILES, mmd_shape, physics_features
from analysis.identifiability import RowJacobians, covariances, recipe_jacobians, valley_bound
from analysis.kinetics import Recipe
from analysis.mmd import DLOGM, EDGES, LOGM, MMD_COLUMNS, averages
from analysis.models import metrics, recipe_groups
from analysis.ode import run_ode
from analysis.recipe_models import BoostedModel, NeighbourModel

QUANTILE_NAMES = [f"logM_q{round(100 * q):02d}" for q in QUANTILES]
FAST_HGB = {t: {"max_iter": 50} for t in TARGETS}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # two cores shared with another job: OpenMP oversubscription makes the boosted trees ~20x slower
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def data():
    return load_dataset()


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


def _toy(n_recipes=20, times=4, seed=0):
    """Synthetic workbook rows: a few samples per recipe, random positive MMDs."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_recipes):
        base = [0.5 + 0.5 * (r % 6), 0.0025 * (1 + r % 8), 60.0 + r % 9]
        for t in range(1, times + 1):
            rows.append(base + [300.0 * t, base[0] * (1 - 0.1 * t), 1e4 + r, 2e4 + r] + list(rng.random(100)))
    return pd.DataFrame(rows, columns=TARGETS + EXTRA_FEATURES + MMD_COLUMNS)


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
    cov = coverage(test, low, high)
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


def test_coverage_by_hand():
    frame = pd.DataFrame({t: [1.0, 2.0, 3.0, 4.0] for t in TARGETS})
    low = pd.DataFrame({t: [0.0, 2.0, 3.5, 5.0] for t in TARGETS})
    high = low + 1.0  # [0,1] in, [2,3] in (both ends inclusive), [3.5,4.5] out, [5,6] out
    low["time"] = 0.0  # every time inside
    assert coverage(frame, low, high) == {"cBA_0": 0.5, "cAIBN_0": 0.5, "temp": 0.5, "time": 1.0}


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


# --- identifiability ------------------------------------------------------------------------------

def _observables(run, k):
    return np.concatenate([run.mmd[k], np.log([run.cBA[k], run.Mn[k], run.Mw[k]])])


def _temperature_derivative(recipe, k, h=0.1):
    c, i, t = recipe
    plus, minus = run_ode(Recipe(c, i, t + h)), run_ode(Recipe(c, i, t - h))
    return (_observables(plus, k) - _observables(minus, k)) / (2 * h)


@pytest.fixture(scope="module")
def jacobians():
    return {r: recipe_jacobians(r) for r in [(1.3, 0.006, 66.0), (2.5, 0.02, 80.0)]}


def test_jacobian_of_a_recipe_that_runs_to_the_end(jacobians):
    # shapes, observables of the base run, temperature column against an independent finite difference
    recipe = (1.3, 0.006, 66.0)
    obs, jac, stopped, grad, times = jacobians[recipe]
    base = run_ode(Recipe(*recipe))
    assert not base.stopped and not stopped.any() and np.isnan(grad).all()
    assert obs.shape == (12, 103) and jac.shape == (12, 103, 4) and not np.isnan(jac).any()
    np.testing.assert_array_equal(times, base.time)
    np.testing.assert_allclose(obs[5], _observables(base, 5))
    for k in (0, 5, 11):
        fd = _temperature_derivative(recipe, k)
        assert np.linalg.norm(jac[k, :, 2] - fd) <= 0.01 * np.linalg.norm(fd)
    assert (jac[:, 100, 3] < 0).all()  # monomer is consumed over time
    assert (jac[:, 100, 1] < 0).all() and (jac[:, 101, 1] < 0).all()  # more initiator: faster, shorter


def test_jacobian_of_a_recipe_that_stops_at_90_percent(jacobians):
    # the stop row: no time dependence, t_stop falls with initiator and temperature (checked by FD)
    recipe = (2.5, 0.02, 80.0)
    obs, jac, stopped, grad, times = jacobians[recipe]
    base = run_ode(Recipe(*recipe))
    assert base.stopped and stopped.tolist() == [False] * (len(times) - 1) + [True]
    assert times[-1] == pytest.approx(base.t_stop)
    assert (jac[-1, :, 3] == 0).all()
    assert np.isnan(grad[:-1]).all() and grad[-1, 1] < 0 and grad[-1, 2] < 0
    h = 0.02 * recipe[1]
    t_plus, t_minus = (run_ode(Recipe(2.5, 0.02 + s * h, 80.0)).t_stop for s in (1, -1))
    assert grad[-1, 1] == pytest.approx((t_plus - t_minus) / (2 * h), rel=0.01)
    fd = _temperature_derivative(recipe, -1)
    assert np.linalg.norm(jac[-1, :, 2] - fd) <= 0.01 * np.linalg.norm(fd)
    assert obs[-1, 100] == pytest.approx(np.log(0.1 * 2.5))  # 90 % conversion


def test_mmd_derivatives_integrate_to_zero(jacobians):
    # sum(w) * DLOGM = 1 for every recipe, so every derivative of w integrates to 0
    for _, jac, *_ in jacobians.values():
        total = jac[:, :100, :].sum(axis=1) * DLOGM
        size = np.abs(jac[:, :100, :]).sum(axis=1) * DLOGM
        assert (np.abs(total) <= 1e-8 * np.maximum(size, 1.0)).all()


def _hand_jacobians(stopped=False, gradient=(np.nan, np.nan, np.nan)):
    """One row, F = diag(4, 1, 0.25, 9): time's information sits in log Mn, the others in the MMD."""
    jac = np.zeros((1, 103, 4))
    jac[0, 0, 0], jac[0, 1, 1], jac[0, 2, 2], jac[0, 101, 3] = 2.0, 1.0, 0.5, 3.0
    return RowJacobians(np.zeros((1, 103)), jac, np.array([stopped]), np.array([gradient], float))


def test_cramer_rao_bound_and_posterior_by_hand():
    rj, sigma = _hand_jacobians(), np.ones((1, 103))
    crb = covariances(rj, sigma)[0]
    np.testing.assert_allclose(crb, np.diag([0.25, 1.0, 4.0, 1 / 9]), atol=1e-15)
    np.testing.assert_allclose(covariances(rj, 2 * sigma)[0], 4 * crb)  # twice the noise, 4x variance
    prior = np.array([1.0, 1.0, 4.0, 0.5])
    post = covariances(rj, sigma, prior_var=prior)[0]
    np.testing.assert_allclose(np.diag(post), 1 / (np.array([4, 1, 0.25, 9]) + 1 / prior))
    # without log Mn the MMD says nothing about time: its posterior variance is the prior's
    assert covariances(rj, sigma, "mmd", prior_var=prior)[0, 3, 3] == pytest.approx(0.5)


def test_stopped_row_takes_time_from_the_stop_gradient():
    # time = t_stop(cBA_0, cAIBN_0, temp): var = g' C g, cov(x, time) = C g, with C = diag(1/4, 1, 4)
    rj = _hand_jacobians(stopped=True, gradient=(1.0, 2.0, 3.0))
    cov = covariances(rj, np.ones((1, 103)))[0]
    assert cov[3, 3] == pytest.approx(0.25 + 4 * 1 + 9 * 4)
    np.testing.assert_allclose(cov[:3, 3], [0.25, 2.0, 12.0])
    np.testing.assert_allclose(cov[3, :3], [0.25, 2.0, 12.0])
    missing = covariances(_hand_jacobians(stopped=True), np.ones((1, 103)))
    assert np.isnan(missing).all()  # a stop without its gradient has no bound


def test_valley_bound_of_a_blind_direction_is_the_midpoint_of_the_box():
    # temperature invisible (zero Jacobian column), everything else measured very precisely: the best
    # estimate of temp is the middle of its range, so R² = 1 - mean((T - 70)²) / var(T); others ~1
    temps = np.repeat([60.0, 65.0, 70.0, 75.0, 80.0, 62.5], 4)
    n = len(temps)
    frame = pd.DataFrame({"cBA_0": np.tile([0.5, 1.0, 2.0, 3.0], 6),
                          "cAIBN_0": np.tile([0.0025, 0.005, 0.01, 0.02], 6),
                          "temp": temps, "time": np.tile([300.0, 900.0, 1800.0, 3600.0], 6)})
    jac = np.zeros((n, 103, 4))
    jac[:, 0, 0], jac[:, 1, 1], jac[:, 2, 3] = 1e6, 1e8, 1e4
    rj = RowJacobians(np.zeros((n, 103)), jac, np.zeros(n, bool), np.full((n, 3), np.nan))
    r2 = valley_bound(frame, rj, np.ones((n, 103)))
    assert r2["temp"] == pytest.approx(1 - np.mean((temps - 70.0) ** 2) / np.var(temps), abs=1e-9)
    for t in ("cBA_0", "cAIBN_0", "time"):
        assert r2[t] > 0.999
