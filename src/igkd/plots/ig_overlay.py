"""One training image per class: the image, its precomputed IG map, and the overlay the
IG method trains on (map power-scaled and min-max scaled, then blended in)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from igkd.plots import save_figure
from igkd.training.augment import power_minmax


def overlay(images_u8: np.ndarray, maps: np.ndarray, exponent: float, blend: float) -> tuple[np.ndarray, np.ndarray]:
    """(scaled maps (B,H,W) in [0,1], overlaid images (B,H,W,3) in [0,1]) as in augment_batch:
    x = (1 - blend) * x + blend * power_minmax(map, exponent)."""
    maps_t = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    scaled = power_minmax(maps_t, torch.full((len(maps_t),), float(exponent))).numpy()
    x = np.asarray(images_u8, dtype=np.float32) / 255.0
    return scaled, (1 - blend) * x + blend * scaled[..., None]


def fig_ig_overlay(
    images_u8: np.ndarray,
    maps: np.ndarray,
    labels: np.ndarray,
    classes,
    exponent: float,
    blend: float,
    pdf: str,
    png: str,
) -> None:
    """Columns: one image per class; rows: original, IG map, overlaid image."""
    scaled, mixed = overlay(images_u8, maps, exponent, blend)
    n = len(images_u8)
    fig, axes = plt.subplots(3, n, figsize=(1.25 * n + 0.9, 4.3), squeeze=False)
    rows = ["original", f"IG map$^{{s}}$, s={exponent:g}\n(min-max)", f"overlay\n(blend {blend:g})"]
    for col in range(n):
        axes[0, col].imshow(images_u8[col])
        shown = axes[1, col].imshow(scaled[col], cmap="inferno", vmin=0, vmax=1)
        axes[2, col].imshow(np.clip(mixed[col], 0, 1))
        axes[0, col].set_title(str(classes[labels[col]]), fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for row, text in enumerate(rows):
        axes[row, 0].set_ylabel(text, fontsize=9)
    fig.colorbar(shown, ax=axes[1, :].tolist(), fraction=0.02, pad=0.01, label="scaled IG")
    fig.suptitle("Integrated-gradients overlay, one training image per class", fontsize=10)
    save_figure(fig, pdf, png)
