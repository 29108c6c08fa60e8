"""Training sets smaller than a batch, classes of one image, tiny validation splits:
they train (or fail with one clean InputError naming the sizes), and every normal size
keeps exactly the batches and rows it had before (docs/reliability.md)."""

import copy
import json
import math

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from sklearn.model_selection import train_test_split

import configs
from conftest import smooth_copy
from igkd.attribution.precompute import AttributionJob, Precomputed, precompute
from igkd.controls import derangement, teacher_rows
from igkd.data.store import Splits, stratified_val_index, with_val_split
from igkd.experiments import StudentRecipe
from igkd.io import InputError
from igkd.models import build_teacher
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm
from igkd.training.loop import LoopConfig, Optimization, TrainSet, TrainTask, fit
from igkd.training.methods import METHODS
from igkd.training.student import fit_student, subsample
from igkd.training.sweep import SweepJob, train_points
from igkd.training.sweep_points import point_settings
from igkd.training.teacher import TrainedTeacher, fit_teacher
from test_workflow import TINY, snakemake

TEACHER = {**configs.TEACHER, "epochs": 2, "batch_size": 256}  # larger than the tiny sets
STUDENT = configs.STUDENT
SWEEPS = {
    "student": "mobilenetv2-drop13",
    "epochs": 1,
    "fraction": 1.0,
    "overlay": {"method": "IG"},
    "kd": {"method": "KD"},
}
QUIET = {"log": lambda m: None}
QUIET_RUNTIME = Runtime(log=lambda m: None)
NO_TEACHER = TrainedTeacher(None, InputNorm(), "t" * 64, 1000)  # KD/IG methods never run it
NORM = InputNorm((0.3,) * 3, (0.3,) * 3)


def small(digits, per_class, classes=3, val_fraction=0.0):
    """The first `per_class` digits training images of the first `classes` classes (8x8)."""
    rows = np.concatenate([np.flatnonzero(digits.train_labels == c)[:per_class] for c in range(classes)])
    test = np.flatnonzero(digits.test_labels < classes)[:6]
    splits = Splits(
        digits.train_images[rows],
        digits.train_labels[rows],
        digits.test_images[test],
        digits.test_labels[test],
        tuple(digits.classes[:classes]),
    )
    return with_val_split(splits, val_fraction, 0)


@pytest.fixture(scope="module")
def digits():
    from igkd.data.digits import load_digits_splits

    return load_digits_splits(8, 0.2, 0)


def fake_pre(splits):
    n = len(splits.train_labels)
    rng = np.random.default_rng(0)
    return Precomputed(
        rng.random((n, len(splits.classes)), dtype=np.float32), rng.random((n, 8, 8), dtype=np.float32), {}
    )


def student(splits, method="Student", drop=13, fraction=0.8, **cfg):
    run = configs.student_run(method, drop, fraction=fraction, students={**STUDENT, **cfg})
    result = fit_student(splits, run, None, fake_pre(splits), QUIET_RUNTIME)
    return result.model, result.history, {"rows": result.rows}


# --- the loop: one definition of the steps per epoch -------------------------------------------------


def test_batches_are_unchanged_except_on_the_two_small_set_rules():
    for batch in (1, 7, 64, 256):
        for n in range(2, 600):
            for drop_last in (False, True):
                old_steps = n // batch if drop_last else math.ceil(n / batch)
                old = [min((i + 1) * batch, n) for i in range(old_steps)]
                new = LoopConfig(1, batch, drop_last=drop_last).batch_ends(n)
                assert len(new) == LoopConfig(1, batch, drop_last=drop_last).steps_per_epoch(n)
                if n < batch and drop_last:  # was no step at all: now one partial batch
                    assert old == [] and new == [n]
                elif n > batch and n % batch == 1 and not drop_last:  # a 1-row tail joins the batch before
                    assert new == old[:-2] + [n] and new[-1] - ([0] + new)[-2] == batch + 1
                else:
                    assert new == old, (batch, n, drop_last)


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_rows_is_an_input_error_naming_the_sizes(n):
    with pytest.raises(InputError, match=rf"^training set has {n} rows?; training needs at least 2 \(batch size 64\)$"):
        LoopConfig(1, 64).batch_ends(n)


def test_one_row_tail_trains_where_batchnorm_sees_one_value_per_channel():
    """A conv to 1x1 then BatchNorm: a 1-row batch cannot train; 65 rows at batch 64 must."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 8), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 3)
    )
    data = TrainSet(torch.randint(0, 256, (65, 3, 8, 8), dtype=torch.uint8), torch.arange(65) % 3)
    sizes = []

    def step(rows):
        sizes.append(len(rows))
        logits = model(data.images[rows].float() / 255)
        return logits, data.labels[rows], {"ce": torch.nn.functional.cross_entropy(logits, data.labels[rows])}

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(
        TrainTask(model, step, dict),
        Optimization(optimizer),
        data,
        LoopConfig(2, 64),
        torch.Generator().manual_seed(0),
        log=QUIET["log"],
    )
    assert sizes == [65, 65] and len(history) == 2 and np.isfinite(history[-1]["loss_ce"])


def test_student_with_a_one_row_tail_at_one_by_one_features(digits):
    """Drop 3 at 8x8 ends in 1x1 BatchNorm: 65 training rows at batch 64 used to crash."""
    splits = small(digits, 22)
    rows = np.arange(65)
    splits = Splits(
        splits.train_images[rows], splits.train_labels[rows], splits.test_images, splits.test_labels, splits.classes
    )
    _, history, facts = student(splits, drop=3, fraction=1.0)
    assert len(facts["rows"]) == 65 and np.isfinite(history[-1]["loss_ce"])


# --- teacher ------------------------------------------------------------------------------------------


def test_teacher_trains_on_a_set_smaller_than_one_batch_and_its_schedule_ends(digits):
    splits = small(digits, 12)  # 36 rows, batch 256, drop_last
    model, history = fit_teacher(splits, TEACHER, NORM, QUIET_RUNTIME)
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(np.isfinite(row["loss_ce"]) and 0 <= row["train_acc"] <= 100 for row in history)
    # one step per epoch, as the scheduler planned: warm-up done after epoch 1, cosine at 0 after epoch 2
    assert history[0]["lr"] == pytest.approx(TEACHER["lr"]) and history[1]["lr"] == pytest.approx(0, abs=1e-12)


def test_teacher_on_one_image_is_an_input_error(digits):
    with pytest.raises(
        InputError,
        match=r"^teacher: the training set has 1 row; training needs at least 2 "
        r"\(batch size 256\)$",
    ):
        fit_teacher(small(digits, 1, classes=1), TEACHER, NORM, QUIET_RUNTIME)


# --- students: subsample -----------------------------------------------------------------------------


def test_subsample_is_sklearns_wherever_sklearn_accepts(digits):
    labels = digits.train_labels
    for rows in (np.arange(len(labels)), np.arange(0, len(labels), 3), np.arange(200)):
        for fraction in (0.1, 0.3, 0.5, 0.8, 0.95):
            for seed in (0, 7):
                kept, _ = train_test_split(rows, train_size=fraction, stratify=labels[rows], random_state=seed)
                np.testing.assert_array_equal(subsample(labels, rows, fraction, seed), np.sort(kept))


def test_subsample_of_tiny_classes_rounds_per_class_and_keeps_every_class():
    labels = np.repeat([0, 1, 2], 12)
    with pytest.raises(ValueError, match="greater or equal to the number of classes"):  # what sklearn says
        train_test_split(np.arange(36), train_size=0.95, stratify=labels, random_state=0)
    kept = subsample(labels, np.arange(36), 0.95, 0)
    assert np.bincount(labels[kept]).tolist() == [11, 11, 11]  # round(0.95 * 12)
    assert np.array_equal(kept, np.sort(kept)) and np.array_equal(kept, subsample(labels, np.arange(36), 0.95, 0))
    labels = np.array([0] * 10 + [1])  # a class of one row
    rows = np.arange(100, 111)
    kept = subsample(np.concatenate([np.zeros(100, int), labels]), rows, 0.5, 0)
    assert np.isin(kept, rows).all() and 110 in kept and len(kept) == 6  # round(0.5 * 10) + the lone row
    assert subsample(np.repeat([0, 1, 2], 2), np.arange(6), 0.1, 0).tolist() != []  # rounds to 0: one per class
    assert np.bincount(np.repeat([0, 1, 2], 2)[subsample(np.repeat([0, 1, 2], 2), np.arange(6), 0.1, 0)]).tolist() == [
        1,
        1,
        1,
    ]


def test_students_train_on_tiny_sets(digits):
    _, history, facts = student(small(digits, 12), fraction=0.95)  # sklearn refuses 0.95 of 3 x 12
    assert len(facts["rows"]) == 33 and np.isfinite(history[-1]["loss_ce"])
    _, _, facts = student(small(digits, 1), fraction=0.8)  # one image per class
    assert len(facts["rows"]) == 3
    _, history, facts = student(small(digits, 2, val_fraction=0.5), exclude_val=True)  # 3 rows outside validation
    assert len(facts["rows"]) == 3 and "val_acc" in history[-1]
    with pytest.raises(
        InputError,
        match=r"^students: Student mobilenetv2-drop13 fraction 1.0 run 0: the training subsample "
        r"\(fraction 1.0 of 1 rows\) has 1 row; training needs at least 2",
    ):
        student(small(digits, 1, classes=1), fraction=1.0)


# --- validation split ---------------------------------------------------------------------------------


def test_val_split_is_sklearns_wherever_sklearn_accepts(digits):
    labels = digits.train_labels
    for subset in (labels, labels[:200]):
        for fraction in (0.1, 0.2, 0.5):
            _, val = train_test_split(np.arange(len(subset)), test_size=fraction, stratify=subset, random_state=3)
            np.testing.assert_array_equal(stratified_val_index(subset, fraction, 3), np.sort(val))
    assert stratified_val_index(labels, 0.0, 0).tolist() == []


def test_val_split_of_tiny_sets_leaves_every_class_a_training_row():
    labels = np.repeat([0, 1, 2], 4)  # sklearn: 0.1 of 12 is 2 validation rows, fewer than 3 classes
    val = stratified_val_index(labels, 0.1, 0)
    assert np.bincount(labels[val], minlength=3).tolist() == [1, 1, 1]
    assert stratified_val_index(np.array([0, 1, 2]), 0.1, 0).tolist() == []  # one image per class: none held out
    labels = np.array([0] * 10 + [1])
    val = stratified_val_index(labels, 0.5, 0)
    assert np.bincount(labels[val], minlength=2).tolist() == [5, 0]


def test_val_fraction_zero_and_tiny_in_prepare(digits):
    assert len(small(digits, 12, val_fraction=0.0).val_index) == 0
    assert len(small(digits, 4, val_fraction=0.1).val_index) == 3
    assert len(small(digits, 1, val_fraction=0.1).val_index) == 0


# --- sweeps and controls ------------------------------------------------------------------------------


def sweep(splits, tmp_path):
    job = SweepJob("overlay_p", [{"p": 0.1, "run": 0}], [tmp_path / "m.json"], [tmp_path / "h.csv"])
    students, _ = point_settings(StudentRecipe.from_config(STUDENT), SWEEPS, "overlay_p")
    (written,) = train_points(splits, job, students, SWEEPS, NO_TEACHER, fake_pre(splits), QUIET_RUNTIME)
    return written


def test_sweeps_on_tiny_sets(digits, tmp_path):
    written = sweep(small(digits, 4, val_fraction=0.1), tmp_path)  # sklearn refuses this validation split
    assert written["n_train"] == 9 and written["n_val"] == 3 and 0 <= written["val_acc"] <= 100
    with pytest.raises(
        InputError,
        match="empty validation split; sweeps need dataset.val_fraction > 0 and a class "
        "with at least 2 training images",
    ):
        sweep(small(digits, 1, val_fraction=0.1), tmp_path)


def test_derangement_of_one_row_is_an_input_error():
    with pytest.raises(
        InputError, match=r"^shuffled_\* controls: a derangement needs at least 2 rows \(training images\), got 1$"
    ):
        teacher_rows(METHODS["shuffled_KD"], np.array([3]), 0)
    with pytest.raises(InputError, match=r"got 1$"):
        teacher_rows(METHODS["shuffled_KD_in_class"], np.array([3]), 0)
    assert sorted(derangement(2, 0).tolist()) == [0, 1] and derangement(2, 0).tolist() == [1, 0]


# --- precompute ---------------------------------------------------------------------------------------


def test_precompute_batch_and_chunk_larger_than_the_set(digits, tmp_path):
    splits = small(digits, 12)
    torch.manual_seed(0)
    teacher = smooth_copy(build_teacher(3, 0.25).eval())  # other batches round differently: no ReLU6 kinks
    settings = {"steps": 4, "method": "gausslegendre", "internal_batch_size": 64}
    rows = {}
    for name, batch, chunk in (("large", 64, 1024), ("small", 5, 8)):
        precompute(
            TrainedTeacher(teacher, NORM, "t", 0),
            splits.train_images,
            splits.train_labels,
            tmp_path / f"{name}.h5",
            AttributionJob("ig", settings, chunk, batch),
            QUIET_RUNTIME,
        )
        with h5py.File(tmp_path / f"{name}.h5") as h5:
            rows[name] = {key: h5[key][()] for key in ("logits", "maps")}
    assert rows["large"]["maps"].shape == (36, 8, 8) and rows["large"]["logits"].shape == (36, 3)
    for key in ("logits", "maps"):  # an untrained teacher's values are ~1e-8: the absolute term follows them
        large = rows["large"][key]
        np.testing.assert_allclose(large, rows["small"][key], rtol=1e-4, atol=1e-6 * np.abs(large).max())
        assert np.abs(large).max() > 0 and not np.allclose(large[0], large[1], rtol=1e-4, atol=0)


# --- the workflow -------------------------------------------------------------------------------------


def write_folder(root, per_class, size=8):
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for name in ("ant", "bee", "cow"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.mark.e2e
def test_workflow_on_a_folder_smaller_than_one_batch(workdir):
    """3 classes x 12 images with the full config's batch sizes (teacher 256, students 64)."""
    write_folder(workdir / "folder", {"train": 12, "test": 2})
    cfg = copy.deepcopy(TINY)
    cfg["dataset"] = {"name": "imagefolder", "image_size": 8, "imagefolder": {"root": "folder"}}
    cfg["teacher"]["batch_size"] = 256
    cfg["experiments"]["ablation"].update({"methods": ["KD_IG"], "fraction": 0.8})
    cfg["experiments"]["compression"] = {"enabled": False}
    cfg["students"]["batch_size"] = 64
    (workdir / "small.yaml").write_text(yaml.safe_dump(cfg))
    code, out = snakemake(
        workdir, "results/imagefolder/tables/ablation/runs.csv", "--configfile", "config.yaml", "small.yaml"
    )
    assert code == 0, out
    runs = pd.read_csv(workdir / "results/imagefolder/tables/ablation/runs.csv")
    assert runs["method"].tolist() == ["KD_IG"] and runs["n_train"].tolist() == [28]  # sklearn's 0.8 of 36
    history = pd.read_csv(workdir / "results/imagefolder/teacher/history.csv")
    assert len(history) == 1 and np.isfinite(history["loss_ce"]).all()
    metrics = json.loads(
        (workdir / "results/imagefolder/students/KD_IG/mobilenetv2-drop13/f0.8/run0/metrics.json").read_text()
    )
    assert 0 <= metrics["test_acc"] <= 100
