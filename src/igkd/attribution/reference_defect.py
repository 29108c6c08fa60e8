"""The reference code's misaligned precompute, rebuilt on purpose as the `reference_defect` control.

The reference code computed teacher logits and IG maps over shuffled, randomly
augmented (crop + flip) training loaders and then looked the rows up by dataset index,
so image i was trained with the soft targets and overlay of some other, augmented image.
It did so in two separate passes, each with its own shuffle (`Compute_logits_and_attn.py`
for the logits, `Compute_IGs.py` for the maps), so the soft targets and the map image i
got came from two *different* wrong images. Here that happens deliberately and
reproducibly: for the maps, the training images are put in a fixed-seed loader order,
cropped and flipped with a fixed-seed generator and passed to
`igkd.attribution.precompute.precompute` in that order; for the logits, a second loader
with its own seeds does the same and only the teacher's outputs are kept. Row i's map
belongs to image `map_source_index[i]`, its logits to image `logit_source_index[i]`
(each augmented), not to image i; the file records both and the loader settings so a
test (and a reader) can prove it.
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
from igkd.training.amp import full_fp32
from igkd.training.augment import to_float

VARIANT = "reference_defect"


@dataclass(frozen=True)
class ReferenceLoader:
    """The loaders the reference code precomputed over: the maps' pass shuffles with `seed`
    and draws its crops + flips from seed + 1, the logits' pass from seed + 2 and + 3;
    both use the students' crop padding and flip."""

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
            "loader_passes": "maps: seed, seed + 1; logits: seed + 2, seed + 3",
        }

    def passes(self) -> dict[str, int]:
        """Each pass's shuffle seed (its crop + flip draws use the next integer)."""
        return {"maps": self.seed, "logits": self.seed + 2}


def loader_pass(images: np.ndarray, loader: ReferenceLoader, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, augmented images in that order): one shuffled, crop + flip-augmented pass."""
    order = loader_order(len(images), seed)
    generator = torch.Generator().manual_seed(seed + 1)
    return order, augment_like_loader(images[order], loader.crop_padding, loader.flip, generator)


def teacher_logits(teacher, images: np.ndarray, batch: int, runtime: Runtime = DEFAULT_RUNTIME) -> np.ndarray:
    """The teacher's logits (N, K) for uint8 (N,H,W,3) images, computed as the precompute
    computes them (the same BatchNorm-folded copy, normalisation and float32)."""
    from igkd.attribution.maps import inference_copy  # captum: only the precompute stage needs it

    device = runtime.device
    model = inference_copy(teacher.model).to(device)
    out = []
    with full_fp32(device), torch.inference_mode():
        for lo in range(0, len(images), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(images[lo : lo + batch])).to(device)
            out.append(model(teacher.norm(to_float(chunk.permute(0, 3, 1, 2)))).float().cpu())
    return torch.cat(out).numpy()


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
    """Write the misaligned file: row i = map of augmented image map_source_index[i] and
    logits of augmented image logit_source_index[i], from two independently shuffled passes.

    The maps' pass is a full precompute into `<out>.stage` (whose `.partial` resumes like
    any precompute); the logits' pass then replaces its `logits` (its gain and completeness
    columns stay those of the maps' pass, whose IG they check); both source indices are
    added, and the finished file is renamed into place.
    """
    out_path = Path(out_path)
    seeds = loader.passes()
    map_order, map_images = loader_pass(images, loader, seeds["maps"])
    stage = out_path.with_name(out_path.name + ".stage")
    stamped = Records({**records.provenance, **loader.records()}, records.environment)
    summary = precompute(teacher, map_images, labels[map_order], stage, job, runtime, stamped)
    del map_images
    logit_order, logit_images = loader_pass(images, loader, seeds["logits"])
    logits = teacher_logits(teacher, logit_images, job.batch, runtime)
    with h5py.File(stage, "r+") as h5:
        h5["logits"][...] = logits
        h5.create_dataset("map_source_index", data=map_order.astype(np.int64))
        h5.create_dataset("logit_source_index", data=logit_order.astype(np.int64))
    commit(stage, out_path)
    same = int((map_order == logit_order).sum())
    runtime.log(
        f"{VARIANT}: row i holds the map of augmented training image map_source_index[i] and the logits of "
        f"logit_source_index[i] (two shuffled passes; {same} of {len(labels)} rows drew the same image in both)"
    )
    return summary


def source_indices(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(map_source_index, logit_source_index): the image each row's map and logits of a
    reference_defect file were computed from."""
    with h5py.File(path, "r") as h5:
        return h5["map_source_index"][()], h5["logit_source_index"][()]
