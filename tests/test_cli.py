"""The command line: names, JSON fields, and clear errors."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from analysis.design import SAMPLE_TIMES


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "analysis", *args], capture_output=True, text=True,
                          timeout=600)


def test_simulate_json_schema():
    out = run_cli("simulate", "--cba0", "1.0", "--caibn0", "0.02", "--temp", "70", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) >= {"recipe", "logM", "samples"}
    assert doc["recipe"] == {"cBA_0": 1.0, "cAIBN_0": 0.02, "temp": 70.0}
    assert len(doc["logM"]) == 100
    assert [s["time"] for s in doc["samples"]] == list(SAMPLE_TIMES)
    for s in doc["samples"]:
        assert set(s) == {"time", "conversion", "cBA_time", "Mn", "Mw", "cAIBN_time", "branching",
                          "midchain_fraction", "mmd"}
        assert len(s["mmd"]) == 100 and s["Mw"] >= s["Mn"]
        assert 0 < s["cAIBN_time"] < 0.02 and 0 < s["branching"] < 10 and 0 < s["midchain_fraction"] < 1


def test_simulate_text_output_kmc():
    out = run_cli("simulate", "--cba0", "0.5", "--caibn0", "0.02", "--temp", "80", "--engine", "kmc",
                  "--seed", "5")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if not line.startswith("#")]
    assert len(rows) == 12 and all(len(r) == 105 for r in rows)


@pytest.mark.parametrize("args, words", [
    (["--cba0", "1", "--caibn0", "20", "--temp", "70"], "mmol/L"),
    (["--cba0", "-1", "--caibn0", "0.02", "--temp", "70"], "must be positive"),
    (["--cba0", "1", "--caibn0", "0", "--temp", "70"], "must be positive"),
    (["--cba0", "1", "--caibn0", "0.02", "--temp", "343"], "outside the range"),
])
def test_simulate_refuses_bad_input_without_traceback(args, words):
    out = run_cli("simulate", *args)
    assert out.returncode == 2
    assert words in out.stderr and "Traceback" not in out.stderr


def test_tune_refuses_a_profile_without_calibrate_and_an_unknown_profile(capsys):
    from analysis.cli import main

    assert main(["tune", "--noise", "typical"]) == 2
    assert "--noise chooses the profiles of --calibrate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # argparse's own refusal: only measured profiles are calibrated
        main(["tune", "--calibrate", "--noise", "ideal"])
    assert stop.value.code == 2 and "invalid choice: 'ideal'" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_writes_the_whole_design(tmp_path):
    path = tmp_path / "sweep.csv"
    out = run_cli("sweep", "--out", str(path), "--quiet")
    assert out.returncode == 0, out.stderr
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["temp", "cBA_0", "cAIBN_0", "conversion_3600", "t_stop", "Mn", "Mw"]
    assert len(frame) == 432
    assert len(frame.drop_duplicates(["temp", "cBA_0", "cAIBN_0"])) == 432
    stopped = frame[frame.t_stop < 3600]
    assert (stopped.conversion_3600.round(6) == 0.9).all()
    assert (frame.conversion_3600 <= 0.9 + 1e-9).all() and (frame.Mw >= frame.Mn).all()
    # hotter is faster at fixed recipe
    pivot = frame.pivot_table(index=["cBA_0", "cAIBN_0"], columns="temp", values="conversion_3600")
    assert (pivot.diff(axis=1).iloc[:, 1:] >= -1e-12).all().all()


@pytest.mark.slow
def test_evaluate_json_fields_and_model_names(small_workbook):
    from analysis.design import TARGETS

    path = small_workbook
    for model, split in (("knn", "recipes"), ("best", "rows")):
        r = run_cli("evaluate", "--model", model, "--features", "mmd", "--split", split, "--data", str(path),
                    "--json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert {"model", "features", "split", "r2", "rel_mae", "global_r2"} <= set(out)
        assert list(out["r2"]) == TARGETS and list(out["rel_mae"]) == TARGETS
        assert out["global_r2"] == pytest.approx(sum(out["r2"].values()) / 4)
        assert len(out["fold_global_r2"]) == (5 if split == "recipes" else 1)
    assert out["model"] == "best" and out["best"] == "hgb"
    r = run_cli("evaluate", "--model", "forest")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
    # the study's forest on another workbook: the stored hyperparameters belong to ours, and it says so
    r = run_cli("evaluate", "--model", "rf", "--features", "mmd", "--data", str(path), "--json")
    assert r.returncode == 0, r.stderr
    assert "tuned on another workbook" in r.stderr and "small.xlsx" in r.stderr


def test_invert_json_lists_the_warnings_raised_during_the_call(monkeypatch, capsys):
    # a library's warning (here the stale interval calibration, which the finder raises while it runs)
    # reaches a --json user in "warnings", before the finder's own, and not only on stderr
    import warnings
    from pathlib import Path

    from analysis import cli, finder
    from analysis.calibration import StaleCalibration

    def fake_find_recipe(w, *args, **kwargs):
        warnings.warn("interval_calibration.json was calibrated with other inversion settings",
                      StaleCalibration, stacklevel=2)
        return {"recipe": {}, "warnings": ["the finder's own"]}

    monkeypatch.setattr(finder, "find_recipe", fake_find_recipe)
    mmd = Path(__file__).resolve().parents[1] / "data" / "examples" / "between_levels.csv"
    assert cli.main(["invert", "--mmd", str(mmd), "--noise", "ideal", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["warnings"] == ["interval_calibration.json was calibrated with other inversion settings",
                               "the finder's own"]


def test_invert_help_states_the_sd_each_profile_holds_a_known_value_to(capsys):
    from analysis.cli import main
    from analysis.inversion import known_sds
    from analysis.measurement import PROFILES

    with pytest.raises(SystemExit):
        main(["invert", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    for name, profile in PROFILES.items():  # the sds the inversion takes (`known_sds`)
        sd = known_sds(profile)
        assert f"{name} {sd['time']:g} s" in text and f"{name} {sd['temp']:g} °C" in text
