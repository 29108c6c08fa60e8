"""Same seed, same machine -> the same numbers: the tiny pipeline run twice from scratch in
two folders gives byte-identical runs.csv and metrics.json files (teacher and students)
and identical precompute arrays and attrs. Wall-clock time lives in runtime.json.

Results depend on the thread count (reductions split differently; it is recorded in every
metrics file) but not on the run. One thread per job keeps this fast on a shared machine;
two threads (the demo's teacher and precompute) were checked to repeat bit for bit too.
"""

import copy
import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from test_workflow import TINY, snakemake

TARGET = "results/digits/tables/ablation/runs.csv"


def config() -> dict:
    cfg = copy.deepcopy(TINY)
    cfg["runtime"]["threads"] = {"teacher": 1, "precompute": 1, "student": 1}
    return cfg


def fresh_copy(repo, folder):
    folder.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo / name, folder / name)
    for sub in ("workflow", "envs"):
        shutil.copytree(repo / sub, folder / sub)
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config()))
    return folder


@pytest.mark.e2e
def test_two_runs_from_scratch_give_identical_results(repo, tmp_path):
    runs = [fresh_copy(repo, tmp_path / name) for name in ("first", "second")]
    for folder in runs:
        code, out = snakemake(folder, TARGET, "--configfile", "config.yaml", "tiny.yaml")
        assert code == 0, out
    first, second = (folder / "results/digits" for folder in runs)

    assert (first / "tables/ablation/runs.csv").read_bytes() == (second / "tables/ablation/runs.csv").read_bytes()
    assert "seconds" not in pd.read_csv(first / "tables/ablation/runs.csv").columns
    metrics = sorted(p.relative_to(first) for p in first.rglob("metrics.json"))
    assert len(metrics) == 1 + 2  # teacher + 2 students
    for path in metrics:
        assert (first / path).read_bytes() == (second / path).read_bytes(), path
        stored = json.loads((first / path).read_text())
        assert "seconds" not in stored and {"torch", "device", "threads"} <= set(stored["environment"])
        assert json.loads((first / path).with_name("runtime.json").read_text())["seconds"] > 0

    for path in sorted(p.relative_to(first) for p in first.rglob("history.csv")):
        a, b = (pd.read_csv(root / path).drop(columns="seconds") for root in (first, second))
        pd.testing.assert_frame_equal(a, b, check_exact=True)

    for path in sorted(p.relative_to(first) for p in first.rglob("model.pt")):
        a, b = (torch.load(root / path, weights_only=True) for root in (first, second))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), path

    with h5py.File(first / "precompute/ig.h5") as a, h5py.File(second / "precompute/ig.h5") as b:
        assert sorted(a.attrs) == sorted(b.attrs)
        assert {"env_torch", "env_device", "env_threads", "data_checksum", "teacher_checksum"} <= set(a.attrs)
        for key in a.attrs:
            assert same(a.attrs[key], b.attrs[key]), key
        for name in ("logits", "maps", "delta", "rel_delta"):
            assert same(a[name][()], b[name][()]), name


def same(x, y) -> bool:
    """Equal values (NaN equal to NaN for floats; strings and ints compared as they are)."""
    x, y = np.asarray(x), np.asarray(y)
    return np.array_equal(x, y, equal_nan=x.dtype.kind in "fc" and y.dtype.kind in "fc")
