"""External-set (ImageNet subset) accuracy bars: the teacher, then per compression factor one
bar per method (mean over runs with its 1 - stats.alpha CI; a single run has no bar)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from igkd.analysis.stats import level_label, summarize
from igkd.io import InputError
from igkd.plots import save_figure

GROUP_WIDTH = 0.8  # share of a factor's slot the bars fill


def external_summary(results: pd.DataFrame, methods: Sequence[str], confidence: float = 0.95) -> pd.DataFrame:
    """Students' accuracy per method and student: n, mean, sd, CI at `confidence` (igkd.analysis.stats.summarize)."""
    students = results[results["model"] == "student"]
    if students.empty:
        raise InputError("external results: no student rows")
    return summarize(
        students, value="accuracy", by=("method", "student", "factor"), confidence=confidence, method_order=methods
    )


def fig_imagenet(
    results: pd.DataFrame, methods: Sequence[str], title: str, pdf: str, png: str, confidence: float = 0.95
) -> None:
    """Grouped bars: teacher first, then one group per compression factor, one bar per method
    (error bars: t-interval at `confidence`, 1 - stats.alpha in the workflow)."""
    teacher = results[results["model"] == "teacher"]
    if len(teacher) != 1:
        raise InputError(f"external results: expected one teacher row, got {len(teacher)}")
    summary = external_summary(results, methods, confidence)
    methods = [m for m in methods if (summary["method"] == m).any()]
    students = summary.drop_duplicates("student").sort_values("factor")
    width = GROUP_WIDTH / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.35 * len(methods) * (len(students) + 1)), 4.2))
    ax.bar([0], teacher["accuracy"], width=GROUP_WIDTH / 2, color="0.3", label="teacher")
    ax.annotate(
        f"{teacher['accuracy'].iloc[0]:.1f}",
        (0, teacher["accuracy"].iloc[0]),
        textcoords="offset points",
        xytext=(0, 3),
        ha="center",
        fontsize=7,
    )
    centres = np.arange(1, len(students) + 1)
    for i, method in enumerate(methods):
        rows = summary[summary["method"] == method].set_index("student").reindex(students["student"])
        x = centres - GROUP_WIDTH / 2 + width * (i + 0.5)
        yerr = np.nan_to_num(np.vstack([rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]]))
        ax.bar(
            x, rows["mean"], width=width, yerr=yerr, capsize=2, color=f"C{i % 10}", label=method, error_kw={"lw": 0.8}
        )
    ax.set_xticks([0, *centres], ["teacher", *(f"{f:.1f}x" for f in students["factor"])])
    ax.set_xlabel("model (students: compression factor)")
    ax.set_ylabel("top-1 accuracy (%)")
    n = int(teacher["n"].iloc[0])
    runs = int(summary["n"].max())
    ax.set_title(f"{title}\n{n} images; students: mean and {level_label(confidence)} CI over {runs} run(s)", fontsize=9)
    top = np.nanmax([results["accuracy"].max(), summary["ci_high"].max(), summary["mean"].max()])
    ax.set_ylim(0, min(105.0, top * 1.15 + 1))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, ncol=min(5, len(methods) + 1), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    save_figure(fig, pdf, png)
