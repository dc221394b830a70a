"""Identifiability: Jacobians against independent finite differences, the valley bound against cases
solved by hand, and the whole pipeline on a few recipes."""

import numpy as np
import pandas as pd
import pytest

from analysis.design import TARGETS
from analysis.identifiability import (
    RowJacobians,
    design_jacobians,
    noise_model,
    recipe_jacobians,
    stability,
    valley_bound,
    weakest_direction,
)
from analysis.kinetics import Recipe
from analysis.mmd import DLOGM
from analysis.ode import run_ode


def _observables(run, k):
    return np.concatenate([run.mmd[k], np.log([run.cBA[k], run.Mn[k], run.Mw[k]])])


def _temperature_derivative(recipe, k, h=0.1):
    c, i, t = recipe
    plus, minus = run_ode(Recipe(c, i, t + h), rtol=1e-10), run_ode(Recipe(c, i, t - h), rtol=1e-10)
    return (_observables(plus, k) - _observables(minus, k)) / (2 * h)


@pytest.fixture(scope="module")
def jacobians():
    return {r: recipe_jacobians(r) for r in [(1.3, 0.006, 66.0), (2.5, 0.02, 80.0)]}


def test_jacobian_of_a_recipe_that_runs_to_the_end(jacobians):
    # shapes, observables of the base run, temperature column against an independent finite difference
    recipe = (1.3, 0.006, 66.0)
    obs, jac, stopped, grad, times = jacobians[recipe]
    base = run_ode(Recipe(*recipe), rtol=1e-12)
    assert not base.stopped and not stopped.any() and np.isnan(grad).all()
    assert obs.shape == (12, 103) and jac.shape == (12, 103, 4) and not np.isnan(jac).any()
    np.testing.assert_array_equal(times, base.time)
    np.testing.assert_allclose(obs[5], _observables(base, 5))
    for k in (0, 5, 11):
        fd = _temperature_derivative(recipe, k)
        assert np.linalg.norm(jac[k, :, 2] - fd) <= 1e-3 * np.linalg.norm(fd)
    # the time column is exact (from the right-hand side): it matches a finite difference in time
    h = 1.0
    plus = run_ode(Recipe(*recipe), rtol=1e-11, sample_times=times + h)
    minus = run_ode(Recipe(*recipe), rtol=1e-11, sample_times=times - h)
    for k in (0, 5, 11):
        fd = (_observables(plus, k) - _observables(minus, k)) / (2 * h)
        assert np.linalg.norm(jac[k, :, 3] - fd) <= 1e-4 * np.linalg.norm(fd)
    assert (jac[:, 100, 3] < 0).all()  # monomer is consumed over time
    assert (jac[:, 100, 1] < 0).all() and (jac[:, 101, 1] < 0).all()  # more initiator: faster, shorter


def test_exact_rates_of_residual_initiator_and_branching_match_finite_differences():
    # d ln cAIBN / dt from the right-hand side and d ln branching / dt from the branch points' formation
    # rate against central differences in the sampling time; initiator decays, branching density rises
    times, h = np.array([300.0, 1500.0, 3300.0]), 1.0
    for recipe in (Recipe(1.3, 0.006, 66.0), Recipe(0.5, 0.02, 80.0)):
        rates = run_ode(recipe, rtol=1e-11, sample_times=times, with_rates=True).info["rates"]
        plus, minus = (run_ode(recipe, rtol=1e-11, sample_times=times + s * h) for s in (1.0, -1.0))
        n = min(len(plus.time), len(minus.time)) - int(plus.stopped or minus.stopped)
        assert rates.shape == (len(times), 105) and n >= 2
        for column, name in ((103, "cAIBN"), (104, "branching")):
            fd = (np.log(getattr(plus, name)[:n]) - np.log(getattr(minus, name)[:n])) / (2 * h)
            np.testing.assert_allclose(rates[:n, column], fd, rtol=1e-4)
        assert (rates[:n, 103] < 0).all() and (rates[:n, 104] > 0).all()


def test_jacobian_of_a_recipe_that_stops_at_90_percent(jacobians):
    # the stop row: no time dependence, t_stop falls with initiator and temperature (checked by FD)
    recipe = (2.5, 0.02, 80.0)
    obs, jac, stopped, grad, times = jacobians[recipe]
    base = run_ode(Recipe(*recipe), rtol=1e-12)
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


def _blind_frame():
    temps = np.repeat([60.0, 65.0, 70.0, 75.0, 80.0, 62.5], 4)
    return pd.DataFrame({"cBA_0": np.tile([0.5, 1.0, 2.0, 3.0], 6),
                         "cAIBN_0": np.tile([0.0025, 0.005, 0.01, 0.02], 6),
                         "temp": temps, "time": np.tile([300.0, 900.0, 1800.0, 3600.0], 6)})


def test_valley_bound_of_a_blind_initiator_is_the_prior_mean_of_the_initiator():
    # initiator invisible: the estimate is its mean over the box under the prior, uniform in mol/L
    # (the midpoint 0.01125) or uniform in log (the logarithmic mean (hi - lo) / ln(hi / lo))
    frame = _blind_frame()
    n = len(frame)
    jac = np.zeros((n, 103, 4))
    jac[:, 0, 0], jac[:, 1, 2], jac[:, 2, 3] = 1e6, 1e6, 1e4
    rj = RowJacobians(np.zeros((n, 103)), jac, np.zeros(n, bool), np.full((n, 3), np.nan))
    c = frame.cAIBN_0.to_numpy()
    for prior, estimate in (("design", 0.01125), ("log", (0.02 - 0.0025) / np.log(8.0))):
        r2 = valley_bound(frame, rj, np.ones((n, 103)), prior=prior)
        assert r2["cAIBN_0"] == pytest.approx(1 - np.mean((c - estimate) ** 2) / np.var(c), abs=1e-6), prior
        assert min(r2["cBA_0"], r2["temp"], r2["time"]) > 0.999
    with pytest.raises(ValueError, match="prior"):
        valley_bound(frame, rj, np.ones((n, 103)), prior="flat")


@pytest.fixture(scope="module")
def two_recipes(data):
    key = data[["cBA_0", "cAIBN_0", "temp"]].apply(tuple, axis=1)
    return data[key.isin([(1.5, 0.01, 70.0), (2.5, 0.005, 65.0)])].reset_index(drop=True)


def test_the_identifiability_pipeline_on_two_recipes(two_recipes):
    # every row gets a Jacobian; the noise model is positive; the weakest direction trades initiator
    # for temperature (about -10 %/K) and is thousands of times weaker than the strongest; a bound
    # under kMC noise keeps cBA_0 and loses most of the initiator
    rows = two_recipes
    rj = design_jacobians(rows, jobs=1)
    assert np.isfinite(rj.jac).all() and rj.jac.shape == (len(rows), 103, 4)
    sigma = noise_model(rows, rj)
    assert (sigma > 0).all() and sigma.shape == (len(rows), 103)
    weak = weakest_direction(rows, rj, sigma)
    assert (weak.s4 < 1e-3 * weak.s1).all() and (weak.s3 > 10 * weak.s4).all()
    assert ((weak.dlnI_dT < -0.05) & (weak.dlnI_dT > -0.2)).all()
    bound = valley_bound(rows, rj, sigma)
    assert set(bound) == set(TARGETS) and bound["cBA_0"] > 0.99


def test_each_rows_valley_is_integrated_alone_however_the_rows_are_grouped(two_recipes, monkeypatch):
    # valley_mse integrates rows in chunks: a row's Bayes error is the one it has alone, with chunks of
    # any size; rows left out stay NaN, and the errors are positive
    from analysis import identifiability
    from analysis.design import unit_span

    rows = two_recipes
    rj = design_jacobians(rows, jobs=1)
    sigma = noise_model(rows, rj)
    factor = unit_span(rows[TARGETS].to_numpy(float))

    def jacobian(r):
        return rj.jac[r] / sigma[r, :, None] * factor[r]

    ok = ~rj.stopped
    ok[::4] = False
    together = identifiability.valley_mse(rows, ok, jacobian)
    alone = np.full_like(together, np.nan)
    for r in np.flatnonzero(ok):
        alone[r] = identifiability.valley_mse(rows, np.arange(len(rows)) == r, jacobian)[r]
    monkeypatch.setattr(identifiability, "VALLEY_CHUNK", 3)
    chunked = identifiability.valley_mse(rows, ok, jacobian)
    assert np.isnan(together[~ok]).all() and (together[ok] > 0).all() and ok.sum() > 6
    np.testing.assert_allclose(together, alone, rtol=1e-12)
    np.testing.assert_allclose(chunked, alone, rtol=1e-12)


@pytest.mark.slow
def test_the_weakest_singular_value_is_converged_in_solver_tolerance_and_step(data):
    settings = {"book": (1e-12, 2.5e-4), "tighter": (1e-13, 2.5e-4), "half step": (1e-12, 1.25e-4)}
    table = stability(data, settings, n_recipes=4, seed=3)
    spread = (table.max() - table.min()) / table.abs().max()
    assert (spread[["s1", "s2", "s3", "s4", "dlnI_dT"]] < 0.01).all(), table
