import h5py
import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from igkd.augment import normalize
from igkd.io import InputError
from igkd.models import build_teacher
from igkd.precompute import load_precomputed, precompute

MEAN, STD = [0.3, 0.3, 0.3], [0.3, 0.3, 0.3]
SETTINGS = {"steps": 8, "method": "gausslegendre", "internal_batch_size": 64}


@pytest.fixture
def teacher():
    torch.manual_seed(0)
    return build_teacher(width=0.25).eval()


def run(teacher, splits, path, **kw):
    args = dict(attribution="ig", settings=SETTINGS, mean=MEAN, std=STD,
                provenance={"data_checksum": "d" * 64, "teacher_checksum": "t" * 64},
                chunk=64, batch=16, log=lambda m: None)
    args.update(kw)
    n = kw.pop("n", 200)
    return precompute(teacher, splits.train_images[:n], splits.train_labels[:n], path, **args)


def test_row_i_belongs_to_image_i(tiny_splits, teacher, tmp_path):
    """Recompute random rows alone, with captum directly, and compare with the stored rows."""
    path = tmp_path / "ig.h5"
    run(teacher, tiny_splits, path)
    with h5py.File(path) as h5:
        logits, maps, delta = h5["logits"][()], h5["maps"][()], h5["delta"][()]
        assert h5.attrs["rows_done"] == 200
    rng = np.random.default_rng(0)
    for i in rng.choice(200, size=6, replace=False):
        x = torch.from_numpy(tiny_splits.train_images[i]).permute(2, 0, 1)[None].float() / 255
        x = normalize(x, MEAN, STD)
        label = int(tiny_splits.train_labels[i])
        attr, d = IntegratedGradients(teacher).attribute(
            x, baselines=x * 0, target=label, n_steps=8, method="gausslegendre", return_convergence_delta=True
        )
        np.testing.assert_allclose(maps[i], attr.abs().sum(1)[0].detach().numpy(), rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(logits[i], teacher(x)[0].detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(delta[i], d.item(), rtol=1e-2, atol=1e-5)
    # rows differ from their neighbours: no accidental broadcast of one image
    assert not np.allclose(maps[0], maps[1])


def test_resume_from_partial_equals_uninterrupted(tiny_splits, teacher, tmp_path):
    full = tmp_path / "full.h5"
    run(teacher, tiny_splits, full)
    resumed = tmp_path / "resumed.h5"

    def die_after_first_chunk(message):
        if "64/200" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(teacher, tiny_splits, resumed, log=die_after_first_chunk)
    partial = tmp_path / "resumed.h5.partial"
    assert not resumed.exists() and partial.exists()
    with h5py.File(partial) as h5:
        assert h5.attrs["rows_done"] == 64
    messages = []
    run(teacher, tiny_splits, resumed, log=messages.append)
    assert any("resuming" in m and "row 64/200" in m for m in messages)
    with h5py.File(full) as a, h5py.File(resumed) as b:
        for name in ("logits", "maps", "delta"):
            np.testing.assert_array_equal(a[name][()], b[name][()])


def test_load_validates_shape_rows_and_provenance(tiny_splits, teacher, tmp_path):
    path = tmp_path / "ig.h5"
    run(teacher, tiny_splits, path)
    ok = dict(n_rows=200, image_shape=(8, 8), num_classes=10, data_checksum="d" * 64, teacher_checksum="t" * 64)
    pre = load_precomputed(path, **ok)
    assert pre.maps.shape == (200, 8, 8) and pre.logits.shape == (200, 10)
    with pytest.raises(InputError, match="'logits' has shape"):
        load_precomputed(path, **{**ok, "n_rows": 201})
    with pytest.raises(InputError, match="different teacher"):
        load_precomputed(path, **{**ok, "teacher_checksum": "x" * 64})
    with pytest.raises(InputError, match="different data"):
        load_precomputed(path, **{**ok, "data_checksum": "x" * 64})
    with h5py.File(path, "r+") as h5:
        h5.attrs["rows_done"] = 100
    with pytest.raises(InputError, match="only 100 of 200 rows"):
        load_precomputed(path, **ok)
    with pytest.raises(InputError, match="not found"):
        load_precomputed(tmp_path / "none.h5", **ok)


def test_wrong_dtype_rejected(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5:
        h5["logits"] = np.zeros((3, 10), np.float64)
        h5["maps"] = np.zeros((3, 8, 8), np.float32)
        h5.attrs["rows_done"] = 3
    with pytest.raises(InputError, match="'logits' has dtype float64, expected float32"):
        load_precomputed(path, n_rows=3, image_shape=(8, 8), num_classes=10)
