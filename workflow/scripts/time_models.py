"""Model-only inference latency of the teacher and one model per student id -> timing.csv."""

from igkd.analysis.timing import TimingSettings, time_models, timing_models
from igkd.data.store import data_attrs
from igkd.io import write_csv
from igkd.plugins import load_from_config
from igkd.runtime import start_job

runtime = start_job(snakemake, whole_gpu=True)  # holds the job's GPU until it ends
load_from_config(snakemake.config)  # a plugin's student families (once per process)
settings = TimingSettings.from_config(snakemake.params.timing)
if snakemake.threads < settings.threads:
    runtime.log(
        f"note: Snakemake granted {snakemake.threads} core(s) but timing.threads is {settings.threads}; "
        f"timing with {settings.threads}"
    )
p = snakemake.params
num_classes = len(data_attrs(snakemake.input.data)["classes"])
models = timing_models(num_classes, p.teacher_width, p.student_width, p.students)
write_csv(snakemake.output.table, time_models(models, p.image_size, settings, runtime))
