"""Calibrated intervals: the conformal score is exactly the factor that reaches the truth, the factor is the
conformal quantile, calibrated intervals cover the calibration rows at the level, the recipe halves are
disjoint, and the stored factors belong to the workbook and its observation sets."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.calibration import (
    CALIBRATION,
    CALIBRATION_ROWS,
    StaleCalibration,
    conformal_factor,
    interval_factors,
    pit_check,
    recipe_half,
    same_settings,
    scores,
    set_name,
    share_in_band,
    widen,
)
from analysis.dataset import dataset_path, file_sha256, load_dataset
from analysis.design import BOX, RECIPE_KEY, TARGETS, from_unit
from analysis.hyperparameters import StaleHyperparameters
from analysis.inversion import settings
from analysis.roundtrip import calibrated_table, interval_hits
from analysis.what_to_measure import CALIBRATED_SETS, calibration_summary, parse_observe


def _cases(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Random intervals in the box (a quarter with an end on a bound) and random truths (some on bounds)."""
    rng = np.random.default_rng(seed)
    a, b = np.sort(rng.random((2, n, len(TARGETS))), axis=0)
    a[rng.random(a.shape) < 0.25] = 0.0
    b[rng.random(b.shape) < 0.25] = 1.0
    y = rng.random((n, len(TARGETS)))
    y[rng.random(y.shape) < 0.2] = 0.0
    y[rng.random(y.shape) < 0.1] = 1.0
    frames = [pd.DataFrame(from_unit(u), columns=TARGETS) for u in (y, a, b)]
    return frames[0], frames[1], frames[2]


def _inside(truth: pd.Series, interval: dict, t: str) -> bool:
    lo, hi = interval[t]
    tol = 1e-9 * (BOX[t][1] - BOX[t][0])
    return lo - tol <= truth[t] <= hi + tol


def test_the_score_is_the_smallest_factor_that_holds_the_truth():
    truth, low, high = _cases()
    score = scores(truth, low, high)
    assert (score >= 0).all().all()
    for i in range(len(truth)):
        given = {t: (low.at[i, t], high.at[i, t]) for t in TARGETS}
        at = widen(given, score.loc[i].to_dict())
        assert all(_inside(truth.loc[i], at, t) for t in TARGETS)
        below = widen(given, (0.99 * score.loc[i]).to_dict())
        for t in TARGETS:
            if score.at[i, t] > 1e-6:
                assert not _inside(truth.loc[i], below, t), (i, t)


def test_widening_keeps_the_box_and_the_ends_on_its_bounds():
    truth, low, high = _cases(seed=1)
    for i in range(len(truth)):
        given = {t: (low.at[i, t], high.at[i, t]) for t in TARGETS}
        same = widen(given, dict.fromkeys(TARGETS, 1.0))
        assert all(np.allclose(same[t], given[t], rtol=1e-12, atol=0) for t in TARGETS)
        for q in (0.5, 2.0, 50.0):
            new = widen(given, dict.fromkeys(TARGETS, q))
            for t in TARGETS:
                lo, hi = BOX[t]
                assert lo <= new[t][0] <= new[t][1] <= hi
                for end in (0, 1):
                    if given[t][end] in (lo, hi):  # an end on a bound stays there
                        assert new[t][end] == given[t][end]
                if q > 1:
                    assert new[t][0] <= given[t][0] and new[t][1] >= given[t][1]
    assert widen({"temp": (65.0, 75.0)}, {"temp": 0.5})["temp"] == pytest.approx((67.5, 72.5))
    assert widen({"cAIBN_0": (0.005, 0.01)}, {})["cAIBN_0"] == (0.005, 0.01)  # no factor: kept


def test_the_conformal_factor_is_the_order_statistic_and_covers_new_draws():
    assert conformal_factor(np.random.default_rng(0).permutation(np.arange(1, 100))) == 90.0  # ceil(100 .9)
    assert math.isinf(conformal_factor([1.0, 2.0, 3.0]))  # 3 scores cannot give 90 %
    # exchangeable scores: a fresh draw falls below the factor with probability >= 90 % (and < 91 %)
    rng = np.random.default_rng(1)
    hits = [rng.exponential() <= conformal_factor(rng.exponential(size=79)) for _ in range(4000)]
    assert 0.885 <= np.mean(hits) <= 0.925


def test_calibrated_intervals_cover_their_calibration_rows_at_the_level():
    truth, low, high = _cases(n=80, seed=2)
    inverted = pd.concat([low.add_suffix(" low"), high.add_suffix(" high")], axis=1)
    factors, before = calibration_summary(truth, inverted)
    assert before == (100 * interval_hits(truth, inverted).mean()).round(1).to_dict()
    covered = interval_hits(truth, calibrated_table(inverted, "typical", factors)).mean()
    assert (covered >= 0.9).all() and (covered <= 0.95).all(), covered.to_dict()


def test_the_pit_check_finds_a_posterior_too_narrow_and_leaves_out_truths_on_a_bound():
    # truths inside the box with their posterior CDF: exactly uniform, then a posterior half as wide as it
    # should be (CDF of 2z at a standard normal z), then a quarter of the truths moved onto a bound
    n = 400
    rng = np.random.default_rng(0)
    truth = pd.DataFrame({t: rng.uniform(*BOX[t], n) for t in TARGETS})
    uniform = pd.DataFrame({f"{t} pit": (np.arange(n) + 0.5) / n for t in TARGETS})
    calibrated = pit_check(truth, uniform)
    assert (calibrated.rows == n).all() and (calibrated.p > 0.99).all()
    assert (calibrated["below 0.05 %"] == 5.0).all() and (calibrated["above 0.95 %"] == 5.0).all()
    from scipy.stats import norm

    narrow = pd.DataFrame({f"{t} pit": norm.cdf(2 * rng.standard_normal(n)) for t in TARGETS})
    checked = pit_check(truth, narrow)
    assert (checked.p < 1e-6).all()
    assert (checked["below 0.05 %"] > 15).all() and (checked["above 0.95 %"] > 15).all()
    on_bound = truth.copy()
    on_bound.loc[: n // 8 - 1, TARGETS] = [BOX[t][0] for t in TARGETS]
    on_bound.loc[n - n // 8:, TARGETS] = [BOX[t][1] for t in TARGETS]
    uniform.loc[: n // 8 - 1] = 0.0  # the CDF at a lower bound is 0, at an upper one 1: not evidence
    uniform.loc[n - n // 8:] = 1.0
    kept = pit_check(on_bound, uniform)
    assert (kept.rows == n - 2 * (n // 8)).all() and (kept["below 0.05 %"] == 0).all()


def test_the_recipe_halves_are_disjoint_and_keep_each_recipe_on_one_side():
    frame = load_dataset()
    first, second = recipe_half(frame, "calibration"), recipe_half(frame, "check")
    assert not (first & second).any() and (first | second).all()
    recipes = frame[RECIPE_KEY].apply(tuple, axis=1)
    assert not set(recipes[first]) & set(recipes[second])
    assert len(set(recipes[first])) == len(set(recipes)) // 2
    with pytest.raises(ValueError, match="'calibration' or 'check'"):
        recipe_half(frame, "test")


def test_set_names_follow_the_observe_option():
    composite = ("cBA_time", "Mn", "Mw")
    assert set_name(composite) == "composite"
    assert set_name(("temp", "Mw", "cAIBN_time", "Mn", "cBA_time")) == "composite,temp,cAIBN_time"
    assert set_name(("cBA_time", "time")) == "mmd,time"
    for observe in CALIBRATED_SETS:
        assert set_name(composite + parse_observe(observe)) == observe
    with pytest.raises(ValueError, match="sample2"):
        set_name(("sample2",))


def test_stored_factors_belong_to_this_workbook_and_cover_the_sets(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleHyperparameters)
        stored = json.loads(CALIBRATION.read_text())
        factors, basis = interval_factors("typical", "composite")
    assert stored["data_sha256"] == file_sha256(dataset_path())  # this very file (no study sheet read)
    assert stored["level"] == 0.9 and set(stored["factors"]) == {"typical", "poor"}
    assert stored["rows"] == CALIBRATION_ROWS  # each profile calibrated on the code's number of rows
    assert all(set(stored["factors"][noise]) == set(CALIBRATED_SETS) for noise in ("typical", "poor"))
    assert basis == "calibrated" and factors == stored["factors"]["typical"]["composite"]
    assert all(0 < q < 5 for sets in stored["factors"].values() for f in sets.values() for q in f.values())
    # another set of a calibrated profile: each target's largest factor; a profile without: none
    fallback, basis = interval_factors("typical", "composite,time,branching")
    assert basis == "largest of the calibrated sets"
    assert fallback == {t: max(f[t] for f in stored["factors"]["typical"].values()) for t in TARGETS}
    assert interval_factors("ideal", "composite") == (dict.fromkeys(TARGETS, 1.0), "uncalibrated")
    assert interval_factors("typical", "composite", file=tmp_path / "none.json")[1] == "uncalibrated"
    # computed on another workbook: used, with a warning naming it
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**stored, "data_sha256": "0" * 64, "study_sha256": "1" * 64}))
    with pytest.warns(StaleHyperparameters, match="other.json was tuned on another workbook"):
        assert interval_factors("typical", "composite", file=other) == (factors, "calibrated")


def test_stored_factors_belong_to_the_inversion_settings_and_warn_when_they_differ(tmp_path):
    # the stored calibration was computed with the code's inversion: a change of a floor, a tolerance, a
    # profile or the interval's construction without `make calibrate` fails here (and warns in use)
    stored = json.loads(CALIBRATION.read_text())
    assert same_settings(stored["inversion"], settings())
    nudged = {**settings(), "XTOL": settings()["XTOL"] * (1 + 1e-15)}  # a last digit: not another setting
    assert same_settings(nudged, settings()) and not same_settings({**nudged, "XTOL": 2e-5}, settings())
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleCalibration)
        assert interval_factors("poor", "composite", settings=settings())[1] == "calibrated"
    now = settings()
    changed = {**now, "MODEL_FLOOR": 2 * now["MODEL_FLOOR"],
               "profiles": {**now["profiles"], "poor": {**now["profiles"]["poor"], "broadening": 0.2}}}
    other = tmp_path / "changed.json"
    other.write_text(json.dumps({**stored, "inversion": changed}))
    with pytest.warns(StaleCalibration, match=r"changed.json .* \(differing: MODEL_FLOOR, profiles\)"):
        factors, basis = interval_factors("poor", "composite", file=other, settings=now)
    assert basis == "calibrated" and factors == stored["factors"]["poor"]["composite"]  # used, and warned
    older = tmp_path / "older.json"
    older.write_text(json.dumps({k: v for k, v in stored.items() if k != "inversion"}))
    with pytest.warns(StaleCalibration, match="none stored"):
        interval_factors("poor", "composite", file=older, settings=now)


def test_calibrating_one_profile_keeps_the_others_only_if_they_share_workbook_and_settings(tmp_path,
                                                                                           monkeypatch):
    # the inversions replaced by their result, a profile's factors all equal to a number of its own: what is
    # checked is which profiles the file keeps, with their rows and coverage
    import analysis.what_to_measure as wtm

    def fake(frame, noise, level=0.90):
        q = {"typical": 1.5, "poor": 2.5}[noise]
        return {"factors": {s: dict.fromkeys(TARGETS, q) for s in CALIBRATED_SETS},
                "coverage_before": {s: dict.fromkeys(TARGETS, 90.0) for s in CALIBRATED_SETS}}

    monkeypatch.setattr(wtm, "calibrate_intervals", fake)
    monkeypatch.setattr(wtm, "load_dataset", lambda data, observables: None)
    workbook = {"date": "2026-12-07", "data": "w.xlsx", "data_sha256": "a" * 64, "study_sha256": "b" * 64}
    monkeypatch.setattr(wtm, "stamp", lambda data: workbook)  # (reading the sheets' checksum takes 10 s)
    out = tmp_path / "calibration.json"
    with pytest.raises(wtm.ObservationError, match=r"profiles without a calibration: \['ideal'\]"):
        wtm.write_calibration(noises=("typical", "ideal"), out=out)
    both = wtm.write_calibration(out=out)
    assert both["rows"] == CALIBRATION_ROWS and both["factors"]["poor"]["composite"]["temp"] == 2.5
    stored = json.loads(out.read_text())
    out.write_text(json.dumps({**stored, "factors": {**stored["factors"], "typical": {}, "poor": {"x": 1}}}))
    kept = wtm.write_calibration(noises=("typical",), out=out)
    assert kept["factors"]["poor"] == {"x": 1} and kept["rows"]["poor"] == CALIBRATION_ROWS["poor"]
    assert kept["factors"]["typical"]["composite"]["temp"] == 1.5 and kept == json.loads(out.read_text())
    assert list(kept["factors"]) == list(kept["rows"]) == ["typical", "poor"]  # the profiles' order
    # a file of an older layout (one number of rows for all profiles) keeps that number for its profile
    out.write_text(json.dumps({**stored, "rows": 160}))
    assert wtm.write_calibration(noises=("typical",), out=out)["rows"] == {"poor": 160, "typical": 320}
    # another workbook, or other inversion settings: the other profile is dropped, not mixed in
    for changed in ({"data_sha256": "0" * 64}, {"inversion": {**stored["inversion"], "MODEL_FLOOR": 1.0}}):
        out.write_text(json.dumps({**stored, **changed}))
        alone = wtm.write_calibration(noises=("typical",), out=out)
        assert set(alone["factors"]) == set(alone["rows"]) == set(alone["coverage_before"]) == {"typical"}


@pytest.mark.slow
def test_calibrating_on_measured_rows_covers_them_and_keeps_the_check_recipes_out():
    # nine rows of the calibration recipes, measured with `typical`, temperature known (fast inversions):
    # with nine scores the factor is the largest, so the widened intervals hold every row's truth; the
    # rows all come from the calibration half, and the stored coverage is that of the posterior's own
    from analysis.what_to_measure import calibrate_intervals, measured_inversions

    frame, observe = load_dataset(observables=True), "composite,temp"
    result = calibrate_intervals(frame, "typical", sets=(observe,), n_rows=9, jobs=1)
    factors = result["factors"][observe]
    rows, raw = measured_inversions(frame, "typical", 9, 0, 1, observe, "calibration", calibrated=False)
    assert recipe_half(frame, "calibration")[frame.index.get_indexer(rows.index)].all()
    assert result["coverage_before"][observe] == (100 * interval_hits(rows, raw).mean()).round(1).to_dict()
    low, high = (raw[[f"{t} {end}" for t in TARGETS]].set_axis(TARGETS, axis=1) for end in ("low", "high"))
    assert factors == scores(rows[TARGETS], low, high).max().to_dict()
    assert interval_hits(rows, calibrated_table(raw, "typical", factors)).all().all()
    # each row's PIT is the posterior's CDF at its truth: below the 90 % interval it is under 0.1, above it
    # over 0.9 (the interval holds 90 % of the posterior)
    for t in TARGETS:
        pit = raw[f"{t} pit"]
        assert ((pit >= 0) & (pit <= 1)).all()
        assert (pit[rows[t] < raw[f"{t} low"]] < 0.1).all() and (pit[rows[t] > raw[f"{t} high"]] > 0.9).all()


@pytest.mark.slow
def test_the_coverage_check_of_chapter_10_and_its_peer_comparison_on_a_few_rows():
    # what chapter 10's cells that `make test` skips run (`make book` runs them on 30 and 20 rows): the
    # coverage check on rows of the check recipes, their PIT histograms, and the candidate list beside the
    # inversion with the time known
    from analysis.calibration import pit_values
    from analysis.candidates import N_CANDIDATES, compare
    from analysis.plots import pit_histograms
    from analysis.what_to_measure import check_inversions, coverage_table, measured_frame

    frame, observe = load_dataset(observables=True), "composite,temp"
    checked = check_inversions(frame, (observe,), "typical", n_rows=3, seed=3, jobs=1)
    rows, inverted = checked[observe]
    assert recipe_half(frame, "check")[frame.index.get_indexer(rows.index)].all()
    coverage = coverage_table(checked)
    assert list(coverage.index) == [observe] and list(coverage.columns) == TARGETS
    for t in TARGETS:
        inside = (rows[t].to_numpy() >= inverted[f"{t} low"].to_numpy()) & \
                 (rows[t].to_numpy() <= inverted[f"{t} high"].to_numpy())
        assert coverage.loc[observe, t] == pytest.approx(100 * inside.mean())
    assert abs(inverted["temp mean"] - rows["temp"]).max() < 1.5  # the temperature is given (sd 0.5 °C)
    fig = pit_histograms(checked)
    for ax, t in zip(fig.axes, TARGETS):
        assert sum(p.get_height() for p in ax.patches) == len(pit_values(rows, inverted, t))

    cases = frame.iloc[[7, 200]]
    side = compare(frame, measured_frame(cases, "typical", (), seed=5), "typical", jobs=1)
    methods = [f"{N_CANDIDATES} candidates", "posterior, time known"]
    assert list(side.index) == [(m, t) for m in methods for t in TARGETS]
    assert list(side.columns) == ["median |error| %", "median width %", "truth inside %"]
    assert (side["median width %"] >= 0).all() and side["truth inside %"].between(0, 100).all()
    assert side.loc[("posterior, time known", "time"), "median |error| %"] < 2.0  # the time is given


def test_the_chance_of_a_share_in_85_to_95_percent_agrees_with_drawn_checks():
    # drawn checks of exactly calibrated intervals (each row's truth inside with probability 0.9)
    rng = np.random.default_rng(5)
    for n in (30, 80):
        shares = rng.binomial(n, 0.9, 200_000) / n
        drawn = np.mean((shares >= 0.85 - 1e-12) & (shares <= 0.95 + 1e-12))
        assert share_in_band(n) == pytest.approx(drawn, abs=0.004)
    assert share_in_band(30) < share_in_band(80) < share_in_band(400) < 1.0
    assert share_in_band(1000) > 0.999
    # a band of one share: the binomial probability of exactly 18 of 20, by hand
    by_hand = math.comb(20, 18) * 0.9**18 * 0.1**2
    assert share_in_band(20, band=(0.9, 0.9)) == pytest.approx(by_hand, rel=1e-12)
