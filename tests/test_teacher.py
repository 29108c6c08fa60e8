import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest

from configs import TEACHER
from igkd.io import load_torch, read_json
from igkd.models import build_teacher, n_params
from igkd.runtime import Runtime
from igkd.training import teacher as teacher_stage
from igkd.training.augment import InputNorm
from igkd.training.teacher import TeacherOutputs, fit_teacher, import_teacher, run_teacher, teacher_rows

CFG = TEACHER
NORM = InputNorm((0.3,) * 3, (0.3,) * 3)
QUIET = Runtime(log=lambda m: None)


def test_run_teacher_trains_writes_and_reimports(tiny_splits, tmp_path):
    paths = [tmp_path / "model.pt", tmp_path / "metrics.json", tmp_path / "history.csv"]
    metrics = run_teacher(tiny_splits, CFG, NORM, TeacherOutputs(*map(str, paths)), QUIET, tiny_splits.checksum())
    assert all(p.exists() for p in paths) and not (tmp_path / "checkpoint.pt").exists()
    history = pd.read_csv(paths[2])
    # 4 epochs, not 2: at 2 the loss had not yet fallen on every CPU (warm-up to lr 0.05 first)
    assert list(history["epoch"]) == [1, 2, 3, 4] and history["loss_ce"].iloc[-1] < history["loss_ce"].iloc[0]
    assert read_json(paths[1])["test_acc"] == metrics["test_acc"]
    # learning: more test images right than guessing the commonest class would get, beyond
    # chance (binomial, p < 1e-6), not above a fixed accuracy (52-53 % on three CPU kernel sets)
    labels = tiny_splits.test_labels
    correct = round(metrics["test_acc"] * len(labels) / 100)
    chance = np.bincount(labels).max() / len(labels)
    assert binomtest(correct, len(labels), chance, alternative="greater").pvalue < 1e-6, metrics["test_acc"]
    assert metrics["params"] == n_params(build_teacher(width=0.25)) == 250_922
    assert metrics["environment"]["devices_used"] == ["cpu"] and list(history["device"]) == ["cpu"] * 4
    env = metrics["environment"]
    assert (env["device_type"], env["precision"], env["eval_precision"]) == ("cpu", "fp32", "fp32")
    assert metrics["exclude_val"] is False and metrics["n_train"] == len(tiny_splits.train_labels)  # every row
    assert set(load_torch(paths[0])) == set(build_teacher(width=0.25).state_dict())
    # importing the written weights reproduces the same test accuracy
    outputs = TeacherOutputs(*(str(tmp_path / f"b_{p.name}") for p in paths))
    imported = run_teacher(
        tiny_splits, {**CFG, "source": "import", "weights": str(paths[0])}, NORM, outputs, QUIET, tiny_splits.checksum()
    )
    assert imported["test_acc"] == metrics["test_acc"] and imported["epochs"] == 0


def test_import_accepts_wrapped_state_dicts(tmp_path):
    state = build_teacher(width=0.25).state_dict()
    torch.save({"state_dict": state}, tmp_path / "wrapped.pt")
    model = import_teacher(tmp_path / "wrapped.pt", 10, 0.25)
    assert torch.equal(model.state_dict()["classifier.1.weight"], state["classifier.1.weight"])


def test_exclude_val_leaves_exactly_the_validation_rows_out(tiny_splits):
    n, val = len(tiny_splits.train_labels), tiny_splits.val_index
    assert len(val) > 0
    kept = teacher_rows(tiny_splits, exclude_val=True)
    assert len(kept) == n - len(val) and not set(kept) & set(val)
    assert sorted({*kept, *val}) == list(range(n))
    every = teacher_rows(tiny_splits, exclude_val=False)  # the paper's teacher: all 50,000 on CIFAR-10
    assert list(every) == list(range(n)) and set(val) <= set(every)


@pytest.mark.parametrize("exclude_val", [False, True])
def test_the_teacher_trains_on_the_rows_teacher_exclude_val_selects(tiny_splits, monkeypatch, exclude_val):
    """What fit_teacher hands the training loop: the images and labels of those rows, in order."""
    seen = {}

    def no_training(task, optimization, data, *args, **kwargs):
        seen["images"], seen["labels"] = data.images.numpy(), data.labels.numpy()
        return []

    monkeypatch.setattr(teacher_stage, "fit", no_training)
    fit_teacher(tiny_splits, {**CFG, "exclude_val": exclude_val}, NORM, QUIET)
    rows = tiny_splits.train_index if exclude_val else np.arange(len(tiny_splits.train_labels))
    assert np.array_equal(seen["labels"], tiny_splits.train_labels[rows])
    assert np.array_equal(seen["images"], tiny_splits.train_images[rows].transpose(0, 3, 1, 2))
