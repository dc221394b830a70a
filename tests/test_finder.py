"""The recipe finder: reading SEC exports, refusing bad ones, physics inversion, the invert command."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.finder import InputError, read_sec_file, resample
from analysis.inversion import BOUNDS, Observation, forward, invert
from analysis.mmd import DLOGM, LOGM, l1_distance

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
TRUTH = json.loads((EXAMPLES / "truth.json").read_text())


HIGH = np.linspace(5, 7.5, 40)  # a grid that reaches beyond the model's


def _gauss(logm, centre=4.8, width=0.35):
    return np.exp(-0.5 * ((logm - centre) / width) ** 2)


def test_resample_is_unit_area_and_independent_of_grid_and_scale():
    coarse = np.linspace(2.5, 6.3, 60)
    fine = np.linspace(2.2, 6.45, 700)
    a = resample(coarse, 5.0 * _gauss(coarse))
    b = resample(10.0 ** fine, 0.01 * _gauss(fine))  # given as M, another scale
    assert a.sum() * DLOGM == pytest.approx(1.0) and b.sum() * DLOGM == pytest.approx(1.0)
    assert l1_distance(a, b) < 0.01
    assert l1_distance(b, _gauss(LOGM) / (_gauss(LOGM).sum() * DLOGM)) < 0.01


def test_number_distribution_is_converted_to_mass():
    w = _gauss(LOGM)
    dn = w / 10.0 ** LOGM
    np.testing.assert_allclose(resample(LOGM, dn, signal="dn"), w / (w.sum() * DLOGM), rtol=1e-9)


@pytest.mark.parametrize("text, words", [
    ("logM,w\n3,1\n4,2\n", "at least 10 points"),
    ("\n".join(f"{x:.2f};{-1.0 if i == 20 else 1.0}" for i, x in enumerate(np.linspace(3, 6, 40))),
     "negative signal"),
    ("\n".join(f"{x:.2f},{v:.4f}" for x, v in zip(HIGH, _gauss(HIGH, 6.8))), "outside the model grid"),
    ("\n".join(f"{x:.2f},{'nan' if i == 5 else 1.0}" for i, x in enumerate(np.linspace(3, 6, 40))), "NaN"),
    ("\n".join(["logM,w"] + [f"{x:.2f},1" for x in np.linspace(3, 6, 20)] + ["oops,1"]), "non-numeric line"),
])
def test_bad_files_get_a_named_error(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=words):
        read_sec_file(path)


def test_example_files_are_read_with_their_formats():
    for name, truth in TRUTH.items():
        w = read_sec_file(EXAMPLES / name, signal=truth["signal"])
        assert w.shape == (100,) and w.sum() * DLOGM == pytest.approx(1.0)


def test_inversion_recovers_an_off_grid_noise_free_recipe():
    truth = {"cBA_0": 2.2, "cAIBN_0": 0.0042, "temp": 66.5, "time": 2250.0}
    sim = forward(truth)
    result = invert(Observation(sim["mmd"], sim["cBA_time"], sim["Mn"], sim["Mw"]),
                    starts=[{"cBA_0": 1.75, "cAIBN_0": 0.007, "temp": 70.0, "time": 1800.0}])
    assert result.mmd_l1 < 2e-3  # it makes the same polymer
    for name in ("cBA_0", "time"):
        lo, hi = BOUNDS[name]
        assert abs(result.recipe[name] - truth[name]) < 0.05 * (hi - lo), name
    for name, (lo, hi) in result.interval.items():
        assert lo <= truth[name] <= hi, name


def test_invert_command_json_and_errors(tmp_path):
    truth = TRUTH["between_levels.csv"]
    out = subprocess.run([sys.executable, "-m", "analysis", "invert", "--mmd",
                          str(EXAMPLES / "between_levels.csv"), "--cba-time", str(truth["cBA_time"]),
                          "--mn", str(truth["Mn"]), "--mw", str(truth["Mw"]), "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc["recipe"]) == {"cBA_0", "cAIBN_0", "temp", "time"}
    assert set(doc["interval"]) == set(doc["recipe"]) and "mmd_l1" in doc["roundtrip"]
    assert isinstance(doc["in_domain"], bool) and doc["in_domain"]
    assert doc["roundtrip"]["mmd_l1"] < 0.05
    assert abs(doc["recipe"]["cBA_0"] - truth["cBA_0"]) < 0.05 * 2.5
    bad = tmp_path / "short.csv"
    bad.write_text("3,1\n4,1\n")
    out = subprocess.run([sys.executable, "-m", "analysis", "invert", "--mmd", str(bad)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and "at least 10 points" in out.stderr and "Traceback" not in out.stderr


def test_roundtrip_table_and_profile_agree_with_the_forward_model():
    # a noise-free row: its own recipe re-simulates it exactly; a recipe outside the domain is clipped
    # into it before running; the misfit profile is ~0 at the truth and rises away from the valley
    import pandas as pd

    from analysis.dataset import TARGETS
    from analysis.finder import clip_to_domain, roundtrip_table
    from analysis.inversion import profile
    from analysis.mmd import MMD_COLUMNS

    truth = {"cBA_0": 1.3, "cAIBN_0": 0.009, "temp": 68.0, "time": 1500.0}
    sim = forward(truth)
    row = pd.DataFrame([{**truth, "cBA_time": sim["cBA_time"], "Mn": sim["Mn"], "Mw": sim["Mw"],
                         **dict(zip(MMD_COLUMNS, sim["mmd"]))}], index=[7])
    exact = roundtrip_table(row, row[TARGETS])
    assert exact.loc[7, "mmd_l1"] < 1e-9 and abs(exact.loc[7, "Mn_rel"]) < 1e-9
    wrong = roundtrip_table(row, pd.DataFrame([{**truth, "cBA_0": 2.6}], index=[7]))
    assert wrong.loc[7, "mmd_l1"] > 0.05 and wrong.loc[7, "cBA_time_rel"] > 0.2
    assert clip_to_domain({"cBA_0": 4.0, "cAIBN_0": 0.001, "temp": 70.0, "time": 10.0}) == \
        {"cBA_0": 3.0, "cAIBN_0": 0.0025, "temp": 70.0, "time": 300.0}
    obs = Observation(sim["mmd"], sim["cBA_time"], sim["Mn"], sim["Mw"])
    prof = profile(obs, "cBA_0", np.array([1.3, 1.6]), truth)
    assert prof.chi2.iloc[0] < 1e-6 and prof.chi2.iloc[1] > 100.0  # cBA_0 is identifiable
