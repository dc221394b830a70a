"""Rate coefficients: transcription of the literature values, sources, recipe validation."""

import dataclasses
import math

import pytest

from analysis.kinetics import DEFAULT_PARAMETERS, Arrhenius, Recipe, RecipeError

# k at 70 °C from the orientation column of kinetics.md (independent hand computation)
AT_70C = {"kd": 3.9e-5, "kp": 4.2e4, "kbb": 7.8e2, "kpt": 59.0, "ktss": 2.3e7, "ktrM": 3.2}


@pytest.mark.parametrize("name, expected", AT_70C.items())
def test_coefficients_at_70C_match_the_reference_table(name, expected):
    value = getattr(DEFAULT_PARAMETERS, name)(70.0)
    assert value == pytest.approx(expected, rel=0.05)


def test_every_arrhenius_coefficient_cites_its_source():
    for f in dataclasses.fields(DEFAULT_PARAMETERS):
        value = getattr(DEFAULT_PARAMETERS, f.name)
        if isinstance(value, Arrhenius):
            assert len(value.source) > 20 and any(ch.isdigit() for ch in value.source), f.name


def test_derived_termination_coefficients_follow_the_stated_conventions():
    k = DEFAULT_PARAMETERS.at(70.0)
    assert k.ktt == pytest.approx(0.1 * k.ktss)
    assert k.ktst == pytest.approx(math.sqrt(k.ktss * k.ktt))
    assert k.ktrS == pytest.approx(DEFAULT_PARAMETERS.CS * k.kp)


def test_parameters_can_be_changed_without_editing_code():
    faster = dataclasses.replace(DEFAULT_PARAMETERS, kp=Arrhenius(4.42e7, 17.9, "doubled"))
    assert faster.at(70).kp == pytest.approx(2 * DEFAULT_PARAMETERS.at(70).kp)
    assert DEFAULT_PARAMETERS.at(70).kp == pytest.approx(4.2e4, rel=0.05)


def test_solvent_concentration_from_additive_volumes():
    # 0.01 mol/L BA takes 0.01 * 128.17 / 894 of the litre; toluene fills the rest at 867 g/L, 92.14 g/mol
    assert Recipe(0.01, 0.01, 70).solvent == pytest.approx((1 - 0.01 * 128.17 / 894) * 867 / 92.14, rel=1e-12)
    assert Recipe(3.0, 0.01, 70).solvent == pytest.approx((1 - 3 * 128.17 / 894) * 867 / 92.14)


@pytest.mark.parametrize("args, words", [
    ((-1.0, 0.01, 70), "cBA_0 must be positive"),
    ((0.0, 0.01, 70), "cBA_0 must be positive"),
    ((1.0, 0.0, 70), "cAIBN_0 must be positive"),
    ((1.0, 20.0, 70), "mmol/L"),
    ((1.0, 0.01, 343.15), "is it given in K"),
    ((float("nan"), 0.01, 70), "finite"),
    ((12.0, 0.01, 70), "bulk BA"),
])
def test_bad_recipes_are_refused_with_the_problem_named(args, words):
    with pytest.raises(RecipeError, match=words):
        Recipe(*args)
