"""One training loop for teacher and students: data on the device, batched augmentation,
a checkpoint after every epoch (atomic) and exact resume, per-epoch history.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

import numpy as np
import pandas as pd
import torch
from torch import nn

from igkd.io import InputError, file_size, load_torch, save_torch
from igkd.training.allocator import reuse_freed_memory
from igkd.training.amp import EVAL_PRECISION, MixedPrecision, full_fp32
from igkd.training.progress import epoch_line, resume_line

EVAL_BATCH = 512


@dataclass
class TrainSet:
    """Training rows on the device; optional per-row maps and teacher logits aligned by row."""

    images: torch.Tensor  # uint8 (N,3,H,W)
    labels: torch.Tensor  # int64 (N,)
    maps: torch.Tensor | None = None  # float (N,H,W)
    teacher_logits: torch.Tensor | None = None  # float (N,K)
    overlay_p: torch.Tensor | None = None  # float (N,) on the CPU: a per-row overlay probability; None = the method's p

    def __len__(self) -> int:
        return len(self.labels)


def to_chw_tensor(images_nhwc: np.ndarray, device: str) -> torch.Tensor:
    """uint8 (N,H,W,3) -> (N,3,H,W) on the device, copied once before training. A plain
    copy: pinning a whole data set for one transfer would keep that much host memory
    pinned (torch caches pinned blocks) for no overlap, as training waits for it anyway."""
    tensor = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).contiguous()
    return tensor.to(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (dropout, init) and return the data-order/augmentation generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def environment(device: str, threads: int, history: list[dict] | None = None, precision: str | None = None) -> dict:
    """Library versions and device, read from package metadata (importing captum costs ~1 s);
    with a training `history`, also every device it ran on (`devices_used`); with the
    training `precision` (fp32 | bf16 | fp16), it and the evaluation's (`eval_precision`).
    The device type, precision and threads go to runs.csv (igkd.analysis.conditions)."""
    from importlib.metadata import version

    env = {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torchvision": version("torchvision"),
        "captum": version("captum"),
        "numpy": np.__version__,
        "device": device,
        "device_type": torch.device(device).type,
        "device_name": _device_name(device),
        "threads": threads,
    }
    if precision is not None:
        env["precision"] = precision
        env["eval_precision"] = EVAL_PRECISION
    if history is not None:
        env["devices_used"] = devices_used(history)
    return env


def device_label(device: str | torch.device) -> str:
    """`cpu`, or `cuda:0 (NVIDIA H200)`: what a history row and `devices_used` record."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


def devices_used(history: list[dict]) -> list[str]:
    """Every device a run trained on, in order (a resumed run may have moved GPU)."""
    seen: list[str] = []
    for row in history:
        if row.get("device") and row["device"] not in seen:
            seen.append(row["device"])
    return seen


def _device_name(device: str) -> str:
    """The GPU's name for cuda and cuda:<k> (the one this job runs on), else the processor."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


@torch.no_grad()
def accuracy(model: nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, prepare: Callable) -> float:
    """Top-1 accuracy in percent; `prepare` maps a uint8 batch to the model's input.

    In float32 whatever the training precision (TF32 off on CUDA: igkd.training.amp,
    EVAL_PRECISION), so a reported accuracy measures the weights the same way on every
    device; the hits stay on the device until the end: one host sync per evaluation, not
    per batch."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=labels.device)
    with full_fp32(labels.device):
        for lo in range(0, len(labels), EVAL_BATCH):
            logits = model(prepare(images_u8[lo : lo + EVAL_BATCH]))
            correct += (logits.argmax(1) == labels[lo : lo + EVAL_BATCH]).sum()
    model.train(was_training)
    return 100.0 * int(correct) / max(len(labels), 1)


@dataclass
class LoopConfig:
    epochs: int
    batch_size: int
    eval_every: int = 1
    drop_last: bool = False
    what: str = "training set"  # names the rows in the error for a set too small to train on
    precision: str = "fp32"  # runtime.precision (igkd.training.amp): fp32 | bf16 | fp16 | auto
    later_epochs: int = 0  # epochs the job trains after this training (a sweep job's later points): in the time left

    def batch_ends(self, n: int) -> list[int]:
        """End row of each step's slice of an epoch's order: the one definition of the steps
        per epoch (the teacher's scheduler counts them with `steps_per_epoch`).

        Batches of `batch_size` in order; the tail is its own batch, or dropped with
        `drop_last`. Two small-set rules, which leave every other size as it was: a set
        smaller than one batch is one partial batch even with `drop_last` (else no step
        would run), and a tail of exactly one row joins the batch before it (BatchNorm
        cannot train on one value per channel, which a 1x1 feature map gives).
        """
        if n < 2:
            raise InputError(
                f"{self.what} has {n} row{'s' * (n != 1)}; training needs at least 2 (batch size {self.batch_size})"
            )
        full, tail = divmod(n, self.batch_size)
        ends = [(step + 1) * self.batch_size for step in range(full)]
        if not ends:
            return [n]
        if tail == 1 and not self.drop_last:
            ends[-1] = n
        elif tail and not self.drop_last:
            ends.append(n)
        return ends

    def steps_per_epoch(self, n: int) -> int:
        return len(self.batch_ends(n))


@dataclass(frozen=True)
class TrainTask:
    """What `fit` trains: the model, one optimisation step, and the per-epoch evaluation."""

    model: nn.Module
    step: Callable  # batch rows (on the device) -> (logits, labels, {loss name: weighted loss})
    evaluate: Callable[[], dict]


@dataclass(frozen=True)
class Optimization:
    optimizer: torch.optim.Optimizer
    scheduler: object = None  # stepped once per batch; None: a constant learning rate


@dataclass(frozen=True)
class Checkpoint:
    """Where a run saves its state after every epoch, and the settings tag (`settings_tag`)
    a saved state must carry for the run to continue from it."""

    path: str | os.PathLike
    tag: str = ""


def fit(
    task: TrainTask,
    optimization: Optimization,
    data: TrainSet,
    loop: LoopConfig,
    generator: torch.Generator,
    checkpoint: Checkpoint | None = None,
    log=None,
) -> list[dict]:
    """Train `task` for `loop.epochs`; the losses of a step are summed in their dict's order.

    Resumes from `checkpoint` when its file exists and was written under the same tag (see
    `settings_tag`): model, optimiser, scheduler, both RNG states and the history are
    restored, so the resumed run ends with the same numbers. A checkpoint of other
    settings (the config changed after an interrupted run) or an unreadable one is logged
    and ignored: training starts fresh rather than continue a stale run. Each epoch logs
    one line: `epoch k/N`, the history row's fields and the job's time left
    (igkd.training.progress.epoch_line).
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    model, step, evaluate = task.model, task.step, task.evaluate
    optimizer, scheduler = optimization.optimizer, optimization.scheduler
    n = len(data)
    ends = loop.batch_ends(n)  # before any work: a set too small to train on is an InputError
    starts = [0, *ends[:-1]]
    history: list[dict] = []
    start_epoch = 0
    device = data.labels.device
    amp = MixedPrecision(device, loop.precision)  # autocast for bf16 / fp16 (CUDA only)
    # a checkpoint continues only on the same device type and precision as it was written
    identity = {"tag": checkpoint.tag if checkpoint else "", "device_type": device.type, "precision": amp.name}
    reuse_freed_memory()  # no page faults for each step's activations (see igkd.training.allocator)
    state = _load_checkpoint(checkpoint.path, identity, log) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        restore_rng_states(state)
        history, start_epoch = state["history"], state["epoch"]
        amp.load_state_dict(state.get("amp"))
        log(f"resumed from {checkpoint.path} after epoch {start_epoch}")
        log(resume_line(start_epoch, loop.epochs, [r["seconds"] for r in history if "seconds" in r], loop.later_epochs))
    label = device_label(device)  # recorded in every history row
    timed: list[float] = []  # wall time of each epoch trained here, evaluation and checkpoint included
    lap = monotonic()
    for epoch in range(start_epoch, loop.epochs):
        model.train()
        began = time.time()
        # per-step losses and hits stay on the device until the epoch ends: no host sync per step
        step_losses: dict[str, list[tuple[torch.Tensor, int]]] = {}
        hits: list[torch.Tensor] = []
        seen = 0
        order = torch.randperm(n, generator=generator).to(data.labels.device)
        with amp.scope():  # fp32 on CUDA: TF32 off for forward and backward
            for start, end in zip(starts, ends):
                rows = order[start:end]
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
        row["device"] = label
        if (epoch + 1) % loop.eval_every == 0 or epoch + 1 == loop.epochs:
            row.update(evaluate())
        history.append(row)
        now = monotonic()
        timed.append(now - lap)  # from the previous line: the previous checkpoint's save counts too
        lap = now
        log(epoch_line(row, loop.epochs, timed, loop.later_epochs))
        if checkpoint is not None:
            save_torch(
                checkpoint.path,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "generator": generator.get_state(),
                    **rng_states(device),
                    "history": history,
                    "epoch": epoch + 1,
                    **identity,
                    "amp": amp.state_dict(),
                },
            )
            log(f"checkpoint {checkpoint.path} ({file_size(checkpoint.path)}) after epoch {epoch + 1}")
    return history


def _weighted_sum(pairs: list[tuple[torch.Tensor, int]]) -> float:
    """sum(loss * batch size) in Python floats, step by step (one copy from the device)."""
    total = 0.0
    for value, size in zip(torch.stack([v for v, _ in pairs]).cpu().tolist(), (n for _, n in pairs)):
        total += value * size
    return total


CHECKPOINT_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "generator",
    "torch_rng",
    "cuda_rng",
    "history",
    "epoch",
    "tag",
    "device_type",
    "precision",
)


def rng_states(device: torch.device) -> dict:
    """torch's global generators: the CPU's, and on CUDA every GPU's (dropout on the GPU
    draws from the CUDA generator, so an exact resume needs it too)."""
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": cuda}


def restore_rng_states(state: dict) -> None:
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def settings_tag(*parts) -> str:
    """Short hash of everything that decides a run's result (config section, method/drop/run,
    data and teacher checksums, code fingerprint): the identity a checkpoint must match."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load_checkpoint(path: str | os.PathLike, identity: dict, log) -> dict | None:
    """The checkpoint's state if it exists, loads and carries `identity` (settings tag,
    device type, precision); else None (logged)."""
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
    if state["tag"] != identity["tag"]:
        log(
            f"ignoring checkpoint {path}: written with other settings (tag {state['tag']!r}, "
            f"this run {identity['tag']!r}); starting fresh"
        )
        return None
    written = (state["device_type"], state["precision"])
    if written != (identity["device_type"], identity["precision"]):
        log(
            f"ignoring checkpoint {path}: written on {written[0]} with precision {written[1]}, this run is on "
            f"{identity['device_type']} with precision {identity['precision']}; starting fresh"
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
