"""Deterministic engine: stiff ODEs for I, M, S, SPR, MCR and the dead-polymer moments.

The full MMD comes from the instantaneous-distribution method.  With chain-length-independent
coefficients and quasi-steady radicals, a chain end grows from n to n+1 with one probability p (an SPR
either propagates, or backbites and the MCR then propagates), so dead chains formed at an instant are a
Flory distribution (transfer, disproportionation) plus the sum of two Flory lengths (combination), both
with the same p.  The MMD of a sample is the time integral of their mass formation rates, binned on the
grid cell by cell with closed-form cumulative sums, so it is exact up to the quadrature.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit
from scipy.integrate import ode
from scipy.integrate._ivp.lsoda import LsodaDenseOutput
from scipy.optimize import brentq

from .design import SAMPLE_TIMES, X_STOP
from .kinetics import DEFAULT_PARAMETERS, M_BA, KineticParameters, RateConstants, Recipe
from .mmd import DLOGM, cell_masses, inside_fraction, normalise
from .simulation import Simulation

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(24)
EPS = np.finfo(float).eps
# absolute tolerances for I, M, S, P, Q, lambda0, lambda1, lambda2 at the default rtol (1e-6); a
# tighter rtol scales them down in proportion
_ATOL = np.array([1e-13, 1e-11, 1e-11, 1e-18, 1e-17, 1e-14, 1e-11, 1e-7])
DEFAULT_RTOL = 1e-6
# A run needs a few thousand right-hand-side evaluations (tens of thousands at rtol 1e-12); past these
# budgets something is wrong with the recipe or the parameters, and the run stops with a named error.
MAX_RHS_CALLS = 500_000
MAX_SECONDS = 120.0


class SolverBudgetError(RuntimeError):
    """A run that exceeded its evaluation or time budget."""


@njit(cache=True)
def _rhs_kernel(y: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The right-hand side, compiled: the same operations in the same order as plain Python, so the same
    results to the last bit, at a fraction of the cost per call (a run makes hundreds)."""
    f2kd, kd, kp, kbb, kpt, ktrM, ktrS = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    ktss, ktst, ktt, kbeta, dss, dst, dtt = c[7], c[8], c[9], c[10], c[11], c[12], c[13]
    i, m, s, p, q = y[0], y[1], y[2], y[3], y[4]
    ri = f2kd * i
    tp = 2.0 * ktss * p + 2.0 * ktst * q  # termination frequency of one SPR
    tq = 2.0 * ktst * p + 2.0 * ktt * q + kbeta  # frequency with which one MCR's chain ends
    trp = ktrM * m + ktrS * s  # transfer frequency of one SPR
    ess, est, ett = ktss * p * p, 2.0 * ktst * p * q, ktt * q * q  # termination events
    stop = (kbb * tq / (kpt * m + tq) + tp + trp) / (kp * m + kbb + tp + trp)  # 1 - p
    stop = max(stop, 1e-100)  # no radicals and no transfer (ideal kinetics at t = 0): rates are 0
    rd1 = trp * p + kbeta * q + 2.0 * (dss * ess + dst * est + dtt * ett)  # one radical's length
    rd2 = (1 - dss) * ess + (1 - dst) * est + (1 - dtt) * ett  # chains from combination
    out = np.empty(8)
    out[0] = -kd * i
    out[1] = -(kp * p + kpt * q + ktrM * p) * m - ri - ktrS * p * s
    out[2] = -ktrS * p * s
    out[3] = ri - kbb * p + kpt * q * m - 2.0 * ess - est + kbeta * q
    out[4] = kbb * p - kpt * q * m - est - 2.0 * ett - kbeta * q
    out[5] = rd1 + rd2
    out[6] = (rd1 + 2.0 * rd2) / stop - kbeta * q
    out[7] = (rd1 * (2.0 - stop) + rd2 * (6.0 - 2.0 * stop)) / (stop * stop) + kbeta * q * (1.0 - 2.0 / stop)
    return out


@njit(cache=True)
def _rhs_t(t: float, y: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The right-hand side as LSODA calls it, f(t, y, c): compiled, so that a call costs no Python frame."""
    return _rhs_kernel(y, c)


def _coefficients(k: RateConstants) -> np.ndarray:
    """The rate coefficients in `_rhs_kernel`'s order."""
    return np.array([2.0 * k.f * k.kd, k.kd, k.kp, k.kbb, k.kpt, k.ktrM, k.ktrS, k.ktss, k.ktst, k.ktt,
                     k.kbeta, k.disprop_ss, k.disprop_st, k.disprop_tt])


def _rhs(k: RateConstants):
    """d/dt of I, M, S, P (SPR), Q (MCR) and the dead-polymer moments at the coefficients `k`.

    Beta-scission: the dead chain hands its last unit to the new radical (n -> n - 1 in the moments; the
    grid cells neglect this one-unit shift, off by default)."""
    c = _coefficients(k)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        return _rhs_kernel(np.asarray(y, dtype=float), c)

    return rhs


def _formation(k: RateConstants, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stop probability 1-p and mass formation rates (monomer units) of the two distributions."""
    i, m, s, p, q = y[:5]
    tp = 2.0 * k.ktss * p + 2.0 * k.ktst * q
    tq = 2.0 * k.ktst * p + 2.0 * k.ktt * q + k.kbeta
    trp = k.ktrM * m + k.ktrS * s
    ess, est, ett = k.ktss * p * p, 2.0 * k.ktst * p * q, k.ktt * q * q
    stop = (k.kbb * tq / (k.kpt * m + tq) + tp + trp) / (k.kp * m + k.kbb + tp + trp)
    stop = np.maximum(stop, 1e-100)
    rd1 = trp * p + k.kbeta * q + 2.0 * (k.disprop_ss * ess + k.disprop_st * est + k.disprop_tt * ett)
    rd2 = (1 - k.disprop_ss) * ess + (1 - k.disprop_st) * est + (1 - k.disprop_tt) * ett
    return stop, rd1 / stop, 2.0 * rd2 / stop


def _cell_rates(stop: np.ndarray, mass1: np.ndarray, mass2: np.ndarray) -> np.ndarray:
    """Mass formation rate in each of the 102 cells, for every quadrature node (nodes x 102)."""
    return mass1[:, None] * cell_masses(stop, "flory") + mass2[:, None] * cell_masses(stop, "schulz2")


def _quadrature(a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [a, b], split geometrically near t = 0 (radical build-up)."""
    cuts = [a, b] if a > 0 else [0.0, 1.0, 10.0, 60.0, b]
    cuts = [c for c in cuts if c <= b]
    if cuts[-1] != b:
        cuts.append(b)
    nodes, weights = [], []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        nodes.append(0.5 * (hi - lo) * _GL_NODES + 0.5 * (hi + lo))
        weights.append(0.5 * (hi - lo) * _GL_WEIGHTS)
    return np.concatenate(nodes), np.concatenate(weights)


class _StepInterpolant(LsodaDenseOutput):
    """scipy's LSODA dense output of one step (the same `_call_impl`), built without its per-step
    `np.arange`."""

    def __init__(self, t_old: float, t: float, h: float, order: int, yh: np.ndarray):
        self.t_old, self.t, self.t_min, self.t_max = t_old, t, min(t, t_old), max(t, t_old)
        self.h, self.yh, self.p = h, yh, _POWERS[order]


_POWERS = [np.arange(order + 1) for order in range(13)]  # LSODA's orders: up to 12 (Adams), 5 (BDF)


def _interpolant(n: int, t_old: float, t: float, h: float, order: int, h_last: float | None,
                 nordsieck: np.ndarray) -> _StepInterpolant:
    """A step's dense output from what LSODA left in its work array (scipy's `LSODA._dense_output_impl`):
    the Nordsieck history, its last column rescaled to this step's h when the order decreases next."""
    yh = np.reshape(nordsieck, (n, order + 1), order="F").copy()
    if h_last is not None:
        yh[:, -1] *= (h / h_last) ** order
    return _StepInterpolant(t_old, t, h, order, yh)


@njit(cache=True)
def _nordsieck_values(t: np.ndarray, segment: np.ndarray, t_step: np.ndarray, h: np.ndarray,
                      h_last: np.ndarray, order: np.ndarray, offset: np.ndarray, history: np.ndarray,
                      n: int) -> np.ndarray:
    """The solution at the times t (states x times), each from the Nordsieck history of its step
    (`segment`), as scipy's `LsodaDenseOutput` computes it: y = sum_p yh[:, p] ((t - t_step) / h)^p,
    the last column scaled by (h / h_last)^order where the order decreases next (h_last not NaN); the
    powers by `pow`, the sum in order over p."""
    out = np.empty((n, t.shape[0]))
    for i in range(t.shape[0]):
        k = segment[i]
        q, base = order[k], offset[k]
        scale = 1.0 if np.isnan(h_last[k]) else (h[k] / h_last[k]) ** float(q)
        x = (t[i] - t_step[k]) / h[k]
        for j in range(n):
            acc = 0.0
            for p in range(q + 1):
                coefficient = history[base + p * n + j]  # column p of the (n, q + 1) Fortran-order block
                if p == q:
                    coefficient *= scale
                acc += coefficient * x ** float(p)
            out[j, i] = acc
    return out


class _Solution:
    """The dense solution of a run: the steps chosen as scipy's `OdeSolution` chooses them (ascending,
    `alt_segment`: a time on a step's end belongs to the step after it), each evaluated from the Nordsieck
    history LSODA left after it (`_nordsieck_values`: `LsodaDenseOutput`'s formula, compiled, for all the
    times at once; the last bit of a sum may differ from scipy's, which BLAS computes and which itself
    depends on the CPU's kernels).  `steps` holds per step its end, h, the previous h (NaN unless the order
    decreases next), its order and its history."""

    def __init__(self, ts: np.ndarray, steps: list[tuple], n: int):
        self.ts, self.n = ts, n
        t_step, h, h_last, order, history = zip(*steps)
        self.t_step, self.h, self.h_last = np.array(t_step), np.array(h), np.array(h_last)
        self.order = np.array(order, dtype=np.int64)
        self.offset = np.concatenate([[0], np.cumsum((self.order + 1) * n)[:-1]]).astype(np.int64)
        self.history = np.concatenate(history)

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """The solution at the times `t` (1-D, any order): states x times."""
        t = np.asarray(t, dtype=float)
        segment = np.clip(np.searchsorted(self.ts, t, side="right") - 1, 0, len(self.order) - 1)
        return _nordsieck_values(t, segment, self.t_step, self.h, self.h_last, self.order, self.offset,
                                 self.history, self.n)


def _integrate(k: RateConstants, y0: list, t_end: float, rtol: float, atol: np.ndarray, m_stop: float,
               recipe: Recipe) -> tuple[_Solution, float | None, int]:
    """LSODA from 0 to t_end with a dense solution, stopped where the monomer falls to `m_stop`; also the
    number of right-hand-side evaluations.

    The same steps and root finding as `solve_ivp(..., method="LSODA", events=..., dense_output=True)`
    with a terminal event, to the last bit, and the same dense output up to the rounding of its sums
    (`tests/test_engines.py`): ODEPACK's LSODA driven one step at a time (itask 5, never past t_end) as
    scipy's `LSODA` class does, through the low-level routine that `scipy.integrate.ode` wraps, without
    the generic solver and event machinery around it, with the compiled right-hand side called by LSODA
    directly, and with the dense output evaluated from each step's Nordsieck history (`_Solution`).
    Past MAX_RHS_CALLS evaluations (LSODA's own count) or MAX_SECONDS it stops with SolverBudgetError."""
    deadline = time.monotonic() + MAX_SECONDS
    c = (_coefficients(k),)
    y = np.array(y0, dtype=float)
    n = len(y)
    solver = ode(_rhs_t)
    solver.set_integrator("lsoda", rtol=rtol, atol=np.asarray(atol, float), max_step=0.0, min_step=0.0,
                          first_step=0.0)
    solver.set_initial_value(y, 0.0)
    lsoda = solver._integrator  # noqa: SLF001 (scipy's LSODA class drives it the same way)
    runner, (rtol_, atol_, _, istate, rwork, iwork, jt) = lsoda.runner, lsoda.call_args
    doubles, ints = lsoda.state_doubles, lsoda.state_ints
    rwork[0] = t_end  # itask 5: tcrit = t_end
    ts, steps = [0.0], []  # per step: end, h, previous h, order, Nordsieck history
    t, g, t_stop = 0.0, y[1] - m_stop, None
    while t < t_end:
        t_old = t
        # scipy's `ode.run` for lsoda: (f, y, t, tout, rtol, atol, itask, istate, rwork, iwork, jac, jt,
        # f_params, tfirst, jac_params, state)
        y, t, istate = runner(_rhs_t, y, t, t_end, rtol_, atol_, 5, istate, rwork, iwork,
                              _no_jacobian, jt, c, 1, (), doubles, ints)
        if istate < 0:
            raise RuntimeError(f"ODE solver failed for {recipe}: LSODA's istate {istate}")
        istate = 2
        if iwork[11] > MAX_RHS_CALLS or time.monotonic() > deadline:
            raise SolverBudgetError(f"the deterministic engine did not finish {recipe} within "
                                    f"{MAX_RHS_CALLS} evaluations or {MAX_SECONDS:g} s")
        order = int(iwork[13])
        step = (t, rwork[11], rwork[10] if iwork[14] < order else np.nan, order,
                rwork[20:20 + (order + 1) * n].copy())
        g_new = y[1] - m_stop
        if g >= 0 >= g_new:  # monomer crossed the stop downwards in this step (solve_ivp's test)
            dense = _interpolant(n, t_old, *step[:2], order, None if np.isnan(step[2]) else step[2], step[4])
            t = brentq(lambda x, dense=dense: dense(x)[1] - m_stop, t_old, t, xtol=4 * EPS, rtol=4 * EPS)
            t_stop = float(t)
        if len(ts) == 1 or ts[-1] != t:  # a step of zero length is dropped, as scipy drops it
            ts.append(t)
            steps.append(step)
        if t_stop is not None:
            break
        g = g_new
    return _Solution(np.array(ts), steps, n), t_stop, int(iwork[11])


def _no_jacobian():
    return None


def run_ode(recipe: Recipe, params: KineticParameters = DEFAULT_PARAMETERS, rtol: float = DEFAULT_RTOL,
            with_mmd: bool = True, x_stop: float = X_STOP, sample_times: np.ndarray = SAMPLE_TIMES,
            with_rates: bool = False) -> Simulation:
    """Integrate one recipe; samples every 300 s and at the stop (90 % conversion) if it comes first.

    `rtol` is LSODA's relative tolerance (absolute tolerances follow it); derivatives by finite
    differences need a much tighter one than a single run (identifiability).  With `with_rates`,
    `info["rates"]` holds the exact time derivatives of the observables at each sample (samples x 105:
    d w(log M)/dt on the grid, then d ln cBA, d ln Mn, d ln Mw, d ln cAIBN, d ln branching / dt)."""
    k = params.at(recipe.temp)
    m0 = recipe.cBA_0
    y0 = [recipe.cAIBN_0, m0, recipe.solvent, 0.0, 0.0, 0.0, 0.0, 0.0]

    sol, t_stop, nfev = _integrate(k, y0, float(sample_times[-1]), rtol,
                                   _ATOL * (rtol / DEFAULT_RTOL) * max(m0, 1.0), (1.0 - x_stop) * m0, recipe)
    stopped = t_stop is not None
    t_end = t_stop if stopped else float(sample_times[-1])
    times = sample_times[sample_times < t_end - 1e-9]
    times = np.append(times, t_end) if stopped or not len(times) or times[-1] < t_end else times
    y = sol(times)
    if stopped:
        y[1, -1] = (1.0 - x_stop) * m0  # the event root, exact to the root-finder's tolerance
    lam0, lam1, lam2 = y[5], y[6], y[7]
    conversion = 1.0 - y[1] / m0
    cells, tally = _cells(k, sol, times) if with_mmd else (np.full((len(times), 102), np.nan),
                                                           np.full((len(times), 3), np.nan))
    mmd = normalise(cells) if with_mmd else cells[:, 1:-1]
    info = {"nfev": int(nfev), "polymer_units": lam1, "mass_inside_grid": inside_fraction(cells)}
    if with_rates and with_mmd:
        info["rates"] = _observable_rates(k, times, y, cells, tally[:, 0], m0)
    return Simulation(recipe=recipe, engine="ode", time=times, conversion=conversion, cBA=y[1],
                      Mn=M_BA * lam1 / lam0, Mw=M_BA * lam2 / lam1, mmd=mmd, stopped=stopped, info=info,
                      cAIBN=y[0], branching=100.0 * tally[:, 0] / (m0 - y[1]),
                      midchain_fraction=tally[:, 1] / tally[:, 2])


def _observable_rates(k: RateConstants, times: np.ndarray, y: np.ndarray, cells: np.ndarray,
                      branches: np.ndarray, m0: float) -> np.ndarray:
    """d/dt of w(log M) on the grid and of ln cBA, ln Mn, ln Mw, ln cAIBN and ln branching at the
    samples, from the right-hand side, the instantaneous formation rates of the grid cells
    (w = c / (sum c * DLOGM)) and of the branch points (kpt Q M; branching = 100 B / (m0 - M), with B the
    branch points formed so far, `branches`)."""
    rhs = _rhs(k)
    dy = np.array([rhs(t, y[:, i]) for i, t in enumerate(times)]).T
    c, dc = cells[:, 1:-1], _cell_rates(*_formation(k, y))[:, 1:-1]
    total, dtotal = c.sum(axis=1, keepdims=True), dc.sum(axis=1, keepdims=True)
    dw = (dc - c / total * dtotal) / (total * DLOGM)
    lam0, lam1, lam2 = y[5], y[6], y[7]
    branching = k.kpt * y[4] * y[1] / branches + dy[1] / (m0 - y[1])
    logs = np.column_stack([dy[1] / y[1], dy[6] / lam1 - dy[5] / lam0, dy[7] / lam2 - dy[6] / lam1,
                            dy[0] / y[0], branching])
    return np.hstack([dw, logs])


def _cells(k: RateConstants, sol: _Solution, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative polymer mass (monomer units, mol/L) in the 102 grid cells at each sample time, and
    per sample the branch points formed so far (mol/L: propagations of mid-chain radicals, kpt Q M) and
    the integrals of [Q] and [P] + [Q] over the interval since the previous sample (mol s/L)."""
    cells = np.zeros(102)
    branches = 0.0
    out, tally = [], []
    t_prev = 0.0
    for t in times:
        nodes, weights = _quadrature(t_prev, float(t))
        y = sol(nodes)
        stop, mass1, mass2 = _formation(k, y)
        cells = cells + weights @ _cell_rates(stop, mass1, mass2)
        branches += weights @ (k.kpt * y[4] * y[1])
        out.append(cells.copy())
        tally.append((branches, weights @ y[4], weights @ (y[3] + y[4])))
        t_prev = float(t)
    return np.array(out), np.array(tally)

