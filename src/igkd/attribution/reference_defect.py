"""The reference code's misaligned precompute, rebuilt on purpose as the `reference_defect` control.

The reference code computed teacher logits and IG maps over a shuffled, randomly
augmented (crop + flip) training loader and then looked the rows up by dataset index,
so image i was trained with the soft targets and overlay of some other, augmented image.
Here that happens deliberately and reproducibly: the training images are put in a
fixed-seed loader order, cropped and flipped with a fixed-seed generator, passed to
`igkd.attribution.precompute.precompute` in that order, and the rows are stored in loader order.
Row i therefore belongs to image `source_index[i]` (augmented), not to image i; the file
records `source_index` and the loader settings so a test (and a reader) can prove it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from igkd.attribution.precompute import NO_RECORDS, AttributionJob, Records, precompute
from igkd.controls import augment_like_loader, loader_order
from igkd.io import commit
from igkd.runtime import DEFAULT_RUNTIME, Runtime

VARIANT = "reference_defect"


@dataclass(frozen=True)
class ReferenceLoader:
    """The loader the reference code precomputed over: its shuffle seed (plus one: its
    crop + flip draws) and the students' crop padding and flip."""

    seed: int
    crop_padding: int
    flip: bool

    def records(self) -> dict:
        """The file attrs that identify this loader."""
        return {
            "control": VARIANT,
            "loader_seed": self.seed,
            "loader_crop_padding": self.crop_padding,
            "loader_flip": self.flip,
        }


def precompute_reference_defect(
    teacher,
    images: np.ndarray,
    labels: np.ndarray,
    out_path: str | os.PathLike,
    job: AttributionJob,
    loader: ReferenceLoader,
    runtime: Runtime = DEFAULT_RUNTIME,
    records: Records = NO_RECORDS,
) -> dict:
    """Write the misaligned file: row i = logits/map of augmented image order[i].

    The loader's seed fixes the order (a permutation) and, plus one, the augmentation.
    The rows are computed into `<out>.stage` (whose `.partial` resumes like any
    precompute), `source_index` is added, and the finished file is renamed into place.
    """
    out_path = Path(out_path)
    order = loader_order(len(labels), loader.seed)
    generator = torch.Generator().manual_seed(loader.seed + 1)
    augmented = augment_like_loader(images[order], loader.crop_padding, loader.flip, generator)
    stage = out_path.with_name(out_path.name + ".stage")
    stamped = Records({**records.provenance, **loader.records()}, records.environment)
    summary = precompute(teacher, augmented, labels[order], stage, job, runtime, stamped)
    with h5py.File(stage, "r+") as h5:
        h5.create_dataset("source_index", data=order.astype(np.int64))
    commit(stage, out_path)
    runtime.log(f"{VARIANT}: row i holds the teacher's outputs for augmented training image source_index[i]")
    return summary


def source_index(path: str | os.PathLike) -> np.ndarray:
    """The image each row of a reference_defect file was computed from."""
    with h5py.File(path, "r") as h5:
        return h5["source_index"][()]
