"""Train one student: the StudentRun its params describe (method, drop, fraction, run, recipe)."""

from igkd.attribution.precompute import load_precomputed_for
from igkd.data.store import read_data_h5
from igkd.experiments import StudentRun
from igkd.runtime import as_paths, start_job
from igkd.training.student import run_student
from igkd.training.teacher import load_trained_teacher

# holds the job's GPU slot until it ends; trains at runtime.precision (a rule param: a change retrains)
runtime = start_job(snakemake, whole_gpu=False, precision=snakemake.params.precision)
run = StudentRun.from_params(snakemake.params.run)
splits = read_data_h5(snakemake.input.data)
teacher = load_trained_teacher(
    snakemake.input.teacher_model,
    snakemake.input.teacher_metrics,
    num_classes=len(splits.classes),
    width=snakemake.params.teacher_width,
)
precomputed = None
if snakemake.input.precompute:
    precomputed = load_precomputed_for(as_paths(snakemake.input.precompute)[0], splits, teacher.checksum)
out_dir = str(snakemake.output.metrics).rsplit("/", 1)[0]
metrics = run_student(splits, run, teacher, precomputed, runtime, out_dir)
runtime.log(f"{run}: test accuracy {metrics['test_acc']:.2f} %")
