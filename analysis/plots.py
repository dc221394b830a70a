"""Figures of the book (matplotlib).  Each function draws one figure and returns it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .dataset import TARGETS
from .mmd import LOGM, MMD_COLUMNS
from .models import TARGET_RANGES

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


def bound_curves(tables: dict[str, pd.DataFrame], achieved: dict[str, dict] | None = None):
    """Best reachable R² per target against the noise level (x kMC), one line per observable set;
    `achieved` marks models' R² on unseen recipes at the kMC noise (x = 1)."""
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3), sharey=True)
    for ax, name in zip(axes, TARGETS):
        for (label, table), style in zip(tables.items(), ("-o", "--s")):
            ax.semilogx(table.index, table[name], style, ms=3, label=label)
        for label, r2 in (achieved or {}).items():
            ax.plot([1.0], [r2[name]], "*", ms=9, label=label)
        ax.axhline(0.95, color="grey", lw=0.6, ls=":")
        ax.set(title=name, xlabel="noise / kMC noise", ylim=(-0.05, 1.02))
    axes[0].set_ylabel("best reachable R²")
    axes[-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def uncertainty_map(frame: pd.DataFrame, sd: np.ndarray, target: str):
    """Median posterior standard deviation of one target (as % of its range) over the design's
    temperature x initiator levels (median over cBA_0 and time)."""
    lo, hi = TARGET_RANGES[target]
    table = (pd.DataFrame({"temp": frame.temp, "cAIBN_0": frame.cAIBN_0, "sd": 100 * sd / (hi - lo)})
             .groupby(["cAIBN_0", "temp"]).sd.median().unstack())
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    im = ax.imshow(table.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(table.columns)), [f"{t:g}" for t in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{c:g}" for c in table.index])
    ax.set(xlabel="temp (°C)", ylabel="cAIBN_0 (mol/L)",
           title=f"best possible sd of {target}, % of its range")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def mmd_overlay(runs: dict[str, np.ndarray], reference: tuple[str, np.ndarray] | None = None):
    """Several MMDs on one axis (labels in the legend), with an optional reference drawn thick."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    if reference is not None:
        ax.plot(LOGM, reference[1], "k", lw=2.5, alpha=0.6, label=reference[0])
    for (label, w), style in zip(runs.items(), ["-", "--", ":", "-."] * 3):
        ax.plot(LOGM, w, style, lw=1.4, label=label)
    ax.set(xlabel="log10 M (g/mol)", ylabel="w(log M)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def learning_curves(table: pd.DataFrame):
    """R² on unseen recipes against the number of training recipes (mean and range over the folds)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    recipes = table.groupby("fraction")["training recipes"].mean()
    for name in TARGETS + ["global"]:
        g = table.groupby("fraction")[name]
        ax.plot(recipes, g.mean(), "-o", ms=3, label=name, lw=2 if name == "global" else 1)
        ax.fill_between(recipes, g.min(), g.max(), alpha=0.15)
    ax.set(xlabel="training recipes", ylabel="R² on unseen recipes", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
