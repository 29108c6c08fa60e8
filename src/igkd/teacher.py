"""Teacher stage: train with the paper's recipe, or import given weights with key/shape checks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from igkd.augment import crop_flip, normalize, to_float
from igkd.data.store import Splits
from igkd.io import InputError, load_torch, save_torch, write_csv, write_json
from igkd.models import build_teacher, multiply_adds, n_params
from igkd.provenance import fingerprint
from igkd.train import (
    LoopConfig,
    TrainSet,
    accuracy,
    environment,
    fit,
    history_frame,
    seed_everything,
    settings_tag,
    to_chw_tensor,
    warmup_cosine,
)


def teacher_norm(cfg: dict, data_attrs: dict) -> tuple[list[float], list[float]]:
    """The teacher's input normalisation: from config, else the training set's channel stats."""
    norm = cfg.get("normalize")
    if norm:
        return list(norm["mean"]), list(norm["std"])
    return [float(v) for v in data_attrs["mean"]], [float(v) for v in data_attrs["std"]]


def train_teacher(
    splits: Splits,
    cfg: dict,
    mean,
    std,
    *,
    device: str,
    threads: int,
    channels_last: bool = True,
    checkpoint=None,
    checkpoint_tag: str = "",
    log=None,
) -> tuple[torch.nn.Module, list[dict]]:
    torch.set_num_threads(threads)
    generator = seed_everything(cfg["seed"])
    model = build_teacher(len(splits.classes), cfg["width"]).use_channels_last(channels_last).to(device)
    rows = splits.train_index if cfg.get("exclude_val", False) else slice(None)
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
        cfg["epochs"], cfg["batch_size"], cfg.get("eval_every", 1), drop_last=True, what="teacher: the training set"
    )
    steps_per_epoch = loop.steps_per_epoch(len(data))  # the loop's own count: the schedule ends with training
    scheduler = warmup_cosine(optimizer, cfg["warmup_epochs"] * steps_per_epoch, loop.epochs * steps_per_epoch)
    test_x = to_chw_tensor(splits.test_images, device)
    test_y = torch.as_tensor(splits.test_labels, device=device)

    def prepare(batch_u8):
        return normalize(to_float(batch_u8), mean, std)

    def step(rows_idx):
        # crop and flip the uint8 rows (a quarter of the bytes), then convert: the same values
        x = to_float(crop_flip(data.images.index_select(0, rows_idx), cfg["crop_padding"], cfg["flip"], generator))
        logits = model(normalize(x, mean, std))
        labels = data.labels[rows_idx]
        return logits, labels, {"ce": F.cross_entropy(logits, labels)}

    history = fit(
        model,
        optimizer,
        scheduler,
        data,
        step,
        loop,
        generator,
        evaluate=lambda: {"test_acc": accuracy(model, test_x, test_y, prepare)},
        checkpoint=checkpoint,
        tag=checkpoint_tag,
        log=log,
    )
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
            raise InputError(
                f"{path}: '{key}' has shape {tuple(state[key].shape)}, expected {tuple(tensor.shape)}"
            )
    model.load_state_dict(state)
    return model


def teacher_stage(
    splits: Splits,
    cfg: dict,
    mean,
    std,
    out_model: str,
    out_metrics: str,
    out_history: str,
    *,
    device: str,
    threads: int,
    data_checksum: str,
    channels_last: bool = True,
    log=None,
) -> dict:
    """Train or import the teacher, then write model, metrics.json and history.csv
    (wall-clock time goes to runtime.json beside metrics.json, which stays reproducible)."""
    began = time.time()
    checkpoint = Path(out_model).with_name("checkpoint.pt")
    if cfg["source"] == "import":
        model = import_teacher(cfg["weights"], len(splits.classes), cfg["width"]).to(device)
        history = []
    else:
        tag = settings_tag("teacher", cfg, list(mean), list(std), data_checksum, fingerprint("teacher"))
        model, history = train_teacher(
            splits,
            cfg,
            mean,
            std,
            device=device,
            threads=threads,
            channels_last=channels_last,
            checkpoint=checkpoint,
            checkpoint_tag=tag,
            log=log,
        )
    test_x = to_chw_tensor(splits.test_images, device)
    test_y = torch.as_tensor(splits.test_labels, device=device)
    test_acc = accuracy(model, test_x, test_y, lambda b: normalize(to_float(b), mean, std))
    model = model.cpu()
    size = splits.train_images.shape[1]
    metrics = {
        "test_acc": test_acc,
        "params": n_params(model),
        "multiply_adds": multiply_adds(model, size),
        "width": cfg["width"],
        "source": cfg["source"],
        "epochs": cfg["epochs"] if cfg["source"] == "train" else 0,
        "normalize_mean": list(mean),
        "normalize_std": list(std),
        "data_checksum": data_checksum,
        "environment": environment(device, threads, history),
    }
    save_torch(out_model, model.state_dict())
    write_csv(out_history, history_frame(history))
    write_json(Path(out_metrics).with_name("runtime.json"), {"seconds": time.time() - began})
    write_json(out_metrics, metrics)
    checkpoint.unlink(missing_ok=True)
    return metrics

