"""Controls next to the methods they control for: mean test accuracy with its t-interval per
method, at the level the summary was computed at (its ci_level: 1 - stats.alpha), and,
beside it, the three levels of teacher information for KD and for IG.

Left: controls are drawn in another colour and marker, on a hatched band, and labelled
'(control)', so no reader takes one for a method. Right: for each part, the aligned
method, its within-class shuffle and its across-class shuffle, left to right, joined by
a line: the first step is what image-specific knowledge adds, the second what the
class-level information adds.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from igkd.analysis.stats import level_label
from igkd.plots import save_figure

METHOD_STYLE = {"color": "tab:blue", "marker": "o", "mfc": "tab:blue"}
CONTROL_STYLE = {"color": "tab:red", "marker": "s", "mfc": "white"}
CONTROL_HATCH = {"facecolor": "none", "edgecolor": "tab:red", "alpha": 0.25, "hatch": "///", "lw": 0}
RUN_JITTER = 0.12  # vertical spread of the single-run dots, in rows
LEVEL_COLORS = {"KD": "tab:purple", "IG": "tab:green"}
LEVEL_OFFSET = 0.06  # horizontal offset between the parts' series, in levels


def fig_controls(
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    teacher_acc: float | None,
    pdf: str,
    png: str,
    levels: pd.DataFrame | None = None,
) -> None:
    """One row per method (summary order, top down): runs as dots, mean with its CI (summary's
    ci_level); beside it the information levels (control_stats.information_levels), if any."""
    n = len(summary)
    if levels is not None and len(levels):
        fig, (ax, ax_levels) = plt.subplots(
            1, 2, figsize=(10.4, 1.2 + 0.45 * max(n, 5)), gridspec_kw={"width_ratios": [1.6, 1]}
        )
        draw_levels(ax_levels, levels, summary)
    else:
        fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.45 * n))
    rng = np.random.default_rng(0)
    for row, (_, s) in enumerate(summary.iterrows()):
        y = n - 1 - row
        style = CONTROL_STYLE if s["control"] else METHOD_STYLE
        if s["control"]:
            ax.axhspan(y - 0.45, y + 0.45, **CONTROL_HATCH)
        acc = runs.loc[runs["method"] == s["method"], "test_acc"].to_numpy(float)
        ax.scatter(acc, y + rng.uniform(-RUN_JITTER, RUN_JITTER, len(acc)), s=8, color=style["color"], alpha=0.35, lw=0)
        err = np.nan_to_num([[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]])
        ax.errorbar(
            s["mean"], y, xerr=err, fmt=style["marker"], color=style["color"], mfc=style["mfc"], ms=6, capsize=4, lw=1.5
        )
    ax.set_yticks(range(n), list(summary["label"])[::-1])
    for tick, control in zip(ax.get_yticklabels(), list(summary["control"])[::-1]):
        tick.set_color(CONTROL_STYLE["color"] if control else "black")
    if teacher_acc is not None:
        ax.axvline(teacher_acc, color="k", lw=0.8, ls="--")
    first = summary.iloc[0]
    student = first["student"] if "student" in summary else None
    factor = float(first["factor"]) if "factor" in summary else float("nan")
    low, high = float(np.nanmin([summary["ci_low"].min(), runs["test_acc"].min()])), float(summary["ci_high"].max())
    limits = percent_axis(low, high)
    if limits:
        ax.set_xlim(*limits)
    ax.set_xlabel("test accuracy (%)" + (CUT_NOTE if limits else ""))
    level = level_label(first["ci_level"])
    ax.set_title(f"Controls of {student} ({factor:.2f}x the teacher): mean, {level} CI, dots = runs", fontsize=9)
    handles = [
        plt.Line2D([], [], ls="", color=METHOD_STYLE["color"], marker="o", label="method"),
        Patch(facecolor="white", edgecolor=CONTROL_STYLE["color"], hatch="///", label="control"),
    ]
    if teacher_acc is not None:
        handles.append(plt.Line2D([], [], color="k", lw=0.8, ls="--", label=f"teacher ({teacher_acc:.2f} %)"))
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.grid(alpha=0.3, axis="x")
    ax.set_ylim(-0.6, n - 0.4)
    save_figure(fig, pdf, png)


CUT_NOTE = " (axis cut at 0-100 %; CI bars may run past it)"


def percent_axis(low: float, high: float) -> tuple[float, float] | None:
    """Axis limits cut at the possible 0-100 % (with a small margin) where an interval
    passes them, as a t-interval of few runs can; None where nothing needs cutting."""
    if not (low < 0 or high > 100):
        return None
    margin = 0.05 * (min(high, 100) - max(low, 0)) + 0.1
    return max(low, 0) - margin, min(high, 100) + margin


def draw_levels(ax, levels: pd.DataFrame, summary: pd.DataFrame) -> None:
    """The three-level panel: mean and interval per level (x = its rank), one line per part."""
    parts = list(dict.fromkeys(levels["part"]))
    for k, part in enumerate(parts):
        rows = levels[levels["part"] == part].sort_values("rank")
        points = list(zip(rows["rank"], (r for _, r in rows.iterrows())))
        x = np.array([i for i, _ in points], dtype=float) + (k - (len(parts) - 1) / 2) * LEVEL_OFFSET
        means = np.array([float(s["mean"]) for _, s in points])
        err = np.nan_to_num(
            [[float(s["mean"] - s["ci_low"]) for _, s in points], [float(s["ci_high"] - s["mean"]) for _, s in points]]
        )
        ax.errorbar(x, means, yerr=err, fmt="-o", color=LEVEL_COLORS.get(part), ms=5, capsize=4, lw=1.5, label=part)
    student = summary[summary["method"] == "Student"]
    if len(student):
        ax.axhline(float(student["mean"].iloc[0]), color="0.4", lw=0.8, ls=":", label="Student (no teacher)")
    names = levels.drop_duplicates("rank").sort_values("rank")
    ticks = [name.replace("shuffled ", "shuffled\n") for name in names["level"]]
    ax.set_xticks(list(names["rank"]), ticks, fontsize=8)
    ax.set_xlim(-0.4, int(levels["rank"].max()) + 0.4)
    limits = percent_axis(float(levels["ci_low"].min()), float(levels["ci_high"].max()))
    if limits:
        ax.set_ylim(*limits)
    ax.set_ylabel("test accuracy (%)" + (CUT_NOTE if limits else ""))
    level = level_label(summary["ci_level"].iloc[0])
    ax.set_title(f"Teacher information: image, class, none (mean, {level} CI)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3, axis="y")
