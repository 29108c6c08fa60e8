"""Image-folder readers on PNG/JPEG trees generated with PIL."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from igkd.data.imagefolder import _scan, read_class_map, read_eval_folder, read_imagefolder
from igkd.data.store import resize_images
from igkd.io import InputError

NATIVE = 12
SIZE = 8


def _solid(path, value, size=(NATIVE, NATIVE), fmt=None):
    """Write a solid-colour image whose red channel `value` identifies it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 2 * value % 256, 255 - value)).save(path, format=fmt)


def _tree(root, layout):
    """layout: {"train/cat": [10, 11], ...} -> solid PNGs named 0.png, 1.png, ... per folder."""
    for folder, values in layout.items():
        for i, value in enumerate(values):
            _solid(root / folder / f"{i}.png", value)
    return root


def test_shapes_labels_and_sorted_order(tmp_path):
    root = _tree(tmp_path, {"train/dog": [30, 31], "train/cat": [10, 11, 12], "test/dog": [40]})
    (root / "train/cat/notes.txt").write_text("ignored: not an image suffix")
    _solid(root / "train/cat/3.JPG", 13, fmt="JPEG")
    splits = read_imagefolder(root, SIZE)
    assert splits.classes == ("cat", "dog")
    assert splits.train_images.shape == (6, SIZE, SIZE, 3) and splits.train_images.dtype == np.uint8
    assert splits.test_images.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_array_equal(splits.train_labels, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(splits.test_labels, [1])
    # sorted files within a class, solid colours survive resizing exactly (JPEG approximately)
    np.testing.assert_array_equal(splits.train_images[:3, 0, 0, 0], [10, 11, 12])
    assert abs(int(splits.train_images[3, 0, 0, 0]) - 13) <= 2
    np.testing.assert_array_equal(splits.train_images[4:, 3, 3], [[30, 60, 225], [31, 62, 224]])


def test_resize_matches_store_resize(tmp_path):
    gradient = np.arange(NATIVE * NATIVE * 3, dtype=np.uint8).reshape(NATIVE, NATIVE, 3)
    for split in ("train", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(gradient).save(tmp_path / split / "a" / "g.png")
    splits = read_imagefolder(tmp_path, SIZE)
    np.testing.assert_array_equal(splits.train_images[0], resize_images(gradient[None], SIZE)[0])
    np.testing.assert_array_equal(splits.test_images, splits.train_images)


def test_missing_folders(tmp_path):
    with pytest.raises(InputError, match="nowhere: dataset root not found"):
        read_imagefolder(tmp_path / "nowhere", SIZE)
    _tree(tmp_path, {"train/cat": [1]})
    with pytest.raises(InputError, match="test: test/ folder not found"):
        read_imagefolder(tmp_path, SIZE)


def test_empty_class_folder_is_named(tmp_path):
    root = _tree(tmp_path, {"train/cat": [1], "test/cat": [2]})
    (root / "train" / "bird").mkdir()
    with pytest.raises(InputError, match="train/bird: class folder has no images"):
        read_imagefolder(root, SIZE)


def test_no_images_at_all(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    with pytest.raises(InputError, match="train: no class folders with images"):
        read_imagefolder(tmp_path, SIZE)


def test_corrupt_image_is_named(tmp_path):
    root = _tree(tmp_path, {"train/cat": [1], "test/cat": [2]})
    (root / "train/cat/broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(InputError, match="cat/broken.png: not a readable image"):
        read_imagefolder(root, SIZE)


def test_test_classes_must_be_seen_in_training(tmp_path):
    root = _tree(tmp_path, {"train/cat": [1], "test/cat": [2], "test/frog": [3]})
    with pytest.raises(InputError, match=r"classes \['frog'\] have no folder in"):
        read_imagefolder(root, SIZE)
    (root / "test/frog/0.png").unlink()
    (root / "test/frog").rmdir()
    _tree(root, {"train/frog": [4]})
    assert read_imagefolder(root, SIZE).classes == ("cat", "frog")  # test may lack a class


def test_mixed_sizes_allowed_unless_required_same(tmp_path):
    root = _tree(tmp_path, {"train/cat": [50], "test/cat": [60]})
    _solid(root / "train/cat/wide.png", 70, size=(20, 10))
    splits = read_imagefolder(root, SIZE)
    assert splits.train_images.shape == (2, SIZE, SIZE, 3)
    np.testing.assert_array_equal(splits.train_images[:, 0, 0, 0], [50, 70])
    with pytest.raises(InputError, match=r"wide.png: image is 20x10 \(WxH\) but .*0.png is 12x12"):
        read_imagefolder(root, SIZE, require_same_size=True)


def test_class_map_and_order_fix_the_labels(tmp_path, caplog):
    root = _tree(
        tmp_path,
        {"train/n02": [1], "train/n01": [2], "train/n99": [3], "test/n01": [4], "test/n77": [5]},
    )
    class_map = {"n01": "truck", "n02": "airplane"}
    order = ("airplane", "automobile", "truck")
    with caplog.at_level(logging.WARNING, logger="igkd.data.imagefolder"):
        splits = read_imagefolder(root, SIZE, class_map=class_map, class_order=order)
    assert splits.classes == order
    np.testing.assert_array_equal(splits.train_labels, [2, 0])  # n01 (truck) sorts before n02
    np.testing.assert_array_equal(splits.train_images[:, 0, 0, 0], [2, 1])
    np.testing.assert_array_equal(splits.test_labels, [2])
    assert "skipped 1 folder(s) not in the class map: n99" in caplog.text
    assert "n77" in caplog.text
    with pytest.raises(InputError, match=r"classes \['truck'\] are not in the class order"):
        read_imagefolder(root, SIZE, class_map=class_map, class_order=("airplane",))


def test_read_class_map_csv_and_tsv(tmp_path):
    csv_path = tmp_path / "map.csv"
    csv_path.write_text("wnid,cifar10_class\nn01,truck\n\nn02, airplane\n")
    assert read_class_map(csv_path) == {"n01": "truck", "n02": "airplane"}
    tsv_path = tmp_path / "map.tsv"
    tsv_path.write_text("wnid\tcifar10_class\nn01\ttruck\n")
    assert read_class_map(tsv_path) == {"n01": "truck"}
    csv_path.write_text("id,class\nn01,truck\n")
    with pytest.raises(InputError, match="expected a header row 'wnid,<class column>'"):
        read_class_map(csv_path)
    csv_path.write_text("wnid,cifar10_class\nn01,truck\nn01,ship\n")
    with pytest.raises(InputError, match="n01 is mapped to both truck and ship"):
        read_class_map(csv_path)
    csv_path.write_text("wnid,cifar10_class\nn01\n")
    with pytest.raises(InputError, match="row 2 should be two non-empty cells"):
        read_class_map(csv_path)
    with pytest.raises(InputError, match="absent.csv: class map not found"):
        read_class_map(tmp_path / "absent.csv")


def test_read_eval_folder_flat_tree(tmp_path):
    root = _tree(tmp_path / "eval", {"n03": [7, 8], "n01": [9], "n55": [1]})
    images, labels, classes = read_eval_folder(
        root, SIZE, class_map={"n01": "bird", "n03": "cat"}, class_order=("airplane", "bird", "cat")
    )
    assert images.shape == (3, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [1, 2, 2])
    np.testing.assert_array_equal(images[:, 0, 0, 0], [9, 7, 8])
    assert classes == ("airplane", "bird", "cat")
    _, plain_labels, plain_classes = read_eval_folder(root, SIZE)
    assert plain_classes == ("n01", "n03", "n55")
    np.testing.assert_array_equal(plain_labels, [0, 1, 1, 2])


def test_odd_image_modes_read_as_their_pixels(tmp_path):
    """Files re-saved by other tools: 16-bit and float greyscale (which PIL's convert("RGB")
    clips to white), palette, grey + alpha, RGBA, CMYK JPEG, bilevel."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (NATIVE, NATIVE), dtype=np.uint8)
    rgb = rng.integers(0, 256, (NATIVE, NATIVE, 3), dtype=np.uint8)
    files = {
        "i16.png": Image.fromarray(grey.astype(np.uint16) * 257),  # mode I;16, as scanners and microscopes save
        "f.tiff": Image.fromarray(grey.astype(np.float32) / 255),  # mode F
        "la.png": Image.fromarray(grey).convert("LA"),
        "rgba.png": Image.fromarray(rgb).convert("RGBA"),
        "p.png": Image.fromarray(rgb).convert("P"),
        "one.png": Image.fromarray(grey > 127),
    }
    for name, image in files.items():
        (tmp_path / "train" / name.split(".")[0]).mkdir(parents=True)
        image.save(tmp_path / "train" / name.split(".")[0] / name)
        (tmp_path / "test" / name.split(".")[0]).mkdir(parents=True)
        image.save(tmp_path / "test" / name.split(".")[0] / name)
    assert Image.open(tmp_path / "train/i16/i16.png").mode == "I;16"
    splits = read_imagefolder(tmp_path, NATIVE)
    got = dict(zip(splits.classes, splits.train_images))
    for name in ("i16", "f", "la"):
        np.testing.assert_array_equal(got[name], np.repeat(grey[..., None], 3, axis=2), err_msg=name)
    np.testing.assert_array_equal(got["rgba"], rgb)
    np.testing.assert_array_equal(got["one"], np.repeat(np.where(grey > 127, 255, 0)[..., None], 3, axis=2))
    palette = np.asarray(files["p.png"].convert("RGB"))
    np.testing.assert_array_equal(got["p"], palette)


def test_scan_order_and_suffixes_are_unchanged(tmp_path):
    """The scan order decides the dataset checksum: sorted folders (case-sensitive), then sorted
    files; suffixes match case-insensitively; subfolders, links to nothing, hidden names and
    non-images are left out. .ppm came with torchvision's IMG_EXTENSIONS."""
    split = tmp_path / "train"
    names = ["10.png", "2.png", "A.JPG", "Z.Tiff", "a.jpeg", "g.GIF", "m.bmp", "p.ppm", "t.tif", "w.webp"]
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".tiff": "TIFF", ".tif": "TIFF", ".gif": "GIF", ".webp": "WEBP"}
    for folder in ("cat", "Dog", "b_10", "b-2"):
        for name in [*names, ".hidden.png", "sub/nested.png", ".ipynb_checkpoints/c.png"]:
            _solid(split / folder / name, 1, fmt=formats.get(Path(name).suffix.lower()))
        (split / folder / "notes.txt").write_text("not an image")
        (split / folder / "dir.png").mkdir()
        (split / folder / "broken.png").symlink_to("absent.png")
    _solid(split / ".git/x.png", 1)
    (split / "README.txt").write_text("not a class")
    scanned = [(path.relative_to(split).as_posix(), name) for path, name in _scan(split, None)]
    assert scanned == [(f"{folder}/{name}", folder) for folder in ("Dog", "b-2", "b_10", "cat") for name in names]
    images, labels, _ = read_eval_folder(split, SIZE)
    assert images.shape[0] == len(scanned) and labels.tolist() == [i for i in range(4) for _ in names]


def test_hidden_files_and_folders_are_ignored(tmp_path):
    """macOS leaves `._name.jpg` AppleDouble files, which are not images, next to copied ones."""
    root = _tree(tmp_path, {"train/cat": [1], "test/cat": [2]})
    (root / "train/cat/._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    _tree(root, {"train/.ipynb_checkpoints": [3]})
    splits = read_imagefolder(root, SIZE)
    assert splits.classes == ("cat",) and splits.train_images.shape[0] == 1
    (root / "only_hidden/.git").mkdir(parents=True)
    with pytest.raises(InputError, match="only_hidden: no class folders with images"):
        read_eval_folder(root / "only_hidden", SIZE)
