"""Train the sweep grid points this job owns (one, or a whole sweep) on the validation split."""

import torch

from igkd.data.store import read_data_h5
from igkd.io import load_torch, read_json, sha256_file
from igkd.methods import get_method
from igkd.models import build_teacher
from igkd.precompute import load_precomputed
from igkd.devices import DeviceRequest, claim_device
from igkd.runtime import log_to
from igkd.sweep_runner import train_points


def as_list(paths):
    return [paths] if isinstance(paths, str) else list(paths)


log = log_to(snakemake.log[0])
gpu_slot = claim_device(DeviceRequest.from_runtime(snakemake.config["runtime"], whole_gpu=False), log)  # held until the job ends
torch.set_num_threads(snakemake.threads)
p = snakemake.params
method = get_method(p.method)
splits = read_data_h5(snakemake.input.data)
teacher_metrics = read_json(snakemake.input.teacher_metrics)
teacher_checksum = sha256_file(snakemake.input.model)
pre = None
if method.needs_precompute:
    pre = load_precomputed(
        as_list(snakemake.input.precompute)[0],
        n_rows=len(splits.train_labels),
        image_shape=splits.train_images.shape[1:3],
        num_classes=len(splits.classes),
        data_checksum=splits.checksum(),
        teacher_checksum=teacher_checksum,
    )
teacher = None
if method.at:
    teacher = build_teacher(len(splits.classes), p.teacher_width)
    teacher.load_state_dict(load_torch(snakemake.input.model))
train_points(
    splits,
    p.sweep,
    p.points,
    as_list(snakemake.output.metrics),
    as_list(snakemake.output.history),
    p.students,
    p.sweeps,
    pre=pre,
    teacher=teacher,
    teacher_mean=teacher_metrics["normalize_mean"],
    teacher_std=teacher_metrics["normalize_std"],
    provenance={"data_checksum": splits.checksum(), "teacher_checksum": teacher_checksum},
    device=gpu_slot.device,
    threads=snakemake.threads,
    channels_last=p.channels_last,
    log=log,
)
