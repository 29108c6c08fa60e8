"""Per-image IG completeness error at fixed steps vs after refinement, and the points used.

Reads a refined IG precompute file (precompute.ig.method: trapezoid with a tolerance;
igkd.attribution.converged_ig). Its `initial_rel_delta` is what fixed steps would give:
every image starts on the same `ig_start_steps` grid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from igkd.io import InputError, read_h5
from igkd.plots import save_figure

ROWS = ("rel_delta", "initial_rel_delta", "steps", "above_tolerance")
ATTRS = ("ig_tolerance", "ig_start_steps", "ig_max_steps")
# A relative error of exactly 0 has no place on the log axis: zeros are drawn this factor
# below the smallest positive error (or the tolerance), at the axis' left edge; the
# fractions within tolerance use the raw values.
ZERO_BELOW = 10.0


@dataclass(frozen=True)
class Convergence:
    """Per-image rows of a refined IG file and the refinement's settings."""

    rel_delta: np.ndarray  # (N,) final guarded relative completeness error
    initial_rel_delta: np.ndarray  # (N,) the same at `start_steps`: what fixed steps give
    steps: np.ndarray  # (N,) points each image ended on
    above_tolerance: np.ndarray  # (N,) bool: still above `tolerance` at max_steps
    tolerance: float
    start_steps: int
    max_steps: int

    def grid(self) -> list[int]:
        """Point counts an image can end on: start, 2(start-1)+1, ... up to max_steps
        (converged_ig.Refinement.grids, restated so figures need no torch)."""
        counts = [self.start_steps]
        while 2 * (counts[-1] - 1) + 1 <= self.max_steps:
            counts.append(2 * (counts[-1] - 1) + 1)
        return counts


def read_convergence(path: str | os.PathLike) -> Convergence:
    """The per-image rows of `path`; InputError naming it for fixed-steps or malformed files."""
    path = Path(path)
    with read_h5(path, "precompute file") as h5:
        attrs = {k: h5.attrs[k] for k in h5.attrs}
        tolerance = float(attrs.get("ig_tolerance", np.nan))
        if "steps" not in h5 or np.isnan(tolerance):
            raise InputError(
                f"{path} has no per-image steps (fixed-steps IG): "
                "set precompute.ig.method: trapezoid and precompute.ig.tolerance"
            )
        missing = [name for name in ROWS if name not in h5] + [key for key in ATTRS if key not in attrs]
        if missing:
            raise InputError(f"{path}: refined IG file lacks {', '.join(missing)}")
        rows = {name: h5[name][()] for name in ROWS}
    n = len(rows["steps"])
    shapes = {name: values.shape for name, values in rows.items() if values.shape != (n,)}
    if n == 0 or shapes:
        raise InputError(f"{path}: expected {', '.join(ROWS)} of one equal length > 0, got shapes {shapes or n}")
    if int(attrs.get("rows_done", n)) != n:
        raise InputError(f"{path}: only {attrs['rows_done']} of {n} rows were computed")
    conv = Convergence(
        rel_delta=rows["rel_delta"].astype(np.float64),
        initial_rel_delta=rows["initial_rel_delta"].astype(np.float64),
        steps=rows["steps"].astype(np.int64),
        above_tolerance=rows["above_tolerance"].astype(bool),
        tolerance=tolerance,
        start_steps=int(attrs["ig_start_steps"]),
        max_steps=int(attrs["ig_max_steps"]),
    )
    if not 2 <= conv.start_steps <= conv.max_steps:  # the grid below would not end otherwise
        raise InputError(
            f"{path}: expected 2 <= ig_start_steps <= ig_max_steps, got {conv.start_steps} and {conv.max_steps}"
        )
    off_grid = np.setdiff1d(conv.steps, conv.grid())
    if len(off_grid):
        raise InputError(
            f"{path}: 'steps' holds {off_grid.tolist()}, not on the grid {conv.grid()} "
            f"of ig_start_steps {conv.start_steps} and ig_max_steps {conv.max_steps}"
        )
    return conv


def step_counts(conv: Convergence) -> tuple[np.ndarray, np.ndarray]:
    """(points, images): how many images ended on each point count of the grid, 0 for unused ones."""
    points = np.asarray(conv.grid())
    used, counts = np.unique(conv.steps, return_counts=True)
    images = np.zeros(len(points), dtype=np.int64)
    images[np.searchsorted(points, used)] = counts
    return points, images


def within(values: np.ndarray, tolerance: float) -> float:
    """Fraction of images with relative error at most `tolerance` (converged_ig's `above` is `>`)."""
    return float(np.mean(np.asarray(values) <= tolerance))


def zero_floor(*values: np.ndarray, tolerance: float) -> float:
    """Where the ECDF draws errors of 0 on its log axis (ZERO_BELOW under the smallest positive)."""
    positive = np.concatenate([v[v > 0] for v in values])
    return float(min(positive.min(initial=tolerance), tolerance)) / ZERO_BELOW


def _ecdf(ax, values: np.ndarray, floor: float, label: str) -> None:
    x = np.sort(np.maximum(values, floor))
    ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=label)


def fig_ig_convergence(conv: Convergence, pdf: str, png: str) -> None:
    """(a) ECDF of rel. completeness error at fixed start steps vs refined; (b) images per point count."""
    fig, (ax_cdf, ax_bar) = plt.subplots(1, 2, figsize=(10.4, 3.9))
    tol = conv.tolerance
    floor = zero_floor(conv.initial_rel_delta, conv.rel_delta, tolerance=tol)
    fixed, refined = within(conv.initial_rel_delta, tol), within(conv.rel_delta, tol)
    _ecdf(ax_cdf, conv.initial_rel_delta, floor, f"fixed {conv.start_steps} points: {fixed:.1%} within")
    _ecdf(ax_cdf, conv.rel_delta, floor, f"refined (≤ {conv.max_steps} points): {refined:.1%} within")
    ax_cdf.axvline(tol, color="red", ls="--", lw=1, label=f"tolerance {tol:g}")
    ax_cdf.set_xscale("log")
    zeros = int((conv.initial_rel_delta == 0).sum() + (conv.rel_delta == 0).sum())
    note = f" (errors of 0 drawn at {floor:.1g})" if zeros else ""
    ax_cdf.set_xlabel(f"relative completeness error rel_delta{note}")
    ax_cdf.set_ylabel("fraction of images")
    ax_cdf.set_ylim(0, 1.02)
    ax_cdf.set_title("(a) per-image error, empirical CDF", fontsize=10)
    ax_cdf.grid(alpha=0.3)
    ax_cdf.legend(fontsize=8, loc="upper left")

    points, images = step_counts(conv)
    above = int(conv.above_tolerance.sum())
    slots = np.arange(len(points))
    ax_bar.bar(slots, images, color="C0", label="images")
    if above:  # they all ended on the last grid: drawn over its bar
        ax_bar.bar(slots[-1], above, color="C3", label=f"still above tolerance at max: {above}")
    labels = [str(count) for count in images]
    if above:
        labels[-1] += f"\n({above} above tol.)"
    for slot, count, label in zip(slots, images, labels):
        ax_bar.annotate(label, (slot, count), ha="center", va="bottom", fontsize=8)
    ax_bar.set_xticks(slots, [str(p) for p in points])
    ax_bar.set_xlabel("points the image ended on")
    ax_bar.set_ylabel("images")
    ax_bar.set_ylim(0, 1.18 * max(images.max(), 1))  # room for the labels
    ax_bar.set_title(f"(b) points used; {above} image(s) still above tolerance at {points[-1]}", fontsize=10)
    ax_bar.grid(alpha=0.3, axis="y")
    if above:
        ax_bar.legend(fontsize=8)
    fig.suptitle(
        f"IG completeness of {len(conv.steps)} images: fixed {conv.start_steps} points vs refined to "
        f"tolerance {tol:g}, mean {conv.steps.mean():.1f} points per image",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, pdf, png)
