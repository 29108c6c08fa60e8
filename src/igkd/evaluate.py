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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn

from igkd.augment import normalize, to_float
from igkd.data.imagefolder import read_class_map, read_eval_folder
from igkd.io import InputError, load_torch, read_json
from igkd.models import build_student, build_teacher
from igkd.train import to_chw_tensor

PACKAGE_DATA = Path(__file__).resolve().parent / "data"
IMAGENET_CIFAR10_MAP = PACKAGE_DATA / "imagenet_cifar10_map.csv"
RESULT_COLUMNS = ["dataset", "model", "method", "drop", "factor", "run", "correct", "n", "accuracy"]
PER_CLASS_COLUMNS = ["model", "method", "drop", "run", "class", "correct", "n", "accuracy"]
EVAL_BATCH = 512


@dataclass
class EvalModel:
    """A trained model to score and how to prepare its input."""

    model: str  # "teacher" or "student"
    method: str
    drop: int
    factor: float
    run: int
    weights: str
    mean: list[float] | None = None  # input normalisation; None = [0,1] images
    std: list[float] | None = None


def load_eval_set(root, image_size: int, class_map_path, classes) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N,H,W,3) images and labels indexing `classes` (the model's class order)."""
    class_map = read_class_map(class_map_path) if class_map_path else None
    if class_map is not None:
        foreign = sorted(set(class_map.values()) - set(classes))
        if foreign:
            raise InputError(f"{class_map_path}: classes {foreign} are not among the model's classes {list(classes)}")
    images, labels, _ = read_eval_folder(root, image_size, class_map, tuple(classes))
    return images, labels


def eval_models(teacher_weights, teacher_metrics, student_weights: Iterable, student_metrics: Iterable,
                student_norm: dict | None) -> list[EvalModel]:
    """The teacher and every student run, described by their metrics.json files."""
    tm = read_json(teacher_metrics)
    models = [EvalModel("teacher", "teacher", 0, float("nan"), 0, str(teacher_weights),
                        tm["normalize_mean"], tm["normalize_std"])]
    for weights, metrics_path in zip(student_weights, student_metrics, strict=True):
        m = read_json(metrics_path)
        models.append(EvalModel(
            "student", m["method"], int(m["drop"]), float(m["factor"]), int(m["run"]), str(weights),
            student_norm["mean"] if student_norm else None, student_norm["std"] if student_norm else None,
        ))
    return models


def build_model(entry: EvalModel, num_classes: int, teacher_width: float, student_width: float) -> nn.Module:
    """The architecture of `entry` with its trained weights (weights_only load, shapes checked by torch)."""
    if entry.model == "teacher":
        net = build_teacher(num_classes, teacher_width)
    else:
        net = build_student(entry.drop, num_classes, student_width)
    try:
        net.load_state_dict(load_torch(entry.weights))
    except RuntimeError as err:
        raise InputError(f"{entry.weights}: weights do not fit the {entry.model} architecture "
                         f"({str(err).splitlines()[0]})") from err
    return net.eval()


@torch.inference_mode()
def predict(model: nn.Module, images_u8: torch.Tensor, prepare: Callable, batch: int = EVAL_BATCH) -> torch.Tensor:
    """Argmax class of every image, in order."""
    return torch.cat([model(prepare(images_u8[lo: lo + batch])).argmax(1) for lo in range(0, len(images_u8), batch)])


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


def evaluate(models: list[EvalModel], images: np.ndarray, labels: np.ndarray, classes, *, dataset: str,
             teacher_width: float, student_width: float, device: str = "cpu", threads: int | None = None,
             channels_last: bool = False, log=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every model on the images: one row per model, and one row per model and class."""
    if threads:
        torch.set_num_threads(threads)
    x = to_chw_tensor(images, device)
    rows, per_class = [], []
    for entry in models:
        net = build_model(entry, len(classes), teacher_width, student_width).use_channels_last(channels_last).to(device)
        pred = predict(net, x, _prepare(entry)).cpu().numpy()
        correct, table = score(pred, labels, classes)
        keys = {"model": entry.model, "method": entry.method, "drop": entry.drop, "run": entry.run}
        rows.append({"dataset": dataset, **keys, "factor": entry.factor, "correct": correct, "n": len(labels),
                     "accuracy": 100.0 * correct / len(labels)})
        per_class.append(table.assign(**keys))
        if log:
            log(f"{entry.model} {entry.method} drop {entry.drop} run {entry.run}: {rows[-1]['accuracy']:.2f} %")
    return pd.DataFrame(rows, columns=RESULT_COLUMNS), pd.concat(per_class, ignore_index=True)[PER_CLASS_COLUMNS]


def _prepare(entry: EvalModel) -> Callable:
    if entry.mean is None:
        return to_float
    return lambda batch: normalize(to_float(batch), entry.mean, entry.std)

