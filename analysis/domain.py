"""The model's domain: where the training data lie, and whether a new input is inside.

An inverse model interpolates between the recipes it was trained on.  A new observation is inside the
domain when (1) every feature lies within the training range, (2) its nearest training row, in
standardised feature space, is not farther than the distances that training rows have to their own
nearest neighbours (the 99th percentile of those), and (3) when it gives Mn or Mw with the MMD, they
agree with the averages of its own MMD as closely as in the training rows (a unit or calibration
mistake in one of them shows here, while it may stay inside the ranges).  All are reported, by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from .mmd import LOGM, MMD_COLUMNS, averages

MMD_SLACK = 0.02


@dataclass
class Verdict:
    """Whether one input lies in the training domain, and why not."""

    in_domain: bool
    outside_range: list[str]  # features outside the training min-max range
    neighbour_distance: float  # standardised distance to the nearest training row
    distance_limit: float  # 99th percentile of training rows' nearest-neighbour distances
    inconsistent: list[str] = field(default_factory=list)  # Mn/Mw that disagree with the MMD

    def reasons(self) -> list[str]:
        cells = [c for c in self.outside_range if c in MMD_COLUMNS]
        out = [f"{c} outside the training range" for c in self.outside_range if c not in cells]
        if len(cells) > 3:
            logm = LOGM[[MMD_COLUMNS.index(c) for c in cells]]
            out.append(f"the MMD is outside the training range in {len(cells)} cells "
                       f"(log M {logm.min():.2f} to {logm.max():.2f})")
        else:
            out += [f"{c} outside the training range" for c in cells]
        if self.neighbour_distance > self.distance_limit:
            out.append(f"nearest training row at distance {self.neighbour_distance:.2f} "
                       f"(training rows are within {self.distance_limit:.2f} of a neighbour)")
        return out + self.inconsistent


class Domain:
    """Training domain of a feature table (fitted on the training rows only)."""

    def __init__(self, train: pd.DataFrame, features: list[str], quantile: float = 0.99):
        self.features = list(features)
        x = train[self.features].to_numpy(float)
        self.low, self.high = x.min(axis=0), x.max(axis=0)
        self.scaler = StandardScaler().fit(x)
        z = self.scaler.transform(x)
        self.nn = NearestNeighbors(n_neighbors=2).fit(z)
        own = self.nn.kneighbors(z)[0][:, 1]  # distance to the nearest *other* row
        self.limit = float(np.quantile(own, quantile))
        self.averages = [c for c in ("Mn", "Mw") if c in self.features and set(MMD_COLUMNS) <= set(features)]
        self.average_limit = {c: max(0.05, 2.0 * float(np.abs(self._ratio(train, c) - 1).max()))
                              for c in self.averages}

    @staticmethod
    def _ratio(rows: pd.DataFrame, column: str) -> np.ndarray:
        """Given Mn (or Mw) over the one computed from the row's own MMD."""
        mn, mw = averages(rows[MMD_COLUMNS].to_numpy(float))
        return rows[column].to_numpy(float) / (mn if column == "Mn" else mw)

    def check(self, rows: pd.DataFrame, tolerance: float = 1e-9) -> list[Verdict]:
        """One verdict per row of `rows` (which must hold the domain's feature columns)."""
        missing = [c for c in self.features if c not in rows.columns]
        if missing:
            raise KeyError(f"input lacks the feature column(s) {missing[:5]}")
        x = rows[self.features].to_numpy(float)
        span = self.high - self.low
        slack = tolerance * np.maximum(span, 1.0)
        # an MMD cell is out of range only if it differs by more than MMD_SLACK (w units; the peak of
        # an MMD is about 1): the nearly empty cells at the ends of the grid differ by noise otherwise
        slack = np.where(np.isin(self.features, MMD_COLUMNS), np.maximum(slack, MMD_SLACK), slack)
        below = x < self.low - slack
        above = x > self.high + slack
        dist = self.nn.kneighbors(self.scaler.transform(x), n_neighbors=1)[0][:, 0]
        ratios = {c: self._ratio(rows, c) for c in self.averages}
        out = []
        for i in range(len(x)):
            bad = [c for c, lo, hi in zip(self.features, below[i], above[i]) if lo or hi]
            odd = [f"{c} is {ratios[c][i]:.2f} times the {c} of the MMD (training rows agree within "
                   f"{100 * self.average_limit[c]:.0f} %): check its unit or calibration"
                   for c in self.averages if abs(ratios[c][i] - 1) > self.average_limit[c]]
            inside = not bad and not odd and dist[i] <= self.limit
            out.append(Verdict(inside, bad, float(dist[i]), self.limit, odd))
        return out
