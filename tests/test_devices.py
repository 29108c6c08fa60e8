"""GPU slot assignment (igkd.devices), tested on CPU: mocked device counts, real lock
files, real concurrent processes, a SIGKILLed holder."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import types

import pytest
import torch

from igkd import devices
from igkd.devices import DeviceRequest, claim_device, claim_gpu_slots
from igkd.io import InputError
from igkd.training.loop import environment

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from igkd.devices import claim_gpu_slots
    ids, per_gpu, whole, folder = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3] == "1", Path(sys.argv[4])
    index, slots, handles = claim_gpu_slots(ids, per_gpu, whole, folder, lambda m: print("log", m, flush=True), 0.05)
    print("claimed", ids[index], *slots, flush=True)
    time.sleep(600)
    """
)


def start_holder(ids, per_gpu, whole, folder):
    args = [sys.executable, "-c", HOLDER, ",".join(ids), str(per_gpu), "1" if whole else "0", str(folder)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def claimed(proc, timeout=20.0):
    """(gpu id, slots) once the process says it holds them."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("claimed"):
            _, gpu, *slots = line.split()
            return gpu, tuple(int(s) for s in slots)
    raise AssertionError("holder did not claim in time")


def waits(proc, seconds=1.5) -> bool:
    """True if the process is still waiting (has said so and claimed nothing)."""
    line = proc.stdout.readline()  # its first 'waiting' log line
    time.sleep(seconds)
    return line.startswith("log device: waiting") and proc.poll() is None


@pytest.fixture
def holders():
    procs = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def test_concurrent_jobs_get_distinct_gpus_and_a_killed_jobs_slot_is_freed(tmp_path, holders):
    ids = ["0", "1", "2", "3"]  # a 4-GPU workstation, one student per GPU
    for _ in range(4):
        holders.append(start_holder(ids, 1, False, tmp_path))
    got = [claimed(p) for p in holders]
    assert sorted(gpu for gpu, _ in got) == ids  # every GPU used once: nobody doubled up on cuda:0
    fifth = start_holder(ids, 1, False, tmp_path)
    holders.append(fifth)
    assert waits(fifth)  # all slots taken: waits instead of oversubscribing a GPU
    victim = holders[2]
    victim.send_signal(signal.SIGKILL)  # a killed job (no cleanup code runs)
    victim.wait()
    assert claimed(fifth) == got[2]  # the kernel dropped its lock: the slot is free at once


def test_students_spread_over_gpus_then_share_them(tmp_path, holders):
    ids = ["0", "1"]
    got = []
    for _ in range(4):  # 2 GPUs x 2 students per GPU, one after another
        holders.append(start_holder(ids, 2, False, tmp_path))
        got.append(claimed(holders[-1]))
    assert len(set(got)) == 4  # no two jobs in one slot
    assert {gpu for gpu, _ in got[:2]} == {"0", "1"}  # the first two on different GPUs
    assert sorted(gpu for gpu, _ in got) == ["0", "0", "1", "1"]


def test_a_whole_gpu_job_waits_for_a_gpu_without_students(tmp_path, holders):
    ids = ["0", "1"]
    students = [start_holder(ids, 2, False, tmp_path) for _ in range(2)]
    holders.extend(students)
    busy = [claimed(p)[0] for p in students]
    assert sorted(busy) == ["0", "1"]  # one student on each GPU
    teacher = start_holder(ids, 2, True, tmp_path)
    holders.append(teacher)
    assert waits(teacher)  # neither GPU is whole
    students[0].kill()
    students[0].wait()
    assert claimed(teacher) == (busy[0], (0, 1))  # every slot of the freed GPU


@pytest.fixture
def fake_gpus(monkeypatch):
    """torch.cuda as on a machine with `n` GPUs (set by calling the fixture's result)."""

    capability, arch = [(9, 0)], [["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]]  # the pinned wheel's

    def install(n, device_capability=(9, 0), arch_list=None, uuids=None):
        """`uuids`: what each visible index's properties say (None: the driver gives none)."""
        capability[0] = device_capability
        arch[0] = arch_list or arch[0]
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)

        def properties(index):
            if uuids is None:
                raise RuntimeError("no properties")
            return types.SimpleNamespace(uuid=uuids[index])

        monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: f"Fake GPU {torch.device(d).index}")
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability[0])
        monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: arch[0])

    return install


def test_auto_claims_the_visible_gpus_that_slurm_assigned(tmp_path, monkeypatch, fake_gpus):
    fake_gpus(2, uuids=[UUID_A, UUID_B])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")  # as SLURM sets it for a 2-GPU allocation
    request = DeviceRequest("auto", slots_per_gpu=1, lock_dir=str(tmp_path))
    logged = []
    first = claim_device(request, logged.append)
    second = claim_device(request, logged.append)
    assert (first.device, first.gpu_id) == ("cuda:0", f"GPU-{UUID_A}")  # local index 0, physical GPU A
    assert (second.device, second.gpu_id) == ("cuda:1", f"GPU-{UUID_B}")
    assert (tmp_path / f"gpu-GPU-{UUID_A}.slot0.lock").exists() and (tmp_path / f"gpu-GPU-{UUID_B}.slot0.lock").exists()
    assert logged[0].startswith(f"device: cuda:0 (GPU GPU-{UUID_A}, slot 0 of 1; 2 GPU(s) visible)")
    first.release()
    third = claim_device(request, logged.append)  # a released slot is claimed again
    assert third.device == "cuda:0"
    second.release()
    third.release()


UUID_A, UUID_B = "6f1c2b7e-0c1d-4a55-9e0b-3b1f5a9d2c11", "a0b1c2d3-e4f5-4678-9abc-def012345678"


def test_slots_are_keyed_by_uuid_not_by_a_renumbered_index(tmp_path, monkeypatch, fake_gpus):
    """SLURM's cgroups show each job its own GPU as `0`: two jobs on different GPUs must not
    lock the same slot; two on the same GPU share it by slots as before."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    whole = DeviceRequest("cuda", slots_per_gpu=1, whole_gpu=True, lock_dir=str(tmp_path))
    fake_gpus(1, uuids=[UUID_A])
    first = claim_device(whole)  # job 1: its "GPU 0" is physical GPU A
    fake_gpus(1, uuids=[UUID_B])
    second = claim_device(whole)  # job 2: its "GPU 0" is GPU B: it runs at once
    assert (first.gpu_id, second.gpu_id) == (f"GPU-{UUID_A}", f"GPU-{UUID_B}")
    assert sorted(p.name for p in tmp_path.glob("gpu-*")) == [
        f"gpu-GPU-{UUID_A}.slot0.lock",
        f"gpu-GPU-{UUID_B}.slot0.lock",
    ]
    fake_gpus(1, uuids=[UUID_A])
    with pytest.raises(TimeoutError):  # a third job on GPU A waits for job 1's slot
        _claim_with_deadline(devices.visible_gpu_ids(1), 1, tmp_path)
    first.release()
    assert claim_device(whole).gpu_id == f"GPU-{UUID_A}"  # and gets it once job 1 ends
    second.release()


@pytest.mark.parametrize(
    ("visible", "slurm_job", "expected"),
    [
        (None, None, ["0", "1"]),  # no CUDA_VISIBLE_DEVICES: the indices are physical
        ("2,3", None, ["2", "3"]),  # set by hand on a workstation: physical indices
        ("0,1", "4711", ["slurm-job4711-0", "slurm-job4711-1"]),  # SLURM may renumber: tied to the job
        (f"GPU-{UUID_A},GPU-{UUID_B}", "4711", [f"GPU-{UUID_A}", f"GPU-{UUID_B}"]),  # UUID entries
    ],
)
def test_without_a_uuid_from_the_driver_the_key_is_still_node_wide(
    monkeypatch, fake_gpus, visible, slurm_job, expected
):
    fake_gpus(2)  # properties without a UUID
    for name, value in (("CUDA_VISIBLE_DEVICES", visible), ("SLURM_JOB_ID", slurm_job)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert devices.visible_gpu_ids(2) == expected


def test_whole_gpu_request_takes_every_slot(tmp_path, fake_gpus):
    fake_gpus(1)
    with claim_device(DeviceRequest("cuda", slots_per_gpu=3, whole_gpu=True, lock_dir=str(tmp_path))) as claim:
        assert claim.slots == (0, 1, 2)
        with pytest.raises(TimeoutError):  # nothing left for a student while the teacher runs
            _claim_with_deadline(["0"], 3, tmp_path)
    with claim_device(DeviceRequest("cuda", slots_per_gpu=3, lock_dir=str(tmp_path))) as student:
        assert student.slots == (0,)


def _claim_with_deadline(ids, per_gpu, folder, seconds=0.3):
    def give_up(message):
        if time.monotonic() > give_up.deadline:
            raise TimeoutError(message)

    give_up.deadline = time.monotonic() + seconds
    original = devices.WAIT_LOG_EVERY_S
    devices.WAIT_LOG_EVERY_S = 0.0  # log (and so check the deadline) on every poll
    try:
        return claim_gpu_slots(ids, per_gpu, False, folder, give_up, poll_s=0.05)
    finally:
        devices.WAIT_LOG_EVERY_S = original


def test_cpu_mps_and_explicit_gpus_claim_no_slot(tmp_path, fake_gpus):
    fake_gpus(2)
    for requested in ("cpu", "mps", "cuda:1"):
        claim = claim_device(DeviceRequest(requested, lock_dir=str(tmp_path)))
        assert (claim.device, claim.slots) == (requested, ())
    assert not list(tmp_path.iterdir())


def test_cuda_without_a_visible_gpu_is_a_clean_error(tmp_path, monkeypatch, fake_gpus, node):
    fake_gpus(0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert claim_device(DeviceRequest("auto", lock_dir=str(tmp_path))).device in ("cpu", "mps")
    with pytest.raises(InputError, match=r"runtime.device: 'cuda' requested but no CUDA device is visible"):
        claim_device(DeviceRequest("cuda", lock_dir=str(tmp_path)))


def test_request_reads_the_runtime_section():
    runtime = {"device": "cuda", "students_per_gpu": 4, "gpu_lock_dir": "/x", "threads": {}}
    assert DeviceRequest.from_runtime(runtime, whole_gpu=True) == DeviceRequest("cuda", 4, True, "/x")
    for mode, stage, expected in [
        ("precompute", "precompute", True),
        ("precompute", "training", False),
        ("all", "training", True),
        ("none", "precompute", False),
    ]:
        request = DeviceRequest.from_runtime({**runtime, "deterministic": mode}, whole_gpu=False, stage=stage)
        assert request.deterministic is expected, (mode, stage)


@pytest.fixture
def restore_determinism(monkeypatch):
    saved = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
    )
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
    torch.use_deterministic_algorithms(saved[2])


def test_gpu_jobs_get_deterministic_kernels_where_configured(tmp_path, fake_gpus, restore_determinism):
    fake_gpus(1)
    with claim_device(DeviceRequest("cuda", lock_dir=str(tmp_path), deterministic=True)):
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # cuBLAS needs it for reproducible GEMMs
    with claim_device(DeviceRequest("cuda", lock_dir=str(tmp_path), deterministic=False)):
        assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()


def test_environment_names_the_gpu_of_cuda_k(fake_gpus):
    fake_gpus(2)
    assert environment("cuda:1", 1)["device_name"] == "Fake GPU 1"  # not the processor's name


def test_gpu_rules_declare_gpu_slots(repo, tmp_path):
    """`snakemake --resources gpu=N` can only limit jobs that declare the resource."""
    import shutil

    import yaml

    from test_workflow import TINY

    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo / name, tmp_path / name)
    for folder in ("workflow", "envs"):
        shutil.copytree(repo / folder, tmp_path / folder)
    cfg = {**TINY, "runtime": {**TINY["runtime"], "device": "cuda", "students_per_gpu": 3}}
    (tmp_path / "gpu.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "results/digits/tables/ablation/runs.csv",
            "-n",
            "--cores",
            "2",
            "--resources",
            "gpu=6",
            "--directory",
            str(tmp_path),
            "--configfile",
            "config.yaml",
            "gpu.yaml",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = out.stdout.split("\nrule ")
    gpu = {block.split(":", 1)[0]: block for block in jobs[1:]}
    assert "gpu=3" in gpu["train_teacher"] and "gpu=3" in gpu["precompute_attributions"]
    assert "gpu=1" in gpu["distill_student"]


@pytest.mark.parametrize(
    ("capability", "arch", "usable"),
    [
        ((7, 0), None, False),  # V100: the pinned wheel starts at sm_75
        ((6, 0), None, False),  # P100
        ((7, 5), None, True),  # T4
        ((8, 9), None, True),  # L4: sm_86 cubins run on 8.9 (same major, lower minor)
        ((10, 3), ["sm_90", "compute_90"], True),  # PTX is JIT-compiled for newer GPUs
        ((8, 0), ["sm_90"], False),  # a cubin for a newer GPU does not run on an older one
    ],
)
def test_gpus_the_wheel_cannot_drive_are_detected(fake_gpus, capability, arch, usable):
    fake_gpus(1, capability, arch)
    problem = devices.unsupported_gpu(0)
    assert (problem is None) == usable, problem
    if not usable:
        assert f"compute capability {capability[0]}.{capability[1]}" in problem
        assert f"sm_{capability[0]}{capability[1]}" in problem


DRIVER_470 = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.57.02  Tue Jul 13 16:14:05 UTC 2021\n"
DRIVER_OPEN_550 = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build\n"


@pytest.fixture
def node(tmp_path, monkeypatch):
    """The node's NVIDIA driver file and SLURM's GPU variables, as a test sets them (none by default)."""
    driver = tmp_path / "nvidia-version"
    monkeypatch.setattr(devices, "NVIDIA_DRIVER_FILE", driver)
    for name in (*devices.SLURM_GPU_VARIABLES, "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    return types.SimpleNamespace(driver=driver)


def test_auto_falls_back_to_cpu_on_an_unsupported_gpu_only_when_allowed(tmp_path, fake_gpus, node):
    fake_gpus(1, (7, 0))
    node.driver.write_text(DRIVER_470)  # a V100 node: the driver is there, the wheel has no sm_70
    with pytest.raises(InputError, match=r"auto found no usable GPU although an NVIDIA driver \(470.57.02\).*7\.0"):
        claim_device(DeviceRequest("auto", lock_dir=str(tmp_path)))
    logged = []
    claim = claim_device(DeviceRequest("auto", lock_dir=str(tmp_path), allow_cpu_fallback=True), logged.append)
    assert claim.device == "cpu"
    assert (
        len(logged) == 1
        and "device: cpu (runtime.device auto: GPU 0 (Fake GPU 0) has compute capability 7.0" in (logged[0])
    )
    with pytest.raises(InputError, match=r"runtime.device: cuda: GPU 0 .* install a torch wheel"):
        claim_device(DeviceRequest("cuda", lock_dir=str(tmp_path)))


@pytest.mark.parametrize(
    ("state", "reason", "stops"),
    [
        ("no CUDA in the build", r"this torch build \(.*\) has no CUDA", False),
        ("CUDA_VISIBLE_DEVICES empty", r"no GPU visible \(CUDA_VISIBLE_DEVICES=''\)", False),
        ("a CPU node", r"no NVIDIA driver on this node", False),
        ("driver too old", r"CUDA .* cannot start with the NVIDIA driver 470.57.02: the driver is too old", True),
        ("SLURM gave a GPU, none usable", r"SLURM gave this job GPUs \(SLURM_JOB_GPUS=3\)", True),
    ],
)
def test_auto_says_which_device_it_got_and_why_and_stops_on_a_gpu_node(
    tmp_path, monkeypatch, fake_gpus, node, state, reason, stops
):
    fake_gpus(0)  # torch.cuda.is_available() is False in every state below
    if state == "no CUDA in the build":
        monkeypatch.setattr(torch.version, "cuda", None)
    elif state == "CUDA_VISIBLE_DEVICES empty":
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    elif state == "driver too old":
        node.driver.write_text(DRIVER_470)
    elif state == "SLURM gave a GPU, none usable":
        monkeypatch.setenv("SLURM_JOB_GPUS", "3")
    if state != "no CUDA in the build":
        monkeypatch.setattr(torch.version, "cuda", "13.0")
    logged = []
    request = DeviceRequest("auto", lock_dir=str(tmp_path))
    if stops:
        with pytest.raises(
            InputError, match=r"^runtime.device: auto found no usable GPU although .*" + reason.split(":")[0]
        ):
            claim_device(request, logged.append)
        assert "runtime.allow_cpu_fallback: true" in str(pytest.raises(InputError, claim_device, request).value)
        request = DeviceRequest("auto", lock_dir=str(tmp_path), allow_cpu_fallback=True)
    assert claim_device(request, logged.append).device == "cpu"
    assert len(logged) == 1 and logged[0].startswith("======== device: cpu (runtime.device auto: "), logged
    assert re.search(reason, logged[0]), logged


def test_the_driver_version_is_read_from_both_kernel_modules(node):
    assert devices.nvidia_driver() is None
    for text, version in ((DRIVER_470, "470.57.02"), (DRIVER_OPEN_550, "550.54.14"), ("garbled", "unknown")):
        node.driver.write_text(text)
        assert devices.nvidia_driver() == version


def test_an_explicit_device_is_logged_as_chosen(tmp_path, fake_gpus, node):
    fake_gpus(0)
    logged = []
    assert claim_device(DeviceRequest("cpu", lock_dir=str(tmp_path)), logged.append).device == "cpu"
    assert logged == ["device: cpu (runtime.device: cpu)"]


def test_auto_precision_is_bf16_only_where_the_gpu_has_it_natively(monkeypatch):
    from igkd.training.amp import MixedPrecision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    amp = MixedPrecision("cuda", "auto")  # a T4: bf16 only by emulation
    assert (amp.dtype, amp.name) == (torch.float16, "fp16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert MixedPrecision("cuda:1", "auto").name == "bf16"  # an A100 or newer
