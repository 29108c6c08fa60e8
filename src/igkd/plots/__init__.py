"""Paper figures with matplotlib, one module per figure; `save_figure` writes PDF and PNG atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from igkd.io import atomic_path  # noqa: E402

DPI = 150


def save_figure(fig, pdf: str, png: str) -> None:
    for path in (pdf, png):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], dpi=DPI, bbox_inches="tight")
    plt.close(fig)
