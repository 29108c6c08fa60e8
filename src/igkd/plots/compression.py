"""Accuracy relative to the teacher, and inference speed-up, vs compression factor.

Both panels are relative to the teacher trained (and timed) in this run: its accuracy, its
latency, its parameter count. The paper's factor (vs its width-1.0 teacher) is the tables'
`paper_factor` column; the two agree only when the teacher has width 1.0."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter

from igkd.analysis.stats import level_label
from igkd.plots import save_figure

FACTOR_LABEL = "compression factor (params of this run's teacher / student params)"


def fig_compression(
    summary: pd.DataFrame, teacher_acc: float, methods, pdf: str, png: str, timing: pd.DataFrame | None = None
) -> None:
    """Test accuracy (mean with the summary's ci_level CI, relative to the teacher) vs compression factor; with
    a timing table, a second panel: teacher latency / student latency per batch size."""
    fig, axes = plt.subplots(
        1, 1 if timing is None else 2, figsize=(6.4 if timing is None else 11.5, 4.2), squeeze=False
    )
    ax = axes[0][0]
    for method in methods:
        rows = summary[summary["method"] == method].sort_values("factor")
        if rows.empty:
            continue
        yerr = [rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]]
        yerr = [(e / teacher_acc).fillna(0) for e in yerr]
        ax.errorbar(rows["factor"], rows["mean"] / teacher_acc, yerr=yerr, marker="o", ms=4, capsize=3, label=method)
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label=f"teacher ({teacher_acc:.2f} %)")
    ax.set_xscale("log")
    ax.set_xlabel(FACTOR_LABEL)
    ax.set_ylabel("test accuracy relative to teacher")
    ax.set_title(f"Accuracy vs compression (mean, {level_label(summary['ci_level'].iloc[0])} CI)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    if timing is not None:
        _speedup_panel(axes[0][1], timing)
    fig.tight_layout()
    save_figure(fig, pdf, png)


def speedups(timing: pd.DataFrame) -> pd.DataFrame:
    """Teacher median latency / student median latency per student and batch size (timing.csv rows)."""
    teacher = timing[timing["model"] == "teacher"].set_index("batch")["median_ms"]
    students = timing[timing["model"] == "student"].copy()
    students["speedup"] = teacher.reindex(students["batch"]).to_numpy() / students["median_ms"].to_numpy()
    return students[["student", "factor", "batch", "median_ms", "speedup"]].reset_index(drop=True)


def _speedup_panel(ax, timing: pd.DataFrame) -> None:
    """Speed-up (teacher median latency / student median latency) vs compression factor."""
    table = speedups(timing)
    for i, (batch, rows) in enumerate(table.groupby("batch")):
        rows = rows.sort_values("factor")
        ax.plot(rows["factor"], rows["speedup"], marker="o", ms=4, color=f"C{i}", label=f"batch {batch}")
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="teacher (1x)")
    first = timing.iloc[0]
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # plain 0.5, 2, 20 instead of 5x10^-1, 2x10^0, 2x10^1
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(
            FuncFormatter(lambda v, _: f"{v:g}" if round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else "")
        )
    ax.set_xlabel(FACTOR_LABEL)
    ax.set_ylabel("speed-up (teacher latency / student latency)")
    ax.set_title(f"Inference speed-up, model only ({first['device']}, {first['threads']} thread(s))")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
