"""The timed measurements behind a calibration: one function per kind of number.

Each builds the model the jobs build (a student by its id through igkd.architectures, the
teacher from igkd.models), on the device, with the thread count and memory layout the key
names, and times what the jobs repeat: a training step with the augmentation and the
precision the training loop uses (the key's: runtime.precision for training steps, float32
for evaluation), an inference batch, an IG pass, a fresh Python's imports. Random data
stands in for images: the cost of a step does not depend on the pixel values.
"""

from __future__ import annotations

import dataclasses
import io
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from igkd.plan.calibration import RSS_SUFFIX, Key

WARMUP_STEPS = 3  # untimed first steps: allocation, oneDNN / cuDNN kernel choice, caches
TIMED_STEPS = 30  # then a few dozen timed steps
MIN_TIMED_STEPS = 5  # ... but at least this many, and
MAX_TIMED_S = 20.0  # stop after this many seconds (a width-1.0 teacher on a laptop CPU)
# A step's time is the lower quartile of the timed steps: another process's burst slows some
# steps (a multi-threaded step waits for its descheduled threads: seen 0.07 s -> 2 s per step
# on a busy 2-core machine); on an idle machine the quartile is within a few % of the median.
STEP_QUANTILE = 0.25
EVAL_BATCH = 512  # images per inference batch, as igkd.training.loop.accuracy uses
EVAL_PRECISION = "fp32"  # what igkd.training.loop.accuracy runs in (igkd.training.amp.EVAL_PRECISION)
STARTUP_WARMUP = 1  # untimed spawns first: the first one reads the libraries from disk
STARTUP_RUNS = 3  # timed spawns; the median is the start-up
CROP_PADDING = 4  # the augmentation's padding in a timed step (the cost barely depends on it)
# What a job's Python imports before its work starts (the scripts' heaviest imports). A
# training job's first optimizer step also imports torch._dynamo (torch.optim does, about 1.5 s),
# so it counts as start-up too (docs/performance.md "Start-up cost of a job").
IMPORTS = {
    "startup_training": "import igkd.training.student, igkd.attribution.precompute, torch._dynamo",
    "startup_analysis": "import igkd.analysis.stats, matplotlib.pyplot",
}


def measure(key: Key, device: str) -> tuple[float, int]:
    """(value, samples) of `key` on `device`; the unit is key.unit."""
    if key.kind in IMPORTS:
        return startup_seconds(IMPORTS[key.kind])
    if key.kind.endswith(RSS_SUFFIX):
        return float(peak_rss_bytes(dataclasses.replace(key, kind=key.kind.removesuffix(RSS_SUFFIX)), device)), 1
    if key.kind in ("teacher_bytes", "student_bytes"):
        return float(state_dict_bytes(_model(key))), 1
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(key.threads or threads)
    try:
        return MEASURES[key.kind](key, device)
    finally:
        torch.set_num_threads(threads)


def _model(key: Key):
    """The key's network as the jobs build it: a student by its id (igkd.architectures), else the teacher."""
    from igkd.architectures import build_student
    from igkd.models import build_teacher

    if key.kind.startswith("student"):
        return build_student(key.student, key.classes, key.width)
    return build_teacher(key.classes, key.width)


def _on_device(key: Key, device: str):
    from igkd.architectures import use_channels_last

    return use_channels_last(_model(key), bool(key.channels_last)).to(device)


def _images(key: Key, batch: int, device: str):
    import torch

    return torch.randint(0, 256, (batch, 3, key.image_size, key.image_size), dtype=torch.uint8, device=device)


def _labels(key: Key, batch: int, device: str):
    import torch

    return torch.randint(0, key.classes, (batch,), device=device)


def timed(step: Callable[[], object], device: str) -> tuple[float, int]:
    """Seconds of `step` (STEP_QUANTILE of the timed steps, after WARMUP_STEPS), and how many were timed."""
    import torch

    def sync() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(torch.device(device))

    for _ in range(WARMUP_STEPS):
        step()
    sync()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < TIMED_STEPS:
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= MIN_TIMED_STEPS and time.perf_counter() - began > MAX_TIMED_S:
            break
    return quantile(times, STEP_QUANTILE), len(times)


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of `values`, linear between the sorted values."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def training_step(key: Key, device: str) -> tuple[float, int]:
    """Seconds of one training step: crop + flip of a uint8 batch, forward, cross-entropy,
    backward and the optimiser step (SGD + Nesterov for the teacher, Adam for students),
    at the key's training precision, as the training loop runs it."""
    import torch
    import torch.nn.functional as F

    from igkd.training.amp import MixedPrecision
    from igkd.training.augment import crop_flip, to_float

    model = _on_device(key, device).train()
    if key.kind == "teacher_step":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    else:
        fused = torch.device(device).type == "cuda"
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    amp = MixedPrecision(device, key.precision or "fp32")
    images, labels = _images(key, key.batch, device), _labels(key, key.batch, device)
    generator = torch.Generator().manual_seed(0)

    def step() -> None:
        x = to_float(crop_flip(images, CROP_PADDING, True, generator))
        with amp.scope():
            with amp.autocast():
                loss = F.cross_entropy(model(x), labels)
            optimizer.zero_grad(set_to_none=True)
            amp.backward_step(loss, optimizer)

    return timed(step, device)


def teacher_tap(key: Key, device: str) -> tuple[float, int]:
    """Seconds of the extra work an AT step does: the frozen teacher's forward with the
    tapped block's activation kept, on the student's batch."""
    import torch

    from igkd.training.amp import MixedPrecision

    model = _on_device(key, device).eval().requires_grad_(False)
    amp = MixedPrecision(device, key.precision or "fp32")
    x = torch.rand(key.batch, 3, key.image_size, key.image_size, device=device)

    def step() -> None:
        with torch.no_grad(), amp.scope(), amp.autocast():
            model(x, tap=key.tap)

    return timed(step, device)


def evaluation(key: Key, device: str) -> tuple[float, int]:
    """Images per second of inference at EVAL_BATCH (key.batch), as the per-epoch test pass
    runs: in float32 (TF32 off on CUDA) whatever the training precision."""
    import torch

    from igkd.training.amp import full_fp32

    model = _on_device(key, device).eval()
    x = torch.rand(key.batch, 3, key.image_size, key.image_size, device=device)

    def step() -> None:
        with torch.inference_mode(), full_fp32(device):
            model(x)

    seconds, samples = timed(step, device)
    return key.batch / seconds, samples


def ig_points(key: Key, device: str) -> tuple[float, int]:
    """Interpolation points per second: a pass of key.batch points through the frozen,
    BatchNorm-folded teacher (as the precompute runs it), target logit's gradient with
    respect to the input, in full float32."""
    import torch

    from igkd.attribution.maps import inference_copy
    from igkd.training.amp import full_fp32

    model = inference_copy(_on_device(key, device))
    x = torch.rand(key.batch, 3, key.image_size, key.image_size, device=device)
    target = _labels(key, key.batch, device)

    def step() -> None:
        with full_fp32(device):
            points = x.clone().requires_grad_(True)
            out = model(points).gather(1, target[:, None]).sum()
            torch.autograd.grad(out, points)

    seconds, samples = timed(step, device)
    return key.batch / seconds, samples


def startup_seconds(code: str) -> tuple[float, int]:
    """Median wall seconds of a fresh `sys.executable -c code` (this environment, this PYTHONPATH)."""
    times = []
    for index in range(STARTUP_WARMUP + STARTUP_RUNS):
        t0 = time.perf_counter()
        fresh_python(code, what=f"`{sys.executable} -c {code!r}`")
        elapsed = time.perf_counter() - t0
        if index >= STARTUP_WARMUP:
            times.append(elapsed)
    return statistics.median(times), len(times)


def fresh_python(code: str, *args: str, what: str) -> str:
    """Stdout of `sys.executable -c code args...`; a failure is one InputError naming `what`
    and the child's last stderr line."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode != 0:
        from igkd.io import InputError

        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InputError(f"calibration: {what} failed: {last}")
    return done.stdout


# Run in a fresh Python: the measurement, then the process's peak resident memory. Nothing
# else is loaded first, so the number is what a job running that step holds (before its data).
# Two steps suffice: the first allocates everything a step needs, the second any lazy state.
RSS_PROBE = """
import json, resource, sys
from igkd.plan import measure
from igkd.plan.calibration import Key
measure.WARMUP_STEPS, measure.TIMED_STEPS, measure.MIN_TIMED_STEPS = 1, 1, 1
measure.measure(Key(**json.loads(sys.argv[1])), sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: KiB
"""


def peak_rss_bytes(key: Key, device: str) -> int:
    """Peak RSS (bytes) of a fresh `sys.executable` that runs `key`'s measurement on `device`."""
    import json

    what = f"the memory probe of {key.label()}"
    out = fresh_python(RSS_PROBE, json.dumps(dataclasses.asdict(key)), device, what=what)
    return int(out.strip().splitlines()[-1])


def state_dict_bytes(model) -> int:
    """Bytes of torch.save(model.state_dict()): what model.pt holds."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


MEASURES: dict[str, Callable[[Key, str], tuple[float, int]]] = {
    "teacher_step": training_step,
    "student_step": training_step,
    "teacher_tap": teacher_tap,
    "teacher_eval": evaluation,
    "student_eval": evaluation,
    "ig": ig_points,
}
