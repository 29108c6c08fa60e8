"""Model-only inference latency of the teacher and one student per drop -> timing.csv."""

from igkd.data.store import data_attrs
from igkd.io import write_csv
from igkd.devices import DeviceRequest, claim_device
from igkd.runtime import log_to
from igkd.timing import time_models, timing_models

log = log_to(snakemake.log[0])
gpu_slot = claim_device(DeviceRequest.from_runtime(snakemake.config["runtime"], whole_gpu=True), log)  # held until the job ends
cfg = snakemake.params.timing
threads = cfg["threads"]
if snakemake.threads < threads:
    log(f"note: Snakemake granted {snakemake.threads} core(s) but timing.threads is {threads}; timing with {threads}")
num_classes = len(data_attrs(snakemake.input.data)["classes"])
models = timing_models(num_classes, snakemake.params.teacher_width, snakemake.params.student_width, snakemake.params.drops)
table = time_models(
    models,
    cfg["batch_sizes"],
    snakemake.params.image_size,
    device=gpu_slot.device,
    threads=threads,
    warmup=cfg["warmup"],
    min_run_time=cfg["min_run_time"],
    max_run_time=cfg["max_run_time"],
    threshold=cfg["iqr_threshold"],
    channels_last=snakemake.params.channels_last,
    log=log,
)
write_csv(snakemake.output.table, table)
