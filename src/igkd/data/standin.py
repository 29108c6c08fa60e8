"""A labelled stand-in for the external evaluation set when the real one is not at hand.

The demo has no ImageNet (and cannot download anything), so it exports its own test
split, rotated by a few degrees, as a flat `root/<class>/*.png` folder: the evaluation
code path (folder reading, class mapping, scoring, figure) then runs end to end on a
mildly shifted distribution. It is never presented as ImageNet: the folder, the CSV and
the figure carry the configured description saying what it is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from igkd.io import FOLDER_MODE, InputError, created_mode

RESAMPLE = Image.Resampling.BILINEAR
DESCRIPTION_FILE = "DESCRIPTION.txt"


def rotate_images(images: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate uint8 (N,H,W,3) images about their centre (bilinear, same size, black fill)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"expected uint8 images (N,H,W,3), got {images.dtype} {images.shape}")
    return (
        np.stack(
            [
                np.asarray(Image.fromarray(image).rotate(degrees, resample=RESAMPLE, fillcolor=(0, 0, 0)))
                for image in images
            ]
        )
        if len(images)
        else images.copy()
    )


def export_class_folder(
    images: np.ndarray, labels: np.ndarray, classes, root: str | os.PathLike, description: str
) -> int:
    """Write `root/<class>/<row>.png` (row = index in the source split) and a description file.

    The folder is built beside `root` and renamed into place, so a killed job leaves no
    half-written folder. Returns the number of images written.
    """
    root = Path(root)
    if len(images) != len(labels):
        raise InputError(f"{len(images)} images but {len(labels)} labels")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp.{root.name}.", dir=root.parent))
    try:
        tmp.chmod(created_mode(FOLDER_MODE))  # mkdtemp's 0700 would hide the folder from the group
        width = len(str(max(len(images) - 1, 0)))
        for row, (image, label) in enumerate(zip(images, labels)):
            folder = tmp / str(classes[label])
            folder.mkdir(exist_ok=True)
            Image.fromarray(image).save(folder / f"{row:0{width}d}.png")
        (tmp / DESCRIPTION_FILE).write_text(description + "\n")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(images)
