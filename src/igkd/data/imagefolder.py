"""Image-folder datasets: `root/{train,test}/<class>/*` for training, flat `root/<class>/*` for evaluation.

A class map (WNID -> CIFAR-10 class) and a fixed class order let ImageNet-style folders be
scored by a model trained on CIFAR-10: folder names are mapped, unmapped folders are
skipped with a logged note, and labels follow `class_order` so they line up with the model.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, has_file_allowed_extension

from igkd.data.store import Splits, resize_images
from igkd.io import InputError

# torchvision's image suffixes plus .gif, which igkd has always read and torchvision lacks
# (torchvision's list also brings .ppm and .pgm). Matched case-insensitively.
IMAGE_SUFFIXES = (*IMG_EXTENSIONS, ".gif")
CLASS_MAP_HEADER_KEY = "wnid"  # first header cell of a class map; the second names the target classes
CLASS_MAP_COLUMNS = 2
NAMES_IN_NOTE = 5  # how many skipped folder names a log note lists before "..."

log = logging.getLogger(__name__)


def read_imagefolder(
    root: str | os.PathLike,
    size: int,
    *,
    require_same_size: bool = False,
    class_map: dict[str, str] | None = None,
    class_order: tuple[str, ...] | None = None,
) -> Splits:
    """Read `root/train/<class>/*` and `root/test/<class>/*` as size x size RGB `Splits`.

    Classes are the sorted (mapped) train folder names unless `class_order` fixes them;
    test classes must be a subset of the train classes, so every test label was trained on.
    """
    root = _existing_dir(Path(root), "dataset root")
    train = _scan(_existing_dir(root / "train", "train/ folder"), class_map)
    test = _scan(_existing_dir(root / "test", "test/ folder"), class_map)
    unseen = sorted({name for _, name in test} - {name for _, name in train})
    if unseen:
        raise InputError(f"{root / 'test'}: classes {unseen} have no folder in {root / 'train'}")
    classes = _class_tuple({name for _, name in train}, class_order)
    images = _load_images([path for path, _ in train + test], size, require_same_size)
    return Splits(
        images[: len(train)],
        _labels(train, classes, root / "train"),
        images[len(train) :],
        _labels(test, classes, root / "test"),
        classes,
    )


def read_eval_folder(
    root: str | os.PathLike,
    size: int,
    class_map: dict[str, str] | None = None,
    class_order: tuple[str, ...] | None = None,
    *,
    require_same_size: bool = False,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read a flat `root/<class or wnid>/*` tree (no train/test split) for evaluation only.

    Returns uint8 (N,size,size,3) images, int64 labels and the class names the labels index.
    """
    root = _existing_dir(Path(root), "evaluation folder")
    samples = _scan(root, class_map)
    classes = _class_tuple({name for _, name in samples}, class_order)
    images = _load_images([path for path, _ in samples], size, require_same_size)
    return images, _labels(samples, classes, root), classes


def read_class_map(path: str | os.PathLike) -> dict[str, str]:
    """Read a two-column CSV/TSV `wnid,<class>` (header row first) into {wnid: class name}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: class map not found")
    text = path.read_text()
    delimiter = "\t" if "\t" in text.partition("\n")[0] else ","
    rows = [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in row)]
    if not rows or len(rows[0]) != CLASS_MAP_COLUMNS or rows[0][0].strip() != CLASS_MAP_HEADER_KEY:
        raise InputError(f"{path}: expected a header row '{CLASS_MAP_HEADER_KEY},<class column>'")
    mapping: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        if len(cells) != CLASS_MAP_COLUMNS or not all(cells):
            raise InputError(f"{path}: row {line} should be two non-empty cells, got {row}")
        if mapping.get(cells[0], cells[1]) != cells[1]:
            raise InputError(f"{path}: {cells[0]} is mapped to both {mapping[cells[0]]} and {cells[1]}")
        mapping[cells[0]] = cells[1]
    return mapping


def _existing_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InputError(f"{path}: {what} not found")
    return path


def _scan(split_dir: Path, class_map: dict[str, str] | None) -> list[tuple[Path, str]]:
    """(image file, class name) pairs in sorted folder then file order; unmapped folders skipped."""
    folders = _class_folders(split_dir)
    if class_map is not None:
        folders = _mapped_folders(split_dir, folders, class_map)
    if not folders:
        raise InputError(f"{split_dir}: no class folders with images ({', '.join(IMAGE_SUFFIXES)})")
    return [
        (path, class_map[folder] if class_map is not None else folder)
        for folder in folders
        for path in _image_files(split_dir / folder)
    ]


def _class_folders(split_dir: Path) -> list[str]:
    """Sorted class folder names (torchvision's find_classes) less hidden ones such as .git."""
    try:
        names, _ = find_classes(split_dir)
    except FileNotFoundError:  # torchvision's "Couldn't find any class folder in ..."
        return []
    return [name for name in names if not name.startswith(".")]


def _mapped_folders(split_dir: Path, folders: list[str], class_map: dict[str, str]) -> list[str]:
    """The folders the class map names; the others are skipped with one logged note."""
    skipped = [name for name in folders if name not in class_map]
    if skipped:
        shown = ", ".join(skipped[:NAMES_IN_NOTE]) + (", ..." if len(skipped) > NAMES_IN_NOTE else "")
        log.warning("%s: skipped %d folder(s) not in the class map: %s", split_dir, len(skipped), shown)
    return [name for name in folders if name in class_map]


def _image_files(folder: Path) -> list[Path]:
    """Sorted image files directly in `folder`, hidden ones (macOS ._x.jpg) left out.

    Not torchvision's make_dataset: it walks each class folder recursively, following links,
    so it would add files from subfolders (sub/, .ipynb_checkpoints/), changing the dataset
    and its checksum, and a link back to the split folder in each of 3 class folders kept
    its walk going past 20 s (and 1.8 million folders).
    """
    files = sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.is_file() and has_file_allowed_extension(p.name, IMAGE_SUFFIXES)
    )
    if not files:
        raise InputError(f"{folder}: class folder has no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _class_tuple(present: set[str], class_order: tuple[str, ...] | None) -> tuple[str, ...]:
    if class_order is None:
        return tuple(sorted(present))
    if len(set(class_order)) != len(class_order):
        raise InputError(f"class_order {tuple(class_order)} repeats a class name")
    return tuple(class_order)


def _labels(samples: list[tuple[Path, str]], classes: tuple[str, ...], where: Path) -> np.ndarray:
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({name for _, name in samples} - index.keys())
    if unknown:
        raise InputError(f"{where}: classes {unknown} are not in the class order {classes}")
    return np.array([index[name] for _, name in samples], dtype=np.int64)


def _load_images(paths: list[Path], size: int, require_same_size: bool) -> np.ndarray:
    """Load and resize one image at a time (same resampler as `resize_images`, bounded memory)."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    first = None
    for i, path in enumerate(paths):
        image = _load_rgb(path)
        first = first or (path, image.shape[:2])
        if require_same_size and image.shape[:2] != first[1]:
            raise InputError(
                f"{path}: image is {_hw(image.shape)} but {first[0]} is {_hw(first[1])}; "
                f"all images must share one size (require_same_size=True)"
            )
        out[i] = resize_images(image[None], size)[0]
    return out


def _hw(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]} (WxH)"


# PIL modes of more than 8 bits per sample, and the value that maps to 255. PIL's own
# convert("RGB") clips them at 255, so a 16-bit PNG would read as a white image.
WIDE_MODES = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}


def _load_rgb(path: Path) -> np.ndarray:
    """(H,W,3) uint8 from any PIL mode: palette, grey, alpha (dropped), CMYK, and 16-bit or
    float greyscale scaled to 8 bits (16-bit: /257; 32-bit "I" read as 16-bit, PNG's widest;
    float "F" as [0, 1])."""
    try:
        with Image.open(path) as image:
            if image.mode in WIDE_MODES:
                return _wide_to_rgb(np.asarray(image), WIDE_MODES[image.mode])
            return np.array(image.convert("RGB"), dtype=np.uint8)  # writable copy for torch
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(f"{path}: not a readable image ({err.__class__.__name__}: {err})") from err


def _wide_to_rgb(values: np.ndarray, full_scale: float) -> np.ndarray:
    scaled = np.clip(values.astype(np.float64) * (255.0 / full_scale), 0, 255)
    grey = np.rint(scaled).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)
