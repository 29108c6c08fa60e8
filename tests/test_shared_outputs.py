"""Outputs in a shared results folder are as readable as the user's umask says, as files a
plain open() and folders a plain mkdir() make: a labmate in the group can read results/
(issue: mkstemp/mkdtemp made every output 0600 and the stand-in folder 0700)."""

import os
import stat

import numpy as np
import pytest

from igkd.data.standin import export_class_folder
from igkd.io import atomic_path, created_mode, current_umask, save_torch, write_json


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=["umask022", "umask002", "umask077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_umask_is_read_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask  # reading it left it as it was
    assert created_mode(0o666) == 0o666 & ~umask


def test_atomic_outputs_get_the_mode_open_would_give(tmp_path, umask):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what a plain open() gives under this umask
    write_json(tmp_path / "metrics.json", {"a": 1})
    save_torch(tmp_path / "model.pt", {"w": 1})
    with atomic_path(tmp_path / "sub" / "data.h5") as tmp:
        tmp.write_bytes(b"h5")
    for name in ("metrics.json", "model.pt", "sub/data.h5"):
        assert mode(tmp_path / name) == mode(plain) == 0o666 & ~umask, name
    assert mode(tmp_path / "sub") == 0o777 & ~umask


def test_the_exported_class_folder_gets_the_mode_mkdir_would_give(tmp_path, umask):
    images = np.zeros((3, 4, 4, 3), np.uint8)
    root = tmp_path / "standin"
    export_class_folder(images, np.array([0, 1, 1]), ["a", "b"], root, "stand-in")
    assert mode(root) == mode(root / "a") == 0o777 & ~umask
    assert mode(next((root / "b").iterdir())) == 0o666 & ~umask
