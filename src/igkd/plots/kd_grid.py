"""Validation accuracy over the KD grid (alpha x temperature), from the KD sweep table."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from igkd.analysis.sweeps import best_point, sweep_summary
from igkd.plots import save_figure


def fig_kd_grid(table: pd.DataFrame, pdf: str, png: str) -> None:
    """Heatmap of mean validation accuracy per (alpha, T); cells annotated, best boxed."""
    summary = sweep_summary(table)
    grid = summary.pivot(index="alpha", columns="temperature", values="mean").sort_index().sort_index(axis=1)
    sd = summary.pivot(index="alpha", columns="temperature", values="sd").reindex_like(grid)
    best = best_point(table)
    fig, ax = plt.subplots(figsize=(1.1 * grid.shape[1] + 2.6, 0.45 * grid.shape[0] + 1.9))
    shown = ax.imshow(grid.to_numpy(), cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(grid.shape[1]), [f"{t:g}" for t in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [f"{a:g}" for a in grid.index])
    ax.set_xlabel("temperature T")
    ax.set_ylabel("KD weight alpha")
    middle = np.nanmean(grid.to_numpy())
    for i, alpha in enumerate(grid.index):
        for j, temperature in enumerate(grid.columns):
            value = grid.loc[alpha, temperature]
            if np.isnan(value):
                continue
            spread = sd.loc[alpha, temperature]
            text = f"{value:.1f}" + (f"\n±{spread:.1f}" if np.isfinite(spread) else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="k" if value > middle else "w")
    i, j = list(grid.index).index(best["alpha"]), list(grid.columns).index(best["temperature"])
    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
    fig.colorbar(shown, ax=ax, label="validation accuracy (%)")
    method, student, runs = table["method"].iloc[0], table["student"].iloc[0], table["run"].nunique()
    ax.set_title(
        f"{method} sweep, {student}, {runs} run(s) per cell (mean ± sd)\n"
        f"best (red): alpha {best['alpha']:g}, T {best['temperature']:g}, {best['val_acc']:.2f} %",
        fontsize=9,
    )
    save_figure(fig, pdf, png)
