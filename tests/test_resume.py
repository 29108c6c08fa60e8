"""Interrupted training: a SIGKILLed run resumes to the uninterrupted result; a checkpoint
written under other settings (or unreadable) is ignored, never silently continued."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from configs import student_run
from igkd.io import save_torch
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm
from igkd.training.loop import (
    CHECKPOINT_KEYS,
    Checkpoint,
    LoopConfig,
    Optimization,
    TrainSet,
    TrainTask,
    fit,
    settings_tag,
)
from igkd.training.teacher import TrainedTeacher
from resumable_student import EPOCHS, train, without_wall_clock

HELPER = Path(__file__).resolve().parent / "resumable_student.py"
KILL_WAIT_S = 120  # generous: the child imports torch on a shared 2-core machine


def test_sigkill_mid_training_then_rerun_gives_the_uninterrupted_result(tmp_path):
    checkpoint, out = tmp_path / "checkpoint.pt", tmp_path / "out.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, str(HELPER), str(checkpoint), str(out)], env=env, stderr=subprocess.PIPE, text=True
    )

    def kill_after_first_checkpoint():
        deadline = time.monotonic() + KILL_WAIT_S
        while not checkpoint.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_checkpoint)
    killer.start()
    reference, straight = train()  # the uninterrupted run, in this process meanwhile
    killer.join()
    log = child.communicate()[1]
    assert child.returncode == -signal.SIGKILL, log
    assert not out.exists()
    done = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= done < EPOCHS, done  # killed mid-run, after at least one checkpoint
    print(f"SIGKILL after epoch {done} of {EPOCHS}")

    rerun = subprocess.run(
        [sys.executable, str(HELPER), str(checkpoint), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=KILL_WAIT_S,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"resumed from {checkpoint} after epoch {done}" in rerun.stderr
    resumed = torch.load(out, weights_only=True)
    assert len(resumed["history"]) == EPOCHS
    assert without_wall_clock(resumed["history"]) == without_wall_clock(straight)
    assert resumed["history"][-1]["test_acc"] == straight[-1]["test_acc"]
    for key, value in reference.state_dict().items():
        assert torch.equal(resumed["model"][key], value), key


def _tiny_fit(checkpoint, tag, epochs, log):
    """A linear model on fixed random data: enough to exercise fit's checkpoint logic fast."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = TrainSet(
        torch.as_tensor(rng.integers(0, 255, (96, 3, 4, 4)), dtype=torch.uint8), torch.as_tensor(rng.integers(0, 3, 96))
    )
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)

    def step(rows):
        logits = model(data.images[rows].float() / 255)
        return logits, data.labels[rows], {"ce": nn.functional.cross_entropy(logits, data.labels[rows])}

    history = fit(
        TrainTask(model, step, lambda: {}),
        Optimization(optimizer),
        data,
        LoopConfig(epochs, 32),
        generator,
        Checkpoint(checkpoint, tag) if checkpoint is not None else None,
        log,
    )
    return without_wall_clock(history), model.state_dict()


def test_checkpoint_of_other_settings_is_ignored_and_same_settings_resume(tmp_path):
    fresh, fresh_state = _tiny_fit(None, "", 3, lambda m: None)
    checkpoint = tmp_path / "checkpoint.pt"
    _tiny_fit(checkpoint, "settings-A", 2, lambda m: None)  # an "interrupted" run: 2 of 3 epochs
    assert torch.load(checkpoint, weights_only=True)["tag"] == "settings-A"

    messages = []
    changed, _ = _tiny_fit(checkpoint, "settings-B", 3, messages.append)
    assert (
        f"ignoring checkpoint {checkpoint}: written with other settings (tag 'settings-A', this run 'settings-B'); "
        "starting fresh" in messages
    )
    assert not any("resumed" in m for m in messages)
    assert changed == fresh and [r["epoch"] for r in changed] == [1, 2, 3]

    _tiny_fit(checkpoint, "settings-A", 2, lambda m: None)
    messages = []
    same, state = _tiny_fit(checkpoint, "settings-A", 3, messages.append)
    assert f"resumed from {checkpoint} after epoch 2" in messages
    assert same == fresh and all(torch.equal(state[k], fresh_state[k]) for k in state)


def test_unreadable_or_foreign_checkpoint_starts_fresh(tmp_path):
    fresh, _ = _tiny_fit(None, "", 2, lambda m: None)
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"\x00garbage, e.g. a file from another tool")
    messages = []
    history, _ = _tiny_fit(checkpoint, "t", 2, messages.append)
    assert history == fresh
    assert messages[0].startswith(f"ignoring unreadable checkpoint: {checkpoint}: not a plain tensor/state-dict file")
    assert messages[0].endswith("; starting fresh")

    save_torch(checkpoint, {"model": {}, "epoch": 1})  # e.g. written by an older igkd version
    messages = []
    history, _ = _tiny_fit(checkpoint, "t", 2, messages.append)
    assert history == fresh
    missing = [k for k in CHECKPOINT_KEYS if k not in ("model", "epoch")]
    assert messages[0] == (
        f"ignoring checkpoint {checkpoint}: lacks {missing} (not a checkpoint of this igkd version); starting fresh"
    )


def test_checkpoints_report_their_size(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    messages = []
    _tiny_fit(checkpoint, "t", 2, messages.append)
    sizes = [m for m in messages if m.startswith(f"checkpoint {checkpoint} (")]
    assert len(sizes) == 2 and sizes[-1].endswith(" after epoch 2")
    reported = sizes[-1].split("(")[1].split(")")[0]
    assert reported == f"{checkpoint.stat().st_size / 1000:.1f} KB"


def test_settings_tag_changes_with_every_part():
    base = ("student", "KD", 7, 0, {"lr": 1e-3, "kd": {"alpha": 0.01}}, {"data_checksum": "d"}, "code1")
    tag = settings_tag(*base)
    assert tag == settings_tag(*base) and len(tag) == 16
    variants = [
        ("student", "KD_IG", 7, 0, base[4], base[5], base[6]),
        ("student", "KD", 9, 0, base[4], base[5], base[6]),
        ("student", "KD", 7, 1, base[4], base[5], base[6]),
        ("student", "KD", 7, 0, {"lr": 1e-3, "kd": {"alpha": 0.02}}, base[5], base[6]),
        ("student", "KD", 7, 0, base[4], {"data_checksum": "e"}, base[6]),
        ("student", "KD", 7, 0, base[4], base[5], "code2"),
    ]
    assert len({settings_tag(*v) for v in variants} | {tag}) == len(variants) + 1
    # key order of a config mapping does not matter
    assert settings_tag({"a": 1, "b": 2}) == settings_tag({"b": 2, "a": 1})


# what a student run needs of a teacher that KD (no AT) does not run: its normalisation and identity
TEACHER = TrainedTeacher(None, InputNorm(), "t" * 64, 1000)


@pytest.fixture
def stale_checkpoint():
    """A well-formed checkpoint from 'another config': its tag cannot match any real run."""
    return {k: None for k in CHECKPOINT_KEYS} | {"tag": "from-another-config", "epoch": 1, "history": []}


def test_stages_ignore_a_stale_checkpoint_and_keep_wall_clock_out_of_metrics(tiny_splits, tmp_path, stale_checkpoint):
    from igkd.training.student import run_student
    from igkd.training.teacher import TeacherOutputs, run_teacher
    from resumable_student import CFG, Teacher

    teacher_cfg = {
        "source": "train",
        "weights": None,
        "seed": 0,
        "width": 0.25,
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "epochs": 1,
        "batch_size": 128,
        "eval_every": 1,
        "warmup_epochs": 0,
        "crop_padding": 1,
        "flip": False,
    }
    teacher_dir = tmp_path / "teacher"
    save_torch(teacher_dir / "checkpoint.pt", stale_checkpoint)
    messages = []
    outputs = TeacherOutputs(teacher_dir / "model.pt", teacher_dir / "metrics.json", teacher_dir / "history.csv")
    metrics = run_teacher(
        tiny_splits, teacher_cfg, InputNorm((0.3,) * 3, (0.3,) * 3), outputs, Runtime(log=messages.append), "d" * 64
    )
    assert any(
        m.startswith(f"ignoring checkpoint {teacher_dir / 'checkpoint.pt'}: written with other settings")
        for m in messages
    )
    assert not (teacher_dir / "checkpoint.pt").exists()
    _assert_runtime_apart(teacher_dir, metrics)

    student_dir = tmp_path / "student"
    save_torch(student_dir / "checkpoint.pt", stale_checkpoint)
    messages = []
    metrics = run_student(
        tiny_splits,
        student_run("KD", 15, fraction=0.3, students={**CFG, "epochs": 1, "batch_size": 64}),
        TEACHER,
        Teacher(len(tiny_splits.train_labels)),
        Runtime(log=messages.append),
        student_dir,
    )
    assert any(
        m.startswith(f"ignoring checkpoint {student_dir / 'checkpoint.pt'}: written with other settings")
        for m in messages
    )
    _assert_runtime_apart(student_dir, metrics)


def _assert_runtime_apart(folder, metrics):
    stored = json.loads((folder / "metrics.json").read_text())
    assert "seconds" not in stored and stored["test_acc"] == metrics["test_acc"]
    assert {"torch", "torchvision", "captum", "numpy", "python", "device", "threads"} <= set(stored["environment"])
    runtime = json.loads((folder / "runtime.json").read_text())
    assert {"seconds"} <= set(runtime) <= {"seconds", "started", "ended"} and runtime["seconds"] > 0


def test_run_student_resumes_only_under_the_same_run_settings(tiny_splits, tmp_path):
    """Interrupted after epoch 1, then rerun: resumed when only keys the method does not
    read changed (KD reads no overlay or attention setting); started fresh when one it
    reads (lr) changed."""
    from igkd.training.student import run_student
    from resumable_student import CFG, Teacher

    cfg = {**CFG, "epochs": 2, "eval_every": 2, "batch_size": 64}
    pre = Teacher(len(tiny_splits.train_labels))

    def stage(cfg, log):
        run = student_run("KD", 15, fraction=0.3, students=cfg)
        return run_student(tiny_splits, run, TEACHER, pre, Runtime(log=log), tmp_path)

    def interrupt_after_epoch_1(message):
        if message.startswith("checkpoint ") and message.endswith("after epoch 1"):
            raise KeyboardInterrupt

    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        stage(cfg, interrupt_after_epoch_1)
    messages = []
    stage({**cfg, "ig": {**cfg["ig"], "p": 0.9}, "at": {"gamma": 0.1}}, messages.append)
    assert f"resumed from {checkpoint} after epoch 1" in messages
    assert not checkpoint.exists()  # removed once the outputs are written

    with pytest.raises(KeyboardInterrupt):
        stage(cfg, interrupt_after_epoch_1)
    messages = []
    stage({**cfg, "lr": 2e-3}, messages.append)
    assert any(m.startswith(f"ignoring checkpoint {checkpoint}: written with other settings") for m in messages)
    assert not any(m.startswith("resumed") for m in messages)


def test_checkpoint_of_another_device_or_precision_is_not_continued(tmp_path):
    """A CPU float32 checkpoint never continues under GPU bf16, nor the reverse."""
    fresh, _ = _tiny_fit(None, "", 3, lambda m: None)
    checkpoint = tmp_path / "checkpoint.pt"
    _tiny_fit(checkpoint, "t", 2, lambda m: None)
    state = torch.load(checkpoint, weights_only=True)
    assert (state["device_type"], state["precision"], state["cuda_rng"]) == ("cpu", "fp32", None)
    save_torch(checkpoint, {**state, "device_type": "cuda", "precision": "bf16"})  # as a GPU run writes it
    messages = []
    history, _ = _tiny_fit(checkpoint, "t", 3, messages.append)
    assert (
        f"ignoring checkpoint {checkpoint}: written on cuda with precision bf16, this run is on cpu with "
        "precision fp32; starting fresh"
    ) in messages
    assert history == fresh and not any("resumed" in m for m in messages)


def test_cuda_generators_are_saved_and_restored(monkeypatch):
    """The teacher's dropout on a GPU draws from the CUDA generators: a resume restores them."""
    from igkd.training.loop import restore_rng_states, rng_states

    gpu_states = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: gpu_states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    saved = rng_states(torch.device("cuda:1"))
    assert saved["cuda_rng"] is gpu_states and torch.equal(saved["torch_rng"], torch.get_rng_state())
    assert rng_states(torch.device("cpu"))["cuda_rng"] is None  # CPU runs never touch CUDA
    torch.manual_seed(123)
    restore_rng_states(saved)
    assert restored == [gpu_states] and torch.equal(torch.get_rng_state(), saved["torch_rng"])


def test_history_and_metrics_record_every_device_used(tiny_splits, tmp_path):
    from igkd.training.loop import devices_used

    history, _ = _tiny_fit(None, "", 2, lambda m: None)
    assert [row["device"] for row in history] == ["cpu", "cpu"]
    moved = [{"device": "cuda:0 (NVIDIA A100)"}, {"device": "cuda:0 (NVIDIA A100)"}, {"device": "cuda:3 (NVIDIA H100)"}]
    assert devices_used(moved) == ["cuda:0 (NVIDIA A100)", "cuda:3 (NVIDIA H100)"]  # resumed on another GPU
