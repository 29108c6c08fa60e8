import numpy as np
import pytest
import torch

from configs import RESUMABLE_STUDENT, student_run
from igkd.controls import loader_order
from igkd.runtime import Runtime
from igkd.training.loop import Checkpoint
from igkd.training.student import fit_student, index_sha, subsample

CFG = {**RESUMABLE_STUDENT, "epochs": 3}


class FakePre:
    def __init__(self, n):
        rng = np.random.default_rng(0)
        self.logits = rng.normal(size=(n, 10)).astype(np.float32)
        self.maps = rng.random((n, 8, 8), dtype=np.float32)


def train(splits, checkpoint=None, log=None, method="KD_IG", run=0):
    result = fit_student(
        splits,
        student_run(method, 15, run, students=CFG),
        None,
        FakePre(len(splits.train_labels)),
        Runtime(log=log or (lambda m: None)),
        Checkpoint(checkpoint) if checkpoint else None,
    )
    return result.model, result.history, {"rows": result.rows, "seed": result.seed}


def test_subsample_is_stratified_seeded_and_saved(tiny_splits):
    rows = subsample(tiny_splits.train_labels, tiny_splits.train_index, 0.8, seed=3)
    assert np.array_equal(rows, subsample(tiny_splits.train_labels, tiny_splits.train_index, 0.8, seed=3))
    assert not np.array_equal(rows, subsample(tiny_splits.train_labels, tiny_splits.train_index, 0.8, seed=4))
    assert len(rows) == round(0.8 * len(tiny_splits.train_index))
    assert np.isin(rows, tiny_splits.train_index).all()
    share = np.bincount(tiny_splits.train_labels[rows], minlength=10) / len(rows)
    full = np.bincount(tiny_splits.train_labels[tiny_splits.train_index], minlength=10) / len(tiny_splits.train_index)
    assert np.abs(share - full).max() < 0.01
    assert index_sha(rows) != index_sha(rows[1:])


def test_loader_order_is_a_real_permutation():
    perm = loader_order(1000, 5)
    assert np.array_equal(np.sort(perm), np.arange(1000))
    assert (perm == np.arange(1000)).sum() < 10  # fixed points: about 1 expected


def strip(rows):
    """History without wall-clock times, the only field allowed to differ between runs."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_same_seed_same_result_and_resume_is_exact(tiny_splits, tmp_path):
    _, straight, facts = train(tiny_splits)
    _, again, _ = train(tiny_splits)
    assert strip(straight) == strip(again)
    assert "val_acc" in straight[-1] and len(facts["rows"]) < len(tiny_splits.train_index)

    checkpoint = tmp_path / "checkpoint.pt"

    def die_after_epoch_2(message):
        if message.startswith("epoch 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_splits, checkpoint, die_after_epoch_2)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    messages = []
    _, resumed, _ = train(tiny_splits, checkpoint, messages.append)
    assert any("resumed" in m for m in messages)
    assert strip(resumed) == strip(straight)
