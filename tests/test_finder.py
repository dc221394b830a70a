"""The physics inversion's posterior along the valley, the round trip, the finder and `invert`."""

import gzip
import json
import pickle
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

from analysis.calibration import interval_factors, widen
from analysis.design import BOX, CENTRE, TARGETS, from_unit, to_unit
from analysis.finder import FAILED_FIT, KNOWN_MISFIT, check_known, find_recipe, known_values_blamed
from analysis.inversion import (
    NOISE,
    PRIOR_FLOOR,
    Observation,
    ProfilePoint,
    conditional_fit,
    disagreements,
    forward,
    invert,
    measurement_noise,
    posterior_from_profile,
    profile,
    profile_table,
    residuals,
)
from analysis.measurement import PROFILES
from analysis.mmd import MMD_COLUMNS
from analysis.roundtrip import interval_hits, roundtrip_table
from analysis.sec_file import InputError, read_sec_file

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
TRUTH = json.loads((EXAMPLES / "truth.json").read_text())
MEASURED = json.loads((EXAMPLES / "measured.json").read_text())
OFF_GRID = {"cBA_0": 2.2, "cAIBN_0": 0.0042, "temp": 66.5, "time": 2250.0}


def _observe(recipe: dict, noise: float = 0.0, seed: int = 0) -> Observation:
    """The deterministic polymer of a recipe, optionally with kMC-like noise: sd 0.012 sqrt(w) on each
    MMD point (the workbook's kMC scatter is 0.015 where w is near 1), 0.3 % on cBA_time, Mn and Mw."""
    sim = forward(recipe)
    rng = np.random.default_rng(seed)
    w = sim["mmd"] + noise * 0.012 * np.sqrt(sim["mmd"]) * rng.standard_normal(100)
    extras = [sim[n] * (1 + noise * 0.003 * rng.standard_normal()) for n in ("cBA_time", "Mn", "Mw")]
    return Observation(np.clip(w, 0.0, None), *extras)


@pytest.fixture(scope="module")
def noise_free():
    return invert(_observe(OFF_GRID), starts=[CENTRE])


def test_the_recipe_of_a_noise_free_polymer_makes_the_same_polymer(noise_free):
    result = noise_free
    assert result.mmd_l1 < 2e-3 and result.misfit < 1e-3 and result.inflation == 1.0
    assert abs(result.recipe["cBA_0"] - OFF_GRID["cBA_0"]) < 0.02 * 2.5
    for name, (lo, hi) in result.interval.items():
        assert lo <= OFF_GRID[name] <= hi, name
        assert lo <= result.median[name] <= hi and lo <= result.mean[name] <= hi
    assert result.correlation < -0.8  # warmer with less initiator: the valley
    # the recipe is the conditional fit at the posterior median temperature
    assert result.recipe["temp"] == pytest.approx(result.median["temp"], abs=1e-9)


def test_the_posterior_is_a_distribution_over_the_box(noise_free):
    post = noise_free.posterior
    assert post.weights.sum() == pytest.approx(1.0) and (post.weights >= 0).all()
    assert post.cells[0, 0] == BOX["temp"][0] and post.cells[-1, 1] == BOX["temp"][1]
    np.testing.assert_allclose(post.cells[1:, 0], post.cells[:-1, 1])
    for t in TARGETS:
        x = np.linspace(*BOX[t], 50)
        cdf = post.cdf(t, x)
        assert (np.diff(cdf) >= -1e-12).all()
        for q in (0.05, 0.5, 0.95):
            assert post.cdf(t, post.quantile(t, q))[0] == pytest.approx(q, abs=1e-6)
    # the temperature's density is continuous (interpolated between the profile's temperatures, no step
    # at a cell's edge), integrates to 1, and is the derivative of its CDF
    x = np.linspace(*BOX["temp"], 20001)
    d = post.density("temp", x)
    assert np.trapezoid(d, x) == pytest.approx(1.0, abs=1e-6)
    assert np.abs(np.diff(d)).max() < 0.01 * d.max()
    mid = 0.5 * (x[1:] + x[:-1])
    np.testing.assert_allclose(np.diff(post.cdf("temp", x)) / np.diff(x), post.density("temp", mid),
                               atol=1e-6 * d.max())


def _inside_box(u: np.ndarray, jac: np.ndarray) -> float:
    """The mass inside the unit box of a Gaussian piece at u with precision jac'jac + PRIOR_FLOOR (the
    free targets: cBA_0, cAIBN_0, time)."""
    sd = 1.0 / np.sqrt(np.diag(jac.T @ jac) + PRIOR_FLOOR)
    c = u[[0, 1, 3]]
    return float(np.prod(ndtr((1.0 - c) / sd) - ndtr(-c / sd)))


def test_posterior_weights_by_hand():
    # three profile points with the same fit quality and curvature: the mass of each is its cell's
    # width times the prior density, uniform in mol/L, i.e. proportional to its cAIBN_0 in the box's
    # log coordinates, times the share of its piece inside the box (about half for the one at the
    # initiator's lower bound); a fourth point 4 chi² units worse weighs exp(-2) as much
    jac = np.eye(103, 3) * 50.0
    u = [to_unit({"cBA_0": 1.0, "cAIBN_0": c, "temp": t, "time": 1200.0})
         for c, t in ((0.01, 60.0), (0.005, 70.0), (0.0025, 80.0))]
    points = [ProfilePoint(x, 100.0, jac) for x in u]
    post = posterior_from_profile(np.array([60.0, 70.0, 80.0]), points)
    widths = np.array([5.0, 10.0, 5.0])
    inside = np.array([_inside_box(x, jac) for x in u])
    assert inside[2] == pytest.approx(0.5, abs=1e-6) and inside[0] == pytest.approx(1.0, abs=1e-9)
    expected = widths * np.array([0.01, 0.005, 0.0025]) * inside
    np.testing.assert_allclose(post.weights, expected / expected.sum(), rtol=1e-9)
    assert post.inflation == pytest.approx(100.0 / 103 if 100.0 / 103 > 1 else 1.0)
    worse = points[:2] + [ProfilePoint(u[2], 104.0, jac)]
    ratio = posterior_from_profile(np.array([60.0, 70.0, 80.0]), worse).weights
    assert ratio[2] / ratio[1] == pytest.approx(post.weights[2] / post.weights[1] * np.exp(-2.0), rel=1e-9)


def test_a_piece_against_a_bound_is_cut_there_not_moved():
    # one temperature, its fit on the initiator's lower bound, sd 0.2 of the log range: the marginal is the
    # Gaussian's upper half (a half-normal in the log coordinate), so it integrates to one inside the box,
    # its 90 % interval starts at the bound and ends at 1.645 sd, and its median lies 0.674 sd inside
    jac = np.zeros((103, 3))
    jac[[0, 1, 2], [0, 1, 2]] = 50.0, 5.0, 50.0
    u = to_unit({"cBA_0": 1.0, "cAIBN_0": BOX["cAIBN_0"][0], "temp": 70.0, "time": 1200.0})
    post = posterior_from_profile(np.array([70.0]), [ProfilePoint(u, 100.0, jac)])
    sd = 1.0 / np.sqrt(25.0 + PRIOR_FLOOR)
    x = np.linspace(*BOX["cAIBN_0"], 20001)
    assert np.trapezoid(post.density("cAIBN_0", x), x) == pytest.approx(1.0, abs=1e-4)
    ends = post.cdf("cAIBN_0", np.array(BOX["cAIBN_0"]))
    assert ends == pytest.approx([0.0, 1.0], abs=1e-12)
    lo, hi = post.interval()["cAIBN_0"]
    u_hi = to_unit({**CENTRE, "cAIBN_0": hi})[1]
    assert lo == BOX["cAIBN_0"][0] and u_hi == pytest.approx(1.6449 * sd, abs=1e-3)
    assert to_unit({**CENTRE, "cAIBN_0": post.median["cAIBN_0"]})[1] == pytest.approx(0.6745 * sd, abs=1e-4)
    # the same at the upper bound: the interval ends on the bound itself (0.02, not its log round trip)
    top = to_unit({"cBA_0": 1.0, "cAIBN_0": BOX["cAIBN_0"][1], "temp": 70.0, "time": 1200.0})
    upper = posterior_from_profile(np.array([70.0]), [ProfilePoint(top, 100.0, jac)])
    assert upper.interval()["cAIBN_0"][1] == 0.02


def test_a_fit_worse_than_the_noise_widens_the_posterior():
    # Birge ratio: chi² per value of 10 at best -> the likelihood is tempered by 10
    jac = np.eye(103, 3) * 50.0
    u = [to_unit({"cBA_0": 1.0, "cAIBN_0": 0.005, "temp": t, "time": 1200.0}) for t in (60.0, 70.0, 80.0)]
    chi2 = [1030.0, 1040.0, 1050.0]
    points = [ProfilePoint(x, c, jac) for x, c in zip(u, chi2)]
    post = posterior_from_profile(np.array([60.0, 70.0, 80.0]), points)
    assert post.inflation == pytest.approx(10.0)
    np.testing.assert_allclose(post.weights[1] / post.weights[0], 2 * np.exp(-0.5), rtol=1e-9)


def test_conditional_fit_holds_its_temperature_and_profile_walks_both_ways():
    obs = _observe(OFF_GRID)
    point = conditional_fit(obs, 70.0, CENTRE)
    assert point.recipe["temp"] == pytest.approx(70.0)
    assert point.chi2 < 0.05  # the valley passes through 70 °C for this polymer
    temps = np.array([62.0, 66.5, 71.0])
    table = profile_table(profile(obs, temps, OFF_GRID))
    np.testing.assert_allclose(table.temp, temps)
    assert table.chi2.iloc[1] < 1e-6  # the truth is on the profile
    assert (np.diff(table.cAIBN_0) < 0).all()  # warmer, less initiator
    # cBA_0 is no valley: holding it wrong costs a large misfit
    wrong = conditional_fit(obs, 2.6, OFF_GRID, target="cBA_0")
    assert wrong.chi2 > 100.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_round_trip_the_truth_lies_inside_the_credible_intervals(seed):
    # polykin-style: kMC-level noise on a known recipe's observables, invert, recover
    obs = _observe(OFF_GRID, noise=1.0, seed=seed)
    result = invert(obs, starts=[CENTRE])
    for name, (lo, hi) in result.interval.items():
        assert lo <= OFF_GRID[name] <= hi, (name, lo, hi)
    assert result.mmd_l1 < 0.03
    assert abs(result.mean["cBA_0"] - OFF_GRID["cBA_0"]) < 0.02 * 2.5
    assert abs(result.mean["time"] - OFF_GRID["time"]) < 0.2 * 3300


def test_roundtrip_table_re_simulates_and_clips_into_the_box():
    # a noise-free row: its own recipe re-simulates it exactly; a wrong cBA_0 does not; a recipe
    # outside the box is clipped into it before running (no error from a negative initiator)
    truth = {"cBA_0": 1.3, "cAIBN_0": 0.009, "temp": 68.0, "time": 1500.0}
    sim = forward(truth)
    row = pd.DataFrame([{**truth, "cBA_time": sim["cBA_time"], "Mn": sim["Mn"], "Mw": sim["Mw"],
                         **dict(zip(MMD_COLUMNS, sim["mmd"]))}], index=[7])
    exact = roundtrip_table(row, row[TARGETS])
    assert exact.loc[7, "mmd_l1"] < 1e-9 and abs(exact.loc[7, "Mn_rel"]) < 1e-9
    wrong = roundtrip_table(row, pd.DataFrame([{**truth, "cBA_0": 2.6}], index=[7]))
    assert wrong.loc[7, "mmd_l1"] > 0.05 and wrong.loc[7, "cBA_time_rel"] > 0.2
    outside = roundtrip_table(row, pd.DataFrame([{**truth, "cAIBN_0": -0.003}], index=[7]))
    assert np.isfinite(outside.loc[7, "mmd_l1"])
    inverted = pd.DataFrame([{f"{t} low": truth[t] - 1e-9 for t in TARGETS} |
                             {f"{t} high": truth[t] + (0 if t == "temp" else 1) for t in TARGETS}], index=[7])
    assert interval_hits(row, inverted).loc[7].all()


def test_from_unit_of_the_posterior_recipe_is_inside_the_box(noise_free):
    u = to_unit(noise_free.recipe)
    assert ((u >= 0) & (u <= 1)).all()
    np.testing.assert_allclose(from_unit(u), [noise_free.recipe[t] for t in TARGETS])


@pytest.mark.slow
def test_invert_command_json_and_errors(tmp_path):
    truth = TRUTH["between_levels.csv"]
    out = subprocess.run([sys.executable, "-m", "analysis", "invert", "--mmd",
                          str(EXAMPLES / "between_levels.csv"), "--cba-time", str(truth["cBA_time"]),
                          "--mn", str(truth["Mn"]), "--mw", str(truth["Mw"]), "--json", "--noise", "ideal"],
                         capture_output=True, text=True, timeout=600)  # a simulator's trace: no instrument
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc["recipe"]) == set(TARGETS) and doc["noise"] == "ideal"
    assert set(doc["interval"]) == set(doc["recipe"]) and "mmd_l1" in doc["roundtrip"]
    assert set(doc["posterior"]) >= {"mean", "median", "correlation_temp_cAIBN_0", "interval"}
    assert doc["calibration"] == {"observed": "composite", "basis": "uncalibrated",
                                  "factors": dict.fromkeys(TARGETS, 1.0)}  # `ideal` has no factors
    assert isinstance(doc["in_domain"], bool) and doc["in_domain"]
    assert doc["roundtrip"]["mmd_l1"] < 0.05
    assert abs(doc["recipe"]["cBA_0"] - truth["cBA_0"]) < 0.05 * 2.5
    for name, (lo, hi) in doc["interval"].items():
        assert lo <= truth[name] <= hi, name
    bad = tmp_path / "short.csv"
    bad.write_text("3,1\n4,1\n")
    out = subprocess.run([sys.executable, "-m", "analysis", "invert", "--mmd", str(bad)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and "at least 10 points" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_make_examples_writes_the_committed_files_again(tmp_path):
    from analysis.examples import make_examples

    truth = make_examples(tmp_path)
    assert truth == TRUTH
    for name in list(TRUTH) + ["truth.json"] + list(MEASURED) + ["measured.json"]:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name


# --- what the chemist knows or measured besides the MMD ----------------------------------------------

def _observe_with(recipe: dict, **given) -> Observation:
    """The noise-free polymer of a recipe with extra measurements taken from the simulation (`given` maps
    a name to a factor on the simulated value) or known values (`time`/`temp`: the value itself)."""
    sim = forward(recipe)
    base = _observe(recipe)
    extras = {k: (v if k in ("time", "temp") else sim[k] * v) for k, v in given.items()}
    return Observation(base.mmd, base.cBA_time, base.Mn, base.Mw, **extras)


def test_observation_residuals_count_each_extra_and_known_value():
    obs = _observe_with(OFF_GRID, cAIBN_time=1.0, branching=1.0, time=OFF_GRID["time"], temp=OFF_GRID["temp"])
    assert obs.extras == ["cBA_time", "Mn", "Mw", "cAIBN_time", "branching"] and obs.known == ["time", "temp"]
    r = residuals(OFF_GRID, obs)
    assert len(r) == 100 + 5 + 2 and np.abs(r).max() < 1e-9
    moved = residuals({**OFF_GRID, "temp": OFF_GRID["temp"] + 1.0}, obs)
    assert moved[-1] == pytest.approx(1.0 / NOISE["temp"])


@pytest.mark.parametrize("name", list(PROFILES))
def test_the_inversion_holds_known_values_to_the_profile_s_sds_as_the_bound_does(name):
    # one sd per profile for the finder, the reading's reach and the bound of chapter 9c
    # (`what_to_measure.whitened_jacobian` reads the profile)
    obs = _observe_with(OFF_GRID, time=OFF_GRID["time"], temp=OFF_GRID["temp"])
    profile = PROFILES[name]
    noise = measurement_noise(obs, profile)
    assert (noise["temp"], noise["time"]) == (profile.known_temp, profile.known_time)
    r = residuals({**OFF_GRID, "temp": OFF_GRID["temp"] + 1.0, "time": OFF_GRID["time"] + 10.0}, obs, noise,
                  shift=0.0)
    assert r[-2:] == pytest.approx([10.0 / profile.known_time, 1.0 / profile.known_temp])


@pytest.mark.slow
def test_a_known_temperature_at_the_truth_pins_the_other_three(noise_free):
    obs = _observe_with(OFF_GRID, temp=OFF_GRID["temp"])
    result = invert(obs, starts=[{**CENTRE, "temp": OFF_GRID["temp"]}])
    free = noise_free
    for name, (lo, hi) in result.interval.items():
        assert lo <= OFF_GRID[name] <= hi, (name, lo, hi)
    width = {k: np.diff(v)[0] for k, v in result.interval.items()}
    free_width = {k: np.diff(v)[0] for k, v in free.interval.items()}
    assert width["temp"] < 0.2 * free_width["temp"] and width["cAIBN_0"] < 0.5 * free_width["cAIBN_0"]
    assert not disagreements(result.recipe, obs)


@pytest.mark.slow
def test_a_known_temperature_read_beyond_the_box_puts_the_posterior_at_its_bound():
    # a run at 80 °C whose reading lies 3.2 sd above it: no point of the reading's 3-sd window is in the
    # box, so the posterior's points are set about the bound (this used to stop on an empty grid)
    truth, sd = {**OFF_GRID, "temp": 80.0}, NOISE["temp"]
    obs = _observe_with(truth, temp=80.0 + 3.2 * sd)
    result = invert(obs, starts=[{**CENTRE, "temp": 80.0}])
    temps = result.posterior.temps
    assert temps.max() <= 80.0 and temps.min() >= 80.0 - 3.25 * sd and result.interval["temp"][1] == 80.0
    for name, (lo, hi) in result.interval.items():
        assert lo <= truth[name] <= hi, (name, lo, hi)


@pytest.mark.slow
def test_residual_initiator_breaks_the_valley(noise_free):
    obs = _observe_with(OFF_GRID, cAIBN_time=1.0)
    result = invert(obs, starts=[CENTRE])
    free = noise_free
    for name, (lo, hi) in result.interval.items():
        assert lo <= OFF_GRID[name] <= hi, (name, lo, hi)
    assert np.diff(result.interval["cAIBN_0"])[0] < 0.3 * np.diff(free.interval["cAIBN_0"])[0]


@pytest.mark.slow
def test_a_wrong_known_temperature_gives_a_poor_round_trip_and_a_warning():
    """The reactor ran at 66.5 °C for 2250 s; the user says 78 °C with the time known: the valley cannot
    compensate a temperature at a fixed time, so the fit misses the polymer and the finder says why."""
    obs = _observe_with(OFF_GRID, time=OFF_GRID["time"], temp=78.0)
    wrong = invert(obs, starts=[{**CENTRE, "temp": 78.0, "time": OFF_GRID["time"]}])
    right = invert(_observe_with(OFF_GRID, time=OFF_GRID["time"], temp=OFF_GRID["temp"]),
                   starts=[{**CENTRE, "temp": OFF_GRID["temp"], "time": OFF_GRID["time"]}])
    assert abs(wrong.recipe["temp"] - 78.0) <= 3.25 * NOISE["temp"]  # held within its uncertainty
    assert wrong.mmd_l1 > 10 * max(right.mmd_l1, 1e-3) and wrong.inflation > KNOWN_MISFIT
    # without the known values the same data fit within the noise: the known values are blamed
    blamed, alone = known_values_blamed(obs, NOISE, wrong.posterior, [wrong.recipe, CENTRE])
    assert blamed and alone < KNOWN_MISFIT
    found = find_recipe(obs.mmd, obs.cBA_time, obs.Mn, obs.Mw, time=obs.time, temp=obs.temp)
    assert any("with the given time and temp no recipe makes this polymer" in m for m in found["warnings"])
    assert found["features"] == ["cBA_time", "Mn", "Mw", "time", "temp"]


def test_a_right_known_temperature_is_not_blamed_for_a_trace_misread_by_its_noise_profile():
    """A simulator's own trace read as if measured (`typical`), with its true temperature: the fit fails,
    and it fails as badly without the temperature, so the known value is not what the data cannot make
    (the failed-fit warning names the profile instead)."""
    truth = TRUTH["between_levels.csv"]
    obs = Observation(read_sec_file(EXAMPLES / "between_levels.csv"), truth["cBA_time"], truth["Mn"],
                      truth["Mw"], temp=truth["temp"])
    noise = measurement_noise(obs, PROFILES["typical"])
    result = invert(obs, starts=[{**CENTRE, "temp": truth["temp"]}], noise=noise)
    assert result.inflation > FAILED_FIT
    blamed, alone = known_values_blamed(obs, noise, result.posterior, [result.recipe, CENTRE])
    assert not blamed and alone > FAILED_FIT
    # the fit without the temperature has one residual fewer (the trace, cBA_time and the calibration's
    # shift stay): the count by which `alone` is divided
    assert result.posterior.n_observed - 1 == len(residuals(CENTRE, replace(obs, temp=None), noise))
    found = find_recipe(obs.mmd, obs.cBA_time, obs.Mn, obs.Mw, temp=obs.temp, noise="typical")["warnings"]
    assert any("with the given temp and by" in m and "not the cause" in m for m in found), found
    assert not any("check the known values" in m for m in found) and any("'typical'" in m for m in found)


def test_impossible_known_values_are_refused_with_the_reason():
    cases = [({"temp": 343.15}, "kelvin"), ({"temp": 95.0}, "outside the trained domain"),
             ({"cAIBN_time": 3.0}, "mmol/L"), ({"cAIBN_time": 0.05}, "highest initial initiator"),
             ({"branching": 150.0}, "mol %"), ({"time": 7200.0}, "outside the trained domain"),
             ({"time": float("nan")}, "finite"), ({"cAIBN_time": -1e-3}, "positive"),
             ({"time": -5.0}, "negative"),
             # outside the domain by more than 3 sd of the reading (typical: 0.5 °C, 5 s; ideal: 0.1 °C, 1 s)
             ({"temp": 81.6, "noise": "typical"}, "by more than 3 times its reading's sd"),
             ({"temp": 58.4, "noise": "typical"}, "outside the trained domain"),
             ({"time": 3616.0, "noise": "typical"}, "outside the trained domain"),
             ({"temp": 80.4}, r"outside the trained domain.*\(0\.1 °C, noise profile 'ideal'\)"),
             ({"time": 3604.0}, r"\(1 s, noise profile 'ideal'\)")]
    for given, words in cases:
        with pytest.raises(InputError, match=words):
            check_known(**given)
    assert check_known(cAIBN_time=0.004, branching=2.0, time=1800.0, temp=70.0) == []
    assert check_known(time=3600.0, temp=60.0, noise="poor") == []  # on the bounds: inside


def test_a_known_value_read_just_outside_the_domain_is_taken_with_a_warning():
    # a run at a bound, read with its error (typical: 0.5 °C, 5 s): within 3 sd it is a reading, not a
    # recipe from outside the domain
    warned = check_known(temp=80.8, time=3612.0, noise="typical")
    assert len(warned) == 2
    assert "temp = 80.8 °C lies 0.8 °C outside the trained domain (60-80 °C)" in warned[0]
    assert "time = 3612 s lies 12 s outside" in warned[1] and "'typical'" in warned[1]
    assert len(check_known(temp=59.0, noise="poor")) == 1  # poor: 2 °C
    assert "within 3 times its reading's sd (0.1 °C" in check_known(temp=80.2)[0]  # ideal: 0.1 °C


@pytest.mark.slow
def test_the_finder_takes_a_temperature_read_just_above_the_domain_and_keeps_the_recipe_inside():
    truth = {**OFF_GRID, "temp": 80.0}
    obs = _observe_with(truth, temp=80.0 + 2 * NOISE["temp"])  # a run at 80 °C read 2 sd (0.2 °C) high
    found = find_recipe(obs.mmd, obs.cBA_time, obs.Mn, obs.Mw, temp=obs.temp)  # noise 'ideal', as NOISE
    assert any("temp = 80.2 °C lies 0.2 °C outside the trained domain" in m for m in found["warnings"])
    assert found["recipe"]["temp"] <= 80.0 and found["posterior"]["mean"]["temp"] <= 80.0
    for name, (lo, hi) in found["interval"].items():
        assert lo <= truth[name] <= hi, (name, lo, hi)


@pytest.mark.slow
def test_invert_command_refuses_a_known_value_before_computing():
    mmd = str(EXAMPLES / "between_levels.csv")
    out = subprocess.run([sys.executable, "-m", "analysis", "invert", "--mmd", mmd, "--temp", "343.15"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "kelvin" in out.stderr and "Traceback" not in out.stderr


def test_stored_finder_models_are_used_only_for_their_workbook(tmp_path, small_workbook, monkeypatch):
    """The selection logic of `finder_models`, with a stand-in for the fitting (which takes minutes)."""
    from analysis import finder
    from analysis.dataset import file_sha256, study_sha256

    monkeypatch.delenv("POLYINVERSE_CACHE", raising=False)  # every fit counted, none read from a cache
    fits = []
    monkeypatch.setattr(finder, "fit_finder_models",
                        lambda path, profiles: fits.append((path, profiles)) or "fitted here")
    store = tmp_path / "models.pickle.gz"
    assert finder.finder_models(small_workbook, store) == "fitted here" and len(fits) == 1  # no store yet
    stored = finder.FinderModels({}, {"ideal": pd.DataFrame()}, {}, file_sha256(small_workbook),
                                 study_sha256(small_workbook), finder._versions())
    finder.save_store(stored, store)
    typical = finder.profile_store(store, "typical")
    assert typical == tmp_path / "models.typical.pickle.gz"
    finder.save_store(finder.FinderModels({}, {"typical": pd.DataFrame()}, {}, stored.data_sha256,
                                          stored.study_sha256, stored.versions), typical)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert finder.finder_models(small_workbook, store).profiles == {"ideal"}
        assert finder.finder_models(small_workbook, store, noise="typical").profiles == {"typical"}
    assert len(fits) == 1  # read, not fitted
    with pytest.warns(finder.StaleFinderModels, match="no models for the 'poor' profile"):
        assert finder.finder_models(small_workbook, store, noise="poor") == "fitted here"
    assert fits[-1][1] == ("poor",)  # only the profile asked for is fitted in the call
    other = tmp_path / "other.xlsx"
    frame = pd.read_excel(small_workbook, sheet_name=None)
    frame["compuesta"].loc[0, "Mn"] *= 1.01
    with pd.ExcelWriter(other) as writer:
        for name, sheet in frame.items():
            sheet.to_excel(writer, sheet_name=name, index=False)
    with pytest.warns(finder.StaleFinderModels, match="another workbook"):
        assert finder.finder_models(other, store) == "fitted here"
    finder.save_store(finder.FinderModels({}, {"ideal": pd.DataFrame()}, {}, stored.data_sha256,
                                          stored.study_sha256, {"scikit-learn": "0.1"}), store)
    with pytest.warns(finder.StaleFinderModels, match="other library versions"):
        finder.finder_models(small_workbook, store)
    # a file that is not a store of this format (an older joblib file, a truncated copy, another
    # object) is named and refitted, once, with one warning
    whole = store.read_bytes()
    for content in (b"not a store", gzip.compress(pickle.dumps({"models": 1})), whole[: len(whole) // 2]):
        store.write_bytes(content)
        n_fits = len(fits)
        with pytest.warns(finder.StaleFinderModels, match="could not be read") as caught:
            assert finder.finder_models(small_workbook, store) == "fitted here"
        assert len(caught) == 1 and len(fits) == n_fits + 1


def test_models_fitted_for_the_workbook_in_use_are_stored_for_the_next_call(tmp_path, small_workbook,
                                                                            monkeypatch):
    """Without a store, the first call of a profile fits its models and stores them (only for the workbook
    in use by default); the next call reads them; a store that cannot be written is named."""
    import shutil

    from analysis import finder
    from analysis.dataset import file_sha256, study_sha256

    monkeypatch.delenv("POLYINVERSE_CACHE", raising=False)  # every fit counted, none read from a cache
    monkeypatch.setenv("POLYINVERSE_DATA", str(small_workbook))  # the workbook in use by default
    fits = []

    def fit(path, profiles):
        fits.append((Path(path).name, profiles))
        return finder.FinderModels({}, {p: pd.DataFrame({"Mn": [1.0]}) for p in profiles}, {},
                                   file_sha256(path), study_sha256(path), finder._versions())

    monkeypatch.setattr(finder, "fit_finder_models", fit)
    store = tmp_path / "models.pickle.gz"
    assert not finder.is_stored(store, "typical")
    assert finder.finder_models(store=store, noise="typical").profiles == {"typical"}
    assert finder.is_stored(store, "typical") and not finder.is_stored(store, "ideal")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert finder.finder_models(store=store, noise="typical").profiles == {"typical"}
    assert fits == [("small.xlsx", ("typical",))]  # read back, not fitted again
    # another profile's first call, with the ideal profile stored: fitted and stored without a warning
    finder.finder_models(store=store, noise="ideal")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert finder.finder_models(store=store, noise="poor").profiles == {"poor"}
    assert finder.is_stored(store, "poor") and len(fits) == 3
    # a workbook given explicitly (not the one in use by default) is fitted in every call, not stored
    copy = tmp_path / "copy.xlsx"
    shutil.copy(small_workbook, copy)
    elsewhere = tmp_path / "elsewhere.pickle.gz"
    for _ in range(2):
        finder.finder_models(copy, elsewhere, noise="typical")
    assert not finder.is_stored(elsewhere, "typical") and len(fits) == 5
    # ... and a profile missing beside a stored one is named there, as the models are not stored
    finder.finder_models(store=elsewhere, noise="ideal")
    with pytest.warns(finder.StaleFinderModels, match="no models for the 'typical' profile.*make finder"):
        finder.finder_models(copy, elsewhere, noise="typical")
    # a store that cannot be written (its directory is a file): named, and the fitted models returned
    (tmp_path / "a_file").write_text("")
    with pytest.warns(finder.StaleFinderModels, match="could not be stored"):
        fitted = finder.finder_models(store=tmp_path / "a_file" / "m.pickle.gz", noise="poor")
    assert fitted.profiles == {"poor"}


def test_a_stored_profile_reads_back_as_it_was_written(tmp_path):
    from analysis import finder

    models = finder.FinderModels({}, {"typical": pd.DataFrame({"Mn": [1.0, 2.5]})}, {}, "a" * 64, "b" * 64,
                                 finder._versions())
    path = finder.profile_store(tmp_path / "m.pickle.gz", "typical")
    finder.save_store(models, path)
    back = finder.load_store(path)
    assert path.name == "m.typical.pickle.gz" and path.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    assert back.profiles == {"typical"} and back.training["typical"].equals(models.training["typical"])
    assert (back.data_sha256, back.study_sha256, back.versions) == ("a" * 64, "b" * 64, finder._versions())


@pytest.mark.slow
def test_a_measured_trace_is_inverted_through_its_instrument():
    # the example a laboratory would report (kMC trace through the `typical` measurement model): with the
    # default noise the fit is as good as the noise and the intervals hold the truth; read as if it
    # were the simulator's own trace (`ideal`), the intervals are narrower and the fit is held to a
    # precision the measurement does not have
    name, truth = next(iter(MEASURED.items()))
    w = read_sec_file(EXAMPLES / name)
    typical = find_recipe(w, truth["cBA_time"], truth["Mn"], truth["Mw"], noise="typical")
    ideal = find_recipe(w, truth["cBA_time"], truth["Mn"], truth["Mw"], noise="ideal")
    assert typical["noise"] == "typical" and typical["fit"]["status"] == "ok"
    assert typical["in_domain"]  # the domain of rows measured with the same instruments
    # the interval reported is the posterior's, scaled by the stored factors of `typical` and the composite
    # set; `ideal` has none, and reports the posterior's own
    factors, basis = interval_factors("typical", "composite")
    assert typical["calibration"] == {"observed": "composite", "basis": basis, "factors": factors}
    assert basis == "calibrated"
    posterior = {k: tuple(v) for k, v in typical["posterior"]["interval"].items()}
    assert {k: tuple(v) for k, v in typical["interval"].items()} == widen(posterior, factors)
    assert ideal["calibration"]["basis"] == "uncalibrated"
    assert ideal["interval"] == ideal["posterior"]["interval"]
    for target, (lo, hi) in typical["interval"].items():
        assert lo <= truth[target] <= hi, target
    width = {k: {n: r["interval"][k][1] - r["interval"][k][0] for n, r in (("t", typical), ("i", ideal))}
             for k in ("cBA_0", "time")}
    assert all(w["t"] > 1.5 * w["i"] for w in width.values()), width
    with pytest.raises(InputError, match="unknown noise profile"):
        find_recipe(w, truth["cBA_time"], truth["Mn"], truth["Mw"], noise="loud")


def test_the_calibration_shift_is_fitted_with_its_prior():
    # a deterministic polymer seen through the `typical` SEC with its calibration off by 2 sd and no
    # other error: the misfit of the truth is the shift's prior alone (2² = 4); at the true temperature
    # the fit does at least as well, with the shift and the recipe within their posterior sd of the truth
    # (the prior pulls the shift towards zero, the chains' length making up the rest)
    from analysis.inversion import measurement_noise
    from analysis.measurement import PROFILES, measured_trace, trace_operator

    typical = PROFILES["typical"]
    sim = forward(OFF_GRID)
    kept = trace_operator(sim["mmd"], typical).kept
    w = np.zeros(100)
    w[kept] = measured_trace(sim["mmd"], typical, 2.0 * typical.calibration_sd)
    obs = Observation(w, sim["cBA_time"], sim["Mn"], sim["Mw"])
    noise = measurement_noise(obs, typical)
    assert float(np.sum(residuals(OFF_GRID, obs, noise, 2.0) ** 2)) == pytest.approx(4.0, abs=0.01)
    fit = conditional_fit(obs, OFF_GRID["temp"], CENTRE, noise)
    sd = np.sqrt(np.diag(np.linalg.inv(fit.jac.T @ fit.jac)))
    assert fit.chi2 <= 4.0 + 1e-6
    assert abs(fit.nuisance[0] - 2.0) < sd[3] and 0.05 < sd[3] < 1.0
    free = [j for j, t in enumerate(TARGETS) if t != "temp"]
    np.testing.assert_array_less(np.abs(fit.u[free] - to_unit(OFF_GRID)[free]), sd[:3])


@pytest.mark.parametrize("name", ["typical", "poor"])
def test_a_model_error_floor_caps_the_weight_of_every_direction_of_the_trace(name):
    # a smooth correlated noise leaves directions of the measured trace with almost no variance; the floor
    # (white, sd floor x the trace's peak) whitens cov + floor² I exactly, so no direction weighs more
    # than 1 / (floor x peak); without it (floor 0) some weigh orders of magnitude more
    from analysis.inversion import measurement_noise
    from analysis.measurement import PROFILES, measured_trace, reported, trace_covariance, trace_operator

    profile = PROFILES[name]
    sim = forward(OFF_GRID)
    w = np.zeros(100)
    w[trace_operator(sim["mmd"], profile).kept] = measured_trace(sim["mmd"], profile)
    obs = Observation(w, sim["cBA_time"], sim["Mn"], sim["Mw"])
    plain, floored = measurement_noise(obs, profile, 0.0), measurement_noise(obs, profile, 5e-4)
    # the default is the inversion's floor, a hundredth of the detector's baseline noise
    np.testing.assert_array_equal(measurement_noise(obs, profile)["whiten"],
                                  measurement_noise(obs, profile, profile.detector_baseline / 100)["whiten"])
    observed = plain["observed_trace"]
    cap = 1.0 / (5e-4 * observed.max())
    assert np.linalg.norm(floored["whiten"], 2) <= cap * (1 + 1e-9)
    assert np.linalg.norm(plain["whiten"], 2) > 10 * cap
    cov = trace_covariance(trace_operator(obs.mmd, profile), NOISE["mmd"])
    cov += (5e-4 * observed.max()) ** 2 * np.eye(len(cov))
    compared = reported(observed)
    whiten = floored["whiten"][:, compared]
    block = whiten @ cov[np.ix_(compared, compared)] @ whiten.T
    np.testing.assert_allclose(block, np.eye(len(block)), atol=1e-8)
    with pytest.raises(ValueError, match="floor"):
        measurement_noise(obs, profile, -1e-4)


@pytest.mark.parametrize("name", ["typical", "poor"])
def test_the_free_fit_finds_the_calibration_shift_among_its_minima(name):
    # noise-free traces seen through an SEC whose calibration is off: under an instrument the misfit has
    # several minima in the shift, each with its own recipe, and the joint fit of recipe and shift from
    # the centre stopped in another one (chi² 35-223 under `typical`, 10-99 under `poor`, where the truth's
    # is its shift's prior alone, 0.2-5); the fits with the shift held first find the truth's minimum.
    # Without the model-error floor (floor 0) the misfit has the most minima, and the one found has the
    # truth's monomer.  With the inversion's floor, under `poor`, a trace shifted by 1.9 sd is fitted
    # better (chi² 2.1 against the truth's 3.5) by a recipe with another monomer and a smaller shift: the
    # trace no longer tells them apart, and the monomer is not checked there
    from analysis.inversion import free_fit, measurement_noise
    from analysis.measurement import PROFILES, measured_trace, trace_operator

    instrument = PROFILES[name]
    for recipe, z in (({"cBA_0": 0.5, "cAIBN_0": 0.015, "temp": 78.0, "time": 1500.0}, 0.46),
                      ({"cBA_0": 1.0, "cAIBN_0": 0.0075, "temp": 75.0, "time": 900.0}, 1.88)):
        sim = forward(recipe)
        w = np.zeros(100)
        w[trace_operator(sim["mmd"], instrument).kept] = measured_trace(sim["mmd"], instrument,
                                                                        z * instrument.calibration_sd)
        obs = Observation(w, sim["cBA_time"], sim["Mn"], sim["Mw"])
        for floor in (0.0, None):
            noise = measurement_noise(obs, instrument, floor)
            truth = float(np.sum(residuals(recipe, obs, noise, z) ** 2))
            assert truth == pytest.approx(z**2, abs=0.01)
            found, chi2 = free_fit(obs, CENTRE, noise)
            assert chi2 <= truth + 0.05, (name, recipe, floor)
            if floor == 0.0 or name == "typical":
                assert found["cBA_0"] == pytest.approx(recipe["cBA_0"], rel=0.02), (name, recipe, floor)


def test_clipped_points_of_a_measured_trace_are_censored_and_the_truth_fits_within_the_noise():
    # under `poor`, the baseline noise takes 5-25 points of the tail below zero and `measure_mmd` clips
    # them; compared as numbers they put a jump where the smooth correlated noise has almost no variance
    # (chi² of 10^4-10^7 at the truth).  Left out, the truth's chi² (best calibration shift) is of the
    # order of the number of values compared, under both measured profiles, and the whitening's columns
    # at the clipped points are zero
    from analysis.inversion import measurement_noise
    from analysis.measurement import PROFILES, measure_mmd

    sim = forward(OFF_GRID)
    for name, clipped in (("typical", 3), ("poor", 5)):
        profile = PROFILES[name]
        w, mn, mw = measure_mmd(sim["mmd"], profile, np.random.default_rng(5))
        obs = Observation(w[0], sim["cBA_time"], mn[0], mw[0])
        noise = measurement_noise(obs, profile)
        zero = noise["observed_trace"] == 0.0
        assert zero.sum() >= clipped
        assert np.all(noise["whiten"][:, zero] == 0.0)
        n = len(noise["whiten"])
        chi2 = min(float(np.sum(residuals(OFF_GRID, obs, noise, s, sim)[:n] ** 2))
                   for s in np.linspace(-3.0, 3.0, 61))
        assert chi2 < 3.0 * n, name


def test_two_branches_mix_and_a_shared_minimum_counts_once():
    # branch 2 has its own minimum at 70 and 80 °C (another initiator level) and shares branch 1's at
    # 60 °C: the mixture has five points, the shared one once, and each weight is its own Laplace mass
    jac = np.eye(103, 3) * 50.0
    grid = np.array([60.0, 70.0, 80.0])
    first = [ProfilePoint(to_unit({"cBA_0": 1.0, "cAIBN_0": 0.005, "temp": t, "time": 1200.0}), 100.0, jac)
             for t in grid]
    second = [first[0]] + [ProfilePoint(to_unit({"cBA_0": 1.0, "cAIBN_0": 0.015, "temp": t, "time": 600.0}),
                                        102.0, jac) for t in grid[1:]]
    post = posterior_from_profile(grid, [first, second])
    np.testing.assert_array_equal(post.branch, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(post.temps, [60.0, 70.0, 80.0, 70.0, 80.0])
    alone = posterior_from_profile(grid, first)
    # same cells, same curvature: the ratio of two points' mass is their prior density x exp(-chi²/2) x
    # the ratio of their shares inside the box
    box = _inside_box(second[1].u, jac) / _inside_box(first[1].u, jac)
    assert post.weights[3] / post.weights[1] == pytest.approx(0.015 / 0.005 * np.exp(-1.0) * box, rel=1e-9)
    assert post.weights[0] / post.weights[1] == pytest.approx(alone.weights[0] / alone.weights[1], rel=1e-9)


def test_a_piece_carries_the_joint_covariance_of_recipe_and_shift_and_its_sds_marginalise_the_shift():
    # a calibration shift that trades against the initiator (the fourth column of the Jacobian, with its
    # prior's row): the piece's covariance is the inverse of JᵀJ + the prior floor, over the three free
    # targets and the shift; the initiator's sd is the marginal one, wider than with the shift held
    jac = np.zeros((104, 4))
    jac[[0, 1, 2], [0, 1, 2]] = 50.0, 5.0, 50.0
    jac[1, 3], jac[103, 3] = 4.0, 1.0  # the shift moves the initiator's residual; its N(0, 1) prior
    u = to_unit({"cBA_0": 1.0, "cAIBN_0": 0.006, "temp": 70.0, "time": 1200.0})
    post = posterior_from_profile(np.array([70.0]), [ProfilePoint(u, 100.0, jac, np.array([0.3]))])
    expected = np.linalg.inv(jac.T @ jac + np.diag([PRIOR_FLOOR] * 3 + [0.0]))
    np.testing.assert_allclose(post.unit_covs[0], expected, rtol=1e-12)
    np.testing.assert_array_equal(post.nuisances, [[0.3]])
    # the initiator-shift block of the precision is [[25 + floor, 20], [20, 16 + 1]]: marginal variance
    # 17 / (17 (25 + floor) - 400), about 4 times the sd with the shift held, 1 / sqrt(25 + floor)
    marginal = np.sqrt(17.0 / (17.0 * (25.0 + PRIOR_FLOOR) - 400.0))
    assert post.unit_sds[0, 1] == pytest.approx(marginal, rel=1e-9)
    assert post.unit_sds[0, 1] > 4.0 / np.sqrt(25.0 + PRIOR_FLOOR)


def test_the_jacobians_time_column_from_the_rates_matches_runs_at_other_times():
    # the fit's Jacobian takes d/dt from the run's exact rates (no run at t + h); central differences of
    # the residuals with runs at t -+ 10 s agree, through the simulator's noise and through an instrument
    # (calibration shift as a fitted nuisance); a run stopped at 90 % conversion has no time dependence
    from analysis.inversion import _bounds, _fit_problem, _unit_residuals, measurement_noise
    from analysis.measurement import PROFILES

    obs = _observe(OFF_GRID, noise=1.0, seed=3)
    near = {**OFF_GRID, "cAIBN_0": 0.0047, "time": 1900.0}  # not the truth: the residuals are not zero
    free = [0, 1, 3]
    for noise in (NOISE, measurement_noise(obs, PROFILES["typical"])):
        n = int("shift_sd" in noise)
        u = np.r_[to_unit(near), np.full(n, 0.4)]
        _, upper = _bounds(len(free), noise)
        res, jac = _fit_problem(obs, noise, u[:4], free, upper)
        column = jac(np.r_[u[free], u[4:]])[:, 2]
        h = 10.0 / 3600.0
        plus, minus = (_unit_residuals(u + s * h * np.eye(len(u))[3], obs, noise) for s in (1.0, -1.0))
        fd = (plus - minus) / (2 * h)
        assert np.linalg.norm(column - fd) <= 1e-3 * np.linalg.norm(fd)
        assert np.linalg.norm(fd) > 1.0  # the time matters to these residuals
    stopped = {"cBA_0": 2.5, "cAIBN_0": 0.02, "temp": 80.0, "time": 3600.0}
    assert forward(stopped)["stopped"]
    _, jac = _fit_problem(obs, NOISE, to_unit(stopped), free, _bounds(len(free), NOISE)[1])
    assert (jac(to_unit(stopped)[free])[:, 2] == 0).all()
