"""The recipe finder for a user's own MMD: domain check, machine-learning prediction with calibrated
intervals, the physics inversion's posterior, and the round trip of both recipes.

The machine-learning part is trained per measurement profile: for `typical` and `poor` on the workbook's
rows passed through that profile's instruments (`measurement.measured_rows`, one fixed draw), so that its
intervals and its domain check belong to traces measured that way, not to the simulator's own.

What a call needs from the workbook (the fitted models and the training domains) is fitted once and
stored in `data/finder_models.pickle.gz` with the workbook's checksums and the library versions
(`make finder` for every profile, or the first call of a profile for that profile; one file per profile,
about 18 MB each, so not committed; a gzip-compressed pickle, read in a fifth of a second, where joblib's
reader took two): then a call reads no workbook, fits no model and loads only its profile's file.
For a workbook given explicitly (not the one in use by default) the models are fitted in every call
(cached on disk when $POLYINVERSE_CACHE is set).
"""

from __future__ import annotations

import gzip
import pickle
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .calibration import interval_factors, set_name, widen
from .dataset import DATA_DIR, dataset_path, file_sha256, load_dataset, study_sha256
from .design import BOX, CENTRE, EXTRA_FEATURES, FEATURE_SETS, STUDY_RANGES, TARGETS, UNITS, clip_to_box
from .domain import Domain
from .inversion import Observation, Posterior, disagreements, free_fit, invert, known_sds, measurement_noise
from .inversion import settings as inversion_settings
from .kinetics import BULK_BA
from .measurement import PROFILES, measured_rows
from .memo import cached
from .mmd import MMD_COLUMNS
from .new_models import BoostedModel
from .roundtrip import roundtrip
from .sec_file import InputError

STORE = DATA_DIR / "finder_models.pickle.gz"
MEASUREMENT_SEED = 0  # the noise draw of the training rows of a measured profile
FAILED_FIT = 25.0  # chi² per observed value above which a fit is reported as failed (5 x the noise)
KNOWN_MISFIT = 4.0  # chi² per value above which known values are suspected (2 x the noise)
# sd of its reading by which a known temperature or time may lie outside the domain: the inversion's
# points about a known temperature span the same 3 sd (`inversion.invert`), so some lie in the box
READING_REACH = 3.0
KNOWN_LIMIT = 3.0  # sd (per known value, at the fit's own noise) by which dropping them must improve a fit


def known_values_blamed(obs: Observation, noise: dict, posterior: Posterior, starts: list[dict]
                        ) -> tuple[bool, float]:
    """Whether the known values are what a poor fit (the `posterior` of `obs` with them) cannot make: the
    free fit of the same data without them (from `starts`) must be better by more than KNOWN_LIMIT² per
    known value in units of its own chi² per value (the noise as the data show it: a trace misread by its
    noise profile fits badly with or without a right temperature).  Also returns that fit's chi² per
    observed value."""
    free = replace(obs, time=None, temp=None)
    best = min(free_fit(free, s, noise)[1] for s in starts)
    per_value = best / (posterior.n_observed - len(obs.known))  # one residual per known value fewer
    return (posterior.chi2_min - best) / max(1.0, per_value) > KNOWN_LIMIT**2 * len(obs.known), per_value


def as_frame(w: np.ndarray, cBA_time: float | None = None, Mn: float | None = None,
             Mw: float | None = None) -> pd.DataFrame:
    """One row with the dataset's column names."""
    row = {"cBA_time": cBA_time, "Mn": Mn, "Mw": Mw}
    frame = pd.DataFrame([{k: v for k, v in row.items() if v is not None}])
    return pd.concat([frame, pd.DataFrame([w], columns=MMD_COLUMNS)], axis=1)


def training_rows(frame: pd.DataFrame, noise: str = "ideal") -> pd.DataFrame:
    """The rows the finder's models learn from for a measurement profile: the workbook itself for `ideal`,
    otherwise its rows as that profile's instruments report them (draw `MEASUREMENT_SEED`)."""
    if noise == "ideal":
        return frame
    return measured_rows(frame, PROFILES[noise], np.random.default_rng(MEASUREMENT_SEED))


def ml_model(frame: pd.DataFrame, features: str = "composite", seed: int = 42,
             noise: str = "ideal") -> BoostedModel:
    """The book's best model (boosted trees on physics features, conformal 90 % intervals; chapter 9),
    fitted on every row of the dataset as measured with profile `noise` (`training_rows`).  Cached on disk
    (`memo`) by the rows, features, seed and profile."""
    rows = np.ascontiguousarray(frame[TARGETS + FEATURE_SETS[features]].to_numpy(float)).tobytes()
    key = rows + repr((features, seed, noise)).encode()
    return cached("ml_model", key, lambda: BoostedModel(features, seed=seed).fit(training_rows(frame, noise)))


class StaleFinderModels(UserWarning):
    """Stored finder models that do not serve (fitted on another workbook or with other library versions,
    unreadable), or that cannot be stored."""


def _versions() -> dict[str, str]:
    import sklearn

    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__}


@dataclass
class FinderModels:
    """Per measurement profile: the ML model per feature set ('composite', 'mmd'), the training rows'
    features (for the domain of any subset of the extras) and the domains of the two usual subsets; and
    what they were fitted on."""

    models: dict[tuple[str, str], BoostedModel]  # (profile, feature set)
    training: dict[str, pd.DataFrame]  # profile: cBA_time, Mn, Mw, MMD1..MMD100 of every training row
    domains: dict[tuple[str, tuple[str, ...]], Domain]  # (profile, extras given)
    data_sha256: str
    study_sha256: str
    versions: dict[str, str]

    @property
    def profiles(self) -> set[str]:
        """The measurement profiles these models were fitted for."""
        return set(self.training) if isinstance(self.training, dict) else set()

    def domain(self, given: list[str], noise: str = "ideal") -> Domain:
        """The training domain of a profile for the extras given (fitted here for an unusual subset)."""
        key = (noise, tuple(given))
        if key not in self.domains:
            self.domains[key] = Domain(self.training[noise], list(given) + MMD_COLUMNS)
        return self.domains[key]


def fit_finder_models(data: Path | str | None = None,
                      profiles: tuple[str, ...] = tuple(PROFILES)) -> FinderModels:
    """Fit everything a finder call needs on a workbook, for each measurement profile (minutes: two
    boosted models with intervals per profile)."""
    path = dataset_path(data)
    frame = load_dataset(path)
    models, training, domains = {}, {}, {}
    for noise in profiles:
        rows = training_rows(frame, noise)
        models.update({(noise, f): ml_model(frame, f, noise=noise) for f in ("composite", "mmd")})
        domains.update({(noise, tuple(g)): Domain(rows, list(g) + MMD_COLUMNS) for g in (EXTRA_FEATURES, [])})
        training[noise] = rows[EXTRA_FEATURES + MMD_COLUMNS].reset_index(drop=True)
    return FinderModels(models, training, domains, file_sha256(path), study_sha256(path), _versions())


def profile_store(store: Path | str, noise: str) -> Path:
    """The file of one profile's stored models: `store` itself for `ideal`, a sibling for the others
    (`finder_models.typical.pickle.gz`), so that a call loads only the profile it needs."""
    store = Path(store)
    base, dot, rest = store.name.partition(".")
    return store if noise == "ideal" else store.with_name(f"{base}.{noise}{dot}{rest}")


def save_store(models: FinderModels, path: Path | str) -> None:
    """Write one profile's models: a gzip-compressed pickle, written atomically."""
    from .outputs import atomic_write

    atomic_write(Path(path), gzip.compress(pickle.dumps(models, protocol=5), compresslevel=3))


def load_store(path: Path | str) -> FinderModels:
    """Read a file of `save_store`; an error if it is not one."""
    models = pickle.loads(gzip.decompress(Path(path).read_bytes()))
    if not isinstance(models, FinderModels):
        raise pickle.UnpicklingError(f"it holds a {type(models).__name__}, not the finder's models")
    return models


def _part(fitted: FinderModels, noise: str) -> FinderModels:
    """The entries of one profile."""
    return FinderModels({k: v for k, v in fitted.models.items() if k[0] == noise},
                        {noise: fitted.training[noise]},
                        {k: v for k, v in fitted.domains.items() if k[0] == noise},
                        fitted.data_sha256, fitted.study_sha256, fitted.versions)


def write_finder_models(out: Path | str = STORE, data: Path | str | None = None) -> FinderModels:
    """Fit and store the finder's models for a workbook, one file per profile (`make finder`)."""
    fitted = fit_finder_models(data)
    for noise in fitted.profiles:
        save_store(_part(fitted, noise), profile_store(out, noise))
    return fitted


def _warn_refit(reason: str, data: Path, keep: bool) -> None:
    """Warn that a store does not serve (`reason`) and the models are fitted in the call instead."""
    then = "stored for the next calls" if keep else "`make finder` stores them"
    warnings.warn(f"{reason}; fitting the finder's models for {data.name} (minutes; {then})",
                  StaleFinderModels, stacklevel=3)


def is_stored(store: Path | str = STORE, noise: str = "ideal") -> bool:
    """Whether a file of the profile's stored models exists (whether it serves is checked on loading)."""
    return profile_store(store, noise).exists()


def finder_models(data: Path | str | None = None, store: Path | str = STORE,
                  noise: str = "ideal", keep: bool | None = None) -> FinderModels:
    """The stored finder models of profile `noise` (`profile_store`) when they belong to the workbook in
    use (same file, or the same study sheets) and to these library versions; otherwise fitted for it and
    that profile (cached on disk when a cache is set), with a warning naming the reason when a store
    exists but does not serve (a profile's missing file only when the models will not be stored).
    Models fitted here are stored in the profile's file when `keep` (default: for the workbook in use
    by default, `dataset.dataset_path()`), so that only the first call fits them; a store that cannot
    be written is named in a warning."""
    path = dataset_path(data)
    keep = path.resolve() == dataset_path(None).resolve() if keep is None else keep
    store, part = Path(store), profile_store(store, noise)
    if part.exists():
        try:
            stored = load_store(part)
        except Exception as error:  # noqa: BLE001 (any unreadable file: an older format, a truncated copy)
            _warn_refit(f"{part.name} could not be read ({type(error).__name__}: {error})", path, keep)
        else:
            same_versions = stored.versions == _versions()
            same_data = stored.data_sha256 == file_sha256(path) or stored.study_sha256 == study_sha256(path)
            if same_versions and same_data and noise in stored.profiles:
                return stored
            why = ("another workbook" if not same_data else f"other library versions ({stored.versions})"
                   if not same_versions else f"profiles {sorted(stored.profiles)}, not {noise!r}")
            _warn_refit(f"{part.name} was fitted on {why}", path, keep)
    elif store.exists() and not keep:  # kept: the profile's first call, which stores them (not a warning)
        _warn_refit(f"{store.name} has no models for the {noise!r} profile ({part.name} is missing)", path,
                    keep)
    key = file_sha256(path).encode() + noise.encode()
    fitted = cached("finder_models", key, lambda: fit_finder_models(path, (noise,)))
    if keep:
        try:
            save_store(fitted, part)
        except OSError as error:
            warnings.warn(f"the finder's models could not be stored in {part} ({error}); every call fits "
                          "them again", StaleFinderModels, stacklevel=2)
    return fitted


def ml_prediction(model: BoostedModel, row: pd.DataFrame) -> tuple[dict, dict]:
    """Recipe and 90 % interval of each target for one observed row."""
    pred, (low, high) = model.predict(row), model.predict_interval(row)
    return ({t: float(pred[t].iloc[0]) for t in TARGETS},
            {t: (float(low[t].iloc[0]), float(high[t].iloc[0])) for t in TARGETS})


def check_extras(cBA_time: float | None, Mn: float | None, Mw: float | None) -> None:
    """Refuse (InputError) measured values no polymer of this chemistry can have, before any work."""
    for name, value in (("cBA_time", cBA_time), ("Mn", Mn), ("Mw", Mw)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive number, got {value}")
    if cBA_time is not None and cBA_time > BULK_BA:
        raise InputError(f"cBA_time = {cBA_time} mol/L exceeds bulk BA ({BULK_BA:.2f} mol/L): "
                         "is it in mmol/L?")
    if Mn is not None and Mw is not None and Mw < Mn:
        raise InputError(f"Mw ({Mw:g}) is below Mn ({Mn:g}), which no polymer has: are they swapped?")


def check_known(cAIBN_time: float | None = None, branching: float | None = None, time: float | None = None,
                temp: float | None = None, noise: str = "ideal") -> list[str]:
    """Refuse (InputError) a residual initiator, branching, known time or temperature that is impossible,
    in another unit, or outside the design's domain, before any work.  A known temperature or time read
    outside the domain by at most READING_REACH times its sd in the inversion under the profile `noise` (a
    run at a bound, read with its error) is taken, with the warning returned."""
    for name, value in (("cAIBN_time", cAIBN_time), ("branching", branching), ("time", time),
                        ("temp", temp)):
        if value is not None and not np.isfinite(value):
            raise InputError(f"{name} must be a finite number, got {value}")
    if cAIBN_time is not None:
        if cAIBN_time <= 0:
            raise InputError(f"the residual initiator must be positive (mol/L), got {cAIBN_time}")
        if cAIBN_time > 0.2:
            raise InputError(f"cAIBN_time = {cAIBN_time} mol/L is implausibly high: it looks like mmol/L; "
                             f"give it in mol/L (e.g. {cAIBN_time / 1000:g})")
        if cAIBN_time > BOX["cAIBN_0"][1]:
            raise InputError(f"cAIBN_time = {cAIBN_time} mol/L is above the design's highest initial "
                             f"initiator ({BOX['cAIBN_0'][1]} mol/L): outside the trained domain")
    if branching is not None and not 0 < branching < 100:
        raise InputError(f"the branching density is in mol % (branch points per 100 monomer units), "
                         f"between 0 and 100; got {branching}")
    if temp is not None and temp > 150:
        raise InputError(f"temp = {temp} looks like kelvin; give °C")
    if time is not None and time < 0:
        raise InputError(f"the known time must not be negative (s), got {time}")
    out = []
    sds = known_sds(PROFILES[noise])
    for name, value in (("temp", temp), ("time", time)):
        if value is None:
            continue
        (lo, hi), sd, unit = BOX[name], sds[name], UNITS[name]
        beyond = max(lo - value, value - hi)  # > 0: outside the domain by that much
        if beyond > READING_REACH * sd:
            raise InputError(f"{name} = {value:g} {unit} is outside the trained domain ({lo:g}-{hi:g} "
                             f"{unit}), by more than {READING_REACH:g} times its reading's sd "
                             f"({sd:g} {unit}, noise profile '{noise}')")
        if beyond > 0:
            out.append(f"the given {name} = {value:g} {unit} lies {beyond:.3g} {unit} outside the trained "
                       f"domain ({lo:g}-{hi:g} {unit}), within {READING_REACH:g} times its reading's sd "
                       f"({sd:g} {unit}, noise profile '{noise}'): taken as a reading of a run inside it; "
                       f"the recipe's {name} stays in the domain")
    return out


def find_recipe(w: np.ndarray, cBA_time: float | None = None, Mn: float | None = None,
                Mw: float | None = None, frame: pd.DataFrame | None = None,
                models: dict | None = None, with_posterior: bool = False, cAIBN_time: float | None = None,
                branching: float | None = None, time: float | None = None,
                temp: float | None = None, noise: str = "ideal") -> dict:
    """The whole finder: domain verdict, ML prediction with intervals, physics inversion, round trip.
    Without `frame` it uses the stored finder models (`finder_models`: no workbook is read, no model
    fitted); with it, `models` caches the ML models fitted on `frame` by profile and feature set, and
    the domains by profile and extras; with
    `with_posterior` the result also holds the `Inversion` itself (not JSON) under "inversion".  The
    residual initiator, branching, a known time or temperature condition the inversion (the ML model
    does not use them; its prediction takes the known values instead of its own).  `noise` names the
    measurement profile of `measurement` the data come from (`ideal`: the simulator's own scatter): the
    inversion compares them through that instrument (`inversion.measurement_noise`)."""
    if noise not in PROFILES:
        raise InputError(f"unknown noise profile {noise!r}; choose from {list(PROFILES)}")
    check_extras(cBA_time, Mn, Mw)
    read_outside = check_known(cAIBN_time, branching, time, temp, noise)
    known = {k: v for k, v in (("time", time), ("temp", temp)) if v is not None}
    given = [c for c, v in zip(EXTRA_FEATURES, (cBA_time, Mn, Mw)) if v is not None]
    row = as_frame(w, cBA_time, Mn, Mw)
    feature_set = "composite" if len(given) == 3 else "mmd"  # the ML model needs all three extras
    if frame is None:
        stored = finder_models(noise=noise)
        verdict = stored.domain(given, noise).check(row)[0]
        model = stored.models[(noise, feature_set)]
    else:
        models = {} if models is None else models
        domain = ("domain", noise, tuple(given))
        if domain not in models:
            models[domain] = Domain(training_rows(frame, noise), given + MMD_COLUMNS)
        verdict = models[domain].check(row)[0]
        if (noise, feature_set) not in models:
            models[(noise, feature_set)] = ml_model(frame, feature_set, noise=noise)
        model = models[(noise, feature_set)]
    ml_recipe, ml_interval = ml_prediction(model, row)
    obs = Observation(w, cBA_time, Mn, Mw, cAIBN_time, branching, time, temp)
    sigma = measurement_noise(obs, PROFILES[noise])
    result = invert(obs, starts=[clip_to_box({**ml_recipe, **known}), {**CENTRE, **known}], noise=sigma)
    observed = set_name(obs.extras + obs.known)
    factors, basis = interval_factors(noise, observed, settings=inversion_settings())
    interval = widen(result.interval, factors)
    warnings_ = read_outside + verdict.reasons() + disagreements(result.recipe, obs, sigma)
    failed = result.inflation > FAILED_FIT
    if obs.known and result.inflation > KNOWN_MISFIT:
        names = " and ".join(obs.known)
        blamed, alone = known_values_blamed(obs, sigma, result.posterior, [result.recipe, CENTRE])
        with_, without = np.sqrt(result.inflation), np.sqrt(max(1.0, alone))
        if blamed:
            warnings_.append(f"with the given {names} no recipe makes this polymer within the noise (it "
                             f"misses by {with_:.1f} times the noise with them, by {without:.1f} without): "
                             "check the known values")
        else:
            warnings_.append(f"the fit misses this polymer by {with_:.1f} times the noise with the given "
                             f"{names} and by {without:.1f} without: the known values are not the cause")
    if failed:
        misses = np.sqrt(result.inflation)
        warnings_.append(f"the fit failed: the best recipe misses the polymer by {misses:.0f} times the "
                         "noise of the data; its recipe and intervals are not to be trusted. Either no "
                         "recipe of the domain makes this polymer, or it was not measured as the noise "
                         f"profile '{noise}' assumes (a simulator's own trace is 'ideal', a measured one "
                         "'typical' or 'poor')")
    for name, value in result.recipe.items():
        lo, hi = BOX[name]
        if min(value - lo, hi - value) < 1e-3 * (hi - lo):
            warnings_.append(f"the recipe has {name} at the edge of the domain ({value:.4g}): the "
                             "polymer may come from outside the trained ranges")
    out = {
        "recipe": result.recipe,
        "interval": {k: list(v) for k, v in interval.items()},
        "posterior": {"mean": result.mean, "median": result.median, "level": result.level,
                      "correlation_temp_cAIBN_0": result.correlation, "noise_inflation": result.inflation,
                      "interval": {k: list(v) for k, v in result.interval.items()}},
        "calibration": {"observed": observed, "basis": basis, "factors": factors},
        "ml": {"recipe": ml_recipe, "interval": {k: list(v) for k, v in ml_interval.items()},
               "roundtrip": roundtrip(ml_recipe, w, cBA_time, Mn, Mw)},
        "roundtrip": roundtrip(result.recipe, w, cBA_time, Mn, Mw),
        "misfit": result.misfit,
        "fit": {"status": "failed" if failed else "ok", "misfit_per_value": result.misfit,
                "noise_inflation": result.inflation, "evaluations": result.evaluations},
        "features": given + obs.extras[len(given):] + obs.known,
        "noise": noise,
        "in_domain": bool(verdict.in_domain),
        "warnings": warnings_,
    }
    if with_posterior:
        out["inversion"] = result
    return out


def situations(measured: dict) -> dict[str, dict]:
    """The finder's three use cases, as the `find_recipe` arguments each has from one measured sample
    (a dict with Mn, Mw, cBA_time, cAIBN_time, temp, time): a competitor's polymer (SEC only); your own
    reactor (SEC, GC, the temperature known; then the time known too); a laboratory sample (SEC, GC and
    the residual initiator by HPLC)."""
    sec = {"Mn": measured["Mn"], "Mw": measured["Mw"]}  # computed from the trace by the SEC software
    gc = {**sec, "cBA_time": measured["cBA_time"]}
    return {"1. competitor: SEC only": sec,
            "2. own reactor: SEC, GC, temperature known": {**gc, "temp": measured["temp"]},
            "2'. own reactor: SEC, GC, temperature and time known": {**gc, "temp": measured["temp"],
                                                                    "time": measured["time"]},
            "3. laboratory sample: SEC, GC, residual initiator": {**gc, "cAIBN_time": measured["cAIBN_time"]}}


def recovery_table(found: dict[str, dict], truth: dict[str, dict]) -> pd.DataFrame:
    """Per example and target: the truth, the finder's recipe and posterior mean, the interval, the
    errors in % of the study's range, whether the truth is inside, and the ML recipe."""
    rows = []
    for name, result in found.items():
        for target in TARGETS:
            lo, hi = result["interval"][target]
            span = np.diff(STUDY_RANGES[target])[0]
            true = truth[name][target]
            rows.append({"file": name, "target": target, "true": true, "recipe": result["recipe"][target],
                         "posterior mean": result["posterior"]["mean"][target], "low": lo, "high": hi,
                         "error %": 100 * (result["recipe"][target] - true) / span,
                         "mean error %": 100 * (result["posterior"]["mean"][target] - true) / span,
                         "inside": bool(lo <= true <= hi), "ML": result["ml"]["recipe"][target]})
    return pd.DataFrame(rows).set_index(["file", "target"])


def stability_table(found: dict, rerun, best_fits: dict[str, dict]) -> pd.DataFrame:
    """The finder's posterior summaries next to those of an inversion started elsewhere (`rerun`), and
    two best-fit points from different starts; the last two rows are their differences in % of the
    study's ranges."""
    span = pd.Series({t: np.diff(STUDY_RANGES[t])[0] for t in TARGETS})
    rows = {"recipe (finder)": found["recipe"], "recipe (started elsewhere)": rerun.recipe,
            "mean (finder)": found["posterior"]["mean"], "mean (started elsewhere)": rerun.mean,
            **{f"best fit from {name}": fit for name, fit in best_fits.items()}}
    table = pd.DataFrame(rows).T[TARGETS]
    low = pd.Series({t: found["interval"][t][0] for t in TARGETS})
    low_rerun = pd.Series({t: rerun.interval[t][0] for t in TARGETS})
    high = pd.Series({t: found["interval"][t][1] for t in TARGETS})
    high_rerun = pd.Series({t: rerun.interval[t][1] for t in TARGETS})
    moves = pd.concat([table.iloc[1] - table.iloc[0], table.iloc[3] - table.iloc[2], low_rerun - low,
                       high_rerun - high], axis=1).abs().max(axis=1)
    fits = list(best_fits.values())
    table.loc["posterior moved, % of range"] = 100 * moves / span
    table.loc["best fit moved, % of range"] = 100 * (pd.Series(fits[1]) - pd.Series(fits[0]))[TARGETS] / span
    return table


def conditioned_table(results: dict[str, dict], truth: dict) -> pd.DataFrame:
    """Per case (rows) and target: the 90 % interval's width in % of the study's range and whether the
    truth lies inside it."""
    rows = {}
    for label, result in results.items():
        row = {}
        for t in TARGETS:
            lo, hi = result["interval"][t]
            row[(t, "width %")] = round(100 * (hi - lo) / np.diff(STUDY_RANGES[t])[0], 1)
            row[(t, "inside")] = bool(lo <= truth[t] <= hi)
        rows[label] = row
    return pd.DataFrame(rows).T
