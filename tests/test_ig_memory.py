"""IG memory on small GPUs and IG precision (igkd.attribution.ig_memory, igkd.training.amp.full_fp32), on CPU:
mocked free memory, a fake out-of-memory attribution, the TF32 flags."""

import dataclasses

import h5py
import numpy as np
import pytest
import torch

from igkd import registry
from igkd.attribution import ig_memory
from igkd.attribution.maps import inference_copy
from igkd.attribution.precompute import AttributionJob, precompute
from igkd.io import InputError
from igkd.models import build_teacher
from igkd.runtime import Runtime
from igkd.training.amp import PRECISION, full_fp32
from igkd.training.augment import InputNorm
from igkd.training.teacher import TrainedTeacher

MEAN, STD = [0.3] * 3, [0.3] * 3
MIB = 2**20


@pytest.fixture
def teacher():
    torch.manual_seed(0)
    return build_teacher(width=0.25).eval()


def test_auto_fits_the_free_memory(teacher, monkeypatch):
    model = inference_copy(teacher)
    per_point = ig_memory.activation_bytes_per_point(model, (8, 8), "cpu")
    assert 0.1 * MIB < per_point < 2 * MIB  # the width-0.25 teacher at 8x8
    logged = []
    monkeypatch.setattr(ig_memory, "free_bytes", lambda device: 40 * per_point)  # a nearly full GPU
    assert ig_memory.choose_internal_batch("auto", 512, model, (8, 8), "cpu", logged.append) == 20  # half of it
    assert logged[0].startswith("precompute: internal_batch_size auto -> 20 points per pass")
    monkeypatch.setattr(ig_memory, "free_bytes", lambda device: 10**15)  # plenty: capped
    assert ig_memory.choose_internal_batch("auto", 512, model, (8, 8), "cpu", logged.append) == 512
    assert ig_memory.choose_internal_batch("auto", 5000, model, (8, 8), "cpu", logged.append) == 1024
    monkeypatch.setattr(ig_memory, "free_bytes", lambda device: 0)
    assert ig_memory.choose_internal_batch("auto", 512, model, (8, 8), "cpu", logged.append) == 1
    assert ig_memory.choose_internal_batch(64, 512, model, (8, 8), "cpu", logged.append) == 64  # a number is kept


def test_width_1_teacher_costs_what_was_measured():
    per_point = ig_memory.activation_bytes_per_point(inference_copy(build_teacher(width=1.0)), (32, 32), "cpu")
    assert 13 * MIB <= per_point <= 32 * MIB  # measured 13-20 MiB per point on CPU: the count is not smaller


def test_out_of_memory_halves_the_points_per_pass():
    calls, logged = [], []

    def call(k):
        calls.append(k)
        if (k or 400) > 100:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "attr"

    assert ig_memory.attribute_with_retry(call, 512, 512, logged.append) == ("attr", 64)
    assert calls == [512, 256, 128, 64]
    assert logged[0] == "precompute: out of GPU memory at 512 points per pass; retrying with 256"
    calls.clear()
    assert ig_memory.attribute_with_retry(call, None, 400, logged.append) == ("attr", 100)  # None: all 400 at once
    assert calls == [None, 200, 100]


def test_out_of_memory_at_one_point_is_a_clean_error():
    def call(k):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(InputError, match="out of GPU memory even at 1 interpolation point per pass"):
        ig_memory.attribute_with_retry(call, 4, 4, lambda m: None)


def test_precompute_survives_out_of_memory_and_records_what_it_used(tiny_splits, teacher, tmp_path, monkeypatch):
    real = registry.resolve(registry.ATTRIBUTIONS["ig"].fn)

    def small_gpu(model, x, target, settings):  # a GPU on which more than 8 points per pass do not fit
        if (settings["internal_batch_size"] or 10**9) > 8:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(model, x, target, settings)

    n, settings = 48, {"steps": 4, "method": "gausslegendre"}
    trained = TrainedTeacher(teacher, InputNorm(tuple(MEAN), tuple(STD)), "t", 0)
    images, labels = tiny_splits.train_images[:n], tiny_splits.train_labels[:n]

    def job(internal):
        return AttributionJob("ig", {**settings, "internal_batch_size": internal}, chunk=16, batch=8)

    precompute(trained, images, labels, tmp_path / "plain.h5", job(8), Runtime(log=lambda m: None))
    monkeypatch.setitem(registry.ATTRIBUTIONS, "ig", dataclasses.replace(registry.ATTRIBUTIONS["ig"], fn=small_gpu))
    logged = []
    precompute(trained, images, labels, tmp_path / "oom.h5", job("auto"), Runtime(log=logged.append))
    assert any("retrying with 16" in line for line in logged) and any("retrying with 8" in line for line in logged)
    with h5py.File(tmp_path / "plain.h5") as a, h5py.File(tmp_path / "oom.h5") as b:
        assert b.attrs["internal_batch_size_used"] == 8 and b.attrs["setting_internal_batch_size"] == "auto"
        assert b.attrs["precision"] == PRECISION
        for name in ("logits", "maps", "delta", "rel_delta"):
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)  # the same points per pass


def test_full_fp32_turns_tf32_off_on_cuda_and_restores_it():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    try:
        matmul.allow_tf32, cudnn.allow_tf32 = True, True  # what Ampere+ GPUs use for convolutions by default
        with full_fp32("cuda:0"):
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
        with full_fp32("cpu"):  # nothing to change off CUDA
            assert cudnn.allow_tf32
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved
