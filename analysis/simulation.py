"""What a simulation returns (one run of one recipe, sampled), and how two runs are compared."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .design import SAMPLE_TIMES
from .kinetics import Recipe
from .mmd import LOGM, l1_distance


@dataclass
class Simulation:
    """Samples of one batch run: one entry per sampling time (and at the stop, if it came first)."""

    recipe: Recipe
    engine: str
    time: np.ndarray  # s
    conversion: np.ndarray  # 1 - cBA/cBA_0
    cBA: np.ndarray  # mol/L, remaining monomer
    Mn: np.ndarray  # g/mol, dead polymer
    Mw: np.ndarray  # g/mol
    mmd: np.ndarray  # (samples, 100): w(log M) on mmd.LOGM, unit area
    stopped: bool  # True if 90 % conversion was reached before T_END
    info: dict = field(default_factory=dict)
    cAIBN: np.ndarray | None = None  # mol/L, initiator left
    branching: np.ndarray | None = None  # mol %: branch points per 100 polymerized monomer units
    midchain_fraction: np.ndarray | None = None  # [Q] / ([P] + [Q]), averaged since the previous sample

    @property
    def t_stop(self) -> float:
        return float(self.time[-1])

    def to_dict(self) -> dict:
        """JSON-ready form (the `simulate --json` schema)."""
        r = self.recipe
        n = len(self.time)
        extra = [self.cAIBN, self.branching, self.midchain_fraction]
        extra = [np.full(n, np.nan) if e is None else e for e in extra]
        return {
            "recipe": {"cBA_0": r.cBA_0, "cAIBN_0": r.cAIBN_0, "temp": r.temp},
            "engine": self.engine,
            "stopped_at_90pct": self.stopped,
            "logM": [round(float(x), 6) for x in LOGM],
            "samples": [
                {"time": float(t), "conversion": float(x), "cBA_time": float(c), "Mn": float(mn),
                 "Mw": float(mw), "cAIBN_time": float(i), "branching": float(b),
                 "midchain_fraction": float(q), "mmd": [float(v) for v in w]}
                for t, x, c, mn, mw, i, b, q, w in zip(self.time, self.conversion, self.cBA, self.Mn, self.Mw,
                                                       *extra, self.mmd)
            ],
        }


def compare_runs(a: Simulation, b: Simulation) -> dict:
    """Largest differences between two runs of one recipe, over the samples both have.

    Samples on the 300 s grid are matched by time; if both runs stopped at 90 % conversion, their stop
    samples are matched too (same conversion, slightly different times).
    """
    pairs = [(i, j) for i, ta in enumerate(a.time) for j, tb in enumerate(b.time)
             if ta == tb and ta in SAMPLE_TIMES]
    if a.stopped and b.stopped:
        pairs.append((len(a.time) - 1, len(b.time) - 1))
    ia, ib = np.array([p[0] for p in pairs], dtype=int), np.array([p[1] for p in pairs], dtype=int)
    return {
        "samples": len(pairs),
        "conversion": float(np.max(np.abs(a.conversion[ia] - b.conversion[ib]))),
        "Mn_rel": float(np.max(np.abs(a.Mn[ia] / b.Mn[ib] - 1.0))),
        "Mw_rel": float(np.max(np.abs(a.Mw[ia] / b.Mw[ib] - 1.0))),
        "mmd_l1": float(np.max(l1_distance(a.mmd[ia], b.mmd[ib]))),
        "stopped": (a.stopped, b.stopped),
        "t_stop": (a.t_stop, b.t_stop),
    }
