"""The fixed log10 M grid of the dataset and the chain-length distribution algebra on it.

An MMD value is w(log M): the mass fraction of dead polymer whose log10 M falls in a grid cell,
divided by the cell width, renormalised to the polymer mass inside the grid, so that
sum(w) * DLOGM == 1 exactly.  Both engines bin discrete chain lengths n (M = n * M_BA, end groups
neglected) into the same cells, so they estimate the same quantity.  The grid bounds are chosen so that
at least 99.5 % of the polymer mass of every sample of the 432-recipe design lies inside
(checked by tests/test_mmd.py over the whole design with the deterministic engine).
"""

from __future__ import annotations

import numpy as np

from .kinetics import M_BA

N_POINTS = 100
LOGM_MIN = 2.0  # lower edge of the first cell (M = 100 g/mol, below a dimer)
LOGM_MAX = 6.5  # upper edge of the last cell (M = 3.2e6 g/mol)
EDGES = np.linspace(LOGM_MIN, LOGM_MAX, N_POINTS + 1)
LOGM = 0.5 * (EDGES[:-1] + EDGES[1:])  # cell centres: the 100 log M values of columns MMD1..MMD100
DLOGM = float(EDGES[1] - EDGES[0])
MMD_COLUMNS = [f"MMD{i}" for i in range(1, N_POINTS + 1)]

# Largest chain length n whose log10(n * M_BA) is below each edge: cell k holds lengths
# EDGE_LENGTHS[k] < n <= EDGE_LENGTHS[k+1].
EDGE_LENGTHS = np.floor(10.0 ** EDGES / M_BA - 1e-9).astype(np.int64)


def bin_lookup(n_max: int) -> np.ndarray:
    """Cell index (0 = below the grid, 1..100 inside, 101 = above) of every chain length 0..n_max."""
    n = np.arange(n_max + 1)
    idx = np.searchsorted(EDGE_LENGTHS, n, side="left")  # number of edges with EDGE_LENGTHS < n
    return idx.astype(np.int64)


def flory_mass_tail(n: np.ndarray, q: float) -> np.ndarray:
    """Mass fraction of chains longer than n for the number distribution (1-p) p^(k-1), q = 1-p."""
    n = np.asarray(n, dtype=float)
    return np.exp(n * np.log1p(-q)) * (1.0 + n * q)


def schulz2_mass_tail(n: np.ndarray, q: float) -> np.ndarray:
    """Mass fraction of chains longer than n for the sum of two Flory lengths (combination)."""
    n = np.asarray(n, dtype=float)
    p = 1.0 - q
    return np.exp((n - 1.0) * np.log1p(-q)) * (0.5 * n * (n + 1.0) * q * q + (n + 1.0) * p * q + p * p)


def cell_masses(q: float | np.ndarray, kind: str) -> np.ndarray:
    """Mass fractions in the 102 cells (below, 100 inside, above) of an instantaneous distribution
    ('flory' or 'schulz2') with stop probability q; for an array of q, one row per value."""
    tail = flory_mass_tail if kind == "flory" else schulz2_mass_tail
    q = np.asarray(q, dtype=float)
    t = tail(EDGE_LENGTHS, q[..., None]) if q.ndim else tail(EDGE_LENGTHS, q)
    shape = t.shape[:-1] + (1,)
    cdf = np.concatenate([np.zeros(shape), 1.0 - t, np.ones(shape)], axis=-1)
    return np.diff(cdf, axis=-1)


def normalise(cells: np.ndarray) -> np.ndarray:
    """w(log M) on the grid from the 102 cell masses: inside cells over their mass, per unit log M."""
    cells = np.asarray(cells, dtype=float)
    inside = cells[..., 1:-1]
    return inside / inside.sum(axis=-1, keepdims=True) / DLOGM


def inside_fraction(cells: np.ndarray) -> np.ndarray:
    """Fraction of the polymer mass that lies inside the grid, from the 102 cell masses."""
    cells = np.asarray(cells, dtype=float)
    return cells[..., 1:-1].sum(axis=-1) / cells.sum(axis=-1)


def averages(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mn and Mw (g/mol) of w(log M) on the grid, taking each cell at its centre."""
    w = np.asarray(w, dtype=float)
    m = 10.0 ** LOGM
    mass = w * DLOGM
    mn = mass.sum(axis=-1) / (mass / m).sum(axis=-1)
    mw = (mass * m).sum(axis=-1) / mass.sum(axis=-1)
    return mn, mw


def l1_distance(w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """MMD L1 distance sum(|w1 - w2|) * DLOGM (0 = identical, 2 = disjoint)."""
    return np.abs(np.asarray(w1) - np.asarray(w2)).sum(axis=-1) * DLOGM
