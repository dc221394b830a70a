"""Figures of the book.  Each function draws one figure and returns it; one seaborn theme for all.

Statistical figures (parity, counts per level, learning curves, coverage) are drawn with seaborn; curves
of distributions and simulations with matplotlib under the same theme.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .calibration import pit_values
from .design import STUDY_RANGES, TARGETS, UNITS
from .mmd import LOGM, MMD_COLUMNS

THEME = {"context": "notebook", "style": "whitegrid", "palette": "colorblind", "font_scale": 0.85}
WIDE = (11, 3.4)  # a row of four panels
SINGLE = (6.5, 3.8)


def use_theme() -> None:
    """The book's one figure style (called on import of this module)."""
    sns.set_theme(**THEME, rc={"figure.dpi": 100, "savefig.bbox": "tight", "legend.fontsize": 7,
                               "axes.titlesize": 10})


use_theme()


def mmd_over_time(rows: pd.DataFrame, title: str = ""):
    """w(log M) of one recipe at each of its sampling times."""
    fig, ax = plt.subplots(figsize=SINGLE)
    colours = sns.color_palette("viridis", len(rows))
    for colour, (_, row) in zip(colours, rows.sort_values("time").iterrows()):
        ax.plot(LOGM, row[MMD_COLUMNS].to_numpy(float), color=colour, lw=1.2, label=f"{row.time:.0f} s")
    ax.set(xlabel="log10 M (g/mol)", ylabel="w(log M)", title=title)
    ax.legend(ncol=2, title="time")
    fig.tight_layout()
    return fig


def engine_comparison(pairs: list, which: tuple[int, ...] = (0, 4)):
    """MMDs of the two engines (lines: deterministic, dots: kMC) for some recipes of the agreement table,
    at 300 s, 1800 s and the last sample."""
    fig, axes = plt.subplots(1, len(which), figsize=(5.5 * len(which), 3.6))
    for ax, (kmc, ode) in zip(np.atleast_1d(axes), [pairs[k] for k in which]):
        for i, colour in zip([0, 5, len(ode.time) - 1], sns.color_palette(n_colors=3)):
            ax.plot(LOGM, ode.mmd[i], color=colour, label=f"{ode.time[i]:.0f} s")
            ax.plot(LOGM, kmc.mmd[min(i, len(kmc.time) - 1)], ".", ms=3, color=colour)
        r = ode.recipe
        ax.set(title=f"{r.cBA_0} mol/L BA, {r.cAIBN_0} mol/L AIBN, {r.temp:g} °C", xlabel="log10 M",
               ylabel="w(log M)")
        ax.legend()
    fig.tight_layout()
    return fig


def conversion_curves(frame: pd.DataFrame, cAIBN_0: float):
    """Conversion against time for every temperature (colour) and cBA_0 (panel), one initiator level."""
    sub = frame[np.isclose(frame.cAIBN_0, cAIBN_0)]
    levels = sorted(sub.cBA_0.unique())
    fig, axes = plt.subplots(1, len(levels), figsize=(1.85 * len(levels), 3.2), sharey=True)
    temps = sorted(sub.temp.unique())
    colours = sns.color_palette("plasma", len(temps))
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


def stops_bars(tables: dict[str, pd.DataFrame]):
    """The study's three coverage figures: recipes reaching 90 % per level of temp, cAIBN_0, cBA_0."""
    fig, axes = plt.subplots(1, len(tables), figsize=(3.6 * len(tables), 3.2))
    for ax, (factor, table) in zip(np.atleast_1d(axes), tables.items()):
        long = pd.DataFrame({"level": [f"{v:g}" for v in table.index], "recipes": table.recipes,
                             "reach 90 % before 3600 s": table.reach_90})
        sns.barplot(long, x="level", y="recipes", color="lightgrey", label="recipes", ax=ax)
        sns.barplot(long, x="level", y="reach 90 % before 3600 s", color="tab:red",
                    label="reach 90 % before 3600 s", ax=ax)
        ax.set(xlabel=factor, ylabel="recipes")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        if ax is not np.atleast_1d(axes)[0]:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


def parity(y_true: np.ndarray, y_pred: np.ndarray, title: str = ""):
    """Predicted against real value for each of the four targets."""
    fig, axes = plt.subplots(1, 4, figsize=WIDE)
    for j, (ax, name) in enumerate(zip(axes, TARGETS)):
        sns.scatterplot(x=y_true[:, j], y=y_pred[:, j], s=8, alpha=0.4, linewidth=0, ax=ax)
        lo, hi = y_true[:, j].min(), y_true[:, j].max()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(xlabel=f"real {name} ({UNITS[name]})", ylabel="predicted", title=name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def importance_bars(series: pd.Series, title: str = ""):
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    sns.barplot(x=series.to_numpy(), y=list(series.index), orient="h", color=sns.color_palette()[0], ax=ax)
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
    fig, ax = plt.subplots(figsize=SINGLE)
    text = "\n".join(f"{k}: real {real[k]:.4g}, predicted {predicted[k]:.4g} {UNITS[k]}" for k in TARGETS)
    ax.plot(LOGM, w, color="k")
    ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=8, family="monospace")
    ax.set(xlabel="log10 M (g/mol)", ylabel="w(log M)")
    fig.tight_layout()
    return fig


def bound_curves(tables: dict[str, pd.DataFrame], achieved: dict[str, dict] | None = None):
    """Best reachable R² per target against the noise level (x kMC), one line per observable set;
    `achieved` marks models' R² on unseen recipes at the kMC noise (x = 1)."""
    fig, axes = plt.subplots(1, 4, figsize=WIDE, sharey=True)
    for ax, name in zip(axes, TARGETS):
        for (label, table), style in zip(tables.items(), ("-o", "--s")):
            ax.semilogx(table.index, table[name], style, ms=3, label=label)
        for label, r2 in (achieved or {}).items():
            ax.plot([1.0], [r2[name]], "*", ms=9, label=label)
        ax.axhline(0.95, color="grey", lw=0.6, ls=":")
        ax.set(title=name, xlabel="noise / kMC noise", ylim=(-0.05, 1.02))
    axes[0].set_ylabel("best reachable R²")
    axes[-1].legend(loc="lower left")
    fig.tight_layout()
    return fig


def mmd_overlay(runs: dict[str, np.ndarray], reference: tuple[str, np.ndarray] | None = None):
    """Several MMDs on one axis (labels in the legend), with an optional reference drawn thick."""
    fig, ax = plt.subplots(figsize=SINGLE)
    if reference is not None:
        ax.plot(LOGM, reference[1], "k", lw=2.5, alpha=0.6, label=reference[0])
    for (label, w), style in zip(runs.items(), ["-", "--", ":", "-."] * 3):
        ax.plot(LOGM, w, style, lw=1.4, label=label)
    ax.set(xlabel="log10 M (g/mol)", ylabel="w(log M)")
    ax.legend()
    fig.tight_layout()
    return fig


def learning_curves(table: pd.DataFrame):
    """R² on unseen recipes against the number of training recipes (mean and range over the folds)."""
    long = table.melt(id_vars=["fold", "fraction", "training recipes"], value_vars=TARGETS + ["global"],
                      var_name="target", value_name="R²")
    fig, ax = plt.subplots(figsize=SINGLE)
    sns.lineplot(long, x="training recipes", y="R²", hue="target", marker="o", errorbar=("pi", 100), ax=ax)
    ax.set(xlabel="training recipes", ylabel="R² on unseen recipes", ylim=(0, 1.02))
    fig.tight_layout()
    return fig


def interval_widths(low: pd.DataFrame, high: pd.DataFrame):
    """Distribution of the intervals' widths per target, as a fraction of the study's range."""
    width = pd.DataFrame({t: (high[t] - low[t]) / np.diff(STUDY_RANGES[t])[0] for t in TARGETS})
    long = width.melt(var_name="target", value_name="width / range")
    fig, ax = plt.subplots(figsize=SINGLE)
    sns.boxplot(long, x="target", y="width / range", hue="target", fliersize=1, ax=ax)
    ax.set(xlabel="", ylabel="90 % interval width / range", ylim=(0, 1.05))
    fig.tight_layout()
    return fig


def valley_posterior(post, truth: dict | None = None):
    """The inversion's posterior along the valley: the temperature's marginal density (the profile's
    temperatures marked), and the initiator and time of the recipes along it (truth marked if known)."""
    fig, axes = plt.subplots(1, 3, figsize=WIDE)
    x = np.linspace(post.cells.min(), post.cells.max(), 801)
    density = post.density("temp", x)
    axes[0].plot(x, density)
    axes[0].fill_between(x, density, alpha=0.3)
    grid = np.unique(post.temps)
    axes[0].plot(grid, post.density("temp", grid), "o", ms=3, color="C0")
    axes[0].set(xlabel="temp (°C)", ylabel="posterior density (1/°C)")
    branch = np.zeros(len(post.temps), int) if post.branch is None else post.branch
    for ax, j, name in ((axes[1], 1, "cAIBN_0"), (axes[2], 3, "time")):
        for b in np.unique(branch):  # one line per minimum of the misfit the walk followed
            ax.plot(post.temps[branch == b], post.centres[branch == b, j], "o-", ms=3)
        ax.set(xlabel="temp (°C)", ylabel=f"{name} ({UNITS[name]}) on the valley")
    for ax, name in zip(axes, ("temp", "cAIBN_0", "time")):
        if truth is not None:
            if name == "temp":
                ax.axvline(truth["temp"], color="k", ls=":", lw=1, label="truth")
                ax.legend()
            else:
                ax.plot([truth["temp"]], [truth[name]], "k*", ms=9)
    fig.tight_layout()
    return fig


def branching_against_experiment(curves: pd.DataFrame, points: list[tuple[str, float, float]]):
    """Branching against conversion, our runs (lines, one per BA content) and the measured points."""
    fig, ax = plt.subplots(figsize=SINGLE)
    colours = dict(zip(sorted(curves["wt %"].unique()), sns.color_palette("colorblind")))
    for wt, run in curves.groupby("wt %"):
        ax.plot(run.conversion, run.branching, color=colours[wt], lw=1.4, label=f"ours, {wt:g} wt % BA")
    markers = {">10": ("o", "black"), "10": ("s", colours.get(10, "grey")),
               "3": ("^", colours.get(3, "grey"))}
    for wt, x, value in points:
        marker, colour = markers[wt]
        ax.plot(x, value, marker=marker, color=colour, ls="none", ms=8, mec="black",
                label=f"measured, {wt} wt %")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), ncol=2)
    ax.set(xlabel="conversion", ylabel="branches (mol %)", ylim=(0, 8), xlim=(0, 1))
    fig.tight_layout()
    return fig


def tornado(ratios: pd.DataFrame, outcomes: list[str] | None = None):
    """Each outcome (panels) relative to the default parameters when each parameter (rows) moves to its
    low or high end, on a log2 axis (bars start at the default, 1)."""
    outcomes = outcomes or list(ratios.columns)
    params = list(dict.fromkeys(ratios.index.get_level_values(0)))
    fig, axes = plt.subplots(1, len(outcomes), figsize=(1.9 * len(outcomes), 0.32 * len(params) + 1.3),
                             sharey=True)
    low, high = sns.color_palette("colorblind")[:2]
    y = np.arange(len(params))
    for ax, outcome in zip(np.atleast_1d(axes), outcomes):
        for side, colour, shift in (("low", low, -0.18), ("high", high, 0.18)):
            values = np.log2([ratios.loc[(p, side), outcome] for p in params])
            ax.barh(y + shift, values, height=0.34, color=colour, label=f"{side} end")
        ax.axvline(0, color="black", lw=0.8)
        span = max(1.0, np.ceil(np.nanmax(np.abs(np.log2(ratios[outcome].to_numpy(float))))))
        ticks = np.arange(-span, span + 1, 2 if span > 2 else 1)  # every other power of 2 on wide axes
        ax.set_xticks(ticks, [f"{2.0 ** t:g}" for t in ticks])
        ax.set(title=outcome, xlabel="× default", yticks=y, yticklabels=params)
        ax.title.set_fontsize(8)
    np.atleast_1d(axes)[0].invert_yaxis()
    np.atleast_1d(axes)[0].legend(loc="lower left", fontsize=6)
    fig.tight_layout()
    return fig


def what_to_measure(bounds: pd.DataFrame, achieved: pd.DataFrame | None = None, level: float = 0.95,
                    ceiling: pd.DataFrame | None = None):
    """Per target, the best reachable R² of every observation set (rows) under each noise profile
    (`bounds` indexed by (noise, set)), the R² a model reached (`achieved`, indexed by set) and the sound
    ceiling under `typical` (`ceiling`, indexed by set)."""
    sets = list(dict.fromkeys(bounds.index.get_level_values(1)))
    fig, axes = plt.subplots(1, 4, figsize=(11, 0.32 * len(sets) + 1.4), sharey=True)
    y = np.arange(len(sets))
    markers = dict(zip(dict.fromkeys(bounds.index.get_level_values(0)), ("o", "s", "^", "D")))
    for ax, name in zip(axes, TARGETS):
        for noise, marker in markers.items():
            ax.plot(bounds.loc[noise].reindex(sets)[name].clip(lower=-0.1), y, marker, ms=4, ls="none",
                    label=f"bound, {noise}")
        if achieved is not None:
            ax.plot(achieved.reindex(sets)[name].clip(lower=-0.1), y, "x", ms=6, color="black",
                    label="model, typical")
        if ceiling is not None:
            ax.plot(ceiling.reindex(sets)[name], y, "|", ms=9, mew=1.5, color="crimson",
                    label="sound ceiling, typical")
        ax.axvline(level, color="grey", lw=0.6, ls=":")
        ax.set(title=name, xlim=(-0.12, 1.03), xlabel="R²")
    axes[0].set_yticks(y, sets)
    axes[0].invert_yaxis()
    axes[-1].legend(loc="lower left", fontsize=6)
    fig.tight_layout()
    return fig


def pit_histograms(checked: dict[str, tuple[pd.DataFrame, pd.DataFrame]], bins: int = 10):
    """Per target, the histogram of the posterior's CDF at the truth (`calibration.pit_values`) of checked
    rows, {observation set: (rows, inversion table)}, stacked by set; the dashed line is what a calibrated
    posterior gives on average."""
    fig, axes = plt.subplots(1, len(TARGETS), figsize=WIDE, sharey=True)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for ax, t in zip(axes, TARGETS):
        values = [pit_values(rows, inverted, t) for rows, inverted in checked.values()]
        ax.hist(values, bins=edges, stacked=True, label=list(checked), edgecolor="white")
        ax.axhline(sum(len(v) for v in values) / bins, color="k", ls="--", lw=1)
        ax.set(xlabel=f"posterior CDF at the true {t}", xlim=(0, 1))
    axes[0].set_ylabel("rows")
    fig.tight_layout()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="observed", loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=len(labels))
    return fig
