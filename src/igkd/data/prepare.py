"""Any configured source -> the canonical Splits (resized, with a validation split)."""

from __future__ import annotations

from igkd.data.store import Splits, resize_images, with_val_split


def load_source(dataset: dict, raw: str | None) -> Splits:
    """Read the dataset named in the config from `raw` (archive, folder, or nothing for digits)."""
    name, size = dataset["name"], dataset["image_size"]
    if name == "digits":
        from igkd.data.digits import load_digits_splits

        splits = load_digits_splits(size, dataset["digits"]["test_fraction"], dataset["split_seed"])
    elif name == "cifar10":
        from igkd.data.cifar10 import read_cifar10

        splits = read_cifar10(raw, verify=dataset["cifar10"]["verify"])
    elif name == "imagefolder":
        from igkd.data.imagefolder import read_imagefolder

        splits = read_imagefolder(raw, size)
    else:
        raise ValueError(f"dataset.name: unknown dataset {name!r}")
    splits = Splits(
        resize_images(splits.train_images, size),
        splits.train_labels,
        resize_images(splits.test_images, size),
        splits.test_labels,
        splits.classes,
    )
    return with_val_split(splits, dataset["val_fraction"], dataset["split_seed"])
