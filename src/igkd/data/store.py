"""The canonical dataset file `results/{ds}/data.h5` that every later stage reads.

One layout for every source (CIFAR-10, digits, image folders): uint8 images (N,H,W,3),
int64 labels, class names, a stratified validation index carved from the training set,
and content checksums so downstream files can prove which data they were built from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from igkd.io import InputError, atomic_path, sha256_arrays


@dataclass(frozen=True)
class Splits:
    """Images as uint8 (N,H,W,3) and labels as int64 (N,) for the train and test sets."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    val_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        check_images("train_images", self.train_images, self.train_labels, len(self.classes))
        check_images("test_images", self.test_images, self.test_labels, len(self.classes))
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise InputError(
                f"train images are {self.train_images.shape[1:]} but test images are "
                f"{self.test_images.shape[1:]}; expected the same (H,W,3)"
            )

    @property
    def train_index(self) -> np.ndarray:
        """Training rows not held out for validation, in dataset order."""
        keep = np.ones(len(self.train_labels), dtype=bool)
        keep[self.val_index] = False
        return np.flatnonzero(keep)

    def checksum(self) -> str:
        """Content hash of images and labels, computed once per object (a full CIFAR-10
        hash takes about a second; every stage records it)."""
        if "_checksum" not in self.__dict__:
            sha = sha256_arrays(self.train_images, self.train_labels, self.test_images, self.test_labels)
            object.__setattr__(self, "_checksum", sha)
        return self.__dict__["_checksum"]


def check_images(name: str, images: np.ndarray, labels: np.ndarray, n_classes: int) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"{name}: expected uint8 array (N,H,W,3), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise InputError(f"{name}: {images.shape[0]} images but labels of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(f"{name}: labels must lie in 0..{n_classes - 1}")


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (N,H,W,3) images to size x size with antialiased bilinear filtering."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def stratified_val_index(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified validation subset (empty when fraction is 0); a class
    of one row always stays on the training side."""
    if fraction <= 0:
        return np.zeros(0, dtype=np.int64)
    return stratified_pick(labels, fraction, seed, side="test")


def stratified_pick(labels: np.ndarray, fraction: float, seed: int, *, side: str) -> np.ndarray:
    """Sorted positions of a stratified random `fraction` of `labels`: scikit-learn's split
    (`side` "train": its train_size side, "test": its test_size side; the two round
    differently), except where it refuses a small set (a class of one row, fewer rows on a
    side than classes). Then `per_class_pick`, which picks at least one row of every class
    and, for the test side, leaves every class at least one row on the other side.
    """
    # scikit-learn costs 1.5 s of start-up: only jobs that subsample import it
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(labels))
    try:
        train, test = train_test_split(positions, **{f"{side}_size": fraction}, stratify=labels, random_state=seed)
    except ValueError:
        return per_class_pick(labels, fraction, seed, leave=1 if side == "test" else 0)
    return np.sort(train if side == "train" else test).astype(np.int64)


def per_class_pick(labels: np.ndarray, fraction: float, seed: int, *, leave: int) -> np.ndarray:
    """Sorted positions of a seeded random `fraction` of every class's rows, for sets too
    small for scikit-learn's stratified split.

    A class of m rows gives round(fraction * m) of them, at least one and at most m - leave
    (leave=1 keeps one row of the class on the other side of the split).
    """
    rng = np.random.default_rng(seed)
    picked = [np.zeros(0, dtype=np.int64)]
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        most = max(len(members) - leave, 0)
        k = min(max(int(np.floor(fraction * len(members) + 0.5)), min(1, most)), most)
        picked.append(rng.choice(members, k, replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def with_val_split(splits: Splits, fraction: float, seed: int) -> Splits:
    return Splits(
        splits.train_images,
        splits.train_labels,
        splits.test_images,
        splits.test_labels,
        splits.classes,
        stratified_val_index(splits.train_labels, fraction, seed),
    )


def write_data_h5(path: str | os.PathLike, splits: Splits, attrs: dict) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for split in ("train", "test"):
            group = h5.create_group(split)
            group.create_dataset("images", data=getattr(splits, f"{split}_images"))
            group.create_dataset("labels", data=getattr(splits, f"{split}_labels").astype(np.int64))
        h5.create_dataset("val_index", data=splits.val_index.astype(np.int64))
        h5.attrs["classes"] = list(splits.classes)
        h5.attrs["checksum"] = splits.checksum()
        mean, std = channel_stats(splits.train_images)
        h5.attrs["mean"] = mean
        h5.attrs["std"] = std
        for key, value in attrs.items():
            h5.attrs[key] = value


def read_data_h5(path: str | os.PathLike) -> Splits:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: dataset file not found (run the prepare_data rule)")
    try:
        with h5py.File(path, "r") as h5:
            splits = Splits(
                h5["train/images"][()],
                h5["train/labels"][()].astype(np.int64),
                h5["test/images"][()],
                h5["test/labels"][()].astype(np.int64),
                tuple(str(c) for c in h5.attrs["classes"]),
                h5["val_index"][()].astype(np.int64),
            )
            stored = h5.attrs["checksum"]
    except (OSError, KeyError) as err:
        raise InputError(f"{path}: not a valid igkd dataset file ({err})") from err
    except InputError as err:
        raise InputError(f"{path}: {err}") from err
    if splits.checksum() != stored:
        raise InputError(f"{path}: content checksum does not match the stored one (file corrupted?)")
    return splits


def data_attrs(path: str | os.PathLike) -> dict:
    with h5py.File(path, "r") as h5:
        return {key: h5.attrs[key] for key in h5.attrs}


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images on the [0,1] scale."""
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    return x.mean(0), x.std(0)
