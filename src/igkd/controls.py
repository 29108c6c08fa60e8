"""The scientific controls: how each one detaches the teacher's knowledge from its image.

A control keeps a method's parts but breaks the link between an image and what the
teacher says about it, so a gain that survives is regularisation, not knowledge about
that image (the registry in `igkd.training.methods` names them):

- `shuffled_KD` / `shuffled_IG`: image i trains with the soft targets / overlay map of
  image `derangement[i]`, never its own (`teacher_rows`);
- `reference_defect`: the rows are computed the reference code's way, over a shuffled,
  crop+flip-augmented loader, and looked up by dataset index (`loader_order`,
  `augment_like_loader`; `igkd.attribution.reference_defect` writes the file);
- `<method>@random`: the overlay blends in uniform noise (`random_map`, registered as the
  attribution `random`).
"""

from __future__ import annotations

import numpy as np
import torch

from igkd.io import InputError
from igkd.training.augment import crop_flip, to_float

AUGMENT_CHUNK = 4096  # images per float batch when re-augmenting a training set


def derangement(n: int, seed: int) -> np.ndarray:
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


def teacher_rows(method, n_train: int, control_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which precompute row feeds training image i's overlay map and its soft targets.

    Row i for both (aligned) unless the method is a shuffled control: then a fixed
    derangement (maps: seed control_seed, logits: control_seed + 1) detaches the rows.
    """
    aligned = np.arange(n_train)
    map_rows = derangement(n_train, control_seed) if method.shuffle_maps else aligned
    logit_rows = derangement(n_train, control_seed + 1) if method.shuffle_logits else aligned
    return map_rows, logit_rows


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
