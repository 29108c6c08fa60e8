"""CIFAR-10 reader and downloader on a tiny fake archive in the real pickle format."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
import shutil
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from fixtures_data import (
    EXTRACTED_DIR,
    FAKE_CLASSES,
    as_python3_dict,
    fake_cifar10_contents,
    write_fake_cifar10,
)
from igkd.config import validate_config
from igkd.data.cifar10 import (
    CIFAR10_ARCHIVE_NAME,
    CIFAR10_FILE_MD5,
    CIFAR10_FOLDER,
    CIFAR10_TEST_FILES,
    CIFAR10_TRAIN_FILES,
    download_cifar10,
    read_cifar10,
)
from igkd.data.prepare import load_source
from igkd.io import InputError

N_PER_BATCH = 20
SEED = 3
POLL_S = 0.01  # test server's shutdown poll interval; the default 0.5 s slows every test


@pytest.fixture
def fake(tmp_path):
    """(tarball, per-file md5s, archive md5, extracted folder holding cifar-10-batches-py/)."""
    tarball, file_md5, archive_md5 = write_fake_cifar10(tmp_path / "src", N_PER_BATCH, SEED)
    return tarball, file_md5, archive_md5, tarball.parent / EXTRACTED_DIR


def _rows_and_labels(names):
    contents = fake_cifar10_contents(N_PER_BATCH, SEED)
    rows = np.concatenate([contents[n][b"data"] for n in names])
    labels = np.concatenate([contents[n][b"labels"] for n in names])
    return rows, labels


# --------------------------------------------------------------------------- reading


def test_tarball_and_both_folder_layouts_give_the_published_order(fake):
    tarball, file_md5, _, extracted = fake
    from_tar = read_cifar10(tarball, expected_md5=file_md5)
    for folder in (extracted, extracted / CIFAR10_FOLDER):
        other = read_cifar10(folder, expected_md5=file_md5)
        for field in ("train_images", "train_labels", "test_images", "test_labels"):
            np.testing.assert_array_equal(getattr(other, field), getattr(from_tar, field))
        assert other.classes == from_tar.classes

    assert from_tar.train_images.shape == (5 * N_PER_BATCH, 32, 32, 3)
    assert from_tar.test_images.shape == (N_PER_BATCH, 32, 32, 3)
    assert from_tar.train_images.dtype == np.uint8 and from_tar.train_labels.dtype == np.int64
    assert from_tar.classes == FAKE_CLASSES
    train_rows, train_labels = _rows_and_labels(CIFAR10_TRAIN_FILES)
    test_rows, test_labels = _rows_and_labels(CIFAR10_TEST_FILES)
    np.testing.assert_array_equal(from_tar.train_labels, train_labels)
    np.testing.assert_array_equal(from_tar.test_labels, test_labels)
    for i in (0, N_PER_BATCH + 1, 5 * N_PER_BATCH - 1):  # first, second batch, last
        np.testing.assert_array_equal(from_tar.train_images[i], train_rows[i].reshape(3, 32, 32).transpose(1, 2, 0))
    # channel-planar row layout: byte c*1024 + y*32 + x is pixel (y, x) of channel c
    assert from_tar.test_images[4, 7, 9, 2] == test_rows[4, 2 * 1024 + 7 * 32 + 9]


def test_default_md5s_reject_the_fake_archive(fake):
    tarball, file_md5, _, _ = fake
    first = CIFAR10_TRAIN_FILES[0]
    expected = CIFAR10_FILE_MD5[first]
    with pytest.raises(InputError, match=f"{first} has md5 {file_md5[first]}, expected {expected}"):
        read_cifar10(tarball)


def test_one_flipped_byte_is_caught_and_named(fake, tmp_path):
    _, file_md5, _, extracted = fake
    target = extracted / CIFAR10_FOLDER / "data_batch_3"
    data = bytearray(target.read_bytes())
    data[data.index(b"fake data_batch_3")] ^= 1  # one bit of b"batch_label", still a valid pickle
    target.write_bytes(bytes(data))
    actual = hashlib.md5(bytes(data)).hexdigest()
    with pytest.raises(InputError, match=f"data_batch_3 has md5 {actual}, expected {file_md5['data_batch_3']}"):
        read_cifar10(extracted, expected_md5=file_md5)
    assert read_cifar10(extracted, verify=False).train_images.shape[0] == 5 * N_PER_BATCH


def test_truncated_tarball_names_the_path(fake, tmp_path):
    tarball = fake[0]
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tarball.read_bytes()[: tarball.stat().st_size // 2])
    with pytest.raises(InputError, match=re.escape(str(cut)) + ".*truncated or corrupt"):
        read_cifar10(cut, verify=False)


def test_non_tar_file_and_missing_path(tmp_path):
    text = tmp_path / "notes.tar.gz"
    text.write_text("not an archive\n")
    with pytest.raises(InputError, match="notes.tar.gz: not a readable tar archive"):
        read_cifar10(text)
    with pytest.raises(InputError, match="nowhere: not found; expected cifar-10-python.tar.gz"):
        read_cifar10(tmp_path / "nowhere")


def test_missing_batch_in_tarball_and_folder(fake, tmp_path):
    extracted = fake[3]
    (extracted / CIFAR10_FOLDER / "test_batch").unlink()
    with pytest.raises(InputError, match="test_batch: file not found"):
        read_cifar10(extracted, verify=False)
    partial = tmp_path / "partial.tar.gz"
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(extracted / CIFAR10_FOLDER, arcname=CIFAR10_FOLDER)
    with pytest.raises(InputError, match=f"no member {CIFAR10_FOLDER}/test_batch"):
        read_cifar10(partial, verify=False)


# (str_keys, protocol): the published layout (bytes keys, protocol 2); a Python 3
# `pickle.dump` of a str-keyed dict (default protocol); the same at protocol 5, where numpy
# pickles arrays through numpy._core.numeric._frombuffer.
WRITERS = {
    "bytes-keys-protocol-2": (False, 2),
    "str-keys-default-protocol": (True, pickle.DEFAULT_PROTOCOL),
    "str-keys-protocol-5": (True, 5),
}


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("layout", ["tarball", "folder"])
def test_bytes_and_str_keyed_copies_read_alike(tmp_path, writer, layout):
    str_keys, protocol = WRITERS[writer]
    tarball, file_md5, _ = write_fake_cifar10(tmp_path, N_PER_BATCH, SEED, str_keys, protocol)
    source = tarball if layout == "tarball" else tarball.parent / EXTRACTED_DIR
    got = read_cifar10(source, expected_md5=file_md5)  # md5s are still checked before unpickling
    assert got.classes == FAKE_CLASSES
    train_rows, train_labels = _rows_and_labels(CIFAR10_TRAIN_FILES)
    test_rows, test_labels = _rows_and_labels(CIFAR10_TEST_FILES)
    np.testing.assert_array_equal(got.train_labels, train_labels)
    np.testing.assert_array_equal(got.test_labels, test_labels)
    np.testing.assert_array_equal(got.train_images, train_rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(got.test_images, test_rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("layout", ["tarball", "folder"])
def test_prepare_path_reads_both_key_kinds(tmp_path, writer, layout):
    str_keys, protocol = WRITERS[writer]
    tarball, _, _ = write_fake_cifar10(tmp_path, N_PER_BATCH, SEED, str_keys, protocol)
    source = tarball if layout == "tarball" else tarball.parent / EXTRACTED_DIR / CIFAR10_FOLDER
    config = validate_config(
        {
            "dataset": {
                "name": "cifar10",
                "cifar10": {"source": "path", "path": str(source), "verify": False},
                "val_fraction": 0.2,
            },
            **{key: {} for key in ("teacher", "precompute", "students", "runtime")},
        }
    )
    splits = load_source(config["dataset"], str(source))
    _, train_labels = _rows_and_labels(CIFAR10_TRAIN_FILES)
    np.testing.assert_array_equal(splits.train_labels, train_labels)
    assert splits.test_images.shape == (N_PER_BATCH, 32, 32, 3)
    assert splits.classes == FAKE_CLASSES
    assert len(splits.val_index) == 5 * N_PER_BATCH // 5  # val_fraction 0.2 of 100 rows


def test_resaved_subset_of_any_size_reads_without_verify(fake):
    extracted = fake[3]
    contents = fake_cifar10_contents(N_PER_BATCH, SEED)
    sizes = {"data_batch_1": 7, "data_batch_4": 0, "test_batch": 3}
    for name, rows in sizes.items():
        subset = as_python3_dict(contents[name])
        subset["data"], subset["labels"] = subset["data"][:rows], subset["labels"][:rows]
        with open(extracted / CIFAR10_FOLDER / name, "wb") as fh:
            pickle.dump(subset, fh)
    got = read_cifar10(extracted, verify=False)
    assert got.train_images.shape == (7 + 3 * N_PER_BATCH, 32, 32, 3)
    assert got.test_images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(got.test_labels, contents["test_batch"][b"labels"][:3])
    np.testing.assert_array_equal(got.train_labels[:7], contents["data_batch_1"][b"labels"][:7])
    with pytest.raises(InputError, match="data_batch_1 has md5"):  # verify still refuses it
        read_cifar10(extracted)


def test_str_label_names_of_a_wrong_kind_are_named(fake):
    extracted = fake[3]
    (extracted / CIFAR10_FOLDER / "batches.meta").write_bytes(pickle.dumps({"label_names": [1, 2]}))
    with pytest.raises(InputError, match="batches.meta 'label_names' should be a list of names"):
        read_cifar10(extracted, verify=False)


def _wrong_batches():
    good = fake_cifar10_contents(N_PER_BATCH, SEED)["data_batch_2"]
    yield {b"labels": good[b"labels"]}, re.escape("lacks keys ['data']; expected ['data', 'labels'], found ['labels']")
    yield (
        {"labels": good[b"labels"], b"filenames": []},
        re.escape(  # mixed: still one form
            "lacks keys ['data']; expected ['data', 'labels'], found ['filenames', 'labels']"
        ),
    )
    yield {**good, "data": good[b"data"]}, "holds key 'data' twice"
    yield (
        {
            **good,
            b"data": good[b"data"][:, :100],
        },
        r"should be uint8 \(N,3072\), got uint8 \(20, 100\)",
    )
    yield (
        {
            **good,
            b"data": good[b"data"].astype(np.float32),
        },
        r"should be uint8 \(N,3072\), got float32",
    )
    yield {**good, b"labels": good[b"labels"][:5]}, "'labels' should be 20 integers"
    yield {**good, b"labels": [99] * N_PER_BATCH}, r"labels must lie in 0\.\.9"
    yield [1, 2, 3], "should hold a dict, got list"


@pytest.mark.parametrize("content, message", list(_wrong_batches()))
def test_malformed_batch_is_named(fake, content, message):
    extracted = fake[3]
    (extracted / CIFAR10_FOLDER / "data_batch_2").write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(InputError, match=message) as info:
        read_cifar10(extracted, verify=False)
    assert str(extracted) in str(info.value)


class _Hostile:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickle_calling_other_code_is_refused(fake):
    extracted = fake[3]
    (extracted / CIFAR10_FOLDER / "batches.meta").write_bytes(pickle.dumps({b"label_names": _Hostile()}))
    with pytest.raises(InputError, match="batches.meta is not a CIFAR-10 python pickle.*refusing to load global"):
        read_cifar10(extracted, verify=False)


# --------------------------------------------------------------------------- download


@contextlib.contextmanager
def _serve(payload: bytes, honour_range: bool = True, cut_after: int | None = None):
    """Serve `payload` on 127.0.0.1; yield (url, log of (Range header, status, bytes sent)).

    With `cut_after`, the first response stops after that many bytes (a dropped connection).
    """
    log = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked = self.headers.get("Range")
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1)) if asked and honour_range else 0
            if start >= len(payload) > 0 and asked and honour_range:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(payload)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                log.append((asked, 416, 0))
                return
            status = 206 if asked and honour_range else 200
            self.send_response(status)
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            self.send_header("Content-Length", str(len(payload) - start))
            self.end_headers()
            body = payload[start:] if cut_after is None or log else payload[start:cut_after]
            self.wfile.write(body)
            log.append((asked, status, len(body)))
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(POLL_S,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/{CIFAR10_ARCHIVE_NAME}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_full_download_verifies_and_renames(fake, tmp_path, capsys):
    tarball, _, archive_md5, _ = fake
    with _serve(tarball.read_bytes()) as (url, log):
        got = download_cifar10(tmp_path / "dl" / "nested", url=url, md5=archive_md5)
    assert got == tmp_path / "dl" / "nested" / CIFAR10_ARCHIVE_NAME
    assert _md5(got) == archive_md5
    assert not got.with_name(got.name + ".part").exists()
    assert log == [(None, 200, tarball.stat().st_size)]
    assert "100.0%" in capsys.readouterr().err


def test_resume_asks_for_the_tail_only(fake, tmp_path):
    tarball, _, archive_md5, _ = fake
    payload = tarball.read_bytes()
    half = len(payload) // 2
    (tmp_path / f"{CIFAR10_ARCHIVE_NAME}.part").write_bytes(payload[:half])
    with _serve(payload) as (url, log):
        got = download_cifar10(tmp_path, url=url, md5=archive_md5, progress=False)
    assert log == [(f"bytes={half}-", 206, len(payload) - half)]
    assert _md5(got) == archive_md5


def test_server_ignoring_range_restarts_from_zero(fake, tmp_path):
    tarball, _, archive_md5, _ = fake
    payload = tarball.read_bytes()
    (tmp_path / f"{CIFAR10_ARCHIVE_NAME}.part").write_bytes(b"stale bytes from another file")
    with _serve(payload, honour_range=False) as (url, log):
        got = download_cifar10(tmp_path, url=url, md5=archive_md5, progress=False)
    assert [status for _, status, _ in log] == [200]
    assert _md5(got) == archive_md5


def test_complete_part_file_answered_416_is_verified_and_kept(fake, tmp_path):
    tarball, _, archive_md5, _ = fake
    payload = tarball.read_bytes()
    (tmp_path / f"{CIFAR10_ARCHIVE_NAME}.part").write_bytes(payload)
    with _serve(payload) as (url, log):
        got = download_cifar10(tmp_path, url=url, md5=archive_md5, progress=False)
    assert [status for _, status, _ in log] == [416]
    assert _md5(got) == archive_md5


def test_wrong_md5_leaves_no_file(fake, tmp_path):
    tarball, _, archive_md5, _ = fake
    wrong = "0" * 32
    with (
        _serve(tarball.read_bytes()) as (url, _),
        pytest.raises(InputError, match=f"md5 {archive_md5}, expected {wrong}"),
    ):
        download_cifar10(tmp_path / "dl", url=url, md5=wrong, progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_present_archive_skips_the_network(fake, tmp_path):
    tarball, _, archive_md5, _ = fake
    shutil.copy(tarball, tmp_path / CIFAR10_ARCHIVE_NAME)
    with _serve(b"never sent") as (url, log):
        got = download_cifar10(tmp_path, url=url, md5=archive_md5, progress=False)
    assert log == []
    assert _md5(got) == archive_md5


def test_unreachable_server_suggests_a_local_copy(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{CIFAR10_ARCHIVE_NAME}"
    with pytest.raises(InputError, match=f"could not download {re.escape(url)}.*give its path"):
        download_cifar10(tmp_path, url=url, progress=False)


def test_dropped_connection_keeps_the_part_and_the_next_run_resumes(fake, tmp_path):
    tarball, _, archive_md5, _ = fake
    payload = tarball.read_bytes()
    cut = len(payload) // 3
    part = tmp_path / f"{CIFAR10_ARCHIVE_NAME}.part"
    with _serve(payload, cut_after=cut) as (url, log):
        with pytest.raises(InputError, match=f"closed after {cut} of {len(payload)} bytes.*resumes"):
            download_cifar10(tmp_path, url=url, md5=archive_md5, progress=False)
        assert part.read_bytes() == payload[:cut]
        got = download_cifar10(tmp_path, url=url, md5=archive_md5, progress=False)
    assert log[1] == (f"bytes={cut}-", 206, len(payload) - cut)
    assert _md5(got) == archive_md5 and not part.exists()
