"""What to measure: the observation sets, the linearised SEC operator against the measurement model it
linearises, the bound under measurement against chapter 8's where they must agree, and the commands."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.dataset import OBSERVABLE_COLUMNS, SHEETS, load_dataset
from analysis.design import TARGETS, recipe_groups
from analysis.identifiability import design_jacobians, noise_model, valley_bound
from analysis.measurement import (
    PROFILES,
    ObservationError,
    Profile,
    measure_mmd,
    measured_trace,
    trace_operator,
)
from analysis.mmd import DLOGM, LOGM
from analysis.what_to_measure import (
    design_ceiling,
    design_lattice,
    inversion_against_bound,
    measured_bound,
    measured_frame,
    parse_observe,
    partner_rows,
    whitened_jacobian,
)


def _lognormal(centre: float = 4.3, width: float = 0.25) -> np.ndarray:
    w = np.exp(-0.5 * ((LOGM - centre) / width) ** 2)
    return w / (w.sum() * DLOGM)


def test_observation_sets_are_parsed_in_a_fixed_order_and_bad_ones_are_named():
    assert parse_observe("composite") == ()
    assert parse_observe("composite, branching,temp") == ("temp", "branching")
    for bad, word in [("temp", "starts with 'composite'"), ("composite,pH", "unknown"),
                      ("composite,temp,temp", "twice"), ("", "starts with")]:
        with pytest.raises(ObservationError, match=word):
            parse_observe(bad)


def test_the_linearised_operator_matches_the_measurement_model_it_linearises():
    # independent routes: measure_mmd (no noise) at a small calibration shift and at a perturbed trace,
    # against the operator's derivatives; the measured trace itself is measure_mmd's
    p = Profile("t", broadening=0.05, cutoff_logm=2.7)
    w = _lognormal(centre=3.4, width=0.35)
    op = trace_operator(w, p)
    rng = np.random.default_rng(0)
    measured = measure_mmd(w, p, rng)[0][0]
    np.testing.assert_allclose(op.trace, measured[op.kept], rtol=1e-12)
    h = 1e-3
    shifted = [measure_mmd(w, Profile("t", calibration_bias=s, broadening=0.05, cutoff_logm=2.7), rng)[0][0]
               for s in (h, -h)]
    np.testing.assert_allclose(op.d_shift, (shifted[0] - shifted[1])[op.kept] / (2 * h),
                               atol=1e-4 * np.abs(op.d_shift).max())
    dw = 1e-3 * w * np.sin(3 * LOGM)  # keeps the trace positive (measure_mmd clips at zero)
    moved = measure_mmd(w + dw, p, rng)[0][0] - measure_mmd(w - dw, p, rng)[0][0]
    np.testing.assert_allclose(op.d_trace @ dw, moved[op.kept] / 2, atol=1e-6 * np.abs(moved).max())


def test_the_detector_covariance_is_that_of_the_simulated_detector_noise():
    # relative noise only, so that measure_mmd's clip at zero never acts (see `trace_operator`)
    p = Profile("d", detector_relative=0.02, noise_correlation=0.1)
    w = _lognormal()
    op = trace_operator(w, p)
    draws = measure_mmd(np.tile(w, (40000, 1)), p, np.random.default_rng(3))[0]
    empirical = np.cov(draws.T)
    peak = slice(40, 64)  # log M 3.8 to 4.9, around the peak at 4.3
    np.testing.assert_allclose(np.diag(empirical)[peak], np.diag(op.detector)[peak], rtol=0.03)
    np.testing.assert_allclose(empirical[50, 50:56], op.detector[50, 50:56], rtol=0.05)  # the correlation


@pytest.fixture(scope="module")
def four_recipes():
    data = load_dataset(observables=True)
    chosen = np.isin(recipe_groups(data), [13, 150, 262, 401])  # four levels of each target
    return data[chosen].reset_index(drop=True)


@pytest.fixture(scope="module")
def jacobians(four_recipes):
    rj = design_jacobians(four_recipes, jobs=1, extended=True)
    return rj, noise_model(four_recipes, rj)


def test_extended_jacobians_keep_the_composite_block_and_add_the_initiators_decay(four_recipes, jacobians):
    rj, sigma = jacobians
    plain = design_jacobians(four_recipes, jobs=1)
    np.testing.assert_array_equal(rj.jac[:, :103], plain.jac)
    ok = ~rj.stopped
    # d ln cAIBN / d cAIBN_0 = 1 / cAIBN_0 (first order decay), d ln cAIBN / d time = -kd < 0
    np.testing.assert_allclose(rj.jac[ok, 103, 1], 1 / four_recipes.cAIBN_0[ok], rtol=1e-6)
    assert (rj.jac[ok, 103, 3] < 0).all()
    assert np.isfinite(sigma[:, 103:]).all() and (sigma[:, 103:] > 0).all()


def test_without_an_instrument_the_bound_is_chapter_8s(four_recipes, jacobians):
    rj, sigma = jacobians
    mine = measured_bound(four_recipes, rj, sigma, "ideal", "composite")
    assert mine == pytest.approx(valley_bound(four_recipes, rj, sigma), abs=1e-12)


def test_the_inversion_is_scored_against_the_bound_on_its_own_rows(four_recipes, jacobians, monkeypatch):
    """The bound on the sampled rows is the bound of a frame of those rows only (rescaled to the design's
    variance), rows at the 90 % stop are left out, and an inversion off by a known amount scores
    1 - offset² / variance."""
    import dataclasses

    import analysis.what_to_measure as wtm

    rj, sigma = jacobians
    offset = {"cBA_0": 0.05, "cAIBN_0": 0.001, "temp": 1.5, "time": 60.0}

    def shifted(frame, noise, n_rows, seed, jobs, observe, recipes, calibrated):
        rows, _ = wtm.measured_sample(frame, noise, n_rows, seed, observe, recipes)
        return rows, pd.DataFrame({f"{t} mean": rows[t] + offset[t] for t in TARGETS}, index=rows.index)

    monkeypatch.setattr(wtm, "measured_inversions", shifted)
    table = inversion_against_bound(four_recipes, rj, sigma, "typical", {"+ temp": ("temp",)}, n_rows=20,
                                    seed=2)
    rows, _ = wtm.measured_sample(four_recipes, "typical", 20, 2, "composite,temp", "check")
    at = four_recipes.index.get_indexer(rows.index)
    kept = at[~rj.stopped[at]]
    assert 0 < len(kept) < 20 and table.loc[("+ temp", "bound"), "rows"] == len(kept)
    variance = four_recipes.loc[~rj.stopped, TARGETS].var(ddof=0)
    inversion = table.loc[("+ temp", "inversion"), TARGETS]
    np.testing.assert_allclose(inversion, 1 - pd.Series(offset)[TARGETS] ** 2 / variance, rtol=1e-12)
    only = four_recipes.iloc[kept].reset_index(drop=True)
    only_rj = dataclasses.replace(rj, **{f.name: getattr(rj, f.name)[kept] for f in dataclasses.fields(rj)})
    own = pd.Series(measured_bound(only, only_rj, sigma[kept], "typical", "composite,temp"))[TARGETS]
    expected = 1 - (1 - own) * only[TARGETS].var(ddof=0) / variance
    bound = table.loc[("+ temp", "bound"), TARGETS]
    np.testing.assert_allclose(bound, expected, rtol=1e-10)
    np.testing.assert_allclose(table.loc[("+ temp", "gap"), TARGETS], bound - inversion, atol=1e-12)


def test_a_known_temperature_gives_its_own_precision_and_noise_costs_information(four_recipes, jacobians):
    rj, sigma = jacobians
    with_temp = measured_bound(four_recipes, rj, sigma, "typical", "composite,temp")
    good = ~rj.stopped
    expected = 1 - PROFILES["typical"].known_temp ** 2 / four_recipes.temp[good].var(ddof=0)
    assert with_temp["temp"] == pytest.approx(expected, abs=2e-3)
    ideal, typical, poor = (measured_bound(four_recipes, rj, sigma, n, "composite")["cBA_0"]
                            for n in ("ideal", "typical", "poor"))
    assert ideal > typical > poor
    # with an instrument, Mn and Mw add nothing to the trace they are computed from: the whitened
    # observation is the kept trace points (less the area) and cBA_time
    jw = whitened_jacobian(four_recipes, rj, sigma, PROFILES["typical"], (), int(np.flatnonzero(good)[0]))
    assert jw.shape == ((LOGM >= PROFILES["typical"].cutoff_logm).sum() + 1, 4)


def test_the_second_sample_is_the_same_run_ten_minutes_later_or_earlier(four_recipes, jacobians):
    rj, _ = jacobians
    partner = partner_rows(four_recipes, rj)
    have = partner >= 0
    assert have.mean() > 0.8
    same = (four_recipes[["cBA_0", "cAIBN_0", "temp"]].to_numpy()[have]
            == four_recipes[["cBA_0", "cAIBN_0", "temp"]].to_numpy()[partner[have]]).all()
    gap = np.abs(four_recipes.time.to_numpy()[partner[have]] - four_recipes.time.to_numpy()[have])
    assert same and np.all(gap == 600.0)


def test_measured_rows_keep_the_schema_and_add_what_is_observed(four_recipes):
    rows = measured_frame(four_recipes, "typical", "composite,temp,cAIBN_time,sample2", seed=1)
    unobserved = ["branching", "midchain_fraction"]  # the simulation's true values are not reported
    kept = [c for c in four_recipes.columns if c not in unobserved]
    assert list(rows.columns[: len(kept)]) == kept and not set(unobserved) & set(rows.columns)
    assert {"known_temp", "MMD2_1", "cBA_time2", "dt2"} <= set(rows.columns)
    mmd = rows[[f"MMD{k}" for k in range(1, 101)]].to_numpy()
    np.testing.assert_allclose(mmd.sum(axis=1) * DLOGM, 1.0, rtol=1e-12)
    assert (mmd[:, LOGM < 2.7] == 0).all() and (rows.Mw > rows.Mn).all()
    assert np.std(np.log(rows.cAIBN_time / four_recipes.cAIBN_time)) == pytest.approx(0.05, rel=0.3)
    assert np.abs(rows.known_temp - four_recipes.temp).max() < 5 * PROFILES["typical"].known_temp
    again = measured_frame(four_recipes, "typical", "composite,temp,cAIBN_time,sample2", seed=1)
    pd.testing.assert_frame_equal(rows, again)


@pytest.fixture(scope="module")
def workbook_with_observables(tmp_path_factory, four_recipes):
    path = tmp_path_factory.mktemp("observed") / "four.xlsx"
    frame = four_recipes.assign(recipe_id=recipe_groups(four_recipes) + 1)
    with pd.ExcelWriter(path) as writer:
        for sheet, columns in SHEETS.items():
            frame[columns].to_excel(writer, sheet_name=sheet, index=False)
        frame[OBSERVABLE_COLUMNS].to_excel(writer, sheet_name="observables", index=False)
    return path


def test_bound_command_json_and_its_errors(workbook_with_observables, four_recipes, jacobians, capsys):
    rj, sigma = jacobians
    assert main(["bound", "--noise", "typical", "--observe", "composite,cAIBN_time", "--json",
                 "--data", str(workbook_with_observables)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["noise"] == "typical" and out["observe"] == ["composite", "cAIBN_time"]
    assert set(out["r2"]) == set(TARGETS)
    assert out["r2"] == pytest.approx(measured_bound(four_recipes, rj, sigma, "typical", ("cAIBN_time",)))
    assert main(["bound", "--observe", "composite,viscosity", "--data", str(workbook_with_observables)]) == 2
    assert "unknown observable" in capsys.readouterr().err
    # the sound ceiling: the same as the function's, with its Monte Carlo error
    assert main(["bound", "--observe", "composite,temp", "--method", "ceiling", "--json",
                 "--data", str(workbook_with_observables)]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = design_ceiling(design_lattice(four_recipes, rj, sigma), "typical", ("temp",))
    assert out["method"] == "ceiling" and out["r2"] == pytest.approx(expected.loc["R²"].to_dict(), abs=1e-12)
    assert set(out["se"]) == set(TARGETS) and out["r2"]["temp"] > 0.99  # a known temperature to 0.1 °C
    assert main(["bound", "--observe", "composite,sample2", "--method", "ceiling",
                 "--data", str(workbook_with_observables)]) == 2
    assert "single samples" in capsys.readouterr().err


def test_evaluate_on_measured_rows_refuses_what_it_cannot_do(workbook_with_observables, capsys):
    assert main(["evaluate", "--noise", "typical", "--model", "rf", "--data",
                 str(workbook_with_observables)]) == 2
    assert "drop --model rf" in capsys.readouterr().err
    assert main(["evaluate", "--noise", "typical", "--split", "rows", "--data",
                 str(workbook_with_observables)]) == 2
    assert "drop --split rows" in capsys.readouterr().err


def test_the_candidate_search_leaves_out_the_case_recipe_and_ranks_an_exact_match_first(four_recipes):
    from analysis.candidates import candidate_search

    target = four_recipes.iloc[5]
    found = candidate_search(four_recipes, target, k=3)
    own = (found[["cBA_0", "cAIBN_0", "temp"]] == target[["cBA_0", "cAIBN_0", "temp"]].to_numpy()).all(axis=1)
    assert len(found) == 3 and not own.any() and found.score.is_monotonic_increasing
    twin = target.copy()
    twin["cBA_0"] = 9.9  # the same polymer under another recipe: a perfect match
    grid = pd.concat([four_recipes, twin.to_frame().T], ignore_index=True)
    best = candidate_search(grid, target, k=2)
    assert best.iloc[0].cBA_0 == 9.9 and best.iloc[0].score == pytest.approx(0.0, abs=1e-12)


def test_an_inversion_of_a_measured_row_conditions_on_what_its_set_observes_only(four_recipes):
    from analysis.roundtrip import observation_of

    plain = observation_of(measured_frame(four_recipes, "typical", "composite", seed=1).iloc[0])
    assert plain.extras == ["cBA_time", "Mn", "Mw"] and plain.known == []
    row = measured_frame(four_recipes, "typical", "composite,temp,cAIBN_time", seed=1).iloc[0]
    more = observation_of(row)
    assert more.extras == ["cBA_time", "Mn", "Mw", "cAIBN_time"] and more.known == ["temp"]
    assert (more.temp, more.cAIBN_time) == (row.known_temp, row.cAIBN_time)
    assert more.cAIBN_time != four_recipes.cAIBN_time.iloc[0]  # measured, not the simulation's value


def test_the_inversions_noise_of_a_measured_scalar_is_its_analysis_plus_the_simulators_scatter():
    from analysis.inversion import SIMULATOR_SCATTER, Observation, measurement_noise

    typical = PROFILES["typical"]
    noise = measurement_noise(Observation(_lognormal(), 0.5, cAIBN_time=0.005, branching=2.0), typical)
    for name in ("cAIBN_time", "branching", "cBA_time"):  # the analysis' precision is counted once
        assert noise[name] == pytest.approx(np.hypot(getattr(typical, name), SIMULATOR_SCATTER[name]))
        assert noise[name] < 1.2 * getattr(typical, name)
    assert (noise["temp"], noise["time"]) == (typical.known_temp, typical.known_time)


def test_the_ceilings_posterior_is_the_gaussian_density_of_the_bounds_covariance(four_recipes, jacobians):
    """The ceiling's posterior mean (whitening, log-determinants, scalars) against the Gaussian density
    (Cholesky) of the covariance the bound uses (`_observation_cov`), over all rows, for observations
    half-way between two samples of a run (so that the posterior is spread over both)."""
    from scipy.linalg import cho_factor, cho_solve

    from analysis.what_to_measure import _observation_cov, _scalars, design_lattice, posterior_means

    rj, sigma = jacobians
    lattice = design_lattice(four_recipes, rj, sigma)
    p, extra = PROFILES["typical"], ("cAIBN_time",)
    traces = np.array([measured_trace(w, p) for w in lattice.observed[:, :100]])
    scalars, sds = _scalars(lattice, p, extra)
    rows = np.arange(len(traces))
    # the renormalised trace has no noise along its area: one trace point less makes the density proper
    # (and changes it by the same factor for every row)
    keep = np.r_[np.arange(traces.shape[1] - 1), traces.shape[1] + np.arange(2)]
    factors = [cho_factor(_observation_cov(rj, sigma, i, p, extra)[np.ix_(keep, keep)]) for i in rows]
    spread = 0
    for k in np.flatnonzero(~rj.stopped[:-1] & ~rj.stopped[1:]):
        observed = 0.5 * (np.r_[traces[k], scalars[k]] + np.r_[traces[k + 1], scalars[k + 1]])
        log_density = []
        for i, factor in zip(rows, factors):
            r = (observed - np.r_[traces[i], scalars[i]])[keep]
            log_density.append(-0.5 * r @ cho_solve(factor, r) - np.log(np.diag(factor[0])).sum())
        weight = np.exp(np.array(log_density) - max(log_density))
        if weight.max() / weight.sum() > 0.99:
            continue
        spread += 1
        mine = posterior_means(lattice, p, (traces, scalars, sds), rows, observed[None, :-2],
                               observed[None, -2:])
        np.testing.assert_allclose(mine[0], weight @ lattice.targets / weight.sum(), rtol=1e-6)
    assert spread >= 3  # compared where the posterior is spread over rows, not on one


def test_the_ceiling_is_one_without_noise_and_its_nearest_rows_carry_the_posterior(four_recipes, jacobians):
    from analysis.what_to_measure import Lattice, design_ceiling, design_lattice

    rj, sigma = jacobians
    lattice = design_lattice(four_recipes, rj, sigma)
    quiet = Lattice(lattice.targets, lattice.observed, lattice.sigma * 1e-4)
    assert design_ceiling(quiet, "ideal", "composite").loc["R²"].to_numpy() == pytest.approx(1.0, abs=1e-9)
    noisy = Lattice(lattice.targets, lattice.observed, lattice.sigma * 30)
    few, every = (design_ceiling(noisy, "ideal", "composite", candidates=n) for n in (12, len(noisy.targets)))
    pd.testing.assert_frame_equal(few, every, rtol=0, atol=1e-4)  # R² to 1e-4 from a quarter of the rows
    assert (every.loc["R²"] < 0.99).any()  # noise spreads the posterior over more than one row
    with pytest.raises(ObservationError, match="single samples"):
        design_ceiling(lattice, "typical", "composite,sample2")
    # the original workbook has no observables sheet: no kMC noise for the residual initiator, whose
    # analysis is then its whole noise (as in the bound)
    unknown = sigma.copy()
    unknown[:, 103:] = np.nan
    without = design_lattice(four_recipes, rj, unknown)
    assert len(without.targets) == len(lattice.targets)
    assert np.isfinite(design_ceiling(without, "typical", "composite,cAIBN_time").to_numpy()).all()
