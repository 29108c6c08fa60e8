"""A tiny CIFAR-10 look-alike in the real python-pickle format, for reader and download tests."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np

from igkd.data.cifar10 import (
    CIFAR10_ARCHIVE_NAME,
    CIFAR10_FOLDER,
    CIFAR10_META_FILE,
    CIFAR10_TEST_FILES,
    CIFAR10_TRAIN_FILES,
)

FAKE_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
ROW_BYTES = 3 * 32 * 32
PICKLE_PROTOCOL = 2  # the protocol of the published files
EXTRACTED_DIR = "extracted"  # write_fake_cifar10 leaves the unpacked folder in tmp_dir/extracted/


def fake_cifar10_contents(n_per_batch: int = 20, seed: int = 0) -> dict[str, dict]:
    """The dicts the batch files hold: same keys and dtypes as the real ones, random pixels."""
    rng = np.random.default_rng(seed)
    contents = {}
    for name in CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES:
        contents[name] = {
            b"batch_label": f"fake {name}".encode(),
            b"labels": [int(x) for x in rng.integers(0, len(FAKE_CLASSES), n_per_batch)],
            b"data": rng.integers(0, 256, (n_per_batch, ROW_BYTES), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n_per_batch)],
        }
    contents[CIFAR10_META_FILE] = {
        b"num_cases_per_batch": n_per_batch,
        b"label_names": [c.encode() for c in FAKE_CLASSES],
        b"num_vis": ROW_BYTES,
    }
    return contents


def as_python3_dict(content: dict) -> dict:
    """`content` as a Python 3 user re-saving a batch writes it: str keys, str names."""

    def text(value):
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list) and value and isinstance(value[0], bytes):
            return [v.decode() for v in value]
        return value

    return {key.decode(): text(value) for key, value in content.items()}


def write_fake_cifar10(
    tmp_dir: str | Path,
    n_per_batch: int = 20,
    seed: int = 0,
    str_keys: bool = False,
    protocol: int = PICKLE_PROTOCOL,
) -> tuple[Path, dict[str, str], str]:
    """Write `cifar-10-batches-py/` and its .tar.gz under tmp_dir; return (tarball, file md5s, archive md5).

    Default: bytes keys at protocol 2, like the published files. `str_keys`: dicts as
    `as_python3_dict` makes them (pass `protocol=pickle.DEFAULT_PROTOCOL` for a plain
    Python 3 `pickle.dump`).
    """
    tmp_dir = Path(tmp_dir)
    folder = tmp_dir / EXTRACTED_DIR / CIFAR10_FOLDER
    folder.mkdir(parents=True)
    file_md5 = {}
    for name, content in fake_cifar10_contents(n_per_batch, seed).items():
        content = as_python3_dict(content) if str_keys else content
        data = pickle.dumps(content, protocol=protocol)
        (folder / name).write_bytes(data)
        file_md5[name] = hashlib.md5(data).hexdigest()
    tarball = tmp_dir / CIFAR10_ARCHIVE_NAME
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname=CIFAR10_FOLDER)
    return tarball, file_md5, hashlib.md5(tarball.read_bytes()).hexdigest()
