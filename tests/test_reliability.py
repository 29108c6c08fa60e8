"""Outputs are never half-written, a write the disk refuses fails with the path named,
scripts end with one clean line on bad input, and no config value reaches a shell.

The tests run as root, where chmod does not make a folder unwritable, so the disk
errors are raised by monkeypatching os.replace / os.fsync / tempfile.mkstemp.
"""

import errno
import json
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from igkd import io as igkd_io
from igkd.attribution.precompute import AttributionJob, Records, precompute
from igkd.io import WriteError, atomic_path, save_torch, write_csv, write_json
from igkd.models import build_teacher
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm
from igkd.training.teacher import TrainedTeacher


def exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


def refuse(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp."))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_refused_rename_names_the_path_and_keeps_the_old_file(tmp_path, monkeypatch, code):
    path = tmp_path / "metrics.json"
    write_json(path, {"test_acc": 1.0})
    monkeypatch.setattr(igkd_io.os, "replace", refuse(code))
    with pytest.raises(WriteError, match=exact(f"[Errno {code}] could not write {path}: {os.strerror(code)}")) as info:
        write_json(path, {"test_acc": 2.0})
    assert info.value.errno == code
    assert json.loads(path.read_text()) == {"test_acc": 1.0}  # the previous complete file, untouched
    assert leftovers(tmp_path) == []


def test_full_disk_at_fsync_leaves_no_output(tmp_path, monkeypatch):
    monkeypatch.setattr(igkd_io.os, "fsync", refuse(errno.ENOSPC))
    path = tmp_path / "runs.csv"
    with pytest.raises(WriteError, match=exact(f"[Errno 28] could not write {path}: No space left on device")):
        write_csv(path, pd.DataFrame({"a": [1, 2]}))
    assert not path.exists() and leftovers(tmp_path) == []


def test_full_disk_while_writing_a_checkpoint(tmp_path, monkeypatch):
    """torch.save itself fails half-way: the temp file goes, the path is named."""

    def half_written(obj, target):
        target.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_written)
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(WriteError, match=exact(f"[Errno 28] could not write {path}: No space left on device")):
        save_torch(path, {"epoch": 1})
    assert not path.exists() and leftovers(tmp_path) == []


def test_read_only_folder_names_the_output(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "mkstemp", refuse(errno.EROFS))
    path = tmp_path / "model.pt"
    with pytest.raises(WriteError, match=exact(f"[Errno 30] could not write {path}: Read-only file system")):
        save_torch(path, {"w": torch.zeros(1)})


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(ZeroDivisionError), atomic_path(tmp_path / "x.txt"):
        1 / 0  # noqa: B018 - the error under test
    with pytest.raises(OSError) as info, atomic_path(tmp_path / "y.txt"):
        raise OSError(errno.EIO, "Input/output error")
    assert type(info.value) is OSError and info.value.errno == errno.EIO
    assert leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def small_teacher():
    torch.manual_seed(0)
    return build_teacher(10, 0.25).eval()


def run_precompute(teacher, splits, path, environment=None, log=lambda m: None):
    job = AttributionJob("ig", {"steps": 2, "method": "gausslegendre", "internal_batch_size": 64}, chunk=32, batch=32)
    records = Records({"data_checksum": "d" * 64, "teacher_checksum": "t" * 64}, environment)
    trained = TrainedTeacher(teacher, InputNorm((0.3,) * 3, (0.3,) * 3), "t" * 64, 0)
    return precompute(trained, splits.train_images[:64], splits.train_labels[:64], path, job, Runtime(log=log), records)


def test_precompute_reports_its_size_and_records_the_environment(tiny_splits, small_teacher, tmp_path):
    path = tmp_path / "ig.h5"
    messages = []
    env = {"torch": torch.__version__, "device": "cpu", "threads": 1}
    run_precompute(small_teacher, tiny_splits, path, environment=env, log=messages.append)
    assert messages[-1] == f"precompute ig: wrote {path} ({path.stat().st_size / 1000:.1f} KB)"
    with h5py.File(path) as h5:
        assert h5.attrs["env_torch"] == torch.__version__ and h5.attrs["env_device"] == "cpu"
        assert h5.attrs["env_threads"] == 1


def test_precompute_that_cannot_be_renamed_names_the_output_and_resumes(
    tiny_splits, small_teacher, tmp_path, monkeypatch
):
    path = tmp_path / "ig.h5"
    with monkeypatch.context() as patch:
        patch.setattr(igkd_io.os, "replace", refuse(errno.ENOSPC))
        with pytest.raises(WriteError, match=exact(f"[Errno 28] could not write {path}: No space left on device")):
            run_precompute(small_teacher, tiny_splits, path, log=lambda m: None)
    assert not path.exists()
    messages = []
    run_precompute(small_teacher, tiny_splits, path, log=messages.append)  # space freed: nothing recomputed
    assert f"precompute: resuming {path}.partial at row 64/64" in messages
    with h5py.File(path) as h5:
        assert h5.attrs["rows_done"] == 64 and np.isfinite(h5["maps"][()]).all()


SCRIPT = """
import sys
from igkd.runtime import log_to
from igkd.io import InputError, WriteError
log = log_to(sys.argv[1])
log("started")
kind = sys.argv[2]
if kind == "input":
    raise InputError("results/x/data.h5: dataset file not found (run the prepare_data rule)")
if kind == "disk":
    raise WriteError(28, "could not write results/x/model.pt: No space left on device")
raise RuntimeError("a bug")
"""


@pytest.mark.parametrize(
    "kind, line",
    [
        ("input", "error: results/x/data.h5: dataset file not found (run the prepare_data rule)"),
        ("disk", "error: could not write results/x/model.pt: No space left on device"),
    ],
)
def test_scripts_end_with_one_clean_line(tmp_path, kind, line):
    """What a workflow script does on an InputError/WriteError: the message, no traceback,
    in the job log and on the console, exit status 1 (Snakemake marks the job failed)."""
    log = tmp_path / "job.log"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(log), kind], capture_output=True, text=True)
    assert result.returncode == 1
    assert log.read_text() == f"started\n{line}\n"
    assert result.stderr == line + "\n"


def test_scripts_keep_the_traceback_for_bugs(tmp_path):
    log = tmp_path / "job.log"
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(log), "bug"], capture_output=True, text=True)
    assert result.returncode == 1
    text = log.read_text()
    assert text.startswith("started\nTraceback (most recent call last):") and text.endswith("RuntimeError: a bug\n")


def test_rules_never_build_shell_strings(repo):
    """Config values (paths, names) cannot be injected into a shell: no rule has a shell:
    or run: block; every rule that makes files calls a Python script (which reads
    snakemake.input/params as Python objects)."""
    files = [repo / "Snakefile", *sorted((repo / "workflow" / "rules").glob("*.smk"))]
    rules = []  # (name, file, body) of every definition: a rule defined in both branches of an if, each
    for path in files:
        text = path.read_text()
        assert not re.search(r"^\s*(shell|run)\s*:", text, flags=re.M), f"{path.name} has a shell:/run: directive"
        assert "os.system" not in text and "subprocess" not in text, path.name
        blocks = re.split(r"^\s*(?:local)?rule (\w+):", text, flags=re.M)
        rules += [(name, path.name, body) for name, body in zip(blocks[1::2], blocks[2::2])]
    assert {"prepare_data", "train_teacher", "precompute_attributions", "distill_student"} <= {r[0] for r in rules}
    for name, where, body in rules:
        if re.search(r"^\s+output:", body, flags=re.M):
            assert re.search(r"^\s+script:", body, flags=re.M), f"rule {name} in {where} makes files without script:"
    for script in (repo / "workflow" / "scripts").glob("*.py"):
        text = script.read_text()
        assert "subprocess" not in text and "os.system" not in text and "shell(" not in text, script.name
