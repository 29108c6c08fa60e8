"""Host memory each pending job needs, for SLURM's `mem_mb` (igkd.plan.slurm).

Measured part: the peak RSS of a fresh Python running the job's heaviest step on the run's
device (calibration kinds `*_rss`: Python, torch, the CUDA context, the model, its optimizer,
one batch or one IG pass). Counted part: the arrays the job holds in host memory on top of
that, from the data's sizes: every split's uint8 images (igkd.data.store.read_data_h5 reads
them all), the float32 maps of a precompute file it reads or writes, and for a student the
teacher's weights (loaded for its logits, taps and checks). Rules without a model (tables,
statistics, figures) have no estimate: the profile's default stays.
"""

from __future__ import annotations

from igkd.plan.cost import CostContext
from igkd.plan.jobs import Job
from igkd.plan.keys import ig_points_per_pass, peak_rss

FLOAT32 = 4
RGB = 3
PRECOMPUTE_RULES = ("precompute_attributions", "precompute_reference_defect")
INFERENCE_RULES = ("time_models", "evaluate_external")  # bounded by the teacher's training step


def images_bytes(ctx: CostContext) -> int:
    """Every split's images as uint8 (N, H, W, 3)."""
    side = ctx.data.image_size
    return (ctx.data.n_train + ctx.data.n_test) * side * side * RGB


def maps_bytes(ctx: CostContext) -> int:
    """One precompute file's maps (float32 (N, H, W)) and logits."""
    side = ctx.data.image_size
    return ctx.data.n_train * (side * side + ctx.data.classes) * FLOAT32


def reads_precompute(job: Job) -> bool:
    """Whether the job reads a precompute file (its logits and maps) among its inputs."""
    return any("/precompute/" in path and path.endswith(".h5") for path in job.inputs)


def job_memory(job: Job, ctx: CostContext, cal) -> int | None:
    """Bytes of host memory the job peaks at, or None for a rule without a model."""
    models, rule = ctx.models, job.rule
    if rule == "train_teacher" or rule in INFERENCE_RULES:
        return int(cal.value(peak_rss(models.teacher_step(job.threads))) + images_bytes(ctx))
    if rule in PRECOMPUTE_RULES:
        attribution = job.wildcards.get("attribution", "ig")
        if attribution == "random":  # logits only: a teacher forward, bounded by its training step
            measured = cal.value(peak_rss(models.teacher_step(job.threads)))
        else:
            points = ig_points_per_pass(ctx.config["precompute"], attribution, ctx.device_kind)
            measured = cal.value(peak_rss(models.ig(points, job.threads)))
        return int(measured + images_bytes(ctx) + maps_bytes(ctx))
    if rule == "distill_student" or rule.startswith("train_sweep"):
        student = job.wildcards.get("student") or str(ctx.config["sweeps"]["student"])
        held = images_bytes(ctx) + cal.value(models.teacher_bytes())
        if reads_precompute(job):
            held += maps_bytes(ctx)
        return int(cal.value(peak_rss(models.student_step(student, job.threads))) + held)
    return None
