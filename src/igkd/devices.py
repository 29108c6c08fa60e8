"""Which device a job runs on: one GPU slot per running job, held by a lock file.

On a multi-GPU node `snakemake --cores 32` starts many GPU jobs at once; without help
every one of them would pick `cuda:0`. Each visible GPU is divided into
`runtime.students_per_gpu` slots. A student (or sweep point, or external evaluation)
holds one slot, a teacher, precompute or timing job all slots of one GPU. A slot is an
`flock`ed file in a node-local folder, keyed by the GPU's UUID (never by an index: SLURM's
cgroups show every job its GPU as `0`), so

- two jobs never hold the same slot, also across separate Snakemake runs on the node;
- a killed job's slot is free again at once: the kernel drops the lock with the process;
- under SLURM a job sees only the GPUs of its allocation (CUDA_VISIBLE_DEVICES) and
  claims among those.

Jobs spread over the GPUs (the one with the most free slots first). When every slot is
taken the job waits, logging why; `snakemake --resources gpu=N` (docs/gpus.md) keeps
Snakemake from starting more GPU jobs than there are slots, so waiting is the exception.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from igkd.io import InputError

PRECISIONS = ("fp32", "bf16", "fp16", "auto")  # runtime.precision (igkd.training.amp says what each means)
POLL_S = 1.0  # how often a waiting job tries the locks again
WAIT_LOG_EVERY_S = 60.0  # how often a waiting job says so


@dataclass(frozen=True)
class DeviceRequest:
    """What a job asks for: the configured device and how much of a GPU it needs."""

    requested: str = "auto"  # runtime.device: auto | cpu | cuda | cuda:<k> | mps
    slots_per_gpu: int = 1  # runtime.students_per_gpu
    whole_gpu: bool = False  # True: every slot of one GPU (teacher, precompute, timing)
    lock_dir: str | None = None  # runtime.gpu_lock_dir; None: a node-local temp folder
    deterministic: bool = False  # deterministic CUDA kernels (runtime.deterministic)
    allow_cpu_fallback: bool = False  # runtime.allow_cpu_fallback: auto may train on the CPU of a GPU node

    @classmethod
    def from_runtime(cls, runtime: dict, *, whole_gpu: bool, stage: str = "training") -> DeviceRequest:
        """Built from the config's `runtime` section (as the workflow scripts see it);
        `stage` ('precompute', 'training', ...) decides whether runtime.deterministic applies."""
        mode = runtime.get("deterministic", "precompute")
        return cls(
            requested=runtime.get("device", "auto"),
            slots_per_gpu=int(runtime.get("students_per_gpu", 1)),
            whole_gpu=whole_gpu,
            lock_dir=runtime.get("gpu_lock_dir"),
            deterministic=mode == "all" or mode == stage,
            allow_cpu_fallback=bool(runtime.get("allow_cpu_fallback", False)),
        )


@dataclass
class DeviceClaim:
    """The device a job got; holds its slot locks until `release()` or the process ends."""

    device: str
    gpu_id: str | None = None  # physical identity of the GPU, None off CUDA
    slots: tuple[int, ...] = ()
    _handles: list = field(default_factory=list, repr=False)

    def release(self) -> None:
        for handle in self._handles:
            handle.close()  # closing the descriptor drops its flock
        self._handles.clear()

    def __enter__(self) -> DeviceClaim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def pick_device(requested: str = "auto", log: Callable[[str], None] | None = None) -> str:
    """The device type `auto` stands for on this machine (no slot is claimed).

    `auto` skips GPUs the installed torch wheel has no kernels for (it would fail at the
    first kernel with "no kernel image is available"), with one warning; asking for
    `cuda` on such a GPU is an error that says what to install.
    """
    if requested == "auto":
        choice = auto_device()
        if choice.device == "cpu" and choice.reason.startswith("GPU "):
            (log or _warn)(f"warning: {choice.reason}; running on the CPU instead")
        return choice.device
    if torch.device(requested).type == "cuda" and torch.cuda.is_available():
        problem = unsupported_gpu(torch.device(requested).index or 0)
        if problem is not None:
            raise InputError(f"runtime.device: {requested}: {problem}")
    return requested


@dataclass(frozen=True)
class DeviceChoice:
    """What `runtime.device: auto` resolves to here, and why (the first line of every job)."""

    device: str  # cuda | mps | cpu
    reason: str


NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")  # there when the NVIDIA kernel driver is loaded
SLURM_GPU_VARIABLES = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS")  # set by SLURM for a job given GPUs


def auto_device() -> DeviceChoice:
    """`auto`: a GPU the installed torch can drive, else Apple's MPS, else the CPU, with why."""
    if torch.cuda.is_available():
        problem = unsupported_gpu()
        if problem is None:
            return DeviceChoice("cuda", f"{torch.cuda.device_count()} CUDA GPU(s) visible")
        reason = problem
    else:
        reason = no_cuda_reason()
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return DeviceChoice("mps", f"Apple MPS ({reason})")
    return DeviceChoice("cpu", reason)


def no_cuda_reason() -> str:
    """Why torch sees no CUDA GPU here: no CUDA in the build, none visible, no driver, or
    a driver CUDA cannot start with (too old, or the job was given no GPU device)."""
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1", "NoDevFiles"):
        return f"no GPU visible (CUDA_VISIBLE_DEVICES={visible!r})"
    driver = nvidia_driver()
    if driver is None:
        return f"no NVIDIA driver on this node ({NVIDIA_DRIVER_FILE} is absent)"
    return (
        f"CUDA {torch.version.cuda} of this torch build cannot start with the NVIDIA driver {driver}: the driver "
        "is too old for it, or this job was given no GPU device"
    )


def nvidia_driver() -> str | None:
    """The loaded NVIDIA kernel driver's version ('unknown' if unreadable), None without one."""
    try:
        text = NVIDIA_DRIVER_FILE.read_text()
    except OSError:
        return None
    match = re.search(r"Kernel Module\b.*?(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else "unknown"


def gpu_node_evidence() -> str | None:
    """Why this node or job should have a GPU (a loaded NVIDIA driver, GPUs SLURM gave the
    job), or None: a CPU fallback there is a mistake worth stopping for."""
    driver = nvidia_driver()
    if driver is not None:
        return f"an NVIDIA driver ({driver}) is loaded"
    given = [f"{name}={os.environ[name]}" for name in SLURM_GPU_VARIABLES if os.environ.get(name)]
    return f"SLURM gave this job GPUs ({', '.join(given)})" if given else None


def resolve_precision(setting: str, device: str | torch.device) -> str:
    """The precision a job on `device` trains in ('fp32', 'bf16' or 'fp16') for the
    runtime.precision `setting`; an InputError where the device cannot honour it (here,
    beside the device claim, so every job start resolves it without importing training code)."""
    if setting not in PRECISIONS:
        raise InputError(f"runtime.precision: {setting!r}; expected one of {list(PRECISIONS)}")
    kind = torch.device(device).type
    if setting == "fp32" or (setting == "auto" and kind != "cuda"):
        return "fp32"
    if kind != "cuda":
        raise InputError(
            f"runtime.precision: {setting} trains under CUDA autocast, but this job runs on {kind}; "
            f"use fp32 (or auto: mixed precision on a GPU, fp32 elsewhere)"
        )
    if setting == "auto":
        # native bf16 only (Ampere and newer): on older GPUs (T4, sm_75) bf16 is emulated and
        # slow, and fp16 with a loss scaler is the fast path
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if setting == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=True):
        raise InputError(f"runtime.precision: bf16: {torch.device(device)} cannot compute in bfloat16; use fp16, fp32")
    return setting


def unsupported_gpu(index: int = 0) -> str | None:
    """Why this torch build cannot run kernels on GPU `index`, or None if it can.

    A build runs on a GPU whose compute capability it has a cubin for (same major version,
    minor at most the GPU's), or PTX (`compute_XY`) at most the GPU's capability to JIT.
    """
    major, minor = torch.cuda.get_device_capability(index)
    arch = torch.cuda.get_arch_list()
    for entry in arch:
        kind, _, digits = entry.partition("_")
        if not digits.isdigit():
            continue
        built = (int(digits[:-1]), int(digits[-1]))
        if (kind == "sm" and built[0] == major and built[1] <= minor) or (
            kind == "compute" and built <= (major, minor)
        ):
            return None
    return (
        f"GPU {index} ({torch.cuda.get_device_name(index)}) has compute capability {major}.{minor}, but this "
        f"torch {torch.__version__} (CUDA {torch.version.cuda}) carries kernels only for {', '.join(arch) or 'none'}; "
        f"install a torch wheel built with a CUDA version that supports sm_{major}{minor} (PyTorch's "
        f"previous-versions page lists them), or set runtime.device: cpu"
    )


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def claim_device(request: DeviceRequest, log: Callable[[str], None] | None = None) -> DeviceClaim:
    """Resolve `request.requested` to a concrete device; on CUDA claim a free slot.

    An explicit `cuda:<k>` is used as given (the user chose the GPU), without a lock.
    """
    log = log or (lambda message: None)
    if request.requested == "auto":
        choice = auto_device()
        device = choice.device
        if device == "cpu":
            check_cpu_fallback(choice, request.allow_cpu_fallback, log)
        elif device == "mps":
            log(f"device: mps (runtime.device auto: {choice.reason})")
    else:
        device = pick_device(request.requested, log)
        if device != "cuda":
            log(f"device: {device} (runtime.device: {request.requested})")
    if device != "cuda":
        return DeviceClaim(device)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise InputError(
            f"runtime.device: 'cuda' requested but no CUDA device is visible (CUDA_VISIBLE_DEVICES="
            f"{visible!r}); use runtime.device: auto or cpu"
        )
    if request.slots_per_gpu < 1:
        raise InputError(f"runtime.students_per_gpu: {request.slots_per_gpu}, expected at least 1")
    gpu_ids = visible_gpu_ids(count)
    index, slots, handles = claim_gpu_slots(
        gpu_ids, request.slots_per_gpu, request.whole_gpu, lock_folder(request.lock_dir), log
    )
    torch.cuda.set_device(index)
    cuda_determinism(request.deterministic)
    claim = DeviceClaim(f"cuda:{index}", gpu_ids[index], slots, handles)
    log(
        f"device: cuda:{index} (GPU {gpu_ids[index]}, slot{'s' if len(slots) > 1 else ''} "
        f"{', '.join(map(str, slots))} of {request.slots_per_gpu}; {count} GPU(s) visible)"
    )
    return claim


def check_cpu_fallback(choice: DeviceChoice, allowed: bool, log: Callable[[str], None]) -> None:
    """Log auto's CPU fallback prominently; on a node that should have a GPU stop, unless
    runtime.allow_cpu_fallback: a protocol run on the CPU is ~100x slower and would
    otherwise show only as `device=cpu` in its epoch lines."""
    evidence = gpu_node_evidence()
    if evidence is not None and not allowed:
        raise InputError(
            f"runtime.device: auto found no usable GPU although {evidence}: {choice.reason}; "
            "fix the node or its torch build, or set runtime.allow_cpu_fallback: true (or runtime.device: cpu) "
            "to train on the CPU"
        )
    banner = "=" * 8
    note = f"; {evidence}, runtime.allow_cpu_fallback: true" if evidence else ""
    log(f"{banner} device: cpu (runtime.device auto: {choice.reason}{note}) {banner}")


def cuda_determinism(deterministic: bool) -> None:
    """Deterministic CUDA kernels, or the fastest ones.

    On: cuDNN's deterministic algorithms, no autotuning, torch's deterministic mode (a
    warning, not an error, for an op without a deterministic kernel) and the cuBLAS
    workspace setting it needs (set before cuBLAS starts). Off: cuDNN autotunes each
    shape (`benchmark`), faster for the students' fixed batch shapes, results may differ
    in the last bits from run to run. CPU runs are deterministic either way (fixed threads).
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
        torch.use_deterministic_algorithms(False)


def visible_gpu_ids(count: int) -> list[str]:
    """A node-wide identity for each of the `count` visible GPUs, in torch's index order:
    its UUID (`GPU-...`, as nvidia-smi prints it).

    Not the CUDA_VISIBLE_DEVICES entry or the index: with SLURM's cgroup device constraint
    every job on a node may see its own GPU as `0`, so two jobs on different GPUs would lock
    the same slot. Only where the driver gives no UUID does the entry stand in: a UUID entry
    as it is; an index inside a SLURM job tied to the job (its allocation's GPUs are its
    own, so only its own steps share them); elsewhere the index, which is then physical.
    """
    visible = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    slurm_job = os.environ.get("SLURM_JOB_ID")
    ids = []
    for index in range(count):
        uuid = gpu_uuid(index)
        entry = visible[index] if index < len(visible) else str(index)
        if uuid is not None:
            ids.append(uuid)
        elif entry.isdigit() and visible and slurm_job:
            ids.append(f"slurm-job{slurm_job}-{entry}")
        else:
            ids.append(entry)
    return ids


def gpu_uuid(index: int) -> str | None:
    """GPU `index`'s UUID as nvidia-smi prints it (GPU-xxxxxxxx-...), or None if torch
    cannot say (an old driver or build)."""
    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
    except (AttributeError, RuntimeError, AssertionError):
        return None
    if not uuid or set(uuid) <= {"0", "-"}:
        return None
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def lock_folder(lock_dir: str | os.PathLike | None) -> Path:
    """The folder of slot lock files: node-local by default (GPUs are per node)."""
    folder = Path(lock_dir) if lock_dir else Path(tempfile.gettempdir()) / f"igkd-gpu-slots-{os.getuid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"runtime.gpu_lock_dir: cannot create {folder} ({err.strerror})") from err
    return folder


def claim_gpu_slots(
    gpu_ids: list[str],
    slots_per_gpu: int,
    whole_gpu: bool,
    folder: Path,
    log: Callable[[str], None],
    poll_s: float = POLL_S,
) -> tuple[int, tuple[int, ...], list]:
    """Lock one slot (or, `whole_gpu`, every slot) of the least busy GPU; wait while none is free.

    Returns the GPU's index in `gpu_ids`, the slot numbers and the open lock files.
    """
    waited_since = time.monotonic()
    last_note = None
    while True:
        # one claim at a time on the node (a blocking lock held for milliseconds), so that
        # jobs starting together see each other's slots and spread over the GPUs
        with open(folder / "claim.lock", "a+") as claim:
            fcntl.flock(claim, fcntl.LOCK_EX)
            order = sorted(range(len(gpu_ids)), key=lambda i: -_free_slots(folder, gpu_ids[i], slots_per_gpu))
            for index in order:
                taken = _try_lock(folder, gpu_ids[index], slots_per_gpu, whole_gpu)
                if taken:
                    return index, tuple(slot for slot, _ in taken), [handle for _, handle in taken]
        now = time.monotonic()
        if last_note is None or now - last_note >= WAIT_LOG_EVERY_S:
            need = f"all {slots_per_gpu} slots of one GPU" if whole_gpu else "one slot"
            log(
                f"device: waiting for {need} ({len(gpu_ids)} GPU(s) x {slots_per_gpu} slot(s), lock files in "
                f"{folder}, waited {now - waited_since:.0f} s); give snakemake --resources gpu=<GPUs x "
                f"runtime.students_per_gpu> so it starts no more GPU jobs than there are slots"
            )
            last_note = now
        time.sleep(poll_s)


def _slot_path(folder: Path, gpu_id: str, slot: int) -> Path:
    return folder / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu_id)}.slot{slot}.lock"


def _lock(path: Path, note_holder: bool = True):
    """The open file if this process now holds its exclusive flock, else None."""
    handle = open(path, "a+")  # noqa: SIM115 - held for the job's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    if note_holder:  # who holds it, for a curious reader
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
    return handle


def _try_lock(folder: Path, gpu_id: str, slots_per_gpu: int, whole_gpu: bool) -> list:
    """[(slot, handle)] for the slot(s) taken on this GPU, or [] (nothing held)."""
    taken = []
    for slot in range(slots_per_gpu):
        handle = _lock(_slot_path(folder, gpu_id, slot))
        if handle is not None:
            taken.append((slot, handle))
            if not whole_gpu:
                return taken
        elif whole_gpu:
            break
    if whole_gpu and len(taken) == slots_per_gpu:
        return taken
    for _, handle in taken:
        handle.close()
    return []


def _free_slots(folder: Path, gpu_id: str, slots_per_gpu: int) -> int:
    """How many slots of this GPU no process holds right now (probed, not kept)."""
    free = 0
    for slot in range(slots_per_gpu):
        handle = _lock(_slot_path(folder, gpu_id, slot), note_holder=False)
        if handle is not None:
            free += 1
            handle.close()
    return free
