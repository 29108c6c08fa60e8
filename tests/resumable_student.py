"""A small student training (digits 8x8, drop 15) that tests run in-process or as a
subprocess to kill: `python resumable_student.py CHECKPOINT OUT.pt`.

Writes {history, model state} to OUT.pt when training finishes.
"""

from __future__ import annotations

import sys

import numpy as np

from igkd.data.digits import load_digits_splits
from igkd.data.store import with_val_split
from igkd.io import save_torch
from igkd.student import distill_student

EPOCHS = 4
CFG = {
    "exclude_val": True, "fraction": 0.8, "control_seed": 1, "width": 1.0, "normalize": None,
    "kd": {"alpha": 0.5, "temperature": 2.0}, "at": {"gamma": 0.8}, "lr": 1e-3, "weight_decay": 0.0,
    "ig": {"p": 0.5, "power_min": 1.0, "power_max": 2.0, "blend": 0.5}, "crop_padding": 1, "flip": True,
    "epochs": EPOCHS, "batch_size": 32, "eval_every": 2,
}


class Teacher:
    """Fixed soft targets and maps standing in for a precompute file."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.logits = rng.normal(size=(n, 10)).astype(np.float32)
        self.maps = rng.random((n, 8, 8), dtype=np.float32)


def train(checkpoint=None, tag: str = "demo-settings", log=None, cfg=None):
    splits = with_val_split(load_digits_splits(8, 0.2, 0), 0.1, 0)
    model, history, _ = distill_student(
        splits, "KD_IG", 15, 0, cfg or CFG, pre=Teacher(len(splits.train_labels)), teacher=None,
        teacher_mean=None, teacher_std=None, device="cpu", threads=1, checkpoint=checkpoint,
        checkpoint_tag=tag, log=log or (lambda m: None),
    )
    return model, history


def without_wall_clock(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


if __name__ == "__main__":
    model, history = train(sys.argv[1], log=lambda m: print(m, file=sys.stderr, flush=True))
    save_torch(sys.argv[2], {"history": history, "model": model.state_dict()})
