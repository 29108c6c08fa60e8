"""timing.csv: shape, columns and sane values on tiny models (a benchmark, not a timed test)."""

import numpy as np
import pandas as pd
import pytest
import torch

from igkd.analysis.timing import TIMING_COLUMNS, TimingSettings, peak_memory, time_models, timing_models
from igkd.architectures import build_student as build_by_id
from igkd.models import build_student, build_teacher, n_params
from igkd.plots.compression import speedups
from igkd.runtime import Runtime

QUICK = TimingSettings((1, 4), warmup=1, min_run_time=0.01, max_run_time=0.05, threshold=0.1, threads=1)


@pytest.fixture(scope="module")
def table():
    models = timing_models(10, 0.25, 0.25, ["resnet-depth8", "mobilenetv2-drop17", "mobilenetv2-drop9"])
    return time_models(models, 8, QUICK, Runtime(channels_last=False, log=lambda m: None))


def test_one_row_per_model_and_batch_with_every_column(table):
    assert list(table.columns) == TIMING_COLUMNS
    assert len(table) == 4 * 2
    assert list(table["model"]) == ["teacher"] * 2 + ["student"] * 6
    # the teacher's rows say "teacher"; students in registry order, then by size (not as text)
    students = ["mobilenetv2-drop9", "mobilenetv2-drop17", "resnet-depth8"]
    assert list(table["student"]) == ["teacher"] * 2 + [s for s in students for _ in range(2)]
    assert list(table["batch"]) == [1, 4] * 4


def test_latency_statistics_are_positive_and_ordered(table):
    assert (table["median_ms"] > 0).all() and (table["iqr_ms"] >= 0).all()
    assert (table["q1_ms"] <= table["median_ms"]).all() and (table["median_ms"] <= table["q3_ms"]).all()
    assert np.allclose(table["iqr_ms"], table["q3_ms"] - table["q1_ms"], rtol=1e-6, atol=1e-9)
    assert np.allclose(table["ms_per_image"], table["median_ms"] / table["batch"])
    assert (table["repeats"] >= 1).all() and (table["number_per_run"] >= 1).all()
    assert (table["threads"] == 1).all() and (table["warmup"] == 1).all() and (table["device"] == "cpu").all()
    assert (table["peak_mem_mb"] >= 0).all() and table["memory_measure"].str.len().gt(0).all()
    assert table["weights"].str.contains("random init").all()


def test_params_macs_and_factor_describe_the_architecture(table):
    teacher = table[table["model"] == "teacher"].iloc[0]
    assert teacher["params"] == n_params(build_teacher(10, 0.25))
    # factor is relative to the timed teacher; paper_factor to the paper's width-1.0 teacher
    assert teacher["factor"] == 1.0
    assert teacher["paper_factor"] == pytest.approx(n_params(build_teacher(10, 1.0)) / teacher["params"])
    student = table[(table["model"] == "student") & (table["student"] == "mobilenetv2-drop17")].iloc[0]
    assert student["params"] == n_params(build_student(17, 10, 0.25))
    resnet = table[table["student"] == "resnet-depth8"].iloc[0]
    assert resnet["params"] == n_params(build_by_id("resnet-depth8", 10, 0.25))
    assert student["factor"] == pytest.approx(teacher["params"] / student["params"])
    assert student["paper_factor"] == pytest.approx(n_params(build_teacher(10, 1.0)) / student["params"])
    # multiply-adds per image: the same for both batch sizes, larger for the teacher
    assert table.groupby(["model", "student"])["multiply_adds"].nunique().eq(1).all()
    assert teacher["multiply_adds"] > student["multiply_adds"] > 0


def test_peak_memory_sees_the_activations_of_a_large_batch():
    model = build_student(17, 10, 1.0).eval()
    x = torch.rand(256, 3, 32, 32)
    stem_output = 256 * 32 * 32 * 32 * 4  # bytes of the first conv's float output
    memory, how = peak_memory(model, x)
    if how.startswith("getrusage"):  # a lower bound only (no resettable peak on this OS)
        assert memory >= 0
    else:
        assert memory >= stem_output, how


def test_speedups_divide_teacher_by_student_latency():
    timing = pd.DataFrame(
        {
            "model": ["teacher", "teacher", "student", "student"],
            "student": ["teacher", "teacher", "mobilenetv2-drop5", "mobilenetv2-drop5"],
            "factor": [1.0, 1.0, 4.12, 4.12],
            "batch": [1, 64, 1, 64],
            "median_ms": [10.0, 140.0, 4.0, 14.0],
        }
    )
    out = speedups(timing)
    assert list(out["student"]) == ["mobilenetv2-drop5"] * 2
    assert list(out["batch"]) == [1, 64]
    assert list(out["speedup"]) == pytest.approx([2.5, 10.0])


def test_peak_memory_sees_activations_even_after_large_blocks_were_freed():
    """With glibc's thresholds raised (igkd.training.allocator, as the precompute and training
    do), freed blocks stay resident and a later pass reuses them without the RSS peak moving;
    peak_memory hands free memory back first, so the pass still shows."""
    from igkd.training.allocator import reuse_freed_memory

    reuse_freed_memory()
    held = [torch.ones(64, 1024, 1024) for _ in range(4)]  # 1 GiB resident, then freed
    del held
    test_peak_memory_sees_the_activations_of_a_large_batch()
