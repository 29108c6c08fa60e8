"""Runs needed against the difference to detect, per comparison (stats/power.csv): how far
the runs at hand are from settling each comparison, and how the cost grows as the
difference shrinks (runs ~ 1/diff², hence the log axis)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from igkd.analysis.power import runs_needed_curve
from igkd.io import InputError
from igkd.plots import save_figure

CURVE_POINTS = 60
BASELINE_STYLES = ("-", "--", ":", "-.")
NEEDED = (
    "family",
    "method",
    "baseline",
    "drop",
    "test",
    "n_method",
    "sd",
    "alpha_holm",
    "power",
    "target_diff",
    "note",
)


def _panel(ax, rows: pd.DataFrame, diffs: np.ndarray, title: str) -> list[str]:
    """One line per comparison; returns the comparisons left out and why."""
    methods = list(dict.fromkeys(rows["method"]))
    baselines = list(dict.fromkeys(rows["baseline"]))
    skipped = []
    for row in rows.to_dict("records"):
        name = f"{row['method']} vs {row['baseline']}"
        if not (isinstance(row["sd"], float) and math.isfinite(row["sd"]) and row["sd"] > 0):
            skipped.append(f"{name} ({row['note']})")
            continue
        needed = runs_needed_curve(row["sd"], diffs, row["alpha_holm"], row["power"], row["test"] == "paired")
        ax.plot(
            diffs,
            needed,
            color=f"C{methods.index(row['method']) % 10}",
            ls=BASELINE_STYLES[baselines.index(row["baseline"]) % len(BASELINE_STYLES)],
            lw=1.3,
            label=f"{name} ({row['test']}, sd {row['sd']:.2g})",
        )
    ax.axhline(int(rows["n_method"].min()), color="0.4", ls=":", lw=1)
    ax.text(diffs[-1], int(rows["n_method"].min()), " runs now", va="bottom", ha="right", fontsize=7.5, color="0.3")
    ax.axvline(float(rows["target_diff"].iloc[0]), color="0.6", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("true difference to detect (percentage points)")
    ax.set_ylabel("runs per group needed")
    ax.set_title(f"{title}: α/m = {float(rows['alpha_holm'].iloc[0]):.2g}", fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:  # below the panel: the curves fill its top right
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return skipped


def fig_power(table: pd.DataFrame, family: str | None, drop: int | None, max_diff: float, pdf: str, png: str) -> None:
    """(a) one experiment's comparisons at `drop` (its Holm family); (b) the controls' family,
    where present. `family` None: the controls' panel alone."""
    missing = [c for c in NEEDED if c not in table.columns]
    if missing:
        raise InputError(f"power table: missing column(s) {missing}")
    panels = []
    if family is not None:
        methods = table[(table["family"] == family) & (table["drop"] == drop)]
        if methods.empty:
            raise InputError(f"power table: no comparisons of the {family} experiment at drop {drop}")
        panels.append((methods, f"(a) {family} at drop {drop}"))
    controls = table[table["family"] == "controls"]
    if not controls.empty:
        panels.append((controls, f"({'b' if panels else 'a'}) controls at drop {int(controls['drop'].iloc[0])}"))
    if not panels:
        raise InputError("power table: no family to draw (no experiment with two or more runs, no controls)")
    first = panels[0][0]
    diffs = np.linspace(max_diff / CURVE_POINTS, max_diff, CURVE_POINTS)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 5.4), squeeze=False)
    skipped = []
    for ax, (rows, title) in zip(axes.flat, panels):
        skipped += _panel(ax, rows, diffs, title)
    alpha = first["alpha_holm"].iloc[0]
    power = first["power"].iloc[0]
    fig.suptitle(
        f"Runs per group for {100 * power:g} % power, two-sided at Holm's strictest α/m = {alpha:.2g}", fontsize=10
    )
    if skipped:
        fig.text(0.01, 0.0, "not drawn: " + "; ".join(skipped), fontsize=7, wrap=True, va="top")
    fig.tight_layout()
    save_figure(fig, pdf, png)
