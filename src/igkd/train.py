"""One training loop for teacher and students: data on the device, batched augmentation,
a checkpoint after every epoch (atomic) and exact resume, per-epoch history.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from igkd.allocator import reuse_freed_memory
from igkd.amp import MixedPrecision
from igkd.io import InputError, file_size, load_torch, save_torch

EVAL_BATCH = 512


@dataclass
class TrainSet:
    """Training rows on the device; optional per-row maps and teacher logits aligned by row."""

    images: torch.Tensor  # uint8 (N,3,H,W)
    labels: torch.Tensor  # int64 (N,)
    maps: torch.Tensor | None = None  # float (N,H,W)
    teacher_logits: torch.Tensor | None = None  # float (N,K)

    def __len__(self) -> int:
        return len(self.labels)


def pick_device(requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def to_chw_tensor(images_nhwc: np.ndarray, device: str) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).contiguous()
    if torch.device(device).type == "cuda":  # pinned host memory: an asynchronous copy
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (dropout, init) and return the data-order/augmentation generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def environment(device: str, threads: int) -> dict:
    """Library versions and device, read from package metadata (importing captum costs ~1 s)."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torchvision": version("torchvision"),
        "captum": version("captum"),
        "numpy": np.__version__,
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "threads": threads,
        "mixed_precision": MixedPrecision(device).name,
    }


@torch.no_grad()
def accuracy(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, prepare: Callable) -> float:
    """Top-1 accuracy in percent; `prepare` maps a uint8 batch to the model's input."""
    was_training = model.training
    model.eval()
    correct = 0
    for lo in range(0, len(labels), EVAL_BATCH):
        logits = model(prepare(images_u8[lo : lo + EVAL_BATCH]))
        correct += (logits.argmax(1) == labels[lo : lo + EVAL_BATCH]).sum().item()
    model.train(was_training)
    return 100.0 * correct / max(len(labels), 1)


@dataclass
class LoopConfig:
    epochs: int
    batch_size: int
    eval_every: int = 1
    drop_last: bool = False


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    data: TrainSet,
    step: Callable,
    loop: LoopConfig,
    generator: torch.Generator,
    *,
    evaluate: Callable[[], dict],
    checkpoint: str | os.PathLike | None = None,
    tag: str = "",
    log=None,
) -> list[dict]:
    """Train for `loop.epochs`; `step(batch_rows) -> (logits, labels, losses dict)`.

    Resumes from `checkpoint` when it exists and was written under the same `tag` (see
    `settings_tag`): model, optimiser, scheduler, both RNG states and the history are
    restored, so the resumed run ends with the same numbers. A checkpoint of other
    settings (the config changed after an interrupted run) or an unreadable one is logged
    and ignored: training starts fresh rather than continue a stale run.
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    history: list[dict] = []
    start_epoch = 0
    amp = MixedPrecision(data.labels.device)  # autocast on CUDA; the plain step elsewhere
    reuse_freed_memory()  # no page faults for each step's activations (see igkd.allocator)
    state = _load_checkpoint(checkpoint, tag, log) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, start_epoch = state["history"], state["epoch"]
        amp.load_state_dict(state.get("amp"))
        log(f"resumed from {checkpoint} after epoch {start_epoch}")
    n = len(data)
    steps_per_epoch = n // loop.batch_size if loop.drop_last else math.ceil(n / loop.batch_size)
    for epoch in range(start_epoch, loop.epochs):
        model.train()
        began = time.time()
        # per-step losses and hits stay on the device until the epoch ends: no host sync per step
        step_losses: dict[str, list[tuple[torch.Tensor, int]]] = {}
        hits: list[torch.Tensor] = []
        seen = 0
        order = torch.randperm(n, generator=generator).to(data.labels.device)
        for index in range(steps_per_epoch):
            rows = order[index * loop.batch_size : (index + 1) * loop.batch_size]
            with amp.autocast():
                logits, labels, losses = step(rows)
                loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            amp.backward_step(loss, optimizer)
            if scheduler is not None:
                scheduler.step()
            for name, value in losses.items():
                step_losses.setdefault(name, []).append((value.detach().float(), len(rows)))
            hits.append((logits.argmax(1) == labels).sum())
            seen += len(rows)
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"]}
        row.update({f"loss_{k}": _weighted_sum(v) / seen for k, v in step_losses.items()})
        row["train_acc"] = 100.0 * int(torch.stack(hits).sum()) / seen
        row["seconds"] = time.time() - began
        if (epoch + 1) % loop.eval_every == 0 or epoch + 1 == loop.epochs:
            row.update(evaluate())
        history.append(row)
        log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if checkpoint is not None:
            save_torch(
                checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "epoch": epoch + 1,
                    "tag": tag,
                    "amp": amp.state_dict(),
                },
            )
            log(f"checkpoint {checkpoint} ({file_size(checkpoint)}) after epoch {epoch + 1}")
    return history


def _weighted_sum(pairs: list[tuple[torch.Tensor, int]]) -> float:
    """sum(loss * batch size) in Python floats, step by step (one copy from the device)."""
    total = 0.0
    for value, size in zip(torch.stack([v for v, _ in pairs]).cpu().tolist(), (n for _, n in pairs)):
        total += value * size
    return total


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "generator", "torch_rng", "history", "epoch", "tag")


def settings_tag(*parts) -> str:
    """Short hash of everything that decides a run's result (config section, method/drop/run,
    data and teacher checksums, code fingerprint): the identity a checkpoint must match."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load_checkpoint(path: str | os.PathLike, tag: str, log) -> dict | None:
    """The checkpoint's state if it exists, loads and carries `tag`; else None (logged)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = load_torch(path)
    except InputError as err:
        log(f"ignoring unreadable checkpoint: {err}; starting fresh")
        return None
    missing = [k for k in CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else list(CHECKPOINT_KEYS)
    if missing:
        log(f"ignoring checkpoint {path}: lacks {missing} (not a checkpoint of this igkd version); starting fresh")
        return None
    if state["tag"] != tag:
        log(
            f"ignoring checkpoint {path}: written with other settings (tag {state['tag']!r}, "
            f"this run {tag!r}); starting fresh"
        )
        return None
    return state


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int):
    """Linear warm-up then cosine decay to zero, stepped per batch."""
    warmup_steps = max(min(warmup_steps, total_steps - 1), 0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1))
    if warmup_steps == 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def history_frame(history: list[dict]) -> pd.DataFrame:
    """Per-epoch rows as a table; columns in first-seen order (evaluation columns may be sparse)."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    return pd.DataFrame(history, columns=columns or ["epoch"])
