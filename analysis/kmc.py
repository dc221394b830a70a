"""Kinetic Monte Carlo engine: Gillespie's direct method with explicit chains, compiled with numba.

Every SPR and MCR is an entry in an array of chain lengths; every reaction of the scheme in
`analysis.kinetics` is an event (one propagation step = one event).  Dead chains are not stored: each is
binned at once into the 102 cells of the MMD grid and added to the moments.  The control volume is chosen
so that it holds at least `n_radicals` radicals (SPR + MCR) at the initial quasi-steady state and at
least `min_chains` dead chains at the first sample (300 s, from the deterministic engine's moments): the
radical count keeps the small-volume bias of bimolecular termination well below 1 %, the chain count keeps
the histogram noise of the earliest MMD (MMD L1 ~ 5/sqrt(chains)) below the engines' agreement limit.
Stochastic propensities (counts N, volume V, a = N_A V): SPR propagation kp/a N_M N_P, SPR-SPR
termination ktss/a N_P (N_P - 1), SPR-MCR 2 ktst/a N_P N_Q, MCR-MCR ktt/a N_Q (N_Q - 1), i.e. the IUPAC
convention of the deterministic engine.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .design import SAMPLE_TIMES, X_STOP
from .kinetics import DEFAULT_PARAMETERS, M_BA, N_AVOGADRO, KineticParameters, RateConstants, Recipe
from .mmd import EDGE_LENGTHS, bin_lookup, inside_fraction, normalise
from .ode import run_ode
from .simulation import Simulation

N_RADICALS = 20  # minimum radicals in the control volume at the start
MIN_CHAINS = 60_000  # minimum dead chains at the first sample
_LOOKUP_MAX = int(EDGE_LENGTHS[-1]) + 1


@njit(cache=True)
def _bury(n, cells, lookup, mom):
    """Add one dead chain of length n to the MMD cells and the moments."""
    idx = lookup[n] if n < lookup.shape[0] else 101
    cells[idx] += n
    mom[0] += 1.0
    mom[1] += n
    mom[2] += float(n) * float(n)


@njit(cache=True)
def _record(j, t, n_m, cells, mom, out_t, out_nm, out_cells, out_mom, out_tally, n_i, n_branch, q_dt,
            r_dt):
    out_t[j] = t
    out_nm[j] = n_m
    out_cells[j, :] = cells
    out_mom[j, :] = mom
    out_tally[j, 0] = n_i
    out_tally[j, 1] = n_branch
    out_tally[j, 2] = q_dt
    out_tally[j, 3] = r_dt


@njit(cache=True)
def _gillespie(n_i, n_m, n_s, kd, f, kp, kbb, kpt, ktss, ktst, ktt, dss, dst, dtt, ktrm, ktrs,
               sample_times, n_m_stop, seed, lookup, max_rad):
    """One run.  Rate constants are stochastic (already divided by N_A V where bimolecular)."""
    np.random.seed(seed)
    plen = np.empty(max_rad, np.int64)
    qlen = np.empty(max_rad, np.int64)
    n_p = 0
    n_q = 0
    ns = sample_times.shape[0]
    out_t = np.zeros(ns)
    out_nm = np.zeros(ns, np.int64)
    out_cells = np.zeros((ns, 102))
    out_mom = np.zeros((ns, 3))
    out_tally = np.zeros((ns, 4))  # initiator left, MCR propagations, integrals of N_Q and N_P + N_Q dt
    n_branch = 0
    q_dt = 0.0
    r_dt = 0.0
    cells = np.zeros(102)
    mom = np.zeros(3)
    t = 0.0
    k = 0
    events = 0
    stopped = False
    overflow = False
    while True:
        a_prop = kp * n_m * n_p
        a_bb = kbb * n_p
        a_pt = kpt * n_m * n_q
        a_trm = ktrm * n_m * n_p
        a_trs = ktrs * n_s * n_p
        a_tss = ktss * n_p * (n_p - 1)
        a_tst = 2.0 * ktst * n_p * n_q
        a_ttt = ktt * n_q * (n_q - 1)
        a_dec = kd * n_i
        a0 = a_prop + a_bb + a_pt + a_trm + a_trs + a_tss + a_tst + a_ttt + a_dec
        t_next = t - math.log(1.0 - np.random.random()) / a0 if a0 > 0.0 else np.inf
        while k < ns and t_next > sample_times[k]:
            part = sample_times[k] - t
            _record(k, sample_times[k], n_m, cells, mom, out_t, out_nm, out_cells, out_mom, out_tally,
                    n_i, n_branch, q_dt + part * n_q, r_dt + part * (n_p + n_q))
            k += 1
        if k == ns:
            break
        q_dt += (t_next - t) * n_q  # counting only: no random number is drawn for it
        r_dt += (t_next - t) * (n_p + n_q)
        t = t_next
        events += 1
        r = np.random.random() * a0
        if r < a_prop:  # SPR propagation: the uniform r also picks the radical
            i = int(r / (kp * n_m))
            if i >= n_p:
                i = n_p - 1
            plen[i] += 1
            n_m -= 1
        else:
            r -= a_prop
            if r < a_bb:  # backbiting: SPR -> MCR of the same length
                i = int(np.random.random() * n_p)
                qlen[n_q] = plen[i]
                n_q += 1
                n_p -= 1
                plen[i] = plen[n_p]
            elif r < a_bb + a_pt:  # MCR propagation: MCR(n) -> SPR(n+1), a branch point
                n_branch += 1
                j = int(np.random.random() * n_q)
                plen[n_p] = qlen[j] + 1
                n_p += 1
                n_q -= 1
                qlen[j] = qlen[n_q]
                n_m -= 1
            elif r < a_bb + a_pt + a_trm + a_trs:  # transfer to monomer or solvent
                i = int(np.random.random() * n_p)
                _bury(plen[i], cells, lookup, mom)
                plen[i] = 1
                n_m -= 1
                if r >= a_bb + a_pt + a_trm:
                    n_s -= 1
            elif r < a_bb + a_pt + a_trm + a_trs + a_tss:  # SPR + SPR
                i = int(np.random.random() * n_p)
                j = int(np.random.random() * (n_p - 1))
                if j >= i:
                    j += 1
                li = plen[i]
                lj = plen[j]
                if np.random.random() < dss:
                    _bury(li, cells, lookup, mom)
                    _bury(lj, cells, lookup, mom)
                else:
                    _bury(li + lj, cells, lookup, mom)
                hi = max(i, j)
                lo = min(i, j)
                n_p -= 1
                plen[hi] = plen[n_p]
                n_p -= 1
                plen[lo] = plen[n_p]
            elif r < a_bb + a_pt + a_trm + a_trs + a_tss + a_tst:  # SPR + MCR
                i = int(np.random.random() * n_p)
                j = int(np.random.random() * n_q)
                li = plen[i]
                lj = qlen[j]
                if np.random.random() < dst:
                    _bury(li, cells, lookup, mom)
                    _bury(lj, cells, lookup, mom)
                else:
                    _bury(li + lj, cells, lookup, mom)
                n_p -= 1
                plen[i] = plen[n_p]
                n_q -= 1
                qlen[j] = qlen[n_q]
            elif r < a_bb + a_pt + a_trm + a_trs + a_tss + a_tst + a_ttt:  # MCR + MCR
                i = int(np.random.random() * n_q)
                j = int(np.random.random() * (n_q - 1))
                if j >= i:
                    j += 1
                li = qlen[i]
                lj = qlen[j]
                if np.random.random() < dtt:
                    _bury(li, cells, lookup, mom)
                    _bury(lj, cells, lookup, mom)
                else:
                    _bury(li + lj, cells, lookup, mom)
                hi = max(i, j)
                lo = min(i, j)
                n_q -= 1
                qlen[hi] = qlen[n_q]
                n_q -= 1
                qlen[lo] = qlen[n_q]
            else:  # AIBN decomposition; each primary radical starts a chain with probability f
                n_i -= 1
                for _ in range(2):
                    if np.random.random() < f:
                        if n_p >= max_rad:
                            overflow = True
                        else:
                            plen[n_p] = 1
                            n_p += 1
                            n_m -= 1
        if n_p + n_q >= max_rad - 2:
            overflow = True
        if overflow:
            break
        if n_m <= n_m_stop:
            _record(k, t, n_m, cells, mom, out_t, out_nm, out_cells, out_mom, out_tally,
                    n_i, n_branch, q_dt, r_dt)
            k += 1
            stopped = True
            break
    return out_t[:k], out_nm[:k], out_cells[:k], out_mom[:k], out_tally[:k], events, stopped, overflow


def initial_radicals(k: RateConstants, recipe: Recipe) -> float:
    """Quasi-steady radical concentration (SPR + MCR, mol/L) at t = 0, by fixed-point iteration."""
    ri = 2.0 * k.f * k.kd * recipe.cAIBN_0
    m = recipe.cBA_0
    ratio = k.kbb / (k.kpt * m)  # [Q]/[P]
    p = 0.0
    for _ in range(200):
        p = math.sqrt(ri / (2 * k.ktss + 4 * k.ktst * ratio + 2 * k.ktt * ratio**2))
        ratio = k.kbb / (k.kpt * m + 2 * k.ktst * p + 2 * k.ktt * ratio * p)
    return p * (1.0 + ratio)


def control_volume(recipe: Recipe, params: KineticParameters = DEFAULT_PARAMETERS,
                   n_radicals: float = N_RADICALS, min_chains: float = MIN_CHAINS) -> float:
    """Control volume (L), rounded to 3 significant digits so molecule counts are reproducible."""
    vol = n_radicals / (initial_radicals(params.at(recipe.temp), recipe) * N_AVOGADRO)
    if min_chains > 0:
        first = run_ode(recipe, params, with_mmd=False, sample_times=SAMPLE_TIMES[:1])
        chains = first.info["polymer_units"][0] * M_BA / first.Mn[0]  # lambda0 at 300 s, mol/L
        vol = max(vol, min_chains / (chains * N_AVOGADRO))
    return float(f"{vol:.3g}")


def run_kmc(recipe: Recipe, params: KineticParameters = DEFAULT_PARAMETERS, seed: int = 0,
            n_radicals: float = N_RADICALS, min_chains: float = MIN_CHAINS, x_stop: float = X_STOP,
            sample_times: np.ndarray = SAMPLE_TIMES) -> Simulation:
    """Simulate one recipe stochastically; same sampling and stopping rule as the ODE engine."""
    if not 0 <= int(seed) < 2**32 or int(seed) != seed:
        raise ValueError(f"the kMC seed must be an integer from 0 to 2**32 - 1, got {seed}")
    k = params.at(recipe.temp)
    if k.kbeta > 0:
        raise NotImplementedError("beta-scission (kbeta > 0) is an option of the deterministic engine only")
    vol = control_volume(recipe, params, n_radicals, min_chains)
    na_v = N_AVOGADRO * vol
    n_m0 = int(round(recipe.cBA_0 * na_v))
    n_i0 = int(round(recipe.cAIBN_0 * na_v))
    n_s0 = int(round(recipe.solvent * na_v))
    n_m_stop = int(math.floor((1.0 - x_stop) * n_m0))
    lookup = bin_lookup(_LOOKUP_MAX)
    t, nm, cells, mom, tally, events, stopped, overflow = _gillespie(
        n_i0, n_m0, n_s0, k.kd, k.f, k.kp / na_v, k.kbb, k.kpt / na_v, k.ktss / na_v, k.ktst / na_v,
        k.ktt / na_v, k.disprop_ss, k.disprop_st, k.disprop_tt, k.ktrM / na_v, k.ktrS / na_v,
        np.asarray(sample_times, dtype=float), n_m_stop, int(seed), lookup,
        int(100 * initial_radicals(k, recipe) * na_v + 2000))
    if overflow:
        raise RuntimeError(f"kMC radical arrays overflowed for {recipe}; raise max_rad")
    conversion = 1.0 - nm / n_m0
    q_dt, r_dt = np.diff(tally[:, 2], prepend=0.0), np.diff(tally[:, 3], prepend=0.0)
    return Simulation(
        recipe=recipe, engine="kmc", time=t, conversion=conversion, cBA=recipe.cBA_0 * nm / n_m0,
        Mn=M_BA * mom[:, 1] / mom[:, 0], Mw=M_BA * mom[:, 2] / mom[:, 1], mmd=normalise(cells),
        stopped=bool(stopped), cAIBN=tally[:, 0] / na_v,
        branching=100.0 * tally[:, 1] / np.maximum(n_m0 - nm, 1),
        midchain_fraction=q_dt / np.maximum(r_dt, 1e-300),
        info={"events": int(events), "volume_L": vol, "n_monomer_0": n_m0, "seed": int(seed),
              "n_radicals": n_radicals, "polymer_units": mom[:, 1] / na_v,
              "mass_inside_grid": inside_fraction(cells)})
