"""The measurement model: identity without errors, area, the closed forms of a shift and of broadening, the
correlation of the detector noise."""

import numpy as np
import pytest

from analysis.measurement import (
    ObservationError,
    Profile,
    correlated_noise,
    measure_mmd,
    measure_scalar,
    noise_kernel,
    spreading_matrix,
    whitening,
)
from analysis.mmd import DLOGM, LOGM, averages


def _lognormal(centre: float = 4.3, width: float = 0.25) -> np.ndarray:
    w = np.exp(-0.5 * ((LOGM - centre) / width) ** 2)
    return w / (w.sum() * DLOGM)


def test_a_profile_without_errors_is_the_identity():
    w = _lognormal()
    out, mn, mw = measure_mmd(w, Profile("ideal"), np.random.default_rng(0))
    np.testing.assert_allclose(out[0], w, rtol=1e-12)
    assert (mn[0], mw[0]) == pytest.approx(averages(w), rel=1e-12)
    np.testing.assert_array_equal(measure_scalar(np.array([1.0, 2.0]), 0.0, np.random.default_rng(0)), [1, 2])


def test_spreading_keeps_the_mass_of_cells_far_from_the_grid_edges():
    matrix = spreading_matrix(0.03, 0.08)
    inner = (LOGM > LOGM[0] + 0.7) & (LOGM < LOGM[-1] - 0.7)
    np.testing.assert_allclose(matrix.sum(axis=0)[inner], 1.0, atol=1e-12)
    assert np.all(matrix.sum(axis=0) <= 1 + 1e-12)


def test_a_calibration_shift_multiplies_both_averages_by_ten_to_the_shift():
    w = _lognormal()
    shift = 3 * DLOGM  # a whole number of cells: exact on the grid
    out, mn, mw = measure_mmd(w, Profile("shifted", calibration_bias=shift), np.random.default_rng(0))
    mn0, mw0 = averages(w)
    assert mn[0] / mn0 == pytest.approx(10**shift, rel=1e-9)
    assert mw[0] / mw0 == pytest.approx(10**shift, rel=1e-9)


@pytest.mark.parametrize("sigma", [0.03, 0.06, 0.1])
def test_gaussian_broadening_raises_the_dispersity_by_its_closed_form(sigma):
    """A Gaussian of sd s (decades) in log M multiplies Mw by exp((s ln10)^2 / 2) and divides Mn by it."""
    w = _lognormal()
    out, mn, mw = measure_mmd(w, Profile("broad", broadening=sigma), np.random.default_rng(0))
    mn0, mw0 = averages(w)
    factor = np.exp((sigma * np.log(10)) ** 2 / 2)
    assert mw[0] / mw0 == pytest.approx(factor, rel=2e-3)
    assert mn0 / mn[0] == pytest.approx(factor, rel=2e-3)
    assert (mw[0] / mn[0]) / (mw0 / mn0) == pytest.approx(factor**2, rel=4e-3)


def test_the_cut_off_removes_the_low_mass_signal_and_raises_mn():
    w = _lognormal(centre=3.2, width=0.4)
    out, mn, _ = measure_mmd(w, Profile("cut", cutoff_logm=2.7), np.random.default_rng(0))
    assert np.all(out[0][LOGM < 2.7] == 0) and mn[0] > averages(w)[0]
    assert out[0].sum() * DLOGM == pytest.approx(1.0, rel=1e-12)


def test_detector_noise_has_unit_variance_and_the_stated_correlation():
    rng = np.random.default_rng(1)
    length = 0.2
    z = correlated_noise(rng, (20000,), length)
    middle = slice(30, 70)
    assert z[:, middle].var(axis=0).mean() == pytest.approx(1.0, abs=0.03)
    lag = int(round(length / DLOGM))
    corr = np.mean([np.corrcoef(z[:, i], z[:, i + lag])[0, 1] for i in range(30, 60)])
    assert corr == pytest.approx(np.exp(-0.5 * (lag * DLOGM / length) ** 2), abs=0.03)


def test_scalar_errors_have_the_stated_relative_spread_and_no_bias():
    values = measure_scalar(np.full(200000, 2.0), 0.05, np.random.default_rng(2))
    assert values.mean() == pytest.approx(2.0, rel=2e-3)
    assert np.std(np.log(values)) == pytest.approx(0.05, rel=0.01)


def test_profiles_are_ordered_and_every_error_has_a_source():
    from analysis.measurement import PROFILES

    ideal, typical, poor = (PROFILES[k] for k in ("ideal", "typical", "poor"))
    assert ideal == Profile("ideal")
    for name in ("calibration_sd", "broadening", "cutoff_logm", "detector_relative", "detector_baseline",
                 "cBA_time", "cAIBN_time", "branching"):
        assert getattr(poor, name) > getattr(typical, name) > 0, name
    assert set(typical.sources) == set(poor.sources) >= {"calibration", "broadening", "cutoff", "detector",
                                                          "cBA_time", "cAIBN_time", "branching"}
    # the calibration scatter reproduces the stated repeatability of Mw (3 %) and calibration error (10 %)
    rng = np.random.default_rng(3)
    w = _lognormal()
    _, _, mw = measure_mmd(np.tile(w, (4000, 1)), Profile("c", calibration_sd=typical.calibration_sd), rng)
    assert np.std(np.log(mw)) == pytest.approx(np.log(1 + np.hypot(0.03, 0.10)), rel=0.05)


def test_the_finders_training_rows_for_a_profile_are_the_workbooks_rows_as_measured(data):
    from analysis.finder import training_rows
    from analysis.measurement import PROFILES
    from analysis.mmd import MMD_COLUMNS

    rows = data.iloc[::400]
    assert training_rows(rows, "ideal") is rows  # the simulator's own rows, untouched
    typical = training_rows(rows, "typical")
    assert typical.equals(training_rows(rows, "typical"))  # one fixed draw
    w = typical[MMD_COLUMNS].to_numpy(float)
    assert (w[:, LOGM < PROFILES["typical"].cutoff_logm] == 0).all() and (w >= 0).all()
    assert np.allclose(w.sum(axis=1) * DLOGM, 1.0)
    mn, mw = averages(w)  # Mn, Mw are those of the measured trace, not the simulation's
    assert np.allclose(typical.Mn, mn) and np.allclose(typical.Mw, mw)
    assert not np.allclose(typical.Mn, rows.Mn, rtol=1e-3)
    error = np.log(typical.cBA_time / rows.cBA_time)  # GC error of the stated size
    assert 0 < error.std() < 3 * PROFILES["typical"].cBA_time
    assert typical[["cBA_0", "cAIBN_0", "temp", "time"]].equals(rows[["cBA_0", "cAIBN_0", "temp", "time"]])


def test_whitening_over_the_compared_points_is_the_inverse_square_root_of_their_block():
    # W @ C @ W.T is the identity on the points compared, W's columns at the others are zero, and
    # W.T @ W is the inverse of the compared block (a well-conditioned covariance: white plus correlated)
    kernel = noise_kernel(0.1)
    cov = 0.5 * np.eye(100) + kernel @ kernel.T
    compared = np.ones(100, bool)
    compared[[0, 1, 2, 50, 97, 98, 99]] = False
    w = whitening(cov, compared)
    assert w.shape == (93, 100)
    np.testing.assert_allclose(w @ cov @ w.T, np.eye(93), atol=1e-10)
    assert np.all(w[:, ~compared] == 0.0)
    block = cov[np.ix_(compared, compared)]
    np.testing.assert_allclose(w[:, compared].T @ w[:, compared] @ block, np.eye(93), atol=1e-10)
    np.testing.assert_allclose(whitening(cov), whitening(cov, np.ones(100, bool)))


@pytest.mark.parametrize("field, value", [("known_temp", 0.0), ("known_time", 0.0), ("broadening", -0.05),
                                          ("detector_baseline", float("nan")), ("cBA_time", float("inf"))])
def test_a_profile_refuses_a_negative_or_missing_precision_and_an_exactly_known_value(field, value):
    # a known temperature's sd of 0 would give the posterior a zero-width cell, i.e. no density
    with pytest.raises(ObservationError, match=f"profile 'bad': {field} is (a|the) (standard deviation|sd)"):
        Profile("bad", **{field: value})
    assert getattr(Profile("fine", **{field: 0.5}), field) == 0.5
