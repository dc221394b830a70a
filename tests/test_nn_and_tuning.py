"""The Keras network and the nested hyperparameter searches, on tiny inputs."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.design import TARGETS
from analysis.new_models import HGB_SPACE
from analysis.study_models import RF_SEARCH_SPACE


@pytest.mark.slow
def test_the_network_learns_a_linear_map_and_is_deterministic():
    from analysis.nn import fit_network, predict

    rng = np.random.default_rng(0)
    x = rng.standard_normal((240, 5))
    y = x @ rng.standard_normal((5, 4)) + 0.01 * rng.standard_normal((240, 4))
    model, history = fit_network(x[:200], y[:200], seed=3, epochs=80, patience=10)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    assert len(history["val_loss"]) == len(history["loss"]) <= 80
    error = np.mean((predict(model, x[200:]) - y[200:]) ** 2) / np.var(y[200:])
    assert error < 0.1  # a held-out R² above 0.9
    again, _ = fit_network(x[:200], y[:200], seed=3, epochs=80, patience=10)
    np.testing.assert_array_equal(predict(model, x[200:]), predict(again, x[200:]))
    # early stopping on given validation data instead of the last fifth of the rows
    _, other = fit_network(x[:200], y[:200], seed=3, epochs=5, validation_data=(x[200:], y[200:]))
    assert len(other["val_loss"]) == 5


@pytest.mark.slow
def test_nested_searches_choose_inside_the_training_folds(toy):
    from analysis.tuning import nested_hgb, nested_rf

    frame = toy(n_recipes=20, times=4)
    hgb = nested_hgb(frame, n_candidates=2)
    assert len(hgb) == 5
    for fold in hgb:
        assert set(fold["params"]) == set(TARGETS)
        for t in TARGETS:
            assert all(fold["params"][t][k] in HGB_SPACE[k] for k in HGB_SPACE)
            assert fold["inner_r2"][t] == max(fold["candidates"][t])  # the winner is the best inner score
    rf = nested_rf(frame, n_candidates=1)
    assert len(rf) == 5 and all(set(f["params"]) == set(RF_SEARCH_SPACE) for f in rf)
    assert all(f["inner_r2"] == f["candidates"][0]["inner_r2"] for f in rf)


def test_stored_searches_record_their_workbook(small_workbook, tmp_path):
    from analysis.dataset import file_sha256, study_sha256
    from analysis.hyperparameters import load_stored, stamp, write_stored

    record = {**stamp(small_workbook), "rf_mmd": {"params": {"n_estimators": 100}}}
    write_stored(record, tmp_path / "h.json")
    stored = json.loads((tmp_path / "h.json").read_text())
    assert stored["data"] == "small.xlsx" and stored["data_sha256"] == file_sha256(small_workbook)
    assert stored["study_sha256"] == study_sha256(small_workbook)
    assert load_stored(tmp_path / "h.json", small_workbook)["rf_mmd"]["params"]["n_estimators"] == 100
    # the same study sheets with an extra sheet: another file, the same searches, no warning
    sheets = pd.read_excel(small_workbook, sheet_name=None)
    with pd.ExcelWriter(tmp_path / "extended.xlsx") as writer:
        for name, sheet in {**sheets, "observables": sheets["compuesta"].iloc[:, :4]}.items():
            sheet.to_excel(writer, sheet_name=name, index=False)
    assert file_sha256(tmp_path / "extended.xlsx") != file_sha256(small_workbook)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_stored(tmp_path / "h.json", tmp_path / "extended.xlsx")
    with pytest.raises(FileNotFoundError, match="make tune"):
        load_stored(tmp_path / "absent.json")


def test_the_chapters_hold_exactly_the_networks_to_bands():
    from analysis.evaluation import is_network, split_networks

    names = ["RF, composite (study), fold 1", "hgb, composite", "hgb, MMD only, fold 1", "knn, composite",
             "knn, MMD only", "NN, composite (study), fold 1", "nn+, composite, fold 1", "nn+, composite",
             "physics inversion (12 rows)"]
    assert [name for name in names if is_network(name)] == [
        "NN, composite (study), fold 1", "nn+, composite, fold 1", "nn+, composite"]
    others, networks = split_networks(iter(names))
    assert networks == [name for name in names if is_network(name)]
    assert others == [name for name in names if not is_network(name)] and len(others) == 6
