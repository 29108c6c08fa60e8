"""Training step time split into data time and model time, for students and the teacher.

One step as igkd's training loop runs it (igkd.training.student / igkd.training.teacher + igkd.training.loop.fit):
- data: index the batch's rows in the in-memory uint8 training tensor (and its maps and
  teacher logits), then igkd.training.augment (crop + flip, overlay for IG methods, normalisation
  for the teacher);
- model: forward, losses (igkd.training.distiller.Distiller for students: CE, KD, AT with the frozen
  teacher's forward), backward and optimiser step (Adam for students, SGD + Nesterov for
  the teacher), at `--precision` (igkd.training.amp; default fp32), with igkd.training.allocator's
  setting as in fit().
Times are medians over the timed steps after warm-up; on CUDA each part is synchronised.
Inputs are random uint8 images (CIFAR-shaped) with random maps and logits: step time does
not depend on the content. Run: `.venv/bin/python benchmarks/train_step.py`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import PeakMemory, format_table, machine_line, setup, sync

from igkd.devices import PRECISIONS
from igkd.models import at_tap, build_student, build_teacher, n_params
from igkd.training.allocator import reuse_freed_memory
from igkd.training.amp import MixedPrecision
from igkd.training.augment import InputNorm, augment_batch, crop_flip, normalize, to_float
from igkd.training.distiller import Distiller, Overlay, Recipe
from igkd.training.loop import to_chw_tensor
from igkd.training.methods import get_method
from igkd.training.teacher import TrainedTeacher

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616]  # the paper's teacher normalisation
KD = {"alpha": 0.01, "temperature": 2.5}
IG = {"p": 0.1, "power_range": (1.0, 2.0), "blend": 0.5}
GAMMA = 0.8


def timed(device: str, fn):
    sync(device)
    began = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - began


def student_case(method_name: str, drop: int, args, data, device: str, teacher, amp):
    method = get_method(method_name)
    student = build_student(drop).use_channels_last(args.channels_last).to(device)
    recipe = Recipe(
        KD["alpha"],
        KD["temperature"],
        GAMMA,
        4,
        True,
        Overlay(IG["p"], *IG["power_range"], IG["blend"]),
        InputNorm(),
        control_seed=0,
    )
    trained = TrainedTeacher(teacher, InputNorm(tuple(MEAN), tuple(STD)), "benchmark", 0) if method.at else None
    distiller = Distiller(student, method, recipe, at_tap(drop), trained).train()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    images, labels, maps, logits = data

    def data_part(rows):
        x01 = augment_batch(  # as igkd.training.student's step
            images.index_select(0, rows),
            maps.index_select(0, rows) if method.ig else None,
            padding=4,
            flip=True,
            overlay_p=IG["p"] if method.ig else 0.0,
            power_range=IG["power_range"],
            blend=IG["blend"],
            generator=generator,
        )
        return x01, labels[rows], logits[rows] if method.kd else None

    def model_part(batch):
        x01, y, teacher_logits = batch
        with amp.scope():
            with amp.autocast():
                _, losses = distiller(x01, y, teacher_logits)
                loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            amp.backward_step(loss, optimizer)

    label = f"student drop {drop} ({n_params(student):,} params), {method_name}"
    return label, args.student_batch, data_part, model_part


def teacher_case(args, data, device: str, amp):
    model = build_teacher(10, 1.0).use_channels_last(args.channels_last).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01)
    generator = torch.Generator().manual_seed(0)
    images, labels, _, _ = data

    def data_part(rows):
        x = crop_flip(to_float(images[rows]), 4, True, generator)
        return normalize(x, MEAN, STD), labels[rows]

    def model_part(batch):
        x, y = batch
        with amp.scope():
            with amp.autocast():
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            amp.backward_step(loss, optimizer)

    return f"teacher ({n_params(model):,} params), CE", args.teacher_batch, data_part, model_part


def measure(case, args, device: str, n_rows: int) -> dict:
    label, batch, data_part, model_part = case
    generator = torch.Generator().manual_seed(1)
    memory = PeakMemory(device)
    data_times, model_times = [], []
    for index in range(args.warmup + args.steps):
        if index == args.warmup:
            memory.reset()
        rows = torch.randint(0, n_rows, (batch,), generator=generator).to(device)
        prepared, t_data = timed(device, lambda: data_part(rows))
        _, t_model = timed(device, lambda: model_part(prepared))
        if index >= args.warmup:
            data_times.append(t_data)
            model_times.append(t_model)
    data_ms, model_ms = 1e3 * statistics.median(data_times), 1e3 * statistics.median(model_times)
    return {
        "step": label,
        "batch": batch,
        "data ms": data_ms,
        "model ms": model_ms,
        "data share %": 100 * data_ms / (data_ms + model_ms),
        "images/s": batch / ((data_ms + model_ms) / 1e3),
        **memory.read(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drops", type=int, nargs="+", default=[5, 17], help="students (paper main: 5; smallest: 17)")
    parser.add_argument("--methods", nargs="+", default=["KD_IG", "KD_IG_AT"])
    parser.add_argument("--no-teacher", dest="teacher", action="store_false", help="skip the teacher step")
    parser.add_argument("--student-batch", type=int, default=64, help="paper: 64")
    parser.add_argument("--teacher-batch", type=int, default=256, help="paper: 256")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rows", type=int, default=5000, help="training images held in memory")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="the demo's student rule uses 1; 1 is steadiest when shared"
    )
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision", default="fp32", choices=PRECISIONS, help="training precision (runtime.precision; default fp32)"
    )
    parser.add_argument(
        "--default-allocator", action="store_true", help="skip igkd.training.allocator (to measure its effect)"
    )
    args = parser.parse_args()
    device = setup(args.threads, args.device)
    amp = MixedPrecision(device, args.precision)
    if not args.default_allocator:
        reuse_freed_memory()  # as igkd.training.loop.fit does
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.rows, args.size, args.size, 3), dtype=np.uint8)
    data = (
        to_chw_tensor(images, device),
        torch.as_tensor(rng.integers(0, 10, args.rows), device=device),
        torch.as_tensor(rng.random((args.rows, args.size, args.size), dtype=np.float32), device=device),
        torch.as_tensor(rng.normal(size=(args.rows, 10)).astype(np.float32), device=device),
    )
    print(machine_line(device, args.threads))
    print(
        f"{args.size}x{args.size} random images, {args.rows} rows in memory, channels_last {args.channels_last}, "
        f"precision {amp.name}, igkd.training.allocator {'off' if args.default_allocator else 'on'}; "
        f"median of {args.steps} steps after {args.warmup} warm-up"
    )
    teacher = build_teacher(10, 1.0).use_channels_last(args.channels_last).to(device).eval()  # AT's frozen teacher
    cases = [student_case(m, d, args, data, device, teacher, amp) for d in args.drops for m in args.methods]
    if args.teacher:
        cases.append(teacher_case(args, data, device, amp))
    rows = [measure(case, args, device, args.rows) for case in cases]
    print(format_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
