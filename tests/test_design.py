"""The study's facts: the design, the unit box of the optimisers and priors, the recipe key."""

import numpy as np
import pandas as pd
import pytest

from analysis.design import (
    BOX,
    CAIBN0_LEVELS,
    CBA0_LEVELS,
    CENTRE,
    RECIPE_KEY,
    SAMPLE_TIMES,
    STUDY_RANGES,
    TARGETS,
    TEMP_LEVELS,
    clip_to_box,
    design,
    from_unit,
    recipe_groups,
    target_from_unit,
    target_span,
    to_unit,
    unit_span,
)


def test_design_is_the_full_factorial_and_spans_the_study_ranges():
    recipes = design()
    assert len(recipes) == len(CBA0_LEVELS) * len(CAIBN0_LEVELS) * len(TEMP_LEVELS) == 432
    assert len({(r.cBA_0, r.cAIBN_0, r.temp) for r in recipes}) == 432
    for levels, name in ((CBA0_LEVELS, "cBA_0"), (CAIBN0_LEVELS, "cAIBN_0"), (TEMP_LEVELS, "temp")):
        assert (min(levels), max(levels)) == STUDY_RANGES[name] == BOX[name]
    assert SAMPLE_TIMES[0] == BOX["time"][0] and SAMPLE_TIMES[-1] == BOX["time"][1] == STUDY_RANGES["time"][1]


def test_unit_box_round_trip_ends_and_log_scale():
    rng = np.random.default_rng(1)
    u = rng.random((50, 4))
    np.testing.assert_allclose(to_unit(from_unit(u)), u, atol=1e-12)
    lows, highs = (np.array([BOX[t][k] for t in TARGETS]) for k in (0, 1))
    np.testing.assert_allclose(from_unit(np.zeros(4)), lows)
    np.testing.assert_allclose(from_unit(np.ones(4)), highs)
    # the initiator's midpoint is the geometric mean of its ends, the others' the arithmetic mean
    mid = from_unit(np.full(4, 0.5))
    assert mid[1] == pytest.approx(np.sqrt(0.0025 * 0.02)) and mid[0] == pytest.approx(1.75)
    assert to_unit(CENTRE)[1] == pytest.approx(0.5, abs=0.01)
    # out-of-box values are clipped onto its faces
    np.testing.assert_allclose(to_unit({"cBA_0": 9.0, "cAIBN_0": 1e-6, "temp": 70.0, "time": 0.0}),
                               [1.0, 0.0, 0.5, 0.0])


def test_unit_span_is_the_derivative_of_from_unit():
    u = np.array([0.3, 0.7, 0.2, 0.9])
    h = 1e-6
    numeric = np.array([(from_unit(u + h * e) - from_unit(u - h * e))[j] / (2 * h)
                        for j, e in enumerate(np.eye(4))])
    np.testing.assert_allclose(unit_span(from_unit(u)), numeric, rtol=1e-8)
    # one target's span on many values at once: the derivative of its own unit conversion
    v = np.linspace(0.05, 0.95, 7)
    for name in TARGETS:
        slope = (target_from_unit(name, v + h) - target_from_unit(name, v - h)) / (2 * h)
        np.testing.assert_allclose(target_span(name, target_from_unit(name, v)), slope, rtol=1e-8)


def test_recipe_groups_follow_the_recipe_key_only():
    frame = pd.DataFrame({"cBA_0": [1.0, 1.0, 2.0, 1.0], "cAIBN_0": [0.01, 0.01, 0.01, 0.02],
                          "temp": [70.0, 70.0, 70.0, 70.0], "time": [300.0, 600.0, 300.0, 300.0]})
    groups = recipe_groups(frame)
    assert groups[0] == groups[1] and len(set(groups)) == 3
    assert RECIPE_KEY == ["cBA_0", "cAIBN_0", "temp"]
    shuffled = frame.sample(frac=1.0, random_state=0)
    # the same recipe gets the same number whatever the row order (sorted by the key)
    assert dict(zip(map(tuple, shuffled[RECIPE_KEY].to_numpy()), recipe_groups(shuffled))) == \
        dict(zip(map(tuple, frame[RECIPE_KEY].to_numpy()), groups))


def test_clip_to_box():
    assert clip_to_box({"cBA_0": 4.0, "cAIBN_0": -0.003, "temp": 70.0, "time": 10.0}) == \
        {"cBA_0": 3.0, "cAIBN_0": 0.0025, "temp": 70.0, "time": 300.0}
