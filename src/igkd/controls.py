"""The scientific controls: how each one detaches the teacher's knowledge from its image.

A control keeps a method's parts but breaks the link between an image and what the
teacher says about it, so a gain that survives is regularisation, not knowledge about
that image (the registry in `igkd.training.methods` names them):

- `shuffled_KD` / `shuffled_IG`: image i trains with the soft targets / overlay map of
  image `derangement[i]`, any other training image (about 9 in 10 of another class), never
  its own (`teacher_rows`);
- `shuffled_KD_in_class` / `shuffled_IG_in_class`: the same, but image i's source is
  another image *of its own class* (`class_derangement`): what is left of the teacher's
  output is what it says about the class, not about this image. Against the aligned
  method it isolates image-specific knowledge; against the across-class shuffle, the
  class-level content of the soft targets or maps;
- `reference_defect`: the rows are computed the reference code's way, over shuffled,
  crop+flip-augmented loaders, and looked up by dataset index; as in the reference code,
  logits and maps come from two separately shuffled passes (`loader_order`,
  `augment_like_loader`; `igkd.attribution.reference_defect` writes the file);
- `<method>@random`: the overlay blends in uniform noise (`random_map`, registered as the
  attribution `random`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from igkd.io import InputError
from igkd.training.augment import crop_flip, to_float

AUGMENT_CHUNK = 4096  # images per float batch when re-augmenting a training set


def derangement(n: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """A fixed-seed permutation with no fixed point, uniform over such permutations
    (rejection sampling; about e = 2.7 draws): under a shuffled_* control no image keeps
    its own row, not even the one or so a plain permutation would leave in place."""
    if n < 2:
        raise InputError(f"shuffled_* controls: a derangement needs at least 2 rows (training images), got {n}")
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            return perm


def class_derangement(labels: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """(rows, kept): rows[i] is another training image of image i's class, a uniform
    derangement within each class (`derangement`, one fixed-seed draw per class in class
    order); a class with a single image keeps its own row, and `kept` counts such rows
    (reported, since those images still see their own teacher output)."""
    labels = np.asarray(labels)
    if len(labels) < 2:
        raise InputError(
            f"shuffled_* controls: a derangement needs at least 2 rows (training images), got {len(labels)}"
        )
    rows = np.arange(len(labels))
    kept = 0
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < 2:
            kept += len(members)
            continue
        rows[members] = members[derangement(len(members), (seed, int(cls)))]
    return rows, kept


@dataclass(frozen=True)
class TeacherRows:
    """Which precompute row feeds each training image's overlay map and its soft targets."""

    maps: np.ndarray
    logits: np.ndarray

    def record(self, method, rows: np.ndarray, labels: np.ndarray) -> dict:
        """What a shuffled control's metrics.json says about this run's training `rows`: the
        shuffle's scope, how many images still get their own row (a class of one image) and
        the share whose source image has the same class (1 within class, about 0.1 across)."""
        shuffled = [part for part, on in ((self.maps, method.shuffle_maps), (self.logits, method.shuffle_logits)) if on]
        if not shuffled:
            return {}
        labels = np.asarray(labels)
        sources = np.concatenate([part[rows] for part in shuffled])
        own = np.concatenate([rows] * len(shuffled))
        return {
            "control_scope": method.shuffle_scope,
            "control_rows_kept": int((sources == own).sum()),
            "control_same_class": round(float((labels[sources] == labels[own]).mean()), 6),
        }


def _shuffled(labels: np.ndarray, scope: str, seed: int) -> np.ndarray:
    if scope == "class":
        return class_derangement(labels, seed)[0]
    return derangement(len(labels), seed)


def teacher_rows(method, labels: np.ndarray, control_seed: int) -> TeacherRows:
    """Which precompute row feeds training image i's overlay map and its soft targets.

    Row i for both (aligned) unless the method is a shuffled control: then a fixed
    derangement (maps: seed control_seed, logits: control_seed + 1), over all training
    images or within each class (`method.shuffle_scope`), detaches the rows.
    """
    labels = np.asarray(labels)
    aligned = np.arange(len(labels))
    maps = _shuffled(labels, method.shuffle_scope, control_seed) if method.shuffle_maps else aligned
    logits = _shuffled(labels, method.shuffle_scope, control_seed + 1) if method.shuffle_logits else aligned
    return TeacherRows(maps, logits)


def loader_order(n: int, seed: int) -> np.ndarray:
    """The order a shuffled loader visits n images in (one fixed-seed permutation; a plain
    permutation, as a DataLoader's shuffle is, so an image may keep its own row by chance)."""
    return np.random.default_rng(seed).permutation(n)


def augment_like_loader(images: np.ndarray, padding: int, flip: bool, generator: torch.Generator) -> np.ndarray:
    """uint8 (N,H,W,3) -> the same images randomly cropped (zero padding) and flipped, uint8.

    The students' own `crop_flip`, so the defect's augmentation is the training loader's;
    uint8 -> [0,1] -> uint8 round-trips exactly. Chunked to bound float memory.
    """
    out = np.empty_like(images)
    for lo in range(0, len(images), AUGMENT_CHUNK):
        chunk = np.ascontiguousarray(images[lo : lo + AUGMENT_CHUNK])
        batch = to_float(torch.from_numpy(chunk).permute(0, 3, 1, 2))
        moved = crop_flip(batch, padding, flip, generator)
        out[lo : lo + AUGMENT_CHUNK] = moved.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def random_map(model, x, target, settings):
    """The `random` attribution: uniform noise with no relation to the image or the teacher."""
    generator = settings["generator"]
    attr = torch.rand(x.shape, generator=generator).to(x.device)
    return attr, torch.full((x.shape[0],), float("nan"), device=x.device)
