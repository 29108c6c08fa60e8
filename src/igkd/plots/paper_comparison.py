"""igkd against the paper's published numbers: the difference per number with its interval,
on the ±margin band, coloured by verdict (igkd.analysis.replication). Where the run cannot
be compared with the paper, a figure with the one line saying why.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Patch

from igkd.analysis.verdict import HIGHER, INCONCLUSIVE, LOWER, REPRODUCED
from igkd.plots import save_figure

VERDICT_COLOUR = {REPRODUCED: "tab:green", LOWER: "tab:red", HIGHER: "tab:blue", INCONCLUSIVE: "0.45"}
SECTION_LABEL = {"teacher": "", "imagenet_subset": "ImageNet subset", "montecarlo": "MC", "compression": "sweep"}
ROW_HEIGHT = 0.2  # inches per number


def _label(row: pd.Series) -> str:
    where = SECTION_LABEL.get(row["section"], row["section"])
    factor = "" if pd.isna(row["factor"]) else f" {row['factor']:g}x"
    return f"{where} {row['method']}{factor}".strip()


def fig_paper_comparison(rows: pd.DataFrame, margin: float, level: str, pdf: str, png: str) -> None:
    """One line per number with a difference (maxima and inference times left out): igkd −
    paper with its interval (filled: tested; hollow: no spread to test against)."""
    shown = rows[rows["diff"].notna() & rows["verdict"].isin(VERDICT_COLOUR)].reset_index(drop=True)
    n = max(len(shown), 1)
    fig, ax = plt.subplots(figsize=(6.4, 1.4 + ROW_HEIGHT * n))
    ax.axvspan(-margin, margin, color="tab:green", alpha=0.12, lw=0)
    ax.axvline(0, color="k", lw=0.8)
    for i, row in shown.iterrows():
        y = n - 1 - i
        colour = VERDICT_COLOUR[row["verdict"]]
        tested = not pd.isna(row["diff_low"])
        err = [[row["diff"] - row["diff_low"]], [row["diff_high"] - row["diff"]]] if tested else None
        ax.errorbar(
            row["diff"], y, xerr=err, fmt="o", color=colour, mfc=colour if tested else "white", ms=4, capsize=2, lw=1
        )
    ax.set_yticks(range(n), [_label(r) for _, r in shown.iterrows()][::-1] or [""], fontsize=6)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(f"igkd − paper (percentage points), {level} interval; band: ±{margin:g} pp")
    ax.set_title("igkd against the paper's published numbers (filled: tested; hollow: one run each)", fontsize=9)
    handles = [Patch(color=c, label=v) for v, c in VERDICT_COLOUR.items() if v in set(shown["verdict"])]
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")
    ax.grid(alpha=0.3, axis="x")
    save_figure(fig, pdf, png)


def fig_not_comparable(reason: str, pdf: str, png: str) -> None:
    """The one line, as a figure: the rule's outputs exist whether or not it compares."""
    fig, ax = plt.subplots(figsize=(6.4, 0.6))
    ax.axis("off")
    ax.text(0.5, 0.5, reason, ha="center", va="center", fontsize=9, wrap=True)
    save_figure(fig, pdf, png)
