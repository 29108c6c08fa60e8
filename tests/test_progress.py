"""Each epoch's log line says `epoch k/N` and the job's time left, the same for the teacher,
the students and the sweeps, and stays right across a resume from a checkpoint."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import configs
from igkd.attribution.precompute import Precomputed
from igkd.experiments import StudentRecipe
from igkd.runtime import Runtime
from igkd.training import loop
from igkd.training.augment import InputNorm
from igkd.training.loop import Checkpoint, LoopConfig, Optimization, TrainSet, TrainTask, fit
from igkd.training.progress import EpochMark, epoch_line, format_duration, last_epoch, resume_line, time_left
from igkd.training.sweep import SweepJob, train_points
from igkd.training.sweep_points import point_settings
from igkd.training.teacher import TrainedTeacher, fit_teacher

LAP_S = 10.0  # every epoch takes this long on the fake clock


@pytest.fixture
def fake_clock(monkeypatch):
    """fit's clock advances LAP_S per reading: fit reads it once before the first epoch and
    once per epoch, so every epoch it trains measures LAP_S."""
    ticks = itertools.count(0.0, LAP_S)
    monkeypatch.setattr(loop, "monotonic", lambda: next(ticks))


def test_epoch_line_says_k_of_n_keeps_the_fields_and_the_time_left_from_the_mean_epoch():
    row = {"epoch": 7, "lr": 0.001, "loss_ce": 1.23456, "train_acc": 55.0, "seconds": 3.0, "device": "cpu"}
    # mean of the timed epochs 8 s x 93 epochs left = 744 s
    line = epoch_line(row, 100, [6.0, 8.0, 10.0])
    assert line == "epoch 7/100 lr=0.001 loss_ce=1.235 train_acc=55 seconds=3 device=cpu ~12 min left"
    assert epoch_line(row, 100, [8.0], later_epochs=700).endswith("~1.8 h left")  # (93 + 700) x 8 s = 6344 s
    assert epoch_line({**row, "epoch": 100}, 100, [8.0]).endswith("no epochs left")


def test_time_left_and_durations():
    assert time_left(3, [10.0, 20.0]) == "~45 s left"
    assert time_left(0, [10.0]) == "no epochs left"
    assert time_left(5, []) == "time left unknown until an epoch is timed"
    assert [format_duration(s) for s in (0.4, 89, 90, 5399, 5400, 172_799, 172_800)] == [
        "0 s",
        "89 s",
        "2 min",
        "90 min",
        "1.5 h",
        "48.0 h",
        "2.0 days",
    ]


def test_resume_line_uses_the_checkpoints_epoch_times_or_says_there_are_none():
    assert resume_line(2, 10, [30.0, 30.0]) == (
        "epoch 2/10 done before this resume: 8 epochs left, ~4 min left at the checkpoint's epoch times"
    )
    assert resume_line(2, 10, []) == (
        "epoch 2/10 done before this resume: 8 epochs left, time left unknown until an epoch is timed"
    )


def test_last_epoch_reads_back_the_latest_epoch_line():
    log = "\n".join(
        [
            "device cpu",
            epoch_line({"epoch": 1, "seconds": 2.5, "device": "cpu"}, 4, [3.0]),
            "checkpoint x.pt (1 kB) after epoch 1",
            epoch_line({"epoch": 2, "seconds": 1234.5, "device": "cpu"}, 4, [3.0]),
            "checkpoint x.pt (1 kB) after epoch 2",
        ]
    )
    assert last_epoch(log) == EpochMark(2, 4, 1234.0)  # the line's 4 significant digits
    assert last_epoch(log).fraction_done == 0.5
    assert last_epoch("device cpu\nresumed from x after epoch 2\n") is None
    assert last_epoch(resume_line(3, 4, [])) == EpochMark(3, 4, None)


def tiny_fit(checkpoint, epochs, log):
    """A linear model on fixed random data through fit, with a checkpoint."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = TrainSet(
        torch.as_tensor(rng.integers(0, 255, (64, 3, 4, 4)), dtype=torch.uint8), torch.as_tensor(rng.integers(0, 3, 64))
    )
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))

    def step(rows):
        logits = model(data.images[rows].float() / 255)
        return logits, data.labels[rows], {"ce": nn.functional.cross_entropy(logits, data.labels[rows])}

    task = TrainTask(model, step, lambda: {})
    optimization = Optimization(torch.optim.SGD(model.parameters(), lr=0.01))
    fit(task, optimization, data, LoopConfig(epochs, 32), torch.Generator().manual_seed(0), Checkpoint(checkpoint), log)


def epoch_lines(messages):
    return [m for m in messages if m.startswith("epoch ")]


def test_fit_logs_progress_and_after_a_resume_counts_only_the_epochs_left(tmp_path, fake_clock):
    checkpoint = tmp_path / "checkpoint.pt"
    first = []
    tiny_fit(checkpoint, 2, first.append)  # "interrupted" after 2 of 5 epochs
    assert [m.split()[1] for m in epoch_lines(first)] == ["1/2", "2/2"]
    assert epoch_lines(first)[0].endswith(" ~10 s left") and epoch_lines(first)[1].endswith(" no epochs left")

    resumed = []
    tiny_fit(checkpoint, 5, resumed.append)
    saved = [r["seconds"] for r in torch.load(checkpoint, weights_only=True)["history"][:2]]
    assert resume_line(2, 5, saved) in resumed  # before any epoch is timed here: the saved epoch times
    lines = epoch_lines(resumed)[1:]  # after the resume line
    assert [m.split()[1] for m in lines] == ["3/5", "4/5", "5/5"]
    # 2, 1, 0 epochs left x LAP_S: only epochs timed in this process, none of the 2 before the resume
    assert [m.rsplit(" ", 3)[1:] for m in lines] == [
        ["~20", "s", "left"],
        ["~10", "s", "left"],
        ["no", "epochs", "left"],
    ]


def test_a_sweep_job_counts_its_later_points_in_the_time_left(tiny_splits, tmp_path, fake_clock):
    sweeps = {
        "student": "mobilenetv2-drop13",
        "epochs": 2,
        "fraction": 1.0,
        "overlay": {"method": "IG"},
        "kd": {"method": "KD"},
    }
    students, _ = point_settings(StudentRecipe.from_config(configs.STUDENT), sweeps, "overlay_p")
    points = [{"p": 0.0, "run": 0}, {"p": 0.5, "run": 0}]
    job = SweepJob(
        "overlay_p", points, [tmp_path / f"m{i}.json" for i in (0, 1)], [tmp_path / f"h{i}.csv" for i in (0, 1)]
    )
    n = len(tiny_splits.train_labels)
    rng = np.random.default_rng(0)
    pre = Precomputed(np.zeros((n, 10), np.float32), rng.random((n, 8, 8), dtype=np.float32), {})
    teacher = TrainedTeacher(None, InputNorm(), "t" * 64, 1000)  # IG never runs the teacher
    messages = []
    train_points(tiny_splits, job, students, sweeps, teacher, pre, Runtime(log=messages.append))
    lines = epoch_lines(messages)
    assert [m.split()[1] for m in lines] == ["1/2", "2/2", "1/2", "2/2"]
    # epochs left in the job: 1 + 2 of the second point, 2, then 1, then 0
    assert [m.split(" left")[0].rsplit("~", 1)[-1] for m in lines[:3]] == ["30 s", "20 s", "10 s"]
    assert lines[3].endswith("no epochs left")


def test_the_teacher_logs_the_same_progress(tiny_splits, fake_clock):
    messages = []
    fit_teacher(
        tiny_splits, {**configs.TEACHER, "epochs": 2}, InputNorm((0.3,) * 3, (0.3,) * 3), Runtime(log=messages.append)
    )
    lines = epoch_lines(messages)
    assert [m.split()[1] for m in lines] == ["1/2", "2/2"]
    assert lines[0].endswith(" ~10 s left") and "test_acc=" in lines[0]
