"""The reference code's misaligned precompute, rebuilt on purpose as the `reference_defect` control.

The reference code computed teacher logits and IG maps over a shuffled, randomly
augmented (crop + flip) training loader and then looked the rows up by dataset index,
so image i was trained with the soft targets and overlay of some other, augmented image.
Here that happens deliberately and reproducibly: the training images are put in a
fixed-seed loader order, cropped and flipped with a fixed-seed generator, passed to
`igkd.precompute.precompute` in that order, and the rows are stored in loader order.
Row i therefore belongs to image `source_index[i]` (augmented), not to image i; the file
records `source_index` and the loader settings so a test (and a reader) can prove it.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch

from igkd.augment import crop_flip, to_float
from igkd.io import commit
from igkd.precompute import precompute

VARIANT = "reference_defect"


def loader_order(n: int, seed: int) -> np.ndarray:
    """The order a shuffled loader visits n images in (one fixed-seed permutation; a plain
    permutation, as a DataLoader's shuffle is, so an image may keep its own row by chance)."""
    return np.random.default_rng(seed).permutation(n)


def augment_images(images: np.ndarray, padding: int, flip: bool, generator: torch.Generator, chunk: int = 4096) -> np.ndarray:
    """uint8 (N,H,W,3) -> the same images randomly cropped (zero padding) and flipped, uint8.

    The students' own `crop_flip`, so the defect's augmentation is the training loader's;
    uint8 -> [0,1] -> uint8 round-trips exactly. Chunked to bound float memory.
    """
    out = np.empty_like(images)
    for lo in range(0, len(images), chunk):
        batch = to_float(torch.from_numpy(np.ascontiguousarray(images[lo : lo + chunk])).permute(0, 3, 1, 2))
        moved = crop_flip(batch, padding, flip, generator)
        out[lo : lo + chunk] = moved.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def precompute_reference_defect(
    teacher: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    out_path: str | os.PathLike,
    *,
    attribution: str,
    settings: dict,
    mean,
    std,
    provenance: dict,
    loader_seed: int,
    padding: int,
    flip: bool,
    chunk: int = 256,
    batch: int = 64,
    device: str = "cpu",
    seed: int = 0,
    environment: dict | None = None,
    log=print,
) -> dict:
    """Write the misaligned file: row i = logits/map of augmented image order[i].

    `loader_seed` fixes the loader order (permutation) and, plus one, the augmentation.
    The rows are computed into `<out>.stage` (whose `.partial` resumes like any
    precompute), `source_index` is added, and the finished file is renamed into place.
    """
    out_path = Path(out_path)
    order = loader_order(len(labels), loader_seed)
    generator = torch.Generator().manual_seed(loader_seed + 1)
    augmented = augment_images(images[order], padding, flip, generator)
    stage = out_path.with_name(out_path.name + ".stage")
    loader = {"control": VARIANT, "loader_seed": loader_seed, "loader_crop_padding": padding, "loader_flip": flip}
    summary = precompute(
        teacher,
        augmented,
        labels[order],
        stage,
        attribution=attribution,
        settings=settings,
        mean=mean,
        std=std,
        provenance={**provenance, **loader},
        chunk=chunk,
        batch=batch,
        device=device,
        seed=seed,
        environment=environment,
        log=log,
    )
    with h5py.File(stage, "r+") as h5:
        h5.create_dataset("source_index", data=order.astype(np.int64))
    commit(stage, out_path)
    log(f"{VARIANT}: row i holds the teacher's outputs for augmented training image source_index[i]")
    return summary


def source_index(path: str | os.PathLike) -> np.ndarray:
    """The image each row of a reference_defect file was computed from."""
    with h5py.File(path, "r") as h5:
        return h5["source_index"][()]
