"""Bytes each pending job will write: model files measured, the rest from its shape.

Model files are the calibration's measured state-dict sizes; array files follow from
their rows and dtypes (data.h5, the precompute HDF5 files, the subsample bit masks);
small files (history, metrics, tables, figures, logs) use the per-item sizes in
igkd.plan.assumptions. A job's log and benchmark file count too.
"""

from __future__ import annotations

import math

from igkd.plan.cost import CostContext
from igkd.plan.jobs import Job

FLOAT32_BYTES = 4
RGB = 3


def job_bytes(job: Job, ctx: CostContext, cal) -> int:
    """Bytes the job writes (outputs, log, benchmark); 0 for a target rule."""
    if job.is_target:
        return 0
    d = ctx.assumptions.disk
    return sum(output_bytes(path, job, ctx, cal) for path in job.outputs) + d.log_bytes + d.benchmark_bytes


def output_bytes(path: str, job: Job, ctx: CostContext, cal) -> int:
    """Bytes of one output file (or folder) of `job`."""
    d = ctx.assumptions.disk
    name = path.rsplit("/", 1)[-1]
    if job.rule == "distill_student":
        return student_file(name, job, ctx, cal)
    if job.rule == "train_teacher":
        return teacher_file(name, ctx, cal)
    if job.rule.startswith("train_sweep"):
        epochs = int(ctx.config["sweeps"]["epochs"])
        return history_bytes(epochs, ctx) if name == "history.csv" else d.sweep_metrics_bytes
    if job.rule in ("precompute_attributions", "precompute_reference_defect"):
        return precompute_bytes(job, ctx)
    if job.rule == "prepare_data":
        return data_h5_bytes(ctx)
    if job.rule == "download_cifar10":
        return d.cifar10_archive_bytes
    if job.rule == "export_standin":
        size = ctx.data.image_size
        return ctx.data.n_test * (size * size * RGB + d.png_overhead_bytes)
    if job.rule == "time_models":
        models = 1 + len(ctx.timed_students)
        return models * len(ctx.config["timing"]["batch_sizes"]) * d.timing_row_bytes
    if name.endswith(".pdf"):
        return d.figure_pdf_bytes
    if name.endswith(".png"):
        return d.figure_png_bytes
    return d.table_bytes


def history_bytes(epochs: int, ctx: CostContext) -> int:
    """history.csv: a header and one row per epoch."""
    d = ctx.assumptions.disk
    return d.history_header_bytes + epochs * d.history_row_bytes


def student_file(name: str, job: Job, ctx: CostContext, cal) -> int:
    d, students = ctx.assumptions.disk, ctx.config["students"]
    if name == "model.pt":
        return int(cal.value(ctx.models.student_bytes(job.wildcards["student"])))
    if name == "history.csv":
        return history_bytes(int(students["epochs"]), ctx)
    if name == "metrics.json":
        return d.metrics_json_bytes
    if name == "runtime.json":
        return d.runtime_json_bytes
    if name.endswith(".npz"):  # a packed bit mask over every training row
        return math.ceil(ctx.data.n_train / 8) + d.npz_overhead_bytes
    return d.table_bytes


def teacher_file(name: str, ctx: CostContext, cal) -> int:
    d = ctx.assumptions.disk
    if name == "model.pt":
        return int(cal.value(ctx.models.teacher_bytes()))
    if name == "history.csv":
        return history_bytes(int(ctx.config["teacher"]["epochs"]), ctx)
    return d.metrics_json_bytes


def precompute_bytes(job: Job, ctx: CostContext) -> int:
    """Per training row: logits, the map, the completeness floats (and converged IG's
    per-row steps and flags), float32, plus the file's overhead."""
    d, data = ctx.assumptions.disk, ctx.data
    attribution = job.wildcards.get("attribution", "ig")
    settings = ctx.config["precompute"].get(attribution) or {}
    per_row = (data.classes + data.image_size**2 + d.precompute_row_floats) * FLOAT32_BYTES
    if attribution == "ig" and settings.get("tolerance") is not None:
        per_row += d.refined_row_bytes
    return data.n_train * per_row + d.precompute_overhead_bytes


def data_h5_bytes(ctx: CostContext) -> int:
    """uint8 images of both splits, int64 labels and validation index, plus overhead."""
    d, data = ctx.assumptions.disk, ctx.data
    images = data.n_train + data.n_test
    return images * data.image_size**2 * RGB + (images + data.n_val) * d.label_bytes + d.data_h5_overhead_bytes
