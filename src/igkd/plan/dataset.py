"""How many images each split has: what every training's steps per epoch come from.

A prepared data.h5 says it exactly; before prepare_data has run the sizes follow from
the dataset (CIFAR-10's fixed splits, scikit-learn's 1,797 digits, an image folder's
files) and the split fractions, rounded as scikit-learn's stratified split rounds them
(the held-out side rounds up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from igkd.io import InputError

CIFAR10 = {"train": 50_000, "test": 10_000, "classes": 10}
DIGITS = {"images": 1_797, "classes": 10}  # scikit-learn's load_digits
# torchvision's IMG_EXTENSIONS plus .gif, as igkd.data.imagefolder reads them
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


@dataclass(frozen=True)
class DataSize:
    n_train: int  # training rows (validation rows included)
    n_test: int
    n_val: int  # validation rows held out of the training rows
    classes: int
    image_size: int
    source: str  # where the numbers come from, for the plan's notes

    def pool(self, exclude_val: bool) -> int:
        """Rows a student draws its subsample from."""
        return self.n_train - self.n_val if exclude_val else self.n_train


def held_out(fraction: float, n: int) -> int:
    """Rows on the held-out side of a stratified split (scikit-learn: ceil)."""
    return math.ceil(fraction * n) if fraction > 0 else 0


def kept(fraction: float, n: int) -> int:
    """Rows on the kept side of a split (scikit-learn's train_size: floor); all for 1.0."""
    return n if fraction >= 1 else max(math.floor(fraction * n), 1)


def data_size(config: dict, data_h5: Path, trust_file: bool = True) -> DataSize:
    """Split sizes from `data_h5` when it exists (and `trust_file`: prepare_data is not
    about to rewrite it), else from the dataset's known sizes."""
    dataset = config["dataset"]
    size = int(dataset["image_size"])
    if trust_file and data_h5.is_file():
        return _from_h5(data_h5, size)
    name = dataset["name"]
    if name == "cifar10":
        n_train, n_test, classes = CIFAR10["train"], CIFAR10["test"], CIFAR10["classes"]
        source = "CIFAR-10's 50,000 / 10,000 split"
    elif name == "digits":
        n_test = held_out(dataset["digits"]["test_fraction"], DIGITS["images"])
        n_train, classes = DIGITS["images"] - n_test, DIGITS["classes"]
        source = f"scikit-learn digits, {DIGITS['images']:,} images, test_fraction {dataset['digits']['test_fraction']}"
    else:
        n_train, n_test, classes = _count_folder(Path(dataset["imagefolder"]["root"]))
        source = f"image files under {dataset['imagefolder']['root']}"
    n_val = held_out(dataset["val_fraction"], n_train)
    return DataSize(n_train, n_test, n_val, classes, size, source)


def _from_h5(path: Path, size: int) -> DataSize:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            n_train, n_test = len(h5["train/labels"]), len(h5["test/labels"])
            n_val = len(h5["val_index"])
            classes = len(h5.attrs["classes"])
    except (OSError, KeyError) as err:
        raise InputError(f"{path}: not a readable igkd dataset file ({err})") from err
    return DataSize(n_train, n_test, n_val, classes, size, str(path))


def count_images(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _count_folder(root: Path) -> tuple[int, int, int]:
    """(train images, test images, classes) of an image folder with train/ and test/."""
    train, test = root / "train", root / "test"
    if not train.is_dir() or not test.is_dir():
        raise InputError(f"dataset.imagefolder.root {root}: expected folders train/ and test/ to count the images")
    classes = sum(1 for p in train.iterdir() if p.is_dir() and not p.name.startswith("."))
    return count_images(train), count_images(test), classes
