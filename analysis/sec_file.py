"""Reading a user's SEC/GPC export: two columns, log M (or M) and a signal, onto the model grid.

The signal is w(log M) (mass distribution, the default) or dn/dlog M (number distribution,
`signal="dn"`), on any grid, in any order and normalisation, with or without header lines, separated
by commas, semicolons, tabs or spaces, with decimal points or decimal commas (European exports), in
UTF-8, UTF-16/32 (with or without a byte-order mark) or a Windows code page.  The reader tries every
separator and decimal convention, keeps the one that reads the file as one table of numbers, refuses
a file that two conventions read differently, and says which one it used (in `notes`).  The trace
is resampled onto the model grid (linear interpolation of w(log M), zero outside the file's range)
and renormalised to unit area.  Traces no polymer of this chemistry can have are refused before any
simulation: a single spike, or a width in log M far outside any radical polymer's.
"""

from __future__ import annotations

import codecs
import io
import re
import warnings
from pathlib import Path

import numpy as np

from .mmd import DLOGM, EDGES, LOGM
from .outputs import atomic_write

MIN_POINTS = 10
MIN_EFFECTIVE_POINTS = 5.0  # (sum w)² / sum w² on the model grid; the design's MMDs have 25-38
LOGM_SD_LIMITS = (0.1, 1.5)  # standard deviation of log10 M; the design's MMDs have 0.35-0.49
SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", None: "space"}
CONVENTIONS = [(",", "."), (";", "."), ("\t", "."), (None, "."), (";", ","), ("\t", ","), (None, ",")]


class InputError(ValueError):
    """A user file that cannot be used, with the problem named."""


def read_sec_file(path: Path | str, signal: str = "w", notes: list[str] | None = None) -> np.ndarray:
    """Read a two-column SEC/GPC export and return w(log M) on the model grid (unit area); how it was
    read (encoding, separator, decimal mark) is appended to `notes`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no file {path}")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a SEC export file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from err
    return read_sec_bytes(raw, signal=signal, source=path.name, notes=notes)


def read_sec_bytes(raw: bytes, signal: str = "w", source: str = "input",
                   notes: list[str] | None = None) -> np.ndarray:
    """The reader on the bytes of a file (see the module's docstring)."""
    if not raw.strip():
        raise InputError(f"{source}: the file is empty")
    text, encoding = _decode(raw, source)
    x, y, sep, dec = parse_sec_text(text, source)
    if notes is not None:
        notes.append(f"{source}: read as {encoding}, {SEPARATORS[sep]}-separated, with decimal "
                     f"{'commas' if dec == ',' else 'points'}")
    return resample(x, y, signal=signal, source=source)


def _decode(raw: bytes, source: str) -> tuple[str, str]:
    """Text of the file and the name of its encoding."""
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(name), name.replace("-sig", "")
            except UnicodeDecodeError as err:
                raise InputError(f"{source}: starts like {name} but is not valid {name} text") from err
    zeros = raw.count(0)
    if zeros > len(raw) // 4:  # UTF-16 without a byte-order mark: every other byte is zero
        name = "utf-16-le" if raw[1::2].count(0) > raw[0::2].count(0) else "utf-16-be"
        try:
            return raw.decode(name), name
        except UnicodeDecodeError as err:
            raise InputError(f"{source}: looks like UTF-16 without a byte-order mark, but is not valid "
                             f"{name} text; save it as UTF-8") from err
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace"), "cp1252"


def _number(field: str, dec: str) -> float | None:
    field = field.strip()
    if dec == ",":
        if "." in field:  # a decimal point (or a thousands mark) in a decimal-comma file: not this reading
            return None
        field = field.replace(",", ".")
    try:
        return float(field)
    except ValueError:
        return None


def _read_table(lines: list[str], sep: str | None, dec: str) -> tuple[list, set, str | None]:
    """Rows of (first, second) numbers under one convention, the field counts seen, and the reason it
    fails (None if it reads the file as one table after optional header lines)."""
    rows, counts = [], set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(sep) if sep else line.split()
        while len(fields) > 1 and not fields[-1].strip():  # a trailing separator
            fields.pop()
        a = _number(fields[0], dec) if fields else None
        b = _number(fields[1], dec) if len(fields) > 1 else None
        if a is not None and b is not None:
            rows.append((a, b))
            counts.add(len(fields))
        elif rows:  # text after the numbers started: a broken line, not a header
            return rows, counts, f"non-numeric line {n}: {line.strip()[:60]!r}"
    return rows, counts, None


def parse_sec_text(text: str, source: str = "input") -> tuple[np.ndarray, np.ndarray, str | None, str]:
    """The two first columns as numbers, and the separator and decimal mark that read them."""
    lines = text.splitlines()
    readings, failures = {}, []
    for sep, dec in CONVENTIONS:
        rows, counts, problem = _read_table(lines, sep, dec)
        if problem is None and len(rows) >= MIN_POINTS and len(counts) == 1:
            readings[(sep, dec)] = np.array(rows, float)
        else:
            failures.append((len(rows), problem, counts))
    if not readings:
        most, problem, counts = max(failures, key=lambda f: f[0])
        if problem:
            raise InputError(f"{source}: {problem}")
        if len(counts) > 1:
            raise InputError(f"{source}: the lines have different numbers of columns ({sorted(counts)})")
        control = sum(ch < " " and ch not in "\t\r\n" for ch in text[:2000])
        hint = " - it does not look like a text export" if control > 20 else ""
        raise InputError(f"{source}: {most} numeric rows; at least {MIN_POINTS} points are needed{hint}")
    (sep, dec), data = next(iter(readings.items()))
    for (sep2, dec2), other in list(readings.items())[1:]:
        if other.shape != data.shape or not np.array_equal(other, data, equal_nan=True):
            raise InputError(f"{source}: ambiguous: it reads as {SEPARATORS[sep]}-separated with decimal "
                             f"'{dec}' and as {SEPARATORS[sep2]}-separated with decimal '{dec2}'; export it "
                             "with decimal points and a tab or semicolon between the columns")
    numeric = [line for line in lines if re.match(r"\s*[-+.]?\d", line)]
    if sep == "," and not any(mark in line for line in numeric for mark in ".eE"):
        raise InputError(f"{source}: ambiguous: every number is an integer between commas, so the commas "
                         "could be decimal commas or separators; export it with decimal points, or with a "
                         "tab or semicolon between the columns")
    return data[:, 0], data[:, 1], sep, dec


def resample(x: np.ndarray, y: np.ndarray, signal: str = "w", source: str = "input") -> np.ndarray:
    """Put a distribution given on any grid onto the model grid as unit-area w(log M)."""
    if signal not in ("w", "dn"):
        raise InputError(f"signal must be 'w' (w(log M)) or 'dn' (dn/dlog M), got {signal!r}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError(f"{source}: NaN or infinite values")
    if (x <= 0).any():
        k = int(np.flatnonzero(x <= 0)[0])
        raise InputError(f"{source}: the first column must be M in g/mol or log10 M, both positive; "
                         f"data row {k + 1} has {x[k]:g}")
    logm = np.log10(x) if x.max() > 10 else x  # M in g/mol, or already log10 M
    order = np.argsort(logm, kind="stable")
    logm, y = logm[order], y[order]
    if np.any(np.diff(logm) <= 0):
        raise InputError(f"{source}: repeated molar-mass values")
    peak = np.abs(y).max()
    if peak == 0:
        raise InputError(f"{source}: the signal is zero everywhere")
    if y.min() < -0.02 * peak:
        raise InputError(f"{source}: negative signal down to {y.min():.3g} ({100 * y.min() / peak:.0f} % "
                         "of the peak): subtract the baseline first")
    y = np.clip(y, 0.0, None) / peak  # scaled first: huge raw values must not overflow
    if y.sum() ** 2 / (y**2).sum() < 1.5:  # one value outweighs the rest (a Gaussian sampled at its sd: 3.5)
        k = int(np.argmax(y))
        raise InputError(f"{source}: the trace is a spike: one value ({peak:.3g} at log M {logm[k]:.3f}) "
                         "outweighs all the others together; check the file")
    w = y * 10.0 ** (logm - logm.max()) if signal == "dn" else y
    if not np.isfinite(w).all() or w.max() == 0:
        raise InputError(f"{source}: the signal cannot be converted to a mass distribution")
    total = np.trapezoid(w, logm)
    inside = np.trapezoid(np.where((logm >= EDGES[0]) & (logm <= EDGES[-1]), w, 0.0), logm)
    if total <= 0 or inside < 0.995 * total:
        share = 100 * (1 - inside / total) if total > 0 else 100.0
        raise InputError(f"{source}: {share:.1f} % of the polymer mass lies outside the model grid "
                         f"(log M {EDGES[0]:g} to {EDGES[-1]:g}); the models cannot use it")
    if w[0] > 0.05 * w.max() or w[-1] > 0.05 * w.max():
        warnings.warn(f"{source}: the signal does not fall to zero at the ends of the file's range "
                      "(truncated trace?)", stacklevel=2)
    grid = np.interp(LOGM, logm, w, left=0.0, right=0.0)
    area = grid.sum() * DLOGM
    if area <= 0:
        raise InputError(f"{source}: no signal on the model grid")
    grid = grid / area
    check_shape(grid, source)
    return grid


def check_shape(w: np.ndarray, source: str = "input") -> None:
    """Refuse an MMD on the grid that no radical polymer has: a single spike, or a width in log M far
    outside the design's (before any simulation is spent on it)."""
    effective = w.sum() ** 2 / (w**2).sum()
    if effective < MIN_EFFECTIVE_POINTS:
        raise InputError(f"{source}: the trace is a spike: its mass sits on {effective:.1f} grid points of "
                         f"width {DLOGM:g} in log M (a radical polymer's spans 25 or more); check the file")
    p = w / w.sum()
    sd = float(np.sqrt(p @ (LOGM - p @ LOGM) ** 2))
    lo, hi = LOGM_SD_LIMITS
    if not lo <= sd <= hi:
        raise InputError(f"{source}: the MMD's width (sd of log M {sd:.2f}) is far outside any polymer of "
                         f"this chemistry ({lo:g}-{hi:g}; the design's are 0.35-0.49)")


def write_sec_file(path: Path | str, logm: np.ndarray, signal: np.ndarray, as_molar_mass: bool = False,
                   sep: str = ",", header: bool = True) -> None:
    """Write an example export (used to make data/examples)."""
    x = 10.0 ** logm if as_molar_mass else logm
    buf = io.StringIO()
    if header:
        buf.write(sep.join(["M" if as_molar_mass else "logM", "signal"]) + "\n")
    for a, b in zip(x, signal):
        buf.write(f"{a:.6g}{sep}{b:.6g}\n")
    atomic_write(path, buf.getvalue())
