"""Teacher stage: train with the paper's recipe, or import given weights with key/shape checks."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from igkd.data.store import Splits
from igkd.io import InputError, load_torch, read_json, save_torch, sha256_file, write_csv, write_json
from igkd.models import build_teacher, load_weights, multiply_adds, n_params
from igkd.provenance import fingerprint
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm, crop_flip, to_float
from igkd.training.loop import (
    Checkpoint,
    LoopConfig,
    Optimization,
    TrainSet,
    TrainTask,
    accuracy,
    environment,
    fit,
    history_frame,
    seed_everything,
    settings_tag,
    to_chw_tensor,
    warmup_cosine,
)


@dataclass(frozen=True)
class TrainedTeacher:
    """The trained teacher as later stages use it: weights, input normalisation, and the
    checksum and size that precompute files and student metrics record."""

    model: torch.nn.Module
    norm: InputNorm
    checksum: str  # sha256 of model.pt
    params: int

    def provenance(self, splits) -> dict:
        """What every later file records to prove which data and teacher it was built from."""
        return {"data_checksum": splits.checksum(), "teacher_checksum": self.checksum}


def load_trained_teacher(
    model_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    *,
    num_classes: int,
    width: float,
    channels_last: bool = False,
) -> TrainedTeacher:
    """The teacher stage's model.pt and metrics.json, checked against the architecture."""
    metrics = read_json(metrics_path)
    model = load_weights(
        build_teacher(num_classes, width), model_path, f"teacher (width {width}, {num_classes} classes)"
    )
    norm = InputNorm(tuple(metrics["normalize_mean"]), tuple(metrics["normalize_std"]))
    return TrainedTeacher(
        model.use_channels_last(channels_last).eval(), norm, sha256_file(model_path), metrics["params"]
    )


def teacher_input_norm(cfg: dict, data_attrs: dict) -> InputNorm:
    """The teacher's input normalisation: teacher.normalize, else the training set's
    channel statistics (data.h5 attrs)."""
    if cfg.get("normalize"):
        return InputNorm.from_config(cfg["normalize"])
    return InputNorm(tuple(float(v) for v in data_attrs["mean"]), tuple(float(v) for v in data_attrs["std"]))


def teacher_rows(splits: Splits, exclude_val: bool) -> np.ndarray:
    """The training rows the teacher trains on, in dataset order: all of them (the paper's
    teacher saw the whole training set), or with teacher.exclude_val those outside the
    validation split, so the sweeps, scored on that split, are not scored on images the
    teacher trained on."""
    return splits.train_index if exclude_val else np.arange(len(splits.train_labels))


def fit_teacher(
    splits: Splits, cfg: dict, norm: InputNorm, runtime: Runtime, checkpoint: Checkpoint | None = None
) -> tuple[torch.nn.Module, list[dict]]:
    """Train the teacher with the paper's recipe: SGD + Nesterov, warm-up then cosine."""
    torch.set_num_threads(runtime.threads)
    device = runtime.device
    generator = seed_everything(cfg["seed"])
    model = build_teacher(len(splits.classes), cfg["width"]).use_channels_last(runtime.channels_last).to(device)
    rows = teacher_rows(splits, bool(cfg.get("exclude_val", False)))
    data = TrainSet(
        to_chw_tensor(splits.train_images[rows], device),
        torch.as_tensor(splits.train_labels[rows], device=device),
    )
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        nesterov=cfg["nesterov"],
        weight_decay=cfg["weight_decay"],
    )
    loop = LoopConfig(
        cfg["epochs"],
        cfg["batch_size"],
        cfg.get("eval_every", 1),
        drop_last=True,
        what="teacher: the training set",
        precision=runtime.precision,
    )
    steps_per_epoch = loop.steps_per_epoch(len(data))  # the loop's own count: the schedule ends with training
    scheduler = warmup_cosine(optimizer, cfg["warmup_epochs"] * steps_per_epoch, loop.epochs * steps_per_epoch)
    test_x = to_chw_tensor(splits.test_images, device)
    test_y = torch.as_tensor(splits.test_labels, device=device)

    def step(rows_idx):
        # crop and flip the uint8 rows (a quarter of the bytes), then convert: the same values
        x = to_float(crop_flip(data.images.index_select(0, rows_idx), cfg["crop_padding"], cfg["flip"], generator))
        logits = model(norm(x))
        labels = data.labels[rows_idx]
        return logits, labels, {"ce": F.cross_entropy(logits, labels)}

    task = TrainTask(model, step, lambda: {"test_acc": accuracy(model, test_x, test_y, norm.prepare)})
    history = fit(task, Optimization(optimizer, scheduler), data, loop, generator, checkpoint, runtime.log)
    return model, history


def import_teacher(path: str | os.PathLike, num_classes: int, width: float) -> torch.nn.Module:
    """Load a state dict (plain or under 'model'/'state_dict'), checking keys and shapes."""
    state = load_torch(path)
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state dict, got {type(state).__name__}")
    model = build_teacher(num_classes, width)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(
            f"{path}: state-dict keys do not match the CIFAR MobileNetV2 teacher (width {width}): "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise InputError(f"{path}: '{key}' has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}")
    model.load_state_dict(state)
    return model


@dataclass(frozen=True)
class TeacherOutputs:
    """The teacher stage's files (the rule's outputs)."""

    model: str | os.PathLike
    metrics: str | os.PathLike
    history: str | os.PathLike


def run_teacher(
    splits: Splits, cfg: dict, norm: InputNorm, outputs: TeacherOutputs, runtime: Runtime, data_checksum: str
) -> dict:
    """Train or import the teacher, then write model, metrics.json and history.csv
    (wall-clock time goes to runtime.json beside metrics.json, which stays reproducible)."""
    began = time.time()
    device = runtime.device
    checkpoint = Path(outputs.model).with_name("checkpoint.pt")
    trained = cfg["source"] == "train"
    if not trained:
        model = import_teacher(cfg["weights"], len(splits.classes), cfg["width"]).to(device)
        history = []
    else:
        tag = settings_tag("teacher", cfg, list(norm.mean), list(norm.std), data_checksum, fingerprint(__file__))
        model, history = fit_teacher(splits, cfg, norm, runtime, Checkpoint(checkpoint, tag))
    test_x = to_chw_tensor(splits.test_images, device)
    test_y = torch.as_tensor(splits.test_labels, device=device)
    test_acc = accuracy(model, test_x, test_y, norm.prepare)
    model = model.cpu()
    size = splits.train_images.shape[1]
    metrics = {
        "test_acc": test_acc,
        "params": n_params(model),
        "multiply_adds": multiply_adds(model, size),
        "width": cfg["width"],
        "source": cfg["source"],
        "epochs": cfg["epochs"] if trained else 0,
        # the rows it trained on and the precision it trained in; unknown for imported weights
        "exclude_val": bool(cfg.get("exclude_val", False)) if trained else None,
        "n_train": len(teacher_rows(splits, bool(cfg.get("exclude_val", False)))) if trained else None,
        "normalize_mean": list(norm.mean),
        "normalize_std": list(norm.std),
        "data_checksum": data_checksum,
        "environment": environment(device, runtime.threads, history, runtime.precision if trained else None),
    }
    save_torch(outputs.model, model.state_dict())
    write_csv(outputs.history, history_frame(history))
    write_json(Path(outputs.metrics).with_name("runtime.json"), {"seconds": time.time() - began})
    write_json(outputs.metrics, metrics)
    checkpoint.unlink(missing_ok=True)
    return metrics
