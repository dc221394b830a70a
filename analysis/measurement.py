"""From a simulated polymer to what the instruments report: a measurement model.

SEC/GPC sees the MMD through a calibration (a shift of log M: a polystyrene-equivalent calibration, and its
run-to-run scatter), band broadening (a Gaussian spreading function in log M), a low-mass cut-off (solvent
and system peaks) and detector noise (relative and baseline parts, correlated along log M); Mn and Mw are
computed from the measured trace, so they inherit its errors.  GC (residual monomer), HPLC (residual
initiator) and NMR (branching) add relative errors.  Three profiles: `ideal` (none of this: the kinetic Monte
Carlo scatter of the workbook is the only noise), `typical` and `poor`, every value with its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.special import ndtr

from .mmd import DLOGM, EDGES, LOGM, MMD_COLUMNS, averages


class ObservationError(ValueError):
    """An observation set or a noise profile that does not exist, named."""


@dataclass(frozen=True)
class Profile:
    """One measurement situation.  Lengths in decades of log10 M; precisions as relative sd."""

    name: str
    calibration_bias: float = 0.0  # decades: measured log M - true log M (PS-equivalent calibration)
    calibration_sd: float = 0.0  # decades: run-to-run scatter of that shift
    broadening: float = 0.0  # decades: sd of the Gaussian spreading function
    cutoff_logm: float | None = None  # no usable signal below this log M
    detector_relative: float = 0.0  # sd of w per point, relative to w
    detector_baseline: float = 0.0  # sd of w per point, relative to the trace's maximum
    noise_correlation: float = 0.0  # decades: correlation length of the detector noise (0: white)
    cBA_time: float = 0.0  # GC, residual monomer
    cAIBN_time: float = 0.0  # HPLC, residual initiator
    branching: float = 0.0  # quantitative 13C NMR
    known_temp: float = 0.1  # °C: sd of a temperature the chemist knows (reactor control)
    known_time: float = 1.0  # s: sd of a known reaction time (sampling, quench)
    sources: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("calibration_sd", "broadening", "detector_relative", "detector_baseline",
                     "noise_correlation", "cBA_time", "cAIBN_time", "branching", "known_temp", "known_time"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ObservationError(f"profile {self.name!r}: {name} is a standard deviation or a length, "
                                       f"finite and >= 0; got {value}")
        for name in ("known_temp", "known_time"):  # the inversion divides by them, and integrates over
            if getattr(self, name) == 0:  # the known temperature's sd (a zero-width cell has no density)
                raise ObservationError(f"profile {self.name!r}: {name} is the sd of a known value, > 0 "
                                       "(no temperature or time is known exactly)")

    @property
    def instrument(self) -> bool:
        """True when the SEC trace passes through an instrument (anything but the kMC scatter)."""
        return bool(self.calibration_bias or self.calibration_sd or self.broadening or self.cutoff_logm
                    is not None or self.detector_relative or self.detector_baseline)


def spreading_matrix(shift: float, broadening: float) -> np.ndarray:
    """(100 x 100) matrix taking w on the grid to the shifted, broadened w: each source cell's mass spread
    by a Gaussian of sd `broadening` around its centre + `shift`, integrated over each target cell (mass
    that leaves the grid is lost); without broadening, each cell's mass moves as a uniform block.
    shift = broadening = 0 gives the identity."""
    if broadening <= 0:  # each source cell, uniform over its width, moved by the shift
        lo, hi = EDGES[None, :-1] + shift, EDGES[None, 1:] + shift
        return np.clip(np.minimum(EDGES[1:, None], hi) - np.maximum(EDGES[:-1, None], lo), 0.0, None) / DLOGM
    # the grid is uniform: an edge lies (k - 1/2) cells above a centre for k = i - j, one of 201 offsets, so
    # the normal's distribution function is evaluated once per offset (not per pair of cells)
    cdf = ndtr(((np.arange(-LOGM.size + 1, LOGM.size + 1) - 0.5) * DLOGM - shift) / broadening)
    offset = np.arange(LOGM.size)[:, None] - np.arange(LOGM.size)[None, :] + LOGM.size - 1
    return cdf[offset + 1] - cdf[offset]


def noise_kernel(length: float) -> np.ndarray:
    """(100 x 100) K such that K @ white noise has unit variance and a Gaussian correlation of `length`
    decades (the identity for white noise): the noise's covariance is K @ K.T."""
    if length <= 0:
        return np.eye(LOGM.size)
    lag = LOGM - LOGM[:, None]
    kernel = np.exp(-0.5 * (lag / (length / np.sqrt(2))) ** 2)
    return kernel / np.sqrt((kernel**2).sum(axis=1, keepdims=True))  # unit variance at every point


def correlated_noise(rng: np.random.Generator, size: tuple[int, ...], length: float) -> np.ndarray:
    """Unit-variance Gaussian noise on the grid with a Gaussian correlation of `length` decades."""
    white = rng.standard_normal(size + (LOGM.size,))
    return white if length <= 0 else white @ noise_kernel(length).T


def measure_mmd(w: np.ndarray, profile: Profile, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Measured w(log M) (rows x 100, unit area, non-negative) and the Mn, Mw computed from it."""
    w = np.atleast_2d(np.asarray(w, float))
    shifts = profile.calibration_bias + profile.calibration_sd * rng.standard_normal(len(w))
    out = np.empty_like(w)
    for r, shift in enumerate(shifts):
        out[r] = spreading_matrix(shift, profile.broadening) @ w[r]
    cut = LOGM < profile.cutoff_logm if profile.cutoff_logm is not None else np.zeros(LOGM.size, bool)
    out[:, cut] = 0.0
    if profile.detector_relative > 0 or profile.detector_baseline > 0:
        sd = profile.detector_relative * out + profile.detector_baseline * out.max(axis=1, keepdims=True)
        out = out + sd * correlated_noise(rng, (len(w),), profile.noise_correlation)
    out[:, cut] = 0.0  # outside the integration limits, the baseline noise is not reported either
    out = np.clip(out, 0.0, None)
    out /= out.sum(axis=1, keepdims=True) * DLOGM
    mn, mw = averages(out)
    return out, mn, mw


def measure_scalar(values: np.ndarray, relative_sd: float, rng: np.random.Generator) -> np.ndarray:
    """A measured positive quantity: the true value times a log-normal error of the given relative sd."""
    values = np.asarray(values, float)
    if relative_sd <= 0:
        return values.copy()
    return values * np.exp(relative_sd * rng.standard_normal(values.shape) - 0.5 * relative_sd**2)


def measured_rows(frame: pd.DataFrame, profile: Profile, rng: np.random.Generator) -> pd.DataFrame:
    """The workbook's rows as the instruments of `profile` report them: with an instrument the MMD measured
    and Mn, Mw computed from it; cBA_time by GC (the other columns as they are)."""
    out = frame.copy()
    if profile.instrument:
        measured, mn, mw = measure_mmd(frame[MMD_COLUMNS].to_numpy(float), profile, rng)
        out[MMD_COLUMNS] = measured
        out["Mn"], out["Mw"] = mn, mw
    out["cBA_time"] = measure_scalar(frame["cBA_time"].to_numpy(float), profile.cBA_time, rng)
    return out


SHIFT_STEP = 1e-4  # decades: difference step of d trace / d calibration shift


@dataclass
class TraceOperator:
    """The SEC operator at one trace: points kept (above the cut-off), the measured trace there, its
    derivative with respect to the true trace (kept x 100) and to the calibration shift (kept), and the
    detector noise's covariance (kept x kept)."""

    kept: np.ndarray
    trace: np.ndarray
    d_trace: np.ndarray
    d_shift: np.ndarray
    detector: np.ndarray


@lru_cache(maxsize=16)
def _operators(p: Profile) -> tuple[np.ndarray, ...]:
    """The profile's fixed matrices: points kept, spreading (kept x 100), its derivative with respect to
    the calibration shift, and the detector noise's kernel (kept x 100)."""
    kept = np.ones(LOGM.size, bool) if p.cutoff_logm is None else LOGM >= p.cutoff_logm
    spread = spreading_matrix(p.calibration_bias, p.broadening)[kept]
    plus, minus = (spreading_matrix(p.calibration_bias + s, p.broadening)[kept]
                   for s in (SHIFT_STEP, -SHIFT_STEP))
    return kept, spread, (plus - minus) / (2 * SHIFT_STEP), noise_kernel(p.noise_correlation)[kept]


def trace_operator(w: np.ndarray, p: Profile) -> TraceOperator:
    """Linearisation of `measurement.measure_mmd` at the true trace w.  Its clip at zero is left out: where
    the baseline noise acts on no signal, the clip adds mass to the tails, which lowers the measured
    trace's noise after renormalisation by up to 10-15 % at the `typical` baseline; the operator's noise
    is that much larger."""
    kept, spread, d_spread, kernel = _operators(p)
    u = spread @ w
    total = u.sum() * DLOGM
    m = u / total
    project = (np.eye(kept.sum()) - np.outer(m, np.full(kept.sum(), DLOGM))) / total  # renormalisation
    sd = p.detector_relative * u + p.detector_baseline * u.max()
    mixing = project @ (sd[:, None] * kernel)
    return TraceOperator(kept, m, project @ spread, project @ (d_spread @ w), mixing @ mixing.T)


def trace_covariance(op: TraceOperator, s: np.ndarray) -> np.ndarray:
    """The measured trace's noise covariance without the calibration shift: a per-point scatter of the true
    trace (sd `s` on the grid) through the operator, and the detector's."""
    return (op.d_trace * s**2) @ op.d_trace.T + op.detector


def whitening(cov: np.ndarray, compared: np.ndarray | None = None) -> np.ndarray:
    """W with W @ cov @ W.T = I on the directions that carry noise (eigenvectors, each over its sd); the
    others (the renormalised trace's area) carry no noise and no information, and are dropped.  With
    `compared` (booleans), only those points enter (the covariance's block): W's columns at the others
    are zero."""
    if compared is None:
        compared = np.ones(len(cov), bool)
    vals, vecs = np.linalg.eigh(cov[np.ix_(compared, compared)])
    good = vals > vals.max() * 1e-12
    out = np.zeros((int(good.sum()), len(cov)))
    out[:, compared] = (vecs[:, good] / np.sqrt(vals[good])).T
    return out


def reported(trace: np.ndarray) -> np.ndarray:
    """The points of a measured trace (above the cut-off) where the instrument reports a signal: a zero is
    a censored value (the detector's baseline noise took it below zero and `measure_mmd`, like an
    integration that reports no negative signal, clipped it).  Its only information is "at or below the
    baseline"; compared as a number, its clip is a non-Gaussian jump in the directions the smooth
    correlated noise hardly moves, and one such point can weigh 10^5 in chi²."""
    return np.asarray(trace, float) > 0.0


@lru_cache(maxsize=64)
def _shifted_spread(p: Profile, shift: float) -> np.ndarray:
    """The profile's spreading (kept x 100) with its calibration moved by `shift` decades."""
    kept = _operators(p)[0]
    return spreading_matrix(p.calibration_bias + shift, p.broadening)[kept]


def measured_trace(w: np.ndarray, p: Profile, shift: float = 0.0) -> np.ndarray:
    """The noise-free measured trace at the points above the cut-off (the operator's deterministic part),
    with the calibration moved by `shift` decades from the profile's bias."""
    spread = _operators(p)[1] if shift == 0.0 else _shifted_spread(p, float(shift))
    u = spread @ w
    return u / (u.sum() * DLOGM)


def _decades(relative: float) -> float:
    """A relative error of molar mass as a shift of log10 M."""
    return float(np.log10(1.0 + relative))


JSAC = ("JSAC round robins of SEC (summary: 'Problems Associated with SEC Measurements of Polymers Among "
        "Laboratories'; Mori et al., Bunseki Kagaku 1996, 45, 95): repeatability under 3 %; between 23 "
        "laboratories RSD 6-10 % for Mw and 13-16 % for Mn")
GRUENDLING = ("Gruendling, Junkers, Barner-Kowollik et al. 2010 (universal calibration of polyacrylates): "
              "agreement generally better than 10 % with MS-derived Mark-Houwink coefficients, errors of "
              "more than 30 % with literature values below Mn 20 kDa")
PROFILES = {
    "ideal": Profile("ideal", sources={"all": "no instrument: the kinetic Monte Carlo scatter of the "
                                              "workbook is the only noise (chapter 8)",
                                       "known": "assumption: temperature to 0.1 °C, time to 1 s"}),
    "typical": Profile(
        "typical", calibration_sd=_decades(np.hypot(0.03, 0.10)), broadening=0.05, cutoff_logm=2.7,
        detector_relative=0.01, detector_baseline=0.002, noise_correlation=0.1,
        cBA_time=0.03, cAIBN_time=0.05, branching=0.05, known_temp=0.5, known_time=5.0,
        sources={"calibration": f"3 % repeatability ({JSAC}) and 10 % calibration error ({GRUENDLING}), "
                                "combined",
                 "broadening": "assumption: 0.05 decade (raises Mw/Mn by 1.3 %); no spreading width in "
                               "log M was found in the stored sources",
                 "cutoff": "assumption: no signal below 500 g/mol (solvent and system peaks; vendors state "
                           "sensitivity to fractions below 500 Da as a feature)",
                 "detector": "assumption: 1 % of the signal plus 0.2 % of the peak (measure.sec simulates RI "
                             "noise of 0.2 % of the maximum), correlated over 0.1 decade",
                 "cBA_time": "assumption: 3 % by GC (ethyl acrylate in latex by GC-FID: CV below 10 % at "
                             "trace level)",
                 "cAIBN_time": "assumption: 5 % by HPLC (no precision found)",
                 "branching": "assumption: 5 % by quantitative 13C NMR (precision set by the S/N of the "
                              "quaternary carbon; Castignolles/Gaborieau 2010; no number found)",
                 "known": "assumption: a controlled reactor holds its set point to 0.5 °C; a sample is "
                          "taken and quenched within 5 s"}),
    "poor": Profile(
        "poor", calibration_sd=_decades(np.hypot(0.08, 0.30)), broadening=0.1, cutoff_logm=3.0,
        detector_relative=0.03, detector_baseline=0.01, noise_correlation=0.2,
        cBA_time=0.10, cAIBN_time=0.10, branching=0.15, known_temp=2.0, known_time=30.0,
        sources={"calibration": f"8 % between laboratories ({JSAC}) and 30 % calibration error "
                                f"({GRUENDLING}), combined",
                 "broadening": "assumption: 0.1 decade (Mw/Mn +5.4 %)",
                 "cutoff": "assumption: no signal below 1000 g/mol",
                 "detector": "assumption: 3 % of the signal plus 1 % of the peak, correlated over 0.2 decade",
                 "cBA_time": "10 % (the upper bound of the GC-FID source above)",
                 "cAIBN_time": "assumption: 10 %", "branching": "assumption: 15 %",
                 "known": "assumption: an oil bath read to 2 °C; sampling within 30 s"}),
}


def profile_table() -> pd.DataFrame:
    """The profiles side by side (one column each), in the units a chemist quotes them."""
    rows = {}
    for name, p in PROFILES.items():
        rows[name] = {"calibration sd of M (%)": 100 * (10**p.calibration_sd - 1),
                      "band broadening (decades)": p.broadening,
                      "low-M cut-off (g/mol)": 10**p.cutoff_logm if p.cutoff_logm is not None else 0.0,
                      "detector: relative (%)": 100 * p.detector_relative,
                      "detector: baseline (% of peak)": 100 * p.detector_baseline,
                      "noise correlation (decades)": p.noise_correlation,
                      "cBA_time by GC (%)": 100 * p.cBA_time, "cAIBN_time by HPLC (%)": 100 * p.cAIBN_time,
                      "branching by 13C NMR (%)": 100 * p.branching, "known temp (°C)": p.known_temp,
                      "known time (s)": p.known_time}
    return pd.DataFrame(rows)


def repeated_averages(w: np.ndarray, profile: Profile, n: int = 500, seed: int = 0) -> dict:
    """Mn, Mw and Mw/Mn of one trace measured n times: mean relative to the truth and relative sd."""
    mn0, mw0 = averages(w)
    _, mn, mw = measure_mmd(np.tile(w, (n, 1)), profile, np.random.default_rng(seed))
    out = {}
    for name, values, truth in (("Mn", mn, mn0), ("Mw", mw, mw0), ("Mw/Mn", mw / mn, mw0 / mn0)):
        out[f"{name}: mean / true"] = float(np.mean(values) / truth)
        out[f"{name}: sd (%)"] = float(100 * np.std(values) / np.mean(values))
    return out
