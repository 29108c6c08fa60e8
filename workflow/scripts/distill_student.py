"""Train one student for (method, drop, run)."""

from igkd.data.store import read_data_h5
from igkd.io import load_torch, read_json, sha256_file
from igkd.methods import get_method
from igkd.models import build_teacher
from igkd.precompute import load_precomputed
from igkd.devices import DeviceRequest, claim_device
from igkd.runtime import log_to
from igkd.student import student_stage

log = log_to(snakemake.log[0])
gpu_slot = claim_device(DeviceRequest.from_runtime(snakemake.config["runtime"], whole_gpu=False), log)  # held until the job ends
cfg = snakemake.params.students
wc = snakemake.wildcards
method = get_method(wc.method)
splits = read_data_h5(snakemake.input.data)
teacher_metrics = read_json(snakemake.input.teacher_metrics)
teacher_checksum = sha256_file(snakemake.input.model)
pre = None
if snakemake.input.precompute:
    pre = load_precomputed(
        snakemake.input.precompute[0] if isinstance(snakemake.input.precompute, list) else snakemake.input.precompute,
        n_rows=len(splits.train_labels),
        image_shape=splits.train_images.shape[1:3],
        num_classes=len(splits.classes),
        data_checksum=splits.checksum(),
        teacher_checksum=teacher_checksum,
    )
teacher = None
if method.at:
    teacher = build_teacher(len(splits.classes), snakemake.params.teacher_width)
    teacher.load_state_dict(load_torch(snakemake.input.model))
metrics = student_stage(
    splits,
    wc.method,
    int(wc.drop),
    int(wc.run),
    cfg,
    str(snakemake.output.metrics).rsplit("/", 1)[0],
    pre=pre,
    teacher=teacher,
    teacher_mean=teacher_metrics["normalize_mean"],
    teacher_std=teacher_metrics["normalize_std"],
    teacher_params=teacher_metrics["params"],
    provenance={"data_checksum": splits.checksum(), "teacher_checksum": teacher_checksum},
    device=gpu_slot.device,
    threads=snakemake.threads,
    channels_last=snakemake.params.channels_last,
    log=log,
)
log(f"{wc.method} drop {wc.drop} run {wc.run}: test accuracy {metrics['test_acc']:.2f} %")
