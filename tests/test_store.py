import h5py
import numpy as np
import pytest

from igkd.data.digits import load_digits_splits
from igkd.data.store import Splits, read_data_h5, resize_images, stratified_val_index, write_data_h5
from igkd.io import InputError


def test_digits_are_real_and_split_stratified():
    s = load_digits_splits(16, 0.2, 0)
    assert s.train_images.shape == (1437, 16, 16, 3) and s.test_images.shape == (360, 16, 16, 3)
    assert s.train_images.dtype == np.uint8 and s.train_images.max() == 255
    assert np.array_equal(s.train_images[..., 0], s.train_images[..., 2])  # grey as RGB
    counts = np.bincount(s.test_labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


def test_round_trip_and_checksum(tmp_path, tiny_splits):
    path = tmp_path / "data.h5"
    write_data_h5(path, tiny_splits, {"dataset": "digits"})
    back = read_data_h5(path)
    for name in ("train_images", "train_labels", "test_images", "test_labels", "val_index"):
        assert np.array_equal(getattr(back, name), getattr(tiny_splits, name)), name
    assert back.classes == tiny_splits.classes
    with h5py.File(path, "r+") as h5:
        h5["train/images"][0, 0, 0, 0] ^= 1
    with pytest.raises(InputError, match="checksum does not match"):
        read_data_h5(path)


def test_val_split_is_stratified_and_disjoint(tiny_splits):
    val = stratified_val_index(tiny_splits.train_labels, 0.1, 0)
    assert np.array_equal(val, tiny_splits.val_index)
    assert len(np.intersect1d(val, tiny_splits.train_index)) == 0
    assert len(val) + len(tiny_splits.train_index) == len(tiny_splits.train_labels)
    assert len(np.unique(tiny_splits.train_labels[val])) == 10


def test_bad_arrays_are_refused():
    img = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(InputError, match=r"expected uint8 array \(N,H,W,3\), got float32"):
        Splits(img.astype(np.float32), np.zeros(4, np.int64), img, np.zeros(4, np.int64), ("a",))
    with pytest.raises(InputError, match="labels must lie in 0..0"):
        Splits(img, np.ones(4, np.int64), img, np.zeros(4, np.int64), ("a",))


def test_resize_keeps_constant_images_constant():
    img = np.full((2, 8, 8, 3), 77, np.uint8)
    out = resize_images(img, 16)
    assert out.shape == (2, 16, 16, 3) and (out == 77).all()


def test_a_job_hashes_its_data_once(tmp_path, tiny_splits, monkeypatch):
    """read_data_h5 verifies the checksum; the stages' provenance reuses it (it used to hash
    the whole data set three times per student job)."""
    import igkd.data.store as store

    path = tmp_path / "data.h5"
    write_data_h5(path, tiny_splits, {"dataset": "digits"})
    calls = []
    real = store.sha256_arrays
    monkeypatch.setattr(store, "sha256_arrays", lambda *arrays: calls.append(1) or real(*arrays))
    splits = read_data_h5(path)
    assert splits.checksum() == splits.checksum() == tiny_splits.checksum()
    assert len(calls) == 1
