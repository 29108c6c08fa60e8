"""One IG map under the power scaling the overlay draws its exponent from."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from igkd.plots import save_figure
from igkd.training.augment import power_minmax


def powered_maps(ig_map: np.ndarray, exponents: Sequence[float]) -> np.ndarray:
    """(len(exponents), H, W): map ** s, each min-max scaled to [0,1]."""
    maps = torch.as_tensor(np.asarray(ig_map, dtype=np.float32))[None].expand(len(exponents), -1, -1)
    return power_minmax(maps, torch.as_tensor(exponents, dtype=torch.float32)).numpy()


def fig_ig_power(
    image_u8: np.ndarray, ig_map: np.ndarray, exponents: Sequence[float], title: str, pdf: str, png: str
) -> None:
    """The image, then its IG map raised to each exponent and min-max scaled."""
    scaled = powered_maps(ig_map, exponents)
    fig, axes = plt.subplots(1, len(exponents) + 1, figsize=(1.6 * (len(exponents) + 1) + 0.6, 2.3))
    axes[0].imshow(image_u8)
    axes[0].set_title("image", fontsize=9)
    for ax, s, m in zip(axes[1:], exponents, scaled):
        shown = ax.imshow(m, cmap="inferno", vmin=0, vmax=1)
        ax.set_title(f"s = {s:g}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].set_ylabel("IG$^s$, min-max", fontsize=9)
    fig.colorbar(shown, ax=list(axes), fraction=0.02, pad=0.01, label="scaled IG")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, pdf, png)
