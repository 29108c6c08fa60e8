"""Train the sweep grid points this job owns (one, or a whole sweep) on the validation split."""

from igkd.attribution.precompute import load_precomputed_for
from igkd.data.store import read_data_h5
from igkd.runtime import as_paths, start_job
from igkd.training.sweep import SweepJob, train_points
from igkd.training.teacher import load_trained_teacher

# holds the job's GPU slot until it ends; trains at runtime.precision (a rule param: a change retrains)
runtime = start_job(snakemake, whole_gpu=False, precision=snakemake.params.precision)
p = snakemake.params
splits = read_data_h5(snakemake.input.data)
teacher = load_trained_teacher(
    snakemake.input.teacher_model,
    snakemake.input.teacher_metrics,
    num_classes=len(splits.classes),
    width=p.teacher_width,
)
precomputed = None
if snakemake.input.precompute:
    precomputed = load_precomputed_for(as_paths(snakemake.input.precompute)[0], splits, teacher.checksum)
job = SweepJob(p.sweep, p.points, as_paths(snakemake.output.metrics), as_paths(snakemake.output.history))
train_points(splits, job, p.students, p.sweeps, teacher, precomputed, runtime)
