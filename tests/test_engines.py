"""Physics of both engines, the closed-form oracle, and the agreement between them."""

import math

import numpy as np
import pytest

from analysis.design import SAMPLE_TIMES
from analysis.engines import AGREEMENT_RECIPES as LEVELS
from analysis.engines import agreement_table, simulate
from analysis.kinetics import DEFAULT_PARAMETERS, Recipe
from analysis.mmd import DLOGM, LOGM, averages, l1_distance
from analysis.simulation import compare_runs

ORIENTATION = Recipe(1.0, 0.02, 70.0)
# spread over the design: the four (cBA_0, temp) corners at both initiator extremes, and the centre
AGREEMENT_RECIPES = [Recipe(*levels) for levels in LEVELS]


@pytest.fixture(scope="module")
def pairs():
    """The agreement runs of chapter 2 (kMC seed 11 and deterministic), shared with it through the
    run's cache."""
    return agreement_table()[1]


@pytest.fixture(scope="module")
def kmc_runs(pairs):
    return {r: kmc for r, (kmc, _) in zip(AGREEMENT_RECIPES, pairs)}


@pytest.fixture(scope="module")
def ode_runs(pairs):
    return {r: ode for r, (_, ode) in zip(AGREEMENT_RECIPES, pairs)}


def test_closed_form_conversion_of_ideal_kinetics():
    """No backbiting, no transfer, constant kt: X = 1 - exp(-(2kp/kd) sqrt(f kd I0/kt) (1 - e^(-kd t/2)))
    plus the radical build-up lag of the first second."""
    recipe = Recipe(3.0, 0.0025, 60.0)  # long chains: initiation uses a negligible share of monomer
    params = DEFAULT_PARAMETERS.ideal()
    run = simulate(recipe, "ode", params=params, rtol=1e-9, x_stop=1.5)
    k = params.at(recipe.temp)
    t = SAMPLE_TIMES
    ri = 2 * k.f * k.kd * recipe.cAIBN_0
    p_qss = np.sqrt(ri / (2 * k.ktss))
    # radicals build up as p_qss * tanh(t / tau): the quasi-steady formula runs ahead by tau * ln 2
    tau = 1 / np.sqrt(2 * k.ktss * ri)
    exact = 1 - np.exp(-(2 * k.kp / k.kd) * np.sqrt(k.f * k.kd * recipe.cAIBN_0 / k.ktss)
                       * (1 - np.exp(-k.kd * t / 2)) + k.kp * p_qss * tau * np.log(2))
    assert len(run.time) == len(t)
    np.testing.assert_allclose(run.conversion, exact, atol=1e-4)
    assert exact[-1] > 0.5  # the test spans a large conversion range


def test_orientation_values_of_the_default_parameter_set():
    run = simulate(ORIENTATION, "ode")
    assert run.time[-1] == 3600 and not run.stopped
    assert run.conversion[-1] == pytest.approx(0.85, abs=0.02)
    assert run.Mn[-1] == pytest.approx(15000, rel=0.1)
    assert run.Mw[-1] == pytest.approx(45000, rel=0.1)
    assert LOGM[np.argmax(run.mmd[-1])] == pytest.approx(4.6, abs=0.1)


def test_backbiting_makes_mcrs_the_majority_and_slows_the_rate():
    k = DEFAULT_PARAMETERS.at(70.0)
    assert k.kbb / (k.kpt * 1.0) > 10  # [Q]/[P] at 1 mol/L: over 90 % MCRs
    ideal = simulate(ORIENTATION, "ode", params=DEFAULT_PARAMETERS.ideal())
    assert ideal.stopped and ideal.t_stop < 1800


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ode", "kmc"])
def test_physics_of_each_engine(engine, kmc_runs, ode_runs):
    runs = kmc_runs if engine == "kmc" else ode_runs
    for recipe, run in runs.items():
        assert np.all(np.diff(run.conversion) > 0), "conversion rises with time"
        assert np.all(np.diff(run.time) > 0)
        assert np.all(run.Mw >= run.Mn)
        np.testing.assert_allclose(run.mmd.sum(axis=1) * DLOGM, 1.0, atol=1e-12)
        assert np.all(run.mmd >= 0)
        np.testing.assert_allclose(run.cBA, recipe.cBA_0 * (1 - run.conversion), rtol=1e-12)
        # monomer mass balance: consumed monomer sits in the dead polymer (live chains are ~1e-4 of it)
        consumed = recipe.cBA_0 - run.cBA
        np.testing.assert_allclose(run.info["polymer_units"], consumed, rtol=2e-3)
        # averages from the binned MMD agree with the moments within the grid's resolution
        mn, mw = averages(run.mmd)
        np.testing.assert_allclose(mn, run.Mn, rtol=0.02)
        np.testing.assert_allclose(mw, run.Mw, rtol=0.02)
        assert np.all(run.info["mass_inside_grid"] >= 0.995)
        if run.stopped:
            assert run.conversion[-1] == pytest.approx(0.9, abs=1e-6)
            assert run.time[-1] < 3600
        else:
            np.testing.assert_array_equal(run.time, SAMPLE_TIMES)


@pytest.mark.slow
def test_engines_agree_across_the_design(kmc_runs, ode_runs):
    for recipe in AGREEMENT_RECIPES:
        c = compare_runs(kmc_runs[recipe], ode_runs[recipe])
        assert c["stopped"][0] == c["stopped"][1], recipe
        assert c["samples"] == len(ode_runs[recipe].time), recipe
        assert c["conversion"] < 0.01, (recipe, c)
        assert c["Mn_rel"] < 0.05, (recipe, c)
        assert c["Mw_rel"] < 0.05, (recipe, c)
        assert c["mmd_l1"] < 0.05, (recipe, c)


def test_kmc_is_reproducible_and_seeded():
    recipe = Recipe(0.5, 0.02, 80.0)
    a = simulate(recipe, "kmc", seed=3)
    b = simulate(recipe, "kmc", seed=3)
    c = simulate(recipe, "kmc", seed=4)
    np.testing.assert_array_equal(a.mmd, b.mmd)
    np.testing.assert_array_equal(a.conversion, b.conversion)
    assert a.info["events"] == b.info["events"]
    assert not np.array_equal(a.mmd, c.mmd)
    # two seeds differ only by noise
    assert l1_distance(a.mmd, c.mmd).max() < 0.06


def test_rtol_sets_the_accuracy_of_the_deterministic_engine():
    # runs at rtol 1e-6 and 1e-9 differ by about the looser tolerance; 1e-12 and 1e-13 by far less
    r = Recipe(1.5, 0.01, 70.0)
    loose, tight = simulate(r, "ode", rtol=1e-6), simulate(r, "ode", rtol=1e-9)
    tighter, tightest = simulate(r, "ode", rtol=1e-12), simulate(r, "ode", rtol=1e-13)
    d1 = np.abs(loose.conversion - tight.conversion).max()
    d2 = np.abs(tighter.conversion - tightest.conversion).max()
    assert 1e-9 < d1 < 1e-4 and d2 < 1e-9 and d2 < 1e-3 * d1
    assert l1_distance(tighter.mmd, tightest.mmd).max() < 1e-9


def test_stop_rule_at_90_percent_conversion():
    hot = Recipe(3.0, 0.02, 80.0)
    for engine in ("ode", "kmc"):
        run = simulate(hot, engine, **({"seed": 1} if engine == "kmc" else {}))
        assert run.stopped
        on_grid = run.time[:-1]
        np.testing.assert_array_equal(on_grid, SAMPLE_TIMES[: len(on_grid)])
        assert on_grid[-1] < run.time[-1] < on_grid[-1] + 300
        assert math.isclose(run.conversion[-1], 0.9, abs_tol=1e-6)


# --- the observables that break the valley: residual initiator, branching, mid-chain radicals -------

def test_residual_initiator_is_the_first_order_decay_of_aibn(pairs):
    # I(t) = I0 exp(-kd t): the deterministic engine to its tolerance, the kMC count within 5 binomial sd
    for recipe, (kmc, ode) in zip(AGREEMENT_RECIPES, pairs):
        kd = DEFAULT_PARAMETERS.at(recipe.temp).kd
        np.testing.assert_allclose(ode.cAIBN, recipe.cAIBN_0 * np.exp(-kd * ode.time), rtol=1e-7)
        p = np.exp(-kd * kmc.time)
        n0 = recipe.cAIBN_0 * kmc.info["n_monomer_0"] / recipe.cBA_0
        sd = np.sqrt(n0 * p * (1 - p)) / n0
        assert np.all(np.abs(kmc.cAIBN / recipe.cAIBN_0 - p) <= 5 * sd + 2 / n0), recipe


@pytest.mark.slow
def test_branching_and_midchain_fraction_agree_between_the_engines(pairs):
    for recipe, (kmc, ode) in zip(AGREEMENT_RECIPES, pairs):
        n = min(len(kmc.time), len(ode.time))
        np.testing.assert_allclose(kmc.branching[:n], ode.branching[:n], rtol=0.03, err_msg=str(recipe))
        np.testing.assert_allclose(kmc.midchain_fraction[:n], ode.midchain_fraction[:n], rtol=0.03)
        assert np.all((ode.midchain_fraction > 0) & (ode.midchain_fraction < 1))


def test_branching_rises_with_conversion_and_falls_with_monomer_concentration():
    dilute, concentrated = (simulate(Recipe(c, 0.01, 70.0), "ode") for c in (0.5, 3.0))
    for run in (dilute, concentrated):
        assert np.all(np.diff(run.branching) > 0) and np.all(np.diff(run.conversion) > 0)
    # at the same conversion: backbiting competes with propagation, which slows as [M] falls
    x = 0.3
    assert np.interp(x, dilute.conversion, dilute.branching) > 2 * np.interp(x, concentrated.conversion,
                                                                              concentrated.branching)


@pytest.mark.parametrize("recipe, rtol, stops", [
    (Recipe(3.0, 0.02, 80.0), 1e-6, True),  # stops at 90 % conversion
    (Recipe(0.5, 0.0025, 60.0), 1e-6, False),  # runs to the last sample
    (Recipe(1.5, 0.01, 70.0), 1e-10, False),  # the tolerance of the Jacobians
])
def test_the_step_loop_takes_solve_ivps_lsoda_steps_to_the_last_bit(recipe, rtol, stops):
    # the engine drives ODEPACK's LSODA itself; scipy's public solve_ivp with a terminal event must give
    # the same steps and the same stop, bit for bit, and the same dense solution up to the rounding of
    # its sums (scipy's by BLAS, whose last bit depends on the CPU's kernels)
    from scipy.integrate import solve_ivp

    from analysis.ode import _ATOL, DEFAULT_RTOL, _integrate, _rhs

    k = DEFAULT_PARAMETERS.at(recipe.temp)
    y0 = [recipe.cAIBN_0, recipe.cBA_0, recipe.solvent, 0.0, 0.0, 0.0, 0.0, 0.0]
    atol = _ATOL * (rtol / DEFAULT_RTOL) * max(recipe.cBA_0, 1.0)
    m_stop = 0.1 * recipe.cBA_0
    t_end = float(SAMPLE_TIMES[-1])
    ours, t_stop, calls = _integrate(k, y0, t_end, rtol, atol, m_stop, recipe)

    def stop(t, y):
        return y[1] - m_stop

    stop.terminal, stop.direction = True, -1
    ref = solve_ivp(_rhs(k), (0.0, t_end), y0, method="LSODA", rtol=rtol, atol=atol, events=stop,
                    dense_output=True)
    assert (t_stop is not None) == stops == (ref.status == 1) and calls == ref.nfev
    assert np.array_equal(ours.ts, ref.sol.ts)
    if t_stop is not None:
        assert t_stop == ref.t_events[0][0]
    t_last = ours.ts[-1]
    times = np.concatenate([np.linspace(0.0, t_last, 397), ours.ts])
    mine, theirs = ours(times), ref.sol(times)
    scale = np.abs(theirs).max(axis=1, keepdims=True)
    assert np.all(np.abs(mine - theirs) <= 4 * np.finfo(float).eps * scale)
    assert np.mean(mine == theirs) > 0.5  # the same formula: most values to the last bit


def test_a_run_past_its_evaluation_budget_stops_with_a_named_error(monkeypatch):
    from analysis import ode

    recipe = Recipe(1.5, 0.01, 70.0)
    assert ode.run_ode(recipe, rtol=1e-10).info["nfev"] > 2000
    monkeypatch.setattr(ode, "MAX_RHS_CALLS", 1500)
    with pytest.raises(ode.SolverBudgetError, match="1500 evaluations"):
        ode.run_ode(recipe, rtol=1e-10)
