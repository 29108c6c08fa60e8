"""Score the teacher and every student on the external folder (evaluation only)."""

from igkd.analysis.external import EvalSet, eval_models, evaluate, load_eval_set
from igkd.data.store import data_attrs
from igkd.io import write_csv
from igkd.plugins import load_from_config
from igkd.runtime import start_job

runtime = start_job(snakemake, whole_gpu=False)  # holds the job's GPU slot until it ends
load_from_config(snakemake.config)  # a plugin's student families (once per process)
description = snakemake.params.description
classes = tuple(str(c) for c in data_attrs(snakemake.input.data)["classes"])
images, labels = load_eval_set(
    snakemake.input.root, snakemake.params.image_size, snakemake.input.class_map or None, classes
)
runtime.log(f"{description}: {len(labels)} images from {snakemake.input.root}")
models = eval_models(
    snakemake.input.teacher_model,
    snakemake.input.teacher_metrics,
    snakemake.input.models,
    snakemake.input.metrics,
    snakemake.params.student_norm,
)
widths = (snakemake.params.teacher_width, snakemake.params.student_width)
results, per_class = evaluate(models, EvalSet(images, labels, classes, description), widths, runtime)
write_csv(snakemake.output.table, results)
write_csv(snakemake.output.per_class, per_class)
