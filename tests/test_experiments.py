"""The simulator under the experiments' conditions, the sensitivity study and the beta-scission option."""

import math
from dataclasses import replace

import numpy as np
import pytest

from analysis import experiments, sensitivity
from analysis.kinetics import DEFAULT_PARAMETERS, M_AIBN, M_BA, R_GAS, RHO_BA, Arrhenius, Recipe
from analysis.kmc import run_kmc
from analysis.ode import run_ode


def test_cyclohexane_recipe_keeps_the_mass_fractions():
    for wt in (0.03, 0.2, 0.5):
        r = experiments.cyclohexane_recipe(wt)
        rho = 1 / (wt / RHO_BA + (1 - wt) / experiments.RHO_CYCLOHEXANE)
        assert r.cBA_0 * M_BA / rho == pytest.approx(wt, rel=1e-12)
        assert r.cAIBN_0 * M_AIBN / (r.cBA_0 * M_BA) == pytest.approx(0.001, rel=1e-12)


def test_rate_order_is_one_for_ideal_kinetics_and_above_one_with_backbiting():
    """Ideal kinetics: the conversion at a time does not depend on [M]0, so Rp ∝ [M]0 exactly."""
    assert experiments.rate_order(params=DEFAULT_PARAMETERS.ideal()) == pytest.approx(1.0, abs=1e-4)
    assert experiments.rate_order() > 1.3


def test_midchain_fraction_tends_to_the_no_termination_limit_at_low_radical_flux():
    table = experiments.midchain_fractions(caibn=1e-4, cba=(0.5, 2.53))
    np.testing.assert_allclose(table["ours"], table["no termination: kbb / (kbb + kpt [M])"], rtol=0.01)
    assert table["ours"].is_monotonic_decreasing  # more monomer, more MCRs propagate back


def test_branching_rises_with_conversion_and_falls_with_monomer_under_ahmads_conditions():
    curves = experiments.branching_curves((10, 50))
    for _, run in curves.groupby("wt %"):
        assert np.all(np.diff(run.branching) > 0) and np.all(np.diff(run.conversion) >= 0)
    table = experiments.ahmad_comparison(curves)
    assert list(table["measured (mol %)"]) == [0.8, 2.2, 2.7, 5.9]
    dilute, concentrated = (curves[curves["wt %"] == w] for w in (10, 50))
    assert np.interp(0.5, dilute.conversion, dilute.branching) > np.interp(0.5, concentrated.conversion,
                                                                           concentrated.branching)


def test_solvent_transfer_barely_moves_branching_or_rate_order():
    effect = experiments.solvent_transfer_effect()
    assert abs(effect["branching"]) < 0.01 and abs(effect["rate_order"]) < 0.01


def test_activation_energy_shift_keeps_k_at_70_and_changes_it_as_arrhenius_elsewhere():
    k = DEFAULT_PARAMETERS.kbb
    shifted = sensitivity._ea_shifted(k, 3.0)
    assert shifted(70.0) == pytest.approx(k(70.0), rel=1e-12)
    expected = math.exp(-3000.0 / R_GAS * (1 / 353.15 - 1 / 343.15))
    assert shifted(80.0) / k(80.0) == pytest.approx(expected, rel=1e-12)


def test_every_perturbation_moves_only_its_parameter():
    base = DEFAULT_PARAMETERS.at(70.0)
    for name, (_, low, high) in sensitivity.perturbations().items():
        for p in (low, high):
            k = p.at(70.0)
            changed = {f for f in base.__dataclass_fields__ if getattr(k, f) != getattr(base, f)}
            expected = {"CS (toluene)": {"ktrS"}, "kbb": {"kbb"}, "Ea(kbb)": {"kbb"}, "kpt": {"kpt"},
                        "ktt": {"ktt", "ktst"}, "ktst": {"ktst"}, "f": {"f"}}[name]
            if name == "Ea(kbb)":
                assert changed <= expected and p.at(80.0).kbb != base.kbb  # same k at 70 °C
            else:
                assert changed == expected, name


def test_beta_scission_off_changes_nothing_and_on_keeps_the_mass_balance():
    recipe = Recipe(0.5, 0.02, 80.0)
    base = run_ode(recipe)
    off = run_ode(recipe, replace(DEFAULT_PARAMETERS, kbeta=Arrhenius(0.0, 0.0)))
    np.testing.assert_array_equal(base.mmd, off.mmd)
    on = run_ode(recipe, replace(DEFAULT_PARAMETERS, kbeta=Arrhenius(10.0, 0.0)))
    consumed = recipe.cBA_0 - on.cBA
    np.testing.assert_allclose(on.info["polymer_units"], consumed, rtol=1e-3)
    assert on.Mn[-1] < base.Mn[-1] and np.all(on.Mw >= on.Mn)
    with pytest.raises(NotImplementedError, match="deterministic engine only"):
        run_kmc(recipe, replace(DEFAULT_PARAMETERS, kbeta=Arrhenius(10.0, 0.0)))


def test_beta_scission_scan_lowers_mn_monotonically():
    scan = sensitivity.beta_scission_scan((0.0, 0.1, 1.0, 10.0))
    assert scan["Mn"].is_monotonic_decreasing and scan.loc[0.1, "Mn"] > 0.95 * scan.loc[0.0, "Mn"]


@pytest.mark.slow
def test_reference_singular_value_matches_the_design_pipeline():
    """The sensitivity study's weakest singular value at default parameters is chapter 8's for that row."""
    from analysis.identifiability import design_jacobians, noise_model, weakest_direction

    row = sensitivity._reference_row()
    sigma = sensitivity.reference_noise(jobs=1)
    rj = design_jacobians(row, jobs=1)
    assert noise_model(row, rj)[0][:100] == pytest.approx(sigma[:100], rel=1e-3)  # the row's own scatter
    expected = weakest_direction(row, rj, sigma[None, :]).s4.iloc[0]
    assert sensitivity.weakest_singular_value(DEFAULT_PARAMETERS, sigma) == pytest.approx(expected, rel=1e-9)
