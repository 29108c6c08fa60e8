"""igkd plan: dry-run parsing, cost and disk arithmetic, the scheduler, the calibration
cache, SLURM runtimes and the CLI end to end (on profiles/demo, with a fake calibration:
nothing is measured unless a test is marked slow)."""

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from igkd.cli import main
from igkd.config import load_config
from igkd.io import InputError
from igkd.plan import calibration as cal_module
from igkd.plan.assumptions import ASSUMPTIONS
from igkd.plan.calibration import EnsureOptions, Entry, Key, Recorder, Store, ensure
from igkd.plan.cost import CostContext, estimate, evaluations
from igkd.plan.dataset import DataSize, data_size
from igkd.plan.disk import job_bytes
from igkd.plan.dryrun import error_summary
from igkd.plan.jobs import Job, ancestors, dependencies
from igkd.plan.keys import ModelSettings
from igkd.plan.memory import job_memory
from igkd.plan.owners import job_owners, student_owners
from igkd.plan.parse import parse_dry_run
from igkd.plan.schedule import Task, makespan, schedule
from igkd.plan.slurm import RuleRuntime, group_sizes, mem_mb_for, minutes_for, write_profile

REPO = Path(__file__).resolve().parents[1]

# An excerpt of a real `snakemake -n --profile profiles/demo` (snakemake 9.27; reason lines
# and the `all` rule's inputs shortened), and a group job as `--profile profiles/slurm` prints it.
DRY_RUN = """\
Building DAG of jobs...
Job stats:
job                            count
---------------------------  -------
prepare_data                       1
total                              9


[Fri Dec  4 22:09:05 2026]
rule prepare_data:
    output: results/digits/data.h5
    log: logs/digits/prepare_data.log
    jobid: 3
    benchmark: results/digits/benchmarks/prepare_data.tsv
    reason: Missing output files: results/digits/data.h5
    resources: tmpdir=/tmp
[Fri Dec  4 22:09:05 2026]
rule train_teacher:
    input: results/digits/data.h5
    output: results/digits/teacher/model.pt, results/digits/teacher/metrics.json, results/digits/teacher/history.csv
    log: logs/digits/train_teacher.log
    jobid: 4
    benchmark: results/digits/benchmarks/train_teacher.tsv
    reason: Missing output files: results/digits/teacher/model.pt; Input files updated by another job: results/digits/data.h5
    threads: 2
    resources: tmpdir=/tmp, runtime=1440, gpu=0
[Fri Dec  4 22:09:05 2026]
rule precompute_attributions:
    input: results/digits/data.h5, results/digits/teacher/model.pt, results/digits/teacher/metrics.json
    output: results/digits/precompute/ig.h5
    log: logs/digits/precompute_ig.log
    jobid: 9
    benchmark: results/digits/benchmarks/precompute_ig.tsv
    reason: Missing output files: results/digits/precompute/ig.h5
    wildcards: attribution=ig
    priority: 10
    threads: 2
    resources: tmpdir=/tmp, runtime=720, gpu=0
[Fri Dec  4 22:09:05 2026]
rule distill_student:
    input: results/digits/data.h5, results/digits/teacher/model.pt, results/digits/teacher/metrics.json, results/digits/precompute/ig.h5
    output: results/digits/students/KD_IG/mobilenetv2-drop13/f1.0/run1/model.pt, results/digits/students/KD_IG/mobilenetv2-drop13/f1.0/run1/metrics.json, results/digits/students/KD_IG/mobilenetv2-drop13/f1.0/run1/history.csv, results/digits/students/KD_IG/mobilenetv2-drop13/f1.0/run1/subsample.npz, results/digits/students/KD_IG/mobilenetv2-drop13/f1.0/run1/runtime.json
    log: logs/digits/students/KD_IG_mobilenetv2-drop13_f1.0_run1.log
    jobid: 36
    benchmark: results/digits/benchmarks/students/KD_IG_mobilenetv2-drop13_f1.0_run1.tsv
    reason: Missing output files: results/digits/students/KD_IG/mobilenetv2-drop13/f1.0/run1/metrics.json
    wildcards: method=KD_IG, student=mobilenetv2-drop13, fraction=1.0, run=1
    resources: tmpdir=/tmp, runtime=360, gpu=0
[Fri Dec  4 22:09:05 2026]
rule train_sweep_kd:
    input: results/digits/data.h5, results/digits/teacher/model.pt, results/digits/teacher/metrics.json, results/digits/precompute/ig.h5
    output: results/digits/sweeps/kd/alpha0.01_T2.5/run0/metrics.json, results/digits/sweeps/kd/alpha0.25_T2.5/run0/metrics.json, results/digits/sweeps/kd/alpha0.01_T2.5/run0/history.csv, results/digits/sweeps/kd/alpha0.25_T2.5/run0/history.csv
    log: logs/digits/sweeps/kd.log
    jobid: 56
    benchmark: results/digits/benchmarks/sweeps/kd.tsv
    reason: Missing output files: results/digits/sweeps/kd/alpha0.01_T2.5/run0/metrics.json
    resources: tmpdir=/tmp, runtime=360, gpu=0
[Fri Dec  4 22:09:05 2026]
rule collect_runs:
    input: results/digits/students/KD_IG/mobilenetv2-drop13/f1.0/run1/metrics.json, results/digits/teacher/metrics.json
    output: results/digits/tables/ablation/runs.csv, results/digits/tables/ablation/method_means.csv
    log: logs/digits/collect_runs_ablation.log
    jobid: 1
    benchmark: results/digits/benchmarks/collect_runs_ablation.tsv
    reason: Missing output files: results/digits/tables/ablation/runs.csv
    wildcards: experiment=ablation
    resources: tmpdir=/tmp
[Fri Dec  4 22:05:45 2026] Group job students (jobs in lexicogr. order):

    [Fri Dec  4 22:05:45 2026]
    rule distill_student:
        input: results/digits/data.h5, results/digits/teacher/model.pt, results/digits/teacher/metrics.json
        output: results/digits/students/AT/mobilenetv2-drop13/f1.0/run0/model.pt, results/digits/students/AT/mobilenetv2-drop13/f1.0/run0/metrics.json
        log: logs/digits/students/AT_mobilenetv2-drop13_f1.0_run0.log
        jobid: 11
        reason: Missing output files: results/digits/students/AT/mobilenetv2-drop13/f1.0/run0/metrics.json
        wildcards: method=AT, student=mobilenetv2-drop13, fraction=1.0, run=0
        threads: 4
        resources: tmpdir=/tmp, disk_mb=<TBD>, mem_mb=6000, mem=6 GB, slurm_partition=gpu, runtime=1440, gpu=0, gres=gpu:1
[Fri Dec  4 22:09:05 2026]
rule all:
    input: results/digits/tables/ablation/runs.csv, results/digits/sweeps/kd/alpha0.01_T2.5/run0/metrics.json
    jobid: 0
    reason: Input files updated by another job: results/digits/tables/ablation/runs.csv
    resources: tmpdir=/tmp
Job stats:
job                            count
---------------------------  -------
total                              9

Reasons:
    (check individual jobs above for details)
This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.
"""  # noqa: E501 - the lines as Snakemake prints them


# ------------------------------------------------------------------ parsing


def test_parser_reads_every_job_block_of_a_real_dry_run():
    jobs = parse_dry_run(DRY_RUN)
    assert [j.rule for j in jobs] == [
        "prepare_data",
        "train_teacher",
        "precompute_attributions",
        "distill_student",
        "train_sweep_kd",
        "collect_runs",
        "distill_student",
        "all",
    ]
    prepare, teacher, precompute, student, sweep, collect, grouped, target = jobs
    assert prepare.inputs == () and prepare.outputs == ("results/digits/data.h5",) and prepare.threads == 1
    assert teacher.threads == 2 and teacher.resources == {"tmpdir": "/tmp", "runtime": 1440, "gpu": 0}
    assert precompute.priority == 10 and precompute.wildcards == {"attribution": "ig"}
    assert student.wildcards == {"method": "KD_IG", "student": "mobilenetv2-drop13", "fraction": "1.0", "run": "1"}
    assert len(student.outputs) == 5 and student.outputs[3].endswith("subsample.npz")
    assert len(sweep.outputs) == 4 and collect.wildcards == {"experiment": "ablation"}
    # a group job's members are indented; `mem=6 GB` keeps its space, `<TBD>` stays text
    assert grouped.jobid == 11 and grouped.threads == 4
    assert grouped.resources["mem"] == "6 GB" and grouped.resources["disk_mb"] == "<TBD>"
    assert grouped.resources["gres"] == "gpu:1" and grouped.resources["runtime"] == 1440
    assert target.is_target and not student.is_target and [j.order for j in jobs] == list(range(8))
    # a run's log prints local rules as `localrule` (a dry run as `rule`)
    (local,) = parse_dry_run("localrule all:\n    input: a.txt\n    jobid: 0\n")
    assert local.local and local.rule == "all" and local.inputs == ("a.txt",)


def test_dependencies_come_from_matching_outputs_to_inputs():
    jobs = parse_dry_run(DRY_RUN)
    deps = dependencies(jobs)
    assert deps[3] == set()  # prepare_data: its input is not pending
    assert deps[4] == {3}
    assert deps[36] == {3, 4, 9}  # data, teacher, the ig precompute
    assert deps[1] == {36, 4}
    assert deps[0] == {1, 56}
    assert ancestors({1}, deps) == {1, 36, 3, 4, 9}


def test_parser_reads_what_the_installed_snakemake_prints(tmp_path):
    """A small workflow with a localrule, priority, threads, resources and a group."""
    (tmp_path / "Snakefile").write_text(
        textwrap.dedent(
            """\
            localrules: all

            rule all:
                input: "b.txt", expand("c{i}.txt", i=range(2))

            rule a:
                output: "a.txt"
                threads: 3
                priority: 5
                resources: mem_mb=100, gpu=1
                shell: "touch {output}"

            rule b:
                input: "a.txt"
                output: "b.txt"
                shell: "touch {output}"

            rule c:
                input: "a.txt"
                output: "c{i}.txt"
                group: "g"
                shell: "touch {output}"
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--nolock", "--cores", "4"]
        + ["--groups", "c=g", "--group-components", "g=2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100000"},
    )
    assert done.returncode == 0, done.stderr
    jobs = {(j.rule, j.wildcards.get("i")): j for j in parse_dry_run(done.stdout + done.stderr)}
    assert set(jobs) == {("all", None), ("a", None), ("b", None), ("c", "0"), ("c", "1")}
    a = jobs["a", None]
    assert a.threads == 3 and a.priority == 5 and a.resources["mem_mb"] == 100 and a.resource("gpu") == 1
    assert jobs["all", None].is_target
    deps = dependencies(list(jobs.values()))
    assert deps[jobs["c", "1"].jobid] == {a.jobid}


def test_a_failing_dry_run_is_summarised_in_one_line():
    text = (
        "Building DAG of jobs...\nMissingRuleException:\nNo rule to produce nosuchtarget (if you use "
        "input functions make sure that they don't raise unexpected exceptions).\n"
    )
    assert error_summary(text).startswith("MissingRuleException: No rule to produce nosuchtarget")
    text = 'InputError in file "common.smk", line 13:\ninvalid config:\n  students.epochs: -3\n  File "x", line 1\n'
    assert error_summary(text) == 'InputError in file "common.smk", line 13: invalid config: students.epochs: -3'


# ------------------------------------------------------------------ cost arithmetic

FAKE = {  # one number per kind: known inputs, so every estimate below is hand-computable
    "startup_training": 2.0,
    "startup_analysis": 1.5,
    "student_step": 0.01,
    "teacher_tap": 0.002,
    "student_eval": 1000.0,
    "teacher_step": 0.1,
    "teacher_eval": 500.0,
    "ig": 200.0,
    "teacher_bytes": 3_000_000.0,
    "student_bytes": 100_000.0,
    "teacher_step_rss": 2_000_000_000.0,
    "student_step_rss": 900_000_000.0,
    "ig_rss": 5_000_000_000.0,
}


class FakeCalibration:
    def value(self, key: Key) -> float:
        return FAKE[key.kind]


def fake_measure(key: Key, device: str) -> tuple[float, int]:
    return FAKE[key.kind], 1


@pytest.fixture
def config(tmp_path):
    """The repo's config with the numbers the arithmetic below uses set explicitly."""
    override = {
        "dataset": {"name": "digits", "image_size": 16},
        "teacher": {"epochs": 3, "batch_size": 100, "eval_every": 2, "width": 0.5},
        "students": {"epochs": 4, "batch_size": 100, "eval_every": 2, "exclude_val": False, "width": 0.5},
        "precompute": {"ig": {"steps": 8, "tolerance": None, "method": "gausslegendre"}},
        "sweeps": {"epochs": 3, "student": "mobilenetv2-drop13", "fraction": 1.0},
        "runtime": {"device": "cpu", "threads": {"teacher": 2, "precompute": 2, "student": 1}},
        "timing": {"batch_sizes": [1, 10], "warmup": 5, "min_run_time": 0.1, "max_run_time": 0.5},
    }
    path = tmp_path / "override.yaml"
    path.write_text(yaml.safe_dump(override))
    return load_config(REPO / "config.yaml", path)


STUDENT = "mobilenetv2-drop13"
DIGITS = DataSize(n_train=1437, n_test=360, n_val=144, classes=10, image_size=16, source="test")


def context(config, **changes) -> CostContext:
    values = {
        "config": config,
        "data": DIGITS,
        "device_kind": "cpu",
        "models": ModelSettings.from_config(config, 10),
        "cores": 2,
        "timed_students": ("mobilenetv2-drop7", "mobilenetv2-drop13"),
    }
    return CostContext(**{**values, **changes})


START = 2.0 + ASSUMPTIONS.time.job_overhead_s  # training start-up + Snakemake's part
IO = ASSUMPTIONS.time.training_io_s
CKPT = ASSUMPTIONS.time.checkpoint_s_per_epoch


def student_job(method="KD_IG", fraction="1.0") -> Job:
    folder = f"results/digits/students/{method}/{STUDENT}/f{fraction}/run0"
    names = ("model.pt", "metrics.json", "history.csv", "subsample.npz", "runtime.json")
    wildcards = {"method": method, "student": STUDENT, "fraction": fraction, "run": "0"}
    return Job("distill_student", 1, 0, (), tuple(f"{folder}/{n}" for n in names), wildcards, threads=1)


def test_student_seconds_are_steps_times_step_time_plus_evaluations(config):
    ctx = context(config)
    # 1437 rows / batch 100 -> 15 steps (the last one partial); 4 epochs; evaluations at 2 and 4
    expected = START + IO + 4 * (15 * 0.01 + CKPT) + 2 * 360 / 1000
    cost = estimate(student_job(), ctx, FakeCalibration())
    assert cost.seconds == pytest.approx(expected)
    assert (cost.trainings, cost.epochs) == (1, 4)
    at = estimate(student_job("KD_AT"), ctx, FakeCalibration())  # + the teacher to its tap, every step
    assert at.seconds == pytest.approx(expected + 4 * 15 * 0.002)
    half = estimate(student_job(fraction="0.5"), ctx, FakeCalibration())  # floor(718.5) = 718 rows: 8 steps
    assert half.seconds == pytest.approx(START + IO + 4 * (8 * 0.01 + CKPT) + 2 * 360 / 1000)


def test_a_student_in_a_warm_worker_pays_no_python_start_up(config):
    """runtime.warm_workers (CPU): the worker has imported torch already (igkd.training.worker)."""
    cold = estimate(student_job(), context(config), FakeCalibration()).seconds
    warm_config = {**config, "runtime": {**config["runtime"], "warm_workers": True}}
    assert cold - estimate(student_job(), context(warm_config), FakeCalibration()).seconds == pytest.approx(2.0)
    on_gpu = {**warm_config, "runtime": {**warm_config["runtime"], "device": "cuda"}}
    assert estimate(student_job(), context(on_gpu), FakeCalibration()).seconds == pytest.approx(cold)


def test_job_memory_is_the_measured_peak_plus_the_data_the_job_holds(config):
    """igkd.plan.memory: uint8 images of every split (1,797 x 16 x 16 x 3), a precompute
    file's float32 maps and logits (1,437 x (256 + 10) x 4), the teacher's weights in a student."""
    ctx, cal = context(config), FakeCalibration()
    images, maps = 1797 * 16 * 16 * 3, 1437 * (16 * 16 + 10) * 4
    reads_maps = dataclasses.replace(student_job(), inputs=("results/digits/precompute/ig.h5", "t/model.pt"))
    assert job_memory(reads_maps, ctx, cal) == 900_000_000 + images + 3_000_000 + maps
    assert job_memory(student_job("Student"), ctx, cal) == 900_000_000 + images + 3_000_000  # reads no precompute
    teacher = Job("train_teacher", 2, 0, (), ("results/digits/teacher/model.pt",), threads=2)
    assert job_memory(teacher, ctx, cal) == 2_000_000_000 + images
    ig = Job("precompute_attributions", 3, 0, (), ("results/digits/precompute/ig.h5",), {"attribution": "ig"}, 2)
    assert job_memory(ig, ctx, cal) == 5_000_000_000 + images + maps
    noise = Job("precompute_attributions", 4, 0, (), ("p/random.h5",), {"attribution": "random"}, 2)
    assert job_memory(noise, ctx, cal) == 2_000_000_000 + images + maps  # logits only: the teacher's pass
    assert job_memory(Job("fig_power", 7, 0, (), ("f.pdf",)), ctx, cal) is None  # the profile's default
    # mem_mb: x 1.5 + 1,000 MB, rounded up to 500 MB
    assert mem_mb_for(job_memory(ig, ctx, cal)) == 9000  # 5,002.9 MB -> 8,504.4 -> 9,000


def test_exclude_val_trains_on_fewer_rows_and_also_scores_them(config):
    config["students"]["exclude_val"] = True
    ctx = context(config)
    # 1437 - 144 = 1293 rows -> 13 steps; each evaluation scores 360 test + 144 validation rows
    expected = START + IO + 4 * (13 * 0.01 + CKPT) + 2 * (360 + 144) / 1000
    assert estimate(student_job(), ctx, FakeCalibration()).seconds == pytest.approx(expected)


def test_teacher_precompute_sweep_and_timing_seconds(config):
    ctx = context(config)
    cal = FakeCalibration()
    teacher = Job("train_teacher", 2, 0, (), ("results/digits/teacher/model.pt",), threads=2)
    # 1437 // 100 = 14 steps (the teacher drops the partial batch); evaluations after 2, 3 and the final one
    expected = START + IO + 3 * (14 * 0.1 + CKPT) + 3 * 360 / 500
    assert estimate(teacher, ctx, cal).seconds == pytest.approx(expected)
    assert evaluations(3, 2) == 2 and evaluations(4, 2) == 2 and evaluations(100, 10) == 10

    ig = Job("precompute_attributions", 3, 0, (), ("results/digits/precompute/ig.h5",), {"attribution": "ig"}, 2)
    assert estimate(ig, ctx, cal).seconds == pytest.approx(START + IO + 1437 / 500 + 1437 * 8 / 200)
    noise = Job("precompute_attributions", 4, 0, (), ("precompute/random.h5",), {"attribution": "random"})
    assert estimate(noise, ctx, cal).seconds == pytest.approx(START + IO + 1437 / 500)

    outputs = [f"results/digits/sweeps/kd/p{i}/run0/{n}" for i in range(3) for n in ("metrics.json", "history.csv")]
    sweep = Job("train_sweep_kd", 5, 0, (), tuple(outputs), threads=1)
    # 3 points of 3 epochs on the 1293 rows outside the validation split (13 steps), scored once on 144 rows
    per_point = 3 * 13 * 0.01 + 144 / 1000
    cost = estimate(sweep, ctx, cal)
    assert cost.seconds == pytest.approx(START + IO + 3 * per_point)
    assert (cost.trainings, cost.epochs) == (3, 9)

    timing = Job("time_models", 6, 0, (), ("results/digits/timing.csv",))
    run_s = min(max(0.1 * ASSUMPTIONS.time.timing_run_factor, 0.1), 0.5)
    warmup = sum(5 * b / rate for rate in (500, 1000, 1000) for b in (1, 10))  # teacher + students drop 7 and 13
    assert estimate(timing, ctx, cal).seconds == pytest.approx(START + warmup + 3 * 2 * run_s)

    figure = Job("fig_power", 7, 0, (), ("results/digits/figures/power.pdf",))
    assert estimate(figure, ctx, cal).seconds == pytest.approx(1.5 + ASSUMPTIONS.time.job_overhead_s + 1.0)
    assert estimate(Job("all", 0, 0, ("x",)), ctx, cal).seconds == 0


def test_converged_ig_reads_the_mean_steps_of_a_finished_file_else_assumes(config):
    config["precompute"]["ig"].update(method="trapezoid", steps=9, tolerance=0.05, max_steps=257)
    job = Job("precompute_attributions", 3, 0, (), ("results/digits/precompute/ig.h5",), {"attribution": "ig"}, 2)
    assumed = estimate(job, context(config), FakeCalibration())
    points = ASSUMPTIONS.time.refined_steps_factor * 9
    assert assumed.seconds == pytest.approx(START + IO + 1437 / 500 + 1437 * points / 200)
    assert assumed.notes and "assumed" in assumed.notes[0]
    known = estimate(job, context(config, refined_steps={"ig": 44.8}), FakeCalibration())
    assert known.seconds == pytest.approx(START + IO + 1437 / 500 + 1437 * 44.8 / 200) and not known.notes


def test_a_job_the_cost_model_cannot_read_is_a_clean_error(config):
    from igkd.plan.build import figures_of

    renamed = Job("distill_student", 9, 0, (), ("results/digits/students/x/model.pt",), {"algorithm": "KD"})
    with pytest.raises(InputError, match="cannot cost job 9 .distill_student"):
        figures_of(renamed, context(config), FakeCalibration(), student_owners(config))


def test_recorder_collects_the_keys_a_job_needs(config):
    recorder = Recorder()
    ctx = context(config)
    estimate(student_job("KD_AT"), ctx, recorder)
    job_bytes(student_job("KD_AT"), ctx, recorder)
    kinds = [k.kind for k in recorder.keys]
    assert kinds == ["startup_training", "student_step", "teacher_tap", "student_eval", "student_bytes"]
    step = next(k for k in recorder.keys if k.kind == "student_step")
    settings = (step.student, step.width, step.batch, step.threads, step.image_size, step.classes)
    assert settings == (STUDENT, 0.5, 100, 1, 16, 10)
    tap = next(k for k in recorder.keys if k.kind == "teacher_tap")
    assert tap.tap == 4 and tap.student is None  # teacher block 4 (drop 13's AT tap): shared by students tapping it
    resnet = ModelSettings.from_config(config, 10).teacher_tap("resnet-depth8", 1)
    assert resnet.tap == 9  # layer3 is matched with the teacher's block 9


def test_evaluate_external_scores_the_teacher_and_every_student_model_it_reads(config):
    """The students are read from the model paths the job reads: one throughput per student."""
    seen = []

    class Recording(FakeCalibration):
        def value(self, key: Key) -> float:
            seen.append(key)
            return super().value(key)

    config["external_eval"]["standin_rotation"] = 90  # the stand-in: the test split's 360 images
    models = [f"results/digits/students/KD/{s}/f1.0/run0/model.pt" for s in (STUDENT, "resnet-depth8")]
    job = Job("evaluate_external", 8, 0, ("results/digits/teacher/model.pt", *models), ("x.csv",), threads=1)
    cost = estimate(job, context(config), Recording())
    assert cost.seconds == pytest.approx(START + IO + 360 * (1 / 500 + 2 / 1000))
    assert [k.student for k in seen if k.kind == "student_eval"] == [STUDENT, "resnet-depth8"]


# ------------------------------------------------------------------ disk


def test_disk_of_a_student_folder_precompute_and_data(config):
    ctx = context(config)
    d = ASSUMPTIONS.disk
    history = d.history_header_bytes + 4 * d.history_row_bytes  # one row per epoch
    mask = math.ceil(1437 / 8) + d.npz_overhead_bytes
    expected = 100_000 + d.metrics_json_bytes + history + mask + d.runtime_json_bytes + d.log_bytes + d.benchmark_bytes
    assert job_bytes(student_job(), ctx, FakeCalibration()) == expected

    per_job = d.log_bytes + d.benchmark_bytes
    ig = Job("precompute_attributions", 3, 0, (), ("results/digits/precompute/ig.h5",), {"attribution": "ig"})
    per_row = (10 + 16 * 16 + d.precompute_row_floats) * 4
    assert job_bytes(ig, ctx, FakeCalibration()) == 1437 * per_row + d.precompute_overhead_bytes + per_job

    data = Job("prepare_data", 4, 0, (), ("results/digits/data.h5",))
    images = (1437 + 360) * 16 * 16 * 3
    labels = (1437 + 360 + 144) * 8
    assert job_bytes(data, ctx, FakeCalibration()) == images + labels + d.data_h5_overhead_bytes + per_job


def test_split_sizes_known_and_from_a_data_file(config, tmp_path):
    digits = data_size(config, tmp_path / "missing.h5")
    assert (digits.n_train, digits.n_test, digits.n_val) == (1437, 360, 144)  # the held-out sides round up
    config["dataset"]["name"] = "cifar10"
    cifar = data_size(config, tmp_path / "missing.h5")
    assert (cifar.n_train, cifar.n_test, cifar.n_val) == (50_000, 10_000, 5_000)
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as h5:
        h5["train/labels"] = np.zeros(100, dtype=np.int64)
        h5["test/labels"] = np.zeros(30, dtype=np.int64)
        h5["val_index"] = np.arange(7)
        h5.attrs["classes"] = ["a", "b", "c"]
    read = data_size(config, path)
    assert (read.n_train, read.n_test, read.n_val, read.classes) == (100, 30, 7, 3)
    assert data_size(config, path, trust_file=False).n_train == 50_000  # prepare_data will rewrite it


# ------------------------------------------------------------------ scheduling


def test_chain_and_independent_job_on_one_and_two_cores():
    # A (2 s) -> B (3 s), and C (4 s) on its own
    tasks = [Task(1, 2.0, order=0), Task(2, 3.0, order=1, deps=frozenset({1})), Task(3, 4.0, order=2)]
    one = schedule(tasks, cores=1)
    assert (one[1].start, one[2].start, one[3].start) == (0, 2, 5)  # B listed before C: it goes first
    assert makespan(tasks, cores=1) == 9
    assert makespan(tasks, cores=2) == 5  # A then B on one core, C beside them


def test_higher_priority_starts_first_then_listing_order():
    tasks = [Task(1, 5.0, order=0), Task(2, 1.0, order=1, priority=10), Task(3, 1.0, order=2)]
    slots = schedule(tasks, cores=1)
    assert [slots[i].start for i in (2, 1, 3)] == [0, 1, 6]


def test_a_job_that_does_not_fit_is_passed_over_for_smaller_ones():
    # 4 cores: two 1-core jobs start; the 4-thread job waits for them; the third 1-core job,
    # listed after it, fills a free core meanwhile (Snakemake's greedy selection)
    tasks = [Task(1, 2.0, 1, order=0), Task(2, 2.0, 1, order=1), Task(3, 3.0, 4, order=2), Task(4, 1.0, 1, order=3)]
    slots = schedule(tasks, cores=4)
    assert (slots[3].start, slots[4].start) == (2, 0)
    assert makespan(tasks, cores=4) == 5
    assert makespan([Task(1, 3.0, cores=8)], cores=2) == 3  # more threads than cores: capped, runs


def test_gpu_slots_limit_gpu_jobs_not_cpu_jobs():
    students = [Task(i, 2.0, cores=1, gpus=1, order=i) for i in range(3)]
    assert makespan(students, cores=8, gpu_slots=2) == 4  # two at a time
    assert makespan(students, cores=8) == 2  # without --gpus the slots do not limit
    whole = Task(10, 3.0, cores=1, gpus=2, order=10)  # a teacher: every slot of the GPU
    cpu = Task(11, 3.0, cores=1, gpus=0, order=11)
    assert makespan([whole, *students, cpu], cores=8, gpu_slots=2) == 3 + 4
    assert schedule([whole, cpu], cores=8, gpu_slots=2)[11].start == 0


def test_dependencies_outside_the_set_count_as_done_and_cycles_fail():
    assert makespan([Task(1, 2.0, deps=frozenset({99}))], cores=1) == 2
    with pytest.raises(ValueError, match="cycle"):
        schedule([Task(1, 1.0, deps=frozenset({2})), Task(2, 1.0, deps=frozenset({1}))], cores=1)
    assert makespan([], cores=4) == 0


def test_experiment_rows_count_a_shared_student_once_and_schedule_with_prerequisites():
    from igkd.plan.cost import JobCost
    from igkd.plan.summary import JobFigures, Resources, summarize

    teacher = Job("train_teacher", 1, 0, (), ("t.pt",), threads=2)
    a = Job("distill_student", 2, 1, ("t.pt",), ("a/model.pt",), threads=1)
    b = Job("distill_student", 3, 2, ("t.pt",), ("b/model.pt",), threads=1)
    figures = [
        JobFigures(teacher, JobCost(100.0, 1, 10), 1000, ("shared",)),
        JobFigures(a, JobCost(50.0, 1, 5), 10, ("x", "y")),
        JobFigures(b, JobCost(30.0, 1, 5), 10, ("y",)),
    ]
    cpu = Resources(cores=2, gpu_slots=None, on_gpu=False)
    rows, total = summarize(figures, cpu, ["x", "y", "shared"])
    x, y, shared = rows
    assert (x.jobs, x.shared, y.jobs, y.shared, shared.jobs) == (1, 1, 1, 0, 1)
    assert x.wall_s == 150 and y.wall_s == 150  # the teacher first, then the students side by side
    assert shared.resource_h == pytest.approx(200 / 3600)  # 100 s on 2 cores
    assert (total.jobs, total.trainings, total.epochs, total.disk_bytes) == (3, 3, 20, 1020)
    assert total.compute_h == pytest.approx(180 / 3600) and total.wall_s == 150
    one_core = summarize(figures, Resources(cores=1, gpu_slots=None, on_gpu=False), [])[1]
    assert one_core.wall_s == 180
    gpu = Resources(2, 1, True, slots_per_gpu=2, one_slot_rules=frozenset({"distill_student"}))
    rows, total = summarize(figures, gpu, ["x", "y", "shared"])
    assert total.resource_h == pytest.approx((50 + 30) / 2 / 3600)  # a slot is half a GPU; the teacher holds none here
    assert total.wall_s == 180  # one slot: the students one after the other


# ------------------------------------------------------------------ the calibration cache


def test_cache_measures_only_what_it_lacks(tmp_path):
    calls = []

    def measure(key, device):
        calls.append(key)
        return 0.5, 3

    store = Store(tmp_path / "cpu-test.json", {"device": "cpu"})
    where = {"hostname": "h", "device": "cpu", "device_name": "test cpu", "torch": "2"}
    options = EnsureOptions(log=lambda m: None)
    a = Key(
        "student_step", width=0.5, student=STUDENT, image_size=16, batch=64, threads=1, channels_last=True, classes=10
    )
    b = Key(
        "student_step",
        width=0.5,
        student="mobilenetv2-drop7",
        image_size=16,
        batch=64,
        threads=1,
        channels_last=True,
        classes=10,
    )
    first = ensure(store, [a], measure, where, options)
    assert calls == [a] and first.value(a) == 0.5
    again = ensure(Store(store.path), [a], measure, where, options)  # a new plan reads the file
    assert calls == [a] and again.value(a) == 0.5
    ensure(Store(store.path), [a, b], measure, where, options)
    assert calls == [a, b]  # only the new key
    ensure(Store(store.path), [a], measure, where, EnsureOptions(recalibrate=True, log=lambda m: None))
    assert calls == [a, b, a]
    data = json.loads(store.path.read_text())
    entry = next(e for e in data["entries"] if e["key"]["student"] == STUDENT)
    assert entry["unit"] == "s/step" and entry["samples"] == 3 and entry["where"]["device_name"] == "test cpu"
    assert entry["when"][:4].isdigit() and Entry.from_dict(entry).key == a
    assert cal_module.provenance(again)[0].startswith("1 number(s) measured")


def test_a_cache_written_before_student_ids_reads_its_drops_as_mobilenetv2_ids(tmp_path):
    """Keys that named the paper's MobileNetV2 by `drop` are the same network as its id."""
    common = {"width": 0.5, "image_size": 16, "batch": 64, "threads": 1, "channels_last": True, "classes": 10}
    entries = [
        {"key": {"kind": "student_step", "drop": 13, **common}, "value": 0.25},
        {"key": {"kind": "teacher_tap", "tap": 4, **common}, "value": 0.5},
    ]
    when = {"samples": 3, "when": "2026-01-01T00:00:00+00:00", "where": {"hostname": "h"}}
    path = tmp_path / "cpu-old.json"
    path.write_text(json.dumps({"format": 1, "entries": [{**e, **when} for e in entries]}))
    store = Store(path)
    assert store.get(Key("student_step", student=STUDENT, **common)).value == 0.25
    assert store.get(Key("teacher_tap", tap=4, **common)).value == 0.5
    store.save()  # written back under the id
    assert json.loads(path.read_text())["entries"][0]["key"]["student"] == STUDENT


def test_a_step_time_is_the_lower_quartile_of_the_timed_steps(monkeypatch):
    from igkd.plan import measure

    # warm-up steps, then four quick steps and two slowed by another process's burst
    durations = iter([9.0] * measure.WARMUP_STEPS + [1.0, 1.0, 1.1, 1.0, 5.0, 5.0])
    now = [0.0]

    def step():
        now[0] += next(durations)

    monkeypatch.setattr(measure.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(measure, "TIMED_STEPS", 6)
    seconds, samples = measure.timed(step, "cpu")
    assert samples == 6 and seconds == pytest.approx(1.0)  # the median would be 1.05, the mean 2.35
    assert measure.quantile([2.0, 4.0], 0.5) == 3.0 and measure.quantile([7.0], 0.25) == 7.0


def test_a_device_not_on_this_machine_cannot_fill_gaps(tmp_path):
    store = Store(tmp_path / "cuda-x.json")
    options = EnsureOptions(can_measure=False, why_not="no cuda on this machine", log=lambda m: None)
    with pytest.raises(InputError, match="cannot measure"):
        ensure(store, [Key("startup_training")], fake_measure, {"device": "cuda"}, options)


def test_a_gpu_run_planned_without_a_gpu_reuses_the_copied_calibration(tmp_path):
    import torch

    from igkd.plan.cache import open_cache

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: it would measure its own")
    with pytest.raises(InputError, match="igkd calibrate --device cuda"):
        open_cache("cuda", tmp_path)
    copied = Store(tmp_path / ".igkd/calibration/cuda-NVIDIA_H200.json", {"hostname": "gpu01", "device_name": "H200"})
    copied.put(Entry(Key("startup_training"), 3.0, 1, "2026-12-01T10:00:00+00:00", {"hostname": "gpu01"}))
    cache = open_cache("cuda", tmp_path)
    assert cache.store.path == copied.path and not cache.can_measure and cache.kind == "cuda"
    assert cache.where["hostname"] == "gpu01" and cache.store.get(Key("startup_training")).value == 3.0
    with pytest.raises(InputError, match="device 'tpu'"):
        open_cache("tpu", tmp_path)


def test_unreadable_cache_is_a_clean_error(tmp_path):
    path = tmp_path / "cpu-x.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="unreadable calibration cache"):
        Store(path)


# ------------------------------------------------------------------ experiments


def test_students_shared_by_experiments_and_rules_by_what_they_make(config):
    owners = student_owners(config)
    ablation_run = {"method": "KD", "student": "mobilenetv2-drop5", "fraction": "1.0", "run": "0"}
    assert owners(ablation_run)[0] == "ablation" and "controls" in owners(ablation_run)
    control = {"method": "shuffled_KD", "student": "mobilenetv2-drop5", "fraction": "1.0", "run": "0"}
    assert owners(control) == ["controls"]

    def rule(name, **wildcards):
        return job_owners(Job(name, 1, 0, (), ("x",), wildcards), owners)

    assert rule("collect_sweep", sweep="kd") == ("kd_grid",)
    assert rule("train_sweep_point", sweep="overlay_p", point="p0.1", run="0") == ("overlay_p",)
    assert rule("run_stats", experiment="montecarlo") == ("montecarlo",)
    assert rule("time_models") == ("timing",) and rule("train_teacher") == ("shared",)
    assert rule("fig_imagenet") == ("external",) and rule("fig_attention") == ("reporting",)


# ------------------------------------------------------------------ SLURM


def test_slurm_minutes_and_groups():
    s = ASSUMPTIONS.slurm
    assert minutes_for(0) == math.ceil(s.margin_min / s.round_to_min) * s.round_to_min
    hour = minutes_for(3600)
    assert hour >= 60 * s.safety_factor + s.margin_min and hour % s.round_to_min == 0
    groups = group_sizes(yaml.safe_load(SLURM_PROFILE))
    assert groups["distill_student"] == 4 and groups["train_teacher"] == 1


SLURM_PROFILE = """\
# The full protocol on a SLURM cluster (an excerpt of profiles/slurm/config.yaml)
executor: slurm
jobs: 100 # SLURM jobs queued or running at once

default-resources:
  slurm_partition: &cpu_partition "cpu" # EDIT: partition for CPU-only jobs
  runtime: 60 # minutes, for rules that do not declare their own

# Per rule.
set-resources:
  train_teacher:
    slurm_partition: &gpu_partition "gpu" # EDIT: partition with GPUs
    gres: &gpu "gpu:1"
    mem_mb: 16000
  distill_student:
    slurm_partition: *gpu_partition
    gres: *gpu
    runtime: 1440 # minutes: 4 students (group-components) one after another x 6 h
  train_sweep_point:
    gres: *gpu
    runtime: 1440 # 4 points (group-components) one after another x 6 h

# Threads per job come from config.yaml runtime.threads, e.g.:
# set-threads:
#   distill_student: 2

groups:
  distill_student: students
  train_sweep_point: sweeps
group-components:
  students: 4
  sweeps: 4
"""


def test_write_profile_changes_runtimes_and_memory_and_keeps_the_rest(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(SLURM_PROFILE)
    before = path.read_text().splitlines()
    student_mem, teacher_mem = mem_mb_for(2.0e9), mem_mb_for(9.1e9)
    items = [
        # grouped, measured: a runtime for 4 jobs, mem_mb per job (Snakemake sums a group's)
        RuleRuntime("distill_student", 10, 3000.0, 110, group=4, memory_bytes=int(2.0e9), mem_mb=student_mem),
        # in set-resources with a mem_mb and without a runtime yet
        RuleRuntime("train_teacher", 1, 20000.0, 680, memory_bytes=int(9.1e9), mem_mb=teacher_mem),
        RuleRuntime("fig_power", 1, 10.0, 15),  # not listed, 15 min < its current 60, no estimate: left out
        RuleRuntime("time_models_new", 1, 9000.0, 310),  # not listed, over its current 60: added
        # not listed, its runtime enough, its memory over what it gets now: mem_mb added alone
        RuleRuntime("evaluate_external", 1, 60.0, 15, memory_bytes=int(5e9), mem_mb=mem_mb_for(5e9)),
    ]
    current = {
        "fig_power": {"runtime": 60, "mem_mb": 4000},
        "time_models_new": {"runtime": 60},
        "evaluate_external": {"runtime": 60, "mem_mb": 4000},
    }
    changes = write_profile(path, items, current)
    assert len(changes) == 6, changes
    loaded = yaml.safe_load(path.read_text())
    resources = loaded["set-resources"]
    assert (student_mem, teacher_mem) == (4000, 15_000)  # 2,000 MB x 1.5 + 1,000; 9,100 x 1.5 + 1,000 up to 500s
    assert resources["distill_student"]["runtime"] == 440  # 4 jobs one after another
    assert resources["distill_student"]["mem_mb"] == student_mem
    assert resources["train_teacher"] == {
        "slurm_partition": "gpu",
        "gres": "gpu:1",
        "mem_mb": teacher_mem,
        "runtime": 680,
    }
    assert resources["time_models_new"] == {"runtime": 310} and "fig_power" not in resources
    assert resources["evaluate_external"] == {"mem_mb": mem_mb_for(5e9)}
    assert resources["train_sweep_point"]["runtime"] == 1440  # untouched
    assert loaded["groups"] == {"distill_student": "students", "train_sweep_point": "sweeps"}
    after = path.read_text().splitlines()
    comments = [line for line in before if line.lstrip().startswith("#")]
    assert all(line in after for line in comments)  # every comment line kept
    assert len(after) == len(before) + 6  # 2 lines into existing blocks, 2 two-line rule blocks added


# ------------------------------------------------------------------ the command line


@pytest.fixture
def workflow_copy(tmp_path, monkeypatch):
    """The workflow, its config and profiles and src in a fresh folder (no results, no
    calibration), as the current directory."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("workflow", "envs", "profiles", "src"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=ignore)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "src"))
    return tmp_path


def refuse_to_measure(key, device):
    raise AssertionError(f"measured {key.label()}: the cached calibration should have been used")


@pytest.mark.e2e
def test_plan_end_to_end_on_the_demo_profile_with_a_cached_calibration(workflow_copy, monkeypatch, capsys):
    monkeypatch.setattr("igkd.plan.measure.measure", fake_measure)
    assert main(["calibrate", "--profile", "profiles/demo", "--cores", "2"]) == 0
    calibrated = capsys.readouterr().out
    assert "student_step" in calibrated and "measured" in calibrated
    cache = list((workflow_copy / ".igkd" / "calibration").glob("cpu-*.json"))
    assert len(cache) == 1

    monkeypatch.setattr("igkd.plan.measure.measure", refuse_to_measure)
    assert main(["plan", "--profile", "profiles/demo", "--cores", "2"]) == 0
    out = capsys.readouterr().out
    assert "job(s) left" in out and "2 core(s)" in out
    for row in ("ablation", "controls", "kd_grid", "shared", "total"):
        assert any(line.startswith(row) for line in out.splitlines()), row
    assert "shared)" in out  # the ablation's students the controls and compression also ask for
    assert f"calibration {cache[0]}" in out and "number(s) measured" in out

    assert main(["plan", "--profile", "profiles/demo", "--cores", "2", "--json", "--slurm-runtimes"]) == 0
    plan = json.loads(capsys.readouterr().out)
    total = plan["total"]
    assert total["jobs"] == sum(row["jobs"] for row in plan["experiments"])
    assert total["trainings"] == plan["rules"]["distill_student"]["jobs"] + 1 + 7  # + teacher + sweep points
    assert 0 < total["wall_seconds"] <= total["compute_hours"] * 3600
    assert plan["slurm"]["runtimes"]["distill_student"]["minutes"] >= ASSUMPTIONS.slurm.margin_min
    # mem_mb from the memory probes `igkd calibrate` cached (refuse_to_measure: nothing measured now)
    slurm = ASSUMPTIONS.slurm
    least = FAKE["student_step_rss"] / 1e6 * slurm.mem_safety_factor + slurm.mem_margin_mb
    assert plan["slurm"]["runtimes"]["distill_student"]["mem_mb"] >= least
    assert plan["slurm"]["runtimes"]["fig_power"]["mem_mb"] is None  # no model: the profile's default
    distill = plan["rules"]["distill_student"]
    assert distill["longest_seconds"] > FAKE["startup_training"]


def test_plan_of_a_target_and_bad_inputs_exit_2(workflow_copy, monkeypatch, capsys):
    monkeypatch.setattr("igkd.plan.measure.measure", fake_measure)
    assert main(["plan", "controls", "--profile", "profiles/demo", "--cores", "2", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    names = {row["experiment"] for row in plan["experiments"]}
    assert "controls" in names and "kd_grid" not in names and "montecarlo" not in names

    assert main(["plan", "nosuchtarget", "--profile", "profiles/demo"]) == 2
    assert "error: snakemake dry run failed" in capsys.readouterr().err
    assert main(["plan", "--profile", "profiles/demo", "--device", "tpu"]) == 2
    assert "error: device 'tpu'" in capsys.readouterr().err
    assert main(["plan", "--profile", "nowhere"]) == 2
    assert "error: --profile nowhere" in capsys.readouterr().err
    (workflow_copy / "bad.yaml").write_text("students:\n  epochs: -3\n")
    assert main(["plan", "--configfile", "bad.yaml"]) == 2
    assert "students.epochs" in capsys.readouterr().err


@pytest.mark.slow
def test_real_calibration_measures_every_kind(tmp_path):
    """Each measurement once, on tiny models: plausible numbers, not a benchmark."""
    from igkd.plan.measure import measure

    common = {"image_size": 8, "threads": 1, "channels_last": True, "classes": 10}
    keys = [
        Key("teacher_step", width=0.25, batch=16, **common),
        Key("student_step", width=0.25, student=STUDENT, batch=16, **common),
        Key("student_step", width=0.25, student="resnet-depth8", batch=16, **common),
        Key("teacher_tap", width=0.25, tap=4, batch=16, **common),
        Key("teacher_eval", width=0.25, batch=64, **common),
        Key("student_eval", width=0.25, student=STUDENT, batch=64, **common),
        Key("student_eval", width=0.25, student="resnet-depth8", batch=64, **common),
        Key("ig", width=0.25, batch=32, **common),
        Key("student_bytes", width=0.25, student=STUDENT, classes=10),
        Key("student_bytes", width=0.25, student="resnet-depth8", classes=10),
        Key("startup_analysis"),
    ]
    for key in keys:
        value, samples = measure(key, "cpu")
        assert value > 0 and samples >= 1, key.label()
    steps = {k.kind: measure(k, "cpu")[0] for k in keys[:2]}
    assert steps["student_step"] < steps["teacher_step"] * 2  # a truncated student is not much slower


@pytest.mark.e2e
def test_the_memory_probe_measures_a_fresh_process_running_the_step():
    """peak_rss_bytes spawns a Python that runs the step once and reports its peak RSS:
    more than torch alone needs, and more for a batch 16 x larger of the same model."""
    from igkd.plan.measure import peak_rss_bytes

    small = Key(
        "student_step",
        width=0.25,
        student=STUDENT,
        batch=4,
        image_size=16,
        threads=1,
        channels_last=True,
        classes=10,
        precision="fp32",
    )
    large = dataclasses.replace(small, width=1.0, student="mobilenetv2-drop5", batch=512, image_size=32)
    small_rss, large_rss = peak_rss_bytes(small, "cpu"), peak_rss_bytes(large, "cpu")
    assert 100e6 < small_rss < large_rss, (small_rss, large_rss)
