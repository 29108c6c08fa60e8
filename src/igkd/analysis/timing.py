"""Model-only inference latency: the benchmark behind `results/{ds}/timing.csv`.

The reference code divided whole-loop wall time (data loading included, no device
synchronisation) by the batch size. Here a model's forward pass alone is timed on a
fixed input already on the device, after warm-up passes, with
`torch.utils.benchmark.Timer` (which synchronises the accelerator around each timed
block and sets the thread count), and the median and quartiles over repeated blocks are
reported. Latency depends on the architecture, not on the weight values, so the models
are built from the architecture (random initialisation): timing need not wait for
training.

Peak memory is the extra memory one forward pass needs beyond the weights and the
input: on CUDA `torch.cuda.max_memory_allocated` minus the memory allocated before the
pass; on Linux CPUs the rise of the process's resident-set high-water mark (VmHWM,
reset through /proc/self/clear_refs) during one pass; elsewhere the rise of
`resource.getrusage` maxrss, a lower bound that is 0 when an earlier, larger peak
already set it. The CPU figures see what the allocator takes from the OS, so small
batches served from memory freed by earlier passes read as (near) 0. The 1-minute load
average is recorded with every row: latencies measured on a busy machine are inflated.

Column `student` names the timed student by its id (mobilenetv2-drop5; igkd.registry); the
teacher's rows carry the word "teacher" there (as in `model`), not an empty cell, which a
CSV reader would turn into a missing value.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils import benchmark

from igkd.analysis.students import sort_students
from igkd.architectures import build_student, use_channels_last
from igkd.models import build_teacher, multiply_adds, n_params, paper_factor
from igkd.runtime import Runtime
from igkd.training.allocator import release_free_memory

TIMING_COLUMNS = [
    "model",
    "student",
    "factor",
    "paper_factor",
    "params",
    "multiply_adds",
    "batch",
    "median_ms",
    "q1_ms",
    "q3_ms",
    "iqr_ms",
    "mean_ms",
    "ms_per_image",
    "repeats",
    "number_per_run",
    "iqr_below_threshold",
    "warmup",
    "threads",
    "device",
    "device_name",
    "channels_last",
    "load_avg",
    "peak_mem_mb",
    "memory_measure",
    "weights",
    "torch",
]
WEIGHTS = "built from the architecture (random init; latency does not depend on weight values)"
MB = 2**20
KB = 2**10
CLEAR_REFS = Path("/proc/self/clear_refs")
PROC_STATUS = Path("/proc/self/status")
RESET_PEAK_RSS = "5"  # clear_refs code that resets VmHWM to the current RSS (Linux >= 4.0)


TEACHER = "teacher"  # the `student` column of the teacher's rows


@dataclass
class TimedModel:
    """One architecture to time: the teacher (student TEACHER) or a student (its id)."""

    name: str
    student: str
    model: nn.Module


def timing_models(num_classes: int, teacher_width: float, student_width: float, students) -> list[TimedModel]:
    """The teacher and one model per student id (igkd.analysis.students order), built (not loaded)."""
    out = [TimedModel("teacher", TEACHER, build_teacher(num_classes, teacher_width))]
    for student in sort_students(str(s) for s in students):
        out.append(TimedModel("student", student, build_student(student, num_classes, student_width)))
    return out


@dataclass(frozen=True)
class TimingSettings:
    """How to time (the config's `timing` section)."""

    batch_sizes: tuple[int, ...] = (1, 64)
    warmup: int = 10  # untimed passes first
    min_run_time: float = 0.2  # seconds of timed blocks at least ...
    max_run_time: float = 10.0  # ... and at most
    threshold: float = 0.1  # stop once IQR / median is below this
    threads: int = 1  # CPU threads of the timed passes

    @classmethod
    def from_config(cls, section: dict) -> TimingSettings:
        return cls(
            tuple(section["batch_sizes"]),
            section["warmup"],
            section["min_run_time"],
            section["max_run_time"],
            section["iqr_threshold"],
            section["threads"],
        )


def measure_latency(model: nn.Module, x: torch.Tensor, settings: TimingSettings):
    """Warm up, then time `model(x)` with torch.utils.benchmark's adaptive_autorange: blocks of
    forward passes until IQR/median < the threshold (after 4 blocks and `min_run_time` seconds)
    or until `max_run_time` seconds; returns its Measurement."""
    threads = settings.threads
    torch.set_num_threads(threads)
    with torch.inference_mode():
        for _ in range(settings.warmup):
            model(x)
    timer = benchmark.Timer(
        stmt="with torch.inference_mode(): model(x)",
        globals={"model": model, "x": x, "torch": torch},
        num_threads=threads,
    )
    return timer.adaptive_autorange(
        settings.threshold, min_run_time=settings.min_run_time, max_run_time=settings.max_run_time
    )


def peak_memory(model: nn.Module, x: torch.Tensor) -> tuple[float, str]:
    """Extra memory (bytes) of one forward pass beyond weights and input, and how it was measured."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        before = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize(x.device)
        return float(torch.cuda.max_memory_allocated(x.device) - before), "cuda max_memory_allocated"
    release_free_memory()  # else a pass that reuses kept free blocks does not move the RSS peak
    if _can_reset_rss_peak():
        CLEAR_REFS.write_text(RESET_PEAK_RSS)
        before = _status_kb("VmRSS")
        with torch.inference_mode():
            model(x)
        return float(max(_status_kb("VmHWM") - before, 0) * KB), "rss high-water mark (VmHWM)"
    before = _maxrss_bytes()
    with torch.inference_mode():
        model(x)
    return float(_maxrss_bytes() - before), "getrusage maxrss (lower bound)"


def time_models(
    models: list[TimedModel], image_size: int, settings: TimingSettings, runtime: Runtime, seed: int = 0
) -> pd.DataFrame:
    """One row per (model, batch size): latency quartiles, repeats, params, multiply-adds, memory."""
    device, channels_last, log = runtime.device, runtime.channels_last, runtime.log
    warmup, threads = settings.warmup, settings.threads
    torch.manual_seed(seed)
    teacher = _teacher(models)
    teacher_params, num_classes = n_params(teacher), _num_classes(teacher)
    rows = []
    for item in models:
        params, macs = n_params(item.model), multiply_adds(item.model, image_size)
        model = use_channels_last(item.model.eval(), channels_last).to(device)
        for batch in settings.batch_sizes:
            x = torch.rand(batch, 3, image_size, image_size, device=device)
            measurement = measure_latency(model, x, settings)
            memory, how = peak_memory(model, x)
            times_ms = np.asarray(measurement.times) * 1e3
            q1, q3 = np.percentile(times_ms, [25, 75])
            median = float(measurement.median * 1e3)
            rows.append(
                {
                    "model": item.name,
                    "student": item.student,
                    "factor": teacher_params / params,
                    "paper_factor": paper_factor(params, num_classes),
                    "params": params,
                    "multiply_adds": macs,
                    "batch": int(batch),
                    "median_ms": median,
                    "q1_ms": float(q1),
                    "q3_ms": float(q3),
                    "iqr_ms": float(measurement.iqr * 1e3),
                    "mean_ms": float(times_ms.mean()),
                    "ms_per_image": median / batch,
                    "repeats": len(times_ms),
                    "number_per_run": measurement.number_per_run,
                    "iqr_below_threshold": bool(measurement.meets_confidence(settings.threshold)),
                    "warmup": warmup,
                    "threads": threads,
                    "device": device,
                    "device_name": _device_name(device),
                    "channels_last": bool(channels_last),
                    "load_avg": _load_average(),
                    "peak_mem_mb": memory / MB,
                    "memory_measure": how,
                    "weights": WEIGHTS,
                    "torch": torch.__version__,
                }
            )
            if log:
                log(
                    f"{_name(item)} batch {batch}: median {median:.3f} ms "
                    f"(IQR {measurement.iqr * 1e3:.3f} ms, {len(times_ms)} repeats), peak {memory / MB:.1f} MB"
                )
        item.model.cpu()
    return pd.DataFrame(rows, columns=TIMING_COLUMNS)


def _name(item: TimedModel) -> str:
    """How the log names a timed model: 'teacher', 'student mobilenetv2-drop5'."""
    return item.name if item.student == TEACHER else f"{item.name} {item.student}"


def _teacher(models: list[TimedModel]) -> nn.Module:
    """The timed teacher: `factor` and the speed-ups are relative to it."""
    teachers = [item for item in models if item.name == "teacher"]
    if len(teachers) != 1:
        raise ValueError(f"time_models needs exactly one model named 'teacher', got {len(teachers)}")
    return teachers[0].model


def _num_classes(model: nn.Module) -> int:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features


def _can_reset_rss_peak() -> bool:
    if not sys.platform.startswith("linux") or not CLEAR_REFS.exists():
        return False
    try:
        CLEAR_REFS.write_text(RESET_PEAK_RSS)
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def _status_kb(key: str) -> int | None:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def _maxrss_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * KB  # bytes on macOS, KiB on Linux


def _load_average() -> float:
    """The system's 1-minute load average when timing ended: above the core count, other
    processes competed for the CPU and the latencies are inflated."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()
