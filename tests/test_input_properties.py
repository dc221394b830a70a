"""Property-based tests (Hypothesis) of the two doors through which a user's data come in: the SEC
reader and the workbook loader.  Every generated input either reads to the same result as its clean
twin or fails with the package's own error (InputError, DatasetError) - never another exception, never
a hang (each example has a deadline)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.dataset import SHEETS, DatasetError, validate_frame
from analysis.design import EXTRA_FEATURES, TARGETS
from analysis.mmd import MMD_COLUMNS
from analysis.sec_file import InputError, read_sec_bytes

SETTINGS = settings(max_examples=60, deadline=3000, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=True, database=None)
HEADERS = ["Molar mass,Signal", "# exported by WinGPC", "logM\tw", "Sample: PBA-12 (THF)",
           "M [g/mol];RI [mV]"]
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", " ": "space"}


@st.composite
def traces(draw):
    """A Gaussian MMD in log M fully inside the model grid, on a random grid, written in a random
    convention: the lines and, separately, its clean twin (comma-separated, decimal point, no header,
    ascending)."""
    n = draw(st.integers(30, 300))
    lo, hi = draw(st.floats(2.0, 2.6)), draw(st.floats(6.0, 6.5))
    logm = np.linspace(lo, hi, n)
    centre, width = draw(st.floats(3.8, 5.0)), draw(st.floats(0.2, 0.4))
    y = draw(st.sampled_from([1e-3, 1.0, 1e3, 1e6])) * np.exp(-0.5 * ((logm - centre) / width) ** 2)
    as_m = draw(st.booleans())
    x = 10.0**logm if as_m else logm
    sep = draw(st.sampled_from(list(SEPARATORS)))
    dec = "." if sep == "," else draw(st.sampled_from([".", ","]))
    header = draw(st.lists(st.sampled_from(HEADERS), max_size=3))
    order = draw(st.sampled_from(["ascending", "descending"]))
    rows = [(f"{a:.10g}", f"{b:.10g}") for a, b in zip(x, y)]
    clean = "\n".join(f"{a},{b}" for a, b in rows) + "\n"
    if order == "descending":
        rows = rows[::-1]
    body = [sep.join(v.replace(".", dec) for v in row) for row in rows]
    return header + body, clean, sep, dec


def _read(text: str | bytes) -> np.ndarray:
    raw = text if isinstance(text, bytes) else text.encode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_sec_bytes(raw, source="trace")


@SETTINGS
@given(traces())
def test_any_convention_reads_to_the_same_mmd_as_its_clean_twin(trace):
    lines, clean, sep, dec = trace
    np.testing.assert_allclose(_read("\n".join(lines)), _read(clean), rtol=1e-9, atol=1e-12)


@SETTINGS
@given(traces())
def test_the_reader_says_which_convention_it_used(trace):
    lines, _, sep, dec = trace
    notes = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_sec_bytes("\n".join(lines).encode(), source="trace", notes=notes)
    assert len(notes) == 1 and f"{SEPARATORS[sep]}-separated" in notes[0]
    assert ("decimal commas" if dec == "," else "decimal points") in notes[0]


CORRUPTIONS = ["nan", "inf", "text in the middle", "negative M", "too short", "spike", "empty", "binary",
               "utf-16", "utf-16 without BOM", "extra column", "blank lines", "one field", "zero signal"]
MUST_FAIL = {"nan", "inf", "text in the middle", "negative M", "too short", "spike", "empty", "binary",
             "one field", "zero signal"}


def _corrupt(lines: list[str], sep: str, how: str, k: int) -> bytes:
    data = [line for line in lines if line[:1].isdigit() or line[:1] == "-"]
    head = lines[: len(lines) - len(data)]
    k = k % len(data)
    if how in ("nan", "inf"):
        data[k] = data[k].split(sep)[0] + sep + how
    elif how == "text in the middle":
        data.insert(max(k, 1), "oops, detector saturated")
    elif how == "negative M":
        data = ["-" + line for line in data]
    elif how == "too short":
        data = data[:5]
    elif how == "spike":
        data[k] = data[k].split(sep)[0] + sep + "1e300"
    elif how == "empty":
        return b""
    elif how == "binary":
        return bytes(range(256)) * 3
    elif how == "extra column":
        data = [line + sep + "7" for line in data]
    elif how == "blank lines":
        data = data + ["", "   ", ""]
    elif how == "one field":
        data = [line.split(sep)[0] for line in data]
    elif how == "zero signal":
        data = [line.split(sep)[0] + sep + "0" for line in data]
    text = "\n".join(head + data)
    if how == "utf-16":
        return text.encode("utf-16")
    if how == "utf-16 without BOM":
        return text.encode("utf-16-le")
    return text.encode()


@SETTINGS
@given(traces(), st.sampled_from(CORRUPTIONS), st.integers(0, 10_000))
def test_a_corrupted_trace_reads_the_same_or_fails_with_an_input_error(trace, how, k):
    lines, clean, sep, _ = trace
    raw = _corrupt(lines, sep, how, k)
    try:
        w = _read(raw)
    except InputError:
        return
    assert how not in MUST_FAIL, f"{how}: read without complaint"
    np.testing.assert_allclose(w, _read(clean), rtol=1e-9, atol=1e-12)


# --- the workbook loader --------------------------------------------------------------------------

def _workbook(n_recipes: int = 6, times: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for r in range(n_recipes):
        base = [0.5 + 0.5 * (r % 6), 0.0025 * (1 + r % 8), 60.0 + r % 9]
        for t in range(1, times + 1):
            w = rng.random(100)
            extras = [base[0] * (1 - 0.1 * t), 1e4 + r, 2e4 + r]
            rows.append(base + [300.0 * t] + extras + list(w / (w.sum() * 0.045)))
    return pd.DataFrame(rows, columns=TARGETS + EXTRA_FEATURES + MMD_COLUMNS)


FRAME_CORRUPTIONS = ["kelvin", "Mw < Mn", "cBA_time > cBA_0", "zero cBA_0", "duplicated rows", "empty",
                     "NaN", "text", "negative", "missing column", "mmol/L", "shuffled columns",
                     "extra column", "99 MMD points", "zero Mn"]
FRAME_MUST_FAIL = {"kelvin", "Mw < Mn", "cBA_time > cBA_0", "zero cBA_0", "empty", "NaN", "text", "negative",
                   "missing column", "mmol/L", "99 MMD points", "zero Mn"}


def _corrupt_frame(frame: pd.DataFrame, how: str, row: int) -> pd.DataFrame:
    f = frame.copy()
    row = row % len(f)
    if how == "kelvin":
        f["temp"] = f.temp + 273.15
    elif how == "Mw < Mn":
        f.loc[row, ["Mn", "Mw"]] = f.loc[row, ["Mw", "Mn"]].to_numpy()
    elif how == "cBA_time > cBA_0":
        f.loc[row, "cBA_time"] = f.loc[row, "cBA_0"] * 1.5
    elif how == "zero cBA_0":
        f.loc[row, "cBA_0"] = 0.0
    elif how == "duplicated rows":
        f = pd.concat([f, f.iloc[: row + 1]], ignore_index=True)
    elif how == "empty":
        f = f.iloc[:0]
    elif how == "NaN":
        f.loc[row, "Mn"] = np.nan
    elif how == "text":
        f = f.astype({"Mw": object})
        f.loc[row, "Mw"] = "n/a"
    elif how == "negative":
        f.loc[row, "time"] = -300.0
    elif how == "missing column":
        f = f.drop(columns=["cBA_time"])
    elif how == "mmol/L":
        f["cAIBN_0"] = f.cAIBN_0 * 1000
    elif how == "shuffled columns":
        f = f[list(reversed(f.columns))]
    elif how == "extra column":
        f["operator"] = "A. N. Other"
    elif how == "99 MMD points":
        f = f.drop(columns=["MMD100"])
    elif how == "zero Mn":
        f.loc[row, "Mn"] = 0.0
    return f


@SETTINGS
@given(st.sampled_from(FRAME_CORRUPTIONS), st.integers(0, 1000))
def test_a_corrupted_workbook_loads_the_same_or_fails_with_a_dataset_error(how, row):
    clean = validate_frame(_workbook(), SHEETS["compuesta"])
    broken = _corrupt_frame(_workbook(), how, row)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = validate_frame(broken, SHEETS["compuesta"])
    except DatasetError:
        return
    assert how not in FRAME_MUST_FAIL, f"{how}: loaded without complaint"
    if how == "duplicated rows":
        frame = frame.drop_duplicates().reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, clean)


def test_duplicated_rows_are_loaded_with_a_warning_that_counts_them():
    broken = _corrupt_frame(_workbook(), "duplicated rows", 2)
    with pytest.warns(UserWarning, match="3 duplicated rows"):
        validate_frame(broken, SHEETS["compuesta"])
