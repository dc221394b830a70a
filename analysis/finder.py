"""Recipe finder for a user's own MMD: read a SEC/GPC export, check it, predict, invert, verify.

Input: a text file with two columns, log M (or M) and a signal that is w(log M) (mass distribution,
the default) or dn/dlog M (number distribution, `signal="dn"`), on any grid, in any normalisation, with
or without a header, separated by commas, semicolons, tabs or spaces.  It is resampled onto the model
grid (linear interpolation of w(log M), zero outside the file's range) and renormalised to unit area.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .mmd import DLOGM, EDGES, LOGM, MMD_COLUMNS

MIN_POINTS = 10


class InputError(ValueError):
    """A user file that cannot be used, with the problem named."""


def read_sec_file(path: Path | str, signal: str = "w") -> np.ndarray:
    """Read a two-column SEC/GPC export and return w(log M) on the model grid (unit area)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no file {path}")
    text = path.read_text(errors="replace")
    rows = []
    for line in text.splitlines():
        fields = [f for f in re.split(r"[;,\t ]+", line.strip()) if f]
        if len(fields) < 2:
            continue
        try:
            rows.append((float(fields[0]), float(fields[1])))
        except ValueError:
            if rows:  # text after numbers started: a broken line, not a header
                raise InputError(f"{path.name}: non-numeric line {line.strip()!r}") from None
    data = np.array(rows, dtype=float)
    if len(data) < MIN_POINTS:
        raise InputError(f"{path.name}: {len(data)} numeric rows; at least {MIN_POINTS} points are needed")
    return resample(data[:, 0], data[:, 1], signal=signal, source=path.name)


def resample(x: np.ndarray, y: np.ndarray, signal: str = "w", source: str = "input") -> np.ndarray:
    """Put a distribution given on any grid onto the model grid as unit-area w(log M)."""
    if signal not in ("w", "dn"):
        raise InputError(f"signal must be 'w' (w(log M)) or 'dn' (dn/dlog M), got {signal!r}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError(f"{source}: NaN or infinite values")
    if (x <= 0).any() and x.max() > 10:
        raise InputError(f"{source}: molar masses must be positive")
    logm = np.log10(x) if x.max() > 10 else x  # M in g/mol, or already log10 M
    order = np.argsort(logm)
    logm, y = logm[order], y[order]
    if np.any(np.diff(logm) <= 0):
        raise InputError(f"{source}: repeated molar-mass values")
    peak = np.abs(y).max()
    if peak == 0:
        raise InputError(f"{source}: the signal is zero everywhere")
    if y.min() < -0.02 * peak:
        raise InputError(f"{source}: negative signal down to {y.min():.3g} ({100 * y.min() / peak:.0f} % "
                         "of the peak): subtract the baseline first")
    y = np.clip(y, 0.0, None)
    w = y * 10.0 ** logm if signal == "dn" else y
    total = np.trapezoid(w, logm)
    inside = np.trapezoid(np.where((logm >= EDGES[0]) & (logm <= EDGES[-1]), w, 0.0), logm)
    if inside < 0.995 * total:
        raise InputError(f"{source}: {100 * (1 - inside / total):.1f} % of the polymer mass lies outside "
                         f"the model grid (log M {EDGES[0]:g} to {EDGES[-1]:g}); the models cannot use it")
    if w[0] > 0.05 * w.max() or w[-1] > 0.05 * w.max():
        warnings.warn(f"{source}: the signal does not fall to zero at the ends of the file's range "
                      "(truncated trace?)", stacklevel=2)
    grid = np.interp(LOGM, logm, w, left=0.0, right=0.0)
    area = grid.sum() * DLOGM
    if area <= 0:
        raise InputError(f"{source}: no signal on the model grid")
    return grid / area


def as_frame(w: np.ndarray, cBA_time: float | None = None, Mn: float | None = None,
             Mw: float | None = None) -> pd.DataFrame:
    """One row with the dataset's column names."""
    row = {"cBA_time": cBA_time, "Mn": Mn, "Mw": Mw}
    frame = pd.DataFrame([{k: v for k, v in row.items() if v is not None}])
    return pd.concat([frame, pd.DataFrame([w], columns=MMD_COLUMNS)], axis=1)


def write_sec_file(path: Path | str, logm: np.ndarray, signal: np.ndarray, as_molar_mass: bool = False,
                   sep: str = ",", header: bool = True) -> None:
    """Write an example export (used to make data/examples)."""
    x = 10.0 ** logm if as_molar_mass else logm
    buf = io.StringIO()
    if header:
        buf.write(sep.join(["M" if as_molar_mass else "logM", "signal"]) + "\n")
    for a, b in zip(x, signal):
        buf.write(f"{a:.6g}{sep}{b:.6g}\n")
    Path(path).write_text(buf.getvalue())


def ml_model(frame: pd.DataFrame, features: str = "composite", seed: int = 42):
    """The book's best model (boosted trees on physics features, conformal 90 % intervals; chapter 9),
    fitted on every row of the dataset."""
    from .recipe_models import BoostedModel

    return BoostedModel(features, seed=seed).fit(frame)


def ml_prediction(model, row: pd.DataFrame) -> tuple[dict, dict]:
    """Recipe and 90 % interval of each target for one observed row."""
    from .dataset import TARGETS

    pred, (low, high) = model.predict(row), model.predict_interval(row)
    return ({t: float(pred[t].iloc[0]) for t in TARGETS},
            {t: (float(low[t].iloc[0]), float(high[t].iloc[0])) for t in TARGETS})


def roundtrip(recipe: dict, w: np.ndarray, cBA_time: float | None = None, Mn: float | None = None,
              Mw: float | None = None) -> dict:
    """Re-simulate a recipe (deterministic engine) and compare it with the observation."""
    from .inversion import forward
    from .mmd import l1_distance

    sim = forward(recipe)
    out = {"mmd_l1": float(l1_distance(sim["mmd"], w))}
    for name, value in (("cBA_time", cBA_time), ("Mn", Mn), ("Mw", Mw)):
        out[f"{name}_rel"] = None if value is None else float(sim[name] / value - 1.0)
    return out


def clip_to_domain(recipe: dict) -> dict:
    """A predicted recipe moved inside the design's domain (time >= 300 s), so that it can be run."""
    from .inversion import BOUNDS

    return {k: float(np.clip(v, *BOUNDS[k])) for k, v in recipe.items()}


def roundtrip_table(rows: pd.DataFrame, predictions: pd.DataFrame, extras: bool = True) -> pd.DataFrame:
    """Round trip of predicted recipes for observed rows (same index): the MMD L1 distance and the
    relative errors of cBA_time, Mn, Mw of the re-simulated polymer (recipes clipped to the domain)."""
    from .dataset import TARGETS

    out = []
    for idx, row in rows.iterrows():
        recipe = clip_to_domain(dict(zip(TARGETS, predictions.loc[idx, TARGETS].to_numpy(float))))
        given = (row.cBA_time, row.Mn, row.Mw) if extras else (None, None, None)
        out.append({"index": idx, **roundtrip(recipe, row[MMD_COLUMNS].to_numpy(float), *given)})
    return pd.DataFrame(out).set_index("index")


def invert_rows(rows: pd.DataFrame, starts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Physics inversion of observed rows (composite observables) from the given starting recipes
    (and the domain's centre): best recipe, 90 % intervals, MMD L1 and seconds per row."""
    import time

    from .dataset import TARGETS
    from .inversion import Observation, invert

    centre = {"cBA_0": 1.75, "cAIBN_0": 0.007, "temp": 70.0, "time": 1800.0}
    out = []
    for idx, row in rows.iterrows():
        tic = time.perf_counter()
        first = [] if starts is None else [clip_to_domain(dict(zip(TARGETS, starts.loc[idx, TARGETS])))]
        obs = Observation(row[MMD_COLUMNS].to_numpy(float), row.cBA_time, row.Mn, row.Mw)
        result = invert(obs, starts=first + [centre])
        out.append({"index": idx, **result.recipe, **{f"{t} low": result.interval[t][0] for t in TARGETS},
                    **{f"{t} high": result.interval[t][1] for t in TARGETS}, "mmd_l1": result.mmd_l1,
                    "seconds": time.perf_counter() - tic})
    return pd.DataFrame(out).set_index("index")


def find_recipe(w: np.ndarray, cBA_time: float | None = None, Mn: float | None = None,
                Mw: float | None = None, frame: pd.DataFrame | None = None,
                models: dict | None = None) -> dict:
    """The whole finder: domain verdict, ML prediction with intervals, physics inversion, round trip.
    `models` caches fitted ML models by feature set ('composite', 'mmd') between calls."""
    from .dataset import EXTRA_FEATURES, load_dataset
    from .domain import Domain
    from .inversion import Observation, invert

    for name, value in (("cBA_time", cBA_time), ("Mn", Mn), ("Mw", Mw)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive number, got {value}")
    if cBA_time is not None and cBA_time > 7.0:
        raise InputError(f"cBA_time = {cBA_time} mol/L exceeds bulk BA: is it in mmol/L?")
    frame = load_dataset() if frame is None else frame
    given = [c for c, v in zip(EXTRA_FEATURES, (cBA_time, Mn, Mw)) if v is not None]
    features = given + MMD_COLUMNS
    row = as_frame(w, cBA_time, Mn, Mw)
    verdict = Domain(frame, features).check(row)[0]
    feature_set = "composite" if len(given) == 3 else "mmd"  # the ML model needs all three extras
    models = {} if models is None else models
    if feature_set not in models:
        models[feature_set] = ml_model(frame, feature_set)
    ml_recipe, ml_interval = ml_prediction(models[feature_set], row)
    start = {k: ml_recipe[k] for k in ml_recipe}
    centre = {"cBA_0": 1.75, "cAIBN_0": 0.007, "temp": 70.0, "time": 1800.0}
    result = invert(Observation(w, cBA_time, Mn, Mw), starts=[start, centre])
    warnings_ = verdict.reasons()
    from .inversion import BOUNDS

    for name, value in result.recipe.items():
        lo, hi = BOUNDS[name]
        if min(value - lo, hi - value) < 1e-3 * (hi - lo):
            warnings_.append(f"the best recipe has {name} at the edge of the domain ({value:.4g}): the "
                             "polymer may come from outside the trained ranges")
    return {
        "recipe": result.recipe,
        "interval": {k: list(v) for k, v in result.interval.items()},
        "ml": {"recipe": ml_recipe, "interval": {k: list(v) for k, v in ml_interval.items()},
               "roundtrip": roundtrip(ml_recipe, w, cBA_time, Mn, Mw)},
        "roundtrip": roundtrip(result.recipe, w, cBA_time, Mn, Mw),
        "misfit": result.misfit,
        "features": given,
        "in_domain": bool(verdict.in_domain),
        "warnings": warnings_,
    }


EXAMPLES = {  # file: (recipe, time s, how it is written)
    "between_levels.csv": ((1.7, 0.0066, 71.3), 1650.0, {"signal": "w", "as_molar_mass": False,
                                                         "sep": ",", "header": True}),
    "sec_export_dn.txt": ((2.4, 0.012, 64.0), 2400.0, {"signal": "dn", "as_molar_mass": True,
                                                       "sep": ";", "header": False}),
    "outside_domain.csv": ((0.25, 0.04, 85.0), 1200.0, {"signal": "w", "as_molar_mass": False,
                                                       "sep": ",", "header": True}),
}


def make_examples(directory: Path | str, seed: int = 7) -> dict:
    """Write the example SEC exports: kMC runs of recipes off the design's levels, put on another grid
    (250 points, log M 2.3 to 6.4), scaled arbitrarily, in the formats a SEC program writes."""
    from .kinetics import Recipe
    from .simulation import simulate

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    truth = {}
    fine = np.linspace(2.3, 6.4, 250)
    for name, (levels, time, fmt) in EXAMPLES.items():
        run = simulate(Recipe(*levels), "kmc", seed=seed, sample_times=np.array([time]))
        w = np.interp(fine, LOGM, run.mmd[-1])
        signal = w / 10.0 ** fine if fmt["signal"] == "dn" else w
        signal = 1000.0 * signal / signal.max()
        write_sec_file(directory / name, fine, signal, fmt["as_molar_mass"], fmt["sep"], fmt["header"])
        truth[name] = {"cBA_0": levels[0], "cAIBN_0": levels[1], "temp": levels[2],
                       "time": float(run.time[-1]), "cBA_time": float(run.cBA[-1]),
                       "Mn": float(run.Mn[-1]), "Mw": float(run.Mw[-1]), "signal": fmt["signal"]}
    return truth
