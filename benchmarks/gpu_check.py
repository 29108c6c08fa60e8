"""The CUDA path end to end in a few minutes, with the numbers to size a GPU run by.

Runs igkd's own stage functions (not copies) on one device:
1. teacher: one epoch of igkd.training.teacher.train_teacher (SGD, warm-up + cosine, channels-last,
   at `--precision`: fp32 as config.yaml's runtime.precision, or bf16 / fp16 / auto);
2. precompute: igkd.attribution.precompute.precompute of IG maps for `--ig-images` images;
3. students: igkd.training.student.distill_student per drop (KD_IG_AT: every loss and the overlay,
   so the AT teacher forward runs too), two epochs, the second timed (steady state);
4. sharing: 1, 2, 4, 8 students of one drop at once, each its own process on the same GPU
   (as `runtime.students_per_gpu` would run them), aggregate images/s.
It prints one table: images/s, peak GPU memory (torch's allocator, per process) and the
GPU utilisation sampled meanwhile (nvidia-smi), plus the machine line.

The images are random uint8 images of CIFAR's shape with random maps and teacher logits
(no data set is assumed on the GPU machine): throughput and memory do not depend on the
content, accuracy is meaningless and not printed.

    .venv/bin/python benchmarks/gpu_check.py                      # on a GPU machine: ~2-4 min
    .venv/bin/python benchmarks/gpu_check.py --tiny --device cpu  # seconds, the CPU smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from _common import format_table, machine_line, setup, sync

from igkd.attribution.precompute import AttributionJob, Precomputed, precompute
from igkd.config import validate_config
from igkd.data.store import Splits, with_val_split
from igkd.devices import PRECISIONS, resolve_precision
from igkd.experiments import StudentRecipe, StudentRun
from igkd.registry import mobilenet
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm
from igkd.training.student import fit_student
from igkd.training.teacher import TrainedTeacher, fit_teacher

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616]  # the paper's teacher normalisation
METHOD = "KD_IG_AT"  # every part of the student step
SHARING_DROP = 5  # the paper's main student (4.12x)
STUDENT_EPOCHS = 2  # the second epoch is timed: steady state

FULL = {
    "images": 10000,
    "test_images": 1000,
    "ig_images": 256,
    "image_size": 32,
    "teacher_width": 1.0,
    "drops": [3, 5, 7, 9, 11, 13, 15, 17],
    "concurrent": [1, 2, 4, 8],
    "ig_steps": 50,
}
TINY = {
    "images": 96,
    "test_images": 32,
    "ig_images": 8,
    "image_size": 16,
    "teacher_width": 0.25,
    "drops": [13],
    "concurrent": [2],
    "ig_steps": 4,
}


# --------------------------------------------------------------------------- inputs


def random_splits(n: int, n_test: int, size: int, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n + n_test, size, size, 3), dtype=np.uint8)
    labels = np.arange(n + n_test) % 10  # every class present
    splits = Splits(images[:n], labels[:n], images[n:], labels[n:], tuple(f"class{k}" for k in range(10)))
    return with_val_split(splits, 0.1, 0)


def random_precompute(n: int, size: int, seed: int = 1) -> Precomputed:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, 10)).astype(np.float32)
    maps = rng.random((n, size, size), dtype=np.float32)
    return Precomputed(logits, maps, {})


def protocol() -> dict:
    """The paper's settings (config.yaml with the schema's defaults filled in)."""
    return validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))


# --------------------------------------------------------------------------- GPU utilisation


class GpuSampler:
    """Mean GPU utilisation and peak used memory (whole GPU, every process) while it runs."""

    def __init__(self, device: str, every_s: float = 0.2) -> None:
        self.enabled = device.startswith("cuda") and shutil.which("nvidia-smi") is not None
        self.index = (torch.device(device).index or 0) if device.startswith("cuda") else 0
        self.every_s, self.util, self.used_mb = every_s, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = [
            "nvidia-smi",
            "-i",
            str(self.index),
            "--query-gpu=utilization.gpu,memory.used",
            "--format=csv,noheader,nounits",
        ]
        while not self._stop.is_set():
            try:
                util, used = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.split(",")
                self.util.append(float(util))
                self.used_mb.append(float(used))
            except (ValueError, subprocess.SubprocessError, OSError):
                pass
            self._stop.wait(self.every_s)

    def __enter__(self) -> GpuSampler:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()

    def row(self) -> dict:
        if not self.util:
            return {"gpu_util_%": "n/a", "gpu_used_mb": "n/a"}
        return {"gpu_util_%": float(np.mean(self.util)), "gpu_used_mb": float(max(self.used_mb))}


def peak_allocated_mb(device: str) -> float | str:
    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else "n/a"


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


# --------------------------------------------------------------------------- stages


def student_settings(size: dict) -> StudentRecipe:
    cfg = copy.deepcopy(protocol()["students"])
    cfg.update({"epochs": STUDENT_EPOCHS, "eval_every": STUDENT_EPOCHS})
    if size["image_size"] < 32:
        cfg["crop_padding"] = 2
    return StudentRecipe.from_config(cfg)


def student_epoch(splits, pre, teacher, drop, size, device, threads, precision) -> float:
    """Seconds of the last of STUDENT_EPOCHS student epochs (training steps; the first epoch
    pays the one-off costs: CUDA context, cuDNN algorithm search, allocator growth)."""
    trained = TrainedTeacher(teacher, InputNorm(tuple(MEAN), tuple(STD)), "benchmark", 0)
    result = fit_student(
        splits,
        StudentRun(METHOD, mobilenet(drop), 1.0, 0, student_settings(size)),
        trained,
        pre,
        Runtime(device, threads, log=lambda m: None, precision=precision),
    )
    return float(result.history[-1]["seconds"])


def run_stages(size: dict, device: str, threads: int, workdir: Path, precision: str) -> list[dict]:
    rows = []
    splits = random_splits(size["images"], size["test_images"], size["image_size"])
    n = len(splits.train_labels)

    teacher_cfg = copy.deepcopy(protocol()["teacher"])
    teacher_cfg.update({"epochs": 1, "width": size["teacher_width"], "warmup_epochs": 0})
    with GpuSampler(device) as gpu:
        reset_peak(device)
        sync(device)
        began = time.perf_counter()
        runtime = Runtime(device, threads, log=lambda m: None, precision=precision)
        teacher, _ = fit_teacher(splits, teacher_cfg, InputNorm(tuple(MEAN), tuple(STD)), runtime)
        sync(device)
        seconds = time.perf_counter() - began
    rows.append(
        {
            "stage": f"teacher epoch (width {size['teacher_width']})",
            "jobs": 1,
            "images": n,
            "seconds": seconds,
            "images/s": n / seconds,
            "peak_alloc_mb": peak_allocated_mb(device),
            **gpu.row(),
        }
    )

    ig_cfg = dict(protocol()["precompute"]["ig"], steps=size["ig_steps"])
    m = size["ig_images"]
    with GpuSampler(device) as gpu:
        reset_peak(device)
        sync(device)
        began = time.perf_counter()
        trained = TrainedTeacher(teacher, InputNorm(tuple(MEAN), tuple(STD)), "benchmark", 0)
        precompute(
            trained,
            splits.train_images[:m],
            splits.train_labels[:m],
            workdir / "ig.h5",
            AttributionJob("ig", ig_cfg),
            Runtime(device, threads, log=lambda msg: None),
        )
        sync(device)
        seconds = time.perf_counter() - began
    rows.append(
        {
            "stage": f"precompute IG ({size['ig_steps']} steps)",
            "jobs": 1,
            "images": m,
            "seconds": seconds,
            "images/s": m / seconds,
            "peak_alloc_mb": peak_allocated_mb(device),
            **gpu.row(),
        }
    )

    pre = random_precompute(n, size["image_size"])
    torch.save(teacher.state_dict(), workdir / "teacher.pt")
    for drop in size["drops"]:
        with GpuSampler(device) as gpu:
            reset_peak(device)
            seconds = student_epoch(splits, pre, teacher, drop, size, device, threads, precision)
        rows.append(
            {
                "stage": f"student epoch drop {drop} ({METHOD})",
                "jobs": 1,
                "images": n,
                "seconds": seconds,
                "images/s": n / seconds,
                "peak_alloc_mb": peak_allocated_mb(device),
                **gpu.row(),
            }
        )
    return rows


def run_sharing(size: dict, device: str, threads: int, workdir: Path, tiny: bool, precision: str) -> list[dict]:
    """k student processes at once on the device: aggregate images/s and peak memory per process."""
    rows = []
    drop = SHARING_DROP if SHARING_DROP in size["drops"] else size["drops"][0]
    n = len(random_splits(size["images"], size["test_images"], size["image_size"]).train_labels)
    for k in size["concurrent"]:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            str(workdir / "teacher.pt"),
            "--device",
            device,
            "--threads",
            str(threads),
            "--drop",
            str(drop),
            "--precision",
            precision,
        ] + (["--tiny"] if tiny else [])
        with GpuSampler(device) as gpu:
            began = time.perf_counter()
            procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(k)]
            reports = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            wall = time.perf_counter() - began
        if any(p.returncode for p in procs):
            raise SystemExit(f"a student worker failed (exit codes {[p.returncode for p in procs]})")
        epoch = max(r["seconds"] for r in reports)  # the epochs overlap: throughput over the slowest
        peaks = [r["peak_alloc_mb"] for r in reports]
        rows.append(
            {
                "stage": f"{k} students at once, drop {drop}",
                "jobs": k,
                "images": k * n,
                "seconds": epoch,
                "images/s": k * n / epoch,
                "peak_alloc_mb": max(peaks) if device.startswith("cuda") else "n/a",
                "wall_s": wall,
                **gpu.row(),
            }
        )
    return rows


def worker(args, size: dict) -> None:
    """One student epoch in its own process; prints a JSON line with its time and memory."""
    from igkd.models import build_teacher

    device = setup(args.threads, args.device)
    splits = random_splits(size["images"], size["test_images"], size["image_size"])
    teacher = build_teacher(10, size["teacher_width"])
    teacher.load_state_dict(torch.load(args.worker, map_location="cpu", weights_only=True))
    pre = random_precompute(len(splits.train_labels), size["image_size"])
    reset_peak(device)
    precision = resolve_precision(args.precision, device)
    seconds = student_epoch(splits, pre, teacher, args.drop, size, device, args.threads, precision)
    print(json.dumps({"seconds": seconds, "peak_alloc_mb": peak_allocated_mb(device)}), flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="seconds-long sizes (CPU smoke test)")
    parser.add_argument("--out", help="also write the table rows as JSON here")
    parser.add_argument(
        "--precision", default="fp32", choices=PRECISIONS, help="training precision (runtime.precision; default fp32)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: teacher.pt of a sharing worker
    parser.add_argument("--drop", type=int, default=SHARING_DROP, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = TINY if args.tiny else FULL
    if args.worker:
        worker(args, size)
        return
    device = setup(args.threads, args.device)
    precision = resolve_precision(args.precision, device)
    began = time.time()
    print(f"{machine_line(device, args.threads)}; training precision {precision}", flush=True)
    if device.startswith("cuda"):
        print(
            f"CUDA {torch.version.cuda}, capability {torch.cuda.get_device_capability()}, "
            f"bf16 {torch.cuda.is_bf16_supported()}",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_stages(size, device, args.threads, Path(tmp), precision)
        rows += run_sharing(size, device, args.threads, Path(tmp), args.tiny, precision)
    columns = ["stage", "jobs", "images", "seconds", "images/s", "peak_alloc_mb", "gpu_util_%", "gpu_used_mb"]
    print(format_table(rows, columns))
    print(
        f"random {size['image_size']}x{size['image_size']} images (throughput only); total {time.time() - began:.0f} s",
        flush=True,
    )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
