"""Reading SEC exports onto the model grid, and refusing bad ones with the problem named."""

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.mmd import DLOGM, LOGM, l1_distance
from analysis.sec_file import InputError, read_sec_file, resample

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
