"""Train (or import) the teacher."""

from igkd.data.store import data_attrs, read_data_h5
from igkd.runtime import log_to
from igkd.teacher import teacher_norm, teacher_stage
from igkd.train import pick_device

log = log_to(snakemake.log[0])
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
    device=pick_device(snakemake.params.device),
    threads=snakemake.threads,
    data_checksum=str(attrs["checksum"]),
    channels_last=snakemake.params.channels_last,
    log=log,
)
log(f"teacher test accuracy {metrics['test_acc']:.2f} %, {metrics['params']} parameters")
