"""CIFAR-10 (python version): a resumable download and a reader into `Splits`.

CIFAR's batch files are Python pickles, and unpickling can run code chosen by whoever
wrote the file. Only trust archives whose md5 matches the published one: `read_cifar10`
checks every file's md5 *before* unpickling, and unpickles with an allow-list that only
admits the numpy objects the real files contain. `verify=False` is for local copies the
user vouches for (for example a re-packed archive whose md5 differs).

The official files are Python 2 pickles, whose keys unpickle as bytes (b"data"); a subset
re-saved from Python 3 has str keys ("data"). Keys and class names are read as str either
way, as torchvision does, and a re-saved batch may hold any number of rows.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import posixpath
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10 as _TorchvisionCIFAR10
from torchvision.datasets.utils import calculate_md5, check_integrity

from igkd.data.store import Splits
from igkd.io import InputError

CIFAR10_URL: str = _TorchvisionCIFAR10.url
CIFAR10_ARCHIVE_NAME: str = _TorchvisionCIFAR10.filename
CIFAR10_ARCHIVE_MD5: str = _TorchvisionCIFAR10.tgz_md5
CIFAR10_FOLDER: str = _TorchvisionCIFAR10.base_folder
CIFAR10_TRAIN_FILES: tuple[str, ...] = tuple(name for name, _ in _TorchvisionCIFAR10.train_list)
CIFAR10_TEST_FILES: tuple[str, ...] = tuple(name for name, _ in _TorchvisionCIFAR10.test_list)
CIFAR10_META_FILE: str = _TorchvisionCIFAR10.meta["filename"]
CIFAR10_FILE_MD5: dict[str, str] = {
    **dict(_TorchvisionCIFAR10.train_list),
    **dict(_TorchvisionCIFAR10.test_list),
    CIFAR10_META_FILE: _TorchvisionCIFAR10.meta["md5"],
}
CIFAR10_FILES: tuple[str, ...] = CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES + (CIFAR10_META_FILE,)

IMAGE_SHAPE_CHW = (3, 32, 32)  # each row of b"data" is 1024 R, then 1024 G, then 1024 B bytes
ROW_BYTES = int(np.prod(IMAGE_SHAPE_CHW))
MAX_MEMBER_BYTES = 256 << 20  # a real batch is ~31 MB; refuse absurd members (gzip bombs)

CHUNK_BYTES = 1 << 20
PROGRESS_EVERY_S = 2.0
TIMEOUT_S = 60
MEGABYTE = 1 << 20
HTTP_PARTIAL_CONTENT = 206
HTTP_RANGE_NOT_SATISFIABLE = 416

# The only (module, name) globals a CIFAR pickle of dicts, lists, bytes and uint8 arrays
# needs (numpy 1.x and 2.x module paths); anything else is refused.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # how numpy writes arrays at pickle protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
}


# --------------------------------------------------------------------------- download


def download_cifar10(
    root: str | os.PathLike,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_ARCHIVE_MD5,
    progress: bool = True,
) -> Path:
    """Fetch the CIFAR-10 tarball into `root`, resuming a `.part`; rename only once the md5 matches."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / CIFAR10_ARCHIVE_NAME
    if check_integrity(final, md5):
        return final
    part = final.with_name(final.name + ".part")
    _fetch(url, part, progress)
    actual = calculate_md5(part)
    if actual != md5:
        part.unlink()
        raise InputError(
            f"{final}: downloaded file has md5 {actual}, expected {md5} (deleted; run again to "
            f"re-download, or give a local copy of {CIFAR10_ARCHIVE_NAME} by path)"
        )
    os.replace(part, final)
    return final


def _fetch(url: str, part: Path, progress: bool) -> None:
    """Stream `url` into `part`, asking for the missing tail when a partial file exists."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            resumed = offset > 0 and resp.status == HTTP_PARTIAL_CONTENT
            start = offset if resumed else 0
            length = resp.headers.get("Content-Length")
            total = start + int(length) if length else None
            with open(part, "ab" if resumed else "wb") as out:
                done = _copy(resp, out, start, total, progress)
            if total is not None and done < total:  # http.client ends short reads silently
                raise ConnectionError(f"connection closed after {done} of {total} bytes")
    except urllib.error.HTTPError as err:
        if err.code == HTTP_RANGE_NOT_SATISFIABLE and offset:
            return  # the .part already holds every byte; the md5 check decides
        raise _network_error(url, part, err) from err
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        raise _network_error(url, part, err) from err


def _copy(src, out, done: int, total: int | None, progress: bool) -> int:
    """Copy in chunks and return the byte count; progress goes to stderr every PROGRESS_EVERY_S."""
    last = time.monotonic()
    for chunk in iter(lambda: src.read(CHUNK_BYTES), b""):
        out.write(chunk)
        done += len(chunk)
        if progress and time.monotonic() - last >= PROGRESS_EVERY_S:
            _report(done, total)
            last = time.monotonic()
    if progress:
        _report(done, total)
    return done


def _report(done: int, total: int | None) -> None:
    share = f"{100 * done / total:5.1f}% of {total / MEGABYTE:.1f} MB" if total else "? %"
    print(f"CIFAR-10 download: {done / MEGABYTE:.1f} MB ({share})", file=sys.stderr, flush=True)


def _network_error(url: str, part: Path, err: Exception) -> InputError:
    return InputError(
        f"could not download {url} ({err.__class__.__name__}: {err}); bytes received so far "
        f"stay in {part} and the next run resumes. Without network, fetch {CIFAR10_ARCHIVE_NAME} "
        f"elsewhere and give its path (or the extracted folder) instead"
    )


# --------------------------------------------------------------------------- reading


def read_cifar10(path: str | os.PathLike, verify: bool = True, expected_md5: dict[str, str] | None = None) -> Splits:
    """Read CIFAR-10 from the tarball or an extracted folder into uint8 (N,32,32,3) `Splits`.

    Order is data_batch_1..5 then test_batch, as published. With `verify`, each file's md5
    must match `expected_md5` (default: the official ones) before it is unpickled.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found; expected {CIFAR10_ARCHIVE_NAME} or a folder holding {CIFAR10_FOLDER}/")
    files = _tar_files(path) if path.is_file() else _folder_files(path)
    if verify:
        for name, data in files.items():
            _check_md5(path, name, data, (expected_md5 or CIFAR10_FILE_MD5).get(name))
    parsed = {name: _unpickle(path, name, data) for name, data in files.items()}
    train = [_batch_arrays(path, name, parsed[name]) for name in CIFAR10_TRAIN_FILES]
    test = [_batch_arrays(path, name, parsed[name]) for name in CIFAR10_TEST_FILES]
    try:
        return Splits(
            np.concatenate([images for images, _ in train]),
            np.concatenate([labels for _, labels in train]),
            np.concatenate([images for images, _ in test]),
            np.concatenate([labels for _, labels in test]),
            _class_names(path, parsed[CIFAR10_META_FILE]),
        )
    except InputError as err:
        raise InputError(f"{path}: {err}") from err


def _folder_files(path: Path) -> dict[str, bytes]:
    """Bytes of every CIFAR file from `path/cifar-10-batches-py/` or `path` itself."""
    folder = path / CIFAR10_FOLDER if (path / CIFAR10_FOLDER).is_dir() else path
    files = {}
    for name in CIFAR10_FILES:
        if not (folder / name).is_file():
            raise InputError(
                f"{folder / name}: file not found; expected the CIFAR-10 python batches "
                f"({', '.join(CIFAR10_FILES)}) in {path} or {path / CIFAR10_FOLDER}"
            )
        files[name] = (folder / name).read_bytes()
    return files


def _tar_files(path: Path) -> dict[str, bytes]:
    """Bytes of every CIFAR file read straight from the tar archive (nothing is extracted)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {posixpath.normpath(m.name): m for m in tar.getmembers()}
            return {name: _tar_member(path, tar, members, name) for name in CIFAR10_FILES}
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise InputError(
            f"{path}: not a readable tar archive, truncated or corrupt ({err.__class__.__name__}: "
            f"{err}); expected {CIFAR10_ARCHIVE_NAME} (download it again)"
        ) from err


def _tar_member(path: Path, tar: tarfile.TarFile, members: dict, name: str) -> bytes:
    member = members.get(f"{CIFAR10_FOLDER}/{name}")
    if member is None:
        raise InputError(f"{path}: archive has no member {CIFAR10_FOLDER}/{name}")
    if not member.isfile() or member.size > MAX_MEMBER_BYTES:
        raise InputError(f"{path}: member {member.name} is not a regular file of at most {MAX_MEMBER_BYTES} bytes")
    return tar.extractfile(member).read()


def _check_md5(path: Path, name: str, data: bytes, expected: str | None) -> None:
    if expected is None:
        raise InputError(f"{path}: no expected md5 given for {name}")
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != expected:
        raise InputError(
            f"{path}: {name} has md5 {actual}, expected {expected} (corrupt, or not the official "
            f"CIFAR-10 python version; set dataset.cifar10.verify: false, or igkd check-data "
            f"--no-verify, only for a copy you trust)"
        )


class _AllowListUnpickler(pickle.Unpickler):
    """Unpickler that resolves only `_ALLOWED_GLOBALS`, so a hostile file cannot call code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path, name: str, data: bytes) -> dict:
    """The file's dict with str keys (bytes keys of Python 2 pickles decoded as latin-1)."""
    try:
        obj = _AllowListUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - a corrupt pickle can raise almost anything
        raise InputError(f"{path}: {name} is not a CIFAR-10 python pickle ({err.__class__.__name__}: {err})") from err
    if not isinstance(obj, dict):
        raise InputError(f"{path}: {name} should hold a dict, got {type(obj).__name__}")
    keyed = {}
    for key, value in obj.items():
        text = _as_str(key)
        if text in keyed:
            raise InputError(f"{path}: {name} holds key {text!r} twice (as bytes and as str)")
        keyed[text] = value
    return keyed


def _as_str(key) -> str:
    return key.decode("latin-1") if isinstance(key, bytes) else str(key)


def _require(path: Path, name: str, obj: dict, keys: tuple[str, ...]) -> list:
    missing = [key for key in keys if key not in obj]
    if missing:
        raise InputError(f"{path}: {name} lacks keys {missing}; expected {list(keys)}, found {sorted(obj)}")
    return [obj[key] for key in keys]


def _batch_arrays(path: Path, name: str, batch: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N,32,32,3) uint8 images and int64 labels from one batch dict (any N)."""
    data, labels = _require(path, name, batch, ("data", "labels"))
    is_rows = isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
    if not (is_rows and data.shape[1] == ROW_BYTES):
        raise InputError(
            f"{path}: {name} 'data' should be uint8 (N,{ROW_BYTES}), got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}"
        )
    labels = np.asarray(labels)
    integers = labels.dtype.kind in "iu" or labels.size == 0
    if labels.shape != (len(data),) or not integers:
        raise InputError(f"{path}: {name} 'labels' should be {len(data)} integers, got {labels.dtype} {labels.shape}")
    images = data.reshape(-1, *IMAGE_SHAPE_CHW).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int64)


def _class_names(path: Path, meta: dict) -> tuple[str, ...]:
    (names,) = _require(path, CIFAR10_META_FILE, meta, ("label_names",))
    if not isinstance(names, list | tuple) or not all(isinstance(n, bytes | str) for n in names):
        raise InputError(f"{path}: {CIFAR10_META_FILE} 'label_names' should be a list of names (bytes or str)")
    try:
        return tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: {CIFAR10_META_FILE} 'label_names' are not UTF-8 ({err})") from err
