"""Train (or import) the teacher."""

from igkd.data.store import data_attrs, read_data_h5
from igkd.runtime import start_job
from igkd.training.teacher import TeacherOutputs, run_teacher, teacher_input_norm

# holds the job's GPU until it ends; trains at runtime.precision (a rule param: a change retrains)
runtime = start_job(snakemake, whole_gpu=True, precision=snakemake.params.precision)
cfg = snakemake.config["teacher"]  # params.teacher: the part that changes the outputs (igkd.identity)
splits = read_data_h5(snakemake.input.data)
attrs = data_attrs(snakemake.input.data)
outputs = TeacherOutputs(snakemake.output.model, snakemake.output.metrics, snakemake.output.history)
norm = teacher_input_norm(cfg, attrs)
metrics = run_teacher(splits, cfg, norm, outputs, runtime, str(attrs["checksum"]))
runtime.log(f"teacher test accuracy {metrics['test_acc']:.2f} %, {metrics['params']} parameters")
