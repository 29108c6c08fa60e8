"""scikit-learn's bundled 8x8 digits as a small real-image demo dataset."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from igkd.data.store import Splits, resize_images


def load_digits_splits(size: int, test_fraction: float, seed: int) -> Splits:
    """Digits as uint8 RGB images of size x size with a fixed stratified train/test split."""
    bunch = load_digits()
    gray = np.round(bunch.images / 16.0 * 255.0).astype(np.uint8)  # values 0..16
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    images = resize_images(rgb, size)
    labels = bunch.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed)
    train, test = np.sort(train), np.sort(test)
    return Splits(images[train], labels[train], images[test], labels[test], tuple(str(c) for c in range(10)))
