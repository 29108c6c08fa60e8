"""Evaluate (never train) the teacher and the students on an external image folder.

The paper scores its CIFAR-10 models on 32x32 ImageNet validation images whose WNIDs map
to CIFAR-10 classes. The folder is flat, `root/<wnid>/*.png`; a class map (the shipped
`igkd/data/imagenet_cifar10_map.csv` by default) turns WNIDs into the model's class
names and unmapped folders are skipped. Labels follow the training data's class order.
A prediction is the argmax over all of the model's classes, so predicting a class with
no ImageNet counterpart (deer, horse) counts as wrong. Inputs are prepared as in
training: the teacher sees images normalised with its own mean/std (metrics.json), the
students see [0,1] images (or their configured normalisation).

The shipped map is the authors' (their ImageNet notebook): 98 WNIDs. Three entries are
doubtful and kept only to reproduce their number: n02692877 airship -> airplane,
n03895866 passenger car (a railway coach) -> automobile, and n03930630 pickup ->
automobile (CIFAR-10's automobile and truck classes both exclude pickups);
`imagenet_cifar10_map_strict.csv` leaves those three out.

Column `student` names each student by its id (mobilenetv2-drop5; igkd.registry); the
teacher's rows carry the word "teacher" there (as in `model`), as timing.csv's do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from igkd.architectures import build_student, use_channels_last
from igkd.data.imagefolder import read_class_map, read_eval_folder
from igkd.io import InputError, read_json
from igkd.models import load_weights
from igkd.runtime import DEFAULT_RUNTIME, Runtime
from igkd.training.augment import InputNorm
from igkd.training.loop import to_chw_tensor
from igkd.training.teacher import load_trained_teacher

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"
IMAGENET_CIFAR10_MAP = PACKAGE_DATA / "imagenet_cifar10_map.csv"
RESULT_COLUMNS = ["dataset", "model", "method", "student", "factor", "run", "correct", "n", "accuracy"]
PER_CLASS_COLUMNS = ["model", "method", "student", "run", "class", "correct", "n", "accuracy"]
TEACHER = "teacher"  # the `student` column of the teacher's rows
EVAL_BATCH = 512


@dataclass
class EvalModel:
    """A trained model to score and how to prepare its input."""

    model: str  # "teacher" or "student"
    method: str
    student: str  # an id (mobilenetv2-drop5), or TEACHER
    factor: float
    run: int
    weights: str
    norm: InputNorm = InputNorm()  # a student's input normalisation; none = [0,1] images
    metrics: str | None = None  # the teacher's metrics.json: its normalisation (igkd.training.teacher)


@dataclass(frozen=True)
class EvalSet:
    """The images to score, their labels (indexing `classes`, the models' class order) and a name."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple
    name: str


def load_eval_set(root, image_size: int, class_map_path, classes) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N,H,W,3) images and labels indexing `classes` (the model's class order)."""
    class_map = read_class_map(class_map_path) if class_map_path else None
    if class_map is not None:
        foreign = sorted(set(class_map.values()) - set(classes))
        if foreign:
            raise InputError(f"{class_map_path}: classes {foreign} are not among the model's classes {list(classes)}")
    images, labels, _ = read_eval_folder(root, image_size, class_map, tuple(classes))
    return images, labels


def eval_models(
    teacher_weights, teacher_metrics, student_weights: Iterable, student_metrics: Iterable, student_norm: dict | None
) -> list[EvalModel]:
    """The teacher and every student run, described by their metrics.json files."""
    teacher = EvalModel(
        "teacher", "teacher", TEACHER, float("nan"), 0, str(teacher_weights), metrics=str(teacher_metrics)
    )
    models = [teacher]
    for weights, metrics_path in zip(student_weights, student_metrics, strict=True):
        m = read_json(metrics_path)
        models.append(
            EvalModel(
                "student",
                m["method"],
                str(m["student"]),
                float(m["factor"]),
                int(m["run"]),
                str(weights),
                InputNorm.from_config(student_norm),
            )
        )
    return models


def load_model(entry: EvalModel, num_classes: int, widths: tuple[float, float]) -> tuple[nn.Module, InputNorm]:
    """The trained model of `entry` and its input normalisation (`widths`: teacher's, students').
    The teacher loads as every later stage loads it (igkd.training.teacher)."""
    if entry.model == "teacher":
        teacher = load_trained_teacher(entry.weights, entry.metrics, num_classes=num_classes, width=widths[0])
        return teacher.model, teacher.norm
    net = build_student(entry.student, num_classes, widths[1])
    return load_weights(net, entry.weights, f"{entry.model} architecture").eval(), entry.norm


@torch.inference_mode()
def predict(model: nn.Module, images_u8: torch.Tensor, prepare: Callable, batch: int = EVAL_BATCH) -> torch.Tensor:
    """Argmax class of every image, in order."""
    return torch.cat([model(prepare(images_u8[lo : lo + batch])).argmax(1) for lo in range(0, len(images_u8), batch)])


def score(pred: np.ndarray, labels: np.ndarray, classes) -> tuple[int, pd.DataFrame]:
    """Number correct overall, and correct / n / accuracy per class present in `labels`."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"{len(pred)} predictions for {len(labels)} labels")
    hits = pred == labels
    rows = []
    for k in np.unique(labels):
        mask = labels == k
        rows.append({"class": classes[k], "correct": int(hits[mask].sum()), "n": int(mask.sum())})
    per_class = pd.DataFrame(rows, columns=["class", "correct", "n"])
    per_class["accuracy"] = 100.0 * per_class["correct"] / per_class["n"]
    return int(hits.sum()), per_class


def evaluate(
    models: list[EvalModel], eval_set: EvalSet, widths: tuple[float, float], runtime: Runtime = DEFAULT_RUNTIME
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every model on the images: one row per model, and one row per model and class.
    `widths`: the teacher's and the students' width multipliers."""
    torch.set_num_threads(runtime.threads)
    images, labels, classes = eval_set.images, eval_set.labels, eval_set.classes
    x = to_chw_tensor(images, runtime.device)
    rows, per_class = [], []
    for entry in models:
        net, norm = load_model(entry, len(classes), widths)
        net = use_channels_last(net, runtime.channels_last).to(runtime.device)
        pred = predict(net, x, norm.prepare).cpu().numpy()
        correct, table = score(pred, labels, classes)
        keys = {"model": entry.model, "method": entry.method, "student": entry.student, "run": entry.run}
        rows.append(
            {
                "dataset": eval_set.name,
                **keys,
                "factor": entry.factor,
                "correct": correct,
                "n": len(labels),
                "accuracy": 100.0 * correct / len(labels),
            }
        )
        per_class.append(table.assign(**keys))
        runtime.log(f"{_name(entry)}: {rows[-1]['accuracy']:.2f} %")
    return pd.DataFrame(rows, columns=RESULT_COLUMNS), pd.concat(per_class, ignore_index=True)[PER_CLASS_COLUMNS]


def _name(entry: EvalModel) -> str:
    """How the log names a scored model: 'teacher', 'student KD mobilenetv2-drop5 run 0'."""
    if entry.student == TEACHER:
        return entry.model
    return f"{entry.model} {entry.method} {entry.student} run {entry.run}"
