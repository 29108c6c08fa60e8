"""The same test images under several attribution methods of the teacher (igkd.registry: igkd's and plugins')."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from igkd import registry
from igkd.attribution.maps import attributor, to_map
from igkd.io import InputError
from igkd.plots import save_figure
from igkd.plots.examples import Examples

LABELS = {
    "ig": "integrated\ngradients",
    "saliency": "saliency",
    "smoothgrad": "SmoothGrad",
    "gradientshap": "GradientShap",
    "gradcam": "Grad-CAM",
    "random": "random\n(control)",
}


def attribution_maps(
    model: torch.nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    names: Sequence[str],
    settings: Mapping,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """{name: (B,H,W) map}: sum over channels of |attribution|, at the input's resolution
    (to_map, as the precompute does), each map min-max scaled to [0,1] for display. `x` is
    in the model's input space; `settings[name]` the attribution's settings
    (igkd.attribution.precompute.attribution_settings)."""
    unknown = [n for n in names if n not in registry.ATTRIBUTIONS]
    if unknown:
        known = sorted(registry.ATTRIBUTIONS)
        raise InputError(f"figures.attributions.methods: unknown {unknown}; expected some of {known}")
    model.eval()
    out = {}
    for name in names:
        torch.manual_seed(seed)  # noise-based methods draw from the global generator
        generator = torch.Generator().manual_seed(seed)
        attr, _ = attributor(name)(model, x, targets, {**settings.get(name, {}), "generator": generator})
        maps = to_map(attr.detach(), x.shape[-2:]).cpu().numpy()
        low = maps.min(axis=(1, 2), keepdims=True)
        high = maps.max(axis=(1, 2), keepdims=True)
        out[name] = (maps - low) / np.maximum(high - low, 1e-12)
    return out


def fig_attributions(examples: Examples, maps: Mapping[str, np.ndarray], title: str, pdf: str, png: str) -> None:
    """Rows: image, then one row per attribution method; columns: images."""
    rows = [("image", None), *maps.items()]
    n = len(examples.images)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.45 * n + 1.3, 1.45 * len(rows) + 0.6), squeeze=False)
    for col in range(n):
        axes[0, col].imshow(examples.images[col])
        axes[0, col].set_title(examples.title(col), fontsize=9)
        for row, (_, m) in enumerate(rows[1:], start=1):
            shown = axes[row, col].imshow(m[col], cmap="inferno", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for row, (name, _) in enumerate(rows):
        axes[row, 0].set_ylabel(LABELS.get(name, name), fontsize=8)
    fig.colorbar(shown, ax=axes[1:, :].ravel().tolist(), fraction=0.02, pad=0.01, label="|attribution|, min-max")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, pdf, png)
