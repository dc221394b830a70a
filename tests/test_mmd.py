"""The log M grid and the distribution algebra behind the deterministic MMD."""

import numpy as np
import pytest

from analysis.design import design
from analysis.engines import simulate
from analysis.kinetics import M_BA
from analysis.mmd import (
    DLOGM,
    EDGE_LENGTHS,
    LOGM,
    MMD_COLUMNS,
    averages,
    bin_lookup,
    cell_masses,
    flory_mass_tail,
    l1_distance,
    schulz2_mass_tail,
)


def test_grid_shape():
    assert len(LOGM) == 100 and len(MMD_COLUMNS) == 100 and MMD_COLUMNS[0] == "MMD1"
    np.testing.assert_allclose(np.diff(LOGM), DLOGM)
    assert LOGM[0] - DLOGM / 2 == pytest.approx(2.0) and LOGM[-1] + DLOGM / 2 == pytest.approx(6.5)


@pytest.mark.parametrize("q", [0.3, 0.01, 1e-3])
def test_closed_form_tails_equal_brute_force_sums(q):
    n = np.arange(1, 200_000)
    p = 1 - q
    flory = n * q * q * p ** (n - 1)  # mass fractions of the Flory distribution
    schulz = n * (n - 1) * q**3 * p ** (n - 2) / 2  # of the sum of two Flory lengths
    assert flory.sum() == pytest.approx(1, abs=1e-9) and schulz.sum() == pytest.approx(1, abs=1e-9)
    for cut in (1, 7, 150, 3000):
        assert flory_mass_tail(cut, q) == pytest.approx(flory[cut:].sum(), abs=1e-12)
        assert schulz2_mass_tail(cut, q) == pytest.approx(schulz[cut:].sum(), abs=1e-12)


def test_cells_of_a_distribution_sum_to_one_and_match_the_lookup():
    q = 2e-3
    cells = cell_masses(q, "flory")
    assert cells.sum() == pytest.approx(1.0, abs=1e-12)
    lookup = bin_lookup(int(EDGE_LENGTHS[-1]) + 5)
    n = np.arange(1, lookup.size)
    mass = n * q * q * (1 - q) ** (n - 1)
    by_lookup = np.bincount(lookup[1:], weights=mass, minlength=102)
    np.testing.assert_allclose(by_lookup[1:-1], cells[1:-1], atol=1e-12)
    # every chain length is placed in the cell whose edges contain its log M
    logm = np.log10(n * M_BA)
    inside = (lookup[1:] >= 1) & (lookup[1:] <= 100)
    edges = np.linspace(2.0, 6.5, 101)
    assert np.all(logm[inside] > edges[lookup[1:][inside] - 1] - 1e-12)
    assert np.all(logm[inside] <= edges[lookup[1:][inside]] + 1e-12)


def test_cell_masses_of_many_stop_probabilities_are_each_ones():
    q = np.array([3e-2, 2e-3, 1e-4])
    for kind in ("flory", "schulz2"):
        many = cell_masses(q, kind)
        assert many.shape == (3, 102)
        for row, value in zip(many, q):
            np.testing.assert_array_equal(row, cell_masses(float(value), kind))
        np.testing.assert_allclose(many.sum(axis=1), 1.0, atol=1e-12)


def test_l1_distance_and_averages_on_hand_made_cases():
    a = np.zeros(100)
    b = np.zeros(100)
    a[10] = b[20] = 1 / DLOGM
    assert l1_distance(a, a) == 0
    assert l1_distance(a, b) == pytest.approx(2.0)
    mn, mw = averages(a)
    assert mn == pytest.approx(10 ** LOGM[10]) and mw == pytest.approx(10 ** LOGM[10])
    c = (a + b) / 2  # half the mass at M1, half at M2
    m1, m2 = 10 ** LOGM[10], 10 ** LOGM[20]
    mn, mw = averages(c)
    assert mw == pytest.approx((m1 + m2) / 2)
    assert mn == pytest.approx(1 / (0.5 / m1 + 0.5 / m2))


@pytest.mark.slow
def test_grid_holds_at_least_99_5_percent_of_every_sample_of_the_design():
    worst = 1.0
    for recipe in design():
        run = simulate(recipe, "ode")
        worst = min(worst, run.info["mass_inside_grid"].min())
    assert worst >= 0.995
