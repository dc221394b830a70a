"""Physics-informed features of a sample: what a polymer chemist reads off an MMD and the other outputs.

Chain length and breadth (log Mn, log Mw, log PDI), the remaining monomer on a log scale, the moments of
the distribution in log M (mean, standard deviation, skewness, kurtosis), its peak and quantiles.  The
rate and the chain length of a radical polymerisation are power laws of the concentrations and
Arrhenius terms, so their logarithms are nearly additive: trees split on them far more efficiently than
on the 100 raw MMD values, and a single log-ratio (remaining monomer / Mn) carries the balance between
rate and chain length that separates initiator from temperature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .mmd import DLOGM, LOGM, MMD_COLUMNS

QUANTILES = (0.02, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.98)
PHYSICS_FEATURES = (["log_Mn", "log_Mw", "log_PDI", "log_cBA_time", "logM_mean", "logM_sd", "logM_skew",
                     "logM_kurtosis", "logM_peak"] + [f"logM_q{round(100 * q):02d}" for q in QUANTILES]
                    + ["log_cBA_time_over_Mn"])
MMD_ONLY_PHYSICS = [f for f in PHYSICS_FEATURES if f.startswith("logM_")]


def mmd_shape(w: np.ndarray) -> dict[str, np.ndarray]:
    """Moments, peak and quantiles in log10 M of MMDs on the grid (rows x 100)."""
    w = np.atleast_2d(np.asarray(w, float))
    p = w * DLOGM
    p = p / p.sum(axis=1, keepdims=True)
    mean = p @ LOGM
    dev = LOGM[None, :] - mean[:, None]
    sd = np.sqrt((p * dev**2).sum(axis=1))
    out = {"logM_mean": mean, "logM_sd": sd, "logM_skew": (p * dev**3).sum(axis=1) / sd**3,
           "logM_kurtosis": (p * dev**4).sum(axis=1) / sd**4, "logM_peak": LOGM[w.argmax(axis=1)]}
    # quantiles of the cumulative mass, each cell's mass spread uniformly over its width
    edges = np.append(LOGM - DLOGM / 2, LOGM[-1] + DLOGM / 2)
    cdf = np.hstack([np.zeros((len(p), 1)), np.cumsum(p, axis=1)])
    for q in QUANTILES:
        out[f"logM_q{round(100 * q):02d}"] = np.array([np.interp(q, c, edges) for c in cdf])
    return out


def physics_features(frame: pd.DataFrame, with_extras: bool = True) -> pd.DataFrame:
    """Physics features of every row; `with_extras` adds those needing cBA_time, Mn and Mw."""
    shape = mmd_shape(frame[MMD_COLUMNS].to_numpy(float))
    out = pd.DataFrame(shape, index=frame.index)
    if not with_extras:
        return out[MMD_ONLY_PHYSICS]
    mn, mw, c = (frame[name].to_numpy(float) for name in ("Mn", "Mw", "cBA_time"))
    out["log_Mn"], out["log_Mw"] = np.log10(mn), np.log10(mw)
    out["log_PDI"] = np.log10(mw / mn)
    out["log_cBA_time"] = np.log10(c)
    out["log_cBA_time_over_Mn"] = out.log_cBA_time - out.log_Mn
    return out[PHYSICS_FEATURES]
