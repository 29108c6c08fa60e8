import re

import pytest
import torch

from igkd.training.amp import MixedPrecision


def sgd_step(amp, model, x, y):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with amp.autocast():
        loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    amp.backward_step(loss, optimizer)
    return [p.detach().clone() for p in model.parameters()]


def test_cpu_is_the_plain_float32_step():
    amp = MixedPrecision("cpu")
    assert (amp.enabled, amp.name, amp.state_dict()) == (False, "fp32", {})
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    torch.manual_seed(1)
    mixed = sgd_step(amp, torch.nn.Linear(5, 3), x, y)
    torch.manual_seed(1)
    model = torch.nn.Linear(5, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    for a, b in zip(mixed, model.parameters()):
        assert torch.equal(a, b)
    with amp.autocast():
        assert torch.get_autocast_dtype("cpu") is not None and not torch.is_autocast_enabled("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocasts_the_forward_pass():
    amp = MixedPrecision("cuda", "auto")
    assert amp.name in ("bf16", "fp16")
    model = torch.nn.Linear(8, 4).cuda()
    with amp.autocast():
        out = model(torch.randn(2, 8, device="cuda"))
    assert out.dtype == amp.dtype
    before = model.weight.detach().clone()
    with amp.autocast():
        loss = out.float().pow(2).mean()
    amp.backward_step(loss, torch.optim.SGD(model.parameters(), lr=0.1))
    assert not torch.equal(before, model.weight)


# ------------------------------------------------------------ runtime.precision (issue 24)


def fake_gpu(monkeypatch, native_bf16: bool) -> None:
    """torch.cuda reporting an Ampere-class GPU (native bf16) or a T4 (bf16 by emulation only)."""
    supported = lambda including_emulation=True: native_bf16 or including_emulation  # noqa: E731
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)


@pytest.mark.parametrize(
    "setting, device, native_bf16, expected",
    [
        ("fp32", "cpu", False, "fp32"),
        ("auto", "cpu", False, "fp32"),  # auto never autocasts off CUDA
        ("auto", "mps", False, "fp32"),
        ("fp32", "cuda", True, "fp32"),  # the default: the paper's precision on every device
        ("auto", "cuda", True, "bf16"),  # A100, H100: native bf16
        ("auto", "cuda:1", False, "fp16"),  # T4: fp16 with a loss scaler
        ("bf16", "cuda", False, "bf16"),  # asked for: honoured, emulated
        ("fp16", "cuda", True, "fp16"),
    ],
)
@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
def test_precision_setting_resolves_per_device(monkeypatch, setting, device, native_bf16, expected):
    from igkd.training.amp import resolve_precision

    fake_gpu(monkeypatch, native_bf16)
    assert resolve_precision(setting, device) == expected
    amp = MixedPrecision(device, setting)
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    assert (amp.name, amp.dtype, amp.enabled) == (expected, dtypes[expected], expected != "fp32")


@pytest.mark.parametrize("setting, device", [("bf16", "cpu"), ("fp16", "cpu"), ("bf16", "mps")])
def test_mixed_precision_off_cuda_is_refused_in_one_line(setting, device):
    """Not silently float32: the run would be recorded as what it is not."""
    from igkd.io import InputError

    message = (
        f"runtime.precision: {setting} trains under CUDA autocast, but this job runs on {device}; "
        "use fp32 (or auto: mixed precision on a GPU, fp32 elsewhere)"
    )
    with pytest.raises(InputError, match="^" + re.escape(message) + "$"):
        MixedPrecision(device, setting)


def test_fp32_on_cuda_trains_without_tf32_and_mixed_precisions_leave_it(monkeypatch):
    """fp32 is IEEE float32 on every GPU: TF32 (what Ampere+ convolutions use by default)
    is off for the whole step; bf16/fp16 leave torch's flags as they are."""
    fake_gpu(monkeypatch, True)
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    try:
        matmul.allow_tf32, cudnn.allow_tf32 = True, True
        with MixedPrecision("cuda", "fp32").scope():
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
        with MixedPrecision("cuda", "bf16").scope():
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def test_every_run_records_its_training_and_evaluation_precision():
    from igkd.plan.measure import EVAL_PRECISION as PLANNED
    from igkd.training.amp import EVAL_PRECISION
    from igkd.training.loop import environment

    env = environment("cpu", 3, [], "fp32")
    assert (env["device_type"], env["precision"], env["eval_precision"], env["threads"]) == ("cpu", "fp32", "fp32", 3)
    assert EVAL_PRECISION == PLANNED == "fp32"  # the cost plan times evaluation as it runs
    assert "precision" not in environment("cpu", 1)  # a precompute: its file records PRECISION


def test_a_training_job_resolves_its_rules_precision_on_the_device_it_claimed(tmp_path, monkeypatch):
    """start_job: `auto` on a CPU job trains in fp32; `bf16` there stops the job in one line."""
    import sys
    from types import SimpleNamespace

    from igkd.io import InputError
    from igkd.runtime import start_job

    job = SimpleNamespace(
        config={"runtime": {"device": "cpu", "channels_last": True}},
        params=SimpleNamespace(precision="auto"),
        threads=torch.get_num_threads(),
        log=[str(tmp_path / "job.log")],
    )
    before = sys.stderr
    monkeypatch.setattr(sys, "stderr", before)  # log_to redirects both for the job: restored after
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    try:
        assert start_job(job, whole_gpu=False, precision="auto").precision == "fp32"
        sys.stderr.close()  # this job's log file; the next job opens its own
        sys.stderr = before
        with pytest.raises(InputError, match=r"^runtime.precision: bf16 trains under CUDA autocast, but this job"):
            start_job(job, whole_gpu=False, precision="bf16")
    finally:
        if sys.stderr is not before:
            sys.stderr.close()  # the job's log file
