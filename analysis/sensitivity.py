"""How much the simulator's conclusions depend on the uncertain kinetic parameters.

Each parameter is moved to the low and high end of its literature uncertainty (`PERTURBATIONS`), all else
at default, and the deterministic engine reports what the book relies on: conversion at 3600 s and Mn,
branching and the mid-chain fraction of a reference recipe, the number of the 432 recipes that reach 90 %
before 3600 s, and the weakest singular value of the noise-scaled Jacobian at one workbook row (the valley's
depth, chapter 8).  `beta_scission_scan` checks the optional beta-scission in the hot, dilute corner.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd

from .design import RECIPE_KEY, design
from .identifiability import (
    RowJacobians,
    design_observables,
    noise_model,
    recipe_jacobians,
    weakest_direction,
)
from .kinetics import BETA_SCISSION_140C, DEFAULT_PARAMETERS, R_GAS, Arrhenius, KineticParameters, Recipe
from .ode import run_ode
from .workers import parallel_map

REFERENCE = (1.5, 0.0075, 70.0)  # a design recipe near the box's centre
REFERENCE_TIME = 1800.0  # s: its workbook row for the singular value
EA_SHIFT = 3.0  # kJ/mol, moved with k(70 °C) held fixed: only the temperature dependence changes


def _ea_shifted(k: Arrhenius, shift: float, at: float = 70.0) -> Arrhenius:
    """The same rate coefficient at `at` °C with its activation energy moved by `shift` kJ/mol."""
    factor = math.exp(shift * 1e3 / (R_GAS * (at + 273.15)))
    return Arrhenius(k.A * factor, k.Ea_kJ + shift, f"{k.source} (Ea {shift:+g} kJ/mol, same k at {at:g} °C)")


def _scaled(k: Arrhenius, factor: float) -> Arrhenius:
    return Arrhenius(k.A * factor, k.Ea_kJ, f"{k.source} (x{factor:g})")


def perturbations(p: KineticParameters = DEFAULT_PARAMETERS) -> dict[str, tuple[str, KineticParameters,
                                                                                 KineticParameters]]:
    """Parameter -> (what moves, low set, high set).  Ranges: a factor 2 both ways for the constants that
    no stored source checks (CS, kbb, kpt, ktt, ktst), Ea(kbb) by ±3 kJ/mol, f from 0.5 to 0.8 (the usual
    range of azo initiators)."""
    return {
        "CS (toluene)": ("x0.5 / x2", replace(p, CS=p.CS / 2), replace(p, CS=p.CS * 2)),
        "kbb": ("x0.5 / x2", replace(p, kbb=_scaled(p.kbb, 0.5)), replace(p, kbb=_scaled(p.kbb, 2.0))),
        "Ea(kbb)": (f"-{EA_SHIFT:g} / +{EA_SHIFT:g} kJ/mol", replace(p, kbb=_ea_shifted(p.kbb, -EA_SHIFT)),
                    replace(p, kbb=_ea_shifted(p.kbb, EA_SHIFT))),
        "kpt": ("x0.5 / x2", replace(p, kpt=_scaled(p.kpt, 0.5)), replace(p, kpt=_scaled(p.kpt, 2.0))),
        "ktt": ("ktt/ktss 0.05 / 0.2", replace(p, ktt_over_ktss=p.ktt_over_ktss / 2),
                replace(p, ktt_over_ktss=p.ktt_over_ktss * 2)),
        "ktst": ("x0.5 / x2", replace(p, ktst_factor=0.5), replace(p, ktst_factor=2.0)),
        "f": ("0.5 / 0.8", replace(p, f=0.5), replace(p, f=0.8)),
    }


def outcomes(params: KineticParameters, sigma: np.ndarray | None = None,
             row: pd.DataFrame | None = None) -> dict[str, float]:
    """What the book relies on, under one parameter set (see the module's docstring).  `sigma` is the
    noise (103,) of the reference row (`row`, read from the workbook if not given); without it the
    singular value is not computed."""
    ref = run_ode(Recipe(*REFERENCE), params)
    stops = sum(run_ode(r, params, with_mmd=False).stopped for r in design())
    out = {"conversion at 3600 s": float(ref.conversion[-1]), "Mn at 3600 s": float(ref.Mn[-1]),
           "branching at 3600 s (mol %)": float(ref.branching[-1]),
           "mid-chain fraction": float(ref.midchain_fraction[-1]), "recipes at 90 %": int(stops)}
    if sigma is not None:
        out["weakest singular value"] = weakest_singular_value(params, sigma, row)
    return out


def _reference_index(data: pd.DataFrame) -> int:
    same = (data[RECIPE_KEY].to_numpy() == REFERENCE).all(axis=1)
    hit = np.flatnonzero(same & (data.time == REFERENCE_TIME).to_numpy())
    if len(hit) != 1:
        raise LookupError(f"the workbook has no single row for {REFERENCE} at {REFERENCE_TIME:g} s")
    return int(hit[0])


def _reference_row() -> pd.DataFrame:
    from .dataset import load_dataset

    data = load_dataset()
    return data.iloc[[_reference_index(data)]].reset_index(drop=True)


def _reference(jobs: int | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The reference row and the noise of its observables (103,), from one reading of the workbook."""
    from .dataset import load_dataset

    data = load_dataset()
    r = _reference_index(data)
    return data.iloc[[r]].reset_index(drop=True), noise_model(data, design_observables(data, jobs))[r]


def reference_noise(jobs: int | None = None) -> np.ndarray:
    """Noise of the reference row's observables (103,): chapter 8's model (MMD scatter fitted to the row,
    Mn, Mw and cBA_time with their workbook-wide kMC scatter around the deterministic engine)."""
    return _reference(jobs)[1]


def weakest_singular_value(params: KineticParameters, sigma: np.ndarray,
                           row: pd.DataFrame | None = None) -> float:
    """Smallest singular value of the noise-scaled Jacobian (targets in units of the design's ranges) at
    the reference row, composite observables, with the Jacobian of these parameters."""
    row = _reference_row() if row is None else row
    obs, jac, stopped, grad, times = recipe_jacobians(REFERENCE, params=params)
    k = int(np.argmin(np.abs(times - REFERENCE_TIME)))
    rj = RowJacobians(obs[k:k + 1], jac[k:k + 1], stopped[k:k + 1], grad[k:k + 1])
    return float(weakest_direction(row, rj, sigma[None, :]).s4.iloc[0])


def sensitivity_table(jobs: int | None = None) -> pd.DataFrame:
    """Outcomes at the default and at each perturbed set (rows: parameter, side), in worker processes."""
    row, sigma = _reference(jobs)
    cases = [("default", "", "", DEFAULT_PARAMETERS)]
    for name, (what, low, high) in perturbations().items():
        cases += [(name, what, "low", low), (name, what, "high", high)]
    results = parallel_map(partial(outcomes, sigma=sigma, row=row), [c[3] for c in cases], jobs)
    index = pd.MultiIndex.from_tuples([(c[0], c[2]) for c in cases], names=["parameter", "side"])
    table = pd.DataFrame(results, index=index)
    table.insert(0, "range", [c[1] for c in cases])
    return table


def ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Each outcome of each perturbed set divided by its default value (1.1 = +10 %)."""
    values = table.drop(columns="range").astype(float)
    return values.drop(index="default", level=0) / values.loc["default"].iloc[0]


def beta_scission_scan(kbetas: tuple[float, ...] = (0.0, 0.1, 1.0, 10.0, BETA_SCISSION_140C),
                       recipe: tuple[float, float, float] = (0.5, 0.02, 80.0)) -> pd.DataFrame:
    """The hot, dilute, high-conversion corner with beta-scission at constant rate coefficients (1/s, the
    same at every temperature), up to the 140 °C value of Ballard et al. 2018: Mn, Mw, conversion,
    mid-chain fraction and when the run ends, next to kpt [M] at the end (what beta-scission competes
    with)."""
    rows = []
    k = DEFAULT_PARAMETERS.at(recipe[2])
    for kbeta in kbetas:
        params = replace(DEFAULT_PARAMETERS, kbeta=Arrhenius(kbeta, 0.0, "scan"))
        run = run_ode(Recipe(*recipe), params)
        rows.append({"kbeta (1/s)": kbeta, "end (s)": float(run.time[-1]),
                     "conversion": float(run.conversion[-1]), "Mn": float(run.Mn[-1]),
                     "Mw": float(run.Mw[-1]),
                     "mid-chain fraction": float(run.midchain_fraction[-1]),
                     "kpt [M] at the end (1/s)": k.kpt * float(run.cBA[-1])})
    return pd.DataFrame(rows).set_index("kbeta (1/s)")
