"""Monte Carlo test-accuracy histograms per method at one compression factor, with the
maximum-likelihood normal fit (scipy.stats.norm.fit) the paper's normality claim rests on."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy import stats as st

from igkd.analysis.students import student_key
from igkd.io import InputError
from igkd.plots import save_figure

PAPER_MAIN_FACTOR = 4.12  # the paper's main student (mobilenetv2-drop5)


def main_student(
    runs: pd.DataFrame,
    student: str | None = None,
    target: float = PAPER_MAIN_FACTOR,
    key: str = "figures.mc_hist.student",
) -> str:
    """`student` (an id) if given (it must be in the runs), else the student whose paper factor
    (vs the width-1.0 teacher, as the paper counts) is closest to `target` on a log scale
    (ties: the first in igkd.analysis.students order, e.g. the smaller drop)."""
    present = runs.groupby("student")["paper_factor"].first()
    if present.empty:
        raise InputError("runs table: no runs to draw")
    ordered = sorted(present.index, key=student_key)
    if student is not None:
        if student not in present.index:
            raise InputError(f"{key}: {student} is not among the students in the runs table {ordered}")
        return str(student)
    distance = (np.log(present) - math.log(target)).abs().reindex(ordered)
    return str(distance.idxmin())


def fig_mc_hist(runs: pd.DataFrame, methods: Sequence[str], student: str, bins: int, pdf: str, png: str) -> None:
    """One panel per method: histogram (density) of test accuracy over runs and the normal fit."""
    rows = runs[runs["student"] == student]
    methods = [m for m in methods if (rows["method"] == m).any()]
    if not methods:
        raise InputError(f"runs table: no runs of the configured methods of student {student}")
    low, high = rows["test_acc"].min(), rows["test_acc"].max()
    pad = max(0.5, 0.1 * (high - low))
    edges = np.linspace(low - pad, high + pad, bins + 1)
    ncols = min(4, len(methods))
    nrows = math.ceil(len(methods) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.4 * nrows + 0.6), sharex=True, squeeze=False)
    xs = np.linspace(edges[0], edges[-1], 200)
    for ax, method in zip(axes.flat, methods):
        acc = rows.loc[rows["method"] == method, "test_acc"].to_numpy(float)
        ax.hist(acc, bins=edges, density=True, color="C0", alpha=0.6)
        mu, sigma = st.norm.fit(acc)
        if len(acc) >= 2 and sigma > 0:
            ax.plot(xs, st.norm.pdf(xs, mu, sigma), color="C3")
            ax.set_title(f"{method}: n={len(acc)}, μ={mu:.2f}, σ={sigma:.2f}", fontsize=8.5)
        else:
            ax.axvline(mu, color="C3", ls=":")
            ax.set_title(f"{method}: n={len(acc)}, μ={mu:.2f}, no spread to fit", fontsize=8.5)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(methods) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("density")
    for index in range(len(methods)):  # x label under the lowest panel of each column
        if index + ncols >= len(methods):
            axes.flat[index].set_xlabel("test accuracy (%)")
            axes.flat[index].xaxis.set_tick_params(labelbottom=True)
    handles = [
        Patch(color="C0", alpha=0.6, label="runs (histogram, density)"),
        Line2D([], [], color="C3", label="normal fit (maximum likelihood)"),
    ]
    factor = rows["factor"].iloc[0]
    fig.suptitle(f"Monte Carlo test accuracy per method of {student} ({factor:.2f}x the teacher)", fontsize=10, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.22 / fig.get_figheight()),
        fontsize=8,
        ncol=2,
        frameon=False,
    )
    save_figure(fig, pdf, png)
