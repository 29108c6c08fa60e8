"""Teacher logits + attribution maps for every training image: in dataset order (rule
precompute_attributions), or the reference code's misaligned way (rule
precompute_reference_defect, which passes the loader it precomputed over)."""

from igkd.attribution.completeness import format_summary
from igkd.attribution.precompute import AttributionJob, precompute, records_for
from igkd.attribution.reference_defect import ReferenceLoader, precompute_reference_defect
from igkd.data.store import read_data_h5
from igkd.plugins import load_from_config
from igkd.runtime import start_job
from igkd.training.teacher import load_trained_teacher

runtime = start_job(snakemake, whole_gpu=True, stage="precompute")  # holds the job's GPU until it ends
load_from_config(snakemake.config)  # a plugin's attribution (once per process)
splits = read_data_h5(snakemake.input.data)
teacher = load_trained_teacher(
    snakemake.input.teacher_model,
    snakemake.input.teacher_metrics,
    num_classes=len(splits.classes),
    width=snakemake.params.teacher_width,
    channels_last=runtime.channels_last,
)
# params.attribution holds what changes the file; the rest of config `precompute` (chunk,
# batch sizes, report_tolerance) only cuts the work or reports on it (igkd.identity)
job = AttributionJob.from_config(snakemake.config["precompute"], snakemake.params.attribution["attribution"])
rows = (teacher, splits.train_images, splits.train_labels, snakemake.output.h5, job)
records = records_for(splits, teacher, runtime)
loader = snakemake.params.get("loader")
if loader:
    summary = precompute_reference_defect(*rows, ReferenceLoader(**loader), runtime, records)
else:
    summary = precompute(*rows, runtime, records)
runtime.log(f"{job.attribution}{' (reference_defect)' if loader else ''}: {format_summary(summary)}")
