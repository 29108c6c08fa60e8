"""Seconds each pending job will take, from the calibration and the config.

A job's time is its start-up (a fresh Python importing torch or pandas, measured) plus
Snakemake's overhead, plus its work: training steps x measured seconds per step,
evaluations x test rows / measured throughput, attribution points / measured IG
throughput. Rules without a model of their own (tables, figures) cost their start-up and
a small constant. Every number that is not measured comes from igkd.plan.assumptions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from igkd.plan.assumptions import ASSUMPTIONS, Assumptions, TimeAssumptions
from igkd.plan.dataset import DataSize, kept
from igkd.plan.jobs import Job
from igkd.plan.keys import ModelSettings, ig_points_per_pass, startup
from igkd.training.student_job import uses_warm_workers

# A student run folder's model: results/<tag>/students/<method>/<student>/f<fraction>/run<r>/model.pt
STUDENT_IN_PATH = re.compile(r"/students/[^/]+/(?P<student>[a-z][a-z0-9_]*-[a-z]+\d+)/f[^/]+/run\d+/")
SWEEP_SECTION = {"kd": "kd", "overlay_p": "overlay"}  # igkd.analysis.sweeps.SECTION (no pandas import here)


@dataclass(frozen=True)
class CostContext:
    """Everything a job's estimate reads besides the job and the calibration."""

    config: dict
    data: DataSize
    device_kind: str  # cpu | cuda | mps
    models: ModelSettings
    refined_steps: dict = field(default_factory=dict)  # precompute stem -> mean points from an existing file
    cores: int = 1  # the run's --cores: Snakemake caps every rule's threads at it
    timed_students: tuple[str, ...] = ()  # the student ids time_models benchmarks
    external_images: int | None = None  # images under external_eval.root, where it exists already
    assumptions: Assumptions = ASSUMPTIONS

    def rule_threads(self, stage: str) -> int:
        """Threads of a rule with runtime.threads.<stage>, as Snakemake runs it (capped at --cores)."""
        return min(int(self.config["runtime"]["threads"][stage]), self.cores)


@dataclass(frozen=True)
class JobCost:
    seconds: float
    trainings: int = 0  # models trained (teacher, students, sweep points)
    epochs: int = 0
    notes: tuple[str, ...] = ()  # assumptions this estimate had to make, for the plan's notes


def estimate(job: Job, ctx: CostContext, cal) -> JobCost:
    """The job's cost; `cal.value(key)` gives each measured number."""
    if job.is_target:
        return JobCost(0.0)
    handler = HANDLERS.get(job.rule)
    if handler is None and job.rule.startswith("train_sweep"):
        handler = sweep_job
    base = start_seconds(job, ctx, cal)
    if handler is None:
        return JobCost(base + ctx.assumptions.time.small_job_s)
    cost = handler(job, ctx, cal)
    return JobCost(base + cost.seconds, cost.trainings, cost.epochs, cost.notes)


def start_seconds(job: Job, ctx: CostContext, cal) -> float:
    """A fresh Python importing what the rule's script imports, plus Snakemake's part; a
    student handed to a warm worker (igkd.training.worker) only Snakemake's part (the first
    job of each worker waits for its start-up: a few seconds per plan, left out)."""
    if job.rule == "distill_student" and uses_warm_workers(ctx.config["runtime"]):
        return ctx.assumptions.time.job_overhead_s
    return cal.value(startup(job.rule in ctx.assumptions.time.torch_rules)) + ctx.assumptions.time.job_overhead_s


def evaluations(epochs: int, every: int) -> int:
    """Evaluations of a training: every `every` epochs and always after the last."""
    return epochs // every + (1 if epochs % every else 0)


def is_at(method: str) -> bool:
    """Whether a method's step also runs the teacher to its tapped block (attention transfer)."""
    from igkd.training.methods import get_method

    try:
        return get_method(method).at
    except ValueError:
        return "AT" in method.split("@")[0].split("_")


@dataclass(frozen=True)
class StudentTraining:
    """One student training as the cost model sees it."""

    method: str
    student: str  # id: mobilenetv2-drop5
    rows: int  # training rows
    epochs: int
    evaluations: int
    eval_rows: int  # rows per evaluation (test, plus validation with exclude_val)
    threads: int
    checkpoint: bool = True  # distill_student checkpoints every epoch; sweep points do not


def student_training(ctx: CostContext, cal, run: StudentTraining) -> float:
    """Seconds of one student's epochs and evaluations (no start-up)."""
    a = ctx.assumptions.time
    step = cal.value(ctx.models.student_step(run.student, run.threads))
    if is_at(run.method):
        step += cal.value(ctx.models.teacher_tap(run.student, run.threads))
    steps = math.ceil(run.rows / ctx.models.student_batch)  # the students' loop keeps the last partial batch
    per_epoch = steps * step + (a.checkpoint_s_per_epoch if run.checkpoint else 0.0)
    eval_seconds = run.evaluations * run.eval_rows / cal.value(ctx.models.student_eval(run.student, run.threads))
    return run.epochs * per_epoch + eval_seconds


def distill_student(job: Job, ctx: CostContext, cal) -> JobCost:
    students, data = ctx.config["students"], ctx.data
    wildcards = job.wildcards
    fraction = float(wildcards["fraction"])
    exclude_val = bool(students["exclude_val"])
    epochs = int(students["epochs"])
    run = StudentTraining(
        method=wildcards["method"],
        student=wildcards["student"],
        rows=kept(fraction, data.pool(exclude_val)),
        epochs=epochs,
        evaluations=evaluations(epochs, int(students["eval_every"])),
        eval_rows=data.n_test + (data.n_val if exclude_val else 0),
        threads=job.threads,
    )
    seconds = ctx.assumptions.time.training_io_s + student_training(ctx, cal, run)
    return JobCost(seconds, trainings=1, epochs=epochs)


def sweep_job(job: Job, ctx: CostContext, cal) -> JobCost:
    """train_sweep_point (one point) or a grouped train_sweep_<sweep> (all its points, one
    after another in one process): each point a student at sweeps.epochs, sweeps.student, on
    sweeps.fraction of the rows outside the validation split, scored once on that split."""
    sweeps, data = ctx.config["sweeps"], ctx.data
    sweep = job.wildcards.get("sweep") or job.rule.removeprefix("train_sweep_")
    method = sweeps[SWEEP_SECTION.get(sweep, sweep)]["method"]
    points = sum(1 for path in job.outputs if path.endswith("metrics.json")) or 1
    epochs = int(sweeps["epochs"])
    run = StudentTraining(
        method=method,
        student=str(sweeps["student"]),
        rows=kept(float(sweeps["fraction"]), data.pool(exclude_val=True)),
        epochs=epochs,
        evaluations=1,
        eval_rows=data.n_val,
        threads=job.threads,
        checkpoint=False,
    )
    seconds = ctx.assumptions.time.training_io_s + points * student_training(ctx, cal, run)
    return JobCost(seconds, trainings=points, epochs=points * epochs)


def train_teacher(job: Job, ctx: CostContext, cal) -> JobCost:
    teacher, data, a = ctx.config["teacher"], ctx.data, ctx.assumptions.time
    eval_s = data.n_test / cal.value(ctx.models.teacher_eval(job.threads))
    if teacher["source"] != "train":
        return JobCost(a.training_io_s + eval_s)
    epochs = int(teacher["epochs"])
    rows = data.pool(bool(teacher.get("exclude_val", False)))
    steps = max(rows // ctx.models.teacher_batch, 1)  # the teacher's loop drops the last partial batch
    step = cal.value(ctx.models.teacher_step(job.threads))
    train_s = epochs * (steps * step + a.checkpoint_s_per_epoch)
    evals = evaluations(epochs, int(teacher["eval_every"])) + 1  # and once more for metrics.json
    return JobCost(a.training_io_s + train_s + evals * eval_s, trainings=1, epochs=epochs)


def precompute(job: Job, ctx: CostContext, cal) -> JobCost:
    """Every training row: a logits forward pass, then its attribution's points through
    the teacher (forward + backward each)."""
    attribution = job.wildcards.get("attribution", "ig")
    rows = ctx.data.n_train
    per_image, notes = points_per_image(job, ctx, attribution)
    seconds = ctx.assumptions.time.training_io_s + rows / cal.value(ctx.models.teacher_eval(job.threads))
    if per_image > 0:
        points = ig_points_per_pass(ctx.config["precompute"], attribution, ctx.device_kind)
        seconds += rows * per_image / cal.value(ctx.models.ig(points, job.threads))
    return JobCost(seconds, notes=notes)


def points_per_image(job: Job, ctx: CostContext, attribution: str) -> tuple[float, tuple[str, ...]]:
    """Mean attribution points per image, and the note if it had to be assumed."""
    a = ctx.assumptions.time
    settings = ctx.config["precompute"].get(attribution) or {}
    if attribution in a.points_per_image:
        return float(a.points_per_image[attribution]), ()
    if attribution != "ig":
        return float(settings.get("samples", 1)), ()
    if settings.get("tolerance") is None:
        return float(settings["steps"]), ()
    stem = job.outputs[0].rsplit("/", 1)[-1].removesuffix(".h5") if job.outputs else attribution
    for known in (stem, attribution):
        if known in ctx.refined_steps:
            return ctx.refined_steps[known], ()
    assumed = min(a.refined_steps_factor * settings["steps"], settings["max_steps"])
    note = (
        f"{stem}: converged IG's mean points per image is known only after the run; assumed "
        f"{a.refined_steps_factor:g} x precompute.ig.steps = {assumed:g} (no finished precompute file to read it from)"
    )
    return assumed, (note,)


def time_models(job: Job, ctx: CostContext, cal) -> JobCost:
    """Per model (teacher and each timed student) and batch size: warm-up passes, then the
    benchmark's adaptive run (igkd.plan.assumptions: timing_run_factor). The warm-up, a
    small part, uses the inference throughput measured at the training jobs' threads
    rather than at timing.threads, so it needs no measurement of its own."""
    timing, a = ctx.config["timing"], ctx.assumptions.time
    low, high = float(timing["min_run_time"]), float(timing["max_run_time"])
    run_s = min(max(low * a.timing_run_factor, low), high)
    teacher_threads, student_threads = ctx.rule_threads("teacher"), ctx.rule_threads("student")
    throughputs = [cal.value(ctx.models.teacher_eval(teacher_threads))]
    throughputs += [cal.value(ctx.models.student_eval(s, student_threads)) for s in ctx.timed_students]
    seconds = sum(
        int(timing["warmup"]) * batch / rate + run_s for rate in throughputs for batch in timing["batch_sizes"]
    )
    return JobCost(seconds)


def evaluate_external(job: Job, ctx: CostContext, cal) -> JobCost:
    """Teacher and every student input scored on the external images."""
    a = ctx.assumptions.time
    students = [m["student"] for p in job.inputs if p.endswith("model.pt") for m in [STUDENT_IN_PATH.search(p)] if m]
    if ctx.config["external_eval"].get("standin_rotation") is not None:
        images = ctx.data.n_test  # the stand-in is the test split, rotated
    else:
        images = ctx.external_images or a.external_images
    per_image = 1 / cal.value(ctx.models.teacher_eval(job.threads))
    per_image += sum(1 / cal.value(ctx.models.student_eval(s, job.threads)) for s in students)
    return JobCost(a.training_io_s + images * per_image)


def fixed(seconds: Callable[[TimeAssumptions, dict], float]) -> Callable[[Job, CostContext, object], JobCost]:
    """A rule whose work is a documented constant: `seconds(assumptions, config)`."""

    def cost(job: Job, ctx: CostContext, cal) -> JobCost:
        return JobCost(seconds(ctx.assumptions.time, ctx.config))

    return cost


HANDLERS: dict[str, Callable[[Job, CostContext, object], JobCost]] = {
    "distill_student": distill_student,
    "train_teacher": train_teacher,
    "precompute_attributions": precompute,
    "precompute_reference_defect": precompute,
    "time_models": time_models,
    "evaluate_external": evaluate_external,
    "download_cifar10": fixed(lambda a, config: a.download_s),
    "prepare_data": fixed(lambda a, config: a.prepare_s.get(config["dataset"]["name"], a.small_job_s)),
    "export_standin": fixed(lambda a, config: a.export_standin_s),
}
