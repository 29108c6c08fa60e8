"""Accuracy relative to the teacher vs compression factor."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from igkd.plots import save_figure


def fig_compression(summary: pd.DataFrame, teacher_acc: float, methods, pdf: str, png: str) -> None:
    """Test accuracy (mean with 95 % CI, relative to the teacher) vs compression factor."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in methods:
        rows = summary[summary["method"] == method].sort_values("factor")
        if rows.empty:
            continue
        yerr = [rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]]
        yerr = [(e / teacher_acc).fillna(0) for e in yerr]
        ax.errorbar(rows["factor"], rows["mean"] / teacher_acc, yerr=yerr, marker="o", ms=4, capsize=3, label=method)
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label=f"teacher ({teacher_acc:.2f} %)")
    ax.set_xscale("log")
    ax.set_xlabel("compression factor (teacher params / student params)")
    ax.set_ylabel("test accuracy relative to teacher")
    ax.set_title("Accuracy vs compression (mean, 95 % CI)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    save_figure(fig, pdf, png)
