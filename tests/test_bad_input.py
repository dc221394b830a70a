"""Bad input gets a clear answer fast: one test per case of the hostile-user report (issue 11).
Each failed on the main of 2026-11-26 (a traceback, a silent misreading, a wasted computation or a hang)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.dataset import SHEETS, WORKBOOK, DatasetError, load_dataset
from analysis.mmd import DLOGM, LOGM, l1_distance
from analysis.sec_file import InputError, read_sec_bytes, read_sec_file

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
TRUTH = json.loads((EXAMPLES / "truth.json").read_text())
BETWEEN = EXAMPLES / "between_levels.csv"
FAST = 60  # s: a command that refuses its input must do so before computing anything


def run_cli(*args, timeout=FAST):
    return subprocess.run([sys.executable, "-m", "analysis", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def refused(out, *words):
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr
    for word in words:
        assert word in out.stderr, (word, out.stderr)


def _trace(centre=4.6, width=0.35, n=250, lo=2.3, hi=6.4):
    logm = np.linspace(lo, hi, n)
    return logm, 1000.0 * np.exp(-0.5 * ((logm - centre) / width) ** 2)


# --- Mn and Mw swapped, cBA_time far below: no internal value surfaces as the user's error ---------

def test_swapped_mn_and_mw_are_refused_at_once_naming_them():
    t = TRUTH["between_levels.csv"]
    out = run_cli("invert", "--mmd", BETWEEN, "--cba-time", t["cBA_time"], "--mn", t["Mw"], "--mw", t["Mn"])
    refused(out, "Mw", "below Mn", "swapped")


@pytest.mark.slow
def test_a_remaining_monomer_far_below_the_polymers_gives_a_result_with_warnings(data, finder_models):
    # the machine-learning recipe may leave the domain (negative initiator): it is clipped before the
    # round trip, so the user gets a result, flagged, and never "cAIBN_0 must be positive"
    from analysis.finder import find_recipe

    t = TRUTH["between_levels.csv"]
    w = read_sec_file(BETWEEN)
    doc = find_recipe(w, 0.002, t["Mn"], t["Mw"], frame=data, models=finder_models)
    assert not doc["in_domain"] and any("cBA_time" in m for m in doc["warnings"])
    assert np.isfinite(doc["ml"]["roundtrip"]["mmd_l1"]) and np.isfinite(doc["roundtrip"]["mmd_l1"])
    json.dumps(doc, allow_nan=False)


# --- output paths are checked before any computation; files are written atomically --------------

@pytest.mark.parametrize("args, words", [
    (["invert", "--mmd", BETWEEN, "--plot", "no/such/dir/x.png"], ["plot", "does not exist"]),
    (["sweep", "--out", "no/such/dir/s.csv", "--quiet"], ["CSV file", "does not exist"]),
    (["dataset", "--out", "no/such/dir/d.xlsx", "--quiet"], ["workbook", "does not exist"]),
    (["sweep", "--out", ".", "--quiet"], ["is a directory"]),
    (["tune", "--out", "no/such/dir/h.json"], ["JSON file", "does not exist"]),
])
def test_a_bad_output_path_is_refused_before_computing(args, words):
    refused(run_cli(*args), *words)


def test_the_sweep_writes_its_csv_atomically(tmp_path, monkeypatch):
    # a failure while writing leaves no partial file behind and the old file untouched
    from analysis import outputs

    target = tmp_path / "keep.csv"
    target.write_text("old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(outputs.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        outputs.atomic_write(target, "new\n")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["keep.csv"]


def test_a_written_file_has_the_permissions_a_plain_open_gives_it(tmp_path):
    # not the temporary file's private 0600: a new file follows the umask, a replaced one keeps its mode
    from analysis import outputs

    shared, private = tmp_path / "shared.csv", tmp_path / "private.csv"
    old = os.umask(0o022)
    try:
        outputs.atomic_write(shared, "a\n")
        assert shared.stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        outputs.atomic_write(private, "a\n")
        shared.chmod(0o640)
        outputs.atomic_write(shared, "b\n")
    finally:
        os.umask(old)
    assert private.stat().st_mode & 0o777 == 0o600
    assert shared.stat().st_mode & 0o777 == 0o640 and shared.read_text() == "b\n"


# --- the SEC reader: conventions, encodings, impossible values -----------------------------------

def _european(logm, signal):
    """M in g/mol (>= 1000 for most rows) and the signal, tab-separated, decimal commas."""
    return "\n".join(["M\tRI"] + [f"{10 ** a:.4f}\t{b:.6f}".replace(".", ",") for a, b in zip(logm, signal)])


def test_decimal_commas_with_tab_separators_read_like_their_clean_twin_and_say_so():
    logm, signal = _trace()
    clean = "\n".join(f"{10 ** a:.4f},{b:.6f}" for a, b in zip(logm, signal)).encode()
    notes = []
    w = read_sec_bytes(_european(logm, signal).encode(), source="euro.txt", notes=notes)
    assert notes == ["euro.txt: read as utf-8, tab-separated, with decimal commas"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert l1_distance(w, read_sec_bytes(clean)) < 1e-9
    peak = LOGM[np.argmax(w)]
    assert abs(peak - 4.6) < 2 * DLOGM  # M = 43466,5 read as one number, not two fields


def test_european_decimals_with_repeated_integer_parts_are_not_repeated_molar_masses():
    # log M to two decimals with decimal commas: "4,12" and "4,13" share their integer part
    logm, signal = _trace(n=180, lo=2.5, hi=6.3)
    text = "\n".join(f"{a:.3f};{b:.5f}".replace(".", ",") for a, b in zip(logm, signal))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = read_sec_bytes(text.encode(), source="euro.csv")
    assert w.sum() * DLOGM == pytest.approx(1.0) and abs(LOGM[np.argmax(w)] - 4.6) < 2 * DLOGM


def test_an_ambiguous_comma_file_is_refused_not_guessed():
    lines = "\n".join(f"{int(10 ** a)},{int(b)},{int(b / 2)}" for a, b in zip(*_trace()))
    with pytest.raises(InputError, match="ambiguous"):
        read_sec_bytes(lines.encode())


def test_a_single_spike_is_refused_before_any_simulation(tmp_path):
    logm, signal = _trace()
    signal[120] = 1e300
    text = "\n".join(f"{a:.6f},{b:.6g}" for a, b in zip(logm, signal))
    with pytest.raises(InputError, match="spike"):
        read_sec_bytes(text.encode(), source="spike.csv")
    (tmp_path / "spike.csv").write_text(text)
    refused(run_cli("invert", "--mmd", tmp_path / "spike.csv"), "spike")


def test_a_width_no_radical_polymer_has_is_refused():
    with pytest.raises(InputError, match="width"):
        read_sec_bytes("\n".join(f"{a:.5f},{b:.6g}" for a, b in zip(*_trace(width=0.04))).encode())


def test_negative_molar_masses_get_the_right_message():
    logm, signal = _trace()
    text = "\n".join(f"{-10 ** a:.2f},{b:.6g}" for a, b in zip(logm, signal))
    with pytest.raises(InputError, match="must be M in g/mol or log10 M, both positive"):
        read_sec_bytes(text.encode())


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig", "cp1252"])
def test_other_encodings_read_the_same(encoding):
    logm, signal = _trace()
    rows = "\n".join(f"{10 ** a:.4f}\t{b:.6f}" for a, b in zip(logm, signal))
    text = "Molar mass (g/mol)\tSignal (µV)\n" + rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = read_sec_bytes(text.encode())
        assert l1_distance(read_sec_bytes(text.encode(encoding)), reference) < 1e-12


def test_a_binary_file_and_a_directory_are_named_as_such(tmp_path):
    with pytest.raises(InputError, match="does not look like a text export"):
        read_sec_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError, match="is a directory"):
        read_sec_file(tmp_path)
    refused(run_cli("invert", "--mmd", tmp_path), "is a directory")


# --- a fit that fails says so ------------------------------------------------------------------------

@pytest.mark.slow
def test_a_failed_fit_is_reported_as_failed_with_wide_intervals(data, finder_models):
    # a narrow, symmetric MMD (Mw/Mn ~ 1.1) that no radical polymerization makes
    from analysis.finder import find_recipe
    from analysis.mmd import averages

    logm, signal = _trace(centre=4.8, width=0.12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = read_sec_bytes("\n".join(f"{a:.5f},{b:.6g}" for a, b in zip(logm, signal)).encode())
        mn, mw = averages(w)
        result = find_recipe(w, 0.8, float(mn), float(mw), frame=data, models=finder_models)
    assert result["fit"]["status"] == "failed"
    assert any("the fit failed" in m and "the noise profile 'ideal'" in m for m in result["warnings"])
    for name, (lo, hi) in result["interval"].items():
        assert hi > lo, name


# --- simulate and its seeds --------------------------------------------------------------------------

def test_concentrations_too_small_to_simulate_are_refused_with_the_limit():
    refused(run_cli("simulate", "--cba0", 1e-300, "--caibn0", 1e-300, "--temp", 70, "--json"),
            "too small to simulate", "0.01 mol/L")
    refused(run_cli("simulate", "--cba0", 1.0, "--caibn0", 1e-7, "--temp", 70), "too small to simulate")


def test_the_smallest_simulated_concentrations_give_finite_physical_json():
    from analysis.kinetics import MIN_CAIBN0, MIN_CBA0

    out = run_cli("simulate", "--cba0", MIN_CBA0, "--caibn0", MIN_CAIBN0, "--temp", 60, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # strict JSON: NaN would not parse as a number here
    for s in doc["samples"]:
        assert all(np.isfinite(s["mmd"])) and s["Mw"] >= s["Mn"] > 0


@pytest.mark.parametrize("seed", ["-1", str(2**32), "1e38", "seven"])
def test_seeds_outside_the_engines_range_are_refused_not_folded(seed):
    out = run_cli("simulate", "--cba0", 0.5, "--caibn0", 0.02, "--temp", 80, "--engine", "kmc",
                  "--seed", seed)
    assert out.returncode == 2 and "seed" in out.stderr and "Traceback" not in out.stderr


def test_the_kmc_engine_refuses_a_seed_outside_its_range():
    from analysis.engines import simulate
    from analysis.kinetics import Recipe

    with pytest.raises(ValueError, match="seed"):
        simulate(Recipe(0.5, 0.02, 80.0), "kmc", seed=-1)


@pytest.mark.parametrize("args, words", [
    (["dataset", "--jobs", "-1", "--out", "x.xlsx"], ["positive integer"]),
    (["dataset", "--jobs", "0", "--out", "x.xlsx"], ["positive integer"]),
])
def test_worker_counts_must_be_positive(args, words):
    out = run_cli(*args)
    assert out.returncode == 2 and all(w in out.stderr for w in words) and "Traceback" not in out.stderr


# --- the loader checks physics and units as simulate does ---------------------------------------------

def _workbook(tmp_path, change, name="w.xlsx"):
    frame = pd.read_excel(WORKBOOK, sheet_name="compuesta", nrows=36)
    frame = change(frame)
    path = tmp_path / name
    with pd.ExcelWriter(path) as writer:
        for sheet, columns in SHEETS.items():
            frame[[c for c in columns if c in frame]].to_excel(writer, sheet_name=sheet, index=False)
    return path


def _swap(frame):
    frame.loc[4, ["Mn", "Mw"]] = frame.loc[4, ["Mw", "Mn"]].to_numpy()
    return frame


@pytest.mark.parametrize("change, words", [
    (lambda f: f.assign(temp=f.temp + 273.15), "looks like kelvin"),
    (_swap, "Mw < Mn at sheet row 6"),
    (lambda f: f.assign(cBA_time=f.cBA_0 * 1.2), "more monomer left than there was at the start"),
    (lambda f: f.assign(cBA_0=np.where(f.index == 3, 0.0, f.cBA_0)), "cBA_0 must be positive"),
    (lambda f: f.iloc[:0], "no data rows"),
])
def test_the_loader_refuses_impossible_workbooks(tmp_path, change, words):
    with pytest.raises(DatasetError, match=words):
        load_dataset(_workbook(tmp_path, change))


def test_duplicated_rows_load_with_a_warning(tmp_path):
    path = _workbook(tmp_path, lambda f: pd.concat([f] * 15, ignore_index=True))
    with pytest.warns(UserWarning, match="504 duplicated rows"):
        frame = load_dataset(path)
    assert len(frame) == 540


def test_evaluate_on_an_empty_sheet_gives_the_loaders_error(tmp_path):
    path = _workbook(tmp_path, lambda f: f.iloc[:0])
    refused(run_cli("evaluate", "--model", "knn", "--data", path), "no data rows")
