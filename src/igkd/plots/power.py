"""Runs needed against the difference to detect, per test kind of a family (stats/power.csv):
how far the runs at hand are from settling a difference, and how the cost grows as the
difference shrinks (runs ~ 1/diff², hence the log axis).

Every comparison of one kind (welch or paired) in a family is planned from the same pooled
sd, so each kind is one curve at that sd (solid) and one at its one-sided upper confidence
bound (dashed), with the band between: a plan from few degrees of freedom shows as a wide band."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from igkd.analysis.power import runs_needed_curve
from igkd.analysis.stats import level_label
from igkd.analysis.students import student_label
from igkd.io import InputError
from igkd.plots import save_figure

CURVE_POINTS = 60
KIND_COLOURS = {"welch": "C0", "paired": "C3"}
NEEDED = (
    "family",
    "method",
    "baseline",
    "student",
    "test",
    "n_method",
    "sd_pooled",
    "sd_df",
    "sd_upper",
    "sd_upper_level",
    "alpha_holm",
    "power",
    "target_diff",
    "note",
)


def _student(rows: pd.DataFrame) -> str:
    """A panel's student as titles name it: 'mobilenetv2-drop5 (4.12x)'."""
    first = rows.iloc[0]
    return student_label(first["student"], first["factor"] if "factor" in rows else None)


def _usable(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def _panel(ax, rows: pd.DataFrame, diffs: np.ndarray, title: str) -> list[str]:
    """Per test kind: the runs needed at the pooled sd and at its upper bound; returns the
    comparisons left out (no pooled sd) and why."""
    skipped = []
    level = level_label(float(rows["sd_upper_level"].iloc[0]))
    for kind, these in rows.groupby("test", sort=False):
        first = these.iloc[0]
        sd, upper = float(first["sd_pooled"]), float(first["sd_upper"])
        if not _usable(sd):
            skipped += [f"{r['method']} vs {r['baseline']} ({r['note']})" for r in these.to_dict("records")]
            continue
        paired, colour = kind == "paired", KIND_COLOURS.get(kind, "C2")
        needed = runs_needed_curve(sd, diffs, first["alpha_holm"], first["power"], paired)
        at_upper = runs_needed_curve(upper, diffs, first["alpha_holm"], first["power"], paired)
        what = "per-pair differences" if paired else "within-method runs"
        ax.plot(
            diffs,
            needed,
            color=colour,
            lw=1.5,
            label=f"{kind}, {len(these)} comparison(s): pooled sd of {what} {sd:.2g}",
        )
        ax.plot(
            diffs,
            at_upper,
            color=colour,
            lw=1.2,
            ls="--",
            label=f"{kind}: at its {level} upper bound {upper:.2g} (df {int(first['sd_df'])})",
        )
        ax.fill_between(diffs, needed, at_upper, color=colour, alpha=0.12, lw=0)
    ax.axhline(int(rows["n_method"].min()), color="0.4", ls=":", lw=1)
    ax.text(diffs[-1], int(rows["n_method"].min()), " runs now", va="bottom", ha="right", fontsize=7.5, color="0.3")
    ax.axvline(float(rows["target_diff"].iloc[0]), color="0.6", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("true difference to detect (percentage points)")
    ax.set_ylabel("runs per group needed")
    ax.set_title(f"{title}: α/m = {float(rows['alpha_holm'].iloc[0]):.2g}", fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:  # below the panel: the curves fill its top right
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    return skipped


def fig_power(
    table: pd.DataFrame, family: str | None, student: str | None, max_diff: float, pdf: str, png: str
) -> None:
    """(a) one experiment's comparisons of `student` (an id; its Holm family); (b) the
    controls' family, where present. `family` None: the controls' panel alone."""
    missing = [c for c in NEEDED if c not in table.columns]
    if missing:
        raise InputError(f"power table: missing column(s) {missing}")
    panels = []
    if family is not None:
        methods = table[(table["family"] == family) & (table["student"] == student)]
        if methods.empty:
            raise InputError(f"power table: no comparisons of the {family} experiment of student {student}")
        panels.append((methods, f"(a) {family}, {_student(methods)}"))
    controls = table[table["family"] == "controls"]
    if not controls.empty:
        panels.append((controls, f"({'b' if panels else 'a'}) controls, {_student(controls)}"))
    if not panels:
        raise InputError("power table: no family to draw (no experiment with two or more runs, no controls)")
    first = panels[0][0]
    diffs = np.linspace(max_diff / CURVE_POINTS, max_diff, CURVE_POINTS)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 5.4), squeeze=False)
    skipped = []
    for ax, (rows, title) in zip(axes.flat, panels):
        skipped += _panel(ax, rows, diffs, title)
    power = first["power"].iloc[0]
    level = level_label(float(first["sd_upper_level"].iloc[0]))
    fig.suptitle(
        f"Runs per group for {100 * power:g} % power, two-sided at each family's strictest Holm step α/m (see panels)\n"
        f"solid: sd pooled over the family; dashed: its one-sided {level} upper confidence bound",
        fontsize=10,
    )
    if skipped:
        fig.text(0.01, 0.0, "not drawn: " + "; ".join(skipped), fontsize=7, wrap=True, va="top")
    fig.tight_layout()
    save_figure(fig, pdf, png)
