"""Figures of the book (matplotlib).  Each function draws one figure and returns it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .dataset import TARGETS
from .mmd import LOGM, MMD_COLUMNS

UNITS = {"cBA_0": "mol/L", "cAIBN_0": "mol/L", "temp": "°C", "time": "s"}


def mmd_over_time(rows: pd.DataFrame, title: str = ""):
    """w(log M) of one recipe at each of its sampling times."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = plt.cm.viridis(np.linspace(0, 1, len(rows)))
    for colour, (_, row) in zip(colours, rows.sort_values("time").iterrows()):
        ax.plot(LOGM, row[MMD_COLUMNS].to_numpy(float), color=colour, lw=1.2, label=f"{row.time:.0f} s")
    ax.set(xlabel="log10 M (g/mol)", ylabel="w(log M)", title=title)
    ax.legend(fontsize=7, ncol=2, title="time")
    fig.tight_layout()
    return fig


def conversion_curves(frame: pd.DataFrame, cAIBN_0: float):
    """Conversion against time for every temperature (colour) and cBA_0 (panel), one initiator level."""
    sub = frame[np.isclose(frame.cAIBN_0, cAIBN_0)]
    levels = sorted(sub.cBA_0.unique())
    fig, axes = plt.subplots(1, len(levels), figsize=(2.2 * len(levels), 3.2), sharey=True)
    temps = sorted(sub.temp.unique())
    colours = plt.cm.plasma(np.linspace(0, 0.9, len(temps)))
    for ax, c in zip(np.atleast_1d(axes), levels):
        for colour, t in zip(colours, temps):
            r = sub[np.isclose(sub.cBA_0, c) & (sub.temp == t)].sort_values("time")
            ax.plot(np.r_[0, r.time], np.r_[0, 1 - r.cBA_time / r.cBA_0], "o-", ms=2, color=colour,
                    label=f"{t:g} °C")
        ax.axhline(0.9, color="grey", ls=":", lw=0.8)
        ax.set(title=f"cBA_0 = {c:g}", xlabel="time (s)")
    np.atleast_1d(axes)[0].set_ylabel("conversion")
    np.atleast_1d(axes)[-1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def coverage_bars(tables: dict[str, pd.DataFrame]):
    """The study's three coverage figures: recipes reaching 90 % per level of temp, cAIBN_0, cBA_0."""
    fig, axes = plt.subplots(1, len(tables), figsize=(4 * len(tables), 3.2))
    for ax, (factor, table) in zip(np.atleast_1d(axes), tables.items()):
        labels = [f"{v:g}" for v in table.index]
        ax.bar(labels, table.recipes, color="lightgrey", label="recipes")
        ax.bar(labels, table.reach_90, color="tab:red", label="reach 90 % before 3600 s")
        ax.set(xlabel=factor, ylabel="recipes")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def parity(y_true: np.ndarray, y_pred: np.ndarray, title: str = ""):
    """Predicted against real value for each of the four targets."""
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    for j, (ax, name) in enumerate(zip(axes, TARGETS)):
        ax.scatter(y_true[:, j], y_pred[:, j], s=5, alpha=0.4)
        lo, hi = y_true[:, j].min(), y_true[:, j].max()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(xlabel=f"real {name} ({UNITS[name]})", ylabel="predicted", title=name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def importance_bars(series: pd.Series, title: str = ""):
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.barh(series.index[::-1], series.to_numpy()[::-1])
    ax.set(xlabel="impurity-based importance", title=title)
    fig.tight_layout()
    return fig


def loss_curves(history: dict):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(history["loss"], label="training")
    ax.semilogy(history["val_loss"], label="validation")
    best = int(np.argmin(history["val_loss"]))
    ax.axvline(best, color="grey", ls=":", lw=0.8, label=f"best epoch ({best + 1})")
    ax.set(xlabel="epoch", ylabel="MSE (scaled targets)")
    ax.legend()
    fig.tight_layout()
    return fig


def example_mmd(w: np.ndarray, real: dict, predicted: dict):
    """One MMD with its real and predicted recipe in the legend."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    text = "\n".join(f"{k}: real {real[k]:.4g}, predicted {predicted[k]:.4g} {UNITS[k]}" for k in TARGETS)
    ax.plot(LOGM, w, color="k")
    ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=8, family="monospace")
    ax.set(xlabel="log10 M (g/mol)", ylabel="w(log M)")
    fig.tight_layout()
    return fig


def inversion_fit(w: np.ndarray, w_inversion: np.ndarray, w_forest: np.ndarray):
    """An observed MMD and the re-simulated MMDs of the recipes found for it."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(LOGM, w, "k", lw=2, label="your MMD")
    ax.plot(LOGM, w_inversion, "--", label="re-simulated: inversion")
    ax.plot(LOGM, w_forest, ":", label="re-simulated: random forest")
    ax.set(xlabel="log10 M (g/mol)", ylabel="w(log M)")
    ax.legend()
    fig.tight_layout()
    return fig
