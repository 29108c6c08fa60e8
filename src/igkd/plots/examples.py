"""Which images a figure shows: the first image of each class, in class order."""

from __future__ import annotations

import numpy as np


def class_examples(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """Row of the first image of each class present (class order), at most `n` of them.

    Deterministic and class-balanced, so a figure shows the same images on every rebuild
    and never shows two images of one class where another class has none."""
    labels = np.asarray(labels)
    classes, first = np.unique(labels, return_index=True)
    rows = first[np.argsort(classes)]
    return rows if n is None else rows[:n]
