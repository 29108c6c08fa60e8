"""Atomic file output and validated loading.

Every file the pipeline writes goes through `atomic_path`: a temp file in the same
folder, fsync, then rename, so a killed job never leaves a half-written output that a
later stage would trust.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


class InputError(ValueError):
    """Bad input the user can fix; the message names the file/key and what was expected."""


class WriteError(OSError):
    """An output could not be written (disk full, read-only, no permission); names the path."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it over `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp.{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    except OSError as err:
        _reraise(err, path)
    os.close(fd)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, created_mode(FILE_MODE))  # mkstemp's 0600 would hide results from the group
        yield tmp
        commit(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        _reraise(err, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


FILE_MODE, FOLDER_MODE = 0o666, 0o777  # what open() and mkdir() ask for, before the umask


def current_umask() -> int:
    """The process's umask, read without changing it (os.umask can only be read by setting
    it, which races with other threads creating files); /proc where there is one."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def created_mode(mode: int) -> int:
    """The permission bits a plain open() (FILE_MODE) or mkdir() (FOLDER_MODE) would give:
    outputs of a shared results folder are readable by whoever the umask lets read them."""
    return mode & ~current_umask()


_WRITE_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT}


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """fsync `tmp` and rename it over `path` (same folder); a full or read-only disk
    raises WriteError naming `path` instead of a bare errno."""
    try:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        _reraise(err, path)


def _reraise(err: OSError, path: Path | str) -> None:
    """Re-raise `err`, as a WriteError naming `path` when the disk refused the write."""
    if err.errno in _WRITE_ERRNOS and not isinstance(err, WriteError):
        strerror = err.strerror or os.strerror(err.errno)
        raise WriteError(err.errno, f"could not write {path}: {strerror}") from err
    raise err


def file_size(path: str | os.PathLike) -> str:
    """Human-readable size of a written file, for the job log (decimal units)."""
    size = Path(path).stat().st_size
    if size < 1000:
        return f"{size} B"
    for unit in ("KB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            break
    return f"{size:.1f} {unit}"


@contextlib.contextmanager
def read_h5(path: str | os.PathLike, what: str = "file"):
    """An HDF5 file open for reading; a missing file, or one h5py cannot open or read
    (truncated, not HDF5), is an InputError naming it."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    try:
        with h5py.File(path, "r") as h5:
            yield h5
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})") from err


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame atomically (no index column)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """torch.save, atomically and byte-reproducibly: given a file name, torch names the zip's
    top folder after it (here a random temp name), so the same weights would hash
    differently on every run; through a file object the folder is always 'archive'."""
    import torch  # lazy: the analysis rules use this module without torch

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def load_torch(path: str | os.PathLike) -> Any:
    """Load tensors/state dicts only: `weights_only=True` refuses pickled code."""
    import torch

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types here
        raise _load_error(path, err) from err


def _load_error(path: Path, err: Exception) -> InputError:
    """torch's refusal, reduced to one line that names the file and the offending object."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # torch colours parts of its message
    code = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if code:
        return InputError(
            f"{path}: refused: unpickling it would call {code.group(1)}, which is not a tensor type; "
            "expected a plain tensor/state-dict file (loaded with weights_only=True, which never runs code from a file)"
        )
    detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    reason = detail.group(1) if detail else (text.splitlines() or [""])[0]
    return InputError(
        f"{path}: not a plain tensor/state-dict file that loads with weights_only=True "
        f"({err.__class__.__name__}: {reason.strip()})"
    )


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_arrays(*arrays: np.ndarray) -> str:
    """Content checksum of arrays (shape, dtype and bytes), independent of the file they sit in."""
    digest = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        digest.update(str((arr.shape, arr.dtype.str)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()
