"""Validation accuracy vs the overlay probability p, from the overlay sweep table."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from igkd.analysis.sweeps import best_point, sweep_summary
from igkd.plots import save_figure


def fig_overlay_p(table: pd.DataFrame, pdf: str, png: str) -> None:
    """Mean validation accuracy (± sd over runs) per p, every run as a dot, best p marked."""
    summary = sweep_summary(table).sort_values("p")
    best = best_point(table)
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    ax.scatter(table["p"], table["val_acc"], s=12, color="0.6", zorder=2, label="single runs")
    ax.errorbar(
        summary["p"],
        summary["mean"],
        yerr=summary["sd"].fillna(0),
        marker="o",
        capsize=3,
        zorder=3,
        label="mean ± sd over runs",
    )
    ax.axvline(best["p"], color="red", ls="--", lw=1, label=f"best p = {best['p']:g} ({best['val_acc']:.2f} %)")
    ax.set_xlabel("overlay probability p")
    ax.set_ylabel("validation accuracy (%)")
    method, student, runs = table["method"].iloc[0], table["student"].iloc[0], table["run"].nunique()
    ax.set_title(f"{method} overlay sweep, {student}, {runs} run(s) per p", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, pdf, png)
