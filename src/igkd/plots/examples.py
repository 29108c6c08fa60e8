"""Which images a figure shows: the first image of each class, in class order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Examples:
    """The images a figure shows, their labels and the class names the labels index."""

    images: np.ndarray  # uint8 (N,H,W,3)
    labels: np.ndarray
    classes: tuple

    def title(self, col: int) -> str:
        return str(self.classes[self.labels[col]])


def class_examples(labels: np.ndarray, n: int | None = None) -> np.ndarray:
    """Row of the first image of each class present (class order), at most `n` of them.

    Deterministic and class-balanced, so a figure shows the same images on every rebuild
    and never shows two images of one class where another class has none."""
    labels = np.asarray(labels)
    classes, first = np.unique(labels, return_index=True)
    rows = first[np.argsort(classes)]
    return rows if n is None else rows[:n]
