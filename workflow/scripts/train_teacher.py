"""Train (or import) the teacher."""

from igkd.data.store import data_attrs, read_data_h5
from igkd.devices import DeviceRequest, claim_device
from igkd.runtime import log_to
from igkd.teacher import teacher_norm, teacher_stage

log = log_to(snakemake.log[0])
gpu_slot = claim_device(DeviceRequest.from_runtime(snakemake.config["runtime"], whole_gpu=True), log)  # held until the job ends
cfg = snakemake.params.teacher
splits = read_data_h5(snakemake.input.data)
attrs = data_attrs(snakemake.input.data)
mean, std = teacher_norm(cfg, attrs)
metrics = teacher_stage(
    splits,
    cfg,
    mean,
    std,
    snakemake.output.model,
    snakemake.output.metrics,
    snakemake.output.history,
    device=gpu_slot.device,
    threads=snakemake.threads,
    data_checksum=str(attrs["checksum"]),
    channels_last=snakemake.params.channels_last,
    log=log,
)
log(f"teacher test accuracy {metrics['test_acc']:.2f} %, {metrics['params']} parameters")
