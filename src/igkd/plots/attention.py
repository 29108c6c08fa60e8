"""Teacher vs student attention maps (the maps attention transfer matches) on test images."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch

from igkd.architectures import forward_with_tap
from igkd.plots import save_figure
from igkd.plots.examples import Examples
from igkd.training.distiller import attention_map


@torch.no_grad()
def attention_maps(model: torch.nn.Module, x: torch.Tensor, tap: int | str) -> np.ndarray:
    """(B,h,w) attention maps after `tap` (the teacher's feature block, or a student's
    module name): L2-normalised over pixels, as in the AT loss, so teacher and student maps
    are directly comparable."""
    model.eval()
    _, features = forward_with_tap(model, tap, x) if isinstance(tap, str) else model(x, tap=tap)
    return attention_map(features).reshape(features.shape[0], *features.shape[2:]).cpu().numpy()


def fig_attention(
    examples: Examples,
    teacher_maps: np.ndarray,
    student_maps: Mapping[str, np.ndarray],
    block: int,
    title: str,
    pdf: str,
    png: str,
) -> None:
    """Rows: image, teacher map, one row per student; each student panel gives the cosine
    similarity of its map to the teacher's (1 = same map)."""
    rows = [("image", None), ("teacher", teacher_maps), *((f"student ({m})", v) for m, v in student_maps.items())]
    n = len(examples.images)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.45 * n + 1.0, 1.45 * len(rows) + 0.6), squeeze=False)
    vmax = max(float(m.max()) for _, m in rows[1:])
    for col in range(n):
        axes[0, col].imshow(examples.images[col])
        axes[0, col].set_title(examples.title(col), fontsize=9)
        for row, (_, maps) in enumerate(rows[1:], start=1):
            shown = axes[row, col].imshow(maps[col], cmap="viridis", vmin=0, vmax=vmax)
            if row > 1:
                cosine = float((maps[col] * teacher_maps[col]).sum())
                axes[row, col].set_xlabel(f"cos to teacher {cosine:.2f}", fontsize=7, labelpad=2)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for row, (name, _) in enumerate(rows):
        axes[row, 0].set_ylabel(name, fontsize=9)
    fig.colorbar(shown, ax=axes[1:, :].ravel().tolist(), fraction=0.02, pad=0.01, label=f"attention (block {block})")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, pdf, png)
