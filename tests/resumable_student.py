"""A small student training (digits 8x8, drop 15) that tests run in-process or as a
subprocess to kill: `python resumable_student.py CHECKPOINT OUT.pt`.

Writes {history, model state} to OUT.pt when training finishes.
"""

from __future__ import annotations

import sys

import numpy as np

from configs import RESUMABLE_STUDENT, student_run
from igkd.data.digits import load_digits_splits
from igkd.data.store import with_val_split
from igkd.io import save_torch
from igkd.runtime import Runtime
from igkd.training.loop import Checkpoint
from igkd.training.student import fit_student

EPOCHS = 4
CFG = {**RESUMABLE_STUDENT, "epochs": EPOCHS, "batch_size": 32, "eval_every": 2}


class Teacher:
    """Fixed soft targets and maps standing in for a precompute file."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.logits = rng.normal(size=(n, 10)).astype(np.float32)
        self.maps = rng.random((n, 8, 8), dtype=np.float32)


def train(checkpoint=None, tag: str = "demo-settings", log=None, cfg=None):
    splits = with_val_split(load_digits_splits(8, 0.2, 0), 0.1, 0)
    result = fit_student(
        splits,
        student_run("KD_IG", 15, students=cfg or CFG),
        None,
        Teacher(len(splits.train_labels)),
        Runtime(log=log or (lambda m: None)),
        Checkpoint(checkpoint, tag) if checkpoint else None,
    )
    return result.model, result.history


def without_wall_clock(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


if __name__ == "__main__":
    model, history = train(sys.argv[1], log=lambda m: print(m, file=sys.stderr, flush=True))
    save_torch(sys.argv[2], {"history": history, "model": model.state_dict()})
