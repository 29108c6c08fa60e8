"""Test accuracy vs model-only inference latency, one panel per batch size.

All methods of one compression factor share one architecture and so one latency; their
points are dodged sideways by a few percent (log axis) so the confidence bars stay
apart, and the top axis labels each student latency with its compression factor.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from igkd.analysis.stats import level_label
from igkd.io import InputError
from igkd.plots import save_figure

DODGE = 0.025  # sideways offset between neighbouring methods, as a fraction of x (log axis)
MAX_ACCURACY = 100.0  # CIs of a few runs can reach past 100 %; the axis stops there
LABELLED_MINOR = {2, 5}  # minor log ticks that get a label (2, 5, 20, 50, ...)


def fig_latency(
    summary: pd.DataFrame, timing: pd.DataFrame, teacher_acc: float, methods: Sequence[str], pdf: str, png: str
) -> None:
    """Mean test accuracy (CI at the summary's ci_level) vs median latency (quartile bars) of teacher and students."""
    batches = sorted(timing["batch"].unique())
    students = timing[timing["model"] == "student"]
    teacher = timing[timing["model"] == "teacher"].set_index("batch")
    methods = [m for m in methods if (summary["method"] == m).any()]
    if not methods or students.empty or teacher.empty:
        raise InputError(
            "fig_latency: needs summary rows of the configured methods and timing rows of "
            "the teacher and at least one student"
        )
    fig, axes = plt.subplots(1, len(batches), figsize=(5.2 * len(batches), 4.2), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        lat = students[students["batch"] == batch].set_index("student")
        offsets = (np.arange(len(methods)) - (len(methods) - 1) / 2) * DODGE
        for i, method in enumerate(methods):
            rows = summary[(summary["method"] == method) & summary["student"].isin(lat.index)].sort_values("factor")
            if rows.empty:
                continue
            x = lat.loc[rows["student"], "median_ms"].to_numpy() * (1 + offsets[i])
            yerr = np.vstack([rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]])
            ax.errorbar(
                x,
                rows["mean"],
                yerr=np.nan_to_num(yerr),
                marker="o",
                ms=4,
                capsize=2,
                lw=1,
                label=method,
                color=f"C{i % 10}",
            )
        t = teacher.loc[batch]
        ax.errorbar(
            [t["median_ms"]],
            [teacher_acc],
            xerr=[[t["median_ms"] - t["q1_ms"]], [t["q3_ms"] - t["median_ms"]]],
            marker="*",
            ms=12,
            color="k",
            ls="none",
            label=f"teacher ({teacher_acc:.2f} %)",
        )
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        top = ax.secondary_xaxis("top")
        top.set_xticks(lat["median_ms"].to_numpy(), [f"{f:.1f}x" for f in lat["factor"]], fontsize=8)
        top.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        top.set_xlabel("student compression factor (vs this teacher)", fontsize=8)
        ax.set_xlabel(f"median inference time per batch of {batch} (ms, log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"batch {batch}")
        ax.grid(alpha=0.3, which="both")
        ax.margins(y=0.15)
        low, high = ax.get_ylim()
        ax.set_ylim(low, min(high, MAX_ACCURACY + 0.02 * (high - low)))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, ncol=min(len(labels), 5), loc="lower center", bbox_to_anchor=(0.5, -0.02))
    first = timing.iloc[0]
    fig.suptitle(
        f"Accuracy vs model-only latency ({first['device']}, {first['threads']} thread(s)); "
        f"students: mean and {level_label(summary['ci_level'].iloc[0])} CI over runs, latency bars: quartiles",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    save_figure(fig, pdf, png)


def _plain_log_ticks(axis) -> None:
    """Log-axis tick labels as plain numbers (1, 2, 5, 10, 20, ...) instead of 2x10^1."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v))) in LABELLED_MINOR else "")
    )
